//! Running the command tree: lists, conditions, loops, buffered pipelines, redirections and
//! simple commands (builtins first, then applets, else `sh: X: not found` and 127).

use super::ast::{Node, Redir, Word};
use super::{Flow, Shell, builtins};
use crate::applets;
use crate::io::{Input, Io, Output, describe, open_input, open_output};
use crate::tty::INTERRUPTED;
use std::io::Write;
use std::rc::Rc;

impl Shell {
    /// Runs a node and records its status as `$?`.
    pub fn exec(&mut self, node: &Node, io: &Io) -> i32 {
        let status = match node {
            Node::Simple {
                assigns,
                words,
                redirs,
            } => self.simple(assigns, words, redirs, io),
            Node::List(items) => {
                let mut status = self.status;
                for item in items {
                    status = self.exec(item, io);
                    if self.flow != Flow::Normal {
                        break;
                    }
                    let checked =
                        !matches!(item, Node::AndOr(..) | Node::Pipeline { negate: true, .. });
                    if self.errexit && status != 0 && checked && self.in_condition == 0 {
                        self.flow = Flow::Exit(status);
                        break;
                    }
                }
                status
            }
            Node::AndOr(first, rest) => {
                self.in_condition += 1;
                let mut status = self.exec(first, io);
                for (i, (and, next)) in rest.iter().enumerate() {
                    if self.flow != Flow::Normal {
                        break;
                    }
                    if (status == 0) == *and {
                        let last = i + 1 == rest.len();
                        if last {
                            self.in_condition -= 1;
                        }
                        status = self.exec(next, io);
                        if last {
                            self.in_condition += 1;
                        }
                    }
                }
                self.in_condition -= 1;
                status
            }
            Node::Pipeline { negate, cmds } => {
                let status = if cmds.len() == 1 {
                    self.in_condition += u32::from(*negate);
                    let s = self.exec(&cmds[0], io);
                    self.in_condition -= u32::from(*negate);
                    s
                } else {
                    self.pipeline(cmds, io)
                };
                if *negate {
                    i32::from(status == 0)
                } else {
                    status
                }
            }
            Node::If {
                branches,
                otherwise,
            } => {
                let mut status = 0;
                let mut taken = false;
                for (cond, body) in branches {
                    if self.condition(cond, io) == 0 {
                        status = self.exec(body, io);
                        taken = true;
                        break;
                    }
                    if self.flow != Flow::Normal {
                        return self.status;
                    }
                }
                if !taken && let Some(body) = otherwise {
                    status = self.exec(body, io);
                }
                status
            }
            Node::Loop { until, cond, body } => {
                let mut status = 0;
                self.loops += 1;
                loop {
                    let c = self.condition(cond, io);
                    if self.flow != Flow::Normal || (c == 0) == *until {
                        break;
                    }
                    status = self.exec(body, io);
                    if self.loop_control() {
                        break;
                    }
                }
                self.loops -= 1;
                status
            }
            Node::For { var, items, body } => {
                let values = match items {
                    Some(words) => match self.expand_words(words, io) {
                        Ok(v) => v,
                        Err(e) => return self.fail(io, &e),
                    },
                    None => self.params.get(1..).unwrap_or_default().to_vec(),
                };
                let mut status = 0;
                self.loops += 1;
                for v in values {
                    self.set_var(var, v);
                    status = self.exec(body, io);
                    if self.loop_control() {
                        break;
                    }
                }
                self.loops -= 1;
                status
            }
            Node::Group {
                body,
                subshell: false,
            } => self.exec(body, io),
            Node::Group {
                body,
                subshell: true,
            } => {
                let mut child = self.clone();
                let status = child.exec(body, io);
                child.finish(status)
            }
            Node::Redirected(inner, redirs) => match self.redirect(redirs, io) {
                Ok(io) => self.exec(inner, &io),
                Err(e) => self.fail(io, &e),
            },
        };
        // Ctrl-C ended a command (tty.rs): like SIGINT, it ends the whole command line, loops
        // and subshells included; an interactive shell then prompts again.
        if io.interrupted() {
            self.flow = Flow::Exit(INTERRUPTED);
            self.status = INTERRUPTED;
            return INTERRUPTED;
        }
        self.status = status;
        status
    }

    fn condition(&mut self, cond: &Node, io: &Io) -> i32 {
        self.in_condition += 1;
        let status = self.exec(cond, io);
        self.in_condition -= 1;
        status
    }

    /// Consumes a pending `break`/`continue`; true when the loop must stop.
    fn loop_control(&mut self) -> bool {
        match self.flow {
            Flow::Normal => false,
            Flow::Break(n) => {
                self.flow = if n > 1 {
                    Flow::Break(n - 1)
                } else {
                    Flow::Normal
                };
                true
            }
            Flow::Continue(n) if n > 1 => {
                self.flow = Flow::Continue(n - 1);
                true
            }
            Flow::Continue(_) => {
                self.flow = Flow::Normal;
                false
            }
            Flow::Exit(_) => true,
        }
    }

    fn fail(&mut self, io: &Io, message: &str) -> i32 {
        let _ = writeln!(io.stderr.clone(), "sh: {message}");
        1
    }

    /// Runs `a | b | c`: each element in a subshell, each output buffered into the next input.
    fn pipeline(&mut self, cmds: &[Node], io: &Io) -> i32 {
        let mut input = io.stdin.clone();
        let mut status = 0;
        for (i, cmd) in cmds.iter().enumerate() {
            let mut child = self.clone();
            child.in_condition = 0;
            if i + 1 == cmds.len() {
                status = child.exec(
                    cmd,
                    &Io {
                        stdin: input.clone(),
                        ..io.clone()
                    },
                );
            } else {
                let (stdout, buf) = Output::capture();
                child.exec(
                    cmd,
                    &Io {
                        stdin: input.clone(),
                        stdout,
                        ..io.clone()
                    },
                );
                input = Input::from_bytes(std::mem::take(&mut *buf.borrow_mut()));
            }
        }
        status
    }

    /// Applies redirections to a copy of `io`.
    pub(super) fn redirect(&mut self, redirs: &[Redir], io: &Io) -> Result<Io, String> {
        let mut io = io.clone();
        for r in redirs {
            let target = self.expand_string(&r.target, &io)?;
            let out = match r.op {
                ">" | ">|" | ">>" => Some(
                    open_output(&io, &target, r.op == ">>")
                        .map_err(|e| format!("can't create {target}: {}", describe(&e)))?,
                ),
                ">&" => match target.as_str() {
                    "1" => Some(io.stdout.clone()),
                    "2" => Some(io.stderr.clone()),
                    "-" => Some(Output::sink()),
                    _ => return Err(format!("{target}: bad file descriptor")),
                },
                "<" => {
                    let input = open_input(&io, &target)
                        .map_err(|e| format!("can't open {target}: {}", describe(&e)))?;
                    if r.fd == 0 {
                        io.stdin = input;
                    }
                    None
                }
                _ => {
                    if target == "-" && r.fd == 0 {
                        io.stdin = Input::empty();
                    }
                    None
                }
            };
            match (r.fd, out) {
                (1, Some(o)) => io.stdout = o,
                (2, Some(o)) => io.stderr = o,
                _ => {}
            }
        }
        Ok(io)
    }

    fn simple(
        &mut self,
        assigns: &[(String, Word)],
        words: &[Word],
        redirs: &[Redir],
        io: &Io,
    ) -> i32 {
        self.subst_status = None;
        let argv = match self.expand_words(words, io) {
            Ok(a) => a,
            Err(e) => return self.fail(io, &e),
        };
        let mut values = Vec::new();
        for (name, w) in assigns {
            match self.expand_string(w, io) {
                Ok(v) => values.push((name.clone(), v)),
                Err(e) => return self.fail(io, &e),
            }
        }
        let io = match self.redirect(redirs, io) {
            Ok(io) => io,
            Err(e) => return self.fail(io, &e),
        };
        if self.xtrace {
            let shown: Vec<String> = values
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .chain(argv.iter().cloned())
                .collect();
            let _ = writeln!(io.stderr.clone(), "+ {}", shown.join(" "));
        }
        if argv.is_empty() {
            for (k, v) in values {
                self.set_var(&k, v);
            }
            return self.subst_status.unwrap_or(0);
        }
        self.run_command(&argv, values, &io)
    }

    /// Runs a builtin or an applet with `argv`; `assigns` go to the applet's environment only.
    pub(super) fn run_command(
        &mut self,
        argv: &[String],
        assigns: Vec<(String, String)>,
        io: &Io,
    ) -> i32 {
        // A `$(...)` in the arguments was interrupted: run nothing more.
        if io.interrupted() {
            return INTERRUPTED;
        }
        let name = argv[0].as_str();
        if let Some(builtin) = builtins::lookup(name) {
            for (k, v) in assigns {
                self.set_var(&k, v);
            }
            let mut io = io.clone();
            return builtin(self, &mut io, argv);
        }
        let applet_name = name.rsplit('/').next().unwrap_or(name);
        let Some(applet) = applets::lookup(applet_name) else {
            let _ = writeln!(io.stderr.clone(), "sh: {name}: not found");
            return 127;
        };
        let mut env = self.environment();
        for (k, v) in assigns {
            env.retain(|(name, _)| *name != k);
            env.push((k, v));
        }
        let mut child = Io {
            env: Rc::new(env),
            ..io.clone()
        };
        let mut args = argv.to_vec();
        args[0] = applet_name.to_string();
        let status = applet(&mut child, &args);
        let _ = child.stdout.flush();
        status
    }
}
