//! Reading the log back: the `GET /api/v1/logs` parameters, cursor paging
//! over the ring, and the `Link` header that points at the next page.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::event::Event;
use super::filter::{Filter, FilterError};
use super::store::SystemLog;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SortOrder {
    #[default]
    Ascending,
    Descending,
}

/// Where the previous page stopped: the last event it returned.
///
/// Rendered as 64 lowercase hex digits (published nanoseconds, then the
/// uuid); clients must treat it as opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    published: OffsetDateTime,
    uuid: Uuid,
}

impl Cursor {
    pub fn of(event: &Event) -> Cursor {
        Cursor {
            published: event.published,
            uuid: event.uuid,
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Two's-complement reinterpretation keeps pre-1970 times encodable.
        let nanos = self.published.unix_timestamp_nanos() as u128;
        write!(f, "{nanos:032x}{}", self.uuid.simple())
    }
}

impl FromStr for Cursor {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Cursor, QueryError> {
        let invalid = || QueryError::Cursor;
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let (nanos, uuid) = (
            s.get(..32).ok_or_else(invalid)?,
            s.get(32..).ok_or_else(invalid)?,
        );
        let nanos = u128::from_str_radix(nanos, 16).map_err(|_| invalid())? as i128;
        Ok(Cursor {
            published: OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| invalid())?,
            uuid: Uuid::try_parse(uuid).map_err(|_| invalid())?,
        })
    }
}

/// A System Log query. `since` is inclusive, `until` exclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub filter: Option<Filter>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Clamped to `1..=MAX_LIMIT` when run; `from_params` rejects values
    /// outside it.
    pub limit: usize,
    pub after: Option<Cursor>,
    pub sort_order: SortOrder,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            filter: None,
            since: None,
            until: None,
            limit: DEFAULT_LIMIT,
            after: None,
            sort_order: SortOrder::default(),
        }
    }
}

/// A rejected query parameter; [`QueryError::parameter`] names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("invalid `filter` parameter: {0}")]
    Filter(#[from] FilterError),
    #[error("invalid `{param}` parameter: expected an RFC 3339 timestamp")]
    Timestamp { param: &'static str },
    #[error("invalid `limit` parameter: expected an integer from 1 to {MAX_LIMIT}")]
    Limit,
    #[error("invalid `after` parameter: not a cursor issued by this log")]
    Cursor,
    #[error("invalid `sortOrder` parameter: expected ASCENDING or DESCENDING")]
    SortOrder,
    #[error("invalid `until` parameter: earlier than `since`")]
    InvertedRange,
}

impl QueryError {
    pub fn parameter(&self) -> &'static str {
        match self {
            QueryError::Filter(_) => "filter",
            QueryError::Timestamp { param } => param,
            QueryError::Limit => "limit",
            QueryError::Cursor => "after",
            QueryError::SortOrder => "sortOrder",
            QueryError::InvertedRange => "until",
        }
    }
}

impl Query {
    /// Builds a query from already percent-decoded HTTP query parameters.
    /// Unknown names are ignored; a repeated name takes its last value; an
    /// empty `filter` means no filter.
    pub fn from_params<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Query, QueryError> {
        let mut query = Query::default();
        for (name, value) in params {
            match name {
                "filter" if value.trim().is_empty() => query.filter = None,
                "filter" => query.filter = Some(Filter::parse(value)?),
                "since" => query.since = Some(parse_time("since", value)?),
                "until" => query.until = Some(parse_time("until", value)?),
                "limit" => {
                    query.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or(QueryError::Limit)?
                }
                "after" => query.after = Some(value.parse()?),
                "sortOrder" if value.eq_ignore_ascii_case("ASCENDING") => {
                    query.sort_order = SortOrder::Ascending
                }
                "sortOrder" if value.eq_ignore_ascii_case("DESCENDING") => {
                    query.sort_order = SortOrder::Descending
                }
                "sortOrder" => return Err(QueryError::SortOrder),
                _ => {}
            }
        }
        if let (Some(since), Some(until)) = (query.since, query.until) {
            if until < since {
                return Err(QueryError::InvertedRange);
            }
        }
        Ok(query)
    }
}

fn parse_time(param: &'static str, value: &str) -> Result<OffsetDateTime, QueryError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map(|t| t.to_offset(UtcOffset::UTC))
        .map_err(|_| QueryError::Timestamp { param })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub events: Vec<Event>,
    /// Present when more matching events follow this page.
    pub next: Option<Cursor>,
}

impl Page {
    /// The `Link` header for the next page, if there is one.
    pub fn link_header<'a>(
        &self,
        base_url: &str,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<String> {
        self.next.map(|cursor| next_link(base_url, params, &cursor))
    }
}

impl SystemLog {
    pub fn query(&self, query: &Query) -> Page {
        self.with_ring(|ring| run(ring, query))
    }
}

/// Pages over `ring`, which the store keeps in non-decreasing `published`
/// order; ties keep emit order, so a cursor's position is exact even among
/// events published in the same millisecond.
fn run(ring: &VecDeque<Event>, query: &Query) -> Page {
    let limit = query.limit.clamp(1, MAX_LIMIT);
    let mut lo = query
        .since
        .map_or(0, |since| ring.partition_point(|e| e.published < since));
    let mut hi = query.until.map_or(ring.len(), |until| {
        ring.partition_point(|e| e.published < until)
    });
    if let Some(cursor) = &query.after {
        let (at, found) = locate(ring, cursor);
        match query.sort_order {
            // A cursor missing from the ring was evicted, and eviction is
            // oldest-first, so everything still here is after it.
            SortOrder::Ascending => lo = lo.max(if found { at + 1 } else { at }),
            SortOrder::Descending => hi = hi.min(at),
        }
    }
    let window = ring.iter().skip(lo).take(hi.saturating_sub(lo));
    let selected = window.filter(|e| query.filter.as_ref().is_none_or(|f| f.matches(e)));
    match query.sort_order {
        SortOrder::Ascending => collect_page(selected, limit),
        SortOrder::Descending => collect_page(selected.rev(), limit),
    }
}

/// Index of the cursor's event and whether it was found; if not, the index
/// of the first event published at or after the cursor.
fn locate(ring: &VecDeque<Event>, cursor: &Cursor) -> (usize, bool) {
    let first = ring.partition_point(|e| e.published < cursor.published);
    let same_time = ring
        .iter()
        .skip(first)
        .take_while(|e| e.published == cursor.published);
    for (offset, event) in same_time.enumerate() {
        if event.uuid == cursor.uuid {
            return (first + offset, true);
        }
    }
    (first, false)
}

fn collect_page<'a>(mut events: impl Iterator<Item = &'a Event>, limit: usize) -> Page {
    let page: Vec<Event> = events.by_ref().take(limit).cloned().collect();
    let next = match (events.next(), page.last()) {
        (Some(_), Some(last)) => Some(Cursor::of(last)),
        _ => None,
    };
    Page { events: page, next }
}

/// The `Link` header value for the page after `cursor`: `base_url` with
/// `params` (any old `after` dropped) plus `after=cursor`, percent-encoded.
pub fn next_link<'a>(
    base_url: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    cursor: &impl fmt::Display,
) -> String {
    let mut out = String::with_capacity(base_url.len() + 128);
    out.push('<');
    out.push_str(base_url);
    let mut separator = if base_url.contains('?') { '&' } else { '?' };
    for (name, value) in params.into_iter().filter(|(name, _)| *name != "after") {
        out.push(separator);
        percent_encode(&mut out, name);
        out.push('=');
        percent_encode(&mut out, value);
        separator = '&';
    }
    out.push(separator);
    let _ = write!(out, "after={cursor}>; rel=\"next\"");
    out
}

/// RFC 3986 query encoding: everything but unreserved characters escaped,
/// so the result is also safe inside the `<…>` of a `Link` header.
fn percent_encode(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syslog::event::{OutcomeResult, Severity};
    use crate::syslog::store::SystemLogConfig;
    use std::collections::HashSet;
    use time::macros::datetime;
    use time::Duration;

    const T0: OffsetDateTime = datetime!(2026-11-24 05:00:00 UTC);

    struct Fixture {
        _dir: tempfile::TempDir,
        log: SystemLog,
        next_n: usize,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = SystemLog::open(SystemLogConfig {
                ring_capacity: 10_000,
                ..SystemLogConfig::new(dir.path().join("events.jsonl"))
            })
            .expect("open");
            Fixture {
                _dir: dir,
                log,
                next_n: 0,
            }
        }

        /// Emits an event at `T0 + offset` (several share a timestamp when
        /// offsets repeat) and returns its number.
        fn emit_at(&mut self, offset: Duration) -> usize {
            let n = self.next_n;
            self.next_n += 1;
            let result = match n % 2 {
                0 => OutcomeResult::Success,
                _ => OutcomeResult::Failure,
            };
            let mut event = Event::new("user.session.start", "login", Severity::Info, result)
                .debug("n", n.to_string());
            event.published = T0 + offset;
            self.log.emit(event).expect("emit");
            n
        }

        fn page(&self, params: &[(&str, &str)]) -> Page {
            self.log
                .query(&Query::from_params(params.iter().copied()).expect("params"))
        }
    }

    fn numbers(events: &[Event]) -> Vec<usize> {
        events
            .iter()
            .map(|e| {
                e.debug_context
                    .debug_data
                    .get("n")
                    .expect("n")
                    .parse()
                    .expect("num")
            })
            .collect()
    }

    /// Walks every page, emitting `between` new events after each fetch.
    fn walk(
        fx: &mut Fixture,
        order: &str,
        limit: &str,
        filter: &str,
        between: usize,
    ) -> Vec<usize> {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..1000 {
            let mut params = vec![("sortOrder", order), ("limit", limit), ("filter", filter)];
            if let Some(after) = after.as_deref() {
                params.push(("after", after));
            }
            let page = fx.page(&params);
            assert!(page.events.len() <= limit.parse().expect("limit"));
            seen.extend(numbers(&page.events));
            for _ in 0..between {
                // Same millisecond as the newest event: ties must not be lost.
                fx.emit_at(Duration::seconds(10));
            }
            match page.next {
                Some(cursor) => after = Some(cursor.to_string()),
                None => return seen,
            }
        }
        panic!("paging did not terminate");
    }

    fn seed(fx: &mut Fixture, count: usize) {
        for i in 0..count {
            // Three events per second, so most pages split a tie.
            fx.emit_at(Duration::seconds(i64::try_from(i / 3).expect("small")));
        }
    }

    fn assert_unique(seen: &[usize]) {
        let unique: HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "duplicates in {seen:?}");
    }

    #[test]
    fn ascending_pages_cover_everything_including_new_arrivals() {
        let mut fx = Fixture::new();
        seed(&mut fx, 25);
        let seen = walk(&mut fx, "ASCENDING", "7", "", 2);
        assert_unique(&seen);
        // Every page fetch but the last added two events, and the walk only
        // ends once it has caught up with them.
        assert_eq!(seen, (0..fx.next_n - 2).collect::<Vec<_>>());
    }

    #[test]
    fn descending_pages_cover_the_snapshot_exactly_once() {
        let mut fx = Fixture::new();
        seed(&mut fx, 25);
        let seen = walk(&mut fx, "descending", "7", "", 2);
        assert_eq!(seen, (0..25).rev().collect::<Vec<_>>());
    }

    #[test]
    fn paging_with_a_filter() {
        let mut fx = Fixture::new();
        seed(&mut fx, 25);
        let failures = r#"outcome.result eq "FAILURE""#;
        let seen = walk(&mut fx, "ASCENDING", "4", failures, 0);
        assert_eq!(seen, (1..25).step_by(2).collect::<Vec<_>>());
        let seen = walk(&mut fx, "DESCENDING", "4", failures, 0);
        assert_eq!(seen, (1..25).step_by(2).rev().collect::<Vec<_>>());
    }

    #[test]
    fn last_page_has_no_next() {
        let mut fx = Fixture::new();
        seed(&mut fx, 6);
        let page = fx.page(&[("limit", "6")]);
        assert_eq!(page.events.len(), 6);
        assert_eq!(page.next, None);
        let page = fx.page(&[("limit", "5")]);
        assert!(page.next.is_some());
        assert_eq!(fx.page(&[]).events.len(), 6);
    }

    #[test]
    fn since_is_inclusive_and_until_exclusive() {
        let mut fx = Fixture::new();
        for i in 0..20 {
            fx.emit_at(Duration::seconds(i));
        }
        let since = (T0 + Duration::seconds(5)).format(&Rfc3339).expect("fmt");
        let until = (T0 + Duration::seconds(10)).format(&Rfc3339).expect("fmt");
        let (since, until) = (since.as_str(), until.as_str());
        let page = fx.page(&[("since", since), ("until", until)]);
        assert_eq!(numbers(&page.events), [5, 6, 7, 8, 9]);
        let page = fx.page(&[
            ("since", since),
            ("until", until),
            ("sortOrder", "DESCENDING"),
            ("limit", "2"),
        ]);
        assert_eq!(numbers(&page.events), [9, 8]);
        let after = page.next.expect("more").to_string();
        let page = fx.page(&[
            ("since", since),
            ("until", until),
            ("sortOrder", "DESCENDING"),
            ("limit", "10"),
            ("after", after.as_str()),
        ]);
        assert_eq!(numbers(&page.events), [7, 6, 5]);
        assert_eq!(page.next, None);
        let page = fx.page(&[("since", since), ("until", since)]);
        assert!(page.events.is_empty());
    }

    #[test]
    fn evicted_cursor_resumes_at_oldest_remaining() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = SystemLog::open(SystemLogConfig {
            ring_capacity: 4,
            ..SystemLogConfig::new(dir.path().join("events.jsonl"))
        })
        .expect("open");
        let emit = |n: usize| {
            log.emit(
                Event::new("e", "m", Severity::Info, OutcomeResult::Success)
                    .debug("n", n.to_string()),
            )
            .expect("emit")
        };
        for n in 0..4 {
            emit(n);
        }
        let first = log.query(&Query {
            limit: 2,
            ..Query::default()
        });
        for n in 4..8 {
            emit(n);
        }
        let rest = log.query(&Query {
            after: first.next,
            ..Query::default()
        });
        assert_eq!(numbers(&rest.events), [4, 5, 6, 7]);
    }

    #[test]
    fn params_are_validated_by_name() {
        let err = |params: &[(&str, &str)]| {
            Query::from_params(params.iter().copied()).expect_err("invalid")
        };
        assert_eq!(err(&[("limit", "0")]).parameter(), "limit");
        assert_eq!(err(&[("limit", "1001")]).parameter(), "limit");
        assert_eq!(err(&[("limit", "ten")]).parameter(), "limit");
        assert_eq!(err(&[("since", "yesterday")]).parameter(), "since");
        assert_eq!(
            err(&[("until", "2026-13-01T00:00:00Z")]).parameter(),
            "until"
        );
        assert_eq!(err(&[("after", "abc")]).parameter(), "after");
        assert_eq!(err(&[("sortOrder", "UP")]).parameter(), "sortOrder");
        assert_eq!(
            err(&[
                ("since", "2026-01-02T00:00:00Z"),
                ("until", "2026-01-01T00:00:00Z")
            ]),
            QueryError::InvertedRange
        );
        match err(&[("filter", "eventType eq")]) {
            QueryError::Filter(e) => assert_eq!(e.position, 12),
            other => panic!("{other:?}"),
        }

        let q = Query::from_params([
            ("limit", "1000"),
            ("sortOrder", "DESCENDING"),
            ("since", "2026-01-01T01:00:00+01:00"),
            ("filter", r#"severity eq "WARN""#),
            ("unknown", "whatever"),
        ])
        .expect("valid");
        assert_eq!(q.limit, 1000);
        assert_eq!(q.sort_order, SortOrder::Descending);
        assert_eq!(q.since, Some(datetime!(2026-01-01 00:00 UTC)));
        assert!(q.filter.is_some());
        assert_eq!(Query::from_params([]).expect("empty"), Query::default());
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let event = Event::new("e", "m", Severity::Info, OutcomeResult::Success);
        let cursor = Cursor::of(&event);
        let text = cursor.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Cursor>(), Ok(cursor));
        let mut before_epoch = event.clone();
        before_epoch.published = datetime!(1960-01-01 00:00 UTC);
        let cursor = Cursor::of(&before_epoch);
        assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        assert!("".parse::<Cursor>().is_err());
        assert!("g".repeat(64).parse::<Cursor>().is_err());
        assert!("é".repeat(32).parse::<Cursor>().is_err());
        let far_future = format!("7{}{}", "f".repeat(31), event.uuid.simple());
        assert_eq!(far_future.parse::<Cursor>(), Err(QueryError::Cursor));
    }

    #[test]
    fn link_header_encodes_params_and_replaces_after() {
        let cursor = Cursor::of(&Event::new(
            "e",
            "m",
            Severity::Info,
            OutcomeResult::Success,
        ));
        let link = next_link(
            "https://host/api/v1/logs",
            [
                ("filter", r#"eventType eq "a b""#),
                ("after", "old"),
                ("limit", "5"),
                ("q", "é&="),
            ],
            &cursor,
        );
        assert_eq!(
            link,
            format!(
                "<https://host/api/v1/logs?filter=eventType%20eq%20%22a%20b%22&limit=5&q=%C3%A9%26%3D&after={cursor}>; rel=\"next\""
            )
        );
        assert_eq!(
            next_link("https://host/logs?x=1", [], &cursor),
            format!("<https://host/logs?x=1&after={cursor}>; rel=\"next\"")
        );
        let page = Page {
            events: Vec::new(),
            next: None,
        };
        assert_eq!(page.link_header("https://host", []), None);
    }
}
