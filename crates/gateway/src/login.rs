//! Sign-in at an app: the browser without a session is sent to the IdP with
//! a signed AuthnRequest (its id bound to the browser as request state),
//! and comes back to the ACS with a Response that must answer it. A
//! verified assertion starts the gateway session; RelayState brings the
//! browser back to where it was going, but only to a path of this app.
//!
//! ```text
//! no session, page navigation → 303 to the IdP (AuthnRequest), request-state cookie
//! POST {prefix}/_portcullis/saml/acs → rate limit → body → verify (off the worker, bounded)
//!                                    → replay → session → 303 to RelayState
//! ```

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use portcullis_proxy::{under, ProxyBody, RequestFacts};
use portcullis_session::{OneTimeError, OneTimeKind};

use crate::plan::AppPlan;
use crate::reply::{self, see_other, Refused};
use crate::session::{GatewaySession, NameIdQualifiers};
use crate::state::{self, Purpose};

/// Largest ACS body read (a SAMLResponse is verified against its own,
/// smaller cap by the SP; this only bounds buffering).
const ACS_BODY_LIMIT: usize = 512 * 1024;
/// Longer RelayState values are not echoed back; the browser lands on the app root.
const MAX_RELAY_STATE: usize = 2048;

/// No session: send the browser to the IdP with a signed AuthnRequest.
pub(crate) fn start(
    plan: &AppPlan,
    facts: &RequestFacts<'_>,
    request: &Request<Incoming>,
    force_authn: bool,
) -> Response<ProxyBody> {
    let relay_state = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    match plan.sp.authn_request(relay_state, force_authn) {
        Ok(redirect) => see_other(
            &redirect.url,
            &[state::begin(plan, Purpose::SignIn, &redirect.request_id)],
        ),
        Err(e) => {
            reply::build_failed(facts, &plan.name, "AuthnRequest", &e);
            reply::error(
                facts,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Sign-in unavailable",
                "The gateway could not start sign-in. Please try again later.",
            )
        }
    }
}

/// `POST {prefix}/_portcullis/saml/acs`.
pub(crate) async fn acs(
    plan: &AppPlan,
    facts: &RequestFacts<'_>,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    if let Err(wait) = plan.shared.acs_limit.check(facts.client_ip) {
        tracing::warn!(
            request.id = facts.request_id,
            app = &*plan.name,
            client.ip = %facts.client_ip,
            "ACS rate limit reached; SAML response not examined"
        );
        let mut response = reply::error(
            facts,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many sign-in attempts",
            "Too many sign-in responses came from your address. Wait a moment, then open the application again.",
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.retry_after_secs()),
        );
        return response;
    }
    let pending = match state::presented(
        plan,
        Purpose::SignIn,
        request.headers(),
        time::OffsetDateTime::now_utc(),
    ) {
        Ok(pending) => pending,
        Err(refused) => {
            return rejected(
                plan,
                facts,
                StatusCode::BAD_REQUEST,
                refused.kind(),
                &refused.to_string(),
            )
        }
    };
    let context = plan.shared.capture(
        facts.client_ip,
        request
            .headers()
            .get(header::USER_AGENT)
            .map(HeaderValue::as_bytes),
    );
    let body = match Limited::new(request.into_body(), ACS_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return rejected(
                plan,
                facts,
                StatusCode::PAYLOAD_TOO_LARGE,
                "size",
                "body over the ACS limit",
            )
        }
        Err(_) => {
            return rejected(
                plan,
                facts,
                StatusCode::BAD_REQUEST,
                "body",
                "body could not be read",
            )
        }
    };
    let (saml_response, relay_state) = form_fields(&body);
    let Some(saml_response) = saml_response else {
        return rejected(
            plan,
            facts,
            StatusCode::BAD_REQUEST,
            "missing_response",
            "no SAMLResponse field",
        );
    };
    // Unsolicited responses (IdP-initiated, or replays from another
    // browser) have no request state here; only apps that opted in take
    // them, and then only responses that answer no request at all.
    if pending.is_none() && !plan.allow_idp_initiated {
        return rejected(
            plan,
            facts,
            StatusCode::BAD_REQUEST,
            "no_request_state",
            "no request-state cookie",
        );
    }
    // Off the worker thread, on the bounded verification pool: this
    // worker's other connections are served meanwhile, and a flood of
    // posts is answered 503 instead of queueing. A busy answer leaves the
    // request state alone (nothing was judged), so the post may be sent
    // again.
    let sp = plan.sp.clone();
    let request_id = pending.as_ref().map(|p| p.request_id.clone());
    let verified = plan
        .shared
        .saml_work
        .run(move || sp.verify(&saml_response, request_id.as_deref()))
        .await;
    let assertion = match verified {
        Ok(Ok(assertion)) => assertion,
        Ok(Err(e)) => {
            return rejected(
                plan,
                facts,
                StatusCode::BAD_REQUEST,
                e.kind(),
                &e.to_string(),
            )
        }
        Err(e) => return reply::work_refused(facts, &plan.name, "SAML response", &e),
    };
    // Replay last, so a response refused for any other reason consumes
    // nothing. The AuthnRequest is answered once: a second response to it,
    // however well signed, is refused. Then the Response's and the
    // Assertion's ids are used up together.
    let now = time::OffsetDateTime::now_utc();
    if let Some(pending) = &pending {
        if let Err(e) = plan
            .shared
            .one_time
            .first_use(
                OneTimeKind::RequestId,
                &one_time_request_key(plan, &pending.request_id),
                pending.expires,
                now,
            )
            .await
        {
            let kind = match e {
                OneTimeError::Replayed => "request_already_answered",
                OneTimeError::Full => "replay_cache_full",
                OneTimeError::Store(_) => "store",
            };
            return rejected(plan, facts, StatusCode::BAD_REQUEST, kind, &e.to_string());
        }
    }
    let ids: Vec<&str> = assertion.one_time_ids.iter().map(String::as_str).collect();
    let until = time::OffsetDateTime::from_unix_timestamp(assertion.remember_until.timestamp())
        .unwrap_or(now + time::Duration::days(1));
    if let Err(e) = plan
        .shared
        .one_time
        .first_use_all(OneTimeKind::AssertionId, &ids, until, now)
        .await
    {
        let kind = match e {
            OneTimeError::Replayed => "replay",
            OneTimeError::Full => "replay_cache_full",
            OneTimeError::Store(_) => "store",
        };
        return rejected(plan, facts, StatusCode::BAD_REQUEST, kind, &e.to_string());
    }
    let body = GatewaySession::new(
        &plan.name,
        assertion.name_id.clone(),
        assertion.attributes,
        assertion.session_index,
        assertion.authn_context_class,
        context,
    )
    .with_name_id(NameIdQualifiers::new(
        assertion.name_id_format.as_deref(),
        assertion.name_qualifier.as_deref(),
        assertion.sp_name_qualifier.as_deref(),
    ));
    let token = match plan
        .shared
        .sessions
        .create(body, plan.idle, plan.max, now)
        .await
    {
        Ok(secret) => secret,
        Err(e) => return crate::reply::store_unavailable(facts, &plan.name, &e),
    };
    tracing::info!(
        request.id = facts.request_id,
        app = &*plan.name,
        user = %assertion.name_id,
        "gateway session started"
    );
    let target = match &plan.login_landing {
        Some(landing) => landing.clone(),
        None => relay_state
            .filter(|rs| relay_state_is_safe(&plan.base_path, rs))
            .unwrap_or_else(|| plan.root()),
    };
    see_other(
        &target,
        &[
            plan.session_cookie
                .set(&plan.shared.sessions.cookie_value(&token), None),
            state::clear(plan),
        ],
    )
}

/// The RelayState rule: a value is followed only when it is a path on the
/// app whose base path is `base_path` (`""` for an app at `/`, else its
/// prefix such as `/wiki`): no scheme or authority (`//host`), no
/// backslashes, control characters or whitespace, no dot segments, at most
/// 2 KiB, under the prefix. Public so the fuzz target (`fuzz/`) checks the
/// very rule the ACS applies; the gateway itself calls it only from the ACS.
///
/// Dot segments because a browser resolves them before it asks:
/// `/wiki/../admin` and `/wiki/.%2e/admin` are under `/wiki` as text but
/// land on `/admin` (found by the relay_state fuzz target).
pub fn relay_state_is_safe(base_path: &str, relay_state: &str) -> bool {
    let path = relay_state.split(['?', '#']).next().unwrap_or_default();
    relay_state.len() <= MAX_RELAY_STATE
        && relay_state.starts_with('/')
        && !relay_state.starts_with("//")
        && !relay_state.contains('\\')
        && !relay_state
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        && !path.split('/').any(is_dot_segment)
        && (base_path.is_empty() || under(path, base_path))
}

/// `.` or `..`, also percent-encoded (`%2e`), as URL parsers read them.
fn is_dot_segment(segment: &str) -> bool {
    let segment = segment.to_ascii_lowercase().replace("%2e", ".");
    segment == "." || segment == ".."
}

fn form_fields(body: &Bytes) -> (Option<String>, Option<String>) {
    let (mut response, mut relay_state) = (None, None);
    for (key, value) in form_urlencoded::parse(body) {
        match &*key {
            "SAMLResponse" => response = Some(value.into_owned()),
            "RelayState" => relay_state = Some(value.into_owned()),
            _ => {}
        }
    }
    (response, relay_state)
}

/// The one-time key of an AuthnRequest id: apps' ids never collide.
fn one_time_request_key(plan: &AppPlan, request_id: &str) -> String {
    format!("{}\n{request_id}", plan.name)
}

/// ACS failure: a 4xx page, a warn event with the reason, no session. The
/// request state stays: a post that was refused (forged, mangled, for
/// another request) must not spoil the genuine answer still on its way.
fn rejected(
    plan: &AppPlan,
    facts: &RequestFacts<'_>,
    status: StatusCode,
    kind: &str,
    detail: &str,
) -> Response<ProxyBody> {
    reply::refused(facts, &plan.name, Refused::SignIn, status, kind, detail)
}

#[cfg(test)]
mod tests {
    use super::relay_state_is_safe;

    #[test]
    fn relay_state_stays_on_the_app() {
        for (base, followed) in [
            ("", "/"),
            ("", "/deep/page?x=1#top"),
            ("/wiki", "/wiki"),
            ("/wiki", "/wiki/page?next=/../x"),
            ("/wiki", "/wiki/a..b/.hidden"),
        ] {
            assert!(relay_state_is_safe(base, followed), "{base} {followed}");
        }
        for (base, refused) in [
            ("", "https://evil.test/"),
            ("", "//evil.test/"),
            ("", "/\\evil.test"),
            ("", "/\tx"),
            ("/wiki", "/wikipedia"),
            ("/wiki", "/wiki/../admin"),
            ("/wiki", "/wiki/.%2e/admin"),
            ("/wiki", "/wiki/%2E%2E"),
            ("", "/./x"),
        ] {
            assert!(!relay_state_is_safe(base, refused), "{base} {refused}");
        }
    }
}
