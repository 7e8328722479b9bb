//! The applet table and the small helpers every applet shares.
//!
//! An applet is `fn(&mut Io, args) -> exit status` with `args[0]` its own name, like a
//! `main`. The shell, `env` and the multi-call dispatcher all find applets here.

pub mod ab;
pub mod files;
pub mod grep;
pub mod ls;
pub mod nc;
pub mod regex;
pub mod system;
pub mod tar;
pub mod test;
pub mod text;
pub mod wget;

use crate::io::Io;

/// An applet's entry point.
pub type Applet = fn(&mut Io, &[String]) -> i32;

/// Every applet, by name (kept sorted: `toolbox --list` prints it in this order).
pub const APPLETS: &[(&str, Applet)] = &[
    ("[", test::bracket),
    ("ab", ab::ab),
    ("cat", files::cat),
    ("cp", files::cp),
    ("date", system::date),
    ("echo", text::echo),
    ("env", system::env),
    ("false", system::false_),
    ("grep", grep::grep),
    ("head", text::head),
    ("hostname", system::hostname),
    ("ls", ls::ls),
    ("mkdir", files::mkdir),
    ("mv", files::mv),
    ("nc", nc::nc),
    ("nslookup", nc::nslookup),
    ("rm", files::rm),
    ("sh", crate::sh::main),
    ("sleep", system::sleep),
    ("tail", text::tail),
    ("tar", tar::main),
    ("test", test::test),
    ("touch", files::touch),
    ("true", system::true_),
    ("wc", text::wc),
    ("wget", wget::wget),
];

/// Finds an applet by name.
pub fn lookup(name: &str) -> Option<Applet> {
    APPLETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Parsed command-line flags: single-letter flags (with values where asked) and operands.
#[derive(Debug, Default)]
pub struct Flags {
    /// Flags in the order given; the value for letters listed in `with_value`.
    pub flags: Vec<(char, Option<String>)>,
    /// Everything that is not a flag.
    pub operands: Vec<String>,
}

impl Flags {
    /// Parses `args[1..]`. Flags may be clustered (`-rf`), values attached (`-n5`) or separate
    /// (`-n 5`); `--` ends the flags and a lone `-` is an operand. Long options are returned as
    /// operands for the applet to handle when `long` is true, else rejected.
    pub fn parse(args: &[String], with_value: &str, long: bool) -> Result<Flags, String> {
        let mut out = Flags::default();
        let mut it = args.iter().skip(1);
        let mut only_operands = false;
        while let Some(arg) = it.next() {
            if only_operands || arg == "-" || !arg.starts_with('-') {
                out.operands.push(arg.clone());
            } else if arg == "--" {
                only_operands = true;
            } else if arg.starts_with("--") {
                if !long {
                    return Err(format!("unrecognized option '{arg}'"));
                }
                out.operands.push(arg.clone());
            } else {
                let letters: Vec<char> = arg[1..].chars().collect();
                for (i, &c) in letters.iter().enumerate() {
                    if with_value.contains(c) {
                        let rest: String = letters[i + 1..].iter().collect();
                        let value = if !rest.is_empty() {
                            rest
                        } else {
                            it.next()
                                .cloned()
                                .ok_or_else(|| format!("option requires an argument -- '{c}'"))?
                        };
                        out.flags.push((c, Some(value)));
                        break;
                    }
                    out.flags.push((c, None));
                }
            }
        }
        Ok(out)
    }

    /// Whether flag `c` was given.
    pub fn has(&self, c: char) -> bool {
        self.flags.iter().any(|(f, _)| *f == c)
    }

    /// The last value given for flag `c`.
    pub fn value(&self, c: char) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(f, _)| *f == c)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Rejects flags outside `allowed` with busybox's message.
    pub fn check(&self, allowed: &str) -> Result<(), String> {
        match self.flags.iter().find(|(c, _)| !allowed.contains(*c)) {
            Some((c, _)) => Err(format!("invalid option -- '{c}'")),
            None => Ok(()),
        }
    }
}

/// Parses flags or prints the error and returns exit status 1.
pub fn flags(io: &mut Io, args: &[String], with_value: &str, allowed: &str) -> Result<Flags, i32> {
    Flags::parse(args, with_value, false)
        .and_then(|f| f.check(allowed).map(|_| f))
        .map_err(|e| {
            io.error(&args[0], e);
            1
        })
}

/// Runs an applet with `stdin`; returns (status, stdout, stderr). For tests.
#[cfg(test)]
pub fn run(applet: Applet, args: &[&str], stdin: &str) -> (i32, String, String) {
    let (mut io, out, err) = Io::test(stdin.as_bytes(), &[]);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let code = applet(&mut io, &args);
    let text = |b: &crate::io::Captured| String::from_utf8_lossy(&b.borrow()).into_owned();
    (code, text(&out), text(&err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn table_is_sorted_and_complete() {
        let names: Vec<&str> = APPLETS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for want in ["sh", "tar", "wget", "nc", "nslookup", "[", "test", "grep"] {
            assert!(lookup(want).is_some(), "{want}");
        }
    }

    #[test]
    fn parses_clustered_attached_and_separate_flags() {
        let f = Flags::parse(
            &strings(&["x", "-rf", "a", "-n5", "-m", "7", "--", "-z", "-"]),
            "nm",
            false,
        )
        .unwrap();
        assert_eq!(
            f.flags,
            vec![
                ('r', None),
                ('f', None),
                ('n', Some("5".into())),
                ('m', Some("7".into()))
            ]
        );
        assert_eq!(f.operands, strings(&["a", "-z", "-"]));
        assert!(f.check("rfnm").is_ok());
        assert!(f.check("rf").is_err());
        assert!(Flags::parse(&strings(&["x", "-n"]), "n", false).is_err());
        assert!(Flags::parse(&strings(&["x", "--long"]), "", false).is_err());
    }
}
