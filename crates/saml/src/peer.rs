//! Metadata of a SAML peer Portcullis did not write — an external IdP an
//! app trusts, or an external SP registered with the embedded IdP — read
//! from a file the operator supplies or, signed, from a URL
//! ([`crate::signed_metadata`] verifies the signature first). Every value
//! taken from it is checked here: one entity (picked by `entityID` out of
//! an aggregate), the role we need, absolute https/http endpoints,
//! parseable signing certificates.

use chrono::{DateTime, Utc};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::binding;
use crate::error::{Error, Result};
use crate::keys::cert_der_from_pem;
use crate::metadata::{HTTP_POST, HTTP_REDIRECT};
use crate::xml_guard;

const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// One entity's metadata is a few KiB; a federation aggregate of a few
/// thousand entities fits in this (larger ones are not what a gateway
/// that trusts a handful of peers should download).
pub(crate) const MAX_METADATA_BYTES: usize = 10 * 1024 * 1024;

/// An external IdP, as an app's SP needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// SingleSignOnService for the HTTP-Redirect binding.
    pub sso_redirect_url: String,
    /// SingleLogoutService, Redirect binding preferred, then POST.
    pub slo_url: Option<String>,
    /// SingleLogoutService for the SOAP binding (back channel), if any.
    pub soap_slo_url: Option<String>,
    /// DER of every signing certificate (rollover publishes two).
    pub signing_certs_der: Vec<Vec<u8>>,
    pub want_authn_requests_signed: bool,
}

/// An external SP, as the embedded IdP needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpMetadata {
    pub entity_id: String,
    /// The AssertionConsumerService for HTTP-POST: `isDefault`, else lowest index.
    pub acs_url: String,
    pub slo_url: Option<String>,
    /// SingleLogoutService for the SOAP binding: where the IdP tells it of
    /// sessions that end without the browser.
    pub soap_slo_url: Option<String>,
    pub signing_certs_der: Vec<Vec<u8>>,
    pub authn_requests_signed: bool,
    pub name_id_formats: Vec<String>,
    /// DER of the certificates to encrypt assertions for: from
    /// `<KeyDescriptor use="encryption">` and from KeyDescriptors without
    /// `use` (which serve both), in document order.
    pub encryption_certs_der: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Endpoint {
    binding: String,
    location: String,
    index: Option<u32>,
    is_default: bool,
}

#[derive(Debug, Default)]
struct Role {
    found: bool,
    flags: Vec<(String, bool)>,
    certs: Vec<Vec<u8>>,
    encryption_certs: Vec<Vec<u8>>,
    sso: Vec<Endpoint>,
    slo: Vec<Endpoint>,
    acs: Vec<Endpoint>,
    name_id_formats: Vec<String>,
}

impl Role {
    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, v)| n == name && *v)
    }
}

struct Parsed {
    entity_id: String,
    role: Role,
    freshness: Freshness,
}

/// How long a metadata document may be used: `validUntil` and
/// `cacheDuration` (metadata §2.2) of its root and of the chosen entity,
/// the stricter of each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freshness {
    pub valid_until: Option<DateTime<Utc>>,
    pub cache_duration: Option<std::time::Duration>,
}

impl Freshness {
    fn tighten(&mut self, start: &BytesStart<'_>) -> Result<()> {
        if let Some(v) = attr(start, "validUntil")? {
            let at = DateTime::parse_from_rfc3339(v.trim())
                .map_err(|_| Error::Xml(format!("validUntil {v:?} is not an xs:dateTime")))?
                .with_timezone(&Utc);
            self.valid_until = Some(self.valid_until.map_or(at, |old| old.min(at)));
        }
        if let Some(v) = attr(start, "cacheDuration")? {
            let d = xs_duration(v.trim())
                .ok_or_else(|| Error::Xml(format!("cacheDuration {v:?} is not an xs:duration")))?;
            self.cache_duration = Some(self.cache_duration.map_or(d, |old| old.min(d)));
        }
        Ok(())
    }
}

/// An xs:duration (`PnYnMnDTnHnMnS`, no sign) as a std duration; years
/// and months count as 365 and 30 days, which is all a refresh interval
/// needs.
fn xs_duration(v: &str) -> Option<std::time::Duration> {
    let rest = v.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut secs = 0f64;
    let mut any = false;
    let mut add = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        let mut allowed = units.iter();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let (_, factor) = allowed.find(|(u, _)| *u == c)?;
            let n: f64 = number.parse().ok()?;
            secs += n * factor;
            number.clear();
            any = true;
        }
        number.is_empty().then_some(())
    };
    add(
        date,
        &[
            ('Y', 365.0 * 86400.0),
            ('M', 30.0 * 86400.0),
            ('D', 86400.0),
        ],
    )?;
    if let Some(time) = time {
        add(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    (any && secs.is_finite()).then(|| std::time::Duration::from_secs_f64(secs.min(1e12)))
}

pub fn parse_idp_metadata(xml: &str) -> Result<IdpMetadata> {
    select_idp_metadata(xml, None).map(|(meta, _)| meta)
}

/// [`parse_idp_metadata`] of the entity `entity_id` (required when the
/// document holds more than one), with the document's [`Freshness`].
pub(crate) fn select_idp_metadata(
    xml: &str,
    entity_id: Option<&str>,
) -> Result<(IdpMetadata, Freshness)> {
    let parsed = parse(xml, "IDPSSODescriptor", entity_id)?;
    let freshness = parsed.freshness;
    let role = parsed.role;
    let sso_redirect_url = role
        .sso
        .iter()
        .find(|e| e.binding == HTTP_REDIRECT)
        .map(|e| e.location.clone())
        .ok_or_else(|| {
            Error::xml("IDPSSODescriptor has no SingleSignOnService for HTTP-Redirect")
        })?;
    let slo_url = preferred_slo(&role.slo);
    if role.certs.is_empty() {
        return Err(Error::xml("IDPSSODescriptor has no signing certificate"));
    }
    let meta = IdpMetadata {
        entity_id: parsed.entity_id,
        sso_redirect_url,
        slo_url,
        soap_slo_url: soap_slo(&role.slo),
        want_authn_requests_signed: role.flag("WantAuthnRequestsSigned"),
        signing_certs_der: role.certs,
    };
    Ok((meta, freshness))
}

pub fn parse_sp_metadata(xml: &str) -> Result<SpMetadata> {
    select_sp_metadata(xml, None).map(|(meta, _)| meta)
}

/// [`parse_sp_metadata`] of the entity `entity_id`, with the document's
/// [`Freshness`].
pub(crate) fn select_sp_metadata(
    xml: &str,
    entity_id: Option<&str>,
) -> Result<(SpMetadata, Freshness)> {
    let parsed = parse(xml, "SPSSODescriptor", entity_id)?;
    let freshness = parsed.freshness;
    let role = parsed.role;
    let mut post: Vec<&Endpoint> = role.acs.iter().filter(|e| e.binding == HTTP_POST).collect();
    post.sort_by_key(|e| (!e.is_default, e.index.unwrap_or(u32::MAX)));
    let acs_url = post.first().map(|e| e.location.clone()).ok_or_else(|| {
        Error::xml("SPSSODescriptor has no AssertionConsumerService for HTTP-POST")
    })?;
    let authn_requests_signed = role.flag("AuthnRequestsSigned");
    if authn_requests_signed && role.certs.is_empty() {
        return Err(Error::xml(
            "SPSSODescriptor says AuthnRequestsSigned but has no signing certificate",
        ));
    }
    let meta = SpMetadata {
        entity_id: parsed.entity_id,
        acs_url,
        slo_url: preferred_slo(&role.slo),
        soap_slo_url: soap_slo(&role.slo),
        signing_certs_der: role.certs,
        authn_requests_signed,
        name_id_formats: role.name_id_formats,
        encryption_certs_der: role.encryption_certs,
    };
    Ok((meta, freshness))
}

fn soap_slo(slo: &[Endpoint]) -> Option<String> {
    slo.iter()
        .find(|e| e.binding == crate::soap::SOAP_BINDING)
        .map(|e| e.location.clone())
}

fn preferred_slo(slo: &[Endpoint]) -> Option<String> {
    [HTTP_REDIRECT, HTTP_POST].iter().find_map(|b| {
        slo.iter()
            .find(|e| e.binding == *b)
            .map(|e| e.location.clone())
    })
}

fn ns_is(ns: &ResolveResult<'_>, want: &str) -> bool {
    matches!(ns, ResolveResult::Bound(n) if n.as_ref() == want.as_bytes())
}

fn attr(start: &BytesStart<'_>, local: &str) -> Result<Option<String>> {
    xml_guard::attr(start, local.as_bytes())
}

fn endpoint(start: &BytesStart<'_>) -> Result<Endpoint> {
    let element = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let binding =
        attr(start, "Binding")?.ok_or_else(|| Error::Xml(format!("{element} without Binding")))?;
    let location = attr(start, "Location")?
        .ok_or_else(|| Error::Xml(format!("{element} without Location")))?;
    match url::Url::parse(&location) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
        _ => {
            return Err(Error::Xml(format!(
                "{element} Location {location:?} is not an absolute http(s) URL"
            )))
        }
    }
    let index = match attr(start, "index")? {
        Some(i) => Some(
            i.parse()
                .map_err(|_| Error::Xml(format!("{element} index {i:?} is not a number")))?,
        ),
        None => None,
    };
    Ok(Endpoint {
        binding,
        location,
        index,
        is_default: attr(start, "isDefault")?.as_deref() == Some("true"),
    })
}

fn xml_bool(value: &str) -> bool {
    matches!(value, "true" | "1")
}

/// Where the reader is inside the wanted role descriptor.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Inside {
    Elsewhere,
    Role,
    /// A KeyDescriptor: what its certificate may be used for.
    Key(KeyUse),
    Certificate(KeyUse),
    NameIdFormat,
    /// An EntityDescriptor of an aggregate other than the one wanted.
    OtherEntity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyUse {
    signing: bool,
    encryption: bool,
}

fn parse(xml: &str, role_element: &str, want: Option<&str>) -> Result<Parsed> {
    binding::check_size(xml.len(), MAX_METADATA_BYTES)?;
    xml_guard::refuse_doctype(xml)?;
    let mut reader = NsReader::from_str(xml);
    let mut entity_id: Option<String> = None;
    let mut entities = 0usize;
    let mut freshness = Freshness::default();
    let mut root_seen = false;
    let mut role = Role::default();
    let mut depth = 0usize;
    // (state, depth at which it was entered)
    let mut stack: Vec<(Inside, usize)> = vec![(Inside::Elsewhere, 0)];
    let mut text = String::new();

    loop {
        let (ns, event) = reader.read_resolved_event().map_err(Error::xml)?;
        let (start, empty) = match event {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::Text(t) => {
                let state = stack.last().map_or(Inside::Elsewhere, |s| s.0);
                if matches!(state, Inside::Certificate(_) | Inside::NameIdFormat) {
                    text.push_str(&t.decode().map_err(Error::xml)?);
                }
                continue;
            }
            Event::GeneralRef(r) => {
                let state = stack.last().map_or(Inside::Elsewhere, |s| s.0);
                if matches!(state, Inside::Certificate(_) | Inside::NameIdFormat) {
                    let name = r.decode().map_err(Error::xml)?;
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| Error::Xml(format!("unknown entity &{name};")))?;
                    text.push_str(resolved);
                }
                continue;
            }
            Event::End(_) => {
                if let Some(&(state, at)) = stack.last() {
                    if at == depth && stack.len() > 1 {
                        stack.pop();
                        match state {
                            Inside::Certificate(key_use) => {
                                let compact: String =
                                    text.split_whitespace().collect::<Vec<_>>().concat();
                                let pem = format!(
                                    "-----BEGIN CERTIFICATE-----\n{compact}\n-----END CERTIFICATE-----\n"
                                );
                                let der = cert_der_from_pem(pem.as_bytes()).map_err(|e| {
                                    Error::Xml(format!("unreadable X509Certificate: {e}"))
                                })?;
                                if key_use.encryption && !role.encryption_certs.contains(&der) {
                                    role.encryption_certs.push(der.clone());
                                }
                                if key_use.signing && !role.certs.contains(&der) {
                                    role.certs.push(der);
                                }
                            }
                            Inside::NameIdFormat => {
                                role.name_id_formats.push(text.trim().to_string());
                            }
                            _ => {}
                        }
                        text.clear();
                    }
                }
                depth = depth.saturating_sub(1);
                continue;
            }
            Event::DocType(_) => return Err(Error::xml("DOCTYPE is not allowed")),
            Event::Eof => break,
            _ => continue,
        };
        if !empty {
            depth += 1;
        }
        let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        let state = stack.last().map_or(Inside::Elsewhere, |s| s.0);
        let enter = |stack: &mut Vec<(Inside, usize)>, inside: Inside| {
            if !empty {
                stack.push((inside, depth));
            }
        };
        let is_root = !std::mem::replace(&mut root_seen, true);
        if is_root && ns_is(&ns, NS_MD) && local == "EntitiesDescriptor" {
            freshness.tighten(&start)?;
        }
        if ns_is(&ns, NS_MD) && local == "EntityDescriptor" && state == Inside::Elsewhere {
            let id = attr(&start, "entityID")?;
            if want.is_some_and(|w| id.as_deref() != Some(w)) {
                enter(&mut stack, Inside::OtherEntity);
                continue;
            }
            entities += 1;
            if want.is_none() && entities > 1 {
                return Err(Error::xml(
                    "more than one md:EntityDescriptor (set entity_id to pick one)",
                ));
            }
            entity_id = id;
            freshness.tighten(&start)?;
            continue;
        }
        match state {
            Inside::Elsewhere if ns_is(&ns, NS_MD) && local == role_element => {
                if role.found {
                    return Err(Error::Xml(format!("more than one {role_element}")));
                }
                role.found = true;
                for flag in [
                    "WantAuthnRequestsSigned",
                    "AuthnRequestsSigned",
                    "WantAssertionsSigned",
                ] {
                    if let Some(v) = attr(&start, flag)? {
                        role.flags.push((flag.to_string(), xml_bool(&v)));
                    }
                }
                enter(&mut stack, Inside::Role);
            }
            Inside::Role if ns_is(&ns, NS_MD) => match local.as_str() {
                // A KeyDescriptor without `use` serves both signing and encryption.
                "KeyDescriptor" => {
                    let key_use = match attr(&start, "use")?.as_deref() {
                        Some("encryption") => KeyUse {
                            signing: false,
                            encryption: true,
                        },
                        Some("signing") => KeyUse {
                            signing: true,
                            encryption: false,
                        },
                        _ => KeyUse {
                            signing: true,
                            encryption: true,
                        },
                    };
                    enter(&mut stack, Inside::Key(key_use));
                }
                "SingleSignOnService" => role.sso.push(endpoint(&start)?),
                "SingleLogoutService" => role.slo.push(endpoint(&start)?),
                "AssertionConsumerService" => role.acs.push(endpoint(&start)?),
                "NameIDFormat" => enter(&mut stack, Inside::NameIdFormat),
                _ => enter(&mut stack, Inside::Elsewhere),
            },
            Inside::Role => enter(&mut stack, Inside::Elsewhere),
            Inside::Key(key_use) if ns_is(&ns, NS_DS) && local == "X509Certificate" => {
                text.clear();
                enter(&mut stack, Inside::Certificate(key_use));
            }
            _ => {}
        }
    }

    match (entities, want) {
        (1, _) => {}
        (0, Some(want)) => {
            return Err(Error::Xml(format!(
                "no md:EntityDescriptor with entityID {want:?}"
            )))
        }
        (n, Some(want)) => {
            return Err(Error::Xml(format!(
                "{n} md:EntityDescriptor elements with entityID {want:?}"
            )))
        }
        (n, None) => {
            return Err(Error::Xml(format!(
                "expected exactly one md:EntityDescriptor, found {n} (set entity_id to pick one)"
            )))
        }
    }
    let entity_id = entity_id
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| Error::xml("EntityDescriptor has no entityID"))?;
    if !role.found {
        return Err(Error::Xml(format!("no md:{role_element} in the metadata")));
    }
    Ok(Parsed {
        entity_id,
        role,
        freshness,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::{idp_metadata_xml, sp_metadata_xml, IdpConfig, SpConfig};

    fn key() -> SigningKey {
        SigningKey::generate_self_signed("peer test", 1).expect("key")
    }

    #[test]
    fn reads_our_own_idp_metadata_back() {
        let key = key();
        let xml = idp_metadata_xml(
            &IdpConfig {
                entity_id: "https://idp.test/meta".into(),
                sso_redirect_url: "https://idp.test/sso/saml".into(),
                sso_post_url: "https://idp.test/sso/saml".into(),
                slo_url: "https://idp.test/slo".into(),
            },
            &key,
        )
        .expect("metadata");
        let meta = parse_idp_metadata(&xml).expect("parse");
        assert_eq!(meta.entity_id, "https://idp.test/meta");
        assert_eq!(meta.sso_redirect_url, "https://idp.test/sso/saml");
        assert_eq!(meta.slo_url.as_deref(), Some("https://idp.test/slo"));
        assert_eq!(meta.signing_certs_der, vec![key.cert_der().expect("der")]);
    }

    #[test]
    fn reads_our_own_sp_metadata_back() {
        let key = key();
        let xml = sp_metadata_xml(
            &SpConfig {
                entity_id: "https://app.test/_portcullis/saml/metadata".into(),
                acs_url: "https://app.test/_portcullis/saml/acs".into(),
                slo_url: "https://app.test/_portcullis/saml/slo".into(),
            },
            &key,
        )
        .expect("metadata");
        let meta = parse_sp_metadata(&xml).expect("parse");
        assert_eq!(meta.acs_url, "https://app.test/_portcullis/saml/acs");
        assert!(meta.authn_requests_signed);
        assert_eq!(meta.signing_certs_der.len(), 1);
    }

    /// The shape third-party software writes: other prefixes, an
    /// EntitiesDescriptor wrapper, an encryption-only key that must not be
    /// trusted for signatures, several ACS endpoints.
    #[test]
    fn reads_foreign_prefixes_and_picks_the_default_post_acs() {
        let signing = key();
        let encryption = key();
        let b64 = |k: &SigningKey| binding::base64_encode(&k.cert_der().expect("der"));
        let xml = format!(
            r#"<?xml version="1.0"?>
<ns0:EntitiesDescriptor xmlns:ns0="urn:oasis:names:tc:SAML:2.0:metadata">
 <ns0:EntityDescriptor entityID="https://sp.example/meta">
  <ns0:SPSSODescriptor AuthnRequestsSigned="1" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
   <ns0:KeyDescriptor use="encryption"><ns1:KeyInfo xmlns:ns1="http://www.w3.org/2000/09/xmldsig#"><ns1:X509Data><ns1:X509Certificate>{enc}</ns1:X509Certificate></ns1:X509Data></ns1:KeyInfo></ns0:KeyDescriptor>
   <ns0:KeyDescriptor><ns1:KeyInfo xmlns:ns1="http://www.w3.org/2000/09/xmldsig#"><ns1:X509Data><ns1:X509Certificate>
{sig}
   </ns1:X509Certificate></ns1:X509Data></ns1:KeyInfo></ns0:KeyDescriptor>
   <ns0:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</ns0:NameIDFormat>
   <ns0:AssertionConsumerService Binding="{HTTP_POST}" Location="https://sp.example/acs/1" index="1"/>
   <ns0:AssertionConsumerService Binding="{HTTP_REDIRECT}" Location="https://sp.example/acs/r" index="0"/>
   <ns0:AssertionConsumerService Binding="{HTTP_POST}" Location="https://sp.example/acs/2" index="2" isDefault="true"/>
  </ns0:SPSSODescriptor>
 </ns0:EntityDescriptor>
</ns0:EntitiesDescriptor>"#,
            enc = b64(&encryption),
            sig = b64(&signing),
        );
        let meta = parse_sp_metadata(&xml).expect("parse");
        assert_eq!(meta.entity_id, "https://sp.example/meta");
        assert_eq!(meta.acs_url, "https://sp.example/acs/2");
        assert!(meta.authn_requests_signed);
        assert_eq!(
            meta.signing_certs_der,
            vec![signing.cert_der().expect("der")],
            "the encryption-only certificate must not be trusted for signatures"
        );
        assert_eq!(
            meta.name_id_formats,
            vec!["urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"]
        );
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let cases = [
            ("<!DOCTYPE x [<!ENTITY a 'b'>]><x/>", "DOCTYPE"),
            ("<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"/>", "no md:IDPSSODescriptor"),
            ("<x/>", "exactly one"),
            (
                "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"><md:IDPSSODescriptor><md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"javascript:alert(1)\"/></md:IDPSSODescriptor></md:EntityDescriptor>",
                "not an absolute http(s) URL",
            ),
            (
                "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"><md:IDPSSODescriptor><md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"https://idp/sso\"/></md:IDPSSODescriptor></md:EntityDescriptor>",
                "no signing certificate",
            ),
            (
                "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"><md:IDPSSODescriptor><md:KeyDescriptor><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:X509Data><ds:X509Certificate>bm90IGEgY2VydA==</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor></md:IDPSSODescriptor></md:EntityDescriptor>",
                "unreadable X509Certificate",
            ),
        ];
        for (xml, want) in cases {
            let err = parse_idp_metadata(xml).expect_err(xml).to_string();
            assert!(err.contains(want), "{xml}: {err}");
        }
    }
}
