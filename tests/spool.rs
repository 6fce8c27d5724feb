//! Data safety: every window sampled while the agent ran reaches CloudWatch
//! exactly once, through 503s, throttling, resets, black holes, SIGKILL and
//! restarts. CloudWatch is LocalStack behind a fault-injecting proxy.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const WINDOW_MS: i64 = 2000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// 2 s high-resolution windows, a short call timeout and backoff, and one
/// health check (LocalStack's own health route, always up) so every window
/// carries a HealthyHostCount datum to count windows by.
fn config(ns: &str, instance: &str, spool: &Path) -> String {
    format!(
        "namespace = \"{ns}\"\n[cpu]\ninterval = \"250ms\"\n[[health]]\nname = \"up\"\nurl = \"{}/_localstack/health\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n[publish]\ninterval = \"2s\"\nhigh_resolution = true\ntimeout = \"3s\"\nmax_backoff = \"2s\"\ndimension_sets = [[\"InstanceId\"]]\n[identity]\ninstance_id = \"{instance}\"\n[spool]\ndir = \"{}\"\n",
        localstack(),
        spool.display()
    )
}

fn fault_name(f: Fault) -> &'static str {
    match f {
        Fault::Pass => "pass",
        Fault::Unavailable => "503",
        Fault::Throttle => "throttle+kill",
        Fault::Reset => "reset",
        Fault::Hang => "black hole",
        Fault::RejectPoison => "reject",
    }
}

fn agent(path: &Path, endpoint: &str) -> Agent {
    let mut cmd = command(&["run", "--config", path.to_str().unwrap()], None);
    cmd.env("AWS_ENDPOINT_URL", endpoint);
    Agent::spawn(cmd)
}

fn spooled(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "win"))
                .count()
        })
        .unwrap_or(0)
}

/// HealthyHostCount datapoints per period: the heartbeat, one per window.
async fn heartbeats(ns: &str, instance: &str) -> BTreeMap<i64, f64> {
    let cw = cloudwatch().await;
    points(&cw, ns, "HealthyHostCount", &[("InstanceId", instance)])
        .await
        .into_iter()
        .map(|p| (p.timestamp, p.sample_count))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_window_arrives_exactly_once_through_faults_and_restarts() {
    let ns = namespace("faults");
    let instance = "i-faults";
    let proxy = FaultProxy::start(&localstack()).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let (_cfg, path) = config_file(&config(&ns, instance, &spool));

    let started = now_ms();
    let mut a = agent(&path, &proxy.endpoint());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut dead = Vec::new(); // (from, to) when no agent was sampling
    let mut phases = vec![("pass", started, 0i64)];
    for fault in [
        Fault::Unavailable,
        Fault::Throttle,
        Fault::Reset,
        Fault::Hang,
    ] {
        phases.last_mut().unwrap().2 = now_ms();
        phases.push((fault_name(fault), now_ms(), 0));
        proxy.set(fault);
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert!(spooled(&spool) >= 1, "{fault:?}: windows wait in the spool");
        if fault == Fault::Throttle {
            // Crash in the middle of an outage and come back on the same spool.
            let killed = now_ms();
            a.kill9().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            a = agent(&path, &proxy.endpoint());
            dead.push((killed, now_ms()));
        }
    }
    phases.last_mut().unwrap().2 = now_ms();
    phases.push(("pass (drain)", now_ms(), 0));
    proxy.set(Fault::Pass);
    eventually(Duration::from_secs(30), "the backlog to drain", || async {
        (spooled(&spool) == 0).then_some(())
    })
    .await;
    let log = a.log();
    assert!(log.contains("windows stay in the spool"), "{log}");
    assert!(log.contains("backlog drained"), "{log}");
    let (code, _) = a.terminate().await;
    assert_eq!(code, Some(0));
    let stopped = now_ms();
    phases.last_mut().unwrap().2 = stopped;

    let beats = heartbeats(&ns, instance).await;
    let dup: Vec<_> = beats.iter().filter(|(_, n)| **n > 1.0).collect();
    assert!(dup.is_empty(), "duplicated windows: {dup:?} in {beats:?}");
    // Every period the agent sampled through is there: the only gaps allowed
    // are the window being sampled when SIGKILL hit and the restart.
    let first = started / WINDOW_MS * WINDOW_MS + WINDOW_MS;
    let last = stopped / WINDOW_MS * WINDOW_MS - WINDOW_MS;
    let mut missing = Vec::new();
    let mut p = first;
    while p <= last {
        let excused = dead
            .iter()
            .any(|(from, to)| p + WINDOW_MS > *from - WINDOW_MS && p < *to + WINDOW_MS);
        if !excused && !beats.contains_key(&p) {
            missing.push(p);
        }
        p += WINDOW_MS;
    }
    assert!(
        missing.is_empty(),
        "missing periods {missing:?}; got {beats:?}"
    );
    // Per phase: windows whose period started in it, as sampled (closed by
    // a live agent) vs delivered vs duplicated.
    let excused = |p: i64| {
        dead.iter()
            .any(|(f, t)| p + WINDOW_MS > *f - WINDOW_MS && p < *t + WINDOW_MS)
    };
    for (name, from, to) in &phases {
        let sampled: Vec<i64> = (from / WINDOW_MS + 1..to / WINDOW_MS)
            .map(|p| p * WINDOW_MS)
            .filter(|p| !excused(*p))
            .collect();
        let delivered = sampled.iter().filter(|p| beats.contains_key(p)).count();
        let duplicated = sampled
            .iter()
            .filter(|p| beats.get(p).is_some_and(|n| *n > 1.0))
            .count();
        eprintln!(
            "faults: {name:<13} sampled {:>2}  delivered {delivered:>2}  duplicated {duplicated}",
            sampled.len()
        );
    }
    eprintln!(
        "faults: total {} windows delivered, {} connections forwarded",
        beats.len(),
        proxy.forwarded.load(std::sync::atomic::Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_promptly_into_a_black_hole_and_the_spool_survives() {
    let ns = namespace("blackhole");
    let instance = "i-blackhole";
    let proxy = FaultProxy::start(&localstack()).await;
    proxy.set(Fault::Hang);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let (_cfg, path) = config_file(&config(&ns, instance, &spool));

    let mut a = agent(&path, &proxy.endpoint());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (code, secs) = a.terminate().await;
    assert_eq!(code, Some(0), "{}", a.log());
    assert!(
        secs < 7.0,
        "SIGTERM took {secs:.1}s with CloudWatch unreachable"
    );
    eprintln!("SIGTERM exit with CloudWatch a black hole: {secs:.2}s");
    let held = spooled(&spool);
    assert!(held >= 2, "unsent windows stay on disk: {held}");

    // `status` reads the state file without the agent running.
    let out = command(&["status", "--config", path.to_str().unwrap()], None)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("unsent:         {held} windows")),
        "{text}"
    );
    assert!(
        text.contains("last error:") && !text.contains("last error:     none"),
        "{text}"
    );

    // Restarted with CloudWatch back, the held windows go out first.
    proxy.set(Fault::Pass);
    let mut a = agent(&path, &proxy.endpoint());
    eventually(Duration::from_secs(30), "the held windows", || async {
        (heartbeats(&ns, instance).await.len() >= held).then_some(())
    })
    .await;
    let (code, _) = a.terminate().await;
    assert_eq!(code, Some(0));
    assert!(heartbeats(&ns, instance).await.values().all(|n| *n == 1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_spool_file_is_quarantined_and_newer_data_still_flows() {
    let ns = namespace("corrupt");
    let instance = "i-corrupt";
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    // Oldest file: garbage; next: truncated; the agent must skip both.
    std::fs::write(
        spool.join("0000000000000000-1.win"),
        b"\x00\xffnot a spool file",
    )
    .unwrap();
    let ts = now_ms() / 60_000 * 60_000 - 120_000;
    let good = vec![cwpulse::window::Datum {
        metric_name: "HealthyHostCount".into(),
        dimensions: vec![cwpulse::window::Dimension {
            name: "InstanceId".into(),
            value: instance.into(),
        }],
        timestamp: ts,
        unit: "Count".into(),
        value: Some(1.0),
        statistic_values: None,
        storage_resolution: 1,
    }];
    let bytes = cwpulse::spool::encode(&good);
    std::fs::write(
        spool.join(format!("0000000000000001-{ts}.win")),
        &bytes[..bytes.len() - 3],
    )
    .unwrap();
    std::fs::write(spool.join(format!("0000000000000002-{ts}.win")), &bytes).unwrap();

    let (_cfg, path) = config_file(&config(&ns, instance, &spool));
    let mut a = agent(&path, &localstack());
    eventually(
        Duration::from_secs(30),
        "the good spooled window",
        || async {
            heartbeats(&ns, instance)
                .await
                .contains_key(&ts)
                .then_some(())
        },
    )
    .await;
    let (code, _) = a.terminate().await;
    assert_eq!(code, Some(0));
    let log = a.log();
    assert_eq!(log.matches("moved to quarantine").count(), 2, "{log}");
    assert_eq!(
        std::fs::read_dir(spool.join("quarantine")).unwrap().count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_during_a_long_outage() {
    let ns = namespace("outage");
    let proxy = FaultProxy::start(&localstack()).await;
    proxy.set(Fault::Hang);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // 1 s windows with 20 checks: ~40 datums a window pile up on disk.
    let mut text =
        config(&ns, "i-outage", &spool).replace("interval = \"2s\"", "interval = \"1s\"");
    let health = HealthServer::start().await;
    for i in 0..20 {
        text.push_str(&format!(
            "[[health]]\nname = \"c{i}\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
            health.url()
        ));
    }
    let (_cfg, path) = config_file(&text);
    let mut a = agent(&path, &proxy.endpoint());
    tokio::time::sleep(Duration::from_secs(8)).await;
    let early = rss_kib(a.pid());
    let mut peak = early;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(rss_kib(a.pid()));
    }
    let windows = spooled(&spool);
    let (code, _) = a.terminate().await;
    assert_eq!(code, Some(0));
    eprintln!("outage: {windows} windows spooled, RSS {early} KiB after 8 s, peak {peak} KiB");
    assert!(windows >= 25, "{windows}");
    assert!(
        peak < early + 1024,
        "RSS grew from {early} KiB to {peak} KiB while {windows} windows waited on disk"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_datum_is_dropped_alone_not_its_batch() {
    let ns = namespace("poison");
    let instance = "i-poison";
    let proxy = FaultProxy::start(&localstack()).await;
    proxy.set(Fault::RejectPoison);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let ts = now_ms() / 1000 * 1000 - 60_000;
    let datum = |name: &str| cwpulse::window::Datum {
        metric_name: name.into(),
        dimensions: vec![],
        timestamp: ts,
        unit: "Count".into(),
        value: Some(1.0),
        statistic_values: None,
        storage_resolution: 1,
    };
    let names = [
        "Neighbour",
        "Neighbour",
        "Poison",
        "Neighbour",
        "Neighbour",
        "Neighbour",
    ];
    let window: Vec<_> = names.iter().map(|n| datum(n)).collect();
    std::fs::write(
        spool.join(format!("0000000000000000-{ts}.win")),
        cwpulse::spool::encode(&window),
    )
    .unwrap();

    let (_cfg, path) = config_file(&config(&ns, instance, &spool));
    let mut a = agent(&path, &proxy.endpoint());
    eventually(
        Duration::from_secs(20),
        "the poisoned window to be settled",
        || async { (!spool.join(format!("0000000000000000-{ts}.win")).exists()).then_some(()) },
    )
    .await;
    let (code, _) = a.terminate().await;
    assert_eq!(code, Some(0));
    let log = a.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("Poison") && errors[0].contains("InvalidParameterValue"),
        "{log}"
    );
    // Each good neighbour was accepted exactly once.
    let accepted = proxy.accepted.lock().unwrap();
    let neighbours: usize = accepted
        .iter()
        .map(|b| b.windows(9).filter(|w| w == b"Neighbour").count())
        .sum();
    assert_eq!(neighbours, 5);
}
