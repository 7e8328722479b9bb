//! `cat`, `mkdir`, `rm`, `cp`, `mv` and `touch`.

use crate::io::{Io, describe, open_input};
use crate::tty::INTERRUPTED;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// `cat [FILE]...` (`-` or nothing is stdin). On a terminal, each line is written as it
/// arrives and Ctrl-C ends `cat` with status 130.
pub fn cat(io: &mut Io, args: &[String]) -> i32 {
    let f = match super::flags(io, args, "", "u") {
        Ok(f) => f,
        Err(c) => return c,
    };
    let names = if f.operands.is_empty() {
        vec!["-".to_string()]
    } else {
        f.operands
    };
    let mut status = 0;
    let mut out = BufWriter::with_capacity(32 * 1024, io.stdout.clone());
    for name in &names {
        let copied = open_input(io, name).and_then(|mut input| match &io.tty {
            Some(tty) if tty.is(&input) => {
                out.flush()?;
                copy_unbuffered(&mut input, &mut io.stdout)
            }
            _ => std::io::copy(&mut input, &mut out),
        });
        if io.interrupted() {
            return INTERRUPTED;
        }
        if let Err(e) = copied {
            let _ = out.flush();
            io.error("cat", format!("can't open '{name}': {}", describe(&e)));
            status = 1;
        }
    }
    let _ = out.flush();
    status
}

/// Copies what arrives on `input` to `output` right away (a terminal's lines, one by one).
fn copy_unbuffered(input: &mut impl Read, output: &mut impl Write) -> std::io::Result<u64> {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        output.write_all(&buf[..n])?;
        output.flush()?;
        total += n as u64;
    }
}

/// `mkdir [-p] DIR...`.
pub fn mkdir(io: &mut Io, args: &[String]) -> i32 {
    let f = match super::flags(io, args, "m", "pm") {
        Ok(f) => f,
        Err(c) => return c,
    };
    let mut status = 0;
    for d in &f.operands {
        let r = if f.has('p') {
            fs::create_dir_all(d)
        } else {
            fs::create_dir(d)
        };
        if let Err(e) = r {
            io.error(
                "mkdir",
                format!("can't create directory '{d}': {}", describe(&e)),
            );
            status = 1;
        }
    }
    status
}

/// `rm [-rRf] PATH...`.
pub fn rm(io: &mut Io, args: &[String]) -> i32 {
    let f = match super::flags(io, args, "", "rRfid") {
        Ok(f) => f,
        Err(c) => return c,
    };
    let (recursive, force) = (f.has('r') || f.has('R'), f.has('f'));
    let mut status = 0;
    for p in &f.operands {
        let r = match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() && recursive => fs::remove_dir_all(p),
            Ok(m) if m.is_dir() && f.has('d') => fs::remove_dir(p),
            Ok(m) if m.is_dir() => {
                io.error("rm", format!("'{p}' is a directory"));
                status = 1;
                continue;
            }
            Ok(_) => fs::remove_file(p),
            Err(e) => Err(e),
        };
        if let Err(e) = r
            && !(force && e.kind() == std::io::ErrorKind::NotFound)
        {
            io.error("rm", format!("can't remove '{p}': {}", describe(&e)));
            status = 1;
        }
    }
    status
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    if meta.is_dir() {
        fs::create_dir_all(dst)?;
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(src, dst).map(drop)
    }
}

/// Where `src` lands: inside `dest` when `dest` is a directory.
fn target(src: &str, dest: &str, dest_is_dir: bool) -> PathBuf {
    if dest_is_dir {
        let name = Path::new(src.trim_end_matches('/'))
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default();
        Path::new(dest).join(name)
    } else {
        PathBuf::from(dest)
    }
}

fn sources_and_dest(
    io: &mut Io,
    applet: &str,
    operands: &[String],
) -> Option<(Vec<String>, String, bool)> {
    let Some((dest, sources)) = operands.split_last().filter(|(_, s)| !s.is_empty()) else {
        io.error(applet, "missing file operand");
        return None;
    };
    let dest_is_dir = fs::metadata(dest).is_ok_and(|m| m.is_dir());
    if sources.len() > 1 && !dest_is_dir {
        io.error(applet, format!("'{dest}' is not a directory"));
        return None;
    }
    Some((sources.to_vec(), dest.clone(), dest_is_dir))
}

/// `cp [-rRaf] SOURCE... DEST`.
pub fn cp(io: &mut Io, args: &[String]) -> i32 {
    let f = match super::flags(io, args, "", "rRafpdP") {
        Ok(f) => f,
        Err(c) => return c,
    };
    let Some((sources, dest, dest_is_dir)) = sources_and_dest(io, "cp", &f.operands) else {
        return 1;
    };
    let recursive = f.has('r') || f.has('R') || f.has('a');
    let mut status = 0;
    for src in &sources {
        let to = target(src, &dest, dest_is_dir);
        let r = match fs::metadata(src) {
            Ok(m) if m.is_dir() && !recursive => {
                io.error("cp", format!("omitting directory '{src}'"));
                status = 1;
                continue;
            }
            Ok(_) => copy_tree(Path::new(src), &to),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            io.error("cp", format!("can't copy '{src}': {}", describe(&e)));
            status = 1;
        }
    }
    status
}

/// `mv [-f] SOURCE... DEST` (copies and deletes when a rename is refused, e.g. across mounts).
pub fn mv(io: &mut Io, args: &[String]) -> i32 {
    let f = match super::flags(io, args, "", "fin") {
        Ok(f) => f,
        Err(c) => return c,
    };
    let Some((sources, dest, dest_is_dir)) = sources_and_dest(io, "mv", &f.operands) else {
        return 1;
    };
    let mut status = 0;
    for src in &sources {
        let to = target(src, &dest, dest_is_dir);
        let r = fs::rename(src, &to).or_else(|e| {
            if fs::symlink_metadata(src).is_err() {
                return Err(e);
            }
            copy_tree(Path::new(src), &to)?;
            if fs::symlink_metadata(src)?.is_dir() {
                fs::remove_dir_all(src)
            } else {
                fs::remove_file(src)
            }
        });
        if let Err(e) = r {
            io.error("mv", format!("can't rename '{src}': {}", describe(&e)));
            status = 1;
        }
    }
    status
}

/// `touch [-c] FILE...`: creates missing files and sets the modification time to now.
pub fn touch(io: &mut Io, args: &[String]) -> i32 {
    let f = match super::flags(io, args, "", "cam") {
        Ok(f) => f,
        Err(c) => return c,
    };
    let mut status = 0;
    for p in &f.operands {
        let exists = fs::metadata(p).is_ok();
        if !exists && f.has('c') {
            continue;
        }
        let r = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .and_then(|file| file.set_modified(SystemTime::now()));
        if let Err(e) = r {
            io.error("touch", format!("{p}: {}", describe(&e)));
            status = 1;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::super::ls::ls;
    use super::*;

    fn run(f: fn(&mut Io, &[String]) -> i32, args: &[&str]) -> (i32, String, String) {
        let (mut io, out, err) = Io::test(b"", &[]);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let code = f(&mut io, &args);
        let s = |b: &crate::io::Captured| String::from_utf8(b.borrow().clone()).unwrap();
        (code, s(&out), s(&err))
    }

    #[test]
    fn cat_on_a_terminal_stops_at_ctrl_c_with_130() {
        let tty = crate::tty::script::tty(&[b"a\n", b"b\n\x03", b"c\n"]);
        let (mut io, out, _) = Io::terminal(&tty, &[]);
        assert_eq!(cat(&mut io, &["cat".into()]), INTERRUPTED);
        assert_eq!(out.borrow().as_slice(), b"a\nb\n");
        let mut rest = Vec::new();
        tty.input().read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"c\n");
    }

    #[test]
    fn cat_passes_ctrl_c_bytes_through_when_stdin_is_not_the_terminal() {
        let tty = crate::tty::script::tty(&[]);
        let (mut io, out, _) = Io::terminal(&tty, &[]);
        io.stdin = crate::io::Input::from_bytes(b"a\x03b".to_vec());
        assert_eq!(cat(&mut io, &["cat".into()]), 0);
        assert_eq!(out.borrow().as_slice(), b"a\x03b");
    }

    #[test]
    fn file_applets_work_together() {
        let root = std::env::temp_dir().join(format!("toolbox-files-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let p = |s: &str| root.join(s).to_str().unwrap().to_string();
        assert_eq!(run(mkdir, &["mkdir", "-p", &p("a/b")]).0, 0);
        assert_eq!(run(mkdir, &["mkdir", &p("a")]).0, 1);
        assert_eq!(run(touch, &["touch", &p("a/b/f.txt")]).0, 0);
        fs::write(p("a/g.txt"), "hello\n").unwrap();
        assert_eq!(
            run(cat, &["cat", &p("a/g.txt"), &p("a/b/f.txt")]).1,
            "hello\n"
        );
        let (code, _, err) = run(cat, &["cat", &p("nope")]);
        assert_eq!(code, 1);
        assert!(err.contains("No such file or directory"), "{err}");
        assert_eq!(run(ls, &["ls", &p("a")]).1, "b\ng.txt\n");
        assert!(
            run(ls, &["ls", "-l", &p("a")])
                .1
                .contains(" root     root              6 ")
        );
        assert_eq!(run(cp, &["cp", &p("a"), &p("c")]).0, 1);
        assert_eq!(run(cp, &["cp", "-r", &p("a"), &p("c")]).0, 0);
        assert_eq!(fs::read_to_string(p("c/g.txt")).unwrap(), "hello\n");
        assert_eq!(run(mv, &["mv", &p("c/g.txt"), &p("a/b")]).0, 0);
        assert!(fs::metadata(p("a/b/g.txt")).is_ok() && fs::metadata(p("c/g.txt")).is_err());
        assert_eq!(
            run(ls, &["ls", "-R", &p("c")]).1,
            format!("{}:\nb\n\n{}:\nf.txt\n", p("c"), p("c/b"))
        );
        assert_eq!(run(rm, &["rm", &p("a")]).0, 1);
        assert_eq!(run(rm, &["rm", "-f", &p("missing")]).0, 0);
        assert_eq!(run(rm, &["rm", "-rf", &p("a"), &p("c")]).0, 0);
        assert_eq!(run(ls, &["ls", "-a", root.to_str().unwrap()]).1, ".\n..\n");
        fs::remove_dir_all(&root).unwrap();
    }
}
