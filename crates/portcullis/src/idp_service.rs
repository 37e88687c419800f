//! Builds the embedded IdP from `[idp]` and mounts it on the proxy.

use std::sync::Arc;

use anyhow::Context;
use portcullis_config::{Config, ServiceProviderConfig, SpAttributeNameFormat, SpNameIdFormat};
use portcullis_idp::api_token::{ApiToken, ApiTokens, Scope};
use portcullis_idp::directory::{Directory, DirectoryError};
use portcullis_idp::policy::PolicySet;
use portcullis_idp::syslog::{SystemLog, SystemLogConfig};
use portcullis_idp::user_admin::UserAdminError;
use portcullis_idp::web::{
    AttributeRule, Caller, Idp, IdpStores, NameIdSecret, SamlSettings, ServiceProvider,
    ServiceProviders, WebSettings,
};
use portcullis_proxy::{LocalApp, LocalFuture, LocalMeta};
use portcullis_saml::{AttributeNameFormat, NameIdFormat, SigningKey};
use portcullis_session::LockoutPolicy;

/// The IdP as the proxy sees it: a local service.
pub struct IdpService(pub Arc<Idp>);

impl LocalApp for IdpService {
    fn call(&self, request: http::Request<bytes::Bytes>, meta: LocalMeta) -> LocalFuture {
        let idp = self.0.clone();
        Box::pin(async move {
            let caller = Caller {
                ip: meta.client_ip,
                request_id: meta.request_id,
            };
            idp.handle(request, caller).await
        })
    }
}

/// The IdP's own files, loaded and validated (used by `check` and `run`).
pub struct IdpFiles {
    pub directory: Directory,
    pub policies: PolicySet,
    pub api_tokens: ApiTokens,
    /// `None` when `[idp]` has no SAML signing key.
    pub saml: Option<SamlSettings>,
    pub post_auth: portcullis_idp::post_auth::Settings,
    /// What `check` prints without failing (admin console notes).
    pub notes: Vec<String>,
}

/// `[idp] admin_groups` and `[idp.admin]` as the console applies them.
fn admin_settings(idp: &portcullis_config::Idp) -> portcullis_idp::console::AdminSettings {
    use portcullis_config::AdminBind;
    use portcullis_context::Attribute;
    portcullis_idp::console::AdminSettings {
        groups: idp.admin_groups.clone(),
        max_lifetime: idp.admin.max_lifetime,
        max_idle: idp.admin.max_idle,
        bind: idp
            .admin
            .bind
            .iter()
            .map(|b| match b {
                AdminBind::Ip => Attribute::Ip,
                AdminBind::Asn => Attribute::Asn,
            })
            .collect(),
        protected_action_reauth: idp.admin.protected_action_reauth,
    }
}

/// The admin console's `check` notes.
fn admin_notes(
    idp: &portcullis_config::Idp,
    directory: &Directory,
    policies: &PolicySet,
) -> Vec<String> {
    let mut notes: Vec<String> = portcullis_idp::console::admin_check::one_factor_admin_paths(
        policies,
        directory,
        &idp.admin_groups,
    )
    .into_iter()
    .map(|n| format!("[idp] admin console: {n}"))
    .collect();
    if idp.admin.asn_fallback {
        notes.push(
            "[idp.admin] bind: no [idp] asn_database, so admin console sessions are bound to the client IP instead of its ASN".to_string(),
        );
    }
    notes
}

/// The policy file, compiled (the default policies without one).
pub fn load_policies(idp: &portcullis_config::Idp) -> Result<PolicySet, Vec<String>> {
    let Some(path) = &idp.policy_file else {
        return Ok(PolicySet::default());
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    PolicySet::from_toml_str(&text).map_err(|errors| {
        errors
            .iter()
            .map(|error| format!("{}: {error}", path.display()))
            .collect()
    })
}

fn name_id_format(format: SpNameIdFormat) -> NameIdFormat {
    match format {
        SpNameIdFormat::EmailAddress => NameIdFormat::EmailAddress,
        SpNameIdFormat::Persistent => NameIdFormat::Persistent,
        SpNameIdFormat::Transient => NameIdFormat::Transient,
        SpNameIdFormat::Unspecified => NameIdFormat::Unspecified,
    }
}

/// The IdP's SAML key and its service providers, from `[idp]`.
fn load_saml(idp: &portcullis_config::Idp, problems: &mut Vec<String>) -> Option<SamlSettings> {
    let config = idp.saml.as_ref()?;
    let read = |path: &std::path::Path, problems: &mut Vec<String>| {
        std::fs::read(path)
            .map_err(|e| problems.push(format!("{}: {e}", path.display())))
            .ok()
    };
    let key_pem = read(&config.signing_key, problems);
    let cert_pem = read(&config.signing_cert, problems);
    let signing_key = match (key_pem, cert_pem) {
        (Some(key), Some(cert)) => SigningKey::from_pem(&key, &cert)
            .map_err(|e| {
                problems.push(format!(
                    "[idp] signing_key/signing_cert ({}, {}): {e}",
                    config.signing_key.display(),
                    config.signing_cert.display()
                ))
            })
            .ok(),
        _ => None,
    };
    let service_providers =
        ServiceProviders::new(idp.service_providers.iter().map(service_provider).collect());
    let name_id_secret = match &config.name_id_secret_file {
        Some(path) => match portcullis_config::read_store_keys(path) {
            Ok(keys) => keys.into_iter().next().map(NameIdSecret::new),
            Err(e) => {
                problems.push(format!("[idp] name_id_secret_file: {e}"));
                None
            }
        },
        None => None,
    };
    Some(SamlSettings {
        entity_id: config.entity_id.clone(),
        signing_key: signing_key?,
        name_id_secret,
        clock_skew: config.clock_skew,
        service_providers,
    })
}

/// An `[[idp.service_provider]]` (or gateway app) registration as the
/// IdP serves it; also what a metadata refresh publishes.
pub fn service_provider(sp: &ServiceProviderConfig) -> ServiceProvider {
    ServiceProvider {
        name: sp.name.clone(),
        entity_id: sp.entity_id.clone(),
        acs_url: sp.acs_url.clone(),
        name_id_format: name_id_format(sp.name_id_format),
        name_id_formats_allowed: sp
            .name_id_formats_allowed
            .iter()
            .copied()
            .map(name_id_format)
            .collect(),
        signing_certs_der: sp.signing_certs_der.clone(),
        require_signed_requests: sp.require_signed_requests,
        allow_sha1: sp.allow_sha1,
        slo_url: sp.slo_url.clone(),
        soap_slo_url: sp.soap_slo_url.clone(),
        attributes: sp
            .attributes
            .iter()
            .map(|a| AttributeRule {
                name: a.name.clone(),
                name_format: match a.name_format {
                    SpAttributeNameFormat::Basic => AttributeNameFormat::Basic,
                    SpAttributeNameFormat::Uri => AttributeNameFormat::Uri,
                    SpAttributeNameFormat::Unspecified => AttributeNameFormat::Unspecified,
                },
                friendly_name: a.friendly_name.clone(),
                source: a.source.clone(),
            })
            .collect(),
        sign_response: sp.sign_response,
        encryption_cert_der: sp.encryption_cert_der.clone(),
        sign_in_url: sp.sign_in_url.clone(),
    }
}

/// Loads and validates the files `[idp]` names; every problem as one line.
pub fn load_files(idp: &portcullis_config::Idp) -> Result<IdpFiles, Vec<String>> {
    let mut problems = Vec::new();
    let directory = Directory::load(&idp.users_file)
        .map_err(|e| problems.push(format!("{}: {e}", idp.users_file.display())))
        .ok();
    let policies = load_policies(idp)
        .map_err(|lines| problems.extend(lines))
        .ok();

    let mut tokens = Vec::new();
    for token in &idp.api_tokens {
        let mut scopes = Vec::new();
        for scope in &token.scopes {
            match scope.parse::<Scope>() {
                Ok(scope) => scopes.push(scope),
                Err(e) => problems.push(format!("[idp] api_token `{}`: {e}", token.name)),
            }
        }
        tokens.push(ApiToken {
            name: token.name.clone(),
            sha256_hex: token.sha256.clone(),
            scopes,
        });
    }
    let api_tokens = ApiTokens::new(tokens)
        .map_err(|e| problems.push(format!("[idp] api_token: {e}")))
        .ok();
    let saml = load_saml(idp, &mut problems);
    let post_auth = policies.as_ref().and_then(|policies| {
        let signing = saml.as_ref().map(|saml| &saml.signing_key);
        crate::post_auth::load_settings(idp, policies, signing)
            .map_err(|lines| problems.extend(lines))
            .ok()
    });
    let notes = match (&directory, &policies) {
        (Some(directory), Some(policies)) => admin_notes(idp, directory, policies),
        _ => Vec::new(),
    };
    match (directory, policies, api_tokens, post_auth) {
        (Some(directory), Some(policies), Some(api_tokens), Some(post_auth))
            if problems.is_empty() =>
        {
            Ok(IdpFiles {
                directory,
                policies,
                api_tokens,
                saml,
                post_auth,
                notes,
            })
        }
        _ => Err(problems),
    }
}

/// Builds the running IdP from its loaded files: System Log, settings,
/// SAML. `config.idp` must be set (the files came from it).
pub fn start(config: &Config, files: IdpFiles, stores: IdpStores) -> anyhow::Result<Arc<Idp>> {
    let idp = config
        .idp
        .as_ref()
        .context("the IdP's files were loaded without an [idp] section")?;
    if let Some(dir) = idp.system_log_file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut log_config = SystemLogConfig::new(idp.system_log_file.clone());
    log_config.max_file_bytes = idp.system_log_max_bytes;
    log_config.keep_files = idp.system_log_keep_files;
    let log = SystemLog::open(log_config).context("opening the System Log")?;
    let settings = WebSettings {
        origin: idp.public.origin(),
        path_prefix: idp.public.path_prefix.clone(),
        base_path: idp.public.base_path().to_string(),
        sign_in_per_minute: idp.sign_in_per_minute,
        api_per_minute: idp.api_per_minute,
        session_token_ttl: idp.session_token_ttl,
        redirect_allow: idp
            .redirect_allow
            .iter()
            .cloned()
            .chain(config.apps.iter().map(|a| a.public.origin()))
            .collect(),
        lockout: LockoutPolicy {
            max_failures: idp.lockout_failures,
            lockout_duration: idp.lockout_duration,
        },
        admin: admin_settings(idp),
    };
    let mut idp = Idp::with_stores(
        settings,
        files.directory,
        files.policies,
        files.api_tokens,
        Arc::new(log),
        stores,
    );
    idp.post_auth().replace(files.post_auth);
    if let Some(saml) = files.saml {
        idp = idp
            .with_saml(saml)
            .context("building the IdP's SAML metadata")?;
    }
    Ok(Arc::new(idp))
}

/// SIGHUP: the users file named by the (new) configuration, read again.
/// A file with a problem keeps the running users, every problem logged;
/// users who were ACTIVE and no longer are lose their sessions (with
/// Universal Logout to the apps).
pub async fn reload_users(config: &Config, idp: &Idp) {
    let Some(section) = &config.idp else { return };
    let file = section.users_file.display().to_string();
    match idp.reload_directory(&section.users_file).await {
        Ok(reload) => tracing::info!(
            file = %file,
            users = reload.users,
            signed_out = reload.signed_out,
            "users file reloaded"
        ),
        Err(e) => {
            let problems: Vec<String> = match &e {
                UserAdminError::Load(DirectoryError::Invalid { problems, .. }) => {
                    problems.iter().map(ToString::to_string).collect()
                }
                other => vec![other.to_string()],
            };
            for problem in &problems {
                tracing::error!(file = %file, problem = %problem, "users file not reloaded");
            }
            tracing::error!(
                file = %file,
                problems = problems.len(),
                "users file not reloaded; the running users stay"
            );
        }
    }
}

/// Background upkeep on the caller's runtime: the session-end logger and a
/// sweeper that expires idle sessions even when nobody touches them.
pub fn spawn_upkeep(idp: &Arc<Idp>) {
    idp.spawn_session_end_logger();
    let weak = Arc::downgrade(idp);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tick.tick().await;
            let Some(idp) = weak.upgrade() else { return };
            idp.sweep(time::OffsetDateTime::now_utc()).await;
        }
    });
}
