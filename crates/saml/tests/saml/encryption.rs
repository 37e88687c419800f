//! EncryptedAssertion both ways with real keys and real xmlsec: the
//! embedded IdP encrypts, the SP verifier decrypts and then runs the same
//! checks as for a plain assertion; malformed and hostile encryptions are
//! refused with typed errors.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use portcullis_saml::*;
use samael::crypto::xmlenc::{self, ContentCipher};

use crate::parties::{idp_cfg, idp_key, ACS, IDP, REQ_ID, SP};

const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

fn sp_encryption_key() -> &'static EncryptionKey {
    static K: OnceLock<EncryptionKey> = OnceLock::new();
    K.get_or_init(|| EncryptionKey::generate_self_signed("sp-enc", 30).expect("sp key"))
}

fn other_encryption_key() -> &'static EncryptionKey {
    static K: OnceLock<EncryptionKey> = OnceLock::new();
    K.get_or_init(|| EncryptionKey::generate_self_signed("someone-else", 30).expect("key"))
}

fn params<'a>(
    attributes: &'a [ReleasedAttribute],
    sign_assertion: bool,
    sign_response: bool,
    encrypt_for: Option<&'a [u8]>,
) -> ResponseParams<'a> {
    let now = Utc::now();
    ResponseParams {
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
        attributes,
        validity: Duration::from_secs(300),
        clock_skew: Duration::from_secs(60),
        now,
        sign_assertion,
        sign_response,
        encrypt_for,
    }
}

fn enc_cert() -> Vec<u8> {
    sp_encryption_key().cert_der().expect("cert")
}

/// A signed Response whose assertion is encrypted for the SP.
fn issue_encrypted(sign_assertion: bool, sign_response: bool) -> String {
    let attributes = vec![ReleasedAttribute::basic(
        "groups",
        vec!["admins".into(), "R&D <core>".into()],
    )];
    let cert = enc_cert();
    build_response(
        &idp_cfg(),
        idp_key(),
        &params(&attributes, sign_assertion, sign_response, Some(&cert)),
    )
    .expect("build response")
    .xml
}

/// A Response whose assertion is in the clear.
fn issue_plain() -> String {
    build_response(&idp_cfg(), idp_key(), &params(&[], true, false, None))
        .expect("build response")
        .xml
}

fn expect_with(key: Option<&EncryptionKey>) -> Expectations {
    let mut e = Expectations::new(
        SP,
        ACS,
        IDP,
        vec![idp_key().cert_der().expect("cert")],
        Some(REQ_ID.into()),
    );
    e.decryption_key = key.cloned();
    e
}

fn expect() -> Expectations {
    expect_with(Some(sp_encryption_key()))
}

fn verify_xml(xml: &str, e: &Expectations) -> Result<VerifiedAssertion> {
    verify_response(
        &base64::engine::general_purpose::STANDARD.encode(xml),
        e,
        Utc::now(),
    )
}

fn patch(xml: &str, from: &str, to: &str) -> String {
    assert_eq!(xml.matches(from).count(), 1, "patch target {from:?}");
    xml.replacen(from, to, 1)
}

fn span(xml: &str, open: &str, close: &str) -> (usize, usize) {
    let start = xml.find(open).expect("start");
    let end = xml.find(close).expect("end") + close.len();
    (start, end)
}

/// `xml` with its assertion replaced by `replacement`.
fn with_assertion(xml: &str, replacement: &str) -> String {
    let (s, e) = span(xml, "<saml2:Assertion", "</saml2:Assertion>");
    format!("{}{replacement}{}", &xml[..s], &xml[e..])
}

fn encrypted_assertion(xml: &str) -> &str {
    let (s, e) = span(
        xml,
        "<saml2:EncryptedAssertion",
        "</saml2:EncryptedAssertion>",
    );
    &xml[s..e]
}

/// `plaintext_root` (a whole document) encrypted for the SP and wrapped
/// as an EncryptedAssertion.
fn encrypt_for_sp(plaintext_root: &str, cipher: ContentCipher) -> String {
    let data = xmlenc::encrypt_root(plaintext_root, &enc_cert(), cipher).expect("encrypt");
    format!("<saml2:EncryptedAssertion xmlns:saml2=\"{NS_ASSERTION}\">{data}</saml2:EncryptedAssertion>")
}

fn signed_assertion(xml: &str) -> &str {
    let (s, e) = span(xml, "<saml2:Assertion", "</saml2:Assertion>");
    &xml[s..e]
}

#[test]
fn encrypted_assertions_round_trip_under_every_signature_layout_and_cipher() {
    // The IdP's own output: AES-256-GCM, RSA-OAEP.
    for (sign_assertion, sign_response) in [(true, false), (true, true)] {
        let xml = issue_encrypted(sign_assertion, sign_response);
        assert!(!xml.contains("<saml2:Assertion"), "assertion in the clear");
        assert!(xml.contains("xmlenc11#aes256-gcm") && xml.contains("rsa-oaep-mgf1p"));
        let v = verify_xml(&xml, &expect()).expect("accepted");
        assert_eq!(v.name_id, "alice@example.test");
        assert_eq!(v.in_response_groups(), ["admins", "R&D <core>"]);
        assert_eq!(v.one_time_ids.len(), 2);
    }
    // Response-only signature over the ciphertext: the legacy opt-in
    // applies exactly as for a plain assertion.
    let xml = issue_encrypted(false, true);
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Signature(SignatureFailure::AssertionUnsigned))
    ));
    let mut legacy = expect();
    legacy.allow_signed_response_instead_of_assertion = true;
    assert_eq!(
        verify_xml(&xml, &legacy).expect("accepted").name_id,
        "alice@example.test"
    );
    // Every content cipher the SP accepts, from a plain signed response.
    let plain = issue_plain();
    for cipher in [
        ContentCipher::Aes128Cbc,
        ContentCipher::Aes256Cbc,
        ContentCipher::Aes128Gcm,
        ContentCipher::Aes256Gcm,
    ] {
        let xml = with_assertion(&plain, &encrypt_for_sp(signed_assertion(&plain), cipher));
        verify_xml(&xml, &expect()).unwrap_or_else(|e| panic!("{cipher:?}: {e}"));
    }
    // XML Encryption 1.1's name for the same RSA-OAEP (MGF1-SHA-1).
    let xml = issue_encrypted(true, false).replace(
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"",
        "http://www.w3.org/2009/xmlenc11#rsa-oaep\"",
    );
    verify_xml(&xml, &expect()).expect("xmlenc11#rsa-oaep accepted");
}

trait Groups {
    fn in_response_groups(&self) -> Vec<&str>;
}

impl Groups for VerifiedAssertion {
    fn in_response_groups(&self) -> Vec<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == "groups")
            .map(|(_, v)| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

#[test]
fn the_decrypted_assertion_meets_every_plain_check() {
    // A signed assertion for another audience stays refused once decrypted.
    let mut other_sp = expect();
    other_sp.sp_entity_id = "https://other.example.test/metadata".into();
    assert!(matches!(
        verify_xml(&issue_encrypted(true, false), &other_sp),
        Err(Error::Audience)
    ));
    // And one answering another request.
    let mut other_request = expect();
    other_request.expected_in_response_to = Some("_another".into());
    assert!(matches!(
        verify_xml(&issue_encrypted(true, false), &other_request),
        Err(Error::InResponseTo { .. })
    ));
    // An unsigned assertion, encrypted: encryption is not authentication.
    let plain = issue_plain();
    let assertion = signed_assertion(&plain);
    let (s, e) = span(assertion, "<ds:Signature", "</ds:Signature>");
    let unsigned = format!("{}{}", &assertion[..s], &assertion[e..]);
    let xml = with_assertion(&plain, &encrypt_for_sp(&unsigned, ContentCipher::Aes256Gcm));
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Signature(SignatureFailure::Missing))
    ));
    // The signed assertion with its NameID swapped, then encrypted.
    let evil = assertion.replace("alice@example.test", "mallory@example.test");
    let xml = with_assertion(&plain, &encrypt_for_sp(&evil, ContentCipher::Aes256Gcm));
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Signature(SignatureFailure::Invalid))
    ));
}

#[test]
fn sp_metadata_publishes_the_encryption_key_only_when_there_is_one() {
    let cfg = SpConfig {
        entity_id: SP.into(),
        acs_url: ACS.into(),
        slo_url: "https://gateway.example.test/saml/slo".into(),
    };
    let without = sp_metadata_xml_with_encryption(&cfg, idp_key(), &[], None).expect("metadata");
    assert!(!without.contains("use=\"encryption\""));
    assert!(parse_sp_metadata(&without)
        .expect("parse")
        .encryption_certs_der
        .is_empty());
    let with = sp_metadata_xml_with_encryption(&cfg, idp_key(), &[], Some(sp_encryption_key()))
        .expect("metadata");
    for method in [
        "xmlenc11#aes256-gcm",
        "xmlenc11#aes128-gcm",
        "xmlenc#aes256-cbc",
        "xmlenc#aes128-cbc",
        "xmlenc11#rsa-oaep",
        "xmlenc#rsa-oaep-mgf1p",
    ] {
        assert!(with.contains(&format!("{method}\"")), "{method}");
    }
    let meta = parse_sp_metadata(&with).expect("parse");
    assert_eq!(meta.encryption_certs_der, vec![enc_cert()]);
    assert_eq!(
        meta.signing_certs_der,
        vec![idp_key().cert_der().expect("cert")],
        "the encryption certificate is not a signing one"
    );
}

#[test]
fn an_sp_without_an_encryption_key_refuses_encrypted_assertions() {
    assert!(matches!(
        verify_xml(&issue_encrypted(true, false), &expect_with(None)),
        Err(Error::Unsupported(reason)) if reason.contains("sp_encryption_key")
    ));
}

#[test]
fn tampered_ciphertext_and_the_wrong_key_are_refused() {
    let xml = issue_encrypted(true, false);
    let enc = encrypted_assertion(&xml);
    // Flip a byte deep inside the content CipherValue (the last one).
    let cv = enc.rfind("<CipherValue>").expect("cipher value") + "<CipherValue>".len() + 40;
    let original = &enc[cv..cv + 1];
    let flipped = if original == "A" { "B" } else { "A" };
    let tampered_enc = format!("{}{flipped}{}", &enc[..cv], &enc[cv + 1..]);
    let tampered = patch(&xml, enc, &tampered_enc);
    assert!(matches!(
        verify_xml(&tampered, &expect()),
        Err(Error::Decryption(DecryptionFailure::Content))
    ));
    assert!(matches!(
        verify_xml(&xml, &expect_with(Some(other_encryption_key()))),
        Err(Error::Decryption(DecryptionFailure::KeyTransport))
    ));
}

#[test]
fn weak_or_unknown_algorithms_are_refused_before_decrypting() {
    let xml = issue_encrypted(true, false);
    for (from, to) in [
        (
            "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"",
            "http://www.w3.org/2001/04/xmlenc#rsa-1_5\"",
        ),
        (
            "http://www.w3.org/2009/xmlenc11#aes256-gcm\"",
            "http://www.w3.org/2001/04/xmlenc#tripledes-cbc\"",
        ),
    ] {
        let bad = patch(&xml, from, to);
        assert!(
            matches!(
                verify_xml(&bad, &expect()),
                Err(Error::Decryption(DecryptionFailure::Algorithm(uri))) if format!("{uri}\"") == to
            ),
            "{to}"
        );
    }
    // XML Encryption 1.1 RSA-OAEP with an MGF xmlsec 1.2 does not have.
    let bad = xml.replace(
        "<EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"/>",
        "<EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#rsa-oaep\"><MGF xmlns=\"http://www.w3.org/2009/xmlenc11#\" Algorithm=\"http://www.w3.org/2009/xmlenc11#mgf1sha256\"/></EncryptionMethod>",
    );
    assert_ne!(bad, xml, "template changed shape");
    assert!(matches!(
        verify_xml(&bad, &expect()),
        Err(Error::Decryption(DecryptionFailure::Algorithm(uri))) if uri.ends_with("mgf1sha256")
    ));
    // Ciphertext to be fetched from elsewhere.
    let bad = xml.replacen(
        "<CipherData>\n<CipherValue>",
        "<CipherData><CipherReference URI=\"file:///etc/passwd\"/><CipherValue>",
        1,
    );
    assert!(matches!(
        verify_xml(&bad, &expect()),
        Err(Error::Decryption(DecryptionFailure::Shape(_)))
    ));
}

#[test]
fn several_or_mixed_assertions_are_refused() {
    let xml = issue_encrypted(true, false);
    let enc = encrypted_assertion(&xml);
    let twice = patch(&xml, enc, &format!("{enc}{enc}"));
    assert!(matches!(
        verify_xml(&twice, &expect()),
        Err(Error::Signature(SignatureFailure::Wrapping(
            "more than one EncryptedAssertion"
        )))
    ));
    let plain = issue_plain();
    let mixed = patch(&xml, enc, &format!("{enc}{}", signed_assertion(&plain)));
    assert!(matches!(
        verify_xml(&mixed, &expect()),
        Err(Error::Signature(SignatureFailure::Wrapping(
            "an EncryptedAssertion next to an Assertion"
        )))
    ));
}

#[test]
fn decrypted_content_must_be_exactly_one_assertion() {
    let plain = issue_plain();
    let genuine = signed_assertion(&plain);
    // Signature wrapping inside the ciphertext: an evil assertion that
    // carries the genuinely signed one in its Advice.
    let evil = genuine
        .replace("alice@example.test", "mallory@example.test")
        .replacen("ID=\"", "ID=\"evil", 1);
    let (s, e) = span(&evil, "<ds:Signature", "</ds:Signature>");
    let evil = format!("{}{}", &evil[..s], &evil[e..]);
    let close = evil.rfind("</saml2:Assertion>").expect("close");
    let wrapped = format!(
        "{}<saml2:Advice>{}</saml2:Advice>{}",
        &evil[..close],
        genuine,
        &evil[close..]
    );
    let xml = with_assertion(&plain, &encrypt_for_sp(&wrapped, ContentCipher::Aes256Gcm));
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Signature(SignatureFailure::Wrapping(_)))
    ));
    // Something other than an Assertion: a whole Response around it.
    let xml = with_assertion(&plain, &encrypt_for_sp(&plain, ContentCipher::Aes256Gcm));
    assert!(matches!(
        verify_xml(&xml, &expect()),
        Err(Error::Decryption(DecryptionFailure::Plaintext(_)))
    ));
}
