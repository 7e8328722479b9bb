//! `sh`: a small POSIX-style shell that runs the toolbox applets in-process.
//!
//! Start with [`main`] (the applet: `sh -c STRING`, `sh FILE`, or a script on stdin read line
//! by line, each complete command run as soon as it has arrived; on a terminal, the prompt
//! loop of `interactive.rs`). Source becomes tokens in
//! `lex.rs` and `dollar.rs`, a tree (`ast.rs`) in `parse.rs`; `exec.rs` runs the tree,
//! `expand.rs` turns words into arguments (with `arith.rs` for `$((...))`) and `builtins.rs`
//! holds `cd`, `export`, `read` and the rest. Without processes, pipelines are buffered: the
//! left side runs to completion into memory, then feeds the right side (so `yes | head` never
//! ends); every pipeline element and `( )`/`$(...)` runs on a copy of the shell state, so
//! subshell semantics hold. Not supported: here-documents, `case`, functions, job control,
//! background jobs (`&` runs in the foreground).

mod arith;
mod ast;
mod builtins;
mod dollar;
mod exec;
mod expand;
mod interactive;
mod lex;
mod parse;

use crate::io::{Io, describe};
use lex::SyntaxError;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;

/// What the last command asked the enclosing constructs to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Flow {
    /// Carry on.
    Normal,
    /// `break N`.
    Break(u32),
    /// `continue N`.
    Continue(u32),
    /// `exit N` (or `set -e` tripping).
    Exit(i32),
}

/// The shell's state: variables, positional parameters, last status, options.
#[derive(Clone)]
pub struct Shell {
    vars: HashMap<String, String>,
    exported: BTreeSet<String>,
    /// `$0`, `$1`, ...
    params: Vec<String>,
    status: i32,
    /// The status of the last `$(...)` in the current simple command.
    subst_status: Option<i32>,
    flow: Flow,
    errexit: bool,
    xtrace: bool,
    /// Nesting depth of conditions (`if`/`while` tests, `&&`/`||` left sides): `set -e` ignores them.
    in_condition: u32,
    loops: u32,
}

impl Shell {
    /// A shell whose variables start as the (exported) environment.
    pub fn new(env: &[(String, String)], params: Vec<String>) -> Shell {
        Shell {
            vars: env.iter().cloned().collect(),
            exported: env.iter().map(|(k, _)| k.clone()).collect(),
            params,
            status: 0,
            subst_status: None,
            flow: Flow::Normal,
            errexit: false,
            xtrace: false,
            in_condition: 0,
            loops: 0,
        }
    }

    /// The environment exported to applets.
    fn environment(&self) -> Vec<(String, String)> {
        self.exported
            .iter()
            .filter_map(|k| self.vars.get(k).map(|v| (k.clone(), v.clone())))
            .collect()
    }

    fn set_var(&mut self, name: &str, value: String) {
        self.vars.insert(name.to_string(), value);
    }

    /// Parses and runs a complete script; returns its status (or the `exit` code).
    pub fn run_source(&mut self, src: &str, io: &Io) -> i32 {
        match parse::parse(src) {
            Ok(tree) => {
                let status = self.exec(&tree, io);
                self.finish(status)
            }
            Err(e) => {
                let msg = match e {
                    SyntaxError::Incomplete => "unexpected end of file".to_string(),
                    SyntaxError::Invalid(m) => m,
                };
                let _ = writeln!(io.stderr.clone(), "sh: syntax error: {msg}");
                self.status = 2;
                2
            }
        }
    }

    fn finish(&mut self, status: i32) -> i32 {
        match self.flow {
            Flow::Exit(code) => code,
            _ => status,
        }
    }

    /// Reads commands from stdin a line at a time and runs each as soon as it is complete.
    pub fn run_stream(&mut self, io: &Io) -> i32 {
        let mut pending = String::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let eof = matches!(io.stdin.read_line_bytes(&mut line), Ok(0) | Err(_));
            pending.push_str(&String::from_utf8_lossy(&line));
            if pending.trim().is_empty() {
                pending.clear();
                if eof {
                    return self.status;
                }
                continue;
            }
            match parse::parse(&pending) {
                Err(SyntaxError::Incomplete) if !eof => continue,
                // A syntax error ends a non-interactive shell (run_source reports it).
                Err(_) => return self.run_source(&std::mem::take(&mut pending), io),
                Ok(tree) => {
                    pending.clear();
                    let status = self.exec(&tree, io);
                    if self.flow != Flow::Normal || eof {
                        return self.finish(status);
                    }
                }
            }
        }
    }
}

/// The `sh` applet: `sh [-ex] [-c STRING [NAME [ARG]...] | FILE [ARG]...]`.
pub fn main(io: &mut Io, args: &[String]) -> i32 {
    let (mut command, mut errexit, mut xtrace) = (None, false, false);
    let mut i = 1;
    while let Some(a) = args.get(i) {
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a.len() < 2 {
            break;
        }
        for c in a[1..].chars() {
            match c {
                'c' => command = Some(()),
                'e' => errexit = true,
                'x' => xtrace = true,
                // Interactive, login and "read from stdin" flags change nothing here.
                'i' | 'l' | 's' | 'u' => {}
                other => {
                    io.error("sh", format!("illegal option -{other}"));
                    return 2;
                }
            }
        }
        i += 1;
    }
    let rest = &args[i..];
    let (source, params) = match (command, rest.split_first()) {
        (Some(()), None) => {
            io.error("sh", "-c requires an argument");
            return 2;
        }
        (Some(()), Some((src, names))) => {
            let mut params = names.to_vec();
            if params.is_empty() {
                params.push("sh".into());
            }
            (Some(src.clone()), params)
        }
        (None, Some((file, _))) => match std::fs::read_to_string(file) {
            Ok(src) => (Some(src), rest.to_vec()),
            Err(e) => {
                io.error("sh", format!("can't open '{file}': {}", describe(&e)));
                return 127;
            }
        },
        (None, None) => (None, vec!["sh".to_string()]),
    };
    let mut shell = Shell::new(&io.env, params);
    shell.errexit = errexit;
    shell.xtrace = xtrace;
    let status = match (source, io.terminal_stdin().cloned()) {
        (Some(src), _) => shell.run_source(&src, io),
        (None, Some(tty)) => shell.run_interactive(io, &tty),
        (None, None) => shell.run_stream(io),
    };
    let _ = io.stdout.flush();
    status
}

#[cfg(test)]
#[path = "sh_tests.rs"]
mod tests;
