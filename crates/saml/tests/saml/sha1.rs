//! Messages signed the legacy way, RSA-SHA1 with SHA-1 digests, as an old
//! peer would: Portcullis never signs like this, so the tests re-sign what
//! it built.

use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::sign::Signer;
use portcullis_saml::{SigningKey, SIG_ALG_RSA_SHA1, SIG_ALG_RSA_SHA256};
use samael::crypto::{Crypto, CryptoProvider};

/// `signed_xml` (an enveloped RSA-SHA256 signature) re-signed by `key` with
/// RSA-SHA1 and SHA-1 digests: the algorithm URIs are swapped, the old
/// values emptied, and xmlsec fills the template in again.
pub fn resign_xml(signed_xml: &str, key: &SigningKey) -> String {
    let mut xml = signed_xml
        .replace(SIG_ALG_RSA_SHA256, SIG_ALG_RSA_SHA1)
        .replace(
            "http://www.w3.org/2001/04/xmlenc#sha256",
            "http://www.w3.org/2000/09/xmldsig#sha1",
        );
    for element in ["DigestValue", "SignatureValue"] {
        xml = empty_element(&xml, element);
    }
    let der = key.private_key().private_key_to_der().expect("key der");
    let signed = Crypto::sign_xml(xml, &der).expect("xmlsec signs with SHA-1");
    assert!(signed.contains(SIG_ALG_RSA_SHA1) && signed.contains("xmldsig#sha1"));
    signed
}

/// The same, base64-encoded for a POST form field.
pub fn resign_form_value(signed_xml: &str, key: &SigningKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(resign_xml(signed_xml, key))
}

/// Empty every `<…:element>…</…:element>` (whatever the prefix).
fn empty_element(xml: &str, element: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    let open = format!(":{element}>");
    while let Some(at) = rest.find(&open) {
        let (head, tail) = rest.split_at(at + open.len());
        out.push_str(head);
        let close = tail.find("</").expect("closing tag");
        // Step over the closing tag too, which also ends in `:element>`.
        let end = close + tail[close..].find('>').expect("closing tag end") + 1;
        out.push_str(&tail[close..end]);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A Redirect-binding query (`…&SigAlg=…&Signature=…`, as built for
/// RSA-SHA256) signed again by `key` with RSA-SHA1.
pub fn resign_query(query: &str, key: &SigningKey) -> String {
    let (unsigned, _) = query.split_once("&SigAlg=").expect("signed query");
    let signed = format!("{unsigned}&SigAlg={}", url_encode(SIG_ALG_RSA_SHA1));
    let mut signer = Signer::new(MessageDigest::sha1(), key.private_key()).expect("signer");
    signer.update(signed.as_bytes()).expect("update");
    let signature = signer.sign_to_vec().expect("sign");
    format!(
        "{signed}&Signature={}",
        url_encode(&base64::engine::general_purpose::STANDARD.encode(signature))
    )
}

fn url_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
