//! The terminal on stdin (`kubectl exec -it`) and what Ctrl-C means without signals.
//!
//! The node agent runs the line discipline: it echoes, edits the line and hands the guest
//! whole lines. Ctrl-C reaches the guest as the single byte 0x03, written at once, and a guest
//! that has not read that byte within about half a second is killed with exit code 130. So
//! whatever waits on the terminal must read it: [`Tty`] turns the byte into an end of input
//! for the reader that meets it and raises a flag, which the shell and the dispatcher turn
//! into status 130 (SIGINT's, for the whole command line), and [`Tty::sleep`] waits on the
//! clock and the terminal at once. Every reader of the terminal shares one buffer, so bytes
//! read ahead (by `sleep`, or with a line) stay there for the next command.
#![cfg_attr(
    not(any(test, target_os = "wasi")),
    allow(
        dead_code,
        reason = "only WASI opens a terminal; natively only tests do"
    )
)]

use crate::io::Input;
use std::cell::RefCell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Ctrl-C as the terminal delivers it.
pub const INTERRUPT: u8 = 0x03;

/// The status of a command that Ctrl-C ended (128 + SIGINT).
pub const INTERRUPTED: i32 = 130;

/// How much one read from the terminal takes at most.
const CHUNK: usize = 4096;

/// The raw terminal stream: the host's `wasi:cli/stdin` on WASI, a script in tests.
pub trait Console {
    /// Blocks until bytes (at most `max`) arrive; empty at end of input.
    fn read(&mut self, max: usize) -> Vec<u8>;
    /// Waits until [`Console::read`] would not block, or `timeout` passes (`None`: no
    /// timeout); true when it would not block.
    fn wait(&mut self, timeout: Option<Duration>) -> bool;
    /// Sleeps without watching the input (which has ended).
    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// The terminal's input with its read-ahead buffer.
struct Reader {
    console: Box<dyn Console>,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    interrupted: bool,
}

impl Reader {
    /// Reads from the console, appending to what is buffered; false at end of input.
    fn read_more(&mut self) -> bool {
        let bytes = self.console.read(CHUNK);
        if bytes.is_empty() {
            self.eof = true;
            return false;
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
        self.buf.extend_from_slice(&bytes);
        true
    }
}

impl BufRead for Reader {
    /// Hands out the bytes before the next Ctrl-C; at the Ctrl-C itself, consumes it, raises
    /// the flag and reports end of input, so any reader (a line, `cat`, `grep`) stops there.
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.buf.len() && !self.eof {
            self.read_more();
        }
        let pending = &self.buf[self.pos..];
        match pending.iter().position(|&b| b == INTERRUPT) {
            Some(0) => {
                self.pos += 1;
                self.interrupted = true;
                Ok(&[])
            }
            Some(i) => Ok(&self.buf[self.pos..self.pos + i]),
            None => Ok(&self.buf[self.pos..]),
        }
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.buf.len());
    }
}

impl Read for Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// The controlling terminal: stdin when it is a terminal, shared by every applet of the
/// session (a pipeline's `sleep` still watches it for Ctrl-C).
#[derive(Clone)]
pub struct Tty {
    reader: Rc<RefCell<Reader>>,
    input: Input,
}

impl Tty {
    /// A terminal reading from `console`.
    pub fn new(console: impl Console + 'static) -> Tty {
        let reader = Rc::new(RefCell::new(Reader {
            console: Box::new(console),
            buf: Vec::new(),
            pos: 0,
            eof: false,
            interrupted: false,
        }));
        let input = Input::shared(reader.clone());
        Tty { reader, input }
    }

    /// The terminal as a stdin.
    pub fn input(&self) -> Input {
        self.input.clone()
    }

    /// Whether `input` reads from this terminal.
    pub fn is(&self, input: &Input) -> bool {
        self.input.same(input)
    }

    /// Whether Ctrl-C ended a command and nobody has handled it yet.
    pub fn interrupted(&self) -> bool {
        self.reader.borrow().interrupted
    }

    /// Handles a pending Ctrl-C: true when there was one.
    pub fn take_interrupt(&self) -> bool {
        std::mem::take(&mut self.reader.borrow_mut().interrupted)
    }

    /// Sleeps for `duration` (`Duration::MAX`: forever) unless Ctrl-C comes first; false then.
    ///
    /// Other bytes that arrive meanwhile stay buffered for whoever reads stdin next, but a
    /// Ctrl-C discards what was typed ahead of it, as a terminal's SIGINT flushes its input.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = (duration != Duration::MAX)
            .then(|| Instant::now().checked_add(duration))
            .flatten();
        let mut r = self.reader.borrow_mut();
        loop {
            if let Some(i) = r.buf[r.pos..].iter().position(|&b| b == INTERRUPT) {
                r.pos += i + 1;
                r.interrupted = true;
                return false;
            }
            let left = deadline.map(|t| t.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return true;
            }
            if r.eof {
                match left {
                    Some(left) => r.console.sleep(left),
                    None => loop {
                        r.console.sleep(Duration::from_secs(86400));
                    },
                }
                return true;
            }
            if !r.console.wait(left) {
                return true;
            }
            r.read_more();
        }
    }
}

/// The host's terminal.
#[cfg(target_os = "wasi")]
mod wasi {
    use super::Console;
    use std::time::Duration;
    use wasip2::io::streams::InputStream;

    /// `wasi:cli/stdin`, read directly so that a wait can poll it together with a timer.
    pub struct Stdin(InputStream);

    impl Console for Stdin {
        fn read(&mut self, max: usize) -> Vec<u8> {
            loop {
                match self.0.blocking_read(max as u64) {
                    Ok(bytes) if bytes.is_empty() => continue,
                    Ok(bytes) => return bytes,
                    Err(_) => return Vec::new(),
                }
            }
        }

        fn wait(&mut self, timeout: Option<Duration>) -> bool {
            let readable = self.0.subscribe();
            let Some(timeout) = timeout else {
                readable.block();
                return true;
            };
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            let timer = wasip2::clocks::monotonic_clock::subscribe_duration(nanos);
            wasip2::io::poll::poll(&[&readable, &timer]).contains(&0)
        }
    }

    /// The terminal, when the host says stdin is one.
    pub fn open() -> Option<super::Tty> {
        wasip2::cli::terminal_stdin::get_terminal_stdin()?;
        Some(super::Tty::new(Stdin(wasip2::cli::stdin::get_stdin())))
    }
}

#[cfg(target_os = "wasi")]
pub use wasi::open;

/// The terminal on stdin: none outside WASI (a native build is only for tests).
#[cfg(not(target_os = "wasi"))]
pub fn open() -> Option<Tty> {
    None
}

/// A terminal that replays a script, for tests.
#[cfg(test)]
pub mod script {
    use super::{Console, Tty};
    use std::collections::VecDeque;
    use std::time::Duration;

    /// Each read returns the next chunk; once they are used up, reads see end of input and
    /// waits time out (nothing more arrives while a command sleeps).
    pub struct Script(VecDeque<Vec<u8>>);

    impl Console for Script {
        fn read(&mut self, _max: usize) -> Vec<u8> {
            self.0.pop_front().unwrap_or_default()
        }
        fn wait(&mut self, _timeout: Option<Duration>) -> bool {
            !self.0.is_empty()
        }
        fn sleep(&mut self, _duration: Duration) {}
    }

    /// A terminal on which the user types `chunks`, one host write each.
    pub fn tty(chunks: &[&[u8]]) -> Tty {
        Tty::new(Script(chunks.iter().map(|c| c.to_vec()).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(tty: &Tty) -> Vec<u8> {
        let mut all = Vec::new();
        tty.input().read_to_end(&mut all).unwrap();
        all
    }

    #[test]
    fn ctrl_c_ends_a_read_raises_the_flag_once_and_reading_goes_on() {
        let tty = script::tty(&[b"ec", b"ho\x03", b"ls\n"]);
        let mut line = Vec::new();
        tty.input().read_line_bytes(&mut line).unwrap();
        assert_eq!(line, b"echo");
        assert!(tty.take_interrupt());
        assert!(!tty.interrupted());
        assert_eq!(rest(&tty), b"ls\n");
        assert!(!tty.interrupted());
    }

    #[test]
    fn sleep_keeps_what_arrives_for_the_next_reader() {
        let tty = script::tty(&[b"ls\n", b"pwd\n"]);
        assert!(tty.sleep(Duration::from_millis(10)));
        assert!(!tty.interrupted());
        assert_eq!(rest(&tty), b"ls\npwd\n");
    }

    #[test]
    fn ctrl_c_interrupts_sleep_and_discards_what_was_typed_ahead() {
        let tty = script::tty(&[b"ls\n", b"\x03pwd\n"]);
        assert!(!tty.sleep(Duration::MAX));
        assert!(tty.take_interrupt());
        assert_eq!(rest(&tty), b"pwd\n");
    }

    #[test]
    fn sleep_sees_a_ctrl_c_that_is_already_buffered() {
        let tty = script::tty(&[b"x\n\x03"]);
        let mut line = Vec::new();
        tty.input().read_line_bytes(&mut line).unwrap();
        assert_eq!(line, b"x\n");
        assert!(!tty.sleep(Duration::from_secs(100)));
        assert!(tty.interrupted());
    }

    #[test]
    fn sleep_after_end_of_input_just_sleeps() {
        let tty = script::tty(&[]);
        assert!(rest(&tty).is_empty());
        assert!(tty.sleep(Duration::from_millis(1)));
    }
}
