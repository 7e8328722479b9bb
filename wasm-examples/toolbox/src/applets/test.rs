//! `test` and `[`: file, string and integer conditions with `!`, `-a`, `-o` and parentheses.

use crate::io::Io;
use std::fs;

/// `test EXPRESSION`: 0 if true, 1 if false, 2 on a malformed expression.
pub fn test(io: &mut Io, args: &[String]) -> i32 {
    run(io, "test", &args[1..])
}

/// `[ EXPRESSION ]`.
pub fn bracket(io: &mut Io, args: &[String]) -> i32 {
    match args.last().map(String::as_str) {
        Some("]") if args.len() >= 2 => run(io, "[", &args[1..args.len() - 1]),
        _ => {
            io.error("[", "missing ]");
            2
        }
    }
}

fn run(io: &mut Io, name: &str, args: &[String]) -> i32 {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match evaluate(&words) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            io.error(name, e);
            2
        }
    }
}

const UNARY: &[&str] = &[
    "-e", "-f", "-d", "-s", "-r", "-w", "-x", "-L", "-h", "-z", "-n", "-b", "-c", "-p", "-S", "-t",
];
const BINARY: &[&str] = &[
    "=", "==", "!=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-nt", "-ot", "-ef",
];

/// Evaluates a test expression.
pub fn evaluate(words: &[&str]) -> Result<bool, String> {
    // POSIX decides by argument count first, which keeps `[ "$x" = "!" ]` and `[ -n ]` right.
    match words {
        [] => Ok(false),
        [one] => Ok(!one.is_empty()),
        ["!", rest @ ..] if rest.len() <= 2 => evaluate(rest).map(|b| !b),
        [op, arg] if UNARY.contains(op) => unary(op, arg),
        [a, op, b] if BINARY.contains(op) => binary(a, op, b),
        ["(", inner, ")"] => Ok(!inner.is_empty()),
        _ => {
            let mut p = Parser { words, pos: 0 };
            let v = p.or()?;
            match p.words.get(p.pos) {
                None => Ok(v),
                Some(w) => Err(format!("{w}: unexpected operator")),
            }
        }
    }
}

struct Parser<'a> {
    words: &'a [&'a str],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self, at: usize) -> Option<&'a str> {
        self.words.get(self.pos + at).copied()
    }

    fn or(&mut self) -> Result<bool, String> {
        let mut v = self.and()?;
        while self.peek(0) == Some("-o") {
            self.pos += 1;
            v |= self.and()?;
        }
        Ok(v)
    }

    fn and(&mut self) -> Result<bool, String> {
        let mut v = self.not()?;
        while self.peek(0) == Some("-a") {
            self.pos += 1;
            v &= self.not()?;
        }
        Ok(v)
    }

    fn not(&mut self) -> Result<bool, String> {
        if self.peek(0) == Some("!") {
            self.pos += 1;
            return self.not().map(|b| !b);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<bool, String> {
        let Some(first) = self.peek(0) else {
            return Err("argument expected".into());
        };
        if let (Some(op), Some(b)) = (self.peek(1), self.peek(2))
            && BINARY.contains(&op)
        {
            self.pos += 3;
            return binary(first, op, b);
        }
        if first == "(" {
            self.pos += 1;
            let v = self.or()?;
            if self.peek(0) != Some(")") {
                return Err("missing )".into());
            }
            self.pos += 1;
            return Ok(v);
        }
        if UNARY.contains(&first)
            && let Some(arg) = self.peek(1)
        {
            self.pos += 2;
            return unary(first, arg);
        }
        self.pos += 1;
        Ok(!first.is_empty())
    }
}

fn unary(op: &str, arg: &str) -> Result<bool, String> {
    let meta = || fs::metadata(arg).ok();
    Ok(match op {
        "-z" => arg.is_empty(),
        "-n" => !arg.is_empty(),
        "-e" => meta().is_some(),
        "-f" => meta().is_some_and(|m| m.is_file()),
        "-d" => meta().is_some_and(|m| m.is_dir()),
        "-s" => meta().is_some_and(|m| m.len() > 0),
        "-r" => meta().is_some(),
        "-w" => meta().is_some_and(|m| !m.permissions().readonly()),
        "-x" => meta().is_some_and(|m| executable(&m)),
        "-L" | "-h" => fs::symlink_metadata(arg).is_ok_and(|m| m.file_type().is_symlink()),
        "-t" => false,
        // Devices, FIFOs and sockets do not exist under WASI.
        _ => false,
    })
}

#[cfg(unix)]
fn executable(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.is_dir() || m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(m: &fs::Metadata) -> bool {
    // WASI has no execute bit; only directories are "searchable".
    m.is_dir()
}

fn number(s: &str) -> Result<i64, String> {
    s.trim().parse().map_err(|_| format!("{s}: bad number"))
}

fn binary(a: &str, op: &str, b: &str) -> Result<bool, String> {
    let modified = |p: &str| fs::metadata(p).and_then(|m| m.modified()).ok();
    Ok(match op {
        "=" | "==" => a == b,
        "!=" => a != b,
        "<" => a < b,
        ">" => a > b,
        "-eq" => number(a)? == number(b)?,
        "-ne" => number(a)? != number(b)?,
        "-lt" => number(a)? < number(b)?,
        "-le" => number(a)? <= number(b)?,
        "-gt" => number(a)? > number(b)?,
        "-ge" => number(a)? >= number(b)?,
        "-nt" => modified(a) > modified(b),
        "-ot" => modified(a).is_some() && modified(a) < modified(b),
        "-ef" => false,
        _ => return Err(format!("{op}: unknown operand")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers() {
        assert_eq!(evaluate(&["abc"]), Ok(true));
        assert_eq!(evaluate(&[""]), Ok(false));
        assert_eq!(evaluate(&["-n", ""]), Ok(false));
        assert_eq!(evaluate(&["-z", ""]), Ok(true));
        assert_eq!(evaluate(&["a", "=", "a"]), Ok(true));
        assert_eq!(evaluate(&["a", "!=", "a"]), Ok(false));
        assert_eq!(evaluate(&["3", "-lt", "10"]), Ok(true));
        assert_eq!(evaluate(&["10", "-le", "3"]), Ok(false));
        assert!(evaluate(&["x", "-eq", "1"]).is_err());
    }

    #[test]
    fn operators_as_operands_follow_posix_counting() {
        assert_eq!(evaluate(&["!"]), Ok(true));
        assert_eq!(evaluate(&["-n"]), Ok(true));
        assert_eq!(evaluate(&["!", "="]), Ok(false));
        assert_eq!(evaluate(&["=", "=", "="]), Ok(true));
        assert_eq!(evaluate(&["!", "a", "=", "b"]), Ok(true));
    }

    #[test]
    fn combines_with_and_or_not_and_parentheses() {
        assert_eq!(evaluate(&["a", "-a", ""]), Ok(false));
        assert_eq!(evaluate(&["a", "-o", ""]), Ok(true));
        assert_eq!(evaluate(&["", "-o", "1", "-eq", "1", "-a", "x"]), Ok(true));
        assert_eq!(
            evaluate(&["!", "(", "1", "-eq", "2", ")", "-a", "-n", "x"]),
            Ok(true)
        );
        assert!(evaluate(&["(", "a", "-a"]).is_err());
    }

    #[test]
    fn file_tests() {
        let dir = std::env::temp_dir();
        let d = dir.to_str().unwrap();
        assert_eq!(evaluate(&["-d", d]), Ok(true));
        assert_eq!(evaluate(&["-f", d]), Ok(false));
        assert_eq!(evaluate(&["-e", "/no/such/file"]), Ok(false));
    }

    #[test]
    fn bracket_wants_its_closing_bracket() {
        let (mut io, _, err) = Io::test(b"", &[]);
        let args = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(bracket(&mut io, &args(&["[", "1", "-eq", "1", "]"])), 0);
        assert_eq!(bracket(&mut io, &args(&["[", "1", "-eq", "1"])), 2);
        assert!(
            String::from_utf8(err.borrow().clone())
                .unwrap()
                .contains("missing ]")
        );
    }
}
