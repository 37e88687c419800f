//! An app's `auth = "saml"` side: which IdP it trusts, its SP keys, its
//! session cookies and lifetimes, whose Universal Logout tokens it takes,
//! and its registration as a service provider of the embedded IdP.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::locate::Step;
use crate::model::{
    App, AppAuth, AppIdp, ExternalIdp, Idp, PublicUrl, ServiceProviderConfig, SpAttribute,
    SpKeyPair, SpNameIdFormat, UniversalLogoutTrust, IDP_COOKIE_PREFIX, IDP_SESSION_COOKIE,
};
use crate::raw::{RawAccess, RawApp, RawAppIdp, RawIdp};

use super::idp::has_signing_pair;
use super::names::valid_name;
use super::pem::certificate_der;
use super::service_provider::DEFAULT_SP_ATTRIBUTES;
use super::{PeerMetadataKeys, PemKind, Validator};

const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
const DEFAULT_SESSION_MAX: Duration = Duration::from_secs(8 * 3600);

fn at(i: usize, key: &'static str) -> [Step<'static>; 3] {
    [Step::Key("app"), Step::Index(i), Step::Key(key)]
}

/// What `[idp]` offers the apps with `idp = "embedded"`, known even when
/// the section itself is refused.
#[derive(Clone, Copy)]
pub(super) enum EmbeddedIdp {
    Absent,
    WithoutKeys,
    WithKeys,
}

impl EmbeddedIdp {
    pub(super) fn of(raw: Option<&RawIdp>) -> Self {
        match raw {
            None => EmbeddedIdp::Absent,
            Some(raw) if has_signing_pair(raw) => EmbeddedIdp::WithKeys,
            Some(_) => EmbeddedIdp::WithoutKeys,
        }
    }
}

/// The gateway session cookie and the AuthnRequest-binding cookie.
struct Cookies {
    session: String,
    request: String,
}

impl Validator<'_, '_> {
    /// `auth` and the keys that only make sense with it. `cookies` holds
    /// the cookie names earlier apps took, with the app that took each.
    pub(super) fn app_auth(
        &mut self,
        i: usize,
        name: Option<&str>,
        public: Option<&PublicUrl>,
        app: &RawApp,
        access: Vec<RawAccess>,
        cookies: &mut HashMap<String, usize>,
    ) -> Option<AppAuth> {
        if !self.is_saml(i, app, &access) {
            return None;
        }
        let idp = self.app_idp(i, app.idp.as_ref());
        let key = self.sp_key_file(
            i,
            "sp_signing_key",
            app.sp_signing_key.as_deref(),
            PemKind::Key,
        );
        let cert = self.sp_key_file(
            i,
            "sp_signing_cert",
            app.sp_signing_cert.as_deref(),
            PemKind::Cert,
        );
        let sp_encryption = self.app_sp_encryption(i, app);
        let session_cookies = self.session_cookies(i, name, app.session_cookie.as_deref(), cookies);
        let session_idle = self.duration(
            &at(i, "session_idle"),
            app.session_idle.as_deref(),
            DEFAULT_SESSION_IDLE,
            "30m",
        );
        let session_max = self.duration(
            &at(i, "session_max"),
            app.session_max.as_deref(),
            DEFAULT_SESSION_MAX,
            "30m",
        );
        let universal_logout = self.universal_logout_trust(i, app, idp.as_ref());
        let backend_logout_url = self.backend_logout_url(i, app.backend_logout_url.as_deref());
        let identity = self.identity(i, app);
        let (login_landing, post_logout_url) = self.sign_in_and_out_urls(i, app);
        let access = self.access_rules(i, access);
        let name_id_format = self.app_name_id_format(i, app.name_id_format.as_deref());
        let url = public?.url();
        let session_cookies = session_cookies?;
        Some(AppAuth {
            idp: idp?,
            sp_signing_key: key?,
            sp_signing_cert: cert?,
            sp_encryption: sp_encryption?,
            entity_id: format!("{url}/_portcullis/saml/metadata"),
            name_id_format: name_id_format?,
            acs_url: format!("{url}/_portcullis/saml/acs"),
            slo_url: format!("{url}/_portcullis/saml/slo"),
            gtr_url: format!("{url}/_portcullis/global-token-revocation"),
            session_cookie: session_cookies.session,
            request_cookie: session_cookies.request,
            session_idle,
            session_max,
            access: access?,
            allow_idp_initiated: app.allow_idp_initiated.unwrap_or(false),
            universal_logout,
            backend_logout_url,
            inject: identity.inject,
            max_identity_bytes: identity.max_identity_bytes,
            identity_jwt_header: identity.identity_jwt_header,
            login_landing,
            post_logout_url,
        })
    }

    /// `name_id_format`: absent asks the IdP for no format. The outer
    /// `None` is a refused value (reported).
    fn app_name_id_format(
        &mut self,
        i: usize,
        raw: Option<&str>,
    ) -> Option<Option<SpNameIdFormat>> {
        let Some(raw) = raw else {
            return Some(None);
        };
        match SpNameIdFormat::parse(raw) {
            Some(format) => Some(Some(format)),
            None => {
                self.problem(
                    &at(i, "name_id_format"),
                    format!("`{raw}` is not one of {}", SpNameIdFormat::NAMES),
                );
                None
            }
        }
    }

    /// `auth = "saml"`; without `auth`, no SAML-only key may be set.
    fn is_saml(&mut self, i: usize, app: &RawApp, access: &[RawAccess]) -> bool {
        match app.auth.as_deref() {
            Some("saml") => true,
            None => {
                self.saml_only_keys(i, app, access);
                false
            }
            Some(other) => {
                self.problem(
                    &at(i, "auth"),
                    format!("`{other}` is not an auth mode (expected \"saml\")"),
                );
                false
            }
        }
    }

    /// Without `auth`, the SAML keys would be silently ignored.
    fn saml_only_keys(&mut self, i: usize, app: &RawApp, access: &[RawAccess]) {
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
            ("sp_encryption_key", app.sp_encryption_key.is_some()),
            ("sp_encryption_cert", app.sp_encryption_cert.is_some()),
            ("session_cookie", app.session_cookie.is_some()),
            ("session_idle", app.session_idle.is_some()),
            ("session_max", app.session_max.is_some()),
            ("name_id_format", app.name_id_format.is_some()),
            ("access", !access.is_empty()),
        ];
        for (key, set) in saml_only {
            if set {
                self.problem(&at(i, key), format!("{key} needs auth = \"saml\""));
            }
        }
    }

    /// `idp = "embedded"` or `idp = { metadata_file = "…" }`.
    fn app_idp(&mut self, i: usize, raw: Option<&RawAppIdp>) -> Option<AppIdp> {
        match raw {
            Some(RawAppIdp::Named(name)) if name == "embedded" => Some(AppIdp::Embedded),
            Some(RawAppIdp::Named(other)) => {
                self.problem(
                    &at(i, "idp"),
                    format!(
                        "`{other}` is not an IdP: use \"embedded\" or {{ metadata_file = \"…\" }}"
                    ),
                );
                None
            }
            Some(RawAppIdp::External(external)) => {
                if external.metadata_file.is_none() && external.metadata_url.is_none() {
                    self.problem(
                        &at(i, "idp"),
                        "an external IdP needs metadata_file or metadata_url",
                    );
                    return None;
                }
                let keys = PeerMetadataKeys {
                    file: external.metadata_file.as_deref(),
                    url: external.metadata_url.as_deref(),
                    signing_cert: external.metadata_signing_cert.as_deref(),
                    cache_file: external.metadata_cache_file.as_deref(),
                    entity_id: external.entity_id.as_deref(),
                    min_refresh: external.metadata_min_refresh.as_deref(),
                    max_refresh: external.metadata_max_refresh.as_deref(),
                };
                let at_key = |key: &'static str| {
                    vec![
                        Step::Key("app"),
                        Step::Index(i),
                        Step::Key("idp"),
                        Step::Key(key),
                    ]
                };
                let (metadata, source) =
                    self.peer_metadata(&at_key, &keys, |r, xml, trust| r.idp(xml, trust))?;
                Some(AppIdp::External(Box::new(ExternalIdp {
                    source,
                    metadata,
                    want_assertions_signed: external.want_assertions_signed.unwrap_or(true),
                    allow_sha1: external.allow_sha1.unwrap_or(false),
                })))
            }
            None => {
                self.problem(
                    &at(i, "auth"),
                    "auth = \"saml\" needs idp = \"embedded\" or idp = { metadata_file = \"…\" }",
                );
                None
            }
        }
    }

    /// `sp_signing_key` or `sp_signing_cert`, both required.
    fn sp_key_file(
        &mut self,
        i: usize,
        key: &'static str,
        raw: Option<&str>,
        kind: PemKind,
    ) -> Option<PathBuf> {
        match raw {
            Some(file) => Some(self.pem(&at(i, key), file, kind)),
            None => {
                self.problem(&at(i, "auth"), format!("auth = \"saml\" needs {key}"));
                None
            }
        }
    }

    /// `sp_encryption_key` and `sp_encryption_cert`: both or neither.
    /// The outer `None` is a refused pair (reported); that the two match
    /// is checked where the key is loaded (the gateway's SP).
    fn app_sp_encryption(&mut self, i: usize, app: &RawApp) -> Option<Option<SpKeyPair>> {
        match (
            app.sp_encryption_key.as_deref(),
            app.sp_encryption_cert.as_deref(),
        ) {
            (None, None) => Some(None),
            (Some(key), Some(cert)) => Some(Some(SpKeyPair {
                key: self.pem(&at(i, "sp_encryption_key"), key, PemKind::Key),
                cert: self.pem(&at(i, "sp_encryption_cert"), cert, PemKind::Cert),
            })),
            (Some(_), None) => {
                self.problem(
                    &at(i, "sp_encryption_key"),
                    "sp_encryption_key needs sp_encryption_cert",
                );
                None
            }
            (None, Some(_)) => {
                self.problem(
                    &at(i, "sp_encryption_cert"),
                    "sp_encryption_cert needs sp_encryption_key",
                );
                None
            }
        }
    }

    /// `session_cookie` (default `pc_<name>`) and `<session_cookie>_rs`:
    /// well-formed, not the IdP's, and not another app's (browsers share
    /// cookies across the ports of one host).
    fn session_cookies(
        &mut self,
        i: usize,
        name: Option<&str>,
        raw: Option<&str>,
        taken: &mut HashMap<String, usize>,
    ) -> Option<Cookies> {
        let session = match (raw, name) {
            (Some(c), _) => c.to_string(),
            (None, Some(n)) => format!("pc_{n}"),
            // The missing name is reported already.
            (None, None) => return None,
        };
        let request = format!("{session}_rs");
        let path = at(i, "session_cookie");
        if !valid_name(&session) {
            self.problem(
                &path,
                "must be 1-64 characters of letters, digits, '-' and '_'",
            );
            return None;
        }
        if session.starts_with(IDP_COOKIE_PREFIX) || session == IDP_SESSION_COOKIE {
            self.problem(
                &path,
                format!("`{session}`: names starting with pc_idp_ belong to the embedded IdP"),
            );
            return None;
        }
        let mut ok = true;
        for cookie in [&session, &request] {
            if let Some(first) = taken.insert(cookie.clone(), i) {
                self.problem(
                    &path,
                    format!(
                        "cookie `{cookie}` is also used by app[{first}]; cookie names must be \
                         unique (browsers share cookies across the ports of one host)"
                    ),
                );
                ok = false;
            }
        }
        ok.then_some(Cookies { session, request })
    }

    /// `universal_logout_issuer` and `universal_logout_jwks_file`, for an
    /// app on an external IdP.
    fn universal_logout_trust(
        &mut self,
        i: usize,
        app: &RawApp,
        idp: Option<&AppIdp>,
    ) -> Option<UniversalLogoutTrust> {
        match (
            app.universal_logout_issuer.as_deref(),
            app.universal_logout_jwks_file.as_deref(),
            idp,
        ) {
            (None, None, _) => None,
            (Some(issuer), Some(file), Some(AppIdp::External(_))) => {
                let jwks_file = self.file(&at(i, "universal_logout_jwks_file"), file);
                Some(UniversalLogoutTrust {
                    issuer: issuer.to_string(),
                    jwks_file,
                })
            }
            (Some(_), Some(_), _) => {
                self.problem(
                    &at(i, "universal_logout_issuer"),
                    "only for an external IdP: apps on the embedded IdP trust it automatically",
                );
                None
            }
            _ => {
                self.problem(
                    &at(i, "universal_logout_issuer"),
                    "universal_logout_issuer and universal_logout_jwks_file go together",
                );
                None
            }
        }
    }

    /// Every `auth = "saml"` app with `idp = "embedded"` needs the IdP's
    /// SAML keys and becomes one of its service providers, so operators do
    /// not write `[[idp.service_provider]]` for gateway apps.
    pub(super) fn register_gateway_sps(
        &mut self,
        embedded: EmbeddedIdp,
        mut idp: Option<&mut Idp>,
        apps: &[(usize, App)],
    ) {
        for (i, app) in apps {
            let Some(auth) = &app.auth else { continue };
            if auth.idp != AppIdp::Embedded {
                continue;
            }
            let at = [Step::Key("app"), Step::Index(*i), Step::Key("idp")];
            match (embedded, idp.as_deref_mut()) {
                (EmbeddedIdp::Absent, _) => {
                    self.problem(&at, "idp = \"embedded\" needs an [idp] section");
                }
                (EmbeddedIdp::WithoutKeys, _) => self.problem(
                    &at,
                    "idp = \"embedded\" needs [idp] signing_key and signing_cert",
                ),
                // `[idp]` was refused; its own problems say why.
                (EmbeddedIdp::WithKeys, None) => {}
                (EmbeddedIdp::WithKeys, Some(idp)) => {
                    if let Some(sp) = self.gateway_sp(&at, idp, app, auth) {
                        idp.service_providers.push(sp);
                    }
                }
            }
        }
    }

    /// App `name` as a service provider of the embedded IdP.
    fn gateway_sp(
        &mut self,
        at: &[Step<'_>],
        idp: &Idp,
        app: &App,
        auth: &AppAuth,
    ) -> Option<ServiceProviderConfig> {
        let name = app.name.as_str();
        // With both keys set, a missing SAML identity (a bad entity_id)
        // was reported at [idp].
        idp.saml.as_ref()?;
        if let Some(sp) = idp
            .service_providers
            .iter()
            .find(|sp| sp.name == name || sp.entity_id == auth.entity_id)
        {
            self.problem(
                at,
                format!(
                    "[[idp.service_provider]] `{}` already uses this app's name or entity id; \
                     gateway apps are registered with the IdP automatically",
                    sp.name
                ),
            );
            return None;
        }
        Some(ServiceProviderConfig {
            name: name.to_string(),
            entity_id: auth.entity_id.clone(),
            acs_url: auth.acs_url.clone(),
            // The format the app asks for is the one it is registered with
            // (the AuthnRequest names it); without one, the default.
            name_id_format: auth.name_id_format.unwrap_or(SpNameIdFormat::EmailAddress),
            name_id_formats_allowed: Vec::new(),
            // An unreadable certificate was already reported by `pem`.
            signing_certs_der: std::fs::read(&auth.sp_signing_cert)
                .ok()
                .and_then(|pem| certificate_der(&pem).ok())
                .into_iter()
                .collect(),
            require_signed_requests: true,
            slo_url: Some(auth.slo_url.clone()),
            // Gateway apps hear of sessions that end without the browser
            // through Universal Logout already.
            soap_slo_url: None,
            attributes: DEFAULT_SP_ATTRIBUTES
                .iter()
                .map(|source| SpAttribute::as_named(source))
                .collect(),
            sign_response: false,
            // The gateway signs with RSA-SHA256 only.
            allow_sha1: false,
            // An app that can decrypt gets its assertions encrypted, so
            // the gateway ↔ embedded IdP path is encrypted end to end.
            encryption_cert_der: auth.sp_encryption.as_ref().and_then(|pair| {
                std::fs::read(&pair.cert)
                    .ok()
                    .and_then(|pem| certificate_der(&pem).ok())
            }),
            sign_in_url: Some(app.public.url()),
            metadata_source: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{AccessPolicy, AppIdp, MetadataLocation, SpNameIdFormat};
    use crate::validate::fixtures::{
        app, metadata_file, parse, parse_with_saml, peer_key, IDP, IDP_KEYS, SAML, SERVER,
    };

    /// A signed aggregate holding the IdP `entity_id`, and the PEM file of
    /// the federation certificate it is signed with.
    fn signed_aggregate(entity_id: &str) -> (String, String) {
        let federation = peer_key();
        let entity = portcullis_saml::idp_metadata_xml(
            &portcullis_saml::IdpConfig {
                entity_id: entity_id.into(),
                sso_redirect_url: "https://fed-idp.test/sso".into(),
                sso_post_url: "https://fed-idp.test/sso".into(),
                slo_url: "https://fed-idp.test/slo".into(),
            },
            &peer_key(),
        )
        .expect("metadata");
        let entity = entity.split_once("?>").map_or(entity.as_str(), |(_, e)| e);
        let other = entity.replace(entity_id, "https://other.test/idp");
        let doc = format!("<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" ID=\"_fed\">{other}{entity}</md:EntitiesDescriptor>");
        let signed = portcullis_saml::sign_metadata(&doc, &federation).expect("sign");
        let cert = String::from_utf8(federation.cert_pem().expect("pem")).expect("pem");
        (signed, cert)
    }

    #[test]
    fn a_metadata_url_needs_its_signing_cert_and_starts_from_its_cache_file_offline() {
        let (signed, cert) = signed_aggregate("https://fed-idp.test/saml");
        let cert = metadata_file("fed-cert", &cert);
        let cache = metadata_file("fed-cache", &signed);
        let saml = |idp: &str| {
            format!(
                "auth = \"saml\"\nidp = {{ {idp} }}\nsp_signing_key = \"certs-dev/sp-signing-key.pem\"\nsp_signing_cert = \"certs-dev/sp-signing.pem\"\n"
            )
        };
        let load = |idp: &str| {
            parse_with_saml(&format!(
                "{SERVER}{}",
                app("ext", "https://a.test/", &saml(idp))
            ))
        };
        let only = |idp: &str| {
            let problems = load(idp).expect_err("invalid").problems;
            assert_eq!(problems.len(), 1, "{problems:?}");
            problems.into_iter().next().expect("one problem")
        };

        let unsigned = only("metadata_url = \"https://fed.test/md.xml\"");
        assert_eq!(unsigned.key, "app[0].idp.metadata_url");
        assert!(
            unsigned.message.contains("needs metadata_signing_cert"),
            "{unsigned:?}"
        );

        // These tests' reader cannot download: the cache file stands in.
        let url = format!(
            "metadata_url = \"https://fed.test/md.xml\", metadata_signing_cert = \"{cert}\", entity_id = \"https://fed-idp.test/saml\""
        );
        let config = load(&format!(
            "{url}, metadata_cache_file = \"{cache}\", metadata_min_refresh = \"1s\""
        ))
        .expect("started from the cache");
        let auth = config.apps[0].auth.as_ref().expect("saml");
        let AppIdp::External(external) = &auth.idp else {
            panic!("expected an external IdP, got {:?}", auth.idp);
        };
        assert_eq!(external.metadata.entity_id, "https://fed-idp.test/saml");
        assert_eq!(
            external.source.min_refresh,
            std::time::Duration::from_secs(1)
        );
        assert!(matches!(
            &external.source.location,
            MetadataLocation::Url { cache_file: Some(c), .. } if c.to_string_lossy() == cache
        ));
        let offline = only(&url);
        assert_eq!(offline.key, "app[0].idp.metadata_url");
        assert!(
            offline.message.contains("no metadata_cache_file"),
            "{offline:?}"
        );

        // A file may be an aggregate too, its signature checked when a
        // certificate is given: another federation's is refused.
        let (_, stranger) = signed_aggregate("https://fed-idp.test/saml");
        let stranger = metadata_file("fed-stranger", &stranger);
        let file = metadata_file("fed-file", &signed);
        let picked =
            format!("metadata_file = \"{file}\", entity_id = \"https://fed-idp.test/saml\"");
        assert!(load(&picked).is_ok());
        let refused = only(&format!("{picked}, metadata_signing_cert = \"{stranger}\""));
        assert_eq!(refused.key, "app[0].idp.metadata_file");
        assert!(refused.message.contains("signature"), "{refused:?}");
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
        let config = parse_with_saml(&text).expect("valid");
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
        assert!(external.want_assertions_signed && external.notes("ext").is_empty());

        // The legacy opt-in for IdPs that sign only the Response: taken,
        // and said.
        let legacy = saml.replace(
            "metadata_file = \"",
            "want_assertions_signed = false, allow_sha1 = true, metadata_file = \"",
        );
        let text = format!("{SERVER}{}", app("ext", "https://a.test/", &legacy));
        let config = parse_with_saml(&text).expect("valid");
        let auth = config.apps[0].auth.as_ref().expect("saml");
        let AppIdp::External(external) = &auth.idp else {
            panic!("expected an external IdP, got {:?}", auth.idp);
        };
        assert!(!external.want_assertions_signed && external.allow_sha1);
        let notes = external.notes("ext");
        assert!(
            notes.len() == 2
                && notes[0].contains("only the Response signed")
                && notes[1].contains("RSA-SHA1"),
            "{notes:?}"
        );

        // A broken file is reported at its key, with the reason.
        let broken = metadata_file("broken", "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"/>");
        let saml = saml.replace(&file, &broken);
        let text = format!("{SERVER}{}", app("ext", "https://a.test/", &saml));
        let problems = parse_with_saml(&text).expect_err("invalid").problems;
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
    fn saml_apps_get_defaults_and_are_registered_with_the_idp() {
        let text = format!(
            "{SERVER}{IDP}{}{}{}",
            app("b", "https://b.test/portal", &format!("{SAML}[[app.access]]\npath = \"/admin/\"\npolicy = \"groups\"\ngroups = [\"admins\"]\n")),
            app("c", "https://c.test/", &format!("{SAML}session_cookie = \"c_sid\"\nsession_idle = \"5m\"\nname_id_format = \"persistent\"\nsp_encryption_key = \"certs-dev/sp-signing-key.pem\"\nsp_encryption_cert = \"certs-dev/sp-signing.pem\"\n")),
            app("plain", "https://d.test/", ""),
        );
        let config = parse(&text).expect("valid");
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
        assert_eq!(b.name_id_format, None);
        let c = config.apps[1].auth.as_ref().expect("saml");
        assert_eq!(c.name_id_format, Some(SpNameIdFormat::Persistent));
        assert_eq!(c.session_cookie, "c_sid");
        assert_eq!(c.session_idle.as_secs(), 300);
        assert!(config.apps[2].auth.is_none());
        let sps = &config.idp.expect("idp").service_providers;
        assert_eq!(sps.len(), 2);
        assert_eq!(sps[0].name, "b");
        assert_eq!(sps[0].acs_url, b.acs_url);
        assert!(sps[0].require_signed_requests && sps[0].signing_certs_der.len() == 1);
        // Registered with the format it asks for, so the IdP honours it.
        assert_eq!(sps[0].name_id_format, SpNameIdFormat::EmailAddress);
        assert_eq!(sps[1].name_id_format, SpNameIdFormat::Persistent);
        // An app that can decrypt is sent encrypted assertions.
        assert!(b.sp_encryption.is_none() && sps[0].encryption_cert_der.is_none());
        assert!(c.sp_encryption.is_some() && sps[1].encryption_cert_der.is_some());
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
            + &app("g", "https://g.test/", "auth = \"saml\"\nidp = \"https://idp.example/metadata.xml\"\n")
            + &app("h", "https://h.test/", &format!("{SAML}name_id_format = \"x509\"\n"))
            + &app("i", "https://i.test/", &format!("{SAML}sp_encryption_key = \"certs-dev/sp-signing-key.pem\"\n"));
        let problems = parse(&text).expect_err("invalid").problems;
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
            "app[6].name_id_format",
            "app[7].sp_encryption_key",
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
        let problems = parse(&text).expect_err("invalid").problems;
        assert_eq!(problems[0].key, "app[0].idp", "{problems:?}");
        let text = format!("{SERVER}{}", app("b", "https://b.test/", SAML));
        let problems = parse(&text).expect_err("invalid").problems;
        assert_eq!(problems[0].key, "app[0].idp", "{problems:?}");
    }

    #[test]
    fn problems_after_the_apps_name_each_app_by_its_place_in_the_file() {
        // app[0] is refused, so app[2] is the second app that passes.
        let text = format!(
            "{SERVER}{}{}{}",
            app("bad name", "https://x.test/", ""),
            app("ok", "https://ok.test/", ""),
            app("emb", "https://emb.test/", SAML),
        );
        let problems = parse(&text).expect_err("invalid").problems;
        let embedded = problems
            .iter()
            .find(|p| p.message.contains("needs an [idp] section"))
            .expect("embedded app without [idp]");
        assert_eq!(embedded.key, "app[2].idp", "{problems:?}");
        assert_eq!(
            embedded.line,
            Some(
                text.lines()
                    .position(|l| l == "idp = \"embedded\"")
                    .expect("line")
                    + 1
            )
        );
    }

    #[test]
    fn a_refused_idp_section_does_not_blame_its_apps() {
        // Only the bad public_url: the keys and the apps are fine.
        let text = format!(
            "{SERVER}[idp]\npublic_url = \"http://idp.test/\"\nusers_file = \"demo/users.toml\"\n{IDP_KEYS}[[idp.service_provider]]\nname = \"s\"\nentity_id = \"e\"\nacs_url = \"https://s.test/acs\"\n{}{}",
            app("a", "https://a.test/", SAML),
            app("b", "https://b.test/", SAML),
        );
        let problems = parse(&text).expect_err("invalid").problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "idp.public_url");

        // Without keys, every embedded app still hears it, with [idp]'s own problems.
        let text = format!(
            "{SERVER}[idp]\npublic_url = \"http://idp.test/\"\nusers_file = \"demo/users.toml\"\n{}",
            app("a", "https://a.test/", SAML),
        );
        let problems = parse(&text).expect_err("invalid").problems;
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["idp.public_url", "app[0].idp"], "{problems:?}");
    }

    #[test]
    fn without_a_metadata_reader_a_metadata_file_is_a_located_problem() {
        let file = metadata_file("unread", "<md:EntityDescriptor/>");
        let saml = format!(
            "auth = \"saml\"\nidp = {{ metadata_file = \"{file}\" }}\nsp_signing_key = \"certs-dev/sp-signing-key.pem\"\nsp_signing_cert = \"certs-dev/sp-signing.pem\"\n"
        );
        let text = format!("{SERVER}{}", app("ext", "https://a.test/", &saml));
        let problems = parse(&text).expect_err("invalid").problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "app[0].idp.metadata_file");
        assert!(problems[0].line.is_some());
        assert!(
            problems[0].message.contains(&file)
                && problems[0]
                    .message
                    .contains("SAML metadata files are not supported here"),
            "{problems:?}"
        );
        let _ = std::fs::remove_file(file);
    }
}
