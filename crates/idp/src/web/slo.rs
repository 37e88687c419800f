//! SAML Single Logout at the embedded IdP: `/sso/saml/logout` (both
//! bindings) and the user's own `/logout`.
//!
//! A logout is a small server-side transaction. The IdP session ends at
//! once; then the browser is walked through every other SP that received
//! an assertion in that session — a signed LogoutRequest to its SLO
//! endpoint, its signed LogoutResponse back here, RelayState carrying the
//! transaction id — and finally the initiator gets a signed LogoutResponse:
//! `Success`, or `PartialLogout` when an SP answered with an error, could
//! not be asked (no SLO endpoint) or sent a response that failed checks.
//! Transactions live at most [`LOGOUT_TTL`]; a browser that returns later
//! sees the signed-out page.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use portcullis_proxy::{WorkError, WorkLimit};
use portcullis_saml::{self as saml, LogoutStatus};
use time::OffsetDateTime;

use super::respond;
use super::sso::{lock, random_id, IssuedNameId, Saml, ServiceProvider};
use super::{query_param, Caller, Idp};
use crate::session::{EndReason, SessionError, SessionId, SessionRecord};

/// SLO messages are small; anything larger is refused before decoding.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// How long one logout walk may take.
const LOGOUT_TTL: time::Duration = time::Duration::minutes(2);
const LOGOUT_MAX: usize = 10_000;
/// A LogoutRequest we send is valid this long.
const REQUEST_VALIDITY: Duration = Duration::from_secs(120);
const CLOCK_SKEW: Duration = Duration::from_secs(180);

/// Who to tell, and what they knew the user as: the NameID exactly as it
/// was issued to them (core §3.7.1).
#[derive(Debug, Clone)]
pub(super) struct Notice {
    pub(super) sp: String,
    pub(super) name_id: IssuedNameId,
}

/// The SP that asked for the logout, to be answered at the end.
#[derive(Debug, Clone)]
struct Initiator {
    sp: String,
    request_id: String,
    relay_state: Option<String>,
}

#[derive(Debug)]
pub(crate) struct LogoutTx {
    initiator: Option<Initiator>,
    session_index: String,
    pending: VecDeque<Notice>,
    /// The LogoutRequest id we are waiting on, and from which SP.
    waiting: Option<(String, String)>,
    partial: bool,
    started: OffsetDateTime,
    /// Where the signed-out page's "Sign in" link goes back to (the
    /// `fromURI` of `/logout`, when allowed).
    sign_in_again: Option<String>,
    /// Where a walk the browser did not ask for ends instead of the
    /// signed-out page: the IdP page it was opening.
    resume: Option<String>,
}

impl LogoutTx {
    /// The walk owed to a browser whose session ended without it, ending
    /// at `resume` (an address on this host).
    pub(super) fn resuming(
        session_index: String,
        pending: VecDeque<Notice>,
        resume: Option<String>,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            initiator: None,
            session_index,
            pending,
            waiting: None,
            partial: false,
            started: now,
            sign_in_again: None,
            resume,
        }
    }
}

/// Logout transactions by id.
#[derive(Default)]
pub(crate) struct Logouts(std::sync::Mutex<HashMap<String, LogoutTx>>);

impl Logouts {
    fn insert(&self, id: String, tx: LogoutTx, now: OffsetDateTime) -> bool {
        let mut map = lock(&self.0);
        if map.len() >= LOGOUT_MAX {
            map.retain(|_, tx| now - tx.started < LOGOUT_TTL);
            if map.len() >= LOGOUT_MAX {
                return false;
            }
        }
        map.insert(id, tx);
        true
    }

    fn take(&self, id: &str, now: OffsetDateTime) -> Option<LogoutTx> {
        lock(&self.0)
            .remove(id)
            .filter(|tx| now - tx.started < LOGOUT_TTL)
    }

    pub(crate) fn sweep(&self, now: OffsetDateTime) {
        lock(&self.0).retain(|_, tx| now - tx.started < LOGOUT_TTL);
    }
}

impl Idp {
    /// `/logout`'s `fromURI` (query or form), when it is a place sign-in
    /// may send a browser.
    fn logout_from(&self, request: &Request<Bytes>) -> Option<String> {
        let from = query_param(request, "fromURI").or_else(|| {
            form_urlencoded::parse(request.body())
                .find(|(k, _)| k == "fromURI")
                .map(|(_, v)| v.into_owned())
        })?;
        self.allowed_redirect(&from)
    }

    /// The end of a sign-out: its "Sign in" link comes back to `from`.
    fn signed_out_page(&self, partial: bool, from: Option<&str>) -> Response<Bytes> {
        let detail = if partial {
            "You are signed out of the identity provider, but some applications could not confirm \
             the sign-out. Close your browser to end those sessions too."
        } else {
            "You are signed out of the identity provider and every application you used."
        };
        let sign_in = match from {
            Some(from) => self.login_page_path("/login", from, None, false),
            None => self.path("/login"),
        };
        respond::page(
            StatusCode::OK,
            "Signed out",
            &portcullis_proxy::page::body(&SignedOutPage { detail, sign_in }),
        )
    }
}

/// The IdP's signed-out page.
#[derive(askama::Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage {
    detail: &'static str,
    sign_in: String,
}

fn logout_error(message: &str) -> Response<Bytes> {
    respond::message_page(StatusCode::BAD_REQUEST, "Sign-out failed", message)
}

/// A message as it arrived.
enum Incoming<'a> {
    Redirect(&'a str),
    Post {
        /// The SAMLRequest or SAMLResponse field.
        message: String,
        relay_state: Option<String>,
    },
}

type RedirectParser<T> = fn(&str, Option<saml::PeerSigners<'_>>, usize) -> saml::Result<T>;
type PostParser<T> =
    fn(&str, Option<&str>, Option<saml::PeerSigners<'_>>, usize) -> saml::Result<T>;

impl Incoming<'_> {
    /// [`parse`](Self::parse) with `signers` (a signature required). The
    /// POST binding's enveloped signature goes through libxml2 and xmlsec,
    /// so it runs on the bounded SAML pool, off the worker thread; the
    /// Redirect binding's query signature is one RSA check, done here.
    async fn verify<T: Send + 'static>(
        &self,
        pool: &WorkLimit,
        signers: saml::PeerSigners<'_>,
        redirect: RedirectParser<T>,
        post: PostParser<T>,
    ) -> Result<saml::Result<T>, WorkError> {
        match self {
            Incoming::Redirect(query) => Ok(redirect(query, Some(signers), MAX_MESSAGE_BYTES)),
            Incoming::Post {
                message,
                relay_state,
            } => {
                let (message, relay_state, certs, allow_sha1) = (
                    message.clone(),
                    relay_state.clone(),
                    signers.certs.to_vec(),
                    signers.allow_sha1,
                );
                pool.run(move || {
                    post(
                        &message,
                        relay_state.as_deref(),
                        Some(saml::PeerSigners {
                            certs: &certs,
                            allow_sha1,
                        }),
                        MAX_MESSAGE_BYTES,
                    )
                })
                .await
            }
        }
    }

    /// Parses with the binding's parser; `signers` makes a signature mandatory.
    fn parse<T>(
        &self,
        signers: Option<saml::PeerSigners<'_>>,
        redirect: RedirectParser<T>,
        post: PostParser<T>,
    ) -> saml::Result<T> {
        match self {
            Incoming::Redirect(query) => redirect(query, signers, MAX_MESSAGE_BYTES),
            Incoming::Post {
                message,
                relay_state,
            } => post(message, relay_state.as_deref(), signers, MAX_MESSAGE_BYTES),
        }
    }
}

impl Idp {
    /// `GET|POST /sso/saml/logout`: LogoutRequests from SPs, and their
    /// LogoutResponses to ours.
    pub(crate) async fn slo_endpoint(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
    ) -> Response<Bytes> {
        if self.saml.is_none() {
            return respond::message_page(
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing at this address.",
            );
        }
        let field = |name: &str| {
            form_urlencoded::parse(request.body())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let post = request.method() == http::Method::POST;
        let (saml_request, saml_response) = if post {
            (field("SAMLRequest"), field("SAMLResponse"))
        } else {
            (
                query_param(request, "SAMLRequest"),
                query_param(request, "SAMLResponse"),
            )
        };
        let incoming = |message: String| {
            if post {
                Incoming::Post {
                    message,
                    relay_state: field("RelayState"),
                }
            } else {
                Incoming::Redirect(request.uri().query().unwrap_or(""))
            }
        };
        match (saml_request, saml_response) {
            (Some(message), None) => {
                self.logout_request_from_sp(request, caller, &incoming(message))
                    .await
            }
            (None, Some(message)) => self.logout_response_from_sp(&incoming(message)).await,
            _ => logout_error("The sign-out message is missing or ambiguous."),
        }
    }

    /// `GET /logout` (and POST): the user signs out at the IdP; every SP of
    /// the session is told.
    pub(crate) async fn user_logout(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
    ) -> Response<Bytes> {
        let now = OffsetDateTime::now_utc();
        let (secret, record) = match self.current_session(request, now).await {
            Ok(Some(current)) => current,
            Ok(None) => {
                return self.with_cleared_session(
                    self.signed_out_page(false, self.logout_from(request).as_deref()),
                )
            }
            Err(e) => return respond::store_unavailable(&e, "reading the IdP session"),
        };
        tracing::info!(
            session.id = record.id.as_str(),
            request.id = %caller.request_id,
            "Single Logout started at the IdP"
        );
        let notices = self.notices_for(record.id.as_str(), &record.body.user_id, None);
        // Not ended means not signed out: say so rather than walk the SPs.
        if let Err(e) = self.sessions.end(&secret, EndReason::SignOut).await {
            return respond::store_unavailable(&e, "ending the IdP session at sign-out");
        }
        let tx = LogoutTx {
            initiator: None,
            session_index: record.id.as_str().to_string(),
            pending: notices.0,
            waiting: None,
            partial: notices.1,
            started: now,
            sign_in_again: self.logout_from(request),
            resume: None,
        };
        self.with_cleared_session(self.advance(tx, now))
    }

    pub(crate) fn with_cleared_session(&self, mut response: Response<Bytes>) -> Response<Bytes> {
        respond::append(
            &mut response,
            http::header::SET_COOKIE,
            &self.clear_session_cookie(),
        );
        response
    }

    /// The SPs to notify for this session (all but `except`), and whether
    /// some could not be notified at all (no SLO endpoint).
    fn notices_for(
        &self,
        session_id: &str,
        user_id: &str,
        except: Option<&str>,
    ) -> (VecDeque<Notice>, bool) {
        let Some(saml) = &self.saml else {
            return (VecDeque::new(), false);
        };
        if self.directory().by_id(user_id).is_none() {
            return (VecDeque::new(), false);
        }
        let participants = lock(&saml.participants)
            .get(session_id)
            .cloned()
            .unwrap_or_default();
        let mut unreachable = false;
        let mut notices = VecDeque::new();
        for (name, name_id) in participants
            .into_iter()
            .filter(|(n, _)| Some(n.as_str()) != except)
        {
            let Some(sp) = saml.sp_by_name(&name) else {
                continue;
            };
            let sp = &*sp;
            if sp.slo_url.is_none() {
                unreachable = true;
                continue;
            }
            notices.push_back(Notice {
                sp: sp.name.clone(),
                name_id,
            });
        }
        (notices, unreachable)
    }

    async fn logout_request_from_sp(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
        incoming: &Incoming<'_>,
    ) -> Response<Bytes> {
        let Some(saml) = &self.saml else {
            return logout_error("Single Logout is not enabled.");
        };
        let now = OffsetDateTime::now_utc();
        let parse = |signers: Option<saml::PeerSigners<'_>>| {
            incoming.parse(
                signers,
                saml::parse_logout_request_redirect_with,
                saml::parse_logout_request_post_with,
            )
        };
        let unverified = match parse(None) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable LogoutRequest");
                return logout_error(
                    "The application sent a sign-out request that could not be read.",
                );
            }
        };
        let Some(sp) = unverified
            .issuer
            .as_deref()
            .and_then(|issuer| saml.settings.service_providers.by_entity_id(issuer))
        else {
            tracing::warn!(issuer = ?unverified.issuer, "LogoutRequest from an unknown service provider");
            return logout_error(
                "The application that sent you here is not registered with this identity provider.",
            );
        };
        let sp = &*sp;
        // A forged LogoutRequest would sign users out: only signed ones count.
        let verified = incoming
            .verify(
                &self.saml_work,
                sp.signers(),
                saml::parse_logout_request_redirect_with,
                saml::parse_logout_request_post_with,
            )
            .await;
        let parsed = match verified {
            Ok(Ok(parsed)) => parsed,
            Ok(Err(e)) => {
                tracing::warn!(sp = %sp.name, error = %e, "LogoutRequest refused");
                return logout_error("The application's sign-out request is not correctly signed.");
            }
            // Nothing was acted on: the SP's page may send it again.
            Err(e) => return respond::saml_work_refused(&e),
        };
        if let Err(e) = parsed.check_time(chrono::Utc::now(), CLOCK_SKEW) {
            tracing::warn!(sp = %sp.name, error = %e, "LogoutRequest refused");
            return logout_error("The application's sign-out request has expired.");
        }
        if parsed
            .destination
            .as_deref()
            .is_some_and(|d| d != saml.config.slo_url)
        {
            return logout_error("The sign-out request was meant for another identity provider.");
        }
        // The session the SP names (SessionIndex is our session id); a
        // request for a session that is already gone is still answered.
        let record = match self
            .named_session(request, &parsed.session_indexes, now)
            .await
        {
            Ok(record) => {
                record.filter(|record| self.names_user_to(saml, sp, record, &parsed.name_id))
            }
            Err(e) => return respond::store_unavailable(&e, "finding the session to log out"),
        };
        let (pending, unreachable) = match &record {
            Some(record) => {
                let notices =
                    self.notices_for(record.id.as_str(), &record.body.user_id, Some(&sp.name));
                tracing::info!(
                    sp = %sp.name,
                    session.id = record.id.as_str(),
                    request.id = %caller.request_id,
                    "Single Logout started by a service provider"
                );
                if let Err(e) = self.sessions.revoke(&record.id, EndReason::SignOut).await {
                    return respond::store_unavailable(&e, "ending the IdP session at SLO");
                }
                notices
            }
            None => (VecDeque::new(), false),
        };
        let tx = LogoutTx {
            initiator: Some(Initiator {
                sp: sp.name.clone(),
                request_id: parsed.id,
                relay_state: parsed.relay_state,
            }),
            session_index: record
                .map(|r| r.id.as_str().to_string())
                .unwrap_or_default(),
            pending,
            waiting: None,
            partial: unreachable,
            started: now,
            sign_in_again: None,
            resume: None,
        };
        self.with_cleared_session(self.advance(tx, now))
    }

    /// Whether `name_id` is what `sp` knows the user of `record` as: the
    /// NameID it received in that session (whatever format it asked for),
    /// or, when this node did not issue it, the one its configured format
    /// gives (every format is derived, so any node computes the same).
    fn names_user_to(
        &self,
        saml: &Saml,
        sp: &ServiceProvider,
        record: &SessionRecord,
        name_id: &str,
    ) -> bool {
        let session_id = record.id.as_str();
        let issued = lock(&saml.participants)
            .get(session_id)
            .and_then(|sps| sps.get(&sp.name).cloned());
        if let Some(issued) = issued {
            return issued.value == name_id;
        }
        self.directory()
            .by_id(&record.body.user_id)
            .is_some_and(|user| {
                saml.name_id(sp, sp.name_id_format, user, session_id).value == name_id
            })
    }

    /// The first live session among a LogoutRequest's SessionIndexes, else
    /// the one behind the browser's cookie.
    async fn named_session(
        &self,
        request: &Request<Bytes>,
        session_indexes: &[String],
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord>, crate::session::StoreError> {
        for index in session_indexes {
            match self
                .sessions
                .get_by_id(&SessionId::from_public(index), now)
                .await
            {
                Ok(record) => return Ok(Some(record)),
                Err(SessionError::Store(e)) => return Err(e),
                Err(
                    SessionError::Malformed
                    | SessionError::NotFound
                    | SessionError::Expired { .. }
                    | SessionError::OtherNode { .. },
                ) => {}
            }
        }
        Ok(self
            .current_session(request, now)
            .await?
            .map(|(_, record)| record))
    }

    async fn logout_response_from_sp(&self, incoming: &Incoming<'_>) -> Response<Bytes> {
        let Some(saml) = &self.saml else {
            return logout_error("Single Logout is not enabled.");
        };
        let now = OffsetDateTime::now_utc();
        let parse = |signers: Option<saml::PeerSigners<'_>>| {
            incoming.parse(
                signers,
                saml::parse_logout_response_redirect_with,
                saml::parse_logout_response_post_with,
            )
        };
        let unverified = match parse(None) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable LogoutResponse");
                return logout_error(
                    "An application sent a sign-out answer that could not be read.",
                );
            }
        };
        let Some(mut tx) = unverified
            .relay_state
            .as_deref()
            .and_then(|id| self.logouts.take(id, now))
        else {
            // Expired or unknown walk: the IdP session is gone already.
            return self.signed_out_page(true, None);
        };
        let sender = unverified
            .issuer
            .as_deref()
            .and_then(|issuer| saml.settings.service_providers.by_entity_id(issuer));
        // An answer that cannot be checked (not signed by the SP, or the
        // pool is full) counts as no answer: the walk goes on, partial.
        let verified = match sender {
            Some(sp) => match incoming
                .verify(
                    &self.saml_work,
                    sp.signers(),
                    saml::parse_logout_response_redirect_with,
                    saml::parse_logout_response_post_with,
                )
                .await
            {
                Ok(Ok(parsed)) => Some((sp, parsed)),
                Ok(Err(_)) => None,
                Err(e) => {
                    tracing::warn!(sp = %sp.name, error = %e, "LogoutResponse not checked; logout is partial");
                    None
                }
            },
            None => None,
        };
        match (&tx.waiting, verified) {
            (Some((want_id, want_sp)), Some((sp, parsed)))
                if sp.name == *want_sp && parsed.in_response_to.as_deref() == Some(want_id) =>
            {
                if !parsed.is_success() || parsed.is_partial() {
                    tx.partial = true;
                }
                tracing::info!(sp = %sp.name, success = parsed.is_success(), "LogoutResponse from SP");
            }
            _ => {
                tracing::warn!(issuer = ?unverified.issuer, "LogoutResponse refused; logout is partial");
                tx.partial = true;
            }
        }
        tx.waiting = None;
        self.advance(tx, now)
    }

    /// Sends the browser to the next SP, or finishes the walk.
    pub(super) fn advance(&self, mut tx: LogoutTx, now: OffsetDateTime) -> Response<Bytes> {
        let Some(saml) = &self.saml else {
            return self.signed_out_page(tx.partial, tx.sign_in_again.as_deref());
        };
        while let Some(notice) = tx.pending.pop_front() {
            let Some(sp) = saml.sp_by_name(&notice.sp) else {
                continue;
            };
            let sp = &*sp;
            let Some(slo_url) = &sp.slo_url else {
                tx.partial = true;
                continue;
            };
            let tx_id = random_id();
            let params = saml::LogoutRequestParams {
                issuer: &saml.settings.entity_id,
                destination: slo_url,
                name_id: &notice.name_id.value,
                name_id_format: Some(notice.name_id.format.uri()),
                name_qualifier: notice
                    .name_id
                    .qualified
                    .then_some(saml.settings.entity_id.as_str()),
                sp_name_qualifier: notice.name_id.qualified.then_some(sp.entity_id.as_str()),
                session_index: (!tx.session_index.is_empty()).then_some(tx.session_index.as_str()),
                relay_state: Some(&tx_id),
                now: chrono::Utc::now(),
                validity: REQUEST_VALIDITY,
            };
            match saml::build_logout_request_redirect(&params, &saml.settings.signing_key) {
                Ok(redirect) => {
                    tx.waiting = Some((redirect.request_id.clone(), sp.name.clone()));
                    if !self.logouts.insert(tx_id, tx, now) {
                        return respond::message_page(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "Try again later",
                            "Too many sign-outs are in progress. Please try again in a few minutes.",
                        );
                    }
                    return respond::redirect(&redirect.url);
                }
                Err(e) => {
                    tracing::error!(sp = %sp.name, error = %e, "building a LogoutRequest failed");
                    tx.partial = true;
                }
            }
        }
        let Some(initiator) = tx.initiator else {
            if let Some(resume) = &tx.resume {
                return respond::redirect(resume);
            }
            return self.signed_out_page(tx.partial, tx.sign_in_again.as_deref());
        };
        let Some(sp) = saml.sp_by_name(&initiator.sp) else {
            return self.signed_out_page(tx.partial, None);
        };
        let sp = &*sp;
        let Some(slo_url) = &sp.slo_url else {
            return self.signed_out_page(tx.partial, None);
        };
        let params = saml::LogoutResponseParams {
            issuer: &saml.settings.entity_id,
            destination: slo_url,
            in_response_to: Some(&initiator.request_id),
            status: if tx.partial {
                LogoutStatus::PartialLogout
            } else {
                LogoutStatus::Success
            },
            relay_state: initiator.relay_state.as_deref(),
            now: chrono::Utc::now(),
        };
        match saml::build_logout_response_redirect(&params, &saml.settings.signing_key) {
            Ok(url) => respond::redirect(&url),
            Err(e) => {
                tracing::error!(sp = %sp.name, error = %e, "building the LogoutResponse failed");
                self.signed_out_page(true, None)
            }
        }
    }
}
