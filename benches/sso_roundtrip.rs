//! SSO round trips per second through the real binary, with the embedded
//! IdP, on this machine — the figure issue #4 asks for. Three phases against
//! one `portcullis run` process (release build, access log off):
//!
//! 1. password sign-ins at the IdP (argon2id dominates by design);
//! 2. baseline: proxied requests of users who hold a gateway session;
//! 3. SSO round trips of users who hold an IdP session but no gateway
//!    session: protected URL → signed AuthnRequest → IdP → signed Response
//!    → ACS (verification, session) → first proxied request.
//!
//! `cargo bench -p portcullis --bench sso_roundtrip`
//! Environment: DURATION (seconds per measured phase, default 10),
//! CONCURRENCY (virtual browsers, default 32), SIGN_INS (default 96),
//! WORKERS (gateway workers, default: all cores), SHARED=1 (the gateway in
//! `[cluster] mode = "shared"` on a redis-server the bench starts: every
//! session, one-time id and token in Redis).
//!
//! The load generator shares the machine with the gateway, so figures are
//! also given as a ratio to the baseline measured in the same run.

#[path = "../tests/e2e/process.rs"]
#[allow(dead_code)]
mod process;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use portcullis_saml::SigningKey;
use test_support::browser::{input_value, url_encode, Browser};

use process::Gateway;

const USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/users.toml");
const IDP: &str = "https://a.test";
const APP: &str = "https://b.test";
const PAGE: &str = "https://b.test/reports/q1?year=2026";
const SESSION_COOKIE: &str = "pc_b";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Phase {
    name: &'static str,
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[at.min(sorted.len() - 1)]
    }

    fn print(&self) {
        println!(
            "{:<34} {:>9.1}/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} in {:.1} s)",
            self.name,
            self.rate(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
            self.count,
            self.elapsed.as_secs_f64()
        );
    }
}

fn start_gateway(
    workers: u64,
    redis: Option<&test_support::RedisServer>,
) -> (Gateway, tempfile::TempDir) {
    let keys = tempfile::tempdir().expect("dir");
    let write = |name: &str, data: &[u8]| {
        let path = keys.path().join(name);
        std::fs::write(&path, data).expect("write");
        path.display().to_string()
    };
    let cluster = match redis {
        Some(redis) => format!(
            "[cluster]\nmode = \"shared\"\nnode_id = \"bench\"\nstore_key_file = \"{}\"\n\n[cluster.redis]\nurl = \"{}\"\n",
            write("store-keys", b"bench-store-key-0123456789abcdef0123456789abcdef\n"),
            redis.url()
        ),
        None => String::new(),
    };
    let idp_key = SigningKey::generate_self_signed("bench idp", 2).expect("idp key");
    let sp_key = SigningKey::generate_self_signed("bench sp", 2).expect("sp key");
    let idp_key_path = write("idp-key.pem", &idp_key.key_pem().expect("pem"));
    let idp_cert_path = write("idp.pem", &idp_key.cert_pem().expect("pem"));
    let sp_key_path = write("sp-key.pem", &sp_key.key_pem().expect("pem"));
    let sp_cert_path = write("sp.pem", &sp_key.cert_pem().expect("pem"));
    let gw = Gateway::start_with_text(|pki| {
        format!(
            "[server]
https = [\"127.0.0.1:0\"]
tls_cert = \"{cert}\"
tls_key = \"{key}\"
workers = {workers}
acs_per_minute = 1000000

[log]
format = \"json\"
level = \"info\"
access_log = false

{cluster}
[idp]
public_url = \"{IDP}/\"
users_file = \"{USERS}\"
system_log_file = \"system-log.jsonl\"
sign_in_per_minute = 100000
signing_key = \"{idp_key_path}\"
signing_cert = \"{idp_cert_path}\"

[[app]]
name = \"b\"
public_url = \"{APP}/\"
upstream = \"builtin:echo\"
auth = \"saml\"
idp = \"embedded\"
sp_signing_key = \"{sp_key_path}\"
sp_signing_cert = \"{sp_cert_path}\"
",
            cert = pki.cert_path().display(),
            key = pki.key_path().display(),
        )
    });
    (gw, keys)
}

/// One password sign-in at the IdP; the browser then holds an IdP session.
/// The password pool is bounded: a "Sign-in busy" 503 (more browsers than
/// argon2 slots) is tried again after its Retry-After, as a browser would.
async fn sign_in(b: &Browser) {
    let done = loop {
        let form = b
            .get(&format!("{IDP}/login?fromURI={}", url_encode("/")))
            .await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text());
        let csrf = input_value(&form.text(), "csrf").expect("csrf");
        let done = b
            .post_form(
                &format!("{IDP}/login"),
                &[
                    ("csrf", &csrf),
                    ("fromURI", "/"),
                    ("username", "bob"),
                    ("password", "bob-demo-pass"),
                ],
            )
            .await;
        if done.status != StatusCode::SERVICE_UNAVAILABLE {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert!(b.cookie("pc_idp_sid").is_some(), "no IdP session");
}

/// Protected URL → IdP → ACS → the page, for a browser with an IdP session
/// and no gateway session.
async fn round_trip(b: &Browser) {
    b.remove_cookie(SESSION_COOKIE);
    let start = b.get(PAGE).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text());
    let at_idp = b.get(&start.location()).await;
    let html = at_idp.text();
    assert_eq!(at_idp.status, StatusCode::OK, "{html}");
    let response = input_value(&html, "SAMLResponse").expect("SAMLResponse");
    let relay_state = input_value(&html, "RelayState").expect("RelayState");
    let acs = b
        .post_form(
            &format!("{APP}/_portcullis/saml/acs"),
            &[("SAMLResponse", &response), ("RelayState", &relay_state)],
        )
        .await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let page = b.get(&format!("{APP}{}", acs.location())).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
}

async fn proxied(b: &Browser) {
    let page = b.get(PAGE).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
}

/// Runs `step` on every browser in a loop for `duration`.
async fn timed<F, Fut>(
    name: &'static str,
    browsers: &[Arc<Browser>],
    duration: Duration,
    step: F,
) -> Phase
where
    F: Fn(Arc<Browser>) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = browsers
        .iter()
        .cloned()
        .map(|b| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    step(b.clone()).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("load task"));
    }
    Phase {
        name,
        count: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    }
}

fn main() {
    let duration = Duration::from_secs(env_number("DURATION", 10));
    let concurrency = env_number("CONCURRENCY", 32).max(1) as usize;
    let sign_ins = env_number("SIGN_INS", 96).max(1) as usize;
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as u64;
    let workers = env_number("WORKERS", cores);
    let shared = env_number("SHARED", 0) == 1;
    let redis = shared.then(test_support::RedisServer::start);
    let (gw, _keys) = start_gateway(workers, redis.as_ref());
    // The load generator gets its own threads; the gateway's workers and
    // the generator share the machine's cores.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores as usize)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let browsers: Vec<Arc<Browser>> =
            (0..concurrency).map(|_| Arc::new(gw.browser())).collect();

        // 1. Password sign-ins: fresh browsers, `concurrency` at a time.
        let started = Instant::now();
        let mut latencies = Vec::new();
        for chunk in (0..sign_ins).collect::<Vec<_>>().chunks(concurrency) {
            let tasks: Vec<_> = chunk
                .iter()
                .map(|_| {
                    let b = gw.browser();
                    tokio::spawn(async move {
                        let t = Instant::now();
                        sign_in(&b).await;
                        t.elapsed()
                    })
                })
                .collect();
            for task in tasks {
                latencies.push(task.await.expect("sign-in task"));
            }
        }
        let password = Phase {
            name: "password sign-ins (argon2id)",
            count: latencies.len(),
            elapsed: started.elapsed(),
            latencies,
        };
        for b in &browsers {
            sign_in(b).await;
            round_trip(b).await; // warm connections and a gateway session
        }

        // 2. Baseline, then 3. round trips.
        let baseline = timed(
            "proxied requests (baseline)",
            &browsers,
            duration,
            |b| async move { proxied(&b).await },
        )
        .await;
        let sso = timed(
            "SSO round trips (IdP session held)",
            &browsers,
            duration,
            |b| async move { round_trip(&b).await },
        )
        .await;

        println!(
            "\nPortcullis SSO benchmark: {workers} gateway workers, {concurrency} browsers, \
             {} cores shared with the load generator, sessions {}\n",
            cores,
            if shared {
                "in Redis ([cluster] mode = \"shared\", redis-server on loopback)"
            } else {
                "in memory"
            }
        );
        password.print();
        baseline.print();
        sso.print();
        println!(
            "\nround trip / proxied request throughput: {:.3}  (one round trip = 5 HTTP \
             exchanges, 2 RSA signatures made and 2 checked)",
            sso.rate() / baseline.rate()
        );
        let met = |target: f64| {
            if sso.rate() >= target {
                "met"
            } else {
                "NOT met"
            }
        };
        println!(
            "targets on 2 cores: ≥ 500 round trips/s (issue 4) {}, ≥ 900/s (issue 16) {}",
            met(500.0),
            met(900.0)
        );
    });
}
