//! Glob patterns of the access rules (`agentPattern`, `allowedTools`, ...):
//! the syntax and matching of `globset` 0.4 with the options the ACL used
//! (`literal_separator(false)`, `case_insensitive(false)`,
//! `backslash_escape(true)`, `empty_alternates(false)`), without its regex
//! engine.
//!
//! Why not `globset`: it compiles every glob to a regex, and the regex engine
//! (`regex-automata`, `regex-syntax`, `aho-corasick`) was ~550 KB of the one
//! module's 2.2 MB of code (docs/perf-notes.md, "Round 3: size and memory"),
//! loaded and compiled by V8 in every VM, for patterns like `delete_*`.
//!
//! Same behaviour, proven by `tests/glob_equivalence.rs` (a property test
//! against `globset` itself, kept as a dev-dependency):
//! - the parser is `globset`'s (ported from its `glob.rs`, Unlicense/MIT,
//!   Andrew Gallant), so the same patterns are refused with the same messages;
//! - matching follows the regex `globset` would build (`(?-u)`, `.` matches
//!   any byte including `\n`, anchored at both ends) on the UTF-8 bytes of the
//!   name, including its byte-wise reading of non-ASCII characters in classes
//!   (`[é]` is the class of the two bytes of `é`).
//!
//! Matching runs a small NFA over bytes, one pass with a set of states, so
//! its cost is bounded by pattern length × name length (no backtracking).

use std::fmt;

/// Why a glob was refused: `globset::ErrorKind`'s messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobError {
    UnclosedClass,
    InvalidRange(char, char),
    UnopenedAlternates,
    UnclosedAlternates,
    TooManyNestedAlternates,
    DanglingEscape,
    /// A class range whose UTF-8 bytes are out of order (`globset` refused
    /// it when compiling its regex; its message came from `regex-syntax`).
    InvalidByteRange,
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnclosedClass => f.write_str("unclosed character class; missing ']'"),
            Self::InvalidRange(s, e) => write!(f, "invalid range; '{s}' > '{e}'"),
            Self::UnopenedAlternates => {
                f.write_str("unopened alternate group; missing '{' (maybe escape '}' with '[}]'?)")
            }
            Self::UnclosedAlternates => {
                f.write_str("unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)")
            }
            Self::TooManyNestedAlternates => f.write_str("alternate groups nested too deeply"),
            Self::DanglingEscape => f.write_str("dangling '\\'"),
            Self::InvalidByteRange => {
                f.write_str("invalid character class range (its UTF-8 bytes are out of order)")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    Any,
    ZeroOrMore,
    RecursivePrefix,
    RecursiveSuffix,
    RecursiveZeroOrMore,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Alternates(Vec<Vec<Token>>),
}

/// A parsed glob, not yet compiled (a glob set reports parse errors of all its
/// patterns before compile errors, as `globset` did).
#[derive(Debug, Clone)]
pub struct ParsedGlob {
    tokens: Vec<Token>,
}

/// A compiled glob.
#[derive(Debug, Clone)]
pub struct Glob {
    how: Matcher,
    /// `globset`'s set skips this glob for names whose last `/`-component is
    /// `..` (see [`set_strategy_reads_basename`]).
    set_skips_dot_dot: bool,
}

/// Most ACL patterns are a literal, `prefix*` or `*suffix`: those compare
/// bytes; the rest run the NFA.
#[derive(Debug, Clone)]
enum Matcher {
    Literal(Vec<u8>),
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
    Nfa(Vec<Inst>),
}

impl ParsedGlob {
    pub fn parse(pattern: &str) -> Result<Self, GlobError> {
        let mut p = Parser {
            alternates_stack: Vec::new(),
            branches: vec![Vec::new()],
            chars: pattern.chars().peekable(),
            prev: None,
            cur: None,
        };
        p.parse()?;
        match p.branches.pop() {
            Some(tokens) if p.branches.is_empty() => Ok(Self { tokens }),
            _ => Err(GlobError::UnclosedAlternates),
        }
    }

    pub fn compile(&self) -> Result<Glob, GlobError> {
        let set_skips_dot_dot = set_strategy_reads_basename(&self.tokens);
        if let Some(how) = self.simple() {
            return Ok(Glob {
                how,
                set_skips_dot_dot,
            });
        }
        let mut c = Compiler { prog: Vec::new() };
        // `globset`: a glob that is only `**` matches everything.
        if self.tokens == [Token::RecursivePrefix] {
            c.any_star();
        } else {
            c.tokens(&self.tokens)?;
        }
        c.prog.push(Inst::Match);
        Ok(Glob {
            how: Matcher::Nfa(c.prog),
            set_skips_dot_dot,
        })
    }

    /// A literal, `literal*` or `*literal` (`.*` matches any bytes, so these
    /// are exact shortcuts of the NFA).
    fn simple(&self) -> Option<Matcher> {
        let literal = |tokens: &[Token]| -> Option<Vec<u8>> {
            let mut out = String::new();
            for t in tokens {
                match t {
                    Token::Literal(c) => out.push(*c),
                    _ => return None,
                }
            }
            Some(out.into_bytes())
        };
        match self.tokens.as_slice() {
            [Token::RecursivePrefix] => Some(Matcher::Prefix(Vec::new())),
            [Token::ZeroOrMore, rest @ ..] => literal(rest).map(Matcher::Suffix),
            [rest @ .., Token::ZeroOrMore] => literal(rest).map(Matcher::Prefix),
            all => literal(all).map(Matcher::Literal),
        }
    }
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        ParsedGlob::parse(pattern)?.compile()
    }

    /// Whether the whole of `name` matches, as `globset::GlobMatcher` (one
    /// glob: `agentPattern`).
    pub fn is_match(&self, name: &str) -> bool {
        let name = name.as_bytes();
        match &self.how {
            Matcher::Literal(l) => name == l.as_slice(),
            Matcher::Prefix(p) => name.starts_with(p),
            Matcher::Suffix(s) => name.ends_with(s),
            Matcher::Nfa(prog) => nfa_match(prog, name),
        }
    }
}

impl Glob {
    /// Whether `name` matches, as a `globset::GlobSet` holding this glob
    /// (the lists: `allowedTools`, ...). The same as [`Glob::is_match`]
    /// except for names ending in a `..` component with some pattern shapes.
    pub fn is_match_in_set(&self, name: &str) -> bool {
        if self.set_skips_dot_dot {
            let last = name.rsplit('/').next().unwrap_or(name);
            if last == ".." {
                return false;
            }
        }
        self.is_match(name)
    }
}

fn nfa_match(prog: &[Inst], name: &[u8]) -> bool {
    let n = prog.len();
    let mut current = StateSet::new(n);
    let mut next = StateSet::new(n);
    current.add(prog, 0);
    for &byte in name {
        if current.is_empty() {
            return false;
        }
        next.clear();
        for &pc in current.states() {
            let step = match prog.get(pc) {
                Some(Inst::Byte(b)) => *b == byte,
                Some(Inst::AnyByte) => true,
                Some(Inst::Class(set)) => set.contains(byte),
                _ => false,
            };
            if step {
                next.add(prog, pc + 1);
            }
        }
        std::mem::swap(&mut current, &mut next);
    }
    current
        .states()
        .iter()
        .any(|&pc| matches!(prog.get(pc), Some(Inst::Match)))
}

// ---------------------------------------------------------------- parser
// A port of `globset::glob::Parser` (0.4.22) with the ACL's options fixed.

struct Parser<'a> {
    alternates_stack: Vec<usize>,
    branches: Vec<Vec<Token>>,
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    prev: Option<char>,
    cur: Option<char>,
}

impl Parser<'_> {
    fn parse(&mut self) -> Result<(), GlobError> {
        while let Some(c) = self.bump() {
            match c {
                '?' => self.push_token(Token::Any)?,
                '*' => self.parse_star()?,
                '[' => self.parse_class()?,
                '{' => self.push_alternate()?,
                '}' => self.pop_alternate()?,
                ',' => self.parse_comma()?,
                '\\' => match self.bump() {
                    None => return Err(GlobError::DanglingEscape),
                    Some(c) => self.push_token(Token::Literal(c))?,
                },
                c => self.push_token(Token::Literal(c))?,
            }
        }
        Ok(())
    }

    fn push_alternate(&mut self) -> Result<(), GlobError> {
        const MAX_ALTERNATES_DEPTH: usize = 100;
        if self.alternates_stack.len() >= MAX_ALTERNATES_DEPTH {
            return Err(GlobError::TooManyNestedAlternates);
        }
        self.alternates_stack.push(self.branches.len());
        self.branches.push(Vec::new());
        Ok(())
    }

    fn pop_alternate(&mut self) -> Result<(), GlobError> {
        let Some(start) = self.alternates_stack.pop() else {
            return Err(GlobError::UnopenedAlternates);
        };
        if start > self.branches.len() {
            return Err(GlobError::UnopenedAlternates);
        }
        let alts = Token::Alternates(self.branches.drain(start..).collect());
        self.push_token(alts)
    }

    fn push_token(&mut self, tok: Token) -> Result<(), GlobError> {
        match self.branches.last_mut() {
            Some(pat) => {
                pat.push(tok);
                Ok(())
            }
            None => Err(GlobError::UnopenedAlternates),
        }
    }

    fn pop_token(&mut self) -> Result<Option<Token>, GlobError> {
        match self.branches.last_mut() {
            Some(pat) => Ok(pat.pop()),
            None => Err(GlobError::UnopenedAlternates),
        }
    }

    fn have_tokens(&self) -> Result<bool, GlobError> {
        match self.branches.last() {
            None => Err(GlobError::UnopenedAlternates),
            Some(pat) => Ok(!pat.is_empty()),
        }
    }

    fn parse_comma(&mut self) -> Result<(), GlobError> {
        // Outside an alternate group a comma is a literal.
        if self.alternates_stack.is_empty() {
            self.push_token(Token::Literal(','))
        } else {
            self.branches.push(Vec::new());
            Ok(())
        }
    }

    fn parse_star(&mut self) -> Result<(), GlobError> {
        let prev = self.prev;
        if self.peek() != Some('*') {
            return self.push_token(Token::ZeroOrMore);
        }
        self.bump();
        if !self.have_tokens()? {
            if !self.peek().is_none_or(is_separator) {
                self.push_token(Token::ZeroOrMore)?;
                self.push_token(Token::ZeroOrMore)?;
            } else {
                self.push_token(Token::RecursivePrefix)?;
                self.bump();
            }
            return Ok(());
        }
        if !prev.is_some_and(is_separator)
            && (self.branches.len() <= 1 || (prev != Some(',') && prev != Some('{')))
        {
            self.push_token(Token::ZeroOrMore)?;
            self.push_token(Token::ZeroOrMore)?;
            return Ok(());
        }
        let is_suffix = match self.peek() {
            None => {
                self.bump();
                true
            }
            Some(',') | Some('}') if self.branches.len() >= 2 => true,
            Some(c) if is_separator(c) => {
                self.bump();
                false
            }
            _ => {
                self.push_token(Token::ZeroOrMore)?;
                self.push_token(Token::ZeroOrMore)?;
                return Ok(());
            }
        };
        match self.pop_token()? {
            Some(Token::RecursivePrefix) => self.push_token(Token::RecursivePrefix),
            Some(Token::RecursiveSuffix) => self.push_token(Token::RecursiveSuffix),
            _ if is_suffix => self.push_token(Token::RecursiveSuffix),
            _ => self.push_token(Token::RecursiveZeroOrMore),
        }
    }

    fn parse_class(&mut self) -> Result<(), GlobError> {
        fn add_to_last_range(r: &mut (char, char), add: char) -> Result<(), GlobError> {
            r.1 = add;
            if r.1 < r.0 {
                Err(GlobError::InvalidRange(r.0, r.1))
            } else {
                Ok(())
            }
        }
        let mut ranges: Vec<(char, char)> = Vec::new();
        let negated = match self.chars.peek() {
            Some(&'!') | Some(&'^') => {
                self.bump();
                true
            }
            _ => false,
        };
        let mut first = true;
        let mut in_range = false;
        loop {
            let Some(c) = self.bump() else {
                return Err(GlobError::UnclosedClass);
            };
            match c {
                ']' => {
                    if first {
                        ranges.push((']', ']'));
                    } else {
                        break;
                    }
                }
                '-' => {
                    if first {
                        ranges.push(('-', '-'));
                    } else if in_range {
                        if let Some(r) = ranges.last_mut() {
                            add_to_last_range(r, '-')?;
                        }
                        in_range = false;
                    } else {
                        in_range = true;
                    }
                }
                '[' if !in_range && self.peek() == Some(':') => {
                    match self.try_parse_posix_class() {
                        Some(class_ranges) => ranges.extend_from_slice(class_ranges),
                        None => ranges.push(('[', '[')),
                    }
                    in_range = false;
                }
                c => {
                    match ranges.last_mut() {
                        Some(r) if in_range => add_to_last_range(r, c)?,
                        _ => ranges.push((c, c)),
                    }
                    in_range = false;
                }
            }
            first = false;
        }
        if in_range {
            // The class ended with `-`: a literal.
            ranges.push(('-', '-'));
        }
        self.push_token(Token::Class { negated, ranges })
    }

    /// `[:name:]` inside a class; on anything else the parser is put back.
    fn try_parse_posix_class(&mut self) -> Option<&'static [(char, char)]> {
        let saved = (self.chars.clone(), self.prev, self.cur);
        let mut name = String::new();
        let found = if self.bump() == Some(':') {
            loop {
                match self.bump() {
                    Some(':') if self.peek() == Some(']') => {
                        self.bump();
                        break posix_class_ranges(&name);
                    }
                    Some(c) if c.is_ascii_lowercase() && name.len() < 8 => name.push(c),
                    _ => break None,
                }
            }
        } else {
            None
        };
        if found.is_none() {
            (self.chars, self.prev, self.cur) = saved;
        }
        found
    }

    fn bump(&mut self) -> Option<char> {
        self.prev = self.cur;
        self.cur = self.chars.next();
        self.cur
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }
}

fn is_separator(c: char) -> bool {
    c == '/'
}

fn posix_class_ranges(name: &str) -> Option<&'static [(char, char)]> {
    Some(match name {
        "alnum" => &[('0', '9'), ('A', 'Z'), ('a', 'z')],
        "alpha" => &[('A', 'Z'), ('a', 'z')],
        "blank" => &[('\t', '\t'), (' ', ' ')],
        "cntrl" => &[('\x00', '\x1f'), ('\x7f', '\x7f')],
        "digit" => &[('0', '9')],
        "graph" => &[('!', '~')],
        "lower" => &[('a', 'z')],
        "print" => &[(' ', '~')],
        "punct" => &[('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
        "space" => &[('\t', '\r'), (' ', ' ')],
        "upper" => &[('A', 'Z')],
        "xdigit" => &[('0', '9'), ('A', 'F'), ('a', 'f')],
        _ => return None,
    })
}

// ---------------------------------------------------------------- set strategies
// `globset::GlobSet` does not run every glob's regex: it picks a strategy per
// glob (`MatchStrategy::new`), and those that look at the name's basename or
// extension take a last component of `..` as no basename at all, so they
// miss names the glob's regex matches (`*.` on `..`, `**/..` on `a/..`).
// Ported so that lists keep matching exactly what they matched.

/// Whether `globset` would match this glob in a set by basename or extension
/// (`BasenameLiteral`, `Extension`, `RequiredExtension`, `BasenameRegex`),
/// in `MatchStrategy::new`'s order of preference.
fn set_strategy_reads_basename(tokens: &[Token]) -> bool {
    let basename = basename_tokens(tokens);
    if basename.is_some_and(|b| b.iter().all(|t| matches!(t, Token::Literal(_)))) {
        true
    } else if is_literal(tokens) {
        false
    } else if has_ext(tokens) {
        true
    } else if has_prefix(tokens) || has_suffix(tokens) {
        false
    } else {
        has_required_ext(tokens) || basename.is_some()
    }
}

fn is_literal(tokens: &[Token]) -> bool {
    !tokens.is_empty() && tokens.iter().all(|t| matches!(t, Token::Literal(_)))
}

/// `globset`'s `Glob::ext`: `*.ext` or `**/*.ext`.
fn has_ext(tokens: &[Token]) -> bool {
    let start = usize::from(matches!(tokens.first(), Some(Token::RecursivePrefix)));
    matches!(tokens.get(start), Some(Token::ZeroOrMore))
        && matches!(tokens.get(start + 1), Some(Token::Literal('.')))
        && tokens
            .get(start + 2..)
            .unwrap_or_default()
            .iter()
            .all(|t| matches!(t, Token::Literal(c) if *c != '.' && *c != '/'))
}

/// `globset`'s `Glob::required_ext`: ends with a literal `.ext`.
fn has_required_ext(tokens: &[Token]) -> bool {
    for t in tokens.iter().rev() {
        match t {
            Token::Literal('/') => return false,
            Token::Literal('.') => return true,
            Token::Literal(_) => {}
            _ => return false,
        }
    }
    false
}

/// `globset`'s `Glob::prefix`: `literal*` or `literal/**`.
fn has_prefix(tokens: &[Token]) -> bool {
    let (end, need_sep) = match tokens.last() {
        Some(Token::ZeroOrMore) => (tokens.len() - 1, false),
        Some(Token::RecursiveSuffix) => (tokens.len() - 1, true),
        Some(_) => (tokens.len(), false),
        None => return false,
    };
    let head = tokens.get(..end).unwrap_or_default();
    head.iter().all(|t| matches!(t, Token::Literal(_))) && (need_sep || !head.is_empty())
}

/// `globset`'s `Glob::suffix`: `*literal`, `**/literal` or `literal`.
fn has_suffix(tokens: &[Token]) -> bool {
    let (start, slash) = match tokens.first() {
        Some(Token::RecursivePrefix) => (1, matches!(tokens.get(1), Some(Token::Literal(_)))),
        Some(_) => (0, false),
        None => return false,
    };
    let start = match tokens.get(start) {
        Some(Token::ZeroOrMore) => start + 1,
        Some(_) => start,
        None => return false,
    };
    let rest = tokens.get(start..).unwrap_or_default();
    if !rest.iter().all(|t| matches!(t, Token::Literal(_))) {
        return false;
    }
    // The literal (with `/` first after `**/`) must not be empty or just `/`.
    let len = rest.len() + usize::from(slash);
    let only_slash = len == 1 && (slash || matches!(rest.first(), Some(Token::Literal('/'))));
    len > 0 && !only_slash
}

/// `globset`'s `Glob::basename_tokens`: `**/` then tokens that cannot match
/// a `/`.
fn basename_tokens(tokens: &[Token]) -> Option<&[Token]> {
    let (Some(Token::RecursivePrefix), Some(rest)) = (tokens.first(), tokens.get(1..)) else {
        return None;
    };
    if rest.is_empty() {
        return None;
    }
    for t in rest {
        match t {
            Token::Literal('/') => return None,
            Token::Literal(_) => {}
            Token::Class { negated, ranges } => {
                let contains_slash = ranges.iter().any(|&(s, e)| s <= '/' && '/' <= e);
                if contains_slash != *negated {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(rest)
}

// ---------------------------------------------------------------- compiler
// Emits what `globset`'s regex would match, as NFA instructions over bytes.

#[derive(Debug, Clone)]
enum Inst {
    Byte(u8),
    AnyByte,
    Class(Box<ByteSet>),
    /// Continue at both (epsilon).
    Split(usize, usize),
    Jmp(usize),
    Match,
}

#[derive(Debug, Clone, Default)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            if let Some(word) = self.0.get_mut(usize::from(b / 64)) {
                *word |= 1 << (b % 64);
            }
        }
    }

    fn contains(&self, b: u8) -> bool {
        self.0
            .get(usize::from(b / 64))
            .is_some_and(|w| w & (1 << (b % 64)) != 0)
    }

    fn negate(&mut self) {
        for w in &mut self.0 {
            *w = !*w;
        }
    }
}

struct Compiler {
    prog: Vec<Inst>,
}

impl Compiler {
    fn tokens(&mut self, tokens: &[Token]) -> Result<(), GlobError> {
        for tok in tokens {
            match tok {
                Token::Literal(c) => self.literal(*c),
                Token::Any => self.prog.push(Inst::AnyByte),
                Token::ZeroOrMore => self.any_star(),
                // `(?:/?|.*/)`
                Token::RecursivePrefix => {
                    self.alternation(2, |c, i| {
                        if i == 0 {
                            c.optional_slash();
                        } else {
                            c.any_star();
                            c.prog.push(Inst::Byte(b'/'));
                        }
                        Ok(())
                    })?;
                }
                // `/.*`
                Token::RecursiveSuffix => {
                    self.prog.push(Inst::Byte(b'/'));
                    self.any_star();
                }
                // `(?:/|/.*/)`
                Token::RecursiveZeroOrMore => {
                    self.alternation(2, |c, i| {
                        c.prog.push(Inst::Byte(b'/'));
                        if i == 1 {
                            c.any_star();
                            c.prog.push(Inst::Byte(b'/'));
                        }
                        Ok(())
                    })?;
                }
                Token::Class { negated, ranges } => {
                    let mut set = class_bytes(ranges)?;
                    if *negated {
                        set.negate();
                    }
                    self.prog.push(Inst::Class(Box::new(set)));
                }
                Token::Alternates(branches) => {
                    // `globset` drops the branches whose regex is empty
                    // (`empty_alternates(false)`); none left: nothing.
                    let kept: Vec<&Vec<Token>> =
                        branches.iter().filter(|b| emits_something(b)).collect();
                    if !kept.is_empty() {
                        self.alternation(kept.len(), |c, i| match kept.get(i) {
                            Some(branch) => c.tokens(branch),
                            None => Ok(()),
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    fn literal(&mut self, c: char) {
        let mut buf = [0; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            self.prog.push(Inst::Byte(b));
        }
    }

    /// `.*` (any bytes, `\n` included: `globset` sets `dot_matches_new_line`).
    fn any_star(&mut self) {
        let start = self.prog.len();
        self.prog.push(Inst::Split(start + 1, start + 3));
        self.prog.push(Inst::AnyByte);
        self.prog.push(Inst::Jmp(start));
    }

    /// `/?`
    fn optional_slash(&mut self) {
        let start = self.prog.len();
        self.prog.push(Inst::Split(start + 1, start + 2));
        self.prog.push(Inst::Byte(b'/'));
    }

    /// `(?:b0|b1|...)`, with `branch(self, i)` emitting branch `i`.
    fn alternation(
        &mut self,
        n: usize,
        mut branch: impl FnMut(&mut Self, usize) -> Result<(), GlobError>,
    ) -> Result<(), GlobError> {
        let mut jumps = Vec::new();
        for i in 0..n {
            if i + 1 < n {
                let split = self.prog.len();
                self.prog.push(Inst::Split(split + 1, 0));
                branch(self, i)?;
                jumps.push(self.prog.len());
                self.prog.push(Inst::Jmp(0));
                let next = self.prog.len();
                if let Some(inst) = self.prog.get_mut(split) {
                    *inst = Inst::Split(split + 1, next);
                }
            } else {
                branch(self, i)?;
            }
        }
        let end = self.prog.len();
        for j in jumps {
            if let Some(inst) = self.prog.get_mut(j) {
                *inst = Inst::Jmp(end);
            }
        }
        Ok(())
    }
}

/// Whether `globset` would write a non-empty regex for these tokens (only
/// alternate groups whose every branch is empty write nothing).
fn emits_something(tokens: &[Token]) -> bool {
    tokens.iter().any(|t| match t {
        Token::Alternates(branches) => branches.iter().any(|b| emits_something(b)),
        _ => true,
    })
}

/// The bytes of a class as the regex `globset` writes reads them: each range
/// becomes the UTF-8 bytes of its ends, `lo-hi` written between the last
/// byte of the start and the first byte of the end (`[é]` is the class of
/// `é`'s two bytes; only ASCII ranges mean what they say).
fn class_bytes(ranges: &[(char, char)]) -> Result<ByteSet, GlobError> {
    let mut set = ByteSet::default();
    for &(start, end) in ranges {
        let mut sbuf = [0; 4];
        let mut ebuf = [0; 4];
        let s = start.encode_utf8(&mut sbuf).as_bytes();
        if start == end {
            for &b in s {
                set.insert_range(b, b);
            }
            continue;
        }
        let e = end.encode_utf8(&mut ebuf).as_bytes();
        let (Some((&s_last, s_head)), Some((&e_first, e_tail))) = (s.split_last(), e.split_first())
        else {
            continue;
        };
        for &b in s_head {
            set.insert_range(b, b);
        }
        if s_last > e_first {
            return Err(GlobError::InvalidByteRange);
        }
        set.insert_range(s_last, e_first);
        for &b in e_tail {
            set.insert_range(b, b);
        }
    }
    Ok(set)
}

// ---------------------------------------------------------------- matching

/// A sparse set of NFA states with their epsilon closure.
struct StateSet {
    dense: Vec<usize>,
    /// `marks[pc]` is set while `pc` is in the set.
    marks: Vec<bool>,
    /// Scratch for the closure, kept to allocate once per match.
    stack: Vec<usize>,
}

impl StateSet {
    fn new(n: usize) -> Self {
        Self {
            dense: Vec::with_capacity(n),
            marks: vec![false; n],
            stack: Vec::new(),
        }
    }

    fn clear(&mut self) {
        for &pc in &self.dense {
            if let Some(m) = self.marks.get_mut(pc) {
                *m = false;
            }
        }
        self.dense.clear();
    }

    fn is_empty(&self) -> bool {
        self.dense.is_empty()
    }

    fn states(&self) -> &[usize] {
        &self.dense
    }

    /// Add `pc` and every state reachable from it without reading a byte.
    fn add(&mut self, prog: &[Inst], pc: usize) {
        let stack = &mut self.stack;
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            match self.marks.get_mut(pc) {
                Some(m) if !*m => *m = true,
                _ => continue,
            }
            self.dense.push(pc);
            match prog.get(pc) {
                Some(Inst::Split(a, b)) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Some(Inst::Jmp(a)) => stack.push(*a),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).unwrap().is_match(name)
    }

    #[test]
    fn the_recipe_patterns() {
        assert!(m("sentinel-*", "sentinel-7"));
        assert!(!m("sentinel-*", "alchemy-2"));
        assert!(m("delete_*", "delete_scene"));
        assert!(m("*", ""));
        assert!(m("file:///docs/*", "file:///docs/a/b.md"));
        assert!(m("{get,list}_*", "list_scenes"));
        assert!(!m("{get,list}_*", "put_scene"));
        assert!(m("render_?", "render_x"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("a\\*", "a*"));
        assert!(!m("a\\*", "ab"));
    }

    #[test]
    fn refusals_carry_globset_messages() {
        let err = |p: &str| Glob::new(p).unwrap_err().to_string();
        assert_eq!(err("["), "unclosed character class; missing ']'");
        assert_eq!(err("[z-a]"), "invalid range; 'z' > 'a'");
        assert!(err("{a,b").starts_with("unclosed alternate group"));
        assert!(err("a}").starts_with("unopened alternate group"));
        assert_eq!(err("a\\"), "dangling '\\'");
    }

    #[test]
    fn long_names_do_not_backtrack() {
        let name = "a".repeat(10_000);
        assert!(!m("*a*a*a*a*a*a*a*a*b", &name));
    }
}
