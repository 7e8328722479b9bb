//! Watch: `?watch=true` streams one JSON event per line (`{"type":"ADDED","object":{...}}`).
//!
//! Semantics follow kube-apiserver: without a `resourceVersion` (or with `0`) the stream starts
//! with synthetic ADDED events for what exists; with one it resumes after it, or answers a 410
//! `ERROR` event when that history is gone. `sendInitialEvents=true` sends the current state then
//! a BOOKMARK annotated `k8s.io/initial-events-end` (kubectl's delete wait needs it). An object
//! that stops matching the selectors arrives as DELETED, one that starts matching as ADDED.
//! Periodic bookmarks with `allowWatchBookmarks`; the stream ends after `timeoutSeconds`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::ApiState;
use super::error::ApiError;
use super::read::Filter;
use super::request::{Query, Target};
use super::response::{IncludeObject, Rendering, partial_metadata, served, table};
use crate::registry::ResourceType;
use crate::store::{self, EventType};

/// `GET` on a collection with `watch=true`.
pub async fn watch(
    state: Arc<ApiState>,
    t: &Target<'_>,
    query: &Query,
    accept: &str,
) -> Result<Response, ApiError> {
    let rt: ResourceType = t.rt.clone();
    let rt = &rt;
    let filter = Filter::from_query(rt, query)?;
    let rendering = Rendering::from_accept(accept);
    let include = IncludeObject::parse(query.get("includeObject"));
    let timeout = match query.int("timeoutSeconds")? {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => state.options.max_watch,
    };
    let bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = query.flag("sendInitialEvents");
    let rv = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0");
    let prefix = rt.key_prefix(t.namespace.as_deref());
    let (initial, from) = match (send_initial, rv) {
        (false, Some(rv)) => {
            let rev = rv
                .parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {rv:?}")))?;
            (Vec::new(), rev)
        }
        _ => {
            let (items, rev) = state.store.list(&prefix).await?;
            let matching = items
                .into_iter()
                .filter(|i| filter.matches(rt, &i.value))
                .map(|i| i.value)
                .collect();
            (matching, rev)
        }
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    let mut stream = Stream {
        tx,
        rt: rt.clone(),
        rendering,
        include,
        first: true,
    };
    let rt = rt.clone();
    let subscription = state.store.watch(&prefix, from);
    let shutdown = state.shutdown.clone();
    let bookmark_every = state.options.bookmark_interval;
    let store = state.store.clone();
    tokio::spawn(async move {
        let rt = &rt;
        let mut w = match subscription {
            Ok(w) => w,
            Err(e) => {
                stream.error(ApiError::from(e)).await;
                return;
            }
        };
        for obj in initial {
            if !stream.send("ADDED", &obj).await {
                return;
            }
        }
        if send_initial {
            let mark = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {
                "resourceVersion": from.to_string(),
                "annotations": {"k8s.io/initial-events-end": "true"}}});
            if !stream.raw("BOOKMARK", mark).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        loop {
            tokio::select! {
                event = w.next() => match event {
                    Ok(e) => {
                        let now = filter.matches(rt, &e.object);
                        let before = e.previous.as_ref().is_some_and(|p| filter.matches(rt, p));
                        let kind = match (e.kind, before, now) {
                            (EventType::Added, _, true) => "ADDED",
                            (EventType::Modified, true, true) => "MODIFIED",
                            (EventType::Modified, false, true) => "ADDED",
                            (EventType::Modified, true, false) => "DELETED",
                            (EventType::Deleted, true, _) => "DELETED",
                            _ => continue,
                        };
                        if !stream.send(kind, &e.object).await {
                            return;
                        }
                    }
                    Err(store::Error::Closed) => return,
                    Err(e) => {
                        stream.error(ApiError::from(e)).await;
                        return;
                    }
                },
                _ = ticker.tick(), if bookmarks => {
                    let mark = json!({"kind": rt.kind, "apiVersion": rt.api_version(),
                        "metadata": {"resourceVersion": store.revision().to_string()}});
                    if !stream.raw("BOOKMARK", mark).await {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = shutdown.cancelled() => return,
            }
        }
    });
    let mut resp = (StatusCode::OK, Body::from_stream(ReceiverStream::new(rx))).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(w) = t.rt.deprecation
        && let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}"))
    {
        resp.headers_mut().insert(header::WARNING, v);
    }
    Ok(resp)
}

/// The sending half of one watch response.
struct Stream {
    tx: mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
    rt: ResourceType,
    rendering: Rendering,
    include: IncludeObject,
    first: bool,
}

impl Stream {
    /// Sends one event for a stored object in the client's rendering; false once the client
    /// is gone.
    async fn send(&mut self, kind: &str, obj: &Arc<Value>) -> bool {
        let object = match self.rendering {
            Rendering::Full => served(&self.rt, obj),
            Rendering::Metadata => partial_metadata(obj),
            Rendering::Table => {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(Value::Null);
                let t = table(
                    &self.rt,
                    std::slice::from_ref(obj),
                    json!({"resourceVersion": rv}),
                    self.include,
                    self.first,
                );
                self.first = false;
                t
            }
        };
        self.raw(kind, object).await
    }

    async fn raw(&mut self, kind: &str, object: Value) -> bool {
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        self.tx.send(Ok(Bytes::from(line))).await.is_ok()
    }

    async fn error(&mut self, e: ApiError) {
        let status = e.status();
        self.raw("ERROR", status).await;
    }
}
