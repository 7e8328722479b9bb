//! The `$` forms inside words: `$name`, `${name op word}`, `$(...)`, `$((...))` and
//! backquotes, read into word parts for `expand.rs` to evaluate.

use super::ast::{ParamOp, Part};
use super::lex::{Lexer, SyntaxError, is_name_char};

impl Lexer {
    /// Reads `$...` or a backquoted command at the current position.
    pub(super) fn expansion(
        &mut self,
        parts: &mut Vec<Part>,
        quoted: bool,
    ) -> Result<(), SyntaxError> {
        if self.peek() == Some('`') {
            self.pos += 1;
            let mut src = String::new();
            loop {
                match self.peek() {
                    None => return Err(SyntaxError::Incomplete),
                    Some('`') => break,
                    Some('\\') if matches!(self.peek_at(1), Some('`' | '\\' | '$')) => {
                        src.push(self.chars[self.pos + 1]);
                        self.pos += 1;
                    }
                    Some(c) => src.push(c),
                }
                self.pos += 1;
            }
            self.pos += 1;
            parts.push(Part::Command { src, quoted });
            return Ok(());
        }
        self.pos += 1; // the `$`
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let part = self.braced(quoted)?;
                parts.push(part);
            }
            Some('(') if self.peek_at(1) == Some('(') => {
                self.pos += 2;
                let src = self.balanced(true)?;
                parts.push(Part::Arith { src, quoted });
            }
            Some('(') => {
                self.pos += 1;
                let src = self.balanced(false)?;
                parts.push(Part::Command { src, quoted });
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let start = self.pos;
                while self.peek().is_some_and(is_name_char) {
                    self.pos += 1;
                }
                let name = self.chars[start..self.pos].iter().collect();
                parts.push(Part::Param {
                    name,
                    op: ParamOp::Plain,
                    quoted,
                });
            }
            Some(c) if "?$#@*!-0123456789".contains(c) => {
                self.pos += 1;
                parts.push(Part::Param {
                    name: c.to_string(),
                    op: ParamOp::Plain,
                    quoted,
                });
            }
            _ => parts.push(if quoted {
                Part::Quoted("$".into())
            } else {
                Part::Lit("$".into())
            }),
        }
        Ok(())
    }

    fn braced(&mut self, quoted: bool) -> Result<Part, SyntaxError> {
        let bad = || SyntaxError::Invalid("bad substitution".into());
        let length = self.peek() == Some('#') && self.peek_at(1).is_some_and(|c| c != '}');
        if length {
            self.pos += 1;
        }
        let start = self.pos;
        if self
            .peek()
            .is_some_and(|c| "?$#@*!-".contains(c) || c.is_ascii_digit())
            && !self.peek().is_some_and(is_name_char)
        {
            self.pos += 1;
        } else {
            while self.peek().is_some_and(is_name_char) {
                self.pos += 1;
            }
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        if name.is_empty() {
            return Err(if self.peek().is_none() {
                SyntaxError::Incomplete
            } else {
                bad()
            });
        }
        let op = match self.peek() {
            None => return Err(SyntaxError::Incomplete),
            Some('}') if length => ParamOp::Length,
            Some('}') => ParamOp::Plain,
            Some(_) if length => return Err(bad()),
            Some(c) => {
                let colon = c == ':';
                if colon {
                    self.pos += 1;
                }
                let op = match (self.peek(), self.peek_at(1)) {
                    (Some('#'), Some('#')) if !colon => 'H',
                    (Some('%'), Some('%')) if !colon => 'P',
                    (Some(o @ ('-' | '=' | '+' | '?')), _) => o,
                    (Some(o @ ('#' | '%')), _) if !colon => o,
                    (None, _) => return Err(SyntaxError::Incomplete),
                    _ => return Err(bad()),
                };
                self.pos += if op == 'H' || op == 'P' { 2 } else { 1 };
                let word = self.word(Some('}'))?;
                ParamOp::With { op, colon, word }
            }
        };
        self.pos += 1; // the `}`
        Ok(Part::Param { name, op, quoted })
    }

    /// Reads up to the `)` (or `))` for arithmetic) that closes an expansion, skipping quotes.
    fn balanced(&mut self, arith: bool) -> Result<String, SyntaxError> {
        let start = self.pos;
        let mut depth = 0usize;
        loop {
            let Some(c) = self.peek() else {
                return Err(SyntaxError::Incomplete);
            };
            match c {
                '\\' => self.pos += 1,
                '\'' if !arith => {
                    self.pos += 1;
                    while self.peek().is_some_and(|c| c != '\'') {
                        self.pos += 1;
                    }
                }
                '"' => {
                    self.pos += 1;
                    while let Some(c) = self.peek().filter(|&c| c != '"') {
                        self.pos += if c == '\\' { 2 } else { 1 };
                    }
                }
                '(' => depth += 1,
                ')' if depth > 0 => depth -= 1,
                ')' if !arith => {
                    let src = self.chars[start..self.pos].iter().collect();
                    self.pos += 1;
                    return Ok(src);
                }
                ')' if self.peek_at(1) == Some(')') => {
                    let src = self.chars[start..self.pos].iter().collect();
                    self.pos += 2;
                    return Ok(src);
                }
                _ => {}
            }
            if self.peek().is_none() {
                return Err(SyntaxError::Incomplete);
            }
            self.pos += 1;
        }
    }
}
