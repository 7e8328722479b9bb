//! `echo`, `head`, `tail` and `wc`, and the input helpers `grep` shares.

use crate::io::{Input, Io, describe, open_input};
use std::collections::VecDeque;
use std::io::{Read, Write};

/// `echo [-neE] [ARG]...`.
pub fn echo(io: &mut Io, args: &[String]) -> i32 {
    let (mut newline, mut escapes) = (true, false);
    let mut i = 1;
    while let Some(a) = args.get(i) {
        if a.len() < 2 || !a.starts_with('-') || !a[1..].chars().all(|c| "neE".contains(c)) {
            break;
        }
        for c in a[1..].chars() {
            match c {
                'n' => newline = false,
                'e' => escapes = true,
                _ => escapes = false,
            }
        }
        i += 1;
    }
    let mut out = args[i..].join(" ");
    if escapes {
        let (text, stop) = unescape(&out);
        out = text;
        newline &= !stop;
    }
    if newline {
        out.push('\n');
    }
    match io.stdout.write_all(out.as_bytes()) {
        Ok(()) => 0,
        Err(e) => {
            io.error("echo", describe(&e));
            1
        }
    }
}

/// Interprets `echo -e` escapes; the flag is set when `\c` cut the output short.
fn unescape(s: &str) -> (String, bool) {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('a') => out.push('\x07'),
            Some('b') => out.push('\x08'),
            Some('e') => out.push('\x1b'),
            Some('f') => out.push('\x0c'),
            Some('v') => out.push('\x0b'),
            Some('\\') => out.push('\\'),
            Some('c') => return (out, true),
            Some('0') => {
                let mut v = 0u32;
                for _ in 0..3 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('?'));
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    (out, false)
}

/// Opens each operand (or stdin when there are none), reporting failures; calls `each` with
/// the name and the stream. Returns 1 if any operand could not be opened.
pub(super) fn for_each_input(
    io: &mut Io,
    applet: &str,
    operands: &[String],
    mut each: impl FnMut(&mut Io, &str, Input),
) -> i32 {
    let names: Vec<String> = if operands.is_empty() {
        vec!["-".into()]
    } else {
        operands.to_vec()
    };
    let mut status = 0;
    for name in &names {
        match open_input(io, name) {
            Ok(input) => each(io, name, input),
            Err(e) => {
                io.error(applet, format!("can't open '{name}': {}", describe(&e)));
                status = 1;
            }
        }
    }
    status
}

/// `-5` is `-n 5` for head and tail.
fn numeric_shorthand(args: &[String]) -> Vec<String> {
    args.iter()
        .map(|a| match a.strip_prefix('-') {
            Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => format!("-n{n}"),
            _ => a.clone(),
        })
        .collect()
}

pub(super) fn lines_of(input: &Input, mut each: impl FnMut(&[u8]) -> bool) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_line_bytes(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if !each(&line) {
                    return;
                }
            }
        }
    }
}

/// `head [-n N] [-c N] [FILE]...`.
pub fn head(io: &mut Io, args: &[String]) -> i32 {
    let f = match super::flags(io, &numeric_shorthand(args), "nc", "ncqv") {
        Ok(f) => f,
        Err(c) => return c,
    };
    let (count, bytes) = match (f.value('c'), f.value('n')) {
        (Some(c), _) => (c.parse::<usize>(), true),
        (None, n) => (n.unwrap_or("10").parse::<usize>(), false),
    };
    let Ok(count) = count else {
        io.error("head", "invalid number");
        return 1;
    };
    let headers = f.operands.len() > 1 && !f.has('q') || f.has('v');
    let mut first = true;
    for_each_input(io, "head", &f.operands, |io, name, mut input| {
        if headers {
            let _ = writeln!(io.stdout, "{}==> {name} <==", if first { "" } else { "\n" });
        }
        first = false;
        if bytes {
            let _ = std::io::copy(&mut (&mut input).take(count as u64), &mut io.stdout);
            return;
        }
        let mut left = count;
        lines_of(&input, |line| {
            if left == 0 {
                return false;
            }
            let _ = io.stdout.write_all(line);
            left -= 1;
            left > 0
        });
    })
}

/// `tail [-n N|+N] [-c N] [FILE]...`.
pub fn tail(io: &mut Io, args: &[String]) -> i32 {
    let f = match super::flags(io, &numeric_shorthand(args), "nc", "ncqv") {
        Ok(f) => f,
        Err(c) => return c,
    };
    let spec = f.value('c').or(f.value('n')).unwrap_or("10");
    let bytes = f.value('c').is_some();
    let (from_start, num) = match spec.strip_prefix('+') {
        Some(n) => (true, n),
        None => (false, spec.trim_start_matches('-')),
    };
    let Ok(count) = num.parse::<usize>() else {
        io.error("tail", format!("invalid number '{spec}'"));
        return 1;
    };
    let headers = f.operands.len() > 1 && !f.has('q') || f.has('v');
    let mut first = true;
    for_each_input(io, "tail", &f.operands, |io, name, mut input| {
        if headers {
            let _ = writeln!(io.stdout, "{}==> {name} <==", if first { "" } else { "\n" });
        }
        first = false;
        if bytes {
            let mut all = Vec::new();
            let _ = input.read_to_end(&mut all);
            let start = if from_start {
                count.saturating_sub(1).min(all.len())
            } else {
                all.len().saturating_sub(count)
            };
            let _ = io.stdout.write_all(&all[start..]);
            return;
        }
        let mut kept: VecDeque<Vec<u8>> = VecDeque::new();
        let mut n = 0usize;
        lines_of(&input, |line| {
            n += 1;
            if from_start {
                if n >= count.max(1) {
                    let _ = io.stdout.write_all(line);
                }
            } else if count > 0 {
                if kept.len() == count {
                    kept.pop_front();
                }
                kept.push_back(line.to_vec());
            }
            true
        });
        for line in kept {
            let _ = io.stdout.write_all(&line);
        }
    })
}

/// `wc [-lwc] [FILE]...`.
pub fn wc(io: &mut Io, args: &[String]) -> i32 {
    let f = match super::flags(io, args, "", "lwcm") {
        Ok(f) => f,
        Err(c) => return c,
    };
    let mut show = [f.has('l'), f.has('w'), f.has('c') || f.has('m')];
    if !show.iter().any(|&s| s) {
        show = [true; 3];
    }
    let mut totals = [0usize; 3];
    let mut rows: Vec<([usize; 3], String)> = Vec::new();
    let status = for_each_input(io, "wc", &f.operands, |_, name, mut input| {
        let mut data = Vec::new();
        let _ = input.read_to_end(&mut data);
        let counts = [
            data.iter().filter(|&&b| b == b'\n').count(),
            data.split(|b| b.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
                .count(),
            data.len(),
        ];
        for (t, c) in totals.iter_mut().zip(counts) {
            *t += c;
        }
        rows.push((
            counts,
            if name == "-" && f.operands.is_empty() {
                String::new()
            } else {
                name.to_string()
            },
        ));
    });
    if rows.len() > 1 {
        rows.push((totals, "total".into()));
    }
    let single = show.iter().filter(|&&s| s).count() == 1;
    for (counts, name) in rows {
        let cols: Vec<String> = counts
            .iter()
            .zip(show)
            .filter(|(_, s)| *s)
            .map(|(c, _)| {
                if single && name.is_empty() {
                    c.to_string()
                } else {
                    format!("{c:>7}")
                }
            })
            .collect();
        let line = if name.is_empty() {
            cols.join(" ")
        } else {
            format!("{} {name}", cols.join(" "))
        };
        let _ = writeln!(io.stdout, "{line}");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: super::super::Applet, args: &[&str], stdin: &str) -> (i32, String) {
        let (code, out, _) = super::super::run(f, args, stdin);
        (code, out)
    }

    #[test]
    fn echo_flags_and_escapes() {
        assert_eq!(run(echo, &["echo", "a", "b"], ""), (0, "a b\n".into()));
        assert_eq!(run(echo, &["echo", "-n", "x"], "").1, "x");
        assert_eq!(run(echo, &["echo", "-e", "a\\tb\\c", "zz"], "").1, "a\tb");
        assert_eq!(run(echo, &["echo", "-x"], "").1, "-x\n");
        assert_eq!(run(echo, &["echo", "-e", "\\0101"], "").1, "A\n");
    }

    #[test]
    fn head_and_tail_count_lines_and_bytes() {
        let input = "1\n2\n3\n4\n5\n";
        assert_eq!(run(head, &["head", "-n", "2"], input).1, "1\n2\n");
        assert_eq!(run(head, &["head", "-3"], input).1, "1\n2\n3\n");
        assert_eq!(run(head, &["head", "-c", "3"], input).1, "1\n2");
        assert_eq!(run(tail, &["tail", "-n", "2"], input).1, "4\n5\n");
        assert_eq!(run(tail, &["tail", "-n", "+4"], input).1, "4\n5\n");
        assert_eq!(run(tail, &["tail", "-c", "4"], input).1, "4\n5\n");
        assert_eq!(run(tail, &["tail", "-1"], "no newline").1, "no newline");
    }

    #[test]
    fn wc_counts() {
        assert_eq!(run(wc, &["wc", "-l"], "a b\nc\n").1, "2\n");
        assert_eq!(run(wc, &["wc"], "a b\nc\n").1, "      2       3       6\n");
    }
}
