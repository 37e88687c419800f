//! Single Logout messages with real keys: LogoutRequest / LogoutResponse
//! over HTTP-Redirect (query signature) and HTTP-POST (enveloped XML
//! signature), the refusals that matter, and schema order of what we emit.

use std::io::Read as _;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use portcullis_saml::*;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

const SP: &str = "https://gateway.example.test/saml/metadata";
const IDP_SLO: &str = "https://idp.example.test/saml/slo";
const SP_SLO: &str = "https://gateway.example.test/saml/slo";
const NAME_ID: &str = "alice&bob@example.test";
const EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const LIMIT: usize = 64 * 1024;
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const PARTIAL: &str = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout";

fn key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate_self_signed("slo", 30).expect("key"))
}

fn foreign_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate_self_signed("attacker", 30).expect("foreign key"))
}

fn certs() -> Vec<Vec<u8>> {
    vec![key().cert_der().expect("cert")]
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn req_params(now: DateTime<Utc>) -> LogoutRequestParams<'static> {
    LogoutRequestParams {
        issuer: SP,
        destination: IDP_SLO,
        name_id: NAME_ID,
        name_id_format: Some(EMAIL),
        name_qualifier: None,
        sp_name_qualifier: None,
        session_index: Some("_sess<1>"),
        relay_state: Some("/bye?x=1&y=2 ü"),
        now,
        validity: Duration::from_secs(300),
    }
}

fn resp_params(status: LogoutStatus) -> LogoutResponseParams<'static> {
    LogoutResponseParams {
        issuer: "https://idp.example.test/saml/metadata",
        destination: SP_SLO,
        in_response_to: Some("_req1"),
        status,
        relay_state: Some("/done"),
        now: Utc::now(),
    }
}

fn query_of(url: &str) -> &str {
    url.split_once('?').expect("query").1
}

/// Truncate to the millisecond precision the wire format carries.
fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).expect("in range")
}

/// The XML inside a Redirect URL's SAMLRequest/SAMLResponse.
fn inflate_param(url: &str, param: &str) -> String {
    let value = url::form_urlencoded::parse(query_of(url).as_bytes())
        .find(|(k, _)| k == param)
        .map(|(_, v)| v.into_owned())
        .expect("param");
    let compressed = b64().decode(value).expect("b64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(compressed.as_slice())
        .read_to_string(&mut xml)
        .expect("inflate");
    xml
}

/// (namespace, local name) of the root's direct children, in order.
fn root_children(xml: &str) -> Vec<(String, String)> {
    let mut reader = quick_xml::NsReader::from_str(xml);
    let mut depth = 0usize;
    let mut out = Vec::new();
    loop {
        let (ns, event) = reader.read_resolved_event().expect("well-formed");
        let (start, empty) = match event {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::End(_) => {
                depth -= 1;
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        if depth == 1 {
            let ns = match ns {
                ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
                _ => String::new(),
            };
            let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
            out.push((ns, local));
        }
        if !empty {
            depth += 1;
        }
    }
    out
}

fn names(children: &[(String, String)]) -> Vec<&str> {
    children.iter().map(|(_, l)| l.as_str()).collect()
}

#[test]
fn redirect_logout_request_round_trip() {
    let now = Utc::now();
    let r = build_logout_request_redirect(&req_params(now), key()).expect("built");
    assert!(r.url.starts_with(&format!("{IDP_SLO}?SAMLRequest=")));
    let keys: Vec<&str> = query_of(&r.url)
        .split('&')
        .map(|kv| kv.split('=').next().unwrap_or(""))
        .collect();
    assert_eq!(keys, ["SAMLRequest", "RelayState", "SigAlg", "Signature"]);

    let p = parse_logout_request_redirect(query_of(&r.url), Some(&certs()), LIMIT).expect("parsed");
    assert!(p.signature_verified);
    assert_eq!(p.id, r.request_id);
    assert_eq!(p.issuer.as_deref(), Some(SP));
    assert_eq!(p.destination.as_deref(), Some(IDP_SLO));
    assert_eq!(p.name_id, NAME_ID);
    assert_eq!(p.name_id_format.as_deref(), Some(EMAIL));
    assert_eq!(p.session_indexes, ["_sess<1>"]);
    assert_eq!(p.issue_instant, millis(now));
    assert_eq!(
        p.not_on_or_after,
        Some(millis(now) + chrono::Duration::seconds(300))
    );
    assert_eq!(p.relay_state.as_deref(), Some("/bye?x=1&y=2 ü"));
    p.check_time(now, Duration::from_secs(60)).expect("fresh");
    assert!(matches!(
        p.check_time(
            now + chrono::Duration::seconds(400),
            Duration::from_secs(60)
        ),
        Err(Error::Condition(ConditionFailure::Expired))
    ));

    // Parse-only (to find the peer by Issuer) works without certs.
    let unverified = parse_logout_request_redirect(query_of(&r.url), None, LIMIT).expect("parsed");
    assert!(!unverified.signature_verified);
    assert_eq!(unverified.issuer.as_deref(), Some(SP));
}

#[test]
fn redirect_logout_request_xml_is_in_schema_order() {
    let r = build_logout_request_redirect(&req_params(Utc::now()), key()).expect("built");
    let xml = inflate_param(&r.url, "SAMLRequest");
    assert!(xml.starts_with("<samlp:LogoutRequest "));
    // The Redirect binding signs the query, never the XML (bindings §3.4.4.1).
    assert_eq!(
        names(&root_children(&xml)),
        ["Issuer", "NameID", "SessionIndex"]
    );
    let children = root_children(&xml);
    assert_eq!(
        children.first().map(|c| c.0.as_str()),
        Some("urn:oasis:names:tc:SAML:2.0:assertion")
    );
    assert_eq!(
        children.last().map(|c| c.0.as_str()),
        Some("urn:oasis:names:tc:SAML:2.0:protocol")
    );
    // A destination with a query string keeps it.
    let mut p = req_params(Utc::now());
    p.destination = "https://idp.example.test/slo?tenant=a";
    let r = build_logout_request_redirect(&p, key()).expect("built");
    assert!(r
        .url
        .starts_with("https://idp.example.test/slo?tenant=a&SAMLRequest="));
}

#[test]
fn post_logout_request_round_trip_and_schema_order() {
    let now = Utc::now();
    let mut params = req_params(now);
    params.name_id_format = None;
    params.session_index = None;
    let m = build_logout_request_post(&params, key()).expect("built");
    assert_eq!(b64().decode(&m.form_value).expect("b64"), m.xml.as_bytes());
    let p = parse_logout_request_post(&m.form_value, Some("rs"), Some(&certs()), LIMIT)
        .expect("verified");
    assert!(p.signature_verified);
    assert_eq!(p.id, m.id);
    assert_eq!(p.name_id, NAME_ID);
    assert_eq!(p.name_id_format, None);
    assert!(p.session_indexes.is_empty());
    assert_eq!(p.relay_state.as_deref(), Some("rs"));

    let m = build_logout_request_post(&req_params(now), key()).expect("built");
    assert_eq!(
        names(&root_children(&m.xml)),
        ["Issuer", "Signature", "NameID", "SessionIndex"]
    );
    let p =
        parse_logout_request_post(&m.form_value, None, Some(&certs()), LIMIT).expect("verified");
    assert_eq!(p.session_indexes, ["_sess<1>"]);
    assert_eq!(p.name_id_format.as_deref(), Some(EMAIL));
    assert_eq!(p.issue_instant, millis(now));
}

#[test]
fn logout_response_round_trips_over_both_bindings() {
    let url =
        build_logout_response_redirect(&resp_params(LogoutStatus::Success), key()).expect("built");
    assert!(url.starts_with(&format!("{SP_SLO}?SAMLResponse=")));
    let r = parse_logout_response_redirect(query_of(&url), Some(&certs()), LIMIT).expect("parsed");
    assert!(r.signature_verified);
    assert!(r.is_success());
    assert!(!r.is_partial());
    assert_eq!(r.status_top, SUCCESS);
    assert_eq!(r.status_second, None);
    assert_eq!(r.in_response_to.as_deref(), Some("_req1"));
    assert_eq!(
        r.issuer.as_deref(),
        Some("https://idp.example.test/saml/metadata")
    );
    assert_eq!(r.destination.as_deref(), Some(SP_SLO));
    assert_eq!(r.relay_state.as_deref(), Some("/done"));

    let m =
        build_logout_response_post(&resp_params(LogoutStatus::Responder), key()).expect("built");
    assert_eq!(
        names(&root_children(&m.xml)),
        ["Issuer", "Signature", "Status"]
    );
    let r = parse_logout_response_post(&m.form_value, Some("/done"), Some(&certs()), LIMIT)
        .expect("parsed");
    assert!(r.signature_verified);
    assert_eq!(r.id, m.id);
    assert!(!r.is_success());
    assert_eq!(r.status_top, LogoutStatus::Responder.top_level_uri());
    assert_eq!(r.relay_state.as_deref(), Some("/done"));
}

#[test]
fn partial_logout_status_round_trips() {
    let url = build_logout_response_redirect(&resp_params(LogoutStatus::PartialLogout), key())
        .expect("built");
    let r = parse_logout_response_redirect(query_of(&url), Some(&certs()), LIMIT).expect("parsed");
    assert!(r.is_success());
    assert!(r.is_partial());
    assert_eq!(r.status_top, SUCCESS);
    assert_eq!(r.status_second.as_deref(), Some(PARTIAL));

    let m = build_logout_response_post(&resp_params(LogoutStatus::PartialLogout), key())
        .expect("built");
    let r = parse_logout_response_post(&m.form_value, None, Some(&certs()), LIMIT).expect("parsed");
    assert!(r.is_partial());
}

#[test]
fn tampered_or_foreign_redirect_signatures_are_refused() {
    let r = build_logout_request_redirect(&req_params(Utc::now()), key()).expect("built");
    let q = query_of(&r.url);
    let tampered = q.replace("RelayState=%2Fbye", "RelayState=%2Fevil");
    assert_ne!(tampered, q);
    assert!(matches!(
        parse_logout_request_redirect(&tampered, Some(&certs()), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
    let foreign = [foreign_key().cert_der().expect("der")];
    assert!(matches!(
        parse_logout_request_redirect(q, Some(&foreign), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
    let unsigned = q.split("&SigAlg=").next().expect("prefix");
    assert!(matches!(
        parse_logout_request_redirect(unsigned, Some(&certs()), LIMIT),
        Err(Error::Signature(SignatureFailure::Missing))
    ));
    let url = build_logout_response_redirect(&resp_params(LogoutStatus::Success), foreign_key())
        .expect("built");
    assert!(matches!(
        parse_logout_response_redirect(query_of(&url), Some(&certs()), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
}

#[test]
fn sha1_sig_alg_is_refused() {
    let r = build_logout_request_redirect(&req_params(Utc::now()), key()).expect("built");
    let q = query_of(&r.url);
    let sha1 = q.replace(
        "SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256",
        "SigAlg=http%3A%2F%2Fwww.w3.org%2F2000%2F09%2Fxmldsig%23rsa-sha1",
    );
    assert_ne!(sha1, q);
    assert!(matches!(
        parse_logout_request_redirect(&sha1, Some(&certs()), LIMIT),
        Err(Error::Signature(SignatureFailure::WeakAlgorithm(alg)))
            if alg == "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
    ));
}

#[test]
fn post_signature_failures_are_refused() {
    // Unsigned while the peer must sign.
    let unsigned = format!(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_u\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\"><saml:Issuer>{SP}</saml:Issuer><saml:NameID>alice</saml:NameID></samlp:LogoutRequest>"
    );
    let unsigned_b64 = b64().encode(&unsigned);
    assert!(matches!(
        parse_logout_request_post(&unsigned_b64, None, Some(&certs()), LIMIT),
        Err(Error::Signature(SignatureFailure::Missing))
    ));
    let p = parse_logout_request_post(&unsigned_b64, None, None, LIMIT).expect("parse only");
    assert!(!p.signature_verified);
    assert_eq!(p.name_id, "alice");

    // Signed by a key the peer's metadata does not name.
    let m = build_logout_request_post(&req_params(Utc::now()), foreign_key()).expect("built");
    assert!(matches!(
        parse_logout_request_post(&m.form_value, None, Some(&certs()), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));

    // NameID changed after signing: log out someone else.
    let m = build_logout_request_post(&req_params(Utc::now()), key()).expect("built");
    let escaped = "alice&amp;bob@example.test";
    assert!(m.xml.contains(escaped));
    let tampered = b64().encode(m.xml.replace(escaped, "mallory@example.test"));
    assert!(matches!(
        parse_logout_request_post(&tampered, None, Some(&certs()), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));

    // Status flipped after signing.
    let m =
        build_logout_response_post(&resp_params(LogoutStatus::Responder), key()).expect("built");
    let tampered = b64().encode(
        m.xml
            .replace("urn:oasis:names:tc:SAML:2.0:status:Responder", SUCCESS),
    );
    assert!(matches!(
        parse_logout_response_post(&tampered, None, Some(&certs()), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
}

#[test]
fn doctype_oversize_and_wrong_messages_are_refused() {
    let m = build_logout_request_post(&req_params(Utc::now()), key()).expect("built");
    let evil = b64().encode(format!(
        "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{}",
        m.xml
    ));
    for certs in [None, Some(certs())] {
        assert!(matches!(
            parse_logout_request_post(&evil, None, certs.as_deref(), LIMIT),
            Err(Error::Xml(_))
        ));
    }
    assert!(matches!(
        parse_logout_request_post(&m.form_value, None, Some(&certs()), 100),
        Err(Error::Size { .. })
    ));
    let r = build_logout_request_redirect(&req_params(Utc::now()), key()).expect("built");
    assert!(matches!(
        parse_logout_request_redirect(query_of(&r.url), Some(&certs()), 100),
        Err(Error::Size { .. })
    ));

    // A correctly signed AuthnRequest is not a LogoutRequest.
    let authn = build_redirect_authn_request(
        &SpConfig {
            entity_id: SP.into(),
            acs_url: "https://gateway.example.test/saml/acs".into(),
            slo_url: SP_SLO.into(),
        },
        key(),
        &AuthnRequestParams {
            idp_sso_url: "https://idp.example.test/saml/sso",
            relay_state: None,
            force_authn: false,
            name_id_format: None,
            now: Utc::now(),
        },
    )
    .expect("authn request");
    assert!(matches!(
        parse_logout_request_redirect(query_of(&authn.url), Some(&certs()), LIMIT),
        Err(Error::Xml(_))
    ));
    // Nor is a LogoutResponse, over either binding.
    let m = build_logout_response_post(&resp_params(LogoutStatus::Success), key()).expect("built");
    assert!(matches!(
        parse_logout_request_post(&m.form_value, None, Some(&certs()), LIMIT),
        Err(Error::Xml(_))
    ));
    let req = build_logout_request_post(&req_params(Utc::now()), key()).expect("built");
    assert!(matches!(
        parse_logout_response_post(&req.form_value, None, None, LIMIT),
        Err(Error::Xml(_))
    ));
}

#[test]
fn malformed_logout_requests_are_refused() {
    let req = |attrs: &str, body: &str| {
        b64().encode(format!(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" {attrs}>{body}</samlp:LogoutRequest>"
        ))
    };
    let ok_attrs = "ID=\"_x\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\"";
    let name_id = "<saml:NameID>alice</saml:NameID>";
    assert!(parse_logout_request_post(&req(ok_attrs, name_id), None, None, LIMIT).is_ok());
    assert!(matches!(
        parse_logout_request_post(
            &req(
                "Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\"",
                name_id
            ),
            None,
            None,
            LIMIT
        ),
        Err(Error::Xml(_))
    ));
    assert!(matches!(
        parse_logout_request_post(
            &req(
                "ID=\"_x\" Version=\"1.1\" IssueInstant=\"2026-01-01T00:00:00Z\"",
                name_id
            ),
            None,
            None,
            LIMIT
        ),
        Err(Error::Unsupported(_))
    ));
    // No NameID, or two of them (which would a lenient reader pick?).
    assert!(matches!(
        parse_logout_request_post(&req(ok_attrs, ""), None, None, LIMIT),
        Err(Error::Xml(_))
    ));
    assert!(matches!(
        parse_logout_request_post(
            &req(
                ok_attrs,
                &format!("{name_id}<saml:NameID>bob</saml:NameID>")
            ),
            None,
            None,
            LIMIT
        ),
        Err(Error::Xml(_))
    ));
    // Several SessionIndex elements are all kept.
    let p = parse_logout_request_post(
        &req(
            ok_attrs,
            &format!("{name_id}<samlp:SessionIndex>a</samlp:SessionIndex><samlp:SessionIndex>b</samlp:SessionIndex>"),
        ),
        None,
        None,
        LIMIT,
    )
    .expect("parsed");
    assert_eq!(p.session_indexes, ["a", "b"]);
}

#[test]
fn foreign_prefixes_and_character_references_are_read() {
    // Shibboleth-style saml2p/saml2 prefixes, a default namespace on the
    // root, and text with references: the reader resolves namespaces, not prefixes.
    let xml = "<LogoutResponse xmlns=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00.5Z\" InResponseTo=\"_q\"><saml2:Issuer xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\">https://sp.example.test/?a=1&amp;b=&#50;</saml2:Issuer><Status><StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Requester\"><StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:RequestDenied\"/></StatusCode><StatusMessage>no</StatusMessage></Status></LogoutResponse>";
    let r = parse_logout_response_post(&b64().encode(xml), None, None, LIMIT).expect("parsed");
    assert_eq!(
        r.issuer.as_deref(),
        Some("https://sp.example.test/?a=1&b=2")
    );
    assert_eq!(r.in_response_to.as_deref(), Some("_q"));
    assert!(!r.is_success());
    assert_eq!(
        r.status_second.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:status:RequestDenied")
    );
    // The same element names in the wrong namespace are not a LogoutResponse.
    let wrong_ns = xml.replace(
        "xmlns=\"urn:oasis:names:tc:SAML:2.0:protocol\"",
        "xmlns=\"urn:example:other\"",
    );
    assert!(matches!(
        parse_logout_response_post(&b64().encode(wrong_ns), None, None, LIMIT),
        Err(Error::Xml(_))
    ));
}

/// Logout messages are small, so their structural limits are tight: the
/// IdP-facing parsers refuse oversize shapes before libxml2 or xmlsec
/// parse them, signed or not, over either binding.
#[test]
fn logout_messages_over_the_structural_limits_are_refused_before_parsing() {
    let m = build_logout_request_post(&req_params(Utc::now()), key()).expect("built");
    let root = m.xml.find("<samlp:LogoutRequest ").expect("root") + "<samlp:LogoutRequest ".len();
    let junk: String = (0..2_000).map(|i| format!("j{i}=\"\" ")).collect();
    let stuffed = format!("{}{junk}{}", &m.xml[..root], &m.xml[root..]);
    for certs in [None, Some(certs())] {
        match parse_logout_request_post(&b64().encode(&stuffed), None, certs.as_deref(), LIMIT) {
            Err(Error::Limit(XmlLimit::AttributesPerElement(32))) => {}
            other => panic!("not refused by the attribute limit: {other:?}"),
        }
    }
    // 300 SessionIndexes: a real request names one or a few.
    let close = m.xml.rfind("</samlp:LogoutRequest>").expect("close");
    let many = "<samlp:SessionIndex>s</samlp:SessionIndex>".repeat(300);
    let long = format!("{}{many}{}", &m.xml[..close], &m.xml[close..]);
    let e = parse_logout_request_post(&b64().encode(&long), None, Some(&certs()), LIMIT)
        .expect_err("refused");
    assert!(matches!(e, Error::Limit(XmlLimit::Elements(256))), "{e}");
    assert_eq!(e.kind(), "xml_limit");
    // A message over the tighter size cap for small messages, even within
    // the caller's encoded cap.
    let padded = format!(
        "{}{}{}",
        &m.xml[..close],
        " ".repeat(40 * 1024),
        &m.xml[close..]
    );
    assert!(matches!(
        parse_logout_request_post(&b64().encode(&padded), None, None, LIMIT),
        Err(Error::Size { limit, .. }) if limit == XmlLimits::MESSAGE.max_bytes
    ));
}

#[test]
fn a_logout_request_repeats_every_name_id_attribute() {
    let now = Utc::now();
    let persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
    let params = LogoutRequestParams {
        name_id_format: Some(persistent),
        name_qualifier: Some("https://idp.example.test/\"q\""),
        sp_name_qualifier: Some(SP),
        ..req_params(now)
    };
    let r = build_logout_request_redirect(&params, key()).expect("built");
    let p = parse_logout_request_redirect(query_of(&r.url), Some(&certs()), LIMIT).expect("parsed");
    assert_eq!(p.name_id, NAME_ID);
    assert_eq!(p.name_id_format.as_deref(), Some(persistent));
    assert_eq!(
        p.name_qualifier.as_deref(),
        Some("https://idp.example.test/\"q\"")
    );
    assert_eq!(p.sp_name_qualifier.as_deref(), Some(SP));
    let plain = build_logout_request_redirect(&req_params(now), key()).expect("built");
    let p = parse_logout_request_redirect(query_of(&plain.url), Some(&certs()), LIMIT).expect("ok");
    assert_eq!((p.name_qualifier, p.sp_name_qualifier), (None, None));
}

fn legacy(certs: &[Vec<u8>], allow_sha1: bool) -> Option<PeerSigners<'_>> {
    Some(PeerSigners { certs, allow_sha1 })
}

fn is_weak(result: Result<impl std::fmt::Debug>) -> bool {
    matches!(
        result,
        Err(Error::Signature(SignatureFailure::WeakAlgorithm(_)))
    )
}

#[test]
fn sha1_redirect_messages_need_the_peers_opt_in() {
    let certs = certs();
    let r = build_logout_request_redirect(&req_params(Utc::now()), key()).expect("built");
    let q = super::sha1::resign_query(query_of(&r.url), key());
    assert!(is_weak(parse_logout_request_redirect(
        &q,
        Some(&certs),
        LIMIT
    )));
    assert!(is_weak(parse_logout_request_redirect_with(
        &q,
        legacy(&certs, false),
        LIMIT
    )));
    let parsed =
        parse_logout_request_redirect_with(&q, legacy(&certs, true), LIMIT).expect("opted in");
    assert!(parsed.signature_verified);
    assert_eq!(parsed.name_id, NAME_ID);
    // The opt-in relaxes the algorithm, not the key.
    let foreign = [foreign_key().cert_der().expect("der")];
    assert!(matches!(
        parse_logout_request_redirect_with(&q, legacy(&foreign, true), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));

    let url =
        build_logout_response_redirect(&resp_params(LogoutStatus::Success), key()).expect("built");
    let q = super::sha1::resign_query(query_of(&url), key());
    assert!(is_weak(parse_logout_response_redirect(
        &q,
        Some(&certs),
        LIMIT
    )));
    let parsed =
        parse_logout_response_redirect_with(&q, legacy(&certs, true), LIMIT).expect("opted in");
    assert!(parsed.signature_verified && parsed.is_success());
}

#[test]
fn sha1_post_messages_need_the_peers_opt_in() {
    let certs = certs();
    let m = build_logout_request_post(&req_params(Utc::now()), key()).expect("built");
    let form = super::sha1::resign_form_value(&m.xml, key());
    assert!(is_weak(parse_logout_request_post(
        &form,
        None,
        Some(&certs),
        LIMIT
    )));
    assert!(is_weak(parse_logout_request_post_with(
        &form,
        None,
        legacy(&certs, false),
        LIMIT
    )));
    let parsed =
        parse_logout_request_post_with(&form, None, legacy(&certs, true), LIMIT).expect("opted in");
    assert!(parsed.signature_verified);
    assert_eq!(parsed.id, m.id);

    let m = build_logout_response_post(&resp_params(LogoutStatus::Success), key()).expect("built");
    let form = super::sha1::resign_form_value(&m.xml, key());
    assert!(is_weak(parse_logout_response_post(
        &form,
        None,
        Some(&certs),
        LIMIT
    )));
    let parsed = parse_logout_response_post_with(&form, None, legacy(&certs, true), LIMIT)
        .expect("opted in");
    assert!(parsed.signature_verified && parsed.is_success());
    // A SHA-1 signature that does not verify is still refused.
    let tampered = super::sha1::resign_xml(&m.xml, key()).replace(SP_SLO, "https://evil.test/");
    let tampered = b64().encode(tampered);
    assert!(matches!(
        parse_logout_response_post_with(&tampered, None, legacy(&certs, true), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
}
