//! Structural pre-checks on untrusted SAML XML, run *before* the document
//! reaches libxml2/xmlsec: DOCTYPE/entity refusal, structural limits
//! ([`XmlLimits`]: size, elements, attributes, depth, text), well-formedness,
//! a census of Assertions/EncryptedAssertions/IDs, and an inventory of every
//! `ds:Signature` with its algorithms and references. The verifier uses the
//! inventory to refuse signature-wrapping shapes and weak algorithms
//! independently of (and prior to) the cryptographic check.
//!
//! The limits exist because the parsers behind us are not linear in every
//! shape: libxml2's duplicate-attribute check is quadratic in the
//! attributes of one element, so a 190 KiB envelope with ~27,000 junk
//! attributes cost seconds of CPU before the signature was even looked at.
//! quick-xml's plain reader, which enforces them here, is linear.

use std::collections::HashSet;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, Reader};

use crate::error::{Error, Result, SignatureFailure, XmlLimit};

pub(crate) const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(crate) const NS_XMLENC: &str = "http://www.w3.org/2001/04/xmlenc#";
pub(crate) const NS_XMLENC11: &str = "http://www.w3.org/2009/xmlenc11#";

/// Content encryption accepted in an EncryptedAssertion.
pub(crate) const ALLOWED_CONTENT_ENCRYPTION: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
];

/// Key transport accepted: RSA-OAEP only. RSA PKCS#1 v1.5
/// (`xmlenc#rsa-1_5`) is a padding oracle (Bleichenbacher) and refused.
pub(crate) const ALLOWED_KEY_TRANSPORT: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
];

/// The one mask generation function xmlsec 1.2 implements.
pub(crate) const ALLOWED_MGF: &[&str] = &["http://www.w3.org/2009/xmlenc11#mgf1sha1"];

/// SignatureMethod URIs accepted (SHA-256 or stronger only).
pub(crate) const ALLOWED_SIGNATURE_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];

/// DigestMethod URIs accepted.
pub(crate) const ALLOWED_DIGEST_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

/// Transforms / canonicalization accepted. Anything else (XPath, XSLT,
/// base64 …) is refused: SAML never needs them and xmlsec would run them.
pub(crate) const ALLOWED_TRANSFORMS: &[&str] = &[
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/2006/12/xml-c14n11",
];

/// Structural limits a document must stay within before any XML parser but
/// quick-xml's plain reader sees it. Each bound is far above what real
/// messages need (the figures in the constants' comments) and low enough
/// that no parser behind it can be driven into super-linear work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Bytes of XML text (after transport decoding).
    pub max_bytes: usize,
    /// Elements in the whole document.
    pub max_elements: usize,
    /// Attributes, namespace declarations included, on one element: what
    /// libxml2's duplicate check is quadratic in.
    pub max_attributes_per_element: usize,
    /// Attributes in the whole document.
    pub max_attributes: usize,
    /// Nesting depth (the root is depth 1).
    pub max_depth: usize,
    /// Bytes of one text run between tags, and of one attribute value.
    pub max_text_bytes: usize,
}

impl XmlLimits {
    /// A `samlp:Response` at the ACS.
    ///
    /// Real shapes, for scale: the embedded IdP, pysaml2, SimpleSAMLphp,
    /// ADFS and Okta responses have 40–60 elements plus one per attribute
    /// value, at most 8–10 attributes on one element (the Response root
    /// with its namespace declarations; an `AttributeValue` carries up to
    /// three: `xmlns:xs`, `xmlns:xsi`, `xsi:type`), 2–3 attributes per
    /// element on average, a depth of 8 (Response › Assertion › Signature ›
    /// SignedInfo › Reference › Transforms › Transform ›
    /// InclusiveNamespaces), and no text run beyond a certificate (2–4 KiB).
    /// The bulkiest real case is a multi-valued group attribute: ADFS
    /// sends every group of a user, so 1,000 groups is 1,100 elements, and
    /// the size cap itself (the ACS takes 256 KiB of base64) leaves room
    /// for at most ~3,000 values of the shortest realistic form.
    pub const RESPONSE: XmlLimits = XmlLimits {
        // 256 KiB of base64, decoded: the ACS's own cap, repeated so the
        // pre-scan is self-contained for every caller.
        max_bytes: 192 * 1024,
        // ~2.7× the most a real response can fit under the size cap.
        max_elements: 8_192,
        // 3× the largest real element; 32² is nothing even for a
        // quadratic check, where 27,000² was seconds.
        max_attributes_per_element: 32,
        // 2 per allowed element: real documents average 2–3 per element
        // but run far below the element limit.
        max_attributes: 16_384,
        // 4× the deepest real shape (an Advice with nested assertions
        // adds 2–3 levels).
        max_depth: 32,
        // 16× a certificate; leaves room for an unusually long attribute
        // value (a serialized entitlement, a small photo).
        max_text_bytes: 64 * 1024,
    };

    /// AuthnRequests, LogoutRequests and LogoutResponses: small messages
    /// (1–8 KiB with an enveloped signature and its certificate, 15–60
    /// elements, depth ≤ 8), so every bound is tighter than a Response's,
    /// the size cap included.
    pub const MESSAGE: XmlLimits = XmlLimits {
        // 4× a signed message that embeds its certificate.
        max_bytes: 32 * 1024,
        // 4× an AuthnRequest with eIDAS-style requested-attribute
        // extensions (~60 elements).
        max_elements: 256,
        max_attributes_per_element: 32,
        max_attributes: 1_024,
        // 2× the deepest real shape.
        max_depth: 16,
        // 4× a certificate.
        max_text_bytes: 16 * 1024,
    };

    /// A peer's metadata document: one entity (30–60 elements) or an
    /// aggregate of many, up to the 10 MiB download cap. An entity costs
    /// ~40 elements and ~100 attributes, so a capped aggregate of small
    /// entities stays under these; the per-element bounds are as tight as
    /// a Response's, which is what keeps libxml2 linear.
    pub const METADATA: XmlLimits = XmlLimits {
        max_bytes: crate::peer::MAX_METADATA_BYTES,
        max_elements: 400_000,
        max_attributes_per_element: 32,
        max_attributes: 1_000_000,
        max_depth: 32,
        max_text_bytes: 64 * 1024,
    };
}

/// Enforces `limits` in one linear pass with quick-xml's plain reader
/// (no namespace resolution, no attribute de-duplication): the first
/// parser any SAML document meets. Malformed markup it trips over is
/// refused here too; what it lets through is checked again by [`scan`].
pub(crate) fn check_limits(xml: &str, limits: &XmlLimits) -> Result<()> {
    if xml.len() > limits.max_bytes {
        return Err(Error::Size {
            size: xml.len(),
            limit: limits.max_bytes,
        });
    }
    let mut reader = Reader::from_str(xml);
    let (mut elements, mut attributes, mut depth, mut text) = (0usize, 0usize, 0usize, 0usize);
    loop {
        let (start, is_empty) = match reader.read_event().map_err(Error::xml)? {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                text = 0;
                continue;
            }
            Event::Text(t) => {
                text += t.len();
                over(text, limits.max_text_bytes, XmlLimit::TextBytes)?;
                continue;
            }
            Event::CData(t) => {
                text += t.len();
                over(text, limits.max_text_bytes, XmlLimit::TextBytes)?;
                continue;
            }
            Event::GeneralRef(r) => {
                // `&amp;` splits a text run into several events; the run
                // is what counts.
                text += r.len() + 2;
                over(text, limits.max_text_bytes, XmlLimit::TextBytes)?;
                continue;
            }
            Event::Eof => return Ok(()),
            _ => continue,
        };
        text = 0;
        elements += 1;
        over(elements, limits.max_elements, XmlLimit::Elements)?;
        // The element's own depth, whether or not it has content.
        over(depth + 1, limits.max_depth, XmlLimit::Depth)?;
        if !is_empty {
            depth += 1;
        }
        // Counting stops one past the limit: a tag with 27,000 attributes
        // costs 33 steps here.
        let mut on_element = 0usize;
        for a in start
            .attributes()
            .with_checks(false)
            .take(limits.max_attributes_per_element + 1)
        {
            let a = a.map_err(Error::xml)?;
            on_element += 1;
            over(a.value.len(), limits.max_text_bytes, XmlLimit::TextBytes)?;
        }
        over(
            on_element,
            limits.max_attributes_per_element,
            XmlLimit::AttributesPerElement,
        )?;
        attributes += on_element;
        over(attributes, limits.max_attributes, XmlLimit::Attributes)?;
    }
}

fn over(count: usize, limit: usize, which: fn(usize) -> XmlLimit) -> Result<()> {
    if count > limit {
        return Err(Error::Limit(which(limit)));
    }
    Ok(())
}

/// One `ds:Signature` found in the document.
#[derive(Debug, Default)]
pub(crate) struct SignatureInfo {
    /// Local name of the element the Signature is a direct child of.
    pub parent_name: String,
    /// That element's `ID` attribute.
    pub parent_id: Option<String>,
    /// Depth of the parent (0 = root).
    pub parent_depth: usize,
    pub signature_method: Option<String>,
    pub digest_methods: Vec<String>,
    pub transforms: Vec<String>,
    pub reference_uris: Vec<String>,
    /// Byte range of the whole `ds:Signature` element in the document.
    pub span: (usize, usize),
}

/// The XML Encryption elements of a document, for [`check_encryption`].
#[derive(Debug, Default)]
pub(crate) struct EncryptionScan {
    /// Byte range of the (first) EncryptedAssertion element.
    pub span: (usize, usize),
    /// True when it is a direct child of the root.
    pub at_top: bool,
    /// Namespace declarations on its start tag (`xmlns:p`, raw value):
    /// in scope for the plaintext that replaces it.
    pub ns_decls: Vec<(String, String)>,
    /// (parent's local name, EncryptionMethod/@Algorithm) of each
    /// EncryptedData / EncryptedKey.
    pub data: Vec<(String, Option<String>)>,
    pub keys: Vec<(String, Option<String>)>,
    /// xenc11:MGF algorithms.
    pub mgfs: Vec<String>,
    /// CipherReference, AgreementMethod, DerivedKey: ways to make the
    /// decryptor fetch or derive something; none is accepted.
    pub indirections: usize,
}

/// Census of a document (see module docs).
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub root_ns: Option<String>,
    pub root_name: String,
    pub root_id: Option<String>,
    pub assertion_count: usize,
    pub assertion_id: Option<String>,
    /// True when the (single) Assertion is a direct child of the root.
    pub assertion_at_top: bool,
    pub encrypted_assertion_count: usize,
    pub encryption: EncryptionScan,
    pub signatures: Vec<SignatureInfo>,
}

/// Refuse DOCTYPE / entity declarations by a plain text search, before any
/// parser runs, so no XML parser ever sees them (XXE, billion laughs).
pub(crate) fn refuse_doctype(xml: &str) -> Result<()> {
    let upper = xml.to_ascii_uppercase();
    if upper.contains("<!DOCTYPE") || upper.contains("<!ENTITY") {
        return Err(Error::xml("DOCTYPE/ENTITY declarations are not allowed"));
    }
    Ok(())
}

struct Open {
    name: String,
    id: Option<String>,
    /// Index into `signatures` if this element is a ds:Signature.
    signature: Option<usize>,
    /// The first EncryptedAssertion (its end closes `encryption.span`).
    encrypted_assertion: bool,
}

fn position<R>(reader: &NsReader<R>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

fn ns_of(ns: &ResolveResult<'_>) -> Option<String> {
    match ns {
        ResolveResult::Bound(n) => Some(String::from_utf8_lossy(n.as_ref()).into_owned()),
        _ => None,
    }
}

pub(crate) fn attr(start: &BytesStart<'_>, local: &[u8]) -> Result<Option<String>> {
    for a in start.attributes() {
        let a = a.map_err(Error::xml)?;
        // Only unprefixed attributes: that's what SAML/DSig use and what
        // samael registers as IDs.
        if a.key.prefix().is_none() && a.key.local_name().as_ref() == local {
            return Ok(Some(
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map_err(Error::xml)?
                    .into_owned(),
            ));
        }
    }
    Ok(None)
}

/// Scan `xml` (DOCTYPE already refused) after [`check_limits`]. Fails on
/// a limit, on malformed XML, on a DOCTYPE event, and on duplicate
/// `ID`/`Id` values.
pub(crate) fn scan(xml: &str, limits: &XmlLimits) -> Result<Scan> {
    check_limits(xml, limits)?;
    let mut reader = NsReader::from_str(xml);
    let mut out = Scan::default();
    let mut stack: Vec<Open> = Vec::new();
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut root_seen = false;
    let mut first_event = true;

    loop {
        let event_start = position(&reader);
        let (ns, event) = reader.read_resolved_event().map_err(Error::xml)?;
        let at_start = std::mem::replace(&mut first_event, false);
        let outside_root = stack.is_empty();
        let (start, is_empty) = match event {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::End(_) => {
                if let Some(closed) = stack.pop() {
                    let end = position(&reader);
                    if let Some(sig) = closed.signature.and_then(|i| out.signatures.get_mut(i)) {
                        sig.span.1 = end;
                    }
                    if closed.encrypted_assertion {
                        out.encryption.span.1 = end;
                    }
                }
                continue;
            }
            Event::DocType(_) => return Err(Error::xml("DOCTYPE is not allowed")),
            // Strict XML: one declaration, first; no processing
            // instructions (SAML has none, and a parser might act on
            // them); nothing but whitespace and comments around the root.
            Event::Decl(_) if !at_start => {
                return Err(Error::xml("an XML declaration after the start"))
            }
            Event::PI(_) => return Err(Error::xml("processing instructions are not allowed")),
            Event::Text(t) if outside_root && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(Error::xml("text outside the root element"))
            }
            Event::CData(_) | Event::GeneralRef(_) if outside_root => {
                return Err(Error::xml("text outside the root element"))
            }
            Event::Eof => break,
            _ => continue,
        };
        if root_seen && stack.is_empty() {
            return Err(Error::xml("content after the root element"));
        }
        let ns = ns_of(&ns);
        let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        let id = attr(&start, b"ID")?;
        // Signature wrapping relies on two elements answering to one ID.
        // libxml2's xmlGetProp (used by samael to register IDs) ignores
        // namespaces and xmlsec also resolves `Id`, so every attribute whose
        // local name is ID/Id, prefixed or not, shares one uniqueness check.
        for a in start.attributes() {
            let a = a.map_err(Error::xml)?;
            let local = a.key.local_name();
            if local.as_ref() == b"ID" || local.as_ref() == b"Id" {
                let value = a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map_err(Error::xml)?;
                if !seen_ids.insert(value.into_owned()) {
                    return Err(Error::Signature(SignatureFailure::Wrapping(
                        "duplicate ID attribute",
                    )));
                }
            }
        }
        let depth = stack.len();
        if !root_seen {
            root_seen = true;
            out.root_ns.clone_from(&ns);
            out.root_name.clone_from(&name);
            out.root_id.clone_from(&id);
        }
        let ns_ref = ns.as_deref();
        let mut signature = None;
        let mut encrypted_assertion = false;
        let end_if_empty = position(&reader);
        if ns_ref == Some(NS_XMLENC) || ns_ref == Some(NS_XMLENC11) {
            note_encryption(&mut out.encryption, &start, &name, stack.last())?;
        }
        if ns_ref == Some(NS_ASSERTION) && name == "Assertion" {
            out.assertion_count += 1;
            out.assertion_id.clone_from(&id);
            out.assertion_at_top = depth == 1;
        } else if ns_ref == Some(NS_ASSERTION) && name == "EncryptedAssertion" {
            out.encrypted_assertion_count += 1;
            if out.encrypted_assertion_count == 1 {
                encrypted_assertion = true;
                out.encryption.span = (event_start, end_if_empty);
                out.encryption.at_top = depth == 1;
                out.encryption.ns_decls = namespace_declarations(&start)?;
            }
        } else if ns_ref == Some(NS_DSIG) && name == "Signature" {
            let parent = stack.last();
            out.signatures.push(SignatureInfo {
                parent_name: parent.map(|p| p.name.clone()).unwrap_or_default(),
                parent_id: parent.and_then(|p| p.id.clone()),
                parent_depth: depth.saturating_sub(1),
                span: (event_start, end_if_empty),
                ..SignatureInfo::default()
            });
            signature = Some(out.signatures.len() - 1);
        } else if ns_ref == Some(NS_DSIG) || ns_ref == Some(NS_XMLENC) {
            // Attribute algorithms to the innermost enclosing Signature.
            let sig_index = stack.iter().rev().find_map(|o| o.signature);
            if let Some(sig) = sig_index.and_then(|i| out.signatures.get_mut(i)) {
                let alg = attr(&start, b"Algorithm")?;
                match name.as_str() {
                    "SignatureMethod" => {
                        if sig.signature_method.is_some() {
                            return Err(Error::xml("several SignatureMethod elements"));
                        }
                        sig.signature_method = alg;
                    }
                    "DigestMethod" => sig.digest_methods.push(alg.unwrap_or_default()),
                    "Transform" | "CanonicalizationMethod" => {
                        sig.transforms.push(alg.unwrap_or_default())
                    }
                    "Reference" => sig
                        .reference_uris
                        .push(attr(&start, b"URI")?.unwrap_or_default()),
                    _ => {}
                }
            }
        }
        if !is_empty {
            stack.push(Open {
                name,
                id,
                signature,
                encrypted_assertion,
            });
        }
    }
    if !root_seen {
        return Err(Error::xml("no root element"));
    }
    Ok(out)
}

/// Records one xmlenc / xmlenc11 element for [`check_encryption`].
fn note_encryption(
    enc: &mut EncryptionScan,
    start: &BytesStart<'_>,
    name: &str,
    parent: Option<&Open>,
) -> Result<()> {
    let parent_name = parent.map(|p| p.name.clone()).unwrap_or_default();
    match name {
        "EncryptedData" => enc.data.push((parent_name, None)),
        "EncryptedKey" => enc.keys.push((parent_name, None)),
        "EncryptionMethod" => {
            let alg = attr(start, b"Algorithm")?;
            let slot = match parent_name.as_str() {
                "EncryptedData" => enc.data.last_mut(),
                "EncryptedKey" => enc.keys.last_mut(),
                _ => None,
            };
            match slot {
                Some((_, method @ None)) => *method = Some(alg.unwrap_or_default()),
                _ => return Err(Error::xml("EncryptionMethod out of place")),
            }
        }
        "MGF" => enc
            .mgfs
            .push(attr(start, b"Algorithm")?.unwrap_or_default()),
        "CipherReference" | "AgreementMethod" | "DerivedKey" | "DataReference" | "KeyReference" => {
            enc.indirections += 1
        }
        _ => {}
    }
    Ok(())
}

/// `xmlns` / `xmlns:p` attributes of a start tag, raw.
fn namespace_declarations(start: &BytesStart<'_>) -> Result<Vec<(String, String)>> {
    let mut decls = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(Error::xml)?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        if key == "xmlns" || key.starts_with("xmlns:") {
            decls.push((key, String::from_utf8_lossy(&a.value).into_owned()));
        }
    }
    Ok(decls)
}

/// The one shape of EncryptedAssertion accepted, checked before xmlsec
/// sees it: one EncryptedData (AES-GCM or AES-CBC) directly in the
/// EncryptedAssertion, one EncryptedKey (RSA-OAEP, MGF1-SHA-1) in its
/// KeyInfo or beside it, inline ciphertext, nothing to fetch or derive.
pub(crate) fn check_encryption(scan: &Scan) -> Result<()> {
    use crate::error::DecryptionFailure::{Algorithm, Shape};
    let enc = &scan.encryption;
    let refuse = |f| Err(Error::Decryption(f));
    if enc.indirections > 0 {
        return refuse(Shape(
            "CipherReference, key agreement or references are not accepted",
        ));
    }
    let [(data_parent, data_alg)] = enc.data.as_slice() else {
        return refuse(Shape("not exactly one EncryptedData"));
    };
    let [(key_parent, key_alg)] = enc.keys.as_slice() else {
        return refuse(Shape("not exactly one EncryptedKey"));
    };
    if data_parent != "EncryptedAssertion" {
        return refuse(Shape("EncryptedData is not a child of EncryptedAssertion"));
    }
    if key_parent != "KeyInfo" && key_parent != "EncryptedAssertion" {
        return refuse(Shape("EncryptedKey out of place"));
    }
    let data_alg = data_alg.as_deref().unwrap_or_default();
    if !ALLOWED_CONTENT_ENCRYPTION.contains(&data_alg) {
        return refuse(Algorithm(data_alg.to_owned()));
    }
    let key_alg = key_alg.as_deref().unwrap_or_default();
    if !ALLOWED_KEY_TRANSPORT.contains(&key_alg) {
        return refuse(Algorithm(key_alg.to_owned()));
    }
    if let Some(mgf) = enc.mgfs.iter().find(|m| !ALLOWED_MGF.contains(&m.as_str())) {
        return refuse(Algorithm(mgf.clone()));
    }
    Ok(())
}

/// `text` (decrypted content) is exactly one element named `local`
/// (any prefix), with nothing but whitespace around it: no declaration,
/// comment, processing instruction or second element. Returns it trimmed.
pub(crate) fn single_element<'a>(
    text: &'a str,
    local: &str,
    limits: &XmlLimits,
) -> Result<&'a str> {
    use crate::error::DecryptionFailure::Plaintext;
    let refuse = |what| Err(Error::Decryption(Plaintext(what)));
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    check_limits(text, limits).map_err(|e| match e {
        Error::Xml(_) => Error::Decryption(Plaintext("not well-formed")),
        other => other,
    })?;
    let mut reader = Reader::from_str(text);
    let (mut depth, mut roots) = (0usize, 0usize);
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(_) => return refuse("not well-formed"),
        };
        match event {
            Event::Start(ref s) | Event::Empty(ref s) if depth == 0 => {
                roots += 1;
                if roots > 1 {
                    return refuse("more than one element");
                }
                if s.local_name().as_ref() != local.as_bytes() {
                    return refuse("not an Assertion");
                }
                // An empty root stays at depth 0; a started one is closed
                // by its End.
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::DocType(_) | Event::PI(_) | Event::Decl(_) => {
                return refuse("declaration or processing instruction")
            }
            Event::Comment(_) | Event::Text(_) | Event::CData(_) | Event::GeneralRef(_)
                if depth == 0 =>
            {
                return refuse("content outside the element")
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if roots != 1 || depth != 0 {
        return refuse("not exactly one element");
    }
    Ok(text)
}

/// RSA-SHA1 and SHA-1 digests: accepted only from a peer marked
/// `allow_sha1` (a legacy opt-in).
pub(crate) const SHA1_SIGNATURE_METHOD: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub(crate) const SHA1_DIGEST_METHOD: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// Check every signature's algorithms against the allowlists; `allow_sha1`
/// adds RSA-SHA1 and SHA-1 digests.
pub(crate) fn check_algorithms(scan: &Scan, allow_sha1: bool) -> Result<()> {
    for sig in &scan.signatures {
        let method = sig.signature_method.as_deref().unwrap_or("");
        if !(ALLOWED_SIGNATURE_METHODS.contains(&method)
            || allow_sha1 && method == SHA1_SIGNATURE_METHOD)
        {
            return Err(Error::Signature(SignatureFailure::WeakAlgorithm(
                method.to_owned(),
            )));
        }
        for d in &sig.digest_methods {
            if !(ALLOWED_DIGEST_METHODS.contains(&d.as_str())
                || allow_sha1 && d == SHA1_DIGEST_METHOD)
            {
                return Err(Error::Signature(SignatureFailure::WeakAlgorithm(d.clone())));
            }
        }
        for t in &sig.transforms {
            if !ALLOWED_TRANSFORMS.contains(&t.as_str()) {
                return Err(Error::Signature(SignatureFailure::WeakAlgorithm(t.clone())));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIGHT: XmlLimits = XmlLimits {
        max_bytes: 4096,
        max_elements: 4,
        max_attributes_per_element: 3,
        max_attributes: 5,
        max_depth: 3,
        max_text_bytes: 8,
    };

    fn limit(xml: &str) -> Option<XmlLimit> {
        match check_limits(xml, &TIGHT) {
            Ok(()) => None,
            Err(Error::Limit(which)) => Some(which),
            Err(other) => panic!("not a limit: {other}"),
        }
    }

    #[test]
    fn a_document_at_every_limit_passes() {
        // 4 elements, depth 3, 3 attributes on one element and 5 in all,
        // a text run and an attribute value of 8 bytes each.
        let xml = r#"<a x="12345678" y="" z=""><b p="" q=""><c>abcdefgh</c></b><d/></a>"#;
        assert_eq!(limit(xml), None);
    }

    #[test]
    fn each_limit_is_enforced_one_past_it() {
        let cases = [
            ("<a><b/><b/><b/><b/></a>", XmlLimit::Elements(4)),
            (
                r#"<a w="" x="" y="" z=""/>"#,
                XmlLimit::AttributesPerElement(3),
            ),
            (
                r#"<a x="" y="" z=""><b p="" q="" r=""/></a>"#,
                XmlLimit::Attributes(5),
            ),
            ("<a><b><c><d/></c></b></a>", XmlLimit::Depth(3)),
            ("<a>abcdefghi</a>", XmlLimit::TextBytes(8)),
            // A run split by references is still one run.
            ("<a>abc&amp;def</a>", XmlLimit::TextBytes(8)),
            ("<a><![CDATA[abcdefghi]]></a>", XmlLimit::TextBytes(8)),
            (r#"<a x="abcdefghi"/>"#, XmlLimit::TextBytes(8)),
        ];
        for (xml, want) in cases {
            assert_eq!(limit(xml), Some(want), "{xml}");
        }
    }

    #[test]
    fn text_runs_are_counted_between_tags_not_per_document() {
        assert_eq!(limit("<a><b>abcdefgh</b><b>abcdefgh</b></a>"), None);
    }

    #[test]
    fn the_size_cap_comes_before_the_reader() {
        let xml = format!("<a>{}</a>", " ".repeat(5000));
        assert!(matches!(
            check_limits(&xml, &TIGHT),
            Err(Error::Size { limit: 4096, .. })
        ));
    }

    #[test]
    fn thousands_of_attributes_on_one_element_are_refused_after_a_few() {
        let junk: String = (0..27_000).map(|i| format!(" a{i}=\"\"")).collect();
        let xml = format!("<samlp:Response{junk}/>");
        let mut limits = XmlLimits::RESPONSE;
        limits.max_bytes = xml.len();
        assert!(matches!(
            scan(&xml, &limits),
            Err(Error::Limit(XmlLimit::AttributesPerElement(32)))
        ));
    }

    #[test]
    fn the_scan_checks_limits_first() {
        // Malformed after the limit: the limit is what is reported.
        assert!(matches!(
            scan("<a><b><c><d></a>", &TIGHT),
            Err(Error::Limit(XmlLimit::Depth(3)))
        ));
    }

    #[test]
    fn only_one_leading_declaration_a_root_and_whitespace_or_comments_around_it_pass() {
        let limits = XmlLimits::MESSAGE;
        for fine in [
            "<a/>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a/>\n",
            "<!-- before --><a>x</a><!-- after -->  ",
        ] {
            assert!(scan(fine, &limits).is_ok(), "{fine}");
        }
        for strict in [
            "<a/><?xml version=\"1.0\"?>",
            "<a><?xml version=\"1.0\"?></a>",
            " <?xml version=\"1.0\"?><a/>",
            "<?xml-stylesheet href=\"x\"?><a/>",
            "<a><?pi x?></a>",
            "<a/>trailing",
            "leading<a/>",
            "<a/><![CDATA[x]]>",
            "<a/>&amp;",
            "<a/><b/>",
        ] {
            assert!(
                matches!(scan(strict, &limits), Err(Error::Xml(_))),
                "accepted: {strict}"
            );
        }
    }

    #[test]
    fn decrypted_content_is_exactly_one_named_element() {
        let limits = XmlLimits::RESPONSE;
        for fine in [
            "<s:Assertion/>",
            "\n <s:Assertion ID=\"a\"><s:x/></s:Assertion>\n",
        ] {
            assert!(single_element(fine, "Assertion", &limits).is_ok(), "{fine}");
        }
        for refused in [
            "",
            "<s:Assertion/><s:Assertion/>",
            "<s:Response><s:Assertion/></s:Response>",
            "<?xml version=\"1.0\"?><s:Assertion/>",
            "<!-- c --><s:Assertion/>",
            "<s:Assertion/>tail",
            "<s:Assertion><?pi?></s:Assertion>",
            "<s:Assertion>",
        ] {
            assert!(
                matches!(
                    single_element(refused, "Assertion", &limits),
                    Err(Error::Decryption(
                        crate::error::DecryptionFailure::Plaintext(_)
                    ))
                ),
                "accepted: {refused:?}"
            );
        }
    }
}
