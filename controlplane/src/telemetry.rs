//! The control plane's Prometheus metrics, served at the API server's `/metrics` in the text
//! exposition format, under kube-apiserver's and kube-scheduler's names where one exists:
//!
//! - `apiserver_request_total{verb,group,version,resource,subresource,scope,code}` and
//!   `apiserver_request_duration_seconds` (a histogram; watches count until their headers);
//! - `apiserver_longrunning_requests{verb="WATCH"}`: watches open now;
//! - `wasmkube_store_commit_duration_seconds`: one durable commit (group commit: one fsync for
//!   a batch of writes) and `wasmkube_store_commit_writes_total`;
//! - `scheduler_schedule_attempts_total{result}` (`scheduled`, `unschedulable`, `error`).
//!
//! One process-wide registry ([`METRICS`]): counters and histograms keyed by their label
//! values, behind short-held mutexes (never across an `.await`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Latency buckets in seconds (kube-apiserver's request-duration buckets, shortened).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A histogram: counts per bucket, sum and count.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS.len()];
        }
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.buckets[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// Labels of one API request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestLabels {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `connect` (exec, attach, port-forward, logs) or the HTTP method for other paths.
    pub verb: String,
    /// The API group (`""` for core).
    pub group: String,
    /// The API version.
    pub version: String,
    /// The plural resource (empty for discovery and other paths).
    pub resource: String,
    /// The subresource, if any.
    pub subresource: String,
    /// `cluster`, `namespace` or `resource` (one named object).
    pub scope: String,
}

/// Every metric of the control plane.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(RequestLabels, u16), u64>>,
    durations: Mutex<BTreeMap<RequestLabels, Histogram>>,
    watches: AtomicI64,
    commits: Mutex<Histogram>,
    committed_writes: AtomicU64,
    schedule_attempts: Mutex<BTreeMap<&'static str, u64>>,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts an open watch until dropped.
#[derive(Debug)]
pub struct WatchGuard(());

impl Drop for WatchGuard {
    fn drop(&mut self) {
        METRICS.watches.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// One API request answered with `code` after `took`.
    pub fn request(&self, labels: RequestLabels, code: u16, took: Duration) {
        *lock(&self.requests)
            .entry((labels.clone(), code))
            .or_default() += 1;
        lock(&self.durations)
            .entry(labels)
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// A watch opened; it counts as open until the guard drops.
    pub fn watch_opened(&self) -> WatchGuard {
        self.watches.fetch_add(1, Ordering::Relaxed);
        WatchGuard(())
    }

    /// One durable commit of `writes` writes that took `took`.
    pub fn commit(&self, writes: usize, took: Duration) {
        lock(&self.commits).observe(took.as_secs_f64());
        self.committed_writes
            .fetch_add(writes as u64, Ordering::Relaxed);
    }

    /// One scheduling attempt with `result` (`scheduled`, `unschedulable`, `error`).
    pub fn schedule_attempt(&self, result: &'static str) {
        *lock(&self.schedule_attempts).entry(result).or_default() += 1;
    }

    /// The text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        let labels = |l: &RequestLabels| {
            format!(
                "verb=\"{}\",group=\"{}\",version=\"{}\",resource=\"{}\",subresource=\"{}\",scope=\"{}\",component=\"apiserver\"",
                l.verb, l.group, l.version, l.resource, l.subresource, l.scope
            )
        };
        head(
            &mut out,
            "apiserver_request_total",
            "counter",
            "Counter of apiserver requests broken out for each verb, group, version, resource, scope, component, and HTTP response code.",
        );
        for ((l, code), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{{},code=\"{code}\"}} {n}",
                labels(l)
            );
        }
        head(
            &mut out,
            "apiserver_request_duration_seconds",
            "histogram",
            "Response latency distribution in seconds for each verb, group, version, resource, subresource, scope and component.",
        );
        for (l, h) in lock(&self.durations).iter() {
            histogram(
                &mut out,
                "apiserver_request_duration_seconds",
                &labels(l),
                h,
            );
        }
        head(
            &mut out,
            "apiserver_longrunning_requests",
            "gauge",
            "Gauge of all active long-running apiserver requests.",
        );
        let _ = writeln!(
            out,
            "apiserver_longrunning_requests{{verb=\"WATCH\",component=\"apiserver\"}} {}",
            self.watches.load(Ordering::Relaxed)
        );
        head(
            &mut out,
            "wasmkube_store_commit_duration_seconds",
            "histogram",
            "Latency of one durable store commit (a group of writes, one fsync).",
        );
        histogram(
            &mut out,
            "wasmkube_store_commit_duration_seconds",
            "",
            &lock(&self.commits),
        );
        head(
            &mut out,
            "wasmkube_store_commit_writes_total",
            "counter",
            "Writes made durable by store commits.",
        );
        let _ = writeln!(
            out,
            "wasmkube_store_commit_writes_total {}",
            self.committed_writes.load(Ordering::Relaxed)
        );
        head(
            &mut out,
            "scheduler_schedule_attempts_total",
            "counter",
            "Number of attempts to schedule pods, by the result.",
        );
        for (result, n) in lock(&self.schedule_attempts).iter() {
            let _ = writeln!(
                out,
                "scheduler_schedule_attempts_total{{profile=\"default-scheduler\",result=\"{result}\"}} {n}"
            );
        }
        out
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (i, le) in BUCKETS.iter().enumerate() {
        let n = h.buckets.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum);
    let _ = writeln!(out, "{name}_count{braces} {}", h.count);
}

/// The labels of a request to `path` (with the query's `watch`), as kube-apiserver's
/// request-info resolver names them.
pub fn classify(method: &str, path: &str, watch: bool) -> RequestLabels {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => {
            return RequestLabels {
                verb: method.to_string(),
                group: String::new(),
                version: String::new(),
                resource: String::new(),
                subresource: String::new(),
                scope: String::new(),
            };
        }
    };
    let (namespaced, rest) = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => (true, tail),
        _ => (false, rest),
    };
    let (resource, name, subresource) = match rest {
        [] => ("", None, ""),
        [r] => (*r, None, ""),
        [r, n] => (*r, Some(*n), ""),
        [r, n, s, ..] => (*r, Some(*n), *s),
    };
    let verb = match (method, name.is_some(), subresource) {
        (_, true, "exec" | "attach" | "portforward" | "log" | "proxy") => "connect",
        ("GET", false, _) if watch => "watch",
        ("GET", false, _) => "list",
        ("GET", true, _) => "get",
        ("POST", _, _) => "create",
        ("PUT", _, _) => "update",
        ("PATCH", _, _) => "patch",
        ("DELETE", false, _) => "deletecollection",
        ("DELETE", true, _) => "delete",
        (other, _, _) => other,
    };
    let scope = match (name, namespaced) {
        (Some(_), _) => "resource",
        (None, true) => "namespace",
        (None, false) => "cluster",
    };
    RequestLabels {
        verb: verb.to_string(),
        group: group.to_string(),
        version: version.to_string(),
        resource: resource.to_string(),
        subresource: subresource.to_string(),
        scope: scope.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_like_kube_apiservers() {
        let l = classify("GET", "/api/v1/namespaces/default/pods", false);
        assert_eq!(
            (l.verb.as_str(), l.resource.as_str(), l.scope.as_str()),
            ("list", "pods", "namespace")
        );
        let l = classify("GET", "/apis/apps/v1/deployments", true);
        assert_eq!(
            (l.verb.as_str(), l.group.as_str(), l.scope.as_str()),
            ("watch", "apps", "cluster")
        );
        let l = classify(
            "PUT",
            "/apis/apps/v1/namespaces/d/deployments/web/scale",
            false,
        );
        assert_eq!(
            (l.verb.as_str(), l.subresource.as_str(), l.scope.as_str()),
            ("update", "scale", "resource")
        );
        let l = classify("GET", "/api/v1/namespaces/d", false);
        assert_eq!(
            (l.verb.as_str(), l.resource.as_str()),
            ("get", "namespaces")
        );
        assert_eq!(classify("GET", "/healthz", false).verb, "GET");
    }

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        let l = classify("GET", "/api/v1/pods", false);
        m.request(l, 200, Duration::from_millis(3));
        m.commit(4, Duration::from_millis(1));
        m.schedule_attempt("scheduled");
        let text = m.render();
        assert!(text.contains("apiserver_request_total{verb=\"list\",group=\"\",version=\"v1\",resource=\"pods\",subresource=\"\",scope=\"cluster\",component=\"apiserver\",code=\"200\"} 1\n"), "{text}");
        assert!(text.contains("le=\"0.005\"} 1\n"));
        assert!(text.contains("le=\"0.0025\"} 0\n"));
        assert!(text.contains("wasmkube_store_commit_writes_total 4\n"));
        assert!(text.contains("wasmkube_store_commit_duration_seconds_count 1\n"));
        assert!(text.contains("result=\"scheduled\"} 1\n"));
    }
}
