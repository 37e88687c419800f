//! The embedded IdP's SAML endpoints through the real binary: metadata,
//! SP-initiated SSO over the Redirect (signed) and POST bindings, request
//! checks, MFA in the AuthnContext, IdP-initiated SSO and an app policy
//! that denies. The test plays the SP with the `portcullis-saml` crate and
//! verifies every Response the way the gateway's SP will.

use base64::Engine as _;
use http::{header, Method, Request, StatusCode};
use portcullis_idp::directory::{totp_code_at, TotpSecret};
use portcullis_idp::session::hash_token;
use portcullis_saml::{
    build_redirect_authn_request, verify_response, AuthnContextClass, AuthnRequestParams,
    Expectations, SigningKey, SpConfig, VerifiedAssertion,
};
use serde_json::Value;
use test_support::browser::{input_value, url_encode, Browser};
use test_support::{Client, Reply};
use time::OffsetDateTime;

use crate::process::Gateway;

const USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/users.toml");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/policies.toml");

const IDP: &str = "https://a.test";
const IDP_ENTITY: &str = "https://a.test/sso/saml/metadata";
const SSO_URL: &str = "https://a.test/sso/saml";

/// Signs its requests (`signing_cert` configured).
const SP_ENTITY: &str = "https://portal.test/saml/metadata";
const SP_ACS: &str = "https://portal.test/saml/acs";
/// Unsigned requests allowed; used for the POST binding.
const OPEN_ENTITY: &str = "https://open.test/saml/metadata";
const OPEN_ACS: &str = "https://open.test/saml/acs";
/// Its app policy allows only admins.
const LOCKED_ENTITY: &str = "https://locked.test/saml/metadata";
const LOCKED_ACS: &str = "https://locked.test/saml/acs";
/// Its app policy requires a verified second factor (MFA step-up).
const VAULT_ENTITY: &str = "https://vault.test/saml/metadata";
const VAULT_ACS: &str = "https://vault.test/saml/acs";

const ADMIN_TOKEN: &str = "e2e-sso-admin-token";
const ALICE_TOTP: &str = "MFWGSY3FFVSGK3LPFV2G65DQFVVWK6JB";

struct Fixture {
    gw: Gateway,
    sp_key: SigningKey,
    idp_cert_der: Vec<u8>,
    idp_cert_pem: String,
    _keys: tempfile::TempDir,
}

fn start() -> Fixture {
    let keys = tempfile::tempdir().expect("dir");
    let idp_key = SigningKey::generate_self_signed("e2e idp", 2).expect("idp key");
    let sp_key = SigningKey::generate_self_signed("e2e sp", 2).expect("sp key");
    let write = |name: &str, data: &[u8]| {
        let path = keys.path().join(name);
        std::fs::write(&path, data).expect("write");
        path.display().to_string()
    };
    let idp_key_path = write("idp-key.pem", &idp_key.key_pem().expect("pem"));
    let idp_cert_path = write("idp.pem", &idp_key.cert_pem().expect("pem"));
    let sp_cert_path = write("sp.pem", &sp_key.cert_pem().expect("pem"));
    let policies = format!(
        "{}\n[app_policy.locked]\ngroups_allowed = [\"admins\"]\n\n[app_policy.vault]\nmfa = \"required\"\n",
        std::fs::read_to_string(POLICIES).expect("demo policies")
    );
    // The demo users plus dana: staff (so no MFA at sign-in on this
    // machine) with an enrolled authenticator, for MFA step-up.
    let demo_users = std::fs::read_to_string(USERS).expect("demo users");
    let bob_hash = demo_users
        .split("login = \"bob\"")
        .nth(1)
        .and_then(|rest| rest.split("password_hash = \"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("bob's hash");
    let users = format!(
        "{demo_users}\n[[user]]\nid = \"00u4dana\"\nlogin = \"dana\"\nemail = \"dana@example.com\"\nfirst_name = \"Dana\"\nlast_name = \"Dale\"\ngroups = [\"staff\"]\npassword_hash = \"{bob_hash}\"\ntotp_secret = \"{ALICE_TOTP}\"\nstatus = \"ACTIVE\"\n"
    );
    let users_path = write("users.toml", users.as_bytes());
    let policy_path = write("policies.toml", policies.as_bytes());
    let config = format!(
        "[idp]
public_url = \"{IDP}/\"
users_file = \"{users_path}\"
policy_file = \"{policy_path}\"
system_log_file = \"system-log.jsonl\"
signing_key = \"{idp_key_path}\"
signing_cert = \"{idp_cert_path}\"

[[idp.api_token]]
name = \"e2e-admin\"
sha256 = \"{admin}\"
scopes = [\"okta.sessions.read\", \"okta.sessions.manage\", \"okta.logs.read\"]

[[idp.service_provider]]
name = \"portal\"
entity_id = \"{SP_ENTITY}\"
acs_url = \"{SP_ACS}\"
signing_cert = \"{sp_cert_path}\"

[[idp.service_provider]]
name = \"open\"
entity_id = \"{OPEN_ENTITY}\"
acs_url = \"{OPEN_ACS}\"
name_id_format = \"unspecified\"

[[idp.service_provider]]
name = \"locked\"
entity_id = \"{LOCKED_ENTITY}\"
acs_url = \"{LOCKED_ACS}\"

[[idp.service_provider]]
name = \"vault\"
entity_id = \"{VAULT_ENTITY}\"
acs_url = \"{VAULT_ACS}\"
",
        admin = hash_token(ADMIN_TOKEN),
    );
    Fixture {
        gw: Gateway::start("", &config),
        sp_key,
        idp_cert_der: idp_key.cert_der().expect("der"),
        idp_cert_pem: String::from_utf8(idp_key.cert_pem().expect("pem")).expect("utf8"),
        _keys: keys,
    }
}

/// A signed Redirect-binding AuthnRequest URL and its id.
fn authn_request(
    f: &Fixture,
    entity_id: &str,
    acs_url: &str,
    force_authn: bool,
) -> (String, String) {
    let cfg = SpConfig {
        entity_id: entity_id.into(),
        acs_url: acs_url.into(),
        slo_url: format!("{entity_id}/slo"),
    };
    let req = build_redirect_authn_request(
        &cfg,
        &f.sp_key,
        &AuthnRequestParams {
            idp_sso_url: SSO_URL,
            relay_state: Some("rs-123"),
            force_authn,
            name_id_format: None,
            now: chrono::Utc::now(),
        },
    )
    .expect("request");
    (req.url, req.request_id)
}

/// The `fromURI` of a `/login?fromURI=…` redirect.
fn from_uri(login_location: &str) -> String {
    let query = login_location
        .strip_prefix("/login?")
        .unwrap_or_else(|| panic!("not a sign-in redirect: {login_location}"));
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "fromURI")
        .map(|(_, v)| v.into_owned())
        .expect("fromURI")
}

async fn sign_in(b: &Browser, username: &str, password: &str, from: &str) -> Reply {
    let form = b
        .get(&format!("{IDP}/login?fromURI={}", url_encode(from)))
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    let csrf = input_value(&form.text(), "csrf").expect("csrf");
    b.post_form(
        &format!("{IDP}/login"),
        &[
            ("csrf", &csrf),
            ("fromURI", from),
            ("username", username),
            ("password", password),
        ],
    )
    .await
}

/// Signs bob in with a password; returns where sign-in sent the browser.
async fn sign_in_bob(b: &Browser, from: &str) -> String {
    let done = sign_in(b, "bob", "bob-demo-pass", from).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    done.location()
}

/// The auto-submit page's SAMLResponse, checked for the CSP and the ACS.
fn saml_response(reply: &Reply, acs: &str) -> String {
    let html = reply.text();
    assert_eq!(reply.status, StatusCode::OK, "{html}");
    assert!(
        html.contains(&format!("action=\"{acs}\"")),
        "form posts to the ACS: {html}"
    );
    assert!(html.contains("<button type=\"submit\""), "{html}");
    let csp = reply.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    let acs_origin = &acs[..acs[8..].find('/').expect("path") + 8];
    assert!(csp.contains(&format!("form-action {acs_origin}")), "{csp}");
    input_value(&html, "SAMLResponse").expect("SAMLResponse field")
}

fn verify(
    f: &Fixture,
    response: &str,
    sp_entity: &str,
    acs: &str,
    in_response_to: Option<String>,
) -> VerifiedAssertion {
    let expect = Expectations::new(
        sp_entity,
        acs,
        IDP_ENTITY,
        vec![f.idp_cert_der.clone()],
        in_response_to,
    );
    verify_response(response, &expect, chrono::Utc::now()).expect("the IdP's response verifies")
}

fn attribute<'a>(v: &'a VerifiedAssertion, name: &str) -> &'a [String] {
    v.attributes
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, values)| values.as_slice())
        .unwrap_or_else(|| panic!("no {name} attribute: {v:?}"))
}

async fn logs(f: &Fixture, filter: &str) -> Vec<Value> {
    let reply = Client::http1(&f.gw.pki, f.gw.https)
        .send(
            Request::builder()
                .method(Method::GET)
                .uri(format!("{IDP}/api/v1/logs?filter={}", url_encode(filter)))
                .header(header::AUTHORIZATION, format!("SSWS {ADMIN_TOKEN}"))
                .body(Client::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json().as_array().expect("events").clone()
}

#[tokio::test]
async fn metadata_names_the_entity_id_and_the_signing_cert() {
    let f = start();
    let reply =
        f.gw.browser()
            .get(&format!("{IDP}/sso/saml/metadata"))
            .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "application/samlmetadata+xml"
    );
    let xml = reply.text();
    assert!(xml.contains(&format!("entityID=\"{IDP_ENTITY}\"")), "{xml}");
    let cert_b64: String = f
        .idp_cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(xml.contains(&cert_b64), "{xml}");
    assert!(xml.contains(&format!("Location=\"{SSO_URL}\"")), "{xml}");
}

#[tokio::test]
async fn sp_initiated_sign_in_then_sso_without_password() {
    let f = start();
    let b = f.gw.browser();
    let (url, request_id) = authn_request(&f, SP_ENTITY, SP_ACS, false);
    let first = b.get(&url).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.text());
    let from = from_uri(&first.location());
    assert!(from.starts_with("/sso/saml?SAMLRequest="), "{from}");

    let back = sign_in_bob(&b, &from).await;
    assert_eq!(back, from);
    let form = b.get(&format!("{IDP}{back}")).await;
    let response = saml_response(&form, SP_ACS);
    assert_eq!(
        input_value(&form.text(), "RelayState").as_deref(),
        Some("rs-123")
    );
    let v = verify(&f, &response, SP_ENTITY, SP_ACS, Some(request_id));
    assert_eq!(v.name_id, "bob@example.com");
    assert!(
        attribute(&v, "groups").contains(&"staff".to_string()),
        "{v:?}"
    );
    assert_eq!(attribute(&v, "email"), ["bob@example.com"]);
    assert!(v.session_index.as_deref().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        v.authn_context_class.as_deref(),
        Some(AuthnContextClass::PasswordProtectedTransport.uri())
    );

    // (c) With the session, a second request goes straight to the form.
    let (url, second_id) = authn_request(&f, SP_ENTITY, SP_ACS, false);
    let again = b.get(&url).await;
    let response = saml_response(&again, SP_ACS);
    let v2 = verify(&f, &response, SP_ENTITY, SP_ACS, Some(second_id));
    assert_eq!(v2.session_index, v.session_index);

    // ForceAuthn asks for the password again, then answers.
    let (url, forced_id) = authn_request(&f, SP_ENTITY, SP_ACS, true);
    let forced = b.get(&url).await;
    assert_eq!(forced.status, StatusCode::SEE_OTHER, "{}", forced.text());
    let from = from_uri(&forced.location());
    assert!(from.contains("pc_reauth="), "{from}");
    let back = sign_in_bob(&b, &from).await;
    let form = b.get(&format!("{IDP}{back}")).await;
    let response = saml_response(&form, SP_ACS);
    let v3 = verify(&f, &response, SP_ENTITY, SP_ACS, Some(forced_id));
    // Re-authentication refreshes the same IdP session (Single Logout
    // must still find every SP of it) rather than starting another.
    assert_eq!(v3.session_index, v.session_index);

    let ok = logs(
        &f,
        "eventType eq \"user.authentication.sso\" and outcome.result eq \"SUCCESS\"",
    )
    .await;
    assert_eq!(ok.len(), 3, "{ok:?}");
}

#[tokio::test]
async fn bad_requests_get_a_400_page() {
    let f = start();
    let b = f.gw.browser();
    let (unknown, _) = authn_request(&f, "https://stranger.test/sp", SP_ACS, false);
    let reply = b.get(&unknown).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert!(reply.text().contains("not registered"), "{}", reply.text());

    let (wrong_acs, _) = authn_request(&f, SP_ENTITY, "https://portal.test/elsewhere", false);
    let reply = b.get(&wrong_acs).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());

    let (url, _) = authn_request(&f, SP_ENTITY, SP_ACS, false);
    assert!(url.contains("RelayState=rs-123"));
    let tampered = url.replace("RelayState=rs-123", "RelayState=rs-124");
    let reply = b.get(&tampered).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());

    let reply = b.get(&format!("{IDP}/sso/saml?SAMLRequest=%%%")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());

    // A correctly signed request issued two hours ago is stale.
    let stale = build_redirect_authn_request(
        &SpConfig {
            entity_id: SP_ENTITY.into(),
            acs_url: SP_ACS.into(),
            slo_url: format!("{SP_ENTITY}/slo"),
        },
        &f.sp_key,
        &AuthnRequestParams {
            idp_sso_url: SSO_URL,
            relay_state: None,
            force_authn: false,
            name_id_format: None,
            now: chrono::Utc::now() - chrono::Duration::hours(2),
        },
    )
    .expect("request");
    let reply = b.get(&stale.url).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert!(reply.text().contains("too old"), "{}", reply.text());

    let failures = logs(
        &f,
        "eventType eq \"user.authentication.sso\" and outcome.result eq \"FAILURE\"",
    )
    .await;
    assert_eq!(failures.len(), 3, "{failures:?}");
}

#[tokio::test]
async fn mfa_sessions_assert_multifactor() {
    let f = start();
    let b = f.gw.browser();
    let (url, request_id) = authn_request(&f, SP_ENTITY, SP_ACS, false);
    let from = from_uri(&b.get(&url).await.location());
    let password_ok = sign_in(&b, "alice", "alice-demo-pass", &from).await;
    assert_eq!(password_ok.status, StatusCode::SEE_OTHER);
    let mfa = password_ok.location();
    assert!(mfa.starts_with("/login/mfa?"), "{mfa}");
    let form = b.get(&format!("{IDP}{mfa}")).await;
    let csrf = input_value(&form.text(), "csrf").expect("csrf");
    let secret = TotpSecret::from_base32(ALICE_TOTP).expect("secret");
    let code = totp_code_at(&secret, OffsetDateTime::now_utc()).expect("code");
    let verified = b
        .post_form(
            &format!("{IDP}/login/mfa"),
            &[("csrf", &csrf), ("fromURI", &from), ("code", &code)],
        )
        .await;
    assert_eq!(
        verified.status,
        StatusCode::SEE_OTHER,
        "{}",
        verified.text()
    );
    assert_eq!(verified.location(), from);
    let form = b.get(&format!("{IDP}{from}")).await;
    let v = verify(
        &f,
        &saml_response(&form, SP_ACS),
        SP_ENTITY,
        SP_ACS,
        Some(request_id),
    );
    assert_eq!(v.name_id, "alice@example.com");
    assert_eq!(
        v.authn_context_class.as_deref(),
        Some(AuthnContextClass::MultiFactor.uri())
    );
}

#[tokio::test]
async fn idp_initiated_sso_is_unsolicited_and_listed_on_the_home_page() {
    let f = start();
    let b = f.gw.browser();
    let launch = b.get(&format!("{IDP}/app/portal/sso/saml")).await;
    assert_eq!(launch.status, StatusCode::SEE_OTHER);
    let from = from_uri(&launch.location());
    assert_eq!(from, "/app/portal/sso/saml");
    assert_eq!(sign_in_bob(&b, &from).await, from);

    let home = b.get(&format!("{IDP}/")).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.text().contains("href=\"/app/portal/sso/saml\""),
        "{}",
        home.text()
    );

    let form = b.get(&format!("{IDP}/app/portal/sso/saml")).await;
    let v = verify(&f, &saml_response(&form, SP_ACS), SP_ENTITY, SP_ACS, None);
    assert_eq!(v.name_id, "bob@example.com");
    assert!(input_value(&form.text(), "RelayState").is_none());

    let missing = b.get(&format!("{IDP}/app/nope/sso/saml")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn post_binding_is_parked_across_sign_in() {
    let f = start();
    let b = f.gw.browser();
    let request_id = "_e2e0123456789abcdef";
    let xml = format!(
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{request_id}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{SSO_URL}\" AssertionConsumerServiceURL=\"{OPEN_ACS}\"><saml:Issuer>{OPEN_ENTITY}</saml:Issuer></samlp:AuthnRequest>",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(xml);
    let posted = b
        .post_form(
            &format!("{IDP}/sso/saml"),
            &[("SAMLRequest", &encoded), ("RelayState", "post-rs")],
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.text());
    let from = from_uri(&posted.location());
    assert!(from.starts_with("/sso/saml/continue?id="), "{from}");
    assert_eq!(sign_in_bob(&b, &from).await, from);
    let form = b.get(&format!("{IDP}{from}")).await;
    assert_eq!(
        input_value(&form.text(), "RelayState").as_deref(),
        Some("post-rs")
    );
    let v = verify(
        &f,
        &saml_response(&form, OPEN_ACS),
        OPEN_ENTITY,
        OPEN_ACS,
        Some(request_id.to_string()),
    );
    assert_eq!(v.name_id, "bob", "unspecified NameID is the login");

    // Used once: the parked request is gone.
    let again = b.get(&format!("{IDP}{from}")).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);

    // An SP configured to sign cannot send an unsigned POST request.
    let signed_sp = xml_for(SP_ENTITY, SP_ACS);
    let refused = b
        .post_form(&format!("{IDP}/sso/saml"), &[("SAMLRequest", &signed_sp)])
        .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
}

#[tokio::test]
async fn is_passive_without_a_session_answers_no_passive_at_the_acs() {
    let f = start();
    let b = f.gw.browser();
    let xml = format!(
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_passive1\" Version=\"2.0\" IssueInstant=\"{}\" IsPassive=\"true\" AssertionConsumerServiceURL=\"{OPEN_ACS}\"><saml:Issuer>{OPEN_ENTITY}</saml:Issuer></samlp:AuthnRequest>",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(xml);
    let reply = b
        .post_form(
            &format!("{IDP}/sso/saml"),
            &[("SAMLRequest", &encoded), ("RelayState", "passive-rs")],
        )
        .await;
    // No sign-in page: straight back to the SP with a signed status.
    let response = saml_response(&reply, OPEN_ACS);
    assert_eq!(
        input_value(&reply.text(), "RelayState").as_deref(),
        Some("passive-rs")
    );
    let expect = Expectations::new(
        OPEN_ENTITY,
        OPEN_ACS,
        IDP_ENTITY,
        vec![f.idp_cert_der.clone()],
        Some("_passive1".into()),
    );
    match verify_response(&response, &expect, chrono::Utc::now()) {
        Err(portcullis_saml::Error::Status { code }) => assert!(
            code.ends_with("status:Responder / urn:oasis:names:tc:SAML:2.0:status:NoPassive"),
            "{code}"
        ),
        other => panic!("expected a NoPassive status, got {other:?}"),
    }
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&response)
            .expect("base64"),
    )
    .expect("utf8");
    assert!(xml.contains("InResponseTo=\"_passive1\""), "{xml}");
    assert!(xml.contains("<ds:SignatureValue>"), "signed: {xml}");
    assert!(!xml.contains("Assertion"), "no assertion: {xml}");
}

fn xml_for(entity: &str, acs: &str) -> String {
    let xml = format!(
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_x1\" Version=\"2.0\" IssueInstant=\"{}\" AssertionConsumerServiceURL=\"{acs}\"><saml:Issuer>{entity}</saml:Issuer></samlp:AuthnRequest>",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
    );
    base64::engine::general_purpose::STANDARD.encode(xml)
}

#[tokio::test]
async fn app_policy_denial_is_403_and_logged() {
    let f = start();
    let b = f.gw.browser();
    sign_in_bob(&b, "/").await;
    let denied = b.get(&format!("{IDP}/app/locked/sso/saml")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text());
    assert!(!denied.text().contains("SAMLResponse"));
    let events = logs(
        &f,
        "eventType eq \"user.authentication.sso\" and outcome.result eq \"DENY\"",
    )
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor"]["alternateId"], "bob", "{}", events[0]);
    assert_eq!(events[0]["target"][0]["id"], LOCKED_ENTITY, "{}", events[0]);
}

#[tokio::test]
async fn app_policy_steps_up_to_mfa_within_the_session() {
    let f = start();
    let b = f.gw.browser();
    // dana signs in with a password only (staff on this machine).
    let home = sign_in(&b, "dana", "bob-demo-pass", "/").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER, "{}", home.text());
    assert!(
        !home.location().starts_with("/login/mfa"),
        "{}",
        home.location()
    );

    // The vault needs MFA: the same session is asked for a code.
    let launch = b.get(&format!("{IDP}/app/vault/sso/saml")).await;
    assert_eq!(launch.status, StatusCode::SEE_OTHER, "{}", launch.text());
    let step_up = launch.location();
    assert!(step_up.starts_with("/login/mfa?"), "{step_up}");
    assert!(step_up.contains("stepup=1"), "{step_up}");
    let from = form_urlencoded::parse(step_up.split_once('?').expect("query").1.as_bytes())
        .find(|(k, _)| k == "fromURI")
        .map(|(_, v)| v.into_owned())
        .expect("fromURI");
    assert_eq!(from, "/app/vault/sso/saml");
    let form = b.get(&format!("{IDP}{step_up}")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    let csrf = input_value(&form.text(), "csrf").expect("csrf");
    assert_eq!(input_value(&form.text(), "stepup").as_deref(), Some("1"));

    // A wrong code keeps the step-up form; the right one returns to the app.
    let wrong = b
        .post_form(
            &format!("{IDP}/login/mfa"),
            &[
                ("csrf", &csrf),
                ("fromURI", &from),
                ("stepup", "1"),
                ("code", "000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text());
    assert_eq!(input_value(&wrong.text(), "stepup").as_deref(), Some("1"));
    let secret = TotpSecret::from_base32(ALICE_TOTP).expect("secret");
    let code = totp_code_at(&secret, OffsetDateTime::now_utc()).expect("code");
    let verified = b
        .post_form(
            &format!("{IDP}/login/mfa"),
            &[
                ("csrf", &csrf),
                ("fromURI", &from),
                ("stepup", "1"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(
        verified.status,
        StatusCode::SEE_OTHER,
        "{}",
        verified.text()
    );
    assert_eq!(verified.location(), from);
    let issued = b.get(&format!("{IDP}{from}")).await;
    let v = verify(
        &f,
        &saml_response(&issued, VAULT_ACS),
        VAULT_ENTITY,
        VAULT_ACS,
        None,
    );
    assert_eq!(v.name_id, "dana@example.com");
    assert_eq!(
        v.authn_context_class.as_deref(),
        Some(AuthnContextClass::MultiFactor.uri())
    );

    // bob has no authenticator: the vault refuses him with a page.
    let bob = f.gw.browser();
    sign_in_bob(&bob, "/").await;
    let refused = bob.get(&format!("{IDP}/app/vault/sso/saml")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    assert!(
        refused.text().contains("none is enrolled"),
        "{}",
        refused.text()
    );
}
