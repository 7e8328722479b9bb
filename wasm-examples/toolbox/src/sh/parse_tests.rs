//! Parser and lexer tests: structure, quoting, and the incomplete/invalid distinction the
//! line-by-line reader depends on.

use super::*;
use crate::sh::ast::ParamOp;

fn lit(s: &str) -> Word {
    Word(vec![Part::Lit(s.into())])
}

fn simple(words: &[&str]) -> Node {
    Node::Simple {
        assigns: vec![],
        words: words.iter().map(|w| lit(w)).collect(),
        redirs: vec![],
    }
}

#[test]
fn lists_and_or_and_pipelines() {
    let n = parse("a; b && c || d | e\nf").unwrap();
    let Node::List(items) = n else { panic!() };
    assert_eq!(items.len(), 3);
    assert_eq!(items[0], simple(&["a"]));
    let Node::AndOr(first, rest) = &items[1] else {
        panic!("{:?}", items[1])
    };
    assert_eq!(**first, simple(&["b"]));
    assert!(rest[0].0 && !rest[1].0);
    assert!(matches!(&rest[1].1, Node::Pipeline { negate: false, cmds } if cmds.len() == 2));
}

#[test]
fn quoting_and_expansions_are_kept_as_parts() {
    let Node::List(items) =
        parse(r#"echo 'a b' "x $HOME ${v:-d}" \$y $(date) `id` $((1+2))"#).unwrap()
    else {
        panic!()
    };
    let Node::Simple { words, .. } = &items[0] else {
        panic!()
    };
    assert_eq!(words[1].0, vec![Part::Quoted("a b".into())]);
    assert_eq!(
        words[2].0[1],
        Part::Param {
            name: "HOME".into(),
            op: ParamOp::Plain,
            quoted: true
        }
    );
    assert!(matches!(
        &words[2].0[3],
        Part::Param {
            op: ParamOp::With {
                op: '-',
                colon: true,
                ..
            },
            ..
        }
    ));
    assert_eq!(
        words[3].0,
        vec![Part::Quoted("$".into()), Part::Lit("y".into())]
    );
    assert_eq!(
        words[4].0,
        vec![Part::Command {
            src: "date".into(),
            quoted: false
        }]
    );
    assert_eq!(
        words[5].0,
        vec![Part::Command {
            src: "id".into(),
            quoted: false
        }]
    );
    assert_eq!(
        words[6].0,
        vec![Part::Arith {
            src: "1+2".into(),
            quoted: false
        }]
    );
}

#[test]
fn assignments_and_redirections() {
    let Node::List(items) = parse("A=1 B=x$y cmd A=2 >out 2>&1 <in").unwrap() else {
        panic!()
    };
    let Node::Simple {
        assigns,
        words,
        redirs,
    } = &items[0]
    else {
        panic!()
    };
    assert_eq!(assigns.len(), 2);
    assert_eq!(assigns[0], ("A".into(), lit("1")));
    assert_eq!(words.len(), 2, "A=2 after the name is an argument");
    let ops: Vec<(u32, &str)> = redirs.iter().map(|r| (r.fd, r.op)).collect();
    assert_eq!(ops, vec![(1, ">"), (2, ">&"), (0, "<")]);
}

#[test]
fn compound_commands() {
    let src = "if a; then b; elif c; then d; else e; fi\nwhile x; do y; done\nuntil x; do y; done\n\
               for i in 1 2 3; do echo $i; done\nfor j do :; done\n{ a; b; } >f\n(cd /; ls)";
    let Node::List(items) = parse(src).unwrap() else {
        panic!()
    };
    assert!(matches!(&items[0], Node::If { branches, otherwise: Some(_) } if branches.len() == 2));
    assert!(matches!(&items[1], Node::Loop { until: false, .. }));
    assert!(matches!(&items[2], Node::Loop { until: true, .. }));
    assert!(matches!(&items[3], Node::For { items: Some(v), .. } if v.len() == 3));
    assert!(matches!(&items[4], Node::For { items: None, .. }));
    assert!(
        matches!(&items[5], Node::Redirected(g, r) if matches!(**g, Node::Group { subshell: false, .. }) && r.len() == 1)
    );
    assert!(matches!(&items[6], Node::Group { subshell: true, .. }));
}

#[test]
fn keywords_are_only_keywords_in_command_position() {
    assert_eq!(
        parse("echo done fi").unwrap(),
        Node::List(vec![simple(&["echo", "done", "fi"])])
    );
    assert!(
        matches!(parse("! true").unwrap(), Node::List(v) if matches!(v[0], Node::Pipeline { negate: true, .. }))
    );
}

#[test]
fn incomplete_input_can_be_continued() {
    for src in [
        "if true",
        "if true; then",
        "while x; do",
        "echo 'abc",
        "echo \"abc",
        "a &&",
        "a |",
        "echo $(ls",
        "for i in 1 2",
        "{ a;",
        "(a",
        "echo ${x",
    ] {
        assert_eq!(parse(src), Err(SyntaxError::Incomplete), "{src}");
    }
}

#[test]
fn invalid_input_is_an_error() {
    for src in [
        "fi",
        "then",
        "a;;",
        "; a",
        "a && ;",
        "echo >",
        "( a ) )",
        "done",
        "for 1 in x; do a; done",
        "cat <<EOF",
    ] {
        assert!(
            matches!(parse(src), Err(SyntaxError::Invalid(_))),
            "{src}: {:?}",
            parse(src)
        );
    }
}

#[test]
fn comments_and_continuations() {
    assert_eq!(
        parse("echo a # comment\n# whole line\necho \\\nb").unwrap(),
        Node::List(vec![simple(&["echo", "a"]), simple(&["echo", "b"])])
    );
    assert_eq!(
        parse("echo a#b").unwrap(),
        Node::List(vec![simple(&["echo", "a#b"])])
    );
}
