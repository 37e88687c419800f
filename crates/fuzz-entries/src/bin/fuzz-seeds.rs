//! Writes the fuzz seed corpora, `fuzz/seeds/<target>/<name>`, from the
//! crates' own builders: Responses the embedded IdP signs, AuthnRequests
//! and logout messages as the gateway and the IdP send them, both sides'
//! metadata, plus a few hand-written filters, queries, configs, cookies
//! and RelayStates. Keys and instant are the entries' fixtures, so the
//! `accepted-*` seeds verify whenever the fuzzer runs.
//!
//! ```text
//! cargo run -p portcullis-fuzz-entries --bin fuzz-seeds [-- DIR]   # DIR defaults to fuzz/seeds
//! ```
//!
//! Message ids are random, so a run rewrites the SAML seeds with new
//! bytes; everything else comes out the same.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_fuzz_entries::fixtures::{
    self, ACS_URL, IDP_ENTITY_ID, IDP_SLO_URL, IDP_SSO_URL, REQUEST_ID, SP_ENTITY_ID, SP_SLO_URL,
};
use portcullis_idp::syslog::{Cursor, Event, OutcomeResult, Severity};
use portcullis_saml::{
    build_logout_request_post, build_logout_request_redirect, build_logout_response_post,
    build_logout_response_redirect, build_redirect_authn_request, build_response,
    build_status_response, idp_metadata_xml, sp_metadata_xml, AuthnContextClass,
    AuthnRequestParams, IdpConfig, LogoutRequestParams, LogoutResponseParams, LogoutStatus,
    NameIdFormat, ReleasedAttribute, ResponseParams, SigningKey, SpConfig, StatusParams,
    STATUS_NO_PASSIVE, STATUS_RESPONDER,
};
use portcullis_session::SessionSecret;

type Failure = Box<dyn std::error::Error>;

const VALIDITY: Duration = Duration::from_secs(300);

fn main() -> Result<(), Failure> {
    let dir = std::env::args_os().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds"),
        PathBuf::from,
    );
    let mut out = Seeds { dir, written: 0 };
    saml_response(&mut out)?;
    authn_request(&mut out)?;
    logout(&mut out)?;
    metadata(&mut out)?;
    syslog(&mut out)?;
    config(&mut out)?;
    headers(&mut out)?;
    println!("wrote {} seeds under {}", out.written, out.dir.display());
    Ok(())
}

struct Seeds {
    dir: PathBuf,
    written: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, data: impl AsRef<[u8]>) -> Result<(), Failure> {
        let dir = self.dir.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), data)?;
        self.written += 1;
        Ok(())
    }
}

fn idp_config() -> IdpConfig {
    IdpConfig {
        entity_id: IDP_ENTITY_ID.into(),
        sso_redirect_url: IDP_SSO_URL.into(),
        sso_post_url: IDP_SSO_URL.into(),
        slo_url: IDP_SLO_URL.into(),
    }
}

fn sp_config() -> SpConfig {
    SpConfig {
        entity_id: SP_ENTITY_ID.into(),
        acs_url: ACS_URL.into(),
        slo_url: SP_SLO_URL.into(),
    }
}

/// The query string of a Redirect-binding URL.
fn query_of(url: &str) -> Result<&str, Failure> {
    Ok(url.split_once('?').ok_or("redirect URL without a query")?.1)
}

fn saml_response(out: &mut Seeds) -> Result<(), Failure> {
    let attributes: Vec<ReleasedAttribute> = [
        ("email".to_owned(), vec!["alice@example.test".to_owned()]),
        (
            "groups".to_owned(),
            vec!["admins".to_owned(), "R&D <core>".to_owned()],
        ),
    ]
    .into_iter()
    .map(|(name, values)| ReleasedAttribute::basic(name, values))
    .collect();
    let response = |key: &SigningKey,
                    in_response_to: Option<&str>,
                    sign_assertion: bool,
                    sign_response: bool| {
        build_response(
            &idp_config(),
            key,
            &ResponseParams {
                sp_entity_id: SP_ENTITY_ID,
                acs_url: ACS_URL,
                in_response_to,
                name_id: "alice@example.test",
                name_id_format: NameIdFormat::EmailAddress,
                name_qualifier: None,
                sp_name_qualifier: None,
                session_index: "_idp-session-1",
                authn_context: AuthnContextClass::PasswordProtectedTransport,
                authn_instant: fixtures::issue_time(),
                attributes: &attributes,
                validity: VALIDITY,
                clock_skew: Duration::from_secs(60),
                now: fixtures::issue_time(),
                sign_assertion,
                sign_response,
                encrypt_for: None,
            },
        )
        .map(|r| r.xml)
    };
    let idp = fixtures::idp_key();
    let signed = response(idp, Some(REQUEST_ID), true, false)?;
    out.put("saml_response", "accepted-signed-assertion.xml", &signed)?;
    out.put(
        "saml_response",
        "accepted-signed-response-and-assertion.xml",
        response(idp, Some(REQUEST_ID), true, true)?,
    )?;
    out.put(
        "saml_response",
        "accepted-idp-initiated.xml",
        response(idp, None, true, false)?,
    )?;
    out.put(
        "saml_response",
        "unsigned.xml",
        response(idp, Some(REQUEST_ID), false, false)?,
    )?;
    let attacker = SigningKey::generate_self_signed("attacker", 1)?;
    out.put(
        "saml_response",
        "signed-by-another-key.xml",
        response(&attacker, Some(REQUEST_ID), true, false)?,
    )?;
    // A wrapping shape: a second, unsigned copy of the assertion.
    if let (Some(start), Some(end)) = (
        signed.find("<saml2:Assertion"),
        signed.find("</saml2:Assertion>"),
    ) {
        let assertion = &signed[start..end + "</saml2:Assertion>".len()];
        let wrapped = signed.replacen(assertion, &format!("{assertion}{assertion}"), 1);
        out.put("saml_response", "two-assertions.xml", wrapped)?;
    }
    let status = build_status_response(
        &idp_config(),
        idp,
        &StatusParams {
            acs_url: ACS_URL,
            in_response_to: Some(REQUEST_ID),
            top_level: STATUS_RESPONDER,
            second_level: Some(STATUS_NO_PASSIVE),
            now: fixtures::issue_time(),
        },
    )?;
    out.put("saml_response", "status-no-passive.xml", status.xml)
}

/// An AuthnRequest as an SP sends it over HTTP-POST (the gateway itself
/// uses Redirect), with SHA-256 digests as the IdP requires.
const POST_AUTHN_REQUEST: &str = r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_post1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" Destination="https://idp.fuzz.test/sso/saml" ForceAuthn="false" IsPassive="false" AssertionConsumerServiceURL="https://app.fuzz.test/wiki/_portcullis/saml/acs" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>https://app.fuzz.test/wiki/_portcullis/saml/metadata</saml:Issuer><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" AllowCreate="true"/></samlp:AuthnRequest>"#;

fn authn_request(out: &mut Seeds) -> Result<(), Failure> {
    let sp = fixtures::sp_key();
    for (name, relay_state, force_authn, format) in [
        (
            "accepted-signed.query",
            Some("/wiki/page?x=1"),
            false,
            Some(NameIdFormat::EmailAddress.uri()),
        ),
        ("accepted-signed-no-relay-state.query", None, true, None),
    ] {
        let redirect = build_redirect_authn_request(
            &sp_config(),
            sp,
            &AuthnRequestParams {
                idp_sso_url: IDP_SSO_URL,
                relay_state,
                force_authn,
                name_id_format: format,
                now: fixtures::issue_time(),
            },
        )?;
        let query = query_of(&redirect.url)?;
        out.put("authn_request_redirect", name, query)?;
        if relay_state.is_some() {
            // The same request without its signature parameters.
            let unsigned = query.split("&SigAlg=").next().unwrap_or(query);
            out.put("authn_request_redirect", "unsigned.query", unsigned)?;
        }
    }

    out.put("authn_request_post", "unsigned.xml", POST_AUTHN_REQUEST)?;
    let mut request: samael::schema::AuthnRequest = POST_AUTHN_REQUEST.parse()?;
    let cert = samael::crypto::CertificateDer::from(sp.cert_der()?);
    let mut signature = samael::signature::Signature::template("_post1", &cert);
    for reference in &mut signature.signed_info.reference {
        reference.digest_method.algorithm = samael::signature::DigestAlgorithm::Sha256;
    }
    request.signature = Some(signature);
    let signed = request.to_signed_xml(&sp.rsa_key_der()?)?;
    out.put("authn_request_post", "accepted-signed.xml", signed)
}

fn logout(out: &mut Seeds) -> Result<(), Failure> {
    let now = fixtures::issue_time();
    let (idp, sp) = (fixtures::idp_key(), fixtures::sp_key());
    let from_idp = LogoutRequestParams {
        issuer: IDP_ENTITY_ID,
        destination: SP_SLO_URL,
        name_id: "alice@example.test",
        name_id_format: Some(NameIdFormat::EmailAddress.uri()),
        name_qualifier: None,
        sp_name_qualifier: None,
        session_index: Some("_idp-session-1"),
        relay_state: Some("rs-1"),
        now,
        validity: VALIDITY,
    };
    let from_sp = LogoutRequestParams {
        issuer: SP_ENTITY_ID,
        destination: IDP_SLO_URL,
        name_id_format: None,
        relay_state: None,
        ..from_idp.clone()
    };
    let answer = |issuer, destination, status| LogoutResponseParams {
        issuer,
        destination,
        in_response_to: Some(REQUEST_ID),
        status,
        relay_state: Some("rs-1"),
        now,
    };
    let idp_answer = answer(IDP_ENTITY_ID, SP_SLO_URL, LogoutStatus::PartialLogout);
    let sp_answer = answer(SP_ENTITY_ID, IDP_SLO_URL, LogoutStatus::Success);

    let redirect = "logout_redirect";
    let url = build_logout_request_redirect(&from_idp, idp)?.url;
    out.put(redirect, "accepted-request-from-idp.query", query_of(&url)?)?;
    let url = build_logout_request_redirect(&from_sp, sp)?.url;
    out.put(redirect, "accepted-request-from-sp.query", query_of(&url)?)?;
    let url = build_logout_response_redirect(&idp_answer, idp)?;
    out.put(
        redirect,
        "accepted-response-from-idp.query",
        query_of(&url)?,
    )?;
    let url = build_logout_response_redirect(&sp_answer, sp)?;
    out.put(redirect, "accepted-response-from-sp.query", query_of(&url)?)?;

    let post = "logout_post";
    let xml = build_logout_request_post(&from_idp, idp)?.xml;
    out.put(post, "accepted-request-from-idp.xml", xml)?;
    let xml = build_logout_request_post(&from_sp, sp)?.xml;
    out.put(post, "accepted-request-from-sp.xml", xml)?;
    let xml = build_logout_response_post(&idp_answer, idp)?.xml;
    out.put(post, "accepted-response-from-idp.xml", xml)?;
    let xml = build_logout_response_post(&sp_answer, sp)?.xml;
    out.put(post, "accepted-response-from-sp.xml", xml)
}

fn metadata(out: &mut Seeds) -> Result<(), Failure> {
    let idp = idp_metadata_xml(&idp_config(), fixtures::idp_key())?;
    out.put("metadata", "accepted-idp.xml", idp)?;
    let sp = sp_metadata_xml(&sp_config(), fixtures::sp_key())?;
    out.put("metadata", "accepted-sp.xml", &sp)?;
    // The shape other software writes: another prefix, a wrapper, an
    // encryption-only key, several ACS endpoints, an entity reference.
    let cert = sp
        .split("<ds:X509Certificate>")
        .nth(1)
        .and_then(|rest| rest.split("</ds:X509Certificate>").next())
        .ok_or("no certificate in our own metadata")?;
    let foreign = format!(
        r#"<?xml version="1.0"?>
<ns0:EntitiesDescriptor xmlns:ns0="urn:oasis:names:tc:SAML:2.0:metadata">
 <ns0:EntityDescriptor entityID="https://sp.example/meta?a=1&amp;b=2">
  <ns0:SPSSODescriptor AuthnRequestsSigned="1" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
   <ns0:KeyDescriptor use="encryption"><ns1:KeyInfo xmlns:ns1="http://www.w3.org/2000/09/xmldsig#"><ns1:X509Data><ns1:X509Certificate>{cert}</ns1:X509Certificate></ns1:X509Data></ns1:KeyInfo></ns0:KeyDescriptor>
   <ns0:KeyDescriptor><ns1:KeyInfo xmlns:ns1="http://www.w3.org/2000/09/xmldsig#"><ns1:X509Data><ns1:X509Certificate>
{cert}
   </ns1:X509Certificate></ns1:X509Data></ns1:KeyInfo></ns0:KeyDescriptor>
   <ns0:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</ns0:NameIDFormat>
   <ns0:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example/slo"/>
   <ns0:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example/acs/1" index="1"/>
   <ns0:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://sp.example/acs/r" index="0"/>
   <ns0:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example/acs/2" index="2" isDefault="true"/>
  </ns0:SPSSODescriptor>
 </ns0:EntityDescriptor>
</ns0:EntitiesDescriptor>"#
    );
    out.put("metadata", "accepted-foreign-sp.xml", foreign)
}

fn syslog(out: &mut Seeds) -> Result<(), Failure> {
    let filters = [
        r#"eventType eq "user.session.start""#,
        r#"eventType sw "user." and outcome.result eq "FAILURE""#,
        r#"(actor.alternateId co "@example.test" or client.ipAddress eq "127.0.0.1") and not (severity eq "DEBUG")"#,
        r#"published gt "2026-01-01T00:00:00.000Z" and published le "2026-01-02T00:00:00+02:00""#,
        r#"debugContext.debugData.mfa eq true and target.displayName pr"#,
        r#"target.id ne "0oa1" or outcome.reason eq null"#,
        r#"displayMessage co "\"quoted\" \\ \u00e9\n""#,
        r#"NOT(uuid PR) OR authenticationContext.externalSessionId GE "102""#,
    ];
    for (i, filter) in filters.iter().enumerate() {
        out.put("syslog_filter", &format!("accepted-{i}.txt"), filter)?;
    }
    out.put("syslog_filter", "unbalanced.txt", r#"(eventType eq "x""#)?;

    let mut event = Event::new(
        "user.session.start",
        "login",
        Severity::Info,
        OutcomeResult::Success,
    );
    event.published = time::OffsetDateTime::from_unix_timestamp(1_767_225_600)?;
    let cursor = Cursor::of(&event).to_string();
    let queries = [
        "filter=eventType+eq+%22user.session.start%22&limit=20".to_owned(),
        format!("since=2026-01-01T00%3A00%3A00Z&until=2026-01-02T00%3A00%3A00.000%2B01%3A00&after={cursor}&sortOrder=DESCENDING"),
        "filter=&sortOrder=ascending&limit=1000".to_owned(),
    ];
    for (i, query) in queries.iter().enumerate() {
        out.put("syslog_query", &format!("accepted-{i}.query"), query)?;
    }
    out.put(
        "syslog_query",
        "inverted-range.query",
        "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
    )
}

/// A small external-IdP app beside the example's embedded one.
const CONFIG_EXTERNAL_IDP: &str = r#"[server]
https = ["127.0.0.1:8443"]
tls_cert = "certs/localhost.pem"
tls_key = "certs/localhost-key.pem"

[[app]]
name = "wiki"
public_url = "https://app.fuzz.test/wiki"
upstream = "http://127.0.0.1:9000"
auth = "saml"
idp = { metadata_file = "idp-metadata.xml" }
sp_signing_key = "sp-key.pem"
sp_signing_cert = "sp-cert.pem"
allow_idp_initiated = true

[[app.access]]
path = "/wiki/public"
policy = "public"
"#;

fn config(out: &mut Seeds) -> Result<(), Failure> {
    out.put(
        "config",
        "gateway.toml.example",
        include_str!("../../../../gateway.toml.example"),
    )?;
    out.put("config", "external-idp.toml", CONFIG_EXTERNAL_IDP)?;
    out.put(
        "config",
        "problems.toml",
        "[server]\nhttps = [\"not an address\"]\nidle_timeout = \"soon\"\n[surprise]\n[[app]]\nname = 3\n",
    )
}

fn headers(out: &mut Seeds) -> Result<(), Failure> {
    let cookies = [
        (
            "accepted-browser.txt",
            "pc_b=secret; pc_b_rs=_id; theme=dark; pc_idp_sid=x",
        ),
        (
            "accepted-two-headers.txt",
            "a=1; pc_b=mine\npc_b=planted; b=2; a=1",
        ),
        (
            "accepted-odd-spacing.txt",
            " pc_b = x ;;; =empty; novalue; q=\"quoted; x\"",
        ),
    ];
    for (name, value) in cookies {
        out.put("cookie_header", name, value)?;
    }

    // First byte: the app's base path, RELAY_STATE_BASES[byte % 3]
    // ('0' → "", '1' → "/wiki", '2' → "/a/b").
    let relay_states = [
        ("accepted-root.txt", "0/"),
        ("accepted-page.txt", "1/wiki/page?x=1&y=%2F#top"),
        ("accepted-deep.txt", "2/a/b/c/d"),
        ("elsewhere.txt", "1/other"),
        ("scheme-relative.txt", "0//evil.test/"),
        ("backslash.txt", "0/\\evil.test"),
        ("absolute.txt", "0https://evil.test/"),
    ];
    for (name, value) in relay_states {
        out.put("relay_state", name, value)?;
    }

    // First byte: the peer, CLIENT_IP_PEERS[byte % 4] ('0' → 10.0.0.5,
    // '1' → ::ffff:10.0.0.5, '2' → 2001:db8::1, '3' → 198.51.100.9).
    let chains = [
        ("accepted-x-forwarded-for.txt", "0x203.0.113.7"),
        (
            "accepted-chain-with-ports.txt",
            "1x192.0.2.1, 203.0.113.7:4711\nx[2001:db9::7]:443, 10.1.1.1",
        ),
        (
            "accepted-forwarded.txt",
            "2fFor=\"[2001:db9::7]:4711\";proto=https;host=\"a,b\", for=10.1.1.1:80\nfby=x;for=2001:db8::2",
        ),
        ("all-trusted.txt", "0x10.9.9.9, 10.1.1.1"),
        ("unknown.txt", "0ffor=unknown, for=10.1.1.1"),
        ("obfuscated.txt", "0ffor=_hidden;proto=http"),
        ("malformed.txt", "0x203.0.113.7, not-an-ip, 10.1.1.1"),
        ("open-quote.txt", "2ffor=\"192.0.2.1, for=203.0.113.7"),
        ("untrusted-peer.txt", "3x203.0.113.7"),
    ];
    for (name, value) in chains {
        out.put("client_ip", name, value)?;
    }

    out.put(
        "session_cookie",
        "accepted-issued.txt",
        SessionSecret::generate().expose(),
    )?;
    out.put(
        "session_cookie",
        "padded.txt",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )
}
