//! A Single Logout message from the one peer a service provider trusts (its
//! IdP), checked before anyone acts on it: either binding, the peer's
//! signature required (over SOAP too), its Issuer, our endpoint as Destination, and for a
//! LogoutRequest its validity window.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::binding::PeerSigners;
use crate::error::{Error, Result};
use crate::logout::{
    parse_logout_request_post_with, parse_logout_request_redirect_with, parse_logout_request_soap,
    parse_logout_response_post_with, parse_logout_response_redirect_with, ParsedLogoutRequest,
    ParsedLogoutResponse,
};

/// A Single Logout message as it arrived at our endpoint.
#[derive(Debug, Clone, Copy)]
pub enum LogoutBinding<'a> {
    /// HTTP-Redirect: the raw, still URL-encoded query string.
    Redirect { query: &'a str },
    /// HTTP-POST: the decoded form fields.
    Post {
        saml_request: Option<&'a str>,
        saml_response: Option<&'a str>,
        relay_state: Option<&'a str>,
    },
    /// SOAP (back channel): the whole envelope. Only LogoutRequests come
    /// this way; the answer goes back on the same connection.
    Soap { envelope: &'a str },
}

/// What the peer's message must satisfy.
#[derive(Debug, Clone)]
pub struct LogoutExpectations<'a> {
    /// The peer's entity id: the Issuer its messages must carry.
    pub peer_entity_id: &'a str,
    /// Every signing certificate the peer publishes; one must verify.
    pub peer_certs: &'a [Vec<u8>],
    /// The peer's legacy opt-in: RSA-SHA1 signatures and SHA-1 digests
    /// are accepted from it (never from anyone else).
    pub allow_sha1: bool,
    /// Our SingleLogoutService: a Destination, when present, must name it.
    pub our_slo_url: &'a str,
    /// Encoded messages larger than this are refused before decoding.
    pub max_bytes: usize,
    pub clock_skew: Duration,
}

/// A verified message from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutMessage {
    /// The peer asks us to end the sessions it names.
    Request(ParsedLogoutRequest),
    /// The peer answers a LogoutRequest of ours.
    Response(ParsedLogoutResponse),
}

/// Verifies a Single Logout message from the peer.
pub fn verify_logout_message(
    binding: LogoutBinding<'_>,
    expect: &LogoutExpectations<'_>,
    now: DateTime<Utc>,
) -> Result<LogoutMessage> {
    let certs = Some(PeerSigners {
        certs: expect.peer_certs,
        allow_sha1: expect.allow_sha1,
    });
    let message = match binding {
        LogoutBinding::Redirect { query } => {
            let has = |name: &str| {
                query
                    .split('&')
                    .any(|pair| pair.split('=').next() == Some(name))
            };
            match (has("SAMLRequest"), has("SAMLResponse")) {
                (true, false) => LogoutMessage::Request(parse_logout_request_redirect_with(
                    query,
                    certs,
                    expect.max_bytes,
                )?),
                (false, true) => LogoutMessage::Response(parse_logout_response_redirect_with(
                    query,
                    certs,
                    expect.max_bytes,
                )?),
                _ => return Err(neither()),
            }
        }
        LogoutBinding::Post {
            saml_request,
            saml_response,
            relay_state,
        } => match (saml_request, saml_response) {
            (Some(request), None) => LogoutMessage::Request(parse_logout_request_post_with(
                request,
                relay_state,
                certs,
                expect.max_bytes,
            )?),
            (None, Some(response)) => LogoutMessage::Response(parse_logout_response_post_with(
                response,
                relay_state,
                certs,
                expect.max_bytes,
            )?),
            _ => return Err(neither()),
        },
        LogoutBinding::Soap { envelope } => {
            let signers = PeerSigners {
                certs: expect.peer_certs,
                allow_sha1: expect.allow_sha1,
            };
            LogoutMessage::Request(parse_logout_request_soap(
                envelope,
                signers,
                expect.max_bytes,
            )?)
        }
    };
    let (issuer, destination) = match &message {
        LogoutMessage::Request(request) => (&request.issuer, &request.destination),
        LogoutMessage::Response(response) => (&response.issuer, &response.destination),
    };
    if issuer.as_deref() != Some(expect.peer_entity_id) {
        return Err(Error::Issuer {
            found: issuer.clone(),
        });
    }
    if destination
        .as_deref()
        .is_some_and(|d| d != expect.our_slo_url)
    {
        return Err(Error::Destination {
            found: destination.clone(),
        });
    }
    if let LogoutMessage::Request(request) = &message {
        request.check_time(now, expect.clock_skew)?;
    }
    Ok(message)
}

fn neither() -> Error {
    Error::binding("neither a SAMLRequest nor a SAMLResponse")
}
