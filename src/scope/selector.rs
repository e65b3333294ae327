//! Label selectors for `--resource-label-selector` and `--namespace-selector`, read the way
//! Reloader reads them: the comma-separated flag values are joined back with `,` (so
//! `env in (a,b)` survives the split), Reloader's legacy forms are rewritten (`key:value` is
//! `key=value`; `key:*` and `key=*` are `key`), and the result is parsed with the grammar and
//! checks of Kubernetes' `labels.Parse`:
//!
//! `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, `k>1`, `k<1`, joined by
//! `,`, all of which must hold. Keys are qualified names (`[prefix/]name`), values at most 63
//! characters of `[A-Za-z0-9-_.]` starting and ending with an alphanumeric (or empty).
//! As in Kubernetes, `!=` and `notin` hold when the key is absent.
//!
//! Values only: no client, no I/O.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("label selector {selector:?}: found {found} at offset {at}, expected {expected}")]
    Syntax {
        selector: String,
        at: usize,
        found: String,
        expected: &'static str,
    },
    #[error("label selector {selector:?}: invalid key {key:?}: {reason}")]
    Key {
        selector: String,
        key: String,
        reason: &'static str,
    },
    #[error("label selector {selector:?}: invalid value {value:?} for key {key:?}: {reason}")]
    Value {
        selector: String,
        key: String,
        value: String,
        reason: &'static str,
    },
}

/// All requirements must hold; no requirement selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Exists,
    DoesNotExist,
    /// `=` and `==` mean the same.
    Equals(String),
    NotEquals(String),
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    GreaterThan(i64),
    LessThan(i64),
}

impl Selector {
    /// Parses the values of a comma-separated flag (as clap split them).
    pub fn parse(values: &[String]) -> Result<Self, SelectorError> {
        let text = values
            .iter()
            .map(|v| legacy(v))
            .collect::<Vec<_>>()
            .join(",");
        Parser::new(&text).selector()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The selector in Kubernetes syntax, for a list or watch `labelSelector`.
    pub fn to_kubernetes(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let key = &r.key;
            match &r.op {
                Op::Exists => write!(f, "{key}")?,
                Op::DoesNotExist => write!(f, "!{key}")?,
                Op::Equals(v) => write!(f, "{key}={v}")?,
                Op::NotEquals(v) => write!(f, "{key}!={v}")?,
                Op::In(s) => write!(f, "{key} in ({})", join(s))?,
                Op::NotIn(s) => write!(f, "{key} notin ({})", join(s))?,
                Op::GreaterThan(n) => write!(f, "{key}>{n}")?,
                Op::LessThan(n) => write!(f, "{key}<{n}")?,
            }
        }
        Ok(())
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().map(String::as_str).collect::<Vec<_>>().join(",")
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        let number = || value.and_then(|v| v.parse::<i64>().ok());
        match &self.op {
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Equals(want) => value == Some(want),
            Op::NotEquals(want) => value != Some(want),
            Op::In(set) => value.is_some_and(|v| set.contains(v)),
            Op::NotIn(set) => value.is_none_or(|v| !set.contains(v)),
            Op::GreaterThan(n) => number().is_some_and(|v| v > *n),
            Op::LessThan(n) => number().is_some_and(|v| v < *n),
        }
    }
}

/// Reloader's legacy forms, rewritten per flag value as Reloader does: `key:value` is
/// `key=value`, `key:*` and `key=*` are `key` (exists).
fn legacy(value: &str) -> Cow<'_, str> {
    if let Some((key, rest)) = value.split_once(':') {
        return if rest.trim() == "*" {
            Cow::Borrowed(key)
        } else {
            Cow::Owned(format!("{key}={rest}"))
        };
    }
    match value.split_once('=') {
        // Not `k!=*` or `k==*`: those are left for the parser to refuse.
        Some((key, rest)) if rest.trim() == "*" && !key.ends_with('!') => Cow::Borrowed(key),
        _ => Cow::Borrowed(value),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    /// One of `!`, `=`, `==`, `!=`, `>`, `<`, `(`, `)`, `,`.
    Symbol(&'a str),
    End,
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Word(w) => write!(f, "{w:?}"),
            Self::Symbol(s) => write!(f, "'{s}'"),
            Self::End => f.write_str("end of input"),
        }
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_symbol(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// Kubernetes' selector lexer and parser, one token of lookahead. `in` and `notin` are
/// operators only where an operator is expected; elsewhere they are plain words.
#[derive(Clone)]
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

const OPERATOR: &str = "an operator (=, ==, !=, in, notin, >, <), ',' or end of input";

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn next(&mut self) -> (usize, Token<'a>) {
        let rest = self.text[self.pos..].trim_start_matches(is_space);
        let at = self.text.len() - rest.len();
        let (token, len) = if rest.is_empty() {
            (Token::End, 0)
        } else if rest.starts_with("!=") || rest.starts_with("==") {
            (Token::Symbol(&rest[..2]), 2)
        } else if rest.starts_with(is_symbol) {
            (Token::Symbol(&rest[..1]), 1)
        } else {
            let end = rest.find(|c| is_space(c) || is_symbol(c));
            let end = end.unwrap_or(rest.len());
            (Token::Word(&rest[..end]), end)
        };
        self.pos = at + len;
        (at, token)
    }

    fn peek(&self) -> Token<'a> {
        self.clone().next().1
    }

    fn syntax(&self, at: usize, found: Token<'_>, expected: &'static str) -> SelectorError {
        SelectorError::Syntax {
            selector: self.text.to_owned(),
            at,
            found: found.to_string(),
            expected,
        }
    }

    fn selector(mut self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        if self.peek() == Token::End {
            return Ok(Selector { requirements });
        }
        loop {
            requirements.push(self.requirement()?);
            match self.next() {
                (_, Token::End) => return Ok(Selector { requirements }),
                (_, Token::Symbol(",")) => {}
                (at, found) => return Err(self.syntax(at, found, "',' or end of input")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (mut at, mut found) = self.next();
        let negated = found == Token::Symbol("!");
        if negated {
            (at, found) = self.next();
        }
        let Token::Word(key) = found else {
            return Err(self.syntax(at, found, "a label key"));
        };
        check_key(key).map_err(|reason| SelectorError::Key {
            selector: self.text.to_owned(),
            key: key.to_owned(),
            reason,
        })?;
        if negated || matches!(self.peek(), Token::End | Token::Symbol(",")) {
            let op = if negated {
                Op::DoesNotExist
            } else {
                Op::Exists
            };
            return Ok(Requirement {
                key: key.to_owned(),
                op,
            });
        }
        let (at, found) = self.next();
        let op = match found {
            Token::Symbol("=" | "==") => Op::Equals(self.exact_value(key)?),
            Token::Symbol("!=") => Op::NotEquals(self.exact_value(key)?),
            Token::Symbol(">") => Op::GreaterThan(self.number(key)?),
            Token::Symbol("<") => Op::LessThan(self.number(key)?),
            Token::Word("in") => Op::In(self.set(key)?),
            Token::Word("notin") => Op::NotIn(self.set(key)?),
            _ => return Err(self.syntax(at, found, OPERATOR)),
        };
        Ok(Requirement {
            key: key.to_owned(),
            op,
        })
    }

    fn invalid_value(&self, key: &str, value: &str, reason: &'static str) -> SelectorError {
        SelectorError::Value {
            selector: self.text.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        }
    }

    fn value(&self, key: &str, value: &'a str) -> Result<String, SelectorError> {
        check_value(value).map_err(|reason| self.invalid_value(key, value, reason))?;
        Ok(value.to_owned())
    }

    /// The value after `=`, `==` or `!=`; nothing before `,` or the end is the empty value.
    fn exact_value(&mut self, key: &str) -> Result<String, SelectorError> {
        match self.peek() {
            Token::End | Token::Symbol(",") => Ok(String::new()),
            _ => match self.next() {
                (_, Token::Word(value)) => self.value(key, value),
                (at, found) => Err(self.syntax(at, found, "a label value")),
            },
        }
    }

    fn number(&mut self, key: &str) -> Result<i64, SelectorError> {
        let (at, found) = self.next();
        let Token::Word(value) = found else {
            return Err(self.syntax(at, found, "an integer"));
        };
        let value = self.value(key, value)?;
        value
            .parse()
            .map_err(|_| self.invalid_value(key, &value, "'>' and '<' take an integer"))
    }

    /// `(a,b)`. As in Kubernetes, an empty entry (`()`, `(a,)`, `(a,,b)`) is the empty value.
    fn set(&mut self, key: &str) -> Result<BTreeSet<String>, SelectorError> {
        let (at, found) = self.next();
        if found != Token::Symbol("(") {
            return Err(self.syntax(at, found, "'('"));
        }
        let mut set = BTreeSet::new();
        loop {
            let value = match self.peek() {
                Token::Word(value) => {
                    self.next();
                    value
                }
                _ => "",
            };
            set.insert(self.value(key, value)?);
            match self.next() {
                (_, Token::Symbol(",")) => {}
                (_, Token::Symbol(")")) => return Ok(set),
                (at, found) => return Err(self.syntax(at, found, "',' or ')'")),
            }
        }
    }
}

const NAME_SHAPE: &str = "the name must consist of alphanumeric characters, '-', '_' or '.', \
    starting and ending with an alphanumeric character";
const VALUE_SHAPE: &str = "a value must be empty or consist of alphanumeric characters, '-', \
    '_' or '.', starting and ending with an alphanumeric character";

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn label_shaped(s: &str) -> bool {
    let alnum = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    let bytes = s.as_bytes();
    alnum(bytes.first())
        && alnum(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A lowercase RFC 1123 subdomain, as Kubernetes' `IsDNS1123Subdomain` checks it.
fn dns_subdomain(s: &str) -> bool {
    let part = |p: &str| {
        let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        edge(p.as_bytes().first())
            && edge(p.as_bytes().last())
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    s.len() <= 253 && s.split('.').all(part)
}

/// A qualified name, as Kubernetes' `IsQualifiedName` checks a label key.
fn check_key(key: &str) -> Result<(), &'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.contains('/') {
        return Err("a key is a name with an optional DNS subdomain prefix and one '/'");
    }
    match prefix {
        Some("") => return Err("the prefix before '/' is empty"),
        Some(p) if !dns_subdomain(p) => {
            return Err("the prefix must be a lowercase DNS subdomain of at most 253 characters");
        }
        _ => {}
    }
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > 63 {
        return Err("the name must be 63 characters or less");
    }
    if !label_shaped(name) {
        return Err(NAME_SHAPE);
    }
    Ok(())
}

/// A label value, as Kubernetes' `IsValidLabelValue` checks it.
fn check_value(value: &str) -> Result<(), &'static str> {
    if value.len() > 63 {
        return Err("a value must be 63 characters or less");
    }
    if !value.is_empty() && !label_shaped(value) {
        return Err(VALUE_SHAPE);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
