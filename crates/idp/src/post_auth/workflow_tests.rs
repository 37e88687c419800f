//! The workflow webhook against a real HTTPS receiver on 127.0.0.1.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis_context::{Attribute, ContextSource};
use test_support::{Backend, Pki};
use tokio::net::TcpListener;

use super::*;
use crate::post_auth::{SessionKind, ViolationPolicy, ViolationSession, ViolationUser};

const ISSUER: &str = "https://idp.test";
const SECRET: &str = "0123456789abcdef0123456789abcdef-workflow";
const FAST: Duration = Duration::from_millis(10);
/// Far beyond what any test here needs: a deadline, not a pace.
const DEADLINE: Duration = Duration::from_secs(20);

/// How the receiver answers one attempt.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Never answers: the sender's timeout has to end the attempt.
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Seen {
    idempotency_key: Option<String>,
    content_type: Option<String>,
    signature: Option<String>,
    body: Bytes,
    /// The HMAC signature checked out (HMAC receivers only).
    signature_valid: bool,
}

#[derive(Default)]
struct Journal {
    seen: Vec<Seen>,
    /// Idempotency keys acted on, once each however often they come.
    processed: Vec<String>,
}

/// A webhook receiver behind TLS with `pki`'s certificate. Each key's
/// attempts are answered from `script` in turn, then with 200; with a
/// `secret`, a request whose HMAC signature does not verify gets 401.
struct Receiver {
    url: String,
    journal: Arc<Mutex<Journal>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(pki: &Pki, script: Vec<Answer>, secret: Option<&str>) -> Receiver {
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config(&[b"http/1.1"]));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "https://127.0.0.1:{}/violations",
            listener.local_addr().expect("addr").port()
        );
        let journal = Arc::new(Mutex::new(Journal::default()));
        let state = (
            Arc::new(script),
            secret.map(|s| s.as_bytes().to_vec()),
            journal.clone(),
        );
        let task = tokio::spawn(async move {
            let (script, secret, journal) = state;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let (script, secret, journal) = (script.clone(), secret.clone(), journal.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (script, secret, journal) =
                            (script.clone(), secret.clone(), journal.clone());
                        async move { receive(request, &script, secret.as_deref(), &journal).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { url, journal, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.journal.lock().expect("journal").seen.clone()
    }

    fn processed(&self) -> Vec<String> {
        self.journal.lock().expect("journal").processed.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    request: Request<Incoming>,
    script: &[Answer],
    secret: Option<&[u8]>,
    journal: &Mutex<Journal>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let header = |name: &HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let idempotency_key = header(&IDEMPOTENCY_KEY);
    let content_type = header(&header::CONTENT_TYPE);
    let signature = header(&SIGNATURE);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let signature_valid = match (secret, &signature) {
        (Some(secret), Some(signature)) => hmac_verifies(secret, signature, &body),
        _ => false,
    };
    let answer = {
        let mut journal = journal.lock().expect("journal");
        let earlier = journal
            .seen
            .iter()
            .filter(|s| s.idempotency_key == idempotency_key)
            .count();
        journal.seen.push(Seen {
            idempotency_key: idempotency_key.clone(),
            content_type,
            signature,
            body,
            signature_valid,
        });
        let answer = if secret.is_some() && !signature_valid {
            Answer::Status(401)
        } else {
            script.get(earlier).copied().unwrap_or(Answer::Status(200))
        };
        if let (Answer::Status(200), Some(key)) = (answer, idempotency_key) {
            // A receiver that honours the key acts on the first success only.
            if !journal.processed.contains(&key) {
                journal.processed.push(key);
            }
        }
        answer
    };
    match answer {
        Answer::Status(status) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::from_u16(status).expect("status");
            Ok(response)
        }
        Answer::Hang => std::future::pending().await,
    }
}

/// What a receiver does with `X-Portcullis-Signature`.
fn hmac_verifies(secret: &[u8], signature: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in signature.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex(&mac.finalize().into_bytes()) == v1
}

fn violation(login: &str) -> Violation {
    let source = ContextSource::default();
    let firefox = b"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    let ip = |text: &str| text.parse::<IpAddr>().expect("address");
    Violation {
        id: uuid::Uuid::new_v4().to_string(),
        published: time::macros::datetime!(2026-12-02 04:30:00 UTC),
        user: ViolationUser {
            id: "00u1alice".into(),
            login: login.into(),
        },
        session: ViolationSession {
            id: "102sessionpublicid".into(),
            kind: SessionKind::Idp,
            app: None,
        },
        attributes: vec![Attribute::Ip],
        old: source.capture(ip("198.51.100.7"), Some(firefox)),
        new: source.capture(ip("203.0.113.9"), Some(firefox)),
        policy: ViolationPolicy {
            mode: "enforced".into(),
            bind: vec![Attribute::Ip, Attribute::Asn],
            action: "workflow".into(),
        },
        apps: vec!["wiki".into()],
    }
}

/// A policy directory with the HMAC secret file in it.
fn policy_dir(secret: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut file = std::fs::File::create(dir.path().join("workflow-hmac.key")).expect("secret");
    writeln!(file, "{secret}").expect("write secret");
    dir
}

fn raw(url: &str, pki: &Pki, secret_file: Option<&str>) -> RawWorkflow {
    RawWorkflow {
        url: url.to_string(),
        secret_file: secret_file.map(str::to_string),
        timeout: None,
        ca_file: Some(pki.ca_path().display().to_string()),
    }
}

fn hmac_workflow(raw: &RawWorkflow, dir: &Path) -> Workflow {
    Workflow::compile_with_backoff(raw, dir, None, ISSUER, FAST).expect("workflow")
}

async fn flush(workflow: &Workflow) {
    tokio::time::timeout(DEADLINE, workflow.flush())
        .await
        .expect("deliveries finish before the deadline");
}

/// The JSON log lines this test's thread writes while it lives. Tasks of
/// a current-thread runtime run on the test's thread, so theirs land here
/// too.
///
/// One global subscriber routes by thread: per-test scoped subscribers
/// race on tracing's process-wide callsite cache when tests run in
/// parallel, and an event can go unseen.
struct Logs {
    lines: Arc<Mutex<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

impl Logs {
    fn capture() -> Logs {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_max_level(tracing::Level::INFO)
                .with_writer(|| ThreadSink)
                .finish();
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(lines.clone()));
        Logs { lines }
    }

    /// The `fields` of every event whose `outcome` is `outcome`.
    fn outcomes(&self, outcome: &str) -> Vec<serde_json::Value> {
        let bytes = self.lines.lock().expect("logs").clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|event| event["fields"].clone())
            .filter(|fields| fields["outcome"] == outcome)
            .collect()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        CAPTURE.with(|capture| *capture.borrow_mut() = None);
    }
}

/// Writes into the current thread's capture, if it has one.
struct ThreadSink;

impl std::io::Write for ThreadSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(lines) = capture.borrow().as_ref() {
                if let Ok(mut lines) = lines.lock() {
                    lines.extend_from_slice(bytes);
                }
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn hmac_deliveries_retry_through_503s_with_one_signed_body_and_key() {
    let logs = Logs::capture();
    let pki = Pki::new();
    let receiver = Receiver::start(
        &pki,
        vec![Answer::Status(503), Answer::Status(503)],
        Some(SECRET),
    )
    .await;
    let dir = policy_dir(SECRET);
    let workflow = hmac_workflow(
        &raw(&receiver.url, &pki, Some("workflow-hmac.key")),
        dir.path(),
    );
    let alice = violation("alice@example.com");
    let bob = violation("bob@example.com");

    workflow.deliver(alice.clone());
    workflow.deliver(bob.clone());
    flush(&workflow).await;

    let seen = receiver.seen();
    assert_eq!(seen.len(), 6, "three attempts each: {seen:?}");
    assert!(
        seen.iter().all(|s| s.signature_valid),
        "every attempt is signed with the shared secret"
    );
    for sent in [&alice, &bob] {
        let attempts: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.idempotency_key.as_deref() == Some(sent.id.as_str()))
            .collect();
        assert_eq!(attempts.len(), 3, "{} keeps its idempotency key", sent.id);
        assert!(
            attempts
                .iter()
                .all(|s| s.body == attempts[0].body && s.signature == attempts[0].signature),
            "a retry resends the same signed body"
        );
        assert_eq!(
            attempts[0].content_type.as_deref(),
            Some("application/json")
        );
        let received: Violation = serde_json::from_slice(&attempts[0].body).expect("violation");
        assert_eq!(&received, sent);
    }
    let mut processed = receiver.processed();
    processed.sort();
    let mut expected = vec![alice.id.clone(), bob.id.clone()];
    expected.sort();
    assert_eq!(processed, expected, "one delivery per violation");

    let stats = workflow.stats();
    assert_eq!((stats.delivered, stats.pending), (2, 0), "{stats:?}");
    let delivered = logs.outcomes("delivered");
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert!(delivered
        .iter()
        .all(|f| f["attempts"] == 3 && f["status"] == 200));
    assert!(delivered
        .iter()
        .any(|f| f["violation.id"] == alice.id.as_str() && f["user"] == "alice@example.com"));
}

#[tokio::test]
async fn the_body_is_the_violation_in_camel_case_json() {
    let pki = Pki::new();
    let receiver = Receiver::start(&pki, vec![], Some(SECRET)).await;
    let dir = policy_dir(SECRET);
    let workflow = hmac_workflow(
        &raw(&receiver.url, &pki, Some("workflow-hmac.key")),
        dir.path(),
    );
    let sent = violation("alice@example.com");
    workflow.deliver(sent.clone());
    flush(&workflow).await;

    let seen = receiver.seen();
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).expect("json");
    assert_eq!(body["id"], sent.id.as_str());
    assert_eq!(body["published"], "2026-12-02T04:30:00Z");
    assert_eq!(body["user"]["login"], "alice@example.com");
    assert_eq!(body["session"]["kind"], "idp");
    assert_eq!(body["attributes"], serde_json::json!(["ip"]));
    assert_eq!(body["old"]["ip"], "198.51.100.7");
    assert_eq!(body["new"]["ip"], "203.0.113.9");
    assert_eq!(
        body["policy"],
        serde_json::json!({"mode": "enforced", "bind": ["ip", "asn"], "action": "workflow"})
    );
    assert_eq!(body["apps"], serde_json::json!(["wiki"]));
}

#[tokio::test]
async fn jws_deliveries_verify_against_the_published_jwks() {
    let pki = Pki::new();
    let receiver = Receiver::start(&pki, vec![Answer::Status(503)], None).await;
    let key = SigningKey::generate_self_signed("workflow test", 1).expect("key");
    let dir = tempfile::tempdir().expect("dir");
    let workflow = Workflow::compile_with_backoff(
        &raw(&receiver.url, &pki, None),
        dir.path(),
        Some(&key),
        ISSUER,
        FAST,
    )
    .expect("workflow");
    assert!(workflow.signs_with_idp_key());
    let sent = violation("alice@example.com");
    workflow.deliver(sent.clone());
    flush(&workflow).await;

    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0].body, seen[1].body,
        "the retry resends the same token"
    );
    assert_eq!(seen[0].content_type.as_deref(), Some("application/jwt"));
    assert_eq!(seen[0].idempotency_key.as_deref(), Some(sent.id.as_str()));
    assert_eq!(seen[0].signature, None);

    let jwks = key.jwks().expect("jwks");
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(jwks.document["keys"][0].clone()).expect("jwk");
    let token = std::str::from_utf8(&seen[0].body).expect("token text");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.kid.as_deref(), Some(jwks.kid.as_str()));
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[receiver.url.as_str()]);
    validation.set_issuer(&[ISSUER]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key"),
        &validation,
    )
    .expect("the token verifies with the published key")
    .claims;
    assert_eq!(claims["jti"], sent.id.as_str());
    assert_eq!(claims["id"], sent.id.as_str());
    assert_eq!(claims["user"]["login"], "alice@example.com");
    assert_eq!(claims["new"]["ip"], "203.0.113.9");
    let lifetime = claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat");
    assert_eq!(lifetime, 300);

    let other = SigningKey::generate_self_signed("another idp", 1).expect("key");
    let other_jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(other.jwks().expect("jwks").document["keys"][0].clone())
            .expect("jwk");
    assert!(
        jsonwebtoken::decode::<serde_json::Value>(
            token,
            &jsonwebtoken::DecodingKey::from_jwk(&other_jwk).expect("decoding key"),
            &validation,
        )
        .is_err(),
        "another key does not verify it"
    );
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let logs = Logs::capture();
    let pki = Pki::new();
    let receiver = Receiver::start(&pki, vec![Answer::Status(400)], Some(SECRET)).await;
    let dir = policy_dir(SECRET);
    let workflow = hmac_workflow(
        &raw(&receiver.url, &pki, Some("workflow-hmac.key")),
        dir.path(),
    );
    let sent = violation("alice@example.com");
    workflow.deliver(sent.clone());
    flush(&workflow).await;

    assert_eq!(receiver.seen().len(), 1);
    assert_eq!(workflow.stats().refused, 1);
    let refused = logs.outcomes("refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["status"], 400);
    assert_eq!(refused[0]["violation.id"], sent.id.as_str());
}

#[tokio::test]
async fn an_unreachable_receiver_is_given_up_on_after_five_attempts() {
    let logs = Logs::capture();
    let pki = Pki::new();
    let url = format!("https://{}/violations", Backend::closed_addr());
    let dir = policy_dir(SECRET);
    let workflow = hmac_workflow(&raw(&url, &pki, Some("workflow-hmac.key")), dir.path());
    let sent = violation("alice@example.com");
    workflow.deliver(sent.clone());
    flush(&workflow).await;

    assert_eq!(workflow.stats().gave_up, 1);
    assert_eq!(logs.outcomes("retrying").len(), 4);
    let gave_up = logs.outcomes("gave_up");
    assert_eq!(gave_up.len(), 1, "{gave_up:?}");
    assert_eq!(gave_up[0]["attempts"], 5);
    assert_eq!(gave_up[0]["violation.id"], sent.id.as_str());
    assert_eq!(gave_up[0]["user"], "alice@example.com");
}

#[tokio::test]
async fn a_receiver_that_does_not_answer_in_time_is_retried() {
    let pki = Pki::new();
    let receiver = Receiver::start(&pki, vec![Answer::Hang], Some(SECRET)).await;
    let dir = policy_dir(SECRET);
    let mut config = raw(&receiver.url, &pki, Some("workflow-hmac.key"));
    config.timeout = Some("1s".into());
    let workflow = hmac_workflow(&config, dir.path());
    workflow.deliver(violation("alice@example.com"));
    flush(&workflow).await;

    assert_eq!(receiver.seen().len(), 2);
    assert_eq!(workflow.stats().delivered, 1);
}

#[tokio::test]
async fn a_full_queue_drops_violations_with_one_warning() {
    let logs = Logs::capture();
    let pki = Pki::new();
    let dir = policy_dir(SECRET);
    let url = format!("https://{}/violations", Backend::closed_addr());
    let workflow = hmac_workflow(&raw(&url, &pki, Some("workflow-hmac.key")), dir.path());
    // The queue's task cannot run until this test yields, so the queue
    // fills exactly.
    for _ in 0..QUEUE_CAPACITY + 6 {
        workflow.deliver(violation("alice@example.com"));
    }
    let stats = workflow.stats();
    assert_eq!(stats.dropped, 6);
    assert_eq!(stats.pending, QUEUE_CAPACITY as u64);
    let dropped = logs.outcomes("dropped");
    assert_eq!(dropped.len(), 1, "rate limited: {dropped:?}");
}

#[test]
fn bad_configurations_are_clear_errors() {
    let pki = Pki::new();
    let dir = policy_dir(SECRET);
    let key = SigningKey::generate_self_signed("workflow test", 1).expect("key");
    let compile = |raw: &RawWorkflow| Workflow::compile(raw, dir.path(), Some(&key), ISSUER);
    let with = |url: &str, secret: Option<&str>, timeout: Option<&str>| RawWorkflow {
        url: url.to_string(),
        secret_file: secret.map(str::to_string),
        timeout: timeout.map(str::to_string),
        ca_file: None,
    };

    for url in [
        "http://automation.example/violations",
        "http://10.0.0.1/violations",
        "ftp://automation.example/violations",
        "/violations",
    ] {
        let error = compile(&with(url, None, None)).expect_err(url);
        assert!(
            matches!(error, WorkflowError::Insecure { .. }),
            "{url}: {error}"
        );
        assert!(error.to_string().contains("must be https"), "{error}");
    }
    for url in [
        "https://automation.example/violations",
        "http://127.0.0.1:9000/violations",
        "http://localhost:9000/violations",
        "http://[::1]:9000/violations",
    ] {
        let workflow = compile(&with(url, None, None)).expect(url);
        assert_eq!(workflow.timeout(), Duration::from_secs(5));
    }
    assert!(matches!(
        compile(&with("https://bad host/", None, None)),
        Err(WorkflowError::Url { .. })
    ));

    std::fs::write(
        dir.path().join("short.key"),
        "0123456789abcdef0123456789abcde\n",
    )
    .expect("write");
    let error = compile(&with(
        "https://automation.example/",
        Some("short.key"),
        None,
    ))
    .expect_err("short secret");
    assert!(
        matches!(error, WorkflowError::SecretTooShort { len: 31, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("at least 32"), "{error}");

    let error = compile(&with(
        "https://automation.example/",
        Some("missing.key"),
        None,
    ))
    .expect_err("missing secret");
    assert!(
        matches!(error, WorkflowError::SecretUnreadable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("missing.key"), "{error}");

    for timeout in ["soon", "500ms", "0s", "5"] {
        let error =
            compile(&with("https://automation.example/", None, Some(timeout))).expect_err(timeout);
        assert!(matches!(error, WorkflowError::Timeout { .. }), "{error}");
    }
    for timeout in ["61s", "1h"] {
        let error =
            compile(&with("https://automation.example/", None, Some(timeout))).expect_err(timeout);
        assert!(
            matches!(error, WorkflowError::TimeoutOutOfRange { .. }),
            "{error}"
        );
    }
    let workflow =
        compile(&with("https://automation.example/", None, Some("30s"))).expect("30s timeout");
    assert_eq!(workflow.timeout(), Duration::from_secs(30));

    let error = Workflow::compile(
        &with("https://automation.example/", None, None),
        dir.path(),
        None,
        ISSUER,
    )
    .expect_err("nothing to sign with");
    assert!(matches!(error, WorkflowError::NoSigningKey), "{error}");

    let mut missing_ca = with("https://automation.example/", None, None);
    missing_ca.ca_file = Some("no-such-ca.pem".into());
    assert!(matches!(
        compile(&missing_ca),
        Err(WorkflowError::Client(_))
    ));
    let mut ca = with("https://automation.example/", None, None);
    ca.ca_file = Some(pki.ca_path().display().to_string());
    assert!(compile(&ca).is_ok(), "an absolute ca_file is used as is");
}

#[test]
fn unknown_keys_in_the_table_are_rejected() {
    let parsed: Result<RawWorkflow, _> = toml::from_str(
        r#"
        url = "https://automation.example/violations"
        secret = "inline secrets are not a thing"
        "#,
    );
    let error = parsed.expect_err("unknown key");
    assert!(error.to_string().contains("secret"), "{error}");

    let parsed: RawWorkflow = toml::from_str(
        r#"
        url = "https://automation.example/violations"
        secret_file = "workflow-hmac.key"
        timeout = "5s"
        "#,
    )
    .expect("the documented table parses");
    assert_eq!(parsed.secret_file.as_deref(), Some("workflow-hmac.key"));
}

#[test]
fn delivering_without_a_runtime_counts_a_drop_instead_of_panicking() {
    let dir = policy_dir(SECRET);
    let raw = RawWorkflow {
        url: "https://automation.example/violations".into(),
        secret_file: Some("workflow-hmac.key".into()),
        timeout: None,
        ca_file: None,
    };
    let workflow = Workflow::compile(&raw, dir.path(), None, ISSUER).expect("workflow");
    workflow.deliver(violation("alice@example.com"));
    assert_eq!(workflow.stats().dropped, 1);
    assert_eq!(workflow.stats().pending, 0);
}

/// Equal configurations compare equal, as a reload needs to tell.
#[test]
fn workflows_compare_by_configuration() {
    let dir = policy_dir(SECRET);
    let raw = RawWorkflow {
        url: "https://automation.example/violations".into(),
        secret_file: Some("workflow-hmac.key".into()),
        timeout: None,
        ca_file: None,
    };
    let a = Workflow::compile(&raw, dir.path(), None, ISSUER).expect("a");
    let b = Workflow::compile(&raw, dir.path(), None, ISSUER).expect("b");
    assert_eq!(a, b);
    let mut slower = raw.clone();
    slower.timeout = Some("10s".into());
    let c = Workflow::compile(&slower, dir.path(), None, ISSUER).expect("c");
    assert_ne!(a, c);
    assert!(
        !format!("{a:?}").contains("0123456789abcdef"),
        "no secret in Debug"
    );
}
