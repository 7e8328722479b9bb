//! The on-disk format of `kv.log`: a magic header, then self-delimiting records.
//!
//! ```text
//! header: b"wkkv-log" (8 bytes) then version u32 LE (1)
//! record: crc32 u32 LE | len u32 LE | op u8 | key_len u32 LE | key | value
//!         `len` counts op..value; the CRC (IEEE, as in zlib) covers `len` and those bytes.
//! ```
//!
//! Covering the length with the checksum means a torn or garbled length is caught too,
//! instead of sending the reader off to a wrong offset. [`read_record`] tells a clean end of
//! the log from a record that stops short or does not check out; the store decides what to do
//! with the latter (see `store.rs`).

use std::io::{self, ErrorKind, Read};

/// The first bytes of every log file.
pub const MAGIC: &[u8; 8] = b"wkkv-log";
/// The format version after the magic.
pub const VERSION: u32 = 1;
/// Bytes of magic plus version.
pub const HEADER_LEN: u64 = 12;
/// Bytes of checksum plus length before each record's payload.
pub const FRAME_LEN: u64 = 8;
/// The longest key.
pub const MAX_KEY: usize = 1024;
/// The longest value: 1 MiB.
pub const MAX_VALUE: usize = 1024 * 1024;
/// The longest payload a valid record can have; a longer `len` is garbage.
const MAX_PAYLOAD: usize = 1 + 4 + MAX_KEY + MAX_VALUE;
/// The longest a valid record can be, frame included.
pub const MAX_RECORD: u64 = FRAME_LEN + MAX_PAYLOAD as u64;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

/// One change to the data.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// `key` now holds `value`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// `key` is gone.
    Delete {
        /// The key.
        key: String,
    },
}

/// What [`read_record`] found at the reader's position.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// A valid record of this many bytes.
    Record(Record, u64),
    /// The clean end of the log.
    End,
    /// Something that is not a valid record: a frame or payload cut short by the end of the
    /// file, a bad checksum or length, or a payload that does not decode.
    Bad(&'static str),
}

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (IEEE 802.3, reflected, as zlib and gzip compute it) of the concatenated `parts`.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut c = !0u32;
    for part in parts {
        for &b in *part {
            c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
    }
    !c
}

/// The file header.
pub fn header() -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&VERSION.to_le_bytes());
    h
}

/// How many bytes `encode` produces for a put of this key and value.
pub fn put_len(key: &str, value: &[u8]) -> u64 {
    FRAME_LEN + 1 + 4 + key.len() as u64 + value.len() as u64
}

/// Encodes a put of `value` under `key`, frame included.
pub fn encode_put(key: &str, value: &[u8]) -> Vec<u8> {
    encode(OP_PUT, key, value)
}

/// Encodes the deletion of `key`, frame included.
pub fn encode_delete(key: &str) -> Vec<u8> {
    encode(OP_DELETE, key, &[])
}

fn encode(op: u8, key: &str, value: &[u8]) -> Vec<u8> {
    let payload_len = 1 + 4 + key.len() + value.len();
    let mut buf = Vec::with_capacity(FRAME_LEN as usize + payload_len);
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
    buf.push(op);
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(value);
    let crc = crc32(&[&buf[4..]]);
    buf[..4].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// Reads up to `buf.len()` bytes; fewer only at the end of the input.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether `buf` starts with a complete record whose checksum matches: a cheap test, used to
/// find whether good records follow a bad one.
pub fn checks_out(buf: &[u8]) -> bool {
    let Some(frame) = buf.get(..FRAME_LEN as usize) else {
        return false;
    };
    let crc = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(frame[4..].try_into().expect("4 bytes")) as usize;
    if !(5..=MAX_PAYLOAD).contains(&len) {
        return false;
    }
    buf.get(FRAME_LEN as usize..FRAME_LEN as usize + len)
        .is_some_and(|payload| crc32(&[&frame[4..], payload]) == crc)
}

/// Reads the next record. I/O errors are errors; everything about the bytes themselves is
/// reported as [`Next::End`] or [`Next::Bad`].
pub fn read_record(r: &mut impl Read) -> io::Result<Next> {
    let mut frame = [0u8; FRAME_LEN as usize];
    match fill(r, &mut frame)? {
        0 => return Ok(Next::End),
        n if n < frame.len() => return Ok(Next::Bad("the record frame is cut short")),
        _ => {}
    }
    let crc = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(frame[4..].try_into().expect("4 bytes")) as usize;
    if !(5..=MAX_PAYLOAD).contains(&len) {
        return Ok(Next::Bad("the record length is out of range"));
    }
    let mut payload = vec![0u8; len];
    if fill(r, &mut payload)? < len {
        return Ok(Next::Bad("the record is cut short"));
    }
    if crc32(&[&frame[4..], &payload]) != crc {
        return Ok(Next::Bad("the record checksum does not match"));
    }
    let key_len = u32::from_le_bytes(payload[1..5].try_into().expect("4 bytes")) as usize;
    let Some(key) = payload.get(5..5 + key_len) else {
        return Ok(Next::Bad("the key length exceeds the record"));
    };
    let Ok(key) = String::from_utf8(key.to_vec()) else {
        return Ok(Next::Bad("the key is not UTF-8"));
    };
    let record = match payload[0] {
        OP_PUT => Record::Put {
            key,
            value: payload[5 + key_len..].to_vec(),
        },
        OP_DELETE if len == 5 + key_len => Record::Delete { key },
        _ => return Ok(Next::Bad("the record has an unknown operation")),
    };
    Ok(Next::Record(record, FRAME_LEN + len as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &[u8]) -> Record {
        Record::Put {
            key: key.into(),
            value: value.to_vec(),
        }
    }

    fn encoded(r: &Record) -> Vec<u8> {
        match r {
            Record::Put { key, value } => encode_put(key, value),
            Record::Delete { key } => encode_delete(key),
        }
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[]), 0);
    }

    #[test]
    fn records_round_trip() {
        let records = [
            put("visits", b"41"),
            put("empty", b""),
            put("bin", &[0, 255, 10, 13]),
            Record::Delete {
                key: "visits".into(),
            },
        ];
        let mut log = Vec::new();
        for r in &records {
            log.extend_from_slice(&encoded(r));
        }
        assert_eq!(
            encode_put("visits", b"41").len() as u64,
            put_len("visits", b"41")
        );
        let mut reader = log.as_slice();
        for r in &records {
            match read_record(&mut reader).unwrap() {
                Next::Record(got, n) => {
                    assert_eq!(&got, r);
                    assert_eq!(n, encoded(r).len() as u64);
                }
                other => panic!("expected {r:?}, got {other:?}"),
            }
        }
        assert_eq!(read_record(&mut reader).unwrap(), Next::End);
    }

    #[test]
    fn every_truncation_of_a_record_is_detected() {
        let rec = encode_put("k", b"value");
        for cut in 1..rec.len() {
            let got = read_record(&mut &rec[..cut]).unwrap();
            assert!(matches!(got, Next::Bad(_)), "cut at {cut}: {got:?}");
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let rec = encode_put("key", b"value");
        for byte in 0..rec.len() {
            for bit in 0..8 {
                let mut bad = rec.clone();
                bad[byte] ^= 1 << bit;
                let got = read_record(&mut bad.as_slice()).unwrap();
                assert!(
                    matches!(got, Next::Bad(_)),
                    "byte {byte} bit {bit}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn checks_out_finds_only_whole_records() {
        let mut buf = encode_put("k", b"v");
        assert!(checks_out(&buf));
        assert!(!checks_out(&buf[..buf.len() - 1]));
        buf.push(7);
        assert!(checks_out(&buf), "what follows does not matter");
        assert!(!checks_out(&buf[1..]));
        assert!(!checks_out(&[0; 64]));
    }

    #[test]
    fn zeroed_space_is_not_a_record() {
        // What a file extended by a crash before its data reached the disk looks like.
        let got = read_record(&mut [0u8; 64].as_slice()).unwrap();
        assert!(matches!(got, Next::Bad(_)));
    }
}
