//! `$((...))`: signed 64-bit integer arithmetic with C precedence (no assignment operators).

/// Evaluates `src`; bare names are looked up with `var` (unset or non-numeric is 0).
pub fn eval(src: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<i64, String> {
    let toks = tokens(src)?;
    let mut p = Parser { toks, pos: 0, var };
    let v = p.ternary()?;
    if p.pos != p.toks.len() {
        return Err("arithmetic syntax error".into());
    }
    Ok(v)
}

#[derive(Debug, Clone, PartialEq)]
enum T {
    Num(i64),
    Name(String),
    Op(&'static str),
}

const OPS: &[&str] = &[
    "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "**", "+", "-", "*", "/", "%", "<", ">", "!",
    "~", "&", "|", "^", "(", ")", "?", ":",
];

fn tokens(src: &str) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    let s = src.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let c = s[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < s.len() && (s[i] as char).is_ascii_alphanumeric() {
                i += 1;
            }
            let text = &src[start..i];
            let v = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                i64::from_str_radix(hex, 16)
            } else if text.len() > 1 && text.starts_with('0') {
                i64::from_str_radix(&text[1..], 8)
            } else {
                text.parse()
            };
            out.push(T::Num(v.map_err(|_| format!("{text}: invalid number"))?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < s.len() && ((s[i] as char).is_ascii_alphanumeric() || s[i] == b'_') {
                i += 1;
            }
            out.push(T::Name(src[start..i].to_string()));
        } else if let Some(op) = OPS.iter().find(|op| src[i..].starts_with(**op)) {
            out.push(T::Op(op));
            i += op.len();
        } else {
            return Err(format!("arithmetic syntax error: unexpected '{c}'"));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<T>,
    pos: usize,
    var: &'a dyn Fn(&str) -> Option<String>,
}

/// Binary operators by precedence level, loosest first.
const LEVELS: &[&[&str]] = &[
    &["||"],
    &["&&"],
    &["|"],
    &["^"],
    &["&"],
    &["==", "!="],
    &["<", "<=", ">", ">="],
    &["<<", ">>"],
    &["+", "-"],
    &["*", "/", "%"],
];

impl Parser<'_> {
    fn eat(&mut self, op: &str) -> bool {
        let hit = matches!(self.toks.get(self.pos), Some(T::Op(o)) if *o == op);
        self.pos += usize::from(hit);
        hit
    }

    fn ternary(&mut self) -> Result<i64, String> {
        let cond = self.binary(0)?;
        if !self.eat("?") {
            return Ok(cond);
        }
        let a = self.ternary()?;
        if !self.eat(":") {
            return Err("arithmetic syntax error: expected ':'".into());
        }
        let b = self.ternary()?;
        Ok(if cond != 0 { a } else { b })
    }

    fn binary(&mut self, level: usize) -> Result<i64, String> {
        if level == LEVELS.len() {
            return self.power();
        }
        let mut v = self.binary(level + 1)?;
        'outer: loop {
            for op in LEVELS[level] {
                if self.eat(op) {
                    let r = self.binary(level + 1)?;
                    v = apply(op, v, r)?;
                    continue 'outer;
                }
            }
            return Ok(v);
        }
    }

    fn power(&mut self) -> Result<i64, String> {
        let base = self.unary()?;
        if self.eat("**") {
            let exp = self.power()?;
            return u32::try_from(exp)
                .map(|e| base.wrapping_pow(e))
                .map_err(|_| "exponent less than 0".to_string());
        }
        Ok(base)
    }

    fn unary(&mut self) -> Result<i64, String> {
        if self.eat("-") {
            return Ok(self.unary()?.wrapping_neg());
        }
        if self.eat("+") {
            return self.unary();
        }
        if self.eat("!") {
            return Ok(i64::from(self.unary()? == 0));
        }
        if self.eat("~") {
            return Ok(!self.unary()?);
        }
        if self.eat("(") {
            let v = self.ternary()?;
            if !self.eat(")") {
                return Err("arithmetic syntax error: missing ')'".into());
            }
            return Ok(v);
        }
        match self.toks.get(self.pos).cloned() {
            Some(T::Num(n)) => {
                self.pos += 1;
                Ok(n)
            }
            Some(T::Name(name)) => {
                self.pos += 1;
                let value = (self.var)(&name).unwrap_or_default();
                let value = value.trim();
                if value.is_empty() || value == name {
                    return Ok(0);
                }
                // A variable may itself hold an expression (`a=1+2; $((a*2))` is 6).
                eval(value, self.var)
            }
            _ => Err("arithmetic syntax error".into()),
        }
    }
}

fn apply(op: &str, a: i64, b: i64) -> Result<i64, String> {
    Ok(match op {
        "||" => i64::from(a != 0 || b != 0),
        "&&" => i64::from(a != 0 && b != 0),
        "|" => a | b,
        "^" => a ^ b,
        "&" => a & b,
        "==" => i64::from(a == b),
        "!=" => i64::from(a != b),
        "<" => i64::from(a < b),
        "<=" => i64::from(a <= b),
        ">" => i64::from(a > b),
        ">=" => i64::from(a >= b),
        "<<" => a.wrapping_shl(b as u32),
        ">>" => a.wrapping_shr(b as u32),
        "+" => a.wrapping_add(b),
        "-" => a.wrapping_sub(b),
        "*" => a.wrapping_mul(b),
        "/" | "%" if b == 0 => return Err("divide by zero".into()),
        "/" => a.wrapping_div(b),
        _ => a.wrapping_rem(b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str) -> Result<i64, String> {
        eval(s, &|name| match name {
            "i" => Some("4".into()),
            "e" => Some("1+2".into()),
            _ => None,
        })
    }

    #[test]
    fn precedence_and_variables() {
        assert_eq!(ev("1 + 2 * 3"), Ok(7));
        assert_eq!(ev("(1 + 2) * 3"), Ok(9));
        assert_eq!(ev("i + 1"), Ok(5));
        assert_eq!(ev("unset * 3 + 1"), Ok(1));
        assert_eq!(ev("e * 2"), Ok(6));
        assert_eq!(ev("-i % 3"), Ok(-1));
        assert_eq!(ev("2 ** 10"), Ok(1024));
        assert_eq!(ev("i > 3 && i < 5"), Ok(1));
        assert_eq!(ev("i == 4 ? 10 : 20"), Ok(10));
        assert_eq!(ev("0x10 + 010"), Ok(24));
        assert_eq!(ev("1 << 4 | 1"), Ok(17));
    }

    #[test]
    fn errors() {
        assert!(ev("1 / 0").is_err());
        assert!(ev("1 +").is_err());
        assert!(ev("(1").is_err());
        assert!(ev("1 $ 2").is_err());
    }
}
