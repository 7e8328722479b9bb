//! Word expansion: parameters, `$(...)`, `$((...))`, field splitting on IFS whitespace and
//! pathname globbing (`*`, `?`, `[...]`) of unquoted text.

use super::ast::{ParamOp, Part, Word};
use super::lex::quoted_text;
use super::{Shell, arith};
use crate::io::{Io, Output};
use std::fs;

/// A field being built: its text, the same text as a glob pattern (quoted characters escaped)
/// and whether unquoted glob characters appeared.
#[derive(Default)]
struct Field {
    text: String,
    pattern: String,
    glob: bool,
    started: bool,
}

#[derive(Default)]
struct Fields {
    done: Vec<Field>,
    cur: Field,
}

impl Fields {
    fn literal(&mut self, s: &str) {
        for c in s.chars() {
            self.cur.glob |= matches!(c, '*' | '?' | '[');
            self.cur.pattern.push(c);
            self.cur.text.push(c);
        }
        self.cur.started = true;
    }

    fn quoted(&mut self, s: &str) {
        for c in s.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                self.cur.pattern.push('\\');
            }
            self.cur.pattern.push(c);
            self.cur.text.push(c);
        }
        self.cur.started = true;
    }

    /// Unquoted expansion results: split on IFS characters.
    fn split(&mut self, s: &str, ifs: &str) {
        for c in s.chars() {
            if ifs.contains(c) {
                self.finish();
            } else {
                self.quoted(c.encode_utf8(&mut [0; 4]));
            }
        }
    }

    fn finish(&mut self) {
        if self.cur.started {
            self.done.push(std::mem::take(&mut self.cur));
        }
    }
}

impl Shell {
    /// Looks up a variable or special parameter.
    pub(super) fn lookup(&self, name: &str) -> Option<String> {
        match name {
            "?" => Some(self.status.to_string()),
            "$" => Some("1".into()),
            "!" => Some(String::new()),
            "#" => Some(self.params.len().saturating_sub(1).to_string()),
            "@" | "*" => Some(self.params.get(1..).unwrap_or_default().join(" ")),
            "-" => Some(format!(
                "{}{}",
                if self.errexit { "e" } else { "" },
                if self.xtrace { "x" } else { "" }
            )),
            n if n.chars().all(|c| c.is_ascii_digit()) => n
                .parse::<usize>()
                .ok()
                .and_then(|i| self.params.get(i).cloned()),
            n => self.vars.get(n).cloned(),
        }
    }

    fn ifs(&self) -> String {
        self.vars
            .get("IFS")
            .cloned()
            .unwrap_or_else(|| " \t\n".into())
    }

    /// Expands words into arguments (with splitting and globbing).
    pub(super) fn expand_words(&mut self, words: &[Word], io: &Io) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for w in words {
            let mut fields = Fields::default();
            for part in &w.0 {
                self.expand_part(part, &mut fields, io)?;
            }
            fields.finish();
            for f in fields.done {
                let matches = if f.glob { glob(&f.pattern) } else { Vec::new() };
                if matches.is_empty() {
                    out.push(f.text);
                } else {
                    out.extend(matches);
                }
            }
        }
        Ok(out)
    }

    /// Expands a word into one string (assignments, redirection targets, `${x:-word}`).
    pub(super) fn expand_string(&mut self, w: &Word, io: &Io) -> Result<String, String> {
        let mut s = String::new();
        for part in &w.0 {
            match part {
                Part::Lit(t) | Part::Quoted(t) => s.push_str(t),
                Part::Param { name, op, .. } => s.push_str(&self.param(name, op, io)?),
                Part::Command { src, .. } => s.push_str(&self.command_output(src, io)),
                Part::Arith { src, .. } => s.push_str(&self.arithmetic(src, io)?),
            }
        }
        Ok(s)
    }

    fn expand_part(&mut self, part: &Part, fields: &mut Fields, io: &Io) -> Result<(), String> {
        let (value, quoted) = match part {
            Part::Lit(t) => {
                fields.literal(t);
                return Ok(());
            }
            Part::Quoted(t) => {
                fields.quoted(t);
                return Ok(());
            }
            Part::Param {
                name,
                op: ParamOp::Plain,
                quoted: true,
            } if name == "@" => {
                // "$@": one field per positional parameter.
                for (i, p) in self.params.iter().skip(1).enumerate() {
                    if i > 0 {
                        fields.finish();
                    }
                    fields.quoted(p);
                }
                return Ok(());
            }
            Part::Param { name, op, quoted } => (self.param(name, op, io)?, *quoted),
            Part::Command { src, quoted } => (self.command_output(src, io), *quoted),
            Part::Arith { src, quoted } => (self.arithmetic(src, io)?, *quoted),
        };
        if quoted {
            fields.quoted(&value);
        } else {
            let ifs = self.ifs();
            fields.split(&value, &ifs);
        }
        Ok(())
    }

    fn param(&mut self, name: &str, op: &ParamOp, io: &Io) -> Result<String, String> {
        let value = self.lookup(name);
        let ParamOp::With { op, colon, word } = op else {
            return Ok(match op {
                ParamOp::Length => value.map_or(0, |v| v.chars().count()).to_string(),
                _ => value.unwrap_or_default(),
            });
        };
        let unset = value.is_none() || (*colon && value.as_deref() == Some(""));
        Ok(match op {
            '-' if unset => self.expand_string(word, io)?,
            '=' if unset => {
                let v = self.expand_string(word, io)?;
                self.set_var(name, v.clone());
                v
            }
            '+' if unset => String::new(),
            '+' => self.expand_string(word, io)?,
            '?' if unset => {
                let msg = self.expand_string(word, io)?;
                return Err(format!(
                    "{name}: {}",
                    if msg.is_empty() {
                        "parameter not set"
                    } else {
                        &msg
                    }
                ));
            }
            '#' | 'H' | '%' | 'P' => {
                let v = value.unwrap_or_default();
                let pat = self.expand_string(word, io)?;
                trim(&v, &pat, *op)
            }
            _ => value.unwrap_or_default(),
        })
    }

    /// Runs `$(...)` in a subshell and returns its output without trailing newlines.
    fn command_output(&mut self, src: &str, io: &Io) -> String {
        let (stdout, buf) = Output::capture();
        let sub_io = Io {
            stdout,
            ..io.clone()
        };
        let mut child = self.clone();
        child.flow = super::Flow::Normal;
        let status = child.run_source(src, &sub_io);
        self.status = status;
        self.subst_status = Some(status);
        let mut s = String::from_utf8_lossy(&buf.borrow()).into_owned();
        s.truncate(s.trim_end_matches('\n').len());
        s
    }

    fn arithmetic(&mut self, src: &str, io: &Io) -> Result<String, String> {
        let word = quoted_text(src).map_err(|_| "arithmetic syntax error".to_string())?;
        let text = self.expand_string(&word, io)?;
        let vars = &self.vars;
        arith::eval(&text, &|name| vars.get(name).cloned()).map(|v| v.to_string())
    }
}

/// `${v#p}` (shortest prefix), `${v##p}` (`H`), `${v%p}` (shortest suffix), `${v%%p}` (`P`).
fn trim(v: &str, pat: &str, op: char) -> String {
    let cuts: Vec<usize> = (0..=v.len()).filter(|&i| v.is_char_boundary(i)).collect();
    let found = match op {
        '#' => cuts
            .iter()
            .find(|&&i| glob_match(pat, &v[..i]))
            .map(|&i| v[i..].to_string()),
        'H' => cuts
            .iter()
            .rev()
            .find(|&&i| glob_match(pat, &v[..i]))
            .map(|&i| v[i..].to_string()),
        '%' => cuts
            .iter()
            .rev()
            .find(|&&i| glob_match(pat, &v[i..]))
            .map(|&i| v[..i].to_string()),
        _ => cuts
            .iter()
            .find(|&&i| glob_match(pat, &v[i..]))
            .map(|&i| v[..i].to_string()),
    };
    found.unwrap_or_else(|| v.to_string())
}

/// Matches `text` against a glob pattern (`*`, `?`, `[a-z]`, `[!x]`, `\` escapes).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && go(&p[2..], &t[1..]),
            Some('[') => match (class(p), t.first()) {
                (Some((hit, len)), Some(&c)) => hit(c) && go(&p[len..], &t[1..]),
                (None, Some(&c)) => c == '[' && go(&p[1..], &t[1..]),
                (_, None) => false,
            },
            Some(&c) => t.first() == Some(&c) && go(&p[1..], &t[1..]),
        }
    }
    go(&p, &t)
}

/// Parses a bracket expression at the start of `p`: a matcher and the pattern length it used.
#[allow(
    clippy::type_complexity,
    reason = "a local helper's return type, used once"
)]
fn class(p: &[char]) -> Option<(Box<dyn Fn(char) -> bool>, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while let Some(&c) = p.get(i) {
        if c == ']' && !first {
            return Some((
                Box::new(move |x| ranges.iter().any(|&(a, b)| a <= x && x <= b) != negate),
                i + 1,
            ));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            ranges.push((c, p[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    None
}

/// Expands a glob pattern to the sorted matching paths (empty when nothing matches).
pub fn glob(pattern: &str) -> Vec<String> {
    let absolute = pattern.starts_with('/');
    let mut paths = vec![if absolute {
        "/".to_string()
    } else {
        String::new()
    }];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let magic = comp.contains(['*', '?', '[']);
        let mut next = Vec::new();
        for base in &paths {
            if !magic {
                let lit = comp.replace('\\', "");
                next.push(format!("{base}{lit}/"));
                continue;
            }
            let dir = if base.is_empty() { "." } else { base.as_str() };
            let Ok(rd) = fs::read_dir(dir) else { continue };
            let mut names: Vec<String> = rd
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                if (!name.starts_with('.') || comp.starts_with('.')) && glob_match(comp, &name) {
                    next.push(format!("{base}{name}/"));
                }
            }
        }
        paths = next;
    }
    let trailing = pattern.ends_with('/');
    paths
        .into_iter()
        .map(|p| {
            if trailing || p == "/" {
                p
            } else {
                p.trim_end_matches('/').to_string()
            }
        })
        .filter(|p| fs::symlink_metadata(p).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a.txt.bak"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("[a-c]x", "bx") && !glob_match("[!a-c]x", "bx"));
        assert!(glob_match("\\*", "*") && !glob_match("\\*", "a"));
        assert!(glob_match("[", "["));
    }

    #[test]
    fn trims_prefixes_and_suffixes() {
        assert_eq!(trim("/a/b/c.tar.gz", "*/", 'H'), "c.tar.gz");
        assert_eq!(trim("/a/b/c.tar.gz", "*/", '#'), "a/b/c.tar.gz");
        assert_eq!(trim("c.tar.gz", ".*", '%'), "c.tar");
        assert_eq!(trim("c.tar.gz", ".*", 'P'), "c");
        assert_eq!(trim("abc", "x", '%'), "abc");
    }

    #[test]
    fn globs_files() {
        let d = std::env::temp_dir().join(format!("toolbox-glob-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("sub")).unwrap();
        for f in ["a.txt", "b.txt", ".hidden.txt", "sub/c.txt"] {
            fs::write(d.join(f), "").unwrap();
        }
        let base = d.to_str().unwrap();
        assert_eq!(
            glob(&format!("{base}/*.txt")),
            vec![format!("{base}/a.txt"), format!("{base}/b.txt")]
        );
        assert_eq!(
            glob(&format!("{base}/*/c.txt")),
            vec![format!("{base}/sub/c.txt")]
        );
        assert!(glob(&format!("{base}/*.none")).is_empty());
        fs::remove_dir_all(&d).unwrap();
    }
}
