//! SAML transport encodings (bindings spec §3.4 Redirect, §3.5 POST):
//! base64, raw DEFLATE, query strings, and the Redirect-binding query
//! signature. All decoders are size-capped before and after decoding.

use std::io::{Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::sign::{Signer, Verifier};

use crate::error::{Error, Result, SignatureFailure};

/// SigAlg URI for RSA-SHA256: the only query-signature algorithm we emit, and
/// the only one accepted from a peer without `allow_sha1`.
pub const SIG_ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
/// The legacy SHA-1 SigAlg: accepted only from a peer marked `allow_sha1`,
/// and never emitted.
pub const SIG_ALG_RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";

/// Whose signature a protocol message must carry, and with what: the
/// peer's signing certificates (DER; one must verify) and whether the
/// legacy opt-in `allow_sha1` lets it sign with RSA-SHA1 and SHA-1 digests.
#[derive(Debug, Clone, Copy)]
pub struct PeerSigners<'a> {
    pub certs: &'a [Vec<u8>],
    pub allow_sha1: bool,
}

impl<'a> PeerSigners<'a> {
    /// `certs`, SHA-256 family only (the default for every peer).
    pub fn modern(certs: &'a [Vec<u8>]) -> Self {
        Self {
            certs,
            allow_sha1: false,
        }
    }
}

pub(crate) fn check_size(len: usize, limit: usize) -> Result<()> {
    if len > limit {
        return Err(Error::Size { size: len, limit });
    }
    Ok(())
}

/// Base64-decode (tolerating the line breaks some IdPs insert) into UTF-8,
/// capping the encoded input at `limit` bytes first.
pub(crate) fn base64_to_string(encoded: &str, limit: usize) -> Result<String> {
    check_size(encoded.len(), limit)?;
    let compact: String = encoded
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| Error::binding(format!("base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| Error::binding("message is not UTF-8"))
}

pub(crate) fn base64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Raw-DEFLATE then base64 (Redirect binding encoding).
pub(crate) fn deflate_base64(xml: &str) -> Result<String> {
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
    enc.write_all(xml.as_bytes()).map_err(Error::build)?;
    let compressed = enc.finish().map_err(Error::build)?;
    Ok(STANDARD.encode(compressed))
}

/// Inverse of [`deflate_base64`], capping both the encoded input and the
/// inflated output at `limit` bytes (a small DEFLATE stream can expand hugely).
pub(crate) fn base64_inflate(encoded: &str, limit: usize) -> Result<String> {
    check_size(encoded.len(), limit)?;
    let compact: String = encoded
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let compressed = STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| Error::binding(format!("base64: {e}")))?;
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    DeflateDecoder::new(compressed.as_slice())
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| Error::binding(format!("inflate: {e}")))?;
    check_size(out.len(), limit)?;
    String::from_utf8(out).map_err(|_| Error::binding("message is not UTF-8"))
}

pub(crate) fn percent_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn percent_decode(raw: &str) -> Result<String> {
    // form_urlencoded parsing handles '+' and %XX exactly as browsers encode.
    let decoded: Vec<(String, String)> = url::form_urlencoded::parse(format!("v={raw}").as_bytes())
        .into_owned()
        .collect();
    match decoded.as_slice() {
        [(_, v)] => Ok(v.clone()),
        _ => Err(Error::binding("bad percent-encoding")),
    }
}

/// A query string split into (name, raw still-encoded value) pairs.
pub(crate) struct RawQuery<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> RawQuery<'a> {
    pub(crate) fn parse(query: &'a str) -> Result<Self> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            // Duplicated SAML parameters make "which one was signed" ambiguous.
            if pairs.iter().any(|(pk, _)| *pk == k) {
                return Err(Error::binding(format!("duplicate query parameter {k}")));
            }
            pairs.push((k, v));
        }
        Ok(Self { pairs })
    }

    pub(crate) fn raw(&self, key: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    pub(crate) fn decoded(&self, key: &str) -> Result<Option<String>> {
        self.raw(key).map(percent_decode).transpose()
    }
}

/// Build `SAMLRequest=…[&RelayState=…]&SigAlg=…&Signature=…` (bindings
/// §3.4.4.1): the signature covers exactly the preceding, already
/// URL-encoded, parameters in that order.
pub(crate) fn signed_redirect_query(
    param: &str,
    encoded_message: &str,
    relay_state: Option<&str>,
    key: &PKey<Private>,
) -> Result<String> {
    let mut signed = format!("{param}={}", percent_encode(encoded_message));
    if let Some(rs) = relay_state {
        signed.push_str("&RelayState=");
        signed.push_str(&percent_encode(rs));
    }
    signed.push_str("&SigAlg=");
    signed.push_str(&percent_encode(SIG_ALG_RSA_SHA256));
    let mut signer = Signer::new(MessageDigest::sha256(), key).map_err(Error::build)?;
    signer.update(signed.as_bytes()).map_err(Error::build)?;
    let sig = signer.sign_to_vec().map_err(Error::build)?;
    Ok(format!(
        "{signed}&Signature={}",
        percent_encode(&STANDARD.encode(sig))
    ))
}

/// Verify a Redirect-binding query signature over the parameters *as
/// received* (re-encoding could differ from the sender's encoding).
/// `allow_sha1` (a peer's legacy opt-in) adds RSA-SHA1 to RSA-SHA256.
pub(crate) fn verify_redirect_query(
    query: &RawQuery<'_>,
    param: &str,
    certs: &[PKey<Public>],
    allow_sha1: bool,
) -> Result<()> {
    let message = query
        .raw(param)
        .ok_or_else(|| Error::binding(format!("missing {param}")))?;
    let sig_alg = query
        .decoded("SigAlg")?
        .ok_or(Error::Signature(SignatureFailure::Missing))?;
    let signature_b64 = query
        .decoded("Signature")?
        .ok_or(Error::Signature(SignatureFailure::Missing))?;
    // The digest follows from SigAlg; anything else (rsa-sha1 without the
    // opt-in, the common legacy case) is named in the error for the logs.
    let digest = match sig_alg.as_str() {
        SIG_ALG_RSA_SHA256 => MessageDigest::sha256(),
        SIG_ALG_RSA_SHA1 if allow_sha1 => MessageDigest::sha1(),
        _ => return Err(Error::Signature(SignatureFailure::WeakAlgorithm(sig_alg))),
    };
    let mut signed = format!("{param}={message}");
    if let Some(rs) = query.raw("RelayState") {
        signed.push_str("&RelayState=");
        signed.push_str(rs);
    }
    signed.push_str("&SigAlg=");
    signed.push_str(query.raw("SigAlg").unwrap_or_default());
    let signature = STANDARD
        .decode(signature_b64.as_bytes())
        .map_err(|_| Error::Signature(SignatureFailure::Invalid))?;
    for cert_key in certs {
        let ok = Verifier::new(digest, cert_key)
            .and_then(|mut v| {
                v.update(signed.as_bytes())?;
                v.verify(&signature)
            })
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
    }
    Err(Error::Signature(SignatureFailure::Invalid))
}
