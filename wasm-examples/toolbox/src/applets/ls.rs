//! `ls`: one name per line (output is never a terminal here), `-l`, `-a`, `-A`, `-d`, `-R`.
//!
//! WASI has no owners or permission bits, so `ls -l` shows `root` and a mode derived from the
//! file type and the read-only flag.

use super::system::{Civil, MONTHS};
use crate::io::{Io, describe};
use std::fs::{self, Metadata};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

fn mode_string(meta: &Metadata) -> String {
    #[cfg(unix)]
    let bits = {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode()
    };
    #[cfg(not(unix))]
    let bits = match (meta.is_dir(), meta.permissions().readonly()) {
        (true, false) => 0o755,
        (true, true) => 0o555,
        (false, false) => 0o644,
        (false, true) => 0o444,
    };
    let kind = if meta.file_type().is_symlink() {
        'l'
    } else if meta.is_dir() {
        'd'
    } else {
        '-'
    };
    let mut s = String::from(kind);
    for shift in [6, 3, 0] {
        let b = bits >> shift;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn long_line(path: &Path, shown: &str, meta: &Metadata) -> String {
    let secs = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    let c = Civil::from_secs(secs);
    let mut line = format!(
        "{} {:>4} root     root     {:>10} {} {:>2} {:02}:{:02} {shown}",
        mode_string(meta),
        if meta.is_dir() { 2 } else { 1 },
        meta.len(),
        MONTHS[c.month as usize - 1],
        c.day,
        c.hms.0,
        c.hms.1
    );
    if meta.file_type().is_symlink()
        && let Ok(target) = fs::read_link(path)
    {
        line.push_str(&format!(" -> {}", target.display()));
    }
    line
}

/// `ls [-1laAdR] [PATH]...`: one name per line (output is never a terminal here).
pub fn ls(io: &mut Io, args: &[String]) -> i32 {
    let f = match super::flags(io, args, "", "1laAdRFh") {
        Ok(f) => f,
        Err(c) => return c,
    };
    let (long, all, almost, dirs_as_files, recursive) =
        (f.has('l'), f.has('a'), f.has('A'), f.has('d'), f.has('R'));
    let operands = if f.operands.is_empty() {
        vec![".".to_string()]
    } else {
        f.operands.clone()
    };
    let mut status = 0;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for name in &operands {
        match fs::symlink_metadata(name) {
            Ok(m) if m.is_dir() && !dirs_as_files => dirs.push(PathBuf::from(name)),
            Ok(m) => files.push((PathBuf::from(name), name.clone(), m)),
            Err(e) => {
                io.error("ls", format!("{name}: {}", describe(&e)));
                status = 2;
            }
        }
    }
    let mut out = BufWriter::new(io.stdout.clone());
    let print = |out: &mut BufWriter<_>, path: &Path, shown: &str, m: &Metadata| {
        let _ = if long {
            writeln!(out, "{}", long_line(path, shown, m))
        } else {
            writeln!(out, "{shown}")
        };
    };
    for (path, shown, m) in &files {
        print(&mut out, path, shown, m);
    }
    let headers = operands.len() > 1 || recursive;
    let mut first = files.is_empty();
    let mut queue: std::collections::VecDeque<PathBuf> = dirs.into();
    while let Some(dir) = queue.pop_front() {
        if headers {
            let _ = writeln!(out, "{}{}:", if first { "" } else { "\n" }, dir.display());
        }
        first = false;
        let entries = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                let _ = out.flush();
                io.error("ls", format!("{}: {}", dir.display(), describe(&e)));
                status = 2;
                continue;
            }
        };
        let mut names: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        if all {
            names.push((".".into(), dir.clone()));
            names.push(("..".into(), dir.join("..")));
        }
        names.retain(|(n, _)| all || (almost && n != "." && n != "..") || !n.starts_with('.'));
        names.sort();
        let mut subdirs = Vec::new();
        for (name, path) in names {
            let Ok(m) = fs::symlink_metadata(&path) else {
                continue;
            };
            print(&mut out, &path, &name, &m);
            if recursive && m.is_dir() && name != "." && name != ".." {
                subdirs.push(path);
            }
        }
        for d in subdirs.into_iter().rev() {
            queue.push_front(d);
        }
    }
    let _ = out.flush();
    status
}
