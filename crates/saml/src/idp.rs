//! Embedded-IdP side: IdP metadata, signed `Response` construction for an
//! SP, and parsing of incoming `AuthnRequest`s (Redirect and POST
//! bindings). HTTP handling lives in the IdP web layer, not here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use openssl::pkey::{PKey, Public};
use openssl::x509::X509;
use samael::attribute::{Attribute, AttributeValue};
use samael::crypto::{CertificateDer, Crypto, CryptoProvider, ReduceMode};
use samael::schema::{
    Assertion, AttributeStatement, AudienceRestriction, AuthnContext, AuthnContextClassRef,
    AuthnRequest, AuthnStatement, Conditions, Issuer, Response, Status, StatusCode, Subject,
    SubjectConfirmation, SubjectConfirmationData, SubjectNameID,
};
use samael::signature::{DigestAlgorithm, Signature};
use samael::traits::ToXml;

use crate::binding::{self, PeerSigners, RawQuery};
use crate::error::{Error, Result};
use crate::keys::SigningKey;
use crate::metadata;
use crate::xml_guard::{self, XmlLimits};

const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const CM_BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// An Attribute's `NameFormat`: how its `Name` is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeNameFormat {
    /// A plain name (`email`, `groups`).
    Basic,
    /// A URI, usually `urn:oid:…`: what Shibboleth-style SPs map by default.
    Uri,
    Unspecified,
}

impl AttributeNameFormat {
    pub fn uri(self) -> &'static str {
        match self {
            Self::Basic => "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
            Self::Uri => "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
            Self::Unspecified => "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified",
        }
    }
}

/// One Attribute of the AttributeStatement, as released to one SP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedAttribute {
    pub name: String,
    pub name_format: AttributeNameFormat,
    pub friendly_name: Option<String>,
    /// Multi-valued attributes keep their order; an empty one is left out.
    pub values: Vec<String>,
}

impl ReleasedAttribute {
    /// A `basic` attribute without a FriendlyName.
    pub fn basic(name: impl Into<String>, values: Vec<String>) -> Self {
        Self {
            name: name.into(),
            name_format: AttributeNameFormat::Basic,
            friendly_name: None,
            values,
        }
    }
}

/// NameID formats the IdP issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameIdFormat {
    EmailAddress,
    Persistent,
    Transient,
    Unspecified,
}

impl NameIdFormat {
    pub const ALL: [NameIdFormat; 4] = [
        Self::EmailAddress,
        Self::Persistent,
        Self::Transient,
        Self::Unspecified,
    ];

    pub fn uri(self) -> &'static str {
        match self {
            Self::EmailAddress => "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            Self::Persistent => "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            Self::Transient => "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
            Self::Unspecified => "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
        }
    }

    /// The format a URI names; `None` for formats the IdP does not issue.
    pub fn from_uri(uri: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.uri() == uri)
    }
}

/// How the user authenticated, as an AuthnContextClassRef.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthnContextClass {
    PasswordProtectedTransport,
    MultiFactor,
}

impl AuthnContextClass {
    pub fn uri(self) -> &'static str {
        match self {
            Self::PasswordProtectedTransport => {
                "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            }
            Self::MultiFactor => "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor",
        }
    }
}

/// Where the embedded IdP lives.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    pub entity_id: String,
    pub sso_redirect_url: String,
    pub sso_post_url: String,
    pub slo_url: String,
}

/// IdP metadata XML: entityID, signing certificate, SSO (Redirect + POST)
/// and SLO (Redirect + POST) endpoints, WantAuthnRequestsSigned=true.
pub fn idp_metadata_xml(cfg: &IdpConfig, key: &SigningKey) -> Result<String> {
    let formats = NameIdFormat::ALL.map(NameIdFormat::uri);
    metadata::entity_descriptor(
        &cfg.entity_id,
        key,
        &metadata::Role {
            element: "IDPSSODescriptor",
            flags: &[("WantAuthnRequestsSigned", true)],
            encryption_cert_der: None,
            slo_url: &cfg.slo_url,
            slo_soap: false,
            name_id_formats: &formats,
            endpoints: &[
                (
                    "SingleSignOnService",
                    metadata::HTTP_REDIRECT,
                    &cfg.sso_redirect_url,
                ),
                (
                    "SingleSignOnService",
                    metadata::HTTP_POST,
                    &cfg.sso_post_url,
                ),
            ],
        },
    )
}

/// Everything that varies per issued Response.
#[derive(Debug, Clone)]
pub struct ResponseParams<'a> {
    pub sp_entity_id: &'a str,
    /// ACS URL: becomes Destination and SubjectConfirmationData/@Recipient.
    pub acs_url: &'a str,
    /// The AuthnRequest ID; `None` for IdP-initiated (unsolicited) responses.
    pub in_response_to: Option<&'a str>,
    pub name_id: &'a str,
    pub name_id_format: NameIdFormat,
    /// NameID/@NameQualifier (the IdP) and @SPNameQualifier (the SP), for
    /// persistent and transient identifiers: they scope the opaque value.
    pub name_qualifier: Option<&'a str>,
    pub sp_name_qualifier: Option<&'a str>,
    pub session_index: &'a str,
    pub authn_context: AuthnContextClass,
    pub authn_instant: DateTime<Utc>,
    /// The AttributeStatement, in this order.
    pub attributes: &'a [ReleasedAttribute],
    /// Conditions and SubjectConfirmationData lifetime (keep it short).
    pub validity: Duration,
    /// Conditions/@NotBefore is this long before `now`, so an SP whose
    /// clock runs behind ours still accepts the assertion.
    pub clock_skew: Duration,
    pub now: DateTime<Utc>,
    /// Sign the Assertion (should always be true outside tests).
    pub sign_assertion: bool,
    /// Additionally sign the enclosing Response.
    pub sign_response: bool,
    /// The SP's encryption certificate (DER): the signed assertion is
    /// sent as an EncryptedAssertion for it (AES-256-GCM content,
    /// RSA-OAEP key transport). `None` sends it in the clear.
    pub encrypt_for: Option<&'a [u8]>,
}

/// A built Response with the ids the caller may want to log.
#[derive(Debug, Clone)]
pub struct IssuedResponse {
    pub xml: String,
    pub response_id: String,
    pub assertion_id: String,
}

impl IssuedResponse {
    /// Base64 form for the HTTP-POST binding's `SAMLResponse` field.
    pub fn post_form_value(&self) -> String {
        binding::base64_encode(self.xml.as_bytes())
    }
}

/// samael writes element text without escaping it (`BytesText::from_escaped`),
/// so every text value we put into its structs must be escaped first or a
/// `<` in e.g. a group name would inject markup.
pub(crate) fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// RSA-SHA256 signature template with a SHA-256 digest; samael's own
/// `Signature::template` uses a SHA-1 digest, which our verifier refuses.
pub(crate) fn signature_template(ref_id: &str, cert: &CertificateDer) -> Signature {
    let mut sig = Signature::template(ref_id, cert);
    for reference in &mut sig.signed_info.reference {
        reference.digest_method.algorithm = DigestAlgorithm::Sha256;
    }
    sig
}

/// Remove the `<?xml …?>` declaration libxml2 prepends, so a signed
/// fragment can be embedded in another document.
fn strip_decl(xml: &str) -> &str {
    let trimmed = xml.trim_start();
    if trimmed.starts_with("<?xml") {
        if let Some(end) = trimmed.find("?>") {
            return trimmed.get(end + 2..).unwrap_or("").trim_start();
        }
    }
    trimmed
}

fn issuer(entity_id: &str) -> Issuer {
    Issuer {
        value: Some(esc(entity_id)),
        format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:entity".to_owned()),
        ..Issuer::default()
    }
}

/// Build a Response carrying one Assertion, signed with RSA-SHA256 /
/// SHA-256 (assertion first, then optionally the response around it).
pub fn build_response(
    cfg: &IdpConfig,
    key: &SigningKey,
    p: &ResponseParams<'_>,
) -> Result<IssuedResponse> {
    let cert = CertificateDer::from(key.cert_der()?);
    let validity = chrono::Duration::from_std(p.validity).map_err(Error::build)?;
    let not_on_or_after = p.now + validity;
    let skew = chrono::Duration::from_std(p.clock_skew).map_err(Error::build)?;
    let not_before = p
        .now
        .checked_sub_signed(skew)
        .ok_or_else(|| Error::build("clock skew out of range"))?;
    let response_id = samael::crypto::gen_saml_response_id();
    let assertion_id = samael::crypto::gen_saml_assertion_id();

    let attributes = p
        .attributes
        .iter()
        .filter(|a| !a.values.is_empty())
        // quick-xml escapes XML attributes itself; element text is ours
        // to escape.
        .map(|a| Attribute {
            friendly_name: a.friendly_name.clone(),
            name: Some(a.name.clone()),
            name_format: Some(a.name_format.uri().to_owned()),
            values: a
                .values
                .iter()
                .map(|v| AttributeValue {
                    attribute_type: None,
                    value: Some(esc(v)),
                })
                .collect(),
        })
        .collect::<Vec<_>>();

    let assertion = Assertion {
        id: assertion_id.clone(),
        issue_instant: p.now,
        version: "2.0".to_owned(),
        issuer: issuer(&cfg.entity_id),
        signature: p
            .sign_assertion
            .then(|| signature_template(&assertion_id, &cert)),
        subject: Some(Subject {
            name_id: Some(SubjectNameID {
                format: Some(p.name_id_format.uri().to_owned()),
                name_qualifier: p.name_qualifier.map(str::to_owned),
                sp_name_qualifier: p.sp_name_qualifier.map(str::to_owned),
                value: esc(p.name_id),
            }),
            subject_confirmations: Some(vec![SubjectConfirmation {
                method: Some(CM_BEARER.to_owned()),
                name_id: None,
                subject_confirmation_data: Some(SubjectConfirmationData {
                    not_before: None,
                    not_on_or_after: Some(not_on_or_after),
                    recipient: Some(p.acs_url.to_owned()),
                    in_response_to: p.in_response_to.map(str::to_owned),
                    address: None,
                    content: None,
                }),
            }]),
        }),
        conditions: Some(Conditions {
            not_before: Some(not_before),
            not_on_or_after: Some(not_on_or_after),
            audience_restrictions: Some(vec![AudienceRestriction {
                audience: vec![esc(p.sp_entity_id)],
            }]),
            one_time_use: None,
            proxy_restriction: None,
        }),
        authn_statements: Some(vec![AuthnStatement {
            authn_instant: Some(p.authn_instant),
            session_index: Some(p.session_index.to_owned()),
            session_not_on_or_after: None,
            subject_locality: None,
            authn_context: Some(AuthnContext {
                value: Some(AuthnContextClassRef {
                    value: Some(p.authn_context.uri().to_owned()),
                }),
            }),
        }]),
        attribute_statements: (!attributes.is_empty())
            .then(|| vec![AttributeStatement { attributes }]),
    };
    let assertion_xml = assertion.to_string().map_err(Error::build)?;
    let assertion_xml = if p.sign_assertion {
        key.sign_xml(&assertion_xml, "assertion")?
    } else {
        assertion_xml
    };
    // Signed first, then encrypted (the signature travels inside the
    // ciphertext), then the Response signed over the ciphertext.
    let assertion_xml = match p.encrypt_for {
        Some(cert_der) => {
            let encrypted = samael::crypto::xmlenc::encrypt_root(
                &assertion_xml,
                cert_der,
                samael::crypto::xmlenc::ContentCipher::Aes256Gcm,
            )
            .map_err(|e| Error::build(format!("encrypting assertion: {e}")))?;
            format!(
                "<saml2:EncryptedAssertion xmlns:saml2=\"{}\">{encrypted}</saml2:EncryptedAssertion>",
                crate::xml_guard::NS_ASSERTION
            )
        }
        None => assertion_xml,
    };

    // Serialize the Response without the assertion and splice the signed
    // assertion in: samael's signer signs only the first Signature it finds,
    // so nested signatures must be produced inside-out.
    let response = Response {
        id: response_id.clone(),
        in_response_to: p.in_response_to.map(str::to_owned),
        version: "2.0".to_owned(),
        issue_instant: p.now,
        destination: Some(p.acs_url.to_owned()),
        consent: None,
        issuer: Some(issuer(&cfg.entity_id)),
        signature: p
            .sign_response
            .then(|| signature_template(&response_id, &cert)),
        status: Some(Status {
            status_code: StatusCode {
                value: Some(STATUS_SUCCESS.to_owned()),
            },
            status_message: None,
            status_detail: None,
        }),
        encrypted_assertion: None,
        assertion: None,
    };
    let shell = response.to_string().map_err(Error::build)?;
    let close = shell
        .rfind("</saml2p:Response>")
        .ok_or_else(|| Error::build("unexpected response serialization"))?;
    let (head, tail) = shell.split_at(close);
    let xml = format!("{}{}{}", head, strip_decl(&assertion_xml), tail);
    let xml = if p.sign_response {
        key.sign_xml(&xml, "response")?
    } else {
        xml
    };
    tracing::debug!(
        %response_id,
        %assertion_id,
        sp = p.sp_entity_id,
        encrypted = p.encrypt_for.is_some(),
        "issued SAML response"
    );
    Ok(IssuedResponse {
        xml,
        response_id,
        assertion_id,
    })
}

/// Top-level status codes (SAML core §3.2.2.2) an IdP answers with when
/// it issues no assertion.
pub const STATUS_RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
pub const STATUS_REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
/// Second-level: IsPassive was asked but the user would have to interact.
pub const STATUS_NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";
/// Second-level: the IdP refuses to answer (policy).
pub const STATUS_REQUEST_DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";
/// Second-level: the NameIDPolicy asks for a format the IdP will not
/// issue to this SP (core §3.4.1.1).
pub const STATUS_INVALID_NAME_ID_POLICY: &str =
    "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy";

/// A signed Response without an assertion: an error status for the SP.
#[derive(Debug, Clone)]
pub struct StatusResponse {
    pub xml: String,
    pub response_id: String,
}

impl StatusResponse {
    /// Base64 form for the HTTP-POST binding's `SAMLResponse` field.
    pub fn post_form_value(&self) -> String {
        binding::base64_encode(self.xml.as_bytes())
    }
}

/// What a non-Success Response says.
#[derive(Debug, Clone)]
pub struct StatusParams<'a> {
    pub acs_url: &'a str,
    pub in_response_to: Option<&'a str>,
    /// [`STATUS_RESPONDER`] or [`STATUS_REQUESTER`].
    pub top_level: &'a str,
    /// e.g. [`STATUS_NO_PASSIVE`].
    pub second_level: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Build a signed Response that carries only a status (no assertion), so
/// the SP learns why instead of waiting on an IdP page.
pub fn build_status_response(
    cfg: &IdpConfig,
    key: &SigningKey,
    p: &StatusParams<'_>,
) -> Result<StatusResponse> {
    let cert = CertificateDer::from(key.cert_der()?);
    let response_id = samael::crypto::gen_saml_response_id();
    let response = Response {
        id: response_id.clone(),
        in_response_to: p.in_response_to.map(str::to_owned),
        version: "2.0".to_owned(),
        issue_instant: p.now,
        destination: Some(p.acs_url.to_owned()),
        consent: None,
        issuer: Some(issuer(&cfg.entity_id)),
        signature: Some(signature_template(&response_id, &cert)),
        status: Some(Status {
            status_code: StatusCode {
                value: Some(p.top_level.to_owned()),
            },
            status_message: None,
            status_detail: None,
        }),
        encrypted_assertion: None,
        assertion: None,
    };
    let mut xml = response.to_string().map_err(Error::build)?;
    // samael's StatusCode cannot nest; the second-level code is spliced
    // into the serialized form before signing.
    if let Some(second) = p.second_level {
        let flat = format!("<saml2p:StatusCode Value=\"{}\"/>", p.top_level);
        let nested = format!(
            "<saml2p:StatusCode Value=\"{}\"><saml2p:StatusCode Value=\"{}\"/></saml2p:StatusCode>",
            p.top_level,
            esc(second)
        );
        if !xml.contains(&flat) {
            return Err(Error::build("unexpected StatusCode serialization"));
        }
        xml = xml.replacen(&flat, &nested, 1);
    }
    let xml = key.sign_xml(&xml, "status response")?;
    Ok(StatusResponse { xml, response_id })
}

/// What the IdP needs from an AuthnRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthnRequest {
    pub id: String,
    pub issuer: Option<String>,
    pub acs_url: Option<String>,
    pub destination: Option<String>,
    pub force_authn: bool,
    pub is_passive: bool,
    pub name_id_policy_format: Option<String>,
    pub issue_instant: DateTime<Utc>,
    pub relay_state: Option<String>,
    /// True when a Redirect query signature was verified with an SP cert.
    pub signature_verified: bool,
}

fn parse_authn_request_xml(xml: &str) -> Result<ParsedAuthnRequest> {
    xml_guard::refuse_doctype(xml)?;
    let scan = xml_guard::scan(xml, &XmlLimits::MESSAGE)?;
    if scan.root_ns.as_deref() != Some(xml_guard::NS_PROTOCOL) || scan.root_name != "AuthnRequest" {
        return Err(Error::xml("root element is not samlp:AuthnRequest"));
    }
    let req: AuthnRequest = xml
        .parse()
        .map_err(|e| Error::xml(format!("AuthnRequest: {e}")))?;
    if req.version != "2.0" {
        return Err(Error::Unsupported("SAML version other than 2.0"));
    }
    if req.id.is_empty() {
        return Err(Error::xml("AuthnRequest without ID"));
    }
    Ok(ParsedAuthnRequest {
        issuer: req.issuer.as_ref().and_then(|i| i.value.clone()),
        acs_url: req.assertion_consumer_service_url.clone(),
        destination: req.destination.clone(),
        force_authn: req.force_authn.unwrap_or(false),
        is_passive: req.is_passive.unwrap_or(false),
        name_id_policy_format: req.name_id_policy.as_ref().and_then(|p| p.format.clone()),
        issue_instant: req.issue_instant,
        relay_state: None,
        signature_verified: false,
        id: req.id,
    })
}

/// Public keys of a peer's pinned signing certificates (DER), for
/// query-signature checks. Each certificate is parsed once: parsing costs
/// more than the RSA verification it serves. The certificates are the
/// operator's (configuration and verified metadata), so the cache stays
/// small; it is emptied should it ever pass `PINNED_KEYS_MAX`.
pub(crate) fn public_keys(certs_der: &[Vec<u8>]) -> Result<Vec<PKey<Public>>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};
    const PINNED_KEYS_MAX: usize = 256;
    static PINNED: OnceLock<Mutex<HashMap<Vec<u8>, PKey<Public>>>> = OnceLock::new();
    let pinned = PINNED.get_or_init(Mutex::default);
    certs_der
        .iter()
        .map(|der| {
            let cached = pinned
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(der)
                .cloned();
            if let Some(key) = cached {
                return Ok(key);
            }
            let key = X509::from_der(der)
                .and_then(|c| c.public_key())
                .map_err(Error::key)?;
            let mut pinned = pinned.lock().unwrap_or_else(PoisonError::into_inner);
            if pinned.len() >= PINNED_KEYS_MAX {
                pinned.clear();
            }
            pinned.insert(der.clone(), key.clone());
            Ok(key)
        })
        .collect()
}

/// Parse an HTTP-Redirect AuthnRequest from the raw (still URL-encoded)
/// query string. With `sp_signing_certs` the query signature (bindings
/// §3.4.4.1) is required and verified first; `None` skips it (only for SPs
/// configured without request signing).
pub fn parse_authn_request_redirect(
    raw_query: &str,
    sp_signing_certs: Option<&[Vec<u8>]>,
    max_bytes: usize,
) -> Result<ParsedAuthnRequest> {
    parse_authn_request_redirect_with(
        raw_query,
        sp_signing_certs.map(PeerSigners::modern),
        max_bytes,
    )
}

/// [`parse_authn_request_redirect`] with the SP's [`PeerSigners`], which
/// say whether its legacy opt-in `allow_sha1` admits an RSA-SHA1 query
/// signature.
pub fn parse_authn_request_redirect_with(
    raw_query: &str,
    signers: Option<PeerSigners<'_>>,
    max_bytes: usize,
) -> Result<ParsedAuthnRequest> {
    binding::check_size(raw_query.len(), max_bytes)?;
    let query = RawQuery::parse(raw_query)?;
    let verified = match signers {
        Some(signers) => {
            binding::verify_redirect_query(
                &query,
                "SAMLRequest",
                &public_keys(signers.certs)?,
                signers.allow_sha1,
            )?;
            true
        }
        None => false,
    };
    let encoded = query
        .decoded("SAMLRequest")?
        .ok_or_else(|| Error::binding("missing SAMLRequest"))?;
    let xml = binding::base64_inflate(&encoded, max_bytes)?;
    let mut parsed = parse_authn_request_xml(&xml)?;
    parsed.relay_state = query.decoded("RelayState")?;
    parsed.signature_verified = verified;
    Ok(parsed)
}

/// Parse an HTTP-POST AuthnRequest (`SAMLRequest` form field, base64).
/// With `sp_signing_certs` the request must carry an enveloped signature
/// over its root, made by one of them; identity fields are then read only
/// from the subtree xmlsec verified. `None` parses without verification
/// (only for SPs configured without request signing).
pub fn parse_authn_request_post(
    saml_request: &str,
    relay_state: Option<&str>,
    sp_signing_certs: Option<&[Vec<u8>]>,
    max_bytes: usize,
) -> Result<ParsedAuthnRequest> {
    parse_authn_request_post_with(
        saml_request,
        relay_state,
        sp_signing_certs.map(PeerSigners::modern),
        max_bytes,
    )
}

/// [`parse_authn_request_post`] with the SP's [`PeerSigners`], which say
/// whether its legacy opt-in `allow_sha1` admits RSA-SHA1 and SHA-1
/// digests in the enveloped signature.
pub fn parse_authn_request_post_with(
    saml_request: &str,
    relay_state: Option<&str>,
    signers: Option<PeerSigners<'_>>,
    max_bytes: usize,
) -> Result<ParsedAuthnRequest> {
    let xml = binding::base64_to_string(saml_request, max_bytes)?;
    let mut parsed = match signers {
        None => parse_authn_request_xml(&xml)?,
        Some(signers) => {
            let signed = verify_enveloped_root(&xml, signers, "AuthnRequest")?;
            let mut parsed = parse_authn_request_xml(&signed)?;
            parsed.signature_verified = true;
            parsed
        }
    };
    parsed.relay_state = relay_state.map(str::to_owned);
    Ok(parsed)
}

/// True when a base64 POST `SAMLRequest` carries any XML signature; lets
/// the IdP verify signatures from SPs that sign without requiring it.
pub fn post_request_is_signed(saml_request: &str, max_bytes: usize) -> Result<bool> {
    let xml = binding::base64_to_string(saml_request, max_bytes)?;
    xml_guard::refuse_doctype(&xml)?;
    Ok(!xml_guard::scan(&xml, &XmlLimits::MESSAGE)?
        .signatures
        .is_empty())
}

/// Exactly one signature, on the root, referencing the root; checked for
/// shape and algorithms before xmlsec, and the verified subtree must be
/// that same root. Shared by every protocol message that arrives over the
/// POST binding with an enveloped signature (AuthnRequest, LogoutRequest,
/// LogoutResponse) so the wrapping defences cannot drift apart.
/// `root_local` is the expected local name of the samlp root element.
pub(crate) fn verify_enveloped_root(
    xml: &str,
    signers: PeerSigners<'_>,
    root_local: &str,
) -> Result<String> {
    let PeerSigners { certs, allow_sha1 } = signers;
    use crate::error::SignatureFailure;
    xml_guard::refuse_doctype(xml)?;
    let scan = xml_guard::scan(xml, &XmlLimits::MESSAGE)?;
    // Refuse a different message type before any crypto: a valid signature
    // on an AuthnRequest must never be accepted as a LogoutRequest.
    if scan.root_ns.as_deref() != Some(xml_guard::NS_PROTOCOL) || scan.root_name != root_local {
        return Err(Error::Xml(format!(
            "root element is not samlp:{root_local}"
        )));
    }
    let [signature] = scan.signatures.as_slice() else {
        return Err(Error::Signature(if scan.signatures.is_empty() {
            SignatureFailure::Missing
        } else {
            SignatureFailure::Wrapping("more than one signature on a protocol message")
        }));
    };
    let root_id = scan
        .root_id
        .as_deref()
        .ok_or_else(|| Error::Xml(format!("{root_local} without ID")))?;
    if signature.parent_depth != 0
        || signature.parent_id.as_deref() != Some(root_id)
        || signature.reference_uris != [format!("#{root_id}")]
    {
        return Err(Error::Signature(SignatureFailure::Wrapping(
            "signature does not cover the message root",
        )));
    }
    xml_guard::check_algorithms(&scan, allow_sha1)?;
    if certs.is_empty() {
        return Err(Error::key("no signing certificate to verify with"));
    }
    let certs: Vec<CertificateDer> = certs.iter().cloned().map(CertificateDer::from).collect();
    let reduced = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &certs,
        ReduceMode::ValidateAndMarkNoAncestors,
        Some(crate::sp::samael_allowed(allow_sha1)),
    )
    .map_err(|e| {
        tracing::debug!(reason = %e, root = root_local, "xmlsec enveloped signature verification failed");
        Error::Signature(SignatureFailure::Invalid)
    })?;
    let reduced_scan = xml_guard::scan(&reduced, &XmlLimits::MESSAGE)?;
    if reduced_scan.root_name != root_local || reduced_scan.root_id.as_deref() != Some(root_id) {
        return Err(Error::Signature(SignatureFailure::Wrapping(
            "verified subtree is not the message root",
        )));
    }
    Ok(reduced)
}
