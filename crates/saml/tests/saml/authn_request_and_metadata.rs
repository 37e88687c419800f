//! AuthnRequest round trip over the HTTP-Redirect binding (SP signs the
//! query string, IdP verifies it with the SP cert), POST parsing, metadata
//! and key loading.

use std::io::Write as _;
use std::sync::OnceLock;

use base64::Engine as _;
use chrono::Utc;
use portcullis_saml::*;

const SP: &str = "https://gateway.example.test/saml/metadata";
const ACS: &str = "https://gateway.example.test/saml/acs";
const IDP_SSO: &str = "https://idp.example.test/saml/sso";
const LIMIT: usize = 64 * 1024;

fn sp_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate_self_signed("sp", 30).expect("sp key"))
}

fn sp_cfg() -> SpConfig {
    SpConfig {
        entity_id: SP.into(),
        acs_url: ACS.into(),
        slo_url: "https://gateway.example.test/saml/slo".into(),
    }
}

fn redirect(relay_state: Option<&str>) -> RedirectRequest {
    build_redirect_authn_request(
        &sp_cfg(),
        sp_key(),
        &AuthnRequestParams {
            idp_sso_url: IDP_SSO,
            relay_state,
            force_authn: true,
            name_id_format: Some(NameIdFormat::EmailAddress.uri()),
            now: Utc::now(),
        },
    )
    .expect("build redirect")
}

fn query_of(url: &str) -> &str {
    url.split_once('?').expect("query").1
}

fn sp_certs() -> Vec<Vec<u8>> {
    vec![sp_key().cert_der().expect("cert")]
}

#[test]
fn redirect_authn_request_round_trip() {
    let r = redirect(Some("/app?x=1&y=2 ü"));
    assert!(r.url.starts_with(&format!("{IDP_SSO}?SAMLRequest=")));
    let q = query_of(&r.url);
    // Parameter order is fixed by bindings §3.4.4.1.
    let keys: Vec<&str> = q
        .split('&')
        .map(|kv| kv.split('=').next().unwrap_or(""))
        .collect();
    assert_eq!(keys, ["SAMLRequest", "RelayState", "SigAlg", "Signature"]);

    let p = parse_authn_request_redirect(q, Some(&sp_certs()), LIMIT).expect("parsed");
    assert_eq!(p.id, r.request_id);
    assert_eq!(p.issuer.as_deref(), Some(SP));
    assert_eq!(p.acs_url.as_deref(), Some(ACS));
    assert_eq!(p.destination.as_deref(), Some(IDP_SSO));
    assert!(p.force_authn);
    assert!(!p.is_passive);
    assert_eq!(
        p.name_id_policy_format.as_deref(),
        Some(NameIdFormat::EmailAddress.uri())
    );
    assert_eq!(p.relay_state.as_deref(), Some("/app?x=1&y=2 ü"));
    assert!(p.signature_verified);
}

#[test]
fn redirect_without_relay_state_round_trips() {
    let r = redirect(None);
    let p =
        parse_authn_request_redirect(query_of(&r.url), Some(&sp_certs()), LIMIT).expect("parsed");
    assert_eq!(p.relay_state, None);
    assert_eq!(p.id, r.request_id);
}

#[test]
fn tampered_redirect_query_is_rejected() {
    let r = redirect(Some("/app"));
    let q = query_of(&r.url).replace("RelayState=%2Fapp", "RelayState=%2Fevil");
    assert!(matches!(
        parse_authn_request_redirect(&q, Some(&sp_certs()), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
    // Swap in another request's SAMLRequest under the first signature.
    let other = redirect(Some("/app"));
    let other_req = query_of(&other.url).split('&').next().expect("SAMLRequest");
    let orig_req = query_of(&r.url).split('&').next().expect("SAMLRequest");
    let q = query_of(&r.url).replace(orig_req, other_req);
    assert!(matches!(
        parse_authn_request_redirect(&q, Some(&sp_certs()), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
}

#[test]
fn redirect_signed_by_other_key_is_rejected() {
    let r = redirect(None);
    let other = SigningKey::generate_self_signed("other", 1).expect("key");
    assert!(matches!(
        parse_authn_request_redirect(
            query_of(&r.url),
            Some(&[other.cert_der().expect("der")]),
            LIMIT
        ),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
}

#[test]
fn unsigned_or_sha1_redirect_is_rejected_when_signature_required() {
    let r = redirect(None);
    let q = query_of(&r.url);
    let unsigned = q.split("&SigAlg=").next().expect("prefix");
    assert!(matches!(
        parse_authn_request_redirect(unsigned, Some(&sp_certs()), LIMIT),
        Err(Error::Signature(SignatureFailure::Missing))
    ));
    let sha1 = q.replace(
        "SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256",
        "SigAlg=http%3A%2F%2Fwww.w3.org%2F2000%2F09%2Fxmldsig%23rsa-sha1",
    );
    assert_ne!(sha1, q);
    assert!(matches!(
        parse_authn_request_redirect(&sha1, Some(&sp_certs()), LIMIT),
        Err(Error::Signature(SignatureFailure::WeakAlgorithm(_)))
    ));
    // Without certs the request parses but is reported unverified.
    let p = parse_authn_request_redirect(unsigned, None, LIMIT).expect("parsed");
    assert!(!p.signature_verified);
}

fn deflate_b64(xml: &str) -> String {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(xml.as_bytes()).expect("deflate");
    base64::engine::general_purpose::STANDARD.encode(enc.finish().expect("finish"))
}

#[test]
fn inflation_bomb_is_capped() {
    let xml = format!(
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_a\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\">{}</samlp:AuthnRequest>",
        " ".repeat(4 * 1024 * 1024)
    );
    let encoded = deflate_b64(&xml);
    assert!(encoded.len() < LIMIT, "compressed form is small");
    let q = format!(
        "SAMLRequest={}",
        url::form_urlencoded::byte_serialize(encoded.as_bytes()).collect::<String>()
    );
    assert!(matches!(
        parse_authn_request_redirect(&q, None, LIMIT),
        Err(Error::Size { .. })
    ));
}

const POST_REQ: &str = r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_post1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" IsPassive="true" AssertionConsumerServiceURL="https://sp.example.test/acs"><saml:Issuer>https://sp.example.test</saml:Issuer><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" AllowCreate="true"/></samlp:AuthnRequest>"#;

#[test]
fn post_authn_request_parses() {
    let b64 = base64::engine::general_purpose::STANDARD.encode(POST_REQ);
    let p = parse_authn_request_post(&b64, Some("rs"), None, LIMIT).expect("parsed");
    assert_eq!(p.id, "_post1");
    assert_eq!(p.issuer.as_deref(), Some("https://sp.example.test"));
    assert_eq!(p.acs_url.as_deref(), Some("https://sp.example.test/acs"));
    assert!(p.is_passive);
    assert!(!p.force_authn);
    assert_eq!(
        p.name_id_policy_format.as_deref(),
        Some(NameIdFormat::Persistent.uri())
    );
    assert_eq!(p.relay_state.as_deref(), Some("rs"));
}

#[test]
fn post_authn_request_with_doctype_or_oversize_is_rejected() {
    let evil = format!("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{POST_REQ}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(evil);
    assert!(matches!(
        parse_authn_request_post(&b64, None, None, LIMIT),
        Err(Error::Xml(_))
    ));
    let b64 = base64::engine::general_purpose::STANDARD.encode(POST_REQ);
    assert!(matches!(
        parse_authn_request_post(&b64, None, None, 100),
        Err(Error::Size { .. })
    ));
    let not_req = base64::engine::general_purpose::STANDARD.encode("<foo/>");
    assert!(matches!(
        parse_authn_request_post(&not_req, None, None, LIMIT),
        Err(Error::Xml(_))
    ));
}

#[test]
fn idp_metadata_describes_endpoints_and_cert() {
    let key = SigningKey::generate_self_signed("idp", 1).expect("key");
    let cfg = IdpConfig {
        entity_id: "https://idp.example.test/m?a&b".into(),
        sso_redirect_url: "https://idp.example.test/sso".into(),
        sso_post_url: "https://idp.example.test/sso/post".into(),
        slo_url: "https://idp.example.test/slo".into(),
    };
    let xml = idp_metadata_xml(&cfg, &key).expect("metadata");
    assert!(xml.contains("WantAuthnRequestsSigned=\"true\""));
    let md: samael::metadata::EntityDescriptor = xml.parse().expect("samael parses our metadata");
    assert_eq!(
        md.entity_id.as_deref(),
        Some("https://idp.example.test/m?a&b")
    );
    let idp = md
        .idp_sso_descriptors
        .as_ref()
        .and_then(|d| d.first())
        .expect("idp descriptor");
    let sso: Vec<(&str, &str)> = idp
        .single_sign_on_services
        .iter()
        .map(|e| (e.binding.as_str(), e.location.as_str()))
        .collect();
    assert_eq!(
        sso,
        [
            (
                "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
                "https://idp.example.test/sso"
            ),
            (
                "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
                "https://idp.example.test/sso/post"
            ),
        ]
    );
    assert_eq!(idp.single_logout_services.len(), 2);
    let cert_b64 = idp
        .key_descriptors
        .first()
        .and_then(|k| k.key_info.x509_data.as_ref())
        .and_then(|x| x.certificates.first())
        .expect("cert");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(cert_b64)
            .expect("b64"),
        key.cert_der().expect("der")
    );
}

#[test]
fn sp_metadata_describes_acs_and_signing() {
    let xml = sp_metadata_xml(&sp_cfg(), sp_key()).expect("metadata");
    assert!(xml.contains("AuthnRequestsSigned=\"true\""));
    let md: samael::metadata::EntityDescriptor = xml.parse().expect("samael parses our metadata");
    assert_eq!(md.entity_id.as_deref(), Some(SP));
    let sp = md
        .sp_sso_descriptors
        .as_ref()
        .and_then(|d| d.first())
        .expect("sp descriptor");
    assert_eq!(sp.authn_requests_signed, Some(true));
    assert_eq!(
        sp.assertion_consumer_services
            .first()
            .map(|a| a.location.as_str()),
        Some(ACS)
    );
}

#[test]
fn keys_load_from_pem_and_refuse_mismatch() {
    let a = sp_key();
    let loaded = SigningKey::from_pem(
        &a.key_pem().expect("key pem"),
        &a.cert_pem().expect("cert pem"),
    )
    .expect("load");
    assert_eq!(loaded.cert_der().expect("der"), a.cert_der().expect("der"));
    assert_eq!(
        cert_der_from_pem(&a.cert_pem().expect("pem")).expect("der"),
        a.cert_der().expect("der")
    );
    let b = SigningKey::generate_self_signed("b", 1).expect("key");
    assert!(matches!(
        SigningKey::from_pem(
            &a.key_pem().expect("key pem"),
            &b.cert_pem().expect("cert pem")
        ),
        Err(Error::Key(_))
    ));
}

/// POST_REQ with an enveloped signature by `key`, made by samael/xmlsec as
/// an SP library would.
fn signed_post_request(key: &SigningKey) -> String {
    let mut request: samael::schema::AuthnRequest = POST_REQ.parse().expect("template");
    let cert = samael::crypto::CertificateDer::from(key.cert_der().expect("der"));
    let mut signature = samael::signature::Signature::template("_post1", &cert);
    // samael's template digests with SHA-1, which the IdP refuses.
    for reference in &mut signature.signed_info.reference {
        reference.digest_method.algorithm = samael::signature::DigestAlgorithm::Sha256;
    }
    request.signature = Some(signature);
    let der = key.private_key().private_key_to_der().expect("key der");
    let xml = request.to_signed_xml(&der).expect("signed");
    base64::engine::general_purpose::STANDARD.encode(xml)
}

#[test]
fn signed_post_authn_request_is_verified_with_the_sp_certificate() {
    let key = sp_key();
    let b64 = signed_post_request(key);
    assert!(post_request_is_signed(&b64, LIMIT).expect("scan"));
    let certs = [key.cert_der().expect("der")];
    let parsed =
        parse_authn_request_post(&b64, None, Some(&certs), LIMIT).expect("verified request");
    assert!(parsed.signature_verified);
    assert_eq!(parsed.id, "_post1");
    assert_eq!(
        parsed.acs_url.as_deref(),
        Some("https://sp.example.test/acs")
    );
}

#[test]
fn post_authn_request_signature_failures_are_refused() {
    let key = sp_key();
    let certs = [key.cert_der().expect("der")];
    // Unsigned, while the SP must sign.
    let unsigned = base64::engine::general_purpose::STANDARD.encode(POST_REQ);
    assert!(!post_request_is_signed(&unsigned, LIMIT).expect("scan"));
    assert!(matches!(
        parse_authn_request_post(&unsigned, None, Some(&certs), LIMIT),
        Err(Error::Signature(SignatureFailure::Missing))
    ));
    // Signed by a key the SP's metadata does not name.
    let foreign = SigningKey::generate_self_signed("foreign", 1).expect("key");
    assert!(matches!(
        parse_authn_request_post(&signed_post_request(&foreign), None, Some(&certs), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
    // Tampered after signing: the ACS URL is what an attacker would change.
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(signed_post_request(key))
            .expect("b64"),
    )
    .expect("utf8")
    .replace(
        "https://sp.example.test/acs",
        "https://evil.example.test/acs",
    );
    let tampered = base64::engine::general_purpose::STANDARD.encode(xml);
    assert!(matches!(
        parse_authn_request_post(&tampered, None, Some(&certs), LIMIT),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
}

/// The XML inside a Redirect URL's SAMLRequest.
fn inflated_request(url: &str) -> String {
    use std::io::Read as _;
    let value = url::form_urlencoded::parse(query_of(url).as_bytes())
        .find(|(k, _)| k == "SAMLRequest")
        .map(|(_, v)| v.into_owned())
        .expect("SAMLRequest");
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(value)
        .expect("b64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(compressed.as_slice())
        .read_to_string(&mut xml)
        .expect("inflate");
    xml
}

#[test]
fn the_name_id_policy_asks_for_the_configured_format_and_allows_creation() {
    let transient = NameIdFormat::Transient.uri();
    let asking = build_redirect_authn_request(
        &sp_cfg(),
        sp_key(),
        &AuthnRequestParams {
            idp_sso_url: IDP_SSO,
            relay_state: None,
            force_authn: false,
            name_id_format: Some(transient),
            now: Utc::now(),
        },
    )
    .expect("build");
    let xml = inflated_request(&asking.url);
    let policy = xml
        .split('<')
        .find(|e| e.contains(":NameIDPolicy"))
        .unwrap_or_else(|| panic!("no NameIDPolicy in {xml}"));
    assert!(
        policy.contains(&format!("Format=\"{transient}\"")),
        "{policy}"
    );
    assert!(policy.contains("AllowCreate=\"true\""), "{policy}");
    let parsed =
        parse_authn_request_redirect(query_of(&asking.url), Some(&sp_certs()), LIMIT).expect("ok");
    assert_eq!(parsed.name_id_policy_format.as_deref(), Some(transient));

    // Asking for nothing sends no NameIDPolicy at all: the IdP chooses.
    let silent = build_redirect_authn_request(
        &sp_cfg(),
        sp_key(),
        &AuthnRequestParams {
            idp_sso_url: IDP_SSO,
            relay_state: None,
            force_authn: false,
            name_id_format: None,
            now: Utc::now(),
        },
    )
    .expect("build");
    assert!(!inflated_request(&silent.url).contains("NameIDPolicy"));
}

#[test]
fn sp_metadata_lists_the_name_id_format_it_asks_for() {
    let persistent = NameIdFormat::Persistent.uri();
    let xml = sp_metadata_xml_with_formats(&sp_cfg(), sp_key(), &[persistent]).expect("md");
    let meta = parse_sp_metadata(&xml).expect("parsed");
    assert_eq!(meta.name_id_formats, [persistent]);
    let plain = parse_sp_metadata(&sp_metadata_xml(&sp_cfg(), sp_key()).expect("md")).expect("ok");
    assert!(plain.name_id_formats.is_empty());
}

#[test]
fn sha1_authn_requests_need_the_sps_opt_in() {
    let certs = sp_certs();
    let legacy = |allow_sha1| {
        Some(PeerSigners {
            certs: &certs,
            allow_sha1,
        })
    };
    let q = super::sha1::resign_query(query_of(&redirect(Some("/rs")).url), sp_key());
    assert!(matches!(
        parse_authn_request_redirect_with(&q, legacy(false), LIMIT),
        Err(Error::Signature(SignatureFailure::WeakAlgorithm(alg))) if alg == SIG_ALG_RSA_SHA1
    ));
    let parsed = parse_authn_request_redirect_with(&q, legacy(true), LIMIT).expect("opted in");
    assert!(parsed.signature_verified);
    assert_eq!(parsed.relay_state.as_deref(), Some("/rs"));

    let signed = base64::engine::general_purpose::STANDARD
        .decode(signed_post_request(sp_key()))
        .expect("b64");
    let signed = String::from_utf8(signed).expect("utf8");
    let form = super::sha1::resign_form_value(&signed, sp_key());
    assert!(matches!(
        parse_authn_request_post_with(&form, None, legacy(false), LIMIT),
        Err(Error::Signature(SignatureFailure::WeakAlgorithm(_)))
    ));
    assert!(matches!(
        parse_authn_request_post(&form, None, Some(&certs), LIMIT),
        Err(Error::Signature(SignatureFailure::WeakAlgorithm(_)))
    ));
    let parsed = parse_authn_request_post_with(&form, None, legacy(true), LIMIT).expect("opted in");
    assert!(parsed.signature_verified);
    assert_eq!(parsed.id, "_post1");
}
