//! [`PolicySet`]: the validated, evaluable form of the whole policy config.

use std::collections::BTreeMap;

use super::app_policy::{self, AppAuthPolicy};
use super::config::RawPolicyConfig;
use super::error::PolicyError;
use super::session_policy::{self, SessionPolicy, SignOnContext, SignOnDecision};
use super::zone::{self, Zone};
use crate::post_auth::PostAuthPolicy;

/// Compiled zones, session policies (sorted by priority) and app policies.
/// `PolicySet::default()` has no policies: every sign-in gets the default rule
/// and every app the default app policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySet {
    zones: BTreeMap<String, Zone>,
    session_policies: Vec<SessionPolicy>,
    app_policies: BTreeMap<String, AppAuthPolicy>,
    default_app_policy: AppAuthPolicy,
    post_auth: PostAuthPolicy,
}

impl PolicySet {
    /// Validates raw config, reporting every problem found, not just the first.
    pub fn compile(raw: &RawPolicyConfig) -> Result<Self, Vec<PolicyError>> {
        let mut errors = Vec::new();
        let zones = zone::compile_zones(&raw.zone, &mut errors);
        let session_policies =
            session_policy::compile_policies(&raw.session_policy, &zones, &mut errors);
        let mut app_policies = BTreeMap::new();
        for (app, raw_app) in &raw.app_policy {
            if let Some(policy) = app_policy::compile(app, raw_app, &mut errors) {
                app_policies.insert(app.clone(), policy);
            }
        }
        let post_auth = raw
            .post_auth
            .as_ref()
            .map(|raw| PostAuthPolicy::compile(raw, &mut errors))
            .unwrap_or_default();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            zones,
            session_policies,
            app_policies,
            default_app_policy: AppAuthPolicy::default(),
            post_auth,
        })
    }

    /// Parses and compiles TOML policy config.
    pub fn from_toml_str(text: &str) -> Result<Self, Vec<PolicyError>> {
        let raw = RawPolicyConfig::from_toml_str(text).map_err(|e| vec![e])?;
        Self::compile(&raw)
    }

    /// Global session policy decision for a sign-in.
    pub fn evaluate_sign_on(&self, ctx: &SignOnContext<'_>) -> SignOnDecision {
        session_policy::evaluate(&self.session_policies, ctx)
    }

    /// The app's policy, or the default one (re-authenticate after 12h, no
    /// MFA, everyone) for apps without an `[app_policy.<app>]` table.
    pub fn app_policy(&self, app: &str) -> &AppAuthPolicy {
        self.app_policies
            .get(app)
            .unwrap_or(&self.default_app_policy)
    }

    /// Every configured `[app_policy.<app>]`, by app name.
    pub fn app_policies(&self) -> impl Iterator<Item = (&str, &AppAuthPolicy)> {
        self.app_policies.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn zone(&self, name: &str) -> Option<&Zone> {
        self.zones.get(name)
    }

    pub fn zones(&self) -> impl Iterator<Item = &Zone> {
        self.zones.values()
    }

    /// `[post_auth]`: off unless the file says otherwise.
    pub fn post_auth(&self) -> &PostAuthPolicy {
        &self.post_auth
    }

    /// Session policies in evaluation order.
    pub fn session_policies(&self) -> &[SessionPolicy] {
        &self.session_policies
    }
}
