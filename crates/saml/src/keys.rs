//! Signing key material: an RSA private key plus its X.509 certificate,
//! loaded from PEM or generated self-signed for tests/dev. Owns the
//! conversions samael and openssl need (DER key, DER cert).

use std::sync::{Arc, OnceLock};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509Name, X509};

use samael::crypto::XmlSecLoadedKey;

use crate::error::{Error, Result};

/// An RSA signing key with the certificate that publishes its public half.
#[derive(Clone)]
pub struct SigningKey {
    key: PKey<Private>,
    cert: X509,
    /// The key as xmlsec holds it, loaded at the first XML signature and
    /// shared by every clone: loading costs a third of a signature.
    xmlsec: Arc<OnceLock<XmlSecLoadedKey>>,
}

impl std::fmt::Debug for SigningKey {
    // Never print key material; the subject is enough to identify it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey { .. }")
    }
}

impl SigningKey {
    fn new(key: PKey<Private>, cert: X509) -> Self {
        Self {
            key,
            cert,
            xmlsec: Arc::default(),
        }
    }

    /// `xml` with its `<ds:Signature>` template filled in (enveloped,
    /// RSA-SHA256); `what` names the message in the error.
    pub(crate) fn sign_xml(&self, xml: &str, what: &str) -> Result<String> {
        let failed = |e: &dyn std::fmt::Display| Error::build(format!("signing {what}: {e}"));
        let loaded = match self.xmlsec.get() {
            Some(loaded) => loaded,
            None => {
                let loaded =
                    XmlSecLoadedKey::from_der(&self.rsa_key_der()?).map_err(|e| failed(&e))?;
                // Another thread may have won the race: either copy will do.
                let _ = self.xmlsec.set(loaded);
                self.xmlsec.get().ok_or_else(|| failed(&"key not loaded"))?
            }
        };
        loaded.sign_xml(xml).map_err(|e| failed(&e))
    }

    /// Load a PEM private key (PKCS#1 or PKCS#8, RSA only) and PEM certificate,
    /// refusing a certificate whose public key does not match the private key.
    pub fn from_pem(key_pem: &[u8], cert_pem: &[u8]) -> Result<Self> {
        let key = PKey::private_key_from_pem(key_pem)
            .map_err(|e| Error::key(format!("private key: {e}")))?;
        // samael's xmlsec signing and our redirect signing use RSA-SHA256.
        key.rsa()
            .map_err(|_| Error::key("private key is not RSA"))?;
        let cert = X509::from_pem(cert_pem).map_err(|e| Error::key(format!("certificate: {e}")))?;
        let cert_pub = cert
            .public_key()
            .map_err(|e| Error::key(format!("certificate key: {e}")))?;
        if !key.public_eq(&cert_pub) {
            return Err(Error::key("certificate does not match private key"));
        }
        Ok(Self::new(key, cert))
    }

    /// Generate a fresh RSA-2048 key and a self-signed SHA-256 certificate
    /// (valid `days`), for tests and development. rcgen cannot generate RSA
    /// keys with ring, hence openssl.
    pub fn generate_self_signed(common_name: &str, days: u32) -> Result<Self> {
        let rsa = Rsa::generate(2048).map_err(Error::key)?;
        let key = PKey::from_rsa(rsa).map_err(Error::key)?;
        let mut name = X509Name::builder().map_err(Error::key)?;
        name.append_entry_by_nid(Nid::COMMONNAME, common_name)
            .map_err(Error::key)?;
        let name = name.build();
        let mut builder = X509::builder().map_err(Error::key)?;
        let mut serial = BigNum::new().map_err(Error::key)?;
        serial
            .rand(127, MsbOption::MAYBE_ZERO, false)
            .map_err(Error::key)?;
        let serial = serial.to_asn1_integer().map_err(Error::key)?;
        builder.set_serial_number(&serial).map_err(Error::key)?;
        builder.set_version(2).map_err(Error::key)?;
        builder.set_subject_name(&name).map_err(Error::key)?;
        builder.set_issuer_name(&name).map_err(Error::key)?;
        builder.set_pubkey(&key).map_err(Error::key)?;
        let not_before = Asn1Time::days_from_now(0).map_err(Error::key)?;
        let not_after = Asn1Time::days_from_now(days).map_err(Error::key)?;
        builder.set_not_before(&not_before).map_err(Error::key)?;
        builder.set_not_after(&not_after).map_err(Error::key)?;
        builder
            .sign(&key, MessageDigest::sha256())
            .map_err(Error::key)?;
        Ok(Self::new(key, builder.build()))
    }

    /// The private key (for callers that need to sign with openssl directly).
    pub fn private_key(&self) -> &PKey<Private> {
        &self.key
    }

    /// The certificate.
    pub fn certificate(&self) -> &X509 {
        &self.cert
    }

    /// Certificate as DER (what metadata and signature KeyInfo embed).
    pub fn cert_der(&self) -> Result<Vec<u8>> {
        self.cert.to_der().map_err(Error::key)
    }

    /// Certificate as PEM.
    pub fn cert_pem(&self) -> Result<Vec<u8>> {
        self.cert.to_pem().map_err(Error::key)
    }

    /// Private key as PKCS#8 PEM (for persisting generated dev keys).
    pub fn key_pem(&self) -> Result<Vec<u8>> {
        self.key.private_key_to_pem_pkcs8().map_err(Error::key)
    }

    /// The RSA public modulus and exponent, big-endian (for a JWKS).
    pub fn rsa_public_numbers(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let rsa = self.key.rsa().map_err(Error::key)?;
        Ok((rsa.n().to_vec(), rsa.e().to_vec()))
    }

    /// The public key as a JWKS document with one RS256 signing key, and its
    /// key id. The kid is derived from the public key, so it changes with
    /// the key and a verifier never mixes up two generations.
    pub fn jwks(&self) -> Result<Jwks> {
        use base64::Engine as _;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let (n, e) = self.rsa_public_numbers()?;
        let digest = openssl::sha::sha256(&[n.as_slice(), e.as_slice()].concat());
        let kid = b64(&digest[..16]);
        let document = serde_json::json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": kid,
                "n": b64(&n),
                "e": b64(&e),
            }]
        });
        Ok(Jwks { kid, document })
    }

    /// Private key as PKCS#1 DER — the format samael's xmlsec signer loads
    /// (and what JWT signing takes).
    pub fn rsa_key_der(&self) -> Result<Vec<u8>> {
        self.key
            .rsa()
            .and_then(|r| r.private_key_to_der())
            .map_err(Error::key)
    }
}

/// An SP's RSA key pair for XML Encryption: its certificate goes into the
/// SP metadata as `<KeyDescriptor use="encryption">`, its private key
/// unwraps the content keys of EncryptedAssertions. Kept apart from the
/// signing key so an operator can roll one without the other.
#[derive(Clone)]
pub struct EncryptionKey {
    pair: SigningKey,
    /// PKCS#8 PEM of the private key: what xmlsec loads.
    key_pem: Vec<u8>,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey { .. }")
    }
}

/// RSA-OAEP with a smaller modulus is no longer considered safe.
const MIN_ENCRYPTION_KEY_BITS: u32 = 2048;

impl EncryptionKey {
    /// Load a PEM RSA private key (PKCS#1 or PKCS#8) and its PEM
    /// certificate; refuses a mismatched pair and keys under 2048 bits.
    pub fn from_pem(key_pem: &[u8], cert_pem: &[u8]) -> Result<Self> {
        Self::from_pair(SigningKey::from_pem(key_pem, cert_pem)?)
    }

    /// A fresh RSA-2048 pair with a self-signed certificate (tests, dev).
    pub fn generate_self_signed(common_name: &str, days: u32) -> Result<Self> {
        Self::from_pair(SigningKey::generate_self_signed(common_name, days)?)
    }

    fn from_pair(pair: SigningKey) -> Result<Self> {
        let bits = pair.private_key().bits();
        if bits < MIN_ENCRYPTION_KEY_BITS {
            return Err(Error::key(format!(
                "encryption key has {bits} bits; at least {MIN_ENCRYPTION_KEY_BITS} are needed"
            )));
        }
        let key_pem = pair.key_pem()?;
        Ok(Self { pair, key_pem })
    }

    /// Certificate as DER (what the metadata publishes).
    pub fn cert_der(&self) -> Result<Vec<u8>> {
        self.pair.cert_der()
    }

    /// Certificate as PEM.
    pub fn cert_pem(&self) -> Result<Vec<u8>> {
        self.pair.cert_pem()
    }

    /// Private key as PKCS#8 PEM (for persisting generated dev keys; and
    /// what xmlsec loads).
    pub fn private_key_pem(&self) -> &[u8] {
        &self.key_pem
    }
}

/// A key's public half for JWT verifiers (`/oauth2/v1/keys`, `/_portcullis/jwks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwks {
    pub kid: String,
    pub document: serde_json::Value,
}

/// Parse a PEM or DER X.509 certificate into the DER form the verifier pins.
pub fn cert_der_from_pem(cert_pem: &[u8]) -> Result<Vec<u8>> {
    X509::from_pem(cert_pem)
        .and_then(|c| c.to_der())
        .map_err(|e| Error::key(format!("certificate: {e}")))
}
