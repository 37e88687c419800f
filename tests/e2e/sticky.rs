//! `[cluster] mode = "sticky"` behind a real HAProxy pinning by the route
//! cookie: sign-ins stay on one node, a revocation made on one node
//! reaches the app sessions on the other over the HTTP revocation
//! endpoint, and when a browser's node dies the next node sends it through
//! SSO (to the sign-in page) instead of showing an error.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use test_support::browser::Browser;
use test_support::Client;

use crate::gateway_sso::{self, get_json, post_acs, revoke_bob_sessions, sso};
use crate::process::{admin_get, Gateway, PKI_CA, WITH_ADMIN};

const B: &str = "https://b.test";
const B_ACS: &str = "https://b.test/_portcullis/saml/acs";
const IDP: &str = "https://a.test";
const DEADLINE: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Haproxy {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How HAProxy pins a browser by `portcullis_route`.
#[derive(Clone, Copy)]
enum Pinning {
    /// HAProxy inserts the cookie itself (value = server name).
    Insert,
    /// HAProxy prefixes the cookie the node sets (`gw-a~gw-a`) and strips
    /// the prefix on the way in.
    Prefix,
}

/// HAProxy terminating TLS with the nodes' certificate and pinning by
/// `portcullis_route`, health checking each node's `/readyz`.
fn haproxy(
    pki: &test_support::Pki,
    nodes: &[(&str, SocketAddr, SocketAddr)],
    pinning: Pinning,
) -> Haproxy {
    let dir = tempfile::tempdir().expect("dir");
    let pem = dir.path().join("public.pem");
    let mut combined = std::fs::read(pki.cert_path()).expect("cert");
    combined.extend(std::fs::read(pki.key_path()).expect("key"));
    std::fs::write(&pem, combined).expect("pem");
    let port = free_port();
    let servers: String = nodes
        .iter()
        .map(|(id, https, admin)| {
            format!(
                "    server {id} {https} ssl verify required ca-file {ca} cookie {id} check port {} inter 200ms fall 1 rise 1 check-ssl no-check-ssl\n",
                admin.port(),
                ca = pki.dir().join("ca.pem").display(),
            )
        })
        .collect();
    let config = format!(
        "global\n    maxconn 200\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    retries 2\n    option redispatch\n\n\
         frontend public\n    bind 127.0.0.1:{port} ssl crt {pem}\n    option forwardfor\n    default_backend nodes\n\n\
         backend nodes\n    balance roundrobin\n    cookie portcullis_route {mode}\n    option httpchk GET /readyz\n{servers}",
        pem = pem.display(),
        mode = match pinning {
            Pinning::Insert => "insert indirect nocache",
            Pinning::Prefix => "prefix nocache",
        },
    );
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, config).expect("cfg");
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy runs (make test installs it)");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = Instant::now() + DEADLINE;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Haproxy {
        child,
        addr,
        _dir: dir,
    }
}

struct Sticky {
    a: gateway_sso::Fixture,
    b: Gateway,
    lb: Haproxy,
}

fn start(pinning: Pinning) -> Sticky {
    let port_b = free_port();
    let extra = |node: &str, peer: u16, ca: &str| {
        format!(
            "{WITH_ADMIN}\n\n[cluster]\nmode = \"sticky\"\nnode_id = \"{node}\"\npeers = [\"https://127.0.0.1:{peer}\"]\npeer_ca = \"{ca}\"\n"
        )
    };
    // Node a's peer is b's port, chosen now; b's is a's, known once a runs.
    let a = gateway_sso::start_with(&extra("gw-a", port_b, PKI_CA), &[]);
    let text = std::fs::read_to_string(&a.gw.config).expect("node a's config");
    let text = text
        .replace("node_id = \"gw-a\"", "node_id = \"gw-b\"")
        .replace(
            &format!("peers = [\"https://127.0.0.1:{port_b}\"]"),
            &format!("peers = [\"https://127.0.0.1:{}\"]", a.gw.https.port()),
        )
        .replace(
            "https = [\"127.0.0.1:0\"]",
            &format!("https = [\"127.0.0.1:{port_b}\"]"),
        );
    let b = Gateway::start_with_text(|_| text);
    let lb = haproxy(
        &a.gw.pki,
        &[
            ("gw-a", a.gw.https, a.gw.admin_addr()),
            ("gw-b", b.https, b.admin_addr()),
        ],
        pinning,
    );
    Sticky { a, b, lb }
}

impl Sticky {
    /// A browser talking to the balancer only, pinned to `node` if given.
    fn browser(&self, node: Option<&str>) -> Browser {
        let browser = Browser::new(Client::http1(&self.a.gw.pki, self.lb.addr));
        if let Some(node) = node {
            browser.set_cookie("portcullis_route", node);
        }
        browser
    }
}

/// Retries `GET url` (as an API client with `json`) until it answers
/// `want`. Until HAProxy's health check sees the dead node down, only its
/// own 503 or 502 may come back, or a connection it closes mid-exchange.
async fn once_rerouted(browser: &Browser, url: &str, json: bool, want: StatusCode) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut request = http::Request::get(url);
        if json {
            request = request.header(http::header::ACCEPT, "application/json");
        }
        let request = request.body(Client::empty()).expect("request");
        let reply = match browser.try_send(request).await {
            Ok(reply) => reply,
            Err(e) => {
                assert!(Instant::now() < deadline, "never {want}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if reply.status == want {
            return;
        }
        assert!(
            reply.status == StatusCode::SERVICE_UNAVAILABLE
                || reply.status == StatusCode::BAD_GATEWAY,
            "{}: {}",
            reply.status,
            reply.text()
        );
        assert!(Instant::now() < deadline, "never {want} from the node left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn signed_in(browser: &Browser) {
    let posted = sso(browser, "pc_b_rs", &format!("{B}/page"), B_ACS).await;
    let landed = post_acs(browser, B_ACS, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    let page = get_json(browser, &format!("{B}/page")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
}

#[tokio::test]
async fn sticky_nodes_pin_forward_revocations_and_fail_over_through_sso() {
    let cluster = start(Pinning::Insert);
    for node in [&cluster.a.gw, &cluster.b] {
        let (status, body) = admin_get(node.admin_addr(), "/readyz")
            .await
            .expect("readyz");
        assert_eq!(status, 200, "{body}");
    }

    // Through the balancer, each browser stays on the node it was given:
    // its IdP session and app session are made there.
    let on_a = cluster.browser(Some("gw-a"));
    signed_in(&on_a).await;
    let on_b = cluster.browser(Some("gw-b"));
    signed_in(&on_b).await;
    // Logs arrive through a pipe: wait for them rather than read once.
    for node in [&cluster.a.gw, &cluster.b] {
        assert!(
            node.wait_for_log("gateway session started", DEADLINE)
                .is_some(),
            "{:?}",
            node.logs()
        );
    }
    // Session cookies (the app's and the IdP's) name the node that holds
    // them.
    for (browser, node) in [(&on_a, ".gw-a"), (&on_b, ".gw-b")] {
        for name in ["pc_b", "pc_idp_sid"] {
            let value = browser.cookie(name).unwrap_or_default();
            assert!(value.ends_with(node), "{name}={value}");
        }
    }
    // The node sets the route cookie itself too (for `prefix` balancers
    // and nginx `hash`); HAProxy's `insert` replaces it with its own.
    let direct = Browser::new(Client::http1(&cluster.a.gw.pki, cluster.a.gw.https));
    let reply = direct.get(&format!("{B}/page")).await;
    let route =
        test_support::browser::set_cookie(&reply, "portcullis_route").expect("route cookie");
    assert_eq!(route.value, "gw-a");
    assert!(route.has("Secure") && route.has("HttpOnly"), "{route:?}");

    // Revoked through node a's Sessions API: node b's app session ends too,
    // delivered over b's /_portcullis/global-token-revocation.
    let revoked = revoke_bob_sessions(&on_a).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());
    let deadline = Instant::now() + DEADLINE;
    loop {
        let page = get_json(&on_b, &format!("{B}/page")).await;
        if page.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(
            Instant::now() < deadline,
            "node b kept a session revoked on node a"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cluster
        .b
        .wait_for_log("global token revocation accepted", Duration::from_secs(5))
        .is_some());
    // Node b's own IdP session of bob ended too: the browser is not signed
    // in again silently there, it is asked to sign in.
    loop {
        let reply = on_b.get(&format!("{B}/page")).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        let at_idp = on_b.get(&reply.location()).await;
        if at_idp.status == StatusCode::SEE_OTHER && at_idp.location().starts_with("/login") {
            break;
        }
        assert_eq!(at_idp.status, StatusCode::OK, "{}", at_idp.text());
        assert!(
            Instant::now() < deadline,
            "node b's IdP still signs bob in silently"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Node a dies. Its browser's next page goes to node b, which does not
    // know the session: SSO, then b's sign-in page — never an error page.
    let again = cluster.browser(Some("gw-a"));
    signed_in(&again).await;
    let mut a = cluster.a;
    a.gw.signal("KILL");
    a.gw.wait_exit(DEADLINE);
    // An API client of the dead node's session gets a 401 from node b.
    once_rerouted(&again, &format!("{B}/page"), true, StatusCode::UNAUTHORIZED).await;
    let deadline = Instant::now() + DEADLINE;
    let reply = loop {
        let reply = again.get(&format!("{B}/page")).await;
        if reply.status == StatusCode::SEE_OTHER || Instant::now() > deadline {
            break reply;
        }
        assert!(
            !reply.status.is_server_error() || reply.status == StatusCode::SERVICE_UNAVAILABLE,
            "{}: {}",
            reply.status,
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    let to_idp = reply.location();
    assert!(to_idp.starts_with(&format!("{IDP}/sso/saml")), "{to_idp}");
    let at_idp = again.get(&to_idp).await;
    assert_eq!(at_idp.status, StatusCode::SEE_OTHER, "{}", at_idp.text());
    assert!(
        at_idp.location().starts_with("/login"),
        "{}",
        at_idp.location()
    );
    let login = again.get(&format!("{IDP}{}", at_idp.location())).await;
    assert_eq!(
        login.status,
        StatusCode::OK,
        "the sign-in page: {}",
        login.text()
    );
    assert_eq!(
        again.cookie("portcullis_route").as_deref(),
        Some("gw-b"),
        "re-pinned to the node that answered"
    );
    assert!(
        cluster
            .b
            .wait_for_log("session cookie of another node", DEADLINE)
            .is_some_and(|line| line.contains("gw-a")),
        "node b says whose session it was handed"
    );
    drop(cluster.b);
}

/// HAProxy's `prefix` mode pins on the route cookie the nodes set
/// themselves: fresh browsers spread over the nodes, and each stays on the
/// node that signed it in.
#[tokio::test]
async fn haproxy_prefix_mode_pins_on_the_route_cookie_the_nodes_set() {
    let cluster = start(Pinning::Prefix);
    let mut owners = Vec::new();
    for _ in 0..2 {
        let browser = cluster.browser(None);
        signed_in(&browser).await;
        let session = browser.cookie("pc_b").expect("session cookie");
        let owner = session.rsplit('.').next().expect("node suffix").to_owned();
        let route = browser.cookie("portcullis_route").expect("route cookie");
        assert_eq!(route, format!("{owner}~{owner}"), "HAProxy's prefix");
        for _ in 0..4 {
            let page = get_json(&browser, &format!("{B}/page")).await;
            assert_eq!(
                page.status,
                StatusCode::OK,
                "pinned to {owner}: {}",
                page.text()
            );
        }
        owners.push(owner);
    }
    owners.sort();
    assert_eq!(owners, ["gw-a", "gw-b"], "round robin spread the sign-ins");
}

/// Signs in to app b through the pysaml2 IdP: to its SSO endpoint, its
/// answer posted to the ACS of whichever node the balancer picked.
async fn through_pysaml2(browser: &Browser, idp: &crate::interop::PyIdp) {
    let start = browser.get(&format!("{B}/page")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text());
    assert!(
        start.location().starts_with("https://idp.pysaml2.test/"),
        "to the IdP, not a sign-in page of ours: {}",
        start.location()
    );
    let answer = crate::interop::PyIdp::respond(idp, &start.location()).expect("pysaml2 answers");
    let acs = browser
        .post_form(
            B_ACS,
            &[
                (
                    "SAMLResponse",
                    answer["saml_response"].as_str().expect("response"),
                ),
                (
                    "RelayState",
                    answer["relay_state"].as_str().expect("relay state"),
                ),
            ],
        )
        .await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let page = get_json(browser, &format!("{B}/page")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_eq!(page.echoed("x-portcullis-user"), ["dana@example.org"]);
}

/// With a third-party IdP (pysaml2) whose session outlives the gateway
/// node, a browser whose node dies is signed in again by the next node
/// through SSO, with no page of its own in between.
#[tokio::test]
async fn with_a_third_party_idp_a_dead_nodes_browser_is_signed_in_again_silently() {
    let mut idp = crate::interop::PyIdpFixture::new(serde_json::json!({
        "name_id": "dana@example.org",
        "attributes": { "email": ["dana@example.org"] },
    }));
    let apps = idp.app("b", B, "", "");
    let a = Gateway::start(
        &format!("{WITH_ADMIN}\n\n[cluster]\nmode = \"sticky\"\nnode_id = \"gw-a\"\n"),
        &apps,
    );
    idp.learn_sps(&a.browser(), &[B], |_| {}).await;
    let text = std::fs::read_to_string(&a.config).expect("node a's config");
    let b = Gateway::start_with_text(|_| text.replace("node_id = \"gw-a\"", "node_id = \"gw-b\""));
    let lb = haproxy(
        &a.pki,
        &[
            ("gw-a", a.https, a.admin_addr()),
            ("gw-b", b.https, b.admin_addr()),
        ],
        Pinning::Insert,
    );
    let browser = Browser::new(Client::http1(&a.pki, lb.addr));
    browser.set_cookie("portcullis_route", "gw-a");
    through_pysaml2(&browser, &idp.idp).await;
    assert!(browser
        .cookie("pc_b")
        .unwrap_or_default()
        .ends_with(".gw-a"));

    let mut a = a;
    a.signal("KILL");
    a.wait_exit(DEADLINE);
    once_rerouted(&browser, &format!("{B}/page"), false, StatusCode::SEE_OTHER).await;
    through_pysaml2(&browser, &idp.idp).await;
    assert!(
        browser
            .cookie("pc_b")
            .unwrap_or_default()
            .ends_with(".gw-b"),
        "node b's session now"
    );
    drop(lb);
}
