//! The per-request identity step (`IdentityPlan::apply`) with the header-app
//! template plus two more headers and a cookie — five injected values in
//! all, as issue 5's benchmark asks — next to two baselines from the same
//! run: the strip-only pass of a request without a session, and copying the
//! request's header map (what any proxy does once per request anyway).
//!
//! Run: `cargo bench -p portcullis-gateway --bench identity`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use portcullis_gateway::{GatewaySession, IdentityPlan, Session};
use portcullis_session::{Lifetime, SessionId};

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
    // The plan has no identity JWT, so nothing ever asks for a signer.
    let plan = IdentityPlan::new(auth, "https://app.bench.test".into(), || {
        unreachable!("no identity JWT configured")
    })
    .expect("plan");
    let session = Session::new(
        SessionId::generate(),
        GatewaySession::new(
            "bench",
            "bob@example.com".into(),
            vec![
                ("email".into(), vec!["bob@example.com".into()]),
                ("firstName".into(), vec!["Bob".into()]),
                ("lastName".into(), vec!["Baker".into()]),
                ("groups".into(), vec!["staff".into(), "support".into()]),
            ],
            Some("102abc".into()),
            None,
            portcullis_context::ContextSource::default().capture([127, 0, 0, 1].into(), None),
        ),
        Lifetime::new(Duration::from_secs(3600), Some(Duration::from_secs(3600))),
        time::OffsetDateTime::now_utc(),
    );
    let headers = request_headers();

    let mut group = c.benchmark_group("identity");
    group.bench_function("copy_request_headers (baseline)", |b| {
        b.iter(|| std::hint::black_box(headers.clone()))
    });
    group.bench_function("strip_only_no_session", |b| {
        b.iter(|| {
            let mut h = headers.clone();
            plan.apply(None, &mut h).expect("apply");
            h
        })
    });
    group.bench_function("inject_five_values", |b| {
        b.iter(|| {
            let mut h = headers.clone();
            plan.apply(Some(&session), &mut h).expect("apply");
            h
        })
    });
    group.finish();
}

criterion_group!(benches, identity);
criterion_main!(benches);
