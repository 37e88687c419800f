//! `[cluster] mode = "shared"` with real processes: two Portcullis nodes
//! on one real Redis (started by the test on a free port). A session made
//! on one node is served by the other, a revocation through one node's
//! Sessions API ends it on both, a restarted node keeps every session, and
//! a Redis outage flips readiness and fails closed without a restart.
//! Behind Redis Sentinel, a node follows a master failover on its own.

use std::time::{Duration, Instant};

use http::StatusCode;
use http_body_util::BodyExt as _;
use test_support::browser::Browser;
use test_support::redis_sentinel::MASTER_NAME;
use test_support::{Backend, Client, RedisClusterSet, RedisSentinelSet, RedisServer};

use crate::gateway_sso::{
    self, closes_within, get_json, open_websocket, post_acs, revoke_bob_sessions, sso,
};
use crate::process::{admin_get, Gateway, WITH_ADMIN};

const IDP: &str = "https://a.test";
const B: &str = "https://b.test";
const C: &str = "https://c.test";
const B_ACS: &str = "https://b.test/_portcullis/saml/acs";
const D: &str = "https://app.test";
const D_ACS: &str = "https://app.test/_portcullis/saml/acs";
const DEADLINE: Duration = Duration::from_secs(15);

struct Cluster {
    a: gateway_sso::Fixture,
    b: Gateway,
    _keys: tempfile::TempDir,
}

/// `[cluster]` for node `node` on `redis`, with the store key in `dir`.
fn cluster_keys(dir: &std::path::Path, redis: &RedisServer, node: &str) -> String {
    cluster_on(dir, &format!("url = \"{}\"", redis.url()), node)
}

/// `[cluster]` for node `node` on the Redis `endpoints` (the `url`,
/// `sentinel` or `cluster_nodes` line of `[cluster.redis]`).
fn cluster_on(dir: &std::path::Path, endpoints: &str, node: &str) -> String {
    let keys = dir.join("store-keys");
    std::fs::write(&keys, "e2e-store-key-0123456789abcdef0123456789abcdef\n").expect("keys");
    format!(
        "{WITH_ADMIN}\n\n[cluster]\nmode = \"shared\"\nnode_id = \"{node}\"\nstore_key_file = \"{}\"\n\n\
         [cluster.redis]\n{endpoints}\nkey_prefix = \"e2e:\"\ncommand_timeout = \"300ms\"\nconnect_timeout = \"300ms\"\n",
        keys.display(),
    )
}

/// Node a (the gateway_sso fixture: embedded IdP on a.test, apps b.test
/// and c.test) and node b: the same file but for its node id.
fn start(redis: &RedisServer, extra_apps: &[(&str, &str, &str, &str)]) -> Cluster {
    start_on(&format!("url = \"{}\"", redis.url()), extra_apps)
}

/// The same two nodes on the Redis `endpoints` (a `[cluster.redis]` line).
fn start_on(endpoints: &str, extra_apps: &[(&str, &str, &str, &str)]) -> Cluster {
    let keys = tempfile::tempdir().expect("dir");
    let a = gateway_sso::start_with(&cluster_on(keys.path(), endpoints, "gw-a"), extra_apps);
    let text = std::fs::read_to_string(&a.gw.config).expect("node a's config");
    let text = text.replace("node_id = \"gw-a\"", "node_id = \"gw-b\"");
    // Relative paths (the System Log) resolved against node a's directory:
    // node b writes its own.
    let b = Gateway::start_with_text(|_| text);
    Cluster { a, b, _keys: keys }
}

impl Cluster {
    /// A browser on node b holding `browser`'s cookies (b serves the same
    /// certificate as a, so a's CA is the one to trust).
    fn on_b(&self, browser: &Browser) -> Browser {
        browser.replayed_through(Client::http1(&self.a.gw.pki, self.b.https))
    }
}

async fn signed_in_on_a(cluster: &Cluster) -> Browser {
    let browser = cluster.a.gw.browser();
    let posted = sso(&browser, "pc_b_rs", &format!("{B}/page"), B_ACS).await;
    let landed = post_acs(&browser, B_ACS, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    assert!(browser.cookie("pc_b").is_some());
    browser
}

/// Commands Redis has run, but for the probes and connection set-up.
fn session_ops(redis: &RedisServer) -> u64 {
    redis
        .command("INFO commandstats")
        .lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter(|line| {
            ![
                "ping:",
                "info:",
                "hello:",
                "client|",
                "subscribe:",
                "command|",
            ]
            .iter()
            .any(|skip| line.starts_with(skip))
        })
        .filter_map(|line| {
            let calls = line.split_once("calls=")?.1;
            calls.split(',').next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Posts `login`'s credentials on a sign-in form `b` opens itself.
async fn sign_in(b: &Browser, login: &str, password: &str) -> test_support::client::Reply {
    sign_in_from(b, login, password, "/").await
}

async fn sign_in_from(
    b: &Browser,
    login: &str,
    password: &str,
    from: &str,
) -> test_support::client::Reply {
    let csrf = gateway_sso::sign_in_form(b, from).await;
    b.post_form(
        &format!("{IDP}/login"),
        &[
            ("csrf", csrf.as_str()),
            ("fromURI", from),
            ("username", login),
            ("password", password),
        ],
    )
    .await
}

/// An IdP API call with the admin token.
async fn idp_api(b: &Browser, method: http::Method, path: &str) -> test_support::client::Reply {
    b.send(
        http::Request::builder()
            .method(method)
            .uri(format!("{IDP}{path}"))
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::AUTHORIZATION,
                format!("SSWS {}", gateway_sso::ADMIN_TOKEN),
            )
            .body(Client::empty())
            .expect("request"),
    )
    .await
}

/// The Users API's status for `id` (`LOCKED_OUT` while a lock runs).
async fn user_status(b: &Browser, id: &str) -> String {
    let reply = idp_api(b, http::Method::GET, &format!("/api/v1/users/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let user: serde_json::Value = serde_json::from_str(&reply.text()).expect("user JSON");
    user["status"].as_str().expect("status").to_owned()
}

async fn readyz(gateway: &Gateway) -> (u16, String) {
    admin_get(gateway.admin_addr(), "/readyz")
        .await
        .expect("admin listener answers")
}

async fn wait_ready(gateway: &Gateway, status: u16) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (now, body) = readyz(gateway).await;
        if now == status {
            return body;
        }
        assert!(Instant::now() < deadline, "readyz stayed {now}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shared_sessions_are_served_by_every_node_and_revoked_on_all_of_them() {
    let redis = RedisServer::start();
    let backend = Backend::start().await;
    let cluster = start(&redis, &[("d", D, &backend.url(), "")]);
    wait_ready(&cluster.a.gw, 200).await;
    wait_ready(&cluster.b, 200).await;

    // Signed in through node a; node b serves the same cookie.
    let on_a = signed_in_on_a(&cluster).await;
    let on_b = cluster.on_b(&on_a);
    let page = get_json(&on_b, &format!("{B}/page")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_eq!(page.echoed("x-portcullis-user"), ["bob@example.com"]);

    // The IdP session is shared too: app c signs in on node b without a
    // password.
    let start_c = on_b.get(&format!("{C}/")).await;
    assert_eq!(start_c.status, StatusCode::SEE_OTHER, "{}", start_c.text());
    let at_idp = on_b.get(&start_c.location()).await;
    assert_eq!(
        at_idp.status,
        StatusCode::OK,
        "node b knows node a's IdP session: {}",
        at_idp.text()
    );
    assert!(at_idp.text().contains("SAMLResponse"));

    // A sign-in form served by node a is accepted when posted to node b
    // (no stickiness needed): the CSRF key is the cluster's.
    let fresh = cluster.a.gw.browser();
    let csrf = gateway_sso::sign_in_form(&fresh, "/").await;
    gateway_sso::post_sign_in_bob(&cluster.on_b(&fresh), &csrf, "/").await;

    // Wrong passwords spread over both nodes lock the account on both:
    // the count lives in Redis, not in each node's memory.
    let guessers = [
        cluster.a.gw.browser(),
        cluster.on_b(&cluster.a.gw.browser()),
    ];
    for attempt in 0..5 {
        let refused = sign_in(&guessers[attempt % 2], "alice", "not-her-password").await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{}",
            refused.text()
        );
    }
    let on_a_browser = cluster.a.gw.browser();
    let on_b_browser = cluster.on_b(&cluster.a.gw.browser());
    assert_eq!(user_status(&on_a_browser, "00u1alice").await, "LOCKED_OUT");
    let right = sign_in(&on_b_browser, "alice", "alice-demo-pass").await;
    assert_eq!(
        right.status,
        StatusCode::UNAUTHORIZED,
        "the right password on the other node is refused while locked: {}",
        right.text()
    );
    // Lifted on node b, lifted everywhere.
    let unlock = idp_api(
        &on_b_browser,
        http::Method::POST,
        "/api/v1/users/00u1alice/lifecycle/unlock",
    )
    .await;
    assert_eq!(unlock.status, StatusCode::OK, "{}", unlock.text());
    assert_eq!(user_status(&on_a_browser, "00u1alice").await, "ACTIVE");
    let after = sign_in(&on_a_browser, "alice", "alice-demo-pass").await;
    assert_eq!(
        after.status,
        StatusCode::SEE_OTHER,
        "after the unlock her password works on node a: {}",
        after.text()
    );

    // An admin console session made on node a is served by node b as it
    // is: no second session, no new cookie.
    let admin = cluster.a.gw.browser();
    let signed_in = sign_in_from(&admin, "alice", "alice-demo-pass", "/admin/sessions").await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text()
    );
    let step_up = admin.get(&format!("{IDP}/admin/sessions")).await;
    assert!(
        step_up.location().starts_with("/login/mfa?"),
        "{}",
        step_up.location()
    );
    let form = admin.get(&format!("{IDP}{}", step_up.location())).await;
    let csrf = test_support::browser::input_value(&form.text(), "csrf").expect("csrf");
    let mut codes = crate::console::Codes::alice();
    crate::console::post_code(&admin, &csrf, "/admin/sessions", true, &mut codes).await;
    let entered = admin.get(&format!("{IDP}/admin/sessions")).await;
    assert!(
        test_support::browser::set_cookie(&entered, "pc_idp_admin").is_some(),
        "{}",
        entered.text()
    );
    let console_on_b = cluster
        .on_b(&admin)
        .get(&format!("{IDP}/admin/sessions"))
        .await;
    assert_eq!(
        console_on_b.status,
        StatusCode::OK,
        "{}",
        console_on_b.text()
    );
    assert!(console_on_b.text().contains("id=\"admin-user\">alice<"));
    assert!(
        test_support::browser::set_cookie(&console_on_b, "pc_idp_admin").is_none(),
        "node b started an admin session of its own"
    );

    // Nothing in Redis reads as bob's session or cookie.
    let dump = redis.command("KEYS {e2e:}*");
    assert!(dump.contains("gw:s:"), "{dump}");
    let cookie = on_a.cookie("pc_b").expect("cookie");
    let mut everything = dump.clone();
    for key in dump.lines().filter(|l| l.starts_with("{e2e:}")) {
        everything.push_str(&redis.command(&format!("HGETALL {key}")));
    }
    assert!(!everything.contains(&cookie), "{everything}");
    assert!(!everything.contains("bob@example.com"), "{everything}");

    // What a session costs in Redis, and what a proxied request costs.
    let bytes = |pattern: &str| -> u64 {
        dump.lines()
            .filter(|l| l.contains(pattern))
            .map(|key| {
                let reply = redis.command(&format!("MEMORY USAGE {key}"));
                reply
                    .trim()
                    .trim_start_matches(':')
                    .parse::<u64>()
                    .unwrap_or(0)
            })
            .sum()
    };
    eprintln!(
        "cluster: Redis bytes per session (MEMORY USAGE): gateway record {} + id {}, IdP record {} + id {}",
        bytes("gw:s:"),
        bytes("gw:id:"),
        bytes("idp:s:"),
        bytes("idp:id:")
    );
    let before = session_ops(&redis);
    const REQUESTS: u64 = 50;
    for _ in 0..REQUESTS {
        let page = get_json(&on_b, &format!("{B}/page")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    }
    let ops = session_ops(&redis) - before;
    eprintln!("cluster: {ops} Redis commands for {REQUESTS} proxied requests on one node");
    assert!(
        ops < REQUESTS,
        "the node cache should spare most round trips: {ops} commands for {REQUESTS} requests"
    );

    // The cookie carries a MAC under the store keys: a tampered,
    // truncated, forged or foreign value is no session (sign-in), refused
    // before it costs Redis anything.
    let (secret_part, tag) = cookie.split_once('.').expect("secret.tag");
    assert_eq!(secret_part.len(), 43, "{cookie}");
    let forged_secret = format!(
        "{}{}",
        &secret_part[..42],
        if secret_part.ends_with('A') { "B" } else { "A" }
    );
    let before_bad = session_ops(&redis);
    for bad in [
        format!("{}x", &cookie[..42]),
        cookie[..20].to_owned(),
        "A".repeat(43),
        secret_part.to_owned(),
        format!("{forged_secret}.{tag}"),
        format!("{secret_part}.{}", "A".repeat(tag.len())),
    ] {
        let stranger = cluster.on_b(&on_a);
        stranger.set_cookie("pc_b", &bad);
        let reply = stranger.get(&format!("{B}/page")).await;
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "{bad}: {}",
            reply.text()
        );
        assert!(reply.location().starts_with(&format!("{IDP}/sso/saml")));
    }
    let spent = session_ops(&redis) - before_bad;
    assert!(spent <= 3, "forged cookies cost Redis {spent} commands");

    // A WebSocket held open on node a, in bob's session of app d.
    let posted = sso(&on_a, "pc_d_rs", &format!("{D}/page"), D_ACS).await;
    let landed = post_acs(&on_a, D_ACS, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    let d_session = on_a.cookie("pc_d").expect("d session");
    // And a long download through node a in the same session.
    let download = on_a
        .client()
        .send_streaming(
            http::Request::get(format!("{D}/source?bytes={}", 64u64 << 30))
                .header(http::header::COOKIE, format!("pc_d={d_session}"))
                .body(Client::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(download.status(), StatusCode::OK);
    let mut download = download.into_body();
    let mut received = 0usize;
    while received < 1 << 20 {
        let frame = download.frame().await.expect("streaming").expect("frame");
        received += frame.data_ref().map_or(0, |d| d.len());
    }
    let mut ws = open_websocket(
        &on_a,
        "app.test",
        "wss://app.test/ws",
        &format!("pc_d={d_session}"),
    )
    .await;

    // Revoked through node b's Sessions API; node a refuses at once.
    let revoked = revoke_bob_sessions(&on_b).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());
    let revoked_at = Instant::now();
    loop {
        let page = get_json(&on_a, &format!("{B}/page")).await;
        if page.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(
            revoked_at.elapsed() < DEADLINE,
            "node a still serves a session revoked on node b"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "cluster: revoked on node b, refused on node a after {:?}",
        revoked_at.elapsed()
    );
    // And node a closed the tunnel it held for that session.
    let closed = closes_within(&mut ws, DEADLINE).await;
    assert!(
        closed,
        "the WebSocket on node a outlived a revocation on node b"
    );
    eprintln!(
        "cluster: node a closed the WebSocket {:?} after the revocation on node b",
        revoked_at.elapsed()
    );
    // The download ends early instead of running on for 64 GiB.
    let cut = tokio::time::timeout(DEADLINE, async {
        loop {
            match download.frame().await {
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return,
            }
        }
    })
    .await;
    assert!(
        cut.is_ok(),
        "node a's download outlived a revocation on node b"
    );
}

#[tokio::test]
async fn a_restarted_node_keeps_its_sessions_and_an_outage_fails_closed() {
    // Persisted to disk, so Redis coming back holds what it acknowledged.
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut cluster = start(&redis, &[]);
    wait_ready(&cluster.a.gw, 200).await;
    let on_a = signed_in_on_a(&cluster).await;

    cluster.a.gw.restart();
    wait_ready(&cluster.a.gw, 200).await;
    let on_a = on_a.replayed_through(Client::http1(&cluster.a.gw.pki, cluster.a.gw.https));
    let page = get_json(&on_a, &format!("{B}/page")).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "survived the restart: {}",
        page.text()
    );

    // Load keeps running through the outage and the recovery: every answer
    // is the page or a 503, never a sign-in redirect or another error.
    let load_on = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let loaders: Vec<_> = (0..4)
        .map(|_| {
            let browser =
                on_a.replayed_through(Client::http1(&cluster.a.gw.pki, cluster.a.gw.https));
            let load_on = load_on.clone();
            tokio::spawn(async move {
                let mut seen = std::collections::BTreeMap::<u16, usize>::new();
                while load_on.load(std::sync::atomic::Ordering::Relaxed) {
                    let page = get_json(&browser, &format!("{B}/page")).await;
                    *seen.entry(page.status.as_u16()).or_default() += 1;
                }
                seen
            })
        })
        .collect();

    // Redis goes away: not ready (alive), signed-in users get a 503, never
    // a sign-in page, and new sign-ins fail closed.
    redis.stop();
    let body = wait_ready(&cluster.a.gw, 503).await;
    assert!(body.contains("session store unreachable"), "{body}");
    let (health, _) = admin_get(cluster.a.gw.admin_addr(), "/healthz")
        .await
        .expect("healthz");
    assert_eq!(health, 200);
    let (_, metrics) = admin_get(cluster.a.gw.admin_addr(), "/metrics")
        .await
        .expect("metrics");
    assert!(
        metrics.contains("portcullis_session_store_up 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_session_store_transitions_total{to=\"down\"} 1"),
        "{metrics}"
    );
    let page = get_json(&on_a, &format!("{B}/page")).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.text()
    );
    assert_eq!(page.json()["errorCode"], "session_store_unavailable");
    let newcomer = cluster.a.gw.browser();
    let html = newcomer.get(&format!("{B}/page")).await;
    assert_ne!(html.status, StatusCode::OK);
    assert!(html.status.is_server_error() || html.status == StatusCode::SEE_OTHER);

    // Back without restarting Portcullis: ready again, the session intact.
    redis.restart();
    wait_ready(&cluster.a.gw, 200).await;
    let page = get_json(&on_a, &format!("{B}/page")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    load_on.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    for loader in loaders {
        for (status, n) in tokio::time::timeout(DEADLINE, loader)
            .await
            .expect("load stopped")
            .expect("load task")
        {
            *seen.entry(status).or_default() += n;
        }
    }
    eprintln!("cluster: answers under load through the Redis outage: {seen:?}");
    assert!(
        seen.keys().all(|s| *s == 200 || *s == 503),
        "only the page or a 503: {seen:?}"
    );
    assert!(
        seen.get(&503).is_some_and(|n| *n > 0),
        "the outage was seen: {seen:?}"
    );
    assert!(seen.get(&200).is_some_and(|n| *n > 0), "{seen:?}");
    assert!(cluster
        .a
        .gw
        .wait_for_log("session store unreachable", Duration::from_secs(1))
        .is_some());
    assert!(cluster
        .a
        .gw
        .wait_for_log("session store reachable", Duration::from_secs(1))
        .is_some());
    drop(cluster.b);
}

#[tokio::test]
async fn a_node_started_while_redis_is_down_starts_not_ready() {
    let mut redis = RedisServer::start();
    redis.stop();
    let keys = tempfile::tempdir().expect("dir");
    let node = gateway_sso::start_with(&cluster_keys(keys.path(), &redis, "gw-a"), &[]);
    let (status, body) = readyz(&node.gw).await;
    assert_eq!(status, 503, "{body}");
    redis.restart();
    wait_ready(&node.gw, 200).await;
    let browser = node.gw.browser();
    let posted = sso(&browser, "pc_b_rs", &format!("{B}/page"), B_ACS).await;
    let landed = post_acs(&browser, B_ACS, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
}

#[tokio::test]
async fn behind_sentinel_a_master_failover_is_followed_without_a_restart() {
    let mut set = RedisSentinelSet::start(1);
    let nodes = set
        .sentinel_urls()
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let keys = tempfile::tempdir().expect("dir");
    let sentinel = format!("sentinel = {{ master = \"{MASTER_NAME}\", nodes = [{nodes}] }}");
    let node = gateway_sso::start_with(&cluster_on(keys.path(), &sentinel, "gw-a"), &[]);
    wait_ready(&node.gw, 200).await;
    let browser = node.gw.browser();
    let posted = sso(&browser, "pc_b_rs", &format!("{B}/page"), B_ACS).await;
    let landed = post_acs(&browser, B_ACS, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    set.wait_replicated();

    let killed = Instant::now();
    set.kill_master();
    let body = wait_ready(&node.gw, 503).await;
    assert!(body.contains("session store unreachable"), "{body}");
    let promoted = set.wait_failover(killed, Duration::from_secs(30));
    wait_ready(&node.gw, 200).await;
    eprintln!(
        "sentinel failover: replica promoted after {promoted:?}, node ready again after {:?}",
        killed.elapsed()
    );

    let page = get_json(&browser, &format!("{B}/page")).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the session made before the failover: {}",
        page.text()
    );
    let fresh = node.gw.browser();
    let posted = sso(&fresh, "pc_b_rs", &format!("{B}/page"), B_ACS).await;
    let landed = post_acs(&fresh, B_ACS, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(
        landed.status,
        StatusCode::SEE_OTHER,
        "sign-ins work on the new master: {}",
        landed.text()
    );
}

#[tokio::test]
async fn on_redis_cluster_a_session_from_one_node_is_served_by_the_other() {
    let set = RedisClusterSet::start(3, 0);
    let nodes = set
        .urls()
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let cluster = start_on(&format!("cluster_nodes = [{nodes}]"), &[]);
    wait_ready(&cluster.a.gw, 200).await;
    wait_ready(&cluster.b, 200).await;
    let on_a = signed_in_on_a(&cluster).await;
    let page = get_json(&cluster.on_b(&on_a), &format!("{B}/page")).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "node b serves it: {}",
        page.text()
    );
    assert_eq!(page.echoed("x-portcullis-user"), ["bob@example.com"]);
}
