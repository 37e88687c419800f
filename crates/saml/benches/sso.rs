//! The two signature operations of one SSO round trip, measured side by
//! side: the embedded IdP signing a Response (RSA-2048, SHA-256, exclusive
//! c14n) and the gateway's ACS verifying it with every hardening check. The
//! ACS figure is "assertion verifications per second" (issue 4's benchmark);
//! the signing figure bounds how many SSO round trips the IdP can issue.
//! Compared within one run because only the ratio between them is stable on
//! a noisy machine.
//!
//! Beside them, the refusal of a hostile ACS post (issue 15): a ~250 KiB
//! SAMLResponse whose assertion is signed by the attacker's own key and
//! whose unsigned envelope carries ~27,000 junk attributes. Only the
//! structural pre-scan may see it; its cost is reported as a ratio to the
//! real verification above, from the same run. So is the worst document
//! the limits still let through to samael and xmlsec (every element and
//! attribute the limits allow, under the size cap, an attacker's
//! signature): the most CPU one post can buy now. The `slo` group does the
//! same for the small messages (logout and AuthnRequests) that the IdP and
//! the SLO endpoints verify, held to the tighter `XmlLimits::MESSAGE`.
//!
//! Run: `cargo bench -p portcullis-saml --bench sso`

use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_saml::{
    build_logout_request_post, build_redirect_authn_request, build_response,
    parse_authn_request_redirect, parse_logout_request_post, verify_response, AuthnContextClass,
    AuthnRequestParams, Error, Expectations, IdpConfig, LogoutRequestParams, NameIdFormat,
    ReleasedAttribute, ResponseParams, SigningKey, SpConfig,
};

const IDP: &str = "https://idp.bench.test/sso/saml/metadata";
const SP: &str = "https://app.bench.test/_portcullis/saml/metadata";
const ACS: &str = "https://app.bench.test/_portcullis/saml/acs";
const REQ_ID: &str = "_0123456789abcdef0123456789abcdef";

fn sso(c: &mut Criterion) {
    let key = SigningKey::generate_self_signed("bench-idp", 30).expect("key");
    let idp = IdpConfig {
        entity_id: IDP.into(),
        sso_redirect_url: "https://idp.bench.test/sso/saml".into(),
        sso_post_url: "https://idp.bench.test/sso/saml".into(),
        slo_url: "https://idp.bench.test/slo/saml".into(),
    };
    let attributes: Vec<ReleasedAttribute> = [
        ("email".to_string(), vec!["bob@example.com".to_string()]),
        ("firstName".to_string(), vec!["Bob".to_string()]),
        ("lastName".to_string(), vec!["Baker".to_string()]),
        (
            "groups".to_string(),
            vec!["staff".to_string(), "users".to_string()],
        ),
    ]
    .into_iter()
    .map(|(name, values)| ReleasedAttribute::basic(name, values))
    .collect();
    let issue = || {
        let now = Utc::now();
        let params = ResponseParams {
            sp_entity_id: SP,
            acs_url: ACS,
            in_response_to: Some(REQ_ID),
            name_id: "bob@example.com",
            name_id_format: NameIdFormat::EmailAddress,
            name_qualifier: None,
            sp_name_qualifier: None,
            session_index: "102sessionindex",
            authn_context: AuthnContextClass::PasswordProtectedTransport,
            authn_instant: now,
            attributes: &attributes,
            validity: Duration::from_secs(300),
            clock_skew: Duration::from_secs(60),
            now,
            sign_assertion: true,
            sign_response: false,
            encrypt_for: None,
        };
        build_response(&idp, &key, &params).expect("response")
    };
    let expect = Expectations::new(
        SP,
        ACS,
        IDP,
        vec![key.cert_der().expect("cert")],
        Some(REQ_ID.to_string()),
    );
    let body = base64::engine::general_purpose::STANDARD.encode(issue().xml);
    let attacker = SigningKey::generate_self_signed("bench-attacker", 30).expect("key");
    let hostile = hostile_response(&idp, &attacker, &attributes);
    let worst = worst_within_limits(&idp, &attacker, &attributes);
    // It must get as far as the signature check, or it measures nothing.
    match verify_response(&worst, &expect, Utc::now()) {
        Err(Error::Signature(_)) => {}
        other => panic!("the worst document within the limits: {other:?}"),
    }

    // The SP's signed Redirect AuthnRequest, as the IdP receives it.
    let sp = SpConfig {
        entity_id: SP.into(),
        acs_url: ACS.into(),
        slo_url: format!("{SP}/slo"),
    };
    let request = build_redirect_authn_request(
        &sp,
        &key,
        &AuthnRequestParams {
            idp_sso_url: "https://idp.bench.test/sso/saml",
            relay_state: Some("/reports"),
            force_authn: false,
            name_id_format: None,
            now: Utc::now(),
        },
    )
    .expect("authn request");
    let query = request.url.split_once('?').expect("query").1.to_string();
    let sp_certs = vec![key.cert_der().expect("cert")];

    let mut group = c.benchmark_group("sso");
    group.bench_function("idp_verify_authn_request", |b| {
        b.iter(|| {
            parse_authn_request_redirect(&query, Some(&sp_certs), 64 * 1024).expect("verified")
        })
    });
    group.bench_function("idp_sign_response", |b| b.iter(issue));
    group.bench_function("acs_verify_response", |b| {
        // Verification names the ids to consume; consuming them is the
        // caller's one-time store (crates/session), outside this figure.
        b.iter(|| verify_response(&body, &expect, Utc::now()).expect("verified"))
    });
    group.bench_function("acs_refuse_hostile_response", |b| {
        b.iter(|| {
            verify_response(&hostile, &expect, Utc::now()).expect_err("refused");
        })
    });
    group.bench_function("acs_refuse_worst_within_limits", |b| {
        b.iter(|| {
            verify_response(&worst, &expect, Utc::now()).expect_err("refused");
        })
    });
    group.finish();

    // The IdP and SLO side verify small messages inline (the pre-scan holds
    // them to `XmlLimits::MESSAGE`): the worst such message, signed by an
    // attacker, bounds what one of them can cost a worker.
    let worst_logout = worst_logout_request_within_limits(&attacker);
    let certs = vec![key.cert_der().expect("cert")];
    match parse_logout_request_post(&worst_logout, None, Some(&certs), 64 * 1024) {
        Err(Error::Signature(_)) => {}
        other => panic!("the worst logout request within the limits: {other:?}"),
    }
    let mut group = c.benchmark_group("slo");
    group.bench_function("refuse_worst_logout_request_within_limits", |b| {
        b.iter(|| {
            parse_logout_request_post(&worst_logout, None, Some(&certs), 64 * 1024)
                .expect_err("refused");
        })
    });
    group.finish();
}

/// A POST LogoutRequest signed by the attacker, its Extensions filled to
/// the small-message limits like [`worst_within_limits`].
fn worst_logout_request_within_limits(attacker: &SigningKey) -> String {
    let limits = portcullis_saml::XmlLimits::MESSAGE;
    let now = Utc::now();
    let message = build_logout_request_post(
        &LogoutRequestParams {
            issuer: IDP,
            destination: "https://app.bench.test/_portcullis/saml/slo",
            name_id: "mallory@example.com",
            name_id_format: None,
            name_qualifier: None,
            sp_name_qualifier: None,
            session_index: Some("forged"),
            relay_state: None,
            now,
            validity: Duration::from_secs(300),
        },
        attacker,
    )
    .expect("logout request");
    let xml = message.xml;
    let present = xml.matches('<').count() - xml.matches("</").count();
    let present_attributes = xml.matches("=\"").count();
    let with_attributes =
        (limits.max_attributes - present_attributes) / limits.max_attributes_per_element;
    let tag = format!(
        "<x {}/>",
        junk_attributes(limits.max_attributes_per_element)
    );
    let mut extensions = String::from("<samlp:Extensions>");
    for _ in 0..with_attributes {
        extensions.push_str(&tag);
    }
    for _ in 0..limits.max_elements - present - with_attributes - 1 {
        extensions.push_str("<y/>");
    }
    extensions.push_str("</samlp:Extensions>");
    let at = xml.find("<saml:NameID").expect("NameID");
    let doc = format!("{}{extensions}{}", &xml[..at], &xml[at..]);
    assert!(doc.len() <= limits.max_bytes, "{} bytes", doc.len());
    base64::engine::general_purpose::STANDARD.encode(doc)
}

fn attacker_response(
    idp: &IdpConfig,
    attacker: &SigningKey,
    attributes: &[ReleasedAttribute],
) -> String {
    let now = Utc::now();
    let params = ResponseParams {
        sp_entity_id: SP,
        acs_url: ACS,
        in_response_to: Some(REQ_ID),
        name_id: "mallory@example.com",
        name_id_format: NameIdFormat::EmailAddress,
        name_qualifier: None,
        sp_name_qualifier: None,
        session_index: "forged",
        authn_context: AuthnContextClass::PasswordProtectedTransport,
        authn_instant: now,
        attributes,
        validity: Duration::from_secs(300),
        clock_skew: Duration::from_secs(60),
        now,
        sign_assertion: true,
        sign_response: false,
        encrypt_for: None,
    };
    build_response(idp, attacker, &params)
        .expect("response")
        .xml
}

/// Unique three-letter attribute names, `="" ` after each.
fn junk_attributes(count: usize) -> String {
    let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
    (0..count)
        .map(|i| {
            let name: String = [i / (52 * 52), (i / 52) % 52, i % 52]
                .iter()
                .map(|&n| letters[n])
                .collect();
            format!("{name}=\"\" ")
        })
        .collect()
}

/// Within every structural limit but as costly as they allow: an
/// Extensions element before the Status holding 511 elements with 32
/// attributes each (the per-element and total attribute limits) and empty
/// elements up to the element limit, under the size cap, around an
/// assertion signed by the attacker.
fn worst_within_limits(
    idp: &IdpConfig,
    attacker: &SigningKey,
    attributes: &[ReleasedAttribute],
) -> String {
    let limits = portcullis_saml::XmlLimits::RESPONSE;
    let xml = attacker_response(idp, attacker, attributes);
    let present = xml.matches('<').count() - xml.matches("</").count();
    let present_attributes = xml.matches("=\"").count();
    let with_attributes =
        (limits.max_attributes - present_attributes) / limits.max_attributes_per_element;
    let tag = format!(
        "<x {}/>",
        junk_attributes(limits.max_attributes_per_element)
    );
    let mut extensions = String::from("<saml2p:Extensions>");
    for _ in 0..with_attributes {
        extensions.push_str(&tag);
    }
    for _ in 0..limits.max_elements - present - with_attributes - 1 {
        extensions.push_str("<y/>");
    }
    extensions.push_str("</saml2p:Extensions>");
    let status = xml.find("<saml2p:Status>").expect("status");
    let doc = format!("{}{extensions}{}", &xml[..status], &xml[status..]);
    assert!(doc.len() <= limits.max_bytes, "{} bytes", doc.len());
    base64::engine::general_purpose::STANDARD.encode(doc)
}

/// The hostile post: a well-formed Response with an assertion signed by a
/// key the SP does not trust, and unique junk attributes on the Response
/// element until the base64 form is just under the 256 KiB ACS cap (so
/// the size check lets it through to the XML checks).
fn hostile_response(
    idp: &IdpConfig,
    attacker: &SigningKey,
    attributes: &[ReleasedAttribute],
) -> String {
    let xml = attacker_response(idp, attacker, attributes);
    let root = xml.find("<saml2p:Response ").expect("root") + "<saml2p:Response ".len();
    // Seven bytes per attribute: `abc="" `.
    let count = (256 * 1024 / 4 * 3 - xml.len() - 64) / 7;
    let junk = junk_attributes(count);
    base64::engine::general_purpose::STANDARD.encode(format!(
        "{}{junk}{}",
        &xml[..root],
        &xml[root..]
    ))
}

criterion_group!(benches, sso);
criterion_main!(benches);
