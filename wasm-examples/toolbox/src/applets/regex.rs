//! A small backtracking regular-expression matcher for `grep`: literals, `.`, bracket
//! expressions (ranges, negation, `[:digit:]`-style classes), `*`, `+`, `?`, `^`, `$` and
//! top-level `|`. Basic syntax (BRE) spells `+ ? |` as `\+ \? \|`; extended (`-E`) does not.
//! Groups and back-references are not supported.

/// One position in a pattern.
#[derive(Debug, Clone)]
enum Atom {
    Char(char),
    Any,
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Repeat {
    One,
    Star,
    Plus,
    Optional,
}

#[derive(Debug, Clone)]
struct Branch {
    start: bool,
    end: bool,
    items: Vec<(Atom, Repeat)>,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Regex {
    branches: Vec<Branch>,
    icase: bool,
}

fn class_ranges(name: &str) -> Option<Vec<(char, char)>> {
    Some(match name {
        "digit" => vec![('0', '9')],
        "alpha" => vec![('a', 'z'), ('A', 'Z')],
        "alnum" => vec![('a', 'z'), ('A', 'Z'), ('0', '9')],
        "upper" => vec![('A', 'Z')],
        "lower" => vec![('a', 'z')],
        "space" => vec![(' ', ' '), ('\t', '\r')],
        "blank" => vec![(' ', ' '), ('\t', '\t')],
        "xdigit" => vec![('0', '9'), ('a', 'f'), ('A', 'F')],
        "punct" => vec![('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
        _ => return None,
    })
}

impl Regex {
    /// Compiles `pattern`; `extended` selects ERE syntax, `icase` ignores case.
    pub fn new(pattern: &str, extended: bool, icase: bool) -> Result<Regex, String> {
        let pattern = if icase {
            pattern.to_lowercase()
        } else {
            pattern.to_string()
        };
        let chars: Vec<char> = pattern.chars().collect();
        let mut branches = Vec::new();
        let mut cur = Branch {
            start: false,
            end: false,
            items: Vec::new(),
        };
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let escaped_op =
                c == '\\' && !extended && matches!(chars.get(i + 1), Some('+' | '?' | '|'));
            let op = if escaped_op {
                i += 1;
                Some(chars[i])
            } else if extended && matches!(c, '+' | '?' | '|') || c == '*' {
                Some(c)
            } else {
                None
            };
            match (op, c) {
                (Some('|'), _) => {
                    branches.push(std::mem::replace(
                        &mut cur,
                        Branch {
                            start: false,
                            end: false,
                            items: Vec::new(),
                        },
                    ));
                    i += 1;
                    continue;
                }
                (Some(r), _)
                    if !cur.items.is_empty() && cur.items.last().unwrap().1 == Repeat::One =>
                {
                    let rep = match r {
                        '*' => Repeat::Star,
                        '+' => Repeat::Plus,
                        _ => Repeat::Optional,
                    };
                    cur.items.last_mut().unwrap().1 = rep;
                    i += 1;
                    continue;
                }
                // A repetition operator with nothing to repeat is a literal.
                (Some(r), _) => cur.items.push((Atom::Char(r), Repeat::One)),
                (None, '^') if cur.items.is_empty() && !cur.start => cur.start = true,
                (None, '$')
                    if i + 1 == chars.len() || (extended && chars.get(i + 1) == Some(&'|')) =>
                {
                    cur.end = true
                }
                (None, '.') => cur.items.push((Atom::Any, Repeat::One)),
                (None, '[') => {
                    let (atom, next) = parse_class(&chars, i + 1)?;
                    cur.items.push((atom, Repeat::One));
                    i = next;
                    continue;
                }
                (None, '\\') => {
                    i += 1;
                    let Some(&e) = chars.get(i) else {
                        return Err("trailing backslash (\\)".into());
                    };
                    let atom = match e {
                        'd' => Atom::Class {
                            ranges: vec![('0', '9')],
                            negated: false,
                        },
                        's' => Atom::Class {
                            ranges: vec![(' ', ' '), ('\t', '\r')],
                            negated: false,
                        },
                        'w' => Atom::Class {
                            ranges: vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')],
                            negated: false,
                        },
                        't' => Atom::Char('\t'),
                        other => Atom::Char(other),
                    };
                    cur.items.push((atom, Repeat::One));
                }
                (None, other) => cur.items.push((Atom::Char(other), Repeat::One)),
            }
            i += 1;
        }
        branches.push(cur);
        Ok(Regex { branches, icase })
    }

    fn chars(&self, line: &str) -> Vec<char> {
        if self.icase {
            line.to_lowercase().chars().collect()
        } else {
            line.chars().collect()
        }
    }

    /// Whether the pattern matches all of `text` (`grep -x`, and each word for `grep -w`).
    pub fn is_full_match(&self, text: &str) -> bool {
        let text = self.chars(text);
        self.branches
            .iter()
            .any(|b| match_here(&b.items, &text, true))
    }

    /// Whether the pattern matches anywhere in `line`.
    pub fn is_match(&self, line: &str) -> bool {
        let text = self.chars(line);
        self.branches.iter().any(|b| {
            if b.start {
                match_here(&b.items, &text, b.end)
            } else {
                (0..=text.len()).any(|s| match_here(&b.items, &text[s..], b.end))
            }
        })
    }
}

fn parse_class(chars: &[char], mut i: usize) -> Result<(Atom, usize), String> {
    let mut ranges = Vec::new();
    let negated = matches!(chars.get(i), Some('^' | '!'));
    if negated {
        i += 1;
    }
    let mut first = true;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("unmatched [".into());
        };
        if c == ']' && !first {
            return Ok((Atom::Class { ranges, negated }, i + 1));
        }
        first = false;
        if c == '[' && chars.get(i + 1) == Some(&':') {
            let rest: String = chars[i + 2..].iter().collect();
            if let Some(end) = rest.find(":]") {
                ranges.extend(class_ranges(&rest[..end]).ok_or("invalid character class")?);
                i += 2 + end + 2;
                continue;
            }
        }
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&e| e != ']') {
            ranges.push((c, chars[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
}

fn atom_matches(atom: &Atom, c: char) -> bool {
    match atom {
        Atom::Char(a) => *a == c,
        Atom::Any => true,
        Atom::Class { ranges, negated } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
    }
}

fn match_here(items: &[(Atom, Repeat)], text: &[char], end: bool) -> bool {
    let Some(((atom, rep), rest)) = items.split_first() else {
        return !end || text.is_empty();
    };
    match rep {
        Repeat::One => {
            text.first().is_some_and(|&c| atom_matches(atom, c))
                && match_here(rest, &text[1..], end)
        }
        Repeat::Optional => {
            (text.first().is_some_and(|&c| atom_matches(atom, c))
                && match_here(rest, &text[1..], end))
                || match_here(rest, text, end)
        }
        Repeat::Star | Repeat::Plus => {
            let max = text.iter().take_while(|&&c| atom_matches(atom, c)).count();
            let min = usize::from(*rep == Repeat::Plus);
            (min..=max).rev().any(|n| match_here(rest, &text[n..], end))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, ext: bool, line: &str) -> bool {
        Regex::new(p, ext, false).unwrap().is_match(line)
    }

    #[test]
    fn literals_dots_and_anchors() {
        assert!(m("wasm", false, "hello wasmkube"));
        assert!(!m("^wasm", false, "hello wasmkube"));
        assert!(m("^hel.o", false, "hello"));
        assert!(m("kube$", false, "wasmkube"));
        assert!(!m("^$", false, "x"));
        assert!(m("^$", false, ""));
        assert!(m("a$b", false, "a$b"));
    }

    #[test]
    fn repetition_in_basic_and_extended_syntax() {
        assert!(m("ab*c", false, "ac") && m("ab*c", false, "abbbc"));
        assert!(m("a+", false, "a+") && !m("a+", false, "aa"));
        assert!(m("ab\\+c", false, "abbc") && !m("ab\\+c", false, "ac"));
        assert!(m("ab+c", true, "abbc") && !m("ab+c", true, "ac"));
        assert!(m("colou?r", true, "color") && m("colou?r", true, "colour"));
        assert!(m("^\\*", false, "*star") && m("^*", false, "*"));
    }

    #[test]
    fn classes_and_alternation() {
        assert!(m("[0-9][0-9]*", false, "port 80"));
        assert!(!m("^[^a-z]", false, "abc"));
        assert!(m("[[:digit:]]+ms", true, "took 15ms"));
        assert!(m("[]x]", false, "]"));
        assert!(m("error|warn", true, "a warning"));
        assert!(m("error\\|warn", false, "an error"));
        assert!(!m("error|warn", false, "an error"));
        assert!(m("\\d+", true, "x42"));
    }

    #[test]
    fn ignore_case_and_errors() {
        assert!(
            Regex::new("WASM", false, true)
                .unwrap()
                .is_match("WasmKube")
        );
        assert!(Regex::new("[abc", false, false).is_err());
    }
}
