//! `nc` and `nslookup` over std's `TcpStream` and `ToSocketAddrs`, which wasip2 maps to
//! `wasi:sockets` (the node agent rewrites addresses and resolves Service names).

use crate::io::{Io, describe};
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

/// Connects to the first address of `host` that accepts.
pub(super) fn connect(
    host: &str,
    port: u16,
    timeout: Option<Duration>,
) -> io::Result<(TcpStream, SocketAddr)> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "bad address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect(addr) {
            Ok(s) => {
                // Best effort: WASI sockets have no receive timeout option.
                let _ = s.set_read_timeout(timeout);
                return Ok((s, addr));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `nc [-v] [-z] [-w SEC] HOST PORT` or `nc -l [-s ADDR] [-p] PORT`: stdin to the socket
/// (then a half-close), the socket to stdout; `-u` for UDP (see [`udp`]). `-z` only checks that the port accepts
/// connections; `-s` listens on one local address instead of all.
pub fn nc(io: &mut Io, args: &[String]) -> i32 {
    let f = match super::flags(io, args, "wpqs", "vzlnuwpqs") {
        Ok(f) => f,
        Err(c) => return c,
    };
    let timeout = f
        .value('w')
        .and_then(|w| w.parse().ok())
        .map(Duration::from_secs_f64);
    if f.has('u') {
        return udp(io, &f);
    }
    let stream = if f.has('l') {
        let Some(port) = f
            .value('p')
            .or(f.operands.last().map(String::as_str))
            .and_then(|p| p.parse::<u16>().ok())
        else {
            io.error("nc", "listen mode needs a port (nc -l -p PORT)");
            return 1;
        };
        let local = f.value('s').unwrap_or("0.0.0.0");
        let accepted = TcpListener::bind((local, port)).and_then(|l| l.accept());
        match accepted {
            Ok((s, peer)) => {
                if f.has('v') {
                    io.error("nc", format!("connect from {peer}"));
                }
                s
            }
            Err(e) => {
                io.error(
                    "nc",
                    format!("can't listen on {local}:{port}: {}", describe(&e)),
                );
                return 1;
            }
        }
    } else {
        let (Some(host), Some(port)) = (f.operands.first(), f.operands.get(1)) else {
            io.error(
                "nc",
                "usage: nc [-vz] [-w SEC] HOST PORT | nc -l [-s ADDR] -p PORT",
            );
            return 1;
        };
        let Ok(port) = port.parse::<u16>() else {
            io.error("nc", format!("bad port '{port}'"));
            return 1;
        };
        match connect(host, port, timeout) {
            Ok((s, addr)) => {
                if f.has('v') {
                    io.error(host, format!("{} ({addr}) open", port));
                }
                if f.has('z') {
                    return 0;
                }
                s
            }
            Err(e) => {
                if !f.has('z') || f.has('v') {
                    io.error(
                        "nc",
                        format!("can't connect to remote host ({host}): {}", describe(&e)),
                    );
                }
                return 1;
            }
        }
    };
    let mut stream = stream;
    // No threads: send all of stdin first, half-close so the peer sees EOF, then drain.
    let sent = io::copy(&mut io.stdin, &mut stream).and_then(|_| stream.flush());
    let _ = stream.shutdown(Shutdown::Write);
    let received = io::copy(&mut stream, &mut io.stdout);
    match sent.and(received) {
        Ok(_) => 0,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => 0,
        Err(e) => {
            io.error("nc", describe(&e));
            1
        }
    }
}

/// `nc -u HOST PORT` sends stdin as one datagram; `nc -u -l [-s ADDR] -p PORT` prints the
/// first datagram it receives (and who sent it, with `-v`).
fn udp(io: &mut Io, f: &super::Flags) -> i32 {
    if f.has('l') {
        let Some(port) = f
            .value('p')
            .or(f.operands.last().map(String::as_str))
            .and_then(|p| p.parse::<u16>().ok())
        else {
            io.error("nc", "listen mode needs a port (nc -u -l -p PORT)");
            return 1;
        };
        let local = f.value('s').unwrap_or("0.0.0.0");
        let mut buf = vec![0u8; 65536];
        let received = UdpSocket::bind((local, port)).and_then(|s| s.recv_from(&mut buf));
        return match received {
            Ok((n, peer)) => {
                if f.has('v') {
                    io.error("nc", format!("datagram from {peer}"));
                }
                let _ = io.stdout.write_all(&buf[..n]);
                0
            }
            Err(e) => {
                io.error(
                    "nc",
                    format!("can't listen on {local}:{port}/udp: {}", describe(&e)),
                );
                1
            }
        };
    }
    let (Some(host), Some(port)) = (f.operands.first(), f.operands.get(1)) else {
        io.error("nc", "usage: nc -u HOST PORT | nc -u -l -p PORT");
        return 1;
    };
    let Ok(port) = port.parse::<u16>() else {
        io.error("nc", format!("bad port '{port}'"));
        return 1;
    };
    let mut data = Vec::new();
    if let Err(e) = io::Read::read_to_end(&mut io.stdin, &mut data) {
        io.error("nc", describe(&e));
        return 1;
    }
    let sent = (host.as_str(), port)
        .to_socket_addrs()
        .and_then(|mut addrs| {
            addrs
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "bad address"))
        })
        .and_then(|addr| {
            let any: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            UdpSocket::bind(any).and_then(|s| s.send_to(&data, addr))
        });
    match sent {
        Ok(_) => 0,
        Err(e) => {
            io.error(
                "nc",
                format!("can't send to {host}:{port}/udp: {}", describe(&e)),
            );
            1
        }
    }
}

/// `nslookup NAME`: resolves through `wasi:sockets/ip-name-lookup`.
pub fn nslookup(io: &mut Io, args: &[String]) -> i32 {
    let Some(name) = args.iter().skip(1).find(|a| !a.starts_with('-')) else {
        io.error("nslookup", "usage: nslookup HOST");
        return 1;
    };
    let _ = writeln!(
        io.stdout,
        "Server:\t\twasi:sockets/ip-name-lookup\nAddress:\tnode resolver\n"
    );
    let mut addrs: Vec<IpAddr> = match (name.as_str(), 0).to_socket_addrs() {
        Ok(a) => a.map(|a| a.ip()).collect(),
        // wasmkube's cluster DNS fails outside names with `permanent-resolver-failure`
        // (EAI_FAIL) unless the node allows them; a missing name is EAI_NONAME.
        Err(e) if is_permanent_failure(&e.to_string()) => {
            let _ = writeln!(
                io.stdout,
                "** server can't find {name}: REFUSED (the node resolves cluster names only; \
                 `wasmkube node --allow-external-dns` lets pods look up other names)\n"
            );
            return 1;
        }
        Err(_) => Vec::new(),
    };
    addrs.dedup();
    if addrs.is_empty() {
        let _ = writeln!(io.stdout, "** server can't find {name}: NXDOMAIN\n");
        return 1;
    }
    let _ = writeln!(io.stdout, "Name:\t{name}");
    for a in addrs {
        let _ = writeln!(io.stdout, "Address: {a}");
    }
    let _ = writeln!(io.stdout);
    0
}

/// Whether a lookup error is `EAI_FAIL` (as `gai_strerror` words it in musl and wasi-libc).
fn is_permanent_failure(error: &str) -> bool {
    error.contains("ermanent failure") || error.contains("on-recoverable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::applets::run;
    use std::io::Read;

    #[test]
    fn nc_sends_stdin_and_prints_the_reply() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = String::new();
            s.read_to_string(&mut got).unwrap();
            s.write_all(got.to_uppercase().as_bytes()).unwrap();
        });
        assert_eq!(run(nc, &["nc", "127.0.0.1", &port], "ping\n").1, "PING\n");
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(
            run(nc, &["nc", "-z", "127.0.0.1", &closed.to_string()], "").0,
            1
        );
    }

    #[test]
    fn nslookup_resolves_localhost() {
        let (code, out, _) = run(nslookup, &["nslookup", "localhost"], "");
        assert_eq!(code, 0);
        assert!(
            out.contains("Name:\tlocalhost") && out.contains("Address: "),
            "{out}"
        );
        assert_eq!(
            run(nslookup, &["nslookup", "no-such-host.invalid"], "").0,
            1
        );
    }
}
