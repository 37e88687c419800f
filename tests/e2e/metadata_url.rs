//! Peer metadata from a URL, both roles. A gateway app trusts a pysaml2
//! IdP through a signed aggregate served over HTTP, follows the IdP's key
//! rollover without a restart, keeps the last good copy when the document
//! turns bad (tampered, expired) or the server goes away, and restarts
//! from its cache file while the URL is unreachable. The embedded IdP
//! follows a pysaml2 SP's signed metadata through the SP's key rollover.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use portcullis_saml::{sign_metadata, SigningKey};
use serde_json::json;
use test_support::browser::{input_value, Browser};

use crate::interop::{pysaml2_sp_registered_through, to_the_acs_form, PyIdpFixture, Sp, SP_ENTITY};
use crate::process::{admin_get, Gateway, WITH_ADMIN};

const PY_IDP_ENTITY: &str = "https://idp.pysaml2.test/metadata";
const APP: &str = "https://b.test";

/// A plain HTTP/1.1 server on its own thread (the gateway fetches the
/// document while the test thread waits for it to start) answering every
/// GET with the current document.
struct MetadataServer {
    addr: SocketAddr,
    body: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetadataServer {
    fn start(body: String) -> MetadataServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let body = Arc::new(Mutex::new(body));
        let stop = Arc::new(AtomicBool::new(false));
        let (serving, stopping) = (body.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let doc = serving.lock().expect("body").clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/samlmetadata+xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{doc}",
                    doc.len()
                );
            }
        });
        MetadataServer {
            addr,
            body,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/federation.xml", self.addr)
    }

    fn serve(&self, doc: String) {
        *self.body.lock().expect("body") = doc;
    }

    /// Closes the listener: connections are refused from now on.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
    }
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// pysaml2's entity next to a decoy in an aggregate whose root carries
/// `attrs`, signed with the federation's key.
fn federation(fixture: &PyIdpFixture, attrs: &str, key: &SigningKey) -> String {
    let entity = fixture.metadata_xml();
    let entity = entity
        .split_once("?>")
        .map_or(entity.as_str(), |(_, rest)| rest)
        .trim();
    let decoy = "<md:EntityDescriptor entityID=\"https://decoy.test/idp\"><md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"/></md:EntityDescriptor>";
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" ID=\"_federation\" {attrs}>{decoy}{entity}</md:EntitiesDescriptor>"
    );
    sign_metadata(&doc, key).expect("sign metadata")
}

/// One SP-initiated sign-in through pysaml2 with a fresh browser: the
/// ACS's status (303 when the gateway trusted pysaml2's signature).
async fn sign_in(gw: &Gateway, fixture: &PyIdpFixture) -> StatusCode {
    let b = gw.browser();
    let start = b.get(&format!("{APP}/reports")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text());
    let answer = fixture
        .idp
        .respond(&start.location())
        .expect("pysaml2 accepted the request");
    let acs = b
        .post_form(
            &format!("{APP}/_portcullis/saml/acs"),
            &[
                (
                    "SAMLResponse",
                    answer["saml_response"].as_str().expect("SAMLResponse"),
                ),
                (
                    "RelayState",
                    answer["relay_state"].as_str().expect("RelayState"),
                ),
            ],
        )
        .await;
    acs.status
}

/// `portcullis_saml_metadata_refresh_failures_total{peer="<peer>"}`.
async fn failures(gw: &Gateway, peer: &str) -> u64 {
    let (status, body) = admin_get(gw.admin_addr(), "/metrics")
        .await
        .expect("metrics");
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "portcullis_saml_metadata_refresh_failures_total{{peer=\"{peer}\"}} "
            ))
        })
        .map_or(0, |v| v.trim().parse().expect("counter"))
}

/// The peer whose refreshes a test watches: its metrics label and entity.
pub(crate) struct Watched<'a> {
    pub peer: &'a str,
    pub entity: &'a str,
}

const APP_B: Watched<'static> = Watched {
    peer: "app/b",
    entity: PY_IDP_ENTITY,
};

/// Waits until a refresh failure of `watched` whose reason contains
/// `reason` is logged after the first `seen` failures, and counted: the
/// number of failures logged by then.
pub(crate) async fn wait_for_failure(
    gw: &Gateway,
    watched: &Watched<'_>,
    seen: usize,
    reason: &str,
) -> usize {
    let lines = gw.wait_for_logs(
        "SAML metadata refresh failed",
        seen + 1,
        Duration::from_secs(30),
    );
    assert!(
        lines.len() > seen,
        "no refresh failure logged; logs: {:?}",
        gw.logs()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = gw.wait_for_logs("SAML metadata refresh failed", seen + 1, Duration::ZERO);
        if let Some(line) = lines.iter().skip(seen).find(|l| l.contains(reason)) {
            let event: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
            assert_eq!(event["level"], "WARN", "{line}");
            assert_eq!(event["peer"], watched.peer, "{line}");
            assert_eq!(event["entity"], watched.entity, "{line}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no refresh failure with {reason:?}: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(failures(gw, watched.peer).await as usize > seen);
    gw.logs()
        .iter()
        .filter(|l| l.contains("SAML metadata refresh failed"))
        .count()
}

#[tokio::test]
async fn a_gateway_app_follows_its_idp_metadata_url_through_a_key_rollover() {
    let mut fixture = PyIdpFixture::new(json!({
        "name_id": "dana@example.org",
        "attributes": {"email": ["dana@example.org"]},
    }));
    let federation_key = SigningKey::generate_self_signed("federation", 2).expect("key");
    let federation_cert = fixture.file("federation.pem", &federation_key.cert_pem().expect("pem"));
    let mut server = MetadataServer::start(federation(&fixture, "", &federation_key));
    let cache = fixture.file("idp-cache.xml", b"");
    std::fs::remove_file(&cache).expect("no cache yet");
    let idp = format!(
        "metadata_url = \"{}\", metadata_signing_cert = \"{}\", entity_id = \"{PY_IDP_ENTITY}\", \
metadata_cache_file = \"{}\", metadata_min_refresh = \"1s\", metadata_max_refresh = \"1s\"",
        server.url(),
        federation_cert.display(),
        cache.display(),
    );
    let mut gw = Gateway::start(WITH_ADMIN, &fixture.app_trusting("b", APP, &idp, ""));
    fixture.learn_sps(&gw.browser(), &[APP], |_| {}).await;
    assert_eq!(sign_in(&gw, &fixture).await, StatusCode::SEE_OTHER);

    // The IdP rolls its key over: until the federation publishes the new
    // certificate, responses signed with it are refused...
    let next = SigningKey::generate_self_signed("pysaml2 idp next", 2).expect("key");
    fixture.roll_key(&next);
    let refused = sign_in(&gw, &fixture).await;
    assert!(refused.is_client_error(), "{refused}");
    // ...and once it does, they are accepted, with no restart.
    server.serve(federation(&fixture, "", &federation_key));
    let changed = gw
        .wait_for_log("SAML metadata changed", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no change logged: {:?}", gw.logs()));
    assert!(changed.contains("INFO"), "{changed}");
    assert_eq!(sign_in(&gw, &fixture).await, StatusCode::SEE_OTHER);
    let good = federation(&fixture, "", &federation_key);

    // A tampered document, an expired one, then no server at all: each
    // is a WARN and a counted failure, and the last good copy stays.
    let tampered = good.replace("https://decoy.test/idp", "https://decoy.test/other");
    server.serve(tampered);
    let seen = wait_for_failure(&gw, &APP_B, 0, "signature").await;
    assert_eq!(sign_in(&gw, &fixture).await, StatusCode::SEE_OTHER);

    let expired = federation(
        &fixture,
        "validUntil=\"2020-01-01T00:00:00Z\"",
        &federation_key,
    );
    server.serve(expired);
    let seen = wait_for_failure(&gw, &APP_B, seen, "expired").await;
    assert_eq!(sign_in(&gw, &fixture).await, StatusCode::SEE_OTHER);

    server.stop();
    wait_for_failure(&gw, &APP_B, seen, "Connect").await;
    assert_eq!(sign_in(&gw, &fixture).await, StatusCode::SEE_OTHER);

    // A restart with the URL unreachable starts from the cache file: the
    // rolled-over key is still the trusted one.
    let cached = std::fs::read_to_string(&cache).expect("cache file written");
    assert!(cached.contains("_federation"), "{cached}");
    gw.restart();
    assert_eq!(sign_in(&gw, &fixture).await, StatusCode::SEE_OTHER);
}

/// pysaml2 (as an SP) asks the embedded IdP to sign bob in: `Ok` when
/// pysaml2 took the Response, else the status the IdP refused with.
async fn sp_sign_in(b: &Browser, sp: &Sp) -> Result<(), StatusCode> {
    let (request_id, location) = sp.authn_request();
    let page = to_the_acs_form(b, &location).await;
    if page.status != StatusCode::OK {
        return Err(page.status);
    }
    let response = input_value(&page.text(), "SAMLResponse").expect("SAMLResponse");
    let out = sp.parse_response(&response, &request_id);
    assert!(
        out.status.success(),
        "pysaml2 refused the Response: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The embedded IdP registers pysaml2 from its metadata, signed by pysaml2
/// with a federation key and served over HTTP: when pysaml2 rolls its
/// request-signing key over, the IdP refuses its requests until the new
/// document is published, then takes them with no restart; a document
/// signed with another key is refused and the last good one stays.
#[tokio::test]
async fn the_embedded_idp_follows_an_sp_metadata_url_through_a_key_rollover() {
    let federation_key = SigningKey::generate_self_signed("federation", 2).expect("key");
    let server = MetadataServer::start(String::new());
    let locate = |sp: &Sp| {
        server.serve(sp.signed_metadata(&federation_key));
        let cert = sp.file("federation.pem", &federation_key.cert_pem().expect("pem"));
        format!(
            "metadata_url = \"{}\"\nmetadata_signing_cert = \"{}\"\nmetadata_min_refresh = \"1s\"\nmetadata_max_refresh = \"1s\"",
            server.url(),
            cert.display()
        )
    };
    let (gw, sp) = pysaml2_sp_registered_through(WITH_ADMIN, locate, "", json!({})).await;
    let b = gw.browser();
    sp_sign_in(&b, &sp).await.expect("signed in");

    let next = SigningKey::generate_self_signed("pysaml2 sp next", 2).expect("key");
    sp.roll_key(&next);
    let refused = sp_sign_in(&b, &sp)
        .await
        .expect_err("a request signed with an unpublished key");
    assert_eq!(refused, StatusCode::BAD_REQUEST);
    server.serve(sp.signed_metadata(&federation_key));
    let changed = gw
        .wait_for_log("SAML metadata changed", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no change logged: {:?}", gw.logs()));
    assert!(changed.contains("sp/pysaml2"), "{changed}");
    sp_sign_in(&b, &sp)
        .await
        .expect("the rolled-over key is trusted");

    // Signed by someone other than the federation: refused, counted, and
    // the registration in use stays.
    let stranger = SigningKey::generate_self_signed("not the federation", 2).expect("key");
    server.serve(sp.signed_metadata(&stranger));
    let watched = Watched {
        peer: "sp/pysaml2",
        entity: SP_ENTITY,
    };
    wait_for_failure(&gw, &watched, 0, "signature").await;
    sp_sign_in(&b, &sp)
        .await
        .expect("the last good document stays");
}
