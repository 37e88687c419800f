//! Structural pre-checks on untrusted SAML XML, run *before* the document
//! reaches libxml2/xmlsec: DOCTYPE/entity refusal, well-formedness, a
//! census of Assertions/EncryptedAssertions/IDs, and an inventory of every
//! `ds:Signature` with its algorithms and references. The verifier uses the
//! inventory to refuse signature-wrapping shapes and weak algorithms
//! independently of (and prior to) the cryptographic check.

use std::collections::HashSet;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::error::{Error, Result, SignatureFailure};

pub(crate) const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(crate) const NS_XMLENC: &str = "http://www.w3.org/2001/04/xmlenc#";

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

/// Scan `xml` (DOCTYPE already refused). Fails on malformed XML, on a
/// DOCTYPE event, and on duplicate `ID`/`Id` values.
pub(crate) fn scan(xml: &str) -> Result<Scan> {
    let mut reader = NsReader::from_str(xml);
    let mut out = Scan::default();
    let mut stack: Vec<Open> = Vec::new();
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut root_seen = false;

    loop {
        let (ns, event) = reader.read_resolved_event().map_err(Error::xml)?;
        let (start, is_empty) = match event {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::End(_) => {
                stack.pop();
                continue;
            }
            Event::DocType(_) => return Err(Error::xml("DOCTYPE is not allowed")),
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
        if ns_ref == Some(NS_ASSERTION) && name == "Assertion" {
            out.assertion_count += 1;
            out.assertion_id.clone_from(&id);
            out.assertion_at_top = depth == 1;
        } else if ns_ref == Some(NS_ASSERTION) && name == "EncryptedAssertion" {
            out.encrypted_assertion_count += 1;
        } else if ns_ref == Some(NS_DSIG) && name == "Signature" {
            let parent = stack.last();
            out.signatures.push(SignatureInfo {
                parent_name: parent.map(|p| p.name.clone()).unwrap_or_default(),
                parent_id: parent.and_then(|p| p.id.clone()),
                parent_depth: depth.saturating_sub(1),
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
            });
        }
    }
    if !root_seen {
        return Err(Error::xml("no root element"));
    }
    Ok(out)
}

/// Check every signature's algorithms against the allowlists.
pub(crate) fn check_algorithms(scan: &Scan) -> Result<()> {
    for sig in &scan.signatures {
        let method = sig.signature_method.as_deref().unwrap_or("");
        if !ALLOWED_SIGNATURE_METHODS.contains(&method) {
            return Err(Error::Signature(SignatureFailure::WeakAlgorithm(
                method.to_owned(),
            )));
        }
        for d in &sig.digest_methods {
            if !ALLOWED_DIGEST_METHODS.contains(&d.as_str()) {
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
