//! How a container ended, in Kubernetes terms (ARCHITECTURE D10): `exit-with-code n` /
//! `proc_exit n` -> n; `run` returning an error -> 1; a refused memory grow -> 137
//! `OOMKilled`; the stop token -> 137; any other trap -> 134 with the trap text; failures
//! before the guest starts -> 128 `StartError`.

use wasmtime_wasi::I32Exit;

use super::Error;

/// Exit code of a container stopped by the runtime or out of memory (128 + SIGKILL).
pub const EXIT_KILLED: i32 = 137;
/// Exit code of a container that trapped (128 + SIGABRT).
pub const EXIT_TRAP: i32 = 134;
/// Exit code of a container that could not start (as containerd reports `StartError`).
pub const EXIT_START_ERROR: i32 = 128;
/// Longest termination message kept, as the kubelet does.
const MAX_MESSAGE: usize = 4096;

/// How a container ended, in Kubernetes terms (`state.terminated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The exit code.
    pub code: i32,
    /// `Completed`, `Error`, `OOMKilled` or `StartError`.
    pub reason: String,
    /// Details: the trap text, the limit hit, why it could not start.
    pub message: Option<String>,
}

impl Exit {
    fn code(code: i32) -> Exit {
        let reason = if code == 0 { "Completed" } else { "Error" };
        Exit {
            code,
            reason: reason.into(),
            message: None,
        }
    }

    pub(crate) fn completed() -> Exit {
        Exit::code(0)
    }

    pub(crate) fn failed(code: i32, message: String) -> Exit {
        Exit {
            message: Some(truncate(message)),
            ..Exit::code(code)
        }
    }

    pub(crate) fn killed() -> Exit {
        Exit {
            code: EXIT_KILLED,
            reason: "Error".into(),
            message: Some("stopped by the node agent".into()),
        }
    }

    pub(crate) fn start_error(e: &Error) -> Exit {
        Exit {
            code: EXIT_START_ERROR,
            reason: "StartError".into(),
            message: Some(truncate(e.to_string())),
        }
    }

    /// Whether the container succeeded.
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// Turns the outcome of a run into Kubernetes' terms. `None` means the stop token won.
pub(crate) fn exit_of(
    outcome: Option<wasmtime::Result<Result<(), ()>>>,
    oom: bool,
    limit: u64,
    stopped: bool,
) -> Exit {
    let error = match outcome {
        None => return Exit::killed(),
        Some(Ok(Ok(()))) => return Exit::code(0),
        Some(Ok(Err(()))) => {
            return Exit {
                message: Some("wasi:cli/run returned an error".into()),
                ..Exit::code(1)
            };
        }
        Some(Err(error)) => error,
    };
    if let Some(I32Exit(code)) = error.downcast_ref::<I32Exit>() {
        return Exit::code(*code);
    }
    if oom {
        return Exit {
            code: EXIT_KILLED,
            reason: "OOMKilled".into(),
            message: Some(format!("memory limit of {limit} bytes reached")),
        };
    }
    if stopped {
        return Exit::killed();
    }
    Exit {
        code: EXIT_TRAP,
        reason: "Error".into(),
        message: Some(truncate(trap_message(&error))),
    }
}

/// The trap and the guest's backtrace, without the host-side stack that `{:?}` would add.
fn trap_message(error: &wasmtime::Error) -> String {
    let cause = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    match error.downcast_ref::<wasmtime::WasmBacktrace>() {
        Some(backtrace) => format!("{cause}\n{backtrace}"),
        None => cause,
    }
}

pub(crate) fn truncate(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_kubernetes() {
        assert_eq!(exit_of(Some(Ok(Ok(()))), false, 0, false), Exit::code(0));
        assert_eq!(exit_of(Some(Ok(Err(()))), false, 0, false).code, 1);
        let exit3 = Some(Err(wasmtime::format_err!(I32Exit(3))));
        assert_eq!(
            exit_of(exit3, false, 0, false),
            Exit {
                code: 3,
                reason: "Error".into(),
                message: None
            }
        );
        let trap = || Some(Err(wasmtime::format_err!("wasm trap: unreachable")));
        assert_eq!(exit_of(trap(), false, 0, false).code, EXIT_TRAP);
        assert_eq!(exit_of(trap(), true, 32, false).reason, "OOMKilled");
        assert_eq!(exit_of(trap(), false, 0, true), Exit::killed());
        assert_eq!(exit_of(None, false, 0, true).code, EXIT_KILLED);
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let s = "é".repeat(MAX_MESSAGE);
        let t = truncate(s);
        assert!(t.len() <= MAX_MESSAGE && t.is_char_boundary(t.len()));
    }
}
