//! `grep` with basic and extended patterns (see `regex.rs`), fixed strings, whole words and
//! lines, counts, line numbers and busybox's exit statuses.

use super::regex::Regex;
use super::text::{for_each_input, lines_of};
use crate::io::Io;
use std::io::Write;

/// `grep [-EFivcnqlhHs] [-e PATTERN]... [PATTERN] [FILE]...`: 0 on a match, 1 on none, 2 on error.
pub fn grep(io: &mut Io, args: &[String]) -> i32 {
    let mut f = match super::flags(io, args, "e", "EFGivcnqlhHswxe") {
        Ok(f) => f,
        Err(_) => return 2,
    };
    let mut patterns: Vec<String> = f
        .flags
        .iter()
        .filter(|(c, _)| *c == 'e')
        .filter_map(|(_, v)| v.clone())
        .collect();
    if patterns.is_empty() {
        if f.operands.is_empty() {
            io.error("grep", "usage: grep [-EFivcnqlhHswx] PATTERN [FILE]...");
            return 2;
        }
        patterns.push(f.operands.remove(0));
    }
    let icase = f.has('i');
    let fixed = f.has('F');
    let regexes: Result<Vec<Regex>, String> = patterns
        .iter()
        .flat_map(|p| p.split('\n').map(str::to_string).collect::<Vec<_>>())
        .map(|p| {
            let p = if fixed { escape(&p) } else { p };
            Regex::new(&p, f.has('E'), icase)
        })
        .collect();
    let regexes = match regexes {
        Ok(r) => r,
        Err(e) => {
            io.error("grep", e);
            return 2;
        }
    };
    let matches = |line: &str| {
        let hit = if f.has('x') {
            regexes.iter().any(|r| r.is_full_match(line))
        } else if f.has('w') {
            line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| !w.is_empty() && regexes.iter().any(|r| r.is_full_match(w)))
        } else {
            regexes.iter().any(|r| r.is_match(line))
        };
        hit != f.has('v')
    };
    let show_names = (f.operands.len() > 1 || f.has('H')) && !f.has('h');
    let mut found = false;
    let status = for_each_input(io, "grep", &f.operands, |io, name, input| {
        let shown = if name == "-" {
            "(standard input)"
        } else {
            name
        };
        let (mut count, mut n) = (0usize, 0usize);
        lines_of(&input, |raw| {
            n += 1;
            let line = String::from_utf8_lossy(raw);
            let text = line.trim_end_matches('\n');
            if !matches(text) {
                return true;
            }
            found = true;
            count += 1;
            if f.has('q') || f.has('l') {
                return false;
            }
            if !f.has('c') {
                let prefix = if show_names {
                    format!("{shown}:")
                } else {
                    String::new()
                };
                let num = if f.has('n') {
                    format!("{n}:")
                } else {
                    String::new()
                };
                let _ = writeln!(io.stdout, "{prefix}{num}{text}");
            }
            true
        });
        if f.has('l') && count > 0 {
            let _ = writeln!(io.stdout, "{shown}");
        } else if f.has('c') && !f.has('q') {
            let prefix = if show_names {
                format!("{shown}:")
            } else {
                String::new()
            };
            let _ = writeln!(io.stdout, "{prefix}{count}");
        }
    });
    if status != 0 && !f.has('s') && !found {
        2
    } else if found {
        0
    } else {
        1
    }
}

fn escape(p: &str) -> String {
    let mut out = String::new();
    for c in p.chars() {
        if "\\.[]*+?|^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], stdin: &str) -> (i32, String) {
        let (code, out, _) = super::super::run(grep, args, stdin);
        (code, out)
    }

    #[test]
    fn grep_options() {
        let input = "alpha\nBeta\ngamma delta\n";
        assert_eq!(run(&["grep", "ha$"], input), (0, "alpha\n".into()));
        assert_eq!(run(&["grep", "-i", "beta"], input).1, "Beta\n");
        assert_eq!(run(&["grep", "-v", "-c", "a"], input).1, "0\n");
        assert_eq!(run(&["grep", "-n", "Beta"], input).1, "2:Beta\n");
        assert_eq!(run(&["grep", "-q", "zeta"], input), (1, String::new()));
        assert_eq!(
            run(&["grep", "-E", "^gam|^B"], input).1,
            "Beta\ngamma delta\n"
        );
        assert_eq!(run(&["grep", "-x", "alph"], input).0, 1);
        assert_eq!(run(&["grep", "-x", "al.*"], input).1, "alpha\n");
        assert_eq!(run(&["grep", "-F", "a.p"], "a.p\nabp\n").1, "a.p\n");
        assert_eq!(run(&["grep", "-w", "delta"], input).1, "gamma delta\n");
        assert_eq!(run(&["grep", "-w", "elt"], input).0, 1);
        assert_eq!(run(&["grep", "x", "/no/such"], "").0, 2);
    }
}
