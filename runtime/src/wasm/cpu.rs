//! CPU for one container: fair shares from `requests.cpu`, throttling from `limits.cpu`, and
//! the CPU time it used (ARCHITECTURE D9).
//!
//! Guests run on the node's guest executor (a tokio runtime with one thread per core of
//! `--node-cpu`). A guest runs only inside a poll of its future, so [`Metered`] reads the
//! thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`, ~180 ns) before and after every poll: the
//! difference is the container's CPU time, excluding the time the OS ran other threads (a
//! wall clock would charge the guest for a busy machine). The epoch callback (every tick, 10 ms) decides what
//! happens next, as the Linux CFS scheduler would for a cgroup:
//!
//! - **share**: a container yields to the executor once it has run its *slice* in this poll;
//!   the slice is proportional to `requests.cpu` (100 ms per core), so under contention
//!   containers with requests 1:3 get CPU 1:3 (tokio runs ready tasks round robin). An
//!   overshoot (the tick comes after the slice ended) is taken off the next slice, so the
//!   long-run ratio is exact. Without contention a yield costs nothing: the task is polled
//!   again at once.
//! - **quota**: with `limits.cpu`, a container may run `limit x 100 ms` in every 100 ms
//!   period (the CFS defaults); past it, it sleeps to the end of the period.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

use super::limits::Usage;

/// CFS's default enforcement period (`cpu.cfs_period_us`).
pub const CPU_PERIOD: Duration = Duration::from_millis(100);
/// The slice of a container requesting one full core.
/// Long against the 10 ms epoch tick, so that rounding to ticks does not blur the shares.
const SLICE_PER_CORE: Duration = Duration::from_millis(100);
/// Smallest and largest slices: a container without requests still runs one tick at a time.
const MIN_SLICE: Duration = Duration::from_millis(1);
const MAX_SLICE: Duration = Duration::from_millis(200);

/// A container's CPU settings, in millicores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuShare {
    /// `requests.cpu`: the weight under contention (0 = best effort, the smallest share).
    pub request_millis: u64,
    /// `limits.cpu`: the most it may use, if limited.
    pub limit_millis: Option<u64>,
}

impl CpuShare {
    /// How long the container runs before letting others on its thread run.
    fn slice(&self) -> Duration {
        let nanos = SLICE_PER_CORE.as_nanos() as u64 * self.request_millis / 1000;
        Duration::from_nanos(nanos).clamp(MIN_SLICE, MAX_SLICE)
    }

    /// CPU time allowed per [`CPU_PERIOD`]; `None` when unlimited (a single guest thread
    /// cannot use more than one core).
    fn quota(&self) -> Option<Duration> {
        self.limit_millis
            .filter(|&m| m < 1000)
            .map(|m| CPU_PERIOD * (m.max(1) as u32) / 1000)
    }
}

/// A moment on both clocks the meter uses: the wall clock (quota periods, throttle sleeps)
/// and the running thread's CPU clock (what the guest used).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    wall: Instant,
    cpu: Duration,
}

impl Now {
    /// Reads both clocks; the CPU clock is the calling thread's.
    pub(crate) fn read() -> Now {
        Now {
            wall: Instant::now(),
            cpu: thread_cpu_time(),
        }
    }
}

/// CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// CPU time the whole process has used (all threads, user and system).
pub fn process_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// What the meter keeps between polls.
#[derive(Debug)]
struct State {
    /// When the current poll began, if one is running.
    poll_started: Option<Now>,
    /// Slice left in this poll, with the last overshoot taken off (may go below zero).
    budget_nanos: i64,
    /// CPU of the running poll already charged to a quota period.
    charged: Duration,
    /// Start of the current quota period (periods are back to back on the wall clock) and
    /// CPU used in it, including what the last period overran.
    period_started: Instant,
    period_used: Duration,
}

impl State {
    /// Charges the running poll's CPU so far to the current period.
    fn charge(&mut self, now: Now) -> Duration {
        let Some(started) = self.poll_started else {
            return Duration::ZERO;
        };
        let ran = now.cpu.saturating_sub(started.cpu);
        self.period_used += ran.saturating_sub(self.charged);
        self.charged = ran;
        ran
    }

    /// Moves to the period `now` is in. What the last one used beyond its quota (the tick
    /// that noticed came up to 10 ms late) is owed to the next, so a limit holds on average
    /// and not only to the nearest tick.
    fn roll(&mut self, now: Instant, quota: Option<Duration>) {
        let elapsed = now.saturating_duration_since(self.period_started);
        if elapsed < CPU_PERIOD {
            return;
        }
        let periods = (elapsed.as_nanos() / CPU_PERIOD.as_nanos()) as u32;
        self.period_started += CPU_PERIOD * periods;
        self.period_used = match quota {
            Some(q) => self.period_used.saturating_sub(q * periods).min(q),
            None => Duration::ZERO,
        };
    }
}

/// Times a container's polls and decides, at each epoch tick, whether it yields or sleeps.
#[derive(Debug)]
pub(crate) struct CpuMeter {
    share: CpuShare,
    usage: Arc<Usage>,
    state: Mutex<State>,
}

/// What the epoch callback should do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep running.
    Run,
    /// Let the other ready guests run.
    Yield,
    /// Over quota: sleep this long.
    Throttle(Duration),
}

impl CpuMeter {
    pub(crate) fn new(share: CpuShare, usage: Arc<Usage>) -> Arc<CpuMeter> {
        Arc::new(CpuMeter {
            share,
            usage,
            state: Mutex::new(State {
                poll_started: None,
                budget_nanos: 0,
                charged: Duration::ZERO,
                period_started: Instant::now(),
                period_used: Duration::ZERO,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(&self, now: Now) {
        let mut s = self.lock();
        s.roll(now.wall, self.share.quota());
        s.poll_started = Some(now);
        s.charged = Duration::ZERO;
        // A fresh slice, less what the last one overran (at most two slices of debt).
        let slice = self.share.slice().as_nanos() as i64;
        s.budget_nanos = slice + s.budget_nanos.clamp(-2 * slice, 0);
    }

    fn end(&self, now: Now, yielded: bool) {
        let mut s = self.lock();
        if s.poll_started.is_none() {
            return;
        }
        let ran = s.charge(now);
        s.roll(now.wall, self.share.quota());
        s.poll_started = None;
        s.charged = Duration::ZERO;
        self.usage.add_cpu(ran);
        s.budget_nanos = if yielded {
            s.budget_nanos - ran.as_nanos() as i64
        } else {
            // Blocked on I/O: it gave the thread up itself, no debt.
            0
        };
    }

    /// Called at every epoch tick while the guest runs.
    pub(crate) fn tick(&self, now: Now) -> Verdict {
        let mut s = self.lock();
        if s.poll_started.is_none() {
            return Verdict::Run;
        }
        let ran = s.charge(now);
        if let Some(quota) = self.share.quota() {
            s.roll(now.wall, Some(quota));
            if s.period_used >= quota {
                let period_end = s.period_started + CPU_PERIOD;
                return Verdict::Throttle(period_end.saturating_duration_since(now.wall));
            }
        }
        if ran.as_nanos() as i64 >= s.budget_nanos {
            Verdict::Yield
        } else {
            Verdict::Run
        }
    }

    /// The epoch callback's answer for `verdict`; `yielded` is set so the poll that ends
    /// carries the overshoot.
    pub(crate) fn deadline(self: &Arc<Self>, verdict: Verdict) -> UpdateDeadline {
        match verdict {
            Verdict::Run => UpdateDeadline::Continue(1),
            Verdict::Yield => {
                self.mark_yield();
                UpdateDeadline::Yield(1)
            }
            Verdict::Throttle(d) => {
                self.mark_yield();
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(d)))
            }
        }
    }

    fn mark_yield(&self) {
        // Recorded as the poll's end reason by `Metered` through `yielded`.
        YIELDED.with(|y| y.set(true));
    }
}

thread_local! {
    /// Set by the epoch callback when it makes the guest yield, read when the poll returns
    /// (same thread, same poll).
    static YIELDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A guest's future whose polls are timed by its [`CpuMeter`].
pub(crate) struct Metered<F> {
    inner: Pin<Box<F>>,
    meter: Arc<CpuMeter>,
}

impl<F> Metered<F> {
    pub(crate) fn new(inner: F, meter: Arc<CpuMeter>) -> Metered<F> {
        Metered {
            inner: Box::pin(inner),
            meter,
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        YIELDED.with(|y| y.set(false));
        self.meter.begin(Now::read());
        let out = self.inner.as_mut().poll(cx);
        let yielded = YIELDED.with(|y| y.replace(false));
        self.meter.end(Now::read(), yielded);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A moment `d` after `t0` on a machine where the guest had the core all along.
    fn at(t0: Instant, d: Duration) -> Now {
        Now {
            wall: t0 + d,
            cpu: d,
        }
    }

    #[test]
    fn slices_follow_requests() {
        let share = |r| CpuShare {
            request_millis: r,
            limit_millis: None,
        };
        assert_eq!(share(1000).slice(), ms(100));
        assert_eq!(share(250).slice() * 3, share(750).slice());
        assert_eq!(share(0).slice(), MIN_SLICE);
        assert_eq!(share(64_000).slice(), MAX_SLICE);
        assert_eq!(share(100).quota(), None);
        let limited = CpuShare {
            request_millis: 100,
            limit_millis: Some(250),
        };
        assert_eq!(limited.quota(), Some(ms(25)));
        let whole = CpuShare {
            limit_millis: Some(2000),
            ..limited
        };
        assert_eq!(whole.quota(), None, "one guest thread never exceeds a core");
    }

    #[test]
    fn yields_after_its_slice_and_repays_overshoot() {
        let usage = Arc::new(Usage::default());
        let m = CpuMeter::new(
            CpuShare {
                request_millis: 250,
                limit_millis: None,
            },
            usage.clone(),
        );
        let t0 = Instant::now();
        m.begin(at(t0, ms(0)));
        assert_eq!(m.tick(at(t0, ms(5))), Verdict::Run);
        assert_eq!(m.tick(at(t0, ms(30))), Verdict::Yield);
        m.end(at(t0, ms(30)), true);
        assert_eq!(usage.cpu(), ms(30));
        // 5 ms over a 25 ms slice: the next one is 20 ms.
        m.begin(at(t0, ms(100)));
        assert_eq!(m.tick(at(t0, ms(115))), Verdict::Run);
        assert_eq!(m.tick(at(t0, ms(120))), Verdict::Yield);
        m.end(at(t0, ms(120)), true);
        // Blocking on I/O forgives the debt.
        m.begin(at(t0, ms(160)));
        m.end(at(t0, ms(161)), false);
        m.begin(at(t0, ms(170)));
        assert_eq!(m.tick(at(t0, ms(194))), Verdict::Run);
    }

    #[test]
    fn only_cpu_time_counts_not_time_the_thread_was_preempted() {
        let usage = Arc::new(Usage::default());
        let m = CpuMeter::new(CpuShare::default(), usage.clone());
        let t0 = Instant::now();
        m.begin(Now {
            wall: t0,
            cpu: ms(7),
        });
        // 40 ms went by on the wall, but the OS ran this thread for 10 ms of them.
        m.end(
            Now {
                wall: t0 + ms(40),
                cpu: ms(17),
            },
            false,
        );
        assert_eq!(usage.cpu(), ms(10));
        let before = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(
            thread_cpu_time() > before,
            "the thread clock advances with work"
        );
        assert!(process_cpu_time() >= thread_cpu_time());
    }

    #[test]
    fn a_limit_throttles_to_the_end_of_the_period() {
        let m = CpuMeter::new(
            CpuShare {
                request_millis: 1000,
                limit_millis: Some(200),
            },
            Arc::default(),
        );
        let t0 = Instant::now();
        m.begin(at(t0, ms(0)));
        m.lock().period_started = t0;
        assert_eq!(m.tick(at(t0, ms(10))), Verdict::Run);
        assert_eq!(m.tick(at(t0, ms(28))), Verdict::Throttle(ms(72)));
        m.end(at(t0, ms(28)), true);
        // 8 ms over the 20 ms quota: the next period allows 12 ms.
        m.begin(at(t0, ms(100)));
        assert_eq!(m.tick(at(t0, ms(110))), Verdict::Run);
        assert_eq!(m.tick(at(t0, ms(112))), Verdict::Throttle(ms(88)));
    }
}
