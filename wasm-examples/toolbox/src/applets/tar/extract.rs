//! Reading archives: header checksums, ustar prefixes, GNU long names and pax records,
//! and unpacking without ever leaving the target directory.

use super::{BLOCK, Opts, padding};
use crate::io::{Io, describe};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

fn field_str(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn field_num(b: &[u8]) -> io::Result<u64> {
    if b[0] & 0x80 != 0 {
        // GNU base-256 for values that do not fit in octal.
        return Ok(b[1..]
            .iter()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)));
    }
    let s = field_str(b);
    let s = s.trim_matches(|c: char| c == ' ' || c == '\0');
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "invalid tar header"))
}

/// Turns an archive name into a safe relative path, or `None` if it would escape.
pub(super) fn safe_path(name: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(name.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

pub(super) fn extract(io: &mut Io, o: &Opts, mut input: impl Read, list: bool) -> io::Result<i32> {
    let base = PathBuf::from(o.dir.as_deref().unwrap_or("."));
    let (mut long_name, mut long_link) = (None::<String>, None::<String>);
    let mut status = 0;
    let mut block = [0u8; BLOCK];
    loop {
        if !read_block(&mut input, &mut block)? || block.iter().all(|&b| b == 0) {
            return Ok(status);
        }
        let stored = field_num(&block[148..156])?;
        let mut copy = block;
        copy[148..156].fill(b' ');
        if copy.iter().map(|&b| u64::from(b)).sum::<u64>() != stored {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "invalid tar header checksum",
            ));
        }
        let size = field_num(&block[124..136])?;
        let kind = block[156];
        let mut name = field_str(&block[..100]);
        if &block[257..262] == b"ustar" && block[345] != 0 {
            name = format!("{}/{name}", field_str(&block[345..500]));
        }
        let name = long_name.take().unwrap_or(name);
        let link = long_link
            .take()
            .unwrap_or_else(|| field_str(&block[157..257]));
        let mtime = field_num(&block[136..148])?;
        let mut data = (&mut input).take(size);
        match kind {
            b'L' | b'K' | b'x' => {
                let mut buf = Vec::new();
                data.read_to_end(&mut buf)?;
                let text = String::from_utf8_lossy(&buf)
                    .trim_end_matches('\0')
                    .to_string();
                match kind {
                    b'L' => long_name = Some(text),
                    b'K' => long_link = Some(text),
                    _ => (long_name, long_link) = parse_pax(&text),
                }
            }
            b'g' => {}
            _ => {
                let wanted = o.members.is_empty()
                    || o.members.iter().any(|m| {
                        name == *m
                            || name.trim_end_matches('/') == m.trim_end_matches('/')
                            || name.starts_with(&format!("{}/", m.trim_end_matches('/')))
                    });
                if wanted && (list || o.verbose) {
                    let out = if list { &mut io.stdout } else { &mut io.stderr };
                    let _ = writeln!(out, "{name}");
                }
                if wanted
                    && !list
                    && let Err(e) = unpack(io, o, &base, &name, kind, &link, mtime, &mut data)
                {
                    io.error("tar", format!("{name}: {}", describe(&e)));
                    status = 2;
                }
            }
        }
        // Whatever the entry did not consume (global pax headers, skipped members).
        io::copy(&mut data, &mut io::sink())?;
        skip(&mut input, padding(size))?;
    }
}

fn parse_pax(text: &str) -> (Option<String>, Option<String>) {
    let (mut path, mut link) = (None, None);
    for record in text.lines() {
        let kv = record.split_once(' ').map_or("", |(_, kv)| kv);
        match kv.split_once('=') {
            Some(("path", v)) => path = Some(v.to_string()),
            Some(("linkpath", v)) => link = Some(v.to_string()),
            _ => {}
        }
    }
    (path, link)
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename the arguments"
)]
fn unpack(
    io: &mut Io,
    o: &Opts,
    base: &Path,
    name: &str,
    kind: u8,
    link: &str,
    mtime: u64,
    data: &mut impl Read,
) -> io::Result<()> {
    let Some(rel) = safe_path(name) else {
        io.error("tar", format!("skipping '{name}': path contains '..'"));
        return Ok(());
    };
    let dest = base.join(&rel);
    match kind {
        b'5' => fs::create_dir_all(&dest),
        b'0' | 0 | b'7' if o.to_stdout => io::copy(data, &mut io.stdout).map(drop),
        b'0' | 0 | b'7' => {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut f = fs::File::create(&dest)?;
            io::copy(data, &mut f)?;
            if o.keep_mtime {
                let _ = f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime));
            }
            Ok(())
        }
        b'1' => match safe_path(link) {
            Some(target) => fs::copy(base.join(target), &dest).map(drop),
            None => Ok(()),
        },
        b'2' => symlink(io, link, &dest),
        _ => {
            io.error(
                "tar",
                format!(
                    "skipping '{name}': unsupported entry type '{}'",
                    kind as char
                ),
            );
            Ok(())
        }
    }
}

#[cfg(unix)]
fn symlink(_: &mut Io, target: &str, dest: &Path) -> io::Result<()> {
    let _ = fs::remove_file(dest);
    std::os::unix::fs::symlink(target, dest)
}

#[cfg(not(unix))]
fn symlink(io: &mut Io, target: &str, dest: &Path) -> io::Result<()> {
    io.error(
        "tar",
        format!(
            "skipping symlink '{}' -> '{target}': not supported here",
            dest.display()
        ),
    );
    Ok(())
}

/// Reads a whole block; `false` at a clean end of input.
fn read_block(r: &mut impl Read, block: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut got = 0;
    while got < BLOCK {
        match r.read(&mut block[got..])? {
            0 if got == 0 => return Ok(false),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(true)
}

fn skip(r: &mut impl Read, n: usize) -> io::Result<()> {
    io::copy(&mut r.take(n as u64), &mut io::sink()).map(drop)
}
