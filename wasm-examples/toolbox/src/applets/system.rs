//! `env`, `hostname`, `sleep`, `date`, `true` and `false`.

use crate::io::Io;
use crate::tty::INTERRUPTED;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `true`: exit 0.
pub fn true_(_: &mut Io, _: &[String]) -> i32 {
    0
}

/// `false`: exit 1.
pub fn false_(_: &mut Io, _: &[String]) -> i32 {
    1
}

/// `env [-i] [-u NAME] [NAME=VALUE]... [COMMAND [ARG]...]`.
pub fn env(io: &mut Io, args: &[String]) -> i32 {
    let mut vars: Vec<(String, String)> = io.env.as_ref().clone();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "-i" | "-" | "--ignore-environment" => vars.clear(),
            "-u" => {
                i += 1;
                let Some(name) = args.get(i) else {
                    io.error("env", "option requires an argument -- 'u'");
                    return 1;
                };
                vars.retain(|(k, _)| k != name);
            }
            "--" => {
                i += 1;
                break;
            }
            a if a.starts_with('-') && a.len() > 1 => {
                io.error("env", format!("unrecognized option '{a}'"));
                return 1;
            }
            _ => break,
        }
        i += 1;
    }
    while let Some((k, v)) = args.get(i).and_then(|a| a.split_once('=')) {
        vars.retain(|(name, _)| name != k);
        vars.push((k.to_string(), v.to_string()));
        i += 1;
    }
    let Some(cmd) = args.get(i) else {
        for (k, v) in &vars {
            let _ = writeln!(io.stdout, "{k}={v}");
        }
        return 0;
    };
    let name = cmd.rsplit('/').next().unwrap_or(cmd);
    let Some(applet) = super::lookup(name) else {
        io.error(
            "env",
            format!("can't execute '{cmd}': No such file or directory"),
        );
        return 127;
    };
    let mut child = Io {
        env: Rc::new(vars),
        ..io.clone()
    };
    let mut argv = args[i..].to_vec();
    argv[0] = name.to_string();
    applet(&mut child, &argv)
}

/// `hostname`: the pod name (`HOSTNAME`; WASI has no `gethostname`).
pub fn hostname(io: &mut Io, args: &[String]) -> i32 {
    let name = io.var("HOSTNAME").unwrap_or("localhost").to_string();
    let shown = match args.get(1).map(String::as_str) {
        Some("-s") => name.split('.').next().unwrap_or(&name).to_string(),
        Some("-i") => io.var("POD_IP").unwrap_or("127.0.0.1").to_string(),
        Some(a) => {
            io.error(
                "hostname",
                format!("can't set hostname to '{a}': Operation not permitted"),
            );
            return 1;
        }
        None => name,
    };
    let _ = writeln!(io.stdout, "{shown}");
    0
}

fn parse_interval(s: &str) -> Option<Duration> {
    if s == "inf" || s == "infinity" {
        return Some(Duration::MAX);
    }
    let (num, mult) = match s.chars().last()? {
        's' => (&s[..s.len() - 1], 1.0),
        'm' => (&s[..s.len() - 1], 60.0),
        'h' => (&s[..s.len() - 1], 3600.0),
        'd' => (&s[..s.len() - 1], 86400.0),
        _ => (s, 1.0),
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v * mult))
}

/// `sleep N[smhd]...` (fractions allowed, the intervals add up; `inf` sleeps forever).
pub fn sleep(io: &mut Io, args: &[String]) -> i32 {
    if args.len() < 2 {
        io.error("sleep", "missing operand");
        return 1;
    }
    let mut total = Duration::ZERO;
    for a in &args[1..] {
        match parse_interval(a) {
            Some(d) => total = total.saturating_add(d),
            None => {
                io.error("sleep", format!("invalid number '{a}'"));
                return 1;
            }
        }
    }
    let _ = io.stdout.flush();
    // On a terminal, Ctrl-C arrives as a byte rather than a signal: wait for both.
    if let Some(tty) = &io.tty {
        return if tty.sleep(total) { 0 } else { INTERRUPTED };
    }
    while !total.is_zero() {
        let step = total.min(Duration::from_secs(86400));
        std::thread::sleep(step);
        if total != Duration::MAX {
            total -= step;
        }
    }
    0
}

/// A UTC calendar time broken into fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Civil {
    /// Seconds since the epoch.
    pub secs: i64,
    /// Year.
    pub year: i64,
    /// Month, 1-12.
    pub month: u32,
    /// Day of month, 1-31.
    pub day: u32,
    /// Hour, minute, second.
    pub hms: (u32, u32, u32),
    /// 0 = Sunday.
    pub weekday: u32,
    /// Day of the year, 1-366.
    pub yday: u32,
}

/// Month abbreviations.
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

impl Civil {
    /// Breaks down seconds since the epoch.
    pub fn from_secs(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = guest::http::civil_from_days(days);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334][month as usize - 1];
        let yday = before + day + u32::from(leap && month > 2);
        Civil {
            secs,
            year,
            month,
            day,
            hms: (rem / 3600, rem % 3600 / 60, rem % 60),
            weekday: (days + 4).rem_euclid(7) as u32,
            yday,
        }
    }

    /// Now, from the wall clock.
    pub fn now() -> Civil {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Civil::from_secs(secs)
    }

    /// Formats like `strftime` with the common conversions (UTC only).
    pub fn format(&self, fmt: &str) -> String {
        let mut out = String::new();
        let mut chars = fmt.chars();
        let (h, m, s) = self.hms;
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let piece = match chars.next() {
                Some('Y') => self.year.to_string(),
                Some('y') => format!("{:02}", self.year.rem_euclid(100)),
                Some('m') => format!("{:02}", self.month),
                Some('d') => format!("{:02}", self.day),
                Some('e') => format!("{:2}", self.day),
                Some('H') => format!("{h:02}"),
                Some('I') => format!("{:02}", if h % 12 == 0 { 12 } else { h % 12 }),
                Some('p') => (if h < 12 { "AM" } else { "PM" }).to_string(),
                Some('M') => format!("{m:02}"),
                Some('S') => format!("{s:02}"),
                Some('s') => self.secs.to_string(),
                Some('j') => format!("{:03}", self.yday),
                Some('a') => DAYS[self.weekday as usize].to_string(),
                Some('A') => [
                    "Sunday",
                    "Monday",
                    "Tuesday",
                    "Wednesday",
                    "Thursday",
                    "Friday",
                    "Saturday",
                ][self.weekday as usize]
                    .to_string(),
                Some('b' | 'h') => MONTHS[self.month as usize - 1].to_string(),
                Some('u') => (if self.weekday == 0 { 7 } else { self.weekday }).to_string(),
                Some('w') => self.weekday.to_string(),
                Some('F') => self.format("%Y-%m-%d"),
                Some('T') => self.format("%H:%M:%S"),
                Some('R') => self.format("%H:%M"),
                Some('D') => self.format("%m/%d/%y"),
                Some('c') => self.format("%a %b %e %H:%M:%S %Y"),
                Some('Z') => "UTC".to_string(),
                Some('z') => "+0000".to_string(),
                Some('N') => "000000000".to_string(),
                Some('n') => "\n".to_string(),
                Some('t') => "\t".to_string(),
                Some('%') => "%".to_string(),
                Some(other) => format!("%{other}"),
                None => "%".to_string(),
            };
            out.push_str(&piece);
        }
        out
    }
}

/// `date [-u] [-R] [-I] [-d @SECONDS] [+FORMAT]` (always UTC: WASI has no time zones).
pub fn date(io: &mut Io, args: &[String]) -> i32 {
    let mut fmt = "%a %b %e %H:%M:%S %Z %Y".to_string();
    let mut when = Civil::now();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-u" | "--utc" => {}
            "-R" | "--rfc-2822" => fmt = "%a, %d %b %Y %H:%M:%S %z".into(),
            "-I" | "--iso-8601" => fmt = "%Y-%m-%d".into(),
            "-Iseconds" => fmt = "%Y-%m-%dT%H:%M:%S+00:00".into(),
            "-d" | "--date" => match it
                .next()
                .and_then(|d| d.strip_prefix('@'))
                .and_then(|d| d.parse().ok())
            {
                Some(secs) => when = Civil::from_secs(secs),
                None => {
                    io.error("date", "only -d @SECONDS is supported");
                    return 1;
                }
            },
            f if f.starts_with('+') => fmt = f[1..].to_string(),
            other => {
                io.error("date", format!("invalid date '{other}'"));
                return 1;
            }
        }
    }
    let _ = writeln!(io.stdout, "{}", when.format(&fmt));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_down_and_formats_dates() {
        let c = Civil::from_secs(784_111_777);
        assert_eq!(
            c.format("%a %b %e %H:%M:%S %Z %Y"),
            "Sun Nov  6 08:49:37 UTC 1994"
        );
        assert_eq!(
            c.format("%F %T %j %s %%"),
            "1994-11-06 08:49:37 310 784111777 %"
        );
        assert_eq!(Civil::from_secs(0).format("%A %u"), "Thursday 4");
        assert_eq!(
            Civil::from_secs(951_868_800).format("%F %j"),
            "2000-03-01 061"
        );
    }

    #[test]
    fn parses_sleep_intervals() {
        assert_eq!(parse_interval("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_interval("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_interval("inf"), Some(Duration::MAX));
        assert_eq!(parse_interval("-1"), None);
        assert_eq!(parse_interval("soon"), None);
    }

    fn sleep_on(tty: &crate::tty::Tty, seconds: &str) -> (i32, String) {
        let (mut io, out, _) = Io::terminal(tty, &[]);
        let code = sleep(&mut io, &["sleep".to_string(), seconds.to_string()]);
        (code, String::from_utf8(out.borrow().clone()).unwrap())
    }

    #[test]
    fn ctrl_c_on_the_terminal_interrupts_sleep_with_130() {
        let tty = crate::tty::script::tty(&[b"\x03"]);
        assert_eq!(sleep_on(&tty, "100"), (INTERRUPTED, String::new()));
        assert!(tty.take_interrupt());
        let tty = crate::tty::script::tty(&[b"\x03"]);
        assert_eq!(sleep_on(&tty, "inf").0, INTERRUPTED);
    }

    #[test]
    fn sleep_on_the_terminal_leaves_typed_lines_for_the_shell() {
        let tty = crate::tty::script::tty(&[b"ls\n"]);
        assert_eq!(sleep_on(&tty, "0.01").0, 0);
        let mut line = Vec::new();
        tty.input().read_line_bytes(&mut line).unwrap();
        assert_eq!(line, b"ls\n");
    }

    #[test]
    fn sleep_in_a_pipeline_still_watches_the_terminal() {
        let tty = crate::tty::script::tty(&[b"\x03"]);
        let (mut io, _, _) = Io::terminal(&tty, &[]);
        io.stdin = crate::io::Input::from_bytes(b"piped\n".to_vec());
        assert_eq!(sleep(&mut io, &["sleep".into(), "100".into()]), INTERRUPTED);
    }

    #[test]
    fn env_runs_a_command_with_changed_variables() {
        let (mut io, out, _) = Io::test(b"", &[("A", "1"), ("B", "2")]);
        let args: Vec<String> = ["env", "-u", "A", "C=3", "env"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(env(&mut io, &args), 0);
        assert_eq!(
            String::from_utf8(out.borrow().clone()).unwrap(),
            "B=2\nC=3\n"
        );
        let args: Vec<String> = ["env", "nosuch"].iter().map(|s| s.to_string()).collect();
        assert_eq!(env(&mut io, &args), 127);
    }
}
