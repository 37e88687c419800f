//! Back-channel Single Logout over SOAP against pysaml2, both ways:
//! - the embedded IdP tells a pysaml2 SP, whose metadata advertises a SOAP
//!   SingleLogoutService on a listener of the test's, when bob's session
//!   is revoked through the API (no browser involved): pysaml2 verifies
//!   the signed LogoutRequest, the NameID and SessionIndex are those it
//!   was issued, and the IdP accepts pysaml2's signed SOAP answer;
//! - a pysaml2 IdP posts a signed SOAP LogoutRequest to a gateway app's
//!   `/_portcullis/saml/slo`: the app's browser session ends and pysaml2
//!   verifies the gateway's signed SOAP LogoutResponse; a tampered or an
//!   unsigned request is refused with a SOAP Fault and ends nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use test_support::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::gateway_sso::ADMIN_TOKEN;
use crate::interop::{pysaml2_sp_registered_with, to_the_acs_form, PyIdpFixture, Sp};
use crate::process::Gateway;

const IDP: &str = "https://a.test";
const IDP_ENTITY: &str = "https://a.test/sso/saml/metadata";
const SP_ENTITY: &str = "https://sp.interop.test/metadata";
const APP_B: &str = "https://b.test";
const PY_IDP_SSO: &str = "https://idp.pysaml2.test/sso/redirect";
const SP_SLO: &str = "https://sp.interop.test/slo";
const SOAP_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP";

/// What the SOAP listener saw of one POST, and what pysaml2 made of it.
#[derive(Debug, Clone)]
struct Received {
    head: String,
    answer: Value,
}

/// Serves `listener` as plain HTTP/1.1: every POSTed body goes to pysaml2
/// (`soap-logout-request`), which answers with its SOAP LogoutResponse;
/// what arrived is kept in `seen`.
fn serve_soap(listener: TcpListener, sp: Arc<Sp>, seen: Arc<Mutex<Vec<Received>>>) {
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (sp, seen) = (Arc::clone(&sp), Arc::clone(&seen));
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                let (head, body) = loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&data[..end]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if data.len() >= end + 4 + length {
                        break (head, data[end + 4..end + 4 + length].to_vec());
                    }
                };
                let answer = tokio::task::spawn_blocking(move || {
                    let file = sp.dir.join("soap-request.xml");
                    std::fs::write(&file, &body).expect("write");
                    let config = sp.config.display().to_string();
                    let out = sp.script.run(&[
                        "soap-logout-request",
                        "--config",
                        &config,
                        "--envelope",
                        &file.display().to_string(),
                    ]);
                    if out.status.success() {
                        serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
                    } else {
                        json!({ "error": String::from_utf8_lossy(&out.stderr) })
                    }
                })
                .await
                .expect("pysaml2");
                let (status, body) = match answer["envelope"].as_str() {
                    Some(envelope) => ("200 OK", envelope.to_string()),
                    None => ("400 Bad Request", String::new()),
                };
                seen.lock().expect("seen").push(Received { head, answer });
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
}

#[tokio::test]
async fn a_revoked_idp_session_reaches_a_pysaml2_sp_over_soap() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    // The listener's URL goes into pysaml2's metadata, so it is bound
    // first and served once pysaml2's config exists.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let soap_url = format!("http://{}/slo/soap", listener.local_addr().expect("addr"));
    let (gw, sp) =
        pysaml2_sp_registered_with(&admin_api_token(), json!({ "soap_slo_url": soap_url })).await;
    let sp = Arc::new(sp);
    serve_soap(listener, Arc::clone(&sp), Arc::clone(&seen));
    let b = gw.browser();

    // bob signs in to pysaml2 through the IdP.
    let (request_id, location) = sp.authn_request();
    let post = to_the_acs_form(&b, &location).await;
    assert_eq!(post.status, StatusCode::OK, "{}", post.text());
    let response =
        test_support::browser::input_value(&post.text(), "SAMLResponse").expect("SAMLResponse");
    let out = sp.parse_response(&response, &request_id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed_in: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let session_index = signed_in["session_index"]
        .as_str()
        .expect("session_index")
        .to_string();

    // An administrator ends bob's sessions; the API does not wait for SPs.
    revoke_bobs_sessions(&gw).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let received = loop {
        if let Some(r) = seen.lock().expect("seen").first().cloned() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no SOAP LogoutRequest reached pysaml2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let answer = &received.answer;
    assert!(answer["error"].is_null(), "pysaml2 refused it: {answer}");
    assert_eq!(answer["name_id"], "bob@example.com", "{answer}");
    assert_eq!(
        answer["session_indexes"],
        json!([session_index]),
        "{answer}"
    );
    assert_eq!(answer["issuer"], IDP_ENTITY, "{answer}");
    let head = received.head.to_ascii_lowercase();
    assert!(head.starts_with("post /slo/soap http/1.1"), "{head}");
    assert!(head.contains("content-type: text/xml"), "{head}");
    assert!(head.contains("soapaction:"), "{head}");

    // The IdP checked pysaml2's signed answer and says so.
    let (line, event) = soap_logout_outcome(&gw, SP_ENTITY).await;
    assert!(
        line.contains("back-channel logout delivered")
            && line.contains("\"outcome\":\"logged_out\""),
        "{line}"
    );
    assert!(event.contains("SUCCESS"), "{event}");
    assert_eq!(seen.lock().expect("seen").len(), 1, "told once");
}

#[tokio::test]
async fn a_revoked_session_s_front_channel_sp_is_told_when_its_browser_comes_back() {
    // pysaml2 with only a Redirect SingleLogoutService: no way to reach it
    // without the browser.
    let (gw, sp) = pysaml2_sp_registered_with(&admin_api_token(), json!({})).await;
    let b = gw.browser();
    let (request_id, location) = sp.authn_request();
    let post = to_the_acs_form(&b, &location).await;
    assert_eq!(post.status, StatusCode::OK, "{}", post.text());
    let response =
        test_support::browser::input_value(&post.text(), "SAMLResponse").expect("SAMLResponse");
    let out = sp.parse_response(&response, &request_id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed_in: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let session_index = signed_in["session_index"].as_str().expect("session_index");

    revoke_bobs_sessions(&gw).await;
    let remembered = gw
        .wait_for_log(
            "told when the browser is next here",
            Duration::from_secs(30),
        )
        .unwrap_or_else(|| panic!("pysaml2 not kept for the next visit: {:?}", gw.logs()));
    assert!(remembered.contains("pending_front_channel"), "{remembered}");

    // bob's browser opens the IdP again: before the page it asked for, it
    // carries a signed LogoutRequest to pysaml2, and its dead IdP cookie
    // is cleared.
    let back_again = b.get(&format!("{IDP}/login")).await;
    assert_eq!(
        back_again.status,
        StatusCode::SEE_OTHER,
        "{}",
        back_again.text()
    );
    let to_sp = back_again.location();
    let query = to_sp
        .strip_prefix(&format!("{SP_SLO}?"))
        .unwrap_or_else(|| panic!("not a LogoutRequest to pysaml2: {to_sp}"));
    assert!(
        test_support::browser::set_cookie(&back_again, "pc_idp_sid").is_some_and(|c| c.deletes()),
        "{:?}",
        back_again.headers
    );
    let config = sp.config.display().to_string();
    let answer = sp.run_ok(&["logout-request", "--config", &config, "--query", query]);
    assert_eq!(answer["name_id"], "bob@example.com", "{answer}");
    assert_eq!(
        answer["session_indexes"],
        json!([session_index]),
        "{answer}"
    );

    // pysaml2's signed answer takes the browser on to the sign-in page it
    // was opening, which is now just that.
    let back = answer["location"].as_str().expect("location");
    assert!(
        back.starts_with(&format!("{IDP}/sso/saml/logout?SAMLResponse=")),
        "{back}"
    );
    let resumed = b.get(back).await;
    assert_eq!(resumed.status, StatusCode::SEE_OTHER, "{}", resumed.text());
    assert_eq!(resumed.location(), "/login");
    let page = b.get(&format!("{IDP}/login")).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "told once: {}",
        page.location()
    );
    assert!(page.text().contains("username"), "{}", page.text());
}

/// An `[[idp.api_token]]` for [`ADMIN_TOKEN`] with the Sessions API's scope.
pub(crate) fn admin_api_token() -> String {
    format!(
        "\n[[idp.api_token]]\nname = \"e2e-admin\"\nsha256 = \"{}\"\nscopes = [\"okta.sessions.manage\", \"okta.logs.read\", \"okta.users.manage\"]\n",
        portcullis_idp::session::hash_token(ADMIN_TOKEN)
    )
}

/// An administrator ends bob's IdP sessions through the Sessions API
/// (`DELETE /api/v1/users/{id}/sessions`), which does not wait for SPs.
pub(crate) async fn revoke_bobs_sessions(gw: &Gateway) {
    let revoke = Client::http1(&gw.pki, gw.https)
        .send(
            Request::builder()
                .method(Method::DELETE)
                .uri(format!("{IDP}/api/v1/users/00u2bob/sessions"))
                .header(header::ACCEPT, "application/json")
                .header(header::AUTHORIZATION, format!("SSWS {ADMIN_TOKEN}"))
                .body(Client::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT, "{}", revoke.text());
}

/// The IdP's record of its SOAP LogoutRequest to `sp_entity`, once the
/// delivery is over: the gateway's `back-channel logout delivered` (or
/// `… not confirmed`) line and the System Log's (`system-log.jsonl` in
/// the gateway's directory) `user.authentication.slo` event for that SP.
pub(crate) async fn soap_logout_outcome(gw: &Gateway, sp_entity: &str) -> (String, String) {
    let line = gw
        .wait_for_log("back-channel logout ", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no delivery logged: {:?}", gw.logs()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(gw.dir().join("system-log.jsonl")).unwrap_or_default();
        let slo = log
            .lines()
            .filter(|l| l.contains("user.authentication.slo"))
            .find(|l| l.contains(sp_entity));
        if let Some(event) = slo {
            return (line, event.to_string());
        }
        assert!(
            Instant::now() < deadline,
            "no user.authentication.slo event: {log}; gateway: {:?}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POSTs `envelope` to app b's SLO endpoint as an IdP's back channel does.
async fn post_soap(gw: &Gateway, envelope: &str) -> test_support::Reply {
    Client::http1(&gw.pki, gw.https)
        .send(
            Request::builder()
                .method(Method::POST)
                .uri(format!("{APP_B}/_portcullis/saml/slo"))
                .header(header::CONTENT_TYPE, "text/xml; charset=utf-8")
                .header(
                    "SOAPAction",
                    "http://www.oasis-open.org/committees/security",
                )
                .body(Client::body(envelope.to_string()))
                .expect("request"),
        )
        .await
}

#[tokio::test]
async fn a_pysaml2_idp_ends_a_gateway_session_over_soap() {
    let mut fixture = PyIdpFixture::new(json!({
        "name_id": "dana@example.org",
        "attributes": {"email": ["dana@example.org"]},
    }));
    let config = fixture.app("b", APP_B, "", "");
    let gw = Gateway::start("", &config);
    let b = gw.browser();
    fixture
        .learn_sps(&b, &[APP_B], |meta| {
            assert!(
                meta.contains(&format!(
                    "Binding=\"{SOAP_BINDING}\" Location=\"{APP_B}/_portcullis/saml/slo\""
                )),
                "the app's metadata offers SOAP logout: {meta}"
            );
        })
        .await;
    let idp = &fixture.idp;

    let start = b.get(&format!("{APP_B}/")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text());
    let answer = idp.respond(&start.location()).expect("pysaml2 answered");
    let acs = b
        .post_form(
            &format!("{APP_B}/_portcullis/saml/acs"),
            &[
                ("SAMLResponse", answer["saml_response"].as_str().expect("r")),
                ("RelayState", answer["relay_state"].as_str().expect("rs")),
            ],
        )
        .await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let signed_in = || async { b.get(&format!("{APP_B}/?format=json")).await };
    assert_eq!(signed_in().await.status, StatusCode::OK);

    let request = |unsigned: bool| {
        let sp = format!("{APP_B}/_portcullis/saml/metadata");
        let config = idp.config_arg();
        let mut args = vec![
            "soap-logout-request",
            "--config",
            &config,
            "--sp",
            &sp,
            "--name-id",
            "dana@example.org",
        ];
        if unsigned {
            args.push("--unsigned");
        }
        idp.script.json(&args)
    };

    // Unsigned, or signed and then altered: a SOAP Fault, and nothing ends.
    let unsigned = request(true);
    let envelope = unsigned["envelope"].as_str().expect("envelope");
    assert!(!envelope.contains("SignatureValue"), "{envelope}");
    let refused = post_soap(&gw, envelope).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert!(refused.text().contains("Fault"), "{}", refused.text());
    assert_eq!(
        refused
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/xml; charset=utf-8")
    );
    let signed = request(false);
    let envelope = signed["envelope"].as_str().expect("envelope");
    assert_eq!(signed["location"], format!("{APP_B}/_portcullis/saml/slo"));
    let tampered = envelope.replacen("dana@example.org", "dana@example.org ", 1);
    assert_ne!(tampered, envelope);
    let refused = post_soap(&gw, &tampered).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert!(refused.text().contains("Fault"), "{}", refused.text());
    assert_eq!(
        signed_in().await.status,
        StatusCode::OK,
        "a refused request ended the session"
    );
    let reasons = gw.wait_for_logs("SOAP LogoutRequest refused", 2, Duration::from_secs(10));
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .all(|l| l.contains("\"error.kind\":\"signature\"")),
        "{reasons:?}"
    );

    // The signed request ends the session; pysaml2 verifies the answer.
    let accepted = post_soap(&gw, envelope).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text());
    let file = fixture_file(&fixture, "soap-response.xml", &accepted.text());
    let config = idp.config_arg();
    let parsed = idp.script.json(&[
        "soap-logout-response",
        "--config",
        &config,
        "--envelope",
        &file,
    ]);
    assert_eq!(
        parsed["status"], "urn:oasis:names:tc:SAML:2.0:status:Success",
        "{parsed}"
    );
    assert_eq!(parsed["in_response_to"], signed["request_id"], "{parsed}");
    assert_eq!(
        parsed["issuer"],
        format!("{APP_B}/_portcullis/saml/metadata"),
        "{parsed}"
    );
    let after = b.get(&format!("{APP_B}/")).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "{}", after.text());
    assert!(
        after.location().starts_with(PY_IDP_SSO),
        "back to sign-in at pysaml2: {}",
        after.location()
    );
}

fn fixture_file(fixture: &PyIdpFixture, name: &str, text: &str) -> String {
    fixture.write(name, text.as_bytes()).display().to_string()
}
