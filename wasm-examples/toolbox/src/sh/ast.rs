//! The shell's syntax tree: words made of literal, quoted and expansion parts, and the
//! command nodes built from them (`parse.rs` builds it, `exec.rs` walks it).

/// A piece of a word.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Unquoted text: subject to globbing, and a keyword or assignment when alone.
    Lit(String),
    /// Text from quotes or a backslash escape: taken literally.
    Quoted(String),
    /// `$name`, `${name...}`.
    Param {
        /// Variable name or special parameter (`?`, `#`, `@`, `1`, ...).
        name: String,
        /// What to do with the value.
        op: ParamOp,
        /// Inside double quotes (no field splitting).
        quoted: bool,
    },
    /// `$(...)` or a backquoted command.
    Command {
        /// The command's source text.
        src: String,
        /// Inside double quotes.
        quoted: bool,
    },
    /// `$((...))`.
    Arith {
        /// The expression's source text.
        src: String,
        /// Inside double quotes.
        quoted: bool,
    },
}

/// The operator of a `${...}` expansion.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamOp {
    /// `$x`, `${x}`.
    Plain,
    /// `${#x}`.
    Length,
    /// `${x-w}` and friends; `colon` also treats an empty value as unset.
    With {
        /// One of `- = + ? # ## % %%` (the doubled ones as `H` and `P`).
        op: char,
        /// Whether `:` preceded the operator.
        colon: bool,
        /// The word after the operator.
        word: Word,
    },
}

/// A shell word: parts expanded and joined at run time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Word(pub Vec<Part>);

impl Word {
    /// The text of a word made of one unquoted literal (keywords, assignments, fd numbers).
    pub fn literal(&self) -> Option<&str> {
        match self.0.as_slice() {
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }
}

/// A redirection: `fd op target`.
#[derive(Debug, Clone, PartialEq)]
pub struct Redir {
    /// The descriptor redirected (0, 1 or 2).
    pub fd: u32,
    /// `>`, `>>`, `<`, `>&`, `<&`, `>|`.
    pub op: &'static str,
    /// The file name, or the descriptor for `>&`.
    pub target: Word,
}

/// A command tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `NAME=value... word... redirections...`.
    Simple {
        /// Assignments before the command name.
        assigns: Vec<(String, Word)>,
        /// The command name and arguments.
        words: Vec<Word>,
        /// Redirections.
        redirs: Vec<Redir>,
    },
    /// `[!] a | b | c`.
    Pipeline {
        /// `!` inverts the status.
        negate: bool,
        /// The commands, left to right.
        cmds: Vec<Node>,
    },
    /// `a && b || c`: the bool is true for `&&`.
    AndOr(Box<Node>, Vec<(bool, Node)>),
    /// Commands run one after another.
    List(Vec<Node>),
    /// `if c; then b; elif c; then b; else b; fi`.
    If {
        /// Condition and body pairs.
        branches: Vec<(Node, Node)>,
        /// The `else` body.
        otherwise: Option<Box<Node>>,
    },
    /// `while`/`until c; do b; done`.
    Loop {
        /// True for `until`.
        until: bool,
        /// The condition.
        cond: Box<Node>,
        /// The body.
        body: Box<Node>,
    },
    /// `for v [in words]; do b; done` (no `in` iterates over `"$@"`).
    For {
        /// The loop variable.
        var: String,
        /// The words after `in`.
        items: Option<Vec<Word>>,
        /// The body.
        body: Box<Node>,
    },
    /// `{ list; }` or `( list )`.
    Group {
        /// The commands.
        body: Box<Node>,
        /// True for `( )`: changes do not leak out.
        subshell: bool,
    },
    /// A compound command with redirections.
    Redirected(Box<Node>, Vec<Redir>),
}
