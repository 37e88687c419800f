//! Interop with a third-party SAML SP: pysaml2 (tests/interop/pysaml2_sp.py,
//! run as a subprocess) signs a Redirect-binding AuthnRequest, the browser
//! takes it to the embedded IdP and signs bob in, and pysaml2 verifies the
//! Response (signature, audience, InResponseTo, destination) — and rejects
//! one whose attribute value was altered.
//!
//! The interpreter is `PORTCULLIS_PYTHON` (set by `make test`), else
//! `target/pyenv/bin/python` (what `make test-deps` installs), else
//! `python3` when pysaml2 imports there. pysaml2 also needs `xmlsec1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use http::StatusCode;
use portcullis_saml::SigningKey;
use serde_json::{json, Value};
use test_support::browser::{input_value, url_encode};

use crate::process::Gateway;

const USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/users.toml");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/policies.toml");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

const IDP: &str = "https://a.test";
const IDP_ENTITY: &str = "https://a.test/sso/saml/metadata";
const SP_ENTITY: &str = "https://sp.interop.test/metadata";
const SP_ACS: &str = "https://sp.interop.test/acs";

/// A Python with pysaml2, or a panic naming what is missing.
fn python() -> PathBuf {
    let imports = |python: &Path| {
        Command::new(python)
            .args(["-c", "import saml2"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if let Some(explicit) = std::env::var_os("PORTCULLIS_PYTHON") {
        let explicit = PathBuf::from(explicit);
        assert!(
            imports(&explicit),
            "PORTCULLIS_PYTHON={} cannot import pysaml2 (`saml2`); run `make test-deps`",
            explicit.display()
        );
        return explicit;
    }
    let venv = Path::new(ROOT).join("target/pyenv/bin/python");
    if venv.exists() && imports(&venv) {
        return venv;
    }
    let system = PathBuf::from("python3");
    if imports(&system) {
        return system;
    }
    panic!(
        "pysaml2 not found: neither {} nor python3 can import `saml2`; run `make test-deps` \
         (creates target/pyenv with pysaml2) or set PORTCULLIS_PYTHON",
        venv.display()
    );
}

struct Sp {
    python: PathBuf,
    config: PathBuf,
    dir: PathBuf,
}

impl Sp {
    fn run(&self, args: &[&str]) -> Output {
        let script = Path::new(ROOT).join("tests/interop/pysaml2_sp.py");
        Command::new(&self.python)
            .arg(script)
            .args(args)
            .output()
            .expect("run pysaml2_sp.py")
    }

    fn run_ok(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pysaml2_sp.py {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON from pysaml2_sp.py")
    }

    fn authn_request(&self) -> (String, String) {
        let config = self.config.display().to_string();
        let v = self.run_ok(&["authn-request", "--config", &config]);
        (
            v["request_id"].as_str().expect("request_id").to_string(),
            v["location"].as_str().expect("location").to_string(),
        )
    }

    fn parse_response(&self, response_b64: &str, request_id: &str) -> Output {
        let file = self.dir.join("response.b64");
        std::fs::write(&file, response_b64).expect("write response");
        let config = self.config.display().to_string();
        let file = file.display().to_string();
        self.run(&[
            "parse-response",
            "--config",
            &config,
            "--saml-response",
            &file,
            "--request-id",
            request_id,
        ])
    }
}

#[tokio::test]
async fn pysaml2_sp_signs_in_through_the_embedded_idp() {
    // Fail fast, before starting anything, when pysaml2 or xmlsec1 is missing.
    let python = python();
    assert!(
        Command::new("xmlsec1")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "the xmlsec1 binary (used by pysaml2) is not on PATH; run `make test-deps`"
    );

    let keys = tempfile::tempdir().expect("dir");
    let write = |name: &str, data: &[u8]| {
        let path = keys.path().join(name);
        std::fs::write(&path, data).expect("write");
        path
    };
    let idp_key = SigningKey::generate_self_signed("interop idp", 2).expect("idp key");
    let sp_key = SigningKey::generate_self_signed("pysaml2 sp", 2).expect("sp key");
    let idp_key_path = write("idp-key.pem", &idp_key.key_pem().expect("pem"));
    let idp_cert_path = write("idp.pem", &idp_key.cert_pem().expect("pem"));
    let sp_key_path = write("sp-key.pem", &sp_key.key_pem().expect("pem"));
    let sp_cert_path = write("sp.pem", &sp_key.cert_pem().expect("pem"));
    let config = format!(
        "[idp]
public_url = \"{IDP}/\"
users_file = \"{USERS}\"
policy_file = \"{POLICIES}\"
system_log_file = \"system-log.jsonl\"
signing_key = \"{}\"
signing_cert = \"{}\"

[[idp.service_provider]]
name = \"pysaml2\"
entity_id = \"{SP_ENTITY}\"
acs_url = \"{SP_ACS}\"
name_id_format = \"emailAddress\"
signing_cert = \"{}\"
",
        idp_key_path.display(),
        idp_cert_path.display(),
        sp_cert_path.display(),
    );
    let gw = Gateway::start("", &config);
    let b = gw.browser();

    let metadata = b.get(&format!("{IDP}/sso/saml/metadata")).await;
    assert_eq!(metadata.status, StatusCode::OK, "{}", metadata.text());
    let metadata_path = write("idp-metadata.xml", metadata.text().as_bytes());
    let sp_config = json!({
        "entity_id": SP_ENTITY,
        "acs_url": SP_ACS,
        "key_file": sp_key_path,
        "cert_file": sp_cert_path,
        "idp_metadata": metadata_path,
    });
    let sp = Sp {
        python,
        config: write("sp.json", sp_config.to_string().as_bytes()),
        dir: keys.path().to_path_buf(),
    };

    // pysaml2's signed Redirect-binding request, taken to the IdP.
    let (request_id, location) = sp.authn_request();
    assert!(
        location.starts_with(&format!("{IDP}/sso/saml?")) && location.contains("Signature="),
        "{location}"
    );
    // The IdP checks pysaml2's signature: without it the request is refused.
    let unsigned = location
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
    let first = b.get(&location).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.text());
    let login = first.location();
    let from = login
        .strip_prefix("/login?")
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "fromURI")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| panic!("not a sign-in redirect: {login}"));

    let form = b
        .get(&format!("{IDP}/login?fromURI={}", url_encode(&from)))
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    let csrf = input_value(&form.text(), "csrf").expect("csrf");
    let done = b
        .post_form(
            &format!("{IDP}/login"),
            &[
                ("csrf", &csrf),
                ("fromURI", &from),
                ("username", "bob"),
                ("password", "bob-demo-pass"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    let post = b.get(&format!("{IDP}{}", done.location())).await;
    let html = post.text();
    assert_eq!(post.status, StatusCode::OK, "{html}");
    assert!(html.contains(&format!("action=\"{SP_ACS}\"")), "{html}");
    assert_eq!(input_value(&html, "RelayState").as_deref(), Some("/"));
    let response = input_value(&html, "SAMLResponse").expect("SAMLResponse");

    // pysaml2 accepts it and sees bob.
    let out = sp.parse_response(&response, &request_id);
    assert!(
        out.status.success(),
        "pysaml2 rejected the IdP's response: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["name_id"], "bob@example.com", "{v}");
    assert_eq!(v["issuer"], IDP_ENTITY, "{v}");
    let attrs = &v["attributes"];
    assert_eq!(attrs["email"], json!(["bob@example.com"]), "{v}");
    assert_eq!(attrs["firstName"], json!(["Bob"]), "{v}");
    assert_eq!(attrs["lastName"], json!(["Baker"]), "{v}");
    let groups = attrs["groups"].as_array().expect("groups");
    assert!(groups.contains(&json!("staff")), "{v}");
    assert_eq!(
        v["authn_context"], "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        "{v}"
    );
    assert!(
        v["session_index"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );

    // One altered attribute value breaks the assertion's signature.
    let engine = base64::engine::general_purpose::STANDARD;
    let xml = String::from_utf8(engine.decode(&response).expect("base64")).expect("utf8");
    assert!(xml.contains(">Baker<"), "{xml}");
    let tampered = engine.encode(xml.replacen(">Baker<", ">Bakes<", 1));
    let out = sp.parse_response(&tampered, &request_id);
    assert!(
        !out.status.success(),
        "pysaml2 accepted a tampered response: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SignatureError"), "{stderr}");
}
