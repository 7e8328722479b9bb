//! `top pods|nodes`: CPU and memory from `metrics.k8s.io/v1beta1`, printed as `kubectl top`
//! prints them: `NAME CPU(cores) MEMORY(bytes)` with millicores and `Mi`, `--containers`
//! per container, nodes with the percentage of their allocatable.

use kube::api::ListParams;
use serde_json::Value;

use crate::client::Cluster;
use crate::error::Error;

/// What `top` shows.
#[derive(clap::Subcommand, Debug)]
pub enum TopCommand {
    /// CPU and memory of pods.
    #[command(alias = "pod", alias = "po")]
    Pods(TopPodsArgs),
    /// CPU and memory of nodes.
    #[command(alias = "node", alias = "no")]
    Nodes(TopNodesArgs),
}

/// Arguments of `top`.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// pods or nodes.
    #[command(subcommand)]
    pub what: TopCommand,
}

/// Arguments of `top pods`.
#[derive(clap::Args, Debug)]
pub struct TopPodsArgs {
    /// Only this pod.
    pub name: Option<String>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// One line per container.
    #[arg(long)]
    pub containers: bool,
    /// Only pods with these labels (`app=web`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// Arguments of `top nodes`.
#[derive(clap::Args, Debug)]
pub struct TopNodesArgs {
    /// Only this node.
    pub name: Option<String>,
}

/// Millicores of a quantity (`1500000n` -> 1, `250m` -> 250, `2` -> 2000).
fn millicores(q: &str) -> u64 {
    let (number, factor) = match q.char_indices().last() {
        Some((i, 'n')) => (&q[..i], 1e-6),
        Some((i, 'u')) => (&q[..i], 1e-3),
        Some((i, 'm')) => (&q[..i], 1.0),
        _ => (q, 1000.0),
    };
    (number.parse::<f64>().unwrap_or(0.0) * factor) as u64
}

/// Bytes of a quantity (`12Ki`, `3Mi`, `1Gi`, `1000`, `1k`).
fn bytes(q: &str) -> u64 {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(n) = q.strip_suffix(suffix) {
            return (n.parse::<f64>().unwrap_or(0.0) * factor) as u64;
        }
    }
    q.parse::<f64>().unwrap_or(0.0) as u64
}

fn cpu_cell(q: &str) -> String {
    format!("{}m", millicores(q))
}

fn memory_cell(q: &str) -> String {
    format!("{}Mi", bytes(q) / (1024 * 1024))
}

fn table(rows: Vec<Vec<String>>) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn get(cluster: &Cluster, path: &str) -> Result<Value, Error> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| Error::Usage(e.to_string()))?;
    Ok(cluster.client.request::<Value>(request).await?)
}

/// Runs `top`.
pub async fn run(args: TopArgs, cluster: &Cluster) -> Result<(), Error> {
    let text = match args.what {
        TopCommand::Pods(a) => pods(a, cluster).await?,
        TopCommand::Nodes(a) => nodes(a, cluster).await?,
    };
    print!("{text}");
    Ok(())
}

async fn pods(a: TopPodsArgs, cluster: &Cluster) -> Result<String, Error> {
    let ns = cluster.namespace(a.namespace.as_deref());
    let base = if a.all_namespaces {
        "/apis/metrics.k8s.io/v1beta1/pods".to_string()
    } else {
        format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods")
    };
    let items = match &a.name {
        Some(name) => vec![get(cluster, &format!("{base}/{name}")).await?],
        None => {
            let lp = ListParams::default().labels(a.selector.as_deref().unwrap_or_default());
            let query = lp
                .label_selector
                .map(|s| format!("?labelSelector={}", encode(&s)))
                .unwrap_or_default();
            let list = get(cluster, &format!("{base}{query}")).await?;
            list["items"].as_array().cloned().unwrap_or_default()
        }
    };
    if items.is_empty() {
        let scope = if a.all_namespaces {
            String::new()
        } else {
            format!(" in {ns} namespace")
        };
        eprintln!("No resources found{scope}.");
        return Ok(String::new());
    }
    let mut header = Vec::new();
    if a.all_namespaces {
        header.push("NAMESPACE".to_string());
    }
    header.push("POD".into());
    if a.containers {
        header.push("NAME".into());
    } else {
        header[if a.all_namespaces { 1 } else { 0 }] = "NAME".into();
    }
    header.extend(["CPU(cores)".to_string(), "MEMORY(bytes)".to_string()]);
    let mut rows = vec![header];
    for item in &items {
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = item["metadata"]["namespace"].as_str().unwrap_or_default();
        let containers = item["containers"].as_array().cloned().unwrap_or_default();
        let prefix = |row: &mut Vec<String>| {
            if a.all_namespaces {
                row.push(namespace.to_string());
            }
            row.push(name.to_string());
        };
        if a.containers {
            for c in &containers {
                let mut row = Vec::new();
                prefix(&mut row);
                row.push(c["name"].as_str().unwrap_or_default().to_string());
                row.push(cpu_cell(c["usage"]["cpu"].as_str().unwrap_or("0")));
                row.push(memory_cell(c["usage"]["memory"].as_str().unwrap_or("0")));
                rows.push(row);
            }
        } else {
            let cpu: u64 = containers
                .iter()
                .map(|c| millicores(c["usage"]["cpu"].as_str().unwrap_or("0")))
                .sum();
            let mem: u64 = containers
                .iter()
                .map(|c| bytes(c["usage"]["memory"].as_str().unwrap_or("0")))
                .sum();
            let mut row = Vec::new();
            prefix(&mut row);
            row.push(format!("{cpu}m"));
            row.push(format!("{}Mi", mem / (1024 * 1024)));
            rows.push(row);
        }
    }
    Ok(table(rows))
}

async fn nodes(a: TopNodesArgs, cluster: &Cluster) -> Result<String, Error> {
    let base = "/apis/metrics.k8s.io/v1beta1/nodes";
    let items = match &a.name {
        Some(name) => vec![get(cluster, &format!("{base}/{name}")).await?],
        None => get(cluster, base).await?["items"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    let nodes = get(cluster, "/api/v1/nodes").await?;
    let allocatable = |name: &str| {
        nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["metadata"]["name"] == name)
            .map(|n| n["status"]["allocatable"].clone())
            .unwrap_or(Value::Null)
    };
    let mut rows = vec![
        ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
            .map(String::from)
            .to_vec(),
    ];
    for item in &items {
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        let cpu = millicores(item["usage"]["cpu"].as_str().unwrap_or("0"));
        let mem = bytes(item["usage"]["memory"].as_str().unwrap_or("0"));
        let alloc = allocatable(name);
        let percent = |used: u64, total: u64| {
            (used * 100)
                .checked_div(total)
                .map_or_else(|| "<unknown>".to_string(), |p| format!("{p}%"))
        };
        rows.push(vec![
            name.to_string(),
            format!("{cpu}m"),
            percent(cpu, millicores(alloc["cpu"].as_str().unwrap_or("0"))),
            format!("{}Mi", mem / (1024 * 1024)),
            percent(mem, bytes(alloc["memory"].as_str().unwrap_or("0"))),
        ]);
    }
    Ok(table(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_print_as_kubectl_top_prints_them() {
        assert_eq!(cpu_cell("299854231n"), "299m");
        assert_eq!(cpu_cell("250m"), "250m");
        assert_eq!(cpu_cell("2"), "2000m");
        assert_eq!(memory_cell("65536Ki"), "64Mi");
        assert_eq!(bytes("1Gi"), 1 << 30);
        assert_eq!(encode("app in (a,b)"), "app%20in%20%28a%2Cb%29");
        let t = table(vec![
            vec!["NAME".into(), "CPU(cores)".into()],
            vec!["web-1".into(), "5m".into()],
        ]);
        assert_eq!(t, "NAME    CPU(cores)\nweb-1   5m\n");
    }
}
