//! Peer SAML metadata for config's [`MetadataReader`] seam: the files
//! `metadata_file` names are parsed by `portcullis-saml` here, in the binary,
//! so `crates/config` (and the proxy above it) need no SAML stack.

use portcullis_config::{IdpMetadata, MetadataError, MetadataReader, SpMetadata};

/// Reads metadata with `portcullis_saml`'s hardened parser.
pub struct SamlMetadata;

impl MetadataReader for SamlMetadata {
    fn idp(&self, xml: &str) -> Result<IdpMetadata, MetadataError> {
        let parsed = portcullis_saml::parse_idp_metadata(xml).map_err(MetadataError::invalid)?;
        Ok(IdpMetadata {
            entity_id: parsed.entity_id,
            sso_redirect_url: parsed.sso_redirect_url,
            slo_url: parsed.slo_url,
            signing_certs_der: parsed.signing_certs_der,
        })
    }

    fn sp(&self, xml: &str) -> Result<SpMetadata, MetadataError> {
        let parsed = portcullis_saml::parse_sp_metadata(xml).map_err(MetadataError::invalid)?;
        Ok(SpMetadata {
            entity_id: parsed.entity_id,
            acs_url: parsed.acs_url,
            slo_url: parsed.slo_url,
            soap_slo_url: parsed.soap_slo_url,
            signing_certs_der: parsed.signing_certs_der,
            authn_requests_signed: parsed.authn_requests_signed,
            encryption_certs_der: parsed.encryption_certs_der,
        })
    }
}
