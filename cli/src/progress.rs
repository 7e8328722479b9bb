//! Progress of a long step (compiling an image, pushing it) on stderr.
//!
//! On a terminal a spinner with the elapsed time redraws one line every 100 ms until the step
//! ends, then the line is replaced by the outcome; elsewhere (logs, CI) only the outcome is
//! printed, so the output stays one line per step.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const FRAMES: [char; 4] = ['|', '/', '-', '\\'];

/// One step in progress.
pub struct Progress {
    started: Instant,
    done: Arc<AtomicBool>,
    spinner: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts showing `label` (e.g. `compiling app.wasm (1.2 MiB)`).
    pub fn start(label: impl Into<String>) -> Progress {
        let label = label.into();
        let started = Instant::now();
        let done = Arc::new(AtomicBool::new(false));
        let spinner = std::io::stderr().is_terminal().then(|| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut frame = 0;
                while !done.load(Ordering::Relaxed) {
                    let elapsed = started.elapsed().as_secs_f64();
                    eprint!("\r{} {label} {elapsed:.1}s", FRAMES[frame % FRAMES.len()]);
                    let _ = std::io::stderr().flush();
                    frame += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                eprint!("\r\x1b[2K");
            })
        });
        Progress {
            started,
            done,
            spinner,
        }
    }

    /// How long the step has taken so far.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the step, replacing the spinner with `outcome`.
    pub fn finish(mut self, outcome: &str) {
        self.stop();
        eprintln!("{outcome}");
    }

    fn stop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(spinner) = self.spinner.take() {
            let _ = spinner.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A byte count as `docker images` prints sizes: `812kB`, `1.21MB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes}B"),
        _ if value >= 100.0 => format!("{value:.0}{}", UNITS[unit]),
        _ => {
            format!("{:.3}", value)
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
                + UNITS[unit]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(812_400), "812kB");
        assert_eq!(human_bytes(1_210_000), "1.21MB");
        assert_eq!(human_bytes(2_000_000), "2MB");
    }
}
