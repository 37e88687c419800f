//! Raw → model, one module per section. Collects every problem instead of
//! stopping at the first: each step reports what it finds at its key and
//! returns what it could build, so one bad value never hides another.
//!
//! This module holds the [`Validator`] and what every section shares:
//! problem collection, addresses, bounded numbers, durations, files, PEM
//! and peer metadata files.

mod access;
mod app;
mod app_auth;
mod cluster;
#[cfg(test)]
mod fixtures;
mod idp;
mod inject;
mod names;
mod pem;
mod server;
mod service_provider;
mod url;

pub use service_provider::SpMetadataRefused;

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::locate::{Locator, Step};
use crate::metadata::{MetadataError, MetadataReader, PeerTrust};
use crate::model::{Config, MetadataLocation, PeerMetadataSource};
use crate::problem::Problem;
use crate::raw::RawFile;

use self::app_auth::EmbeddedIdp;
use self::pem::{certificate_der, PemKind};

/// A timeout or lifetime longer than a day is a typo, not a policy.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

pub struct Validator<'a, 'i> {
    locator: &'a Locator<'i>,
    /// Relative file paths in the configuration resolve against this.
    base: &'a Path,
    source: &'a Path,
    metadata: &'a dyn MetadataReader,
    problems: Vec<Problem>,
}

impl<'a, 'i> Validator<'a, 'i> {
    pub fn new(
        locator: &'a Locator<'i>,
        base: &'a Path,
        source: &'a Path,
        metadata: &'a dyn MetadataReader,
    ) -> Self {
        Validator {
            locator,
            base,
            source,
            metadata,
            problems: Vec::new(),
        }
    }

    /// Every section, then the checks that span sections; `earlier` are the
    /// problems found while deserialising.
    pub fn finish(mut self, file: RawFile, earlier: Vec<Problem>) -> Result<Config, Vec<Problem>> {
        let RawFile {
            server,
            admin,
            log,
            cluster,
            idp,
            apps,
        } = file;
        self.problems = earlier;
        let server = self.server(server);
        let admin = admin.and_then(|a| self.admin(a));
        let log = self.log(log);
        let embedded = EmbeddedIdp::of(idp.as_ref());
        let mut idp = idp.and_then(|i| self.idp(i));
        // Every app is checked, whatever the IdP's fate; the cross-section
        // checks then name each app by its index in the file.
        let apps = self.apps(apps);
        self.register_gateway_sps(embedded, idp.as_mut(), &apps);
        if let Some(idp) = &idp {
            self.idp_apart_from_apps(idp, &apps);
        }
        // After the apps and the IdP: peers and the route cookie must not
        // be theirs.
        let cluster = cluster
            .map(|c| self.cluster(c, idp.as_ref(), &apps))
            .unwrap_or_default();
        let apps = apps.into_iter().map(|(_, app)| app).collect();
        if !self.problems.is_empty() {
            return Err(self.problems);
        }
        let Some(server) = server else {
            return Err(vec![Problem {
                key: String::new(),
                line: None,
                message: "configuration is incomplete".into(),
            }]);
        };
        Ok(Config {
            source: self.source.to_path_buf(),
            server,
            admin,
            log,
            idp,
            apps,
            cluster,
        })
    }

    /// Records a problem at `path`, located on the line of the closest
    /// value the file has on that path.
    fn problem(&mut self, path: &[Step<'_>], message: impl Into<String>) {
        let key = path
            .iter()
            .map(|s| match s {
                Step::Key(k) => format!(".{k}"),
                Step::Index(i) => format!("[{i}]"),
            })
            .collect::<String>();
        self.problems.push(Problem {
            key: key.trim_start_matches('.').to_string(),
            line: self.locator.line(path),
            message: message.into(),
        });
    }

    fn addr(&mut self, path: &[Step<'_>], raw: &str) -> Option<SocketAddr> {
        match raw.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    path,
                    format!("`{raw}` is not a socket address such as 127.0.0.1:8443"),
                );
                None
            }
        }
    }

    /// A number within `range`, or `default` when unset (and, with a
    /// problem, when out of range).
    fn bounded<T: TryFrom<u64>>(
        &mut self,
        path: &[Step<'_>],
        raw: Option<u64>,
        range: RangeInclusive<u64>,
        default: T,
    ) -> T {
        match raw {
            None => default,
            // Every range fits its target type, so the conversion holds.
            Some(v) if range.contains(&v) => T::try_from(v).unwrap_or(default),
            Some(_) => {
                self.problem(
                    path,
                    format!("must be between {} and {}", range.start(), range.end()),
                );
                default
            }
        }
    }

    /// A duration in (0, 24h]; `example` shows the form in the message.
    fn duration(
        &mut self,
        path: &[Step<'_>],
        raw: Option<&str>,
        default: Duration,
        example: &str,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        match humantime::parse_duration(raw) {
            Ok(d) if d.is_zero() => {
                self.problem(path, "must be longer than zero");
                default
            }
            Ok(d) if d > MAX_DURATION => {
                self.problem(path, "must be at most 24h");
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    path,
                    format!("`{raw}` is not a duration such as {example}: {e}"),
                );
                default
            }
        }
    }

    /// A duration within `range`, or `default` when unset (and, with a
    /// problem, when out of range or unreadable).
    fn duration_within(
        &mut self,
        path: &[Step<'_>],
        raw: Option<&str>,
        range: RangeInclusive<Duration>,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        let (low, high) = (
            humantime::format_duration(*range.start()),
            humantime::format_duration(*range.end()),
        );
        match humantime::parse_duration(raw) {
            Ok(d) if range.contains(&d) => d,
            Ok(_) => {
                self.problem(path, format!("must be between {low} and {high}"));
                default
            }
            Err(e) => {
                self.problem(
                    path,
                    format!("`{raw}` is not a duration such as {low} or {high}: {e}"),
                );
                default
            }
        }
    }

    /// A file that must exist now; its format belongs to whoever reads it.
    fn file(&mut self, path: &[Step<'_>], raw: &str) -> PathBuf {
        let resolved = self.base.join(raw);
        if let Err(e) = std::fs::metadata(&resolved) {
            self.problem(path, format!("cannot read {}: {e}", resolved.display()));
        }
        resolved
    }

    /// A PEM file that must hold a certificate or a private key.
    fn pem(&mut self, path: &[Step<'_>], raw: &str, kind: PemKind) -> PathBuf {
        let resolved = self.base.join(raw);
        match kind.check(&resolved) {
            Ok(true) => {}
            Ok(false) => self.problem(
                path,
                format!("{} holds no PEM certificate", resolved.display()),
            ),
            Err(e) => self.problem(
                path,
                format!(
                    "cannot load {} from {}: {e}",
                    kind.noun(),
                    resolved.display()
                ),
            ),
        }
        resolved
    }

    /// A PEM certificate file, as DER; `None` (and a problem) when unreadable.
    fn cert_der(&mut self, path: &[Step<'_>], raw: &str) -> Option<Vec<u8>> {
        let resolved = self.base.join(raw);
        let pem = match std::fs::read(&resolved) {
            Ok(pem) => pem,
            Err(e) => {
                self.problem(path, format!("cannot read {}: {e}", resolved.display()));
                return None;
            }
        };
        match certificate_der(&pem) {
            Ok(der) => Some(der),
            Err(reason) => {
                self.problem(path, format!("{} {reason}", resolved.display()));
                None
            }
        }
    }

    /// A peer's SAML metadata (`metadata_file` or `metadata_url` and the
    /// keys beside them, at `at(key)`), read and checked now so that
    /// `check` reports a bad document at its key instead of the first
    /// sign-in failing. A URL is downloaded once; when that fails, its
    /// `metadata_cache_file` (the last verified copy) stands in.
    fn peer_metadata<T>(
        &mut self,
        at: &dyn Fn(&'static str) -> Vec<Step<'static>>,
        keys: &PeerMetadataKeys<'_>,
        read: impl Fn(&dyn MetadataReader, &str, &PeerTrust<'_>) -> Result<T, MetadataError>,
    ) -> Option<(T, PeerMetadataSource)> {
        let signing_certs_der: Vec<Vec<u8>> = match keys.signing_cert {
            Some(file) => vec![self.cert_der(&at("metadata_signing_cert"), file)?],
            None => Vec::new(),
        };
        let min_refresh = self.duration_within(
            &at("metadata_min_refresh"),
            keys.min_refresh,
            MIN_REFRESH..=MAX_DURATION,
            DEFAULT_MIN_REFRESH,
        );
        let max_refresh = self.duration_within(
            &at("metadata_max_refresh"),
            keys.max_refresh,
            MIN_REFRESH..=MAX_DURATION,
            DEFAULT_MAX_REFRESH,
        );
        if min_refresh > max_refresh {
            self.problem(
                &at("metadata_min_refresh"),
                "must not be longer than metadata_max_refresh",
            );
            return None;
        }
        let trust = PeerTrust {
            entity_id: keys.entity_id,
            signing_certs_der: &signing_certs_der,
        };
        let (metadata, location) = match (keys.file, keys.url) {
            (Some(_), Some(_)) => {
                self.problem(
                    &at("metadata_url"),
                    "set metadata_file or metadata_url, not both",
                );
                return None;
            }
            (None, None) => return None,
            (Some(file), None) => {
                if keys.cache_file.is_some() {
                    self.problem(
                        &at("metadata_cache_file"),
                        "metadata_cache_file is for metadata_url",
                    );
                }
                let resolved = self.base.join(file);
                let xml = match std::fs::read_to_string(&resolved) {
                    Ok(xml) => xml,
                    Err(e) => {
                        self.problem(
                            &at("metadata_file"),
                            format!("cannot read {}: {e}", resolved.display()),
                        );
                        return None;
                    }
                };
                match read(self.metadata, &xml, &trust) {
                    Ok(meta) => (meta, MetadataLocation::File(resolved)),
                    Err(e) => {
                        self.problem(&at("metadata_file"), format!("{}: {e}", resolved.display()));
                        return None;
                    }
                }
            }
            (None, Some(url)) => {
                if !self.http_url(&at("metadata_url"), url) {
                    return None;
                }
                if signing_certs_der.is_empty() {
                    self.problem(
                        &at("metadata_url"),
                        "metadata_url needs metadata_signing_cert: a downloaded document is trusted only through its signature",
                    );
                    return None;
                }
                let cache_file = keys.cache_file.map(|f| self.base.join(f));
                let fetched = self
                    .metadata
                    .fetch(url)
                    .and_then(|xml| read(self.metadata, &xml, &trust));
                let meta = match fetched {
                    Ok(meta) => meta,
                    Err(e) => {
                        let cached = match &cache_file {
                            None => Err("and no metadata_cache_file is set".to_string()),
                            Some(path) => std::fs::read_to_string(path)
                                .map_err(|c| format!("nor read {}: {c}", path.display()))
                                .and_then(|xml| {
                                    read(self.metadata, &xml, &trust).map_err(|c| {
                                        format!("and its cache {} is refused: {c}", path.display())
                                    })
                                }),
                        };
                        match cached {
                            Ok(meta) => meta,
                            Err(cache) => {
                                self.problem(&at("metadata_url"), format!("{url}: {e}, {cache}"));
                                return None;
                            }
                        }
                    }
                };
                (
                    meta,
                    MetadataLocation::Url {
                        url: url.to_string(),
                        cache_file,
                    },
                )
            }
        };
        Some((
            metadata,
            PeerMetadataSource {
                location,
                signing_certs_der,
                entity_id: keys.entity_id.map(str::to_string),
                min_refresh,
                max_refresh,
            },
        ))
    }
}

/// The metadata keys of `[[app]] idp = { … }` and `[[idp.service_provider]]`.
pub(super) struct PeerMetadataKeys<'r> {
    pub file: Option<&'r str>,
    pub url: Option<&'r str>,
    pub signing_cert: Option<&'r str>,
    pub cache_file: Option<&'r str>,
    pub entity_id: Option<&'r str>,
    pub min_refresh: Option<&'r str>,
    pub max_refresh: Option<&'r str>,
}

/// Low enough for a test to watch a rollover; an operator's choice below
/// the default only costs the peer's bandwidth.
const MIN_REFRESH: Duration = Duration::from_secs(1);
const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(5 * 60);
const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(4 * 3600);

#[cfg(test)]
mod tests {
    use super::fixtures::{app, problems, IDP, SAML, SERVER};

    /// The file of the e2e `check` test (tests/e2e/check.rs), on the repo's
    /// dev certificates: the same keys, lines and messages, eight in all.
    #[test]
    fn every_problem_of_the_e2e_check_file_is_located() {
        let apps = [
            ("dup", "https://app.test/", "builtin:echo"),
            ("dup", "https://b.test/", "builtin:echo"),
            ("overlap", "https://app.test", "builtin:echo"),
            ("bad-upstream", "https://c.test/", "ftp://files.example/"),
            ("plain", "http://a.test/", "builtin:echo"),
        ]
        .map(|(name, url, upstream)| {
            format!("[[app]]\nname = \"{name}\"\npublic_url = \"{url}\"\nupstream = \"{upstream}\"\n")
        })
        .concat()
            + "[[app]]\nname = \"typo\"\npublic_url = \"https://a.test/\"\nupstrem = \"builtin:echo\"\n";
        let text = format!(
            "[server]\nhttps = [\"127.0.0.1:0\"]\ntls_cert = \"certs-dev/localhost.pem\"\ntls_key = \"/nonexistent/key.pem\"\n\
upstream_connect_timeout = \"30s\"\nupstream_response_timeout = \"5s\"\nheader_read_timeout = \"0s\"\n\n\
[log]\nformat = \"json\"\nlevel = \"info\"\n\n{apps}"
        );
        let problems = super::fixtures::parse(&text).expect_err("invalid");
        let report = problems.to_string();
        let line_of = |needle: &str| {
            text.lines()
                .position(|l| l.contains(needle))
                .map(|i| i + 1)
                .unwrap_or_else(|| panic!("{needle} not in config"))
        };
        let expectations = [
            (
                format!(":{}: app[1].name", line_of("name = \"dup\"") + 4),
                "already used by app[0]",
            ),
            (
                format!(":{}: app[2].public_url", line_of("https://app.test\"")),
                "overlaps app[0]",
            ),
            (
                format!(":{}: app[3].upstream", line_of("ftp://")),
                "not supported",
            ),
            (
                format!(":{}: app[4].public_url", line_of("http://a.test/")),
                "must use https",
            ),
            (
                format!(":{}: app[5].upstrem", line_of("upstrem")),
                "unknown field",
            ),
            (
                format!(":{}: server.tls_key", line_of("/nonexistent/key.pem")),
                "cannot load private key",
            ),
            (
                format!(
                    ":{}: server.upstream_connect_timeout",
                    line_of("upstream_connect_timeout")
                ),
                "must not exceed",
            ),
            (
                format!(
                    ":{}: server.header_read_timeout",
                    line_of("header_read_timeout")
                ),
                "longer than zero",
            ),
        ];
        for (location, message) in expectations {
            assert!(
                report
                    .lines()
                    .any(|l| l.contains(&location) && l.contains(message)),
                "missing `{location}` … `{message}` in:\n{report}"
            );
        }
        assert_eq!(problems.problems.len(), 8, "{report}");
    }

    /// A bad app hides neither `[idp]`'s problems nor another app's.
    #[test]
    fn one_bad_section_hides_no_other() {
        let text = format!(
            "{SERVER}{}{}{}",
            IDP.replace("users_file = \"demo/users.toml\"", "users_file = \"missing.toml\"\nlockout_duration = \"0s\""),
            app(
                "a",
                "https://a.test/",
                &format!("{SAML}session_max = \"forever\"\n[[app.access]]\npath = \"x\"\npolicy = \"public\"\n")
            ),
            app("b", "https://b.test/", "load_balancing = \"random\"\n"),
        );
        let problems = problems(&text);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "idp.users_file",
                "idp.lockout_duration",
                "app[0].session_max",
                "app[0].access[0].path",
                "app[1].load_balancing",
            ],
            "{problems:?}"
        );
    }

    /// One duration rule for every section: (0, 24h], with the reason.
    #[test]
    fn durations_are_refused_with_their_reason() {
        let text = format!(
            "{}\nidle_timeout = \"0s\"\n\n{}{}",
            SERVER.trim_end(),
            IDP.replace("\n\n", "\nsession_token_ttl = \"25h\"\n\n"),
            app(
                "a",
                "https://a.test/",
                &format!("{SAML}session_idle = \"a while\"\n")
            ),
        );
        let problems = problems(&text);
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(found.len(), 3, "{problems:?}");
        assert_eq!(
            found[0],
            ("server.idle_timeout", "must be longer than zero")
        );
        assert_eq!(found[1], ("idp.session_token_ttl", "must be at most 24h"));
        assert_eq!(found[2].0, "app[0].session_idle");
        assert!(
            found[2]
                .1
                .starts_with("`a while` is not a duration such as 30m"),
            "{problems:?}"
        );
    }
}
