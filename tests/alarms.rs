//! `cwpulse alarms` against LocalStack, which evaluates alarms and delivers
//! their SNS notifications to an SQS queue: the real agent under CPU load,
//! with a failing health route and after it stops, must page through the
//! alarms `cwpulse alarms apply` made. `tests/run.sh` starts LocalStack.
//!
//! LocalStack evaluates an alarm every `period × evaluation_periods` seconds
//! over the last `evaluation_periods + 2` periods ending now, so the tests use
//! 10 s windows and 10 s periods, and poll the queue rather than sleep.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::config::{BehaviorVersion, Credentials, Region};
use common::*;

/// Upper bound for one alarm to reach the queue. LocalStack needs up to two
/// evaluation intervals after the data arrives; the agent up to one window.
const ALARM_WAIT: Duration = Duration::from_secs(90);

fn sns() -> aws_sdk_sns::Client {
    let conf = aws_sdk_sns::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(localstack())
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .http_client(cwpulse::publish::http_client())
        .build();
    aws_sdk_sns::Client::from_conf(conf)
}

fn sqs() -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(localstack())
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .http_client(cwpulse::publish::http_client())
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// One alarm notification as it arrived in the queue.
#[derive(Debug, Clone)]
struct Note {
    alarm: String,
    state: String,
    at: Instant,
}

/// An SNS topic with an SQS queue subscribed: what Chatbot would read.
struct Inbox {
    topic_arn: String,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
    seen: Vec<Note>,
    ids: HashSet<String>,
}

impl Inbox {
    async fn new(tag: &str) -> Self {
        let name = format!("cwpulse-{tag}-{}", std::process::id());
        let topic_arn = sns()
            .create_topic()
            .name(&name)
            .send()
            .await
            .expect("CreateTopic")
            .topic_arn()
            .unwrap()
            .to_owned();
        let sqs = sqs();
        let queue_url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("CreateQueue")
            .queue_url()
            .unwrap()
            .to_owned();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("GetQueueAttributes");
        let queue_arn = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .expect("queue ARN")
            .clone();
        sns()
            .subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .expect("Subscribe");
        Self {
            topic_arn,
            queue_url,
            sqs,
            seen: Vec::new(),
            ids: HashSet::new(),
        }
    }

    /// Reads what is in the queue now (waiting at most a second).
    async fn drain(&mut self) {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        for m in out.messages() {
            if let Some(h) = m.receipt_handle() {
                let _ = self
                    .sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(h)
                    .send()
                    .await;
            }
            if !self
                .ids
                .insert(m.message_id().unwrap_or_default().to_owned())
            {
                continue;
            }
            // The SNS envelope; its Message is the alarm's state change.
            let envelope: serde_json::Value =
                serde_json::from_str(m.body().unwrap_or_default()).expect("SNS envelope");
            let inner: serde_json::Value =
                serde_json::from_str(envelope["Message"].as_str().unwrap_or_default())
                    .expect("alarm message");
            self.seen.push(Note {
                alarm: inner["AlarmName"].as_str().unwrap_or_default().to_owned(),
                state: inner["NewStateValue"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                at: Instant::now(),
            });
        }
    }

    /// Waits for a notification that `alarm` went to `state`, arriving after
    /// `since`; returns when it arrived.
    async fn wait(&mut self, alarm: &str, state: &str, since: Instant) -> Instant {
        let end = Instant::now() + ALARM_WAIT;
        loop {
            if let Some(n) = self
                .seen
                .iter()
                .find(|n| n.alarm == alarm && n.state == state && n.at >= since)
            {
                return n.at;
            }
            if Instant::now() > end {
                panic!(
                    "no {state} notification for {alarm} within {ALARM_WAIT:?}; got: {:#?}",
                    self.seen
                );
            }
            self.drain().await;
        }
    }
}

/// A config with 10 s windows and high resolution, so alarms have 10 s
/// periods.
fn config(ns: &str, health_url: &str) -> String {
    format!(
        "namespace = \"{ns}\"\n[cpu]\ninterval = \"250ms\"\n[[health]]\nname = \"app\"\nurl = \"{health_url}\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\n[publish]\ninterval = \"10s\"\nhigh_resolution = true\ndimension_sets = [[\"InstanceId\"], [\"AutoScalingGroupName\"]]\n"
    )
}

/// The same plus an `[alarms]` table: heartbeat alarms after one silent
/// period, and a CPU threshold of 75 % so that an idle but busy CI machine
/// (two cores, LocalStack, parallel tests) reads as calm while the burners
/// push it to 100 %. The agent reads the same file (it ignores `[alarms]`).
fn alarms_config(ns: &str, health_url: &str) -> String {
    format!(
        "{}[alarms.heartbeat]\nevaluation_periods = 1\n[alarms.cpu]\nthreshold = 75\n",
        config(ns, health_url)
    )
}

async fn cli(args: &[&str], imds: Option<&Imds>) -> (i32, String, String) {
    let out = command(args, imds).output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn alarms(action: &str, path: &Path, topic: &str, imds: &Imds) -> String {
    let (code, out, err) = cli(
        &[
            "alarms",
            action,
            "--config",
            path.to_str().unwrap(),
            "--sns-topic-arn",
            topic,
        ],
        Some(imds),
    )
    .await;
    assert_eq!(code, 0, "alarms {action}: {out}{err}");
    out
}

fn prefix(ns: &str) -> String {
    format!("cwpulse/{ns}/")
}

/// A fresh agent in a fresh group, with its alarms applied.
struct Setup {
    ns: String,
    asg: String,
    imds: Imds,
    health: HealthServer,
    inbox: Inbox,
    agent: Agent,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Setup {
    async fn start(tag: &str, proc_root: Option<&Path>) -> Self {
        let ns = namespace(tag);
        let asg = format!("asg-{tag}-{}", std::process::id());
        let imds = Imds::start(Some(&asg)).await;
        let health = HealthServer::start().await;
        let inbox = Inbox::new(tag).await;
        // config_file gives each agent a spool of its own.
        let (dir, path) = config_file(&alarms_config(&ns, &health.url()));
        let mut args = vec!["run", "--config", path.to_str().unwrap()];
        if let Some(root) = proc_root {
            args.extend(["--proc-root", root.to_str().unwrap()]);
        }
        let agent = Agent::spawn(command(&args, Some(&imds)));
        let out = alarms("apply", &path, &inbox.topic_arn, &imds).await;
        assert!(
            out.contains("Applied: 6 created, 0 updated, 0 deleted, 0 unchanged."),
            "{out}"
        );
        Self {
            ns,
            asg,
            imds,
            health,
            inbox,
            agent,
            _dir: dir,
            path,
        }
    }

    fn alarm(&self, scope: &str, kind: &str) -> String {
        match scope {
            "asg" => format!("{}asg/{}/{kind}", prefix(&self.ns), self.asg),
            _ => format!("{}instance/{INSTANCE_ID}/{kind}", prefix(&self.ns)),
        }
    }
}

/// A `/proc/stat` the test controls: every 100 ms a tick of idle or of busy
/// time, so the recovery path does not depend on what else the machine runs.
struct FakeCpu {
    dir: tempfile::TempDir,
    busy: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeCpu {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let busy = Arc::new(AtomicBool::new(false));
        let file = std::fs::File::create(dir.path().join("stat")).unwrap();
        let b = busy.clone();
        let task = tokio::spawn(async move {
            use std::os::unix::fs::FileExt;
            let (mut user, mut idle) = (0u64, 0u64);
            loop {
                if b.load(Ordering::SeqCst) {
                    user += 10;
                } else {
                    idle += 10;
                }
                // The agent keeps the file open and re-reads it from offset
                // 0, as procfs allows: so the same file is overwritten in
                // place, fixed width, in one write that never shows half a
                // line.
                let line = format!("cpu  {user:020} 0 0 {idle:020} 0 0 0 0 0 0\n");
                file.write_all_at(line.as_bytes(), 0).unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { dir, busy, task }
    }
}

impl Drop for FakeCpu {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Real load: busy loops on every core page through the CPU alarms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_alarm_pages_under_real_load() {
    let mut s = Setup::start("cpu", None).await;
    let load_start = Instant::now();
    let load = burn(2);
    let fired = s
        .inbox
        .wait(&s.alarm("asg", "cpu-high"), "ALARM", load_start)
        .await;
    s.inbox
        .wait(&s.alarm("instance", "cpu-high"), "ALARM", load_start)
        .await;
    drop(load);
    eprintln!(
        "MEASURED: CPU ALARM notification {:.1}s after the load started (agent and alarms just started)",
        (fired - load_start).as_secs_f64()
    );
    let (code, _) = s.agent.terminate().await;
    assert_eq!(code, Some(0), "{}", s.agent.log());
    // LocalStack evaluates every alarm every period: leave none behind.
    let out = alarms("delete", &s.path, &s.inbox.topic_arn, &s.imds).await;
    assert!(out.contains("Deleted: 6 alarms."), "{out}");
}

/// OK while idle, ALARM under load, OK again: Slack hears "recovered".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_alarm_goes_ok_alarm_ok() {
    let cpu = FakeCpu::start();
    let mut s = Setup::start("cpuok", Some(cpu.dir.path())).await;
    let asg_cpu = s.alarm("asg", "cpu-high");
    s.inbox.wait(&asg_cpu, "OK", Instant::now()).await;

    let load_start = Instant::now();
    cpu.busy.store(true, Ordering::SeqCst);
    let fired = s.inbox.wait(&asg_cpu, "ALARM", load_start).await;
    s.inbox
        .wait(&s.alarm("instance", "cpu-high"), "ALARM", load_start)
        .await;
    eprintln!(
        "MEASURED: CPU ALARM notification {:.1}s after the (synthetic) load started, alarm already OK",
        (fired - load_start).as_secs_f64()
    );

    let calm = Instant::now();
    cpu.busy.store(false, Ordering::SeqCst);
    let back = s.inbox.wait(&asg_cpu, "OK", calm).await;
    eprintln!(
        "MEASURED: CPU OK notification {:.1}s after the load stopped",
        (back - calm).as_secs_f64()
    );
    let (code, _) = s.agent.terminate().await;
    assert_eq!(code, Some(0), "{}", s.agent.log());
    let out = alarms("delete", &s.path, &s.inbox.topic_arn, &s.imds).await;
    assert!(out.contains("Deleted: 6 alarms."), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_route_and_dead_agent_page() {
    let mut s = Setup::start("health", None).await;
    let t0 = Instant::now();
    let asg_unhealthy = s.alarm("asg", "unhealthy");
    s.inbox.wait(&asg_unhealthy, "OK", t0).await;

    let flipped = Instant::now();
    s.health.set(Health::Failing);
    let fired = s.inbox.wait(&asg_unhealthy, "ALARM", flipped).await;
    s.inbox
        .wait(&s.alarm("instance", "unhealthy"), "ALARM", flipped)
        .await;
    eprintln!(
        "MEASURED: unhealthy ALARM notification {:.1}s after the route failed",
        (fired - flipped).as_secs_f64()
    );

    // A dead agent is silent; only the heartbeat alarms can tell.
    let (code, _) = s.agent.terminate().await;
    assert_eq!(code, Some(0), "{}", s.agent.log());
    let stopped = Instant::now();
    let fired = s
        .inbox
        .wait(&s.alarm("asg", "no-heartbeat"), "ALARM", stopped)
        .await;
    s.inbox
        .wait(&s.alarm("instance", "no-heartbeat"), "ALARM", stopped)
        .await;
    eprintln!(
        "MEASURED: heartbeat ALARM notification {:.1}s after the agent stopped",
        (fired - stopped).as_secs_f64()
    );

    // Deleting removes all six, and only those.
    let out = alarms("delete", &s.path, &s.inbox.topic_arn, &s.imds).await;
    assert!(out.contains("Deleted: 6 alarms."), "{out}");
    let left = cloudwatch()
        .await
        .describe_alarms()
        .alarm_name_prefix(prefix(&s.ns))
        .send()
        .await
        .unwrap();
    assert!(left.metric_alarms().is_empty(), "{left:?}");
}

/// Plan, idempotent apply, updates, and alarms we do not own: no agent
/// needed, identity from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_apply_delete_touch_only_owned_alarms() {
    let cw = cloudwatch().await;
    let ns = namespace("owned");
    let topic = "arn:aws:sns:us-east-1:000000000000:cwpulse-owned";
    let base = format!(
        "namespace = \"{ns}\"\n[[health]]\nname = \"app\"\nurl = \"http://127.0.0.1:9/\"\n[publish]\ndimension_sets = [[\"InstanceId\"], [\"AutoScalingGroupName\"]]\n"
    );
    let (_dir, path) = config_file(&base);
    let run = |action: &'static str, extra: &'static [&'static str]| {
        let path = path.clone();
        async move {
            let mut args = vec![
                "alarms",
                action,
                "--config",
                path.to_str().unwrap(),
                "--asg",
                "web",
                "--instance-id",
                "i-0feed",
                "--sns-topic-arn",
                topic,
            ];
            args.extend_from_slice(extra);
            cli(&args, None).await
        }
    };

    // Someone made an alarm by hand under one of our names.
    let foreign = format!("cwpulse/{ns}/asg/web/cpu-high");
    cw.put_metric_alarm()
        .alarm_name(&foreign)
        .alarm_description("made by hand")
        .namespace(&ns)
        .metric_name("CPUUtilization")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(90.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();

    let (code, out, err) = run("plan", &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Plan: 5 to create, 0 to update, 0 to delete, 0 unchanged, 1 conflicting."),
        "{out}"
    );
    assert!(out.contains("threshold: 90 -> 50"), "{out}");
    // Plan changed nothing.
    let all = cw
        .describe_alarms()
        .alarm_name_prefix(prefix(&ns))
        .send()
        .await
        .unwrap();
    assert_eq!(all.metric_alarms().len(), 1);

    // Apply leaves the foreign alarm alone and says so with exit code 1.
    let (code, out, _) = run("apply", &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Applied: 5 created"), "{out}");
    let (code, out, _) = run("apply", &["--scope", "instance"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Applied: 0 created, 0 updated, 0 deleted, 3 unchanged."),
        "{out}"
    );

    // A changed threshold is an update; a disabled rule is a delete.
    std::fs::write(
        &path,
        format!("{base}[alarms.cpu]\nthreshold = 70\n[alarms.heartbeat]\nenabled = false\n"),
    )
    .unwrap();
    let (_, out, _) = run("plan", &["--scope", "instance"]).await;
    assert!(
        out.contains("Plan: 0 to create, 1 to update, 1 to delete, 1 unchanged."),
        "{out}"
    );
    assert!(out.contains("threshold: 50 -> 70"), "{out}");
    let (code, out, _) = run("apply", &["--scope", "instance"]).await;
    assert_eq!(code, 0, "{out}");
    let (_, out, _) = run("plan", &["--scope", "instance"]).await;
    assert!(
        out.contains("0 to create, 0 to update, 0 to delete, 2 unchanged."),
        "{out}"
    );

    // Delete takes ours and leaves the hand-made one.
    let (code, out, _) = run("delete", &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Deleted: 4 alarms."), "{out}");
    let left: Vec<String> = cw
        .describe_alarms()
        .alarm_name_prefix(prefix(&ns))
        .send()
        .await
        .unwrap()
        .metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name().map(str::to_owned))
        .collect();
    assert_eq!(left, std::slice::from_ref(&foreign));
    cw.delete_alarms()
        .alarm_names(foreign)
        .send()
        .await
        .unwrap();
}

/// A bad [alarms] table is a configuration error, like the agent's own.
#[tokio::test]
async fn bad_alarms_table_exits_78() {
    let (_dir, path) = config_file("[alarms.cpu]\nthreshold = 500\n");
    for args in [
        vec!["alarms", "plan", "--config", path.to_str().unwrap()],
        vec!["cost", "--config", path.to_str().unwrap()],
    ] {
        let (code, _, err) = cli(&args, None).await;
        assert_eq!(code, 78, "{err}");
        assert!(err.contains("alarms.cpu.threshold"), "{err}");
    }
}

#[tokio::test]
async fn cost_prints_the_bill() {
    let (_dir, path) = config_file("");
    let (code, out, err) = cli(
        &[
            "cost",
            "--config",
            path.to_str().unwrap(),
            "--instances",
            "50",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("us-east-1"), "{out}");
    assert!(out.contains("for 50 instances"), "{out}");
    assert!(out.contains("Per instance"), "{out}");
}

/// The CloudFormation template's group alarms are the ones `cwpulse alarms`
/// makes for the shared set: same names, metrics, statistics, comparisons
/// and missing-data treatment.
#[test]
fn cloudformation_alarms_match_the_cli() {
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/cloudformation/cwpulse.yaml"),
    )
    .unwrap();
    let config = cwpulse::config::parse(
        "[[health]]\nname = \"app\"\nurl = \"http://127.0.0.1/\"\n",
        Path::new("cwpulse.toml"),
    )
    .unwrap();
    let alarms = config.alarms.clone();
    let id = cwpulse::identity::Identity {
        instance_id: None,
        autoscaling_group: Some("GROUP".into()),
    };
    let want =
        cwpulse::alarms::desired(&config, &alarms, &id, cwpulse::alarms::Scope::Shared).unwrap();
    assert_eq!(want.len(), 3);
    for (resource, spec) in ["CpuHighAlarm", "UnhealthyAlarm", "HeartbeatAlarm"]
        .iter()
        .zip(&want)
    {
        let start = template
            .find(&format!("\n  {resource}:\n"))
            .unwrap_or_else(|| panic!("{resource} not in the template"));
        // The resource's lines: up to the next line indented by two spaces
        // or less.
        let block: String = template[start + 1..]
            .lines()
            .enumerate()
            .take_while(|(i, l)| *i == 0 || l.is_empty() || l.starts_with("   "))
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        let name = spec
            .name
            .replace("/CWPulse/", "/${Namespace}/")
            .replace("/GROUP/", "/${AutoScalingGroupName}/");
        for needle in [
            format!("AlarmName: !Sub \"{name}\""),
            if *resource == "HeartbeatAlarm" {
                // HealthyHostCount with checks, CPUUtilization without.
                "MetricName: !If [HasHealthChecks, HealthyHostCount, CPUUtilization]".to_owned()
            } else {
                format!("MetricName: {}", spec.metric)
            },
            format!("Statistic: {}", spec.statistic),
            format!("ComparisonOperator: {}", spec.comparison),
            format!("TreatMissingData: {}", spec.treat_missing_data),
            "Name: AutoScalingGroupName".to_owned(),
            "OKActions: [!Ref AlarmTopic]".to_owned(),
        ] {
            assert!(
                block.contains(&needle),
                "{resource}: no {needle:?} in\n{block}"
            );
        }
    }
}
