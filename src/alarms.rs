//! `cwpulse alarms plan | apply | delete`: the CloudWatch alarms a config
//! implies, kept in step with what exists.
//!
//! Three rules, each under every dimension set the agent publishes (per
//! Auto Scaling group and, when the per-instance set is published, per
//! instance):
//!
//! - **cpu**: `CPUUtilization` Average above a threshold (50 %).
//! - **unhealthy**: `UnHealthyHostCount` at least 1 (Sum under a shared set,
//!   Maximum per instance); only when the config has health checks, since
//!   without them the count is always 0.
//! - **heartbeat**: `HealthyHostCount` SampleCount below 1, missing data
//!   breaching. Every live agent sends one datum per window whatever the
//!   health, so silence means a dead instance, a dead agent or an agent that
//!   cannot reach CloudWatch, none of which the health route can report.
//!
//! Every alarm notifies the configured SNS topics on ALARM and on OK.
//!
//! Ownership: an alarm is ours when its name starts with
//! `{prefix}/{namespace}/` and its description ends with [`MANAGED_MARKER`].
//! `plan` and `apply` only touch alarms in the scopes of the current identity
//! (its instance, its group), and `delete` removes only owned ones. An alarm
//! with one of our names but without the marker (say, one a CloudFormation
//! stack made) is reported as a conflict and left alone.
//!
//! The building of the alarm set ([`desired`]) and the comparison
//! ([`diff`]) are pure; [`run`] does the I/O.

use std::fmt;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{ComparisonOperator, MetricAlarm, Statistic};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{self, Config, DimensionKey, Interval};
use crate::identity::{self, Identity, IdentityError, error_chain};
use crate::window::{self, Dimension};

/// Ends the description of every alarm `cwpulse alarms` manages; alarms
/// without it are never changed or deleted.
pub const MANAGED_MARKER: &str = "[managed by cwpulse alarms]";

/// CloudWatch limits.
const MAX_ALARM_NAME: usize = 255;
const MAX_DESCRIPTION: usize = 1024;
const MAX_DELETE_BATCH: usize = 100;

// ---------------------------------------------------------------------------
// Configuration: the `[alarms]` table.

/// The `[alarms]` table of the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmsConfig {
    /// SNS topics every alarm notifies (on ALARM, and on OK when `ok_actions`).
    pub sns_topic_arns: Vec<TopicArn>,
    /// First part of every alarm name.
    pub name_prefix: NamePrefix,
    /// Also notify on the way back to OK, so Slack hears "recovered".
    pub ok_actions: bool,
    /// `CPUUtilization` Average above `threshold` percent.
    pub cpu: Rule,
    /// `UnHealthyHostCount` of at least `threshold` hosts (shared sets; one
    /// per instance).
    pub unhealthy: Rule,
    /// Fewer than `threshold` agents reporting (shared sets; one per
    /// instance); missing data breaches.
    pub heartbeat: Rule,
}

impl Default for AlarmsConfig {
    fn default() -> Self {
        Self {
            sns_topic_arns: Vec::new(),
            name_prefix: NamePrefix("cwpulse".into()),
            ok_actions: true,
            cpu: Rule::default(),
            unhealthy: Rule::default(),
            heartbeat: Rule::default(),
        }
    }
}

/// One rule's settings; what is left out takes the rule's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rule {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Default: the publish interval rounded up to a period CloudWatch
    /// accepts, at least 1m (10s with `publish.high_resolution`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<Interval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation_periods: Option<Count>,
    /// Default: `evaluation_periods` (every period must breach).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datapoints_to_alarm: Option<Count>,
}

impl Default for Rule {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: None,
            period: None,
            evaluation_periods: None,
            datapoints_to_alarm: None,
        }
    }
}

/// A count of periods, 1 or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Count(pub u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if !(1..=1440).contains(&n) {
            return Err(serde::de::Error::custom(format!(
                "{n} is out of range 1 to 1440"
            )));
        }
        Ok(Self(n as u32))
    }
}

/// An SNS topic ARN (`arn:PARTITION:sns:REGION:ACCOUNT:NAME`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct TopicArn(pub String);

impl std::str::FromStr for TopicArn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6
            || parts[0] != "arn"
            || parts[2] != "sns"
            || parts[1..].iter().any(|p| p.is_empty())
        {
            return Err(format!(
                "{s:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)"
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl<'de> Deserialize<'de> for TopicArn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The alarm name prefix: letters, digits, `-`, `_` and `.`, so it never
/// collides with the `/` that separates the parts of a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamePrefix(pub String);

impl<'de> Deserialize<'de> for NamePrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.len() > 64 {
            return Err(serde::de::Error::custom("must be 1 to 64 characters"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
        {
            return Err(serde::de::Error::custom(format!(
                "character {c:?} is not allowed (letters, digits, - _ . only)"
            )));
        }
        Ok(Self(s))
    }
}

/// Checks that span `[alarms]` and `[publish]`; returns (key, message).
pub(crate) fn validate(a: &AlarmsConfig, config: &Config) -> Result<(), (String, String)> {
    for kind in Kind::ALL {
        let rule = kind.rule(a);
        let key = |k: &str| format!("alarms.{}.{k}", kind.key());
        let r = kind.resolve(rule, config);
        if let Some(p) = rule.period {
            let d = p.get();
            let secs = d.as_secs();
            if d.subsec_nanos() != 0 || !(secs == 10 || secs == 30 || secs.is_multiple_of(60)) {
                return Err((
                    key("period"),
                    format!(
                        "{p} is not an alarm period CloudWatch accepts (10s, 30s or a multiple of 1m)"
                    ),
                ));
            }
            if secs < 60 && !config.publish.high_resolution {
                return Err((
                    key("period"),
                    format!(
                        "{p} needs publish.high_resolution = true (standard-resolution metrics have one value per minute)"
                    ),
                ));
            }
            if d < config.publish.interval.get() {
                return Err((
                    key("period"),
                    format!(
                        "{p} is shorter than publish.interval {}: periods without a window would read as missing data",
                        config.publish.interval
                    ),
                ));
            }
        }
        if r.datapoints_to_alarm > r.evaluation_periods {
            return Err((
                key("datapoints_to_alarm"),
                format!(
                    "{} is more than evaluation_periods {}",
                    r.datapoints_to_alarm, r.evaluation_periods
                ),
            ));
        }
        let range = u64::from(r.period) * u64::from(r.evaluation_periods);
        let limit = if r.period < 3600 { 86_400 } else { 604_800 };
        if range > limit {
            return Err((
                key("evaluation_periods"),
                format!(
                    "period × evaluation_periods is {range}s; CloudWatch allows at most {limit}s"
                ),
            ));
        }
        if let Some(t) = rule.threshold {
            let ok = match kind {
                Kind::Cpu => t.is_finite() && (0.0..=100.0).contains(&t),
                Kind::Unhealthy | Kind::Heartbeat => t.is_finite() && t >= 1.0 && t.fract() == 0.0,
            };
            if !ok {
                return Err((
                    key("threshold"),
                    match kind {
                        Kind::Cpu => format!("{t} is not a percentage from 0 to 100"),
                        Kind::Unhealthy => format!("{t} is not a whole number of hosts, 1 or more"),
                        Kind::Heartbeat => {
                            format!("{t} is not a whole number of agents, 1 or more")
                        }
                    },
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The alarm set.

/// The three rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cpu,
    Unhealthy,
    Heartbeat,
}

/// A rule with every default filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved {
    pub threshold: f64,
    pub period: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Cpu, Kind::Unhealthy, Kind::Heartbeat];

    /// The last part of the alarm name.
    pub fn suffix(self) -> &'static str {
        match self {
            Kind::Cpu => "cpu-high",
            Kind::Unhealthy => "unhealthy",
            Kind::Heartbeat => "no-heartbeat",
        }
    }

    /// The table under `[alarms]`.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Cpu => "cpu",
            Kind::Unhealthy => "unhealthy",
            Kind::Heartbeat => "heartbeat",
        }
    }

    fn rule(self, a: &AlarmsConfig) -> &Rule {
        match self {
            Kind::Cpu => &a.cpu,
            Kind::Unhealthy => &a.unhealthy,
            Kind::Heartbeat => &a.heartbeat,
        }
    }

    /// The metric the rule watches. The agent sends the host counts only
    /// when it has health checks; without them the presence of
    /// `CPUUtilization` is the heartbeat.
    pub fn metric(self, config: &Config) -> &'static str {
        match self {
            Kind::Cpu => window::CPU_UTILIZATION,
            Kind::Unhealthy => window::UNHEALTHY_HOST_COUNT,
            Kind::Heartbeat if config.health.is_empty() => window::CPU_UTILIZATION,
            Kind::Heartbeat => window::HEALTHY_HOST_COUNT,
        }
    }

    fn comparison(self) -> &'static str {
        match self {
            Kind::Cpu => "GreaterThanThreshold",
            Kind::Unhealthy => "GreaterThanOrEqualToThreshold",
            Kind::Heartbeat => "LessThanThreshold",
        }
    }

    fn treat_missing_data(self) -> &'static str {
        match self {
            // No data is the heartbeat's business; these two stay quiet.
            Kind::Cpu | Kind::Unhealthy => "missing",
            Kind::Heartbeat => "breaching",
        }
    }

    /// The rule with defaults filled in for this config.
    pub fn resolve(self, rule: &Rule, config: &Config) -> Resolved {
        let period = rule
            .period
            .map_or_else(|| default_period(config), |p| p.get().as_secs() as u32);
        let evaluation_periods = rule.evaluation_periods.map_or(
            match self {
                // Three silent periods before a heartbeat alarm: one late
                // PutMetricData (SDK retries, a slow boot) must not page.
                Kind::Heartbeat => 3,
                Kind::Cpu | Kind::Unhealthy => 1,
            },
            |c| c.0,
        );
        Resolved {
            threshold: rule.threshold.unwrap_or(match self {
                Kind::Cpu => 50.0,
                Kind::Unhealthy | Kind::Heartbeat => 1.0,
            }),
            period,
            evaluation_periods,
            datapoints_to_alarm: rule.datapoints_to_alarm.map_or(evaluation_periods, |c| c.0),
        }
    }
}

/// The shortest alarm period that holds a whole publish window: at least a
/// minute for standard-resolution metrics, 10 s for high-resolution ones.
pub fn default_period(config: &Config) -> u32 {
    let interval = config.publish.interval.get();
    let need = interval.as_secs() + u64::from(interval.subsec_nanos() > 0);
    let floor = if config.publish.high_resolution {
        10
    } else {
        60
    };
    let need = need.max(floor);
    let p = if need <= 10 {
        10
    } else if need <= 30 {
        30
    } else {
        need.div_ceil(60) * 60
    };
    p as u32
}

/// Which alarms a command works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every dimension set the agent publishes.
    #[default]
    All,
    /// Only the shared series (sets without `InstanceId`: the group, or the
    /// whole fleet).
    Shared,
    /// Only the per-instance series (sets with `InstanceId`).
    Instance,
}

impl Scope {
    fn includes(self, set: &[DimensionKey]) -> bool {
        let per_instance = set.contains(&DimensionKey::InstanceId);
        match self {
            Scope::All => true,
            Scope::Shared => !per_instance,
            Scope::Instance => per_instance,
        }
    }
}

/// One alarm as `cwpulse alarms` wants it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmSpec {
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub metric: String,
    pub dimensions: Vec<Dimension>,
    pub statistic: String,
    pub period: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub threshold: f64,
    pub comparison: String,
    pub treat_missing_data: String,
    pub actions_enabled: bool,
    pub alarm_actions: Vec<String>,
    pub ok_actions: Vec<String>,
    /// Not part of the alarm: true for a series every instance shares.
    #[serde(skip)]
    pub shared: bool,
}

impl AlarmSpec {
    /// High-resolution alarms (periods under a minute) cost 3× as much.
    pub fn is_high_resolution(&self) -> bool {
        self.period < 60
    }

    /// "CPUUtilization Average > 50 (1 of 1 × 60s)"
    pub fn summary(&self) -> String {
        let op = match self.comparison.as_str() {
            "GreaterThanThreshold" => ">",
            "GreaterThanOrEqualToThreshold" => ">=",
            "LessThanThreshold" => "<",
            "LessThanOrEqualToThreshold" => "<=",
            other => other,
        };
        format!(
            "{} {} {op} {} ({} of {} × {}s{})",
            self.metric,
            self.statistic,
            self.threshold,
            self.datapoints_to_alarm,
            self.evaluation_periods,
            self.period,
            if self.treat_missing_data == "breaching" {
                ", missing = breaching"
            } else {
                ""
            }
        )
    }
}

/// What a dimension set is called in alarm names.
fn scope_label(set: &[DimensionKey]) -> &'static str {
    let inst = set.contains(&DimensionKey::InstanceId);
    let asg = set.contains(&DimensionKey::AutoScalingGroupName);
    match (asg, inst) {
        (false, false) => "fleet",
        (true, false) => "asg",
        (false, true) => "instance",
        (true, true) => "asg-instance",
    }
}

/// The name prefix every alarm for one resolved dimension set starts with,
/// e.g. `cwpulse/CWPulse/asg/web/`.
pub fn scope_prefix(
    prefix: &str,
    namespace: &str,
    set: &[DimensionKey],
    dims: &[Dimension],
) -> String {
    let mut s = format!("{prefix}/{namespace}/{}/", scope_label(set));
    for d in dims {
        s.push_str(&d.value);
        s.push('/');
    }
    s
}

/// Errors while building or applying the alarm set.
#[derive(Debug, thiserror::Error)]
pub enum AlarmsError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(
        "no AWS region: set AWS_REGION, or region under [identity] in the config (on EC2 it comes from instance metadata)"
    )]
    NoRegion,
    #[error(
        "alarm name {name:?} is {len} characters; CloudWatch allows {MAX_ALARM_NAME} (shorten alarms.name_prefix or the namespace)"
    )]
    NameTooLong { name: String, len: usize },
    #[error("CloudWatch {op} failed: {detail}")]
    Api { op: &'static str, detail: String },
}

/// The alarm set for a config and identity. Dimension sets whose values are
/// unknown (not in a group) are skipped, as the agent skips them.
pub fn desired(
    config: &Config,
    alarms: &AlarmsConfig,
    id: &Identity,
    scope: Scope,
) -> Result<Vec<AlarmSpec>, AlarmsError> {
    let ns = &config.namespace.0;
    let prefix = &alarms.name_prefix.0;
    let mut topics: Vec<String> = alarms.sns_topic_arns.iter().map(|t| t.0.clone()).collect();
    topics.sort();
    topics.dedup();
    let interval = config.publish.interval.get();
    let mut out = Vec::new();
    for set in &identity::effective_sets(&config.publish.dimension_sets, id) {
        if !scope.includes(set) {
            continue;
        }
        let Some(dims) = identity::dimension_sets(std::slice::from_ref(set), id).pop() else {
            continue;
        };
        let per_instance = set.contains(&DimensionKey::InstanceId);
        let base = scope_prefix(prefix, ns, set, &dims);
        let what = describe_scope(set, &dims);
        for kind in Kind::ALL {
            let rule = kind.rule(alarms);
            if !rule.enabled || (kind == Kind::Unhealthy && config.health.is_empty()) {
                continue;
            }
            let r = kind.resolve(rule, config);
            // A period may hold several windows of one agent; thresholds
            // that count hosts or agents scale with the windows per period.
            let period_ms = Duration::from_secs(r.period.into()).as_millis();
            let windows = (period_ms / interval.as_millis().max(1)).max(1) as f64;
            // What one live agent adds to the heartbeat's SampleCount in a
            // period: one host-count datum per window, or one CPU sample per
            // cpu.interval when there are no health checks.
            let beats = if config.health.is_empty() {
                (period_ms / config.cpu.interval.get().as_millis().max(1)).max(1) as f64
            } else {
                windows
            };
            let (statistic, threshold) = match (kind, per_instance) {
                (Kind::Cpu, _) => ("Average", r.threshold),
                (Kind::Unhealthy, true) => ("Maximum", 1.0),
                (Kind::Unhealthy, false) => ("Sum", (r.threshold - 1.0) * windows + 1.0),
                (Kind::Heartbeat, true) => ("SampleCount", 1.0),
                (Kind::Heartbeat, false) => ("SampleCount", (r.threshold - 1.0) * beats + 1.0),
            };
            let name = format!("{base}{}", kind.suffix());
            if name.len() > MAX_ALARM_NAME {
                return Err(AlarmsError::NameTooLong {
                    len: name.len(),
                    name,
                });
            }
            out.push(AlarmSpec {
                description: description(kind, &r, per_instance, &what, config),
                name,
                namespace: ns.clone(),
                metric: kind.metric(config).to_owned(),
                dimensions: dims.clone(),
                statistic: statistic.to_owned(),
                period: r.period,
                evaluation_periods: r.evaluation_periods,
                datapoints_to_alarm: r.datapoints_to_alarm,
                threshold,
                comparison: kind.comparison().to_owned(),
                treat_missing_data: kind.treat_missing_data().to_owned(),
                actions_enabled: true,
                alarm_actions: topics.clone(),
                ok_actions: if alarms.ok_actions {
                    topics.clone()
                } else {
                    Vec::new()
                },
                shared: !per_instance,
            });
        }
    }
    Ok(out)
}

/// "Auto Scaling group web", "instance i-0abc".
fn describe_scope(set: &[DimensionKey], dims: &[Dimension]) -> String {
    if dims.is_empty() {
        return "the whole fleet".into();
    }
    let value = |k: DimensionKey| {
        dims.iter()
            .find(|d| d.name == k.to_string())
            .map(|d| d.value.as_str())
            .unwrap_or("?")
    };
    let inst = set.contains(&DimensionKey::InstanceId);
    let asg = set.contains(&DimensionKey::AutoScalingGroupName);
    match (asg, inst) {
        (true, true) => format!(
            "instance {} in Auto Scaling group {}",
            value(DimensionKey::InstanceId),
            value(DimensionKey::AutoScalingGroupName)
        ),
        (true, false) => format!(
            "Auto Scaling group {}",
            value(DimensionKey::AutoScalingGroupName)
        ),
        _ => format!("instance {}", value(DimensionKey::InstanceId)),
    }
}

/// "1 minute", "30 seconds", "3 minutes".
fn human(secs: u64) -> String {
    let (n, unit) = if secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// "for 1 minute" or "in 3 of 5 periods of 1 minute".
fn window_text(r: &Resolved) -> String {
    if r.datapoints_to_alarm == r.evaluation_periods {
        format!(
            "for {}",
            human(u64::from(r.period) * u64::from(r.evaluation_periods))
        )
    } else {
        format!(
            "in {} of {} periods of {}",
            r.datapoints_to_alarm,
            r.evaluation_periods,
            human(r.period.into())
        )
    }
}

/// A description for a human reading Slack: what happened, where, and what
/// to look at first.
fn description(
    kind: Kind,
    r: &Resolved,
    per_instance: bool,
    what: &str,
    config: &Config,
) -> String {
    let ns = &config.namespace.0;
    let checks: Vec<&str> = config.health.iter().map(|c| c.name.0.as_str()).collect();
    let text = match (kind, per_instance) {
        (Kind::Cpu, true) => format!(
            "CPU above {}% on average {} on {what}. Find the busy process (top, the application's own metrics); if this is normal load, the instance is too small.",
            r.threshold,
            window_text(r)
        ),
        (Kind::Cpu, false) => format!(
            "CPU above {}% on average {} across {what}. The group needs more capacity or something is loading every instance; a scaling policy may already be adding instances.",
            r.threshold,
            window_text(r)
        ),
        (Kind::Unhealthy, true) => format!(
            "Health check failing {} on {what} (checks: {}). The application does not answer its health route as expected; see the application's logs and `journalctl -u cwpulse`.",
            window_text(r),
            checks.join(", ")
        ),
        (Kind::Unhealthy, false) => format!(
            "{} or more unhealthy hosts {} in {what} (checks: {}). UnHealthyHostCount per instance shows which; see the application's logs on them.",
            r.threshold,
            window_text(r),
            checks.join(", ")
        ),
        (Kind::Heartbeat, true) => format!(
            "No data from the cwpulse agent on {what} {}: the instance is down or stopped, or the agent is not running or cannot reach CloudWatch. Check the instance state, then `systemctl status cwpulse`. Expected after the instance is terminated: delete its alarms with `cwpulse alarms delete --scope instance`.",
            window_text(r)
        ),
        (Kind::Heartbeat, false) => format!(
            "Fewer than {} cwpulse agent(s) reporting {} in {what}: instances are down or their agents cannot reach CloudWatch. Check the group's instances and their cwpulse service.",
            r.threshold,
            window_text(r)
        ),
    };
    let mut text = format!("{text} Namespace {ns}.");
    // Leave room for the marker, which must survive any truncation.
    let room = MAX_DESCRIPTION - MANAGED_MARKER.len() - 1;
    if text.len() > room {
        let mut cut = room - 3;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{text} {MANAGED_MARKER}")
}

// ---------------------------------------------------------------------------
// Comparing with what exists.

/// An existing alarm, reduced to what `cwpulse alarms` sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Existing {
    pub spec: AlarmSpec,
    /// Other settings that `cwpulse alarms` never sets (a unit, extended
    /// statistics, metric math, insufficient-data actions): any of them
    /// makes an owned alarm differ.
    pub extras: Vec<&'static str>,
}

impl Existing {
    pub fn is_owned(&self) -> bool {
        self.spec.description.ends_with(MANAGED_MARKER)
    }
}

/// Converts what DescribeAlarms returns, with the API's defaults filled in.
pub fn from_sdk(a: &MetricAlarm) -> Existing {
    let evaluation_periods = a.evaluation_periods().unwrap_or(0) as u32;
    let mut alarm_actions = a.alarm_actions().to_vec();
    alarm_actions.sort();
    let mut ok_actions = a.ok_actions().to_vec();
    ok_actions.sort();
    let mut extras = Vec::new();
    if a.unit().is_some() {
        extras.push("unit");
    }
    if a.extended_statistic().is_some() {
        extras.push("extended statistic");
    }
    if !a.metrics().is_empty() {
        extras.push("metric math");
    }
    if !a.insufficient_data_actions().is_empty() {
        extras.push("insufficient-data actions");
    }
    Existing {
        spec: AlarmSpec {
            name: a.alarm_name().unwrap_or_default().to_owned(),
            description: a.alarm_description().unwrap_or_default().to_owned(),
            namespace: a.namespace().unwrap_or_default().to_owned(),
            metric: a.metric_name().unwrap_or_default().to_owned(),
            dimensions: a
                .dimensions()
                .iter()
                .map(|d| Dimension {
                    name: d.name().unwrap_or_default().to_owned(),
                    value: d.value().unwrap_or_default().to_owned(),
                })
                .collect(),
            statistic: a
                .statistic()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            period: a.period().unwrap_or(0) as u32,
            evaluation_periods,
            datapoints_to_alarm: a
                .datapoints_to_alarm()
                .map_or(evaluation_periods, |d| d as u32),
            threshold: a.threshold().unwrap_or(f64::NAN),
            comparison: a
                .comparison_operator()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            treat_missing_data: a.treat_missing_data().unwrap_or("missing").to_owned(),
            actions_enabled: a.actions_enabled().unwrap_or(true),
            alarm_actions,
            ok_actions,
            shared: false,
        },
        extras,
    }
}

/// The settings in which two alarms differ, by name.
pub fn differences(want: &AlarmSpec, have: &Existing) -> Vec<String> {
    let h = &have.spec;
    let mut d = Vec::new();
    let mut cmp = |field: &str, a: String, b: String| {
        if a != b {
            d.push(format!("{field}: {b} -> {a}"));
        }
    };
    cmp("namespace", want.namespace.clone(), h.namespace.clone());
    cmp("metric", want.metric.clone(), h.metric.clone());
    let dims = |v: &[Dimension]| {
        let mut v: Vec<String> = v
            .iter()
            .map(|d| format!("{}={}", d.name, d.value))
            .collect();
        v.sort();
        v.join(",")
    };
    cmp("dimensions", dims(&want.dimensions), dims(&h.dimensions));
    cmp("statistic", want.statistic.clone(), h.statistic.clone());
    cmp("period", want.period.to_string(), h.period.to_string());
    cmp(
        "evaluation_periods",
        want.evaluation_periods.to_string(),
        h.evaluation_periods.to_string(),
    );
    cmp(
        "datapoints_to_alarm",
        want.datapoints_to_alarm.to_string(),
        h.datapoints_to_alarm.to_string(),
    );
    cmp(
        "threshold",
        want.threshold.to_string(),
        h.threshold.to_string(),
    );
    cmp("comparison", want.comparison.clone(), h.comparison.clone());
    cmp(
        "treat_missing_data",
        want.treat_missing_data.clone(),
        h.treat_missing_data.clone(),
    );
    cmp(
        "actions_enabled",
        want.actions_enabled.to_string(),
        h.actions_enabled.to_string(),
    );
    cmp(
        "alarm_actions",
        format!("{:?}", want.alarm_actions),
        format!("{:?}", h.alarm_actions),
    );
    cmp(
        "ok_actions",
        format!("{:?}", want.ok_actions),
        format!("{:?}", h.ok_actions),
    );
    if want.description != h.description {
        d.push("description".into());
    }
    for e in &have.extras {
        d.push(format!("{e} (not set by cwpulse)"));
    }
    d
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Create(AlarmSpec),
    Update {
        spec: AlarmSpec,
        fields: Vec<String>,
    },
    Unchanged(AlarmSpec),
    Delete(String),
    /// An alarm with one of our names that we do not own; never touched.
    Conflict {
        name: String,
        fields: Vec<String>,
    },
}

impl Change {
    pub fn name(&self) -> &str {
        match self {
            Change::Create(s) | Change::Update { spec: s, .. } | Change::Unchanged(s) => &s.name,
            Change::Delete(n) | Change::Conflict { name: n, .. } => n,
        }
    }

    /// Whether `apply` would call CloudWatch for it.
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Change::Create(_) | Change::Update { .. } | Change::Delete(_)
        )
    }
}

/// The plan: `existing` are the alarms found under the scope prefixes of
/// `desired`'s dimension sets (owned or not).
pub fn diff(desired: &[AlarmSpec], existing: &[Existing]) -> Vec<Change> {
    let mut out = Vec::new();
    for want in desired {
        match existing.iter().find(|e| e.spec.name == want.name) {
            None => out.push(Change::Create(want.clone())),
            Some(have) if !have.is_owned() => out.push(Change::Conflict {
                name: want.name.clone(),
                fields: differences(want, have)
                    .into_iter()
                    .filter(|f| f != "description")
                    .collect(),
            }),
            Some(have) => {
                let fields = differences(want, have);
                if fields.is_empty() {
                    out.push(Change::Unchanged(want.clone()));
                } else {
                    out.push(Change::Update {
                        spec: want.clone(),
                        fields,
                    });
                }
            }
        }
    }
    for have in existing {
        if have.is_owned() && !desired.iter().any(|w| w.name == have.spec.name) {
            out.push(Change::Delete(have.spec.name.clone()));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Running against CloudWatch.

/// The three subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Plan,
    Apply,
    Delete,
}

/// Command-line settings beside the config.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Added to `[alarms] sns_topic_arns`.
    pub sns_topic_arns: Vec<TopicArn>,
    pub autoscaling_group: Option<String>,
    pub instance_id: Option<String>,
    pub scope: Scope,
}

/// What a run found and did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub region: String,
    pub identity: Identity,
    pub changes: Vec<Change>,
    pub topics: Vec<String>,
}

/// Resolves the identity and region, compares, and for `apply` and `delete`
/// makes the changes. Nothing is changed by `plan`.
pub async fn run(
    action: Action,
    config: &Config,
    alarms: &AlarmsConfig,
    opts: &Options,
) -> Result<Outcome, AlarmsError> {
    let mut alarms = alarms.clone();
    alarms
        .sns_topic_arns
        .extend(opts.sns_topic_arns.iter().cloned());
    alarms.sns_topic_arns.sort();
    alarms.sns_topic_arns.dedup();

    let sdk = identity::sdk_config(&config.identity).await;
    let region = sdk.region().ok_or(AlarmsError::NoRegion)?.to_string();

    // Command-line identity first, then the config's, then IMDS.
    let mut overrides = config.identity.clone();
    if let Some(a) = &opts.autoscaling_group {
        overrides.autoscaling_group = Some(config::NonEmpty(a.clone()));
    }
    if let Some(i) = &opts.instance_id {
        overrides.instance_id = Some(config::NonEmpty(i.clone()));
    }
    let sets: Vec<Vec<DimensionKey>> = config
        .publish
        .dimension_sets
        .iter()
        .filter(|s| opts.scope.includes(s))
        .cloned()
        .collect();
    let id = identity::lookup(&overrides, &sets, &sdk).await?;

    let cw = aws_sdk_cloudwatch::Client::new(&sdk);
    let want = match action {
        Action::Delete => Vec::new(),
        Action::Plan | Action::Apply => desired(config, &alarms, &id, opts.scope)?,
    };
    let mut existing = Vec::new();
    for set in &identity::effective_sets(&sets, &id) {
        if let Some(dims) = identity::dimension_sets(std::slice::from_ref(set), &id).pop() {
            let prefix = scope_prefix(&alarms.name_prefix.0, &config.namespace.0, set, &dims);
            existing.extend(describe(&cw, &prefix).await?);
        }
    }
    let changes = diff(&want, &existing);
    if action != Action::Plan {
        execute(&cw, &changes).await?;
    }
    Ok(Outcome {
        region,
        identity: id,
        changes,
        topics: alarms.sns_topic_arns.iter().map(|t| t.0.clone()).collect(),
    })
}

/// Every metric alarm whose name starts with `prefix`.
async fn describe(
    cw: &aws_sdk_cloudwatch::Client,
    prefix: &str,
) -> Result<Vec<Existing>, AlarmsError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = cw
            .describe_alarms()
            .alarm_name_prefix(prefix)
            .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AlarmsError::Api {
                op: "DescribeAlarms",
                detail: error_chain(&e),
            })?;
        // DescribeAlarms matches the prefix; the `/` that ends it keeps
        // group "web" from matching group "web-2".
        out.extend(
            page.metric_alarms()
                .iter()
                .filter(|a| a.alarm_name().is_some_and(|n| n.starts_with(prefix)))
                .map(from_sdk),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(out);
        }
    }
}

async fn execute(cw: &aws_sdk_cloudwatch::Client, changes: &[Change]) -> Result<(), AlarmsError> {
    for c in changes {
        if let Change::Create(s) | Change::Update { spec: s, .. } = c {
            put(cw, s).await?;
            tracing::debug!(alarm = %s.name, "Alarm written");
        }
    }
    let doomed: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Delete(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    for batch in doomed.chunks(MAX_DELETE_BATCH) {
        cw.delete_alarms()
            .set_alarm_names(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| AlarmsError::Api {
                op: "DeleteAlarms",
                detail: error_chain(&e),
            })?;
        tracing::debug!(count = batch.len(), "Alarms deleted");
    }
    Ok(())
}

async fn put(cw: &aws_sdk_cloudwatch::Client, s: &AlarmSpec) -> Result<(), AlarmsError> {
    let dims = s
        .dimensions
        .iter()
        .map(|d| {
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name(&d.name)
                .value(&d.value)
                .build()
        })
        .collect();
    cw.put_metric_alarm()
        .alarm_name(&s.name)
        .alarm_description(&s.description)
        .namespace(&s.namespace)
        .metric_name(&s.metric)
        .set_dimensions(Some(dims))
        .statistic(Statistic::from(s.statistic.as_str()))
        .period(s.period as i32)
        .evaluation_periods(s.evaluation_periods as i32)
        .datapoints_to_alarm(s.datapoints_to_alarm as i32)
        .threshold(s.threshold)
        .comparison_operator(ComparisonOperator::from(s.comparison.as_str()))
        .treat_missing_data(&s.treat_missing_data)
        .actions_enabled(s.actions_enabled)
        .set_alarm_actions(Some(s.alarm_actions.clone()))
        .set_ok_actions(Some(s.ok_actions.clone()))
        .send()
        .await
        .map_err(|e| AlarmsError::Api {
            op: "PutMetricAlarm",
            detail: format!("{}: {}", s.name, error_chain(&e)),
        })?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Output.

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::All => "all",
            Scope::Shared => "asg",
            Scope::Instance => "instance",
        })
    }
}

/// The report `plan`, `apply` and `delete` print.
pub fn render(action: Action, o: &Outcome) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let done = action != Action::Plan;
    let _ = writeln!(
        s,
        "# region {}, instance {}, Auto Scaling group {}",
        o.region,
        o.identity.instance_id.as_deref().unwrap_or("-"),
        o.identity.autoscaling_group.as_deref().unwrap_or("-"),
    );
    let width = o.changes.iter().map(|c| c.name().len()).max().unwrap_or(0);
    let mut counts = [0usize; 5];
    for c in &o.changes {
        let (i, mark, verb, detail) = match c {
            Change::Create(spec) => (0, '+', ["create", "created"], spec.summary()),
            Change::Update { spec, fields } => (
                1,
                '~',
                ["update", "updated"],
                format!("{}\n      {}", spec.summary(), fields.join("\n      ")),
            ),
            Change::Delete(_) => (2, '-', ["delete", "deleted"], String::new()),
            Change::Unchanged(spec) => (3, '=', ["unchanged"; 2], spec.summary()),
            Change::Conflict { fields, .. } => (
                4,
                '!',
                ["conflict"; 2],
                format!(
                    "not managed by cwpulse alarms (no {MANAGED_MARKER:?} in its description): left alone; {}",
                    if fields.is_empty() {
                        "its definition matches".to_owned()
                    } else {
                        format!("it differs in {}", fields.join("; "))
                    }
                ),
            ),
        };
        counts[i] += 1;
        let verb = verb[usize::from(done)];
        let _ = writeln!(s, "{mark} {verb:<9} {:<width$}  {detail}", c.name());
    }
    if action != Action::Delete {
        if o.topics.is_empty() {
            let _ = writeln!(
                s,
                "# no SNS topic: alarms change state but notify no one (--sns-topic-arn or [alarms] sns_topic_arns)"
            );
        } else {
            let _ = writeln!(s, "# notifies: {}", o.topics.join(", "));
        }
    }
    let [create, update, delete, same, conflict] = counts;
    let conflicts = if conflict > 0 {
        format!(", {conflict} conflicting")
    } else {
        String::new()
    };
    let _ = match action {
        Action::Plan => writeln!(
            s,
            "Plan: {create} to create, {update} to update, {delete} to delete, {same} unchanged{conflicts}."
        ),
        Action::Apply => writeln!(
            s,
            "Applied: {create} created, {update} updated, {delete} deleted, {same} unchanged{conflicts}."
        ),
        Action::Delete => writeln!(s, "Deleted: {delete} alarms."),
    };
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// These tests exercise both kinds of set: unless the text says
    /// otherwise, publish per instance and per group.
    fn cfg(text: &str) -> (Config, AlarmsConfig) {
        let mut c = config::parse(text, Path::new("/etc/cwpulse/cwpulse.toml")).unwrap();
        if !text.contains("dimension_sets") {
            c.publish.dimension_sets = config::DimensionSets(vec![
                vec![DimensionKey::InstanceId],
                vec![DimensionKey::AutoScalingGroupName],
            ]);
        }
        let a = c.alarms.clone();
        (c, a)
    }

    fn err(text: &str) -> String {
        config::parse(text, Path::new("/etc/cwpulse/cwpulse.toml"))
            .unwrap_err()
            .to_string()
    }

    fn id() -> Identity {
        Identity {
            instance_id: Some("i-1".into()),
            autoscaling_group: Some("web".into()),
        }
    }

    const HEALTH: &str = "[[health]]\nname = \"app\"\nurl = \"http://127.0.0.1:8080/health\"\n";

    #[test]
    fn default_config_alarms() {
        let (c, a) = cfg("");
        let set = desired(&c, &a, &id(), Scope::All).unwrap();
        let names: Vec<&str> = set.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cwpulse/CWPulse/instance/i-1/cpu-high",
                "cwpulse/CWPulse/instance/i-1/no-heartbeat",
                "cwpulse/CWPulse/asg/web/cpu-high",
                "cwpulse/CWPulse/asg/web/no-heartbeat",
            ]
        );
        let cpu = &set[2];
        assert_eq!(
            (
                cpu.statistic.as_str(),
                cpu.threshold,
                cpu.period,
                cpu.evaluation_periods
            ),
            ("Average", 50.0, 60, 1)
        );
        assert_eq!(cpu.comparison, "GreaterThanThreshold");
        assert_eq!(cpu.dimensions[0].name, "AutoScalingGroupName");
        let hb = &set[3];
        // Without health checks there are no host counts: CPU samples are
        // the heartbeat.
        assert_eq!(hb.metric, "CPUUtilization");
        assert_eq!(
            (
                hb.statistic.as_str(),
                hb.threshold,
                hb.treat_missing_data.as_str()
            ),
            ("SampleCount", 1.0, "breaching")
        );
        assert_eq!((hb.evaluation_periods, hb.datapoints_to_alarm), (3, 3));
        for s in &set {
            assert!(s.description.ends_with(MANAGED_MARKER), "{}", s.description);
            assert!(s.description.len() <= MAX_DESCRIPTION);
            assert!(!s.is_high_resolution());
        }
        assert!(
            set[0].description.contains("instance i-1"),
            "{}",
            set[0].description
        );
        assert!(set[2].description.contains("Auto Scaling group web"));
    }

    #[test]
    fn health_checks_add_unhealthy_alarms_with_the_right_statistic() {
        let (c, a) = cfg(HEALTH);
        let set = desired(&c, &a, &id(), Scope::All).unwrap();
        let unhealthy: Vec<&AlarmSpec> = set
            .iter()
            .filter(|s| s.name.ends_with("/unhealthy"))
            .collect();
        assert_eq!(unhealthy.len(), 2);
        assert_eq!(unhealthy[0].statistic, "Maximum");
        assert_eq!(unhealthy[1].statistic, "Sum");
        assert_eq!(unhealthy[1].comparison, "GreaterThanOrEqualToThreshold");
        assert_eq!(unhealthy[1].threshold, 1.0);
        assert!(unhealthy[1].description.contains("app"));
    }

    #[test]
    fn heartbeat_counts_host_datums_with_checks_and_cpu_samples_without() {
        let (c, a) = cfg(&format!("{HEALTH}[alarms.heartbeat]\nthreshold = 2\n"));
        let set = desired(&c, &a, &id(), Scope::Shared).unwrap();
        let hb = set
            .iter()
            .find(|s| s.name.ends_with("no-heartbeat"))
            .unwrap();
        assert_eq!(
            (hb.metric.as_str(), hb.threshold),
            ("HealthyHostCount", 2.0)
        );
        // 1 s CPU samples in 60 s periods: one agent is 60 samples.
        let (c, a) = cfg("[alarms.heartbeat]\nthreshold = 2\n");
        let set = desired(&c, &a, &id(), Scope::All).unwrap();
        let hb: Vec<&AlarmSpec> = set
            .iter()
            .filter(|s| s.name.ends_with("no-heartbeat"))
            .collect();
        assert_eq!(
            (hb[0].metric.as_str(), hb[0].threshold),
            ("CPUUtilization", 1.0)
        );
        assert_eq!(
            (hb[1].metric.as_str(), hb[1].threshold),
            ("CPUUtilization", 61.0)
        );
    }

    #[test]
    fn high_resolution_gives_ten_second_periods() {
        let (c, a) = cfg("[publish]\ninterval = \"10s\"\nhigh_resolution = true\n");
        let set = desired(&c, &a, &id(), Scope::All).unwrap();
        assert!(set.iter().all(|s| s.period == 10 && s.is_high_resolution()));
        let (c, _) = cfg("[publish]\ninterval = \"2s\"\nhigh_resolution = true\n");
        assert_eq!(default_period(&c), 10);
        let (c, _) = cfg("[publish]\ninterval = \"45s\"\nhigh_resolution = true\n");
        assert_eq!(default_period(&c), 60);
        let (c, _) = cfg("[publish]\ninterval = \"90s\"\n");
        assert_eq!(default_period(&c), 120);
        let (c, _) = cfg("[publish]\ninterval = \"20s\"\n");
        assert_eq!(default_period(&c), 60);
    }

    #[test]
    fn shared_thresholds_scale_with_windows_per_period() {
        // 10 s windows in 60 s periods: each agent sends 6 heartbeats.
        let (c, a) = cfg(&format!(
            "{HEALTH}[publish]\ninterval = \"10s\"\n[alarms.heartbeat]\nthreshold = 3\n[alarms.unhealthy]\nthreshold = 2\n"
        ));
        let set = desired(&c, &a, &id(), Scope::Shared).unwrap();
        let hb = set
            .iter()
            .find(|s| s.name.ends_with("no-heartbeat"))
            .unwrap();
        assert_eq!(hb.threshold, 13.0);
        let un = set.iter().find(|s| s.name.ends_with("unhealthy")).unwrap();
        assert_eq!(un.threshold, 7.0);
        // Per instance, one host is the unit whatever the threshold.
        let set = desired(&c, &a, &id(), Scope::Instance).unwrap();
        assert!(
            set.iter()
                .filter(|s| !s.name.ends_with("cpu-high"))
                .all(|s| s.threshold == 1.0)
        );
    }

    #[test]
    fn scope_and_unknown_group() {
        let (c, a) = cfg("");
        let lone = Identity {
            instance_id: Some("i-1".into()),
            autoscaling_group: None,
        };
        let set = desired(&c, &a, &lone, Scope::All).unwrap();
        assert!(set.iter().all(|s| s.name.contains("/instance/i-1/")));
        assert!(
            desired(&c, &a, &id(), Scope::Shared)
                .unwrap()
                .iter()
                .all(|s| s.shared)
        );
        let (c, a) = cfg("[publish]\ndimension_sets = [[]]\n");
        let set = desired(&c, &a, &lone, Scope::All).unwrap();
        assert_eq!(set[0].name, "cwpulse/CWPulse/fleet/cpu-high");
        assert!(set[0].dimensions.is_empty());
    }

    #[test]
    fn alarms_table_settings() {
        let (c, a) = cfg(
            "namespace = \"Web\"\n[alarms]\nsns_topic_arns = [\"arn:aws:sns:us-east-1:123456789012:b\", \"arn:aws:sns:us-east-1:123456789012:a\"]\nname_prefix = \"team-x\"\nok_actions = false\n[alarms.cpu]\nthreshold = 80\nevaluation_periods = 5\ndatapoints_to_alarm = 3\nperiod = \"2m\"\n[alarms.heartbeat]\nenabled = false\n[publish]\ninterval = \"60s\"\n",
        );
        assert_eq!(c.namespace.0, "Web");
        let set = desired(&c, &a, &id(), Scope::All).unwrap();
        assert_eq!(set.len(), 2);
        let cpu = &set[0];
        assert_eq!(cpu.name, "team-x/Web/instance/i-1/cpu-high");
        assert_eq!(
            (
                cpu.threshold,
                cpu.period,
                cpu.evaluation_periods,
                cpu.datapoints_to_alarm
            ),
            (80.0, 120, 5, 3)
        );
        assert_eq!(
            cpu.alarm_actions,
            [
                "arn:aws:sns:us-east-1:123456789012:a",
                "arn:aws:sns:us-east-1:123456789012:b"
            ]
        );
        assert!(cpu.ok_actions.is_empty());
        assert!(
            cpu.description.contains("in 3 of 5 periods of 2 minutes"),
            "{}",
            cpu.description
        );
    }

    #[test]
    fn bad_alarms_settings_name_the_key() {
        let cases = [
            ("[alarms]\nthreshold = 1\n", "alarms.threshold", Some(2)),
            (
                "[alarms.cpu]\nthreshold = 150\n",
                "alarms.cpu.threshold",
                None,
            ),
            (
                "[alarms.cpu]\nperiod = \"45s\"\n",
                "alarms.cpu.period",
                None,
            ),
            (
                "[alarms.cpu]\nperiod = \"10s\"\n",
                "alarms.cpu.period",
                None,
            ),
            (
                "[publish]\ninterval = \"2m\"\n[alarms.heartbeat]\nperiod = \"1m\"\n",
                "alarms.heartbeat.period",
                None,
            ),
            (
                "[alarms.unhealthy]\nevaluation_periods = 2\ndatapoints_to_alarm = 3\n",
                "alarms.unhealthy.datapoints_to_alarm",
                None,
            ),
            (
                "[alarms.unhealthy]\nthreshold = 0.5\n",
                "alarms.unhealthy.threshold",
                None,
            ),
            (
                "[alarms.cpu]\nevaluation_periods = 0\n",
                "alarms.cpu.evaluation_periods",
                Some(2),
            ),
            (
                "[alarms.cpu]\nevaluation_periods = 1441\n",
                "alarms.cpu.evaluation_periods",
                Some(2),
            ),
            (
                "[alarms.cpu]\nperiod = \"1h\"\nevaluation_periods = 200\n",
                "alarms.cpu.evaluation_periods",
                None,
            ),
            (
                "[alarms]\nsns_topic_arns = [\"arn:aws:sqs:us-east-1:1:q\"]\n",
                "alarms.sns_topic_arns[0]",
                Some(2),
            ),
            (
                "[alarms]\nname_prefix = \"a/b\"\n",
                "alarms.name_prefix",
                Some(2),
            ),
        ];
        for (text, key, line) in cases {
            let e = err(text);
            assert!(e.contains(&format!("key `{key}`")), "{text:?} -> {e}");
            if let Some(l) = line {
                assert!(e.contains(&format!("cwpulse.toml:{l}:")), "{text:?} -> {e}");
            }
        }
        // The agent's own errors keep their line numbers around [alarms].
        let e = err("[alarms]\nok_actions = true\n\n[cpu]\nintervall = \"1s\"\n");
        assert!(
            e.contains("cwpulse.toml:5:") && e.contains("intervall"),
            "{e}"
        );
    }

    fn existing(spec: &AlarmSpec) -> Existing {
        Existing {
            spec: spec.clone(),
            extras: Vec::new(),
        }
    }

    #[test]
    fn diff_creates_updates_keeps_deletes_and_refuses_foreign_alarms() {
        let (c, a) = cfg("");
        let want = desired(&c, &a, &id(), Scope::All).unwrap();
        // Nothing exists: everything is created.
        let plan = diff(&want, &[]);
        assert!(plan.iter().all(|c| matches!(c, Change::Create(_))));

        // Everything exists as wanted: nothing changes.
        let same: Vec<Existing> = want.iter().map(existing).collect();
        let plan = diff(&want, &same);
        assert!(
            plan.iter().all(|c| matches!(c, Change::Unchanged(_))),
            "{plan:?}"
        );
        assert!(!plan.iter().any(Change::is_change));

        // A changed threshold, an orphan we own, an alarm we do not own.
        let mut have = same.clone();
        have[0].spec.threshold = 70.0;
        let mut orphan = existing(&want[0]);
        orphan.spec.name = "cwpulse/CWPulse/instance/i-1/unhealthy".into();
        have.push(orphan);
        have[3].spec.description = "made by hand".into();
        let plan = diff(&want, &have);
        match &plan[0] {
            Change::Update { fields, .. } => assert_eq!(fields, &["threshold: 70 -> 50"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(&plan[3], Change::Conflict { fields, .. } if fields.is_empty()));
        assert_eq!(
            plan[4],
            Change::Delete("cwpulse/CWPulse/instance/i-1/unhealthy".into())
        );

        // Delete: nothing wanted, only owned alarms go.
        let plan = diff(&[], &have);
        let deleted: Vec<&str> = plan.iter().map(Change::name).collect();
        assert_eq!(deleted.len(), 4);
        assert!(!deleted.contains(&want[3].name.as_str()));
    }

    #[test]
    fn sdk_defaults_compare_equal() {
        let (c, a) = cfg("");
        let want = &desired(&c, &a, &id(), Scope::All).unwrap()[0];
        // What an API returns when DatapointsToAlarm and TreatMissingData
        // were left at their defaults, and actions come back in any order.
        let sdk = MetricAlarm::builder()
            .alarm_name(&want.name)
            .alarm_description(&want.description)
            .namespace(&want.namespace)
            .metric_name(&want.metric)
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name("InstanceId")
                    .value("i-1")
                    .build(),
            )
            .statistic(Statistic::Average)
            .period(60)
            .evaluation_periods(1)
            .threshold(50.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .build();
        let have = from_sdk(&sdk);
        assert!(have.is_owned());
        assert_eq!(differences(want, &have), Vec::<String>::new());
    }

    #[test]
    fn render_summarises() {
        let (c, a) = cfg("");
        let want = desired(&c, &a, &id(), Scope::All).unwrap();
        let o = Outcome {
            region: "us-east-1".into(),
            identity: id(),
            changes: diff(&want, &[]),
            topics: vec![],
        };
        let text = render(Action::Plan, &o);
        assert!(text.contains("+ create    cwpulse/CWPulse/asg/web/cpu-high           CPUUtilization Average > 50 (1 of 1 × 60s)"), "{text}");
        assert!(
            text.contains("Plan: 4 to create, 0 to update, 0 to delete, 0 unchanged."),
            "{text}"
        );
        assert!(text.contains("no SNS topic"));
        let text = render(Action::Apply, &o);
        assert!(
            text.contains("Applied: 4 created, 0 updated, 0 deleted, 0 unchanged."),
            "{text}"
        );
    }
}
