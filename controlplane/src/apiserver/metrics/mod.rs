//! `metrics.k8s.io/v1beta1`, served by the API server the way metrics-server serves it behind
//! an APIService: every `--metric-resolution` (metrics-server's 15 s) each node agent's
//! `/metrics/resource` is scraped, and the last two scrapes give each container's CPU rate
//! (the cumulative CPU difference over the time between them, the `window`) and its working
//! set. PodMetrics and NodeMetrics are read-only views of that cache (`api.rs`); nothing is
//! stored. `kubectl top` and the HPA controller read them like any client.
//!
//! A pod appears once two scrapes of it exist (so ~1-2 resolutions after it starts); a
//! container whose start time changed between them (a restart) waits for the next pair.

mod api;
pub mod parse;

pub use api::{GROUP, VERSION, aggregated_entry, api_resource_list, discovery_entry, serve};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;

use self::parse::{ContainerKey, Scrape};
use super::ApiState;

/// The two newest scrapes of one node.
#[derive(Debug, Clone, Default)]
struct Series {
    previous: Option<Scrape>,
    last: Option<Scrape>,
}

/// One container's usage over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// CPU in nanocores.
    pub nano_cores: u64,
    /// Working set in bytes.
    pub memory: u64,
}

/// A usage figure with its time and window.
#[derive(Debug, Clone)]
pub struct Window<T> {
    /// When the last scrape was taken.
    pub at: jiff::Timestamp,
    /// The time between the two scrapes.
    pub window: Duration,
    /// The figures.
    pub value: T,
}

/// The metrics cache: the newest scrapes of every node.
#[derive(Debug, Default)]
pub struct ResourceMetrics {
    nodes: Mutex<BTreeMap<String, Series>>,
}

impl ResourceMetrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Series>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a scrape of `node`.
    pub fn record(&self, node: &str, scrape: Scrape) {
        let mut nodes = self.lock();
        let series = nodes.entry(node.to_string()).or_default();
        if series
            .last
            .as_ref()
            .is_some_and(|l| l.at_ms >= scrape.at_ms)
        {
            return; // the same sample again
        }
        series.previous = series.last.take();
        series.last = Some(scrape);
    }

    /// Forgets nodes not in `keep`.
    pub fn retain(&self, keep: &[String]) {
        self.lock().retain(|n, _| keep.contains(n));
    }

    /// The time and window of a pair of scrapes.
    fn window(previous: &Scrape, last: &Scrape) -> Option<(jiff::Timestamp, Duration)> {
        let ms = last.at_ms - previous.at_ms;
        if ms <= 0 {
            return None;
        }
        let at = jiff::Timestamp::from_millisecond(last.at_ms).ok()?;
        Some((at, Duration::from_millis(ms as u64)))
    }

    /// The containers of pod `namespace/name`, if both scrapes have them.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Window<Vec<(String, Usage)>>> {
        let nodes = self.lock();
        for series in nodes.values() {
            let (Some(previous), Some(last)) = (&series.previous, &series.last) else {
                continue;
            };
            let mine = |k: &ContainerKey| k.0 == namespace && k.1 == name;
            if !last.containers.keys().any(mine) {
                continue;
            }
            let (at, window) = Self::window(previous, last)?;
            let mut containers = Vec::new();
            for (key, point) in last.containers.iter().filter(|(k, _)| mine(k)) {
                let before = previous.containers.get(key)?;
                if before.start != point.start || point.cpu < before.cpu {
                    return None; // restarted in between: its counter began anew
                }
                let nano_cores = ((point.cpu - before.cpu) / window.as_secs_f64() * 1e9) as u64;
                containers.push((
                    key.2.clone(),
                    Usage {
                        nano_cores,
                        memory: point.memory as u64,
                    },
                ));
            }
            return Some(Window {
                at,
                window,
                value: containers,
            });
        }
        None
    }

    /// Node `name`'s usage.
    pub fn node(&self, name: &str) -> Option<Window<Usage>> {
        let nodes = self.lock();
        let series = nodes.get(name)?;
        let (previous, last) = (series.previous.as_ref()?, series.last.as_ref()?);
        let (at, window) = Self::window(previous, last)?;
        let cpu = (last.node_cpu - previous.node_cpu).max(0.0);
        Some(Window {
            at,
            window,
            value: Usage {
                nano_cores: (cpu / window.as_secs_f64() * 1e9) as u64,
                memory: last.node_memory as u64,
            },
        })
    }
}

/// Scrapes every node each `resolution` until the API server shuts down.
pub async fn run(state: Arc<ApiState>, resolution: Duration) {
    let mut ticks = tokio::time::interval(resolution.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let nodes = match node_names(&state).await {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::debug!(error = %e, "metrics: listing nodes failed");
                continue;
            }
        };
        let timeout = resolution.clamp(Duration::from_millis(500), Duration::from_secs(10));
        let scrapes = nodes.iter().map(|node| {
            let state = state.clone();
            async move {
                match tokio::time::timeout(timeout, scrape(&state, node)).await {
                    Ok(Ok(s)) => state.resource_metrics.record(node, s),
                    Ok(Err(e)) => tracing::debug!(node, error = %e, "metrics: scrape failed"),
                    Err(_) => tracing::debug!(node, "metrics: scrape timed out"),
                }
            }
        });
        futures::future::join_all(scrapes).await;
        state.resource_metrics.retain(&nodes);
    }
}

async fn node_names(state: &ApiState) -> Result<Vec<String>, super::error::ApiError> {
    let rt = state
        .registry
        .by_kind("", "Node")
        .ok_or(super::error::ApiError::NoSuchResource)?;
    let (nodes, _) = state.store.list(&rt.key_prefix(None)).await?;
    Ok(nodes
        .iter()
        .filter_map(|n| n.value.pointer("/metadata/name").and_then(Value::as_str))
        .map(String::from)
        .collect())
}

/// `GET /metrics/resource` of one node agent.
async fn scrape(state: &ApiState, node: &str) -> Result<Scrape, super::error::ApiError> {
    let addr = super::proxy::node_endpoint(state, node).await?;
    let mut sender = super::proxy::connect(addr, node).await?;
    let request = Request::get("/metrics/resource")
        .header(header::HOST, addr.to_string())
        .body(Body::empty())
        .map_err(|e| super::error::ApiError::Internal(e.to_string()))?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| super::proxy::unreachable(node, addr, &e))?;
    if answer.status() != StatusCode::OK {
        return Err(super::error::ApiError::Unavailable(format!(
            "node {node} answered {} to /metrics/resource",
            answer.status()
        )));
    }
    let body = axum::body::to_bytes(Body::new(answer.into_body()), 16 << 20)
        .await
        .map_err(|e| super::proxy::unreachable(node, addr, &e))?;
    Ok(parse::parse(&String::from_utf8_lossy(&body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parse::ContainerPoint;

    fn scrape(at_ms: i64, cpu: f64, start: f64) -> Scrape {
        let mut s = Scrape {
            at_ms,
            node_cpu: cpu * 2.0,
            node_memory: 4096.0,
            ..Scrape::default()
        };
        s.containers.insert(
            ("ns".into(), "p".into(), "c".into()),
            ContainerPoint {
                cpu,
                memory: 1024.0,
                start,
            },
        );
        s
    }

    #[test]
    fn rates_come_from_the_last_two_scrapes() {
        let m = ResourceMetrics::default();
        m.record("n", scrape(1_000_000, 1.0, 5.0));
        assert!(m.pod("ns", "p").is_none(), "one scrape has no rate");
        m.record("n", scrape(1_015_000, 4.0, 5.0));
        let pod = m.pod("ns", "p").unwrap();
        assert_eq!(pod.window, Duration::from_secs(15));
        assert_eq!(pod.value[0].0, "c");
        assert_eq!(pod.value[0].1.nano_cores, 200_000_000);
        assert_eq!(pod.value[0].1.memory, 1024);
        assert_eq!(m.node("n").unwrap().value.nano_cores, 400_000_000);
        assert!(m.pod("ns", "other").is_none());
        // A restart between two scrapes: no figure until the next pair.
        m.record("n", scrape(1_030_000, 0.5, 29.0));
        assert!(m.pod("ns", "p").is_none());
        m.retain(&[]);
        assert!(m.node("n").is_none());
    }
}
