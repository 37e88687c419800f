//! Interop with third-party SAML software, pysaml2, run as one-shot
//! subprocesses while the test's browser carries the messages:
//! - as an SP (tests/interop/pysaml2_sp.py), registered with the embedded
//!   IdP from its own metadata file: it signs a Redirect-binding
//!   AuthnRequest, the browser signs bob in at the IdP, and pysaml2
//!   verifies the Response (signature, audience, InResponseTo,
//!   destination) — and rejects one whose attribute value was altered;
//! - as an IdP (tests/interop/pysaml2_idp.py) that gateway apps trust
//!   through `idp = { metadata_file = … }`: it verifies the gateway's
//!   signed AuthnRequest and answers with its own signed assertion, which
//!   the gateway turns into a session with pysaml2's attributes.
//!
//! The interpreter is `PORTCULLIS_PYTHON` (set by `make test`), else
//! `target/pyenv/bin/python` (what `make test-deps` installs), else
//! `python3` when pysaml2 imports there. pysaml2 also needs `xmlsec1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use http::StatusCode;
use portcullis_saml::{EncryptionKey, SigningKey};
use serde_json::{json, Value};
use test_support::browser::{input_value, url_encode, Browser};

use crate::process::Gateway;

pub(crate) const USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/users.toml");
pub(crate) const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/policies.toml");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

pub(crate) const IDP: &str = "https://a.test";
pub(crate) const IDP_ENTITY: &str = "https://a.test/sso/saml/metadata";
pub(crate) const SP_ENTITY: &str = "https://sp.interop.test/metadata";
const SP_ACS: &str = "https://sp.interop.test/acs";
const SP_SLO: &str = "https://sp.interop.test/slo";

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

/// One of the pysaml2 scripts in tests/interop.
pub(crate) struct Script {
    python: PathBuf,
    name: &'static str,
}

impl Script {
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        let script = Path::new(ROOT).join("tests/interop").join(self.name);
        Command::new(&self.python)
            .arg(script)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.name))
    }

    fn stdout(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        serde_json::from_slice(&self.stdout(args))
            .unwrap_or_else(|e| panic!("JSON from {}: {e}", self.name))
    }
}

/// pysaml2 and the xmlsec1 binary it signs with, or a panic naming what is
/// missing — before the test starts anything.
fn pysaml2() -> PathBuf {
    let python = python();
    assert!(
        Command::new("xmlsec1")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "the xmlsec1 binary (used by pysaml2) is not on PATH; run `make test-deps`"
    );
    python
}

pub(crate) struct Sp {
    pub(crate) script: Script,
    pub(crate) config: PathBuf,
    pub(crate) dir: PathBuf,
    /// Holds `dir` (keys, configs, metadata) for the test's life.
    _files: tempfile::TempDir,
}

/// pysaml2 as an SP the embedded IdP registers from pysaml2's own metadata;
/// `registration` is the rest of its `[[idp.service_provider]]` table.
/// pysaml2 then reads the IdP's metadata from the running gateway.
async fn pysaml2_sp_registered(registration: &str) -> (Gateway, Sp) {
    pysaml2_sp_registered_with(registration, json!({})).await
}

/// [`pysaml2_sp_registered`] with `extra` merged into pysaml2's config
/// (e.g. `soap_slo_url`).
pub(crate) async fn pysaml2_sp_registered_with(registration: &str, extra: Value) -> (Gateway, Sp) {
    let from_file = |sp: &Sp| {
        let file = sp.dir.join("sp-metadata.xml");
        std::fs::write(&file, sp.metadata()).expect("write metadata");
        format!("metadata_file = \"{}\"", file.display())
    };
    pysaml2_sp_registered_through("", from_file, registration, extra).await
}

/// pysaml2 as an SP registered with the embedded IdP through the
/// `[[idp.service_provider]]` keys `locate` returns (it gets pysaml2
/// before the IdP exists: its metadata, its directory); `registration` is
/// the rest of the table and `extra` is merged into pysaml2's config.
/// `preamble` goes before `[idp]` (e.g. an admin listener).
pub(crate) async fn pysaml2_sp_registered_through(
    preamble: &str,
    locate: impl FnOnce(&Sp) -> String,
    registration: &str,
    extra: Value,
) -> (Gateway, Sp) {
    let python = pysaml2();
    let keys = tempfile::tempdir().expect("dir");
    let write = |name: &str, data: &[u8]| {
        let path = keys.path().join(name);
        std::fs::write(&path, data).expect("write");
        path
    };
    let idp_key = SigningKey::generate_self_signed("interop idp", 2).expect("idp key");
    let sp_key = SigningKey::generate_self_signed("pysaml2 sp", 2).expect("sp key");
    let sp_enc = EncryptionKey::generate_self_signed("pysaml2 sp encryption", 2).expect("key");
    let mut sp_config = json!({
        "entity_id": SP_ENTITY,
        "acs_url": SP_ACS,
        "slo_url": SP_SLO,
        "key_file": write("sp-key.pem", &sp_key.key_pem().expect("pem")),
        "cert_file": write("sp.pem", &sp_key.cert_pem().expect("pem")),
        "enc_key_file": write("sp-enc-key.pem", sp_enc.private_key_pem()),
        "enc_cert_file": write("sp-enc.pem", &sp_enc.cert_pem().expect("pem")),
    });
    if let (Some(config), Some(extra)) = (sp_config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    let sp = Sp {
        script: Script {
            python,
            name: "pysaml2_sp.py",
        },
        config: write("sp.json", sp_config.to_string().as_bytes()),
        dir: keys.path().to_path_buf(),
        _files: keys,
    };
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
{}
{registration}",
        sp.file("idp-key.pem", &idp_key.key_pem().expect("pem"))
            .display(),
        sp.file("idp.pem", &idp_key.cert_pem().expect("pem"))
            .display(),
        locate(&sp),
    );
    let gw = Gateway::start(preamble, &config);
    let metadata = gw.browser().get(&format!("{IDP}/sso/saml/metadata")).await;
    assert_eq!(metadata.status, StatusCode::OK, "{}", metadata.text());
    sp_config["idp_metadata"] = json!(sp.file("idp-metadata.xml", metadata.text().as_bytes()));
    sp.file("sp.json", sp_config.to_string().as_bytes());
    (gw, sp)
}

impl Sp {
    fn run(&self, args: &[&str]) -> Output {
        self.script.run(args)
    }

    /// Writes `name` in pysaml2's directory.
    pub(crate) fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, data).expect("write");
        path
    }

    /// pysaml2's metadata, unsigned.
    pub(crate) fn metadata(&self) -> Vec<u8> {
        let config = self.config.display().to_string();
        self.script.stdout(&["metadata", "--config", &config])
    }

    /// pysaml2's metadata signed by pysaml2 with `signer`.
    pub(crate) fn signed_metadata(&self, signer: &SigningKey) -> String {
        let config = self.config.display().to_string();
        let key = self.file("metadata-signer-key.pem", &signer.key_pem().expect("pem"));
        let cert = self.file("metadata-signer.pem", &signer.cert_pem().expect("pem"));
        let xml = self.script.stdout(&[
            "signed-metadata",
            "--config",
            &config,
            "--key",
            &key.display().to_string(),
            "--cert",
            &cert.display().to_string(),
        ]);
        String::from_utf8(xml).expect("UTF-8 metadata")
    }

    /// pysaml2 signs its AuthnRequests with `next` from now on (and its
    /// metadata says so).
    pub(crate) fn roll_key(&self, next: &SigningKey) {
        let key = self.file("sp-next-key.pem", &next.key_pem().expect("pem"));
        let cert = self.file("sp-next.pem", &next.cert_pem().expect("pem"));
        let text = std::fs::read_to_string(&self.config).expect("sp.json");
        let mut config: Value = serde_json::from_str(&text).expect("JSON");
        config["key_file"] = json!(key);
        config["cert_file"] = json!(cert);
        self.file("sp.json", config.to_string().as_bytes());
    }

    pub(crate) fn run_ok(&self, args: &[&str]) -> Value {
        self.script.json(args)
    }

    pub(crate) fn authn_request(&self) -> (String, String) {
        self.authn_request_for(None)
    }

    /// An AuthnRequest whose NameIDPolicy asks for `format` (a URI).
    fn authn_request_for(&self, format: Option<&str>) -> (String, String) {
        self.authn_request_signed(format, false)
    }

    /// [`authn_request_for`](Self::authn_request_for), its query signed
    /// with RSA-SHA1 when `sha1`.
    pub(crate) fn authn_request_signed(
        &self,
        format: Option<&str>,
        sha1: bool,
    ) -> (String, String) {
        let config = self.config.display().to_string();
        let mut args = vec!["authn-request", "--config", &config];
        if sha1 {
            args.push("--sha1");
        }
        args.extend(
            format
                .map(|f| ["--name-id-format", f])
                .into_iter()
                .flatten(),
        );
        let v = self.run_ok(&args);
        (
            v["request_id"].as_str().expect("request_id").to_string(),
            v["location"].as_str().expect("location").to_string(),
        )
    }

    pub(crate) fn parse_response(&self, response_b64: &str, request_id: &str) -> Output {
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
    // pysaml2 describes itself; the IdP registers it from that file alone,
    // encrypting its assertions for the encryption key pysaml2 offers.
    let (gw, sp) = pysaml2_sp_registered(
        "name_id_format = \"emailAddress\"
encrypt_assertions = true
attribute_preset = \"oid\"
attributes = [\"email\", \"firstName\", \"lastName\", \"groups\", \"profile.department\", { name = \"urn:oid:2.5.4.11\", source = \"profile.department\", friendly_name = \"ou\" }]
",
    )
    .await;
    let b = gw.browser();

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
    // Nor is one signed with RSA-SHA1: this SP has not opted in.
    let (_, sha1) = sp.authn_request_signed(None, true);
    assert!(
        sha1.contains("SigAlg=http%3A%2F%2Fwww.w3.org%2F2000%2F09%2Fxmldsig%23rsa-sha1"),
        "{sha1}"
    );
    let refused = b.get(&sha1).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    let log = std::fs::read_to_string(gw.dir().join("system-log.jsonl")).unwrap_or_default();
    assert!(
        log.contains("xmldsig#rsa-sha1"),
        "the refusal names the algorithm: {log}"
    );
    let post = to_the_acs_form(&b, &location).await;
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
    assert_eq!(
        attrs["department"],
        json!(["Support"]),
        "custom profile attribute: {v}"
    );
    let groups = attrs["groups"].as_array().expect("groups");
    assert!(groups.contains(&json!("staff")), "{v}");
    // The oid preset and a rule of our own, as pysaml2's stock
    // urn:oid attribute map reads them (NameFormat uri).
    let ava = &v["ava"];
    assert_eq!(ava["uid"], json!(["bob"]), "{v}");
    assert_eq!(ava["mail"], json!(["bob@example.com"]), "{v}");
    assert_eq!(ava["givenName"], json!(["Bob"]), "{v}");
    assert_eq!(ava["sn"], json!(["Baker"]), "{v}");
    assert_eq!(
        ava["eduPersonPrincipalName"],
        json!(["bob@example.com"]),
        "{v}"
    );
    assert_eq!(ava["ou"], json!(["Support"]), "{v}");
    assert!(
        ava["isMemberOf"]
            .as_array()
            .is_some_and(|g| g.contains(&json!("staff"))),
        "{v}"
    );
    let formats = &v["name_formats"];
    assert_eq!(
        formats["urn:oid:0.9.2342.19200300.100.1.1"],
        "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
        "{v}"
    );
    assert_eq!(
        formats["email"], "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
        "{v}"
    );
    assert_eq!(
        v["authn_context"], "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        "{v}"
    );
    assert!(
        v["session_index"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );

    // What pysaml2 decrypted (its xmlsec1) was sent encrypted: nothing of
    // the assertion travels in the clear, AES-256-GCM under RSA-OAEP.
    let engine = base64::engine::general_purpose::STANDARD;
    let xml = String::from_utf8(engine.decode(&response).expect("base64")).expect("utf8");
    assert!(
        xml.contains("EncryptedAssertion") && !xml.contains("Baker"),
        "{xml}"
    );
    assert!(
        xml.contains("xmlenc11#aes256-gcm") && xml.contains("xmlenc#rsa-oaep-mgf1p"),
        "{xml}"
    );
    // One altered ciphertext byte fails GCM's tag in pysaml2 too.
    let at = xml.rfind("<CipherValue>").expect("CipherValue") + "<CipherValue>".len() + 8;
    let flipped = if &xml[at..at + 1] == "A" { "B" } else { "A" };
    let tampered = engine.encode(format!("{}{flipped}{}", &xml[..at], &xml[at + 1..]));
    let out = sp.parse_response(&tampered, &request_id);
    assert!(
        !out.status.success(),
        "pysaml2 accepted a tampered response: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Single Logout at the IdP reaches pysaml2, which verifies the signed
    // LogoutRequest and answers; the IdP then reports a complete logout.
    let logout = b.get(&format!("{IDP}/logout")).await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER, "{}", logout.text());
    let to_sp = logout.location();
    let query = to_sp
        .strip_prefix(&format!("{SP_SLO}?"))
        .unwrap_or_else(|| panic!("not a LogoutRequest to pysaml2: {to_sp}"));
    let config = sp.config.display().to_string();
    let tampered = query.replacen("RelayState=", "RelayState=x", 1);
    let refused = sp.run(&["logout-request", "--config", &config, "--query", &tampered]);
    assert!(
        !refused.status.success(),
        "pysaml2 took a tampered LogoutRequest"
    );
    let answer = sp.run_ok(&["logout-request", "--config", &config, "--query", query]);
    assert_eq!(answer["name_id"], "bob@example.com", "{answer}");
    assert_eq!(answer["session_indexes"][0], v["session_index"], "{answer}");
    let back = answer["location"].as_str().expect("location");
    assert!(
        back.starts_with(&format!("{IDP}/sso/saml/logout?SAMLResponse=")),
        "{back}"
    );
    let done = b.get(back).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert!(
        done.text().contains("every application you used"),
        "{}",
        done.text()
    );
}

const PY_IDP_ENTITY: &str = "https://idp.pysaml2.test/metadata";
const PY_IDP_SSO: &str = "https://idp.pysaml2.test/sso/redirect";
const PY_IDP_SLO: &str = "https://idp.pysaml2.test/slo/redirect";
const APP_B: &str = "https://b.test";
const APP_C: &str = "https://c.test";
const APP_D: &str = "https://d.test";

/// The pysaml2 IdP: its config file and the script.
pub(crate) struct PyIdp {
    pub(crate) script: Script,
    config: PathBuf,
}

impl PyIdp {
    pub(crate) fn config_arg(&self) -> String {
        self.config.display().to_string()
    }

    /// pysaml2 answers the gateway's redirect; `Err(stderr)` when it refuses.
    pub(crate) fn respond(&self, location: &str) -> Result<Value, String> {
        let query = location
            .strip_prefix(&format!("{PY_IDP_SSO}?"))
            .unwrap_or_else(|| panic!("not a redirect to the pysaml2 IdP: {location}"));
        let out = self
            .script
            .run(&["respond", "--config", &self.config_arg(), "--query", query]);
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).expect("JSON from pysaml2_idp.py"))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn unsolicited(&self, sp_entity_id: &str) -> Value {
        self.script.json(&[
            "unsolicited",
            "--config",
            &self.config_arg(),
            "--sp",
            sp_entity_id,
        ])
    }

    /// An unsolicited Response signed as legacy IdPs sign, or encrypted:
    /// `how` is any of `--response-only` (the Response, not the
    /// Assertion), `--sha1`, `--encrypt=<cipher>`.
    fn unsolicited_legacy(&self, sp_entity_id: &str, how: &[&str]) -> Value {
        let config = self.config_arg();
        let mut args = vec!["unsolicited", "--config", &config, "--sp", sp_entity_id];
        args.extend_from_slice(how);
        self.script.json(&args)
    }
}

/// A pysaml2 IdP signing in `user`, and the SP key the gateway apps that
/// trust it sign with, all in one directory.
pub(crate) struct PyIdpFixture {
    pub(crate) idp: PyIdp,
    /// The IdP's JSON config; [`PyIdpFixture::learn_sps`] rewrites it.
    config: Value,
    metadata: PathBuf,
    sp_key: PathBuf,
    sp_cert: PathBuf,
    dir: tempfile::TempDir,
}

impl PyIdpFixture {
    pub(crate) fn new(user: Value) -> Self {
        let python = pysaml2();
        let dir = tempfile::tempdir().expect("dir");
        let write = |name: &str, data: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, data).expect("write");
            path
        };
        let idp_key = SigningKey::generate_self_signed("pysaml2 idp", 2).expect("idp key");
        let sp_key = SigningKey::generate_self_signed("gateway sp", 2).expect("sp key");
        let config = json!({
            "entity_id": PY_IDP_ENTITY,
            "sso_url": PY_IDP_SSO,
            "slo_url": PY_IDP_SLO,
            "key_file": write("idp-key.pem", &idp_key.key_pem().expect("pem")),
            "cert_file": write("idp.pem", &idp_key.cert_pem().expect("pem")),
            "user": user,
        });
        let idp = PyIdp {
            script: Script {
                python,
                name: "pysaml2_idp.py",
            },
            config: write("idp.json", config.to_string().as_bytes()),
        };
        // The IdP's metadata first: the gateway reads it at start.
        let metadata = write(
            "idp-metadata.xml",
            &idp.script
                .stdout(&["metadata", "--config", &idp.config_arg()]),
        );
        PyIdpFixture {
            idp,
            config,
            metadata,
            sp_key: write("sp-key.pem", &sp_key.key_pem().expect("pem")),
            sp_cert: write("sp.pem", &sp_key.cert_pem().expect("pem")),
            dir,
        }
    }

    pub(crate) fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).expect("write");
        path
    }

    /// An `[[app]]` trusting this IdP; `idp_extra` goes inside `idp = { … }`.
    pub(crate) fn app(&self, name: &str, url: &str, idp_extra: &str, extra: &str) -> String {
        let idp = format!("{idp_extra}metadata_file = \"{}\"", self.metadata.display());
        self.app_trusting(name, url, &idp, extra)
    }

    /// An `[[app]]` with `idp = { <idp> }`, signing with this fixture's SP key.
    pub(crate) fn app_trusting(&self, name: &str, url: &str, idp: &str, extra: &str) -> String {
        format!(
            "[[app]]\nname = \"{name}\"\npublic_url = \"{url}/\"\nupstream = \"builtin:echo\"\n\
auth = \"saml\"\nidp = {{ {idp} }}\nsp_signing_key = \"{}\"\nsp_signing_cert = \"{}\"\n{extra}\n",
            self.sp_key.display(),
            self.sp_cert.display(),
        )
    }

    /// The IdP's metadata document, as pysaml2 writes it for its current key.
    pub(crate) fn metadata_xml(&self) -> String {
        String::from_utf8(
            self.idp
                .script
                .stdout(&["metadata", "--config", &self.idp.config_arg()]),
        )
        .expect("UTF-8 metadata")
    }

    /// pysaml2 signs with `key` from now on (a key rollover).
    pub(crate) fn roll_key(&mut self, key: &SigningKey) {
        self.config["key_file"] =
            json!(self.write("idp-key-next.pem", &key.key_pem().expect("pem")));
        self.config["cert_file"] = json!(self.write("idp-next.pem", &key.cert_pem().expect("pem")));
        self.write("idp.json", self.config.to_string().as_bytes());
    }

    /// A file in the fixture's directory.
    pub(crate) fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        self.write(name, data)
    }

    /// pysaml2 learns the apps' SPs from the metadata the gateway serves;
    /// each is checked with `check` first.
    pub(crate) async fn learn_sps(&mut self, b: &Browser, origins: &[&str], check: impl Fn(&str)) {
        let mut sp_metadata = Vec::new();
        for (i, origin) in origins.iter().enumerate() {
            let meta = b.get(&format!("{origin}/_portcullis/saml/metadata")).await;
            assert_eq!(meta.status, StatusCode::OK, "{}", meta.text());
            check(&meta.text());
            sp_metadata.push(self.write(&format!("sp-{i}.xml"), meta.text().as_bytes()));
        }
        self.config["sp_metadata"] = json!(sp_metadata);
        self.write("idp.json", self.config.to_string().as_bytes());
    }
}

#[tokio::test]
async fn gateway_apps_sign_in_through_a_pysaml2_idp_from_its_metadata() {
    let mut fixture = PyIdpFixture::new(json!({
        "name_id": "dana@example.org",
        "attributes": {
            "email": ["dana@example.org"],
            "givenName": ["Dana"],
            "groups": ["finance", "staff"],
        },
    }));
    // b.test: SP-initiated only, /finance for the finance group, /admin for
    // admins. c.test: also takes IdP-initiated responses. d.test: like c,
    // with the legacy opt-ins for Response-only and SHA-1 signatures.
    // c and d publish an encryption key, so pysaml2 can encrypt for them.
    let enc = EncryptionKey::generate_self_signed("gateway sp encryption", 2).expect("key");
    let encryption = format!(
        "sp_encryption_key = \"{}\"\nsp_encryption_cert = \"{}\"\n",
        fixture
            .write("sp-enc-key.pem", enc.private_key_pem())
            .display(),
        fixture
            .write("sp-enc.pem", &enc.cert_pem().expect("pem"))
            .display(),
    );
    let config = format!(
        "{}{}{}",
        fixture.app(
            "b",
            APP_B,
            "",
            "[[app.access]]\npath = \"/finance\"\npolicy = \"groups\"\ngroups = [\"finance\"]\n\
[[app.access]]\npath = \"/admin\"\npolicy = \"groups\"\ngroups = [\"admins\"]\n"
        ),
        fixture.app(
            "c",
            APP_C,
            "",
            &format!("allow_idp_initiated = true\n{encryption}")
        ),
        fixture.app(
            "d",
            APP_D,
            "want_assertions_signed = false, allow_sha1 = true, ",
            &format!("allow_idp_initiated = true\n{encryption}")
        ),
    );
    let gw = Gateway::start("", &config);
    let b = gw.browser();
    // Only the apps with an encryption key offer one.
    fixture
        .learn_sps(&b, &[APP_B, APP_C, APP_D], |meta| {
            let offers = meta.contains("use=\"encryption\"");
            let is_b = meta.contains(&format!("entityID=\"{APP_B}/"));
            assert_eq!(offers, !is_b, "{meta}");
        })
        .await;
    let idp = &fixture.idp;

    // A deep link goes to pysaml2's SSO endpoint with a signed request.
    let deep = "/reports/q1?year=2026&view=full";
    let start = b.get(&format!("{APP_B}{deep}")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text());
    let location = start.location();
    assert!(location.contains("Signature="), "{location}");

    // pysaml2 refuses the request once its signature is stripped...
    let unsigned = location
        .split('&')
        .filter(|p| !p.starts_with("Signature=") && !p.starts_with("SigAlg="))
        .collect::<Vec<_>>()
        .join("&");
    let refusal = idp
        .respond(&unsigned)
        .expect_err("pysaml2 took an unsigned request");
    assert!(refusal.contains("refused"), "{refusal}");
    // ...verifies it as sent, and answers for the app's ACS.
    let answer = idp
        .respond(&location)
        .expect("pysaml2 accepted the request");
    assert_eq!(answer["acs_url"], format!("{APP_B}/_portcullis/saml/acs"));
    assert_eq!(answer["sp"], format!("{APP_B}/_portcullis/saml/metadata"));
    let relay_state = answer["relay_state"].as_str().expect("RelayState");
    let saml_response = answer["saml_response"].as_str().expect("SAMLResponse");

    // The gateway verifies pysaml2's signature with the metadata's
    // certificate and starts a session; the browser lands on the deep link.
    let request_state = b.cookie("pc_b_rs").expect("request state");
    let acs = b
        .post_form(
            &format!("{APP_B}/_portcullis/saml/acs"),
            &[("SAMLResponse", saml_response), ("RelayState", relay_state)],
        )
        .await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    assert_eq!(acs.location(), deep);
    let page = b.get(&format!("{APP_B}{deep}&format=json")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_eq!(page.echoed("x-portcullis-user"), ["dana@example.org"]);

    // pysaml2's groups attribute drives the access rules.
    let finance = b.get(&format!("{APP_B}/finance/ledger")).await;
    assert_eq!(finance.status, StatusCode::OK, "{}", finance.text());
    let admin = b.get(&format!("{APP_B}/admin")).await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN, "{}", admin.text());

    // The same response again is a replay.
    let again = gw.browser();
    again.set_cookie("pc_b_rs", &request_state);
    let replay = again
        .post_form(
            &format!("{APP_B}/_portcullis/saml/acs"),
            &[("SAMLResponse", saml_response), ("RelayState", relay_state)],
        )
        .await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.text());

    // IdP-initiated: refused by b (not opted in), accepted by c.
    let fresh = gw.browser();
    let to_b = idp.unsolicited(&format!("{APP_B}/_portcullis/saml/metadata"));
    let refused = fresh
        .post_form(
            to_b["acs_url"].as_str().expect("acs"),
            &[(
                "SAMLResponse",
                to_b["saml_response"].as_str().expect("response"),
            )],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert!(
        fresh.cookie("pc_b").is_none(),
        "no session from a refused response"
    );
    let to_c = idp.unsolicited(&format!("{APP_C}/_portcullis/saml/metadata"));
    assert_eq!(to_c["acs_url"], format!("{APP_C}/_portcullis/saml/acs"));
    let accepted = fresh
        .post_form(
            &format!("{APP_C}/_portcullis/saml/acs"),
            &[(
                "SAMLResponse",
                to_c["saml_response"].as_str().expect("response"),
            )],
        )
        .await;
    assert_eq!(
        accepted.status,
        StatusCode::SEE_OTHER,
        "{}",
        accepted.text()
    );
    let home = fresh.get(&format!("{APP_C}/?format=json")).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.text());
    assert_eq!(home.echoed("x-portcullis-user"), ["dana@example.org"]);

    // Signed as legacy IdPs sign, the Response only or with RSA-SHA1:
    // refused by c; taken by d, which opted in to both. Encrypted by
    // pysaml2 (xmlsec1) for the key in c's and d's metadata: AES-CBC is
    // decrypted and signs in (d: with only the Response signed, over the
    // ciphertext); pysaml2's default 3DES is refused before decrypting.
    for (how, origin, app, accepted) in [
        (&["--response-only"][..], APP_C, "c", false),
        (&["--response-only"], APP_D, "d", true),
        (&["--sha1"], APP_C, "c", false),
        (&["--sha1"], APP_D, "d", true),
        (&["--encrypt=aes256-cbc"], APP_C, "c", true),
        (
            &["--encrypt=aes256-cbc", "--response-only"],
            APP_D,
            "d",
            true,
        ),
        (&["--encrypt=pysaml2-default"], APP_C, "c", false),
    ] {
        let legacy = gw.browser();
        let answer = idp.unsolicited_legacy(&format!("{origin}/_portcullis/saml/metadata"), how);
        if how.iter().any(|h| h.starts_with("--encrypt")) {
            let xml = String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(answer["saml_response"].as_str().expect("response"))
                    .expect("base64"),
            )
            .expect("utf8");
            assert!(
                xml.contains("EncryptedAssertion") && !xml.contains(":Assertion "),
                "{how:?}: pysaml2 did not encrypt: {xml}"
            );
        }
        let reply = legacy
            .post_form(
                &format!("{origin}/_portcullis/saml/acs"),
                &[(
                    "SAMLResponse",
                    answer["saml_response"].as_str().expect("response"),
                )],
            )
            .await;
        let session = legacy.cookie(&format!("pc_{app}"));
        if accepted {
            assert_eq!(
                reply.status,
                StatusCode::SEE_OTHER,
                "{app}: {}",
                reply.text()
            );
            assert!(session.is_some(), "{app}: a session");
        } else {
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{app}: {}",
                reply.text()
            );
            assert!(session.is_none(), "{app}: no session");
        }
    }
    assert!(
        gw.wait_for_log(
            "want_assertions_signed = false",
            std::time::Duration::from_secs(5)
        )
        .is_some(),
        "the opt-in is logged at start: {:?}",
        gw.logs()
    );

    // A LogoutRequest signed with RSA-SHA1: b refuses it (its session
    // stays, ended below), d, opted in, answers it.
    for (origin, accepted) in [(APP_B, false), (APP_D, true)] {
        let sha1 = idp.script.json(&[
            "logout-request",
            "--config",
            &idp.config_arg(),
            "--sp",
            &format!("{origin}/_portcullis/saml/metadata"),
            "--name-id",
            "dana@example.org",
            "--sha1",
        ]);
        let to_gateway = sha1["location"].as_str().expect("location");
        assert!(to_gateway.contains("xmldsig%23rsa-sha1"), "{to_gateway}");
        let answered = gw.browser().get(to_gateway).await;
        let want = if accepted {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(answered.status, want, "{origin}: {}", answered.text());
    }
    let still_in = b.get(&format!("{APP_B}{deep}&format=json")).await;
    assert_eq!(
        still_in.status,
        StatusCode::OK,
        "b's session survived SHA-1"
    );

    // IdP-initiated Single Logout from pysaml2: the gateway ends dana's
    // session in b and answers with a signed LogoutResponse pysaml2 accepts.
    let request = idp.script.json(&[
        "logout-request",
        "--config",
        &idp.config_arg(),
        "--sp",
        &format!("{APP_B}/_portcullis/saml/metadata"),
        "--name-id",
        "dana@example.org",
    ]);
    let to_gateway = request["location"].as_str().expect("location");
    assert!(
        to_gateway.starts_with(&format!("{APP_B}/_portcullis/saml/slo?SAMLRequest=")),
        "{to_gateway}"
    );
    let answered = b.get(to_gateway).await;
    assert_eq!(
        answered.status,
        StatusCode::SEE_OTHER,
        "{}",
        answered.text()
    );
    let back = answered.location();
    let query = back
        .strip_prefix(&format!("{PY_IDP_SLO}?"))
        .unwrap_or_else(|| panic!("not a LogoutResponse to pysaml2: {back}"));
    let verdict = idp.script.json(&[
        "logout-response",
        "--config",
        &idp.config_arg(),
        "--query",
        query,
    ]);
    assert_eq!(
        verdict["in_response_to"], request["request_id"],
        "{verdict}"
    );
    assert_eq!(
        verdict["status"],
        "urn:oasis:names:tc:SAML:2.0:status:Success"
    );
    assert_eq!(verdict["relay_state"], "pysaml2-idp-logout");
    let signed_out = b.get(&format!("{APP_B}{deep}&format=json")).await;
    assert_eq!(
        signed_out.status,
        StatusCode::SEE_OTHER,
        "b's session ended"
    );

    let rejections: Vec<String> = gw
        .logs()
        .into_iter()
        .filter(|l| l.contains("no session created"))
        .collect();
    assert_eq!(rejections.len(), 5, "{rejections:?}");
    // Replayed with the browser's request state: that AuthnRequest has
    // been answered.
    assert!(
        rejections[0].contains("\"error.kind\":\"request_already_answered\""),
        "{rejections:?}"
    );
    assert!(
        rejections[1].contains("\"error.kind\":\"no_request_state\""),
        "{rejections:?}"
    );
    assert!(
        rejections[2].contains("\"app\":\"c\"")
            && rejections[2].contains("assertion is not signed"),
        "{rejections:?}"
    );
    assert!(
        rejections[3].contains("\"app\":\"c\"") && rejections[3].contains("rsa-sha1"),
        "{rejections:?}"
    );
    assert!(
        rejections[4].contains("\"error.kind\":\"decryption\"")
            && rejections[4].contains("xmlenc#tripledes-cbc"),
        "{rejections:?}"
    );
}

const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
const TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
const EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// An app with `name_id_format = "persistent"` asks pysaml2 for it (SP
/// metadata and AuthnRequest), and its LogoutRequest names the user by the
/// very NameID pysaml2 issued: Format and both qualifiers included.
#[tokio::test]
async fn a_gateway_app_asks_pysaml2_for_a_persistent_name_id_and_repeats_it_at_logout() {
    let mut fixture = PyIdpFixture::new(json!({
        "name_id": "dana@example.org",
        "persistent_id": "pp-7f3a9c",
        "attributes": {"email": ["dana@example.org"]},
    }));
    let config = fixture.app("b", APP_B, "", "name_id_format = \"persistent\"\n");
    let gw = Gateway::start("", &config);
    let b = gw.browser();
    fixture
        .learn_sps(&b, &[APP_B], |meta| {
            assert!(
                meta.contains(&format!("NameIDFormat>{PERSISTENT}</")),
                "{meta}"
            );
        })
        .await;
    let idp = &fixture.idp;

    let start = b.get(&format!("{APP_B}/")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.text());
    let answer = idp.respond(&start.location()).expect("pysaml2 answered");
    assert_eq!(answer["name_id_policy"]["format"], PERSISTENT, "{answer}");
    assert_eq!(answer["name_id_policy"]["allow_create"], "true", "{answer}");
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
    let page = b.get(&format!("{APP_B}/?format=json")).await;
    assert_eq!(page.echoed("x-portcullis-user"), ["pp-7f3a9c"]);

    let logout = b.get(&format!("{APP_B}/_portcullis/logout")).await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER, "{}", logout.text());
    let to_idp = logout.location();
    let query = to_idp
        .strip_prefix(&format!("{PY_IDP_SLO}?"))
        .unwrap_or_else(|| panic!("not a LogoutRequest to pysaml2: {to_idp}"));
    let seen = idp.script.json(&[
        "parse-logout-request",
        "--config",
        &idp.config_arg(),
        "--query",
        query,
    ]);
    assert_eq!(seen["name_id"], "pp-7f3a9c", "{seen}");
    assert_eq!(seen["name_id_format"], PERSISTENT, "{seen}");
    assert_eq!(seen["name_qualifier"], PY_IDP_ENTITY, "{seen}");
    assert_eq!(
        seen["sp_name_qualifier"],
        format!("{APP_B}/_portcullis/saml/metadata"),
        "{seen}"
    );
}

/// Takes pysaml2's AuthnRequest `location` to the embedded IdP, signing
/// bob in when the browser has no IdP session: the IdP's auto-submit page
/// for the SP's ACS.
pub(crate) async fn to_the_acs_form(b: &Browser, location: &str) -> test_support::Reply {
    let page = b.get(location).await;
    if page.status != StatusCode::SEE_OTHER {
        return page;
    }
    let login = page.location();
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
    b.get(&format!("{IDP}{}", done.location())).await
}

/// What pysaml2 made of the IdP's answer to an AuthnRequest asking for
/// `format`: `Ok(parsed response)` or `Err(stderr)`. Signs in as bob when
/// the browser has no IdP session.
async fn sign_in_asking_for(b: &Browser, sp: &Sp, format: &str) -> Result<Value, String> {
    sign_in_signed(b, sp, format, false).await
}

/// [`sign_in_asking_for`], the request signed with RSA-SHA1 when `sha1`.
async fn sign_in_signed(b: &Browser, sp: &Sp, format: &str, sha1: bool) -> Result<Value, String> {
    let (request_id, location) = sp.authn_request_signed(Some(format), sha1);
    assert_eq!(location.contains("xmldsig%23rsa-sha1"), sha1, "{location}");
    let page = to_the_acs_form(b, &location).await;
    let html = page.text();
    assert_eq!(page.status, StatusCode::OK, "{html}");
    let response = input_value(&html, "SAMLResponse").expect("SAMLResponse");
    let out = sp.parse_response(&response, &request_id);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// pysaml2 as SP asks the embedded IdP for each NameID format: it gets the
/// formats its registration allows, and InvalidNameIDPolicy for others.
/// It is registered with the legacy `allow_sha1`, so one request is signed
/// with RSA-SHA1 (refused without it, above).
#[tokio::test]
async fn pysaml2_sp_gets_the_name_id_format_it_asks_for() {
    let (gw, sp) = pysaml2_sp_registered(
        "name_id_format = \"emailAddress\"
name_id_formats_allowed = [\"transient\", \"persistent\"]
allow_sha1 = true
",
    )
    .await;
    let b = gw.browser();

    let transient = sign_in_asking_for(&b, &sp, TRANSIENT)
        .await
        .expect("transient");
    assert_eq!(transient["name_id_format"], TRANSIENT, "{transient}");
    assert_eq!(transient["name_qualifier"], IDP_ENTITY, "{transient}");
    assert_eq!(transient["sp_name_qualifier"], SP_ENTITY, "{transient}");
    let again = sign_in_asking_for(&b, &sp, TRANSIENT)
        .await
        .expect("transient");
    assert_eq!(
        again["name_id"], transient["name_id"],
        "stable within the session"
    );
    let persistent = sign_in_asking_for(&b, &sp, PERSISTENT)
        .await
        .expect("persistent");
    assert_eq!(persistent["name_id_format"], PERSISTENT, "{persistent}");
    assert_eq!(persistent["sp_name_qualifier"], SP_ENTITY, "{persistent}");
    let opaque = persistent["name_id"].as_str().expect("persistent id");
    assert!(
        !opaque.contains("bob") && opaque.len() >= 32,
        "{persistent}"
    );
    let email = sign_in_signed(&b, &sp, EMAIL, true)
        .await
        .expect("an RSA-SHA1 signed request from an SP marked allow_sha1");
    assert_eq!(email["name_id"], "bob@example.com", "{email}");
    assert_eq!(email["name_id_format"], EMAIL, "{email}");
    // A format the registration does not allow: no assertion, a status.
    let refused = sign_in_asking_for(
        &b,
        &sp,
        "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
    )
    .await
    .expect_err("pysaml2 accepted an InvalidNameIDPolicy answer");
    assert!(refused.contains("InvalidNameidPolicy"), "{refused}");

    // A second IdP session: a new transient id, the same persistent one.
    let other = gw.browser();
    let second = sign_in_asking_for(&other, &sp, TRANSIENT)
        .await
        .expect("transient");
    assert_ne!(second["name_id"], transient["name_id"], "{second}");
    let stable = sign_in_asking_for(&other, &sp, PERSISTENT)
        .await
        .expect("persistent");
    assert_eq!(stable["name_id"], persistent["name_id"], "{stable}");

    // Single Logout from the IdP names the user as last issued there.
    let logout = other.get(&format!("{IDP}/logout")).await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER, "{}", logout.text());
    let to_sp = logout.location();
    let query = to_sp
        .strip_prefix(&format!("{SP_SLO}?"))
        .unwrap_or_else(|| panic!("not a LogoutRequest to pysaml2: {to_sp}"));
    let config = sp.config.display().to_string();
    let answer = sp.run_ok(&["logout-request", "--config", &config, "--query", query]);
    assert_eq!(answer["name_id"], persistent["name_id"], "{answer}");
    assert_eq!(answer["name_id_format"], PERSISTENT, "{answer}");
}
