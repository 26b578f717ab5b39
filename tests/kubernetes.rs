//! The files for Kubernetes nodes: the DaemonSet manifest (parsed as YAML, its embedded
//! regdoc.toml parsed by regdoc) and containerd's systemd drop-in.

use std::path::{Path, PathBuf};

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn documents(path: &Path) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn of_kind<'a>(docs: &'a [serde_yaml::Value], kind: &str) -> &'a serde_yaml::Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

#[test]
fn daemonset_runs_regdoc_on_the_node_network() {
    let docs = documents(&repo_file("config/regdoc-daemonset.yaml"));
    let ds = of_kind(&docs, "DaemonSet");
    assert_eq!(ds["apiVersion"].as_str(), Some("apps/v1"));
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    // The node's resolver, as containerd's.
    assert_eq!(pod["dnsPolicy"].as_str(), Some("Default"));
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    assert_eq!(ds["spec"]["selector"]["matchLabels"], *labels);

    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args.first(), Some(&"run"), "{args:?}");
    let config_arg = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1])
        .expect("--config PATH");

    // Readiness by TCP on the proxy's loopback port; resource limits set.
    let ready = &c["readinessProbe"]["tcpSocket"];
    assert_eq!(ready["host"].as_str(), Some("127.0.0.1"));
    assert_eq!(ready["port"].as_u64(), Some(3128));
    for k in ["cpu", "memory"] {
        assert!(c["resources"]["limits"][k].as_str().is_some(), "limits.{k}");
        assert!(
            c["resources"]["requests"][k].as_str().is_some(),
            "requests.{k}"
        );
    }

    // The configuration comes from the ConfigMap, mounted where --config points.
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| {
            m["mountPath"]
                .as_str()
                .is_some_and(|p| config_arg.starts_with(&format!("{p}/")))
        })
        .expect("a volume mounted at the directory of --config");
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    let cm_name = volume["configMap"]["name"]
        .as_str()
        .expect("a ConfigMap volume");
    let cm = of_kind(&docs, "ConfigMap");
    assert_eq!(cm["metadata"]["name"].as_str(), Some(cm_name));
    assert_eq!(cm["metadata"]["namespace"], ds["metadata"]["namespace"]);
    let file = Path::new(config_arg).file_name().unwrap().to_str().unwrap();
    let text = cm["data"][file]
        .as_str()
        .unwrap_or_else(|| panic!("the ConfigMap has no {file}"));

    let config = regdoc::config::Config::parse(text, Path::new(config_arg))
        .unwrap_or_else(|e| panic!("the embedded {file} does not parse: {e}"));
    assert_eq!(config.listen, "127.0.0.1:3128".parse().unwrap());
    assert_eq!(config.admin.listen, Some("127.0.0.1:9325".parse().unwrap()));
    // The liveness probe asks the admin listener's /healthz.
    let live = &c["livenessProbe"]["httpGet"];
    assert_eq!(live["path"].as_str(), Some("/healthz"));
    assert_eq!(live["port"].as_u64(), Some(9325));
}

#[test]
fn containerd_drop_in_points_at_regdoc_on_loopback() {
    let text = std::fs::read_to_string(repo_file("config/containerd-http-proxy.conf")).unwrap();
    let env: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Environment="))
        .map(|v| v.trim_matches('"'))
        .collect();
    assert!(text.contains("\n[Service]\n"), "{text}");
    assert!(
        env.contains(&"HTTPS_PROXY=http://127.0.0.1:3128"),
        "{env:?}"
    );
    assert!(env.contains(&"HTTP_PROXY=http://127.0.0.1:3128"), "{env:?}");
    let no_proxy = env
        .iter()
        .find_map(|e| e.strip_prefix("NO_PROXY="))
        .expect("NO_PROXY");
    for must in ["localhost", "127.0.0.1", ".svc", ".cluster.local"] {
        assert!(
            no_proxy.split(',').any(|e| e == must),
            "NO_PROXY lacks {must}"
        );
    }
}
