//! `ab -n N [-k] URL`: ApacheBench's core, sequential (one request at a time, as `-c 1`),
//! for measuring a pod's view of the network (the Services benchmark compares a ClusterIP
//! with the pod IP behind it). Without `-k` every request opens its own connection, which is
//! what connect-time balancing costs; with `-k` one keep-alive connection carries them all.
//!
//! Prints ab's summary lines: `Complete requests`, `Failed requests`, `Requests per second`,
//! `Time per request` and the `Percentage of the requests served within a certain time (ms)`
//! table (50%..100%), with sub-millisecond precision since pods answer that fast.

use super::nc::connect;
use super::wget::parse_url;
use crate::io::Io;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `ab`.
pub fn ab(io: &mut Io, args: &[String]) -> i32 {
    let (mut n, mut keep_alive, mut url) = (1usize, false, None::<String>);
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-n" => match it.next().and_then(|v| v.parse().ok()) {
                Some(v) if v > 0 => n = v,
                _ => return usage(io),
            },
            "-c" => match it.next().map(String::as_str) {
                Some("1") => {}
                _ => {
                    io.error("ab", "only -c 1 (requests are sent one at a time)");
                    return 22;
                }
            },
            "-k" => keep_alive = true,
            u if !u.starts_with('-') => url = Some(u.to_string()),
            _ => return usage(io),
        }
    }
    let Some(url) = url else { return usage(io) };
    let url = match parse_url(&url) {
        Ok(u) => u,
        Err(e) => {
            io.error("ab", &e);
            return 1;
        }
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\n{}\r\n",
        url.path,
        url.host,
        if keep_alive {
            "Connection: keep-alive\r\n"
        } else {
            "Connection: close\r\n"
        }
    );
    let mut times = Vec::with_capacity(n);
    let mut failed = 0usize;
    let mut conn: Option<BufReader<TcpStream>> = None;
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let ok = one(&url.host, url.port, &request, keep_alive, &mut conn);
        if ok {
            times.push(t.elapsed());
        } else {
            failed += 1;
            conn = None;
        }
    }
    let total = started.elapsed();
    report(io, &url.host, n, failed, total, &mut times);
    i32::from(failed > 0)
}

fn usage(io: &mut Io) -> i32 {
    io.error(
        "ab",
        "usage: ab -n REQUESTS [-c 1] [-k] http://HOST[:PORT]/PATH",
    );
    22
}

/// One request; reads the whole response. Reuses `conn` with keep-alive.
fn one(
    host: &str,
    port: u16,
    request: &str,
    keep_alive: bool,
    conn: &mut Option<BufReader<TcpStream>>,
) -> bool {
    if conn.is_none() {
        match connect(host, port, Some(Duration::from_secs(10))) {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                *conn = Some(BufReader::new(s));
            }
            Err(_) => return false,
        }
    }
    let Some(reader) = conn.as_mut() else {
        return false;
    };
    if reader.get_mut().write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status = String::new();
    if reader.read_line(&mut status).is_err() || !status.starts_with("HTTP/1.") {
        return false;
    }
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse::<u64>().ok(),
                "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
    }
    let body_ok = match (length, chunked) {
        (Some(len), false) => {
            std::io::copy(&mut reader.take(len), &mut std::io::sink()).is_ok_and(|got| got == len)
        }
        _ => {
            // Without a length the body ends with the connection.
            let ok = std::io::copy(reader, &mut std::io::sink()).is_ok();
            *conn = None;
            ok
        }
    };
    if !keep_alive {
        *conn = None;
    }
    body_ok
        && status
            .split_whitespace()
            .nth(1)
            .is_some_and(|c| c.starts_with('2'))
}

fn report(
    io: &mut Io,
    host: &str,
    n: usize,
    failed: usize,
    total: Duration,
    times: &mut [Duration],
) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let complete = times.len();
    let rps = complete as f64 / total.as_secs_f64().max(1e-9);
    let _ = writeln!(io.stdout, "Server Hostname:        {host}");
    let _ = writeln!(io.stdout, "Concurrency Level:      1");
    let _ = writeln!(
        io.stdout,
        "Time taken for tests:   {:.3} seconds",
        total.as_secs_f64()
    );
    let _ = writeln!(io.stdout, "Complete requests:      {n}");
    let _ = writeln!(io.stdout, "Failed requests:        {failed}");
    let _ = writeln!(io.stdout, "Requests per second:    {rps:.2} [#/sec] (mean)");
    if complete == 0 {
        return;
    }
    let mean = ms(total) / complete as f64;
    let _ = writeln!(io.stdout, "Time per request:       {mean:.3} [ms] (mean)");
    let _ = writeln!(
        io.stdout,
        "\nPercentage of the requests served within a certain time (ms)"
    );
    for p in [50, 66, 75, 80, 90, 95, 98, 99, 100] {
        let i = ((complete * p).div_ceil(100)).clamp(1, complete) - 1;
        let _ = writeln!(io.stdout, "  {p:>3}%  {:.3}", ms(times[i]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::applets::run;
    use std::net::TcpListener;

    #[test]
    fn ab_counts_requests_and_prints_percentiles() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(3) {
                let mut s = s.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        let url = format!("http://127.0.0.1:{port}/");
        let (code, out, _) = run(ab, &["ab", "-n", "3", &url], "");
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("Complete requests:      3"), "{out}");
        assert!(out.contains("Failed requests:        0"), "{out}");
        assert!(out.contains("  99%  "), "{out}");
    }

    #[test]
    fn a_refused_server_counts_as_failed() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/");
        let (code, out, _) = run(ab, &["ab", "-n", "2", &url], "");
        assert_eq!(code, 1);
        assert!(out.contains("Failed requests:        2"), "{out}");
    }
}
