//! Builds the command tree from tokens: lists, `&&`/`||`, pipelines, `if`, `while`/`until`,
//! `for`, `{ }` groups, `( )` subshells, simple commands with assignments and redirections.

use super::ast::{Node, Part, Redir, Word};
use super::lex::{SyntaxError, Tok, tokenize};

/// Parses a whole script.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    let mut p = Parser {
        toks: tokenize(src)?,
        pos: 0,
    };
    let list = p.list(&[])?;
    match p.peek() {
        None => Ok(list),
        Some(t) => Err(unexpected(t)),
    }
}

fn unexpected(t: &Tok) -> SyntaxError {
    let what = match t {
        Tok::Word(w) => w.literal().unwrap_or("word").to_string(),
        Tok::Op(op) => op.to_string(),
        Tok::Redir { op, .. } => op.to_string(),
        Tok::Newline => "newline".to_string(),
    };
    SyntaxError::Invalid(format!("unexpected \"{what}\""))
}

fn is_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits `NAME=value` off the front of a word.
fn assignment(w: &Word) -> Option<(String, Word)> {
    let Part::Lit(first) = w.0.first()? else {
        return None;
    };
    let (name, rest) = first.split_once('=')?;
    if !is_name(name) {
        return None;
    }
    let mut value = w.0[1..].to_vec();
    if !rest.is_empty() {
        value.insert(0, Part::Lit(rest.to_string()));
    }
    Some((name.to_string(), Word(value)))
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn keyword(&self) -> Option<&str> {
        match self.peek() {
            Some(Tok::Word(w)) => w.literal().filter(|s| {
                [
                    "if", "then", "elif", "else", "fi", "while", "until", "do", "done", "for",
                    "in", "{", "}", "!",
                ]
                .contains(s)
            }),
            _ => None,
        }
    }

    fn skip_newlines(&mut self) {
        while self.peek() == Some(&Tok::Newline) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, kw: &str) -> Result<(), SyntaxError> {
        match self.peek() {
            None => Err(SyntaxError::Incomplete),
            Some(_) if self.keyword() == Some(kw) => {
                self.pos += 1;
                Ok(())
            }
            Some(t) => Err(unexpected(t)),
        }
    }

    /// Commands separated by `;`, `&` or newlines, up to one of `terms` (or `)`, or the end).
    fn list(&mut self, terms: &[&str]) -> Result<Node, SyntaxError> {
        let mut items = Vec::new();
        loop {
            self.skip_newlines();
            match self.peek() {
                None | Some(Tok::Op(")")) => break,
                _ if self.keyword().is_some_and(|k| terms.contains(&k)) => break,
                _ => {}
            }
            items.push(self.and_or()?);
            match self.peek() {
                // `&` runs in the foreground: there are no background jobs without processes.
                Some(Tok::Op(";" | "&") | Tok::Newline) => self.pos += 1,
                _ => break,
            }
        }
        Ok(Node::List(items))
    }

    fn and_or(&mut self) -> Result<Node, SyntaxError> {
        let first = self.pipeline()?;
        let mut rest = Vec::new();
        while let Some(Tok::Op(op @ ("&&" | "||"))) = self.peek() {
            let and = *op == "&&";
            self.pos += 1;
            self.skip_newlines();
            rest.push((and, self.pipeline()?));
        }
        Ok(if rest.is_empty() {
            first
        } else {
            Node::AndOr(Box::new(first), rest)
        })
    }

    fn pipeline(&mut self) -> Result<Node, SyntaxError> {
        let negate = self.keyword() == Some("!");
        if negate {
            self.pos += 1;
        }
        let mut cmds = vec![self.command()?];
        while self.peek() == Some(&Tok::Op("|")) {
            self.pos += 1;
            self.skip_newlines();
            cmds.push(self.command()?);
        }
        Ok(if cmds.len() == 1 && !negate {
            cmds.remove(0)
        } else {
            Node::Pipeline { negate, cmds }
        })
    }

    fn command(&mut self) -> Result<Node, SyntaxError> {
        let node = match (self.keyword(), self.peek()) {
            (_, None) => return Err(SyntaxError::Incomplete),
            (Some("if"), _) => self.if_()?,
            (Some(kw @ ("while" | "until")), _) => {
                let until = kw == "until";
                self.pos += 1;
                let cond = self.list(&["do"])?;
                self.expect("do")?;
                let body = self.list(&["done"])?;
                self.expect("done")?;
                Node::Loop {
                    until,
                    cond: Box::new(cond),
                    body: Box::new(body),
                }
            }
            (Some("for"), _) => self.for_()?,
            (Some("{"), _) => {
                self.pos += 1;
                let body = self.list(&["}"])?;
                self.expect("}")?;
                Node::Group {
                    body: Box::new(body),
                    subshell: false,
                }
            }
            (None, Some(Tok::Op("("))) => {
                self.pos += 1;
                let body = self.list(&[])?;
                match self.peek() {
                    Some(Tok::Op(")")) => self.pos += 1,
                    None => return Err(SyntaxError::Incomplete),
                    Some(t) => return Err(unexpected(t)),
                }
                Node::Group {
                    body: Box::new(body),
                    subshell: true,
                }
            }
            (Some(kw), _) if kw != "in" => {
                return Err(SyntaxError::Invalid(format!("unexpected \"{kw}\"")));
            }
            _ => return self.simple(),
        };
        let redirs = self.redirections()?;
        Ok(if redirs.is_empty() {
            node
        } else {
            Node::Redirected(Box::new(node), redirs)
        })
    }

    fn if_(&mut self) -> Result<Node, SyntaxError> {
        self.pos += 1;
        let mut branches = Vec::new();
        let mut otherwise = None;
        loop {
            let cond = self.list(&["then"])?;
            self.expect("then")?;
            let body = self.list(&["elif", "else", "fi"])?;
            branches.push((cond, body));
            match self.keyword() {
                Some("elif") => self.pos += 1,
                Some("else") => {
                    self.pos += 1;
                    otherwise = Some(Box::new(self.list(&["fi"])?));
                    self.expect("fi")?;
                    break;
                }
                _ => {
                    self.expect("fi")?;
                    break;
                }
            }
        }
        Ok(Node::If {
            branches,
            otherwise,
        })
    }

    fn for_(&mut self) -> Result<Node, SyntaxError> {
        self.pos += 1;
        let var = match self.peek() {
            None => return Err(SyntaxError::Incomplete),
            Some(Tok::Word(w)) if w.literal().is_some_and(is_name) => {
                w.literal().unwrap_or_default().to_string()
            }
            Some(_) => return Err(SyntaxError::Invalid("bad for loop variable".into())),
        };
        self.pos += 1;
        self.skip_newlines();
        let mut items = None;
        if self.keyword() == Some("in") {
            self.pos += 1;
            let mut words = Vec::new();
            while let Some(Tok::Word(w)) = self.peek() {
                words.push(w.clone());
                self.pos += 1;
            }
            items = Some(words);
        }
        if let Some(Tok::Op(";") | Tok::Newline) = self.peek() {
            self.pos += 1;
        }
        self.skip_newlines();
        self.expect("do")?;
        let body = self.list(&["done"])?;
        self.expect("done")?;
        Ok(Node::For {
            var,
            items,
            body: Box::new(body),
        })
    }

    fn redirection(&mut self) -> Result<Option<Redir>, SyntaxError> {
        let Some(Tok::Redir { fd, op }) = self.peek().cloned() else {
            return Ok(None);
        };
        self.pos += 1;
        let target = match self.peek() {
            Some(Tok::Word(w)) => w.clone(),
            None => return Err(SyntaxError::Invalid("unexpected end of file".into())),
            Some(t) => return Err(unexpected(t)),
        };
        self.pos += 1;
        let fd = fd.unwrap_or(if op.starts_with('<') { 0 } else { 1 });
        Ok(Some(Redir { fd, op, target }))
    }

    fn redirections(&mut self) -> Result<Vec<Redir>, SyntaxError> {
        let mut out = Vec::new();
        while let Some(r) = self.redirection()? {
            out.push(r);
        }
        Ok(out)
    }

    fn simple(&mut self) -> Result<Node, SyntaxError> {
        let (mut assigns, mut words, mut redirs) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            if let Some(r) = self.redirection()? {
                redirs.push(r);
                continue;
            }
            let Some(Tok::Word(w)) = self.peek() else {
                break;
            };
            match assignment(w) {
                Some(a) if words.is_empty() => assigns.push(a),
                _ => words.push(w.clone()),
            }
            self.pos += 1;
        }
        if assigns.is_empty() && words.is_empty() && redirs.is_empty() {
            return Err(self.peek().map_or(SyntaxError::Incomplete, unexpected));
        }
        Ok(Node::Simple {
            assigns,
            words,
            redirs,
        })
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
