//! The node's HTTP endpoint (the kubelet's port 10250, `daemonEndpoints.kubeletEndpoint`):
//! `GET /containerLogs/{namespace}/{pod}/{container}`, `GET /metrics/resource` (see
//! `metrics.rs`), `GET /stats/summary` (`summary.rs`), the agent's own `GET /metrics`
//! (`prometheus.rs`), the exec and attach sessions `GET /exec/...` and `GET /attach/...` (see
//! `stream.rs`), port-forwarding `/portForward/{namespace}/{pod}` (see `portforward/`) and
//! `GET /healthz`.
//!
//! The API server's `pods/log` proxies here. Query parameters are the kubelet's: `follow`,
//! `tailLines`, `previous`, `timestamps`, `sinceSeconds`, `sinceTime`, `limitBytes`. With
//! `follow=true` the answer keeps streaming while the file grows, until that container start
//! ends or the client goes away (the body stream is then dropped with the connection).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use super::exec::Exec;
use super::logs::{self, LogStore, ReadOptions, complete_prefix, render};
use super::metrics::Usages;
use super::{portforward, stream};

/// How often a followed log is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The query of `/containerLogs`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    /// Keep streaming.
    #[serde(default)]
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<i64>,
    /// The previous start of the container.
    #[serde(default)]
    pub previous: bool,
    /// Prefix lines with their time.
    #[serde(default)]
    pub timestamps: bool,
    /// Only lines of the last N seconds.
    pub since_seconds: Option<i64>,
    /// Only lines after this RFC 3339 time.
    pub since_time: Option<String>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<i64>,
}

/// The endpoint's routes over a log index (no socket: tests call it with `oneshot`).
pub fn router(logs: Arc<LogStore>, usages: Arc<Usages>, exec: Arc<Exec>) -> Router {
    let metrics = Router::new()
        .route("/metrics/resource", get(resource_metrics))
        .route("/metrics", get(agent_metrics))
        .route("/stats/summary", get(stats_summary))
        .with_state(usages);
    let streams = Router::new()
        .route(
            "/exec/{namespace}/{pod}/{container}",
            get(stream::exec).post(stream::exec),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(stream::attach).post(stream::attach),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            get(portforward::serve).post(portforward::serve),
        )
        .with_state(exec);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .with_state(logs)
        .merge(metrics)
        .merge(streams)
}

async fn resource_metrics(State(usages): State<Arc<Usages>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        usages.render(jiff::Timestamp::now()),
    )
        .into_response()
}

async fn agent_metrics(State(usages): State<Arc<Usages>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        super::prometheus::render(&usages),
    )
        .into_response()
}

async fn stats_summary(State(usages): State<Arc<Usages>>) -> Response {
    let summary = tokio::task::spawn_blocking(move || {
        super::summary::summary(&usages, jiff::Timestamp::now())
    })
    .await;
    match summary {
        Ok(summary) => axum::Json(summary).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn container_logs(
    State(store): State<Arc<LogStore>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    let located = match store.locate(&namespace, &pod, &container, query.previous) {
        Ok(located) => located,
        Err(e @ (logs::Error::PodNotFound { .. } | logs::Error::ContainerNotFound { .. })) => {
            return (StatusCode::NOT_FOUND, e.to_string()).into_response();
        }
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let since = match (&query.since_time, query.since_seconds) {
        (Some(t), _) => t.parse::<jiff::Timestamp>().ok(),
        (None, Some(s)) if s > 0 => jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(s))
            .ok(),
        _ => None,
    };
    let options = ReadOptions {
        tail_lines: query.tail_lines.and_then(|n| usize::try_from(n).ok()),
        timestamps: query.timestamps,
        since,
    };
    let data = match tokio::fs::read(&located.path).await {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let offset = complete_prefix(&data);
    let mut first = render(&data[..offset], &options);
    let limit = query.limit_bytes.and_then(|n| usize::try_from(n).ok());
    if let Some(limit) = limit {
        first.truncate(limit);
    }
    let text = [(header::CONTENT_TYPE, "text/plain")];
    if !query.follow || !located.running || limit.is_some_and(|l| first.len() >= l) {
        return (text, first).into_response();
    }

    // Follow: the tail/since options shaped the first chunk; later lines only need the
    // timestamp prefix.
    let later = ReadOptions {
        timestamps: options.timestamps,
        ..ReadOptions::default()
    };
    let follow = Follow {
        store,
        namespace,
        pod,
        container,
        located,
        offset: offset as u64,
        later,
        first: Some(first),
    };
    let body = futures::stream::unfold(follow, |mut f| async move {
        let chunk = f.next().await?;
        Some((chunk, f))
    });
    (text, Body::from_stream(body)).into_response()
}

/// The state of a followed log.
struct Follow {
    store: Arc<LogStore>,
    namespace: String,
    pod: String,
    container: String,
    located: logs::Located,
    offset: u64,
    later: ReadOptions,
    first: Option<Vec<u8>>,
}

impl Follow {
    /// The next chunk of output, or `None` once the container start has ended and its file
    /// is drained.
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if let Some(first) = self.first.take()
            && !first.is_empty()
        {
            return Some(Ok(Bytes::from(first)));
        }
        loop {
            // Checked before reading, so lines written just before the end are not lost.
            let running = self.store.is_running(
                &self.namespace,
                &self.pod,
                &self.container,
                self.located.restart,
            );
            let new = match self.read_new().await {
                Ok(new) => new,
                Err(e) => return Some(Err(e)),
            };
            if !new.is_empty() {
                return Some(Ok(Bytes::from(render(&new, &self.later))));
            }
            if !running {
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }

    /// Complete records appended since the last read.
    async fn read_new(&mut self) -> std::io::Result<Vec<u8>> {
        let mut file = match tokio::fs::File::open(&self.located.path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        file.seek(std::io::SeekFrom::Start(self.offset)).await?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).await?;
        data.truncate(complete_prefix(&data));
        self.offset += data.len() as u64;
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::logs::Stream;
    use tower::ServiceExt as _;

    async fn get_text(router: Router, uri: &str) -> (StatusCode, String) {
        let request = axum::http::Request::get(uri).body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn serves_tail_previous_and_follows_until_the_container_stops() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new();
        store.add_pod("ns", "p", "u", dir.path().to_path_buf());
        let old = store.start("ns", "p", "c", 0).unwrap();
        old.sink(Stream::Stdout).write(b"before\n").unwrap();
        store.stopped("ns", "p", "c");
        let log = store.start("ns", "p", "c", 1).unwrap();
        log.sink(Stream::Stdout).write(b"a\nb\nc\n").unwrap();
        let app = router(store.clone(), Usages::new(), Exec::for_tests());

        assert_eq!(get_text(app.clone(), "/healthz").await.1, "ok");
        let (status, summary) = get_text(app.clone(), "/stats/summary").await;
        assert_eq!(status, StatusCode::OK);
        assert!(summary.contains("\"pods\":[]"), "{summary}");
        let (status, metrics) = get_text(app.clone(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(metrics.contains("kubelet_running_pods 0"), "{metrics}");
        assert_eq!(
            get_text(app.clone(), "/containerLogs/ns/p/c?tailLines=2")
                .await
                .1,
            "b\nc\n"
        );
        assert_eq!(
            get_text(app.clone(), "/containerLogs/ns/p/c?previous=true")
                .await
                .1,
            "before\n"
        );
        assert_eq!(
            get_text(app.clone(), "/containerLogs/ns/p/x").await.0,
            StatusCode::NOT_FOUND
        );
        // Exec into a container that does not run here: a Status, before any upgrade.
        let (status, text) = get_text(app.clone(), "/exec/ns/p/c?command=ls").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(text.contains("\"reason\":\"NotFound\""), "{text}");

        let follower = tokio::spawn(get_text(
            app.clone(),
            "/containerLogs/ns/p/c?follow=true&tailLines=1",
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
        log.sink(Stream::Stderr).write(b"d\n").unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        store.stopped("ns", "p", "c");
        let (status, text) = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((status, text.as_str()), (StatusCode::OK, "c\nd\n"));
    }
}
