//! Image references as Kubernetes writes them: `nginx`, `wasmkube/web:1.0`,
//! `registry:5000/team/app@sha256:...`, and `file:///path/app.wasm`.

use std::fmt;
use std::path::PathBuf;

use super::Error;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A registry-style name such as `wasmkube/web`, `localhost:5000/app:v1`, `x@sha256:..`.
    Name(ImageName),
    /// `file:///absolute/path.wasm`.
    File(PathBuf),
}

/// A registry-style image name, split the way Docker splits it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageName {
    /// The registry host (with port), or `None` for the default registry (also written
    /// `docker.io`).
    pub registry: Option<String>,
    /// The repository path, e.g. `wasmkube/web` (`library/` is dropped for the default
    /// registry, as `nginx` and `docker.io/library/nginx` are the same image).
    pub repository: String,
    /// The tag; `None` when the reference has none (then `latest`, unless a digest pins it).
    pub tag: Option<String>,
    /// The pinned digest, `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl ImageName {
    /// The tag that applies: the explicit one, else `latest`.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(registry) = &self.registry {
            write!(f, "{registry}/")?;
        }
        write!(f, "{}", self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Name(name) => name.fmt(f),
            Reference::File(path) => write!(f, "file://{}", path.display()),
        }
    }
}

impl std::str::FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Reference::parse(s)
    }
}

impl Reference {
    /// Parses an image reference as Docker does, or a `file://` URL.
    pub fn parse(reference: &str) -> Result<Reference, Error> {
        let invalid = |reason| Error::InvalidReference {
            reference: reference.to_string(),
            reason,
        };
        if let Some(path) = reference.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(invalid("file:// references need an absolute path"));
            }
            return Ok(Reference::File(PathBuf::from(path)));
        }
        if reference.is_empty() {
            return Err(invalid("empty reference"));
        }
        if reference.len() > 255 + 128 + 72 {
            return Err(invalid("reference too long"));
        }

        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .ok_or_else(|| invalid("only sha256 digests are supported"))?;
                if hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(invalid("a sha256 digest is 64 lowercase hex digits"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (reference, None),
        };

        // The tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(invalid(
                "a tag is up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
            ));
        }

        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (Some(first), path)
            }
            _ => (None, name),
        };
        if let Some(registry) = registry
            && !registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        {
            return Err(invalid("invalid registry host"));
        }
        if path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(invalid(
                "a repository is lowercase [a-z0-9] components separated by '/', '.', '_', '__' or '-'",
            ));
        }

        let (registry, repository) = match registry {
            None | Some("docker.io" | "index.docker.io") => (
                None,
                path.strip_prefix("library/").unwrap_or(path).to_string(),
            ),
            Some(host) => (Some(host.to_string()), path.to_string()),
        };
        Ok(Reference::Name(ImageName {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        }))
    }
}

/// `[a-z0-9]+` separated by one `.`, one or two `_`, or any number of `-`.
pub(super) fn valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(tag: &str) -> bool {
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-';
    !tag.is_empty() && tag.len() <= 128 && !tag.starts_with(['.', '-']) && tag.bytes().all(ok_char)
}
