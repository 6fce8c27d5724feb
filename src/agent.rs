//! The daemon: sampling tasks feed one window at a time; closed windows are
//! spooled to disk, and a delivery task sends the spool, so CloudWatch never
//! blocks sampling.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::identity::{self, Identity};
use crate::publish::{Backoff, Publisher};
use crate::sample::cpu::CpuSampler;
use crate::sample::health::{CheckState, CheckTracker, ProbeResult, Prober};
use crate::shutdown::Shutdown;
use crate::spool::Spool;
use crate::window::{self, Datum, HostState, Shape, Window};

/// The first window closes this soon after start (or at the first period
/// boundary, if sooner), so new alarms see data during boot instead of a full
/// interval later.
pub const FIRST_WINDOW: Duration = Duration::from_secs(5);

/// How long after a period boundary its window closes.
const CLOSE_GUARD: Duration = Duration::from_millis(20);

/// How long the final flush may take after SIGTERM; well under the unit's
/// `TimeoutStopSec`.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// First wait after a failed delivery; doubles up to `publish.max_backoff`.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Cpu(#[from] crate::sample::cpu::CpuError),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
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
    let sdk = identity::sdk_config(&config.identity).await;
    let region = sdk.region().ok_or(AgentError::NoRegion)?.to_string();
    let id = identity::lookup(&config.identity, &config.publish.dimension_sets, &sdk).await?;
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

/// Runs the agent until `shutdown`, then flushes within [`SHUTDOWN_FLUSH`].
///
/// Closed windows are written to the spool (durably) by this loop the moment
/// they close; a separate task delivers the spool to CloudWatch, so a slow or
/// absent CloudWatch never delays sampling and a crash loses at most the
/// window being sampled.
pub async fn run(
    config: &Config,
    proc_root: &Path,
    env: Environment,
    mut shutdown: Shutdown,
) -> Result<(), AgentError> {
    let mut cpu = CpuSampler::new(proc_root);
    cpu.sample()?; // baseline; also fails early when /proc is unreadable
    let spool = Arc::new(Spool::open(&config.spool.dir, config.spool.max_bytes)?);
    let (backlog, _) = spool.depth();
    if backlog > 0 {
        info!(
            windows = backlog,
            "Unsent windows found in the spool; sending them first"
        );
    }

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

    let wake = Arc::new(Notify::new());
    let (last_tx, last_rx) = oneshot::channel();
    let delivery = tokio::spawn(deliver_loop(
        spool.clone(),
        env.publisher,
        Backoff::new(BACKOFF_BASE, config.publish.max_backoff.get()),
        wake.clone(),
        last_rx,
    ));
    if backlog > 0 {
        // Send what an earlier run left behind now, not at the first close.
        wake.notify_one();
    }
    let persist = |closed: &Window| {
        if let Err(e) = spool.append(closed.timestamp, &window::to_datums(closed, &env.shape)) {
            error!(error = %e, "Cannot write the window to the spool; it is lost");
        }
        wake.notify_one();
    };

    let interval = config.publish.interval.get();
    let start = SystemTime::now();
    let mut window = Window::new(window::period_start(start, interval), check_list(config));
    let mut close_at =
        (start + FIRST_WINDOW.min(interval)).min(window::period_end(start, interval));
    let mut last_heartbeat: Option<SystemTime> = None;

    // Tick on the wall-clock grid of the CPU interval, so the samples of a
    // window tile exactly its period.
    let cpu_every = config.cpu.interval.get();
    let mut cpu_tick = tokio::time::interval_at(
        deadline(window::period_end(SystemTime::now(), cpu_every)),
        cpu_every,
    );
    cpu_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut cpu_failing = false;

    info!(
        interval = %config.publish.interval,
        checks = config.health.len(),
        dimension_sets = env.shape.dimension_sets.len(),
        spool = %config.spool.dir.display(),
        "Sampling"
    );
    loop {
        // A little after the boundary, so the sample that ends on it is in.
        let close = tokio::time::sleep_until(deadline(close_at) + CLOSE_GUARD);
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
                persist(&close_window(&mut window, next_ts, &trackers, &mut last_heartbeat));
                close_at = window::period_end(next_ts, interval);
            }
            _ = shutdown.wait() => break,
        }
    }

    // Close the partial window, then give delivery a bounded time; what it
    // cannot send stays in the spool for the next start.
    let ts = window.timestamp;
    persist(&close_window(
        &mut window,
        ts,
        &trackers,
        &mut last_heartbeat,
    ));
    let _ = last_tx.send(());
    match tokio::time::timeout(SHUTDOWN_FLUSH, delivery).await {
        Ok(_) if spool.depth().0 == 0 => info!("Final window published; exiting"),
        Ok(_) => warn!(
            unsent_windows = spool.depth().0,
            "Final window kept in the spool (CloudWatch did not take everything); exiting"
        ),
        Err(_) => warn!(
            timeout_s = SHUTDOWN_FLUSH.as_secs(),
            unsent_windows = spool.depth().0,
            "Final window kept in the spool (CloudWatch did not answer in time); exiting"
        ),
    }
    Ok(())
}

/// Closes `window`, replacing it with an empty one stamped `next_ts`. The
/// closed window carries the host counts if it is the first one closed in its
/// period and there are health checks to count: without checks the counts
/// would be a constant 1/0, two metrics per dimension set paid for nothing
/// (CPUUtilization's presence already is the heartbeat).
fn close_window(
    window: &mut Window,
    next_ts: SystemTime,
    trackers: &[CheckTracker],
    last_heartbeat: &mut Option<SystemTime>,
) -> Window {
    let next = window.next(next_ts);
    let mut closed = std::mem::replace(window, next);
    if !trackers.is_empty() && *last_heartbeat != Some(closed.timestamp) {
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

/// Delivers the spool to CloudWatch, oldest first, whenever a window is
/// added or a backoff expires. After `last` fires (shutdown), makes one final
/// pass that ignores the backoff and returns.
async fn deliver_loop(
    spool: Arc<Spool>,
    publisher: Publisher,
    mut backoff: Backoff,
    wake: Arc<Notify>,
    mut last: oneshot::Receiver<()>,
) {
    let mut retry_at: Option<Instant> = None;
    loop {
        let final_pass = tokio::select! {
            biased;
            _ = &mut last => true,
            _ = wake.notified(), if retry_at.is_none() => false,
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => false,
        };
        retry_at = match drain(&spool, &publisher).await {
            Ok(()) => {
                if backoff.failures() > 0 {
                    info!("CloudWatch reachable again; backlog drained");
                }
                backoff.reset();
                None
            }
            Err(error) => {
                let delay = backoff.next_delay();
                let (windows, bytes) = spool.depth();
                if backoff.failures() == 1 {
                    warn!(%error, unsent_windows = windows, unsent_bytes = bytes, "PutMetricData failed; windows stay in the spool");
                } else {
                    debug!(%error, retry_in_ms = delay.as_millis() as u64, "PutMetricData failed again");
                }
                Some(Instant::now() + delay)
            }
        };
        if final_pass {
            return;
        }
    }
}

/// Sends batches until the spool is empty or a call fails.
async fn drain(spool: &Spool, publisher: &Publisher) -> Result<(), String> {
    while let Some(batch) = spool.next_batch() {
        let d = publisher.deliver(&batch.datums).await;
        for (i, reason) in &d.rejected {
            let datum = &batch.datums[*i];
            error!(
                metric = %datum.metric_name,
                timestamp_ms = datum.timestamp,
                %reason,
                "CloudWatch rejected a datum; dropped it"
            );
        }
        spool.settle(&batch, d.done, d.sent, d.rejected.len());
        if let Some(e) = d.error {
            let msg = e.to_string();
            spool.record_error(&msg);
            return Err(msg);
        }
    }
    Ok(())
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
    let probes = probe_all(config.health.iter().cloned().map(Prober::new));
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
    if !config.health.is_empty() {
        window.host = Some(HostState { healthy });
    }
    Ok(window::to_datums(&window, &shape(config, id)))
}

/// Probes every check concurrently.
async fn probe_all(probers: impl Iterator<Item = Prober>) -> Vec<ProbeResult> {
    let handles: Vec<_> = probers
        .map(|p| tokio::spawn(async move { p.probe().await }))
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("probe task panicked"));
    }
    out
}
