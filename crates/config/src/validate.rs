//! Raw → model. Collects every problem instead of stopping at the first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::locate::{Locator, Step};
use crate::metadata::{MetadataError, MetadataReader};
use crate::model::*;
use crate::problem::Problem;
use crate::raw::{
    RawAccess, RawAdmin, RawApp, RawAppIdp, RawIdp, RawLog, RawServer, RawServiceProvider,
    RawUpstream,
};

const DEFAULT_HEADER_READ: Duration = Duration::from_secs(10);
const DEFAULT_IDLE: Duration = Duration::from_secs(75);
const DEFAULT_UPSTREAM_CONNECT: Duration = Duration::from_secs(3);
const DEFAULT_UPSTREAM_RESPONSE: Duration = Duration::from_secs(60);
const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(30);
/// Well under the 8 KiB many backends accept per header block once the
/// gateway has added its own headers.
const DEFAULT_MAX_HEADER_BYTES: u64 = 16 * 1024;
/// hyper cannot buffer less than this for an HTTP/1 head.
const MIN_MAX_HEADER_BYTES: u64 = 8 * 1024;
const MAX_MAX_HEADER_BYTES: u64 = 1024 * 1024;
/// A timeout longer than a day is a typo, not a policy.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
const DEFAULT_SESSION_MAX: Duration = Duration::from_secs(8 * 3600);

pub struct Validator<'a, 'i> {
    locator: &'a Locator<'i>,
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

    pub fn finish(
        mut self,
        server: RawServer,
        admin: Option<RawAdmin>,
        log: RawLog,
        idp: Option<RawIdp>,
        apps: Vec<Option<RawApp>>,
        earlier: Vec<Problem>,
    ) -> Result<Config, Vec<Problem>> {
        self.problems = earlier;
        let server = self.server(server);
        let admin = admin.and_then(|a| self.admin(a));
        let log = self.log(log);
        let mut idp = idp.and_then(|i| self.idp(i));
        let apps = self.apps(apps);
        if let Some(apps) = &apps {
            self.register_gateway_sps(idp.as_mut(), apps);
        }
        if let (Some(idp), Some(apps)) = (&idp, &apps) {
            for (i, app) in apps.iter().enumerate() {
                if app.public == idp.public {
                    self.problem(
                        &[Step::Key("idp"), Step::Key("public_url")],
                        format!(
                            "overlaps app `{}` (app[{i}]): the same host, port and path prefix",
                            app.name
                        ),
                    );
                }
            }
        }
        if !self.problems.is_empty() {
            return Err(self.problems);
        }
        match (server, apps) {
            (Some(server), Some(apps)) => Ok(Config {
                source: self.source.to_path_buf(),
                server,
                admin,
                log,
                idp,
                apps,
            }),
            _ => Err(vec![Problem {
                key: String::new(),
                line: None,
                message: "configuration is incomplete".into(),
            }]),
        }
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

    fn duration(&mut self, key: &'static str, raw: Option<&str>, default: Duration) -> Duration {
        let Some(raw) = raw else { return default };
        let path = [Step::Key("server"), Step::Key(key)];
        match humantime::parse_duration(raw) {
            Ok(d) if d.is_zero() => {
                self.problem(&path, "must be longer than zero");
                default
            }
            Ok(d) if d > MAX_TIMEOUT => {
                self.problem(&path, "must be at most 24h");
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    &path,
                    format!("`{raw}` is not a duration such as 10s or 2m: {e}"),
                );
                default
            }
        }
    }

    fn file(&mut self, path: &[Step<'_>], raw: &str) -> PathBuf {
        let resolved = self.base.join(raw);
        if let Err(e) = std::fs::metadata(&resolved) {
            self.problem(path, format!("cannot read {}: {e}", resolved.display()));
        }
        resolved
    }

    fn server(&mut self, raw: RawServer) -> Option<Server> {
        let s = Step::Key("server");
        let mut https = Vec::new();
        for (i, a) in raw.https.iter().enumerate() {
            if let Some(addr) = self.addr(&[s, Step::Key("https"), Step::Index(i)], a) {
                https.push(addr);
            }
        }
        let mut http = Vec::new();
        for (i, a) in raw.http.iter().enumerate() {
            if let Some(addr) = self.addr(&[s, Step::Key("http"), Step::Index(i)], a) {
                http.push(addr);
            }
        }
        if raw.https.is_empty() {
            self.problem(
                &[s, Step::Key("https")],
                "at least one TLS listener is required",
            );
        }
        let mut seen = HashMap::new();
        // Port 0 asks the OS for a fresh port each time, so it never clashes.
        for addr in https.iter().chain(http.iter()).filter(|a| a.port() != 0) {
            if seen.insert(*addr, ()).is_some() {
                self.problem(&[s], format!("listener {addr} is configured twice"));
            }
        }
        let tls = match (&raw.tls_cert, &raw.tls_key) {
            (Some(cert), Some(key)) => {
                let cert = self.pem(&[s, Step::Key("tls_cert")], cert, PemKind::Cert);
                let key = self.pem(&[s, Step::Key("tls_key")], key, PemKind::Key);
                Some(TlsFiles { cert, key })
            }
            _ => {
                self.problem(
                    &[s],
                    "tls_cert and tls_key are required (make them with `portcullis dev-certs DIR`)",
                );
                None
            }
        };
        let timeouts = Timeouts {
            header_read: self.duration(
                "header_read_timeout",
                raw.header_read_timeout.as_deref(),
                DEFAULT_HEADER_READ,
            ),
            idle: self.duration("idle_timeout", raw.idle_timeout.as_deref(), DEFAULT_IDLE),
            upstream_connect: self.duration(
                "upstream_connect_timeout",
                raw.upstream_connect_timeout.as_deref(),
                DEFAULT_UPSTREAM_CONNECT,
            ),
            upstream_response: self.duration(
                "upstream_response_timeout",
                raw.upstream_response_timeout.as_deref(),
                DEFAULT_UPSTREAM_RESPONSE,
            ),
            shutdown: self.duration(
                "shutdown_timeout",
                raw.shutdown_timeout.as_deref(),
                DEFAULT_SHUTDOWN,
            ),
        };
        if timeouts.upstream_connect > timeouts.upstream_response {
            self.problem(
                &[s, Step::Key("upstream_connect_timeout")],
                "must not exceed upstream_response_timeout (the response wait includes the connect)",
            );
        }
        if timeouts.header_read > timeouts.idle {
            self.problem(
                &[s, Step::Key("header_read_timeout")],
                "must not exceed idle_timeout (an idle connection would outlive its own header deadline)",
            );
        }
        let max_header_bytes = raw.max_header_bytes.unwrap_or(DEFAULT_MAX_HEADER_BYTES);
        if !(MIN_MAX_HEADER_BYTES..=MAX_MAX_HEADER_BYTES).contains(&max_header_bytes) {
            self.problem(
                &[s, Step::Key("max_header_bytes")],
                format!("must be between {MIN_MAX_HEADER_BYTES} and {MAX_MAX_HEADER_BYTES}"),
            );
        }
        let workers = match raw.workers {
            None => std::thread::available_parallelism().map_or(1, usize::from),
            Some(n @ 1..=256) => usize::try_from(n).unwrap_or(1),
            Some(_) => {
                self.problem(&[s, Step::Key("workers")], "must be between 1 and 256");
                1
            }
        };
        let acs_per_minute = match raw.acs_per_minute {
            None => DEFAULT_ACS_PER_MINUTE,
            Some(n @ 1..=1_000_000) => u32::try_from(n).unwrap_or(DEFAULT_ACS_PER_MINUTE),
            Some(_) => {
                self.problem(
                    &[s, Step::Key("acs_per_minute")],
                    "must be between 1 and 1000000",
                );
                DEFAULT_ACS_PER_MINUTE
            }
        };
        let https_redirect_port = raw
            .https_redirect_port
            .or_else(|| https.first().map(|a| a.port()))
            .unwrap_or(443);
        Some(Server {
            https,
            http,
            https_redirect_port,
            tls: tls?,
            timeouts,
            max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
            workers,
            acs_per_minute,
        })
    }

    fn pem(&mut self, path: &[Step<'_>], raw: &str, kind: PemKind) -> PathBuf {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let resolved = self.base.join(raw);
        let ok = match kind {
            PemKind::Cert => CertificateDer::pem_file_iter(&resolved)
                .map(|mut it| matches!(it.next(), Some(Ok(_))))
                .map_err(|e| e.to_string()),
            PemKind::Key => PrivateKeyDer::from_pem_file(&resolved)
                .map(|_| true)
                .map_err(|e| e.to_string()),
        };
        match ok {
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

    /// A peer's SAML metadata file, read and checked now so that `check`
    /// reports a bad file with its key instead of the first sign-in failing.
    fn peer_metadata<T>(
        &mut self,
        path: &[Step<'_>],
        raw: &str,
        read: impl FnOnce(&dyn MetadataReader, &str) -> Result<T, MetadataError>,
    ) -> Option<T> {
        let resolved = self.base.join(raw);
        let xml = match std::fs::read_to_string(&resolved) {
            Ok(xml) => xml,
            Err(e) => {
                self.problem(path, format!("cannot read {}: {e}", resolved.display()));
                return None;
            }
        };
        match read(self.metadata, &xml) {
            Ok(meta) => Some(meta),
            Err(e) => {
                self.problem(path, format!("{}: {e}", resolved.display()));
                None
            }
        }
    }

    fn idp_duration(
        &mut self,
        key: &'static str,
        raw: Option<&str>,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        let path = [Step::Key("idp"), Step::Key(key)];
        match humantime::parse_duration(raw) {
            Ok(d) if d.is_zero() || d > MAX_TIMEOUT => {
                self.problem(&path, "must be longer than zero and at most 24h");
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(&path, format!("`{raw}` is not a duration such as 5m: {e}"));
                default
            }
        }
    }

    fn bounded(
        &mut self,
        key: &'static str,
        raw: Option<u64>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        match raw {
            None => default,
            Some(v) if range.contains(&v) => v,
            Some(_) => {
                self.problem(
                    &[Step::Key("idp"), Step::Key(key)],
                    format!("must be between {} and {}", range.start(), range.end()),
                );
                default
            }
        }
    }

    fn idp(&mut self, raw: RawIdp) -> Option<Idp> {
        let at = |key: &'static str| [Step::Key("idp"), Step::Key(key)];
        let public = match raw.public_url.as_deref().map(parse_public_url) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                self.problem(&at("public_url"), e);
                None
            }
            None => {
                self.problem(&[Step::Key("idp")], "public_url is required");
                None
            }
        };
        let users_file = match raw.users_file.as_deref() {
            Some(f) => Some(self.file(&at("users_file"), f)),
            None => {
                self.problem(&[Step::Key("idp")], "users_file is required");
                None
            }
        };
        let policy_file = raw
            .policy_file
            .as_deref()
            .map(|f| self.file(&at("policy_file"), f));
        let system_log_file = self.base.join(
            raw.system_log_file
                .as_deref()
                .unwrap_or("var/system-log.jsonl"),
        );
        let mut api_tokens = Vec::new();
        for (i, token) in raw.api_token.into_iter().enumerate() {
            let path = |key: &'static str| {
                [
                    Step::Key("idp"),
                    Step::Key("api_token"),
                    Step::Index(i),
                    Step::Key(key),
                ]
            };
            let (Some(name), Some(sha256)) = (token.name, token.sha256) else {
                self.problem(
                    &[Step::Key("idp"), Step::Key("api_token"), Step::Index(i)],
                    "name and sha256 are required",
                );
                continue;
            };
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.problem(
                    &path("sha256"),
                    "must be 64 hex digits (the SHA-256 of the token)",
                );
                continue;
            }
            api_tokens.push(ApiTokenConfig {
                name,
                sha256: sha256.to_ascii_lowercase(),
                scopes: token.scopes,
            });
        }
        let lockout_failures = self.bounded("lockout_failures", raw.lockout_failures, 5, 1..=100);
        let system_log_max_bytes = self.bounded(
            "system_log_max_bytes",
            raw.system_log_max_bytes,
            16 * 1024 * 1024,
            4096..=1 << 40,
        );
        let system_log_keep_files = self.bounded(
            "system_log_keep_files",
            raw.system_log_keep_files,
            5,
            0..=1000,
        );
        let sign_in_per_minute = self.bounded(
            "sign_in_per_minute",
            raw.sign_in_per_minute,
            30,
            1..=100_000,
        );
        let api_per_minute = self.bounded("api_per_minute", raw.api_per_minute, 600, 1..=1_000_000);
        let saml = self.idp_saml(
            public.as_ref(),
            raw.signing_key.as_deref(),
            raw.signing_cert.as_deref(),
            raw.entity_id.as_deref(),
        );
        let service_providers = self.service_providers(raw.service_provider);
        if saml.is_none() && !service_providers.is_empty() {
            self.problem(
                &[Step::Key("idp"), Step::Key("service_provider")],
                "service providers need the IdP's signing_key and signing_cert",
            );
        }
        Some(Idp {
            public: public?,
            users_file: users_file?,
            policy_file,
            system_log_file,
            system_log_max_bytes,
            system_log_keep_files: usize::try_from(system_log_keep_files).unwrap_or(5),
            lockout_failures: u32::try_from(lockout_failures).unwrap_or(5),
            lockout_duration: self.idp_duration(
                "lockout_duration",
                raw.lockout_duration.as_deref(),
                Duration::from_secs(15 * 60),
            ),
            sign_in_per_minute: u32::try_from(sign_in_per_minute).unwrap_or(30),
            api_per_minute: u32::try_from(api_per_minute).unwrap_or(600),
            session_token_ttl: self.idp_duration(
                "session_token_ttl",
                raw.session_token_ttl.as_deref(),
                Duration::from_secs(5 * 60),
            ),
            redirect_allow: raw.redirect_allow,
            api_tokens,
            saml,
            service_providers,
        })
    }

    fn idp_saml(
        &mut self,
        public: Option<&PublicUrl>,
        key: Option<&str>,
        cert: Option<&str>,
        entity_id: Option<&str>,
    ) -> Option<IdpSaml> {
        let at = |key: &'static str| [Step::Key("idp"), Step::Key(key)];
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
            None => {
                format!("{}/sso/saml/metadata", public?.url())
            }
        };
        Some(IdpSaml {
            signing_key,
            signing_cert,
            entity_id,
        })
    }

    fn service_providers(&mut self, raw: Vec<RawServiceProvider>) -> Vec<ServiceProviderConfig> {
        let mut out: Vec<ServiceProviderConfig> = Vec::new();
        for (i, sp) in raw.into_iter().enumerate() {
            let whole = [
                Step::Key("idp"),
                Step::Key("service_provider"),
                Step::Index(i),
            ];
            let path = |key: &'static str| {
                [
                    Step::Key("idp"),
                    Step::Key("service_provider"),
                    Step::Index(i),
                    Step::Key(key),
                ]
            };
            let from_metadata = match sp.metadata_file.as_deref() {
                None => None,
                Some(file) => {
                    for (key, set) in [
                        ("entity_id", sp.entity_id.is_some()),
                        ("acs_url", sp.acs_url.is_some()),
                        ("signing_cert", sp.signing_cert.is_some()),
                    ] {
                        if set {
                            self.problem(
                                &path(key),
                                format!("{key} comes from metadata_file; set one or the other"),
                            );
                        }
                    }
                    match self.peer_metadata(&path("metadata_file"), file, |r, xml| r.sp(xml)) {
                        Some(meta) => Some(meta),
                        None => continue,
                    }
                }
            };
            let (entity_id, acs_url) = match &from_metadata {
                Some(meta) => (Some(meta.entity_id.clone()), Some(meta.acs_url.clone())),
                None => (sp.entity_id.clone(), sp.acs_url.clone()),
            };
            let (Some(name), Some(entity_id), Some(acs_url)) = (sp.name, entity_id, acs_url) else {
                self.problem(
                    &whole,
                    "name and either metadata_file or entity_id and acs_url are required",
                );
                continue;
            };
            let mut ok = true;
            if !valid_name(&name) {
                self.problem(
                    &path("name"),
                    "must be 1-64 characters of letters, digits, '-' and '_'",
                );
                ok = false;
            } else if out.iter().any(|o| o.name == name) {
                self.problem(
                    &path("name"),
                    format!("duplicate service provider name `{name}`"),
                );
                ok = false;
            }
            if entity_id.trim().is_empty() || entity_id.len() > 1024 {
                self.problem(
                    &path("entity_id"),
                    "must be a non-empty URI of at most 1024 bytes",
                );
                ok = false;
            } else if out.iter().any(|o| o.entity_id == entity_id) {
                self.problem(
                    &path("entity_id"),
                    format!("duplicate service provider entity_id `{entity_id}`"),
                );
                ok = false;
            }
            match split_url(&acs_url) {
                Ok((scheme, _, _)) if scheme == "https" || scheme == "http" => {}
                Ok(_) => {
                    self.problem(&path("acs_url"), "must be an http or https URL");
                    ok = false;
                }
                Err(e) => {
                    self.problem(&path("acs_url"), e);
                    ok = false;
                }
            }
            let name_id_format = match sp.name_id_format.as_deref() {
                None | Some("emailAddress") => SpNameIdFormat::EmailAddress,
                Some("persistent") => SpNameIdFormat::Persistent,
                Some("unspecified") => SpNameIdFormat::Unspecified,
                Some(other) => {
                    self.problem(
                        &path("name_id_format"),
                        format!("`{other}` is not one of emailAddress, persistent, unspecified"),
                    );
                    ok = false;
                    SpNameIdFormat::EmailAddress
                }
            };
            let (signing_certs_der, require_signed_requests, slo_url) = match from_metadata {
                Some(meta) => (
                    meta.signing_certs_der,
                    meta.authn_requests_signed,
                    meta.slo_url,
                ),
                None => match sp.signing_cert.as_deref() {
                    Some(c) => match self.cert_der(&path("signing_cert"), c) {
                        Some(der) => (vec![der], true, None),
                        None => {
                            ok = false;
                            (Vec::new(), true, None)
                        }
                    },
                    None => (Vec::new(), false, None),
                },
            };
            let attributes = sp.attributes.unwrap_or_else(|| {
                ["email", "firstName", "lastName", "groups"]
                    .map(String::from)
                    .to_vec()
            });
            for attribute in &attributes {
                let custom = attribute
                    .strip_prefix("profile.")
                    .is_some_and(|name| !name.is_empty());
                if !custom && !SP_ATTRIBUTES.contains(&attribute.as_str()) {
                    self.problem(
                        &path("attributes"),
                        format!(
                            "`{attribute}` is not one of {} or profile.<name>",
                            SP_ATTRIBUTES.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
            if ok {
                out.push(ServiceProviderConfig {
                    name,
                    entity_id,
                    acs_url,
                    name_id_format,
                    signing_certs_der,
                    require_signed_requests,
                    slo_url,
                    attributes,
                    sign_response: sp.sign_response.unwrap_or(false),
                });
            }
        }
        out
    }

    /// Every `auth = "saml"` app with `idp = "embedded"` needs the IdP's
    /// SAML keys and becomes one of its service providers, so operators do
    /// not write `[[idp.service_provider]]` for gateway apps.
    fn register_gateway_sps(&mut self, mut idp: Option<&mut Idp>, apps: &[App]) {
        for (i, app) in apps.iter().enumerate() {
            let Some(auth) = &app.auth else { continue };
            if auth.idp != AppIdp::Embedded {
                continue;
            }
            let at = [Step::Key("app"), Step::Index(i), Step::Key("idp")];
            let Some(idp) = idp.as_deref_mut() else {
                self.problem(&at, "idp = \"embedded\" needs an [idp] section");
                continue;
            };
            if idp.saml.is_none() {
                self.problem(
                    &at,
                    "idp = \"embedded\" needs [idp] signing_key and signing_cert",
                );
                continue;
            }
            if let Some(sp) = idp
                .service_providers
                .iter()
                .find(|sp| sp.name == app.name || sp.entity_id == auth.entity_id)
            {
                self.problem(
                    &at,
                    format!(
                        "[[idp.service_provider]] `{}` already uses this app's name or entity id; \
                         gateway apps are registered with the IdP automatically",
                        sp.name
                    ),
                );
                continue;
            }
            idp.service_providers.push(ServiceProviderConfig {
                name: app.name.clone(),
                entity_id: auth.entity_id.clone(),
                acs_url: auth.acs_url.clone(),
                name_id_format: SpNameIdFormat::EmailAddress,
                // An unreadable certificate was already reported by `pem`.
                signing_certs_der: std::fs::read(&auth.sp_signing_cert)
                    .ok()
                    .and_then(|pem| certificate_der(&pem).ok())
                    .into_iter()
                    .collect(),
                require_signed_requests: true,
                slo_url: Some(auth.slo_url.clone()),
                attributes: ["email", "firstName", "lastName", "groups"]
                    .map(String::from)
                    .to_vec(),
                sign_response: false,
            });
        }
    }

    fn app_duration(
        &mut self,
        path: &[Step<'_>],
        raw: Option<&str>,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        match humantime::parse_duration(raw) {
            Ok(d) if d.is_zero() || d > MAX_TIMEOUT => {
                self.problem(path, "must be longer than zero and at most 24h");
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(path, format!("`{raw}` is not a duration such as 30m: {e}"));
                default
            }
        }
    }

    /// `auth` and the keys that only make sense with it.
    fn app_auth(
        &mut self,
        i: usize,
        name: Option<&str>,
        public: Option<&PublicUrl>,
        app: &RawApp,
        access: Vec<RawAccess>,
        cookies: &mut HashMap<String, usize>,
    ) -> Option<AppAuth> {
        let at = |key: &'static str| [Step::Key("app"), Step::Index(i), Step::Key(key)];
        match app.auth.as_deref() {
            None => {
                let saml_only = [
                    ("idp", app.idp.is_some()),
                    ("allow_idp_initiated", app.allow_idp_initiated.is_some()),
                    (
                        "universal_logout_issuer",
                        app.universal_logout_issuer.is_some(),
                    ),
                    (
                        "universal_logout_jwks_file",
                        app.universal_logout_jwks_file.is_some(),
                    ),
                    ("sp_signing_key", app.sp_signing_key.is_some()),
                    ("sp_signing_cert", app.sp_signing_cert.is_some()),
                    ("session_cookie", app.session_cookie.is_some()),
                    ("session_idle", app.session_idle.is_some()),
                    ("session_max", app.session_max.is_some()),
                    ("access", !access.is_empty()),
                ];
                for (key, set) in saml_only {
                    if set {
                        self.problem(&at(key), format!("{key} needs auth = \"saml\""));
                    }
                }
                return None;
            }
            Some("saml") => {}
            Some(other) => {
                self.problem(
                    &at("auth"),
                    format!("`{other}` is not an auth mode (expected \"saml\")"),
                );
                return None;
            }
        }
        let idp = match &app.idp {
            Some(RawAppIdp::Named(name)) if name == "embedded" => Some(AppIdp::Embedded),
            Some(RawAppIdp::Named(other)) => {
                self.problem(
                    &at("idp"),
                    format!(
                        "`{other}` is not an IdP: use \"embedded\" or {{ metadata_file = \"…\" }}"
                    ),
                );
                None
            }
            Some(RawAppIdp::External(external)) => {
                let path = [
                    Step::Key("app"),
                    Step::Index(i),
                    Step::Key("idp"),
                    Step::Key("metadata_file"),
                ];
                match external.metadata_file.as_deref() {
                    None => {
                        self.problem(&at("idp"), "an external IdP needs metadata_file");
                        None
                    }
                    Some(file) => {
                        self.peer_metadata(&path, file, |r, xml| r.idp(xml))
                            .map(|metadata| {
                                AppIdp::External(Box::new(ExternalIdp {
                                    metadata_file: self.base.join(file),
                                    metadata,
                                }))
                            })
                    }
                }
            }
            None => {
                self.problem(
                    &at("auth"),
                    "auth = \"saml\" needs idp = \"embedded\" or idp = { metadata_file = \"…\" }",
                );
                None
            }
        };
        let key = match app.sp_signing_key.as_deref() {
            Some(k) => Some(self.pem(&at("sp_signing_key"), k, PemKind::Key)),
            None => {
                self.problem(&at("auth"), "auth = \"saml\" needs sp_signing_key");
                None
            }
        };
        let cert = match app.sp_signing_cert.as_deref() {
            Some(c) => Some(self.pem(&at("sp_signing_cert"), c, PemKind::Cert)),
            None => {
                self.problem(&at("auth"), "auth = \"saml\" needs sp_signing_cert");
                None
            }
        };
        let session_cookie = match (&app.session_cookie, name) {
            (Some(c), _) => c.clone(),
            (None, Some(n)) => format!("pc_{n}"),
            (None, None) => String::new(),
        };
        let request_cookie = format!("{session_cookie}_rs");
        let mut cookie_ok = !session_cookie.is_empty();
        if cookie_ok && !valid_name(&session_cookie) {
            self.problem(
                &at("session_cookie"),
                "must be 1-64 characters of letters, digits, '-' and '_'",
            );
            cookie_ok = false;
        }
        if cookie_ok
            && (session_cookie.starts_with("pc_idp_") || session_cookie == IDP_SESSION_COOKIE)
        {
            self.problem(
                &at("session_cookie"),
                format!(
                    "`{session_cookie}`: names starting with pc_idp_ belong to the embedded IdP"
                ),
            );
            cookie_ok = false;
        }
        if cookie_ok {
            for cookie in [&session_cookie, &request_cookie] {
                if let Some(first) = cookies.insert(cookie.clone(), i) {
                    self.problem(
                        &at("session_cookie"),
                        format!(
                            "cookie `{cookie}` is also used by app[{first}]; cookie names must be \
                             unique (browsers share cookies across the ports of one host)"
                        ),
                    );
                    cookie_ok = false;
                }
            }
        }
        let session_idle = self.app_duration(
            &at("session_idle"),
            app.session_idle.as_deref(),
            DEFAULT_SESSION_IDLE,
        );
        let session_max = self.app_duration(
            &at("session_max"),
            app.session_max.as_deref(),
            DEFAULT_SESSION_MAX,
        );
        let universal_logout = match (
            app.universal_logout_issuer.as_deref(),
            app.universal_logout_jwks_file.as_deref(),
            &idp,
        ) {
            (None, None, _) => None,
            (Some(issuer), Some(file), Some(AppIdp::External(_))) => {
                let resolved = self.base.join(file);
                if let Err(e) = std::fs::metadata(&resolved) {
                    self.problem(
                        &at("universal_logout_jwks_file"),
                        format!("cannot read {}: {e}", resolved.display()),
                    );
                }
                Some(UniversalLogoutTrust {
                    issuer: issuer.to_string(),
                    jwks_file: resolved,
                })
            }
            (Some(_), Some(_), _) => {
                self.problem(
                    &at("universal_logout_issuer"),
                    "only for an external IdP: apps on the embedded IdP trust it automatically",
                );
                None
            }
            _ => {
                self.problem(
                    &at("universal_logout_issuer"),
                    "universal_logout_issuer and universal_logout_jwks_file go together",
                );
                None
            }
        };
        let backend_logout_url = match app.backend_logout_url.as_deref() {
            None => None,
            Some(url) => match split_url(url) {
                Ok((scheme, _, _)) if scheme == "https" || scheme == "http" => {
                    Some(url.to_string())
                }
                Ok(_) => {
                    self.problem(&at("backend_logout_url"), "must be an http or https URL");
                    None
                }
                Err(e) => {
                    self.problem(&at("backend_logout_url"), e);
                    None
                }
            },
        };
        let inject = self.inject_rules(i, app);
        let max_identity_bytes = match app.max_identity_bytes {
            None => DEFAULT_MAX_IDENTITY_BYTES,
            Some(n @ 256..=65536) => usize::try_from(n).unwrap_or(DEFAULT_MAX_IDENTITY_BYTES),
            Some(_) => {
                self.problem(&at("max_identity_bytes"), "must be between 256 and 65536");
                DEFAULT_MAX_IDENTITY_BYTES
            }
        };
        let identity_jwt_header = match app.identity_jwt_header.as_deref() {
            Some(h) if !valid_header_name(h) => {
                self.problem(
                    &at("identity_jwt_header"),
                    format!("`{h}` is not a header name"),
                );
                None
            }
            other => other.map(str::to_string),
        };
        let login_landing = match app.login_landing.as_deref() {
            Some(p) if !p.starts_with('/') || p.starts_with("//") => {
                self.problem(
                    &at("login_landing"),
                    "must be a path on the app, starting with /",
                );
                None
            }
            other => other.map(str::to_string),
        };
        let post_logout_url = match app.post_logout_url.as_deref() {
            Some(u)
                if !(u.starts_with("https://") || u.starts_with("http://"))
                    && (!u.starts_with('/') || u.starts_with("//")) =>
            {
                self.problem(
                    &at("post_logout_url"),
                    "must be an http(s) URL or a path starting with /",
                );
                None
            }
            other => other.map(str::to_string),
        };
        let rules = self.access_rules(i, access);
        let public = public?.url();
        let base = format!("{public}/_portcullis/saml");
        if !cookie_ok {
            return None;
        }
        Some(AppAuth {
            idp: idp?,
            sp_signing_key: key?,
            sp_signing_cert: cert?,
            entity_id: format!("{base}/metadata"),
            acs_url: format!("{base}/acs"),
            slo_url: format!("{base}/slo"),
            gtr_url: format!("{public}/_portcullis/global-token-revocation"),
            session_cookie,
            request_cookie,
            session_idle,
            session_max,
            access: rules?,
            allow_idp_initiated: app.allow_idp_initiated.unwrap_or(false),
            universal_logout,
            backend_logout_url,
            inject,
            max_identity_bytes,
            identity_jwt_header,
            login_landing,
            post_logout_url,
        })
    }

    /// `inject_template` defaults, then `[[app.inject]]` in file order.
    fn inject_rules(&mut self, i: usize, app: &RawApp) -> Vec<InjectRule> {
        let mut rules = Vec::new();
        match app.inject_template.as_deref() {
            None => {}
            Some("header-app") => {
                let attr = |source: InjectSource, name: &str| InjectRule {
                    source,
                    target: InjectTarget::Header,
                    name: name.to_string(),
                    multi: MultiValue::Join(",".into()),
                    encoding: ValueEncoding::Raw,
                    send: true,
                };
                rules.push(attr(InjectSource::NameId, "X-Remote-User"));
                rules.push(attr(
                    InjectSource::Attribute("email".into()),
                    "X-Remote-Email",
                ));
                rules.push(attr(
                    InjectSource::Attribute("groups".into()),
                    "X-Remote-Groups",
                ));
            }
            Some(other) => self.problem(
                &[
                    Step::Key("app"),
                    Step::Index(i),
                    Step::Key("inject_template"),
                ],
                format!("`{other}` is not a template (expected \"header-app\")"),
            ),
        }
        for (j, raw) in app.inject.iter().enumerate() {
            let at = |key: &'static str| {
                [
                    Step::Key("app"),
                    Step::Index(i),
                    Step::Key("inject"),
                    Step::Index(j),
                    Step::Key(key),
                ]
            };
            let source = match raw.source.as_deref() {
                Some("nameid") => Some(InjectSource::NameId),
                Some("session:auth_time") => Some(InjectSource::AuthTime),
                Some("session:amr") => Some(InjectSource::Amr),
                Some("session:idp_session") => Some(InjectSource::IdpSession),
                Some(s) if s.starts_with("attribute:") && s.len() > 10 => {
                    Some(InjectSource::Attribute(s[10..].to_string()))
                }
                Some(s) if s.starts_with("static:") => {
                    Some(InjectSource::Static(s[7..].to_string()))
                }
                Some(s) if s.starts_with("env:") && s.len() > 4 => {
                    if std::env::var_os(&s[4..]).is_none() {
                        self.problem(
                            &at("source"),
                            format!("environment variable {} is not set", &s[4..]),
                        );
                    }
                    Some(InjectSource::Env(s[4..].to_string()))
                }
                Some(s) if s.starts_with("file:") && s.len() > 5 => {
                    let path = self.base.join(&s[5..]);
                    if let Err(e) = std::fs::metadata(&path) {
                        self.problem(
                            &at("source"),
                            format!("cannot read {}: {e}", path.display()),
                        );
                    }
                    Some(InjectSource::File(path))
                }
                Some(other) => {
                    self.problem(
                        &at("source"),
                        format!(
                            "`{other}` is not a source: nameid, attribute:<name>, session:auth_time, \
                             session:amr, session:idp_session, static:<value>, env:<VAR>, file:<path>"
                        ),
                    );
                    None
                }
                None => {
                    self.problem(&at("source"), "source is required");
                    None
                }
            };
            let target = match raw.target.as_deref() {
                None | Some("header") => InjectTarget::Header,
                Some("cookie") => InjectTarget::Cookie,
                Some(other) => {
                    self.problem(&at("target"), format!("`{other}` is not header or cookie"));
                    InjectTarget::Header
                }
            };
            let name = match raw.name.as_deref() {
                Some(n) if target == InjectTarget::Header && !valid_header_name(n) => {
                    self.problem(&at("name"), format!("`{n}` is not a header name"));
                    None
                }
                Some(n) if target == InjectTarget::Header && reserved_header(n) => {
                    self.problem(
                        &at("name"),
                        format!("`{n}` is managed by the gateway or by HTTP itself"),
                    );
                    None
                }
                Some(n) if target == InjectTarget::Cookie && !valid_cookie_name(n) => {
                    self.problem(&at("name"), format!("`{n}` is not a cookie name"));
                    None
                }
                Some(n) => Some(n.to_string()),
                None => {
                    self.problem(&at("name"), "name is required");
                    None
                }
            };
            let multi = match (raw.multi.as_deref(), raw.separator.as_deref()) {
                (None | Some("join"), separator) => {
                    MultiValue::Join(separator.unwrap_or(",").to_string())
                }
                (Some("first"), None) => MultiValue::First,
                (Some("last"), None) => MultiValue::Last,
                (Some("first" | "last"), Some(_)) => {
                    self.problem(&at("separator"), "separator needs multi = \"join\"");
                    MultiValue::First
                }
                (Some(other), _) => {
                    self.problem(
                        &at("multi"),
                        format!("`{other}` is not join, first or last"),
                    );
                    MultiValue::First
                }
            };
            let encoding = match raw.encoding.as_deref() {
                None | Some("raw") => ValueEncoding::Raw,
                Some("url") => ValueEncoding::Url,
                Some("base64") => ValueEncoding::Base64,
                Some(other) => {
                    self.problem(
                        &at("encoding"),
                        format!("`{other}` is not raw, url or base64"),
                    );
                    ValueEncoding::Raw
                }
            };
            if let (Some(source), Some(name)) = (source, name) {
                if rules
                    .iter()
                    .any(|r: &InjectRule| r.target == target && r.name.eq_ignore_ascii_case(&name))
                {
                    self.problem(&at("name"), format!("`{name}` is injected twice"));
                    continue;
                }
                rules.push(InjectRule {
                    source,
                    target,
                    name,
                    multi,
                    encoding,
                    send: raw.send.unwrap_or(true),
                });
            }
        }
        rules
    }

    fn access_rules(&mut self, i: usize, raw: Vec<RawAccess>) -> Option<Vec<AccessRule>> {
        let mut rules: Vec<AccessRule> = Vec::new();
        let mut ok = true;
        for (j, rule) in raw.into_iter().enumerate() {
            let at = |key: &'static str| {
                [
                    Step::Key("app"),
                    Step::Index(i),
                    Step::Key("access"),
                    Step::Index(j),
                    Step::Key(key),
                ]
            };
            let whole = [
                Step::Key("app"),
                Step::Index(i),
                Step::Key("access"),
                Step::Index(j),
            ];
            let path = match rule.path.as_deref() {
                Some(p) if !p.starts_with('/') => {
                    self.problem(&at("path"), format!("`{p}` must start with /"));
                    None
                }
                Some(p) => match normalise_prefix(p) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        self.problem(&at("path"), e);
                        None
                    }
                },
                None => {
                    self.problem(&whole, "path is required");
                    None
                }
            };
            if let Some(p) = &path {
                if rules.iter().any(|r| &r.path == p) {
                    self.problem(&at("path"), format!("another rule already covers `{p}`"));
                    ok = false;
                }
            }
            if rule.groups.is_some() && rule.policy.as_deref() != Some("groups") {
                self.problem(&at("groups"), "groups needs policy = \"groups\"");
                ok = false;
            }
            let policy = match rule.policy.as_deref() {
                Some("public") => Some(AccessPolicy::Public),
                Some("protected") => Some(AccessPolicy::Protected),
                Some("deny") => Some(AccessPolicy::Deny),
                Some("groups") => match rule.groups {
                    Some(groups) if !groups.is_empty() && groups.iter().all(|g| !g.is_empty()) => {
                        Some(AccessPolicy::Groups(groups))
                    }
                    _ => {
                        self.problem(&whole, "policy = \"groups\" needs a non-empty groups list");
                        None
                    }
                },
                Some(other) => {
                    self.problem(
                        &at("policy"),
                        format!("`{other}` is not one of public, protected, groups, deny"),
                    );
                    None
                }
                None => {
                    self.problem(&whole, "policy is required");
                    None
                }
            };
            match (path, policy) {
                (Some(path), Some(policy)) => rules.push(AccessRule { path, policy }),
                _ => ok = false,
            }
        }
        ok.then_some(rules)
    }

    fn admin(&mut self, raw: RawAdmin) -> Option<Admin> {
        let listen = raw.listen.as_deref().unwrap_or("127.0.0.1:9090");
        let listen = self.addr(&[Step::Key("admin"), Step::Key("listen")], listen)?;
        Some(Admin { listen })
    }

    fn log(&mut self, raw: RawLog) -> Logging {
        let format = match raw.format.as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.problem(
                    &[Step::Key("log"), Step::Key("format")],
                    format!("`{other}` is not a log format (expected \"pretty\" or \"json\")"),
                );
                LogFormat::Pretty
            }
        };
        Logging {
            format,
            level: raw.level.unwrap_or_else(|| "info".into()),
            access_log: raw.access_log.unwrap_or(true),
        }
    }

    fn apps(&mut self, raw: Vec<Option<RawApp>>) -> Option<Vec<App>> {
        let mut apps = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut routes: HashMap<(String, u16, String), usize> = HashMap::new();
        let mut cookies: HashMap<String, usize> = HashMap::new();
        for (i, app) in raw.into_iter().enumerate() {
            let Some(mut app) = app else { continue };
            let access = std::mem::take(&mut app.access);
            let at = |key: &'static str| [Step::Key("app"), Step::Index(i), Step::Key(key)];
            let name = match app.name.take() {
                Some(n) if valid_name(&n) => Some(n),
                Some(n) => {
                    self.problem(
                        &at("name"),
                        format!(
                            "`{n}` is not a valid app name (letters, digits, - and _, at most 64)"
                        ),
                    );
                    None
                }
                None => {
                    self.problem(&[Step::Key("app"), Step::Index(i)], "name is required");
                    None
                }
            };
            if let Some(name) = &name {
                if let Some(first) = names.insert(name.clone(), i) {
                    self.problem(
                        &at("name"),
                        format!("app name `{name}` is already used by app[{first}]"),
                    );
                }
            }
            let public = match app.public_url.as_deref().map(parse_public_url) {
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => {
                    self.problem(&at("public_url"), e);
                    None
                }
                None => {
                    self.problem(
                        &[Step::Key("app"), Step::Index(i)],
                        "public_url is required",
                    );
                    None
                }
            };
            if let Some(p) = &public {
                let route = (p.host.clone(), p.port, p.path_prefix.clone());
                if let Some(first) = routes.insert(route, i) {
                    self.problem(
                        &at("public_url"),
                        format!("overlaps app[{first}]: the same host, port and path prefix"),
                    );
                }
            }
            let (first_upstream, more_upstreams): (Option<&str>, Vec<&str>) = match &app.upstream {
                None => (None, Vec::new()),
                Some(RawUpstream::One(one)) => (Some(one.as_str()), Vec::new()),
                Some(RawUpstream::Many(many)) => match many.split_first() {
                    Some((first, rest)) => (
                        Some(first.as_str()),
                        rest.iter().map(String::as_str).collect(),
                    ),
                    None => {
                        self.problem(&at("upstream"), "needs at least one URL");
                        (None, Vec::new())
                    }
                },
            };
            let upstream = match first_upstream {
                Some(raw) => match parse_upstream(raw) {
                    Ok(Upstream::Http(mut target)) => {
                        target.ca = app
                            .upstream_ca
                            .as_deref()
                            .map(|ca| self.file(&at("upstream_ca"), ca));
                        target.sni = app.upstream_sni.clone();
                        if (target.ca.is_some() || target.sni.is_some()) && !target.tls {
                            self.problem(
                                &at("upstream"),
                                "upstream_ca and upstream_sni need an https upstream",
                            );
                        }
                        Some(Upstream::Http(target))
                    }
                    Ok(builtin) => Some(builtin),
                    Err(e) => {
                        self.problem(&at("upstream"), e);
                        None
                    }
                },
                None => {
                    self.problem(&[Step::Key("app"), Step::Index(i)], "upstream is required");
                    None
                }
            };
            let saml = app.auth.is_some();
            let auth = self.app_auth(
                i,
                name.as_deref(),
                public.as_ref(),
                &app,
                access,
                &mut cookies,
            );
            if saml && auth.is_none() {
                continue;
            }
            let mut more_targets = Vec::new();
            for raw in &more_upstreams {
                match (parse_upstream(raw), &upstream) {
                    (Ok(Upstream::Http(mut target)), Some(Upstream::Http(first))) => {
                        if target.base_path != first.base_path {
                            self.problem(
                                &at("upstream"),
                                format!(
                                    "`{raw}`: every target needs the same base path as the first"
                                ),
                            );
                            continue;
                        }
                        target.ca.clone_from(&first.ca);
                        target.sni.clone_from(&first.sni);
                        more_targets.push(target);
                    }
                    (Ok(_), _) => {
                        self.problem(&at("upstream"), "several targets must all be http(s) URLs")
                    }
                    (Err(e), _) => self.problem(&at("upstream"), format!("`{raw}`: {e}")),
                }
            }
            let load_balancing = match app.load_balancing.as_deref() {
                None | Some("round_robin") => LoadBalancing::RoundRobin,
                Some("least_connections") => LoadBalancing::LeastConnections,
                Some(other) => {
                    self.problem(
                        &at("load_balancing"),
                        format!("`{other}` is not round_robin or least_connections"),
                    );
                    LoadBalancing::RoundRobin
                }
            };
            let raw_health = app.health.as_ref();
            let health_at = |key: &'static str| {
                [
                    Step::Key("app"),
                    Step::Index(i),
                    Step::Key("health"),
                    Step::Key(key),
                ]
            };
            let fail_after = match raw_health.and_then(|h| h.fail_after) {
                None => 3,
                Some(n @ 1..=1000) => u32::try_from(n).unwrap_or(3),
                Some(_) => {
                    self.problem(&health_at("fail_after"), "must be between 1 and 1000");
                    3
                }
            };
            let cooldown = self.app_duration(
                &health_at("cooldown"),
                raw_health.and_then(|h| h.cooldown.as_deref()),
                Duration::from_secs(10),
            );
            let check_interval = self.app_duration(
                &health_at("check_interval"),
                raw_health.and_then(|h| h.check_interval.as_deref()),
                Duration::from_secs(5),
            );
            let check_path = match raw_health.and_then(|h| h.check_path.as_deref()) {
                Some(p) if !p.starts_with('/') => {
                    self.problem(&health_at("check_path"), "must start with /");
                    None
                }
                other => other.map(str::to_string),
            };
            if (check_path.is_some() || raw_health.is_some())
                && !matches!(upstream, Some(Upstream::Http(_)))
            {
                self.problem(&at("health"), "health needs http(s) upstream targets");
            }
            let health = Health {
                fail_after,
                cooldown,
                check_path,
                check_interval,
            };
            let rewrite_body = app.rewrite_body.unwrap_or(false);
            if rewrite_body && !matches!(upstream, Some(Upstream::Http(_))) {
                self.problem(
                    &at("rewrite_body"),
                    "rewrite_body needs an http(s) upstream",
                );
            }
            let upstream_host_header = match app.host_header.as_deref() {
                None | Some("public") => false,
                Some("upstream") => true,
                Some(other) => {
                    self.problem(
                        &at("host_header"),
                        format!("`{other}` is not public or upstream"),
                    );
                    false
                }
            };
            let mut error_pages = Vec::new();
            for (code, target) in app.error_pages.iter().flatten() {
                let path = [
                    Step::Key("app"),
                    Step::Index(i),
                    Step::Key("error_pages"),
                    Step::Key(code.as_str()),
                ];
                let Some(status) = code
                    .parse::<u16>()
                    .ok()
                    .filter(|c| [403, 404, 429, 431, 502, 503, 504].contains(c))
                else {
                    self.problem(
                        &path,
                        format!("`{code}` is not one of 403, 404, 429, 431, 502, 503, 504"),
                    );
                    continue;
                };
                let page = if target.starts_with("https://") || target.starts_with("http://") {
                    ErrorPage::Redirect(target.clone())
                } else {
                    ErrorPage::File(self.file(&path, target))
                };
                error_pages.push((status, page));
            }
            if let (Some(name), Some(public), Some(upstream)) = (name, public, upstream) {
                apps.push(App {
                    name,
                    public,
                    upstream,
                    auth,
                    upstream_host_header,
                    error_pages,
                    more_targets,
                    load_balancing,
                    health,
                    rewrite_body,
                });
            }
        }
        Some(apps)
    }
}

#[derive(Clone, Copy)]
enum PemKind {
    Cert,
    Key,
}

impl PemKind {
    fn noun(self) -> &'static str {
        match self {
            PemKind::Cert => "certificate",
            PemKind::Key => "private key",
        }
    }
}

/// The first certificate of a PEM file, as DER; the error completes
/// "<file> …". Other sections (a key bundled in the same file) are skipped,
/// as openssl's reader did. The DER must have the outer shape of an X.509
/// certificate, so a truncated or mangled file is refused now and not at the
/// first signature check that pins it.
fn certificate_der(pem: &[u8]) -> Result<Vec<u8>, String> {
    use rustls_pki_types::pem::{Error, PemObject};
    use rustls_pki_types::CertificateDer;
    let der = CertificateDer::from_pem_slice(pem).map_err(|e| match e {
        Error::NoItemsFound => "holds no PEM certificate".to_string(),
        e => format!("is not a readable PEM file: {e}"),
    })?;
    if !x509_shape(&der) {
        return Err("holds a PEM certificate that is not X.509 DER".into());
    }
    Ok(der.as_ref().to_vec())
}

/// `SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE,
/// signature BIT STRING }` and nothing after it.
fn x509_shape(der: &[u8]) -> bool {
    const SEQUENCE: u8 = 0x30;
    const BIT_STRING: u8 = 0x03;
    let Some((SEQUENCE, certificate, [])) = der_item(der) else {
        return false;
    };
    let Some((SEQUENCE, _tbs, rest)) = der_item(certificate) else {
        return false;
    };
    let Some((SEQUENCE, _algorithm, rest)) = der_item(rest) else {
        return false;
    };
    matches!(der_item(rest), Some((BIT_STRING, _, [])))
}

/// One DER tag-length-value: (tag, contents, what follows it).
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form; four length bytes already allow a 4 GiB certificate.
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// An HTTP field name (RFC 9110 token).
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers an injection must not set: HTTP framing, hop-by-hop, and the
/// ones the gateway itself controls.
fn reserved_header(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
        "x-real-ip",
        "x-request-id",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// A cookie name (RFC 6265 token).
fn valid_cookie_name(name: &str) -> bool {
    valid_header_name(name) && !name.starts_with("pc_")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits `scheme://authority/path` without pulling in a URL crate; the
/// accepted shapes are narrow on purpose.
fn split_url(raw: &str) -> Result<(&str, &str, &str), String> {
    let (scheme, rest) = raw
        .split_once("://")
        .ok_or_else(|| format!("`{raw}` is not an absolute URL"))?;
    if rest.contains(['?', '#']) {
        return Err(format!("`{raw}` must not carry a query or fragment"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("`{raw}` needs a host (and no user info)"));
    }
    Ok((scheme, authority, path))
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{authority}` has an unclosed IPv6 bracket"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{p}` is not a valid port"))?,
        None => default_port,
    };
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
    if !valid_host {
        return Err(format!("`{host}` is not a valid host name"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

fn normalise_prefix(path: &str) -> Result<String, String> {
    if path.contains("//") || path.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(format!(
            "path `{path}` must not contain empty, . or .. segments"
        ));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    })
}

pub(crate) fn parse_public_url(raw: &str) -> Result<PublicUrl, String> {
    let (scheme, authority, path) = split_url(raw)?;
    if scheme != "https" {
        return Err(format!(
            "`{raw}` must use https: session cookies are Secure and never travel over plain HTTP"
        ));
    }
    let (host, port) = split_host_port(authority, 443)?;
    Ok(PublicUrl {
        scheme: scheme.to_string(),
        host,
        port,
        path_prefix: normalise_prefix(path)?,
    })
}

pub(crate) fn parse_upstream(raw: &str) -> Result<Upstream, String> {
    if let Some(name) = raw.strip_prefix("builtin:") {
        return match name {
            "echo" => Ok(Upstream::Builtin(Builtin::Echo)),
            other => Err(format!(
                "`builtin:{other}` is not a built-in upstream (known: builtin:echo)"
            )),
        };
    }
    let (scheme, authority, path) = split_url(raw)?;
    let (tls, default_port) = match scheme {
        "http" => (false, 80),
        "https" => (true, 443),
        other => {
            return Err(format!(
                "upstream scheme `{other}` is not supported (http, https or builtin:)"
            ))
        }
    };
    let (host, port) = split_host_port(authority, default_port)?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let base = normalise_prefix(path)?;
    Ok(Upstream::Http(UpstreamTarget {
        tls,
        authority,
        base_path: if base == "/" { String::new() } else { base },
        ca: None,
        sni: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_is_normalised() {
        let u = parse_public_url("https://App.Example.com:8443/wiki/").expect("valid");
        assert_eq!(u.host, "app.example.com");
        assert_eq!(u.port, 8443);
        assert_eq!(u.path_prefix, "/wiki");
        assert_eq!(u.authority(), "app.example.com:8443");
        assert_eq!(u.base_path(), "/wiki");
        assert_eq!(u.url(), "https://app.example.com:8443/wiki");
        let root = parse_public_url("https://a.test").expect("valid");
        assert_eq!(root.path_prefix, "/");
        assert_eq!(root.authority(), "a.test");
        assert_eq!(root.base_path(), "");
        assert_eq!(root.url(), "https://a.test");
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(parse_public_url("http://a.test/").is_err());
        assert!(parse_public_url("https://a.test:0/").is_err());
        assert!(parse_public_url("https://u@a.test/").is_err());
        assert!(parse_public_url("https://a.test/x/../y").is_err());
        assert!(parse_upstream("ftp://a.test/").is_err());
        assert!(parse_upstream("builtin:nope").is_err());
        assert!(parse_upstream("http://a test/").is_err());
        assert!(parse_upstream("http://a.test:99999/").is_err());
    }

    #[test]
    fn upstream_keeps_base_path() {
        let Ok(Upstream::Http(t)) = parse_upstream("http://10.0.0.5:8080/legacy/") else {
            panic!("expected http upstream")
        };
        assert_eq!(t.authority, "10.0.0.5:8080");
        assert_eq!(t.base_path, "/legacy");
        assert!(!t.tls);
    }
}

#[cfg(test)]
mod saml_tests {
    use std::path::PathBuf;

    use crate::model::SpNameIdFormat;

    fn repo_file() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../gateway.toml"))
    }

    fn config(idp_extra: &str) -> String {
        format!(
            "[server]\nhttps = [\"127.0.0.1:0\"]\ntls_cert = \"certs-dev/localhost.pem\"\ntls_key = \"certs-dev/localhost-key.pem\"\n\n\
[idp]\npublic_url = \"https://idp.test/\"\nusers_file = \"demo/users.toml\"\n{idp_extra}\n"
        )
    }

    const KEYS: &str = "signing_key = \"certs-dev/idp-signing-key.pem\"\nsigning_cert = \"certs-dev/idp-signing.pem\"\n";

    #[test]
    fn saml_is_optional_and_defaults_are_filled_in() {
        let plain = crate::parse(&config(""), &repo_file(), &crate::NoMetadata).expect("valid");
        let idp = plain.idp.expect("idp");
        assert!(idp.saml.is_none());
        assert!(idp.service_providers.is_empty());

        let text = config(&format!(
            "{KEYS}\n[[idp.service_provider]]\nname = \"portal\"\nentity_id = \"https://sp.test/md\"\nacs_url = \"https://sp.test/acs\"\n"
        ));
        let idp = crate::parse(&text, &repo_file(), &crate::NoMetadata)
            .expect("valid")
            .idp
            .expect("idp");
        let saml = idp.saml.expect("saml");
        assert_eq!(saml.entity_id, "https://idp.test/sso/saml/metadata");
        let sp = &idp.service_providers[0];
        assert_eq!(sp.name_id_format, SpNameIdFormat::EmailAddress);
        assert_eq!(sp.attributes, ["email", "firstName", "lastName", "groups"]);
        assert!(!sp.sign_response);
        assert!(sp.signing_certs_der.is_empty() && !sp.require_signed_requests);
    }

    #[test]
    fn bad_service_providers_are_located() {
        let text = config(&format!(
            "{KEYS}\n\
[[idp.service_provider]]\nname = \"a\"\nentity_id = \"https://sp.test/md\"\nacs_url = \"https://sp.test/acs\"\n\n\
[[idp.service_provider]]\nname = \"a\"\nentity_id = \"https://sp.test/md\"\nacs_url = \"not a url\"\nname_id_format = \"x509\"\nsigning_cert = \"missing.pem\"\nattributes = [\"shoeSize\"]\n"
        ));
        let problems = crate::parse(&text, &repo_file(), &crate::NoMetadata)
            .expect_err("invalid")
            .problems;
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "idp.service_provider[1].name",
            "idp.service_provider[1].entity_id",
            "idp.service_provider[1].acs_url",
            "idp.service_provider[1].name_id_format",
            "idp.service_provider[1].signing_cert",
            "idp.service_provider[1].attributes",
        ] {
            assert!(keys.contains(&key), "{key} missing from {problems:?}");
        }
        assert!(problems.iter().all(|p| p.line.is_some()), "{problems:?}");
    }

    #[test]
    fn half_a_key_pair_or_sps_without_keys_are_refused() {
        let half = config("signing_key = \"certs-dev/idp-signing-key.pem\"\n");
        let problems = crate::parse(&half, &repo_file(), &crate::NoMetadata)
            .expect_err("invalid")
            .problems;
        assert_eq!(problems[0].key, "idp.signing_key", "{problems:?}");

        let no_keys = config(
            "[[idp.service_provider]]\nname = \"a\"\nentity_id = \"e\"\nacs_url = \"https://sp.test/acs\"\n",
        );
        let problems = crate::parse(&no_keys, &repo_file(), &crate::NoMetadata)
            .expect_err("invalid")
            .problems;
        assert_eq!(problems[0].key, "idp.service_provider", "{problems:?}");
    }
}

#[cfg(test)]
mod gateway_app_tests {
    use std::path::PathBuf;

    use crate::model::{AccessPolicy, AppIdp};

    fn repo_file() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../gateway.toml"))
    }

    const SERVER: &str = "[server]\nhttps = [\"127.0.0.1:0\"]\ntls_cert = \"certs-dev/localhost.pem\"\ntls_key = \"certs-dev/localhost-key.pem\"\n\n";
    const IDP: &str = "[idp]\npublic_url = \"https://idp.test/\"\nusers_file = \"demo/users.toml\"\nsigning_key = \"certs-dev/idp-signing-key.pem\"\nsigning_cert = \"certs-dev/idp-signing.pem\"\n\n";
    const SAML: &str = "auth = \"saml\"\nidp = \"embedded\"\nsp_signing_key = \"certs-dev/sp-signing-key.pem\"\nsp_signing_cert = \"certs-dev/sp-signing.pem\"\n";

    fn app(name: &str, url: &str, extra: &str) -> String {
        format!("[[app]]\nname = \"{name}\"\npublic_url = \"{url}\"\nupstream = \"builtin:echo\"\n{extra}\n")
    }

    /// Writes `xml` to a fresh file and returns its absolute path.
    fn metadata_file(tag: &str, xml: &str) -> String {
        let path = std::env::temp_dir().join(format!(
            "portcullis-config-{tag}-{}-{:?}.xml",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, xml).expect("write metadata");
        path.to_string_lossy().into_owned()
    }

    /// The binary's reader, rebuilt on the real parser for these tests.
    struct SamlReader;

    impl crate::MetadataReader for SamlReader {
        fn idp(&self, xml: &str) -> Result<crate::IdpMetadata, crate::MetadataError> {
            let m =
                portcullis_saml::parse_idp_metadata(xml).map_err(crate::MetadataError::invalid)?;
            Ok(crate::IdpMetadata {
                entity_id: m.entity_id,
                sso_redirect_url: m.sso_redirect_url,
                slo_url: m.slo_url,
                signing_certs_der: m.signing_certs_der,
            })
        }

        fn sp(&self, xml: &str) -> Result<crate::SpMetadata, crate::MetadataError> {
            let m =
                portcullis_saml::parse_sp_metadata(xml).map_err(crate::MetadataError::invalid)?;
            Ok(crate::SpMetadata {
                entity_id: m.entity_id,
                acs_url: m.acs_url,
                slo_url: m.slo_url,
                signing_certs_der: m.signing_certs_der,
                authn_requests_signed: m.authn_requests_signed,
            })
        }
    }

    fn peer_key() -> portcullis_saml::SigningKey {
        portcullis_saml::SigningKey::generate_self_signed("config test peer", 1).expect("key")
    }

    #[test]
    fn an_app_trusts_an_external_idp_from_its_metadata_without_an_idp_section() {
        let key = peer_key();
        let xml = portcullis_saml::idp_metadata_xml(
            &portcullis_saml::IdpConfig {
                entity_id: "https://corp-idp.test/saml".into(),
                sso_redirect_url: "https://corp-idp.test/sso/redirect".into(),
                sso_post_url: "https://corp-idp.test/sso/post".into(),
                slo_url: "https://corp-idp.test/slo".into(),
            },
            &key,
        )
        .expect("metadata");
        let file = metadata_file("idp", &xml);
        let saml = format!(
            "auth = \"saml\"\nidp = {{ metadata_file = \"{file}\" }}\nallow_idp_initiated = true\nsp_signing_key = \"certs-dev/sp-signing-key.pem\"\nsp_signing_cert = \"certs-dev/sp-signing.pem\"\n"
        );
        let text = format!("{SERVER}{}", app("ext", "https://a.test/", &saml));
        let config = crate::parse(&text, &repo_file(), &SamlReader).expect("valid");
        let auth = config.apps[0].auth.as_ref().expect("saml");
        let AppIdp::External(external) = &auth.idp else {
            panic!("expected an external IdP, got {:?}", auth.idp);
        };
        assert_eq!(external.metadata.entity_id, "https://corp-idp.test/saml");
        assert_eq!(
            external.metadata.sso_redirect_url,
            "https://corp-idp.test/sso/redirect"
        );
        assert_eq!(
            external.metadata.signing_certs_der,
            vec![key.cert_der().expect("der")]
        );
        assert!(auth.allow_idp_initiated);
        assert!(config.idp.is_none());

        // A broken file is reported at its key, with the reason.
        let broken = metadata_file("broken", "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"/>");
        let saml = saml.replace(&file, &broken);
        let text = format!("{SERVER}{}", app("ext", "https://a.test/", &saml));
        let problems = crate::parse(&text, &repo_file(), &SamlReader)
            .expect_err("invalid")
            .problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "app[0].idp.metadata_file");
        assert!(
            problems[0].message.contains("no md:IDPSSODescriptor"),
            "{problems:?}"
        );
        let _ = std::fs::remove_file(file);
        let _ = std::fs::remove_file(broken);
    }

    #[test]
    fn an_external_sp_is_registered_from_its_metadata() {
        let key = peer_key();
        let xml = portcullis_saml::sp_metadata_xml(
            &portcullis_saml::SpConfig {
                entity_id: "https://wiki.test/saml/metadata".into(),
                acs_url: "https://wiki.test/saml/acs".into(),
                slo_url: "https://wiki.test/saml/slo".into(),
            },
            &key,
        )
        .expect("metadata");
        let file = metadata_file("sp", &xml);
        let text = format!(
            "{SERVER}{IDP}[[idp.service_provider]]\nname = \"wiki\"\nmetadata_file = \"{file}\"\n"
        );
        let config = crate::parse(&text, &repo_file(), &SamlReader).expect("valid");
        let sp = &config.idp.expect("idp").service_providers[0];
        assert_eq!(sp.entity_id, "https://wiki.test/saml/metadata");
        assert_eq!(sp.acs_url, "https://wiki.test/saml/acs");
        assert_eq!(sp.slo_url.as_deref(), Some("https://wiki.test/saml/slo"));
        assert!(sp.require_signed_requests);
        assert_eq!(sp.signing_certs_der, vec![key.cert_der().expect("der")]);

        // Metadata and hand-written fields together are ambiguous.
        let text = format!(
            "{SERVER}{IDP}[[idp.service_provider]]\nname = \"wiki\"\nmetadata_file = \"{file}\"\nacs_url = \"https://elsewhere.test/acs\"\n"
        );
        let problems = crate::parse(&text, &repo_file(), &SamlReader)
            .expect_err("invalid")
            .problems;
        assert_eq!(
            problems[0].key, "idp.service_provider[0].acs_url",
            "{problems:?}"
        );
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn saml_apps_get_defaults_and_are_registered_with_the_idp() {
        let text = format!(
            "{SERVER}{IDP}{}{}{}",
            app("b", "https://b.test/portal", &format!("{SAML}[[app.access]]\npath = \"/admin/\"\npolicy = \"groups\"\ngroups = [\"admins\"]\n")),
            app("c", "https://c.test/", &format!("{SAML}session_cookie = \"c_sid\"\nsession_idle = \"5m\"\n")),
            app("plain", "https://d.test/", ""),
        );
        let config = crate::parse(&text, &repo_file(), &crate::NoMetadata).expect("valid");
        let b = config.apps[0].auth.as_ref().expect("saml");
        assert_eq!(b.idp, AppIdp::Embedded);
        assert_eq!(
            b.entity_id,
            "https://b.test/portal/_portcullis/saml/metadata"
        );
        assert_eq!(b.acs_url, "https://b.test/portal/_portcullis/saml/acs");
        assert_eq!(
            (b.session_cookie.as_str(), b.request_cookie.as_str()),
            ("pc_b", "pc_b_rs")
        );
        assert_eq!(b.session_idle.as_secs(), 30 * 60);
        assert_eq!(b.session_max.as_secs(), 8 * 3600);
        assert_eq!(b.access[0].path, "/admin");
        assert_eq!(
            b.access[0].policy,
            AccessPolicy::Groups(vec!["admins".into()])
        );
        let c = config.apps[1].auth.as_ref().expect("saml");
        assert_eq!(c.session_cookie, "c_sid");
        assert_eq!(c.session_idle.as_secs(), 300);
        assert!(config.apps[2].auth.is_none());
        let sps = &config.idp.expect("idp").service_providers;
        assert_eq!(sps.len(), 2);
        assert_eq!(sps[0].name, "b");
        assert_eq!(sps[0].acs_url, b.acs_url);
        assert!(sps[0].require_signed_requests && sps[0].signing_certs_der.len() == 1);
    }

    #[test]
    fn bad_gateway_apps_are_located() {
        let text = format!(
            "{SERVER}{IDP}{}{}{}",
            app("b", "https://b.test/", &format!("{SAML}[[app.access]]\npath = \"/x\"\npolicy = \"maybe\"\n[[app.access]]\npath = \"/y\"\npolicy = \"groups\"\n")),
            app("c", "https://c.test/", &format!("{SAML}session_cookie = \"pc_b\"\nsession_max = \"forever\"\n")),
            app("d", "https://d.test/", "auth = \"oidc\"\n"),
        ) + &app("e", "https://e.test/", "session_cookie = \"pc_idp_sid\"\n")
            + &app("f", "https://f.test/", &format!("{SAML}session_cookie = \"pc_idp_sid\"\n"))
            + &app("g", "https://g.test/", "auth = \"saml\"\nidp = \"https://idp.example/metadata.xml\"\n");
        let problems = crate::parse(&text, &repo_file(), &crate::NoMetadata)
            .expect_err("invalid")
            .problems;
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "app[0].access[0].policy",
            "app[0].access[1]",
            "app[1].session_cookie",
            "app[1].session_max",
            "app[2].auth",
            "app[3].session_cookie",
            "app[4].session_cookie",
            "app[5].idp",
        ] {
            assert!(keys.contains(&key), "{key} missing from {problems:?}");
        }
        assert!(problems.iter().all(|p| p.line.is_some()), "{problems:?}");
    }

    #[test]
    fn saml_apps_need_the_idp_keys() {
        let text = format!(
            "{SERVER}[idp]\npublic_url = \"https://idp.test/\"\nusers_file = \"demo/users.toml\"\n\n{}",
            app("b", "https://b.test/", SAML)
        );
        let problems = crate::parse(&text, &repo_file(), &crate::NoMetadata)
            .expect_err("invalid")
            .problems;
        assert_eq!(problems[0].key, "app[0].idp", "{problems:?}");
        let text = format!("{SERVER}{}", app("b", "https://b.test/", SAML));
        let problems = crate::parse(&text, &repo_file(), &crate::NoMetadata)
            .expect_err("invalid")
            .problems;
        assert_eq!(problems[0].key, "app[0].idp", "{problems:?}");
    }
}
