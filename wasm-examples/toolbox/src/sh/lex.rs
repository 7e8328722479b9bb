//! Splits shell source into tokens: words (with their quoting and `$` expansions kept as
//! structure, see `ast.rs`), operators, redirections and newlines.

use super::ast::{Part, Word};

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A word.
    Word(Word),
    /// `;`, `&`, `&&`, `|`, `||`, `(`, `)`.
    Op(&'static str),
    /// A redirection operator with its explicit descriptor (`2>`).
    Redir {
        /// The descriptor number written before the operator.
        fd: Option<u32>,
        /// `>`, `>>`, `<`, `>&`, `<&`, `>|`.
        op: &'static str,
    },
    /// A newline (a command separator).
    Newline,
}

/// Why the source could not be tokenised or parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum SyntaxError {
    /// More input could complete it (an open quote, `if` without `fi`, a trailing `&&`).
    Incomplete,
    /// It is wrong whatever follows.
    Invalid(String),
}

/// The tokeniser's cursor (its `$` handling lives in `dollar.rs`).
pub(super) struct Lexer {
    pub(super) chars: Vec<char>,
    pub(super) pos: usize,
}

/// Tokenises `src`.
pub fn tokenize(src: &str) -> Result<Vec<Tok>, SyntaxError> {
    Lexer {
        chars: src.chars().collect(),
        pos: 0,
    }
    .tokens()
}

/// Parses `src` as the inside of double quotes (for `$((...))` bodies).
pub fn quoted_text(src: &str) -> Result<Word, SyntaxError> {
    let mut lx = Lexer {
        chars: src.chars().collect(),
        pos: 0,
    };
    let mut parts = Vec::new();
    lx.double_quoted(&mut parts, false)?;
    Ok(Word(parts))
}

fn is_meta(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>'
    )
}

pub(super) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Lexer {
    pub(super) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(super) fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn tokens(mut self) -> Result<Vec<Tok>, SyntaxError> {
        let mut out = Vec::new();
        loop {
            while let Some(c) = self.peek() {
                if c == ' ' || c == '\t' {
                    self.pos += 1;
                } else if c == '\\' && self.peek_at(1) == Some('\n') {
                    self.pos += 2;
                } else {
                    break;
                }
            }
            let Some(c) = self.peek() else { return Ok(out) };
            let two: String = self.chars[self.pos..].iter().take(2).collect();
            match c {
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                '\n' => {
                    self.pos += 1;
                    out.push(Tok::Newline);
                }
                ';' | '&' | '|' | '(' | ')' => {
                    let op = match two.as_str() {
                        "&&" => "&&",
                        "||" => "||",
                        ";;" => {
                            return Err(SyntaxError::Invalid(
                                "case statements are not supported".into(),
                            ));
                        }
                        _ => match c {
                            ';' => ";",
                            '&' => "&",
                            '|' => "|",
                            '(' => "(",
                            _ => ")",
                        },
                    };
                    self.pos += op.len();
                    out.push(Tok::Op(op));
                }
                '<' | '>' => out.push(self.redirection(None)?),
                _ => {
                    let word = self.word(None)?;
                    let fd = word
                        .literal()
                        .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
                        .and_then(|s| s.parse().ok());
                    match (fd, self.peek()) {
                        (Some(fd), Some('<' | '>')) => out.push(self.redirection(Some(fd))?),
                        _ => out.push(Tok::Word(word)),
                    }
                }
            }
        }
    }

    fn redirection(&mut self, fd: Option<u32>) -> Result<Tok, SyntaxError> {
        let two: String = self.chars[self.pos..].iter().take(2).collect();
        let op = match two.as_str() {
            ">>" => ">>",
            ">&" => ">&",
            ">|" => ">|",
            "<&" => "<&",
            "<<" => {
                return Err(SyntaxError::Invalid(
                    "here-documents are not supported".into(),
                ));
            }
            _ if two.starts_with('>') => ">",
            _ => "<",
        };
        self.pos += op.len();
        Ok(Tok::Redir { fd, op })
    }

    /// Reads a word up to a metacharacter, or up to `end` (for `${x:-word}`).
    pub(super) fn word(&mut self, end: Option<char>) -> Result<Word, SyntaxError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let flush = |lit: &mut String, parts: &mut Vec<Part>| {
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(lit)));
            }
        };
        loop {
            let Some(c) = self.peek() else {
                if end.is_some() {
                    return Err(SyntaxError::Incomplete);
                }
                break;
            };
            if Some(c) == end || (end.is_none() && is_meta(c)) {
                break;
            }
            match c {
                '\\' => {
                    self.pos += 1;
                    match self.peek() {
                        Some('\n') => self.pos += 1,
                        Some(x) => {
                            flush(&mut lit, &mut parts);
                            parts.push(Part::Quoted(x.to_string()));
                            self.pos += 1;
                        }
                        None => lit.push('\\'),
                    }
                }
                '\'' => {
                    self.pos += 1;
                    let start = self.pos;
                    while self.peek().is_some_and(|c| c != '\'') {
                        self.pos += 1;
                    }
                    if self.peek().is_none() {
                        return Err(SyntaxError::Incomplete);
                    }
                    flush(&mut lit, &mut parts);
                    parts.push(Part::Quoted(self.chars[start..self.pos].iter().collect()));
                    self.pos += 1;
                }
                '"' => {
                    self.pos += 1;
                    flush(&mut lit, &mut parts);
                    self.double_quoted(&mut parts, true)?;
                }
                '$' | '`' => {
                    flush(&mut lit, &mut parts);
                    self.expansion(&mut parts, false)?;
                }
                _ => {
                    lit.push(c);
                    self.pos += 1;
                }
            }
        }
        flush(&mut lit, &mut parts);
        Ok(Word(parts))
    }

    /// Reads the inside of double quotes; with `closing`, up to and including the `"`.
    fn double_quoted(&mut self, parts: &mut Vec<Part>, closing: bool) -> Result<(), SyntaxError> {
        let mut s = String::new();
        loop {
            let Some(c) = self.peek() else {
                if closing {
                    return Err(SyntaxError::Incomplete);
                }
                break;
            };
            match c {
                '"' if closing => {
                    self.pos += 1;
                    break;
                }
                '\\' => {
                    self.pos += 1;
                    match self.peek() {
                        Some(x @ ('$' | '`' | '"' | '\\')) => {
                            s.push(x);
                            self.pos += 1;
                        }
                        Some('\n') => self.pos += 1,
                        _ => s.push('\\'),
                    }
                }
                '$' | '`' => {
                    parts.push(Part::Quoted(std::mem::take(&mut s)));
                    self.expansion(parts, true)?;
                }
                _ => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
        // Kept even when empty, so `""` is an (empty) field.
        parts.push(Part::Quoted(s));
        Ok(())
    }
}
