//! The deploy kits (`deploy/`), validated offline with the real tools:
//! `systemd-analyze verify` on the unit, `haproxy -c` on both HAProxy
//! configurations, PyYAML on every YAML file, kubernetes-validate (the
//! packaged Kubernetes JSON schemas) on the manifests, the `[cluster]`
//! contract on every TOML file, `portcullis check` on the node configs, and
//! the Dockerfile's runtime packages against the libraries the built binary
//! links. Each check is also run on a deliberately broken copy, so a check
//! that silently passes everything fails here.
//!
//! Not exercised (no daemon, no cluster, no network): `docker build`,
//! `docker compose up`, `kubectl apply`. The tools come from `make
//! test-deps` (haproxy, systemd, binutils; the venv at target/pyenv with
//! PyYAML and kubernetes-validate); a missing one fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::Pki;

use crate::process::BIN;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn root() -> PathBuf {
    Path::new(ROOT).to_path_buf()
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
    fn both(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `command` to completion within `within`, or kills it and panics.
fn run(command: &mut Command, within: Duration) -> Ran {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {what}: {e} (the tools come from `make test-deps`)")
        });
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = r.read_to_string(&mut text);
            text
        })
    };
    let out = pipe(Box::new(child.stdout.take().expect("stdout")));
    let err = pipe(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// The venv's Python (`PORTCULLIS_PYTHON`, else target/pyenv) with PyYAML
/// and kubernetes-validate, or a panic naming `make test-deps`.
fn python() -> PathBuf {
    let python = std::env::var_os("PORTCULLIS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/pyenv/bin/python"));
    let ran = run(
        Command::new(&python).args(["-c", "import yaml, kubernetes_validate"]),
        Duration::from_secs(30),
    );
    assert!(
        ran.ok(),
        "{} cannot import yaml and kubernetes_validate; run `make test-deps`\n{}",
        python.display(),
        ran.both()
    );
    python
}

/// Every `*.yaml`/`*.yml` under `deploy/`, each as its list of documents.
fn yaml_files() -> BTreeMap<String, Vec<Value>> {
    let script = r#"
import json, os, sys, yaml
root = sys.argv[1]
out = {}
for d, _, files in os.walk(root):
    for f in files:
        if f.endswith((".yaml", ".yml")):
            p = os.path.join(d, f)
            with open(p) as fh:
                out[os.path.relpath(p, root)] = [doc for doc in yaml.safe_load_all(fh) if doc is not None]
print(json.dumps(out))
"#;
    let ran = run(
        Command::new(python()).args(["-c", script]).arg(deploy()),
        Duration::from_secs(30),
    );
    assert!(
        ran.ok(),
        "a YAML file under deploy/ does not parse:\n{}",
        ran.both()
    );
    serde_json::from_str(&ran.stdout).expect("JSON from the YAML reader")
}

fn yaml(files: &BTreeMap<String, Vec<Value>>, name: &str) -> Vec<Value> {
    files
        .get(name)
        .unwrap_or_else(|| panic!("deploy/{name} missing; have {:?}", files.keys()))
        .clone()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// `"1s"`, `"500ms"`, `"2m"`, `"1h"`.
fn duration(text: &str) -> Duration {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or_else(|| panic!("duration {text:?} has no unit"));
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("duration {text:?} has no number"));
    match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => panic!("duration {text:?}: unknown unit"),
    }
}

/// `[server] shutdown_timeout`'s default, read from crates/config so a
/// change there fails the kits' timing checks here.
fn default_shutdown() -> Duration {
    let source = read(&root().join("crates/config/src/validate/server.rs"));
    let line = source
        .lines()
        .find(|l| l.contains("const DEFAULT_SHUTDOWN: Duration"))
        .expect("DEFAULT_SHUTDOWN in crates/config/src/validate/server.rs");
    let secs = line
        .split("from_secs(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the default from {line:?}"));
    Duration::from_secs(secs)
}

/// The drain a config file asks for: its shutdown_timeout or the default.
fn shutdown_of(config: &toml::Table) -> Duration {
    config
        .get("server")
        .and_then(|s| s.get("shutdown_timeout"))
        .and_then(|v| v.as_str())
        .map(duration)
        .unwrap_or_else(default_shutdown)
}

// ---------------------------------------------------------------- systemd

/// The `systemd-analyze verify` lines about `unit` (unknown keys, values
/// that do not parse, missing executables); empty when it is clean.
fn systemd_problems(unit_text: &str) -> (Ran, Vec<String>) {
    let dir = tempfile::tempdir().expect("dir");
    let unit = dir.path().join("portcullis.service");
    std::fs::write(&unit, unit_text).expect("write unit");
    let ran = run(
        Command::new("systemd-analyze").arg("verify").arg(&unit),
        Duration::from_secs(60),
    );
    let name = unit.display().to_string();
    let problems = ran
        .stdout
        .lines()
        .chain(ran.stderr.lines())
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            l.contains(&name)
                || l.contains("portcullis.service")
                || lower.contains("error")
                || lower.contains("failed")
                || lower.contains("unknown")
                || lower.contains("ignoring")
        })
        .map(str::to_string)
        .collect();
    (ran, problems)
}

fn unit_with_real_binary() -> String {
    let text = read(&deploy().join("portcullis.service"));
    assert!(
        text.contains("/usr/local/bin/portcullis "),
        "the unit should start /usr/local/bin/portcullis"
    );
    text.replace("/usr/local/bin/portcullis ", &format!("{BIN} "))
}

fn directive<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key}= missing from the unit"))
}

#[test]
fn deploy_systemd_unit_passes_systemd_analyze_verify() {
    let unit = unit_with_real_binary();
    let (ran, problems) = systemd_problems(&unit);
    assert!(
        ran.ok() && problems.is_empty(),
        "problems: {problems:?}\n{}",
        ran.both()
    );

    // What the kit promises about signals and the drain.
    assert!(
        directive(&unit, "ExecStartPre").ends_with("check --config /etc/portcullis/gateway.toml")
    );
    assert!(directive(&unit, "ExecStart").ends_with("run --config /etc/portcullis/gateway.toml"));
    assert_eq!(directive(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(directive(&unit, "KillSignal"), "SIGTERM");
    let stop: u64 = directive(&unit, "TimeoutStopSec").parse().expect("seconds");
    assert!(
        Duration::from_secs(stop) > default_shutdown(),
        "TimeoutStopSec={stop} must stay above the default shutdown_timeout {:?}",
        default_shutdown()
    );
    assert_eq!(directive(&unit, "User"), "portcullis");

    // The same check on a broken copy reports it: the assertion above is real.
    let broken = unit
        .replace(
            "KillSignal=SIGTERM",
            "KillSignal=SIGNOPE\nRestartAfterCoffee=yes",
        )
        .replace(BIN, "/nonexistent/portcullis");
    let (_, problems) = systemd_problems(&broken);
    for needle in ["SIGNOPE", "RestartAfterCoffee", "/nonexistent/portcullis"] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "systemd-analyze did not report {needle}: {problems:?}"
        );
    }
}

// ---------------------------------------------------------------- haproxy

/// `cfg` copied into a temp dir with its certificate directory pointed at
/// throw-away files, then `haproxy -c -f`.
fn haproxy_check(cfg: &str, cert_dir: &str) -> Ran {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("dir");
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).expect("certs dir");
    std::fs::copy(pki.cert_path(), certs.join("public.pem")).expect("cert");
    std::fs::copy(pki.key_path(), certs.join("public.pem.key")).expect("key");
    std::fs::copy(pki.ca_path(), certs.join("gateway-ca.pem")).expect("ca");
    assert!(
        cfg.contains(cert_dir),
        "expected certificates under {cert_dir}"
    );
    let text = cfg.replace(cert_dir, &format!("{}/", certs.display()));
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, text).expect("write cfg");
    run(
        Command::new("haproxy").arg("-c").arg("-f").arg(&path),
        Duration::from_secs(30),
    )
}

const HAPROXY_CFGS: [(&str, &str); 2] = [
    ("haproxy/haproxy.cfg", "/etc/haproxy/certs/"),
    ("compose/haproxy.cfg", "/usr/local/etc/haproxy/certs/"),
];

/// `server NAME ADDR ...` lines of one backend section.
fn backend_servers(cfg: &str, backend: &str) -> Vec<Vec<String>> {
    let mut inside = false;
    let mut servers = Vec::new();
    for line in cfg.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            inside = line.trim() == format!("backend {backend}");
            continue;
        }
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if inside && words.first().is_some_and(|w| w == "server") {
            servers.push(words);
        }
    }
    assert!(!servers.is_empty(), "backend {backend} has no servers");
    servers
}

fn section_text(cfg: &str, header: &str) -> String {
    let mut inside = false;
    let mut out = String::new();
    for line in cfg.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') && !line.trim().is_empty() {
            inside = line.trim() == header;
            continue;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn deploy_haproxy_configs_pass_haproxy_check() {
    for (file, cert_dir) in HAPROXY_CFGS {
        let cfg = read(&deploy().join(file));
        let ran = haproxy_check(&cfg, cert_dir);
        assert!(
            ran.ok() && ran.stdout.contains("Configuration file is valid"),
            "{file}: {}",
            ran.both()
        );
        assert!(
            !ran.stderr.contains("[WARNING]") && !ran.stdout.contains("[WARNING]"),
            "{file} has warnings: {}",
            ran.both()
        );

        // Sticky: the route cookie is the gateways' default route_cookie,
        // each server's cookie value its node id; both backends check /readyz.
        let sticky = section_text(&cfg, "backend portcullis_sticky");
        assert!(
            sticky.contains("cookie portcullis_route insert indirect nocache"),
            "{file}: {sticky}"
        );
        for server in backend_servers(&cfg, "portcullis_sticky") {
            let at = server.iter().position(|w| w == "cookie").expect("cookie");
            assert_eq!(server[at + 1], server[1], "{file}: {server:?}");
        }
        let shared = section_text(&cfg, "backend portcullis_shared");
        assert!(!shared.contains("cookie"), "{file}: shared is not sticky");
        for backend in [&sticky, &shared] {
            assert!(backend.contains("uri /readyz"), "{file}: {backend}");
            assert!(backend.contains("expect status 200"), "{file}: {backend}");
            assert!(backend.contains("check no-check-ssl"), "{file}: {backend}");
            assert!(backend.contains("ssl verify required"), "{file}: {backend}");
        }
    }
}

#[test]
fn deploy_haproxy_check_rejects_a_broken_config() {
    let (file, cert_dir) = HAPROXY_CFGS[0];
    let cfg = read(&deploy().join(file));
    let broken = [
        cfg.replace("balance roundrobin", "balance no-such-algorithm"),
        cfg.replace("cookie gw-a port", "cookie gw-a prot"),
        cfg.replace("gateway-ca.pem", "missing-ca.pem"),
    ];
    for text in broken {
        assert_ne!(text, cfg, "the breakage did not apply");
        let ran = haproxy_check(&text, cert_dir);
        assert!(
            !ran.ok(),
            "haproxy -c accepted a broken config:\n{}",
            ran.both()
        );
    }
}

// ---------------------------------------------------------------- YAML

#[test]
fn deploy_yaml_files_parse_and_have_the_expected_shape() {
    let files = yaml_files();
    for expected in [
        "compose.yaml",
        "k8s/configmap.yaml",
        "k8s/statefulset.yaml",
        "k8s/service.yaml",
        "k8s/pdb.yaml",
        "k8s/secret.example.yaml",
        "k8s/kustomization.yaml",
    ] {
        assert!(files.contains_key(expected), "deploy/{expected} missing");
    }

    // compose: the HA topology, every host path it mounts exists.
    let compose = &yaml(&files, "compose.yaml")[0];
    let services = compose["services"].as_object().expect("services");
    for name in ["haproxy", "gw-a", "gw-b", "redis", "echo"] {
        let service = &services[name];
        assert!(service.is_object(), "compose service {name} missing");
        assert!(
            service["healthcheck"]["test"].is_array(),
            "{name}: healthcheck"
        );
        for volume in service["volumes"].as_array().expect("volumes") {
            let host = volume
                .as_str()
                .expect("short volume")
                .split(':')
                .next()
                .expect("host");
            if host.starts_with('.') {
                assert!(
                    deploy().join(host).exists(),
                    "{name}: {host} does not exist"
                );
            }
        }
    }
    for secret in compose["secrets"].as_object().expect("secrets").values() {
        let file = secret["file"].as_str().expect("file secret");
        assert!(deploy().join(file).is_file(), "secret file {file} missing");
    }
    for gw in ["gw-a", "gw-b"] {
        let service = &services[gw];
        let mount = format!("./compose/{gw}.toml:/etc/portcullis/gateway.toml:ro");
        assert!(
            service["volumes"]
                .as_array()
                .expect("volumes")
                .iter()
                .any(|v| v == &mount),
            "{gw} does not mount its own config"
        );
        assert!(
            service["secrets"][0]["target"] == "redis-password",
            "{gw}: secret"
        );
        let config: toml::Table = read(&deploy().join(format!("compose/{gw}.toml")))
            .parse()
            .expect("toml");
        let grace = duration(service["stop_grace_period"].as_str().expect("grace"));
        assert!(
            grace > shutdown_of(&config),
            "{gw}: stop_grace_period under the drain"
        );
        // HAProxy's compose config names this gateway's static address.
        let ip = service["networks"]["portcullis"]["ipv4_address"]
            .as_str()
            .expect("ipv4_address");
        let servers = backend_servers(
            &read(&deploy().join("compose/haproxy.cfg")),
            "portcullis_shared",
        );
        assert!(
            servers
                .iter()
                .any(|s| s[1] == gw && s[2] == format!("{ip}:8443")),
            "{gw} at {ip} not in compose/haproxy.cfg: {servers:?}"
        );
    }
    let haproxy_ip = services["haproxy"]["networks"]["portcullis"]["ipv4_address"]
        .as_str()
        .expect("haproxy address");
    assert!(
        read(&deploy().join("compose/gw-a.toml")).contains(&format!("\"{haproxy_ip}/32\"")),
        "the gateways must trust HAProxy's address {haproxy_ip}"
    );

    // Kubernetes.
    let sts_docs = yaml(&files, "k8s/statefulset.yaml");
    let workloads: Vec<&Value> = sts_docs
        .iter()
        .filter(|d| d["kind"] == "StatefulSet" || d["kind"] == "Deployment")
        .collect();
    assert_eq!(workloads.len(), 1, "one StatefulSet or Deployment");
    let workload = workloads[0];
    assert_eq!(workload["spec"]["replicas"], 2);
    let pod = &workload["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    let container = &pod["spec"]["containers"][0];
    let admin_port = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "admin")
        .expect("admin port")["containerPort"]
        .as_u64()
        .expect("port");
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["port"], "admin", "{probe} on the admin port");
    }
    let pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .expect("preStop exec");
    let sleep: u64 = pre_stop
        .last()
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
        .expect("preStop sleep seconds");
    let configmaps = yaml(&files, "k8s/configmap.yaml");
    let gateway_toml = k8s_gateway_toml(&configmaps);
    let grace = workload_grace(pod);
    assert!(
        Duration::from_secs(grace) > Duration::from_secs(sleep) + shutdown_of(&gateway_toml),
        "terminationGracePeriodSeconds {grace} must exceed preStop {sleep}s + shutdown_timeout"
    );
    let admin_listen = gateway_toml["admin"]["listen"]
        .as_str()
        .expect("admin listen");
    assert!(
        admin_listen.ends_with(&format!(":{admin_port}")),
        "admin containerPort {admin_port} vs [admin] listen {admin_listen}"
    );
    // The init container renders node_id from the pod name.
    let init = &pod["spec"]["initContainers"][0];
    let script = init["command"]
        .as_array()
        .expect("command")
        .last()
        .expect("script");
    assert!(
        script.as_str().expect("script").contains("@NODE_ID@"),
        "{script}"
    );
    assert!(init["env"]
        .as_array()
        .expect("env")
        .iter()
        .any(|e| e["name"] == "POD_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"));

    let services = yaml(&files, "k8s/service.yaml");
    let services = of_kind(&services, "Service");
    assert!(!services.is_empty(), "a Service");
    for service in &services {
        assert_selects(&service["spec"]["selector"], labels, "Service");
    }
    assert!(
        services
            .iter()
            .any(|s| s["metadata"]["name"] == workload["spec"]["serviceName"]),
        "the StatefulSet's serviceName is one of the Services"
    );
    let pdbs = yaml(&files, "k8s/pdb.yaml");
    let pdb = of_kind(&pdbs, "PodDisruptionBudget");
    assert_eq!(pdb.len(), 1, "a PodDisruptionBudget");
    assert_selects(&pdb[0]["spec"]["selector"]["matchLabels"], labels, "PDB");

    // Every Secret and ConfigMap the pod names is in the kit.
    let secrets: BTreeSet<String> = of_kind(&yaml(&files, "k8s/secret.example.yaml"), "Secret")
        .iter()
        .map(|s| s["metadata"]["name"].as_str().expect("name").to_string())
        .collect();
    let config_names: BTreeSet<String> = of_kind(&configmaps, "ConfigMap")
        .iter()
        .map(|s| s["metadata"]["name"].as_str().expect("name").to_string())
        .collect();
    for volume in pod["spec"]["volumes"].as_array().expect("volumes") {
        if let Some(name) = volume["secret"]["secretName"].as_str() {
            assert!(
                secrets.contains(name),
                "Secret {name} not in secret.example.yaml"
            );
        }
        if let Some(name) = volume["configMap"]["name"].as_str() {
            assert!(
                config_names.contains(name),
                "ConfigMap {name} not in configmap.yaml"
            );
        }
    }
    for env in container["env"].as_array().expect("env") {
        if let Some(name) = env["valueFrom"]["secretKeyRef"]["name"].as_str() {
            assert!(
                secrets.contains(name),
                "Secret {name} not in secret.example.yaml"
            );
        }
    }
    let kustomization = &yaml(&files, "k8s/kustomization.yaml")[0];
    for resource in kustomization["resources"].as_array().expect("resources") {
        let resource = resource.as_str().expect("path");
        assert!(deploy().join("k8s").join(resource).is_file(), "{resource}");
    }
}

fn workload_grace(pod: &Value) -> u64 {
    pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds")
}

fn assert_selects(selector: &Value, labels: &Value, what: &str) {
    let selector = selector.as_object().expect("selector");
    assert!(!selector.is_empty(), "{what}: empty selector");
    for (key, value) in selector {
        assert_eq!(&labels[key], value, "{what} selects label {key}");
    }
}

/// The ConfigMap's gateway.toml template with the node id filled in, as the
/// init container writes it for the first pod.
fn k8s_gateway_toml(configmaps: &[Value]) -> toml::Table {
    let text = k8s_file(configmaps, "gateway.toml").replace("@NODE_ID@", "portcullis-0");
    text.parse()
        .unwrap_or_else(|e| panic!("k8s ConfigMap gateway.toml: {e}"))
}

fn k8s_file(configmaps: &[Value], key: &str) -> String {
    of_kind(configmaps, "ConfigMap")
        .iter()
        .find_map(|c| c["data"][key].as_str())
        .unwrap_or_else(|| panic!("no ConfigMap key {key}"))
        .to_string()
}

fn k8s_manifests() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(deploy().join("k8s"))
        .expect("deploy/k8s")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    out.sort();
    out
}

fn kubernetes_validate(files: &[PathBuf]) -> Ran {
    run(
        Command::new(python())
            .args(["-m", "kubernetes_validate", "--strict"])
            .args(files),
        Duration::from_secs(120),
    )
}

#[test]
fn deploy_k8s_manifests_pass_the_kubernetes_schemas() {
    let files = k8s_manifests();
    assert!(files.len() >= 4, "{files:?}");
    let ran = kubernetes_validate(&files);
    assert!(ran.ok(), "{}", ran.both());
    assert!(
        !ran.stdout.contains("ERROR") && !ran.stderr.contains("ERROR"),
        "{}",
        ran.both()
    );
    let passed = ran.stdout.matches(" passed for resource ").count()
        + ran.stderr.matches(" passed for resource ").count();
    let documents: usize = yaml_files()
        .iter()
        .filter(|(name, _)| name.starts_with("k8s/") && !name.ends_with("kustomization.yaml"))
        .map(|(_, docs)| docs.len())
        .sum();
    assert_eq!(
        passed,
        documents,
        "every document validated:\n{}",
        ran.both()
    );

    // The same validator rejects a broken copy.
    let dir = tempfile::tempdir().expect("dir");
    let sts = read(&deploy().join("k8s/statefulset.yaml"));
    let broken = sts.replace("containerPort: 9901", "containerPort: admin-port");
    assert_ne!(broken, sts);
    let path = dir.path().join("statefulset.yaml");
    std::fs::write(&path, broken).expect("write");
    let ran = kubernetes_validate(&[path]);
    assert!(!ran.ok(), "a broken StatefulSet passed:\n{}", ran.both());
}

// ---------------------------------------------------------------- TOML

/// Every node configuration the kits ship, by name: deploy/**/*.toml and
/// the Kubernetes ConfigMap's gateway.toml.
fn toml_configs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![deploy()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                let name = path
                    .strip_prefix(deploy())
                    .expect("under deploy")
                    .display()
                    .to_string();
                out.push((name, read(&path)));
            }
        }
    }
    let configmaps = yaml(&yaml_files(), "k8s/configmap.yaml");
    out.push((
        "k8s/configmap.yaml:gateway.toml".to_string(),
        k8s_file(&configmaps, "gateway.toml").replace("@NODE_ID@", "portcullis-0"),
    ));
    out.sort();
    assert!(
        out.len() >= 4,
        "{:?}",
        out.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    out
}

const CLUSTER_KEYS: [&str; 9] = [
    "mode",
    "node_id",
    "peers",
    "route_cookie",
    "revocation_staleness",
    "on_store_error",
    "store_key_file",
    "peer_ca",
    "redis",
];
const REDIS_KEYS: [&str; 10] = [
    "url",
    "sentinel",
    "cluster_nodes",
    "username",
    "password_env",
    "password_file",
    "tls_ca",
    "key_prefix",
    "connect_timeout",
    "command_timeout",
];

/// The `[cluster]` contract (notes/cluster-contract.md) checked on one
/// file: its problems, empty when it complies.
fn cluster_problems(config: &toml::Table) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(cluster) = config.get("cluster") else {
        return problems;
    };
    let Some(cluster) = cluster.as_table() else {
        return vec!["cluster is not a table".into()];
    };
    for key in cluster.keys() {
        if !CLUSTER_KEYS.contains(&key.as_str()) {
            problems.push(format!("cluster.{key}: not in the contract"));
        }
    }
    let mode = cluster
        .get("mode")
        .and_then(|v| v.as_str())
        .unwrap_or("single");
    if !["single", "sticky", "shared"].contains(&mode) {
        problems.push(format!("cluster.mode = {mode:?}"));
    }
    match cluster.get("node_id").map(|v| v.as_str()) {
        Some(Some(id)) => {
            let ok = (1..=32).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && id.bytes().next().is_some_and(|b| b != b'-');
            if !ok {
                problems.push(format!("cluster.node_id = {id:?}"));
            }
        }
        Some(None) => problems.push("cluster.node_id is not a string".into()),
        None if mode != "single" => problems.push(format!("{mode} needs node_id")),
        None => {}
    }
    if let Some(peers) = cluster.get("peers") {
        for peer in peers.as_array().into_iter().flatten() {
            let ok = peer.as_str().is_some_and(|p| {
                p.starts_with("https://")
                    || p.starts_with("http://127.")
                    || p.starts_with("http://localhost")
                    || p.starts_with("http://[::1]")
            });
            if !ok {
                problems.push(format!("cluster.peers: {peer}"));
            }
        }
    }
    if let Some(staleness) = cluster.get("revocation_staleness") {
        let d = staleness.as_str().map(duration);
        if !d.is_some_and(|d| Duration::from_millis(100) <= d && d <= Duration::from_secs(60)) {
            problems.push(format!("cluster.revocation_staleness = {staleness}"));
        }
    }
    if let Some(on_error) = cluster.get("on_store_error") {
        if !matches!(on_error.as_str(), Some("deny" | "serve_cached")) {
            problems.push(format!("cluster.on_store_error = {on_error}"));
        }
    }
    let Some(redis) = cluster.get("redis").and_then(|v| v.as_table()) else {
        if mode == "shared" {
            problems.push("shared needs [cluster.redis]".into());
        }
        return problems;
    };
    for key in redis.keys() {
        if !REDIS_KEYS.contains(&key.as_str()) {
            problems.push(format!("cluster.redis.{key}: not in the contract"));
        }
    }
    let endpoints = ["url", "sentinel", "cluster_nodes"]
        .iter()
        .filter(|k| redis.contains_key(**k))
        .count();
    if endpoints != 1 {
        problems.push("exactly one of url | sentinel | cluster_nodes".into());
    }
    let mut urls: Vec<&str> = Vec::new();
    urls.extend(redis.get("url").and_then(|v| v.as_str()));
    urls.extend(
        redis
            .get("cluster_nodes")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str()),
    );
    urls.extend(
        redis
            .get("sentinel")
            .and_then(|s| s.get("nodes"))
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str()),
    );
    for url in &urls {
        let rest = url
            .strip_prefix("redis://")
            .or_else(|| url.strip_prefix("rediss://"));
        match rest {
            None => problems.push(format!("redis URL {url:?}: redis:// or rediss://")),
            Some(rest)
                if rest
                    .split('/')
                    .next()
                    .is_some_and(|auth| auth.contains('@')) =>
            {
                problems.push(format!("redis URL {url:?}: no password in the URL"))
            }
            Some(_) => {}
        }
    }
    if redis.contains_key("password_env") && redis.contains_key("password_file") {
        problems.push("at most one of password_env | password_file".into());
    }
    if redis.contains_key("tls_ca") && !urls.iter().all(|u| u.starts_with("rediss://")) {
        problems.push("tls_ca only with rediss://".into());
    }
    if let Some(prefix) = redis.get("key_prefix") {
        let ok = prefix.as_str().is_some_and(|p| {
            (1..=64).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_graphic())
        });
        if !ok {
            problems.push(format!("cluster.redis.key_prefix = {prefix}"));
        }
    }
    for (key, min, max) in [
        (
            "connect_timeout",
            Duration::from_millis(50),
            Duration::from_secs(60),
        ),
        (
            "command_timeout",
            Duration::from_millis(10),
            Duration::from_secs(30),
        ),
    ] {
        if let Some(v) = redis.get(key) {
            if !v
                .as_str()
                .map(duration)
                .is_some_and(|d| min <= d && d <= max)
            {
                problems.push(format!("cluster.redis.{key} = {v}"));
            }
        }
    }
    problems
}

#[test]
fn deploy_toml_configs_parse_and_follow_the_cluster_contract() {
    let mut node_ids = BTreeMap::new();
    let mut clustered = 0;
    for (name, text) in toml_configs() {
        let config: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{name} is not TOML: {e}"));
        let problems = cluster_problems(&config);
        assert!(problems.is_empty(), "{name}: {problems:?}");
        if let Some(cluster) = config.get("cluster") {
            clustered += 1;
            if name.starts_with("compose/") {
                let id = cluster["node_id"].as_str().expect("node_id").to_string();
                assert_eq!(format!("compose/{id}.toml"), name, "node_id names its file");
                assert!(
                    node_ids.insert(id, name.clone()).is_none(),
                    "node_id reused"
                );
            }
        }
    }
    assert_eq!(
        clustered, 3,
        "gw-a, gw-b and the k8s ConfigMap are clustered"
    );

    // The contract check is real: each breakage is caught.
    let good: toml::Table = read(&deploy().join("compose/gw-a.toml"))
        .parse()
        .expect("toml");
    let breakages: [(&str, &str, &str); 7] = [
        ("node_id = \"gw-a\"", "node_id = \"GW_A\"", "node_id"),
        ("mode = \"shared\"", "mode = \"shard\"", "mode"),
        (
            "on_store_error = \"deny\"",
            "on_store_error = \"ignore\"",
            "on_store_error",
        ),
        (
            "revocation_staleness = \"1s\"",
            "revocation_staleness = \"5m\"",
            "revocation_staleness",
        ),
        (
            "url = \"redis://redis:6379/0\"",
            "url = \"redis://:pw@redis:6379/0\"",
            "password",
        ),
        (
            "key_prefix = ",
            "redis_url = \"redis://x\"\nkey_prefix = ",
            "redis_url",
        ),
        (
            "password_file = ",
            "password_env = \"X\"\npassword_file = ",
            "at most one",
        ),
    ];
    for (from, to, expect) in breakages {
        let text = read(&deploy().join("compose/gw-a.toml"));
        assert!(text.contains(from), "{from} not in gw-a.toml");
        let broken: toml::Table = text.replacen(from, to, 1).parse().expect("toml");
        assert_ne!(broken, good);
        let problems = cluster_problems(&broken);
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "{to:?} not caught: {problems:?}"
        );
    }
}

/// Removes the `[cluster]` and `[cluster.*]` tables from `text`.
fn without_cluster(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            skipping = t.starts_with("[cluster]") || t.starts_with("[cluster.");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn check(config: &Path, env: &[(&str, &str)]) -> Ran {
    let mut command = Command::new(BIN);
    command.args(["check", "--config"]).arg(config);
    for (k, v) in env {
        command.env(k, v);
    }
    run(&mut command, Duration::from_secs(60))
}

/// Whether this build's `check` knows `[cluster]` (the contract is being
/// built in parallel with the kits).
fn binary_knows_cluster(dir: &Path) -> bool {
    let pki = Pki::new();
    let path = dir.join("probe.toml");
    let text = format!(
        "[server]\nhttps = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n[cluster]\nmode = \"single\"\n\n[[app]]\nname = \"a\"\npublic_url = \"https://a.test/\"\nupstream = \"builtin:echo\"\n",
        pki.cert_path().display(),
        pki.key_path().display()
    );
    std::fs::write(&path, text).expect("write probe");
    let ran = check(&path, &[]);
    if ran.ok() {
        return true;
    }
    assert!(
        ran.stderr.contains("cluster"),
        "the probe config failed for another reason:\n{}",
        ran.both()
    );
    false
}

#[test]
fn deploy_toml_configs_pass_portcullis_check() {
    let dir = tempfile::tempdir().expect("dir");
    let knows_cluster = binary_knows_cluster(dir.path());
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    let password = dir.path().join("redis-password");
    std::fs::write(&password, "test-password\n").expect("password");
    let store_keys = dir.path().join("store-keys");
    std::fs::write(
        &store_keys,
        "deploy-test-store-key-0123456789abcdef0123456789\n",
    )
    .expect("store keys");
    let policies = dir.path().join("policies.toml");
    let configmaps = yaml(&yaml_files(), "k8s/configmap.yaml");
    std::fs::write(&policies, k8s_file(&configmaps, "policies.toml")).expect("policies");
    let certs = root().join("certs-dev");
    let demo = root().join("demo");
    let c = |name: &str| certs.join(name).display().to_string();
    // The containers' paths, pointed at this repository's demo material.
    let paths: Vec<(String, String)> = [
        (
            "/etc/portcullis/keys/store-keys",
            store_keys.display().to_string(),
        ),
        ("/run/secrets/store-keys", store_keys.display().to_string()),
        ("/etc/portcullis/certs/", format!("{}/", certs.display())),
        ("/etc/portcullis/demo/", format!("{}/", demo.display())),
        (
            "/run/secrets/redis-password",
            password.display().to_string(),
        ),
        ("/var/lib/portcullis/", format!("{}/", state.display())),
        ("/etc/portcullis/tls/tls.crt", c("localhost.pem")),
        ("/etc/portcullis/tls/tls.key", c("localhost-key.pem")),
        ("/etc/portcullis/keys/", format!("{}/", certs.display())),
        (
            "/etc/portcullis/users/users.toml",
            demo.join("users.toml").display().to_string(),
        ),
        (
            "/etc/portcullis/config/policies.toml",
            policies.display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .collect();
    for (name, text) in toml_configs() {
        let mut text = text;
        for (from, to) in &paths {
            text = text.replace(from, to);
        }
        let unmapped = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains("\"/etc/") || l.contains("\"/run/") || l.contains("\"/var/"));
        assert!(
            !unmapped,
            "{name}: a container path was not mapped:\n{text}"
        );
        if !knows_cluster {
            text = without_cluster(&text);
        }
        let path = dir.path().join(name.replace(['/', ':'], "_"));
        std::fs::write(&path, &text).expect("write");
        let ran = check(&path, &[("PORTCULLIS_REDIS_PASSWORD", "test-password")]);
        assert!(ran.ok(), "{name}:\n{}", ran.both());
    }
    if !knows_cluster {
        println!(
            "deploy: this build of `portcullis check` does not know [cluster] yet; the kits' \
             other sections passed it, and [cluster] was checked against the contract only"
        );
    }
}

// ---------------------------------------------------------------- Docker

/// The packages one `apt-get install` line of a Dockerfile stage installs.
fn apt_packages(stage: &str) -> BTreeSet<String> {
    let joined = stage.replace("\\\n", " ");
    joined
        .lines()
        .filter(|l| l.contains("apt-get install"))
        .flat_map(|l| {
            let after = l.split("apt-get install").nth(1).unwrap_or("").to_string();
            after
                .split("&&")
                .next()
                .unwrap_or("")
                .split_whitespace()
                .filter(|w| !w.starts_with('-'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The Debian package that ships the shared library `soname`, as resolved
/// on this machine (`t64` suffixes of newer releases dropped).
fn package_of(soname: &str, ldconfig: &str) -> String {
    let path = ldconfig
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{soname} ")))
        .and_then(|l| l.split("=> ").nth(1))
        .unwrap_or_else(|| panic!("{soname} not in ldconfig -p"))
        .trim()
        .to_string();
    let real = std::fs::canonicalize(&path).unwrap_or_else(|_| PathBuf::from(&path));
    let ran = run(
        Command::new("dpkg").arg("-S").arg(&path),
        Duration::from_secs(30),
    );
    let ran = if ran.ok() {
        ran
    } else {
        run(
            Command::new("dpkg").arg("-S").arg(&real),
            Duration::from_secs(30),
        )
    };
    assert!(ran.ok(), "no package owns {path}: {}", ran.both());
    let package = ran.stdout.split(':').next().expect("package").trim();
    package.strip_suffix("t64").unwrap_or(package).to_string()
}

#[test]
fn deploy_dockerfile_builds_as_the_makefile_and_ships_what_the_binary_links() {
    let dockerfile = read(&deploy().join("Dockerfile"));
    let stages: Vec<&str> = dockerfile.split("\nFROM ").skip(1).collect();
    assert_eq!(stages.len(), 2, "a build and a runtime stage");
    let (build, runtime) = (stages[0], stages[1]);
    assert!(build.starts_with("rust:bookworm AS builder"), "{build}");
    assert!(runtime.starts_with("debian:bookworm-slim"), "{runtime}");
    assert!(build.contains("cargo build --release --locked -p portcullis"));

    // The builder installs the Makefile's BUILD_PACKAGES.
    let makefile = read(&root().join("Makefile"));
    let wanted: BTreeSet<String> = makefile
        .lines()
        .find_map(|l| l.strip_prefix("BUILD_PACKAGES := "))
        .expect("BUILD_PACKAGES")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let built = apt_packages(build);
    assert!(
        wanted.is_subset(&built),
        "builder lacks {:?}",
        wanted.difference(&built)
    );

    // Non-root, the documented command, the ports the shipped configs use.
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );
    assert!(runtime.contains(r#"ENTRYPOINT ["/usr/local/bin/portcullis"]"#));
    assert!(runtime.contains(r#"CMD ["run", "--config", "/etc/portcullis/gateway.toml"]"#));
    assert!(runtime.contains("EXPOSE 8443 9901"));
    assert!(runtime.contains("HEALTHCHECK") && runtime.contains("/healthz"));
    assert!(runtime.contains("STOPSIGNAL SIGTERM"));
    let ignore = read(&root().join(".dockerignore"));
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        ".dockerignore must drop target/"
    );

    // Every library the binary links directly comes from a runtime package
    // (or from debian:bookworm-slim's base: libc6, libgcc-s1).
    let runtime_packages = apt_packages(runtime);
    let objdump = run(
        Command::new("objdump").args(["-p", BIN]),
        Duration::from_secs(60),
    );
    assert!(objdump.ok(), "{}", objdump.both());
    let needed: Vec<&str> = objdump
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(str::trim)
        .collect();
    assert!(
        needed.iter().any(|n| n.starts_with("libxmlsec1")),
        "{needed:?}"
    );
    let ldconfig = run(Command::new("ldconfig").arg("-p"), Duration::from_secs(30));
    assert!(ldconfig.ok(), "{}", ldconfig.both());
    let base = ["libc6", "libgcc-s1"];
    for soname in needed {
        let package = package_of(soname, &ldconfig.stdout);
        assert!(
            runtime_packages.contains(&package) || base.contains(&package.as_str()),
            "{soname} comes from {package}, which the runtime stage does not install \
             ({runtime_packages:?})"
        );
    }
}
