//! The SAML SOAP binding (bindings §3.2) over SOAP 1.1: a protocol message
//! as the one child of an envelope's Body, for back-channel Single Logout.
//!
//! Reading is strict in the same way the other bindings are: the size is
//! capped and the structural limits enforced before anything else parses
//! it, DOCTYPEs are refused, the root must be `soap-env:Envelope` with at
//! most a Header and exactly one Body, the Body exactly one element and no
//! text, and a Header entry marked `mustUnderstand` is refused (we
//! understand none, SOAP 1.1 §4.2.3). The Body's child is handed on as a
//! document of its own, carrying the namespace declarations it inherited
//! from the envelope, so the enveloped-signature check sees exactly the
//! message the peer signed (exclusive canonicalization renders only the
//! namespaces the message uses, wherever they were declared).

use std::collections::BTreeMap;

use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{PrefixDeclaration, ResolveResult};
use quick_xml::NsReader;

use crate::binding;
use crate::error::{Error, Result};
use crate::xml_guard::{self, XmlLimits};

/// The binding URI metadata names SOAP endpoints with.
pub const SOAP_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP";
/// The SOAP 1.1 envelope namespace (the SAML SOAP binding is SOAP 1.1).
pub const NS_SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The `SOAPAction` value SAML peers send (bindings §3.2.3.3 only
/// recommends one; this is what Shibboleth, pysaml2 and ADFS send).
pub const SOAP_ACTION: &str = "http://www.oasis-open.org/committees/security";

/// The message limits with room for the envelope around it: two more
/// levels, a few more elements and the envelope's bytes.
const ENVELOPE_LIMITS: XmlLimits = XmlLimits {
    max_bytes: XmlLimits::MESSAGE.max_bytes + 4 * 1024,
    max_elements: XmlLimits::MESSAGE.max_elements + 16,
    max_depth: XmlLimits::MESSAGE.max_depth + 2,
    ..XmlLimits::MESSAGE
};

/// Who a SOAP Fault blames (SOAP 1.1 §4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapFaultCode {
    /// The message was malformed or refused: sending it again will not help.
    Client,
    /// We could not process a valid message.
    Server,
}

/// `message_xml` (one protocol message, an XML declaration allowed) as
/// the Body of a SOAP 1.1 envelope.
pub fn soap_envelope(message_xml: &str) -> String {
    let message = strip_declaration(message_xml);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soap-env:Envelope xmlns:soap-env=\"{NS_SOAP_ENV}\"><soap-env:Body>{message}</soap-env:Body></soap-env:Envelope>"
    )
}

/// A SOAP 1.1 Fault envelope; `reason` is for the peer's logs (keep it
/// free of anything the peer should not learn).
pub fn soap_fault(code: SoapFaultCode, reason: &str) -> String {
    let code = match code {
        SoapFaultCode::Client => "Client",
        SoapFaultCode::Server => "Server",
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soap-env:Envelope xmlns:soap-env=\"{NS_SOAP_ENV}\"><soap-env:Body><soap-env:Fault>\
         <faultcode>soap-env:{code}</faultcode><faultstring>{}</faultstring>\
         </soap-env:Fault></soap-env:Body></soap-env:Envelope>",
        escape(reason)
    )
}

fn strip_declaration(xml: &str) -> &str {
    let trimmed = xml.trim_start();
    if trimmed.starts_with("<?xml") {
        if let Some(end) = trimmed.find("?>") {
            return trimmed[end + 2..].trim_start();
        }
    }
    trimmed
}

/// Where the reader is in the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Envelope,
    Header,
    HeaderEntry,
    Body,
    /// Inside the Body's child (its start tag at this byte offset).
    Message,
    /// Content we pass over (inside a Header entry or the message).
    Deeper,
}

/// The one protocol message in a SOAP envelope, as a document of its own.
/// `max_bytes` caps the envelope before it is parsed.
pub(crate) fn body_message(envelope: &str, max_bytes: usize) -> Result<String> {
    binding::check_size(envelope.len(), max_bytes)?;
    xml_guard::refuse_doctype(envelope)?;
    xml_guard::check_limits(envelope, &ENVELOPE_LIMITS)?;
    let mut reader = NsReader::from_str(envelope);
    let mut stack: Vec<Place> = Vec::new();
    // Namespace declarations in scope at the Body, by prefix ("" = default).
    let mut inherited: BTreeMap<String, String> = BTreeMap::new();
    let mut saw_header = false;
    let mut saw_body = false;
    let mut message: Option<(usize, usize)> = None;
    let mut message_start = 0usize;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let (ns, event) = reader.read_resolved_event().map_err(Error::xml)?;
        let (start, empty) = match event {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::End(_) => {
                if stack.pop() == Some(Place::Message) {
                    let after = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
                    message = Some((message_start, after));
                }
                continue;
            }
            Event::Text(t) => {
                let inside = stack.last().copied();
                if matches!(inside, Some(Place::Envelope | Place::Body | Place::Header))
                    && !t.iter().all(u8::is_ascii_whitespace)
                {
                    return Err(Error::xml("text in the SOAP envelope"));
                }
                continue;
            }
            Event::CData(_) if !matches!(stack.last(), Some(Place::Message | Place::Deeper)) => {
                return Err(Error::xml("text in the SOAP envelope"));
            }
            Event::DocType(_) => return Err(Error::xml("DOCTYPE is not allowed")),
            Event::Eof => break,
            _ => continue,
        };
        let local = start.local_name();
        let soap = matches!(&ns, ResolveResult::Bound(n) if n.as_ref() == NS_SOAP_ENV.as_bytes());
        let place = match stack.last().copied() {
            None if soap && local.as_ref() == b"Envelope" => {
                collect_declarations(&start, &mut inherited)?;
                Place::Envelope
            }
            None => return Err(Error::xml("root element is not a SOAP 1.1 Envelope")),
            Some(Place::Envelope) if soap && local.as_ref() == b"Header" => {
                if saw_header || saw_body {
                    return Err(Error::xml("SOAP Header out of place"));
                }
                saw_header = true;
                Place::Header
            }
            Some(Place::Envelope) if soap && local.as_ref() == b"Body" => {
                if saw_body {
                    return Err(Error::xml("several SOAP Body elements"));
                }
                saw_body = true;
                collect_declarations(&start, &mut inherited)?;
                Place::Body
            }
            Some(Place::Envelope) => {
                return Err(Error::xml("unexpected element in the SOAP Envelope"))
            }
            Some(Place::Header) => {
                if must_understand(&start)? {
                    return Err(Error::Unsupported("a SOAP header marked mustUnderstand"));
                }
                Place::HeaderEntry
            }
            Some(Place::Body) => {
                if message.is_some() {
                    return Err(Error::xml("more than one element in the SOAP Body"));
                }
                message_start = before;
                if empty {
                    let after = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
                    message = Some((before, after));
                    continue;
                }
                Place::Message
            }
            Some(Place::HeaderEntry | Place::Message | Place::Deeper) => Place::Deeper,
        };
        if !empty {
            stack.push(place);
        }
    }
    if !saw_body {
        return Err(Error::xml("SOAP Envelope without a Body"));
    }
    let (from, to) = message.ok_or_else(|| Error::xml("empty SOAP Body"))?;
    let text = envelope
        .get(from..to)
        .ok_or_else(|| Error::xml("SOAP Body message out of bounds"))?;
    with_declarations(text, &inherited)
}

/// Records `start`'s namespace declarations over those already in scope.
fn collect_declarations(start: &BytesStart<'_>, into: &mut BTreeMap<String, String>) -> Result<()> {
    for a in start.attributes() {
        let a = a.map_err(Error::xml)?;
        let prefix = match a.key.as_namespace_binding() {
            Some(PrefixDeclaration::Default) => String::new(),
            Some(PrefixDeclaration::Named(p)) => String::from_utf8_lossy(p).into_owned(),
            None => continue,
        };
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(Error::xml)?
            .into_owned();
        into.insert(prefix, value);
    }
    Ok(())
}

/// SOAP 1.1 `soap-env:mustUnderstand="1"` on a Header entry.
fn must_understand(start: &BytesStart<'_>) -> Result<bool> {
    for a in start.attributes() {
        let a = a.map_err(Error::xml)?;
        if a.key.local_name().as_ref() == b"mustUnderstand" {
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(Error::xml)?;
            return Ok(matches!(value.trim(), "1" | "true"));
        }
    }
    Ok(false)
}

/// `message` (its start tag first) with the envelope's declarations it
/// does not make itself added to that start tag.
fn with_declarations(message: &str, inherited: &BTreeMap<String, String>) -> Result<String> {
    let mut reader = NsReader::from_str(message);
    let own: BTreeMap<String, String> = match reader.read_event().map_err(Error::xml)? {
        Event::Start(s) | Event::Empty(s) => {
            let mut own = BTreeMap::new();
            collect_declarations(&s, &mut own)?;
            own
        }
        _ => return Err(Error::xml("SOAP Body does not start with an element")),
    };
    let name_end = message
        .char_indices()
        .skip(1)
        .find(|(_, c)| c.is_ascii_whitespace() || *c == '/' || *c == '>')
        .map(|(i, _)| i)
        .ok_or_else(|| Error::xml("unterminated start tag in the SOAP Body"))?;
    let mut out = String::with_capacity(message.len() + 256);
    out.push_str(&message[..name_end]);
    for (prefix, uri) in inherited.iter().filter(|(p, _)| !own.contains_key(*p)) {
        if prefix.is_empty() {
            out.push_str(&format!(" xmlns=\"{}\"", escape(uri.as_str())));
        } else {
            out.push_str(&format!(" xmlns:{prefix}=\"{}\"", escape(uri.as_str())));
        }
    }
    out.push_str(&message[name_end..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str =
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_1\"/>";

    #[test]
    fn envelope_round_trips_its_message() {
        let env = soap_envelope(&format!("<?xml version=\"1.0\"?>\n{MSG}"));
        assert!(!env[5..].contains("<?xml"), "{env}");
        // The envelope's own declaration comes along (exclusive c14n
        // ignores it; the message does not use it).
        assert_eq!(
            body_message(&env, 64 * 1024).expect("body"),
            MSG.replacen(
                "<samlp:LogoutRequest",
                &format!("<samlp:LogoutRequest xmlns:soap-env=\"{NS_SOAP_ENV}\""),
                1
            )
        );
    }

    #[test]
    fn inherited_namespaces_travel_with_the_message() {
        let env = format!(
            "<e:Envelope xmlns:e=\"{NS_SOAP_ENV}\" xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\">\
             <e:Header><x:Trace xmlns:x=\"urn:x\">1</x:Trace></e:Header>\
             <e:Body>\n  <samlp:LogoutRequest ID=\"_1\"><samlp:Extensions/></samlp:LogoutRequest>\n</e:Body></e:Envelope>"
        );
        let body = body_message(&env, 64 * 1024).expect("body");
        assert_eq!(
            body,
            format!(
                "<samlp:LogoutRequest xmlns:e=\"{NS_SOAP_ENV}\" xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_1\"><samlp:Extensions/></samlp:LogoutRequest>"
            )
        );
    }

    #[test]
    fn refuses_envelopes_that_are_not_one_message() {
        let wrap =
            |body: &str| format!("<e:Envelope xmlns:e=\"{NS_SOAP_ENV}\">{body}</e:Envelope>");
        let cases = [
            ("<nope/>".to_string(), "not a SOAP 1.1 Envelope"),
            (
                "<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\"><e:Body/></e:Envelope>".into(),
                "not a SOAP 1.1 Envelope",
            ),
            (wrap(""), "without a Body"),
            (wrap("<e:Body/>"), "empty SOAP Body"),
            (wrap("<e:Body>  </e:Body>"), "empty SOAP Body"),
            (wrap(&format!("<e:Body>{MSG}{MSG}</e:Body>")), "more than one element"),
            (wrap(&format!("<e:Body>{MSG}</e:Body><e:Body/>")), "several SOAP Body"),
            (wrap(&format!("<e:Body>text{MSG}</e:Body>")), "text in the SOAP envelope"),
            (wrap(&format!("<e:Body>{MSG}</e:Body><e:Header/>")), "Header out of place"),
            (
                wrap(&format!(
                    "<e:Header><x:T xmlns:x=\"urn:x\" e:mustUnderstand=\"1\"/></e:Header><e:Body>{MSG}</e:Body>"
                )),
                "mustUnderstand",
            ),
            (wrap(&format!("<e:Body>{MSG}")), "invalid SAML XML"),
            (
                format!("<!DOCTYPE e [<!ENTITY a 'b'>]>{}", wrap(&format!("<e:Body>{MSG}</e:Body>"))),
                "DOCTYPE",
            ),
        ];
        for (xml, want) in cases {
            let err = body_message(&xml, 64 * 1024).expect_err(&xml).to_string();
            assert!(err.contains(want), "{xml}: {err}");
        }
        let big = soap_envelope(&format!("{MSG}{}", " ".repeat(70 * 1024)));
        assert!(matches!(
            body_message(&big, 64 * 1024),
            Err(Error::Size { .. })
        ));
    }

    #[test]
    fn faults_are_soap_faults() {
        let fault = soap_fault(SoapFaultCode::Client, "bad <thing>");
        assert!(
            fault.contains("<faultcode>soap-env:Client</faultcode>"),
            "{fault}"
        );
        assert!(fault.contains("bad &lt;thing&gt;"), "{fault}");
        let body = body_message(&fault, 64 * 1024).expect("a fault is one Body element");
        assert!(
            body.starts_with("<soap-env:Fault xmlns:soap-env="),
            "{body}"
        );
    }
}
