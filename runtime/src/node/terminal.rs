//! The host side of a terminal (`kubectl exec -t`, `attach` to a `tty: true` container): a
//! line discipline like a Linux tty's canonical mode, because a wasm guest has no kernel tty
//! to do it (ARCHITECTURE D11).
//!
//! Keys come in raw from the client's terminal. Printable input is echoed and collected into
//! a line; Backspace, Ctrl-U and Ctrl-W edit it; Enter echoes `\r\n` and hands the guest the
//! line with `\n`. Ctrl-C echoes `^C`, drops the line and hands the guest the byte 0x03 at
//! once (the session kills the instance if it does not read it: a guest not reading stdin
//! cannot be asked). Ctrl-D on an empty line is end of input. Escape sequences (arrow keys)
//! are swallowed. Output goes through [`onlcr`], so a guest's `\n` starts a new line.

/// Ctrl-C: interrupt.
pub const INTERRUPT: u8 = 0x03;
const EOF: u8 = 0x04;
const BACKSPACE: u8 = 0x08;
const KILL_WORD: u8 = 0x17;
const KILL_LINE: u8 = 0x15;
const ESCAPE: u8 = 0x1b;
const DELETE: u8 = 0x7f;
const ERASE: &[u8] = b"\x08 \x08";

/// What one chunk of keys does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// What to show the user.
    pub echo: Vec<u8>,
    /// What the guest reads, in order (lines, and 0x03 for each Ctrl-C).
    pub deliver: Vec<u8>,
    /// Whether Ctrl-C was pressed.
    pub interrupt: bool,
    /// Whether Ctrl-D ended the input (nothing after it was read).
    pub eof: bool,
}

/// Where an escape sequence is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Started,
    /// Inside `ESC [ ...` or `ESC O ...`, until a final byte.
    Sequence,
}

/// A terminal's line discipline and window size.
#[derive(Debug, Default)]
pub struct Terminal {
    line: Vec<u8>,
    escape: Escape,
    /// The client's window (columns, rows), from the resize channel.
    pub size: Option<(u16, u16)>,
}

impl Terminal {
    /// Processes keys typed by the user.
    pub fn feed(&mut self, keys: &[u8]) -> Fed {
        let mut fed = Fed::default();
        for &key in keys {
            match self.escape {
                Escape::Started => {
                    self.escape = if key == b'[' || key == b'O' {
                        Escape::Sequence
                    } else {
                        Escape::None
                    };
                    continue;
                }
                Escape::Sequence => {
                    if (0x40..=0x7e).contains(&key) {
                        self.escape = Escape::None;
                    }
                    continue;
                }
                Escape::None => {}
            }
            match key {
                b'\r' | b'\n' => {
                    fed.echo.extend_from_slice(b"\r\n");
                    fed.deliver.append(&mut self.line);
                    fed.deliver.push(b'\n');
                }
                INTERRUPT => {
                    fed.echo.extend_from_slice(b"^C\r\n");
                    self.line.clear();
                    fed.deliver.push(INTERRUPT);
                    fed.interrupt = true;
                }
                EOF if self.line.is_empty() => {
                    fed.eof = true;
                    return fed;
                }
                // Ctrl-D on a non-empty line hands it over without a newline, as a tty does.
                EOF => fed.deliver.append(&mut self.line),
                BACKSPACE | DELETE => {
                    if self.erase_char() {
                        fed.echo.extend_from_slice(ERASE);
                    }
                }
                KILL_LINE => {
                    while self.erase_char() {
                        fed.echo.extend_from_slice(ERASE);
                    }
                }
                KILL_WORD => {
                    while self.line.last().is_some_and(u8::is_ascii_whitespace) {
                        self.erase_char();
                        fed.echo.extend_from_slice(ERASE);
                    }
                    while self.line.last().is_some_and(|b| !b.is_ascii_whitespace()) {
                        self.erase_char();
                        fed.echo.extend_from_slice(ERASE);
                    }
                }
                ESCAPE => self.escape = Escape::Started,
                b'\t' => {
                    self.line.push(key);
                    fed.echo.push(key);
                }
                // Other control keys mean nothing here.
                0..0x20 => {}
                _ => {
                    self.line.push(key);
                    fed.echo.push(key);
                }
            }
        }
        fed
    }

    /// Removes the last character (all bytes of a UTF-8 one) of the line being typed.
    fn erase_char(&mut self) -> bool {
        let Some(mut last) = self.line.pop() else {
            return false;
        };
        // Continuation bytes are 0b10xx_xxxx: pop until the leading byte.
        while last & 0xc0 == 0x80 {
            match self.line.pop() {
                Some(b) => last = b,
                None => break,
            }
        }
        true
    }

    /// Records a resize message (`{"Width":80,"Height":24}`) from the client.
    pub fn resize(&mut self, message: &[u8]) {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Size {
            width: u16,
            height: u16,
        }
        if let Ok(size) = serde_json::from_slice::<Size>(message) {
            self.size = Some((size.width, size.height));
        }
    }
}

/// Output as a terminal shows it: every `\n` becomes `\r\n`.
pub fn onlcr(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    for &b in bytes {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enter_echoes_and_delivers_the_line() {
        let mut t = Terminal::default();
        let fed = t.feed(b"ls /\r");
        assert_eq!(fed.echo, b"ls /\r\n");
        assert_eq!(fed.deliver, b"ls /\n");
        assert!(!fed.interrupt && !fed.eof);
        // Nothing is delivered before Enter.
        assert_eq!(t.feed(b"ec").deliver, b"");
        assert_eq!(t.feed(b"ho\n").deliver, b"echo\n");
    }

    #[test]
    fn editing_keys_change_the_line() {
        let mut t = Terminal::default();
        let fed = t.feed(b"lx\x7fs -l\x08\x08/tmp\r");
        assert_eq!(fed.deliver, b"ls /tmp\n");
        assert_eq!(&fed.echo[..5], b"lx\x08 \x08");
        assert_eq!(
            t.feed(b"echo one two\x17three\r").deliver,
            b"echo one three\n"
        );
        assert_eq!(t.feed(b"garbage\x15ok\r").deliver, b"ok\n");
        // A multi-byte character is erased whole.
        assert_eq!(t.feed("é\x7fe\r".as_bytes()).deliver, b"e\n");
        // Nothing to erase: nothing echoed.
        assert!(t.feed(b"\x7f").echo.is_empty());
    }

    #[test]
    fn ctrl_c_drops_the_line_and_interrupts() {
        let mut t = Terminal::default();
        let fed = t.feed(b"sleep 100\x03");
        assert!(fed.interrupt);
        assert_eq!(fed.deliver, [INTERRUPT]);
        assert_eq!(fed.echo, b"sleep 100^C\r\n");
        assert_eq!(t.feed(b"ls\r").deliver, b"ls\n");
    }

    #[test]
    fn ctrl_d_is_eof_only_on_an_empty_line() {
        let mut t = Terminal::default();
        let fed = t.feed(b"cat\x04");
        assert!(!fed.eof);
        assert_eq!(fed.deliver, b"cat");
        let fed = t.feed(b"\x04ignored");
        assert!(fed.eof);
        assert!(fed.deliver.is_empty());
    }

    #[test]
    fn escape_sequences_are_swallowed() {
        let mut t = Terminal::default();
        let fed = t.feed(b"l\x1b[A\x1b[1;5Cs\x1bOB\r");
        assert_eq!(fed.deliver, b"ls\n");
        assert_eq!(fed.echo, b"ls\r\n");
    }

    #[test]
    fn resize_and_onlcr() {
        let mut t = Terminal::default();
        t.resize(br#"{"Width":120,"Height":40}"#);
        assert_eq!(t.size, Some((120, 40)));
        t.resize(b"not json");
        assert_eq!(t.size, Some((120, 40)));
        assert_eq!(onlcr(b"a\nb\n"), b"a\r\nb\r\n");
    }
}
