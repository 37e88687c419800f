//! `[idp]`: where the embedded IdP is published, the files it reads, its
//! limits and API tokens, and its SAML signing identity. Its registered
//! service providers are in `service_provider`.

use std::path::PathBuf;
use std::time::Duration;

use crate::locate::Step;
use crate::model::{AdminBind, ApiTokenConfig, App, Idp, IdpAdmin, IdpSaml, PublicUrl};
use crate::raw::{RawApiToken, RawIdp, RawIdpAdmin, RawIdpSaml};

use super::url::parse_public_url;
use super::{PemKind, Validator};

const IDP: Step<'static> = Step::Key("idp");
/// `[idp.saml] clock_skew` when unset.
const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// An assertion is valid for 5 minutes after its IssueInstant.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

fn at(key: &'static str) -> [Step<'static>; 2] {
    [IDP, Step::Key(key)]
}

/// Both halves of the SAML signing pair are configured (whether or not the
/// files are good: those are reported at their own keys).
pub(super) fn has_signing_pair(raw: &RawIdp) -> bool {
    raw.signing_key.is_some() && raw.signing_cert.is_some()
}

/// The System Log file and its rotation.
struct SystemLog {
    file: PathBuf,
    max_bytes: u64,
    keep_files: usize,
}

/// Lockout and rate limits, and how long a session token lives.
struct Limits {
    lockout_failures: u32,
    lockout_duration: Duration,
    sign_in_per_minute: u32,
    api_per_minute: u32,
    session_token_ttl: Duration,
}

impl Validator<'_, '_> {
    pub(super) fn idp(&mut self, mut raw: RawIdp) -> Option<Idp> {
        let public = self.idp_public_url(raw.public_url.as_deref());
        let users_file = match raw.users_file.as_deref() {
            Some(f) => Some(self.file(&at("users_file"), f)),
            None => {
                self.problem(&[IDP], "users_file is required");
                None
            }
        };
        let policy_file = raw
            .policy_file
            .as_deref()
            .map(|f| self.file(&at("policy_file"), f));
        let asn_database = raw
            .asn_database
            .as_deref()
            .map(|f| self.file(&at("asn_database"), f));
        let system_log = self.system_log(&raw);
        let api_tokens = self.api_tokens(std::mem::take(&mut raw.api_token));
        let limits = self.idp_limits(&raw);
        let clock_skew = self.idp_clock_skew(raw.saml.take().unwrap_or_default());
        let saml = self
            .idp_saml(
                public.as_ref(),
                raw.signing_key.as_deref(),
                raw.signing_cert.as_deref(),
                raw.entity_id.as_deref(),
            )
            .map(|saml| IdpSaml { clock_skew, ..saml });
        let saml = match raw.name_id_secret_file.as_deref() {
            Some(file) => {
                let name_id_secret_file = self.name_id_secret(file);
                if saml.is_none() {
                    self.problem(
                        &at("name_id_secret_file"),
                        "name_id_secret_file needs signing_key and signing_cert",
                    );
                }
                saml.map(|saml| IdpSaml {
                    name_id_secret_file,
                    ..saml
                })
            }
            None => saml,
        };
        let admin_groups = self.admin_groups(raw.admin_groups.take());
        let admin = self.idp_admin(raw.admin.take().unwrap_or_default(), asn_database.is_some());
        let keys = has_signing_pair(&raw);
        let wants_sps = !raw.service_provider.is_empty();
        let service_providers = self.service_providers(raw.service_provider);
        if wants_sps && !keys {
            self.problem(
                &at("service_provider"),
                "service providers need the IdP's signing_key and signing_cert",
            );
        }
        Some(Idp {
            public: public?,
            users_file: users_file?,
            policy_file,
            asn_database,
            system_log_file: system_log.file,
            system_log_max_bytes: system_log.max_bytes,
            system_log_keep_files: system_log.keep_files,
            lockout_failures: limits.lockout_failures,
            lockout_duration: limits.lockout_duration,
            sign_in_per_minute: limits.sign_in_per_minute,
            api_per_minute: limits.api_per_minute,
            session_token_ttl: limits.session_token_ttl,
            redirect_allow: raw.redirect_allow,
            api_tokens,
            saml,
            service_providers,
            admin_groups,
            admin,
        })
    }

    fn admin_groups(&mut self, raw: Option<Vec<String>>) -> Vec<String> {
        let Some(groups) = raw else {
            return vec!["admins".to_string()];
        };
        if groups.is_empty() {
            self.problem(
                &at("admin_groups"),
                "must name at least one group (nobody could use the admin console)",
            );
        }
        for group in &groups {
            if group.trim().is_empty() || group.len() > 256 {
                self.problem(&at("admin_groups"), "group names are 1 to 256 characters");
            }
        }
        groups
    }

    /// `[idp.saml] clock_skew`: how far NotBefore is backdated. Checked
    /// even without a signing pair, so a typo never waits for the keys.
    fn idp_clock_skew(&mut self, raw: RawIdpSaml) -> Duration {
        let path = [IDP, Step::Key("saml"), Step::Key("clock_skew")];
        let skew = self.duration(&path, raw.clock_skew.as_deref(), DEFAULT_CLOCK_SKEW, "60s");
        // Past the assertion's own lifetime the window would mostly be
        // in the past: a sign of a unit mistake, not of a slow clock.
        if skew > MAX_CLOCK_SKEW {
            self.problem(&path, "must be at most 5m");
            return DEFAULT_CLOCK_SKEW;
        }
        skew
    }

    /// `[idp.admin]`. `has_asn`: `[idp] asn_database` is set.
    fn idp_admin(&mut self, raw: RawIdpAdmin, has_asn: bool) -> IdpAdmin {
        let key = |k: &'static str| [IDP, Step::Key("admin"), Step::Key(k)];
        let max_lifetime = self.duration(
            &key("max_lifetime"),
            raw.max_lifetime.as_deref(),
            Duration::from_secs(12 * 3600),
            "12h",
        );
        let max_idle = self.duration(
            &key("max_idle"),
            raw.max_idle.as_deref(),
            Duration::from_secs(15 * 60),
            "15m",
        );
        if max_idle > max_lifetime {
            self.problem(&key("max_idle"), "must not be longer than max_lifetime");
        }
        // Zero is allowed here (every time), unlike `duration`.
        let protected_action_reauth = match raw.protected_action_reauth.as_deref() {
            None => Duration::ZERO,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if d <= max_lifetime => d,
                Ok(_) => {
                    self.problem(
                        &key("protected_action_reauth"),
                        "must not be longer than max_lifetime",
                    );
                    Duration::ZERO
                }
                Err(e) => {
                    self.problem(
                        &key("protected_action_reauth"),
                        format!("`{text}` is not a duration such as 0s or 5m: {e}"),
                    );
                    Duration::ZERO
                }
            },
        };
        if let Some(factors) = raw.factors {
            if factors != 2 {
                self.problem(
                    &key("factors"),
                    "the admin console requires two factors (password and TOTP); only 2 is accepted",
                );
            }
        }
        let mut bind = Vec::new();
        for name in raw.bind.unwrap_or_else(|| vec!["asn".to_string()]) {
            let attribute = match name.as_str() {
                "ip" => AdminBind::Ip,
                "asn" => AdminBind::Asn,
                other => {
                    self.problem(
                        &key("bind"),
                        format!("`{other}` is not one of \"ip\", \"asn\""),
                    );
                    continue;
                }
            };
            if !bind.contains(&attribute) {
                bind.push(attribute);
            }
        }
        let asn_fallback = !has_asn && bind.contains(&AdminBind::Asn);
        if asn_fallback {
            bind.retain(|b| *b != AdminBind::Asn);
            if !bind.contains(&AdminBind::Ip) {
                bind.push(AdminBind::Ip);
            }
        }
        IdpAdmin {
            max_lifetime,
            max_idle,
            bind,
            asn_fallback,
            protected_action_reauth,
        }
    }

    fn system_log(&mut self, raw: &RawIdp) -> SystemLog {
        SystemLog {
            file: self.base.join(
                raw.system_log_file
                    .as_deref()
                    .unwrap_or("var/system-log.jsonl"),
            ),
            max_bytes: self.bounded(
                &at("system_log_max_bytes"),
                raw.system_log_max_bytes,
                4096..=1 << 40,
                16 * 1024 * 1024,
            ),
            keep_files: self.bounded(
                &at("system_log_keep_files"),
                raw.system_log_keep_files,
                0..=1000,
                5,
            ),
        }
    }

    fn idp_limits(&mut self, raw: &RawIdp) -> Limits {
        Limits {
            lockout_failures: self.bounded(
                &at("lockout_failures"),
                raw.lockout_failures,
                1..=100,
                5,
            ),
            lockout_duration: self.duration(
                &at("lockout_duration"),
                raw.lockout_duration.as_deref(),
                Duration::from_secs(15 * 60),
                "15m",
            ),
            sign_in_per_minute: self.bounded(
                &at("sign_in_per_minute"),
                raw.sign_in_per_minute,
                1..=100_000,
                30,
            ),
            api_per_minute: self.bounded(
                &at("api_per_minute"),
                raw.api_per_minute,
                1..=1_000_000,
                600,
            ),
            session_token_ttl: self.duration(
                &at("session_token_ttl"),
                raw.session_token_ttl.as_deref(),
                Duration::from_secs(5 * 60),
                "5m",
            ),
        }
    }

    fn idp_public_url(&mut self, raw: Option<&str>) -> Option<PublicUrl> {
        match raw.map(parse_public_url) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                self.problem(&at("public_url"), e);
                None
            }
            None => {
                self.problem(&[IDP], "public_url is required");
                None
            }
        }
    }

    fn api_tokens(&mut self, raw: Vec<RawApiToken>) -> Vec<ApiTokenConfig> {
        let mut tokens = Vec::new();
        for (i, token) in raw.into_iter().enumerate() {
            let whole = [IDP, Step::Key("api_token"), Step::Index(i)];
            let (Some(name), Some(sha256)) = (token.name, token.sha256) else {
                self.problem(&whole, "name and sha256 are required");
                continue;
            };
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.problem(
                    &[
                        IDP,
                        Step::Key("api_token"),
                        Step::Index(i),
                        Step::Key("sha256"),
                    ],
                    "must be 64 hex digits (the SHA-256 of the token)",
                );
                continue;
            }
            tokens.push(ApiTokenConfig {
                name,
                sha256: sha256.to_ascii_lowercase(),
                scopes: token.scopes,
            });
        }
        tokens
    }

    /// The SAML signing pair and entity id; `None` without a key pair.
    fn idp_saml(
        &mut self,
        public: Option<&PublicUrl>,
        key: Option<&str>,
        cert: Option<&str>,
        entity_id: Option<&str>,
    ) -> Option<IdpSaml> {
        let (key, cert) = match (key, cert) {
            (Some(key), Some(cert)) => (key, cert),
            (None, None) => {
                if entity_id.is_some() {
                    self.problem(
                        &at("entity_id"),
                        "entity_id needs signing_key and signing_cert",
                    );
                }
                return None;
            }
            (Some(_), None) => {
                self.problem(
                    &at("signing_key"),
                    "signing_cert is required with signing_key",
                );
                return None;
            }
            (None, Some(_)) => {
                self.problem(
                    &at("signing_cert"),
                    "signing_key is required with signing_cert",
                );
                return None;
            }
        };
        let signing_key = self.pem(&at("signing_key"), key, PemKind::Key);
        let signing_cert = self.pem(&at("signing_cert"), cert, PemKind::Cert);
        let entity_id = match entity_id {
            Some(e) if e.trim().is_empty() || e.len() > 1024 => {
                self.problem(
                    &at("entity_id"),
                    "must be a non-empty URI of at most 1024 bytes",
                );
                return None;
            }
            Some(e) => e.to_string(),
            None => format!("{}/sso/saml/metadata", public?.url()),
        };
        Some(IdpSaml {
            signing_key,
            signing_cert,
            entity_id,
            name_id_secret_file: None,
            clock_skew: DEFAULT_CLOCK_SKEW,
        })
    }

    /// The NameID secret file: readable, one line of at least 32 bytes. One
    /// only: a second secret could not be "rotated in", since every
    /// persistent NameID an SP holds would change with it.
    fn name_id_secret(&mut self, raw: &str) -> Option<PathBuf> {
        let resolved = self.base.join(raw);
        match crate::model::read_store_keys(&resolved) {
            Ok(keys) if keys.len() == 1 => Some(resolved),
            Ok(_) => {
                self.problem(
                    &at("name_id_secret_file"),
                    format!(
                        "{} holds more than one line: NameIDs are keyed by exactly one secret",
                        resolved.display()
                    ),
                );
                None
            }
            Err(e) => {
                self.problem(&at("name_id_secret_file"), e.to_string());
                None
            }
        }
    }

    /// The IdP is routed like an app, so it must not take an app's route.
    pub(super) fn idp_apart_from_apps(&mut self, idp: &Idp, apps: &[(usize, App)]) {
        for (i, app) in apps {
            if app.public == idp.public {
                self.problem(
                    &at("public_url"),
                    format!(
                        "overlaps app `{}` (app[{i}]): the same host, port and path prefix",
                        app.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::SpNameIdFormat;
    use crate::validate::fixtures::{app, idp_config as config, parse, problems, IDP_KEYS, SAML};

    #[test]
    fn saml_is_optional_and_defaults_are_filled_in() {
        let plain = parse(&config("")).expect("valid");
        let idp = plain.idp.expect("idp");
        assert!(idp.saml.is_none());
        assert!(idp.service_providers.is_empty());

        let text = config(&format!(
            "{IDP_KEYS}\n[[idp.service_provider]]\nname = \"portal\"\nentity_id = \"https://sp.test/md\"\nacs_url = \"https://sp.test/acs\"\n"
        ));
        let idp = parse(&text).expect("valid").idp.expect("idp");
        let saml = idp.saml.expect("saml");
        assert_eq!(saml.entity_id, "https://idp.test/sso/saml/metadata");
        assert_eq!(saml.clock_skew, std::time::Duration::from_secs(60));
        let sp = &idp.service_providers[0];
        assert_eq!(sp.name_id_format, SpNameIdFormat::EmailAddress);
        let names: Vec<&str> = sp.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["email", "firstName", "lastName", "groups"]);
        assert!(sp
            .attributes
            .iter()
            .all(|a| a.name == a.source
                && a.name_format == crate::model::SpAttributeNameFormat::Basic));
        assert!(!sp.sign_response);
        assert!(sp.signing_certs_der.is_empty() && !sp.require_signed_requests);
    }

    #[test]
    fn clock_skew_is_read_and_bounded() {
        let text = config(&format!("{IDP_KEYS}\n[idp.saml]\nclock_skew = \"90s\"\n"));
        let saml = parse(&text)
            .expect("valid")
            .idp
            .expect("idp")
            .saml
            .expect("saml");
        assert_eq!(saml.clock_skew, std::time::Duration::from_secs(90));
        for bad in ["soon", "1h"] {
            let text = config(&format!("{IDP_KEYS}\n[idp.saml]\nclock_skew = \"{bad}\"\n"));
            let problems = problems(&text);
            assert_eq!(problems[0].key, "idp.saml.clock_skew", "{problems:?}");
        }
    }

    #[test]
    fn a_name_id_secret_file_is_one_long_line_and_needs_the_signing_pair() {
        let with = |file: &str| format!("{IDP_KEYS}name_id_secret_file = \"{file}\"\n");
        let saml = parse(&config(&with("tests/fixtures/store-keys.txt")))
            .expect("valid")
            .idp
            .expect("idp")
            .saml
            .expect("saml");
        let file = saml.name_id_secret_file.expect("secret file");
        assert!(file.ends_with("tests/fixtures/store-keys.txt"), "{file:?}");

        let dir = std::env::temp_dir().join(format!("portcullis-name-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let short = dir.join("short");
        std::fs::write(&short, "too short\n").expect("write");
        let two = dir.join("two");
        std::fs::write(
            &two,
            "0123456789abcdef0123456789abcdef\nfedcba9876543210fedcba9876543210\n",
        )
        .expect("write");
        for bad in [short, two, dir.join("missing")] {
            let problems = problems(&config(&with(&bad.display().to_string())));
            assert_eq!(problems[0].key, "idp.name_id_secret_file", "{problems:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
        let without_keys = config("name_id_secret_file = \"tests/fixtures/store-keys.txt\"\n");
        let problems = problems(&without_keys);
        assert_eq!(problems[0].key, "idp.name_id_secret_file", "{problems:?}");
    }

    #[test]
    fn half_a_key_pair_or_sps_without_keys_are_refused() {
        let half = config("signing_key = \"certs-dev/idp-signing-key.pem\"\n");
        let problems_of_half = problems(&half);
        assert_eq!(
            problems_of_half[0].key, "idp.signing_key",
            "{problems_of_half:?}"
        );

        let no_keys = config(
            "[[idp.service_provider]]\nname = \"a\"\nentity_id = \"e\"\nacs_url = \"https://sp.test/acs\"\n",
        );
        let problems = problems(&no_keys);
        assert_eq!(problems[0].key, "idp.service_provider", "{problems:?}");
    }

    #[test]
    fn a_refused_idp_section_still_reports_every_key() {
        let text = config(&format!(
            "{IDP_KEYS}entity_id = \"\"\nlockout_failures = 0\nlockout_duration = \"0s\"\nsession_token_ttl = \"soon\"\n[[idp.service_provider]]\nname = \"s\"\nentity_id = \"e\"\nacs_url = \"https://s.test/acs\"\n"
        ))
        .replace("https://idp.test/", "http://idp.test/");
        let problems = problems(&text);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "idp.public_url",
                "idp.lockout_failures",
                "idp.lockout_duration",
                "idp.session_token_ttl",
                "idp.entity_id",
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn an_app_on_the_idp_route_is_named_by_its_place_in_the_file() {
        let text = format!(
            "{}{}{}",
            config(IDP_KEYS),
            app("bad name", "https://x.test/", ""),
            app("emb", "https://idp.test/", SAML)
        );
        let problems = problems(&text);
        let overlap = problems
            .iter()
            .find(|p| p.key == "idp.public_url")
            .expect("overlap");
        assert!(
            overlap.message.contains("overlaps app `emb` (app[1])"),
            "{problems:?}"
        );
    }
}
