//! Mapping request targets to files under the document root: path sanitising, index
//! files, directory redirects and content types.

use std::fs::File;
use std::path::{Path, PathBuf};

/// What a request target resolves to.
#[derive(Debug)]
pub enum Resolved {
    /// A regular file and its length.
    File {
        file: File,
        len: u64,
        content_type: &'static str,
    },
    /// A directory named without its trailing slash: redirect to this location.
    Redirect(String),
    /// `/` with no `index.html` in the document root: the built-in page.
    DefaultPage,
    /// Nothing there.
    NotFound,
}

/// Turns a request target into a path relative to the document root.
///
/// Drops the query and fragment, percent-decodes, folds `.` and empty segments and applies
/// `..`. A target that climbs above the root, is not origin-form or decodes to a NUL or a
/// backslash gives `None` (answered with 400). The flag tells whether the target ended in `/`.
pub fn sanitize(target: &str) -> Option<(String, bool)> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return None;
    }
    let decoded = percent_decode(path)?;
    if decoded.contains(['\0', '\\']) {
        return None;
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    Some((segments.join("/"), trailing))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `Content-Type` for a file name, by extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" | "text" | "log" | "md" | "conf" | "yaml" | "yml" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "avif" => "image/avif",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// Resolves a sanitised relative path against the document root.
pub fn resolve(root: &Path, rel: &str, trailing_slash: bool) -> Resolved {
    let full: PathBuf = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    match std::fs::metadata(&full) {
        Ok(meta) if meta.is_dir() => {
            if !rel.is_empty() && !trailing_slash {
                return Resolved::Redirect(format!("/{rel}/"));
            }
            match open_file(&full.join("index.html")) {
                Some(r) => r,
                None if rel.is_empty() => Resolved::DefaultPage,
                None => Resolved::NotFound,
            }
        }
        Ok(_) if trailing_slash => Resolved::NotFound,
        Ok(_) => open_file(&full).unwrap_or(Resolved::NotFound),
        Err(_) if rel.is_empty() => Resolved::DefaultPage,
        Err(_) => Resolved::NotFound,
    }
}

fn open_file(path: &Path) -> Option<Resolved> {
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    Some(Resolved::File {
        file,
        len: meta.len(),
        content_type: content_type(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_folds_dots_and_keeps_trailing_slash() {
        assert_eq!(sanitize("/"), Some((String::new(), true)));
        assert_eq!(
            sanitize("/a/./b//c.html?x=1#f"),
            Some(("a/b/c.html".into(), false))
        );
        assert_eq!(sanitize("/a/b/../c/"), Some(("a/c".into(), true)));
        assert_eq!(sanitize("/docs/.."), Some((String::new(), true)));
    }

    #[test]
    fn sanitize_refuses_to_climb_above_the_root() {
        assert_eq!(sanitize("/.."), None);
        assert_eq!(sanitize("/../etc/passwd"), None);
        assert_eq!(sanitize("/a/../../etc/passwd"), None);
        assert_eq!(sanitize("/%2e%2e/etc/passwd"), None);
        assert_eq!(sanitize("/a%2f..%2f..%2fsecret"), None);
        assert_eq!(sanitize("/a\\..\\b"), None);
        assert_eq!(sanitize("/nul%00"), None);
        assert_eq!(sanitize("http://x/"), None);
        assert_eq!(sanitize("/bad%zz"), None);
    }

    #[test]
    fn percent_decoding_allows_spaces_and_utf8() {
        assert_eq!(
            sanitize("/my%20file.txt"),
            Some(("my file.txt".into(), false))
        );
        assert_eq!(sanitize("/caf%C3%A9"), Some(("café".into(), false)));
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type(Path::new("a/index.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("app.wasm")), "application/wasm");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }

    #[test]
    fn resolves_index_redirect_default_and_missing() {
        let root = std::env::temp_dir().join(format!("web-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(root.join("sub/index.html"), "<p>sub</p>").unwrap();
        std::fs::write(root.join("a.css"), "body{}").unwrap();

        assert!(matches!(resolve(&root, "", true), Resolved::DefaultPage));
        assert!(matches!(resolve(&root, "sub", false), Resolved::Redirect(ref l) if l == "/sub/"));
        assert!(matches!(
            resolve(&root, "sub", true),
            Resolved::File { len: 10, .. }
        ));
        assert!(matches!(
            resolve(&root, "a.css", false),
            Resolved::File {
                content_type: "text/css; charset=utf-8",
                ..
            }
        ));
        assert!(matches!(resolve(&root, "a.css", true), Resolved::NotFound));
        assert!(matches!(resolve(&root, "empty", true), Resolved::NotFound));
        assert!(matches!(
            resolve(&root, "missing", false),
            Resolved::NotFound
        ));
        assert!(matches!(
            resolve(&root.join("nope"), "", true),
            Resolved::DefaultPage
        ));

        std::fs::write(root.join("index.html"), "home").unwrap();
        assert!(matches!(
            resolve(&root, "", true),
            Resolved::File { len: 4, .. }
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
