//! The SOAP binding with real keys: a signed LogoutRequest and
//! LogoutResponse in SOAP 1.1 envelopes, the service provider's check of
//! one from its IdP, and the refusals (unsigned, tampered, foreign key,
//! an envelope that is not exactly one message).

use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use portcullis_saml::*;

const IDP: &str = "https://idp.example.test/metadata";
const SP: &str = "https://app.example.test/_portcullis/saml/metadata";
const SP_SLO: &str = "https://app.example.test/_portcullis/saml/slo";
const LIMIT: usize = 64 * 1024;

fn idp_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate_self_signed("soap idp", 30).expect("key"))
}

fn foreign_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate_self_signed("soap attacker", 30).expect("key"))
}

fn certs() -> Vec<Vec<u8>> {
    vec![idp_key().cert_der().expect("cert")]
}

fn expect(certs: &[Vec<u8>]) -> LogoutExpectations<'_> {
    LogoutExpectations {
        peer_entity_id: IDP,
        peer_certs: certs,
        allow_sha1: false,
        our_slo_url: SP_SLO,
        max_bytes: LIMIT,
        clock_skew: Duration::from_secs(180),
    }
}

fn request_by(key: &SigningKey) -> SoapMessage {
    build_logout_request_soap(
        &LogoutRequestParams {
            issuer: IDP,
            destination: SP_SLO,
            name_id: "bob@example.test",
            name_id_format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"),
            name_qualifier: Some(IDP),
            sp_name_qualifier: Some(SP),
            session_index: Some("102sess"),
            relay_state: None,
            now: Utc::now(),
            validity: Duration::from_secs(120),
        },
        key,
    )
    .expect("request")
}

#[test]
fn a_signed_soap_logout_request_is_accepted_from_the_idp() {
    let soap = request_by(idp_key());
    assert!(soap.envelope.contains(NS_SOAP_ENV), "{}", soap.envelope);
    let certs = certs();
    let message = verify_logout_message(
        LogoutBinding::Soap {
            envelope: &soap.envelope,
        },
        &expect(&certs),
        Utc::now(),
    )
    .expect("verified");
    let LogoutMessage::Request(request) = message else {
        panic!("not a request: {message:?}");
    };
    assert!(request.signature_verified);
    assert_eq!(request.id, soap.id);
    assert_eq!(request.name_id, "bob@example.test");
    assert_eq!(request.sp_name_qualifier.as_deref(), Some(SP));
    assert_eq!(request.session_indexes, ["102sess"]);
}

#[test]
fn unsigned_tampered_and_foreign_soap_requests_are_refused() {
    let certs = certs();
    let check = |envelope: &str| {
        verify_logout_message(
            LogoutBinding::Soap { envelope },
            &expect(&certs),
            Utc::now(),
        )
    };
    let soap = request_by(idp_key());
    // The same message without its signature: SOAP has no other.
    let start = soap.envelope.find("<ds:Signature").expect("signature");
    let end = soap.envelope.find("</ds:Signature>").expect("end") + "</ds:Signature>".len();
    let unsigned = format!("{}{}", &soap.envelope[..start], &soap.envelope[end..]);
    assert!(matches!(
        check(&unsigned),
        Err(Error::Signature(SignatureFailure::Missing))
    ));
    let tampered = soap
        .envelope
        .replace("bob@example.test", "eve@example.test");
    assert!(matches!(
        check(&tampered),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
    let foreign = request_by(foreign_key());
    assert!(matches!(
        check(&foreign.envelope),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
    // A valid message beside it in the Body is one message too many.
    let body = soap.envelope.find("<soap-env:Body>").expect("body") + "<soap-env:Body>".len();
    let message_end = soap.envelope.find("</soap-env:Body>").expect("body end");
    let message = &soap.envelope[body..message_end];
    let two = soap
        .envelope
        .replacen(message, &format!("{message}{message}"), 1);
    assert!(
        matches!(check(&two), Err(Error::Xml(_))),
        "{:?}",
        check(&two)
    );
    let no_body = soap.envelope.replace("soap-env:Body", "soap-env:Header");
    assert!(matches!(check(&no_body), Err(Error::Xml(_))));
    assert!(matches!(check("<not-soap/>"), Err(Error::Xml(_))));
    assert!(matches!(
        check("<unclosed"),
        Err(Error::Xml(_) | Error::Limit(_))
    ));
}

#[test]
fn soap_logout_responses_verify_when_signed() {
    let answer = build_logout_response_soap(
        &LogoutResponseParams {
            issuer: SP,
            destination: "",
            in_response_to: Some("_req"),
            status: LogoutStatus::Success,
            relay_state: None,
            now: Utc::now(),
        },
        idp_key(),
    )
    .expect("response");
    assert!(
        !answer.envelope.contains("Destination="),
        "{}",
        answer.envelope
    );
    let certs = certs();
    let parsed =
        parse_logout_response_soap(&answer.envelope, Some(PeerSigners::modern(&certs)), LIMIT)
            .expect("parsed");
    assert!(parsed.signature_verified && parsed.is_success());
    assert_eq!(parsed.in_response_to.as_deref(), Some("_req"));
    let tampered = answer.envelope.replace("_req", "_other");
    assert!(matches!(
        parse_logout_response_soap(&tampered, Some(PeerSigners::modern(&certs)), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
    // Unsigned is read, and says so.
    let unsigned = soap_envelope(&format!(
        "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_r\" Version=\"2.0\" \
         IssueInstant=\"2026-01-01T00:00:00Z\" InResponseTo=\"_req\"><saml:Issuer>{SP}</saml:Issuer>\
         <samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>\
         </samlp:LogoutResponse>"
    ));
    let parsed = parse_logout_response_soap(&unsigned, Some(PeerSigners::modern(&certs)), LIMIT)
        .expect("parsed");
    assert!(!parsed.signature_verified && parsed.is_success());
    // A SOAP Fault is not a LogoutResponse.
    let fault = soap_fault(SoapFaultCode::Client, "refused");
    assert!(parse_logout_response_soap(&fault, None, LIMIT).is_err());
}

#[test]
fn sp_metadata_advertises_soap_logout_and_peers_read_it() {
    let key = SigningKey::generate_self_signed("soap sp", 1).expect("key");
    let xml = sp_metadata_xml(
        &SpConfig {
            entity_id: SP.into(),
            acs_url: "https://app.example.test/_portcullis/saml/acs".into(),
            slo_url: SP_SLO.into(),
        },
        &key,
    )
    .expect("metadata");
    assert!(xml.contains(SOAP_BINDING), "{xml}");
    let meta = parse_sp_metadata(&xml).expect("parse");
    assert_eq!(meta.soap_slo_url.as_deref(), Some(SP_SLO));
    assert_eq!(meta.slo_url.as_deref(), Some(SP_SLO));
}
