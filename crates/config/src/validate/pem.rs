//! PEM files: TLS and SAML keys and certificates, read with
//! `rustls-pki-types` (no openssl here).

use std::path::Path;

use rustls_pki_types::pem::{Error, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Clone, Copy)]
pub(super) enum PemKind {
    Cert,
    Key,
}

impl PemKind {
    pub(super) fn noun(self) -> &'static str {
        match self {
            PemKind::Cert => "certificate",
            PemKind::Key => "private key",
        }
    }

    /// `Ok(false)`: readable, but no certificate in it.
    pub(super) fn check(self, file: &Path) -> Result<bool, String> {
        match self {
            PemKind::Cert => CertificateDer::pem_file_iter(file)
                .map(|mut it| matches!(it.next(), Some(Ok(_))))
                .map_err(|e| e.to_string()),
            PemKind::Key => PrivateKeyDer::from_pem_file(file)
                .map(|_| true)
                .map_err(|e| e.to_string()),
        }
    }
}

/// The first certificate of a PEM file, as DER; the error completes
/// "<file> …". Other sections (a key bundled in the same file) are skipped,
/// as openssl's reader did. The DER must have the outer shape of an X.509
/// certificate, so a truncated or mangled file is refused now and not at the
/// first signature check that pins it.
pub(super) fn certificate_der(pem: &[u8]) -> Result<Vec<u8>, String> {
    let der = CertificateDer::from_pem_slice(pem).map_err(|e| match e {
        Error::NoItemsFound => "holds no PEM certificate".to_string(),
        e => format!("is not a readable PEM file: {e}"),
    })?;
    if !x509_shape(&der) {
        return Err("holds a PEM certificate that is not X.509 DER".into());
    }
    Ok(der.as_ref().to_vec())
}

/// `SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE,
/// signature BIT STRING }` and nothing after it.
fn x509_shape(der: &[u8]) -> bool {
    const SEQUENCE: u8 = 0x30;
    const BIT_STRING: u8 = 0x03;
    let Some((SEQUENCE, certificate, [])) = der_item(der) else {
        return false;
    };
    let Some((SEQUENCE, _tbs, rest)) = der_item(certificate) else {
        return false;
    };
    let Some((SEQUENCE, _algorithm, rest)) = der_item(rest) else {
        return false;
    };
    matches!(der_item(rest), Some((BIT_STRING, _, [])))
}

/// One DER tag-length-value: (tag, contents, what follows it).
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form; four length bytes already allow a 4 GiB certificate.
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_file(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../certs-dev/");
        std::fs::read(format!("{dir}{name}")).expect("dev cert")
    }

    #[test]
    fn the_first_certificate_of_a_file_is_taken_past_other_sections() {
        let cert = dev_file("sp-signing.pem");
        let expected = CertificateDer::from_pem_slice(&cert).expect("pem");
        let der = certificate_der(&cert).expect("certificate");
        assert_eq!(der, expected.as_ref());

        // A key before the certificate, and a second certificate after it.
        let mut bundle = dev_file("sp-signing-key.pem");
        bundle.extend_from_slice(&cert);
        bundle.extend_from_slice(&dev_file("idp-signing.pem"));
        assert_eq!(certificate_der(&bundle).expect("certificate"), der);
    }

    #[test]
    fn files_without_a_usable_certificate_are_refused_with_a_reason() {
        for no_cert in [&dev_file("sp-signing-key.pem")[..], b"not pem at all"] {
            assert_eq!(
                certificate_der(no_cert).expect_err("no certificate"),
                "holds no PEM certificate"
            );
        }

        let unterminated = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        let reason = certificate_der(unterminated).expect_err("broken");
        assert!(reason.starts_with("is not a readable PEM file"), "{reason}");

        // Valid base64, but not a certificate: one with a 48-byte line cut
        // out of its middle, and a bare SEQUENCE { INTEGER 0 }.
        let text = String::from_utf8(dev_file("sp-signing.pem")).expect("utf-8");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(lines.len() / 2);
        let cut = lines.join("\n");
        let junk = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";
        for pem in [cut.as_str(), junk] {
            let reason = certificate_der(pem.as_bytes()).expect_err("bad DER");
            assert_eq!(reason, "holds a PEM certificate that is not X.509 DER");
        }
    }
}
