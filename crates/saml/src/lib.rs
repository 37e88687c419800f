//! SAML 2.0 for Portcullis, on top of samael/xmlsec: key material, the
//! embedded IdP's response issuing and AuthnRequest parsing, and the
//! gateway SP's request building and hardened response verification, and
//! Single Logout request/response messages for both roles.
//! Speaks SAML only — no HTTP server code lives here.
//!
//! Note on diagnostics: libxml2/xmlsec report some failures through their
//! global C error callbacks, which print to stderr. Silencing them needs
//! `unsafe` FFI (forbidden here); we minimise it by rejecting malformed
//! XML with quick-xml before libxml2 parses anything, and every failure
//! is returned as a typed [`Error`] with the reason.
//!
//! Untrusted XML meets quick-xml's plain reader first, which holds it to
//! [`XmlLimits`] (size, elements, attributes, depth, text): libxml2 is not
//! linear in every shape, and no other parser sees a document over them.

mod binding;
pub mod error;
pub mod idp;
pub mod keys;
pub mod logout;
mod metadata;
pub mod peer;
pub mod peer_logout;
pub mod signed_metadata;
mod soap;
pub mod sp;
mod xml_guard;

pub use binding::{PeerSigners, SIG_ALG_RSA_SHA1, SIG_ALG_RSA_SHA256};
pub use error::{ConditionFailure, DecryptionFailure, Error, Result, SignatureFailure, XmlLimit};
pub use idp::{
    build_response, build_status_response, idp_metadata_xml, parse_authn_request_post,
    parse_authn_request_post_with, parse_authn_request_redirect, parse_authn_request_redirect_with,
    post_request_is_signed, AttributeNameFormat, AuthnContextClass, IdpConfig, IssuedResponse,
    NameIdFormat, ParsedAuthnRequest, ReleasedAttribute, ResponseParams, StatusParams,
    StatusResponse, STATUS_INVALID_NAME_ID_POLICY, STATUS_NO_PASSIVE, STATUS_REQUESTER,
    STATUS_REQUEST_DENIED, STATUS_RESPONDER,
};
pub use keys::{cert_der_from_pem, EncryptionKey, Jwks, SigningKey};
pub use logout::{
    build_logout_request_post, build_logout_request_redirect, build_logout_request_soap,
    build_logout_response_post, build_logout_response_redirect, build_logout_response_soap,
    parse_logout_request_post, parse_logout_request_post_with, parse_logout_request_redirect,
    parse_logout_request_redirect_with, parse_logout_request_soap, parse_logout_response_post,
    parse_logout_response_post_with, parse_logout_response_redirect,
    parse_logout_response_redirect_with, parse_logout_response_soap, LogoutRequestParams,
    LogoutResponseParams, LogoutStatus, ParsedLogoutRequest, ParsedLogoutResponse, PostMessage,
    SoapMessage,
};
pub use peer::{parse_idp_metadata, parse_sp_metadata, Freshness, IdpMetadata, SpMetadata};
pub use peer_logout::{verify_logout_message, LogoutBinding, LogoutExpectations, LogoutMessage};
pub use signed_metadata::{
    read_idp_metadata, read_sp_metadata, sign_metadata, MetadataTrust, Trusted,
};
pub use soap::{soap_envelope, soap_fault, SoapFaultCode, NS_SOAP_ENV, SOAP_ACTION, SOAP_BINDING};
pub use sp::{
    build_redirect_authn_request, sp_metadata_xml, sp_metadata_xml_with_encryption,
    sp_metadata_xml_with_formats, verify_response, AuthnRequestParams, Expectations,
    RedirectRequest, SpConfig, VerifiedAssertion,
};
pub use xml_guard::XmlLimits;
