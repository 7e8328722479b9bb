//! The standard streams and environment an applet runs with.
//!
//! Applets run in-process as plain functions, so a shell can hand them a file, a pipe
//! buffer or its own streams. The handles are shared (`Rc<RefCell<..>>`) because `2>&1` makes
//! stdout and stderr the same stream, and a shell's `read` and the commands after it must
//! consume the same buffered stdin without losing bytes. When stdin is a terminal it is
//! the [`Tty`]'s shared reader, which also carries Ctrl-C (see `tty.rs`).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::rc::Rc;

use crate::tty::Tty;

/// The buffer behind a captured output (`$(...)`, a pipe's left side, tests).
pub type Captured = Rc<RefCell<Vec<u8>>>;

/// A shared, buffered input stream.
#[derive(Clone)]
pub struct Input(Rc<RefCell<dyn BufRead>>);

impl Input {
    /// Wraps a buffered reader.
    pub fn new(r: impl BufRead + 'static) -> Self {
        Input(Rc::new(RefCell::new(r)))
    }

    /// An input read through an existing shared reader (the terminal's).
    pub fn shared(r: Rc<RefCell<dyn BufRead>>) -> Self {
        Input(r)
    }

    /// Whether both read the same stream.
    pub fn same(&self, other: &Input) -> bool {
        std::ptr::addr_eq(Rc::as_ptr(&self.0), Rc::as_ptr(&other.0))
    }

    /// An input that is at end of file.
    pub fn empty() -> Self {
        Self::new(io::empty())
    }

    /// An input that yields `bytes` (the left side of a pipe).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self::new(io::Cursor::new(bytes))
    }

    /// Reads up to and including the next `\n`; `Ok(0)` at end of file.
    pub fn read_line_bytes(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        self.0.borrow_mut().read_until(b'\n', buf)
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

/// A shared output stream.
#[derive(Clone)]
pub struct Output(Rc<RefCell<dyn Write>>);

impl Output {
    /// Wraps a writer.
    pub fn new(w: impl Write + 'static) -> Self {
        Output(Rc::new(RefCell::new(w)))
    }

    /// An output that collects everything written, and the buffer to read it back from.
    pub fn capture() -> (Self, Captured) {
        let buf = Rc::new(RefCell::new(Vec::new()));
        (Output(buf.clone()), buf)
    }

    /// An output that discards everything (`/dev/null`).
    pub fn sink() -> Self {
        Self::new(io::sink())
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// Everything an applet gets besides its arguments.
#[derive(Clone)]
pub struct Io {
    /// Standard input.
    pub stdin: Input,
    /// Standard output.
    pub stdout: Output,
    /// Standard error.
    pub stderr: Output,
    /// The exported environment (a shell passes its exported variables here).
    pub env: Rc<Vec<(String, String)>>,
    /// The session's terminal (`kubectl exec -t`), even when stdin is redirected.
    pub tty: Option<Tty>,
}

impl Io {
    /// The process's own streams and environment.
    pub fn process() -> Io {
        let env = std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        let tty = crate::tty::open();
        Io {
            stdin: tty
                .as_ref()
                .map_or_else(|| Input::new(io::stdin().lock()), Tty::input),
            stdout: Output::new(io::stdout()),
            stderr: Output::new(io::stderr()),
            env: Rc::new(env),
            tty,
        }
    }

    /// Streams for tests: the given stdin, captured stdout and stderr.
    #[cfg(test)]
    pub fn test(stdin: &[u8], env: &[(&str, &str)]) -> (Io, Captured, Captured) {
        let (stdout, out) = Output::capture();
        let (stderr, err) = Output::capture();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let io = Io {
            stdin: Input::from_bytes(stdin.to_vec()),
            stdout,
            stderr,
            env: Rc::new(env),
            tty: None,
        };
        (io, out, err)
    }

    /// Streams for tests with `tty` as the terminal and stdin.
    #[cfg(test)]
    pub fn terminal(tty: &Tty, env: &[(&str, &str)]) -> (Io, Captured, Captured) {
        let (mut io, out, err) = Io::test(b"", env);
        io.stdin = tty.input();
        io.tty = Some(tty.clone());
        (io, out, err)
    }

    /// The terminal, when stdin is it (not a file, a pipe or `$(...)`).
    pub fn terminal_stdin(&self) -> Option<&Tty> {
        self.tty.as_ref().filter(|t| t.is(&self.stdin))
    }

    /// Whether Ctrl-C ended a command that nobody has handled yet.
    pub fn interrupted(&self) -> bool {
        self.tty.as_ref().is_some_and(Tty::interrupted)
    }

    /// Looks up an environment variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Writes `applet: message` to stderr.
    pub fn error(&mut self, applet: &str, message: impl std::fmt::Display) {
        let _ = writeln!(self.stderr, "{applet}: {message}");
    }
}

/// Opens a file for reading; `-` is stdin and `/dev/null` is empty (WASI has no devices).
pub fn open_input(io: &Io, path: &str) -> io::Result<Input> {
    match path {
        "-" | "/dev/stdin" => Ok(io.stdin.clone()),
        "/dev/null" => Ok(Input::empty()),
        _ => {
            let f = File::open(path)?;
            if f.metadata()?.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "Is a directory",
                ));
            }
            Ok(Input::new(BufReader::new(f)))
        }
    }
}

/// Opens a file for writing (truncating, or appending); `/dev/null`, `/dev/stdout` and
/// `/dev/stderr` map to the streams WASI gives instead of device files.
pub fn open_output(io: &Io, path: &str, append: bool) -> io::Result<Output> {
    match path {
        "/dev/null" => Ok(Output::sink()),
        "/dev/stdout" | "-" => Ok(io.stdout.clone()),
        "/dev/stderr" => Ok(io.stderr.clone()),
        _ => {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .append(append)
                .truncate(!append)
                .open(path)?;
            Ok(Output::new(f))
        }
    }
}

/// An error message without Rust's " (os error N)" suffix, like a C tool prints it.
pub fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "No such file or directory".into(),
        io::ErrorKind::PermissionDenied => "Permission denied".into(),
        io::ErrorKind::AlreadyExists => "File exists".into(),
        io::ErrorKind::IsADirectory => "Is a directory".into(),
        io::ErrorKind::NotADirectory => "Not a directory".into(),
        io::ErrorKind::DirectoryNotEmpty => "Directory not empty".into(),
        io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}
