//! `wasmkube/crash`: a container that dies on purpose, for restart-policy and
//! CrashLoopBackOff tests.
//!
//! It prints a line, sleeps `CRASH_AFTER` seconds (env or first argument, fractions allowed,
//! default 1), then exits with `EXIT_CODE` (env or second argument, default 1) through
//! `wasi:cli/exit.exit-with-code`, so the node agent sees the exact code (Rust std's
//! `process::exit` would report every non-zero code as 1). `--trap` (or `CRASH_MODE=trap`)
//! executes `unreachable` instead, which the agent reports as exit code 134 with the trap text;
//! `--panic` panics (also a trap, with the message on stderr).
//!
//! ```yaml
//! apiVersion: v1
//! kind: Pod
//! metadata:
//!   name: crashy
//! spec:
//!   restartPolicy: Always
//!   containers:
//!   - name: crash
//!     image: wasmkube/crash
//!     env:
//!     - name: CRASH_AFTER
//!       value: "2"
//!     - name: EXIT_CODE
//!       value: "3"
//! ```
//!
//! Flags: `crash [--after SECONDS] [--exit-code N] [--trap | --panic] [SECONDS [CODE]]`.

use guest::exit;
use std::time::Duration;

guest::commands!(
    /// The commands this image provides, for `kubectl exec`: the node agent reads this custom
    /// section (names separated by `\n`) from the component.
    COMMANDS = b"crash"
);

/// How the container ends once the delay is over.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// `exit-with-code` with the configured code.
    Exit,
    /// A wasm `unreachable` trap.
    Trap,
    /// A Rust panic (an abort, which is also a trap on wasm).
    Panic,
}

/// What the command line and environment asked for.
#[derive(Debug, PartialEq)]
struct Plan {
    after: Duration,
    code: i32,
    mode: Mode,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("invalid number of seconds: {s:?}"))
}

fn parse_code(s: &str) -> Result<i32, String> {
    s.trim()
        .parse::<i32>()
        .map_err(|_| format!("invalid exit code: {s:?}"))
}

/// Flags win over positional arguments, which win over the environment.
fn plan(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Plan, String> {
    let mut plan = Plan {
        after: Duration::from_secs(1),
        code: 1,
        mode: Mode::Exit,
    };
    if let Some(v) = env("CRASH_AFTER") {
        plan.after = parse_seconds(&v)?;
    }
    if let Some(v) = env("EXIT_CODE") {
        plan.code = parse_code(&v)?;
    }
    match env("CRASH_MODE").as_deref() {
        Some("trap") => plan.mode = Mode::Trap,
        Some("panic") => plan.mode = Mode::Panic,
        _ => {}
    }
    let mut positional = 0;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--trap" => plan.mode = Mode::Trap,
            "--panic" => plan.mode = Mode::Panic,
            "--after" => plan.after = parse_seconds(&value("--after")?)?,
            "--exit-code" | "--code" => plan.code = parse_code(&value("--exit-code")?)?,
            s if s.starts_with("--") => return Err(format!("unknown flag {s}")),
            s => {
                match positional {
                    0 => plan.after = parse_seconds(s)?,
                    1 => plan.code = parse_code(s)?,
                    _ => return Err(format!("unexpected argument {s:?}")),
                }
                positional += 1;
            }
        }
    }
    Ok(plan)
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = match plan(&args, |k| std::env::var(k).ok()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("crash: {e}");
            exit(2);
        }
    };
    let pod = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into());
    let ending = match plan.mode {
        Mode::Exit => format!("exit with code {}", plan.code),
        Mode::Trap => "trap (unreachable)".to_string(),
        Mode::Panic => "panic".to_string(),
    };
    println!(
        "crash: pod {pod} started, will {ending} in {:.3}s",
        plan.after.as_secs_f64()
    );
    std::thread::sleep(plan.after);
    match plan.mode {
        Mode::Exit => {
            eprintln!("crash: exiting with code {}", plan.code);
            exit(plan.code)
        }
        Mode::Trap => {
            eprintln!("crash: executing unreachable");
            trap()
        }
        Mode::Panic => panic!("crash: panicking as asked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_to_one_second_and_code_one() {
        let p = plan(&[], |_| None).unwrap();
        assert_eq!(
            p,
            Plan {
                after: Duration::from_secs(1),
                code: 1,
                mode: Mode::Exit
            }
        );
    }

    #[test]
    fn env_is_overridden_by_positional_and_flags() {
        let env = |k: &str| match k {
            "CRASH_AFTER" => Some("5".to_string()),
            "EXIT_CODE" => Some("7".to_string()),
            _ => None,
        };
        assert_eq!(plan(&[], env).unwrap().code, 7);
        let p = plan(&args(&["0.25", "42"]), env).unwrap();
        assert_eq!((p.after, p.code), (Duration::from_millis(250), 42));
        let p = plan(&args(&["--exit-code", "0", "--trap"]), env).unwrap();
        assert_eq!((p.code, p.mode), (0, Mode::Trap));
    }

    #[test]
    fn rejects_garbage() {
        assert!(plan(&args(&["soon"]), |_| None).is_err());
        assert!(plan(&args(&["--after"]), |_| None).is_err());
        assert!(plan(&args(&["--explode"]), |_| None).is_err());
    }
}
