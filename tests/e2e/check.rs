use std::process::Command;

use crate::process::{app, config_text, BIN};
use test_support::Pki;

/// `portcullis check` on `text`: exit code, stdout, stderr.
pub(crate) fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_good_file_passes() {
    let pki = Pki::new();
    let text = config_text(&pki, "", &app("a", "https://app.test/", "builtin:echo"));
    let (code, stdout, stderr) = check(&text);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok (1 app)"), "{stdout}");
}

#[test]
fn the_shipped_example_passes() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../gateway.toml.example");
    let out = Command::new(BIN)
        .args(["check", "--config", example])
        .output()
        .expect("run check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_syntax_error_names_its_line() {
    let (code, _, stderr) = check("[server]\nhttps = [\"127.0.0.1:0\"\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("gateway.toml:2:"), "{stderr}");
    assert!(stderr.contains("TOML syntax error"), "{stderr}");
}

#[test]
fn every_semantic_problem_is_reported_with_its_location() {
    let pki = Pki::new();
    let apps = [
        app("dup", "https://app.test/", "builtin:echo"),
        app("dup", "https://b.test/", "builtin:echo"),
        app("overlap", "https://app.test", "builtin:echo"),
        app("bad-upstream", "https://c.test/", "ftp://files.example/"),
        app("plain", "http://a.test/", "builtin:echo"),
        "[[app]]\nname = \"typo\"\npublic_url = \"https://a.test/\"\nupstrem = \"builtin:echo\"\n"
            .to_string(),
    ]
    .concat();
    let server = "upstream_connect_timeout = \"30s\"\nupstream_response_timeout = \"5s\"\nheader_read_timeout = \"0s\"";
    let mut text = config_text(&pki, server, &apps);
    text = text.replace(
        &pki.key_path().display().to_string(),
        "/nonexistent/key.pem",
    );
    let (code, _, stderr) = check(&text);
    assert_eq!(code, 2, "{stderr}");
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle} not in config"))
    };
    let expectations = [
        (
            format!(":{}: app[1].name", line_of("name = \"dup\"") + 4),
            "already used by app[0]",
        ),
        (
            format!(":{}: app[2].public_url", line_of("https://app.test\"")),
            "overlaps app[0]",
        ),
        (
            format!(":{}: app[3].upstream", line_of("ftp://")),
            "not supported",
        ),
        (
            format!(":{}: app[4].public_url", line_of("http://a.test/")),
            "must use https",
        ),
        (
            format!(":{}: app[5].upstrem", line_of("upstrem")),
            "unknown field",
        ),
        (
            format!(":{}: server.tls_key", line_of("/nonexistent/key.pem")),
            "cannot load private key",
        ),
        (
            format!(
                ":{}: server.upstream_connect_timeout",
                line_of("upstream_connect_timeout")
            ),
            "must not exceed",
        ),
        (
            format!(
                ":{}: server.header_read_timeout",
                line_of("header_read_timeout")
            ),
            "longer than zero",
        ),
    ];
    for (location, message) in expectations {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&location) && l.contains(message)),
            "missing `{location}` … `{message}` in:\n{stderr}"
        );
    }
    assert!(stderr.contains("8 problem(s) found"), "{stderr}");
}

#[test]
fn run_refuses_an_invalid_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, "[server]\nhttps = [\"not-an-address\"]\n").expect("write");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.https[0]"), "{stderr}");
    assert!(stderr.contains("refusing to start"), "{stderr}");
}

#[test]
fn hash_password_prints_an_argon2id_hash() {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"correct horse\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let hash = String::from_utf8_lossy(&out.stdout);
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
}

#[test]
fn problems_found_past_the_file_are_all_reported_too() {
    // The file is valid, but what it names is not: each app's SP key is
    // another key's pair (config can only see that each PEM loads; the SAML
    // key check is the gateway's). Every app's problem is printed, not just
    // the first one met.
    let pki = Pki::new();
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let saml_app = |name: &str, url: &str| {
        format!(
            "[[app]]\nname = \"{name}\"\npublic_url = \"{url}\"\nupstream = \"builtin:echo\"\n\
auth = \"saml\"\nidp = \"embedded\"\nsp_signing_key = \"{repo}/certs-dev/idp-signing-key.pem\"\n\
sp_signing_cert = \"{repo}/certs-dev/sp-signing.pem\"\n"
        )
    };
    let apps = format!(
        "[idp]\npublic_url = \"https://idp.test/\"\nusers_file = \"{repo}/demo/users.toml\"\n\
signing_key = \"{repo}/certs-dev/idp-signing-key.pem\"\nsigning_cert = \"{repo}/certs-dev/idp-signing.pem\"\n\n{}{}",
        saml_app("one", "https://one.test/"),
        saml_app("two", "https://two.test/"),
    );
    let (code, _, stderr) = check(&config_text(&pki, "", &apps));
    assert_eq!(code, 2, "{stderr}");
    for key in ["app[0].sp_signing_key", "app[1].sp_signing_key"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!(": {key}: ")) && l.contains("does not match")),
            "missing {key} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("2 problem(s) found"), "{stderr}");
}

#[test]
fn every_bad_trusted_proxy_is_printed_with_its_line() {
    let pki = Pki::new();
    let text = config_text(
        &pki,
        "trusted_proxies = [\n  \"10.0.0.0/8\",\n  \"10.0.0.0/33\",\n  \"lb.internal\",\n]",
        &app("a", "https://app.test/", "builtin:echo"),
    );
    let (code, _, stderr) = check(&text);
    assert_eq!(code, 2, "{stderr}");
    for (entry, index) in [("10.0.0.0/33", 1), ("lb.internal", 2)] {
        assert!(
            stderr.contains(&format!("server.trusted_proxies[{index}]"))
                && stderr.contains(&format!("`{entry}` is not an IP address or CIDR")),
            "{stderr}"
        );
    }
    assert!(!stderr.contains("trusted_proxies[0]"), "{stderr}");
}

#[test]
fn a_trusted_proxy_range_of_every_address_passes_with_a_note() {
    let pki = Pki::new();
    let text = config_text(
        &pki,
        "trusted_proxies = [\"10.0.0.0/8\", \"0.0.0.0/0\", \"::/0\"]",
        &app("a", "https://app.test/", "builtin:echo"),
    );
    let (code, stdout, stderr) = check(&text);
    assert_eq!(code, 0, "{stderr}");
    let notes: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("note: [server] trusted_proxies:"))
        .collect();
    assert_eq!(notes.len(), 2, "{stdout}");
    assert!(
        notes[0].contains("0.0.0.0/0") && notes[1].contains("::/0"),
        "{stdout}"
    );
    assert!(notes
        .iter()
        .all(|n| n.contains("any client can claim any address")));
}

/// A config with the embedded IdP, whose `[idp] asn_database` is `asn`.
fn with_asn_database(pki: &Pki, asn: &std::path::Path) -> String {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let idp = format!(
        "[idp]\npublic_url = \"https://idp.test/\"\nusers_file = \"{repo}/demo/users.toml\"\n\
signing_key = \"{repo}/certs-dev/idp-signing-key.pem\"\nsigning_cert = \"{repo}/certs-dev/idp-signing.pem\"\n\
asn_database = \"{}\"\n\n{}",
        asn.display(),
        app("a", "https://app.test/", "builtin:echo"),
    );
    config_text(pki, "", &idp)
}

fn asn_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/asn")
        .join(name)
}

#[test]
fn an_asn_database_in_either_format_passes() {
    let pki = Pki::new();
    for name in ["asn.mmdb", "asn.tsv"] {
        let (code, stdout, stderr) = check(&with_asn_database(&pki, &asn_fixture(name)));
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(stdout.contains("ok (1 app)"), "{name}: {stdout}");
    }
}

#[test]
fn a_missing_or_unusable_asn_database_is_a_problem_naming_the_file() {
    let pki = Pki::new();
    for (name, reason) in [
        ("no-such-database.mmdb", "No such file"),
        ("corrupt.mmdb", "not a valid MaxMind DB"),
        ("truncated.mmdb", "neither a MaxMind DB"),
        ("not-asn.mmdb", "holds no ASN records"),
    ] {
        let (code, _, stderr) = check(&with_asn_database(&pki, &asn_fixture(name)));
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("asn_database") && l.contains(name) && l.contains(reason)),
            "{name}: no line naming the file and `{reason}` in:\n{stderr}"
        );
        assert!(stderr.contains("1 problem(s) found"), "{name}: {stderr}");
    }
}

#[test]
fn the_admin_console_takes_two_factors_and_check_says_what_falls_back() {
    let pki = Pki::new();
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let dir = tempfile::tempdir().expect("dir");
    let policy = dir.path().join("policies.toml");
    std::fs::write(
        &policy,
        "[[session_policy]]\nname = \"Everyone\"\npriority = 1\ngroups = [\"Everyone\"]\n\
         [[session_policy.rule]]\nname = \"Password is enough\"\npriority = 1\naccess = \"ALLOW\"\n",
    )
    .expect("write");
    let idp = |admin: &str| {
        format!(
            "[idp]\npublic_url = \"https://idp.test/\"\nusers_file = \"{repo}/demo/users.toml\"\n\
policy_file = \"{}\"\n{admin}\n{}",
            policy.display(),
            app("a", "https://app.test/", "builtin:echo"),
        )
    };
    // One factor for the console is refused.
    let (code, _, stderr) = check(&config_text(&pki, "", &idp("[idp.admin]\nfactors = 1\n")));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("idp.admin.factors") && stderr.contains("only 2 is accepted"),
        "{stderr}"
    );
    // The defaults pass, with a note for the one-factor sign-on rule that
    // admins get and for ASN binding without an ASN database.
    let (code, stdout, stderr) = check(&config_text(&pki, "", &idp("")));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.lines().any(|l| l.starts_with("note: ")
            && l.contains(
                "“Password is enough” lets administrator alice sign in to the IdP without MFA"
            )),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("note: [idp.admin] bind:") && l.contains("client IP")),
        "{stdout}"
    );
}

#[test]
fn an_unknown_name_id_format_is_a_located_problem() {
    let pki = Pki::new();
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let apps = format!(
        "[idp]\npublic_url = \"https://idp.test/\"\nusers_file = \"{repo}/demo/users.toml\"\n\
signing_key = \"{repo}/certs-dev/idp-signing-key.pem\"\nsigning_cert = \"{repo}/certs-dev/idp-signing.pem\"\n\
[idp.saml]\nclock_skew = \"a while\"\n\n\
[[idp.service_provider]]\nname = \"portal\"\nentity_id = \"https://portal.test/md\"\nacs_url = \"https://portal.test/acs\"\n\
name_id_formats_allowed = [\"transient\", \"kerberos\"]\n\n\
[[app]]\nname = \"one\"\npublic_url = \"https://one.test/\"\nupstream = \"builtin:echo\"\n\
auth = \"saml\"\nidp = \"embedded\"\nsp_signing_key = \"{repo}/certs-dev/sp-signing-key.pem\"\n\
sp_signing_cert = \"{repo}/certs-dev/sp-signing.pem\"\nname_id_format = \"Persistent\"\n"
    );
    let (code, _, stderr) = check(&config_text(&pki, "", &apps));
    assert_eq!(code, 2, "{stderr}");
    for (key, bad) in [
        ("app[0].name_id_format", "`Persistent`"),
        (
            "idp.service_provider[0].name_id_formats_allowed",
            "`kerberos`",
        ),
        ("idp.saml.clock_skew", "`a while`"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!(": {key}: ")) && l.contains(bad)),
            "missing {key} in:\n{stderr}"
        );
    }
}

#[test]
fn shared_mode_takes_sentinel_and_redis_cluster_endpoints() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("dir");
    let keys = dir.path().join("store-keys");
    std::fs::write(&keys, "check-store-key-0123456789abcdef0123456789abcdef\n").expect("keys");
    let shared = |endpoints: &str| {
        let cluster = format!(
            "[cluster]\nmode = \"shared\"\nnode_id = \"gw-a\"\nstore_key_file = \"{}\"\n\n\
             [cluster.redis]\n{endpoints}\n\n",
            keys.display()
        );
        config_text(
            &pki,
            "",
            &(cluster + &app("a", "https://app.test/", "builtin:echo")),
        )
    };
    // Nothing is connected at check time: no sentinel or cluster node
    // needs to run.
    let (code, stdout, stderr) = check(&shared(
        "sentinel = { master = \"mymaster\", nodes = [\"redis://127.0.0.1:26379\", \"redis://127.0.0.1:26380\"] }",
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok (1 app)"), "{stdout}");
    let (code, stdout, stderr) = check(&shared(
        "cluster_nodes = [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]",
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok (1 app)"), "{stdout}");
}

#[test]
fn a_service_provider_allowed_sha1_passes_with_a_note() {
    let pki = Pki::new();
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let idp = format!(
        "[idp]\npublic_url = \"https://idp.test/\"\nusers_file = \"{repo}/demo/users.toml\"\n\
signing_key = \"{repo}/certs-dev/idp-signing-key.pem\"\nsigning_cert = \"{repo}/certs-dev/idp-signing.pem\"\n\n\
[[idp.service_provider]]\nname = \"legacy\"\nentity_id = \"https://legacy.test/md\"\nacs_url = \"https://legacy.test/acs\"\n\
signing_cert = \"{repo}/certs-dev/sp-signing.pem\"\nallow_sha1 = true\n\n{}",
        app("a", "https://app.test/", "builtin:echo"),
    );
    let (code, stdout, stderr) = check(&config_text(&pki, "", &idp));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.lines().any(|l| l
            == "note: [[idp.service_provider]] legacy: allow_sha1 = true: requests and logout \
                messages from https://legacy.test/md may be signed with RSA-SHA1"),
        "{stdout}"
    );
}

#[test]
fn an_unreachable_metadata_url_without_a_cache_file_is_a_located_problem() {
    let pki = Pki::new();
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let closed = test_support::backend::Backend::closed_addr();
    let apps = format!(
        "[[app]]\nname = \"fed\"\npublic_url = \"https://fed.test/\"\nupstream = \"builtin:echo\"\n\
auth = \"saml\"\nidp = {{ metadata_url = \"http://{closed}/federation.xml\", metadata_signing_cert = \"{repo}/certs-dev/idp-signing.pem\" }}\n\
sp_signing_key = \"{repo}/certs-dev/sp-signing-key.pem\"\nsp_signing_cert = \"{repo}/certs-dev/sp-signing.pem\"\n"
    );
    let (code, _, stderr) = check(&config_text(&pki, "", &apps));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains(": app[0].idp.metadata_url: ")
                && l.contains("cannot fetch metadata")
                && l.contains("no metadata_cache_file")),
        "{stderr}"
    );
}
