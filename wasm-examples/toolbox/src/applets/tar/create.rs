//! Writing archives: ustar headers, GNU long names, directory walks.

use super::{BLOCK, Opts, padding};
use crate::io::{Io, describe};
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

fn octal(field: &mut [u8], value: u64) {
    let s = format!("{:0width$o}", value, width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
}

fn header(name: &str, size: u64, mode: u32, mtime: u64, kind: u8, link: &str) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let (prefix, short) = split_name(name).unwrap_or(("", name));
    let n = short.len().min(100);
    h[..n].copy_from_slice(&short.as_bytes()[..n]);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = kind;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link.as_bytes()[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// Splits a long name into ustar's prefix (up to 155) and name (up to 100) fields.
fn split_name(name: &str) -> Option<(&str, &str)> {
    if name.len() <= 100 {
        return None;
    }
    name.match_indices('/').map(|(i, _)| i).find_map(|i| {
        let (p, n) = (&name[..i], &name[i + 1..]);
        (p.len() <= 155 && n.len() <= 100 && !n.is_empty()).then_some((p, n))
    })
}

pub(super) fn write_entry(
    w: &mut impl Write,
    name: &str,
    size: u64,
    mode: u32,
    mtime: u64,
    kind: u8,
    link: &str,
) -> io::Result<()> {
    for (long, flag) in [(link, b'K'), (name, b'L')] {
        let fits = if flag == b'L' {
            long.len() <= 100 || split_name(long).is_some()
        } else {
            long.len() <= 100
        };
        if !fits {
            let data = [long.as_bytes(), b"\0"].concat();
            w.write_all(&header(
                "././@LongLink",
                data.len() as u64,
                0o644,
                0,
                flag,
                "",
            ))?;
            w.write_all(&data)?;
            w.write_all(&vec![0; padding(data.len() as u64)])?;
        }
    }
    w.write_all(&header(name, size, mode, mtime, kind, link))
}

pub(super) fn create(io: &mut Io, o: &Opts, out: crate::io::Output) -> io::Result<i32> {
    let mut w = BufWriter::with_capacity(64 * 1024, out);
    let base = o.dir.as_deref().map_or_else(PathBuf::new, PathBuf::from);
    let mut warned = false;
    let mut status = 0;
    for member in &o.members {
        let name = member.trim_start_matches('/');
        if name.len() != member.len() && !warned {
            io.error("tar", "removing leading '/' from member names");
            warned = true;
        }
        let name = if name.is_empty() { "." } else { name };
        if let Err(e) = add(io, o, &mut w, &base.join(member), name) {
            io.error("tar", format!("{member}: {}", describe(&e)));
            status = 2;
        }
    }
    w.write_all(&[0; 2 * BLOCK])?;
    w.flush()?;
    Ok(status)
}

fn add(io: &mut Io, o: &Opts, w: &mut impl Write, path: &Path, name: &str) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    if o.verbose {
        let _ = writeln!(io.stderr, "{name}");
    }
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path)?;
        return write_entry(w, name, 0, 0o777, mtime, b'2', &target.to_string_lossy());
    }
    if meta.is_dir() {
        let dir_name = if name.ends_with('/') {
            name.to_string()
        } else {
            format!("{name}/")
        };
        write_entry(w, &dir_name, 0, 0o755, mtime, b'5', "")?;
        let mut entries: Vec<_> = fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        entries.sort();
        for e in entries {
            let child = format!(
                "{}{}",
                dir_name.trim_start_matches("./"),
                e.to_string_lossy()
            );
            add(io, o, w, &path.join(&e), &child)?;
        }
        return Ok(());
    }
    let mut f = fs::File::open(path)?;
    let size = meta.len();
    write_entry(
        w,
        name,
        size,
        if meta.permissions().readonly() {
            0o444
        } else {
            0o644
        },
        mtime,
        b'0',
        "",
    )?;
    let copied = io::copy(&mut (&mut f).take(size), w)?;
    if copied < size {
        // The file shrank while archiving: keep the archive well-formed.
        w.write_all(&vec![0; (size - copied) as usize])?;
    }
    w.write_all(&vec![0; padding(size)])
}
