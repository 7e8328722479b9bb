//! Builds the guests in `wasm-examples/` for `wasm32-wasip2` and hands their paths to
//! `src/images/mod.rs` (`WASMKUBE_GUEST_WEB`, ...), which embeds them as the built-in catalog.
//!
//! The guests are a cargo workspace of their own, built by a nested `cargo build --release
//! --target wasm32-wasip2` into `<target>/wasm-examples`. The nested cargo must not inherit the
//! outer build's flags (host RUSTFLAGS, the clippy wrapper, the outer target dir), so those
//! variables are removed; the jobserver (`CARGO_MAKEFLAGS`) is kept so both builds share the
//! outer `-j`. The target is added with `rustup` when it is missing.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The guests and the env var naming each built `.wasm`.
const GUESTS: [(&str, &str); 7] = [
    ("web", "WASMKUBE_GUEST_WEB"),
    ("toolbox", "WASMKUBE_GUEST_TOOLBOX"),
    ("crash", "WASMKUBE_GUEST_CRASH"),
    ("stress", "WASMKUBE_GUEST_STRESS"),
    ("kv", "WASMKUBE_GUEST_KV"),
    ("api", "WASMKUBE_GUEST_API"),
    // A library component (cdylib): cargo names its file with an underscore.
    ("http-hello", "WASMKUBE_GUEST_HTTP_HELLO"),
];

const TARGET: &str = "wasm32-wasip2";

fn main() {
    if let Err(e) = run() {
        // A build script's stderr is shown when it fails; `{e:#}` keeps the whole chain.
        eprintln!("\nerror: building the wasm guests failed: {e:#}\n");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .context("runtime/ has no parent directory")?;
    let examples = workspace.join("wasm-examples");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    println!("cargo:rerun-if-changed=build.rs");
    println!(
        "cargo:rerun-if-changed={}",
        examples.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        examples.join("Cargo.lock").display()
    );
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    for (guest, _) in GUESTS {
        let dir = examples.join(guest);
        if !dir.join("Cargo.toml").is_file() || !dir.join("src").is_dir() {
            bail!(
                "the guest `{guest}` is missing: expected a cargo package at {} (a member of \
                 the wasm-examples workspace) providing the `wasmkube/{guest}` image",
                dir.display()
            );
        }
        // A directory makes cargo rescan everything below it.
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
    }

    ensure_target()?;

    // One shared directory for every profile of the host build (debug, release, clippy):
    // the guests are always built in release and need not be rebuilt per host profile.
    let target_dir = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace.join("target"),
    }
    .join("wasm-examples");

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(examples.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (name, _) in env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if inherited_var_breaks_nested_build(name) {
            cmd.env_remove(name);
        }
    }
    let output = cmd.output().context("running cargo for the wasm guests")?;
    if !output.status.success() {
        bail!(
            "`cargo build --release --target {TARGET} --manifest-path {}` failed:\n{}",
            examples.join("Cargo.toml").display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let built = target_dir.join(TARGET).join("release");
    for (guest, var) in GUESTS {
        let wasm = built.join(format!("{}.wasm", guest.replace('-', "_")));
        // Copied so this build's embedded bytes cannot change under it when another host
        // profile rebuilds the shared guest directory.
        let copy = out_dir.join(format!("{guest}.wasm"));
        std::fs::copy(&wasm, &copy).with_context(|| {
            format!(
                "the guest `{guest}` built but {} is missing (is it a binary crate?)",
                wasm.display()
            )
        })?;
        println!("cargo:rustc-env={var}={}", copy.display());
    }
    Ok(())
}

/// Variables of the outer cargo that would change or break the nested guest build.
fn inherited_var_breaks_nested_build(name: &str) -> bool {
    const EXACT: [&str; 12] = [
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_PRIMARY_PACKAGE",
        "RUSTC_WORKSPACE_WRAPPER",
        "TARGET",
        "OUT_DIR",
    ];
    const PREFIXES: [&str; 6] = [
        "CARGO_BUILD_",
        "CARGO_PROFILE_",
        "CARGO_TARGET_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        "CLIPPY_",
    ];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Makes sure the standard library for `wasm32-wasip2` is installed, adding it with rustup
/// when it is not.
fn ensure_target() -> Result<()> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if has_target(&sysroot) {
        return Ok(());
    }
    println!("cargo:warning=the {TARGET} target is missing; running `rustup target add {TARGET}`");
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    let added = rustup.status().map(|s| s.success()).unwrap_or(false);
    if !added || !has_target(&sysroot) {
        bail!(
            "the Rust target {TARGET} is not installed and `rustup target add {TARGET}` did not \
             work here; install it (run `rustup target add {TARGET}`, or your distribution's \
             wasm32-wasip2 standard library package) and build again"
        );
    }
    Ok(())
}

fn has_target(sysroot: &Path) -> bool {
    sysroot
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}
