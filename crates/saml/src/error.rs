//! The crate's single error type. Variants are grouped by *category* so
//! callers (the web layers) can branch on what went wrong — reject, log,
//! re-authenticate — without string matching. Reasons carried inside are
//! short, static-ish descriptions and ids; never SAML XML.

use std::fmt;

/// Why a signature-related check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// The document carries no XML signature at all.
    Missing,
    /// The Response is signed but the Assertion is not, and the caller
    /// did not allow a signed Response to stand in for a signed Assertion.
    AssertionUnsigned,
    /// A SignatureMethod, DigestMethod, Transform or CanonicalizationMethod
    /// outside the allowlist (e.g. rsa-sha1 / sha1). Carries the algorithm URI.
    WeakAlgorithm(String),
    /// The cryptographic check failed against every pinned certificate
    /// (tampered content, or signed by a key that is not pinned).
    Invalid,
    /// Structure that signature-wrapping attacks rely on: several
    /// assertions, duplicate IDs, signatures not enveloping their referent.
    Wrapping(&'static str),
}

impl fmt::Display for SignatureFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("no signature"),
            Self::AssertionUnsigned => f.write_str("assertion is not signed"),
            Self::WeakAlgorithm(uri) => write!(f, "algorithm not allowed: {uri}"),
            Self::Invalid => f.write_str("signature does not verify with a pinned certificate"),
            Self::Wrapping(reason) => write!(f, "possible signature wrapping: {reason}"),
        }
    }
}

/// Why a time/validity condition failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConditionFailure {
    /// NotOnOrAfter (Conditions or SubjectConfirmationData) has passed.
    Expired,
    /// NotBefore lies in the future (beyond clock skew), or IssueInstant does.
    NotYetValid,
    /// NotOnOrAfter − IssueInstant exceeds the configured maximum.
    ValidityTooLong,
    /// A required element/attribute is absent (names it).
    Missing(&'static str),
}

impl fmt::Display for ConditionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Expired => f.write_str("expired"),
            Self::NotYetValid => f.write_str("not yet valid"),
            Self::ValidityTooLong => f.write_str("validity window too long"),
            Self::Missing(what) => write!(f, "missing {what}"),
        }
    }
}

/// Why an `EncryptedAssertion` was refused before or while decrypting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecryptionFailure {
    /// A key transport or content algorithm outside the allowlist (RSA
    /// PKCS#1 v1.5 among them: a padding oracle). Carries its URI.
    Algorithm(String),
    /// Not the one shape accepted: one EncryptedData, one EncryptedKey,
    /// ciphertext inline (no CipherReference), no key agreement.
    Shape(&'static str),
    /// The EncryptedKey does not decrypt with the SP's key (another
    /// recipient's, or tampered).
    KeyTransport,
    /// The content does not decrypt (tampered ciphertext, failed GCM tag,
    /// bad CBC padding) or its key has the wrong size.
    Content,
    /// The plaintext is not exactly one `saml:Assertion` element.
    Plaintext(&'static str),
}

impl fmt::Display for DecryptionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Algorithm(uri) => write!(f, "algorithm not allowed: {uri}"),
            Self::Shape(what) => write!(f, "unexpected shape: {what}"),
            Self::KeyTransport => f.write_str("EncryptedKey does not decrypt with the SP key"),
            Self::Content => f.write_str("EncryptedData does not decrypt"),
            Self::Plaintext(what) => write!(f, "decrypted content refused: {what}"),
        }
    }
}

/// Which structural limit of the XML pre-scan a document exceeded, with
/// the limit (see `XmlLimits`). Checked before any other parser runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum XmlLimit {
    Elements(usize),
    AttributesPerElement(usize),
    Attributes(usize),
    Depth(usize),
    TextBytes(usize),
}

impl fmt::Display for XmlLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Elements(n) => write!(f, "more than {n} elements"),
            Self::AttributesPerElement(n) => write!(f, "more than {n} attributes on one element"),
            Self::Attributes(n) => write!(f, "more than {n} attributes"),
            Self::Depth(n) => write!(f, "nested deeper than {n} levels"),
            Self::TextBytes(n) => write!(f, "a text or attribute value over {n} bytes"),
        }
    }
}

/// Every failure this crate reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input larger than a cap: the encoded form (checked before decoding)
    /// or the XML text (checked before parsing).
    #[error("SAML message too large ({size} bytes, limit {limit})")]
    Size { size: usize, limit: usize },
    /// Over a structural limit of the pre-scan (element or attribute count,
    /// depth, text size), refused before any other XML parser saw it.
    #[error("SAML XML over a structural limit: {0}")]
    Limit(XmlLimit),
    /// Not well-formed, DOCTYPE/entities present, or not the expected shape.
    #[error("invalid SAML XML: {0}")]
    Xml(String),
    /// Transport encoding problems: base64, DEFLATE, query string, UTF-8.
    #[error("SAML binding error: {0}")]
    Binding(String),
    #[error("SAML signature rejected: {0}")]
    Signature(SignatureFailure),
    #[error("SAML EncryptedAssertion refused: {0}")]
    Decryption(DecryptionFailure),
    #[error("SAML condition failed: {0}")]
    Condition(ConditionFailure),
    /// Top-level StatusCode was not Success (carries the code URI).
    #[error("SAML status not Success: {code}")]
    Status { code: String },
    #[error("SAML audience restriction does not name this SP")]
    Audience,
    /// Response Destination or SubjectConfirmationData Recipient mismatch.
    #[error("SAML destination/recipient mismatch (found {found:?})")]
    Destination { found: Option<String> },
    #[error("SAML issuer mismatch (found {found:?})")]
    Issuer { found: Option<String> },
    #[error("SAML InResponseTo mismatch (found {found:?})")]
    InResponseTo { found: Option<String> },
    /// Valid SAML this SP does not handle (e.g. an EncryptedAssertion for
    /// an app without an encryption key).
    #[error("unsupported SAML feature: {0}")]
    Unsupported(&'static str),
    /// Loading or generating keys/certificates failed.
    #[error("SAML key error: {0}")]
    Key(String),
    /// Building or signing an outgoing message failed.
    #[error("SAML build error: {0}")]
    Build(String),
}

impl Error {
    /// The category as a stable word, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Size { .. } => "size",
            Self::Limit(_) => "xml_limit",
            Self::Xml(_) => "xml",
            Self::Binding(_) => "binding",
            Self::Signature(_) => "signature",
            Self::Decryption(_) => "decryption",
            Self::Condition(_) => "condition",
            Self::Status { .. } => "status",
            Self::Audience => "audience",
            Self::Destination { .. } => "destination",
            Self::Issuer { .. } => "issuer",
            Self::InResponseTo { .. } => "in_response_to",
            Self::Unsupported(_) => "unsupported",
            Self::Key(_) => "key",
            Self::Build(_) => "build",
        }
    }

    pub(crate) fn xml(reason: impl fmt::Display) -> Self {
        Self::Xml(reason.to_string())
    }
    pub(crate) fn binding(reason: impl fmt::Display) -> Self {
        Self::Binding(reason.to_string())
    }
    pub(crate) fn build(reason: impl fmt::Display) -> Self {
        Self::Build(reason.to_string())
    }
    pub(crate) fn key(reason: impl fmt::Display) -> Self {
        Self::Key(reason.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
