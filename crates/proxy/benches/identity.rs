//! The per-request identity step (`IdentityPlan::apply`) with the header-app
//! template plus two more headers and a cookie — five injected values in
//! all, as issue 5's benchmark asks — next to two baselines from the same
//! run: the strip-only pass of a request without a session, and copying the
//! request's header map (what any proxy does once per request anyway).
//!
//! Run: `cargo bench -p portcullis-proxy --bench identity`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use portcullis_proxy::{
    AcsError, AuthnRedirect, Identity, IdentityPlan, NewSession, SamlSp, SessionStore, SloInput,
    SloMessage,
};

const CONFIG: &str = r#"
[server]
https = ["127.0.0.1:0"]
tls_cert = "certs-dev/localhost.pem"
tls_key = "certs-dev/localhost-key.pem"

[idp]
public_url = "https://idp.bench.test/"
users_file = "demo/users.toml"
signing_key = "certs-dev/idp-signing-key.pem"
signing_cert = "certs-dev/idp-signing.pem"

[[app]]
name = "bench"
public_url = "https://app.bench.test/"
upstream = "http://127.0.0.1:9"
auth = "saml"
idp = "embedded"
sp_signing_key = "certs-dev/sp-signing-key.pem"
sp_signing_cert = "certs-dev/sp-signing.pem"
inject_template = "header-app"
[[app.inject]]
source = "attribute:firstName"
name = "X-Remote-First-Name"
[[app.inject]]
source = "session:amr"
name = "X-Auth-Method"
[[app.inject]]
source = "attribute:groups"
target = "cookie"
name = "roles"
encoding = "url"
"#;

/// Never asked for anything here: the plan has no identity JWT.
struct NoSp;

impl SamlSp for NoSp {
    fn metadata(&self) -> Result<String, String> {
        Err("unused".into())
    }
    fn authn_request(&self, _: &str) -> Result<AuthnRedirect, String> {
        Err("unused".into())
    }
    fn verify(&self, _: &str, _: Option<&str>) -> Result<Identity, AcsError> {
        Err(AcsError {
            kind: "unused",
            detail: String::new(),
        })
    }
    fn logout_request(
        &self,
        _: &str,
        _: Option<&str>,
        _: &str,
    ) -> Option<Result<AuthnRedirect, String>> {
        None
    }
    fn slo_message(&self, _: SloInput<'_>) -> Result<SloMessage, AcsError> {
        Err(AcsError {
            kind: "unused",
            detail: String::new(),
        })
    }
    fn logout_response(&self, _: &str, _: bool, _: Option<&str>) -> Option<Result<String, String>> {
        None
    }
    fn sign_identity(&self, _: &serde_json::Value) -> Result<String, String> {
        Err("unused".into())
    }
    fn jwks(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

fn request_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "app.bench.test"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126 Safari/537.36"),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("accept-language", "en-GB,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "pc_bench=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef; theme=dark; roles=spoofed"),
        ("x-remote-user", "mallory@evil.example"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    headers
}

fn identity(c: &mut Criterion) {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gateway.toml");
    let config = portcullis_config::parse(CONFIG, &base, &portcullis_config::NoMetadata)
        .expect("bench config");
    let auth = config.apps[0].auth.as_ref().expect("saml app");
    let plan = IdentityPlan::new(auth, "https://app.bench.test".into()).expect("plan");
    let store = SessionStore::default();
    let token = store.create(
        NewSession {
            app: "bench".into(),
            user: "bob@example.com".into(),
            attributes: vec![
                ("email".into(), vec!["bob@example.com".into()]),
                ("firstName".into(), vec!["Bob".into()]),
                ("lastName".into(), vec!["Baker".into()]),
                ("groups".into(), vec!["staff".into(), "support".into()]),
            ],
            session_index: Some("102abc".into()),
            authn_context: None,
            client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            idle: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        },
        Instant::now(),
    );
    let session = store.get("bench", &token, Instant::now()).expect("session");
    let headers = request_headers();

    let mut group = c.benchmark_group("identity");
    group.bench_function("copy_request_headers (baseline)", |b| {
        b.iter(|| std::hint::black_box(headers.clone()))
    });
    group.bench_function("strip_only_no_session", |b| {
        b.iter(|| {
            let mut h = headers.clone();
            plan.apply(None, &NoSp, &mut h).expect("apply");
            h
        })
    });
    group.bench_function("inject_five_values", |b| {
        b.iter(|| {
            let mut h = headers.clone();
            plan.apply(Some(&session), &NoSp, &mut h).expect("apply");
            h
        })
    });
    group.finish();
}

criterion_group!(benches, identity);
criterion_main!(benches);
