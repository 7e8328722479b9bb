//! `tar`: uncompressed ustar archives, as `kubectl cp` drives them (`tar cf - PATH` to copy
//! out of a pod, `tar xmf - -C DIR` to copy in).
//!
//! Names longer than ustar allows are written as GNU `L`/`K` long-name entries; reading also
//! understands pax `path`/`linkpath` records. Extraction refuses absolute names (the leading
//! `/` is stripped) and any name with a `..` component, so an archive cannot write outside
//! the target directory. Symbolic links are archived; extracting one works natively but is
//! skipped with a warning on WASI (std has no stable symlink call there).

mod create;
mod extract;

use crate::io::{Io, describe, open_input, open_output};
use create::create;
use extract::extract;

/// The tar block size.
const BLOCK: usize = 512;

/// Archive mode and options.
#[derive(Debug, Default, PartialEq)]
struct Opts {
    mode: Option<char>,
    file: Option<String>,
    dir: Option<String>,
    verbose: bool,
    keep_mtime: bool,
    to_stdout: bool,
    members: Vec<String>,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        keep_mtime: true,
        ..Opts::default()
    };
    let mut rest = args.iter().skip(1).cloned().collect::<Vec<_>>().into_iter();
    let mut first = true;
    while let Some(arg) = rest.next() {
        let bundle = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some(("file", v)) => o.file = Some(v.into()),
                Some(("directory", v)) => o.dir = Some(v.into()),
                None if long == "extract" || long == "get" => o.mode = Some('x'),
                None if long == "create" => o.mode = Some('c'),
                None if long == "list" => o.mode = Some('t'),
                None if long == "verbose" => o.verbose = true,
                None if long == "touch" => o.keep_mtime = false,
                None if long == "to-stdout" => o.to_stdout = true,
                _ if long.starts_with("no-same-")
                    || long.starts_with("same-")
                    || long.starts_with("preserve")
                    || long.starts_with("overwrite")
                    || long.starts_with("warning") => {}
                _ => return Err(format!("unrecognized option '--{long}'")),
            }
            first = false;
            continue;
        } else if let Some(b) = arg.strip_prefix('-').filter(|b| !b.is_empty()) {
            b.to_string()
        } else if first {
            // Old-style bundle without a dash: `tar xmf - -C dir`.
            arg.clone()
        } else {
            o.members.push(arg);
            continue;
        };
        first = false;
        for c in bundle.chars() {
            match c {
                'c' | 'x' | 't' => o.mode = Some(c),
                'v' => o.verbose = true,
                'm' => o.keep_mtime = false,
                'O' => o.to_stdout = true,
                'o' | 'p' | 'h' => {}
                'f' => o.file = Some(rest.next().ok_or("option requires an argument -- 'f'")?),
                'C' => o.dir = Some(rest.next().ok_or("option requires an argument -- 'C'")?),
                'z' | 'j' | 'J' => return Err("compressed archives are not supported".into()),
                other => return Err(format!("invalid option -- '{other}'")),
            }
        }
    }
    Ok(o)
}

/// `tar -c|-x|-t [-vmO] [-f FILE] [-C DIR] [MEMBER]...`.
pub fn main(io: &mut Io, args: &[String]) -> i32 {
    let o = match parse_opts(args) {
        Ok(o) => o,
        Err(e) => {
            io.error("tar", e);
            return 2;
        }
    };
    let file = o.file.clone().unwrap_or_else(|| "-".into());
    let result = match o.mode {
        Some('c') => {
            if o.members.is_empty() {
                io.error("tar", "empty archive");
                return 2;
            }
            open_output(io, &file, false).and_then(|out| create(io, &o, out))
        }
        Some(mode) => open_input(io, &file).and_then(|input| extract(io, &o, input, mode == 't')),
        None => {
            io.error("tar", "need one of -c, -x or -t");
            return 2;
        }
    };
    match result {
        Ok(0) => 0,
        Ok(_) => 2,
        Err(e) => {
            io.error("tar", describe(&e));
            2
        }
    }
}

/// Zero bytes that pad `size` bytes of data to a whole block.
fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

#[cfg(test)]
mod tests;
