//! The command line without AWS: `check`, `once` and every bad-config case.

mod common;

use common::*;

async fn output(args: &[&str]) -> (i32, String, String) {
    let out = command(args, None).output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BAD: &[(&str, &str, &str)] = &[
    // (config text, key the message must name, line)
    ("[cpu]\nintervall = \"1s\"\n", "cpu.intervall", ":2:"),
    ("[cpu]\ninterval = \"ten seconds\"\n", "cpu.interval", ":2:"),
    ("[cpu]\ninterval = \"0s\"\n", "cpu.interval", ":2:"),
    ("[publish]\ninterval = \"0s\"\n", "publish.interval", ":2:"),
    (
        "[[health]]\nname = \"app\"\nurl = \"not a url\"\n",
        "health[0].url",
        ":3:",
    ),
    (
        "[[health]]\nname = \"app\"\nurl = \"http://127.0.0.1:8080/\"\ntimeout = 2\n",
        "health[0].timeout",
        ":4:",
    ),
    (
        "[[health]]\nname = \"\"\nurl = \"http://127.0.0.1:8080/\"\n",
        "health[0].name",
        ":2:",
    ),
    (
        "[[health]]\nname = \"app\"\nurl = \"http://127.0.0.1:8080/\"\ninterval = \"0ms\"\n",
        "health[0].interval",
        ":4:",
    ),
    ("namespace = \"AWS/EC2\"\n", "namespace", ":1:"),
];

#[tokio::test]
async fn every_bad_config_exits_78_naming_file_key_and_line() {
    for (text, key, line) in BAD {
        let (_dir, path) = config_file(text);
        let p = path.to_str().unwrap();
        for sub in ["check", "run"] {
            let (code, _, err) = output(&[sub, "--config", p]).await;
            assert_eq!(code, 78, "{sub} {text:?}: {err}");
            assert!(err.contains(p), "{sub} {text:?} must name the file: {err}");
            assert!(err.contains(key), "{sub} {text:?} must name {key}: {err}");
            assert!(
                err.contains(line),
                "{sub} {text:?} must name line {line}: {err}"
            );
            assert_eq!(err.trim().lines().count(), 1, "one message: {err}");
        }
    }
}

#[tokio::test]
async fn toml_syntax_error_exits_78_with_line() {
    let (_dir, path) = config_file("namespace = \"x\"\n\n[publish\n");
    let p = path.to_str().unwrap();
    let (code, _, err) = output(&["check", "--config", p]).await;
    assert_eq!(code, 78, "{err}");
    assert!(err.contains(&format!("{p}:3")), "{err}");
}

#[tokio::test]
async fn missing_explicit_config_names_the_path() {
    let (code, _, err) = output(&["check", "--config", "/nonexistent/cwpulse.toml"]).await;
    assert_eq!(code, 78);
    assert!(err.contains("/nonexistent/cwpulse.toml"), "{err}");
}

#[tokio::test]
async fn check_prints_the_effective_config() {
    let (_dir, path) = config_file(
        "[[health]]\nname = \"app\"\nurl = \"http://127.0.0.1:8080/actuator/health\"\n",
    );
    let (code, out, err) = output(&["check", "--config", path.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    for expect in [
        "namespace = \"CWPulse\"",
        "interval = \"10s\"",
        "timeout = \"2s\"",
        "status = \"200-399\"",
        "unhealthy_threshold = 2",
        "interval = \"1m\"",
        "\"AutoScalingGroupName\"",
    ] {
        assert!(out.contains(expect), "missing {expect}: {out}");
    }
}

#[tokio::test]
async fn once_prints_datums_as_json_without_aws() {
    let health = HealthServer::start().await;
    let (_dir, path) = config_file(&format!(
        "[[health]]\nname = \"app\"\nurl = \"{}\"\npublish_latency = true\n[publish]\ndimension_sets = [[\"InstanceId\"], [\"AutoScalingGroupName\"]]\n[identity]\ninstance_id = \"i-local\"\nautoscaling_group = \"web\"\n",
        health.url()
    ));
    let (code, out, err) = output(&[
        "once",
        "--config",
        path.to_str().unwrap(),
        "--duration",
        "1500ms",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let datums: Vec<cwpulse::window::Datum> = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = datums.iter().map(|d| d.metric_name.as_str()).collect();
    for m in [
        "CPUUtilization",
        "HealthCheckFailed",
        "HealthCheckLatency",
        "HealthyHostCount",
        "UnHealthyHostCount",
    ] {
        assert_eq!(
            names.iter().filter(|n| **n == m).count(),
            2,
            "{m} once per dimension set: {names:?}"
        );
    }
    assert!(datums.iter().all(|d| d.is_valid()));
    let healthy = datums
        .iter()
        .find(|d| d.metric_name == "HealthyHostCount" && d.dimensions[0].value == "web")
        .unwrap();
    assert_eq!(healthy.value, Some(1.0));
    assert!(health.hits.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn once_reports_a_failing_route() {
    let health = HealthServer::start().await;
    health.set(Health::HugeBody);
    let (_dir, path) = config_file(&format!(
        "[[health]]\nname = \"app\"\nurl = \"{}\"\n[publish]\ndimension_sets = [[]]\n",
        health.url()
    ));
    let (code, out, err) = output(&[
        "once",
        "--config",
        path.to_str().unwrap(),
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("larger than"), "{err}");
    let datums: Vec<cwpulse::window::Datum> = serde_json::from_str(&out).unwrap();
    let unhealthy = datums
        .iter()
        .find(|d| d.metric_name == "UnHealthyHostCount")
        .unwrap();
    assert_eq!(unhealthy.value, Some(1.0));
    assert!(unhealthy.dimensions.is_empty());
}
