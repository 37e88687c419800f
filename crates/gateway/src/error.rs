//! Why the gateway's SP side could not be built. Per-request failures never
//! surface here: each becomes its one response in the endpoint that met it.

use std::path::PathBuf;

/// One app's problem, with the configuration key it comes from (the form
/// `portcullis check` prints: `app[2].sp_signing_key`).
#[derive(Debug, thiserror::Error)]
#[error("app {app}: {problem}")]
pub struct BuildError {
    pub app: String,
    pub key: String,
    #[source]
    pub problem: BuildProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildProblem {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Key {
        what: &'static str,
        source: portcullis_saml::Error,
    },
    #[error("idp = \"embedded\" needs [idp] with signing_key and signing_cert")]
    NoEmbeddedIdp,
    #[error("{path}: {source}")]
    Jwks {
        path: PathBuf,
        source: crate::revocation::TrustError,
    },
    #[error("the embedded IdP's signing key: {0}")]
    EmbeddedJwks(crate::revocation::TrustError),
    #[error("{0}")]
    Identity(#[from] crate::identity::IdentityConfigError),
    #[error("backend_logout_url {url}: {source}")]
    BackendLogoutUrl {
        url: String,
        source: http::uri::InvalidUri,
    },
    #[error("backend logout client: {0}")]
    BackendLogoutClient(#[from] portcullis_proxy::Error),
    #[error("adding SAML to an app needs a restart")]
    NotBuiltAtStart,
}
