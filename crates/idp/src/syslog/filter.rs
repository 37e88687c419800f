//! The `filter` expression language of the System Log API.
//!
//! Grammar (keywords and operators are ASCII case-insensitive, attribute
//! paths too except for the `debugData` key, which is matched verbatim):
//!
//! ```text
//! or      := and ( "or" and )*
//! and     := unary ( "and" unary )*
//! unary   := "not" unary | primary
//! primary := "(" or ")" | ATTR "pr" | ATTR OP VALUE
//! OP      := eq | ne | sw | co | gt | ge | lt | le
//! VALUE   := "string" | true | false | null
//! ```
//!
//! Semantics, chosen to be predictable rather than clever:
//! * String comparison is case-sensitive and byte-wise (`gt` and friends are
//!   lexicographic), except on `published`, where the literal must be an
//!   RFC 3339 timestamp and comparison is chronological.
//! * A path that names several values (`target.*`) matches if ANY value does.
//! * `pr` is true when some value is present and non-empty; `eq null` is
//!   `not pr`; `ne x` is always `not (eq x)`, so it also matches events that
//!   lack the attribute.
//! * `true` / `false` compare against the strings `"true"` / `"false"`
//!   (every attribute is a string; `debugData` values often hold booleans).

use std::cmp::Ordering;
use std::fmt::{self, Write as _};

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::event::Event;

/// Longest filter text accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 2048;
/// Deepest nesting of parentheses and `not` accepted.
pub const MAX_FILTER_DEPTH: usize = 32;

/// A parsed filter; also its own AST.
///
/// [`Filter::parse`] only builds well-formed trees: `And`/`Or` with at least
/// two operands, `Literal::Timestamp` exactly on `published`, `Bool`/`Null`
/// only with `eq`/`ne`. Hand-built trees that break these rules still
/// evaluate without panicking but may not print re-parseably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Compare {
        attr: Attr,
        op: CompareOp,
        value: Literal,
    },
    Present(Attr),
    Not(Box<Filter>),
    /// Kept n-ary so long chains stay shallow; an explicitly parenthesised
    /// `(a and b) and c` stays nested so printing round-trips exactly.
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attr {
    Uuid,
    Published,
    EventType,
    DisplayMessage,
    Severity,
    ActorId,
    ActorType,
    ActorAlternateId,
    ActorDisplayName,
    ClientIpAddress,
    ClientUserAgent,
    OutcomeResult,
    OutcomeReason,
    TargetId,
    TargetType,
    TargetAlternateId,
    TargetDisplayName,
    ExternalSessionId,
    DebugData(String),
}

const DEBUG_DATA_PREFIX: &str = "debugContext.debugData.";

const FIXED_ATTRS: [(Attr, &str); 18] = [
    (Attr::Uuid, "uuid"),
    (Attr::Published, "published"),
    (Attr::EventType, "eventType"),
    (Attr::DisplayMessage, "displayMessage"),
    (Attr::Severity, "severity"),
    (Attr::ActorId, "actor.id"),
    (Attr::ActorType, "actor.type"),
    (Attr::ActorAlternateId, "actor.alternateId"),
    (Attr::ActorDisplayName, "actor.displayName"),
    (Attr::ClientIpAddress, "client.ipAddress"),
    (Attr::ClientUserAgent, "client.userAgent.rawUserAgent"),
    (Attr::OutcomeResult, "outcome.result"),
    (Attr::OutcomeReason, "outcome.reason"),
    (Attr::TargetId, "target.id"),
    (Attr::TargetType, "target.type"),
    (Attr::TargetAlternateId, "target.alternateId"),
    (Attr::TargetDisplayName, "target.displayName"),
    (
        Attr::ExternalSessionId,
        "authenticationContext.externalSessionId",
    ),
];

impl Attr {
    fn from_path(path: &str) -> Option<Attr> {
        if let Some(head) = path.get(..DEBUG_DATA_PREFIX.len()) {
            if head.eq_ignore_ascii_case(DEBUG_DATA_PREFIX) {
                let key = path.get(DEBUG_DATA_PREFIX.len()..).unwrap_or_default();
                return (!key.is_empty()).then(|| Attr::DebugData(key.to_owned()));
            }
        }
        FIXED_ATTRS
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(path))
            .map(|(attr, _)| attr.clone())
    }

    fn fixed_name(&self) -> Option<&'static str> {
        FIXED_ATTRS
            .iter()
            .find(|(attr, _)| attr == self)
            .map(|(_, name)| *name)
    }

    /// Calls `test` on each string value this path names in `event` and
    /// reports whether any returned true. Borrowing (or a stack buffer for
    /// the uuid) keeps evaluation allocation-free.
    fn any_value(&self, event: &Event, mut test: impl FnMut(&str) -> bool) -> bool {
        fn opt(v: &Option<String>, test: &mut dyn FnMut(&str) -> bool) -> bool {
            v.as_deref().is_some_and(test)
        }
        match self {
            Attr::Uuid => {
                let mut buf = uuid::Uuid::encode_buffer();
                test(event.uuid.hyphenated().encode_lower(&mut buf))
            }
            // Chronological comparisons are handled before we get here; a
            // `published` value is always present.
            Attr::Published => test(""),
            Attr::EventType => test(&event.event_type),
            Attr::DisplayMessage => test(&event.display_message),
            Attr::Severity => test(event.severity.as_str()),
            Attr::ActorId => test(&event.actor.id),
            Attr::ActorType => test(&event.actor.kind),
            Attr::ActorAlternateId => opt(&event.actor.alternate_id, &mut test),
            Attr::ActorDisplayName => opt(&event.actor.display_name, &mut test),
            Attr::ClientIpAddress => opt(&event.client.ip_address, &mut test),
            Attr::ClientUserAgent => opt(&event.client.user_agent.raw_user_agent, &mut test),
            Attr::OutcomeResult => test(event.outcome.result.as_str()),
            Attr::OutcomeReason => opt(&event.outcome.reason, &mut test),
            Attr::TargetId => event.target.iter().any(|t| test(&t.id)),
            Attr::TargetType => event.target.iter().any(|t| test(&t.kind)),
            Attr::TargetAlternateId => event.target.iter().any(|t| opt(&t.alternate_id, &mut test)),
            Attr::TargetDisplayName => event.target.iter().any(|t| opt(&t.display_name, &mut test)),
            Attr::ExternalSessionId => {
                opt(&event.authentication_context.external_session_id, &mut test)
            }
            Attr::DebugData(key) => event
                .debug_context
                .debug_data
                .get(key)
                .is_some_and(|v| test(v)),
        }
    }

    fn present(&self, event: &Event) -> bool {
        match self {
            Attr::Published => true,
            _ => self.any_value(event, |v| !v.is_empty()),
        }
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::DebugData(key) => write!(f, "{DEBUG_DATA_PREFIX}{key}"),
            other => f.write_str(other.fixed_name().unwrap_or("?")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Sw,
    Co,
    Gt,
    Ge,
    Lt,
    Le,
}

const OPS: [(CompareOp, &str); 8] = [
    (CompareOp::Eq, "eq"),
    (CompareOp::Ne, "ne"),
    (CompareOp::Sw, "sw"),
    (CompareOp::Co, "co"),
    (CompareOp::Gt, "gt"),
    (CompareOp::Ge, "ge"),
    (CompareOp::Lt, "lt"),
    (CompareOp::Le, "le"),
];

impl CompareOp {
    fn from_word(word: &str) -> Option<CompareOp> {
        OPS.iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(word))
            .map(|(op, _)| *op)
    }

    fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Sw => "sw",
            CompareOp::Co => "co",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn is_equality(self) -> bool {
        matches!(self, CompareOp::Eq | CompareOp::Ne)
    }

    fn accepts(self, ordering: Ordering) -> bool {
        match self {
            CompareOp::Eq => ordering == Ordering::Equal,
            CompareOp::Ne => ordering != Ordering::Equal,
            CompareOp::Gt => ordering == Ordering::Greater,
            CompareOp::Ge => ordering != Ordering::Less,
            CompareOp::Lt => ordering == Ordering::Less,
            CompareOp::Le => ordering != Ordering::Greater,
            CompareOp::Sw | CompareOp::Co => false,
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    String(String),
    Bool(bool),
    Null,
    /// A string literal compared against `published`, parsed once at
    /// parse time and normalised to UTC.
    Timestamp(OffsetDateTime),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write_quoted(f, s),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
            Literal::Timestamp(t) => {
                let text = t.format(&Rfc3339).map_err(|_| fmt::Error)?;
                write_quoted(f, &text)
            }
        }
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Why a filter was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct FilterError {
    /// 0-based byte offset into the filter text.
    pub position: usize,
    pub message: String,
}

impl FilterError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        FilterError {
            position,
            message: message.into(),
        }
    }
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(FilterError::new(
                MAX_FILTER_LEN,
                format!("filter is longer than {MAX_FILTER_LEN} bytes"),
            ));
        }
        let tokens = lex(text)?;
        let mut parser = Parser {
            tokens: &tokens,
            next: 0,
            end: text.len(),
        };
        let filter = parser.or(0)?;
        match parser.peek() {
            None => Ok(filter),
            Some(tok) => Err(FilterError::new(
                tok.pos,
                format!("unexpected {} after end of expression", tok.kind),
            )),
        }
    }

    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Filter::Compare { attr, op, value } => compare(attr, *op, value, event),
            Filter::Present(attr) => attr.present(event),
            Filter::Not(inner) => !inner.matches(event),
            Filter::And(all) => all.iter().all(|f| f.matches(event)),
            Filter::Or(any) => any.iter().any(|f| f.matches(event)),
        }
    }

    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, parent_is_and: bool) -> fmt::Result {
        // Any nested n-ary node needs parentheses: an `or` under `and` for
        // precedence, and same-kind nesting so it does not re-parse flat.
        let needs_parens = match self {
            Filter::Or(_) => true,
            Filter::And(_) => parent_is_and,
            _ => false,
        };
        if needs_parens {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

fn compare(attr: &Attr, op: CompareOp, value: &Literal, event: &Event) -> bool {
    if op == CompareOp::Ne {
        return !compare(attr, CompareOp::Eq, value, event);
    }
    match (attr, value) {
        (Attr::Published, Literal::Timestamp(t)) => op.accepts(event.published.cmp(t)),
        (Attr::Published, _) | (_, Literal::Timestamp(_)) => false,
        (_, Literal::Null) => op == CompareOp::Eq && !attr.present(event),
        (_, Literal::Bool(b)) => {
            let wanted = if *b { "true" } else { "false" };
            op == CompareOp::Eq && attr.any_value(event, |v| v == wanted)
        }
        (_, Literal::String(s)) => attr.any_value(event, |v| match op {
            CompareOp::Sw => v.starts_with(s.as_str()),
            CompareOp::Co => v.contains(s.as_str()),
            _ => op.accepts(v.cmp(s.as_str())),
        }),
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { attr, op, value } => write!(f, "{attr} {op} {value}"),
            Filter::Present(attr) => write!(f, "{attr} pr"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::And(all) | Filter::Or(all) => {
                let is_and = matches!(self, Filter::And(_));
                let joiner = if is_and { " and " } else { " or " };
                for (i, operand) in all.iter().enumerate() {
                    if i > 0 {
                        f.write_str(joiner)?;
                    }
                    operand.fmt_operand(f, is_and)?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TokKind<'a> {
    LParen,
    RParen,
    Str(String),
    Word(&'a str),
}

impl fmt::Display for TokKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokKind::LParen => f.write_str("`(`"),
            TokKind::RParen => f.write_str("`)`"),
            TokKind::Str(_) => f.write_str("string"),
            TokKind::Word(w) => write!(f, "`{w}`"),
        }
    }
}

#[derive(Debug, Clone)]
struct Tok<'a> {
    pos: usize,
    kind: TokKind<'a>,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':')
}

fn lex(text: &str) -> Result<Vec<Tok<'_>>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((pos, c)) = chars.next() {
        let kind = match c {
            c if c.is_whitespace() => continue,
            '(' => TokKind::LParen,
            ')' => TokKind::RParen,
            '"' => TokKind::Str(lex_string(text, pos, &mut chars)?),
            c if is_word_char(c) => {
                let mut end = pos + c.len_utf8();
                while let Some(&(i, c)) = chars.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                TokKind::Word(text.get(pos..end).unwrap_or_default())
            }
            other => {
                return Err(FilterError::new(
                    pos,
                    format!("unexpected character `{}`", other.escape_debug()),
                ))
            }
        };
        tokens.push(Tok { pos, kind });
    }
    Ok(tokens)
}

type CharIter<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

fn lex_string(text: &str, open: usize, chars: &mut CharIter<'_>) -> Result<String, FilterError> {
    let mut out = String::new();
    loop {
        let Some((pos, c)) = chars.next() else {
            return Err(FilterError::new(open, "unterminated string"));
        };
        match c {
            '"' => return Ok(out),
            '\\' => {
                let Some((_, esc)) = chars.next() else {
                    return Err(FilterError::new(open, "unterminated string"));
                };
                match esc {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '/' => out.push('/'),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'u' => out.push(lex_unicode_escape(text, pos, chars)?),
                    other => {
                        return Err(FilterError::new(
                            pos,
                            format!("unknown escape `\\{}`", other.escape_debug()),
                        ))
                    }
                }
            }
            c => out.push(c),
        }
    }
}

/// Reads the XXXX of `\uXXXX` (the backslash is at `pos`), combining a
/// UTF-16 surrogate pair written as two escapes.
fn lex_unicode_escape(
    text: &str,
    pos: usize,
    chars: &mut CharIter<'_>,
) -> Result<char, FilterError> {
    let invalid = || FilterError::new(pos, "invalid `\\u` escape: expected 4 hex digits");
    let hex4 = |chars: &mut CharIter<'_>| -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..4 {
            let (_, c) = chars.next()?;
            value = value * 16 + c.to_digit(16)?;
        }
        Some(value)
    };
    let first = hex4(chars).ok_or_else(invalid)?;
    if (0xD800..0xDC00).contains(&first) {
        let low_start = pos + 6;
        let lone = || FilterError::new(pos, "unpaired surrogate in `\\u` escape");
        if text.get(low_start..low_start + 2) != Some("\\u") {
            return Err(lone());
        }
        chars.next();
        chars.next();
        let second = hex4(chars).ok_or_else(invalid)?;
        if !(0xDC00..0xE000).contains(&second) {
            return Err(lone());
        }
        let combined = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
        return char::from_u32(combined).ok_or_else(lone);
    }
    char::from_u32(first).ok_or_else(|| FilterError::new(pos, "unpaired surrogate in `\\u` escape"))
}

struct Parser<'t, 'a> {
    tokens: &'t [Tok<'a>],
    next: usize,
    end: usize,
}

impl<'t, 'a> Parser<'t, 'a> {
    fn peek(&self) -> Option<&'t Tok<'a>> {
        self.tokens.get(self.next)
    }

    fn bump(&mut self) -> Option<&'t Tok<'a>> {
        let tok = self.tokens.get(self.next);
        if tok.is_some() {
            self.next += 1;
        }
        tok
    }

    fn peek_pos(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Tok { kind: TokKind::Word(w), .. }) if w.eq_ignore_ascii_case(keyword))
    }

    fn or(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut operands = vec![self.and(depth)?];
        while self.at_keyword("or") {
            self.bump();
            operands.push(self.and(depth)?);
        }
        Ok(collapse(operands, Filter::Or))
    }

    fn and(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut operands = vec![self.unary(depth)?];
        while self.at_keyword("and") {
            self.bump();
            operands.push(self.unary(depth)?);
        }
        Ok(collapse(operands, Filter::And))
    }

    fn descend(&self, depth: usize) -> Result<usize, FilterError> {
        if depth >= MAX_FILTER_DEPTH {
            return Err(FilterError::new(
                self.peek_pos(),
                format!("filter is nested deeper than {MAX_FILTER_DEPTH} levels"),
            ));
        }
        Ok(depth + 1)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if self.at_keyword("not") {
            let depth = self.descend(depth)?;
            self.bump();
            return Ok(Filter::Not(Box::new(self.unary(depth)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let pos = self.peek_pos();
        match self.peek().map(|t| &t.kind) {
            Some(TokKind::LParen) => {
                let depth = self.descend(depth)?;
                self.bump();
                let inner = self.or(depth)?;
                match self.bump() {
                    Some(Tok {
                        kind: TokKind::RParen,
                        ..
                    }) => Ok(inner),
                    Some(tok) => Err(FilterError::new(
                        tok.pos,
                        format!(
                            "expected `)` to close `(` at position {pos}, found {}",
                            tok.kind
                        ),
                    )),
                    None => Err(FilterError::new(
                        self.end,
                        format!("expected `)` to close `(` at position {pos}"),
                    )),
                }
            }
            Some(TokKind::Word(path)) => {
                let path = *path;
                self.bump();
                self.attribute_expr(pos, path)
            }
            Some(other) => Err(FilterError::new(
                pos,
                format!("expected attribute or `(`, found {other}"),
            )),
            None => Err(FilterError::new(
                pos,
                "expected attribute or `(`, found end of filter",
            )),
        }
    }

    fn attribute_expr(&mut self, pos: usize, path: &str) -> Result<Filter, FilterError> {
        let attr = Attr::from_path(path)
            .ok_or_else(|| FilterError::new(pos, format!("unknown attribute `{path}`")))?;
        let op_pos = self.peek_pos();
        let op_word = match self.bump().map(|t| &t.kind) {
            Some(TokKind::Word(w)) => *w,
            _ => {
                return Err(FilterError::new(
                    op_pos,
                    format!("expected operator after attribute `{path}`"),
                ))
            }
        };
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(attr));
        }
        let op = CompareOp::from_word(op_word).ok_or_else(|| {
            FilterError::new(
                op_pos,
                format!("unknown operator `{op_word}` after attribute `{path}`"),
            )
        })?;
        let value_pos = self.peek_pos();
        let value = match self.bump().map(|t| &t.kind) {
            Some(TokKind::Str(s)) => Literal::String(s.clone()),
            Some(TokKind::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(TokKind::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Some(TokKind::Word(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
            _ => {
                return Err(FilterError::new(
                    value_pos,
                    format!("expected a quoted string, `true`, `false` or `null` after `{op}`"),
                ))
            }
        };
        let value = check_operand(&attr, op, value, value_pos)?;
        Ok(Filter::Compare { attr, op, value })
    }
}

fn check_operand(
    attr: &Attr,
    op: CompareOp,
    value: Literal,
    pos: usize,
) -> Result<Literal, FilterError> {
    match (attr, value) {
        (Attr::Published, Literal::String(s)) => {
            if matches!(op, CompareOp::Sw | CompareOp::Co) {
                return Err(FilterError::new(
                    pos,
                    format!("operator `{op}` cannot be used on `published`"),
                ));
            }
            OffsetDateTime::parse(&s, &Rfc3339)
                .map(|t| Literal::Timestamp(t.to_offset(UtcOffset::UTC)))
                .map_err(|_| {
                    FilterError::new(
                        pos,
                        "`published` must be compared with an RFC 3339 timestamp",
                    )
                })
        }
        (Attr::Published, _) => Err(FilterError::new(
            pos,
            "`published` must be compared with an RFC 3339 timestamp",
        )),
        (_, value @ (Literal::Bool(_) | Literal::Null)) if !op.is_equality() => {
            Err(FilterError::new(
                pos,
                format!("operator `{op}` needs a string, not `{value}`"),
            ))
        }
        (_, value) => Ok(value),
    }
}

fn collapse(mut operands: Vec<Filter>, build: fn(Vec<Filter>) -> Filter) -> Filter {
    if operands.len() == 1 {
        if let Some(only) = operands.pop() {
            return only;
        }
    }
    build(operands)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syslog::event::{Actor, OutcomeResult, Severity, Target};
    use proptest::prelude::*;
    use time::macros::datetime;

    fn sample() -> Event {
        let mut e = Event::new(
            "user.session.start",
            "User login",
            Severity::Info,
            OutcomeResult::Success,
        )
        .actor(Actor::new("00u1", "User").alternate_id("alice@example.com"))
        .client(Some("10.0.0.1".parse().expect("ip")), None)
        .target(Target::new("t1", "AppInstance"))
        .target(Target::new("t2", "User").display_name("Bob"))
        .session("sess-42")
        .debug("risk", "low")
        .debug("mfa", "true");
        e.published = datetime!(2026-11-24 05:15:10.193 UTC);
        e
    }

    fn matches(filter: &str) -> bool {
        Filter::parse(filter)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .matches(&sample())
    }

    fn error(filter: &str) -> FilterError {
        Filter::parse(filter).expect_err(filter)
    }

    #[test]
    fn every_operator() {
        assert!(matches(r#"eventType eq "user.session.start""#));
        assert!(!matches(r#"eventType eq "User.session.start""#));
        assert!(matches(r#"eventType ne "user.session.end""#));
        assert!(!matches(r#"eventType ne "user.session.start""#));
        assert!(matches(r#"eventType sw "user.session""#));
        assert!(!matches(r#"eventType sw "session""#));
        assert!(matches(r#"actor.alternateId co "@example""#));
        assert!(matches(r#"eventType gt "user.a""#));
        assert!(matches(r#"eventType ge "user.session.start""#));
        assert!(!matches(r#"eventType gt "user.session.start""#));
        assert!(matches(r#"eventType lt "user.z""#));
        assert!(matches(r#"eventType le "user.session.start""#));
        assert!(matches("client.ipAddress pr"));
        assert!(!matches("client.userAgent.rawUserAgent pr"));
        assert!(matches("client.userAgent.rawUserAgent eq null"));
        assert!(matches("client.ipAddress ne null"));
        assert!(matches(r#"client.userAgent.rawUserAgent ne "x""#));
    }

    #[test]
    fn published_compares_chronologically() {
        assert!(matches(r#"published gt "2026-11-24T05:15:10.192Z""#));
        assert!(matches(r#"published ge "2026-11-24T05:15:10.193Z""#));
        assert!(matches(r#"published eq "2026-11-24T06:15:10.193+01:00""#));
        assert!(matches(r#"published lt "2026-11-24T06:30:00+01:00""#));
        assert!(!matches(r#"published le "2026-11-24T05:15:10.1929Z""#));
        assert!(matches("published pr"));
        assert_eq!(error(r#"published sw "2026""#).position, 13);
        assert_eq!(error(r#"published gt "yesterday""#).position, 13);
        assert_eq!(error("published eq null").position, 13);
    }

    #[test]
    fn attribute_paths() {
        assert!(matches(r#"target.id eq "t2""#));
        assert!(matches(r#"target.id eq "t1""#));
        assert!(!matches(r#"target.id eq "t3""#));
        assert!(matches(r#"target.displayName eq "Bob""#));
        assert!(matches(r#"outcome.result eq "SUCCESS""#));
        assert!(matches(r#"severity eq "INFO""#));
        assert!(matches(
            r#"authenticationContext.externalSessionId eq "sess-42""#
        ));
        assert!(matches(r#"debugContext.debugData.risk eq "low""#));
        assert!(matches("debugContext.debugData.mfa eq true"));
        assert!(!matches("debugContext.debugData.mfa eq false"));
        assert!(!matches("debugContext.debugData.Risk pr"));
        let event = sample();
        let by_uuid = Filter::parse(&format!(r#"uuid eq "{}""#, event.uuid)).expect("parse");
        assert!(by_uuid.matches(&event));
        assert!(matches(r#"EVENTTYPE EQ "user.session.start""#));
        assert_eq!(error(r#"nope eq "x""#).message, "unknown attribute `nope`");
        assert_eq!(error("debugContext.debugData. pr").position, 0);
    }

    #[test]
    fn logic_and_precedence() {
        assert!(matches(
            r#"eventType eq "x" or eventType eq "user.session.start""#
        ));
        assert!(!matches(
            r#"eventType eq "x" and eventType eq "user.session.start""#
        ));
        // `and` binds tighter: true or (false and false)
        assert!(matches(
            r#"severity eq "INFO" or severity eq "X" and severity eq "Y""#
        ));
        assert!(!matches(
            r#"(severity eq "INFO" or severity eq "X") and severity eq "Y""#
        ));
        assert!(!matches(r#"not (severity eq "INFO")"#));
        assert!(matches(r#"NOT severity eq "X" AnD severity eq "INFO""#));
        assert!(matches(r#"not not (severity eq "INFO")"#));
        let parsed = Filter::parse(r#"a.b eq "1" or c.d eq "2""#);
        assert!(parsed.is_err());
        let parsed =
            Filter::parse(r#"eventType eq "a" or severity pr and not (uuid pr)"#).expect("parse");
        assert_eq!(
            parsed,
            Filter::Or(vec![
                Filter::Compare {
                    attr: Attr::EventType,
                    op: CompareOp::Eq,
                    value: Literal::String("a".into()),
                },
                Filter::And(vec![
                    Filter::Present(Attr::Severity),
                    Filter::Not(Box::new(Filter::Present(Attr::Uuid))),
                ]),
            ])
        );
        assert_eq!(
            parsed.to_string(),
            r#"eventType eq "a" or severity pr and not (uuid pr)"#
        );
    }

    #[test]
    fn string_escapes() {
        let f =
            Filter::parse(r#"displayMessage eq "a\"b\\c\nd\te\u00e9\ud83d\ude00""#).expect("parse");
        let Filter::Compare { value, .. } = &f else {
            panic!("not a comparison");
        };
        assert_eq!(
            value,
            &Literal::String("a\"b\\c\nd\te\u{e9}\u{1F600}".into())
        );
        assert_eq!(Filter::parse(&f.to_string()).expect("reparse"), f);
        assert_eq!(error(r#"eventType eq "abc"#).position, 13);
        assert_eq!(error(r#"eventType eq "abc"#).message, "unterminated string");
        assert_eq!(error(r#"eventType eq "a\qb""#).position, 15);
        assert_eq!(error(r#"eventType eq "\u12""#).position, 14);
        assert_eq!(error(r#"eventType eq "\ud800x""#).position, 14);
    }

    #[test]
    fn error_positions() {
        let e = error("eventType");
        assert_eq!(
            (e.position, e.message.as_str()),
            (9, "expected operator after attribute `eventType`")
        );
        let e = error(r#"eventType "x""#);
        assert_eq!(e.position, 10);
        assert_eq!(error(r#"eventType foo "x""#).position, 10);
        assert_eq!(error("eventType eq").position, 12);
        assert_eq!(error("eventType eq foo").position, 13);
        assert_eq!(error(r#"(eventType eq "x""#).position, 17);
        assert_eq!(error(r#"eventType eq "x")"#).position, 16);
        assert_eq!(error(r#"eventType eq "x" and"#).position, 20);
        assert_eq!(error("").position, 0);
        assert_eq!(error("   # ").position, 3);
        assert_eq!(error(r#"eventType gt true"#).position, 13);
    }

    #[test]
    fn limits() {
        let long = format!(r#"eventType eq "{}""#, "x".repeat(MAX_FILTER_LEN));
        assert_eq!(error(&long).position, MAX_FILTER_LEN);
        let ok = format!(
            "{}uuid pr{}",
            "(".repeat(MAX_FILTER_DEPTH),
            ")".repeat(MAX_FILTER_DEPTH)
        );
        assert!(Filter::parse(&ok).is_ok());
        let deep = format!(
            "{}uuid pr{}",
            "(".repeat(MAX_FILTER_DEPTH + 1),
            ")".repeat(MAX_FILTER_DEPTH + 1)
        );
        assert_eq!(error(&deep).position, MAX_FILTER_DEPTH);
        let nots = "not ".repeat(500) + "uuid pr";
        assert!(Filter::parse(&nots).is_err());
        let parens = "(".repeat(2000);
        assert!(Filter::parse(&parens).is_err());
        let chain = vec!["uuid pr"; 150].join(" or ");
        assert!(Filter::parse(&chain).is_ok());
    }

    fn attr_strategy() -> impl Strategy<Value = Attr> {
        prop_oneof![
            (0..FIXED_ATTRS.len())
                .prop_map(|i| FIXED_ATTRS.get(i).map_or(Attr::Uuid, |(a, _)| a.clone())),
            "[A-Za-z0-9_][A-Za-z0-9_.:-]{0,8}".prop_map(Attr::DebugData),
        ]
    }

    fn op_strategy() -> impl Strategy<Value = CompareOp> {
        (0..OPS.len()).prop_map(|i| OPS.get(i).map_or(CompareOp::Eq, |(op, _)| *op))
    }

    fn leaf_strategy() -> impl Strategy<Value = Filter> {
        let timestamp = (0i64..253_402_300_799, 0u32..1_000_000_000).prop_map(|(secs, nanos)| {
            let t = OffsetDateTime::from_unix_timestamp(secs).expect("in range");
            t.replace_nanosecond(nanos).expect("valid nanos")
        });
        prop_oneof![
            attr_strategy().prop_map(Filter::Present),
            (
                attr_strategy(),
                op_strategy(),
                "(?s:.{0,10})",
                any::<u8>(),
                timestamp
            )
                .prop_map(|(attr, op, s, pick, t)| {
                    let value = if attr == Attr::Published {
                        Literal::Timestamp(t)
                    } else if op.is_equality() && pick % 4 == 0 {
                        [Literal::Null, Literal::Bool(true), Literal::Bool(false)]
                            [usize::from(pick / 4) % 3]
                            .clone()
                    } else {
                        Literal::String(s)
                    };
                    let op =
                        if attr == Attr::Published && matches!(op, CompareOp::Sw | CompareOp::Co) {
                            CompareOp::Ge
                        } else {
                            op
                        };
                    Filter::Compare { attr, op, value }
                }),
        ]
    }

    fn filter_strategy() -> impl Strategy<Value = Filter> {
        leaf_strategy().prop_recursive(5, 16, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|f| Filter::Not(Box::new(f))),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
                prop::collection::vec(inner, 2..4).prop_map(Filter::Or),
            ]
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = Filter::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_filterish_text(
            text in r#"([()" \\]|eq|and|or|not|pr|sw|true|null|eventType|target\.id|published|\\u[0-9a-fA-FxX]{0,4}|"[a-z\\]{0,3}"?){0,40}"#
        ) {
            let _ = Filter::parse(&text);
        }

        #[test]
        fn display_round_trips(filter in filter_strategy()) {
            let text = filter.to_string();
            let parsed = Filter::parse(&text);
            if text.len() > MAX_FILTER_LEN {
                prop_assert_eq!(parsed.map_err(|e| e.position), Err(MAX_FILTER_LEN));
            } else {
                prop_assert_eq!(parsed.as_ref(), Ok(&filter), "text: {}", text);
            }
        }

        #[test]
        fn evaluation_never_panics(filter in filter_strategy()) {
            let _ = filter.matches(&sample());
        }
    }
}
