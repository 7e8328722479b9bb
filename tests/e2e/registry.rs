//! Bringing your own wasm (issue 5): `wasmkube image import` into the cluster's image store
//! (the API server's `/v2/`), pulls from a real OCI registry (Docker's `registry`, from
//! Debian's `docker-registry`, on loopback with basic auth), `imagePullPolicy`,
//! `imagePullSecrets`, and the kubelet's pull events and errors.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Cluster, FAST, OutputExt, eventually, registry_path};

/// A guest built by `runtime/build.rs` (release, wasm32-wasip2), e.g. `web`.
fn guest(name: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let path = target
        .join("wasm-examples/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is built with the runtime crate",
        path.display()
    );
    path
}

/// A wasip1 core module, assembled by hand (wasmtime here has no text format): `_start`
/// writes `hello from wasip1` to stdout with `fd_write` and returns.
fn wasip1_hello() -> Vec<u8> {
    fn section(id: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![id, u8::try_from(content.len()).expect("small section")];
        out.extend_from_slice(content);
        out
    }
    fn name(s: &str) -> Vec<u8> {
        let mut out = vec![u8::try_from(s.len()).expect("short name")];
        out.extend_from_slice(s.as_bytes());
        out
    }
    let text = b"hello from wasip1\n";
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    // (i32 i32 i32 i32) -> i32 for fd_write; () -> () for _start.
    wasm.extend(section(
        1,
        &[2, 0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f, 0x60, 0, 0],
    ));
    let mut import = vec![1];
    import.extend(name("wasi_snapshot_preview1"));
    import.extend(name("fd_write"));
    import.extend([0, 0]);
    wasm.extend(section(2, &import));
    wasm.extend(section(3, &[1, 1]));
    wasm.extend(section(5, &[1, 0, 1]));
    let mut exports = vec![2];
    exports.extend(name("memory"));
    exports.extend([2, 0]);
    exports.extend(name("_start"));
    exports.extend([0, 1]);
    wasm.extend(section(7, &exports));
    // fd_write(1, iovs=0, 1 iovec, nwritten=8); drop; end.
    let body = [0, 0x41, 1, 0x41, 0, 0x41, 1, 0x41, 8, 0x10, 0, 0x1a, 0x0b];
    let mut code = vec![1, body.len() as u8];
    code.extend(body);
    wasm.extend(section(10, &code));
    // One iovec at 0 pointing at the text at 16.
    let mut memory = vec![
        16,
        0,
        0,
        0,
        text.len() as u8,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    memory.extend_from_slice(text);
    let mut data = vec![1, 0, 0x41, 0, 0x0b, memory.len() as u8];
    data.extend(memory);
    wasm.extend(section(11, &data));
    wasm
}

fn events(cluster: &Cluster, pod: &str) -> String {
    cluster.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "custom-columns=REASON:.reason,MESSAGE:.message",
    ])
}

fn wait_event(cluster: &Cluster, pod: &str, needle: &str) -> String {
    eventually(Duration::from_secs(30), || {
        let all = events(cluster, pod);
        if all.contains(needle) {
            Ok(all)
        } else {
            Err(format!("no event {needle:?} for {pod}:\n{all}"))
        }
    })
}

fn waiting_reason(cluster: &Cluster, pod: &str) -> String {
    cluster.jsonpath(
        &["pod", pod],
        "{.status.containerStatuses[0].state.waiting.reason}",
    )
}

fn pod_yaml(name: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n  \
         containers:\n  - name: app\n    image: {image}\n{extra}"
    )
}

#[test]
fn imported_images_run_and_follow_the_pull_policy() {
    let Some(cluster) = Cluster::up_with_kubectl("registry::imported", FAST) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // A component (the web guest under the seed's app name) and a wasip1 module.
    let out = cluster.wasmkube(&[
        "image",
        "import",
        "my-node-app:v1",
        guest("web").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", out.describe());
    assert!(out.stderr_text().contains("compiled"), "{}", out.describe());
    assert!(
        out.stdout_text().starts_with("my-node-app:v1 sha256:"),
        "{}",
        out.describe()
    );
    let hello = dir.path().join("hello.wasm");
    std::fs::write(&hello, wasip1_hello()).unwrap();
    let out = cluster.wasmkube(&["image", "import", "hello", hello.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.describe());
    assert!(
        out.stderr_text().contains("wasip1 module"),
        "{}",
        out.describe()
    );

    let list = cluster.wasmkube(&["image", "ls"]);
    let list = list.stdout_text();
    assert!(
        list.lines()
            .any(|l| l.starts_with("my-node-app") && l.contains("v1") && l.contains("wasip2")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("hello") && l.contains("latest") && l.contains("wasip1")),
        "{list}"
    );

    // Not wasm: refused before anything is stored.
    let junk = dir.path().join("app.js");
    std::fs::write(&junk, "console.log('hi')").unwrap();
    let out = cluster.wasmkube(&["image", "import", "junk:v1", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        out.stderr_text().contains("is not WebAssembly"),
        "{}",
        out.describe()
    );

    cluster.apply_yaml(&pod_yaml(
        "node-app",
        "my-node-app:v1",
        "    ports:\n    - containerPort: 80\n",
    ));
    cluster.apply_yaml(&pod_yaml("hello", "hello", ""));
    cluster.wait_running("node-app");
    let page = eventually(Duration::from_secs(30), || {
        let out = cluster.kubectl(&[
            "exec",
            "node-app",
            "--",
            "wget",
            "-qO-",
            "http://localhost/",
        ]);
        if out.status.success() {
            Ok(out.stdout_text())
        } else {
            Err(out.describe())
        }
    });
    assert!(
        page.contains("node-app"),
        "the imported web image serves: {page}"
    );
    let pulled = wait_event(
        &cluster,
        "node-app",
        "Successfully pulled image \"my-node-app:v1\"",
    );
    assert!(pulled.contains("Image size:"), "{pulled}");
    cluster.wait_for("hello", "{.status.phase}", "Succeeded");
    cluster.logs_contain(&["hello"], "hello from wasip1");

    // An image nobody has: ErrImagePull, then ImagePullBackOff, saying how to import one.
    cluster.kubectl_ok(&[
        "run",
        "missing",
        "--image=my-missing-app:v1",
        "--restart=Never",
    ]);
    cluster.wait_for(
        "missing",
        "{.status.containerStatuses[0].state.waiting.reason}",
        "ImagePullBackOff",
    );
    let message = cluster.jsonpath(
        &["pod", "missing"],
        "{.status.containerStatuses[0].state.waiting.message}",
    );
    assert!(
        message.contains("wasmkube image import my-missing-app:v1"),
        "{message}"
    );
    let seen = wait_event(&cluster, "missing", "Back-off pulling image");
    assert!(seen.contains("Error: ErrImagePull"), "{seen}");

    // Untagged: a node that has it still runs it with IfNotPresent, not with Always.
    let out = cluster.wasmkube(&["image", "rm", "my-node-app:v1"]);
    assert!(
        out.stdout_text().contains("Untagged: my-node-app:v1"),
        "{}",
        out.describe()
    );
    assert!(
        !cluster
            .wasmkube(&["image", "ls"])
            .stdout_text()
            .contains("my-node-app")
    );
    let out = cluster.wasmkube(&["image", "rm", "my-node-app:v1"]);
    assert!(
        !out.status.success() && out.stderr_text().contains("No such image"),
        "{}",
        out.describe()
    );
    cluster.apply_yaml(&pod_yaml(
        "cached",
        "my-node-app:v1",
        "    imagePullPolicy: IfNotPresent\n",
    ));
    cluster.wait_running("cached");
    wait_event(&cluster, "cached", "already present on machine");
    cluster.apply_yaml(&pod_yaml(
        "always",
        "my-node-app:v1",
        "    imagePullPolicy: Always\n",
    ));
    eventually(Duration::from_secs(30), || {
        let reason = waiting_reason(&cluster, "always");
        if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
            Ok(())
        } else {
            Err(reason)
        }
    });
    cluster.apply_yaml(&pod_yaml(
        "never",
        "other-app:v1",
        "    imagePullPolicy: Never\n",
    ));
    cluster.wait_for(
        "never",
        "{.status.containerStatuses[0].state.waiting.reason}",
        "ErrImageNeverPull",
    );
    wait_event(
        &cluster,
        "never",
        "is not present with pull policy of Never",
    );
}

/// Docker's registry on a free loopback port with basic auth (user `alice`), killed on drop.
struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(binary: &Path) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        // bcrypt of "s3cret"; Docker's registry accepts basic auth over plain HTTP on loopback.
        std::fs::write(
            dir.path().join("htpasswd"),
            "alice:$2b$04$R8.c8Y70.xkkwV5B1zhlfuEC4eRt90.X/6dA6.ra/MGlpuRON1jLy\n",
        )
        .unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    \
             realm: wasmkube-test\n    path: {htpasswd}\n",
            root = dir.path().join("data").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let addr = format!("127.0.0.1:{port}");
        eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(&addr)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        Registry {
            child,
            addr: format!("localhost:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pods_pull_from_a_registry_with_their_pull_secret() {
    let Some(binary) = registry_path("registry::oci") else {
        return;
    };
    let Some(cluster) = Cluster::up_with_kubectl("registry::oci", FAST) else {
        return;
    };
    let registry = Registry::start(&binary);
    let image = format!("{}/team/web:v1", registry.addr);

    let web = guest("web");
    let anonymous = cluster.wasmkube(&["image", "push", web.to_str().unwrap(), &image]);
    assert!(
        !anonymous.status.success(),
        "the registry wants credentials"
    );
    assert!(
        anonymous.stderr_text().contains("--username"),
        "{}",
        anonymous.describe()
    );
    let out = cluster.wasmkube(&[
        "image",
        "push",
        web.to_str().unwrap(),
        &image,
        "--username",
        "alice",
        "--password",
        "s3cret",
    ]);
    assert!(out.status.success(), "{}", out.describe());

    // Without the secret the registry refuses the node; with it the pod runs.
    cluster.apply_yaml(&pod_yaml("no-secret", &image, ""));
    let message = eventually(Duration::from_secs(30), || {
        let message = cluster.jsonpath(
            &["pod", "no-secret"],
            "{.status.containerStatuses[0].state.waiting.message}",
        );
        if message.contains("imagePullSecret") {
            Ok(message)
        } else {
            Err(message)
        }
    });
    assert!(message.contains(&registry.addr), "{message}");
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", registry.addr),
        "--docker-username=alice",
        "--docker-password=s3cret",
    ]);
    let secret = "  imagePullSecrets:\n  - name: regcred\n";
    let with_secret = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n{secret}  containers:\n  - name: app\n    \
         image: {image}\n"
    );
    cluster.apply_yaml(&with_secret);
    cluster.wait_running("web");
    let seen = wait_event(&cluster, "web", "Successfully pulled image");
    assert!(
        seen.contains(&format!("Pulling image \"{image}\"")),
        "{seen}"
    );
    assert!(seen.contains("Image size:"), "{seen}");
    let image_id = cluster.jsonpath(&["pod", "web"], "{.status.containerStatuses[0].imageID}");
    assert!(image_id.contains("@sha256:"), "{image_id}");

    // A missing tag and a digest the registry never had: ErrImagePull, then back-off.
    let missing_tag = format!("{}/team/web:v9", registry.addr);
    let wrong_digest = format!("{}/team/web@sha256:{}", registry.addr, "0".repeat(64));
    for (pod, image) in [
        ("missing-tag", &missing_tag),
        ("wrong-digest", &wrong_digest),
    ] {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\nspec:\n{secret}  restartPolicy: Never\n  \
             containers:\n  - name: app\n    image: {image}\n"
        );
        cluster.apply_yaml(&yaml);
        cluster.wait_for(
            pod,
            "{.status.containerStatuses[0].state.waiting.reason}",
            "ImagePullBackOff",
        );
        let message = cluster.jsonpath(
            &["pod", pod],
            "{.status.containerStatuses[0].state.waiting.message}",
        );
        assert!(
            message.contains("MANIFEST_UNKNOWN") || message.contains("not found"),
            "{pod}: {message}"
        );
        wait_event(&cluster, pod, "Failed to pull image");
    }
}
