//! A peer's metadata document as a trust source that changes: the
//! enveloped signature on its root verified with the operator's pinned
//! certificate only (never a key the document carries), `validUntil`
//! enforced, and the entity taken only from the subtree xmlsec verified,
//! so nothing outside the signed element (a wrapper, an entity injected
//! beside it) can be read. The parsing of the entity itself is
//! [`crate::peer`]'s.

use std::time::Duration;

use chrono::{DateTime, Utc};
use samael::crypto::{CertificateDer, ReduceMode};
use samael::signature::Signature;
use samael::traits::ToXml;

use crate::error::{ConditionFailure, Error, Result, SignatureFailure};
use crate::idp::signature_template;
use crate::keys::SigningKey;
use crate::peer::{self, Freshness, IdpMetadata, SpMetadata};
use crate::sp::{pinned, signed_subtree};
use crate::xml_guard::{self, XmlLimits};

const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";

/// How a metadata document must be trusted.
#[derive(Debug, Clone, Copy)]
pub struct MetadataTrust<'a> {
    /// The entity to take out of an aggregate; `None` wants exactly one.
    pub entity_id: Option<&'a str>,
    /// DER of the certificates the document must be signed with. Empty:
    /// the document is taken unsigned (an operator's file, trusted
    /// because the operator put it there).
    pub signing_certs_der: &'a [Vec<u8>],
    pub now: DateTime<Utc>,
}

impl<'a> MetadataTrust<'a> {
    /// Trust as of this moment.
    pub fn now(entity_id: Option<&'a str>, signing_certs_der: &'a [Vec<u8>]) -> Self {
        MetadataTrust {
            entity_id,
            signing_certs_der,
            now: Utc::now(),
        }
    }
}

/// A verified peer document: the entity, and until when it may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted<T> {
    pub metadata: T,
    pub freshness: Freshness,
}

impl Freshness {
    /// When to fetch the document again: after `cacheDuration`, and
    /// before `validUntil` (halfway there, so a failed fetch still leaves
    /// time to retry), clamped to `min..=max`, `max` when it says neither.
    pub fn refresh_after(&self, now: DateTime<Utc>, min: Duration, max: Duration) -> Duration {
        let until_invalid = self
            .valid_until
            .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO) / 2);
        let wanted = match (self.cache_duration, until_invalid) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => max,
        };
        wanted.clamp(min, max.max(min))
    }

    /// [`refresh_after`](Self::refresh_after) from this moment.
    pub fn next_refresh(&self, min: Duration, max: Duration) -> Duration {
        self.refresh_after(Utc::now(), min, max)
    }
}

/// The external IdP in `xml`, verified as `trust` says.
pub fn read_idp_metadata(xml: &str, trust: &MetadataTrust<'_>) -> Result<Trusted<IdpMetadata>> {
    let signed = verified_document(xml, trust)?;
    let (metadata, freshness) = peer::select_idp_metadata(&signed, trust.entity_id)?;
    still_valid(&freshness, trust.now)?;
    Ok(Trusted {
        metadata,
        freshness,
    })
}

/// The external SP in `xml`, verified as `trust` says.
pub fn read_sp_metadata(xml: &str, trust: &MetadataTrust<'_>) -> Result<Trusted<SpMetadata>> {
    let signed = verified_document(xml, trust)?;
    let (metadata, freshness) = peer::select_sp_metadata(&signed, trust.entity_id)?;
    still_valid(&freshness, trust.now)?;
    Ok(Trusted {
        metadata,
        freshness,
    })
}

fn still_valid(freshness: &Freshness, now: DateTime<Utc>) -> Result<()> {
    match freshness.valid_until {
        Some(until) if until <= now => Err(Error::Condition(ConditionFailure::Expired)),
        _ => Ok(()),
    }
}

/// `xml` itself when no certificate is pinned; otherwise the root element
/// as xmlsec verified it, after the same pre-checks every signed message
/// gets (limits, strict XML, the algorithm allowlist: SHA-256 or better).
fn verified_document(xml: &str, trust: &MetadataTrust<'_>) -> Result<String> {
    xml_guard::refuse_doctype(xml)?;
    let scan = xml_guard::scan(xml, &XmlLimits::METADATA)?;
    if scan.root_ns.as_deref() != Some(NS_MD)
        || !matches!(
            scan.root_name.as_str(),
            "EntityDescriptor" | "EntitiesDescriptor"
        )
    {
        return Err(Error::xml(
            "root element is not md:EntityDescriptor or md:EntitiesDescriptor",
        ));
    }
    if trust.signing_certs_der.is_empty() {
        return Ok(xml.to_owned());
    }
    xml_guard::check_algorithms(&scan, false)?;
    let root_id = scan
        .root_id
        .as_deref()
        .ok_or(Error::Signature(SignatureFailure::Missing))?;
    let root_signed = scan.signatures.iter().any(|sig| {
        sig.parent_depth == 0
            && sig.parent_id.as_deref() == Some(root_id)
            && sig.reference_uris.len() == 1
            && sig.reference_uris.first().map(String::as_str) == Some(&format!("#{root_id}"))
    });
    if !root_signed {
        return Err(if scan.signatures.is_empty() {
            Error::Signature(SignatureFailure::Missing)
        } else {
            Error::Signature(SignatureFailure::Wrapping(
                "no enveloped signature over the root element",
            ))
        });
    }
    let certs: Vec<CertificateDer> = pinned(
        trust.signing_certs_der,
        "no pinned metadata signing certificate",
    )?;
    let reduced = signed_subtree(xml, &certs, ReduceMode::ValidateAndMarkNoAncestors, false)?;
    let reduced_scan = xml_guard::scan(&reduced, &XmlLimits::METADATA)?;
    if reduced_scan.root_name != scan.root_name || reduced_scan.root_id != scan.root_id {
        return Err(Error::Signature(SignatureFailure::Wrapping(
            "verified subtree is not the document's root",
        )));
    }
    Ok(reduced)
}

/// `xml` (an EntityDescriptor or EntitiesDescriptor whose root carries an
/// `ID`) with an enveloped RSA-SHA256 signature by `key` as the root's
/// first child, where the metadata schema wants it. For publishing
/// metadata to a peer that verifies it, and for tests.
pub fn sign_metadata(xml: &str, key: &SigningKey) -> Result<String> {
    sign_root(xml, key, |_| {})
}

/// [`sign_metadata`] with the template adjusted by `adjust` first.
fn sign_root(xml: &str, key: &SigningKey, adjust: impl FnOnce(&mut Signature)) -> Result<String> {
    let scan = xml_guard::scan(xml, &XmlLimits::METADATA)?;
    let id = scan
        .root_id
        .ok_or_else(|| Error::build("the metadata root has no ID to sign"))?;
    let mut reader = quick_xml::Reader::from_str(xml);
    let insert_at = loop {
        match reader.read_event().map_err(Error::xml)? {
            quick_xml::events::Event::Start(_) => {
                break usize::try_from(reader.buffer_position()).map_err(Error::build)?
            }
            quick_xml::events::Event::Empty(_) | quick_xml::events::Event::Eof => {
                return Err(Error::build("the metadata root has no content"))
            }
            _ => {}
        }
    };
    let cert = CertificateDer::from(key.cert_der()?);
    let mut template = signature_template(&id, &cert);
    adjust(&mut template);
    let template = template
        .to_string()
        .map_err(|e| Error::build(format!("signature template: {e:?}")))?;
    let (head, tail) = xml.split_at(insert_at);
    let unsigned = format!("{head}{template}{tail}");
    key.sign_xml(&unsigned, "metadata")
}

#[cfg(test)]
mod tests {
    use samael::signature::{DigestAlgorithm, SignatureAlgorithm};

    use super::*;
    use crate::binding;

    fn key(name: &str) -> SigningKey {
        SigningKey::generate_self_signed(name, 1).expect("key")
    }

    fn idp_entity(entity_id: &str, sso: &str, cert: &SigningKey) -> String {
        let cert = binding::base64_encode(&cert.cert_der().expect("der"));
        format!(
            r#"<md:EntityDescriptor entityID="{entity_id}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
        )
    }

    fn aggregate(attrs: &str, entities: &[String]) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_agg1" {attrs}>{}</md:EntitiesDescriptor>"#,
            entities.concat()
        )
    }

    fn two_idps(attrs: &str, idp_key: &SigningKey) -> String {
        aggregate(
            attrs,
            &[
                idp_entity("https://one.test/idp", "https://one.test/sso", idp_key),
                idp_entity("https://two.test/idp", "https://two.test/sso", idp_key),
            ],
        )
    }

    fn trust<'a>(entity_id: Option<&'a str>, certs: &'a [Vec<u8>]) -> MetadataTrust<'a> {
        MetadataTrust {
            entity_id,
            signing_certs_der: certs,
            now: Utc::now(),
        }
    }

    #[test]
    fn a_signed_aggregate_verifies_and_entity_id_picks_the_entity() {
        let federation = key("federation");
        let idp = key("idp");
        let pinned = vec![federation.cert_der().expect("der")];
        let xml = sign_metadata(&two_idps(r#"cacheDuration="PT1H30M""#, &idp), &federation)
            .expect("sign");
        let got = read_idp_metadata(&xml, &trust(Some("https://two.test/idp"), &pinned))
            .expect("verified");
        assert_eq!(got.metadata.entity_id, "https://two.test/idp");
        assert_eq!(got.metadata.sso_redirect_url, "https://two.test/sso");
        assert_eq!(
            got.metadata.signing_certs_der,
            vec![idp.cert_der().expect("der")]
        );
        assert_eq!(
            got.freshness.cache_duration,
            Some(Duration::from_secs(5400))
        );
        let err = read_idp_metadata(&xml, &trust(None, &pinned)).expect_err("two entities");
        assert!(err.to_string().contains("entity_id"), "{err}");
        let err = read_idp_metadata(&xml, &trust(Some("https://three.test/idp"), &pinned))
            .expect_err("absent");
        assert!(err.to_string().contains("three.test"), "{err}");
    }

    #[test]
    fn a_document_changed_after_signing_or_signed_by_another_key_is_refused() {
        let federation = key("federation");
        let idp = key("idp");
        let pinned = vec![federation.cert_der().expect("der")];
        let xml = sign_metadata(&two_idps("", &idp), &federation).expect("sign");
        let moved = xml.replace("https://two.test/sso", "https://evil.test/sso");
        let other = binding::base64_encode(&key("attacker").cert_der().expect("der"));
        let rekeyed = xml.replacen(
            &binding::base64_encode(&idp.cert_der().expect("der")),
            &other,
            1,
        );
        for tampered in [moved, rekeyed] {
            assert_ne!(tampered, xml);
            let err = read_idp_metadata(&tampered, &trust(Some("https://two.test/idp"), &pinned))
                .expect_err("tampered");
            assert!(
                matches!(err, Error::Signature(SignatureFailure::Invalid)),
                "{err}"
            );
        }
        let stranger = vec![key("stranger").cert_der().expect("der")];
        let err = read_idp_metadata(&xml, &trust(Some("https://two.test/idp"), &stranger))
            .expect_err("not the pinned key");
        assert!(
            matches!(err, Error::Signature(SignatureFailure::Invalid)),
            "{err}"
        );
        let unsigned = two_idps("", &idp);
        let err = read_idp_metadata(&unsigned, &trust(Some("https://two.test/idp"), &pinned))
            .expect_err("unsigned");
        assert!(
            matches!(err, Error::Signature(SignatureFailure::Missing)),
            "{err}"
        );
    }

    #[test]
    fn signature_wrapping_shapes_are_refused() {
        let federation = key("federation");
        let idp = key("idp");
        let attacker = key("attacker");
        let pinned = vec![federation.cert_der().expect("der")];
        let signed = sign_metadata(&two_idps("", &idp), &federation).expect("sign");
        let signed_root = signed
            .split_once("?>")
            .map_or(signed.as_str(), |(_, rest)| rest)
            .trim();
        let evil = idp_entity("https://two.test/idp", "https://evil.test/sso", &attacker);
        // The signed aggregate moved, untouched, under an unsigned wrapper
        // next to a forged entity of the same name.
        let wrapped = format!(
            r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_wrapper">{evil}{signed_root}</md:EntitiesDescriptor>"#
        );
        let err = read_idp_metadata(&wrapped, &trust(Some("https://two.test/idp"), &pinned))
            .expect_err("wrapped");
        assert!(
            matches!(err, Error::Signature(SignatureFailure::Wrapping(_))),
            "{err}"
        );
        // A forged entity injected beside the signed ones.
        let injected = signed.replacen("</ds:Signature>", &format!("</ds:Signature>{evil}"), 1);
        let err = read_idp_metadata(&injected, &trust(Some("https://two.test/idp"), &pinned))
            .expect_err("injected");
        assert!(
            matches!(err, Error::Signature(SignatureFailure::Invalid)),
            "{err}"
        );
    }

    #[test]
    fn an_expired_valid_until_is_refused_and_bounds_the_refresh() {
        let federation = key("federation");
        let idp = key("idp");
        let pinned = vec![federation.cert_der().expect("der")];
        let past = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        let xml = sign_metadata(
            &two_idps(&format!("validUntil=\"{past}\""), &idp),
            &federation,
        )
        .expect("sign");
        let err = read_idp_metadata(&xml, &trust(Some("https://one.test/idp"), &pinned))
            .expect_err("expired");
        assert!(
            matches!(err, Error::Condition(ConditionFailure::Expired)),
            "{err}"
        );

        let now = Utc::now();
        let min = Duration::from_secs(60);
        let max = Duration::from_secs(4 * 3600);
        let soon = Freshness {
            valid_until: Some(now + chrono::Duration::minutes(30)),
            cache_duration: Some(Duration::from_secs(86400)),
        };
        assert_eq!(soon.refresh_after(now, min, max), Duration::from_secs(900));
        assert_eq!(Freshness::default().refresh_after(now, min, max), max);
        let eager = Freshness {
            valid_until: None,
            cache_duration: Some(Duration::from_secs(1)),
        };
        assert_eq!(eager.refresh_after(now, min, max), min);
    }

    /// What SimpleSAMLphp 1.19's `SimpleSAML\Metadata\Signer` serves on
    /// its SP metadata page with `metadata.sign.enable` (the e2e test
    /// fetches it live): formatted XML, an `ID` it adds (`_` and the SHA-256
    /// of the unsigned document) referenced as `#ID`, the signature
    /// inserted as the root's first child, exclusive c14n, RSA-SHA256, its
    /// signer's certificate in KeyInfo. Signed with a 100-year certificate.
    const SSP_SP_METADATA: &str = include_str!("../testdata/simplesamlphp-sp-metadata.xml");
    const SSP_SIGNER: &[u8] = include_bytes!("../testdata/simplesamlphp-metadata-signer.pem");

    #[test]
    fn simplesamlphp_signed_metadata_verifies_as_served_and_not_once_altered() {
        let pinned = vec![crate::keys::cert_der_from_pem(SSP_SIGNER).expect("der")];
        let got = read_sp_metadata(SSP_SP_METADATA, &trust(None, &pinned)).expect("verified");
        let base = "http://sp.ssp.test/module.php/saml/sp";
        assert_eq!(
            got.metadata.entity_id,
            format!("{base}/metadata.php/default-sp")
        );
        assert_eq!(
            got.metadata.acs_url,
            format!("{base}/saml2-acs.php/default-sp")
        );
        assert_eq!(
            got.metadata.soap_slo_url,
            Some(format!("{base}/saml2-logout.php/default-sp"))
        );
        assert!(got.metadata.authn_requests_signed);

        let moved = SSP_SP_METADATA.replace(
            &format!("{base}/saml2-acs.php/default-sp\" index=\"0\""),
            "https://evil.test/acs\" index=\"0\"",
        );
        assert_ne!(moved, SSP_SP_METADATA);
        let err = read_sp_metadata(&moved, &trust(None, &pinned)).expect_err("altered");
        assert!(
            matches!(err, Error::Signature(SignatureFailure::Invalid)),
            "{err}"
        );
        // The certificate in its KeyInfo is never what is trusted.
        let stranger = vec![key("stranger").cert_der().expect("der")];
        let err = read_sp_metadata(SSP_SP_METADATA, &trust(None, &stranger))
            .expect_err("not the pinned key");
        assert!(
            matches!(err, Error::Signature(SignatureFailure::Invalid)),
            "{err}"
        );
    }

    #[test]
    fn a_sha1_signature_is_refused() {
        let federation = key("federation");
        let idp = key("idp");
        let pinned = vec![federation.cert_der().expect("der")];
        let xml = sign_root(&two_idps("", &idp), &federation, |sig| {
            sig.signed_info.signature_method.algorithm = SignatureAlgorithm::Unsupported(
                "http://www.w3.org/2000/09/xmldsig#rsa-sha1".into(),
            );
            for reference in &mut sig.signed_info.reference {
                reference.digest_method.algorithm = DigestAlgorithm::Sha1;
            }
        })
        .expect("sign");
        assert!(xml.contains("xmldsig#rsa-sha1"));
        let err = read_idp_metadata(&xml, &trust(Some("https://one.test/idp"), &pinned))
            .expect_err("sha1");
        assert!(
            matches!(err, Error::Signature(SignatureFailure::WeakAlgorithm(_))),
            "{err}"
        );
    }
}
