//! The HTTP/1.1 client both servers are driven by: one keep-alive connection, no pipelining.

use super::*;
// ---------------------------------------------------------------------------------------------
// The HTTP/1.1 client: one keep-alive connection, no pipelining.

/// One keep-alive HTTP/1.1 connection. Deliberately minimal (no TLS, no redirects) so that the
/// client costs the same per request whichever server it talks to.
pub(crate) struct Conn {
    pub(crate) addr: SocketAddr,
    pub(crate) io: Option<BufReader<TcpStream>>,
    pub(crate) request: Vec<u8>,
    pub(crate) line: Vec<u8>,
    /// The last response's body.
    pub(crate) body: Vec<u8>,
}

impl Conn {
    pub(crate) async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let mut conn = Conn {
            addr,
            io: None,
            request: Vec::with_capacity(2048),
            line: Vec::with_capacity(256),
            body: Vec::with_capacity(4096),
        };
        conn.reconnect().await?;
        Ok(conn)
    }

    pub(crate) async fn reconnect(&mut self) -> std::io::Result<()> {
        let stream = TcpStream::connect(self.addr).await?;
        // The request goes out in one write, but a delayed ACK must never hold back a reply.
        stream.set_nodelay(true)?;
        self.io = Some(BufReader::with_capacity(16 * 1024, stream));
        Ok(())
    }

    /// Sends one request and reads the whole response; returns its status, the body is in
    /// `self.body`. After an error the connection is dropped and the next request reconnects.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<u16> {
        if self.io.is_none() {
            self.reconnect().await?;
        }
        let result = self.exchange(method, path, body).await;
        if !matches!(result, Ok((_, true))) {
            self.io = None;
        }
        result.map(|(status, _)| status)
    }

    /// Returns the status and whether the connection stays open.
    pub(crate) async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, bool)> {
        let io = self.io.as_mut().expect("connected above");
        self.request.clear();
        let mut head = String::with_capacity(160);
        let _ = write!(
            head,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        self.request.extend_from_slice(head.as_bytes());
        self.request.extend_from_slice(body);
        io.get_mut().write_all(&self.request).await?;

        read_line(io, &mut self.line).await?;
        let status = std::str::from_utf8(&self.line)
            .ok()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad(format!("bad status line {:?}", lossy(&self.line))))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut keep_alive = true;
        loop {
            read_line(io, &mut self.line).await?;
            if self.line.is_empty() {
                break;
            }
            let line = std::str::from_utf8(&self.line).map_err(|_| bad("header is not UTF-8"))?;
            let Some((name, value)) = line.split_once(':') else {
                return Err(bad(format!("bad header {line:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse().map_err(|_| bad("bad Content-Length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                keep_alive = !value.eq_ignore_ascii_case("close");
            }
        }

        self.body.clear();
        if chunked {
            loop {
                read_line(io, &mut self.line).await?;
                let size = std::str::from_utf8(&self.line)
                    .ok()
                    .map(|l| l.split(';').next().unwrap_or("").trim())
                    .and_then(|s| usize::from_str_radix(s, 16).ok())
                    .ok_or_else(|| bad(format!("bad chunk size {:?}", lossy(&self.line))))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        read_line(io, &mut self.line).await?;
                        if self.line.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let start = self.body.len();
                self.body.resize(start + size, 0);
                io.read_exact(&mut self.body[start..]).await?;
                read_line(io, &mut self.line).await?;
            }
        } else if let Some(n) = length {
            self.body.resize(n, 0);
            io.read_exact(&mut self.body).await?;
        } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
            // Neither length nor chunks: the body runs to the end of the connection.
            io.read_to_end(&mut self.body).await?;
            keep_alive = false;
        }
        Ok((status, keep_alive))
    }
}

/// Reads one line into `line`, without its CRLF.
pub(crate) async fn read_line(
    io: &mut BufReader<TcpStream>,
    line: &mut Vec<u8>,
) -> std::io::Result<()> {
    line.clear();
    if io.read_until(b'\n', line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(())
}

pub(crate) fn bad(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned()
}

/// Standard base64 with padding, for etcd's JSON gateway (bytes fields are base64).
pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
