//! The IdP's handlers over the session stores: a sign-in through
//! `/api/v1/authn` and the cookie redirect into the Sessions API, TOTP
//! replay through the one-time store, background sweeping into the System
//! Log, and what a store outage looks like to browsers and API clients.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use portcullis_session::{
    EndReason, EndSignal, FailureOutcome, Lifetime, LockoutPolicy, LockoutStore, OneTimeError,
    OneTimeKind, OneTimeStore, SecretHash, SessionChange, SessionEnded, SessionError,
    SessionFilter, SessionId, SessionSecret, SessionStore, StoreError, StoreFuture, TicketError,
    TicketSecret, TicketStore,
};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use super::{Caller, Idp, IdpStores, WebSettings, SESSION_COOKIE};
use crate::api_token::{hash_token, ApiToken, ApiTokens, Scope};
use crate::directory::{totp_code_at, Directory, TotpSecret, TOTP_STEP_SECONDS};
use crate::policy::{PolicySet, SessionLimits};
use crate::session::{Amr, IdpSession, IdpSessions, NewSession, PendingSignIn, SessionRecord};
use crate::syslog::{Query, SystemLog, SystemLogConfig};
use portcullis_proxy::{WorkBounds, WorkLimit};

const DEMO_USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/users.toml");
const ALICE_TOTP: &str = "MFWGSY3FFVSGK3LPFV2G65DQFVVWK6JB";
const API_TOKEN: &str = "test-admin-token";
const DEADLINE: Duration = Duration::from_secs(10);

struct Fixture {
    idp: Arc<Idp>,
    _dir: tempfile::TempDir,
}

fn fixture(stores: IdpStores) -> Fixture {
    fixture_with(stores, |_| {})
}

/// [`fixture`] with the IdP adjusted before it is shared.
fn fixture_with(stores: IdpStores, adjust: impl FnOnce(&mut Idp)) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut idp = idp_on(dir.path(), stores);
    adjust(&mut idp);
    Fixture {
        idp: Arc::new(idp),
        _dir: dir,
    }
}

/// An IdP whose System Log is in `dir` (a second one on the same `dir` is
/// the same IdP after a restart).
fn idp_on(dir: &std::path::Path, stores: IdpStores) -> Idp {
    let log = SystemLog::open(SystemLogConfig::new(dir.join("events.jsonl"))).expect("System Log");
    let api_tokens = ApiTokens::new(vec![ApiToken {
        name: "admin".into(),
        sha256_hex: hash_token(API_TOKEN),
        scopes: vec![Scope::SessionsManage, Scope::LogsRead, Scope::UsersManage],
    }])
    .expect("tokens");
    let settings = WebSettings {
        origin: "https://idp.test".into(),
        path_prefix: "/".into(),
        base_path: String::new(),
        sign_in_per_minute: 1_000,
        api_per_minute: 1_000,
        session_token_ttl: Duration::from_secs(60),
        redirect_allow: Vec::new(),
        lockout: LockoutPolicy {
            max_failures: 5,
            lockout_duration: Duration::from_secs(600),
        },
        admin: crate::console::AdminSettings::default(),
    };
    Idp::with_stores(
        settings,
        Directory::load(DEMO_USERS).expect("demo users"),
        PolicySet::default(),
        api_tokens,
        Arc::new(log),
        stores,
    )
}

fn caller() -> Caller {
    Caller {
        ip: IpAddr::from([192, 0, 2, 7]),
        request_id: "req-1".into(),
    }
}

fn request(method: Method, uri: &str, body: &str) -> Request<Bytes> {
    let mut request = Request::new(Bytes::from(body.to_owned()));
    *request.method_mut() = method;
    *request.uri_mut() = uri.parse().expect("uri");
    request
}

fn with_token(mut request: Request<Bytes>) -> Request<Bytes> {
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("SSWS {API_TOKEN}").parse().expect("header"),
    );
    request
}

fn with_cookie(mut request: Request<Bytes>, value: &str) -> Request<Bytes> {
    request.headers_mut().insert(
        header::COOKIE,
        format!("{SESSION_COOKIE}={value}").parse().expect("header"),
    );
    request
}

async fn send(idp: &Arc<Idp>, request: Request<Bytes>) -> Response<Bytes> {
    Arc::clone(idp).handle(request, caller()).await
}

fn json(response: &Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).expect("JSON body")
}

fn text(response: &Response<Bytes>) -> String {
    String::from_utf8_lossy(response.body()).into_owned()
}

fn session_cookie_of(response: &Response<Bytes>) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{SESSION_COOKIE}=")))
        .and_then(|rest| rest.split(';').next())
        .map(str::to_owned)
}

fn new_session(user_id: &str, login: &str, now: OffsetDateTime) -> NewSession {
    NewSession {
        user_id: user_id.into(),
        login: login.into(),
        amr: vec![Amr::Pwd],
        mfa_pending: false,
        limits: SessionLimits::DEFAULT_RULE,
        policy: "Default Policy".into(),
        rule: "Default Rule".into(),
        client_ip: None,
        user_agent: None,
        context: None,
        now,
    }
}

#[tokio::test]
async fn authn_token_becomes_a_session_the_sessions_api_manages() {
    let Fixture { idp, _dir } = fixture(IdpStores::memory());
    let authn = send(
        &idp,
        request(
            Method::POST,
            "/api/v1/authn",
            r#"{"username":"bob","password":"bob-demo-pass"}"#,
        ),
    )
    .await;
    assert_eq!(authn.status(), StatusCode::OK, "{}", text(&authn));
    let body = json(&authn);
    assert_eq!(body["status"], "SUCCESS");
    let token = body["sessionToken"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 43);

    let redirect = format!("/login/sessionCookieRedirect?token={token}&redirectUrl=/");
    let redeemed = send(&idp, request(Method::GET, &redirect, "")).await;
    assert_eq!(redeemed.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie_of(&redeemed).expect("session cookie set");
    let replayed = send(&idp, request(Method::GET, &redirect, "")).await;
    assert_eq!(
        replayed.status(),
        StatusCode::UNAUTHORIZED,
        "tokens are one-time"
    );

    let home = send(&idp, with_cookie(request(Method::GET, "/", ""), &cookie)).await;
    assert_eq!(home.status(), StatusCode::OK);
    assert!(text(&home).contains("Bob"), "{}", text(&home));

    let sessions = idp
        .sessions()
        .sessions_of("00u2bob", OffsetDateTime::now_utc())
        .await
        .expect("lists");
    assert_eq!(sessions.len(), 1);
    let id = sessions[0].id.as_str().to_owned();
    let got = send(
        &idp,
        with_token(request(Method::GET, &format!("/api/v1/sessions/{id}"), "")),
    )
    .await;
    assert_eq!(got.status(), StatusCode::OK);
    let got = json(&got);
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["userId"], "00u2bob");
    assert_eq!(got["status"], "ACTIVE");
    assert_eq!(got["amr"], serde_json::json!(["pwd"]));

    let mut ended = idp.sessions().subscribe();
    let deleted = send(
        &idp,
        with_token(request(
            Method::DELETE,
            &format!("/api/v1/sessions/{id}"),
            "",
        )),
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let end = ended.try_recv().expect("end published");
    assert_eq!(end.reason, EndReason::Revoked);
    let gone = send(
        &idp,
        with_token(request(Method::GET, &format!("/api/v1/sessions/{id}"), "")),
    )
    .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let home = send(&idp, with_cookie(request(Method::GET, "/", ""), &cookie)).await;
    assert_eq!(
        home.status(),
        StatusCode::SEE_OTHER,
        "signed out: to /login"
    );
}

#[tokio::test]
async fn a_totp_code_is_accepted_once_and_older_ones_never_again() {
    let Fixture { idp, _dir } = fixture(IdpStores::memory());
    let directory = idp.directory();
    let alice = directory.by_id("00u1alice").expect("alice");
    let secret = TotpSecret::from_base32(ALICE_TOTP).expect("secret");
    let now = OffsetDateTime::now_utc();
    let previous = now - time::Duration::seconds(TOTP_STEP_SECONDS as i64);
    let code = totp_code_at(&secret, now).expect("code");
    let older = totp_code_at(&secret, previous).expect("code");
    assert_eq!(idp.second_factor_ok(alice, "000000x", now).await, Ok(false));
    assert_eq!(idp.second_factor_ok(alice, &code, now).await, Ok(true));
    assert_eq!(
        idp.second_factor_ok(alice, &code, now).await,
        Ok(false),
        "same code replayed"
    );
    if older != code {
        assert_eq!(
            idp.second_factor_ok(alice, &older, now).await,
            Ok(false),
            "an older code inside the skew window"
        );
    }
}

#[tokio::test]
async fn sweep_ends_expired_sessions_into_the_system_log() {
    let Fixture { idp, _dir } = fixture(IdpStores::memory());
    let logger = idp.spawn_session_end_logger();
    let now = OffsetDateTime::now_utc();
    let long_ago = now - SessionLimits::DEFAULT_RULE.max_idle - Duration::from_secs(1);
    let (_, stale) = idp
        .sessions()
        .create(new_session("00u2bob", "bob", long_ago))
        .await
        .expect("created");
    let (live, _) = idp
        .sessions()
        .create(new_session("00u1alice", "alice", now))
        .await
        .expect("created");
    idp.sweep(now).await;
    assert!(idp.sessions().touch(&live, now).await.is_ok());
    let query =
        Query::from_params([("filter", "eventType eq \"user.session.end\"")]).expect("query");
    let found = tokio::time::timeout(DEADLINE, async {
        loop {
            let page = idp.system_log().query(&query);
            if let Some(event) = page.events.first() {
                return event.clone();
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("user.session.end logged in time");
    assert_eq!(found.outcome.reason.as_deref(), Some("IDLE_TIMEOUT"));
    assert_eq!(
        found.authentication_context.external_session_id.as_deref(),
        Some(stale.id.as_str())
    );
    logger.abort();
}

/// One slot of `pool` (a pool of `idp`'s), held by a job until the
/// returned sender is used.
async fn hold_a_slot(idp: &Arc<Idp>, pool: fn(&Idp) -> &WorkLimit) -> std::sync::mpsc::Sender<()> {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = Arc::clone(idp);
    tokio::spawn(async move {
        pool(&holder)
            .run(move || {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
            })
            .await
    });
    tokio::time::timeout(DEADLINE, started_rx)
        .await
        .expect("in time")
        .expect("slot held");
    release_tx
}

fn one_slot(pool: &'static str) -> WorkLimit {
    WorkLimit::new(
        pool,
        WorkBounds {
            slots: 1,
            queue: 0,
            max_wait: Duration::ZERO,
        },
    )
}

/// A full password pool refuses a sign-in at once with `Retry-After`: the
/// page for the browser's form (503), Okta's rate-limit error for the API
/// (429 E0000047). Nothing was checked, so nothing is logged as a failed
/// sign-in and no lockout step is counted.
#[tokio::test]
async fn a_saturated_password_pool_refuses_with_retry_after_and_counts_nothing() {
    let Fixture { idp, _dir } = fixture_with(IdpStores::memory(), |idp| {
        idp.password_work = one_slot("password");
    });
    let release = hold_a_slot(&idp, |idp| &idp.password_work).await;

    let api = send(
        &idp,
        request(
            Method::POST,
            "/api/v1/authn",
            r#"{"username":"bob","password":"wrong"}"#,
        ),
    )
    .await;
    assert_eq!(
        api.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        text(&api)
    );
    assert_eq!(api.headers()[header::RETRY_AFTER], "1");
    assert_eq!(json(&api)["errorCode"], "E0000047");

    let form = send(&idp, request(Method::GET, "/login", "")).await;
    let page = text(&form);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf field")
        .to_owned();
    let csrf_cookie = form
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("pc_idp_csrf="))
        .and_then(|rest| rest.split(';').next())
        .expect("csrf cookie")
        .to_owned();
    let mut post = request(
        Method::POST,
        "/login",
        &format!("csrf={csrf}&fromURI=%2F&username=bob&password=wrong"),
    );
    post.headers_mut().insert(
        header::COOKIE,
        format!("pc_idp_csrf={csrf_cookie}")
            .parse()
            .expect("header"),
    );
    let busy = send(&idp, post).await;
    assert_eq!(
        busy.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        text(&busy)
    );
    assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
    assert!(text(&busy).contains("Sign-in busy"), "{}", text(&busy));
    assert_eq!(idp.password_work.refused(), 2);

    release.send(()).expect("release");
    let failures =
        Query::from_params([("filter", "eventType eq \"user.session.start\"")]).expect("query");
    assert!(idp.system_log().query(&failures).events.is_empty());
    // Once a slot is free the same attempt is checked (and fails) as usual.
    let checked = tokio::time::timeout(DEADLINE, async {
        loop {
            let reply = send(
                &idp,
                request(
                    Method::POST,
                    "/api/v1/authn",
                    r#"{"username":"bob","password":"wrong"}"#,
                ),
            )
            .await;
            if reply.status() != StatusCode::TOO_MANY_REQUESTS {
                return reply;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the slot frees");
    assert_eq!(checked.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(idp.system_log().query(&failures).events.len(), 1);
}

/// A full SAML pool: the message is refused unexamined with a 503 page
/// and `Retry-After`, which the browser may simply send again.
#[tokio::test]
async fn a_saturated_saml_pool_is_a_503_page_with_retry_after() {
    let Fixture { idp, _dir } = fixture_with(IdpStores::memory(), |idp| {
        idp.saml_work = one_slot("idp_saml_verify");
    });
    let release = hold_a_slot(&idp, |idp| &idp.saml_work).await;
    let cause = idp
        .saml_work
        .run(|| ())
        .await
        .expect_err("the pool is full");
    let page = super::respond::saml_work_refused(&cause);
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(page.headers()[header::RETRY_AFTER], "1");
    assert!(
        text(&page).contains("Try again in a second"),
        "{}",
        text(&page)
    );
    release.send(()).expect("release");
}

/// A lock is in the System Log, so it outlives the process: a new IdP on
/// the same log refuses the right password until the lock ends.
#[tokio::test]
async fn a_lockout_survives_a_restart() {
    let Fixture { idp, _dir } = fixture(IdpStores::memory());
    let attempt = |password: &str| {
        request(
            Method::POST,
            "/api/v1/authn",
            &serde_json::json!({"username": "bob", "password": password}).to_string(),
        )
    };
    for _ in 0..5 {
        let reply = send(&idp, attempt("wrong")).await;
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    }
    let locks =
        Query::from_params([("filter", "eventType eq \"user.account.lock\"")]).expect("query");
    assert_eq!(idp.system_log().query(&locks).events.len(), 1);
    drop(idp);

    let restarted = Arc::new(idp_on(_dir.path(), IdpStores::memory()));
    let refused = send(&restarted, attempt("bob-demo-pass")).await;
    assert_eq!(
        refused.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        text(&refused)
    );
    let locked_out = Query::from_params([(
        "filter",
        "eventType eq \"user.session.start\" and outcome.reason eq \"LOCKED_OUT\"",
    )])
    .expect("query");
    assert_eq!(restarted.system_log().query(&locked_out).events.len(), 1);
    // No second lock event: the lock was put back, not taken anew.
    assert_eq!(restarted.system_log().query(&locks).events.len(), 1);
}

/// A backend that is down: every call fails.
struct Down;

fn down() -> StoreError {
    StoreError::Unavailable("connection refused".into())
}

impl SessionStore<IdpSession> for Down {
    fn create(
        &self,
        _: IdpSession,
        _: Lifetime,
        _: OffsetDateTime,
    ) -> StoreFuture<'_, Result<(SessionSecret, SessionRecord), StoreError>> {
        Box::pin(async { Err(down()) })
    }
    fn touch<'a>(
        &'a self,
        _: &'a SecretHash,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Result<SessionRecord, SessionError>> {
        Box::pin(async { Err(down().into()) })
    }
    fn get<'a>(
        &'a self,
        _: &'a SessionId,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Result<SessionRecord, SessionError>> {
        Box::pin(async { Err(down().into()) })
    }
    fn update<'a>(
        &'a self,
        _: &'a SecretHash,
        _: OffsetDateTime,
        _: SessionChange<'a, IdpSession>,
    ) -> StoreFuture<'a, Result<SessionRecord, SessionError>> {
        Box::pin(async { Err(down().into()) })
    }
    fn update_by_id<'a>(
        &'a self,
        _: &'a SessionId,
        _: OffsetDateTime,
        _: SessionChange<'a, IdpSession>,
    ) -> StoreFuture<'a, Result<SessionRecord, SessionError>> {
        Box::pin(async { Err(down().into()) })
    }
    fn end<'a>(
        &'a self,
        _: &'a SecretHash,
        _: EndReason,
    ) -> StoreFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(async { Err(down()) })
    }
    fn end_by_id<'a>(
        &'a self,
        _: &'a SessionId,
        _: EndReason,
    ) -> StoreFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(async { Err(down()) })
    }
    fn end_indexed<'a>(
        &'a self,
        _: &'a str,
        _: EndReason,
        _: SessionFilter<'a, IdpSession>,
    ) -> StoreFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
        Box::pin(async { Err(down()) })
    }
    fn list_indexed<'a>(
        &'a self,
        _: &'a str,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
        Box::pin(async { Err(down()) })
    }
    fn sweep(&self, _: OffsetDateTime) -> StoreFuture<'_, Result<Vec<SessionRecord>, StoreError>> {
        Box::pin(async { Err(down()) })
    }
    fn subscribe(&self) -> broadcast::Receiver<SessionEnded<IdpSession>> {
        broadcast::channel(1).1
    }
    fn ended(&self, _: &SecretHash) -> EndSignal {
        EndSignal::from_future(std::future::pending())
    }
    fn len(&self) -> StoreFuture<'_, Result<usize, StoreError>> {
        Box::pin(async { Err(down()) })
    }
    fn count_by<'a>(
        &'a self,
        _: OffsetDateTime,
        _: &'a (dyn Fn(&IdpSession) -> String + Send + Sync),
    ) -> StoreFuture<'a, Result<std::collections::BTreeMap<String, usize>, StoreError>> {
        Box::pin(async { Err(down()) })
    }
}

impl OneTimeStore for Down {
    fn first_use<'a>(
        &'a self,
        _: OneTimeKind,
        _: &'a str,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), OneTimeError>> {
        Box::pin(async { Err(down().into()) })
    }
    fn first_use_all<'a>(
        &'a self,
        _: OneTimeKind,
        _: &'a [&'a str],
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), OneTimeError>> {
        Box::pin(async { Err(down().into()) })
    }
    fn advance<'a>(
        &'a self,
        _: OneTimeKind,
        _: &'a str,
        _: u64,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), OneTimeError>> {
        Box::pin(async { Err(down().into()) })
    }
}

impl TicketStore<PendingSignIn> for Down {
    fn issue(
        &self,
        _: PendingSignIn,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> StoreFuture<'_, Result<TicketSecret, StoreError>> {
        Box::pin(async { Err(down()) })
    }
    fn redeem<'a>(
        &'a self,
        _: &'a str,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Result<PendingSignIn, TicketError>> {
        Box::pin(async { Err(down().into()) })
    }
}

impl LockoutStore for Down {
    fn record_failure<'a>(
        &'a self,
        _: &'a str,
        _: &'a LockoutPolicy,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Result<FailureOutcome, StoreError>> {
        Box::pin(async { Err(down()) })
    }

    fn record_success<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(down()) })
    }

    fn restore<'a>(
        &'a self,
        _: &'a str,
        _: OffsetDateTime,
        _: &'a LockoutPolicy,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(down()) })
    }

    fn unlock<'a>(
        &'a self,
        _: &'a str,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Err(down()) })
    }

    fn locked_until<'a>(
        &'a self,
        _: &'a str,
        _: OffsetDateTime,
    ) -> StoreFuture<'a, Result<Option<OffsetDateTime>, StoreError>> {
        Box::pin(async { Err(down()) })
    }

    fn locked(
        &self,
        _: OffsetDateTime,
    ) -> StoreFuture<'_, Result<HashMap<String, OffsetDateTime>, StoreError>> {
        Box::pin(async { Err(down()) })
    }
}

fn down_stores() -> IdpStores {
    let down = Arc::new(Down);
    IdpStores {
        sessions: IdpSessions::new(down.clone(), "00o1"),
        one_time: down.clone(),
        tickets: down.clone(),
        lockouts: down,
        admin_sessions: crate::console::memory_store(),
        csrf_key: None,
    }
}

fn assert_unavailable_page(response: &Response<Bytes>, what: &str) {
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        text(response)
    );
    assert!(
        response.headers().contains_key(header::RETRY_AFTER),
        "{what}"
    );
    assert!(
        text(response).contains("temporarily unavailable"),
        "{what}: {}",
        text(response)
    );
}

fn assert_unavailable_json(response: &Response<Bytes>, what: &str) {
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        text(response)
    );
    assert_eq!(json(response)["errorCode"], "E0000009", "{what}");
}

/// A store outage is a clear 503 — never "you are signed out", never a
/// panic — on every path that needs the store.
#[tokio::test]
async fn a_store_outage_is_a_503_on_every_path() {
    let Fixture { idp, _dir } = fixture(down_stores());
    let cookie = SessionSecret::generate();
    for path in ["/", "/login/mfa", "/logout", "/sso/saml/metadata"] {
        let response = send(
            &idp,
            with_cookie(request(Method::GET, path, ""), cookie.expose()),
        )
        .await;
        if path == "/sso/saml/metadata" {
            // No SAML configured: nothing here needs the store.
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
        } else {
            assert_unavailable_page(&response, path);
        }
    }
    let no_cookie = send(&idp, request(Method::GET, "/", "")).await;
    assert_eq!(
        no_cookie.status(),
        StatusCode::SEE_OTHER,
        "no cookie needs no store"
    );

    for (method, path) in [
        (Method::GET, "/api/v1/sessions/102abc"),
        (Method::DELETE, "/api/v1/sessions/102abc"),
        (Method::POST, "/api/v1/sessions/102abc/lifecycle/refresh"),
        (Method::DELETE, "/api/v1/users/00u2bob/sessions"),
        // The Users API shows LOCKED_OUT, which the lockout store knows.
        (Method::GET, "/api/v1/users"),
        (Method::GET, "/api/v1/users/00u2bob"),
        (Method::POST, "/api/v1/users/00u2bob/lifecycle/unlock"),
    ] {
        let response = send(&idp, with_token(request(method.clone(), path, ""))).await;
        assert_unavailable_json(&response, path);
    }

    let redirect = send(
        &idp,
        request(
            Method::GET,
            "/login/sessionCookieRedirect?token=abc&redirectUrl=/",
            "",
        ),
    )
    .await;
    assert_unavailable_page(&redirect, "sessionCookieRedirect");

    let authn = send(
        &idp,
        request(
            Method::POST,
            "/api/v1/authn",
            r#"{"username":"bob","password":"bob-demo-pass"}"#,
        ),
    )
    .await;
    assert_unavailable_json(&authn, "authn");

    // Upkeep logs the failure and carries on.
    idp.sweep(OffsetDateTime::now_utc()).await;
}

/// The IdP's request future must be `Send`: the proxy runs it on any worker.
#[test]
fn the_request_future_is_send() {
    fn assert_send<F: Future + Send>(_: F) {}
    let Fixture { idp, _dir } = fixture(IdpStores::memory());
    assert_send(idp.handle(request(Method::GET, "/", ""), caller()));
}
