//! SPDY/3 header blocks: the name/value pairs of SYN_STREAM, SYN_REPLY and HEADERS frames,
//! and their zlib compression.
//!
//! A block is `count: u32`, then `len: u32, name, len: u32, value` per pair (names lowercase,
//! several values of one name joined by NUL). Each direction of a connection compresses all
//! its blocks as one zlib stream, primed with the protocol's dictionary and sync-flushed after
//! every block, so a block can only be decompressed by the context that has seen the blocks
//! before it: one [`Compressor`] and one [`Decompressor`] per connection.

use std::sync::OnceLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The most a decompressed header block may hold: a block is a few short headers, and the
/// limit keeps a small compressed frame from inflating into megabytes.
pub const MAX_BLOCK: usize = 256 * 1024;

/// The header names of the SPDY/3 dictionary, each written length-prefixed.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The rest of the dictionary, plain text: status codes and lines, dates, content types.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,",
    "text/plain,text/javascript,public",
    "privatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 zlib dictionary (1423 bytes, the draft's and moby/spdystream's).
pub fn dictionary() -> &'static [u8] {
    static DICTIONARY: OnceLock<Vec<u8>> = OnceLock::new();
    DICTIONARY.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for word in DICTIONARY_WORDS {
            d.extend_from_slice(&(word.len() as u32).to_be_bytes());
            d.extend_from_slice(word.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    })
}

/// Why a header block could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The zlib stream is corrupt (or primed with another dictionary).
    #[error("header block does not decompress: {0}")]
    Decompress(#[source] flate2::DecompressError),
    /// Compressing failed (cannot happen with valid input; reported, not unwrapped).
    #[error("header block does not compress: {0}")]
    Compress(#[source] flate2::CompressError),
    /// The block inflates past [`MAX_BLOCK`].
    #[error("header block is larger than {MAX_BLOCK} bytes")]
    TooLarge,
    /// The decompressed block is cut short or its counts do not add up.
    #[error("header block is malformed")]
    Malformed,
}

/// A header block: name/value pairs in the order sent. Names are lowercase on the wire;
/// lookups ignore case anyway (Go's client writes canonical names in lowercase).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name` (before any NUL separator), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or_default())
    }

    /// The uncompressed block.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (name, value) in &self.0 {
            for part in [name.to_ascii_lowercase().as_bytes(), value.as_bytes()] {
                out.extend_from_slice(&(part.len() as u32).to_be_bytes());
                out.extend_from_slice(part);
            }
        }
        out
    }

    /// Parses an uncompressed block.
    pub fn decode(block: &[u8]) -> Result<Headers, Error> {
        let mut cursor = Cursor(block);
        let count = cursor.word()?;
        // Every pair takes at least 8 bytes: a count larger than that is a lie.
        if count as usize > block.len() / 8 {
            return Err(Error::Malformed);
        }
        let mut pairs = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name = cursor.text()?;
            let value = cursor.text()?;
            pairs.push((name, value));
        }
        Ok(Headers(pairs))
    }
}

/// Reading a block front to back.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn word(&mut self) -> Result<u32, Error> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn text(&mut self) -> Result<String, Error> {
        let len = self.word()? as usize;
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }
}

/// One direction's compression context.
pub struct Compressor(Compress);

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Compressor {
    /// A fresh context primed with the dictionary.
    pub fn new() -> Compressor {
        let mut c = Compress::new(Compression::default(), true);
        // Only fails on a stream that has already produced output; this one has not.
        let _ = c.set_dictionary(dictionary());
        Compressor(c)
    }

    /// Compresses one block, sync-flushed so the peer can decompress it at once.
    pub fn compress(&mut self, headers: &Headers) -> Result<Vec<u8>, Error> {
        let input = headers.encode();
        let start = self.0.total_in();
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        loop {
            let consumed = (self.0.total_in() - start) as usize;
            out.reserve(256);
            self.0
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .map_err(Error::Compress)?;
            let done = (self.0.total_in() - start) as usize == input.len();
            // A sync flush is complete once it left room in the output.
            if done && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The other direction's decompression context.
pub struct Decompressor(Decompress);

impl Default for Decompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Decompressor {
    /// A fresh context; the dictionary is given when the stream asks for it.
    pub fn new() -> Decompressor {
        Decompressor(Decompress::new(true))
    }

    /// Decompresses and parses one block.
    pub fn decompress(&mut self, block: &[u8]) -> Result<Headers, Error> {
        let start = self.0.total_in();
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        loop {
            let consumed = (self.0.total_in() - start) as usize;
            if out.len() >= MAX_BLOCK {
                return Err(Error::TooLarge);
            }
            out.reserve(1024);
            match self
                .0
                .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(dictionary())
                        .map_err(Error::Decompress)?;
                    continue;
                }
                Err(e) => return Err(Error::Decompress(e)),
            }
            let all_in = (self.0.total_in() - start) as usize == block.len();
            if all_in && out.len() < out.capacity() {
                break;
            }
        }
        Headers::decode(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_dictionary_is_the_protocols() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert!(d.starts_with(b"\x00\x00\x00\x07options\x00\x00\x00\x04head"));
        assert!(d.ends_with(b"utf-,*,enq=0."));
        // The zlib header names the dictionary by its Adler-32: 0xe3c6a7c2 for SPDY/3.
        let block = Compressor::new().compress(&Headers::default()).unwrap();
        assert_eq!(block[2..6], [0xe3, 0xc6, 0xa7, 0xc2]);
    }

    #[test]
    fn blocks_round_trip_through_one_context_per_direction() {
        let (mut c, mut d) = (Compressor::new(), Decompressor::new());
        let first = headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]);
        let second = headers(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]);
        let a = c.compress(&first).unwrap();
        let b = c.compress(&second).unwrap();
        // The second block leans on the first: it is smaller, and only this context reads it.
        assert!(b.len() < a.len(), "{} vs {}", b.len(), a.len());
        assert_eq!(d.decompress(&a).unwrap(), first);
        assert_eq!(d.decompress(&b).unwrap(), second);
        assert!(Decompressor::new().decompress(&b).is_err());
        assert_eq!(
            d.decompress(&c.compress(&Headers::default()).unwrap())
                .unwrap(),
            Headers::default()
        );
    }

    #[test]
    fn lookups_ignore_case_and_take_the_first_value() {
        let h = headers(&[("Port", "8080\09090")]);
        assert_eq!(h.get("port"), Some("8080"));
        assert_eq!(h.get("streamtype"), None);
    }

    #[test]
    fn rejects_cut_and_lying_blocks() {
        let mut block = headers(&[("port", "80")]).encode();
        block.truncate(block.len() - 1);
        assert!(matches!(Headers::decode(&block), Err(Error::Malformed)));
        assert!(matches!(
            Headers::decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(Error::Malformed)
        ));
        assert!(Decompressor::new().decompress(b"not zlib at all").is_err());
    }

    #[test]
    fn refuses_a_block_that_inflates_too_far() {
        let big = headers(&[("x", &"a".repeat(MAX_BLOCK * 2))]);
        let block = Compressor::new().compress(&big).unwrap();
        assert!(block.len() < 8 * 1024);
        assert!(matches!(
            Decompressor::new().decompress(&block),
            Err(Error::TooLarge)
        ));
    }
}
