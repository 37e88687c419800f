//! The gateway's SP side through the real binary: apps with `auth = "saml"`
//! send browsers through SSO at the embedded IdP, get a per-app gateway
//! session at their ACS, and reach the echo backend as the signed-in user.
//! Apps live on `https://b.test/` and `https://c.test/`, the IdP on
//! `https://a.test/`; every host resolves to the gateway under test.

use std::time::Duration;

use base64::Engine as _;
use http::{header, Request, StatusCode};
use portcullis_saml::SigningKey;
use test_support::browser::{input_value, set_cookie, url_encode, Browser};
use test_support::{Client, Reply};

use crate::process::Gateway;

const USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/users.toml");

const IDP: &str = "https://a.test";
const B: &str = "https://b.test";
const C: &str = "https://c.test";
const B_ACS: &str = "https://b.test/_portcullis/saml/acs";
const C_ACS: &str = "https://c.test/_portcullis/saml/acs";

pub(crate) struct Fixture {
    pub(crate) gw: Gateway,
    /// The embedded IdP's signing key, for forging test responses.
    pub(crate) idp_key: SigningKey,
    _keys: tempfile::TempDir,
}

impl Fixture {
    /// Where the fixture's files (keys, `idp_files`) are.
    pub(crate) fn file(&self, name: &str) -> std::path::PathBuf {
        self._keys.path().join(name)
    }
}

/// The gateway with the embedded IdP on `a.test` and SAML apps `b.test`
/// (with `/public`, `/admin` for admins and `/closed` rules) and `c.test`.
/// Also used by the real-browser test (`browser.rs`).
pub(crate) fn start() -> Fixture {
    start_with("", &[])
}

/// The embedded IdP's admin API token in every fixture (sessions manage,
/// logs read, users manage).
pub(crate) const ADMIN_TOKEN: &str = "e2e-gateway-admin-token";
/// A token with `okta.sessions.manage` alone: no Users API.
pub(crate) const SESSIONS_TOKEN: &str = "e2e-gateway-sessions-token";

/// [`start`] with extra `[server]` keys and extra SAML apps on the
/// embedded IdP: `(name, origin, upstream, extra app keys)`.
pub(crate) fn start_with(server_extra: &str, extra_apps: &[(&str, &str, &str, &str)]) -> Fixture {
    start_with_idp_files(server_extra, &[], extra_apps)
}

/// [`start_with`] plus files the `[idp]` section names:
/// `(key, file name, contents)`, e.g. a policy file; an empty key writes
/// the file only. A `users_file` here replaces the demo users (a copy
/// the test may change).
pub(crate) fn start_with_idp_files(
    server_extra: &str,
    idp_files: &[(&str, &str, &str)],
    extra_apps: &[(&str, &str, &str, &str)],
) -> Fixture {
    let keys = tempfile::tempdir().expect("dir");
    let write = |name: &str, data: &[u8]| {
        let path = keys.path().join(name);
        std::fs::write(&path, data).expect("write");
        path.display().to_string()
    };
    let idp_key = SigningKey::generate_self_signed("e2e idp", 2).expect("idp key");
    let sp_key = SigningKey::generate_self_signed("e2e gateway sp", 2).expect("sp key");
    let idp_key_path = write("idp-key.pem", &idp_key.key_pem().expect("pem"));
    let idp_cert_path = write("idp.pem", &idp_key.cert_pem().expect("pem"));
    let sp_key_path = write("sp-key.pem", &sp_key.key_pem().expect("pem"));
    let sp_cert_path = write("sp.pem", &sp_key.cert_pem().expect("pem"));
    let saml_app_on = |name: &str, url: &str, upstream: &str| {
        format!(
            "[[app]]\nname = \"{name}\"\npublic_url = \"{url}/\"\nupstream = \"{upstream}\"\n\
auth = \"saml\"\nidp = \"embedded\"\nsp_signing_key = \"{sp_key_path}\"\nsp_signing_cert = \"{sp_cert_path}\"\n"
        )
    };
    let saml_app = |name: &str, url: &str| saml_app_on(name, url, "builtin:echo");
    let extra: String = extra_apps
        .iter()
        .map(|(name, url, upstream, keys)| saml_app_on(name, url, upstream) + keys + "\n")
        .collect();
    let idp_file_keys: String = idp_files
        .iter()
        .map(|(key, name, contents)| {
            let path = write(name, contents.as_bytes());
            // No key: a file another file names (beside it).
            if key.is_empty() {
                String::new()
            } else {
                format!("{key} = \"{path}\"\n")
            }
        })
        .collect();
    let users = if idp_files.iter().any(|(key, ..)| *key == "users_file") {
        String::new()
    } else {
        format!("users_file = \"{USERS}\"\n")
    };
    let config = format!(
        "[idp]
{idp_file_keys}public_url = \"{IDP}/\"
{users}system_log_file = \"system-log.jsonl\"
signing_key = \"{idp_key_path}\"
signing_cert = \"{idp_cert_path}\"

# An SP without a Single Logout endpoint: a logout cannot reach it.
[[idp.service_provider]]
name = \"legacy\"
entity_id = \"https://legacy.test/saml\"
acs_url = \"https://legacy.test/acs\"

[[idp.api_token]]
name = \"e2e-admin\"
sha256 = \"{admin}\"
scopes = [\"okta.sessions.manage\", \"okta.logs.read\", \"okta.users.manage\"]

[[idp.api_token]]
name = \"e2e-sessions\"
sha256 = \"{sessions}\"
scopes = [\"okta.sessions.manage\"]

{b}
[[app.access]]
path = \"/public\"
policy = \"public\"
[[app.access]]
path = \"/admin\"
policy = \"groups\"
groups = [\"admins\"]
[[app.access]]
path = \"/closed\"
policy = \"deny\"

{c}",
        b = saml_app("b", B),
        c = saml_app("c", C) + "\n" + &extra,
        admin = portcullis_idp::session::hash_token(ADMIN_TOKEN),
        sessions = portcullis_idp::session::hash_token(SESSIONS_TOKEN),
    );
    Fixture {
        gw: Gateway::start(server_extra, &config),
        idp_key,
        _keys: keys,
    }
}

pub(crate) async fn get_json(b: &Browser, url: &str) -> Reply {
    b.send(
        Request::get(url)
            .header(header::ACCEPT, "application/json")
            .header("x-portcullis-user", "mallory@evil.example")
            .body(Client::empty())
            .expect("request"),
    )
    .await
}

/// Signs bob in at the IdP's form, coming from `from`.
async fn sign_in_bob(b: &Browser, from: &str) {
    let csrf = sign_in_form(b, from).await;
    post_sign_in_bob(b, &csrf, from).await;
}

/// Opens the IdP's sign-in form, coming from `from`; returns its CSRF field.
pub(crate) async fn sign_in_form(b: &Browser, from: &str) -> String {
    let form = b
        .get(&format!("{IDP}/login?fromURI={}", url_encode(from)))
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    input_value(&form.text(), "csrf").expect("csrf")
}

/// Posts bob's credentials with `csrf` (the field of a form `b`, or a
/// browser holding its cookies, was served) and expects `from` back.
pub(crate) async fn post_sign_in_bob(b: &Browser, csrf: &str, from: &str) {
    let done = b
        .post_form(
            &format!("{IDP}/login"),
            &[
                ("csrf", csrf),
                ("fromURI", from),
                ("username", "bob"),
                ("password", "bob-demo-pass"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(done.location(), from);
}

/// What the IdP's auto-submit form would POST to the ACS.
pub(crate) struct Posted {
    pub(crate) saml_response: String,
    pub(crate) relay_state: String,
    /// The request-state cookie's value when the form was issued.
    pub(crate) request_state: String,
}

/// Opens `url` without a session and follows the browser through the IdP
/// (signing bob in if the IdP asks) to the auto-submit form for `acs`.
pub(crate) async fn sso(b: &Browser, rs_cookie: &str, url: &str, acs: &str) -> Posted {
    let start = b.get(url).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text());
    let to_idp = start.location();
    assert!(
        to_idp.starts_with(&format!("{IDP}/sso/saml?SAMLRequest=")),
        "{to_idp}"
    );
    assert!(to_idp.contains("&Signature="), "signed request: {to_idp}");
    let state = set_cookie(&start, rs_cookie).expect("request-state cookie");
    for attribute in ["Secure", "HttpOnly", "SameSite=None", "Max-Age=300"] {
        assert!(state.has(attribute), "{attribute}: {state:?}");
    }
    let mut at_idp = b.get(&to_idp).await;
    if at_idp.status == StatusCode::SEE_OTHER {
        let login = at_idp.location();
        let query = login
            .strip_prefix("/login?")
            .unwrap_or_else(|| panic!("not a sign-in redirect: {login}"));
        let from = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "fromURI")
            .map(|(_, v)| v.into_owned())
            .expect("fromURI");
        sign_in_bob(b, &from).await;
        at_idp = b.get(&format!("{IDP}{from}")).await;
    }
    let html = at_idp.text();
    assert_eq!(at_idp.status, StatusCode::OK, "{html}");
    assert!(html.contains(&format!("action=\"{acs}\"")), "{html}");
    Posted {
        saml_response: input_value(&html, "SAMLResponse").expect("SAMLResponse"),
        relay_state: input_value(&html, "RelayState").expect("RelayState"),
        request_state: state.value,
    }
}

/// The AuthnRequest id a request-state cookie carries (before its expiry
/// and MAC).
pub(crate) fn request_id_in(state: &str) -> &str {
    state.rsplitn(3, '.').nth(2).expect("id.expiry.mac")
}

pub(crate) async fn post_acs(b: &Browser, acs: &str, response: &str, relay_state: &str) -> Reply {
    b.post_form(
        acs,
        &[("SAMLResponse", response), ("RelayState", relay_state)],
    )
    .await
}

/// `DELETE /api/v1/users/00u2bob/sessions` with the admin token, through
/// `b`: every IdP session of bob ends (and with them his app sessions).
pub(crate) async fn revoke_bob_sessions(b: &Browser) -> Reply {
    b.send(
        Request::builder()
            .method(http::Method::DELETE)
            .uri(format!("{IDP}/api/v1/users/00u2bob/sessions"))
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, format!("SSWS {ADMIN_TOKEN}"))
            .body(Client::empty())
            .expect("request"),
    )
    .await
}

pub(crate) type WebSocket = tokio_tungstenite::WebSocketStream<test_support::client::RawTls>;

/// A WebSocket to `url` through `b`'s gateway, in the session `cookie`
/// (`name=value`), checked with one echoed frame.
pub(crate) async fn open_websocket(b: &Browser, host: &str, url: &str, cookie: &str) -> WebSocket {
    use futures_util::{SinkExt, StreamExt};
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .expect("ws request");
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().expect("cookie"));
    let tls = b.client().raw_tls(host).await;
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("websocket through the gateway");
    ws.send(tokio_tungstenite::tungstenite::Message::text("ping"))
        .await
        .expect("send");
    let echoed = ws.next().await.expect("echo").expect("frame");
    assert_eq!(echoed.into_text().expect("text").as_str(), "ping");
    ws
}

/// Whether `ws` is closed (a Close frame, an error or its end) within
/// `within`.
pub(crate) async fn closes_within(ws: &mut WebSocket, within: Duration) -> bool {
    use futures_util::StreamExt;
    tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))
                | Some(Err(_))
                | None => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn deep_link_signs_in_at_the_idp_and_lands_on_the_page_as_the_user() {
    let f = start();
    let b = f.gw.browser();

    let metadata = b.get(&format!("{B}/_portcullis/saml/metadata")).await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert!(metadata
        .text()
        .contains("entityID=\"https://b.test/_portcullis/saml/metadata\""));

    // (a) Deep link → IdP → sign-in → form → ACS → back to the deep link.
    let posted = sso(&b, "pc_b_rs", &format!("{B}/deep/page?x=1"), B_ACS).await;
    assert_eq!(posted.relay_state, "/deep/page?x=1");
    let landed = post_acs(&b, B_ACS, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    assert_eq!(landed.location(), "/deep/page?x=1");
    let session = set_cookie(&landed, "pc_b").expect("session cookie");
    // 256 random bits as unpadded base64url: the one session id shape the
    // IdP and the gateway share.
    assert_eq!(session.value.len(), 43, "{session:?}");
    assert!(session
        .value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.has(attribute), "{attribute}: {session:?}");
    }
    let cleared = set_cookie(&landed, "pc_b_rs").expect("request state cleared");
    assert!(cleared.has("Max-Age=0"), "{cleared:?}");
    assert!(b.cookie("pc_b_rs").is_none());

    let page = get_json(&b, &format!("{B}/deep/page?x=1")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_eq!(page.echoed("x-portcullis-user"), ["bob@example.com"]);
    let cookies = page.json()["cookies"].clone();
    let names: Vec<&String> = cookies.as_object().expect("cookies").keys().collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("pc_b") && !n.starts_with("pc_idp_")),
        "gateway cookies reached the backend: {names:?}"
    );

    // (b) The second app signs in without a password (IdP session).
    let posted = sso(&b, "pc_c_rs", &format!("{C}/"), C_ACS).await;
    let landed = post_acs(&b, C_ACS, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    assert_eq!(landed.location(), "/");
    assert!(b.cookie("pc_c").is_some());
    let page = get_json(&b, &format!("{C}/anything")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_eq!(page.echoed("x-portcullis-user"), ["bob@example.com"]);

    // (c) bob is not in admins; deny is nobody.
    let admin = b.get(&format!("{B}/admin/users")).await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN, "{}", admin.text());
    assert!(admin.text().contains("Access denied"));
    let admin = get_json(&b, &format!("{B}/admin")).await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN);
    assert_eq!(admin.json()["errorCode"], "access_denied");
    let closed = b.get(&format!("{B}/closed")).await;
    assert_eq!(closed.status, StatusCode::FORBIDDEN);
    // Segment match: /administrator is not under /admin.
    let other = get_json(&b, &format!("{B}/administrator")).await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(f
        .gw
        .wait_for_log(
            "access denied by the app's access rules",
            Duration::from_secs(5)
        )
        .is_some());
}

#[tokio::test]
async fn api_calls_get_401_and_public_paths_need_no_session() {
    let f = start();
    let b = f.gw.browser();

    // (d) Not a page navigation: 401 JSON, no redirect, no request state.
    let api = get_json(&b, &format!("{B}/api/items")).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED, "{}", api.text());
    assert_eq!(api.json()["errorCode"], "unauthenticated");
    assert!(api.headers.get(header::LOCATION).is_none());
    assert!(set_cookie(&api, "pc_b_rs").is_none());
    let fetch = b
        .send(
            Request::get(format!("{B}/page"))
                .header("sec-fetch-mode", "cors")
                .body(Client::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(fetch.status, StatusCode::UNAUTHORIZED);

    // (f) A public path reaches the backend without a session, as nobody.
    let public = get_json(&b, &format!("{B}/public/info")).await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.text());
    assert!(
        public.echoed("x-portcullis-user").is_empty(),
        "client header stripped"
    );
}

#[tokio::test]
async fn a_planted_second_session_cookie_counts_as_none_and_gateway_pages_are_locked_down() {
    let f = start();
    let b = f.gw.browser();
    let posted = sso(&b, "pc_b_rs", &format!("{B}/"), B_ACS).await;
    let landed = post_acs(&b, B_ACS, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    let mine = b.cookie("pc_b").expect("session cookie");
    assert_eq!(
        get_json(&b, &format!("{B}/page")).await.status,
        StatusCode::OK
    );

    // Cookie tossing: a second pc_b (set by a sibling host, say) beside the
    // real one. Neither is believed: the request is treated as signed out,
    // whichever order the browser sends them in.
    for cookie in [
        format!("pc_b={mine}; pc_b=planted"),
        format!("pc_b=planted; pc_b={mine}"),
    ] {
        let reply = b
            .client()
            .send(
                Request::get(format!("{B}/page"))
                    .header(header::ACCEPT, "application/json")
                    .header(header::COOKIE, cookie)
                    .body(Client::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    }

    // The gateway's own pages: never framed, never cached, nothing loaded
    // from elsewhere; the document title names the status.
    let denied = b.get(&format!("{B}/closed")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(denied.headers[header::CACHE_CONTROL], "no-store");
    let csp = denied.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(denied.text().contains("<title>403 Access denied</title>"));

    // The endpoint table: a wrong method is 405 with Allow; an unknown
    // endpoint is 404 and never reaches the backend.
    let wrong = get_json(&b, &format!("{B}/_portcullis/global-token-revocation")).await;
    assert_eq!(
        wrong.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        wrong.text()
    );
    assert_eq!(wrong.headers[header::ALLOW], "POST");
    let acs = get_json(&b, &format!("{B}/_portcullis/saml/acs")).await;
    assert_eq!(acs.status, StatusCode::METHOD_NOT_ALLOWED);
    let unknown = get_json(&b, &format!("{B}/_portcullis/nothing")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["errorCode"], "no_route");
}

#[tokio::test]
async fn the_acs_refuses_replays_unsolicited_and_tampered_responses_and_open_redirects() {
    let f = start();
    let b = f.gw.browser();
    let posted = sso(&b, "pc_b_rs", &format!("{B}/first"), B_ACS).await;
    let landed = post_acs(&b, B_ACS, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    b.remove_cookie("pc_b");

    // (e) Replay, even with the original request state restored: that
    // AuthnRequest has had its answer.
    b.set_cookie("pc_b_rs", &posted.request_state);
    let replay = post_acs(&b, B_ACS, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.text());
    assert!(replay.text().contains("Sign-in failed"));
    assert!(set_cookie(&replay, "pc_b").is_none());
    assert!(
        f.gw.wait_for_log(
            "\"error.kind\":\"request_already_answered\"",
            Duration::from_secs(5)
        )
        .is_some(),
        "{:?}",
        f.gw.logs()
    );

    // Unsolicited: a valid, unused response but no request state.
    let fresh = sso(&b, "pc_b_rs", &format!("{B}/second"), B_ACS).await;
    let other = f.gw.browser();
    let unsolicited = post_acs(&other, B_ACS, &fresh.saml_response, &fresh.relay_state).await;
    assert_eq!(unsolicited.status, StatusCode::BAD_REQUEST);
    assert!(set_cookie(&unsolicited, "pc_b").is_none());

    // Tampered: another NameID in the signed XML.
    let xml = base64::engine::general_purpose::STANDARD
        .decode(&fresh.saml_response)
        .expect("base64");
    let xml = String::from_utf8(xml)
        .expect("utf8")
        .replace("bob@example.com", "eve@example.com");
    let tampered = base64::engine::general_purpose::STANDARD.encode(xml);
    let refused = post_acs(&b, B_ACS, &tampered, &fresh.relay_state).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert!(set_cookie(&refused, "pc_b").is_none());
    let still_out = get_json(&b, &format!("{B}/second")).await;
    assert_eq!(still_out.status, StatusCode::UNAUTHORIZED);
    // The refused post consumed nothing: the genuine answer still lands,
    // and only once.
    assert!(b.cookie("pc_b_rs").is_some(), "request state kept");
    let genuine = post_acs(&b, B_ACS, &fresh.saml_response, &fresh.relay_state).await;
    assert_eq!(genuine.status, StatusCode::SEE_OTHER, "{}", genuine.text());
    assert!(b.cookie("pc_b_rs").is_none(), "request state is single-use");
    b.remove_cookie("pc_b");

    // (g) An off-site RelayState lands on the app root instead.
    let posted = sso(&b, "pc_b_rs", &format!("{B}/third"), B_ACS).await;
    let landed = post_acs(&b, B_ACS, &posted.saml_response, "https://evil.example/").await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    assert_eq!(landed.location(), "/");
    assert!(b.cookie("pc_b").is_some());
    for evil in [
        "//evil.example/",
        "/\\evil.example/",
        "/ok\r\nSet-Cookie: x=y",
    ] {
        b.remove_cookie("pc_b");
        let posted = sso(&b, "pc_b_rs", &format!("{B}/x"), B_ACS).await;
        let landed = post_acs(&b, B_ACS, &posted.saml_response, evil).await;
        assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
        assert_eq!(landed.location(), "/", "{evil}");
    }
}

#[tokio::test]
async fn acs_posts_are_rate_limited_per_client() {
    let f = start_with("acs_per_minute = 3\n", &[]);
    let b = f.gw.browser();
    for _ in 0..3 {
        let junk = b
            .post_form(B_ACS, &[("SAMLResponse", "bm90IHNhbWw=")])
            .await;
        assert_eq!(junk.status, StatusCode::BAD_REQUEST, "{}", junk.text());
    }
    // The limit spans apps: the fourth post, to c, is refused unexamined.
    let limited = b
        .post_form(C_ACS, &[("SAMLResponse", "bm90IHNhbWw=")])
        .await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text()
    );
    let retry: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(limited.text().contains("Too many sign-in attempts"));
    assert!(
        f.gw.wait_for_log("ACS rate limit reached", Duration::from_secs(5))
            .is_some(),
        "the refusal is logged"
    );
}

/// A Response for b.test as the embedded IdP would issue it, with one
/// thing changed by `vary`; `key` signs it.
fn forged(key: &SigningKey, in_response_to: &str, vary: impl FnOnce(&mut Forge)) -> String {
    let mut forge = Forge {
        audience: format!("{B}/_portcullis/saml/metadata"),
        recipient: B_ACS.to_string(),
        in_response_to: in_response_to.to_string(),
        issued: chrono::Utc::now(),
        signed: true,
    };
    vary(&mut forge);
    let attributes = [portcullis_saml::ReleasedAttribute::basic(
        "groups",
        vec!["admins".to_string()],
    )];
    let idp = portcullis_saml::IdpConfig {
        entity_id: format!("{IDP}/sso/saml/metadata"),
        sso_redirect_url: format!("{IDP}/sso/saml"),
        sso_post_url: format!("{IDP}/sso/saml"),
        slo_url: format!("{IDP}/slo"),
    };
    let issued = portcullis_saml::build_response(
        &idp,
        key,
        &portcullis_saml::ResponseParams {
            sp_entity_id: &forge.audience,
            acs_url: &forge.recipient,
            in_response_to: Some(&forge.in_response_to),
            name_id: "mallory@example.com",
            name_id_format: portcullis_saml::NameIdFormat::EmailAddress,
            name_qualifier: None,
            sp_name_qualifier: None,
            session_index: "forged",
            authn_context: portcullis_saml::AuthnContextClass::MultiFactor,
            authn_instant: forge.issued,
            attributes: &attributes,
            validity: Duration::from_secs(300),
            clock_skew: Duration::from_secs(60),
            now: forge.issued,
            sign_assertion: forge.signed,
            sign_response: false,
            encrypt_for: None,
        },
    )
    .expect("forged response");
    issued.post_form_value()
}

struct Forge {
    audience: String,
    recipient: String,
    in_response_to: String,
    issued: chrono::DateTime<chrono::Utc>,
    signed: bool,
}

/// A base64 SAMLResponse with `suffix` after its XML.
fn with_xml_suffix(response: String, suffix: &str) -> String {
    let mut xml = base64::engine::general_purpose::STANDARD
        .decode(response)
        .expect("base64");
    xml.extend_from_slice(suffix.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(xml)
}

/// Every way a Response can be wrong, over HTTP: each gets the 400 page, a
/// log event naming why, and no session.
#[tokio::test]
async fn forged_responses_get_a_400_page_a_reason_in_the_log_and_no_session() {
    let f = start();
    let foreign = SigningKey::generate_self_signed("not the idp", 1).expect("key");
    let minutes = |m: i64| chrono::Duration::minutes(m);
    let wrapped = |request_id: &str| {
        // A validly signed assertion for mallory, plus an unsigned copy
        // claiming to be someone else, side by side.
        let genuine = forged(&f.idp_key, request_id, |_| {});
        let xml = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(genuine)
                .expect("base64"),
        )
        .expect("utf8");
        let start = xml.find("<saml2:Assertion").expect("assertion");
        let end = xml.find("</saml2:Assertion>").expect("end") + "</saml2:Assertion>".len();
        let evil = xml[start..end]
            .replace("mallory@example.com", "admin@example.com")
            .replacen(" ID=\"", " ID=\"evil", 1);
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}{evil}{}",
            &xml[..end],
            &xml[end..]
        ))
    };
    type Case<'a> = (&'a str, &'a str, Box<dyn Fn(&str) -> String + 'a>);
    let cases: Vec<Case<'_>> = vec![
        (
            "unsigned",
            "signature",
            Box::new(|id| forged(&f.idp_key, id, |v| v.signed = false)),
        ),
        (
            "foreign key",
            "signature",
            Box::new(|id| forged(&foreign, id, |_| {})),
        ),
        (
            "expired",
            "condition",
            Box::new(|id| forged(&f.idp_key, id, |v| v.issued -= minutes(10))),
        ),
        (
            "not yet valid",
            "condition",
            Box::new(|id| forged(&f.idp_key, id, |v| v.issued += minutes(10))),
        ),
        (
            "wrong audience",
            "audience",
            Box::new(|id| {
                forged(&f.idp_key, id, |v| {
                    v.audience = format!("{C}/_portcullis/saml/metadata")
                })
            }),
        ),
        (
            "wrong recipient",
            "destination",
            Box::new(|id| forged(&f.idp_key, id, |v| v.recipient = C_ACS.into())),
        ),
        (
            "wrong InResponseTo",
            "in_response_to",
            Box::new(|id| forged(&f.idp_key, id, |v| v.in_response_to = format!("{id}x"))),
        ),
        ("wrapped", "signature", Box::new(wrapped)),
        // Strict XML: the genuine signed response with something after
        // its root, which a recovering parser would read past.
        (
            "trailing content",
            "xml",
            Box::new(|id| with_xml_suffix(forged(&f.idp_key, id, |_| {}), "<x/>")),
        ),
        (
            "a second XML declaration",
            "xml",
            Box::new(|id| {
                with_xml_suffix(forged(&f.idp_key, id, |_| {}), "<?xml version=\"1.0\"?>")
            }),
        ),
    ];
    for (name, kind, make) in &cases {
        let b = f.gw.browser();
        let start = b.get(&format!("{B}/private")).await;
        assert_eq!(start.status, StatusCode::SEE_OTHER, "{name}");
        let state = b.cookie("pc_b_rs").expect("request state");
        let reply = post_acs(&b, B_ACS, &make(request_id_in(&state)), "/private").await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            reply.text()
        );
        assert!(reply.text().contains("Sign-in failed"), "{name}");
        assert!(
            set_cookie(&reply, "pc_b").is_none(),
            "{name}: no session cookie"
        );
        assert!(
            f.gw.wait_for_log(
                &format!("\"error.kind\":\"{kind}\""),
                Duration::from_secs(5)
            )
            .is_some(),
            "{name}: no {kind} event in {:?}",
            f.gw.logs()
        );
        let after = get_json(&b, &format!("{B}/private")).await;
        assert_eq!(
            after.status,
            StatusCode::UNAUTHORIZED,
            "{name}: still signed out"
        );
    }
    let rejected =
        f.gw.wait_for_logs("no session created", cases.len(), Duration::from_secs(10));
    assert_eq!(rejected.len(), cases.len(), "{rejected:?}");
    // The genuine article, for contrast: the same forge with the IdP's key
    // and nothing changed is accepted.
    let b = f.gw.browser();
    b.get(&format!("{B}/private")).await;
    let state = b.cookie("pc_b_rs").expect("request state");
    let ok = post_acs(
        &b,
        B_ACS,
        &forged(&f.idp_key, request_id_in(&state), |_| {}),
        "/private",
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text());
}

/// Request state is proof that this gateway issued the AuthnRequest: a
/// cookie forged with any id (here with a response the IdP's key really
/// signed for that id) is refused before any XML is read, and one
/// AuthnRequest is answered once, however many well-signed responses to it
/// arrive.
#[tokio::test]
async fn forged_request_state_and_a_second_response_to_one_request_are_refused() {
    let f = start();
    let b = f.gw.browser();
    b.set_cookie("pc_b_rs", "_forged");
    let forged_state = post_acs(&b, B_ACS, &forged(&f.idp_key, "_forged", |_| {}), "/").await;
    assert_eq!(
        forged_state.status,
        StatusCode::BAD_REQUEST,
        "{}",
        forged_state.text()
    );
    assert!(forged_state.text().contains("Sign-in failed"));
    assert!(set_cookie(&forged_state, "pc_b").is_none());
    assert!(
        f.gw.wait_for_log(
            "\"error.kind\":\"request_state_invalid\"",
            Duration::from_secs(5)
        )
        .is_some(),
        "{:?}",
        f.gw.logs()
    );
    b.remove_cookie("pc_b_rs");

    // A genuine request, two distinct responses to it, both well signed.
    let start = b.get(&format!("{B}/private")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let state = b.cookie("pc_b_rs").expect("request state");
    let first = forged(&f.idp_key, request_id_in(&state), |_| {});
    let second = forged(&f.idp_key, request_id_in(&state), |_| {});
    assert_ne!(first, second, "distinct responses");
    let landed = post_acs(&b, B_ACS, &first, "/private").await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    let other = f.gw.browser();
    other.set_cookie("pc_b_rs", &state);
    let again = post_acs(&other, B_ACS, &second, "/private").await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.text());
    assert!(set_cookie(&again, "pc_b").is_none());
    assert!(
        f.gw.wait_for_log(
            "\"error.kind\":\"request_already_answered\"",
            Duration::from_secs(5)
        )
        .is_some(),
        "{:?}",
        f.gw.logs()
    );
    assert_eq!(
        get_json(&other, &format!("{B}/private")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Issue 15's hostile ACS post: a Response whose assertion is signed by
/// the attacker's own key, with unique junk attributes on the unsigned
/// envelope up to just under the 256 KiB base64 cap.
fn hostile_post(attacker: &SigningKey) -> String {
    let genuine = forged(attacker, "_anything", |_| {});
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(genuine)
            .expect("base64"),
    )
    .expect("utf8");
    let root = xml.find("<saml2p:Response ").expect("root") + "<saml2p:Response ".len();
    let budget = 256 * 1024 / 4 * 3 - xml.len() - 64;
    let mut junk = String::new();
    for i in 0.. {
        let attribute = format!("j{i:x}=\"\" ");
        if junk.len() + attribute.len() > budget {
            break;
        }
        junk.push_str(&attribute);
    }
    assert!(junk.matches("=\"\"").count() > 20_000);
    let post = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}{junk}{}",
        &xml[..root],
        &xml[root..]
    ));
    assert!(post.len() > 250 * 1024 && post.len() <= 256 * 1024);
    post
}

/// The hostile post is refused by the pre-scan's structural limits: a 400
/// page and `error.kind = xml_limit` in the log, well under 100 ms of
/// gateway CPU per post (it was 1.5–3.6 s in libxml2), and an unrelated
/// request on another connection is answered promptly while several such
/// posts are in flight (it stalled for seconds).
#[tokio::test]
async fn a_hostile_acs_post_is_refused_cheaply_and_does_not_stall_other_requests() {
    const POSTERS: usize = 4;
    const POSTS_EACH: usize = 3;
    let f = start();
    let attacker = SigningKey::generate_self_signed("attacker", 1).expect("key");
    let hostile = std::sync::Arc::new(hostile_post(&attacker));
    // Each poster its own connection and a genuine request state (a forged
    // one is refused before any XML is read).
    let mut posters: Vec<Browser> = Vec::new();
    for _ in 0..POSTERS {
        let b = f.gw.browser();
        let start = b.get(&format!("{B}/private")).await;
        assert_eq!(start.status, StatusCode::SEE_OTHER);
        assert!(b.cookie("pc_b_rs").is_some());
        posters.push(b);
    }
    let bystander = f.gw.browser();
    let warm = get_json(&bystander, &format!("{B}/public/info")).await;
    assert_eq!(warm.status, StatusCode::OK, "{}", warm.text());
    for b in &posters {
        assert_eq!(
            get_json(b, &format!("{B}/public/info")).await.status,
            StatusCode::OK
        );
    }

    let cpu_before = f.gw.cpu_time();
    let running = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(POSTERS));
    let mut tasks = Vec::new();
    for b in posters {
        let (hostile, running) = (hostile.clone(), running.clone());
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..POSTS_EACH {
                let reply = post_acs(&b, B_ACS, &hostile, "/").await;
                assert!(reply.text().contains("Sign-in failed"), "{}", reply.text());
                statuses.push(reply.status);
            }
            running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            statuses
        }));
    }
    // The bystander's requests, on their own connection, while the posts
    // are in flight: each within a deadline far below the seconds-long
    // stalls inline verification caused.
    let (mut during, mut slowest) = (0, Duration::ZERO);
    while running.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        let sent = std::time::Instant::now();
        let reply = tokio::time::timeout(
            Duration::from_secs(1),
            get_json(&bystander, &format!("{B}/public/info")),
        )
        .await
        .expect("an unrelated request is answered within 1 s while hostile posts run");
        assert_eq!(reply.status, StatusCode::OK);
        slowest = slowest.max(sent.elapsed());
        during += 1;
    }
    for task in tasks {
        let statuses = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("hostile posts answered in time")
            .expect("poster");
        assert!(
            statuses.iter().all(|s| *s == StatusCode::BAD_REQUEST),
            "{statuses:?}"
        );
    }
    let cpu = f.gw.cpu_time().saturating_sub(cpu_before);
    let posts = (POSTERS * POSTS_EACH) as u32;
    assert!(
        cpu < Duration::from_millis(100) * posts,
        "{cpu:?} of gateway CPU for {posts} hostile posts and {during} other requests \
         (the slowest took {slowest:?})"
    );
    // Every post got its refusal event, naming the limit (logs arrive
    // through a pipe: wait for the last of them).
    let refused = || {
        f.gw.logs()
            .iter()
            .filter(|l| {
                l.contains("no session created") && l.contains("\"error.kind\":\"xml_limit\"")
            })
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while refused() < POSTERS * POSTS_EACH && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refused(), POSTERS * POSTS_EACH, "{:?}", f.gw.logs());
}

/// `portcullis_library_log_events_total{source}` from the management
/// listener (0 before the first event).
async fn library_log_events(admin: std::net::SocketAddr, source: &str) -> u64 {
    let (status, metrics) = crate::process::admin_get(admin, "/metrics")
        .await
        .expect("metrics");
    assert_eq!(status, 200, "{metrics}");
    let series = format!("portcullis_library_log_events_total{{source=\"{source}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// Output a client provokes in libraries — xmlsec's line per failed
/// signature check, rustls's warning per client that sends an IP address
/// as SNI — is counted in a metric, reaches the log as at most one event
/// per source and interval, and never reaches stderr raw (xmlsec wrote
/// one unstructured line per refused post).
#[tokio::test]
async fn library_output_a_client_provokes_is_counted_and_written_once() {
    const POSTS: u64 = 12;
    const HANDSHAKES: u64 = 4;
    let f = start_with(crate::process::WITH_ADMIN, &[]);
    let admin = f.gw.admin_addr();
    let b = f.gw.browser();
    // One genuine request state: refused posts leave it in place.
    b.get(&format!("{B}/private")).await;
    let state = b.cookie("pc_b_rs").expect("request state");
    for _ in 0..POSTS {
        // Signed by the IdP, then altered: xmlsec finds the digest wrong.
        let genuine = base64::engine::general_purpose::STANDARD
            .decode(forged(&f.idp_key, request_id_in(&state), |_| {}))
            .expect("base64");
        let tampered = String::from_utf8(genuine)
            .expect("utf8")
            .replace("mallory@example.com", "mallorx@example.com");
        let post = base64::engine::general_purpose::STANDARD.encode(tampered);
        let reply = post_acs(&b, B_ACS, &post, "/").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    }
    for _ in 0..HANDSHAKES {
        let status = std::process::Command::new("openssl")
            .args(["s_client", "-brief", "-connect"])
            .arg(f.gw.https.to_string())
            .args(["-servername", "127.0.0.1"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl s_client (Debian package openssl)");
        assert!(status.success(), "handshake with an IP address as SNI");
    }

    // Every line was produced and counted (lines arrive through a pipe).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (xmlsec, rustls) = (
            library_log_events(admin, "xmlsec").await,
            library_log_events(admin, "rustls").await,
        );
        if xmlsec >= POSTS && rustls >= HANDSHAKES {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "counted {xmlsec} xmlsec lines of {POSTS} posts and {rustls} rustls warnings \
             of {HANDSHAKES} handshakes; stderr: {:?}",
            f.gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stderr = f.gw.stderr();
    assert!(
        !stderr.iter().any(|l| l.contains("xmlSec")),
        "raw xmlsec output on stderr: {stderr:?}"
    );
    let logs = f.gw.logs();
    let written = |target: &str| {
        logs.iter()
            .filter(|l| l.contains(&format!("\"target\":\"{target}")))
            .count()
    };
    // One per 10 s interval: two if the test straddles an interval's end.
    assert!((1..=2).contains(&written("portcullis::xmlsec")), "{logs:?}");
    assert!((1..=2).contains(&written("rustls")), "{logs:?}");
    let refused = logs
        .iter()
        .filter(|l| l.contains("no session created"))
        .count();
    assert_eq!(refused as u64, POSTS, "each post has its own outcome line");
}

/// An app with an encryption key (`sp_encryption_key`) is registered with
/// the embedded IdP with `encrypt_assertions`: what crosses the browser is
/// an EncryptedAssertion naming nobody, and the gateway decrypts it (xmlsec)
/// and signs bob in as from a plain one.
#[tokio::test]
async fn the_embedded_idp_encrypts_for_an_app_with_an_encryption_key() {
    const D: &str = "https://d.test";
    const D_ACS: &str = "https://d.test/_portcullis/saml/acs";
    let keys = tempfile::tempdir().expect("dir");
    let enc =
        portcullis_saml::EncryptionKey::generate_self_signed("e2e sp encryption", 2).expect("key");
    let key_path = keys.path().join("enc-key.pem");
    let cert_path = keys.path().join("enc.pem");
    std::fs::write(&key_path, enc.private_key_pem()).expect("write");
    std::fs::write(&cert_path, enc.cert_pem().expect("pem")).expect("write");
    let app_keys = format!(
        "sp_encryption_key = \"{}\"\nsp_encryption_cert = \"{}\"\n",
        key_path.display(),
        cert_path.display()
    );
    let f = start_with("", &[("d", D, "builtin:echo", &app_keys)]);
    let b = f.gw.browser();
    let metadata = b.get(&format!("{D}/_portcullis/saml/metadata")).await;
    assert!(
        metadata.text().contains("use=\"encryption\""),
        "{}",
        metadata.text()
    );
    let posted = sso(&b, "pc_d_rs", &format!("{D}/page"), D_ACS).await;
    let xml = base64::engine::general_purpose::STANDARD
        .decode(&posted.saml_response)
        .expect("base64");
    let xml = String::from_utf8(xml).expect("utf-8");
    assert!(xml.contains("EncryptedAssertion"), "{xml}");
    assert!(
        !xml.contains("bob@example.com") && !xml.contains("AttributeStatement"),
        "the assertion is not readable on the way: {xml}"
    );
    let landed = post_acs(&b, D_ACS, &posted.saml_response, &posted.relay_state).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text());
    let page = get_json(&b, &format!("{D}/page")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_eq!(page.echoed("x-portcullis-user"), ["bob@example.com"]);
}
