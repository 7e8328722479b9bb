//! Round trips through our own reader and writer, path-escape refusal, and interop with the
//! host's GNU tar when it is installed.

use super::create::write_entry;
use super::extract::safe_path;
use super::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("toolbox-tar-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `tar` with `stdin`, returning (status, stdout bytes, stderr).
fn tar(a: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    let (mut io, out, err) = Io::test(stdin, &[]);
    let code = main(&mut io, &args(a));
    let e = String::from_utf8(err.borrow().clone()).unwrap();
    (code, out.borrow().clone(), e)
}

fn populate(root: &Path) -> String {
    let deep = "d".repeat(60) + "/" + &"e".repeat(60) + "/" + &"f".repeat(90) + ".txt";
    let huge = "n".repeat(120) + "/" + &"m".repeat(150) + ".txt";
    fs::create_dir_all(root.join("src/sub/empty")).unwrap();
    fs::write(root.join("src/a.txt"), "alpha\n").unwrap();
    fs::write(
        root.join("src/sub/b.bin"),
        (0..2000u32).map(|i| i as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    for long in [&deep, &huge] {
        let p = root.join("src").join(long);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, long.as_bytes()).unwrap();
    }
    huge
}

#[test]
fn parses_old_style_and_dashed_options() {
    let o = parse_opts(&args(&["tar", "xmf", "-", "-C", "/dir"])).unwrap();
    assert_eq!(
        (o.mode, o.file.as_deref(), o.dir.as_deref(), o.keep_mtime),
        (Some('x'), Some("-"), Some("/dir"), false)
    );
    let o = parse_opts(&args(&["tar", "--no-same-owner", "-cvf", "-", "a", "b"])).unwrap();
    assert_eq!((o.mode, o.verbose, o.members.len()), (Some('c'), true, 2));
    assert!(parse_opts(&args(&["tar", "czf", "x.tgz", "a"])).is_err());
}

#[test]
fn round_trips_files_dirs_and_long_names() {
    let root = scratch("rt");
    let huge = populate(&root);
    let src = root.to_str().unwrap();
    let (code, archive, err) = tar(&["tar", "-C", src, "-cf", "-", "src"], b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(archive.len() % BLOCK, 0);
    let (_, listing, _) = tar(&["tar", "tf", "-"], &archive);
    let listing = String::from_utf8(listing).unwrap();
    assert!(listing.lines().any(|l| l == "src/sub/empty/"), "{listing}");
    assert!(
        listing.lines().any(|l| l == format!("src/{huge}")),
        "{listing}"
    );

    let out = root.join("out");
    fs::create_dir_all(&out).unwrap();
    let (code, _, err) = tar(&["tar", "xf", "-", "-C", out.to_str().unwrap()], &archive);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        fs::read_to_string(out.join("src/a.txt")).unwrap(),
        "alpha\n"
    );
    assert_eq!(
        fs::read(out.join("src/sub/b.bin")).unwrap(),
        fs::read(root.join("src/sub/b.bin")).unwrap()
    );
    assert_eq!(
        fs::read_to_string(out.join("src").join(&huge)).unwrap(),
        huge
    );
    assert!(out.join("src/sub/empty").is_dir());
    // Without `m` the modification time is restored.
    let t = |p: &Path| {
        fs::metadata(p)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    assert_eq!(t(&out.join("src/a.txt")), t(&root.join("src/a.txt")));
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn absolute_members_lose_their_slash() {
    let root = scratch("abs");
    fs::write(root.join("f"), "x").unwrap();
    let member = root.join("f");
    let (code, archive, err) = tar(&["tar", "cf", "-", member.to_str().unwrap()], b"");
    assert_eq!(code, 0);
    assert!(err.contains("removing leading '/'"));
    let (_, listing, _) = tar(&["tar", "tf", "-"], &archive);
    assert_eq!(
        String::from_utf8(listing).unwrap().trim(),
        member.to_str().unwrap().trim_start_matches('/')
    );
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn refuses_to_escape_the_target_directory() {
    let root = scratch("escape");
    let mut archive = Vec::new();
    write_entry(&mut archive, "../evil.txt", 4, 0o644, 0, b'0', "").unwrap();
    archive.extend_from_slice(b"evil");
    archive.extend(vec![0; padding(4) + 2 * BLOCK]);
    let inside = root.join("inside");
    fs::create_dir_all(&inside).unwrap();
    let (code, _, err) = tar(
        &["tar", "-xf", "-", "-C", inside.to_str().unwrap()],
        &archive,
    );
    assert_eq!(code, 0);
    assert!(err.contains("path contains '..'"), "{err}");
    assert!(!root.join("evil.txt").exists());
    assert_eq!(safe_path("/etc/passwd"), Some(PathBuf::from("etc/passwd")));
    assert_eq!(safe_path("a/../../b"), None);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn rejects_a_corrupt_header() {
    let mut archive = Vec::new();
    write_entry(&mut archive, "f", 0, 0o644, 0, b'0', "").unwrap();
    archive[0] = b'g';
    let (code, _, err) = tar(&["tar", "tf", "-"], &archive);
    assert_eq!(code, 2);
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn interoperates_with_gnu_tar_when_installed() {
    if Command::new("tar").arg("--version").output().is_err() {
        eprintln!("skipping: no host tar");
        return;
    }
    let root = scratch("gnu");
    let huge = populate(&root);
    let src = root.to_str().unwrap();
    // Ours -> GNU.
    let (_, archive, _) = tar(&["tar", "-C", src, "-cf", "-", "src"], b"");
    fs::write(root.join("ours.tar"), &archive).unwrap();
    let listed = Command::new("tar")
        .args(["tf", root.join("ours.tar").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l == format!("src/{huge}"))
    );
    // GNU (its default format, with long names) -> ours.
    let made = Command::new("tar")
        .args(["cf", "gnu.tar", "src"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(made.status.success());
    let out = root.join("from-gnu");
    fs::create_dir_all(&out).unwrap();
    let (code, _, err) = tar(
        &["tar", "xf", "-", "-C", out.to_str().unwrap()],
        &fs::read(root.join("gnu.tar")).unwrap(),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        fs::read_to_string(out.join("src").join(&huge)).unwrap(),
        huge
    );
    // pax format too.
    let made = Command::new("tar")
        .args(["--format=pax", "-cf", "pax.tar", "src"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(made.status.success());
    let (code, listing, _) = tar(
        &["tar", "tf", "-"],
        &fs::read(root.join("pax.tar")).unwrap(),
    );
    assert_eq!(code, 0);
    assert!(
        String::from_utf8(listing)
            .unwrap()
            .lines()
            .any(|l| l == format!("src/{huge}"))
    );
    fs::remove_dir_all(&root).unwrap();
}
