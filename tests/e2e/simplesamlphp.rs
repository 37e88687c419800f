//! Interop with SimpleSAMLphp 1.19 (Debian's `simplesamlphp` package) in
//! both roles, one `php -S` process per test serving
//! /usr/share/simplesamlphp/www with the config templates of
//! tests/interop/simplesamlphp/ (copied into the test's
//! `SIMPLESAMLPHP_CONFIG_DIR`, parameters in its `test.json`):
//! - as an SP (`saml:SP`) registered with the embedded IdP from the
//!   metadata SimpleSAMLphp serves: its session holds the user's
//!   attributes under the urn:oid names, the NameID format it asks for,
//!   an assertion it decrypted, and it ends with SP-initiated Single
//!   Logout; it refuses assertions once its metadata pins another IdP
//!   certificate;
//! - as an SP registered through `metadata_url` of its SP metadata page,
//!   signed by SimpleSAMLphp (`metadata.sign.*`; refused when pinned to
//!   another key or signed with RSA-SHA1), with an SQL store (sqlite): a
//!   revoked IdP session reaches it as a SOAP LogoutRequest and ends its
//!   session (SimpleSAMLphp 1.19 then fails to answer, see the test);
//! - as an IdP (exampleauth:UserPass) that gateway apps trust through
//!   `idp = { metadata_url = … }` of its signed metadata page (refused at
//!   `check` when pinned to another key; a refresh signed by another key
//!   is refused and the last good copy kept) and `{ metadata_file = … }`:
//!   it encrypts the assertion for the app, the backend gets the identity
//!   headers, a Response for another app is refused, and logout from the
//!   app goes through SimpleSAMLphp's Single Logout and back.
//!
//! SimpleSAMLphp runs plain http on 127.0.0.1 (PHP's built-in server has no
//! TLS); the gateway side is real TLS as everywhere. The test browser
//! carries every message, and reaches SimpleSAMLphp's host name on its
//! explicit port (the browser's resolver maps every name to 127.0.0.1);
//! what the gateway itself fetches or posts to goes to 127.0.0.1.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::StatusCode;
use portcullis_saml::{cert_der_from_pem, EncryptionKey, SigningKey};
use serde_json::{json, Value};
use test_support::browser::{input_value, Browser};
use test_support::{Pki, Reply};

use crate::check::check;
use crate::interop::{to_the_acs_form, IDP, IDP_ENTITY, POLICIES, USERS};
use crate::metadata_url::{wait_for_failure, Watched};
use crate::process::{admin_get, config_text, Gateway, WITH_ADMIN};
use crate::slo_soap::{admin_api_token, revoke_bobs_sessions, soap_logout_outcome};

const TEMPLATES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/interop/simplesamlphp"
);
const WWW: &str = "/usr/share/simplesamlphp/www";
/// How long SimpleSAMLphp may take to serve its first page.
const START_DEADLINE: Duration = Duration::from_secs(15);

const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
const TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
const EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// SimpleSAMLphp under `php -S`, killed on drop.
struct SimpleSamlPhp {
    child: Child,
    addr: SocketAddr,
    /// `http://{host}:{port}/`: SimpleSAMLphp's `baseurlpath`.
    base: String,
    test: Value,
    dir: tempfile::TempDir,
}

impl SimpleSamlPhp {
    /// Starts SimpleSAMLphp as `host` with `test` (test.json without the
    /// base URL and salt) and `files` (path in the config dir, contents),
    /// once it serves `ready` (a path under the base URL).
    async fn start(host: &str, test: Value, files: &[(&str, &[u8])], ready: &str) -> SimpleSamlPhp {
        assert!(
            Path::new(WWW).join("module.php").is_file()
                && Command::new("php")
                    .arg("-v")
                    .output()
                    .is_ok_and(|o| o.status.success()),
            "SimpleSAMLphp or php is missing; run `make test-deps` (Debian: simplesamlphp php-cli php-xml)"
        );
        if test.get("sql_store").is_some() {
            let modules = Command::new("php").arg("-m").output().expect("php -m");
            assert!(
                String::from_utf8_lossy(&modules.stdout).contains("pdo_sqlite"),
                "php has no pdo_sqlite for SimpleSAMLphp's SQL store; run `make test-deps` (Debian: php-sqlite3)"
            );
        }
        let dir = tempfile::tempdir().expect("dir");
        for sub in ["cert", "log", "data", "tmp", "metadata", "sessions"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        for file in [
            "config.php",
            "authsources.php",
            "metadata/saml20-idp-remote.php",
            "metadata/saml20-sp-remote.php",
            "metadata/saml20-idp-hosted.php",
        ] {
            std::fs::copy(Path::new(TEMPLATES).join(file), dir.path().join(file))
                .unwrap_or_else(|e| panic!("copy {file}: {e}"));
        }
        for (name, data) in files {
            std::fs::write(dir.path().join(name), data).expect("write");
        }
        for _attempt in 0..5 {
            let addr = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port");
            let base = format!("http://{host}:{}/", addr.port());
            let mut test = test.clone();
            test["baseurl"] = json!(base);
            test["secretsalt"] = json!(format!("portcullis-test-{}", addr.port()));
            std::fs::write(dir.path().join("test.json"), test.to_string()).expect("write");
            let access_log =
                std::fs::File::create(dir.path().join("log/php-server.log")).expect("access log");
            let mut child = Command::new("php")
                .args(["-S", &addr.to_string(), "-t", WWW])
                .arg(Path::new(TEMPLATES).join("router.php"))
                .env("SIMPLESAMLPHP_CONFIG_DIR", dir.path())
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(access_log)
                .spawn()
                .expect("php runs");
            if serves(
                &mut child,
                &dir.path().join("log/php-server.log"),
                addr,
                ready,
            )
            .await
            {
                return SimpleSamlPhp {
                    child,
                    addr,
                    base,
                    test,
                    dir,
                };
            }
            // The port was taken between choosing and binding: another.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("SimpleSAMLphp did not start");
    }

    /// `GET {base}{path}`, which must answer 200: the body.
    async fn fetch(&self, path: &str) -> String {
        match admin_get(self.addr, &format!("/{path}")).await {
            Some((200, reply)) => reply
                .split_once("\r\n\r\n")
                .map(|(_, body)| body.to_string())
                .unwrap_or_default(),
            other => panic!(
                "GET {path}: {other:?}; php: {}; log: {}",
                std::fs::read_to_string(self.dir.path().join("log/php-server.log"))
                    .unwrap_or_default(),
                self.log()
            ),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A file in the config dir, e.g. a metadata file test.json names.
    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).expect("write");
        path
    }

    /// Changes test.json; SimpleSAMLphp reads it on its next request.
    fn update(&mut self, change: impl FnOnce(&mut Value)) {
        change(&mut self.test);
        self.write("test.json", self.test.to_string().as_bytes());
    }

    /// From the next request on, SimpleSAMLphp signs the metadata its IdP
    /// and SP pages serve with `key` (`metadata.sign.*`), its files in
    /// cert/ as `{name}-key.pem` and `{name}.pem`.
    fn sign_metadata_with(&mut self, name: &str, key: &SigningKey) {
        let (private, cert) = (format!("{name}-key.pem"), format!("{name}.pem"));
        self.write(&format!("cert/{private}"), &key.key_pem().expect("pem"));
        self.write(&format!("cert/{cert}"), &key.cert_pem().expect("pem"));
        self.update(|t| t["metadata_sign"] = json!({"privatekey": private, "certificate": cert}));
    }

    /// SimpleSAMLphp's own log, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/simplesamlphp.log")).unwrap_or_default()
    }
}

impl Drop for SimpleSamlPhp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `child` bound `addr` (its `access_log` says so: a server of
/// another test may hold a port this one failed to take) and `path`
/// answers 200, before the deadline and before php exits.
async fn serves(child: &mut Child, access_log: &Path, addr: SocketAddr, path: &str) -> bool {
    let started = format!("(http://{addr}) started");
    let deadline = Instant::now() + START_DEADLINE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let bound = std::fs::read_to_string(access_log).is_ok_and(|log| log.contains(&started));
        if bound && matches!(admin_get(addr, &format!("/{path}")).await, Some((200, _))) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The `action` of the first form in `html`, as the browser would post it.
fn form_action(html: &str) -> Option<String> {
    let at = html.find("<form")?;
    let tag = &html[at..at + html[at..].find('>')?];
    let value = tag.split_once("action=\"")?.1;
    Some(unescape(value.get(..value.find('"')?)?))
}

/// The HTML escapes SimpleSAMLphp's and Portcullis's templates write in
/// attribute values.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#039;", "'")
        .replace("&#x2F;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `Location` of a redirect, absolute against `origin` when relative.
fn redirect_target(reply: &Reply, origin: &str) -> String {
    assert!(
        reply.status.is_redirection(),
        "not a redirect: {} {}",
        reply.status,
        reply.text()
    );
    let location = reply.location();
    if location.starts_with('/') {
        format!("{}{location}", origin.trim_end_matches('/'))
    } else {
        location
    }
}

/// `scheme://authority` of an absolute URL.
fn origin(url: &str) -> &str {
    let authority = url.find("://").map_or(0, |i| i + 3);
    url[authority..]
        .find('/')
        .map_or(url, |end| &url[..authority + end])
}

/// The XML inside a posted `SAMLResponse`.
fn decoded(response_b64: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response_b64)
        .expect("base64");
    String::from_utf8(bytes).expect("utf8")
}

const SP_METADATA: &str = "module.php/saml/sp/metadata.php/default-sp";

/// One SP-initiated sign-in of SimpleSAMLphp at the embedded IdP, bob
/// signing in when the browser has no IdP session: what SimpleSAMLphp's
/// session then holds (whoami.php) and the Response's XML, or the ACS's
/// reply when SimpleSAMLphp did not sign in.
async fn ssp_signs_in(b: &Browser, ssp: &SimpleSamlPhp) -> Result<(Value, String), Reply> {
    let start = b.get(&ssp.url("portcullis-test/login.php")).await;
    let location = redirect_target(&start, &ssp.base);
    assert!(
        location.starts_with(&format!("{IDP}/sso/saml?"))
            && location.contains("Signature=")
            && location
                .contains("SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256"),
        "SimpleSAMLphp's signed Redirect AuthnRequest: {location}"
    );
    let page = to_the_acs_form(b, &location).await;
    let html = page.text();
    assert_eq!(page.status, StatusCode::OK, "{html}");
    let acs = form_action(&html).expect("a form");
    assert_eq!(
        acs,
        ssp.url("module.php/saml/sp/saml2-acs.php/default-sp"),
        "{html}"
    );
    let response = input_value(&html, "SAMLResponse").expect("SAMLResponse");
    let relay_state = input_value(&html, "RelayState").map(|r| unescape(&r));
    let mut fields = vec![("SAMLResponse", response.as_str())];
    if let Some(relay_state) = &relay_state {
        fields.push(("RelayState", relay_state));
    }
    let reply = b.post_form(&acs, &fields).await;
    if !reply.status.is_redirection() {
        return Err(reply);
    }
    assert_eq!(
        redirect_target(&reply, &ssp.base),
        ssp.url("portcullis-test/whoami.php")
    );
    Ok((whoami(b, ssp).await, decoded(&response)))
}

/// What SimpleSAMLphp's session holds for this browser.
async fn whoami(b: &Browser, ssp: &SimpleSamlPhp) -> Value {
    let page = b.get(&ssp.url("portcullis-test/whoami.php")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    page.json()
}

/// `xml` with the base64 of every X509Certificate replaced by `der`'s.
fn with_certificate(xml: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    xml.split('<')
        .enumerate()
        .map(|(i, part)| match part.split_once('>') {
            Some((tag, text))
                if i > 0
                    && !tag.starts_with('/')
                    && tag.ends_with("X509Certificate")
                    && !text.trim().is_empty() =>
            {
                format!("{tag}>{b64}")
            }
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join("<")
}

/// The embedded IdP (signing with `idp_key`, written into `files`, with
/// the Sessions API token and a System Log) and SimpleSAMLphp's SP as
/// `[[idp.service_provider]] name = "simplesamlphp"` with `registration`
/// (its metadata keys and options).
fn embedded_idp(files: &Path, idp_key: &SigningKey, registration: &str) -> String {
    let write = |name: &str, data: &[u8]| {
        let path = files.join(name);
        std::fs::write(&path, data).expect("write");
        path
    };
    format!(
        "[idp]
public_url = \"{IDP}/\"
users_file = \"{USERS}\"
policy_file = \"{POLICIES}\"
system_log_file = \"system-log.jsonl\"
signing_key = \"{}\"
signing_cert = \"{}\"
{}
[[idp.service_provider]]
name = \"simplesamlphp\"
{registration}
",
        write("idp-key.pem", &idp_key.key_pem().expect("pem")).display(),
        write("idp.pem", &idp_key.cert_pem().expect("pem")).display(),
        admin_api_token(),
    )
}

/// SimpleSAMLphp's SP trusts the embedded IdP of `b`'s gateway from the
/// metadata that IdP serves, which is returned.
async fn ssp_trusts_the_idp(b: &Browser, ssp: &mut SimpleSamlPhp) -> Reply {
    let idp_metadata = b.get(&format!("{IDP}/sso/saml/metadata")).await;
    assert_eq!(
        idp_metadata.status,
        StatusCode::OK,
        "{}",
        idp_metadata.text()
    );
    let idp_metadata_file = ssp.write("idp-metadata.xml", &idp_metadata.body);
    ssp.update(|t| t["sp"]["idp_metadata"] = json!([idp_metadata_file]));
    idp_metadata
}

#[tokio::test]
async fn simplesamlphp_sp_signs_in_through_the_embedded_idp() {
    let idp_key = SigningKey::generate_self_signed("portcullis idp", 2).expect("idp key");
    let sp_key = SigningKey::generate_self_signed("simplesamlphp sp", 2).expect("sp key");
    let mut ssp = SimpleSamlPhp::start(
        "sp.ssp.test",
        json!({"sp": {"idp": IDP_ENTITY, "name_id_format": EMAIL, "want_encrypted": true}}),
        &[
            ("cert/sp-key.pem", &sp_key.key_pem().expect("pem")),
            ("cert/sp.pem", &sp_key.cert_pem().expect("pem")),
        ],
        SP_METADATA,
    )
    .await;
    // The IdP registers SimpleSAMLphp from the metadata it serves: signed
    // requests, its ACS and SLO, its certificate for encryption too.
    let sp_metadata = ssp.fetch(SP_METADATA).await;
    assert!(
        sp_metadata.contains("AuthnRequestsSigned=\"true\"")
            && sp_metadata.contains("use=\"encryption\""),
        "{sp_metadata}"
    );
    let sp_metadata_file = ssp.write("sp-metadata.xml", sp_metadata.as_bytes());
    let keys = tempfile::tempdir().expect("dir");
    let config = embedded_idp(
        keys.path(),
        &idp_key,
        &format!(
            "metadata_file = \"{}\"
name_id_format = \"emailAddress\"
name_id_formats_allowed = [\"persistent\", \"transient\"]
attribute_preset = \"oid\"
encrypt_assertions = true",
            sp_metadata_file.display()
        ),
    );
    let gw = Gateway::start("", &config);
    let b = gw.browser();
    let idp_metadata = ssp_trusts_the_idp(&b, &mut ssp).await;

    // The IdP checks SimpleSAMLphp's signature: stripped, the request is
    // refused.
    let start = b.get(&ssp.url("portcullis-test/login.php")).await;
    let unsigned = redirect_target(&start, &ssp.base)
        .split('&')
        .filter(|p| !p.starts_with("Signature=") && !p.starts_with("SigAlg="))
        .collect::<Vec<_>>()
        .join("&");
    let refused = b.get(&unsigned).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );

    // Asking for emailAddress: bob's attributes under the urn:oid names,
    // which SimpleSAMLphp's stock oid2name map turns into LDAP names.
    let (me, xml) = ssp_signs_in(&b, &ssp)
        .await
        .unwrap_or_else(|r| panic!("SimpleSAMLphp refused: {}; {}", r.text(), ssp.log()));
    assert_eq!(me["authenticated"], true, "{me}");
    assert_eq!(me["idp"], IDP_ENTITY, "{me}");
    assert_eq!(me["name_id"], "bob@example.com", "{me}");
    assert_eq!(me["name_id_format"], EMAIL, "{me}");
    let attrs = &me["attributes"];
    assert_eq!(
        attrs["urn:oid:0.9.2342.19200300.100.1.1"],
        json!(["bob"]),
        "{me}"
    );
    assert_eq!(
        attrs["urn:oid:0.9.2342.19200300.100.1.3"],
        json!(["bob@example.com"]),
        "{me}"
    );
    assert_eq!(attrs["urn:oid:2.5.4.42"], json!(["Bob"]), "{me}");
    assert_eq!(attrs["urn:oid:2.5.4.4"], json!(["Baker"]), "{me}");
    let named = &me["oid2name"];
    assert_eq!(named["mail"], json!(["bob@example.com"]), "{me}");
    assert_eq!(
        named["eduPersonPrincipalName"],
        json!(["bob@example.com"]),
        "{me}"
    );
    assert!(
        named["isMemberOf"]
            .as_array()
            .is_some_and(|g| g.contains(&json!("staff"))),
        "{me}"
    );
    // What SimpleSAMLphp decrypted (it insists: `assertion.encryption`)
    // travelled encrypted: AES-256-GCM under RSA-OAEP.
    assert!(
        xml.contains("EncryptedAssertion") && !xml.contains("Baker"),
        "{xml}"
    );
    assert!(xml.contains("xmlenc11#aes256-gcm"), "{xml}");

    // The NameID format SimpleSAMLphp's NameIDPolicy asks for.
    ssp.update(|t| t["sp"]["name_id_format"] = json!(PERSISTENT));
    let (persistent, _) = ssp_signs_in(&b, &ssp).await.expect("persistent");
    assert_eq!(persistent["name_id_format"], PERSISTENT, "{persistent}");
    let opaque = persistent["name_id"].as_str().expect("persistent id");
    assert!(
        !opaque.contains("bob") && opaque.len() >= 32,
        "{persistent}"
    );
    let (again, _) = ssp_signs_in(&b, &ssp).await.expect("persistent");
    assert_eq!(again["name_id"], persistent["name_id"], "stable");
    // SimpleSAMLphp's default when NameIDPolicy is unset: transient.
    ssp.update(|t| t["sp"]["name_id_format"] = Value::Null);
    let (transient, _) = ssp_signs_in(&b, &ssp).await.expect("transient");
    assert_eq!(transient["name_id_format"], TRANSIENT, "{transient}");
    assert_ne!(transient["name_id"], persistent["name_id"], "{transient}");
    // A format the registration does not allow: SimpleSAMLphp gets the
    // IdP's InvalidNameIDPolicy status, and no new session.
    ssp.update(|t| {
        t["sp"]["name_id_format"] =
            json!("urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName")
    });
    let refused = ssp_signs_in(&b, &ssp)
        .await
        .expect_err("SimpleSAMLphp signed in on an InvalidNameIDPolicy status");
    assert!(
        refused.text().contains("InvalidNameIDPolicy"),
        "{}",
        refused.text()
    );
    ssp.update(|t| t["sp"]["name_id_format"] = json!(EMAIL));

    // SimpleSAMLphp pinning another IdP certificate refuses the assertion.
    let other = SigningKey::generate_self_signed("not the idp", 2).expect("key");
    let pinned_other = with_certificate(
        &idp_metadata.text(),
        &cert_der_from_pem(&other.cert_pem().expect("pem")).expect("der"),
    );
    assert_ne!(pinned_other, idp_metadata.text());
    ssp.write("idp-metadata.xml", pinned_other.as_bytes());
    let refused = ssp_signs_in(&b, &ssp)
        .await
        .expect_err("SimpleSAMLphp took an assertion signed with a key it does not pin");
    assert!(
        ssp.log().contains("Unable to validate Signature")
            || refused.text().contains("Unable to validate Signature"),
        "{}; {}",
        refused.text(),
        ssp.log()
    );
    ssp.write("idp-metadata.xml", &idp_metadata.body);

    // IdP-initiated Single Logout: the IdP's signed LogoutRequest reaches
    // SimpleSAMLphp, which ends its session and answers; the IdP reports
    // a complete logout.
    let (me, _) = ssp_signs_in(&b, &ssp).await.expect("signed in again");
    assert_eq!(me["authenticated"], true);
    let logout = b.get(&format!("{IDP}/logout")).await;
    let to_sp = redirect_target(&logout, IDP);
    assert!(
        to_sp.starts_with(&ssp.url("module.php/saml/sp/saml2-logout.php/default-sp?SAMLRequest=")),
        "{to_sp}"
    );
    let answered = b.get(&to_sp).await;
    let back = redirect_target(&answered, &ssp.base);
    assert!(
        back.starts_with(&format!("{IDP}/sso/saml/logout?SAMLResponse=")),
        "{back}; {}",
        ssp.log()
    );
    let done = b.get(&back).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert!(
        done.text().contains("every application you used"),
        "{}",
        done.text()
    );
    assert_eq!(whoami(&b, &ssp).await["authenticated"], false);

    // SP-initiated Single Logout from SimpleSAMLphp: its signed
    // LogoutRequest ends the IdP session, and the IdP's LogoutResponse
    // brings the browser back signed out.
    let (me, _) = ssp_signs_in(&b, &ssp).await.expect("signed in again");
    assert_eq!(me["authenticated"], true);
    let logout = b.get(&ssp.url("portcullis-test/logout.php")).await;
    let to_idp = redirect_target(&logout, &ssp.base);
    assert!(
        to_idp.starts_with(&format!("{IDP}/sso/saml/logout?SAMLRequest="))
            && to_idp.contains("Signature="),
        "{to_idp}"
    );
    let answered = b.get(&to_idp).await;
    let back = redirect_target(&answered, IDP);
    assert!(
        back.starts_with(&ssp.url("module.php/saml/sp/saml2-logout.php/default-sp?SAMLResponse=")),
        "{back}"
    );
    let done = b.get(&back).await;
    assert_eq!(
        redirect_target(&done, &ssp.base),
        ssp.url("portcullis-test/whoami.php"),
        "{}",
        ssp.log()
    );
    assert_eq!(whoami(&b, &ssp).await["authenticated"], false);
    // The IdP session is gone: signing in again asks for the password.
    let start = b.get(&ssp.url("portcullis-test/login.php")).await;
    let at_idp = b.get(&redirect_target(&start, &ssp.base)).await;
    assert!(
        redirect_target(&at_idp, IDP).starts_with(&format!("{IDP}/login?")),
        "still signed in at the IdP: {}",
        at_idp.text()
    );
}

const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";

/// `portcullis check` of a gateway with `config` fails, a problem located
/// at `key` naming `reason`.
fn check_refuses(config: &str, key: &str, reason: &str) {
    let (code, _, stderr) = check(&config_text(&Pki::new(), "", config));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains(&format!(": {key}: ")) && l.contains(reason)),
        "{stderr}"
    );
}

/// SimpleSAMLphp's signed SP metadata (its `metadata.sign.*`) at a
/// `metadata_url` with `pinned` as `metadata_signing_cert`, persistent
/// NameIDs.
fn ssp_sp_from_url(ssp: &SimpleSamlPhp, pinned: &Path) -> String {
    format!(
        "metadata_url = \"http://{}/{SP_METADATA}\"
metadata_signing_cert = \"{}\"
name_id_format = \"persistent\"",
        ssp.addr,
        pinned.display()
    )
}

#[tokio::test]
async fn simplesamlphp_sp_from_its_signed_metadata_url_is_told_over_soap_of_a_revoked_session() {
    let idp_key = SigningKey::generate_self_signed("portcullis idp", 2).expect("idp key");
    let sp_key = SigningKey::generate_self_signed("simplesamlphp sp", 2).expect("sp key");
    let signer = SigningKey::generate_self_signed("simplesamlphp metadata", 2).expect("key");
    // The IdP posts its SOAP LogoutRequest to the SP's own URL, so
    // SimpleSAMLphp is named by its loopback address (the gateway resolves
    // names for real). The sqlite store lets its LogoutStore find the
    // session without the browser, and is what makes its metadata offer
    // the SOAP SingleLogoutService.
    let mut ssp = SimpleSamlPhp::start(
        "127.0.0.1",
        json!({"sp": {"idp": IDP_ENTITY, "name_id_format": PERSISTENT}, "sql_store": true}),
        &[
            ("cert/sp-key.pem", &sp_key.key_pem().expect("pem")),
            ("cert/sp.pem", &sp_key.cert_pem().expect("pem")),
        ],
        SP_METADATA,
    )
    .await;
    ssp.sign_metadata_with("signer", &signer);
    let sp_metadata = ssp.fetch(SP_METADATA).await;
    let slo = ssp.url("module.php/saml/sp/saml2-logout.php/default-sp");
    assert!(
        sp_metadata.contains("<ds:SignatureValue>")
            && sp_metadata.contains(&format!(
                "Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:SOAP\" Location=\"{slo}\""
            )),
        "{sp_metadata}"
    );
    let keys = tempfile::tempdir().expect("dir");
    let write = |name: &str, data: &[u8]| {
        let path = keys.path().join(name);
        std::fs::write(&path, data).expect("write");
        path
    };

    // Pinning a key other than SimpleSAMLphp's metadata signer: `check`
    // names the registration's metadata_url, and the gateway does not start.
    let stranger = SigningKey::generate_self_signed("not the signer", 2).expect("key");
    let stranger_pem = write("stranger.pem", &stranger.cert_pem().expect("pem"));
    check_refuses(
        &embedded_idp(keys.path(), &idp_key, &ssp_sp_from_url(&ssp, &stranger_pem)),
        "idp.service_provider[0].metadata_url",
        "signature does not verify with a pinned certificate",
    );
    // The signer's key with RSA-SHA1 (`metadata.sign.algorithm`): refused
    // too, SHA-256 or better only.
    let signer_pem = write("signer.pem", &signer.cert_pem().expect("pem"));
    let config = embedded_idp(keys.path(), &idp_key, &ssp_sp_from_url(&ssp, &signer_pem));
    ssp.update(|t| t["metadata_sign"]["algorithm"] = json!(RSA_SHA1));
    check_refuses(
        &config,
        "idp.service_provider[0].metadata_url",
        &format!("algorithm not allowed: {RSA_SHA1}"),
    );
    ssp.update(|t| t["metadata_sign"]["algorithm"] = Value::Null);

    // Pinning the signer, RSA-SHA256 (SimpleSAMLphp's default): registered
    // from the document as SimpleSAMLphp signed it.
    let gw = Gateway::start("", &config);
    let b = gw.browser();
    ssp_trusts_the_idp(&b, &mut ssp).await;
    let (me, _) = ssp_signs_in(&b, &ssp)
        .await
        .unwrap_or_else(|r| panic!("SimpleSAMLphp refused: {}; {}", r.text(), ssp.log()));
    assert_eq!(me["authenticated"], true, "{me}");
    assert_eq!(me["name_id_format"], PERSISTENT, "{me}");

    // An administrator revokes bob's IdP session: the IdP posts its
    // signed SOAP LogoutRequest to SimpleSAMLphp's SOAP SingleLogoutService.
    // SimpleSAMLphp verifies it and finds the session by the NameID (the
    // persistent one with its qualifiers, exactly as issued: its
    // LogoutStore keys sessions by a hash of all of it) and SessionIndex,
    // and ends it.
    revoke_bobs_sessions(&gw).await;
    let (line, event) = soap_logout_outcome(&gw, &ssp.url(SP_METADATA)).await;
    let log = ssp.log();
    assert!(
        log.contains("saml.LogoutStore: Logging out of session"),
        "{log}"
    );
    // It cannot answer: SimpleSAMLphp 1.19's saml2-logout.php hands the
    // whole SingleLogoutService endpoint (an array) to
    // LogoutResponse::setDestination() on the SOAP binding, a TypeError,
    // and sends its HTML error page with 200. The IdP does not take that
    // for a confirmation, and says so in its log and the System Log.
    assert!(
        log.contains("TypeError: SAML2\\Message::setDestination()")
            && log.contains("saml2-logout.php on line 147"),
        "SimpleSAMLphp answered the SOAP LogoutRequest after all: assert \
`back-channel logout delivered` here now; {line}; {log}"
    );
    assert!(
        line.contains("back-channel logout not confirmed")
            && line.contains("\"outcome\":\"refused\"")
            && line.contains("not an acceptable LogoutResponse"),
        "{line}"
    );
    assert!(
        event.contains("FAILURE") && event.contains("not an acceptable LogoutResponse"),
        "{event}"
    );
    // The user notices: SimpleSAMLphp's page no longer knows bob, and
    // signing in again asks for the password at the IdP.
    assert_eq!(whoami(&b, &ssp).await["authenticated"], false);
    let start = b.get(&ssp.url("portcullis-test/login.php")).await;
    let at_idp = b.get(&redirect_target(&start, &ssp.base)).await;
    assert!(
        redirect_target(&at_idp, IDP).starts_with(&format!("{IDP}/login?")),
        "still signed in at the IdP: {}",
        at_idp.text()
    );
}

const APP_B: &str = "https://b.test";
const APP_C: &str = "https://c.test";
const IDP_METADATA: &str = "saml2/idp/metadata.php";

/// Walks the browser through SimpleSAMLphp's IdP from `location` (its SSO
/// endpoint), typing `login`'s password at exampleauth's form when it asks:
/// the auto-submit page for the SP's ACS, with the action, SAMLResponse
/// and RelayState (if any).
async fn through_ssp_idp(
    b: &Browser,
    ssp: &SimpleSamlPhp,
    location: &str,
    login: (&str, &str),
) -> (String, String, Option<String>) {
    let mut page = b.get(location).await;
    for _hop in 0..5 {
        if page.status.is_redirection() {
            page = b.get(&redirect_target(&page, &ssp.base)).await;
            continue;
        }
        let html = page.text();
        assert_eq!(page.status, StatusCode::OK, "{html}; {}", ssp.log());
        if let Some(response) = input_value(&html, "SAMLResponse") {
            return (
                form_action(&html).expect("a form"),
                response,
                input_value(&html, "RelayState").map(|r| unescape(&r)),
            );
        }
        // exampleauth:UserPass's form posts back to itself with AuthState.
        let auth_state = input_value(&html, "AuthState")
            .map(|s| unescape(&s))
            .unwrap_or_else(|| panic!("neither a login form nor a Response: {html}"));
        page = b
            .post_form(
                &ssp.url("module.php/core/loginuserpass.php"),
                &[
                    ("username", login.0),
                    ("password", login.1),
                    ("AuthState", &auth_state),
                ],
            )
            .await;
    }
    panic!("SimpleSAMLphp kept redirecting: {}", ssp.log());
}

/// An `[[app]]` on the SimpleSAMLphp IdP, published at `url`, trusting
/// it through `idp` (the keys of its inline table).
fn ssp_app(name: &str, url: &str, idp: &str, keys: &Path, extra: &str) -> String {
    format!(
        "[[app]]
name = \"{name}\"
public_url = \"{url}/\"
upstream = \"builtin:echo\"
auth = \"saml\"
idp = {{ {idp} }}
sp_signing_key = \"{}\"
sp_signing_cert = \"{}\"
sp_encryption_key = \"{}\"
sp_encryption_cert = \"{}\"
allow_idp_initiated = true
{extra}
",
        keys.join("sp-key.pem").display(),
        keys.join("sp.pem").display(),
        keys.join("sp-enc-key.pem").display(),
        keys.join("sp-enc.pem").display(),
    )
}

#[tokio::test]
async fn a_gateway_app_signs_in_through_a_simplesamlphp_idp() {
    let idp_key = SigningKey::generate_self_signed("simplesamlphp idp", 2).expect("idp key");
    let mut ssp = SimpleSamlPhp::start(
        "idp.ssp.test",
        json!({"idp": {
            "users": {"dana": {"password": "dana-pass", "attributes": {
                "uid": ["dana"],
                "email": ["dana@example.org"],
                "givenName": ["Dana"],
                "groups": ["finance", "staff"],
            }}},
            "sp_metadata": [],
            "sp_options": {"assertion.encryption": true},
        }}),
        &[
            ("cert/idp-key.pem", &idp_key.key_pem().expect("pem")),
            ("cert/idp.pem", &idp_key.cert_pem().expect("pem")),
        ],
        IDP_METADATA,
    )
    .await;
    // Its metadata page signed by SimpleSAMLphp (`metadata.sign.*`).
    let signer = SigningKey::generate_self_signed("simplesamlphp metadata", 2).expect("key");
    ssp.sign_metadata_with("signer", &signer);
    let idp_metadata = ssp.fetch(IDP_METADATA).await;
    assert!(
        idp_metadata.contains(
            "SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\""
        ) && idp_metadata.contains("SingleLogoutService")
            && idp_metadata.contains("<ds:SignatureValue>"),
        "{idp_metadata}"
    );
    let idp_metadata_file = ssp.write("idp-metadata.xml", idp_metadata.as_bytes());
    let keys = tempfile::tempdir().expect("dir");
    let sp_key = SigningKey::generate_self_signed("gateway sp", 2).expect("sp key");
    let enc = EncryptionKey::generate_self_signed("gateway sp encryption", 2).expect("key");
    for (name, data) in [
        ("sp-key.pem", sp_key.key_pem().expect("pem")),
        ("sp.pem", sp_key.cert_pem().expect("pem")),
        ("sp-enc-key.pem", enc.private_key_pem().to_vec()),
        ("sp-enc.pem", enc.cert_pem().expect("pem")),
    ] {
        std::fs::write(keys.path().join(name), data).expect("write");
    }
    // b downloads the signed page, refreshed every second; c reads a copy
    // from a file (unpinned: the signature in it is not looked at).
    let b_trusts = |pinned: &SigningKey, name: &str| {
        let pem = keys.path().join(name);
        std::fs::write(&pem, pinned.cert_pem().expect("pem")).expect("write");
        format!(
            "{}{}",
            ssp_app(
                "b",
                APP_B,
                &format!(
                    "metadata_url = \"http://{}/{IDP_METADATA}\", metadata_signing_cert = \"{}\", \
metadata_min_refresh = \"1s\", metadata_max_refresh = \"1s\"",
                    ssp.addr,
                    pem.display()
                ),
                keys.path(),
                "name_id_format = \"emailAddress\"\ninject_template = \"header-app\"\n\
[[app.access]]\npath = \"/finance\"\npolicy = \"groups\"\ngroups = [\"finance\"]\n"
            ),
            ssp_app(
                "c",
                APP_C,
                &format!("metadata_file = \"{}\"", idp_metadata_file.display()),
                keys.path(),
                "name_id_format = \"persistent\"\n"
            ),
        )
    };
    // Pinning another key than SimpleSAMLphp's signer: `check` names b's
    // metadata_url, and the gateway would not start.
    let stranger = SigningKey::generate_self_signed("not the signer", 2).expect("key");
    check_refuses(
        &b_trusts(&stranger, "stranger.pem"),
        "app[0].idp.metadata_url",
        "signature does not verify with a pinned certificate",
    );
    let gw = Gateway::start(WITH_ADMIN, &b_trusts(&signer, "signer.pem"));
    let b = gw.browser();
    // SimpleSAMLphp learns both apps from the metadata they serve, and
    // encrypts for each (`assertion.encryption` in its sp-remote entries).
    let mut sp_files = Vec::new();
    for origin in [APP_B, APP_C] {
        let meta = b.get(&format!("{origin}/_portcullis/saml/metadata")).await;
        assert_eq!(meta.status, StatusCode::OK, "{}", meta.text());
        assert!(
            meta.text().contains("use=\"encryption\""),
            "{}",
            meta.text()
        );
        let name = format!("sp-{}.xml", &origin["https://".len()..]);
        sp_files.push(ssp.write(&name, &meta.body));
    }
    ssp.update(|t| t["idp"]["sp_metadata"] = json!(sp_files));

    // A deep link at b: the gateway's signed AuthnRequest, which
    // SimpleSAMLphp verifies (`validate.authnrequest`); dana signs in there.
    let deep = "/finance/reports?year=2026";
    let start = b.get(&format!("{APP_B}{deep}")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text());
    let location = start.location();
    assert!(
        location.starts_with(&ssp.url("saml2/idp/SSOService.php?SAMLRequest="))
            && location.contains("Signature="),
        "{location}"
    );
    let (acs, response, relay_state) =
        through_ssp_idp(&b, &ssp, &location, ("dana", "dana-pass")).await;
    assert_eq!(acs, format!("{APP_B}/_portcullis/saml/acs"));
    // Encrypted by SimpleSAMLphp for b's key: nothing of dana in the clear.
    let xml = decoded(&response);
    assert!(
        xml.contains("EncryptedAssertion") && !xml.contains("dana@example.org"),
        "{xml}"
    );
    // SimpleSAMLphp's (its SAML2 library's) fixed choice: AES-128-CBC
    // content, RSA-OAEP key transport.
    assert!(
        xml.contains("xmlenc#aes128-cbc") && xml.contains("xmlenc#rsa-oaep-mgf1p"),
        "{xml}"
    );
    let relay_state = relay_state.expect("RelayState");
    let signed_in = b
        .post_form(
            &acs,
            &[("SAMLResponse", &response), ("RelayState", &relay_state)],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}; {:?}",
        signed_in.text(),
        gw.logs()
    );
    assert_eq!(signed_in.location(), deep);
    // The backend sees dana: the NameID SimpleSAMLphp made of her email,
    // its attributes, and its groups pass b's access rule.
    let page = b.get(&format!("{APP_B}{deep}&format=json")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_eq!(page.echoed("x-portcullis-user"), ["dana@example.org"]);
    assert_eq!(page.echoed("x-remote-email"), ["dana@example.org"]);
    assert_eq!(page.echoed("x-remote-groups"), ["finance,staff"]);

    // A Response SimpleSAMLphp issues for c (IdP-initiated, another
    // browser; c's Destination and Audience) is refused at b's ACS, and
    // signs in at c's.
    let other = gw.browser();
    let c_entity = format!("{APP_C}/_portcullis/saml/metadata");
    let (acs, for_c, _) = through_ssp_idp(
        &other,
        &ssp,
        &ssp.url(&format!(
            "saml2/idp/SSOService.php?spentityid={}",
            test_support::browser::url_encode(&c_entity)
        )),
        ("dana", "dana-pass"),
    )
    .await;
    assert_eq!(acs, format!("{APP_C}/_portcullis/saml/acs"));
    let refused = other
        .post_form(
            &format!("{APP_B}/_portcullis/saml/acs"),
            &[("SAMLResponse", &for_c)],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert!(other.cookie("pc_b").is_none(), "no session at b");
    let rejection = gw
        .wait_for_log("no session created", Duration::from_secs(5))
        .expect("the refusal is logged");
    assert!(
        rejection.contains("\"app\":\"b\"") && rejection.contains("\"error.kind\":\"destination\""),
        "{rejection}"
    );
    let accepted = other.post_form(&acs, &[("SAMLResponse", &for_c)]).await;
    assert_eq!(
        accepted.status,
        StatusCode::SEE_OTHER,
        "{}",
        accepted.text()
    );
    assert!(other.cookie("pc_c").is_some(), "a session at c");
    // c asks for persistent (its metadata's NameIDFormat): SimpleSAMLphp's
    // saml:PersistentNameID, an opaque hash, not dana's email.
    let at_c = other.get(&format!("{APP_C}/?format=json")).await;
    assert_eq!(at_c.status, StatusCode::OK, "{}", at_c.text());
    let persistent = at_c.echoed("x-portcullis-user");
    assert!(
        persistent.len() == 1
            && persistent[0].len() == 40
            && persistent[0].bytes().all(|c| c.is_ascii_hexdigit()),
        "{persistent:?}"
    );
    assert!(
        decoded(&for_c).contains("EncryptedAssertion"),
        "encrypted for c too"
    );

    // IdP-initiated Single Logout at SimpleSAMLphp: its signed
    // LogoutRequest ends the session at c, the gateway's signed
    // LogoutResponse satisfies it, and it returns to ReturnTo.
    let return_to = ssp.url("module.php/core/frontpage_welcome.php");
    let mut at = ssp.url(&format!(
        "saml2/idp/SingleLogoutService.php?ReturnTo={}",
        test_support::browser::url_encode(&return_to)
    ));
    let mut hops = Vec::new();
    let mut reply = other.get(&at).await;
    while reply.status.is_redirection() && hops.len() < 5 {
        at = redirect_target(&reply, origin(&at));
        hops.push(at.clone());
        reply = other.get(&at).await;
    }
    assert!(
        hops.len() == 4
            && hops[0].starts_with(&ssp.url("module.php/core/idp/resumelogout.php?"))
            && hops[1].starts_with(&format!("{APP_C}/_portcullis/saml/slo?SAMLRequest="))
            && hops[2].starts_with(&ssp.url("saml2/idp/SingleLogoutService.php?SAMLResponse="))
            && hops[3] == return_to,
        "{hops:#?}; {}",
        ssp.log()
    );
    assert!(other.cookie("pc_c").is_none(), "c's cookie cleared");
    let signed_out = other.get(&format!("{APP_C}/?format=json")).await;
    assert_eq!(
        signed_out.status,
        StatusCode::SEE_OTHER,
        "c's session ended"
    );

    // Logout at b: the gateway's signed LogoutRequest goes to
    // SimpleSAMLphp's SLO, which ends dana's session there and answers.
    let logout = b.get(&format!("{APP_B}/_portcullis/logout")).await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER, "{}", logout.text());
    let mut at = logout.location();
    assert!(
        at.starts_with(&ssp.url("saml2/idp/SingleLogoutService.php?SAMLRequest="))
            && at.contains("Signature="),
        "{at}"
    );
    let mut reply = b.get(&at).await;
    for _hop in 0..5 {
        if !reply.status.is_redirection() {
            break;
        }
        at = redirect_target(&reply, origin(&at));
        reply = b.get(&at).await;
    }
    assert!(
        at.starts_with(&format!("{APP_B}/_portcullis/")),
        "the walk ended outside b: {at}; {}",
        ssp.log()
    );
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // SimpleSAMLphp answered Success.
    assert!(
        reply.text().contains("You are signed out."),
        "{}",
        reply.text()
    );
    // SimpleSAMLphp now signs its metadata with a key b does not pin: the
    // refreshed copy is refused (a WARN, counted), and b keeps the last
    // good one.
    ssp.sign_metadata_with("stranger", &stranger);
    let watched = Watched {
        peer: "app/b",
        entity: &ssp.url(IDP_METADATA),
    };
    wait_for_failure(&gw, &watched, 0, "signature does not verify").await;
    // Signed out of both: b sends the browser back to SimpleSAMLphp,
    // which asks for the password again, and b still takes its Response.
    let start = b.get(&format!("{APP_B}/")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text());
    let again = b.get(&start.location()).await;
    let login = redirect_target(&again, &ssp.base);
    assert!(
        login.contains("loginuserpass.php"),
        "still signed in at SimpleSAMLphp: {}",
        again.text()
    );
    let (acs, response, relay_state) =
        through_ssp_idp(&b, &ssp, &login, ("dana", "dana-pass")).await;
    assert_eq!(acs, format!("{APP_B}/_portcullis/saml/acs"));
    let relay_state = relay_state.expect("RelayState");
    let signed_in = b
        .post_form(
            &acs,
            &[("SAMLResponse", &response), ("RelayState", &relay_state)],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}; {:?}",
        signed_in.text(),
        gw.logs()
    );
    assert!(b.cookie("pc_b").is_some(), "a session at b");
}
