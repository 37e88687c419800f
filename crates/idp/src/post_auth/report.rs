//! The violations report: what the admin console's post-auth widget reads.
//! A bounded ring of the latest violations (bound-attribute changes, in
//! every mode: under monitoring they are what enforcement would have
//! acted on), counted over a time window on request.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use time::OffsetDateTime;

use super::{Verdict, Violation};

/// Violations kept; older ones fall out of the report (the System Log
/// keeps their events).
pub const REPORT_CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct Report {
    entries: Mutex<VecDeque<Entry>>,
}

struct Entry {
    violation: Violation,
    outcome: Verdict,
}

/// `GET /api/v1/post-auth/report`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary<'a> {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    pub total: usize,
    pub by_user: BTreeMap<String, usize>,
    /// Gateway apps by name; IdP sessions under `"idp"`.
    pub by_app: BTreeMap<String, usize>,
    pub by_attribute: BTreeMap<&'static str, usize>,
    pub by_outcome: BTreeMap<&'static str, usize>,
    /// Newest first.
    pub latest: Vec<Latest<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latest<'a> {
    #[serde(flatten)]
    pub violation: &'a Violation,
    pub outcome: &'static str,
}

/// What a summary was computed from, handed to a closure so the lock is
/// held only while it serialises.
impl Report {
    pub fn record(&self, violation: Violation, outcome: Verdict) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() == REPORT_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(Entry { violation, outcome });
    }

    /// Counts over `[since, until)` and the `latest` newest entries in it,
    /// given to `render` (the lock is held while it runs).
    pub fn summarise<R>(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
        latest: usize,
        render: impl FnOnce(&Summary<'_>) -> R,
    ) -> R {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut summary = Summary {
            since,
            until,
            total: 0,
            by_user: BTreeMap::new(),
            by_app: BTreeMap::new(),
            by_attribute: BTreeMap::new(),
            by_outcome: BTreeMap::new(),
            latest: Vec::new(),
        };
        for entry in entries.iter().rev() {
            let v = &entry.violation;
            if v.published < since || v.published >= until {
                continue;
            }
            summary.total += 1;
            *summary.by_user.entry(v.user.login.clone()).or_default() += 1;
            let app = v.session.app.clone().unwrap_or_else(|| "idp".to_string());
            *summary.by_app.entry(app).or_default() += 1;
            for attribute in &v.attributes {
                *summary.by_attribute.entry(attribute.as_str()).or_default() += 1;
            }
            *summary
                .by_outcome
                .entry(entry.outcome.as_str())
                .or_default() += 1;
            if summary.latest.len() < latest {
                summary.latest.push(Latest {
                    violation: v,
                    outcome: entry.outcome.as_str(),
                });
            }
        }
        render(&summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post_auth::{SessionKind, ViolationPolicy, ViolationSession, ViolationUser};
    use portcullis_context::{Attribute, ContextSource};

    fn violation(login: &str, app: Option<&str>, at: OffsetDateTime) -> Violation {
        let source = ContextSource::default();
        Violation {
            id: format!("{login}-{at}"),
            published: at,
            user: ViolationUser {
                id: format!("id-{login}"),
                login: login.into(),
            },
            session: ViolationSession {
                id: "s".into(),
                kind: if app.is_some() {
                    SessionKind::Gateway
                } else {
                    SessionKind::Idp
                },
                app: app.map(str::to_string),
            },
            attributes: vec![Attribute::Ip],
            old: source.capture([127, 0, 0, 1].into(), None),
            new: source.capture([127, 0, 0, 2].into(), None),
            policy: ViolationPolicy {
                mode: "enforced".into(),
                bind: vec![Attribute::Ip],
                action: "logout".into(),
            },
            apps: vec![],
        }
    }

    #[test]
    fn counts_what_falls_in_the_window_newest_first() {
        let report = Report::default();
        let t0 = OffsetDateTime::now_utc();
        let minute = time::Duration::minutes(1);
        report.record(violation("old", None, t0 - 10 * minute), Verdict::Record);
        report.record(violation("alice", Some("wiki"), t0), Verdict::Logout);
        report.record(
            violation("alice", None, t0 + minute),
            Verdict::Reauthenticate,
        );
        report.record(
            violation("bob", Some("wiki"), t0 + 2 * minute),
            Verdict::Logout,
        );
        let json = report.summarise(t0 - minute, t0 + 10 * minute, 2, |s| {
            serde_json::to_value(s).expect("serialises")
        });
        assert_eq!(json["total"], 3);
        assert_eq!(json["byUser"]["alice"], 2);
        assert_eq!(json["byApp"]["wiki"], 2);
        assert_eq!(json["byApp"]["idp"], 1);
        assert_eq!(json["byAttribute"]["ip"], 3);
        assert_eq!(json["byOutcome"]["logout"], 2);
        assert_eq!(json["latest"].as_array().map(Vec::len), Some(2));
        assert_eq!(json["latest"][0]["user"]["login"], "bob");
        assert_eq!(json["latest"][0]["outcome"], "logout");
    }

    #[test]
    fn the_ring_is_bounded() {
        let report = Report::default();
        let t0 = OffsetDateTime::now_utc();
        for _ in 0..REPORT_CAPACITY + 5 {
            report.record(violation("u", None, t0), Verdict::Record);
        }
        let total = report.summarise(t0, t0 + time::Duration::seconds(1), 0, |s| s.total);
        assert_eq!(total, REPORT_CAPACITY);
    }
}
