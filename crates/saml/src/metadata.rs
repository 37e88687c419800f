//! Metadata XML for both roles. Written by hand rather than through
//! samael's metadata types because samael 0.0.22 drops
//! `WantAuthnRequestsSigned` and emits IDPSSODescriptor children out of
//! schema order, which strict peers reject.

use std::fmt::Write as _;

use quick_xml::escape::escape;

use crate::binding;
use crate::error::{Error, Result};
use crate::keys::SigningKey;

const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(crate) const HTTP_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub(crate) const HTTP_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

pub(crate) struct Role<'a> {
    /// "IDPSSODescriptor" or "SPSSODescriptor".
    pub element: &'a str,
    /// Extra attributes on the role element, already-safe literals.
    pub flags: &'a [(&'a str, bool)],
    pub slo_url: &'a str,
    /// Also advertise `slo_url` for the SOAP binding (back-channel logout).
    pub slo_soap: bool,
    pub name_id_formats: &'a [&'a str],
    /// (element, binding, location) for SSO / ACS endpoints.
    pub endpoints: &'a [(&'a str, &'a str, &'a str)],
    /// DER certificate published as `<KeyDescriptor use="encryption">`.
    pub encryption_cert_der: Option<&'a [u8]>,
}

/// What an encrypting peer may use, in order of preference (metadata
/// §2.4.1.1: a sender picks from these). GCM first: CBC is accepted for
/// the IdPs that only do CBC, but it is malleable.
pub(crate) const ENCRYPTION_METHODS: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
];

pub(crate) fn entity_descriptor(
    entity_id: &str,
    key: &SigningKey,
    role: &Role<'_>,
) -> Result<String> {
    let cert = binding::base64_encode(&key.cert_der()?);
    let mut x = String::new();
    let w = |x: &mut String, s: std::fmt::Arguments<'_>| x.write_fmt(s).map_err(Error::build);
    w(
        &mut x,
        format_args!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
    )?;
    w(
        &mut x,
        format_args!(
            "<md:EntityDescriptor xmlns:md=\"{NS_MD}\" xmlns:ds=\"{NS_DS}\" entityID=\"{}\">",
            escape(entity_id)
        ),
    )?;
    w(
        &mut x,
        format_args!(
            "<md:{} protocolSupportEnumeration=\"{PROTOCOL}\"",
            role.element
        ),
    )?;
    for (name, value) in role.flags {
        w(&mut x, format_args!(" {name}=\"{value}\""))?;
    }
    w(&mut x, format_args!(">"))?;
    w(&mut x, format_args!("<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"))?;
    if let Some(der) = role.encryption_cert_der {
        let cert = binding::base64_encode(der);
        w(&mut x, format_args!("<md:KeyDescriptor use=\"encryption\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"))?;
        for method in ENCRYPTION_METHODS {
            w(
                &mut x,
                format_args!("<md:EncryptionMethod Algorithm=\"{method}\"/>"),
            )?;
        }
        w(&mut x, format_args!("</md:KeyDescriptor>"))?;
    }
    let soap = role.slo_soap.then_some(crate::soap::SOAP_BINDING);
    for b in [HTTP_REDIRECT, HTTP_POST].into_iter().chain(soap) {
        w(
            &mut x,
            format_args!(
                "<md:SingleLogoutService Binding=\"{b}\" Location=\"{}\"/>",
                escape(role.slo_url)
            ),
        )?;
    }
    for f in role.name_id_formats {
        w(
            &mut x,
            format_args!("<md:NameIDFormat>{}</md:NameIDFormat>", escape(*f)),
        )?;
    }
    for (i, (el, b, loc)) in role.endpoints.iter().enumerate() {
        let index = if *el == "AssertionConsumerService" {
            format!(" index=\"{i}\"")
        } else {
            String::new()
        };
        w(
            &mut x,
            format_args!(
                "<md:{el} Binding=\"{b}\" Location=\"{}\"{index}/>",
                escape(*loc)
            ),
        )?;
    }
    w(
        &mut x,
        format_args!("</md:{}></md:EntityDescriptor>", role.element),
    )?;
    Ok(x)
}
