//! End-to-end shell tests: scripts run through the `sh` applet with captured streams.

use super::*;
use std::fs;

/// Runs `sh -c script` with `stdin`; returns (status, stdout, stderr).
fn sh(script: &str, stdin: &str) -> (i32, String, String) {
    let (mut io, out, err) = Io::test(stdin.as_bytes(), &[("HOME", "/root"), ("GREETING", "hi")]);
    let args = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    let code = main(&mut io, &args);
    let s = |b: &crate::io::Captured| String::from_utf8(b.borrow().clone()).unwrap();
    (code, s(&out), s(&err))
}

fn out(script: &str) -> String {
    sh(script, "").1
}

#[test]
fn sequences_and_conditionals() {
    assert_eq!(out("echo a; echo b"), "a\nb\n");
    assert_eq!(out("true && echo yes || echo no"), "yes\n");
    assert_eq!(out("false && echo yes || echo no"), "no\n");
    assert_eq!(out("false; echo $?; true; echo $?"), "1\n0\n");
    assert_eq!(out("! false && echo negated"), "negated\n");
}

#[test]
fn unknown_command_is_127() {
    let (code, _, err) = sh("nosuchthing arg", "");
    assert_eq!(code, 127);
    assert_eq!(err, "sh: nosuchthing: not found\n");
    assert_eq!(out("nosuch 2>/dev/null; echo $?"), "127\n");
}

#[test]
fn exit_codes() {
    assert_eq!(sh("exit 3", "").0, 3);
    assert_eq!(sh("exit 300", "").0, 44);
    assert_eq!(sh("false", "").0, 1);
    assert_eq!(sh("echo a; exit; echo b", "").1, "a\n");
    assert_eq!(sh("(exit 4); echo $?", "").1, "4\n");
    assert_eq!(sh("if", "").0, 2);
}

#[test]
fn variables_and_quoting() {
    assert_eq!(out("x=1; echo $x ${x}y \"$x z\" '$x'"), "1 1y 1 z $x\n");
    assert_eq!(
        out("echo $GREETING ${UNSET:-dflt} ${GREETING:+set} ${#GREETING}"),
        "hi dflt set 2\n"
    );
    assert_eq!(out("echo ${N:=5} $N"), "5 5\n");
    assert_eq!(
        out("v='a   b'; for w in $v; do echo [$w]; done; for w in \"$v\"; do echo \"[$w]\"; done"),
        "[a]\n[b]\n[a   b]\n"
    );
    assert_eq!(
        out("f=/a/b/c.tar.gz; echo ${f##*/} ${f%.gz} ${f%%.*}"),
        "c.tar.gz /a/b/c.tar /a/b/c\n"
    );
    assert_eq!(out("echo \"a\\\"b\" a\\ b ''"), "a\"b a b \n");
    assert_eq!(
        sh("echo ${MISSING:?is required}", "").2,
        "sh: MISSING: is required\n"
    );
}

#[test]
fn command_substitution_and_arithmetic() {
    assert_eq!(out("echo \"[$(echo a; echo b)]\""), "[a\nb]\n");
    assert_eq!(out("x=$(echo inner); echo $x `echo back`"), "inner back\n");
    assert_eq!(out("x=$(false); echo $?"), "1\n");
    assert_eq!(out("i=2; echo $((i * 3 + 1)) $(( $i ** 2 ))"), "7 4\n");
    assert_eq!(out("echo $(echo $(echo nested))"), "nested\n");
    assert_eq!(
        out("x=outer; y=$(x=inner; echo $x); echo $x $y"),
        "outer inner\n"
    );
}

#[test]
fn pipelines_are_buffered_and_run_in_subshells() {
    assert_eq!(out("printf_missing=1; echo hello world | wc -w"), "2\n");
    assert_eq!(out("echo b; echo a | cat | cat"), "b\na\n");
    assert_eq!(out("echo 'x\ny\nz' | grep -v y | head -n 1"), "x\n");
    assert_eq!(out("x=1; echo 2 | read x; echo $x"), "1\n");
    assert_eq!(sh("echo in | false", "").0, 1);
}

#[test]
fn loops() {
    assert_eq!(out("for i in 1 2 3; do echo $i; done"), "1\n2\n3\n");
    assert_eq!(
        out("i=0; while [ $i -lt 3 ]; do i=$((i+1)); echo $i; done"),
        "1\n2\n3\n"
    );
    assert_eq!(
        out("i=0; until [ $i -ge 2 ]; do i=$((i+1)); done; echo $i"),
        "2\n"
    );
    assert_eq!(
        out("for i in 1 2 3 4; do [ $i = 2 ] && continue; [ $i = 4 ] && break; echo $i; done"),
        "1\n3\n"
    );
    assert_eq!(
        out("for i in a b; do for j in 1 2; do [ $j = 2 ] && break 2; echo $i$j; done; done"),
        "a1\n"
    );
    assert_eq!(
        out("set -- x y; for a; do echo $a; done; echo $# $1"),
        "x\ny\n2 x\n"
    );
    assert_eq!(
        sh(
            "while read line; do echo \"<$line>\"; done",
            "one\ntwo words\n"
        )
        .1,
        "<one>\n<two words>\n"
    );
}

#[test]
fn if_elif_else() {
    let script = "for n in 1 2 3; do if [ $n = 1 ]; then echo one; elif [ $n = 2 ]; then echo two; else echo many; fi; done";
    assert_eq!(out(script), "one\ntwo\nmany\n");
    assert_eq!(out("if false; then echo x; fi; echo $?"), "0\n");
}

#[test]
fn redirections() {
    let d = std::env::temp_dir().join(format!("toolbox-sh-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    let f = d.join("f.txt");
    let f = f.to_str().unwrap();
    assert_eq!(
        out(&format!(
            "echo one > {f}; echo two >> {f}; cat < {f}; wc -l < {f}"
        )),
        "one\ntwo\n2\n"
    );
    let (_, o, e) = sh(
        &format!("cat {f} /nope 2>&1 >/dev/null | grep -c 'No such'"),
        "",
    );
    assert_eq!((o.as_str(), e.as_str()), ("1\n", ""));
    assert_eq!(sh("echo err >&2", "").2, "err\n");
    assert_eq!(sh("{ echo a; echo b >&2; } 2>&1", "").1, "a\nb\n");
    let (code, _, e) = sh(&format!("echo x > {}/no/such/dir/file", d.display()), "");
    assert_eq!(code, 1);
    assert!(e.starts_with("sh: can't create"), "{e}");
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn export_and_environment() {
    assert_eq!(out("env | grep ^GREETING="), "GREETING=hi\n");
    assert_eq!(
        out("X=1; env | grep -c ^X=; export X; env | grep ^X="),
        "0\nX=1\n"
    );
    assert_eq!(out("Y=tmp env | grep ^Y=; echo \"[$Y]\""), "Y=tmp\n[]\n");
    assert_eq!(out("sh -c 'echo $GREETING'"), "hi\n");
}

#[test]
fn set_e_stops_at_the_first_failure_outside_conditions() {
    assert_eq!(
        sh(
            "set -e; false || true; if false; then :; fi; echo ok; false; echo never",
            ""
        ),
        (1, "ok\n".into(), String::new())
    );
}

#[test]
fn script_from_stdin_runs_line_by_line() {
    let (code, o, _) =
        sh_stdin("echo first\nif true\nthen\n  echo second\nfi\nexit 7\necho never\n");
    assert_eq!((code, o.as_str()), (7, "first\nsecond\n"));
    let (code, _, e) = sh_stdin("echo ok\nfi\necho never\n");
    assert_eq!(code, 2);
    assert!(e.contains("syntax error"));
}

fn sh_stdin(stdin: &str) -> (i32, String, String) {
    let (mut io, out, err) = Io::test(stdin.as_bytes(), &[]);
    let code = main(&mut io, &["sh".to_string()]);
    let s = |b: &crate::io::Captured| String::from_utf8(b.borrow().clone()).unwrap();
    (code, s(&out), s(&err))
}

#[test]
fn builtins() {
    assert_eq!(
        out("command -v ls; type cd; command -v nope; echo $?"),
        "/bin/ls\ncd is a shell builtin\n1\n"
    );
    assert_eq!(out("eval 'a=5; echo $a'"), "5\n");
    assert_eq!(sh("exec false; echo never", "").0, 1);
    assert_eq!(out("set -- a b c; shift; echo $@ $#"), "b c 2\n");
    assert_eq!(out("echo a b | { read x y; echo $y$x; }"), "ba\n");
}

#[test]
fn globbing() {
    let d = std::env::temp_dir().join(format!("toolbox-shglob-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("a.log"), "").unwrap();
    fs::write(d.join("b.log"), "").unwrap();
    let base = d.to_str().unwrap();
    assert_eq!(
        out(&format!("for f in {base}/*.log; do echo ${{f##*/}}; done")),
        "a.log\nb.log\n"
    );
    assert_eq!(out(&format!("echo '{base}/*.log' | grep -c '[*]'")), "1\n");
    assert_eq!(
        out(&format!("echo {base}/*.none")),
        format!("{base}/*.none\n")
    );
    fs::remove_dir_all(&d).unwrap();
}
