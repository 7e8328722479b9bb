//! Into the pod (ARCHITECTURE D11): `kubectl exec` of toolbox applets and of an image's own
//! command, exit codes, stdin, an interactive `sh` typed into tmux, `kubectl run -it --rm`,
//! `kubectl debug -it`, `kubectl cp` both ways, exec lifecycle hooks, and the three probes in action. All with
//! the real kubectl 1.37.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{Cluster, FAST, OutputExt, eventually, python_path};

#[test]
fn exec_runs_applets_and_own_commands_in_the_pods_world() {
    let Some(cluster) = Cluster::up_with_kubectl("exec::commands", FAST) else {
        return;
    };
    cluster.apply_manifest("exec-web.yaml");
    cluster.wait_running("web");

    // An applet the web image lacks runs from the toolbox, in the pod's sandbox: its
    // localhost is the pod's, its volume the pod's (the postStart exec hook wrote there).
    let out = cluster.kubectl(&["exec", "web", "--", "ls", "/usr/share/nginx/html"]);
    assert!(out.status.success(), "{}", out.describe());
    assert!(out.stdout_text().contains("hook.txt"), "{}", out.describe());
    assert!(
        out.stderr_text().contains(
            "ls is not a command of image wasmkube/web:latest; running it from wasmkube/toolbox"
        ),
        "{}",
        out.describe()
    );
    let page = cluster.kubectl_ok(&[
        "exec",
        "web",
        "--",
        "wget",
        "-qO-",
        "http://localhost/hook.txt",
    ]);
    assert_eq!(page.trim(), "hooked");

    // The image's own command.
    let version = cluster.kubectl(&["exec", "web", "--", "web", "--version"]);
    assert!(version.status.success(), "{}", version.describe());
    assert!(
        version.stdout_text().starts_with("web (wasmkube)"),
        "{}",
        version.describe()
    );
    assert!(version.stderr_text().is_empty(), "{}", version.describe());

    // Exit codes come back as kubectl's own.
    let three = cluster.kubectl(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(three.status_code(), 3, "{}", three.describe());
    assert_eq!(three.stdout_text(), "out\n");
    assert!(three.stderr_text().contains("err"), "{}", three.describe());
    let missing = cluster.kubectl(&["exec", "web", "--", "frobnicate"]);
    assert_eq!(missing.status_code(), 127, "{}", missing.describe());
    assert!(
        missing.stderr_text().contains("executable file not found"),
        "{}",
        missing.describe()
    );

    // stdin piped through -i, ended by kubectl's close signal.
    let piped = cluster.kubectl_stdin(
        &[
            "exec",
            "-i",
            "web",
            "--",
            "sh",
            "-c",
            "cat > /tmp/in; wc -c < /tmp/in; cat /tmp/in",
        ],
        Some(b"piped through\n"),
    );
    assert!(piped.status.success(), "{}", piped.describe());
    assert_eq!(
        piped.stdout_text().split_whitespace().collect::<Vec<_>>(),
        ["14", "piped", "through"]
    );

    // cp into the emptyDir (the server serves it) and back out.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("note.txt");
    std::fs::write(&local, "copied in\n").unwrap();
    cluster.kubectl_ok(&[
        "cp",
        local.to_str().unwrap(),
        "web:/usr/share/nginx/html/note.txt",
    ]);
    let served = cluster.kubectl_ok(&[
        "exec",
        "web",
        "--",
        "wget",
        "-qO-",
        "http://localhost/note.txt",
    ]);
    assert_eq!(served, "copied in\n");
    let back = dir.path().join("back.txt");
    cluster.kubectl_ok(&[
        "cp",
        "web:/usr/share/nginx/html/hook.txt",
        back.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "hooked\n");
    // 3 MiB each way: more than a session holds for a slow client, so the guest's writes
    // wait for kubectl instead of piling up in the node agent.
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    let big_local = dir.path().join("big.bin");
    std::fs::write(&big_local, &big).unwrap();
    cluster.kubectl_ok(&["cp", big_local.to_str().unwrap(), "web:/tmp/big.bin"]);
    let big_back = dir.path().join("big-back.bin");
    cluster.kubectl_ok(&["cp", "web:/tmp/big.bin", big_back.to_str().unwrap()]);
    assert!(
        std::fs::read(&big_back).unwrap() == big,
        "3 MiB came back intact"
    );

    // The Python client speaks v4.channel.k8s.io.
    let python = python_path("exec::commands").expect("python beside kubectl");
    let out = cluster.python_script(&python, "exec.py");
    assert!(
        out.stdout_text().contains("python exec: ok"),
        "tests/python/exec.py: {}",
        out.describe()
    );

    // Tutorial images run as their stand-ins, announced by an Event: busybox is the toolbox,
    // nginx is web, and one reaches the other by pod IP.
    cluster.kubectl_ok(&[
        "run",
        "bb",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sleep",
        "3600",
    ]);
    cluster.kubectl_ok(&["run", "nginx", "--image=nginx:1.27", "--port=80"]);
    cluster.wait_running("bb");
    cluster.wait_running("nginx");
    let ip = cluster.jsonpath(&["pod", "nginx"], "{.status.podIP}");
    let page = cluster.kubectl_ok(&["exec", "bb", "--", "wget", "-qO-", &format!("http://{ip}/")]);
    assert!(
        page.contains("nginx"),
        "the default page names the pod: {page}"
    );
    let describe = cluster.kubectl_ok(&["describe", "pod", "bb"]);
    assert!(
        describe.contains("StandIn")
            && describe
                .contains("Image \"busybox\" runs as its wasmkube stand-in wasmkube/toolbox"),
        "{describe}"
    );

    // Errors are Statuses kubectl prints.
    let err = cluster.kubectl_err(&["exec", "web", "-c", "nope", "--", "ls"]);
    assert!(
        err.contains("container nope is not valid for pod web"),
        "{err}"
    );
    let err = cluster.kubectl_err(&["exec", "ghost", "--", "ls"]);
    assert!(err.contains("pods \"ghost\" not found"), "{err}");
}

#[test]
fn probes_gate_readiness_and_restart_on_liveness_failure() {
    let Some(cluster) = Cluster::up_with_kubectl("exec::probes", FAST) else {
        return;
    };
    cluster.apply_manifest("exec-web.yaml");
    cluster.apply_manifest("liveness.yaml");
    cluster.wait_running("web");
    let ready = "{.status.conditions[?(@.type==\"Ready\")].status}";
    let started = "{.status.containerStatuses[0].started}";
    cluster.wait_for("web", started, "true");
    // Running, started, and not Ready: /ready.txt is missing, the httpGet probe fails.
    assert_eq!(cluster.jsonpath(&["pod", "web"], ready), "False");
    cluster.kubectl_ok(&[
        "exec",
        "web",
        "--",
        "touch",
        "/usr/share/nginx/html/ready.txt",
    ]);
    cluster.wait_for("web", ready, "True");
    cluster.kubectl_ok(&["exec", "web", "--", "rm", "/usr/share/nginx/html/ready.txt"]);
    cluster.wait_for("web", ready, "False");
    let events = cluster.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
    ]);
    assert!(
        events.contains("Unhealthy")
            && events.contains("Readiness probe failed: HTTP probe failed with statuscode: 404"),
        "{events}"
    );

    // The docs' liveness-exec: healthy for 3 s, then restarted, saying why.
    cluster.wait_for(
        "liveness-exec",
        "{.status.containerStatuses[0].restartCount}",
        "1",
    );
    let message = cluster.jsonpath(
        &["pod", "liveness-exec"],
        "{.status.containerStatuses[0].lastState.terminated.message}",
    );
    assert!(
        message.contains("failed liveness probe, will be restarted"),
        "{message}"
    );
    let describe = cluster.kubectl_ok(&["describe", "pod", "liveness-exec"]);
    assert!(
        describe.contains("Liveness probe failed: cat: "),
        "{describe}"
    );
    assert!(
        describe.contains("Container liveness failed liveness probe, will be restarted"),
        "{describe}"
    );
}

/// A tmux session running one command, typed into like a terminal.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` in a detached 120x40 tmux session; when it exits the pane says
    /// `[exited N]`.
    fn start(name: &str, command: &Command) -> Tmux {
        let quote =
            |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
        let mut line = quote(command.get_program());
        for arg in command.get_args() {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        let socket = format!("wasmkube-e2e-{}-{name}", std::process::id());
        let tmux = Tmux { socket };
        let shell = format!("{line}; echo \"[exited $?]\"; sleep 300");
        let out = tmux.tmux(&["new-session", "-d", "-x", "120", "-y", "40", &shell]);
        assert!(out.status.success(), "tmux: {}", out.describe());
        tmux
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        let tmux = tmux_path();
        Command::new(tmux)
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("running tmux")
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        assert!(self.tmux(&["send-keys", "-l", text]).status.success());
    }

    /// Presses keys by name (`Enter`, `C-c`, `C-d`).
    fn press(&self, key: &str) {
        assert!(self.tmux(&["send-keys", key]).status.success());
    }

    /// After kubectl attached to a shell whose first prompt went out before it did: Enter
    /// brings a new one, as kubectl's hint says.
    fn prompt_after_attach(&self) {
        self.wait_for("If you don't see a command prompt", 1);
        self.press("Enter");
        self.wait_for("/ #", 1);
    }

    /// What the terminal shows.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-S", "-100"])
            .stdout_text()
    }

    /// Waits until the screen shows `needle` `times` times; returns the screen.
    fn wait_for(&self, needle: &str, times: usize) -> String {
        eventually(Duration::from_secs(30), || {
            let screen = self.screen();
            if screen.matches(needle).count() >= times {
                Ok(screen)
            } else {
                Err(format!("the terminal lacks {times}x {needle:?}:\n{screen}"))
            }
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// tmux, which `scripts/test.sh` installs.
fn tmux_path() -> &'static Path {
    Path::new("/usr/bin/tmux")
}

#[test]
fn an_interactive_shell_feels_like_a_terminal() {
    let Some(cluster) = Cluster::up_with_kubectl("exec::terminal", FAST) else {
        return;
    };
    if !tmux_path().exists() {
        assert!(
            std::env::var("CI").is_err(),
            "tmux is missing: scripts/test.sh installs it"
        );
        println!("skipping exec::terminal: no tmux");
        return;
    }
    cluster.apply_manifest("exec-web.yaml");
    cluster.wait_running("web");

    let term = Tmux::start(
        "exec",
        &cluster.kubectl_command(&["exec", "-it", "web", "--", "sh"]),
    );
    term.wait_for("/ #", 1);
    // Echo, line editing, output with proper line ends.
    term.type_text("echo hellp");
    term.press("BSpace");
    term.type_text("o-$((40+2))");
    term.press("Enter");
    let screen = term.wait_for("hello-42", 1);
    assert!(
        screen.contains("/ # echo hello-$((40+2))\nhello-42\n/ #"),
        "{screen}"
    );
    term.type_text("ls /usr/share/nginx/html");
    term.press("Enter");
    term.wait_for("hook.txt", 1);
    // Ctrl-C interrupts a sleep and the shell lives on.
    term.type_text("sleep 100");
    term.press("Enter");
    std::thread::sleep(Duration::from_millis(500));
    term.press("C-c");
    term.wait_for("^C", 1);
    term.type_text("echo status $?");
    term.press("Enter");
    term.wait_for("status 130", 1);
    // Ctrl-D ends it; kubectl exits 0.
    term.press("C-d");
    term.wait_for("[exited 0]", 1);

    // `kubectl run -it --rm`: attach to a fresh toolbox pod's shell, which is deleted after.
    let run = cluster.kubectl_command(&[
        "run",
        "-it",
        "--rm",
        "tmp",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sh",
    ]);
    let term = Tmux::start("run", &run);
    term.prompt_after_attach();
    term.type_text("echo from-$HOSTNAME");
    term.press("Enter");
    term.wait_for("from-tmp", 1);
    term.type_text("exit");
    term.press("Enter");
    let screen = term.wait_for("[exited 0]", 1);
    assert!(screen.contains("pod \"tmp\" deleted"), "{screen}");

    // `kubectl debug -it`: an ephemeral toolbox container joins the running web pod and
    // sees its localhost.
    let debug = cluster.kubectl_command(&[
        "debug",
        "-it",
        "web",
        "--image=busybox",
        "--container=debugger",
        "--",
        "sh",
    ]);
    let term = Tmux::start("debug", &debug);
    term.prompt_after_attach();
    term.type_text("wget -qO- http://localhost/hook.txt");
    term.press("Enter");
    term.wait_for("hooked", 1);
    term.type_text("exit 4");
    term.press("Enter");
    term.wait_for("[exited", 1);
    cluster.wait_for(
        "web",
        "{.status.ephemeralContainerStatuses[0].state.terminated.exitCode}",
        "4",
    );
    assert_eq!(cluster.phase("web"), "Running", "the pod runs on");

    // The seed notes' busybox pod (`sleep 3600`), and their `kubectl exec -it dns-test -- sh`.
    cluster.apply_manifest("seed-dns-test.yaml");
    cluster.wait_running("dns-test");
    let term = Tmux::start(
        "seed",
        &cluster.kubectl_command(&["exec", "-it", "dns-test", "--", "sh"]),
    );
    term.wait_for("/ #", 1);
    term.type_text("echo in-$HOSTNAME; ls /var/run/secrets/kubernetes.io/serviceaccount");
    term.press("Enter");
    let screen = term.wait_for("in-dns-test", 1);
    assert!(screen.contains("namespace"), "{screen}");
    term.press("C-d");
    term.wait_for("[exited 0]", 1);

    eventually(Duration::from_secs(30), || {
        let out = cluster.kubectl(&["get", "pod", "tmp"]);
        if out.status.success() {
            Err(out.describe())
        } else {
            Ok(())
        }
    });
}
