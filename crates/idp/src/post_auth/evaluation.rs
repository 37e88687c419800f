//! What a session's context change leads to: the events, the report, a
//! re-evaluation of the policies against the new context, and the action.
//! IdP sessions come here from the IdP's own requests; gateway sessions
//! from the gateway, through the binary (the gateway knows no IdP).

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use portcullis_context::{ContextSource, Observed, SessionContext};
use time::OffsetDateTime;

use super::report::Report;
use super::workflow::Workflow;
use super::{
    PostAuthPolicy, SessionKind, Verdict, Violation, ViolationPolicy, ViolationSession,
    ViolationUser,
};
use crate::directory::User;
use crate::policy::{AppDecision, Outcome, SessionFacts, SignOnContext};
use crate::web::{events, Idp};

/// The post-auth settings in force; a reload swaps them whole.
#[derive(Default)]
pub struct Settings {
    pub policy: PostAuthPolicy,
    pub source: ContextSource,
    pub workflow: Option<Arc<Workflow>>,
}

/// Post-auth evaluation's state in the IdP.
#[derive(Default)]
pub struct PostAuth {
    settings: ArcSwap<Settings>,
    pub(crate) report: Report,
}

impl PostAuth {
    pub fn settings(&self) -> Guard<Arc<Settings>> {
        self.settings.load()
    }

    /// Takes effect for the next request (SIGHUP).
    pub fn replace(&self, settings: Settings) {
        self.settings.store(Arc::new(settings));
    }

    /// A new session's context.
    pub fn capture(&self, ip: IpAddr, user_agent: Option<&[u8]>) -> SessionContext {
        self.settings.load().source.capture(ip, user_agent)
    }

    /// `None` while evaluation is off or nothing changed: the per-request
    /// cost of the feature.
    pub fn observe(
        &self,
        recorded: &SessionContext,
        ip: IpAddr,
        user_agent: Option<&[u8]>,
    ) -> Option<Observed> {
        let settings = self.settings.load();
        if !settings.policy.is_on() {
            return None;
        }
        settings.source.observe(recorded, ip, user_agent)
    }
}

/// One session whose context changed.
pub struct ContextChange<'a> {
    pub session: ViolationSession,
    pub user: &'a User,
    pub recorded: &'a SessionContext,
    pub observed: &'a Observed,
    pub user_agent: Option<&'a str>,
    /// When the session's user last proved their password, and a factor.
    pub last_password_verification: OffsetDateTime,
    pub last_factor_verification: Option<OffsetDateTime>,
    /// The IdP session behind a gateway session (its SessionIndex), ended
    /// by the logout action when `logout_idp` is set.
    pub idp_session_id: Option<&'a str>,
}

/// What the session's owner must do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go on; the session records the new context.
    Continue,
    /// End the session; the user signs in again (the deep link kept).
    Reauthenticate,
    /// Go on once a second factor is verified.
    StepUpMfa,
    /// The new context's policy refuses the user: end the session.
    Deny,
    /// The logout action ended the sessions: tell the user why.
    SignedOut,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Reauthenticate => "reauthenticate",
            Self::StepUpMfa => "step_up_mfa",
            Self::Deny => "deny",
            Self::SignedOut => "signed_out",
        }
    }
}

impl Idp {
    pub fn post_auth(&self) -> &PostAuth {
        &self.post_auth
    }

    /// Records one context change of a session and decides what it means.
    /// Actions that reach other sessions (the logout action, the workflow)
    /// start here and run in the background; the caller ends or updates
    /// its own session by the decision.
    pub fn context_changed(&self, change: &ContextChange<'_>) -> Decision {
        let settings = self.post_auth.settings();
        let policy = &settings.policy;
        let user = change.user;
        if !policy
            .groups
            .includes_any(user.groups().iter().map(String::as_str))
        {
            return Decision::Continue;
        }
        let origin = events::Origin {
            ip: change.observed.current.ip,
            user_agent: change.user_agent,
        };
        let changes = change.observed.changes;
        for attribute in changes.iter() {
            self.emit(events::context_change(
                user,
                &change.session,
                attribute,
                change.recorded,
                &change.observed.current,
                &origin,
            ));
        }
        let verdict = policy.verdict(changes);
        let violated = policy.violation(changes);
        let decision = match verdict {
            Verdict::Record | Verdict::Workflow => Decision::Continue,
            Verdict::Reevaluate => self.reevaluate(change, &origin),
            Verdict::Reauthenticate => Decision::Reauthenticate,
            Verdict::Logout => self.logout_action(change, policy),
        };
        if violated.is_empty() {
            return decision;
        }
        let violation = Violation {
            id: uuid::Uuid::new_v4().to_string(),
            published: OffsetDateTime::now_utc(),
            user: ViolationUser {
                id: user.id().to_string(),
                login: user.login().to_string(),
            },
            session: change.session.clone(),
            attributes: violated.iter().collect(),
            old: change.recorded.clone(),
            new: change.observed.current.clone(),
            policy: ViolationPolicy {
                mode: policy.mode.as_str().to_string(),
                bind: policy.bind.iter().collect(),
                action: policy.action.as_str().to_string(),
            },
            apps: self.impacted_apps(policy),
        };
        self.emit(events::client_roaming(user, &violation, verdict, &origin));
        if matches!(verdict, Verdict::Reauthenticate | Verdict::Logout) {
            self.emit(events::auth_reevaluate_enforce(
                user, &violation, decision, &origin,
            ));
        }
        if verdict == Verdict::Workflow {
            match &settings.workflow {
                Some(workflow) => workflow.deliver(violation.clone()),
                None => tracing::error!(
                    violation.id = %violation.id,
                    "post-auth workflow action without a workflow; nothing delivered"
                ),
            }
        }
        self.post_auth.report.record(violation, verdict);
        decision
    }

    /// Enforced, no bound attribute changed: the global session policy and
    /// (for a gateway session) the app's authentication policy, against
    /// the new context.
    fn reevaluate(&self, change: &ContextChange<'_>, origin: &events::Origin<'_>) -> Decision {
        let user = change.user;
        let now = OffsetDateTime::now_utc();
        let mfa_verified = change.last_factor_verification.is_some();
        let policies = self.policies();
        let sign_on = policies.evaluate_sign_on(&SignOnContext {
            groups: user.groups(),
            ip: change.observed.current.ip,
            mfa_verified,
        });
        let mut decision = match sign_on.outcome {
            Outcome::Allow => Decision::Continue,
            Outcome::Challenge => Decision::StepUpMfa,
            Outcome::Deny => Decision::Deny,
        };
        if decision == Decision::Continue {
            if let Some(app) = &change.session.app {
                decision = match policies.app_policy(app).evaluate(&SessionFacts {
                    groups: user.groups(),
                    now,
                    last_password_verification: Some(change.last_password_verification),
                    last_factor_verification: change.last_factor_verification,
                    force_authn: false,
                    password_verified_this_request: false,
                }) {
                    AppDecision::Allow => Decision::Continue,
                    AppDecision::Reauthenticate => Decision::Reauthenticate,
                    AppDecision::StepUpMfa => Decision::StepUpMfa,
                    AppDecision::Deny { .. } => Decision::Deny,
                };
            }
        }
        let event = match decision {
            Decision::Continue => None,
            Decision::Deny => Some(events::auth_reevaluate_fail(
                user,
                &change.session,
                &sign_on.policy,
                &sign_on.rule,
                origin,
            )),
            _ => Some(events::auth_reevaluate_challenge(
                user,
                &change.session,
                decision,
                &sign_on.policy,
                &sign_on.rule,
                origin,
            )),
        };
        if let Some(event) = event {
            self.emit(event);
        }
        decision
    }

    /// The apps the logout action covers, by name.
    fn impacted_apps(&self, policy: &PostAuthPolicy) -> Vec<String> {
        match self.universal_logout.get() {
            Some(ul) => ul
                .targets()
                .iter()
                .filter(|t| policy.logout_apps.includes(&t.app))
                .map(|t| t.app.clone())
                .collect(),
            None => Vec::new(),
        }
    }

    /// Ends the impacted apps' sessions of the user through Universal
    /// Logout, and the IdP session behind a gateway session; an IdP
    /// session's own end is its caller's. `Continue` when the session
    /// asking is a gateway session of an app the action does not cover.
    fn logout_action(&self, change: &ContextChange<'_>, policy: &PostAuthPolicy) -> Decision {
        if let Some(ul) = self.universal_logout.get() {
            ul.dispatch_to(
                change.user.email(),
                "post_auth_violation",
                Some(portcullis_session::EndReason::PostAuthViolation),
                |app| policy.logout_apps.includes(app),
            );
        }
        if policy.logout_idp {
            if let Some(id) = change.idp_session_id {
                self.end_idp_session_by_id(id);
            }
        }
        match (&change.session.kind, &change.session.app) {
            (SessionKind::Gateway, Some(app)) if !policy.logout_apps.includes(app) => {
                Decision::Continue
            }
            (SessionKind::Idp, _) if !policy.logout_idp => Decision::Continue,
            _ => Decision::SignedOut,
        }
    }

    fn end_idp_session_by_id(&self, id: &str) {
        let id = portcullis_session::SessionId::from(id);
        let sessions = self.sessions.clone();
        tokio::spawn(async move {
            if let Err(e) = sessions
                .revoke(&id, portcullis_session::EndReason::PostAuthViolation)
                .await
            {
                tracing::error!(error = %e, "ending the IdP session after a post-auth violation failed");
            }
        });
    }
}
