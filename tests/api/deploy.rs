//! deploy/ checked against the binary: the manifests parse, set only
//! settings the binary reads, agree on ports, probes and drain time, and the
//! RabbitMQ definitions load into a real broker. (No container engine here:
//! building the image and applying the manifests are left to a user.)

use std::{collections::BTreeSet, path::Path, process::Command, time::Duration};

use yaml_rust2::{Yaml, YamlLoader};

const BIN: &str = env!("CARGO_BIN_EXE_invite-service");
const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

fn yaml(file: &str) -> Yaml {
    let path = Path::new(DEPLOY).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut documents = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    assert_eq!(documents.len(), 1, "{file}: one document");
    documents.remove(0)
}

fn text(value: &Yaml) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

fn keys(map: &Yaml) -> Vec<String> {
    map.as_hash()
        .unwrap_or_else(|| panic!("not a map: {map:?}"))
        .keys()
        .map(|key| text(key).to_owned())
        .collect()
}

/// Every environment variable `invite-service --help` names.
fn settings_the_binary_reads() -> BTreeSet<String> {
    let help = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run the binary");
    let help = String::from_utf8(help.stdout).unwrap();
    help.split("[env: ")
        .skip(1)
        .map(|rest| rest.split(['=', ']']).next().unwrap().to_owned())
        .collect()
}

fn port_of(address: &str) -> i64 {
    address.rsplit(':').next().unwrap().parse().unwrap()
}

fn container(deployment: &Yaml) -> &Yaml {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn every_yaml_file_under_deploy_parses() {
    let mut files = Vec::new();
    for dir in [DEPLOY.to_owned(), format!("{DEPLOY}/k8s")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path.strip_prefix(DEPLOY).unwrap().display().to_string());
            }
        }
    }
    assert!(
        files.len() >= 7,
        "compose and the Kubernetes manifests: {files:?}"
    );
    for file in files {
        assert!(!yaml(&file).is_badvalue(), "{file}");
    }
}

#[test]
fn every_setting_the_manifests_set_is_one_the_binary_reads() {
    let known = settings_the_binary_reads();
    assert!(
        known.contains("INVITES_LISTEN") && known.contains("DATABASE_URL"),
        "{known:?}"
    );
    let compose = yaml("compose.yaml");
    let dockerfile = std::fs::read_to_string(format!("{DEPLOY}/Dockerfile")).unwrap();
    let from_dockerfile = dockerfile
        .split_whitespace()
        .filter_map(|word| word.split_once('=').map(|(name, _)| name.to_owned()))
        .filter(|name| name.starts_with("INVITES_"));
    let set: Vec<(String, String)> = [
        (
            "k8s/configmap.yaml",
            keys(&yaml("k8s/configmap.yaml")["data"]),
        ),
        (
            "k8s/secret.example.yaml",
            keys(&yaml("k8s/secret.example.yaml")["stringData"]),
        ),
        ("compose.yaml", keys(&compose["x-invites"]["environment"])),
        ("Dockerfile", from_dockerfile.collect()),
    ]
    .into_iter()
    .flat_map(|(file, names)| names.into_iter().map(move |name| (file.to_owned(), name)))
    .collect();

    assert!(set.len() > 10, "{set:?}");
    for (file, name) in set {
        assert!(
            known.contains(&name),
            "{file} sets {name}, which the binary does not read"
        );
    }
}

/// The settings a manifest names in a comment line (`# NAME: "value"`):
/// what it leaves at the default or for the operator to decide.
fn commented_settings(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(DEPLOY).join(file)).unwrap();
    text.lines()
        .filter_map(|line| line.trim().strip_prefix('#'))
        .filter_map(|rest| rest.trim().split_once(':'))
        .map(|(name, _)| name.to_owned())
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

#[test]
fn the_kubernetes_manifests_name_every_setting_the_binary_reads() {
    let known = settings_the_binary_reads();
    let mut named = BTreeSet::new();
    for (file, data) in [
        ("k8s/configmap.yaml", "data"),
        ("k8s/secret.example.yaml", "stringData"),
    ] {
        named.extend(keys(&yaml(file)[data]));
        for name in commented_settings(file) {
            assert!(
                known.contains(&name),
                "{file} names {name} in a comment, which the binary does not read"
            );
            named.insert(name);
        }
    }

    let unnamed: Vec<_> = known.difference(&named).collect();
    assert!(
        unnamed.is_empty(),
        "no Kubernetes manifest names {unnamed:?}: set it, or list it as a comment"
    );
}

#[test]
fn the_kubernetes_probes_use_the_health_names_the_binary_serves_on_its_ports() {
    let config = yaml("k8s/configmap.yaml");
    let deployment = yaml("k8s/deployment.yaml");
    let service = yaml("k8s/service.yaml");
    let pdb = yaml("k8s/pdb.yaml");
    let grpc_port = port_of(text(&config["data"]["INVITES_LISTEN"]));
    let metrics_port = port_of(text(&config["data"]["INVITES_METRICS_LISTEN"]));
    let drain = humantime::parse_duration(text(&config["data"]["INVITES_DRAIN_TIMEOUT"])).unwrap();
    let container = container(&deployment);
    let ports: Vec<(&str, i64)> = container["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| (text(&p["name"]), p["containerPort"].as_i64().unwrap()))
        .collect();
    let template = &deployment["spec"]["template"];

    assert_eq!(ports, [("grpc", grpc_port), ("metrics", metrics_port)]);
    for (probe, health_name) in [
        ("livenessProbe", "liveness"),
        ("readinessProbe", "invites.v1.InviteService"),
        ("startupProbe", "liveness"),
    ] {
        assert_eq!(
            container[probe]["grpc"]["port"].as_i64(),
            Some(grpc_port),
            "{probe}"
        );
        assert_eq!(
            text(&container[probe]["grpc"]["service"]),
            health_name,
            "{probe}"
        );
    }
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(
        text(&annotations["prometheus.io/port"]),
        metrics_port.to_string()
    );
    assert_eq!(text(&annotations["prometheus.io/path"]), "/metrics");
    let grace = template["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap();
    assert!(
        Duration::from_secs(grace as u64) > drain,
        "terminationGracePeriodSeconds {grace} must exceed the drain timeout {drain:?}"
    );
    assert!(deployment["spec"]["replicas"].as_i64().unwrap() >= 2);
    assert_eq!(
        template["spec"]["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert!(!container["resources"]["limits"]["memory"].is_badvalue());
    let targets: Vec<&str> = service["spec"]["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| text(&p["targetPort"]))
        .collect();
    assert_eq!(
        targets,
        ["grpc", "metrics"],
        "the Service targets the named ports"
    );
    let labels = &template["metadata"]["labels"];
    for selector in [
        &service["spec"]["selector"],
        &pdb["spec"]["selector"]["matchLabels"],
    ] {
        assert_eq!(selector, labels, "selects the Deployment's pods");
    }
}

#[test]
fn compose_runs_two_replicas_that_outlast_their_drain_on_healthy_dependencies() {
    let compose = yaml("compose.yaml");
    let replicas = &compose["x-invites"];
    let environment = &replicas["environment"];
    let grace = humantime::parse_duration(text(&replicas["stop_grace_period"])).unwrap();
    let listen = port_of(text(&environment["INVITES_LISTEN"]));
    let metrics = port_of(text(&environment["INVITES_METRICS_LISTEN"]));
    let mut host_ports = BTreeSet::new();
    for name in ["invites-1", "invites-2"] {
        let published: Vec<&str> = compose["services"][name]["ports"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name} publishes its ports"))
            .iter()
            .map(text)
            .collect();
        assert!(
            published.iter().any(|p| p.ends_with(&format!(":{listen}"))),
            "{name}"
        );
        assert!(
            published
                .iter()
                .any(|p| p.ends_with(&format!(":{metrics}"))),
            "{name}"
        );
        for port in published {
            assert!(
                host_ports.insert(port.split(':').next().unwrap().to_owned()),
                "{port} twice"
            );
        }
    }
    for dependency in ["postgres", "rabbitmq"] {
        assert_eq!(
            text(&replicas["depends_on"][dependency]["condition"]),
            "service_healthy"
        );
        assert!(!compose["services"][dependency]["healthcheck"]["test"].is_badvalue());
    }
    assert!(
        grace > Duration::from_secs(30),
        "stop_grace_period {grace:?} outlasts the drain"
    );
    assert!(
        text(&environment["INVITES_JWT_SECRET"]).contains(":?"),
        "no default secret"
    );
}

fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl is on PATH (it comes with RabbitMQ: rabbitmq-server -detached)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_rabbitmq_definitions_load_quorum_queues_with_dead_lettering() {
    let vhost = format!("invites-definitions-{}", uuid::Uuid::now_v7().simple());
    let definitions =
        std::fs::read_to_string(format!("{DEPLOY}/rabbitmq/definitions.json")).unwrap();
    let scoped = definitions.replace(r#""vhost": "/""#, &format!(r#""vhost": "{vhost}""#));
    let file = std::env::temp_dir().join(format!("{vhost}.json"));
    std::fs::write(&file, scoped).unwrap();
    rabbitmqctl(&["add_vhost", &vhost]);

    rabbitmqctl(&["import_definitions", file.to_str().unwrap()]);
    let queues = rabbitmqctl(&[
        "list_queues",
        "-q",
        "-p",
        &vhost,
        "name",
        "type",
        "arguments",
    ]);
    let bindings = rabbitmqctl(&[
        "list_bindings",
        "-q",
        "-p",
        &vhost,
        "source_name",
        "destination_name",
        "routing_key",
    ]);
    rabbitmqctl(&["delete_vhost", &vhost]);
    std::fs::remove_file(&file).ok();

    for queue in [
        "membership.invite-accepted",
        "email.invite-notifications",
        "invites.dead-letter",
    ] {
        let line = queues
            .lines()
            .find(|line| line.starts_with(&format!("{queue}\t")))
            .unwrap_or_else(|| panic!("{queue} missing:\n{queues}"));
        assert!(line.contains("quorum"), "{line}");
        if queue != "invites.dead-letter" {
            assert!(
                line.contains("invites.dead-letter"),
                "dead-lettered: {line}"
            );
        }
    }
    for binding in [
        "invites\tmembership.invite-accepted\tinvite.accepted",
        "invites\temail.invite-notifications\tinvite.created",
        "invites\temail.invite-notifications\tinvite.resent",
        "invites.dead-letter\tinvites.dead-letter\t",
    ] {
        assert!(
            bindings.lines().any(|l| l == binding),
            "{binding} missing:\n{bindings}"
        );
    }
}
