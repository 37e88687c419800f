//! SAML 2.0 Single Logout messages (core §3.7): building and parsing
//! `LogoutRequest` / `LogoutResponse` over the HTTP-Redirect (query
//! signature, bindings §3.4.4.1) and HTTP-POST (enveloped XML signature)
//! bindings. Only the messages live here; who gets logged out, and the
//! front-channel choreography, belong to the web layers.
//!
//! The XML is written by hand and read with quick-xml's namespace-aware
//! reader instead of samael's schema types: samael 0.0.22 models
//! `SessionIndex` as an attribute, while core §3.7.1 defines it as a
//! `<samlp:SessionIndex>` child element, so its types would emit and accept
//! messages real peers do not speak.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use samael::crypto::CertificateDer;
use samael::traits::ToXml;

use crate::binding::{self, PeerSigners, RawQuery};
use crate::error::{Error, Result};
use crate::idp::{public_keys, signature_template, verify_enveloped_root};
use crate::keys::SigningKey;
use crate::soap;
use crate::sp::RedirectRequest;
use crate::xml_guard::{self, XmlLimits, NS_ASSERTION, NS_DSIG, NS_PROTOCOL};

const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const STATUS_PARTIAL_LOGOUT: &str = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout";
const LOGOUT_REQUEST: &str = "LogoutRequest";
const LOGOUT_RESPONSE: &str = "LogoutResponse";

/// What varies per outgoing LogoutRequest.
#[derive(Debug, Clone)]
pub struct LogoutRequestParams<'a> {
    /// Our entity id.
    pub issuer: &'a str,
    /// The peer's SingleLogoutService location for the chosen binding.
    pub destination: &'a str,
    /// The NameID exactly as it appeared in the session's assertion; the
    /// peer matches sessions on it.
    pub name_id: &'a str,
    pub name_id_format: Option<&'a str>,
    /// NameID/@NameQualifier and @SPNameQualifier, as the assertion had them.
    pub name_qualifier: Option<&'a str>,
    pub sp_name_qualifier: Option<&'a str>,
    /// The session's SessionIndex, so only that session ends.
    pub session_index: Option<&'a str>,
    pub relay_state: Option<&'a str>,
    pub now: DateTime<Utc>,
    /// NotOnOrAfter = now + validity; bounds how long a captured request
    /// can be replayed.
    pub validity: Duration,
}

/// A POST-binding message: the signed XML, its ID (for logs and for
/// matching InResponseTo), and the base64 value for the HTML form field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostMessage {
    pub xml: String,
    pub id: String,
    /// Base64 of `xml`: the `SAMLRequest` / `SAMLResponse` form value.
    pub form_value: String,
}

/// A SOAP-binding message: the whole envelope to POST (or answer with),
/// and the protocol message's ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapMessage {
    pub envelope: String,
    pub id: String,
}

/// The outcome a LogoutResponse reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutStatus {
    /// Every session was ended.
    Success,
    /// Top-level Success with second-level PartialLogout: this party logged
    /// out but could not reach every session participant.
    PartialLogout,
    /// The request was malformed or not acceptable.
    Requester,
    /// This party failed to process a valid request.
    Responder,
}

impl LogoutStatus {
    /// Top-level StatusCode URI (core §3.2.2.2).
    pub fn top_level_uri(self) -> &'static str {
        match self {
            Self::Success | Self::PartialLogout => STATUS_SUCCESS,
            Self::Requester => crate::idp::STATUS_REQUESTER,
            Self::Responder => crate::idp::STATUS_RESPONDER,
        }
    }

    /// Nested second-level StatusCode URI, if any.
    pub fn second_level_uri(self) -> Option<&'static str> {
        match self {
            Self::PartialLogout => Some(STATUS_PARTIAL_LOGOUT),
            _ => None,
        }
    }
}

/// What varies per outgoing LogoutResponse.
#[derive(Debug, Clone)]
pub struct LogoutResponseParams<'a> {
    pub issuer: &'a str,
    /// The requester's SingleLogoutService (response) location; empty
    /// over SOAP, where the answer names no Destination.
    pub destination: &'a str,
    /// The LogoutRequest's ID; `None` only if it was unreadable.
    pub in_response_to: Option<&'a str>,
    pub status: LogoutStatus,
    /// Echo of the request's RelayState (bindings §3.4.3 / §3.5.3).
    pub relay_state: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// A LogoutRequest as received. Fields are trustworthy only when
/// `signature_verified` is true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLogoutRequest {
    pub id: String,
    pub issuer: Option<String>,
    pub destination: Option<String>,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub name_qualifier: Option<String>,
    pub sp_name_qualifier: Option<String>,
    /// Every SessionIndex (none means "all sessions of this principal").
    pub session_indexes: Vec<String>,
    /// The request's own expiry; the caller compares it with its clock,
    /// e.g. via [`ParsedLogoutRequest::check_time`].
    pub not_on_or_after: Option<DateTime<Utc>>,
    pub issue_instant: DateTime<Utc>,
    pub relay_state: Option<String>,
    /// True when the query signature (Redirect) or the enveloped signature
    /// (POST) verified against one of the caller's certificates.
    pub signature_verified: bool,
}

impl ParsedLogoutRequest {
    /// Refuse an expired request (NotOnOrAfter passed, beyond `skew`) or
    /// one issued in the future. Parsing does not take a clock, so this is
    /// the caller's explicit step.
    pub fn check_time(&self, now: DateTime<Utc>, skew: Duration) -> Result<()> {
        use crate::error::ConditionFailure;
        let skew = chrono::Duration::from_std(skew).unwrap_or(chrono::Duration::MAX);
        if self.issue_instant > now.checked_add_signed(skew).unwrap_or(now) {
            return Err(Error::Condition(ConditionFailure::NotYetValid));
        }
        if let Some(limit) = self.not_on_or_after {
            if now >= limit.checked_add_signed(skew).unwrap_or(limit) {
                return Err(Error::Condition(ConditionFailure::Expired));
            }
        }
        Ok(())
    }
}

/// A LogoutResponse as received. Fields are trustworthy only when
/// `signature_verified` is true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLogoutResponse {
    pub id: String,
    pub in_response_to: Option<String>,
    pub issuer: Option<String>,
    pub destination: Option<String>,
    pub status_top: String,
    pub status_second: Option<String>,
    pub issue_instant: DateTime<Utc>,
    pub relay_state: Option<String>,
    pub signature_verified: bool,
}

impl ParsedLogoutResponse {
    /// Top-level Success (which includes PartialLogout).
    pub fn is_success(&self) -> bool {
        self.status_top == STATUS_SUCCESS
    }

    /// Success, but the peer could not end every session it knew of.
    pub fn is_partial(&self) -> bool {
        self.is_success() && self.status_second.as_deref() == Some(STATUS_PARTIAL_LOGOUT)
    }
}

// ---------------------------------------------------------------- building

/// NCName-safe and 128 bits random, like AuthnRequest ids: unguessable, so
/// InResponseTo can be trusted to bind a response to our request.
fn new_id() -> String {
    format!("_{:032x}", rand::random::<u128>())
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn request_xml(p: &LogoutRequestParams<'_>, id: &str, signature: &str) -> Result<String> {
    let validity = chrono::Duration::from_std(p.validity).map_err(Error::build)?;
    let not_on_or_after = p
        .now
        .checked_add_signed(validity)
        .ok_or_else(|| Error::build("validity out of range"))?;
    // Every NameID attribute the assertion carried, so the peer sees the
    // very identifier it issued (core §3.7.1).
    let format = [
        ("Format", p.name_id_format),
        ("NameQualifier", p.name_qualifier),
        ("SPNameQualifier", p.sp_name_qualifier),
    ]
    .iter()
    .filter_map(|(name, value)| value.map(|v| format!(" {name}=\"{}\"", escape(v))))
    .collect::<String>();
    let session_index = p
        .session_index
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(s)))
        .unwrap_or_default();
    // Schema order (core §3.7.1): Issuer, Signature, [Extensions], NameID, SessionIndex*.
    Ok(format!(
        "<samlp:LogoutRequest xmlns:samlp=\"{NS_PROTOCOL}\" xmlns:saml=\"{NS_ASSERTION}\" \
         ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\" NotOnOrAfter=\"{}\">\
         <saml:Issuer Format=\"{ENTITY_FORMAT}\">{}</saml:Issuer>{signature}\
         <saml:NameID{format}>{}</saml:NameID>{session_index}</samlp:LogoutRequest>",
        instant(p.now),
        escape(p.destination),
        instant(not_on_or_after),
        escape(p.issuer),
        escape(p.name_id),
    ))
}

fn response_xml(p: &LogoutResponseParams<'_>, id: &str, signature: &str) -> String {
    let in_response_to = p
        .in_response_to
        .map(|r| format!(" InResponseTo=\"{}\"", escape(r)))
        .unwrap_or_default();
    // A SOAP answer goes back on the requester's own connection: no
    // Destination to name (bindings §3.2.3.3).
    let destination = if p.destination.is_empty() {
        String::new()
    } else {
        format!(" Destination=\"{}\"", escape(p.destination))
    };
    let top = p.status.top_level_uri();
    let status_code = match p.status.second_level_uri() {
        Some(second) => format!(
            "<samlp:StatusCode Value=\"{top}\"><samlp:StatusCode Value=\"{second}\"/></samlp:StatusCode>"
        ),
        None => format!("<samlp:StatusCode Value=\"{top}\"/>"),
    };
    // Schema order (core §3.2.2): Issuer, Signature, [Extensions], Status.
    format!(
        "<samlp:LogoutResponse xmlns:samlp=\"{NS_PROTOCOL}\" xmlns:saml=\"{NS_ASSERTION}\" \
         ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{}\"{destination}{in_response_to}>\
         <saml:Issuer Format=\"{ENTITY_FORMAT}\">{}</saml:Issuer>{signature}\
         <samlp:Status>{status_code}</samlp:Status></samlp:LogoutResponse>",
        instant(p.now),
        escape(p.issuer),
    )
}

/// Serialized RSA-SHA256/SHA-256 enveloped-signature template for `id`.
fn signature_xml(id: &str, key: &SigningKey) -> Result<String> {
    let cert = CertificateDer::from(key.cert_der()?);
    signature_template(id, &cert)
        .to_string()
        .map_err(|e| Error::build(format!("signature template: {e:?}")))
}

fn sign(xml: &str, id: String, key: &SigningKey) -> Result<PostMessage> {
    let xml = key.sign_xml(xml, "logout message")?;
    Ok(PostMessage {
        form_value: binding::base64_encode(xml.as_bytes()),
        xml,
        id,
    })
}

fn redirect_url(destination: &str, query: &str) -> String {
    let sep = if destination.contains('?') { '&' } else { '?' };
    format!("{destination}{sep}{query}")
}

/// Signed HTTP-Redirect LogoutRequest: the XML carries no signature (the
/// binding forbids it); the query string is signed as for AuthnRequests.
pub fn build_logout_request_redirect(
    p: &LogoutRequestParams<'_>,
    key: &SigningKey,
) -> Result<RedirectRequest> {
    let id = new_id();
    let xml = request_xml(p, &id, "")?;
    let encoded = binding::deflate_base64(&xml)?;
    let query =
        binding::signed_redirect_query("SAMLRequest", &encoded, p.relay_state, key.private_key())?;
    tracing::debug!(request_id = %id, destination = p.destination, "built redirect LogoutRequest");
    Ok(RedirectRequest {
        url: redirect_url(p.destination, &query),
        request_id: id,
    })
}

/// HTTP-POST LogoutRequest with an enveloped signature over the root.
pub fn build_logout_request_post(
    p: &LogoutRequestParams<'_>,
    key: &SigningKey,
) -> Result<PostMessage> {
    let id = new_id();
    let xml = request_xml(p, &id, &signature_xml(&id, key)?)?;
    tracing::debug!(request_id = %id, destination = p.destination, "built POST LogoutRequest");
    sign(&xml, id, key)
}

/// Signed HTTP-Redirect LogoutResponse; returns the URL to redirect to.
pub fn build_logout_response_redirect(
    p: &LogoutResponseParams<'_>,
    key: &SigningKey,
) -> Result<String> {
    let id = new_id();
    let xml = response_xml(p, &id, "");
    let encoded = binding::deflate_base64(&xml)?;
    let query =
        binding::signed_redirect_query("SAMLResponse", &encoded, p.relay_state, key.private_key())?;
    tracing::debug!(response_id = %id, status = ?p.status, "built redirect LogoutResponse");
    Ok(redirect_url(p.destination, &query))
}

/// HTTP-POST LogoutResponse with an enveloped signature over the root.
pub fn build_logout_response_post(
    p: &LogoutResponseParams<'_>,
    key: &SigningKey,
) -> Result<PostMessage> {
    let id = new_id();
    let xml = response_xml(p, &id, &signature_xml(&id, key)?);
    tracing::debug!(response_id = %id, status = ?p.status, "built POST LogoutResponse");
    sign(&xml, id, key)
}

/// SOAP-binding LogoutRequest: the POST binding's signed XML (the SOAP
/// binding has no other signature) as the Body of a SOAP envelope.
pub fn build_logout_request_soap(
    p: &LogoutRequestParams<'_>,
    key: &SigningKey,
) -> Result<SoapMessage> {
    let signed = build_logout_request_post(p, key)?;
    Ok(SoapMessage {
        envelope: soap::soap_envelope(&signed.xml),
        id: signed.id,
    })
}

/// SOAP-binding LogoutResponse, signed (the requester may insist), for
/// the requester's open connection: `p.destination` is normally empty.
pub fn build_logout_response_soap(
    p: &LogoutResponseParams<'_>,
    key: &SigningKey,
) -> Result<SoapMessage> {
    let signed = build_logout_response_post(p, key)?;
    Ok(SoapMessage {
        envelope: soap::soap_envelope(&signed.xml),
        id: signed.id,
    })
}

// ----------------------------------------------------------------- parsing

/// Which element the reader is in; text is captured only in leaf values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Root,
    Issuer,
    NameId,
    SessionIndex,
    Status,
    TopCode,
    SecondCode,
    /// Content we accept but do not read (Signature, Extensions, …).
    Opaque,
}

impl Node {
    fn captures_text(self) -> bool {
        matches!(self, Self::Issuer | Self::NameId | Self::SessionIndex)
    }
}

/// Everything either message type may carry, before per-type checks.
#[derive(Default)]
struct Fields {
    id: Option<String>,
    version: Option<String>,
    issue_instant: Option<String>,
    destination: Option<String>,
    not_on_or_after: Option<String>,
    in_response_to: Option<String>,
    issuer: Option<String>,
    name_id: Option<String>,
    name_id_format: Option<String>,
    name_qualifier: Option<String>,
    sp_name_qualifier: Option<String>,
    session_indexes: Vec<String>,
    status_top: Option<String>,
    status_second: Option<String>,
}

fn ns_is(ns: &ResolveResult<'_>, want: &str) -> bool {
    matches!(ns, ResolveResult::Bound(n) if n.as_ref() == want.as_bytes())
}

fn attr(start: &BytesStart<'_>, local: &str) -> Result<Option<String>> {
    xml_guard::attr(start, local.as_bytes())
}

/// Decide what a start tag is, given its parent; refuses elements the
/// schema does not allow where they appear, so a message cannot smuggle a
/// second NameID or Status for a lenient reader to pick.
fn classify(
    parent: Option<Node>,
    ns: &ResolveResult<'_>,
    local: &[u8],
    root_local: &str,
    f: &mut Fields,
) -> Result<Node> {
    let unexpected = || {
        Error::Xml(format!(
            "unexpected element {}",
            String::from_utf8_lossy(local)
        ))
    };
    let node = match parent {
        None => {
            if !ns_is(ns, NS_PROTOCOL) || local != root_local.as_bytes() {
                return Err(Error::Xml(format!(
                    "root element is not samlp:{root_local}"
                )));
            }
            Node::Root
        }
        Some(Node::Root) => {
            let request = root_local == LOGOUT_REQUEST;
            match local {
                b"Issuer" if ns_is(ns, NS_ASSERTION) => {
                    if f.issuer.is_some() {
                        return Err(Error::xml("several Issuer elements"));
                    }
                    Node::Issuer
                }
                b"Signature" if ns_is(ns, NS_DSIG) => Node::Opaque,
                b"Extensions" if ns_is(ns, NS_PROTOCOL) => Node::Opaque,
                b"NameID" if request && ns_is(ns, NS_ASSERTION) => {
                    if f.name_id.is_some() {
                        return Err(Error::xml("several NameID elements"));
                    }
                    Node::NameId
                }
                b"BaseID" | b"EncryptedID" if request && ns_is(ns, NS_ASSERTION) => {
                    return Err(Error::Unsupported("LogoutRequest without a plain NameID"));
                }
                b"SessionIndex" if request && ns_is(ns, NS_PROTOCOL) => Node::SessionIndex,
                b"Status" if !request && ns_is(ns, NS_PROTOCOL) => {
                    if f.status_top.is_some() {
                        return Err(Error::xml("several Status elements"));
                    }
                    Node::Status
                }
                _ => return Err(unexpected()),
            }
        }
        Some(Node::Status) => match local {
            b"StatusCode" if ns_is(ns, NS_PROTOCOL) => {
                if f.status_top.is_some() {
                    return Err(Error::xml("several top-level StatusCode elements"));
                }
                Node::TopCode
            }
            b"StatusMessage" | b"StatusDetail" if ns_is(ns, NS_PROTOCOL) => Node::Opaque,
            _ => return Err(unexpected()),
        },
        Some(Node::TopCode) => match local {
            b"StatusCode" if ns_is(ns, NS_PROTOCOL) => {
                if f.status_second.is_some() {
                    return Err(Error::xml("several second-level StatusCode elements"));
                }
                Node::SecondCode
            }
            _ => return Err(unexpected()),
        },
        // Deeper status levels carry nothing we act on.
        Some(Node::SecondCode) | Some(Node::Opaque) => Node::Opaque,
        Some(Node::Issuer) | Some(Node::NameId) | Some(Node::SessionIndex) => {
            return Err(Error::xml("element inside a text value"));
        }
    };
    Ok(node)
}

/// Record attributes of an element just classified.
fn take_attributes(node: Node, start: &BytesStart<'_>, f: &mut Fields) -> Result<()> {
    match node {
        Node::Root => {
            f.id = attr(start, "ID")?;
            f.version = attr(start, "Version")?;
            f.issue_instant = attr(start, "IssueInstant")?;
            f.destination = attr(start, "Destination")?;
            f.not_on_or_after = attr(start, "NotOnOrAfter")?;
            f.in_response_to = attr(start, "InResponseTo")?;
        }
        Node::NameId => {
            f.name_id_format = attr(start, "Format")?;
            f.name_qualifier = attr(start, "NameQualifier")?;
            f.sp_name_qualifier = attr(start, "SPNameQualifier")?;
        }
        Node::TopCode => {
            f.status_top =
                Some(attr(start, "Value")?.ok_or_else(|| Error::xml("StatusCode without Value"))?);
        }
        Node::SecondCode => {
            f.status_second =
                Some(attr(start, "Value")?.ok_or_else(|| Error::xml("StatusCode without Value"))?);
        }
        _ => {}
    }
    Ok(())
}

fn finish_text(node: Node, text: &str, f: &mut Fields) {
    let value = text.trim().to_owned();
    match node {
        Node::Issuer => f.issuer = Some(value),
        Node::NameId => f.name_id = Some(value),
        Node::SessionIndex => f.session_indexes.push(value),
        _ => {}
    }
}

/// Read a logout message whose root must be `samlp:{root_local}`. The
/// DOCTYPE refusal, the structural limits and the scan (well-formedness,
/// duplicate IDs) run before anything is read.
fn read_fields(xml: &str, root_local: &str) -> Result<Fields> {
    xml_guard::refuse_doctype(xml)?;
    let scan = xml_guard::scan(xml, &XmlLimits::MESSAGE)?;
    if scan.root_ns.as_deref() != Some(NS_PROTOCOL) || scan.root_name != root_local {
        return Err(Error::Xml(format!(
            "root element is not samlp:{root_local}"
        )));
    }
    let mut reader = NsReader::from_str(xml);
    let mut f = Fields::default();
    let mut stack: Vec<Node> = Vec::new();
    let mut text = String::new();
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(Error::xml)?;
        let capturing = stack.last().is_some_and(|n| n.captures_text());
        let (start, empty) = match event {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::Text(t) if capturing => {
                text.push_str(&t.decode().map_err(Error::xml)?);
                continue;
            }
            Event::CData(t) if capturing => {
                text.push_str(&t.decode().map_err(Error::xml)?);
                continue;
            }
            Event::GeneralRef(r) if capturing => {
                if r.is_char_ref() {
                    let c = r
                        .resolve_char_ref()
                        .map_err(Error::xml)?
                        .ok_or_else(|| Error::xml("bad character reference"))?;
                    text.push(c);
                } else {
                    let name = r.decode().map_err(Error::xml)?;
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| Error::Xml(format!("unknown entity &{name};")))?;
                    text.push_str(resolved);
                }
                continue;
            }
            Event::End(_) => {
                if let Some(node) = stack.pop() {
                    finish_text(node, &text, &mut f);
                }
                text.clear();
                continue;
            }
            Event::DocType(_) => return Err(Error::xml("DOCTYPE is not allowed")),
            Event::Eof => break,
            _ => continue,
        };
        let node = classify(
            stack.last().copied(),
            &ns,
            start.local_name().as_ref(),
            root_local,
            &mut f,
        )?;
        take_attributes(node, &start, &mut f)?;
        text.clear();
        if empty {
            finish_text(node, "", &mut f);
        } else {
            stack.push(node);
        }
    }
    Ok(f)
}

/// Root attributes every protocol message needs (core §3.2.1).
fn envelope(f: &Fields, root_local: &str) -> Result<(String, DateTime<Utc>)> {
    let id =
        f.id.clone()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::Xml(format!("{root_local} without ID")))?;
    if f.version.as_deref() != Some("2.0") {
        return Err(Error::Unsupported("SAML version other than 2.0"));
    }
    let issue_instant = parse_instant(f.issue_instant.as_deref(), "IssueInstant")?
        .ok_or_else(|| Error::Xml(format!("{root_local} without IssueInstant")))?;
    Ok((id, issue_instant))
}

fn parse_instant(value: Option<&str>, what: &str) -> Result<Option<DateTime<Utc>>> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| Error::Xml(format!("{what} is not an xs:dateTime")))
        })
        .transpose()
}

fn logout_request_from_xml(xml: &str) -> Result<ParsedLogoutRequest> {
    let f = read_fields(xml, LOGOUT_REQUEST)?;
    let (id, issue_instant) = envelope(&f, LOGOUT_REQUEST)?;
    let name_id = f
        .name_id
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::xml("LogoutRequest without NameID"))?;
    Ok(ParsedLogoutRequest {
        id,
        issuer: f.issuer,
        destination: f.destination,
        name_id,
        name_id_format: f.name_id_format,
        name_qualifier: f.name_qualifier,
        sp_name_qualifier: f.sp_name_qualifier,
        session_indexes: f.session_indexes,
        not_on_or_after: parse_instant(f.not_on_or_after.as_deref(), "NotOnOrAfter")?,
        issue_instant,
        relay_state: None,
        signature_verified: false,
    })
}

fn logout_response_from_xml(xml: &str) -> Result<ParsedLogoutResponse> {
    let f = read_fields(xml, LOGOUT_RESPONSE)?;
    let (id, issue_instant) = envelope(&f, LOGOUT_RESPONSE)?;
    let status_top = f
        .status_top
        .ok_or_else(|| Error::xml("LogoutResponse without StatusCode"))?;
    Ok(ParsedLogoutResponse {
        id,
        in_response_to: f.in_response_to,
        issuer: f.issuer,
        destination: f.destination,
        status_top,
        status_second: f.status_second,
        issue_instant,
        relay_state: None,
        signature_verified: false,
    })
}

/// Redirect binding: size cap, then (with certs) the query signature,
/// then inflate. Returns (xml, relay_state, verified).
fn redirect_message(
    raw_query: &str,
    param: &str,
    signers: Option<PeerSigners<'_>>,
    max_bytes: usize,
) -> Result<(String, Option<String>, bool)> {
    binding::check_size(raw_query.len(), max_bytes)?;
    let query = RawQuery::parse(raw_query)?;
    let verified = match signers {
        Some(signers) => {
            binding::verify_redirect_query(
                &query,
                param,
                &public_keys(signers.certs)?,
                signers.allow_sha1,
            )?;
            true
        }
        None => false,
    };
    let encoded = query
        .decoded(param)?
        .ok_or_else(|| Error::binding(format!("missing {param}")))?;
    let xml = binding::base64_inflate(&encoded, max_bytes)?;
    Ok((xml, query.decoded("RelayState")?, verified))
}

/// POST binding: size-capped base64 decode, then (with certs) the
/// enveloped signature; the returned XML is the subtree xmlsec verified,
/// so nothing is read from unsigned content.
fn post_message(
    b64: &str,
    root_local: &str,
    signers: Option<PeerSigners<'_>>,
    max_bytes: usize,
) -> Result<(String, bool)> {
    let xml = binding::base64_to_string(b64, max_bytes)?;
    xml_guard::refuse_doctype(&xml)?;
    match signers {
        None => Ok((xml, false)),
        Some(signers) => Ok((verify_enveloped_root(&xml, signers, root_local)?, true)),
    }
}

/// Parse an HTTP-Redirect LogoutRequest from the raw (still URL-encoded)
/// query. With `signer_certs` the query signature is required and checked
/// before the message is decoded; `None` only parses, e.g. to read the
/// Issuer and look up that peer's certificates, then call again with them.
pub fn parse_logout_request_redirect(
    raw_query: &str,
    signer_certs: Option<&[Vec<u8>]>,
    max_bytes: usize,
) -> Result<ParsedLogoutRequest> {
    parse_logout_request_redirect_with(raw_query, signer_certs.map(PeerSigners::modern), max_bytes)
}

/// [`parse_logout_request_redirect`] with the peer's [`PeerSigners`], which say whether its legacy
/// opt-in `allow_sha1` admits RSA-SHA1 (and, over POST, SHA-1 digests).
pub fn parse_logout_request_redirect_with(
    raw_query: &str,
    signers: Option<PeerSigners<'_>>,
    max_bytes: usize,
) -> Result<ParsedLogoutRequest> {
    let (xml, relay_state, verified) =
        redirect_message(raw_query, "SAMLRequest", signers, max_bytes)?;
    let mut parsed = logout_request_from_xml(&xml)?;
    parsed.relay_state = relay_state;
    parsed.signature_verified = verified;
    Ok(parsed)
}

/// Parse an HTTP-POST LogoutRequest (`SAMLRequest` form field, base64).
/// With `signer_certs` an enveloped signature over the root by one of them
/// is required ([`SignatureFailure::Missing`](crate::SignatureFailure::Missing)
/// when absent); `None` only parses.
pub fn parse_logout_request_post(
    saml_request: &str,
    relay_state: Option<&str>,
    signer_certs: Option<&[Vec<u8>]>,
    max_bytes: usize,
) -> Result<ParsedLogoutRequest> {
    parse_logout_request_post_with(
        saml_request,
        relay_state,
        signer_certs.map(PeerSigners::modern),
        max_bytes,
    )
}

/// [`parse_logout_request_post`] with the peer's [`PeerSigners`], which say whether its legacy
/// opt-in `allow_sha1` admits RSA-SHA1 (and, over POST, SHA-1 digests).
pub fn parse_logout_request_post_with(
    saml_request: &str,
    relay_state: Option<&str>,
    signers: Option<PeerSigners<'_>>,
    max_bytes: usize,
) -> Result<ParsedLogoutRequest> {
    let (xml, verified) = post_message(saml_request, LOGOUT_REQUEST, signers, max_bytes)?;
    let mut parsed = logout_request_from_xml(&xml)?;
    parsed.relay_state = relay_state.map(str::to_owned);
    parsed.signature_verified = verified;
    Ok(parsed)
}

/// Parse an HTTP-Redirect LogoutResponse; signature rules as for
/// [`parse_logout_request_redirect`].
pub fn parse_logout_response_redirect(
    raw_query: &str,
    signer_certs: Option<&[Vec<u8>]>,
    max_bytes: usize,
) -> Result<ParsedLogoutResponse> {
    parse_logout_response_redirect_with(raw_query, signer_certs.map(PeerSigners::modern), max_bytes)
}

/// [`parse_logout_response_redirect`] with the peer's [`PeerSigners`], which say whether its legacy
/// opt-in `allow_sha1` admits RSA-SHA1 (and, over POST, SHA-1 digests).
pub fn parse_logout_response_redirect_with(
    raw_query: &str,
    signers: Option<PeerSigners<'_>>,
    max_bytes: usize,
) -> Result<ParsedLogoutResponse> {
    let (xml, relay_state, verified) =
        redirect_message(raw_query, "SAMLResponse", signers, max_bytes)?;
    let mut parsed = logout_response_from_xml(&xml)?;
    parsed.relay_state = relay_state;
    parsed.signature_verified = verified;
    Ok(parsed)
}

/// Parse an HTTP-POST LogoutResponse (`SAMLResponse` form field, base64);
/// signature rules as for [`parse_logout_request_post`].
pub fn parse_logout_response_post(
    saml_response: &str,
    relay_state: Option<&str>,
    signer_certs: Option<&[Vec<u8>]>,
    max_bytes: usize,
) -> Result<ParsedLogoutResponse> {
    parse_logout_response_post_with(
        saml_response,
        relay_state,
        signer_certs.map(PeerSigners::modern),
        max_bytes,
    )
}

/// [`parse_logout_response_post`] with the peer's [`PeerSigners`], which say whether its legacy
/// opt-in `allow_sha1` admits RSA-SHA1 (and, over POST, SHA-1 digests).
pub fn parse_logout_response_post_with(
    saml_response: &str,
    relay_state: Option<&str>,
    signers: Option<PeerSigners<'_>>,
    max_bytes: usize,
) -> Result<ParsedLogoutResponse> {
    let (xml, verified) = post_message(saml_response, LOGOUT_RESPONSE, signers, max_bytes)?;
    let mut parsed = logout_response_from_xml(&xml)?;
    parsed.relay_state = relay_state.map(str::to_owned);
    parsed.signature_verified = verified;
    Ok(parsed)
}

/// Parse a SOAP-binding LogoutRequest (the whole envelope). The binding
/// has no query signature to fall back on, so the enveloped signature of
/// one of `signers` is required: an unsigned request is
/// [`SignatureFailure::Missing`](crate::SignatureFailure::Missing).
pub fn parse_logout_request_soap(
    envelope: &str,
    signers: PeerSigners<'_>,
    max_bytes: usize,
) -> Result<ParsedLogoutRequest> {
    let xml = soap::body_message(envelope, max_bytes)?;
    let verified = verify_enveloped_root(&xml, signers, LOGOUT_REQUEST)?;
    let mut parsed = logout_request_from_xml(&verified)?;
    parsed.signature_verified = true;
    Ok(parsed)
}

/// Parse a SOAP-binding LogoutResponse (the whole envelope). A signed
/// response must verify with one of `signers`; an unsigned one (the
/// binding lets the TLS connection vouch for it) is returned with
/// `signature_verified` false, for the caller to weigh. `None` only parses.
pub fn parse_logout_response_soap(
    envelope: &str,
    signers: Option<PeerSigners<'_>>,
    max_bytes: usize,
) -> Result<ParsedLogoutResponse> {
    let xml = soap::body_message(envelope, max_bytes)?;
    xml_guard::refuse_doctype(&xml)?;
    let signed = !xml_guard::scan(&xml, &XmlLimits::MESSAGE)?
        .signatures
        .is_empty();
    match signers {
        Some(signers) if signed => {
            let verified = verify_enveloped_root(&xml, signers, LOGOUT_RESPONSE)?;
            let mut parsed = logout_response_from_xml(&verified)?;
            parsed.signature_verified = true;
            Ok(parsed)
        }
        _ => logout_response_from_xml(&xml),
    }
}
