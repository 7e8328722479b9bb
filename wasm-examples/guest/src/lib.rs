//! What the wasmkube guest programs share: the HTTP/1.1 subset of `web`, `kv` and `api`
//! ([`http`]), their single-threaded `poll(2)` loop ([`event_loop`]), the request-body
//! server of `kv` and `api` ([`server`]), the exit that keeps the exact code ([`exit`]), the
//! `--version` line ([`version`]) and the `wasmkube:commands` custom section ([`commands!`]).
//!
//! A plain library: each guest is still its own `main.rs`. Start with `event_loop.rs`, then
//! `server.rs` (`kv`, `api`) or `web/src/server.rs` for the two kinds of connection it drives.

pub mod event_loop;
pub mod http;
pub mod server;

use std::io::Write;

/// Ends the instance with `code` as the container's exit code.
///
/// On WASI this calls `wasi:cli/exit.exit-with-code` (stable since WASI 0.2.12 and linked by
/// wasmtime-wasi 48's default `add_to_linker`): std's `process::exit(n)` would call
/// `exit(err)` and the host would only ever see 1. Stdout and stderr are flushed first.
pub fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    #[cfg(target_os = "wasi")]
    wasip2::cli::exit::exit_with_code((code & 0xff) as u8);
    std::process::exit(code)
}

/// What `NAME --version` prints: `NAME (wasmkube) VERSION`; pass the program's
/// `env!("CARGO_PKG_VERSION")`.
pub fn version(name: &str, version: &str) -> String {
    format!("{name} (wasmkube) {version}")
}

/// Defines `static $name: [u8; N]`, the custom section `wasmkube:commands` that names the
/// commands an image provides for `kubectl exec` (names separated by `\n`); the node agent
/// reads it from the component.
///
/// Invoke it in the binary's own `main.rs`: the static then belongs to the binary's crate,
/// where `#[used]` keeps it. A static in this library could be dropped by the linker.
#[macro_export]
macro_rules! commands {
    ($(#[$doc:meta])* $name:ident = $names:literal) => {
        $(#[$doc])*
        // SAFETY: a custom section is data the host reads from the binary; nothing in the
        // guest reads or links against it, so its placement cannot clash with code or other
        // data.
        #[allow(
            unsafe_code,
            reason = "`link_section` is the only way to emit a custom section"
        )]
        #[cfg_attr(target_os = "wasi", unsafe(link_section = "wasmkube:commands"))]
        #[used]
        static $name: [u8; $names.len()] = *$names;
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    commands!(
        /// A section as a guest declares it.
        TEST_COMMANDS = b"a\nb"
    );

    #[test]
    fn version_names_the_program() {
        assert_eq!(version("web", "0.1.0"), "web (wasmkube) 0.1.0");
    }

    #[test]
    fn commands_defines_a_byte_array_of_the_names() {
        assert_eq!(&TEST_COMMANDS, b"a\nb");
    }
}
