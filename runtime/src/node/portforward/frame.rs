//! SPDY/3.1 frames: what port-forward's SPDY connections are made of, read from and written
//! to bytes.
//!
//! Every frame has an 8-byte header. A control frame starts with the control bit, version 3
//! and its type; a data frame with its stream id. Both then carry 8 bits of flags and a 24-bit
//! length. The header blocks inside SYN_STREAM, SYN_REPLY and HEADERS go through the
//! connection's compression contexts (`headers.rs`), so a [`Codec`] lives as long as its
//! connection, one per direction.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::headers::{self, Compressor, Decompressor, Headers};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// FLAG_FIN: the sender's half of the stream ends with this frame.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on a SYN_STREAM: the receiver will not send.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// SETTINGS id of the initial stream window.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;
/// The window every stream and the session start with (SPDY/3.1).
pub const DEFAULT_WINDOW: u32 = 64 * 1024;
/// The largest control frame accepted: a few headers, or a few settings.
const MAX_CONTROL: usize = 1 << 20;
/// The largest data frame the 24-bit length allows.
pub const MAX_DATA: usize = (1 << 24) - 1;

/// RST_STREAM and GOAWAY status codes.
pub mod status {
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// INVALID_STREAM: a frame for a stream that is not open.
    pub const INVALID_STREAM: u32 = 2;
    /// REFUSED_STREAM: the stream was not processed.
    pub const REFUSED_STREAM: u32 = 3;
    /// CANCEL: the stream is no longer needed.
    pub const CANCEL: u32 = 5;
    /// INTERNAL_ERROR.
    pub const INTERNAL_ERROR: u32 = 6;
    /// FLOW_CONTROL_ERROR: the peer sent past its window.
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    /// STREAM_IN_USE: a SYN_STREAM for an open stream.
    pub const STREAM_IN_USE: u32 = 8;
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream (odd when the client opens it).
        stream: u32,
        /// The stream it belongs to, or 0.
        associated: u32,
        /// 0 (highest) to 7.
        priority: u8,
        /// [`FLAG_FIN`], [`FLAG_UNIDIRECTIONAL`].
        flags: u8,
        /// The stream's headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// The stream.
        stream: u32,
        /// [`FLAG_FIN`].
        flags: u8,
        /// Reply headers.
        headers: Headers,
    },
    /// Ends a stream abnormally.
    RstStream {
        /// The stream.
        stream: u32,
        /// One of [`status`].
        status: u32,
    },
    /// Connection parameters: `(flags, id, value)` triples.
    Settings {
        /// Frame flags (CLEAR_SETTINGS).
        flags: u8,
        /// The entries.
        entries: Vec<(u8, u32, u32)>,
    },
    /// A round trip: the receiver echoes a ping the peer started.
    Ping {
        /// Odd from the client, even from the server.
        id: u32,
    },
    /// The sender accepts no new streams.
    GoAway {
        /// The last stream the sender processed.
        last_good: u32,
        /// 0 OK, 1 protocol error, 2 internal error.
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream: u32,
        /// [`FLAG_FIN`].
        flags: u8,
        /// The headers.
        headers: Headers,
    },
    /// The receiver may send `delta` more bytes on the stream (0: the session).
    WindowUpdate {
        /// The stream, or 0 for the whole session.
        stream: u32,
        /// Bytes added to the window (1 to 2^31 - 1).
        delta: u32,
    },
    /// Stream payload.
    Data {
        /// The stream.
        stream: u32,
        /// [`FLAG_FIN`].
        flags: u8,
        /// The payload.
        data: Bytes,
    },
    /// A control frame of a type this side ignores (NOOP, CREDENTIAL, future types), as the
    /// protocol asks.
    Unknown {
        /// Its type.
        kind: u16,
    },
}

/// Why a byte stream is not SPDY/3.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A control frame of another version.
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    /// A control frame too short for its type, or too long to accept.
    #[error("invalid {kind} frame of {length} bytes")]
    InvalidLength {
        /// The frame type.
        kind: &'static str,
        /// Its length.
        length: usize,
    },
    /// Stream id 0 where a stream is required.
    #[error("{0} frame for stream 0")]
    ZeroStream(&'static str),
    /// A header block that does not read.
    #[error(transparent)]
    Headers(#[from] headers::Error),
}

/// Reads frames from bytes; holds the peer's header decompression context.
#[derive(Default)]
pub struct Decoder {
    headers: Decompressor,
}

/// Writes frames to bytes; holds this side's header compression context.
#[derive(Default)]
pub struct Encoder {
    headers: Compressor,
}

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

const STREAM_MASK: u32 = 0x7fff_ffff;

impl Decoder {
    /// The next whole frame at the front of `buf`, consumed; `None` until one has arrived.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let first = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let flags = buf[4];
        let length = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        let control = first & 0x8000_0000 != 0;
        if control {
            let version = ((first >> 16) & 0x7fff) as u16;
            if version != VERSION {
                return Err(Error::Version(version));
            }
            if length > MAX_CONTROL {
                return Err(Error::InvalidLength {
                    kind: "control",
                    length,
                });
            }
        }
        if buf.len() < 8 + length {
            buf.reserve(8 + length - buf.len());
            return Ok(None);
        }
        buf.advance(8);
        let mut body = buf.split_to(length).freeze();
        if !control {
            if first & STREAM_MASK == 0 {
                return Err(Error::ZeroStream("DATA"));
            }
            return Ok(Some(Frame::Data {
                stream: first & STREAM_MASK,
                flags,
                data: body,
            }));
        }
        let kind = (first & 0xffff) as u16;
        let need = |name: &'static str, min: usize, exact: bool| {
            if length < min || (exact && length != min) {
                Err(Error::InvalidLength { kind: name, length })
            } else {
                Ok(())
            }
        };
        let frame = match kind {
            SYN_STREAM => {
                need("SYN_STREAM", 10, false)?;
                let stream = body.get_u32() & STREAM_MASK;
                let associated = body.get_u32() & STREAM_MASK;
                let priority = body.get_u8() >> 5;
                let _slot = body.get_u8();
                if stream == 0 {
                    return Err(Error::ZeroStream("SYN_STREAM"));
                }
                let headers = self.headers.decompress(&body)?;
                Frame::SynStream {
                    stream,
                    associated,
                    priority,
                    flags,
                    headers,
                }
            }
            SYN_REPLY | HEADERS => {
                let name = if kind == SYN_REPLY {
                    "SYN_REPLY"
                } else {
                    "HEADERS"
                };
                need(name, 4, false)?;
                let stream = body.get_u32() & STREAM_MASK;
                let headers = self.headers.decompress(&body)?;
                if kind == SYN_REPLY {
                    Frame::SynReply {
                        stream,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream,
                        flags,
                        headers,
                    }
                }
            }
            RST_STREAM => {
                need("RST_STREAM", 8, true)?;
                Frame::RstStream {
                    stream: body.get_u32() & STREAM_MASK,
                    status: body.get_u32(),
                }
            }
            SETTINGS => {
                need("SETTINGS", 4, false)?;
                let count = body.get_u32() as usize;
                if length != 4 + count.saturating_mul(8) {
                    return Err(Error::InvalidLength {
                        kind: "SETTINGS",
                        length,
                    });
                }
                let entries = (0..count)
                    .map(|_| {
                        let word = body.get_u32();
                        ((word >> 24) as u8, word & 0x00ff_ffff, body.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            PING => {
                need("PING", 4, true)?;
                Frame::Ping { id: body.get_u32() }
            }
            GOAWAY => {
                need("GOAWAY", 8, true)?;
                Frame::GoAway {
                    last_good: body.get_u32() & STREAM_MASK,
                    status: body.get_u32(),
                }
            }
            WINDOW_UPDATE => {
                need("WINDOW_UPDATE", 8, true)?;
                Frame::WindowUpdate {
                    stream: body.get_u32() & STREAM_MASK,
                    delta: body.get_u32() & STREAM_MASK,
                }
            }
            kind => Frame::Unknown { kind },
        };
        Ok(Some(frame))
    }
}

impl Encoder {
    /// Appends `frame` to `out`. Data longer than [`MAX_DATA`] must be split by the caller.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), Error> {
        let control = |out: &mut BytesMut, kind: u16, flags: u8, length: usize| {
            out.put_u16(0x8000 | VERSION);
            out.put_u16(kind);
            out.put_u32((u32::from(flags) << 24) | (length as u32 & 0x00ff_ffff));
        };
        match frame {
            Frame::SynStream {
                stream,
                associated,
                priority,
                flags,
                headers,
            } => {
                let block = self.headers.compress(headers)?;
                control(out, SYN_STREAM, *flags, 10 + block.len());
                out.put_u32(stream & STREAM_MASK);
                out.put_u32(associated & STREAM_MASK);
                out.put_u8((priority & 0x07) << 5);
                out.put_u8(0);
                out.put_slice(&block);
            }
            Frame::SynReply {
                stream,
                flags,
                headers,
            }
            | Frame::Headers {
                stream,
                flags,
                headers,
            } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    SYN_REPLY
                } else {
                    HEADERS
                };
                let block = self.headers.compress(headers)?;
                control(out, kind, *flags, 4 + block.len());
                out.put_u32(stream & STREAM_MASK);
                out.put_slice(&block);
            }
            Frame::RstStream { stream, status } => {
                control(out, RST_STREAM, 0, 8);
                out.put_u32(stream & STREAM_MASK);
                out.put_u32(*status);
            }
            Frame::Settings { flags, entries } => {
                control(out, SETTINGS, *flags, 4 + 8 * entries.len());
                out.put_u32(entries.len() as u32);
                for (flags, id, value) in entries {
                    out.put_u32((u32::from(*flags) << 24) | (id & 0x00ff_ffff));
                    out.put_u32(*value);
                }
            }
            Frame::Ping { id } => {
                control(out, PING, 0, 4);
                out.put_u32(*id);
            }
            Frame::GoAway { last_good, status } => {
                control(out, GOAWAY, 0, 8);
                out.put_u32(last_good & STREAM_MASK);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream, delta } => {
                control(out, WINDOW_UPDATE, 0, 8);
                out.put_u32(stream & STREAM_MASK);
                out.put_u32(delta & STREAM_MASK);
            }
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                out.put_u32(stream & STREAM_MASK);
                out.put_u32((u32::from(*flags) << 24) | (data.len().min(MAX_DATA) as u32));
                out.put_slice(&data[..data.len().min(MAX_DATA)]);
            }
            Frame::Unknown { kind } => control(out, *kind, 0, 0),
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
