//! Tests of store.rs: the log's records, torn tails, damage, compaction.

use super::*;

/// A fresh, empty directory for one test.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kv-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn open(dir: &Path) -> (Store, Option<Truncation>) {
    Store::open(dir, COMPACT_MIN).unwrap()
}

fn value(store: &Store, key: &str) -> Option<String> {
    store
        .get(key)
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

#[test]
fn reopening_replays_puts_and_deletes() {
    let dir = temp_dir("replay");
    let (mut s, cut) = open(&dir);
    assert_eq!((s.len(), cut), (0, None));
    assert!(s.put("a", b"1").unwrap(), "a is new");
    assert!(!s.put("a", b"2").unwrap(), "a is replaced");
    s.put("b", b"").unwrap();
    s.put("c", b"3").unwrap();
    assert!(s.delete("c").unwrap());
    assert!(!s.delete("c").unwrap());
    let len = s.log_len();
    assert_eq!(fs::metadata(dir.join(LOG_FILE)).unwrap().len(), len);
    drop(s);
    let (s, cut) = open(&dir);
    assert_eq!(cut, None);
    assert_eq!(s.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(value(&s, "a").as_deref(), Some("2"));
    assert_eq!(value(&s, "b").as_deref(), Some(""));
    assert_eq!(s.log_len(), len);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn incr_counts_from_zero_and_refuses_non_integers() {
    let dir = temp_dir("incr");
    let (mut s, _) = open(&dir);
    assert_eq!(s.incr("visits").unwrap(), 1);
    assert_eq!(s.incr("visits").unwrap(), 2);
    s.put("name", b"kv").unwrap();
    assert!(matches!(s.incr("name"), Err(Error::NotAnInteger { .. })));
    s.put("big", i64::MAX.to_string().as_bytes()).unwrap();
    assert!(matches!(s.incr("big"), Err(Error::Overflow { .. })));
    s.put("padded", b" 41\n").unwrap();
    assert_eq!(s.incr("padded").unwrap(), 42);
    drop(s);
    assert_eq!(value(&open(&dir).0, "visits").as_deref(), Some("2"));
    fs::remove_dir_all(&dir).unwrap();
}

/// Writes three records and returns the log length before the last one.
fn three_records(dir: &Path) -> u64 {
    let (mut s, _) = open(dir);
    s.put("one", b"1").unwrap();
    s.put("two", b"2").unwrap();
    let before = s.log_len();
    s.put("three", b"a longer third value").unwrap();
    before
}

#[test]
fn a_torn_last_record_is_cut_off_and_the_rest_survives() {
    let dir = temp_dir("torn");
    let log = dir.join(LOG_FILE);
    let before = three_records(&dir);
    let full = fs::read(&log).unwrap();
    // Every place a crash could have cut the last append.
    for cut in before + 1..full.len() as u64 {
        fs::write(&log, &full[..cut as usize]).unwrap();
        let (s, truncation) = open(&dir);
        let t = truncation.unwrap_or_else(|| panic!("cut at {cut} not detected"));
        assert_eq!((t.offset, t.dropped), (before, cut - before));
        assert_eq!(s.keys().collect::<Vec<_>>(), ["one", "two"]);
        assert_eq!(
            fs::metadata(&log).unwrap().len(),
            before,
            "truncated on disk"
        );
    }
    // Writes after recovery land after the good records and survive another reopen.
    let (mut s, _) = open(&dir);
    s.put("four", b"4").unwrap();
    drop(s);
    let (s, cut) = open(&dir);
    assert_eq!(cut, None);
    assert_eq!(s.keys().collect::<Vec<_>>(), ["four", "one", "two"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_last_record_with_garbage_or_zeros_is_cut_off() {
    let dir = temp_dir("garbage");
    let log = dir.join(LOG_FILE);
    let before = three_records(&dir);
    let mut bytes = fs::read(&log).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    fs::write(&log, &bytes).unwrap();
    let (s, cut) = open(&dir);
    assert_eq!(cut.unwrap().reason, "the record checksum does not match");
    assert_eq!(s.len(), 2);
    // Pages that never reached the disk read back as zeros.
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&[0; 8192]).unwrap();
    drop((f, s));
    let (s, cut) = open(&dir);
    assert_eq!(cut.unwrap().offset, before);
    assert_eq!(s.len(), 2);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damage_before_good_records_refuses_to_open() {
    let dir = temp_dir("damage");
    let log = dir.join(LOG_FILE);
    three_records(&dir);
    let mut bytes = fs::read(&log).unwrap();
    // Inside the first record's value.
    let first_value = log::HEADER_LEN as usize + 8 + 1 + 4 + "one".len();
    bytes[first_value] ^= 1;
    fs::write(&log, &bytes).unwrap();
    let err = Store::open(&dir, COMPACT_MIN).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LogCorrupt {
                offset: log::HEADER_LEN,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fs::read(&log).unwrap(), bytes, "nothing is cut");

    // A garbled length that claims to run past the end must not hide good records after
    // it either (found by writing into a live pod's log).
    let before = three_records(&temp_dir("damage"));
    let mut bytes = fs::read(&log).unwrap();
    bytes.truncate(before as usize);
    bytes.extend_from_slice(b"\x11\x22\x33\x44\x50\x00\x00\x00\x01abc");
    bytes.extend_from_slice(&log::encode_put("acknowledged", b"later"));
    fs::write(&log, &bytes).unwrap();
    let err = Store::open(&dir, COMPACT_MIN).unwrap_err();
    assert!(
        matches!(err, Error::LogCorrupt { offset, .. } if offset == before),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_foreign_file_is_not_taken_for_a_log() {
    let dir = temp_dir("foreign");
    fs::write(dir.join(LOG_FILE), "PGDMP something else").unwrap();
    let err = Store::open(&dir, COMPACT_MIN).unwrap_err();
    assert!(matches!(err, Error::NotALog { .. }), "{err}");
    // A header cut short by a crash at creation is completed instead.
    fs::write(dir.join(LOG_FILE), &log::header()[..5]).unwrap();
    let (mut s, _) = open(&dir);
    s.put("k", b"v").unwrap();
    drop(s);
    assert_eq!(value(&open(&dir).0, "k").as_deref(), Some("v"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compaction_keeps_the_log_near_the_live_data() {
    let dir = temp_dir("compact");
    let log = dir.join(LOG_FILE);
    // Leftover of a compaction that crashed before its rename.
    fs::write(dir.join(COMPACT_FILE), b"partial").unwrap();
    let (mut s, _) = Store::open(&dir, 1024).unwrap();
    assert!(!dir.join(COMPACT_FILE).exists());
    s.put("keep", b"this value stays").unwrap();
    for i in 0..1000 {
        s.put("gone", b"soon deleted").unwrap();
        s.delete("gone").unwrap();
        assert_eq!(s.incr("visits").unwrap(), i + 1);
        let live = log::HEADER_LEN
            + log::put_len("keep", b"this value stays")
            + log::put_len("visits", (i + 1).to_string().as_bytes());
        assert!(
            s.log_len() <= (COMPACT_RATIO * live).max(1024) + 64,
            "round {i}"
        );
        assert_eq!(fs::metadata(&log).unwrap().len(), s.log_len());
    }
    assert!(!dir.join(COMPACT_FILE).exists());
    drop(s);
    let (s, cut) = open(&dir);
    assert_eq!(cut, None);
    assert_eq!(s.keys().collect::<Vec<_>>(), ["keep", "visits"]);
    assert_eq!(value(&s, "visits").as_deref(), Some("1000"));
    assert_eq!(value(&s, "keep").as_deref(), Some("this value stays"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writes_after_compaction_go_to_the_new_log() {
    let dir = temp_dir("after-compact");
    let (mut s, _) = open(&dir);
    for i in 0..10 {
        s.put("k", i.to_string().as_bytes()).unwrap();
    }
    s.compact().unwrap();
    assert_eq!(
        s.log_len(),
        log::HEADER_LEN + log::put_len("k", b"9"),
        "only the live data"
    );
    s.put("k2", b"x").unwrap();
    drop(s);
    let (s, _) = open(&dir);
    assert_eq!(s.keys().collect::<Vec<_>>(), ["k", "k2"]);
    assert_eq!(value(&s, "k").as_deref(), Some("9"));
    fs::remove_dir_all(&dir).unwrap();
}
