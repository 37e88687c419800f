//! RS256 tokens signed with the IdP's SAML signing key — the one key whose
//! public half the IdP publishes as a JWKS at `/oauth2/v1/keys`. Universal
//! Logout requests and workflow webhooks both sign through here, so they
//! agree on the algorithm and the `kid` a verifier looks up.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_saml::SigningKey;
use serde::Serialize;

pub struct TokenSigner {
    key: EncodingKey,
    header: Header,
    jwks: serde_json::Value,
}

impl TokenSigner {
    pub fn new(signing_key: &SigningKey) -> Result<TokenSigner, portcullis_saml::Error> {
        let jwks = signing_key.jwks()?;
        let der = signing_key.rsa_key_der()?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(jwks.kid);
        Ok(TokenSigner {
            key: EncodingKey::from_rsa_der(&der),
            header,
            jwks: jwks.document,
        })
    }

    /// The JWKS document served at `/oauth2/v1/keys`.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// A compact JWS of `claims`, its header naming the published key.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&self.header, claims, &self.key)
    }
}
