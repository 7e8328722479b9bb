//! The commands an image provides (ARCHITECTURE D11): what `kubectl exec POD -- NAME` may run
//! from the container's own image.
//!
//! An image declares them in a custom section named `wasmkube:commands` whose payload is the
//! command names separated by newlines (the toolbox lists its applets; `web` says `web`). The
//! section may sit in the component itself or in a core module nested in it, which is where a
//! Rust `#[link_section]` static ends up. An image without the section provides one command:
//! its short name (`wasmkube/web` -> `web`).

use wasmparser::{Parser, Payload};

use super::Image;

/// The custom section an image's commands are declared in.
pub const SECTION: &str = "wasmkube:commands";

/// The commands `bytes` declare, in order, without duplicates; `None` without the section.
pub fn declared(bytes: &[u8]) -> Option<Vec<String>> {
    let mut found: Option<Vec<String>> = None;
    for payload in Parser::new(0).parse_all(bytes) {
        // A malformed binary simply declares nothing: the compile step reports what is wrong.
        let Ok(payload) = payload else { break };
        if let Payload::CustomSection(section) = payload
            && section.name() == SECTION
        {
            let list = found.get_or_insert_with(Vec::new);
            for name in String::from_utf8_lossy(section.data()).split(['\n', '\0']) {
                let name = name.trim();
                if !name.is_empty() && !list.iter().any(|n| n == name) {
                    list.push(name.to_string());
                }
            }
        }
    }
    found
}

impl Image {
    /// The commands the image provides: its declared ones, else its short name.
    pub fn commands(&self) -> Vec<String> {
        declared(&self.bytes).unwrap_or_else(|| vec![self.short_name().to_string()])
    }

    /// Whether `argv0` (a name or a path) is one of the image's commands.
    pub fn provides(&self, argv0: &str) -> bool {
        let name = basename(argv0);
        !name.is_empty() && self.commands().iter().any(|c| c == name)
    }
}

/// The last component of a path (`/bin/ls` -> `ls`).
pub fn basename(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::Catalog;

    /// A core module with one custom section.
    fn module_with(name: &str, data: &[u8]) -> Vec<u8> {
        let mut section = Vec::new();
        section.push(name.len() as u8);
        section.extend_from_slice(name.as_bytes());
        section.extend_from_slice(data);
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.push(0);
        module.push(section.len() as u8);
        module.extend(section);
        module
    }

    #[test]
    fn reads_the_section_and_falls_back_to_the_short_name() {
        let bytes = module_with(SECTION, b"sh\nls\n\nsh\n");
        assert_eq!(declared(&bytes), Some(vec!["sh".into(), "ls".into()]));
        let image = Image::from_bytes("registry.local/team/app:v1", bytes);
        assert!(image.provides("/bin/ls") && image.provides("sh"));
        assert!(!image.provides("app"));

        let plain = Image::from_bytes("registry.local/team/app:v1", module_with("other", b"x"));
        assert_eq!(plain.commands(), vec!["app".to_string()]);
        assert!(declared(b"not wasm at all").is_none());
    }

    #[test]
    fn the_built_in_images_declare_their_commands() {
        let catalog = Catalog::new();
        let toolbox = catalog.get("wasmkube/toolbox").unwrap().commands();
        for applet in ["toolbox", "sh", "ls", "tar", "sleep", "wget"] {
            assert!(
                toolbox.iter().any(|c| c == applet),
                "{applet} in {toolbox:?}"
            );
        }
        assert_eq!(catalog.get("wasmkube/web").unwrap().commands(), ["web"]);
    }

    #[test]
    fn basenames() {
        assert_eq!(basename("/usr/bin/env"), "env");
        assert_eq!(basename("ls"), "ls");
        assert_eq!(basename(""), "");
    }
}
