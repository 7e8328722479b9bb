//! Reading a node agent's `/metrics/resource` (Prometheus text exposition) into one scrape:
//! the cumulative CPU and the working set of the node and of every container, with the
//! sample timestamps the agent wrote.

use std::collections::BTreeMap;

/// `(namespace, pod, container)`.
pub type ContainerKey = (String, String, String);

/// One container's figures in a scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ContainerPoint {
    /// Cumulative CPU, core-seconds.
    pub cpu: f64,
    /// Working set, bytes.
    pub memory: f64,
    /// When it started (unix seconds): a change means a restart, whose counter began anew.
    pub start: f64,
}

/// A parsed scrape of one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// The samples' time (unix milliseconds), from the exposition.
    pub at_ms: i64,
    /// Node cumulative CPU, core-seconds.
    pub node_cpu: f64,
    /// Node working set, bytes.
    pub node_memory: f64,
    /// Containers.
    pub containers: BTreeMap<ContainerKey, ContainerPoint>,
}

/// One sample line: name, labels, value and timestamp.
type Sample<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64, Option<i64>);

/// `name{a="x",b="y"} value [timestamp]` split up; `None` for comments and junk.
fn sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (head, rest) = match line.find('{') {
        Some(open) => {
            let close = line[open..].find('}')? + open;
            (&line[..close + 1], &line[close + 1..])
        }
        None => line.split_at(line.find(' ')?),
    };
    let (name, labels) = match head.find('{') {
        Some(open) => {
            let inner = &head[open + 1..head.len() - 1];
            let labels = inner
                .split(',')
                .filter(|l| !l.is_empty())
                .filter_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    Some((k.trim(), v.trim().trim_matches('"')))
                })
                .collect();
            (&head[..open], labels)
        }
        None => (head, Vec::new()),
    };
    let mut fields = rest.split_whitespace();
    let value = fields.next()?.parse().ok()?;
    let ts = fields.next().and_then(|t| t.parse().ok());
    Some((name, labels, value, ts))
}

/// Parses `/metrics/resource`. Unknown families and malformed lines are skipped.
pub fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in text.lines() {
        let Some((name, labels, value, ts)) = sample(line) else {
            continue;
        };
        if let Some(ts) = ts {
            scrape.at_ms = scrape.at_ms.max(ts);
        }
        let label = |k: &str| {
            labels
                .iter()
                .find(|(l, _)| *l == k)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        let key = || (label("namespace"), label("pod"), label("container"));
        match name {
            "node_cpu_usage_seconds_total" => scrape.node_cpu = value,
            "node_memory_working_set_bytes" => scrape.node_memory = value,
            "container_cpu_usage_seconds_total" => {
                scrape.containers.entry(key()).or_default().cpu = value
            }
            "container_memory_working_set_bytes" => {
                scrape.containers.entry(key()).or_default().memory = value
            }
            "container_start_time_seconds" => {
                scrape.containers.entry(key()).or_default().start = value
            }
            _ => {}
        }
    }
    scrape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kubelet_resource_families() {
        let text = "# HELP container_cpu_usage_seconds_total [STABLE] x\n\
            # TYPE container_cpu_usage_seconds_total counter\n\
            container_cpu_usage_seconds_total{container=\"c\",namespace=\"ns\",pod=\"p\"} 1.5 1700000000123\n\
            container_memory_working_set_bytes{container=\"c\",namespace=\"ns\",pod=\"p\"} 65536 1700000000123\n\
            container_start_time_seconds{container=\"c\",namespace=\"ns\",pod=\"p\"} 1699999999.5 1700000000123\n\
            node_cpu_usage_seconds_total 3.25 1700000000123\n\
            node_memory_working_set_bytes 1048576 1700000000123\n\
            garbage line\n\
            scrape_error 0\n";
        let s = parse(text);
        assert_eq!(s.at_ms, 1_700_000_000_123);
        assert_eq!((s.node_cpu, s.node_memory), (3.25, 1048576.0));
        let c = s.containers[&("ns".into(), "p".into(), "c".into())];
        assert_eq!(
            c,
            ContainerPoint {
                cpu: 1.5,
                memory: 65536.0,
                start: 1_699_999_999.5
            }
        );
    }
}
