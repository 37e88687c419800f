//! End-to-end: the embedded IdP signs real responses with real RSA keys
//! (samael/xmlsec), the SP verifier checks them. No mocks.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use portcullis_saml::*;

use crate::parties::{idp_cfg, idp_key, ACS, IDP, REQ_ID, SP};

fn foreign_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate_self_signed("attacker", 30).expect("foreign key"))
}

fn attrs() -> Vec<(String, Vec<String>)> {
    vec![
        ("email".into(), vec!["alice@example.test".into()]),
        ("firstName".into(), vec!["Alice".into()]),
        ("lastName".into(), vec!["Liddell".into()]),
        (
            "groups".into(),
            vec!["admins".into(), "R&D <core>".into(), "users".into()],
        ),
    ]
}

struct Opts {
    key: &'static SigningKey,
    in_response_to: Option<&'static str>,
    now: DateTime<Utc>,
    validity: Duration,
    sign_assertion: bool,
    sign_response: bool,
}

fn opts() -> Opts {
    Opts {
        key: idp_key(),
        in_response_to: Some(REQ_ID),
        now: Utc::now(),
        validity: Duration::from_secs(300),
        sign_assertion: true,
        sign_response: false,
    }
}

/// [`attrs`] as released: `basic` names.
fn released(attributes: &[(String, Vec<String>)]) -> Vec<ReleasedAttribute> {
    attributes
        .iter()
        .map(|(name, values)| ReleasedAttribute::basic(name, values.clone()))
        .collect()
}

fn issue(o: Opts) -> IssuedResponse {
    let attributes = released(&attrs());
    let p = ResponseParams {
        sp_entity_id: SP,
        acs_url: ACS,
        in_response_to: o.in_response_to,
        name_id: "alice@example.test",
        name_id_format: NameIdFormat::EmailAddress,
        name_qualifier: None,
        sp_name_qualifier: None,
        session_index: "sess-42",
        authn_context: AuthnContextClass::MultiFactor,
        authn_instant: o.now,
        attributes: &attributes,
        validity: o.validity,
        clock_skew: Duration::from_secs(60),
        now: o.now,
        sign_assertion: o.sign_assertion,
        sign_response: o.sign_response,
        encrypt_for: None,
    };
    build_response(&idp_cfg(), o.key, &p).expect("build response")
}

fn expect() -> Expectations {
    Expectations::new(
        SP,
        ACS,
        IDP,
        vec![idp_key().cert_der().expect("cert")],
        Some(REQ_ID.into()),
    )
}

fn b64(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml)
}

fn verify_xml(xml: &str, e: &Expectations) -> Result<VerifiedAssertion> {
    verify_response(&b64(xml), e, Utc::now())
}

/// Replace exactly one occurrence (guards the test against silently no-op patches).
fn patch(xml: &str, from: &str, to: &str) -> String {
    assert_eq!(
        xml.matches(from).count(),
        1,
        "patch target {from:?} must occur once"
    );
    xml.replacen(from, to, 1)
}

fn assertion_span(xml: &str) -> (usize, usize) {
    let start = xml.find("<saml2:Assertion").expect("assertion start");
    let end = xml.find("</saml2:Assertion>").expect("assertion end") + "</saml2:Assertion>".len();
    (start, end)
}

/// The signed assertion with its ds:Signature removed and the NameID swapped.
fn evil_copy(signed_assertion: &str) -> String {
    let s = signed_assertion.find("<ds:Signature").expect("sig start");
    let e = signed_assertion.find("</ds:Signature>").expect("sig end") + "</ds:Signature>".len();
    let unsigned = format!("{}{}", &signed_assertion[..s], &signed_assertion[e..]);
    unsigned.replace("alice@example.test", "mallory@example.test")
}

#[test]
fn accepts_signed_assertion_and_returns_identity() {
    let r = issue(opts());
    let v = verify_response(&r.post_form_value(), &expect(), Utc::now()).expect("accepted");
    assert_eq!(v.name_id, "alice@example.test");
    assert_eq!(
        v.name_id_format.as_deref(),
        Some(NameIdFormat::EmailAddress.uri())
    );
    assert_eq!(v.session_index.as_deref(), Some("sess-42"));
    assert_eq!(
        v.authn_context_class.as_deref(),
        Some(AuthnContextClass::MultiFactor.uri())
    );
    assert_eq!(v.issuer, IDP);
    assert_eq!(v.assertion_id, r.assertion_id);
    assert_eq!(
        v.attributes,
        attrs(),
        "multi-valued attributes, order and escaping preserved"
    );
    assert_eq!(
        v.one_time_ids,
        [r.assertion_id.clone(), r.response_id.clone()],
        "assertion and response ids named for one-time use"
    );
    assert!(v.remember_until > Utc::now() + chrono::Duration::minutes(4));
}

#[test]
fn accepts_when_response_and_assertion_both_signed() {
    let r = issue(Opts {
        sign_response: true,
        ..opts()
    });
    let v = verify_xml(&r.xml, &expect()).expect("accepted");
    assert_eq!(v.name_id, "alice@example.test");
}

/// A comment inside signed text is not signed content (exclusive c14n
/// drops it), so it must not cut the value short (CVE-2017-11427's shape):
/// the identity comes from the signed bytes, or the Response is refused.
#[test]
fn a_comment_in_signed_text_does_not_truncate_the_identity() {
    let r = issue(opts());
    let xml = patch(
        &r.xml,
        "alice@example.test</saml2:NameID>",
        "alice@example<!---->.test</saml2:NameID>",
    );
    match verify_xml(&xml, &expect()) {
        Ok(v) => assert_eq!(v.name_id, "alice@example.test"),
        Err(e) => assert!(matches!(e, Error::Signature(_)), "{e}"),
    }
}

#[test]
fn signed_response_with_unsigned_assertion_needs_opt_in() {
    let r = issue(Opts {
        sign_response: true,
        sign_assertion: false,
        ..opts()
    });
    assert!(matches!(
        verify_xml(&r.xml, &expect()),
        Err(Error::Signature(SignatureFailure::AssertionUnsigned))
    ));
    let mut e = expect();
    e.allow_signed_response_instead_of_assertion = true;
    let v = verify_xml(&r.xml, &e).expect("accepted with opt-in");
    assert_eq!(v.attributes, attrs());
}

#[test]
fn rejects_unsigned_assertion() {
    let r = issue(Opts {
        sign_assertion: false,
        ..opts()
    });
    assert!(matches!(
        verify_xml(&r.xml, &expect()),
        Err(Error::Signature(SignatureFailure::Missing))
    ));
}

#[test]
fn rejects_tampered_attribute_value() {
    let r = issue(opts());
    let xml = patch(&r.xml, ">admins<", ">superadmins<");
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
}

#[test]
fn rejects_tampered_attribute_value_in_signed_response() {
    let r = issue(Opts {
        sign_response: true,
        ..opts()
    });
    let xml = patch(&r.xml, ">admins<", ">superadmins<");
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
}

#[test]
fn rejects_signature_by_foreign_key() {
    // Valid signature, but by a key that is not pinned (its own cert is in KeyInfo).
    let r = issue(Opts {
        key: foreign_key(),
        sign_response: true,
        ..opts()
    });
    assert!(matches!(
        verify_xml(&r.xml, &expect()),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
}

#[test]
fn accepts_any_of_several_pinned_certs() {
    let r = issue(opts());
    let mut e = expect();
    e.idp_signing_certs
        .insert(0, foreign_key().cert_der().expect("cert"));
    verify_xml(&r.xml, &e).expect("second pinned cert verifies");
}

#[test]
fn the_same_response_names_the_same_one_time_ids_every_time() {
    // Replay is refused by the caller's one-time store, keyed by these ids:
    // a second verification of one response must name exactly the same ones.
    let r = issue(opts());
    let first = verify_response(&r.post_form_value(), &expect(), Utc::now()).expect("first");
    let again = verify_response(&r.post_form_value(), &expect(), Utc::now()).expect("again");
    assert_eq!(first.one_time_ids, again.one_time_ids);
    assert_eq!(first.one_time_ids.len(), 2);
    let other = issue(opts());
    let other = verify_response(&other.post_form_value(), &expect(), Utc::now()).expect("other");
    assert!(other
        .one_time_ids
        .iter()
        .all(|id| !first.one_time_ids.contains(id)));
}

#[test]
fn rejects_expired() {
    let r = issue(Opts {
        now: Utc::now() - chrono::Duration::hours(1),
        ..opts()
    });
    assert!(matches!(
        verify_xml(&r.xml, &expect()),
        Err(Error::Condition(ConditionFailure::Expired))
    ));
}

#[test]
fn rejects_not_yet_valid() {
    let r = issue(Opts {
        now: Utc::now() + chrono::Duration::hours(1),
        ..opts()
    });
    assert!(matches!(
        verify_xml(&r.xml, &expect()),
        Err(Error::Condition(ConditionFailure::NotYetValid))
    ));
}

#[test]
fn clock_skew_is_tolerated() {
    let r = issue(Opts {
        now: Utc::now() + chrono::Duration::seconds(30),
        ..opts()
    });
    verify_xml(&r.xml, &expect()).expect("30 s ahead is within 90 s skew");
}

#[test]
fn rejects_overlong_validity_window() {
    let r = issue(Opts {
        validity: Duration::from_secs(24 * 3600),
        ..opts()
    });
    assert!(matches!(
        verify_xml(&r.xml, &expect()),
        Err(Error::Condition(ConditionFailure::ValidityTooLong))
    ));
}

#[test]
fn rejects_wrong_audience() {
    let r = issue(opts());
    let mut e = expect();
    e.sp_entity_id = "https://other-sp.example.test".into();
    assert!(matches!(verify_xml(&r.xml, &e), Err(Error::Audience)));
}

#[test]
fn rejects_wrong_destination() {
    let r = issue(opts());
    let mut e = expect();
    e.acs_url = "https://gateway.example.test/other/acs".into();
    assert!(matches!(
        verify_xml(&r.xml, &e),
        Err(Error::Destination { .. })
    ));
}

#[test]
fn rejects_wrong_recipient_even_without_destination() {
    // Drop the (unsigned) Destination: the signed Recipient must still match.
    let r = issue(opts());
    let xml = patch(&r.xml, &format!(" Destination=\"{ACS}\""), "");
    let mut e = expect();
    e.acs_url = "https://gateway.example.test/other/acs".into();
    assert!(matches!(
        verify_xml(&xml, &e),
        Err(Error::Destination { found: Some(_) })
    ));
}

#[test]
fn rejects_wrong_issuer() {
    let r = issue(opts());
    let mut e = expect();
    e.idp_entity_id = "https://evil-idp.example.test".into();
    assert!(matches!(verify_xml(&r.xml, &e), Err(Error::Issuer { .. })));
}

#[test]
fn rejects_wrong_in_response_to() {
    let r = issue(opts());
    let mut e = expect();
    e.expected_in_response_to = Some("_someotherrequest".into());
    assert!(matches!(
        verify_xml(&r.xml, &e),
        Err(Error::InResponseTo { .. })
    ));
}

#[test]
fn rejects_unsolicited_when_request_expected() {
    let r = issue(Opts {
        in_response_to: None,
        ..opts()
    });
    assert!(matches!(
        verify_xml(&r.xml, &expect()),
        Err(Error::InResponseTo { found: None })
    ));
}

#[test]
fn accepts_unsolicited_only_when_allowed() {
    let r = issue(Opts {
        in_response_to: None,
        ..opts()
    });
    let mut e = expect();
    e.expected_in_response_to = None;
    verify_xml(&r.xml, &e).expect("IdP-initiated accepted");
    // …but a solicited response is not accepted as unsolicited.
    let solicited = issue(opts());
    assert!(matches!(
        verify_xml(&solicited.xml, &e),
        Err(Error::InResponseTo { .. })
    ));
}

#[test]
fn rejects_second_unsigned_assertion() {
    let r = issue(opts());
    let (s, e) = assertion_span(&r.xml);
    let evil = evil_copy(&r.xml[s..e]).replace(&r.assertion_id, "_evil");
    let xml = format!("{}{}{}", &r.xml[..e], evil, &r.xml[e..]);
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Signature(SignatureFailure::Wrapping(_)))
    ));
}

#[test]
fn rejects_wrapped_signed_assertion_with_evil_one_same_id() {
    // Classic XSW: signed original hidden in Extensions, evil copy (same ID) in its place.
    let r = issue(opts());
    let (s, e) = assertion_span(&r.xml);
    let signed = &r.xml[s..e];
    let evil = evil_copy(signed);
    let wrapped = format!("<saml2p:Extensions>{signed}</saml2p:Extensions>");
    let status = r.xml.find("<saml2p:Status>").expect("status");
    let xml = format!(
        "{}{}{}{}{}",
        &r.xml[..status],
        wrapped,
        &r.xml[status..s],
        evil,
        &r.xml[e..]
    );
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Signature(SignatureFailure::Wrapping(_)))
    ));
}

#[test]
fn rejects_wrapped_signed_assertion_with_evil_one_other_id() {
    let r = issue(opts());
    let (s, e) = assertion_span(&r.xml);
    let signed = &r.xml[s..e];
    let evil = evil_copy(signed).replace(&r.assertion_id, "_evil");
    let xml = format!(
        "{}{}{}",
        &r.xml[..s],
        evil.replace(
            "</saml2:Assertion>",
            &format!("<saml2:Advice>{signed}</saml2:Advice></saml2:Assertion>")
        ),
        &r.xml[e..]
    );
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Signature(SignatureFailure::Wrapping(_)))
    ));
}

#[test]
fn rejects_rsa_sha1_signature_method_before_crypto() {
    let r = issue(opts());
    let xml = patch(
        &r.xml,
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    );
    let err = verify_xml(&xml, &expect()).expect_err("sha1");
    assert!(
        matches!(&err, Error::Signature(SignatureFailure::WeakAlgorithm(uri)) if uri.ends_with("rsa-sha1")),
        "{err:?}"
    );
}

#[test]
fn rejects_genuinely_signed_sha1_digest() {
    // samael's stock IdP signs with a SHA-1 digest: a real, valid signature we must refuse.
    let key = idp_key();
    let idp = samael::idp::IdentityProvider::from_rsa_private_key_der(
        &key.private_key()
            .rsa()
            .and_then(|r| r.private_key_to_der())
            .expect("der"),
    )
    .expect("samael idp");
    let cert = samael::crypto::CertificateDer::from(key.cert_der().expect("cert"));
    let resp = idp
        .sign_authn_response(&cert, "alice@example.test", SP, ACS, IDP, REQ_ID, &[])
        .expect("samael signs");
    let xml = samael::traits::ToXml::to_string(&resp).expect("xml");
    assert!(xml.contains("xmldsig#sha1"));
    let err = verify_xml(&xml, &expect()).expect_err("sha1 digest");
    assert!(
        matches!(&err, Error::Signature(SignatureFailure::WeakAlgorithm(uri)) if uri.ends_with("#sha1")),
        "{err:?}"
    );
}

#[test]
fn rejects_doctype() {
    let r = issue(opts());
    let xml = patch(
        &r.xml,
        "<saml2p:Response ",
        "<!DOCTYPE r [<!ENTITY x \"y\">]><saml2p:Response ",
    );
    assert!(matches!(verify_xml(&xml, &expect()), Err(Error::Xml(_))));
}

#[test]
fn rejects_oversized_body() {
    let r = issue(opts());
    let mut e = expect();
    e.max_body_bytes = 1024;
    assert!(matches!(
        verify_xml(&r.xml, &e),
        Err(Error::Size { limit: 1024, .. })
    ));
}

#[test]
fn rejects_status_not_success() {
    let r = issue(opts());
    let xml = patch(
        &r.xml,
        "urn:oasis:names:tc:SAML:2.0:status:Success",
        "urn:oasis:names:tc:SAML:2.0:status:Requester",
    );
    let err = verify_xml(&xml, &expect()).expect_err("status");
    assert!(
        matches!(&err, Error::Status { code } if code.ends_with("Requester")),
        "{err:?}"
    );
}

#[test]
fn rejects_encrypted_assertion_as_unsupported() {
    let r = issue(opts());
    let (s, e) = assertion_span(&r.xml);
    let enc = "<saml2:EncryptedAssertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\"/>";
    let xml = format!("{}{}{}", &r.xml[..s], enc, &r.xml[e..]);
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Unsupported(_))
    ));
}

#[test]
fn rejects_garbage_input() {
    let e = expect();
    assert!(matches!(
        verify_response("%%%not base64", &e, Utc::now()),
        Err(Error::Binding(_))
    ));
    assert!(matches!(
        verify_xml("<saml2p:Response", &e),
        Err(Error::Xml(_))
    ));
}

#[test]
fn rejects_namespaced_duplicate_id() {
    // libxml2 registers `x:ID` as an ID too; a second element answering to
    // the assertion's ID must be refused even when the attribute is prefixed.
    let r = issue(opts());
    let xml = patch(
        &r.xml,
        "<saml2p:Status>",
        &format!(
            "<saml2p:Status xmlns:x=\"urn:x\" x:ID=\"{}\">",
            r.assertion_id
        ),
    );
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Signature(SignatureFailure::Wrapping(
            "duplicate ID attribute"
        )))
    ));
}

#[test]
fn rejects_disallowed_transform() {
    let r = issue(opts());
    let xml = r.xml.replacen(
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/TR/1999/REC-xslt-19991116",
        1,
    );
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Signature(SignatureFailure::WeakAlgorithm(_)))
    ));
}

#[test]
fn signed_no_passive_status_is_reported_with_its_second_level_code() {
    let status = build_status_response(
        &idp_cfg(),
        idp_key(),
        &StatusParams {
            acs_url: ACS,
            in_response_to: Some(REQ_ID),
            top_level: STATUS_RESPONDER,
            second_level: Some(STATUS_NO_PASSIVE),
            now: Utc::now(),
        },
    )
    .expect("status response");
    assert!(status.xml.contains("Signature"), "{}", status.xml);
    match verify_xml(&status.xml, &expect()) {
        Err(Error::Status { code }) => {
            assert_eq!(code, format!("{STATUS_RESPONDER} / {STATUS_NO_PASSIVE}"));
        }
        other => panic!("expected a Status error, got {other:?}"),
    }
}

/// Issue 15's hostile ACS post: an assertion signed with the attacker's
/// own key and unique junk attributes on the unsigned Response element up
/// to just under the 256 KiB base64 cap. The pre-scan's attribute limit
/// refuses it; libxml2 (quadratic in one element's attributes) never sees
/// it.
#[test]
fn junk_attributes_on_the_envelope_are_refused_by_the_structural_limits() {
    let r = issue(Opts {
        key: foreign_key(),
        ..opts()
    });
    let root = r.xml.find("<saml2p:Response ").expect("root") + "<saml2p:Response ".len();
    let budget = 256 * 1024 / 4 * 3 - r.xml.len() - 64;
    let mut junk = String::new();
    for i in 0.. {
        let attribute = format!("j{i:x}=\"\" ");
        if junk.len() + attribute.len() > budget {
            break;
        }
        junk.push_str(&attribute);
    }
    assert!(junk.matches("=\"\"").count() > 20_000);
    let hostile = b64(&format!("{}{junk}{}", &r.xml[..root], &r.xml[root..]));
    assert!(
        hostile.len() <= expect().max_body_bytes,
        "under the size cap"
    );
    let e = verify_response(&hostile, &expect(), Utc::now()).expect_err("refused");
    assert!(
        matches!(e, Error::Limit(XmlLimit::AttributesPerElement(32))),
        "{e}"
    );
    assert_eq!(e.kind(), "xml_limit");
}

/// The bulkiest real shape, well inside the limits: 40 single-valued
/// attributes and a group attribute with 1,000 values (ADFS sends every
/// group of the user; each value here carries `xmlns:xs` and `xmlns:xsi`,
/// as Okta and pysaml2 send them), response and assertion both signed.
#[test]
fn a_response_with_a_thousand_groups_passes_the_structural_limits() {
    let mut attributes: Vec<(String, Vec<String>)> = (0..40)
        .map(|i| (format!("attribute{i}"), vec![format!("value {i}")]))
        .collect();
    attributes.push((
        "groups".into(),
        (0..1_000).map(|i| format!("group-{i:04}")).collect(),
    ));
    let now = Utc::now();
    let attributes = released(&attributes);
    let r = build_response(
        &idp_cfg(),
        idp_key(),
        &ResponseParams {
            sp_entity_id: SP,
            acs_url: ACS,
            in_response_to: Some(REQ_ID),
            name_id: "alice@example.test",
            name_id_format: NameIdFormat::EmailAddress,
            name_qualifier: None,
            sp_name_qualifier: None,
            session_index: "sess-42",
            authn_context: AuthnContextClass::PasswordProtectedTransport,
            authn_instant: now,
            attributes: &attributes,
            validity: Duration::from_secs(300),
            clock_skew: Duration::from_secs(60),
            now,
            sign_assertion: true,
            sign_response: true,
            encrypt_for: None,
        },
    )
    .expect("build response");
    let v = verify_response(&r.post_form_value(), &expect(), Utc::now()).expect("accepted");
    let groups = v
        .attributes
        .iter()
        .find(|(n, _)| n == "groups")
        .expect("groups");
    assert_eq!(groups.1.len(), 1_000);
    assert_eq!(v.attributes.len(), 41);
}

/// `Attr="value"` of the first `<…:element` in `xml`.
fn attribute_of<'x>(xml: &'x str, element: &str, attr: &str) -> &'x str {
    let start = xml
        .find(&format!(":{element} "))
        .unwrap_or_else(|| panic!("no {element} in {xml}"));
    let tag = &xml[start..start + xml[start..].find('>').expect("tag end")];
    let value = tag
        .split_once(&format!(" {attr}=\""))
        .unwrap_or_else(|| panic!("no {attr} on {tag}"))
        .1;
    &value[..value.find('"').expect("quote")]
}

#[test]
fn not_before_is_backdated_by_the_clock_skew_and_the_qualifiers_travel() {
    let now = Utc::now();
    let r = build_response(
        &idp_cfg(),
        idp_key(),
        &ResponseParams {
            sp_entity_id: SP,
            acs_url: ACS,
            in_response_to: Some(REQ_ID),
            name_id: "a1b2c3",
            name_id_format: NameIdFormat::Persistent,
            name_qualifier: Some(IDP),
            sp_name_qualifier: Some(SP),
            session_index: "sess-42",
            authn_context: AuthnContextClass::PasswordProtectedTransport,
            authn_instant: now,
            attributes: &[],
            validity: Duration::from_secs(300),
            clock_skew: Duration::from_secs(75),
            now,
            sign_assertion: true,
            sign_response: false,
            encrypt_for: None,
        },
    )
    .expect("build response");
    let not_before: DateTime<Utc> = attribute_of(&r.xml, "Conditions", "NotBefore")
        .parse()
        .expect("NotBefore");
    let issued: DateTime<Utc> = attribute_of(&r.xml, "Assertion", "IssueInstant")
        .parse()
        .expect("IssueInstant");
    // samael writes the two instants with different precision.
    assert_eq!((issued - not_before).num_seconds(), 75);
    let v = verify_response(&r.post_form_value(), &expect(), now).expect("accepted");
    assert_eq!(v.name_id, "a1b2c3");
    assert_eq!(
        v.name_id_format.as_deref(),
        Some(NameIdFormat::Persistent.uri())
    );
    assert_eq!(v.name_qualifier.as_deref(), Some(IDP));
    assert_eq!(v.sp_name_qualifier.as_deref(), Some(SP));
    // Without qualifiers the NameID carries none.
    let plain =
        verify_response(&issue(opts()).post_form_value(), &expect(), Utc::now()).expect("accepted");
    assert_eq!(
        (plain.name_qualifier, plain.sp_name_qualifier),
        (None, None)
    );
}

#[test]
fn invalid_name_id_policy_is_a_signed_requester_status() {
    let status = build_status_response(
        &idp_cfg(),
        idp_key(),
        &StatusParams {
            acs_url: ACS,
            in_response_to: Some(REQ_ID),
            top_level: STATUS_REQUESTER,
            second_level: Some(STATUS_INVALID_NAME_ID_POLICY),
            now: Utc::now(),
        },
    )
    .expect("status response");
    assert!(!status.xml.contains("Assertion"), "{}", status.xml);
    // The signature verifies with the IdP's certificate and covers the
    // nested status code, and no other key verifies it.
    let verified = |key: &SigningKey| {
        use samael::crypto::{CertificateDer, Crypto, CryptoProvider, ReduceMode};
        Crypto::reduce_xml_to_signed(
            &status.xml,
            &[CertificateDer::from(key.cert_der().expect("cert"))],
            ReduceMode::ValidateAndMarkNoAncestors,
        )
    };
    let signed = verified(idp_key()).expect("signed by the IdP");
    assert!(signed.contains(STATUS_INVALID_NAME_ID_POLICY), "{signed}");
    assert!(verified(foreign_key()).is_err());
    match verify_xml(&status.xml, &expect()) {
        Err(Error::Status { code }) => assert_eq!(
            code,
            format!("{STATUS_REQUESTER} / {STATUS_INVALID_NAME_ID_POLICY}")
        ),
        other => panic!("expected a Status error, got {other:?}"),
    }
}
