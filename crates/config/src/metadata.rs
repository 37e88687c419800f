//! The seam through which peer SAML metadata files are read.
//!
//! Config checks every `metadata_file` at load, so `portcullis check`
//! reports a bad file at its key and line, but it does not speak SAML: the
//! caller hands in a [`MetadataReader`] (the binary's is built on
//! `portcullis-saml`). Keeping the XML parser out of this crate keeps
//! samael, xmlsec and openssl out of everything that only needs config,
//! the proxy above all.

use std::error::Error as StdError;

/// Parses the metadata documents an operator supplies for SAML peers.
pub trait MetadataReader {
    /// An external IdP an app trusts (`[[app]] idp = { metadata_file = "…" }`).
    fn idp(&self, xml: &str, trust: &PeerTrust<'_>) -> Result<IdpMetadata, MetadataError>;
    /// An external SP registered with the embedded IdP
    /// (`[[idp.service_provider]] metadata_file`).
    fn sp(&self, xml: &str, trust: &PeerTrust<'_>) -> Result<SpMetadata, MetadataError>;
    /// Downloads a `metadata_url` once, bounded in size and time.
    fn fetch(&self, _url: &str) -> Result<String, MetadataError> {
        Err(MetadataError::Unsupported)
    }
}

/// How a document must be trusted: which entity of an aggregate, and the
/// certificates its signature must verify with (none: unsigned is fine,
/// for an operator's own file).
#[derive(Debug, Clone, Copy)]
pub struct PeerTrust<'a> {
    pub entity_id: Option<&'a str>,
    pub signing_certs_der: &'a [Vec<u8>],
}

/// An external IdP, as an app's SP needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// SingleSignOnService for the HTTP-Redirect binding.
    pub sso_redirect_url: String,
    /// SingleLogoutService, if the IdP publishes one.
    pub slo_url: Option<String>,
    /// DER of every signing certificate (rollover publishes two).
    pub signing_certs_der: Vec<Vec<u8>>,
}

/// An external SP, as the embedded IdP needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpMetadata {
    pub entity_id: String,
    /// The AssertionConsumerService for HTTP-POST.
    pub acs_url: String,
    pub slo_url: Option<String>,
    /// SingleLogoutService for the SOAP binding (back-channel logout).
    pub soap_slo_url: Option<String>,
    /// DER of the certificates its AuthnRequests are signed with.
    pub signing_certs_der: Vec<Vec<u8>>,
    /// `AuthnRequestsSigned="true"`: unsigned requests are refused.
    pub authn_requests_signed: bool,
    /// DER of the certificates assertions may be encrypted for
    /// (`use="encryption"` KeyDescriptors, and those without `use`).
    pub encryption_certs_der: Vec<Vec<u8>>,
}

/// Why a metadata document was refused.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The reader parsed the document and found it unusable (malformed XML,
    /// wrong role, missing endpoint, bad certificate); its own error is kept
    /// as the source, and its message is what the problem report shows.
    #[error(transparent)]
    Invalid(Box<dyn StdError + Send + Sync + 'static>),
    /// This caller reads no metadata files at all ([`NoMetadata`]).
    #[error("SAML metadata files are not supported here (this program was built without a metadata reader)")]
    Unsupported,
    /// A `metadata_url` could not be downloaded (connection, status, size,
    /// timeout); the reason is the reader's.
    #[error("cannot fetch metadata: {0}")]
    Fetch(Box<dyn StdError + Send + Sync + 'static>),
}

impl MetadataError {
    /// Wraps a reader's own error.
    pub fn invalid(error: impl StdError + Send + Sync + 'static) -> Self {
        MetadataError::Invalid(Box::new(error))
    }
}

/// A reader for callers that never use metadata files (the proxy's tests
/// and benches): any `metadata_file` becomes a located problem.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetadata;

impl MetadataReader for NoMetadata {
    fn idp(&self, _xml: &str, _trust: &PeerTrust<'_>) -> Result<IdpMetadata, MetadataError> {
        Err(MetadataError::Unsupported)
    }

    fn sp(&self, _xml: &str, _trust: &PeerTrust<'_>) -> Result<SpMetadata, MetadataError> {
        Err(MetadataError::Unsupported)
    }
}
