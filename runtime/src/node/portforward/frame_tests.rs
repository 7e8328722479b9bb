//! The frame codec: every frame type round-trips, arrives in pieces, and bad input is refused.

use super::*;

fn headers(pairs: &[(&str, &str)]) -> Headers {
    Headers(
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}

fn every_kind() -> Vec<Frame> {
    vec![
        Frame::SynStream {
            stream: 1,
            associated: 0,
            priority: 3,
            flags: FLAG_FIN,
            headers: headers(&[("streamtype", "error"), ("port", "80")]),
        },
        Frame::SynReply {
            stream: 1,
            flags: 0,
            headers: Headers::default(),
        },
        Frame::Headers {
            stream: 3,
            flags: FLAG_FIN,
            headers: headers(&[("x", "y")]),
        },
        Frame::RstStream {
            stream: 5,
            status: status::CANCEL,
        },
        Frame::Settings {
            flags: 0,
            entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20), (1, 4, 100)],
        },
        Frame::Ping { id: 7 },
        Frame::GoAway {
            last_good: 9,
            status: 0,
        },
        Frame::WindowUpdate {
            stream: 0,
            delta: 4096,
        },
        Frame::Data {
            stream: 3,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
        },
        Frame::Data {
            stream: 3,
            flags: 0,
            data: Bytes::new(),
        },
    ]
}

#[test]
fn every_frame_round_trips() {
    let (mut encoder, mut decoder) = (Encoder::default(), Decoder::default());
    let mut wire = BytesMut::new();
    for frame in every_kind() {
        encoder.encode(&frame, &mut wire).unwrap();
    }
    for frame in every_kind() {
        assert_eq!(decoder.decode(&mut wire).unwrap(), Some(frame));
    }
    assert_eq!(decoder.decode(&mut wire).unwrap(), None);
}

#[test]
fn frames_arrive_in_pieces() {
    let mut encoder = Encoder::default();
    let mut whole = BytesMut::new();
    for frame in every_kind() {
        encoder.encode(&frame, &mut whole).unwrap();
    }
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    // One byte at a time: nothing is decoded before its last byte is there.
    for byte in whole.iter() {
        buf.put_u8(*byte);
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            got.push(frame);
        }
    }
    assert_eq!(got, every_kind());
}

#[test]
fn data_frames_have_the_stream_in_the_first_word() {
    let mut wire = BytesMut::new();
    Encoder::default()
        .encode(
            &Frame::Data {
                stream: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hi"),
            },
            &mut wire,
        )
        .unwrap();
    assert_eq!(&wire[..], b"\x00\x00\x00\x03\x01\x00\x00\x02hi");
    let mut ping = BytesMut::new();
    Encoder::default()
        .encode(&Frame::Ping { id: 1 }, &mut ping)
        .unwrap();
    assert_eq!(
        &ping[..],
        b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"
    );
}

#[test]
fn rejects_other_versions_bad_lengths_and_stream_zero() {
    let mut v2 = BytesMut::from(&b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"[..]);
    assert!(matches!(
        Decoder::default().decode(&mut v2),
        Err(Error::Version(2))
    ));
    let mut short_ping = BytesMut::from(&b"\x80\x03\x00\x06\x00\x00\x00\x02\x00\x01"[..]);
    assert!(matches!(
        Decoder::default().decode(&mut short_ping),
        Err(Error::InvalidLength { kind: "PING", .. })
    ));
    let mut huge = BytesMut::from(&b"\x80\x03\x00\x01\x00\xff\xff\xff"[..]);
    assert!(Decoder::default().decode(&mut huge).is_err());
    let mut settings = BytesMut::from(&b"\x80\x03\x00\x04\x00\x00\x00\x04\x00\x00\x00\x09"[..]);
    assert!(Decoder::default().decode(&mut settings).is_err());
    let mut wire = BytesMut::new();
    Encoder::default()
        .encode(
            &Frame::SynStream {
                stream: 0,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: Headers::default(),
            },
            &mut wire,
        )
        .unwrap();
    assert!(matches!(
        Decoder::default().decode(&mut wire),
        Err(Error::ZeroStream(_))
    ));
}

#[test]
fn unknown_control_frames_are_skipped() {
    // A CREDENTIAL frame (type 10) with a body: read past, not an error.
    let mut wire = BytesMut::from(
        &b"\x80\x03\x00\x0a\x00\x00\x00\x03abc\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x05"[..],
    );
    let mut d = Decoder::default();
    assert_eq!(
        d.decode(&mut wire).unwrap(),
        Some(Frame::Unknown { kind: 10 })
    );
    assert_eq!(d.decode(&mut wire).unwrap(), Some(Frame::Ping { id: 5 }));
}
