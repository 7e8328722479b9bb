//! Builtins: the commands that must change the shell itself (`cd`, `export`, `exit`, `read`,
//! `set`, `break`, ...), plus `eval`, `exec`, `.`, `command` and harmless no-ops.

use super::{Flow, Shell};
use crate::applets;
use crate::io::{Io, describe};
use std::io::Write;

/// A builtin's entry point.
pub type Builtin = fn(&mut Shell, &mut Io, &[String]) -> i32;

/// Finds a builtin by name.
pub fn lookup(name: &str) -> Option<Builtin> {
    let builtin: Builtin = match name {
        ":" | "wait" | "trap" | "umask" | "ulimit" | "alias" | "hash" => |_, _, _| 0,
        "cd" => cd,
        "pwd" => pwd,
        "export" | "readonly" => export,
        "unset" => unset,
        "exit" => exit,
        "set" => set,
        "shift" => shift,
        "read" => read,
        "break" | "continue" => loop_jump,
        "eval" => eval,
        "exec" => exec,
        "." | "source" => source,
        "command" | "type" => command,
        _ => return None,
    };
    Some(builtin)
}

fn err(io: &mut Io, message: String) {
    let _ = writeln!(io.stderr, "sh: {message}");
}

fn cd(sh: &mut Shell, io: &mut Io, args: &[String]) -> i32 {
    let target = match args.get(1).map(String::as_str) {
        None => sh.vars.get("HOME").cloned().unwrap_or_else(|| "/".into()),
        Some("-") => sh.vars.get("OLDPWD").cloned().unwrap_or_else(|| ".".into()),
        Some(d) => d.to_string(),
    };
    let old = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match std::env::set_current_dir(&target) {
        Ok(()) => {
            let new = std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or(target);
            sh.set_var("OLDPWD", old);
            sh.set_var("PWD", new);
            0
        }
        Err(e) => {
            err(io, format!("cd: can't cd to {target}: {}", describe(&e)));
            2
        }
    }
}

fn pwd(sh: &mut Shell, io: &mut Io, _: &[String]) -> i32 {
    let dir = std::env::current_dir()
        .map(|p| p.display().to_string())
        .ok()
        .or_else(|| sh.vars.get("PWD").cloned());
    let _ = writeln!(io.stdout, "{}", dir.unwrap_or_else(|| "/".into()));
    0
}

fn export(sh: &mut Shell, io: &mut Io, args: &[String]) -> i32 {
    let names: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    if names.is_empty() {
        for k in &sh.exported {
            if let Some(v) = sh.vars.get(k) {
                let _ = writeln!(io.stdout, "export {k}='{}'", v.replace('\'', "'\\''"));
            }
        }
        return 0;
    }
    for a in names {
        let name = match a.split_once('=') {
            Some((k, v)) => {
                sh.set_var(k, v.to_string());
                k
            }
            None => a.as_str(),
        };
        sh.exported.insert(name.to_string());
    }
    0
}

fn unset(sh: &mut Shell, _: &mut Io, args: &[String]) -> i32 {
    for name in args[1..].iter().filter(|a| !a.starts_with('-')) {
        sh.vars.remove(name);
        sh.exported.remove(name);
    }
    0
}

fn exit(sh: &mut Shell, io: &mut Io, args: &[String]) -> i32 {
    let code = match args.get(1) {
        None => sh.status,
        Some(n) => match n.parse::<i64>() {
            Ok(n) => (n & 0xff) as i32,
            Err(_) => {
                err(io, format!("exit: Illegal number: {n}"));
                2
            }
        },
    };
    sh.flow = Flow::Exit(code);
    code
}

fn set(sh: &mut Shell, io: &mut Io, args: &[String]) -> i32 {
    if args.len() == 1 {
        let mut vars: Vec<_> = sh.vars.iter().collect();
        vars.sort();
        for (k, v) in vars {
            let _ = writeln!(io.stdout, "{k}='{}'", v.replace('\'', "'\\''"));
        }
        return 0;
    }
    let mut i = 1;
    while let Some(a) = args.get(i) {
        if a == "--" {
            i += 1;
            let mut params = vec![sh.params.first().cloned().unwrap_or_else(|| "sh".into())];
            params.extend(args[i..].iter().cloned());
            sh.params = params;
            return 0;
        }
        let (on, flags) = match a.chars().next() {
            Some('-') => (true, &a[1..]),
            Some('+') => (false, &a[1..]),
            _ => break,
        };
        for c in flags.chars() {
            match c {
                'e' => sh.errexit = on,
                'x' => sh.xtrace = on,
                // `-o pipefail`, `-u` and friends are accepted and ignored.
                'o' => i += 1,
                _ => {}
            }
        }
        i += 1;
    }
    if i < args.len() {
        let mut params = vec![sh.params.first().cloned().unwrap_or_else(|| "sh".into())];
        params.extend(args[i..].iter().cloned());
        sh.params = params;
    }
    0
}

fn shift(sh: &mut Shell, io: &mut Io, args: &[String]) -> i32 {
    let n = args
        .get(1)
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1);
    if n + 1 > sh.params.len() {
        err(io, "shift: can't shift that many".into());
        return 1;
    }
    sh.params.drain(1..=n);
    0
}

/// `read [-r] [NAME]...`: splits one line of stdin on IFS into the names (the last takes the rest).
fn read(sh: &mut Shell, io: &mut Io, args: &[String]) -> i32 {
    let raw = args.iter().any(|a| a == "-r");
    let mut names: Vec<&str> = args[1..]
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    if names.is_empty() {
        names.push("REPLY");
    }
    let mut buf = Vec::new();
    let eof = matches!(io.stdin.read_line_bytes(&mut buf), Ok(0) | Err(_));
    let mut line = String::from_utf8_lossy(&buf).into_owned();
    if line.ends_with('\n') {
        line.pop();
    }
    if !raw {
        line = line
            .replace("\\\\", "\u{0}")
            .replace('\\', "")
            .replace('\u{0}', "\\");
    }
    let ifs = sh
        .vars
        .get("IFS")
        .cloned()
        .unwrap_or_else(|| " \t\n".into());
    let mut rest = line
        .trim_matches(|c: char| ifs.contains(c) && c.is_whitespace())
        .to_string();
    for (i, name) in names.iter().enumerate() {
        if i + 1 == names.len() {
            sh.set_var(name, rest.clone());
            break;
        }
        let (word, tail) = match rest.find(|c| ifs.contains(c)) {
            Some(p) => (
                rest[..p].to_string(),
                rest[p..]
                    .trim_start_matches(|c| ifs.contains(c))
                    .to_string(),
            ),
            None => (rest.clone(), String::new()),
        };
        sh.set_var(name, word);
        rest = tail;
    }
    i32::from(eof && buf.is_empty())
}

fn loop_jump(sh: &mut Shell, _: &mut Io, args: &[String]) -> i32 {
    if sh.loops == 0 {
        return 0;
    }
    let n = args
        .get(1)
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1)
        .clamp(1, sh.loops);
    sh.flow = if args[0] == "break" {
        Flow::Break(n)
    } else {
        Flow::Continue(n)
    };
    0
}

fn eval(sh: &mut Shell, io: &mut Io, args: &[String]) -> i32 {
    let src = args[1..].join(" ");
    match super::parse::parse(&src) {
        Ok(tree) => sh.exec(&tree, io),
        Err(_) => sh.run_source(&src, io),
    }
}

fn exec(sh: &mut Shell, io: &mut Io, args: &[String]) -> i32 {
    if args.len() < 2 {
        return 0;
    }
    let status = sh.run_command(&args[1..], Vec::new(), io);
    sh.flow = Flow::Exit(status);
    status
}

fn source(sh: &mut Shell, io: &mut Io, args: &[String]) -> i32 {
    let Some(file) = args.get(1) else {
        err(io, ".: filename argument required".into());
        return 2;
    };
    match std::fs::read_to_string(file) {
        Ok(src) => match super::parse::parse(&src) {
            Ok(tree) => sh.exec(&tree, io),
            Err(_) => sh.run_source(&src, io),
        },
        Err(e) => {
            err(io, format!(".: can't open '{file}': {}", describe(&e)));
            2
        }
    }
}

/// `command -v NAME`, `type NAME`, or `command NAME ARGS` (runs it).
fn command(sh: &mut Shell, io: &mut Io, args: &[String]) -> i32 {
    let describe_only = args[0] == "type" || args.get(1).is_some_and(|a| a == "-v" || a == "-V");
    if !describe_only {
        return if args.len() > 1 {
            sh.run_command(&args[1..], Vec::new(), io)
        } else {
            0
        };
    }
    let mut status = 0;
    for name in args[1..].iter().filter(|a| !a.starts_with('-')) {
        let base = name.rsplit('/').next().unwrap_or(name);
        let line = if lookup(name).is_some() {
            if args[0] == "type" {
                format!("{name} is a shell builtin")
            } else {
                name.clone()
            }
        } else if applets::lookup(base).is_some() {
            if args[0] == "type" {
                format!("{name} is /bin/{base}")
            } else {
                format!("/bin/{base}")
            }
        } else {
            status = 1;
            if args[0] == "type" {
                format!("{name}: not found")
            } else {
                continue;
            }
        };
        let _ = writeln!(io.stdout, "{line}");
    }
    status
}
