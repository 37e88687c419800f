//! Post-auth session evaluation wiring (DESIGN §5a): the embedded IdP's
//! `[post_auth]` policy with its zones and the operator's ASN database,
//! loaded for `check` and `run` and again on SIGHUP (the running settings
//! stay when the new ones have a problem); and the gateway's sessions
//! judged by the IdP, for the apps that sign in there.

use std::net::IpAddr;
use std::sync::Arc;

use portcullis_config::Config;
use portcullis_context::{AsnDatabase, ContextSource, Observed, SessionContext};
use portcullis_gateway::{ContextCheck, ContextVerdict, GatewayChange, SessionEnding};
use portcullis_idp::directory::User;
use portcullis_idp::policy::PolicySet;
use portcullis_idp::post_auth::workflow::Workflow;
use portcullis_idp::post_auth::{ContextChange, Decision, SessionKind, Settings, ViolationSession};
use portcullis_idp::web::Idp;
use portcullis_saml::SigningKey;

/// The settings `[idp]` and its policy file describe; every problem as one
/// line.
pub fn load_settings(
    idp: &portcullis_config::Idp,
    policies: &PolicySet,
    signing: Option<&SigningKey>,
) -> Result<Settings, Vec<String>> {
    let mut problems = Vec::new();
    let policy = policies.post_auth();
    let workflow = policy.workflow.as_ref().and_then(|raw| {
        // The webhook's files sit beside the policy file that names them.
        let base = idp
            .policy_file
            .as_deref()
            .and_then(std::path::Path::parent)
            .unwrap_or(std::path::Path::new("."));
        Workflow::compile(raw, base, signing, &idp.public.url())
            .map(Arc::new)
            .map_err(|e| problems.push(format!("[post_auth.workflow]: {e}")))
            .ok()
    });
    let asn = match &idp.asn_database {
        None => None,
        Some(path) => match AsnDatabase::open(path) {
            Ok(db) => Some(Arc::new(db)),
            Err(e) => {
                problems.push(format!("[idp] asn_database: {e}"));
                None
            }
        },
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Settings {
        policy: policy.clone(),
        source: ContextSource::new(asn, policies.zones().cloned().collect()),
        workflow,
    })
}

/// SIGHUP: the policy file (its sign-on and app policies, its post-auth
/// table and zones) and the ASN database, read again. All of it is
/// replaced, or none: the policies stay as one file describes them.
pub fn reload(config: &Config, idp: &Idp) {
    let Some(section) = &config.idp else { return };
    let policies = match crate::idp_service::load_policies(section) {
        Ok(policies) => policies,
        Err(problems) => return refused(&problems),
    };
    let signing = idp.saml_signing_key();
    match load_settings(section, &policies, signing) {
        Ok(settings) => {
            tracing::info!(
                mode = settings.policy.mode.as_str(),
                asn_ranges = settings.source.asn_database().map_or(0, AsnDatabase::len),
                asn_format = settings
                    .source
                    .asn_database()
                    .map_or("none", |db| db.format().as_str()),
                "post-auth settings reloaded"
            );
            idp.post_auth().replace(settings);
            idp.replace_policies(policies);
            tracing::info!(
                policy_file = %section
                    .policy_file
                    .as_deref()
                    .map_or_else(|| "(defaults)".into(), |p| p.display().to_string()),
                "IdP policies reloaded"
            );
        }
        Err(problems) => refused(&problems),
    }
}

fn refused(problems: &[String]) {
    for problem in problems {
        tracing::error!(problem = %problem, "post-auth settings not reloaded");
    }
    tracing::error!(
        problems = problems.len(),
        policies = "kept",
        "post-auth reload refused; the previous settings stay"
    );
}

/// The gateway's sessions of apps on the embedded IdP, judged by it.
pub struct GatewaySessions(pub Arc<Idp>);

impl GatewaySessions {
    /// The directory user a gateway session names: its NameID is the
    /// user's id, login or email, by the SP's NameID format.
    fn user(&self, name_id: &str) -> Option<Arc<User>> {
        let directory = self.0.directory();
        directory
            .by_id_or_login(name_id)
            .or_else(|| {
                directory
                    .users_by_id()
                    .find(|u| u.email().eq_ignore_ascii_case(name_id))
            })
            .cloned()
    }
}

impl ContextCheck for GatewaySessions {
    fn capture(&self, ip: IpAddr, user_agent: Option<&[u8]>) -> SessionContext {
        self.0.post_auth().capture(ip, user_agent)
    }

    fn observe(
        &self,
        recorded: &SessionContext,
        ip: IpAddr,
        user_agent: Option<&[u8]>,
    ) -> Option<Observed> {
        self.0.post_auth().observe(recorded, ip, user_agent)
    }

    fn changed(&self, change: GatewayChange<'_>) -> ContextVerdict {
        let session = change.session;
        let Some(user) = self.user(&session.body.user) else {
            tracing::debug!(
                request.id = change.request_id,
                user = %session.body.user,
                "gateway session's user not in the directory; its context change is not judged"
            );
            return ContextVerdict::Continue;
        };
        // The session began with a fresh assertion: the password (and a
        // factor, if the assertion says so) is as recent as the session.
        let mfa = session
            .body
            .authn_context
            .as_deref()
            .is_some_and(|class| class.contains("MultiFactor") || class.contains("mfa"));
        let decision = self.0.context_changed(&ContextChange {
            session: ViolationSession {
                id: session.id.as_str().to_string(),
                kind: SessionKind::Gateway,
                app: Some(session.body.app.to_string()),
            },
            user: &user,
            recorded: &session.body.context,
            observed: change.observed,
            user_agent: change.user_agent,
            last_password_verification: session.created_at,
            last_factor_verification: mfa.then_some(session.created_at),
            idp_session_id: session.body.session_index.as_deref(),
        });
        match decision {
            Decision::Continue => ContextVerdict::Continue,
            Decision::Reauthenticate | Decision::StepUpMfa => {
                ContextVerdict::End(SessionEnding::Reauthenticate)
            }
            Decision::Deny => ContextVerdict::End(SessionEnding::Deny),
            Decision::SignedOut => ContextVerdict::End(SessionEnding::SignedOut),
        }
    }
}
