//! The System Log events the IdP emits, built in one place so their shape
//! (type, message, outcome, targets) stays consistent.

use std::net::IpAddr;

use portcullis_context::{Attribute, SessionContext};

use crate::directory::{Lifecycle, User, UserStatus};
use crate::post_auth::{Decision, SessionKind, Verdict, Violation, ViolationSession};
use crate::syslog::{Actor, Entity, Event, OutcomeResult, Severity, Target};

/// Who and where, for every event of one request.
pub struct Origin<'a> {
    pub ip: IpAddr,
    pub user_agent: Option<&'a str>,
}

pub fn user_actor(user: &User) -> Actor {
    Entity::new(user.id(), "User")
        .alternate_id(user.login())
        .display_name(user.display_name())
}

fn base(
    event_type: &str,
    message: &str,
    severity: Severity,
    result: OutcomeResult,
    origin: &Origin<'_>,
) -> Event {
    Event::new(event_type, message, severity, result).client(Some(origin.ip), origin.user_agent)
}

/// A session started, with the context post-auth evaluation compares
/// later requests with.
pub fn session_start(
    user: &User,
    session_id: &str,
    context: Option<&SessionContext>,
    origin: &Origin<'_>,
) -> Event {
    let event = base(
        "user.session.start",
        "User login to Okta",
        Severity::Info,
        OutcomeResult::Success,
        origin,
    )
    .actor(user_actor(user))
    .session(session_id);
    match context {
        None => event,
        Some(context) => Attribute::ALL.into_iter().fold(event, |event, attribute| {
            event.debug(format!("context.{attribute}"), attribute.show(context))
        }),
    }
}

/// A failed sign-in; `login` is what was typed (the user may not exist).
pub fn session_start_failed(
    login: &str,
    user: Option<&User>,
    reason: &str,
    origin: &Origin<'_>,
) -> Event {
    let actor = match user {
        Some(user) => user_actor(user),
        None => Entity::new("unknown", "User").alternate_id(login),
    };
    base(
        "user.session.start",
        "User login to Okta",
        Severity::Warn,
        OutcomeResult::Failure,
        origin,
    )
    .actor(actor)
    .reason(reason)
}

pub fn evaluate_sign_on(
    user: &User,
    policy: &str,
    rule: &str,
    outcome: &str,
    origin: &Origin<'_>,
) -> Event {
    let result = match outcome {
        "DENY" => OutcomeResult::Deny,
        "CHALLENGE" => OutcomeResult::Challenge,
        _ => OutcomeResult::Allow,
    };
    base(
        "policy.evaluate_sign_on",
        "Evaluation of sign-on policy",
        Severity::Info,
        result,
        origin,
    )
    .actor(user_actor(user))
    .target(Entity::new(policy, "PolicyEntity").display_name(policy))
    .target(Entity::new(rule, "PolicyRule").display_name(rule))
    .debug("policy", policy)
    .debug("rule", rule)
}

pub fn auth_via_mfa(user: &User, session_id: &str, success: bool, origin: &Origin<'_>) -> Event {
    let (severity, result) = if success {
        (Severity::Info, OutcomeResult::Success)
    } else {
        (Severity::Warn, OutcomeResult::Failure)
    };
    let event = base(
        "user.authentication.auth_via_mfa",
        "Authentication of user via MFA",
        severity,
        result,
        origin,
    )
    .actor(user_actor(user))
    .session(session_id)
    .debug("factor", "token:software:totp");
    if success {
        event
    } else {
        event.reason("INVALID_CREDENTIALS")
    }
}

pub fn account_lock(user: &User, until: &str, origin: &Origin<'_>) -> Event {
    base(
        "user.account.lock",
        "Max sign in attempts exceeded",
        Severity::Warn,
        OutcomeResult::Success,
        origin,
    )
    .actor(user_actor(user))
    .target(user_actor(user))
    .reason("LOCKED_OUT")
    .debug("lockedUntil", until)
}

/// The actor of an API call: its token, by name.
pub fn api_token_actor(name: &str) -> Actor {
    Entity::new(name, "ApiToken").display_name(name)
}

/// An administrator's lifecycle operation on `user` (`user.lifecycle.*`,
/// `user.account.unlock`, `user.mfa.factor.reset_all`); `user` is as it is
/// afterwards. `client` is the caller's, when the change came over HTTP.
pub fn user_lifecycle(
    op: Lifecycle,
    actor: Actor,
    user: &User,
    previous: UserStatus,
    client: Option<&Origin<'_>>,
) -> Event {
    let message = match op {
        Lifecycle::Suspend => "Suspend Okta user",
        Lifecycle::Unsuspend => "Unsuspend Okta user",
        Lifecycle::Deactivate => "Deactivate Okta user",
        Lifecycle::Unlock => "Unlock Okta user",
        Lifecycle::ResetFactors => "Reset all factors for user",
    };
    let event = Event::new(
        op.event_type(),
        message,
        Severity::Info,
        OutcomeResult::Success,
    )
    .actor(actor)
    .target(user_actor(user))
    .debug("previousStatus", previous.as_str())
    .debug("status", user.status().as_str());
    match client {
        Some(origin) => event.client(Some(origin.ip), origin.user_agent),
        None => event,
    }
}

/// Sessions revoked by an administrator: through the API (`actor` is
/// [`api_token_actor`]) or the admin console (the admin user).
pub fn session_clear(
    actor: Actor,
    user: &User,
    session_ids: &[String],
    origin: &Origin<'_>,
) -> Event {
    let mut event = base(
        "user.session.clear",
        "Clear user session",
        Severity::Info,
        OutcomeResult::Success,
        origin,
    )
    .actor(actor)
    .target(user_actor(user));
    for id in session_ids {
        event = event.target(Target::new(id.clone(), "Session"));
    }
    event
}

pub fn session_end(user_id: &str, login: &str, session_id: &str, reason: &str) -> Event {
    Event::new(
        "user.session.end",
        "User logout from Okta",
        Severity::Info,
        OutcomeResult::Success,
    )
    .actor(Entity::new(user_id, "User").alternate_id(login))
    .session(session_id)
    .reason(reason)
}

/// `user.authentication.slo`: a service provider told over the back
/// channel that an IdP session ended (SUCCESS), or not confirming it
/// (FAILURE, with the reason).
pub fn slo_back_channel(
    sp_entity_id: &str,
    sp_name: &str,
    user_id: &str,
    login: &str,
    session_id: &str,
    failure: Option<&str>,
) -> Event {
    let (severity, result) = match failure {
        None => (Severity::Info, OutcomeResult::Success),
        Some(_) => (Severity::Warn, OutcomeResult::Failure),
    };
    let event = Event::new(
        "user.authentication.slo",
        "User single logout from app",
        severity,
        result,
    )
    .actor(Entity::new(user_id, "User").alternate_id(login))
    .target(Entity::new(sp_entity_id, "AppInstance").display_name(sp_name))
    .session(session_id)
    .debug("binding", "SOAP");
    match failure {
        Some(reason) => event.reason(reason),
        None => event,
    }
}

/// `user.authentication.sso`: an assertion issued to a SAML SP (SUCCESS),
/// or refused (FAILURE, or DENY when the app policy denied the user).
pub fn sso(
    sp_entity_id: &str,
    sp_name: &str,
    user: Option<&User>,
    session_id: Option<&str>,
    failure: Option<&str>,
    deny: bool,
    origin: &Origin<'_>,
) -> Event {
    let (severity, result) = match (failure, deny) {
        (None, _) => (Severity::Info, OutcomeResult::Success),
        (Some(_), true) => (Severity::Warn, OutcomeResult::Deny),
        (Some(_), false) => (Severity::Warn, OutcomeResult::Failure),
    };
    let mut event = base(
        "user.authentication.sso",
        "User single sign on to app",
        severity,
        result,
        origin,
    )
    .target(Entity::new(sp_entity_id, "AppInstance").display_name(sp_name));
    if let Some(user) = user {
        event = event.actor(user_actor(user));
    }
    if let Some(id) = session_id {
        event = event.session(id);
    }
    if let Some(reason) = failure {
        event = event.reason(reason);
    }
    event
}

fn session_target(session: &ViolationSession) -> Target {
    let kind = match session.kind {
        SessionKind::Idp => "Session",
        SessionKind::Gateway => "GatewaySession",
    };
    let target = Target::new(session.id.clone(), kind);
    match &session.app {
        Some(app) => target.display_name(app.clone()),
        None => target,
    }
}

/// `user.session.context.change`: one attribute of a session's context
/// changed (old → new in `debugContext`).
pub fn context_change(
    user: &User,
    session: &ViolationSession,
    attribute: Attribute,
    old: &SessionContext,
    new: &SessionContext,
    origin: &Origin<'_>,
) -> Event {
    let mut event = base(
        "user.session.context.change",
        "User session context changed",
        Severity::Info,
        OutcomeResult::Success,
        origin,
    )
    .actor(user_actor(user))
    .target(session_target(session))
    .debug("attribute", attribute.as_str())
    .debug("oldValue", attribute.show(old))
    .debug("newValue", attribute.show(new));
    if session.kind == SessionKind::Idp {
        event = event.session(session.id.clone());
    }
    event
}

fn violation_event(
    event_type: &str,
    message: &str,
    result: OutcomeResult,
    user: &User,
    violation: &Violation,
    origin: &Origin<'_>,
) -> Event {
    let attributes: Vec<&str> = violation.attributes.iter().map(|a| a.as_str()).collect();
    base(event_type, message, Severity::Warn, result, origin)
        .actor(user_actor(user))
        .target(session_target(&violation.session))
        .debug("violationId", violation.id.clone())
        .debug("attributes", attributes.join(","))
        .debug("mode", violation.policy.mode.clone())
        .debug("action", violation.policy.action.clone())
}

/// `security.session.detect_client_roaming`: a bound attribute changed.
/// ALLOW under monitoring (nothing happens to the user), else what the
/// enforcement does.
pub fn client_roaming(
    user: &User,
    violation: &Violation,
    verdict: Verdict,
    origin: &Origin<'_>,
) -> Event {
    let result = match verdict {
        Verdict::Record | Verdict::Reevaluate | Verdict::Workflow => OutcomeResult::Allow,
        Verdict::Reauthenticate => OutcomeResult::Challenge,
        Verdict::Logout => OutcomeResult::Deny,
    };
    violation_event(
        "security.session.detect_client_roaming",
        "Session roaming detected",
        result,
        user,
        violation,
        origin,
    )
    .debug("outcome", verdict.as_str())
}

/// `policy.auth_reevaluate.enforce`: enforcement acted on a violation.
pub fn auth_reevaluate_enforce(
    user: &User,
    violation: &Violation,
    decision: Decision,
    origin: &Origin<'_>,
) -> Event {
    let result = match decision {
        Decision::Reauthenticate | Decision::StepUpMfa => OutcomeResult::Challenge,
        Decision::Deny | Decision::SignedOut => OutcomeResult::Deny,
        Decision::Continue => OutcomeResult::Allow,
    };
    let event = violation_event(
        "policy.auth_reevaluate.enforce",
        "Session re-evaluated after a context change",
        result,
        user,
        violation,
        origin,
    )
    .debug("decision", decision.as_str());
    if decision == Decision::SignedOut {
        event.reason("POST_AUTH_VIOLATION")
    } else {
        event
    }
}

/// `policy.auth_reevaluate.fail`: the policies, evaluated again against a
/// session's new context, refuse the user.
pub fn auth_reevaluate_fail(
    user: &User,
    session: &ViolationSession,
    policy: &str,
    rule: &str,
    origin: &Origin<'_>,
) -> Event {
    base(
        "policy.auth_reevaluate.fail",
        "Session no longer meets the policy after a context change",
        Severity::Warn,
        OutcomeResult::Deny,
        origin,
    )
    .actor(user_actor(user))
    .target(session_target(session))
    .debug("policy", policy)
    .debug("rule", rule)
}

/// `policy.auth_reevaluate.enforce` without a violation: the new context
/// needs a fresh password or a second factor.
pub fn auth_reevaluate_challenge(
    user: &User,
    session: &ViolationSession,
    decision: Decision,
    policy: &str,
    rule: &str,
    origin: &Origin<'_>,
) -> Event {
    base(
        "policy.auth_reevaluate.enforce",
        "Session re-evaluated after a context change",
        Severity::Info,
        OutcomeResult::Challenge,
        origin,
    )
    .actor(user_actor(user))
    .target(session_target(session))
    .debug("decision", decision.as_str())
    .debug("policy", policy)
    .debug("rule", rule)
}

/// `user.session.access_admin_app`: an administrator entered the admin
/// console (SUCCESS, a new admin session) or was refused (FAILURE, with
/// the reason: not an administrator, no second factor enrolled).
pub fn admin_access(
    user: &User,
    admin_session_id: Option<&str>,
    refused: Option<&str>,
    origin: &Origin<'_>,
) -> Event {
    let result = match refused {
        None => OutcomeResult::Success,
        Some(_) => OutcomeResult::Failure,
    };
    let event = base(
        "user.session.access_admin_app",
        "User accessing Okta admin app",
        Severity::Info,
        result,
        origin,
    )
    .actor(user_actor(user));
    let event = match admin_session_id {
        Some(id) => event.target(Target::new(id, "AdminSession")),
        None => event,
    };
    match refused {
        Some(reason) => event.reason(reason),
        None => event,
    }
}

/// `security.session.detect_client_roaming` for an admin console session:
/// a bound attribute changed, and the admin session was revoked (DENY).
pub fn admin_client_roaming(
    user: &User,
    admin_session_id: &str,
    changed: &[Attribute],
    old: &SessionContext,
    new: &SessionContext,
    origin: &Origin<'_>,
) -> Event {
    let names: Vec<&str> = changed.iter().map(|a| a.as_str()).collect();
    let mut event = base(
        "security.session.detect_client_roaming",
        "Session roaming detected",
        Severity::Warn,
        OutcomeResult::Deny,
        origin,
    )
    .actor(user_actor(user))
    .target(Target::new(admin_session_id, "AdminSession"))
    .debug("sessionKind", "admin")
    .debug("attributes", names.join(","))
    .debug("outcome", "logout");
    for attribute in changed {
        event = event
            .debug(format!("old.{attribute}"), attribute.show(old))
            .debug(format!("new.{attribute}"), attribute.show(new));
    }
    event
}

/// `user.authentication.verify`: a protected console action asked the
/// administrator for password + TOTP (CHALLENGE), and how that went
/// (SUCCESS, or FAILURE with which part failed).
pub fn protected_action_verify(
    user: &User,
    action: &str,
    result: OutcomeResult,
    failure: Option<&str>,
    origin: &Origin<'_>,
) -> Event {
    let event = base(
        "user.authentication.verify",
        "Verify user identity for a protected action",
        Severity::Info,
        result,
        origin,
    )
    .actor(user_actor(user))
    .debug("protectedAction", action);
    match failure {
        Some(reason) => event.reason(reason),
        None => event,
    }
}
