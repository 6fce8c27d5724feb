//! The daemon: sampling tasks feed one window at a time; closed windows go to
//! the publisher task, which never blocks sampling.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_types::region::Region;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::identity::{self, Identity};
use crate::publish::{self, Publisher, PutError};
use crate::sample::cpu::CpuSampler;
use crate::sample::health::{CheckState, CheckTracker, ProbeResult, Prober};
use crate::shutdown::Shutdown;
use crate::window::{self, Datum, HostState, Shape, Window};

/// The first window closes this soon after start (or at the first period
/// boundary, if sooner), so new alarms see data during boot instead of a full
/// interval later.
pub const FIRST_WINDOW: Duration = Duration::from_secs(5);

/// How long the final flush may take after SIGTERM; well under the unit's
/// `TimeoutStopSec`.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// Unsent datums kept in memory while CloudWatch is unreachable; the oldest
/// are dropped beyond this (about a day of the default config).
pub const MAX_PENDING_DATUMS: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Cpu(#[from] crate::sample::cpu::CpuError),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(
        "no AWS region: set AWS_REGION, or region under [identity] in the config (on EC2 it comes from instance metadata)"
    )]
    NoRegion,
}

/// Everything `run` resolves at start-up from the environment.
pub struct Environment {
    pub publisher: Publisher,
    pub shape: Shape,
}

/// Resolves region, identity and the CloudWatch client: the start-up half of
/// `run`, which needs AWS (or its emulator).
pub async fn connect(config: &Config) -> Result<Environment, AgentError> {
    let http = publish::http_client();
    // Without an override, the loader's own default chain (environment,
    // profile, IMDS) finds the region, on the HTTP client given here.
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http.clone());
    if let Some(r) = &config.identity.region {
        loader = loader.region(Region::new(r.0.clone()));
    }
    let sdk = loader.load().await;
    let region = sdk.region().ok_or(AgentError::NoRegion)?.to_string();

    let (need_instance, need_asg) = identity::needs(&config.publish.dimension_sets);
    let imds = identity::imds_client(http);
    let id = identity::resolve(
        &config.identity,
        need_instance,
        need_asg,
        &imds,
        async |instance: &str| {
            let client = aws_sdk_autoscaling::Client::new(&sdk);
            identity::asg_from_api(&client, instance).await
        },
    )
    .await?;
    info!(
        %region,
        instance_id = id.instance_id.as_deref().unwrap_or("-"),
        autoscaling_group = id.autoscaling_group.as_deref().unwrap_or("-"),
        "Identity resolved"
    );
    Ok(Environment {
        publisher: Publisher::new(
            aws_sdk_cloudwatch::Client::new(&sdk),
            config.namespace.0.clone(),
            config.publish.timeout.get(),
        ),
        shape: shape(config, &id),
    })
}

/// The conversion settings for a config and identity.
pub fn shape(config: &Config, id: &Identity) -> Shape {
    Shape {
        dimension_sets: identity::dimension_sets(&config.publish.dimension_sets, id),
        high_resolution: config.publish.high_resolution,
        publish_steal: config.cpu.publish_steal,
        publish_iowait: config.cpu.publish_iowait,
    }
}

fn check_list(config: &Config) -> Vec<(String, bool)> {
    config
        .health
        .iter()
        .map(|c| (c.name.0.clone(), c.publish_latency))
        .collect()
}

/// Sleeps until a wall-clock instant (a period boundary).
fn deadline(at: SystemTime) -> Instant {
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left
}

/// Runs the agent until `shutdown`, then flushes the last window within
/// [`SHUTDOWN_FLUSH`].
pub async fn run(
    config: &Config,
    proc_root: &Path,
    env: Environment,
    mut shutdown: Shutdown,
) -> Result<(), AgentError> {
    let mut cpu = CpuSampler::new(proc_root);
    cpu.sample()?; // baseline; also fails early when /proc is unreadable

    let (probe_tx, mut probe_rx) = mpsc::channel::<(usize, ProbeResult)>(64);
    let mut trackers = Vec::new();
    for (i, check) in config.health.iter().enumerate() {
        trackers.push(CheckTracker::new(
            check.healthy_threshold.0,
            check.unhealthy_threshold.0,
        ));
        tokio::spawn(probe_loop(
            i,
            Prober::new(check.clone()),
            probe_tx.clone(),
            shutdown.clone(),
        ));
    }
    drop(probe_tx);

    let (out_tx, out_rx) = mpsc::unbounded_channel::<Vec<Datum>>();
    let publisher = tokio::spawn(publish_loop(env.publisher, out_rx));

    let interval = config.publish.interval.get();
    let start = SystemTime::now();
    let mut window = Window::new(window::period_start(start, interval), check_list(config));
    let mut close_at =
        (start + FIRST_WINDOW.min(interval)).min(window::period_end(start, interval));
    let mut last_heartbeat: Option<SystemTime> = None;

    let mut cpu_tick = tokio::time::interval_at(
        Instant::now() + config.cpu.interval.get(),
        config.cpu.interval.get(),
    );
    cpu_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut cpu_failing = false;

    info!(
        interval = %config.publish.interval,
        checks = config.health.len(),
        dimension_sets = env.shape.dimension_sets.len(),
        "Sampling"
    );
    loop {
        let close = tokio::time::sleep_until(deadline(close_at));
        tokio::select! {
            _ = cpu_tick.tick() => match cpu.sample() {
                Ok(Some(s)) => {
                    window.add_cpu(&s);
                    if std::mem::take(&mut cpu_failing) {
                        info!("CPU sampling recovered");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    if !std::mem::replace(&mut cpu_failing, true) {
                        warn!(error = %e, "CPU sampling failed");
                    }
                }
            },
            Some((i, r)) = probe_rx.recv() => {
                window.add_probe(i, &r);
                record_probe(&config.health[i].name.0, &mut trackers[i], &r);
            }
            _ = close => {
                let now = SystemTime::now();
                let next_ts = window::period_start(now.max(close_at), interval);
                let closed = close_window(&mut window, next_ts, &trackers, &mut last_heartbeat);
                let _ = out_tx.send(window::to_datums(&closed, &env.shape));
                close_at = window::period_end(next_ts, interval);
            }
            _ = shutdown.wait() => break,
        }
    }

    // Close the partial window and give the publisher a bounded time to send
    // what it holds.
    let ts = window.timestamp;
    let closed = close_window(&mut window, ts, &trackers, &mut last_heartbeat);
    let _ = out_tx.send(window::to_datums(&closed, &env.shape));
    drop(out_tx);
    match tokio::time::timeout(SHUTDOWN_FLUSH, publisher).await {
        Ok(_) => info!("Final window published; exiting"),
        Err(_) => warn!(
            timeout_s = SHUTDOWN_FLUSH.as_secs(),
            "CloudWatch did not take the final window in time; exiting without it"
        ),
    }
    Ok(())
}

/// Closes `window`, replacing it with an empty one stamped `next_ts`. The
/// closed window carries the host counts if it is the first one closed in its
/// period.
fn close_window(
    window: &mut Window,
    next_ts: SystemTime,
    trackers: &[CheckTracker],
    last_heartbeat: &mut Option<SystemTime>,
) -> Window {
    let next = window.next(next_ts);
    let mut closed = std::mem::replace(window, next);
    if *last_heartbeat != Some(closed.timestamp) {
        *last_heartbeat = Some(closed.timestamp);
        closed.host = Some(HostState {
            healthy: trackers.iter().all(|t| !t.state().is_unhealthy()),
        });
    }
    closed
}

fn record_probe(name: &str, tracker: &mut CheckTracker, r: &ProbeResult) {
    let latency_ms = r.latency.as_millis() as u64;
    match &r.outcome {
        Ok(()) => debug!(check = name, latency_ms, "Probe passed"),
        Err(reason) => debug!(check = name, latency_ms, %reason, "Probe failed"),
    }
    match (tracker.record(r.outcome.is_ok()), &r.outcome) {
        (Some(CheckState::Unhealthy), Err(reason)) => {
            warn!(check = name, %reason, "Health check is now UNHEALTHY")
        }
        (Some(CheckState::Healthy), _) => info!(check = name, "Health check is now healthy"),
        _ => {}
    }
}

async fn probe_loop(
    index: usize,
    prober: Prober,
    tx: mpsc::Sender<(usize, ProbeResult)>,
    mut shutdown: Shutdown,
) {
    let every = prober.check().interval.get();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let result = tokio::select! {
            r = prober.probe() => r,
            _ = shutdown.wait() => return,
        };
        if tx.send((index, result)).await.is_err() {
            return;
        }
    }
}

/// Sends closed windows in order; keeps what CloudWatch did not take and
/// retries it with the next window.
async fn publish_loop(publisher: Publisher, mut rx: mpsc::UnboundedReceiver<Vec<Datum>>) {
    let mut pending: VecDeque<Datum> = VecDeque::new();
    let mut failing = false;
    while let Some(datums) = rx.recv().await {
        pending.extend(datums);
        if pending.len() > MAX_PENDING_DATUMS {
            let drop_n = pending.len() - MAX_PENDING_DATUMS;
            pending.drain(..drop_n);
            warn!(dropped = drop_n, "Backlog full; dropped the oldest datums");
        }
        let contiguous = pending.make_contiguous();
        let (sent, result) = publisher.put_all(contiguous).await;
        pending.drain(..sent);
        match result {
            Ok(()) => {
                if std::mem::take(&mut failing) {
                    info!("CloudWatch reachable again; backlog sent");
                }
            }
            Err(PutError::Rejected(reason)) => {
                // The batch at the front was refused as invalid; sending it
                // again cannot succeed.
                let n = publish::batches(pending.make_contiguous())
                    .first()
                    .map_or(0, |b| b.len());
                pending.drain(..n);
                error!(%reason, dropped = n, "CloudWatch rejected datums");
            }
            Err(e @ PutError::Retryable(_)) => {
                if !std::mem::replace(&mut failing, true) {
                    warn!(error = %e, pending = pending.len(), "PutMetricData failed; keeping the data for the next attempt");
                }
            }
        }
    }
}

/// `cwpulse once`: samples for `duration`, probes each check once, and returns
/// the datums a window would produce. Touches no AWS API.
pub async fn once(
    config: &Config,
    proc_root: &Path,
    id: &Identity,
    duration: Duration,
) -> Result<Vec<Datum>, AgentError> {
    let interval = config.publish.interval.get();
    let mut window = Window::new(
        window::period_start(SystemTime::now(), interval),
        check_list(config),
    );
    let mut cpu = CpuSampler::new(proc_root);
    cpu.sample()?;
    let probes = futures_join_all(config.health.iter().cloned().map(Prober::new));
    let sampling = async {
        let step = config.cpu.interval.get().min(duration);
        let end = Instant::now() + duration;
        while Instant::now() < end {
            tokio::time::sleep(step).await;
            if let Some(s) = cpu.sample()? {
                window.add_cpu(&s);
            }
        }
        Ok::<_, AgentError>(())
    };
    let (results, sampled) = tokio::join!(probes, sampling);
    sampled?;
    let mut healthy = true;
    for (i, r) in results.iter().enumerate() {
        window.add_probe(i, r);
        if let Err(reason) = &r.outcome {
            healthy = false;
            info!(check = %config.health[i].name.0, %reason, "Probe failed");
        }
    }
    window.host = Some(HostState { healthy });
    Ok(window::to_datums(&window, &shape(config, id)))
}

/// Probes every check concurrently.
async fn futures_join_all(probers: impl Iterator<Item = Prober>) -> Vec<ProbeResult> {
    let handles: Vec<_> = probers
        .map(|p| tokio::spawn(async move { p.probe().await }))
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("probe task panicked"));
    }
    out
}
