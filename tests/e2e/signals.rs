use std::time::Duration;

use http::StatusCode;
use test_support::{Backend, Client};

use crate::process::{admin_get, app, config_text, Gateway, WITH_ADMIN};

#[tokio::test]
async fn sighup_with_a_broken_file_keeps_serving_and_a_good_one_applies() {
    let backend = Backend::start().await;
    let gw = Gateway::start("", &app("a", "https://app.test/", &backend.url()));
    let client = Client::http1(&gw.pki, gw.https);
    assert_eq!(client.get("https://app.test/").await.status, StatusCode::OK);

    gw.rewrite_config("[server\nthis is not toml");
    gw.signal("HUP");
    assert!(
        gw.wait_for_log("reload refused", Duration::from_secs(10))
            .is_some(),
        "no refusal logged: {:?}",
        gw.logs()
    );
    assert_eq!(client.get("https://app.test/").await.status, StatusCode::OK);
    assert_eq!(
        client.get("https://b.test/").await.status,
        StatusCode::NOT_FOUND
    );

    let apps = [
        app("a", "https://app.test/", &backend.url()),
        app("b", "https://b.test/", "builtin:echo"),
    ]
    .concat();
    gw.rewrite_config(&config_text(&gw.pki, "", &apps));
    gw.signal("HUP");
    assert!(gw
        .wait_for_log("configuration reloaded", Duration::from_secs(10))
        .is_some());
    assert_eq!(client.get("https://b.test/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_request_then_exits() {
    let backend = Backend::start().await;
    let mut gw = Gateway::start(
        "shutdown_timeout = \"10s\"",
        &app("a", "https://app.test/", &backend.url()),
    );
    let client = Client::http1(&gw.pki, gw.https);
    let slow = tokio::spawn(async move { client.get("https://app.test/slow?ms=1500").await });
    assert!(test_support::eventually(Duration::from_secs(5), || backend.requests() == 1).await);
    gw.signal("TERM");
    assert!(gw
        .wait_for_log("listeners closed", Duration::from_secs(5))
        .is_some());
    // New connections are refused while draining.
    let refused = tokio::net::TcpStream::connect(gw.https).await;
    assert!(refused.is_err(), "listener still accepting during drain");
    let reply = slow.await.expect("join");
    assert_eq!(reply.status, StatusCode::OK, "in-flight request was cut");
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test]
async fn a_refused_reload_is_counted_as_a_failure() {
    let gw = Gateway::start(WITH_ADMIN, &app("a", "https://app.test/", "builtin:echo"));
    let admin = gw.admin_addr();
    gw.rewrite_config("[server\nthis is not toml");
    gw.signal("HUP");
    assert!(gw
        .wait_for_log("reload refused", Duration::from_secs(10))
        .is_some());
    let (status, metrics) = admin_get(admin, "/metrics").await.expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("portcullis_config_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn readyz_answers_503_from_the_start_of_a_drain_until_exit() {
    let backend = Backend::start().await;
    let mut gw = Gateway::start(WITH_ADMIN, &app("a", "https://app.test/", &backend.url()));
    let admin = gw.admin_addr();
    assert_eq!(admin_get(admin, "/readyz").await.map(|r| r.0), Some(200));
    let client = Client::http1(&gw.pki, gw.https);
    let slow = tokio::spawn(async move { client.get("https://app.test/slow?ms=2000").await });
    assert!(test_support::eventually(Duration::from_secs(5), || backend.requests() == 1).await);
    gw.signal("TERM");

    // Every answer from the signal on is 503, until nothing answers; at
    // least one comes while the request is still in flight.
    // (status, whether the slow request was still in flight)
    let mut answers = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while let Some((status, _)) = admin_get(admin, "/readyz").await {
        answers.push((status, !slow.is_finished()));
        assert!(
            std::time::Instant::now() < deadline,
            "admin still answering"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Answers before the signal was handled may still be 200; none after.
    let after_signal: Vec<_> = answers.iter().skip_while(|(s, _)| *s == 200).collect();
    assert!(
        after_signal.iter().all(|(s, _)| *s == 503),
        "readyz after SIGTERM: {answers:?}"
    );
    assert!(
        after_signal.iter().any(|(_, in_flight)| *in_flight),
        "no 503 while the drain waited for the request: {answers:?}"
    );
    let reply = slow.await.expect("join");
    assert_eq!(reply.status, StatusCode::OK, "in-flight request was cut");
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn the_soft_descriptor_limit_is_raised_to_the_hard_limit() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let pki = test_support::Pki::new();
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        config_text(&pki, "", &app("a", "https://app.test/", "builtin:echo")),
    )
    .expect("write config");
    // Started under a low soft limit, as the common default of 1,024 is.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -Sn 512 && exec \"$0\" run --config \"$1\"")
        .arg(crate::process::BIN)
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn portcullis");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let mut limit_line = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Ok(line) =
        seen.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        if line.contains("file descriptor limit") {
            limit_line = Some(line.clone());
        }
        if line.contains("gateway listening") {
            break;
        }
    }
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", child.id())).expect("proc limits");
    let _ = child.kill();
    let _ = child.wait();
    let open_files: Vec<u64> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(open_files.len(), 2, "{limits}");
    assert_eq!(
        open_files[0], open_files[1],
        "soft limit not raised: {limits}"
    );
    let line = limit_line.expect("no `file descriptor limit` line");
    let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(
        event["descriptors.soft"], event["descriptors.hard"],
        "{line}"
    );
}

#[tokio::test]
async fn sighup_with_a_corrupt_asn_database_keeps_the_last_good_one() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/asn");
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let dir = tempfile::tempdir().expect("dir");
    let database = dir.path().join("asn.mmdb");
    let install = |fixture: &str| {
        // As an operator's updater does: a new file renamed into place.
        let staged = dir.path().join("asn.mmdb.new");
        std::fs::copy(format!("{fixtures}/{fixture}"), &staged).expect("copy fixture");
        std::fs::rename(&staged, &database).expect("rename");
    };
    install("asn.mmdb");
    let idp = format!(
        "[idp]\npublic_url = \"https://idp.test/\"\nusers_file = \"{repo}/demo/users.toml\"\n\
signing_key = \"{repo}/certs-dev/idp-signing-key.pem\"\nsigning_cert = \"{repo}/certs-dev/idp-signing.pem\"\n\
system_log_file = \"{}\"\nasn_database = \"{}\"\n\n{}",
        dir.path().join("system.log").display(),
        database.display(),
        app("a", "https://app.test/", "builtin:echo"),
    );
    let gw = Gateway::start_with_text(|pki| config_text(pki, "", &idp));

    install("corrupt.mmdb");
    gw.signal("HUP");
    let problem = gw
        .wait_for_log("post-auth settings not reloaded", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no refusal logged: {:?}", gw.logs()));
    assert!(
        problem.contains("asn.mmdb") && problem.contains("not a valid MaxMind DB"),
        "{problem}"
    );
    assert!(gw
        .wait_for_log("the previous settings stay", Duration::from_secs(5))
        .is_some());
    let client = Client::http1(&gw.pki, gw.https);
    assert_eq!(client.get("https://app.test/").await.status, StatusCode::OK);

    install("asn.tsv");
    gw.signal("HUP");
    let reloaded = gw
        .wait_for_log("post-auth settings reloaded", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no reload logged: {:?}", gw.logs()));
    assert!(reloaded.contains("\"asn_ranges\":4"), "{reloaded}");
}
