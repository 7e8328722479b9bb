//! The interactive shell: `sh` without a script on a terminal (`kubectl exec -it POD -- sh`).
//!
//! Before each command a prompt goes to stderr (`PWD # `, like busybox's root prompt; `> `
//! while the command is incomplete), then one line is read from the terminal. The host's line
//! discipline echoes and edits the line, so the shell never echoes. Reading goes through the
//! terminal's shared buffer (`tty.rs`), so the bytes after the line stay there for the
//! commands it runs (`read`, `cat`). Ctrl-C at the prompt drops the line; Ctrl-C during a
//! command ends the command line with `$?` 130; both come back to a fresh prompt. `exit`
//! or the end of input (Ctrl-D) ends the shell.

use super::lex::SyntaxError;
use super::{Flow, Shell, parse};
use crate::io::Io;
use crate::tty::{INTERRUPTED, Tty};
use std::io::Write;

impl Shell {
    /// Prompts, reads and runs commands from `tty` until `exit` or the end of input.
    pub fn run_interactive(&mut self, io: &Io, tty: &Tty) -> i32 {
        let mut stderr = io.stderr.clone();
        let mut pending = String::new();
        let mut line = Vec::new();
        loop {
            let _ = io.stdout.clone().flush();
            let prompt = if pending.is_empty() {
                format!("{} # ", working_directory())
            } else {
                "> ".to_string()
            };
            let _ = stderr.write_all(prompt.as_bytes());
            let _ = stderr.flush();
            line.clear();
            let n = io.stdin.read_line_bytes(&mut line).unwrap_or(0);
            if tty.take_interrupt() {
                // The host echoed `^C`; move past it and drop the unfinished command.
                pending.clear();
                let _ = stderr.write_all(b"\n");
                continue;
            }
            if n == 0 {
                let _ = stderr.write_all(b"\n");
                if pending.trim().is_empty() {
                    return self.status;
                }
                // An unfinished command at the end of input: report it as a script would.
                return self.run_source(&pending, io);
            }
            pending.push_str(&String::from_utf8_lossy(&line));
            if pending.trim().is_empty() {
                pending.clear();
                continue;
            }
            let tree = match parse::parse(&pending) {
                Err(SyntaxError::Incomplete) => continue,
                Err(SyntaxError::Invalid(message)) => {
                    let _ = writeln!(stderr, "sh: syntax error: {message}");
                    self.status = 2;
                    pending.clear();
                    continue;
                }
                Ok(tree) => tree,
            };
            pending.clear();
            self.exec(&tree, io);
            if tty.take_interrupt() {
                self.flow = Flow::Normal;
                self.status = INTERRUPTED;
                let _ = stderr.write_all(b"\n");
                continue;
            }
            match self.flow {
                Flow::Exit(code) => return code,
                // `break` or `continue` outside a loop.
                _ => self.flow = Flow::Normal,
            }
        }
    }
}

/// The prompt's directory: the working directory (which `cd` changes), else `/`.
fn working_directory() -> String {
    std::env::current_dir().map_or_else(|_| "/".to_string(), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tty::script;

    /// Runs `sh` on a terminal where the user types `chunks`; returns (status, stdout, stderr)
    /// with the prompt's directory shown as `P`.
    fn session(chunks: &[&[u8]]) -> (i32, String, String) {
        let tty = script::tty(chunks);
        let (mut io, out, err) = Io::terminal(&tty, &[]);
        let code = super::super::main(&mut io, &["sh".to_string()]);
        let s = |b: &crate::io::Captured| String::from_utf8(b.borrow().clone()).unwrap();
        let cwd = format!("{} # ", working_directory());
        (code, s(&out), s(&err).replace(&cwd, "P # "))
    }

    #[test]
    fn prompts_runs_lines_drops_ctrl_c_and_continues_incomplete_commands() {
        let (code, out, err) = session(&[
            b"echo hi\n",
            b"ec\x03",
            b"if true\n",
            b"then echo x\n",
            b"fi\n",
        ]);
        assert_eq!(out, "hi\nx\n");
        assert_eq!(err, "P # P # \nP # > > P # \n");
        assert_eq!(code, 0);
    }

    #[test]
    fn ctrl_c_during_a_command_returns_to_the_prompt_with_130() {
        let (code, out, err) = session(&[b"sleep 100; echo no\n", b"\x03", b"echo $?\n"]);
        assert_eq!(out, "130\n");
        assert_eq!(err, "P # \nP # P # \n");
        assert_eq!(code, 0);
        // A loop ends too, not just its current `sleep`.
        let (_, out, _) = session(&[
            b"while true; do sleep 1; done; echo no\n",
            b"\x03",
            b"echo after\n",
        ]);
        assert_eq!(out, "after\n");
    }

    #[test]
    fn exit_and_end_of_input_end_the_shell_with_the_status() {
        assert_eq!(session(&[b"exit 3\n", b"echo no\n"]).0, 3);
        let (code, out, _) = session(&[b"false\n"]);
        assert_eq!((code, out.as_str()), (1, ""));
        let (code, _, err) = session(&[b"echo 'open\n"]);
        assert_eq!(code, 2);
        assert!(
            err.ends_with("> \nsh: syntax error: unexpected end of file\n"),
            "{err}"
        );
    }

    #[test]
    fn commands_read_the_lines_after_their_own() {
        let (_, out, _) = session(&[b"read x\n", b"typed\n", b"echo got $x\n"]);
        assert_eq!(out, "got typed\n");
    }

    #[test]
    fn syntax_errors_are_reported_and_the_shell_goes_on() {
        let (code, out, err) = session(&[b"fi\n", b"echo $?\n"]);
        assert_eq!(out, "2\n");
        assert!(err.contains("sh: syntax error"), "{err}");
        assert_eq!(code, 0);
    }

    #[test]
    fn without_a_terminal_stdin_is_a_script() {
        let (mut io, out, err) = Io::test(b"echo a\necho b\n", &[]);
        assert_eq!(super::super::main(&mut io, &["sh".to_string()]), 0);
        assert_eq!(out.borrow().as_slice(), b"a\nb\n");
        assert!(err.borrow().is_empty());
    }
}
