//! `wasmkube/stress`: burns CPU and holds memory on demand, for resource tests
//! (`requests.cpu` weights, `limits.cpu` throttling, `limits.memory` and OOMKilled).
//!
//! - `--cpu MILLIS` busy-loops MILLIS milliseconds out of every second (e.g. `250` for a
//!   quarter core), `--cpu spin` never sleeps.
//! - `--memory SIZE` allocates SIZE (`64Mi`, `1Gi`, `500M`, `4096`), writes every byte so the
//!   pages are really committed, then holds it.
//! - `--grow-until-oom [--step SIZE]` keeps allocating `--step` (default 1Mi) chunks. Under a
//!   host that traps on a refused `memory.grow` the instance dies at the limit (OOMKilled);
//!   otherwise the refused allocation is reported and the guest aborts (a trap), like any Rust
//!   program out of memory.
//! - `--duration S` exits 0 after S seconds; the default is to run forever.
//!
//! A progress line goes to stdout every `--report S` seconds (default 1).
//!
//! ```yaml
//! apiVersion: v1
//! kind: Pod
//! metadata:
//!   name: spinner
//! spec:
//!   containers:
//!   - name: stress
//!     image: wasmkube/stress
//!     args: ["--cpu", "spin", "--memory", "32Mi"]
//!     resources:
//!       requests: {cpu: 250m}
//!       limits: {cpu: 500m, memory: 64Mi}
//! ```

use guest::exit;
use std::io::Write;
use std::time::{Duration, Instant};

guest::commands!(
    /// The commands this image provides, for `kubectl exec`: the node agent reads this custom
    /// section (names separated by `\n`) from the component.
    COMMANDS = b"stress"
);

/// CPU work to do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cpu {
    /// Do not burn CPU.
    Idle,
    /// Busy this many milliseconds in every second.
    Millis(u32),
    /// Busy all the time.
    Spin,
}

/// The parsed command line.
#[derive(Debug, PartialEq)]
struct Options {
    cpu: Cpu,
    memory: usize,
    grow_until_oom: bool,
    step: usize,
    duration: Option<Duration>,
    report: Duration,
}

/// Parses a Kubernetes-style quantity of bytes: `64Mi`, `1Gi`, `512Ki`, `100M`, `1k`, `4096`.
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().trim_end_matches('B');
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: f64 = match unit {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        _ => return Err(format!("invalid size {s:?} (use e.g. 64Mi, 1Gi, 500M)")),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let bytes = n * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > usize::MAX as f64 {
        return Err(format!("size {s:?} out of range"));
    }
    Ok(bytes as usize)
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("invalid seconds {s:?}"))
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        cpu: Cpu::Idle,
        memory: 0,
        grow_until_oom: false,
        step: 1 << 20,
        duration: None,
        report: Duration::from_secs(1),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag {
            "--cpu" => {
                let v = value()?;
                o.cpu = match v.as_str() {
                    "spin" => Cpu::Spin,
                    n => match n.trim_end_matches('m').parse::<u32>() {
                        Ok(0) => Cpu::Idle,
                        Ok(m) if m >= 1000 => Cpu::Spin,
                        Ok(m) => Cpu::Millis(m),
                        Err(_) => {
                            return Err(format!("--cpu wants MILLIS (0-1000) or spin, got {v:?}"));
                        }
                    },
                };
            }
            "--memory" => o.memory = parse_size(&value()?)?,
            "--step" => o.step = parse_size(&value()?)?.max(1),
            "--grow-until-oom" => o.grow_until_oom = true,
            "--duration" | "--timeout" => o.duration = Some(parse_secs(&value()?)?),
            "--report" => o.report = parse_secs(&value()?)?.max(Duration::from_millis(10)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(o)
}

const USAGE: &str = "usage: stress [--cpu MILLIS|spin] [--memory SIZE] [--grow-until-oom [--step SIZE]] \
                     [--duration S] [--report S]";

/// Allocates `bytes` and writes every byte, or says how much it could not get.
fn allocate(bytes: usize) -> Result<Vec<u8>, String> {
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve_exact(bytes)
        .map_err(|e| format!("allocation of {bytes} bytes failed: {e}"))?;
    // Non-zero so the pages are committed, not merely reserved.
    v.resize(bytes, 0xa5);
    Ok(v)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A unit of CPU work the optimiser cannot remove.
fn burn(state: &mut u64) {
    for _ in 0..10_000 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    std::hint::black_box(*state);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("stress: {e}");
            exit(2)
        }
    };
    let start = Instant::now();
    println!(
        "stress: cpu={:?} memory={:.1}MiB grow-until-oom={} duration={}",
        o.cpu,
        mib(o.memory),
        o.grow_until_oom,
        o.duration.map_or("forever".to_string(), |d| format!(
            "{:.1}s",
            d.as_secs_f64()
        ))
    );

    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut total = 0usize;
    if o.memory > 0 {
        match allocate(o.memory) {
            Ok(v) => {
                total += v.len();
                held.push(v);
                println!("stress: holding {:.1}MiB", mib(total));
            }
            Err(e) => {
                eprintln!("stress: {e}");
                exit(1)
            }
        }
    }
    if o.grow_until_oom {
        loop {
            match allocate(o.step) {
                Ok(v) => {
                    total += v.len();
                    held.push(v);
                    if total % (16 << 20) < o.step {
                        println!("stress: holding {:.1}MiB", mib(total));
                    }
                }
                Err(e) => {
                    println!("stress: {e} after {:.1}MiB, aborting", mib(total));
                    let _ = std::io::stdout().flush();
                    std::process::abort();
                }
            }
        }
    }

    let mut state = 1u64;
    let mut iterations = 0u64;
    let mut next_report = start + o.report;
    loop {
        let now = Instant::now();
        if o.duration.is_some_and(|d| now - start >= d) {
            println!(
                "stress: done after {:.1}s, {iterations} work units",
                (now - start).as_secs_f64()
            );
            exit(0)
        }
        if now >= next_report {
            println!(
                "stress: {:.1}s elapsed, {iterations} work units, {:.1}MiB held",
                (now - start).as_secs_f64(),
                mib(total)
            );
            next_report = now + o.report;
        }
        let until_event = {
            let mut t = next_report - now;
            if let Some(d) = o.duration {
                t = t.min((start + d).saturating_duration_since(now));
            }
            t
        };
        match o.cpu {
            Cpu::Idle => std::thread::sleep(until_event),
            Cpu::Spin => {
                // Check the clock every few milliseconds only.
                for _ in 0..50 {
                    burn(&mut state);
                    iterations += 1;
                }
            }
            Cpu::Millis(m) => {
                // A 100 ms window: busy m/10 ms, then sleep the rest.
                let window = Instant::now();
                let busy = Duration::from_micros(u64::from(m) * 100);
                while window.elapsed() < busy {
                    burn(&mut state);
                    iterations += 1;
                }
                std::thread::sleep(
                    Duration::from_millis(100)
                        .saturating_sub(window.elapsed())
                        .min(until_event),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(parse_size("64Mi").unwrap(), 64 << 20);
        assert_eq!(parse_size("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse_size("512Ki").unwrap(), 512 << 10);
        assert_eq!(parse_size("100M").unwrap(), 100_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1.5Mi").unwrap(), 3 << 19);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert!(parse_size("64Xi").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn parses_cpu_modes() {
        let o = |a: &[&str]| parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(o(&["--cpu", "spin"]).unwrap().cpu, Cpu::Spin);
        assert_eq!(o(&["--cpu", "250"]).unwrap().cpu, Cpu::Millis(250));
        assert_eq!(o(&["--cpu=500m"]).unwrap().cpu, Cpu::Millis(500));
        assert_eq!(o(&["--cpu", "1000"]).unwrap().cpu, Cpu::Spin);
        assert!(o(&["--cpu", "fast"]).is_err());
        let all = o(&["--memory", "8Mi", "--duration", "2.5", "--grow-until-oom"]).unwrap();
        assert_eq!(all.memory, 8 << 20);
        assert_eq!(all.duration, Some(Duration::from_millis(2500)));
        assert!(all.grow_until_oom);
    }

    #[test]
    fn allocation_touches_every_byte() {
        let v = allocate(10_000).unwrap();
        assert!(v.iter().all(|&b| b == 0xa5));
    }
}
