//! Tests of logs.rs.

use super::*;

fn t(s: u64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_700_000_000 + s as i64).unwrap()
}

fn records() -> Vec<u8> {
    let mut out = Vec::new();
    for (i, line) in ["one", "two", "three", "four"].iter().enumerate() {
        out.extend(format_record(
            t(i as u64),
            Stream::Stdout,
            false,
            line.as_bytes(),
        ));
    }
    out
}

#[test]
fn tail_since_and_timestamps() {
    assert_eq!(
        render(&records(), &ReadOptions::default()),
        b"one\ntwo\nthree\nfour\n"
    );
    let tail = ReadOptions {
        tail_lines: Some(2),
        ..ReadOptions::default()
    };
    assert_eq!(render(&records(), &tail), b"three\nfour\n");
    let since = ReadOptions {
        since: Some(t(3)),
        timestamps: true,
        ..ReadOptions::default()
    };
    assert_eq!(
        String::from_utf8(render(&records(), &since)).unwrap(),
        format!("{} four\n", t(3))
    );
    let none = ReadOptions {
        tail_lines: Some(0),
        ..ReadOptions::default()
    };
    assert!(render(&records(), &none).is_empty());
}

#[test]
fn sinks_split_lines_and_keep_partials_until_finished() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::new();
    store.add_pod("ns", "p", "u", dir.path().to_path_buf());
    let log = store.start("ns", "p", "c", 0).unwrap();
    let (out, err) = (log.sink(Stream::Stdout), log.sink(Stream::Stderr));
    out.write(b"hel").unwrap();
    err.write(b"oops\n").unwrap();
    out.write(b"lo\nwor").unwrap();
    log.finish();
    let data = std::fs::read(dir.path().join("c/0.log")).unwrap();
    assert_eq!(
        render(&data, &ReadOptions::default()),
        b"oops\nhello\nwor\n"
    );
    assert!(String::from_utf8_lossy(&data).contains(" stderr F oops\n"));
}

#[test]
fn long_lines_become_partial_records_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::new();
    store.add_pod("ns", "p", "u", dir.path().to_path_buf());
    let log = store.start("ns", "p", "c", 0).unwrap();
    let long = vec![b'x'; MAX_LINE * 2 + 5];
    log.sink(Stream::Stdout).write(&long).unwrap();
    log.sink(Stream::Stdout).write(b"\n").unwrap();
    let data = std::fs::read(dir.path().join("c/0.log")).unwrap();
    assert_eq!(
        data.split(|b| *b == b'\n')
            .filter(|r| !r.is_empty())
            .count(),
        3
    );
    assert_eq!(render(&data, &ReadOptions::default()).len(), long.len() + 1);
}

#[test]
fn keeps_current_and_previous_start_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::new();
    store.add_pod("ns", "p", "u", dir.path().to_path_buf());
    for n in 0..4 {
        store.start("ns", "p", "c", n).unwrap();
        store.stopped("ns", "p", "c");
    }
    assert_eq!(starts(&dir.path().join("c")), vec![2, 3]);
    let current = store.locate("ns", "p", "c", false).unwrap();
    assert_eq!((current.restart, current.running), (3, false));
    assert_eq!(store.locate("ns", "p", "c", true).unwrap().restart, 2);
    store.start("ns", "p", "d", 0).unwrap();
    assert!(store.locate("ns", "p", "d", false).unwrap().running);
    assert!(store.is_running("ns", "p", "d", 0));
    assert!(matches!(
        store.locate("ns", "p", "d", true),
        Err(Error::NoPrevious { .. })
    ));
    assert!(matches!(
        store.locate("ns", "q", "d", false),
        Err(Error::PodNotFound { .. })
    ));
}

#[test]
fn complete_prefix_stops_at_the_last_newline() {
    assert_eq!(complete_prefix(b"a\nb\nc"), 4);
    assert_eq!(complete_prefix(b"abc"), 0);
}
