//! `wasmkube/toolbox`: the busybox of wasmkube, one component with many applets.
//!
//! It dispatches on the basename of `argv[0]` (`sh`, `/bin/ls`, ...), or on its first
//! argument when called as `toolbox` (`toolbox wget -qO- http://web`). `toolbox --list`
//! prints the applet names one per line, and the `wasmkube:commands` custom section
//! ([`COMMANDS`]) declares them to the node agent, so `kubectl exec POD -- ls` finds `ls`
//! here (D11). On a terminal (`kubectl exec -it POD -- sh`) `sh` is interactive and Ctrl-C
//! ends the running command with status 130 (`tty.rs`). Applets run in-process as
//! functions, so the `sh` applet runs pipelines, `$(...)` and the other applets without
//! processes (WASI has none). Applets: `sh echo cat ls mkdir rm cp mv touch head tail wc grep
//! env hostname sleep date true false test [ wget nc nslookup tar ab`. Exit statuses follow
//! busybox (127 for an unknown command), and reach the host exactly through
//! `wasi:cli/exit.exit-with-code`.
//!
//! ```yaml
//! apiVersion: v1
//! kind: Pod
//! metadata:
//!   name: toolbox
//! spec:
//!   containers:
//!   - name: toolbox
//!     image: wasmkube/toolbox
//!     command: ["sh", "-c"]
//!     args:
//!     - |
//!       while true; do
//!         wget -qO- http://web/ | grep -c wasmkube
//!         sleep 5
//!       done
//! ```

mod applets;
mod io;
mod sh;
mod tty;

use guest::exit;
use std::io::Write;

/// The name the binary answers to when not called through an applet name.
const SELF: &str = "toolbox";

guest::commands!(
    /// The commands this image provides, for `kubectl exec`: the node agent reads this custom
    /// section (names separated by `\n`) from the component. `toolbox` and every applet, kept
    /// equal to [`applets::APPLETS`] by a test.
    COMMANDS = b"toolbox\n[\nab\ncat\ncp\ndate\necho\nenv\nfalse\ngrep\nhead\nhostname\n\
    ls\nmkdir\nmv\nnc\nnslookup\nrm\nsh\nsleep\ntail\ntar\ntest\ntouch\ntrue\nwc\nwget"
);

fn basename(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// Runs the applet named by `args[0]` (or by `args[1]` after `toolbox`).
fn dispatch(io: &mut io::Io, args: &[String]) -> i32 {
    let name = basename(args.first().map_or(SELF, String::as_str));
    if let Some(applet) = applets::lookup(name) {
        let mut argv = args.to_vec();
        argv[0] = name.to_string();
        return applet(io, &argv);
    }
    if name != SELF && !name.starts_with(SELF) {
        io.error(SELF, format!("applet not found: {name}"));
        return 127;
    }
    match args.get(1).map(String::as_str) {
        Some("--list" | "-l") => {
            for (name, _) in applets::APPLETS {
                let _ = writeln!(io.stdout, "{name}");
            }
            0
        }
        None | Some("--help" | "-h") => {
            let names: Vec<&str> = applets::APPLETS.iter().map(|(n, _)| *n).collect();
            let _ = writeln!(
                io.stdout,
                "wasmkube toolbox: multi-call binary.\nUsage: toolbox [APPLET [ARGS]...] | --list\n\
                 Currently defined applets:\n\t{}",
                names.join(", ")
            );
            0
        }
        Some(_) => dispatch(io, &args[1..]),
    }
}

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut io = io::Io::process();
    let code = dispatch(&mut io, &args);
    // Ctrl-C ended the applet even if it reported something else (a `grep` that met it
    // saw its input end).
    let code = if io.interrupted() {
        tty::INTERRUPTED
    } else {
        code
    };
    let _ = io.stdout.flush();
    exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> (i32, String, String) {
        let (mut io, out, err) = io::Io::test(b"", &[]);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let code = dispatch(&mut io, &args);
        let s = |b: &crate::io::Captured| String::from_utf8(b.borrow().clone()).unwrap();
        (code, s(&out), s(&err))
    }

    #[test]
    fn dispatches_on_basename_and_on_first_argument() {
        assert_eq!(run(&["/bin/echo", "hi"]), (0, "hi\n".into(), String::new()));
        assert_eq!(run(&["toolbox", "echo", "hi"]).1, "hi\n");
        assert_eq!(run(&["/usr/bin/toolbox", "false"]).0, 1);
    }

    #[test]
    fn lists_applets_one_per_line() {
        let (code, out, _) = run(&["toolbox", "--list"]);
        assert_eq!(code, 0);
        assert!(out.lines().any(|l| l == "sh") && out.lines().any(|l| l == "["));
        assert_eq!(out.lines().count(), applets::APPLETS.len());
    }

    #[test]
    fn the_commands_section_lists_toolbox_and_every_applet() {
        let names: Vec<&str> = applets::APPLETS.iter().map(|(n, _)| *n).collect();
        let want = format!("{SELF}\n{}", names.join("\n"));
        assert_eq!(std::str::from_utf8(&COMMANDS).unwrap(), want);
    }

    #[test]
    fn unknown_applet_is_127() {
        let (code, _, err) = run(&["frobnicate"]);
        assert_eq!(code, 127);
        assert!(err.contains("applet not found"));
        assert_eq!(run(&["toolbox", "frobnicate"]).0, 127);
    }
}
