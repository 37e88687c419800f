//! rustls configuration for the listeners and for https upstreams.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;

/// The connector every outbound client of an app uses — its upstream pool,
/// health checks, backend logout hook: http or https, the app's private CA
/// (or the system roots), its SNI override, a connect timeout.
pub fn upstream_connector(
    app: &str,
    ca: Option<&Path>,
    sni: Option<&str>,
    connect_timeout: std::time::Duration,
) -> Result<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Error>
{
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(upstream_client_config(ca)?)
        .https_or_http();
    let builder = match sni {
        Some(name) => {
            let name = rustls_pki_types::ServerName::try_from(name.to_string()).map_err(|e| {
                Error::App {
                    app: app.to_string(),
                    reason: format!("upstream_sni: {e}"),
                }
            })?;
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    Ok(builder.enable_http1().wrap_connector(http))
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn material_error(path: &Path, reason: impl ToString) -> Error {
    Error::TlsMaterial {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| material_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| material_error(path, e))?;
    if certs.is_empty() {
        return Err(material_error(path, "no certificate in file"));
    }
    Ok(certs)
}

/// Server config for the TLS listeners; ALPN offers h2 before http/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, Error> {
    let certs = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| material_error(key, e))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Client config for an https upstream. With a private CA configured only
/// that CA is trusted, so a public certificate for the same name cannot
/// impersonate the backend; otherwise the system roots are used.
pub fn upstream_client_config(ca: Option<&Path>) -> Result<ClientConfig, Error> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in load_certs(path)? {
                roots.add(cert).map_err(|e| material_error(path, e))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A broken system root is skipped, not fatal: the rest still verify.
                let _ = roots.add(cert);
            }
        }
    }
    // ALPN is left to hyper-rustls, which offers exactly the protocols the
    // pool is built for.
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
