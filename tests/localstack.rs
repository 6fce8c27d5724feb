//! The real binary against LocalStack's CloudWatch, an IMDSv2 fake and a
//! health route the test flips. `tests/run.sh` starts LocalStack.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const WAIT: Duration = Duration::from_secs(40);

fn fast_config(ns: &str, health_url: Option<&str>, extra: &str) -> String {
    let health = health_url.map_or(String::new(), |u| {
        format!(
            "[[health]]\nname = \"app\"\nurl = \"{u}\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\npublish_latency = true\n"
        )
    });
    // Both kinds of set unless the test picks its own.
    let sets = if extra.contains("dimension_sets") {
        ""
    } else {
        "dimension_sets = [[\"InstanceId\"], [\"AutoScalingGroupName\"]]\n"
    };
    format!(
        "namespace = \"{ns}\"\n[cpu]\ninterval = \"200ms\"\n{health}[publish]\ninterval = \"2s\"\nhigh_resolution = true\n{sets}{extra}"
    )
}

fn unique_asg(tag: &str) -> String {
    format!("asg-{tag}-{}", std::process::id())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_under_load_reads_high_under_both_dimension_sets() {
    let cw = cloudwatch().await;
    let ns = namespace("cpu");
    let asg = unique_asg("cpu");
    let imds = Imds::start(Some(&asg)).await;
    let health = HealthServer::start().await;
    let (_dir, path) = config_file(&fast_config(&ns, Some(&health.url()), ""));
    let mut agent = Agent::spawn(command(
        &["run", "--config", path.to_str().unwrap()],
        Some(&imds),
    ));

    let load = burn(2);
    let by_instance = [("InstanceId", INSTANCE_ID)];
    let by_asg = [("AutoScalingGroupName", asg.as_str())];
    let high = eventually(
        WAIT,
        "a window with average CPU above 70% under the ASG",
        || async {
            points(&cw, &ns, "CPUUtilization", &by_asg)
                .await
                .into_iter()
                .find(|p| p.sample_count >= 3.0 && p.sum / p.sample_count > 70.0)
        },
    )
    .await;
    drop(load);
    assert!(high.max <= 100.0 && high.min >= 0.0, "{high:?}");

    // The same window under the per-instance set, with the same statistics.
    let inst = points(&cw, &ns, "CPUUtilization", &by_instance).await;
    let same = inst.iter().find(|p| p.timestamp == high.timestamp);
    let same =
        same.unwrap_or_else(|| panic!("no per-instance datum at {}: {inst:?}", high.timestamp));
    assert_eq!(same.sample_count, high.sample_count);
    assert!((same.sum - high.sum).abs() < 1e-6);

    // Read back only after the agent is gone, so no window is half-written.
    let (code, _) = agent.terminate().await;
    assert_eq!(code, Some(0), "{}", agent.log());

    // One heartbeat per window per instance: HealthyHostCount is 1 with
    // SampleCount 1 in every period, under both sets.
    for dims in [&by_instance[..], &by_asg[..]] {
        let hosts = points(&cw, &ns, "HealthyHostCount", dims).await;
        assert!(hosts.len() >= 2, "{hosts:?}");
        for p in &hosts {
            assert_eq!((p.sample_count, p.sum), (1.0, 1.0), "{dims:?}: {hosts:?}");
        }
        let unhealthy = points(&cw, &ns, "UnHealthyHostCount", dims).await;
        assert!(unhealthy.iter().all(|p| p.sum == 0.0), "{unhealthy:?}");
    }
    // Health checks carry the extra dimension.
    let failed = points(
        &cw,
        &ns,
        "HealthCheckFailed",
        &[("InstanceId", INSTANCE_ID), ("HealthCheck", "app")],
    )
    .await;
    assert!(
        !failed.is_empty() && failed.iter().all(|p| p.sum == 0.0),
        "{failed:?}"
    );
    let latency = points(
        &cw,
        &ns,
        "HealthCheckLatency",
        &[("AutoScalingGroupName", &asg), ("HealthCheck", "app")],
    )
    .await;
    assert!(
        !latency.is_empty() && latency.iter().all(|p| p.max < 300.0),
        "{latency:?}"
    );

    assert_eq!(imds.v1_attempts.load(Ordering::SeqCst), 0, "never IMDSv1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_route_turns_unhealthy_within_two_windows_and_recovers() {
    let cw = cloudwatch().await;
    let ns = namespace("health");
    let asg = unique_asg("health");
    let imds = Imds::start(Some(&asg)).await;
    let health = HealthServer::start().await;
    let (_dir, path) = config_file(&fast_config(&ns, Some(&health.url()), ""));
    let mut agent = Agent::spawn(command(
        &["run", "--config", path.to_str().unwrap()],
        Some(&imds),
    ));
    let by_asg = [("AutoScalingGroupName", asg.as_str())];
    let started = std::time::Instant::now();

    eventually(WAIT, "a healthy heartbeat", || async {
        points(&cw, &ns, "HealthyHostCount", &by_asg)
            .await
            .into_iter()
            .find(|p| p.sum == 1.0)
    })
    .await;

    eprintln!("healthy seen after {:?}", started.elapsed());
    let flipped_at = now_ms();
    health.set(Health::Failing);
    let bad = eventually(WAIT, "UnHealthyHostCount = 1", || async {
        points(&cw, &ns, "UnHealthyHostCount", &by_asg)
            .await
            .into_iter()
            .find(|p| p.sum == 1.0)
    })
    .await;
    // The window that reports it starts no later than two windows after the
    // route broke.
    assert!(
        bad.timestamp <= flipped_at + 2 * 2000,
        "unhealthy reported in the window at {}, route broke at {flipped_at}",
        bad.timestamp
    );

    eprintln!("unhealthy seen after {:?}", started.elapsed());
    // A hanging route stays unhealthy and costs bounded time: windows keep coming.
    health.set(Health::Hanging);
    let hang_at = now_ms();
    eventually(
        WAIT,
        "windows keep arriving while the route hangs",
        || async {
            points(&cw, &ns, "UnHealthyHostCount", &by_asg)
                .await
                .into_iter()
                .find(|p| p.timestamp > hang_at + 2000 && p.sum == 1.0)
        },
    )
    .await;

    eprintln!("hang seen after {:?}", started.elapsed());
    health.set(Health::Healthy);
    let healed_at = now_ms();
    eventually(WAIT, "HealthyHostCount = 1 again", || async {
        points(&cw, &ns, "HealthyHostCount", &by_asg)
            .await
            .into_iter()
            .find(|p| p.timestamp > healed_at && p.sum == 1.0)
    })
    .await;

    let (code, _) = agent.terminate().await;
    assert_eq!(code, Some(0));
    let log = agent.log();
    assert_eq!(
        log.matches("now UNHEALTHY").count(),
        1,
        "state changes only: {log}"
    );
    assert!(log.contains("now healthy"), "{log}");
    assert!(
        !log.contains("Probe failed"),
        "no per-probe lines at INFO: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_the_last_window_and_exits_0() {
    let cw = cloudwatch().await;
    let ns = namespace("sigterm");
    let (_dir, path) = config_file(&format!(
        "namespace = \"{ns}\"\n[publish]\ninterval = \"60s\"\ndimension_sets = [[\"InstanceId\"]]\n[identity]\ninstance_id = \"i-sigterm\"\n"
    ));
    let mut agent = Agent::spawn(command(&["run", "--config", path.to_str().unwrap()], None));
    // Stop before the first window (5 s after start) closes by itself: the
    // only datums in CloudWatch can then come from the shutdown flush.
    eventually(
        Duration::from_secs(10),
        "the agent to start sampling",
        || async { agent.log().contains("Sampling").then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (code, secs) = agent.terminate().await;
    assert_eq!(code, Some(0), "{}", agent.log());
    assert!(secs < 5.0, "exit took {secs}s");
    let log = agent.log();
    assert!(log.contains("Final window published"), "{log}");

    let dims = [("InstanceId", "i-sigterm")];
    let cpu = points(&cw, &ns, "CPUUtilization", &dims).await;
    assert_eq!(cpu.len(), 1, "{cpu:?}");
    assert!(cpu[0].sample_count >= 1.0, "{cpu:?}");
    assert_eq!(cpu[0].timestamp % 60_000, 0, "stamped with its minute");
    // No health checks: no host counts (they would be a constant 1/0).
    let hosts = points(&cw, &ns, "HealthyHostCount", &dims).await;
    assert!(hosts.is_empty(), "{hosts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asg_comes_from_the_autoscaling_api_when_tags_are_off() {
    let cw = cloudwatch().await;
    let ns = namespace("asgapi");
    let asg = unique_asg("api");
    let imds = Imds::start(Some(&asg)).await;
    imds.tags_enabled.store(false, Ordering::SeqCst);
    let (_dir, path) = config_file(&fast_config(&ns, None, ""));
    let mut agent = Agent::spawn(command(
        &["run", "--config", path.to_str().unwrap()],
        Some(&imds),
    ));
    eventually(WAIT, "CPU under the ASG found through the API", || async {
        let p = points(
            &cw,
            &ns,
            "CPUUtilization",
            &[("AutoScalingGroupName", &asg)],
        )
        .await;
        (!p.is_empty()).then_some(())
    })
    .await;
    assert_eq!(imds.asg_api_calls.load(Ordering::SeqCst), 1);
    assert_eq!(imds.v1_attempts.load(Ordering::SeqCst), 0);
    let (code, _) = agent.terminate().await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_an_asg_the_default_group_set_falls_back_to_the_instance() {
    let cw = cloudwatch().await;
    let ns = namespace("noasg");
    let imds = Imds::start(None).await;
    // The built-in default: the group set only.
    let (_dir, path) = config_file(&fast_config(
        &ns,
        None,
        "dimension_sets = [[\"AutoScalingGroupName\"]]\n",
    ));
    let mut agent = Agent::spawn(command(
        &["run", "--config", path.to_str().unwrap()],
        Some(&imds),
    ));
    eventually(WAIT, "CPU under InstanceId", || async {
        let p = points(&cw, &ns, "CPUUtilization", &[("InstanceId", INSTANCE_ID)]).await;
        (!p.is_empty()).then_some(())
    })
    .await;
    let (code, _) = agent.terminate().await;
    assert_eq!(code, Some(0));
    let log = agent.log();
    assert_eq!(log.matches("dimension set is skipped").count(), 1, "{log}");
    assert!(log.contains("publishing per instance"), "{log}");
    assert_eq!(
        imds.asg_api_calls.load(Ordering::SeqCst),
        0,
        "tags said: not in an ASG"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_imds_fails_with_the_fix_in_the_message() {
    // A bound-but-silent port: connects, never answers (like a dropped
    // hop-limited PUT response).
    let silent = serve(|_| None).await;
    let (_dir, path) = config_file("[publish]\ninterval = \"2s\"\n");
    let mut cmd = command(&["run", "--config", path.to_str().unwrap()], None);
    cmd.env_remove("AWS_EC2_METADATA_DISABLED").env(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        format!("http://{silent}/"),
    );
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("agent must give up on IMDS")
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("hop limit") && err.contains("[identity]"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_window_is_published_seconds_after_start_not_a_minute() {
    let cw = cloudwatch().await;
    let ns = namespace("first");
    let (_dir, path) = config_file(&format!(
        "namespace = \"{ns}\"\n[publish]\ninterval = \"60s\"\ndimension_sets = [[\"InstanceId\"]]\n[identity]\ninstance_id = \"i-first\"\n"
    ));
    let spawned = std::time::Instant::now();
    let mut agent = Agent::spawn(command(&["run", "--config", path.to_str().unwrap()], None));
    eventually(Duration::from_secs(15), "the first datum", || async {
        let p = points(&cw, &ns, "CPUUtilization", &[("InstanceId", "i-first")]).await;
        (!p.is_empty()).then_some(())
    })
    .await;
    let took = spawned.elapsed();
    eprintln!("first datum visible {took:?} after start");
    assert!(took < Duration::from_secs(12), "{took:?}");
    let (code, _) = agent.terminate().await;
    assert_eq!(code, Some(0));
}
