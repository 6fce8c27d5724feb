//! Configuration: a TOML file, parsed strictly into a [`Config`] the rest of the
//! agent can trust.
//!
//! Every value that can be wrong is a newtype that validates while it is
//! deserialized, so a bad value is reported with the key path and the line the
//! TOML parser knows. Checks that span several keys run afterwards, on
//! `toml::Spanned` values, so they too can name a line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use toml::Spanned;

/// Where `run` and `check` look when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cwpulse/cwpulse.toml";

/// The exit code for a configuration error (EX_CONFIG from sysexits.h); the
/// systemd unit lists it in `RestartPreventExitStatus=` so a typo does not
/// restart-loop.
pub const EXIT_CONFIG: i32 = 78;

/// The validated configuration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Config {
    pub namespace: Namespace,
    pub cpu: CpuConfig,
    pub health: Vec<HealthCheck>,
    pub publish: PublishConfig,
    pub identity: IdentityOverrides,
    pub spool: SpoolConfig,
    /// Read by `cwpulse alarms` and `cwpulse cost`; the agent ignores it.
    pub alarms: crate::alarms::AlarmsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuConfig {
    /// How often `/proc/stat` is read.
    pub interval: Interval,
    /// Publish `CPUStealPercent` (one more custom metric per dimension set).
    pub publish_steal: bool,
    /// Publish `CPUIOWaitPercent` (one more custom metric per dimension set).
    pub publish_iowait: bool,
}

impl Default for CpuConfig {
    fn default() -> Self {
        Self {
            interval: Interval(Duration::from_secs(1)),
            publish_steal: false,
            publish_iowait: false,
        }
    }
}

/// One `[[health]]` check after validation.
#[derive(Debug, Clone, Serialize)]
pub struct HealthCheck {
    pub name: CheckName,
    pub url: ProbeUrl,
    pub interval: Interval,
    pub timeout: Interval,
    pub status: StatusRange,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    pub unhealthy_threshold: Threshold,
    pub healthy_threshold: Threshold,
    /// Publish `HealthCheckLatency` for this check (off by default: it is one
    /// more custom metric per dimension set).
    pub publish_latency: bool,
    /// Verify the server certificate of an `https` URL (ELB health checks do
    /// not; set false for a self-signed local endpoint).
    pub tls_verify: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthCheck {
    name: Spanned<CheckName>,
    url: ProbeUrl,
    #[serde(default = "default_probe_interval")]
    interval: Spanned<Interval>,
    #[serde(default = "default_probe_timeout")]
    timeout: Spanned<Interval>,
    #[serde(default)]
    status: StatusRange,
    #[serde(default)]
    body_contains: Option<String>,
    #[serde(default)]
    unhealthy_threshold: Threshold,
    #[serde(default)]
    healthy_threshold: Threshold,
    #[serde(default)]
    publish_latency: bool,
    #[serde(default = "yes")]
    tls_verify: bool,
}

fn yes() -> bool {
    true
}

fn default_probe_interval() -> Spanned<Interval> {
    Spanned::new(0..0, Interval(Duration::from_secs(10)))
}

fn default_probe_timeout() -> Spanned<Interval> {
    Spanned::new(0..0, Interval(Duration::from_secs(2)))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Length of a window; one `PutMetricData` round per window.
    pub interval: PublishInterval,
    /// StorageResolution = 1, for alarms with 10 s periods.
    pub high_resolution: bool,
    /// Each inner list is one set of dimensions every metric is published under.
    pub dimension_sets: DimensionSets,
    /// Upper bound for one `PutMetricData` call, SDK retries included.
    pub timeout: Interval,
    /// Longest wait between delivery attempts while CloudWatch fails.
    pub max_backoff: Interval,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            interval: PublishInterval(Interval(Duration::from_secs(60))),
            high_resolution: false,
            // The group set alone: its series are shared by every instance
            // in the group, which keeps the default under $1 an
            // instance-month (per-instance series cost $0.30 per metric per
            // instance). Outside a group the agent falls back to InstanceId.
            dimension_sets: DimensionSets(vec![vec![DimensionKey::AutoScalingGroupName]]),
            timeout: Interval(Duration::from_secs(10)),
            max_backoff: Interval(Duration::from_secs(300)),
        }
    }
}

/// Identity values that replace what IMDS would say, so the agent runs off EC2.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<NonEmpty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling_group: Option<NonEmpty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<NonEmpty>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Where closed windows wait until CloudWatch has acknowledged them.
    pub dir: PathBuf,
    /// Upper bound of the spool on disk, in bytes; oldest windows go first.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/lib/cwpulse/spool"),
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    namespace: Namespace,
    #[serde(default)]
    cpu: CpuConfig,
    #[serde(default)]
    health: Vec<RawHealthCheck>,
    #[serde(default)]
    publish: PublishConfig,
    #[serde(default)]
    identity: IdentityOverrides,
    #[serde(default)]
    spool: SpoolConfig,
    #[serde(default)]
    alarms: crate::alarms::AlarmsConfig,
}

/// A configuration error: the file, the key and, where known, the line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}{}: {}{message}", line.map(|l| format!(":{l}")).unwrap_or_default(), key.as_deref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        key: Option<String>,
        line: Option<usize>,
        message: String,
    },
}

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `--config PATH`: the file must exist.
    Explicit(PathBuf),
    /// No flag: the default path, or built-in defaults when it does not exist.
    Default,
}

/// Loads and validates the configuration. Returns the path actually read
/// (None when running on built-in defaults).
pub fn load(source: &Source) -> Result<(Config, Option<PathBuf>), ConfigError> {
    let path = match source {
        Source::Explicit(p) => p.clone(),
        Source::Default => PathBuf::from(DEFAULT_CONFIG_PATH),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &path).map(|c| (c, Some(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && matches!(source, Source::Default) => {
            Ok((Config::default(), None))
        }
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// Parses a configuration text; `path` only labels errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let invalid = |key: Option<String>, span: Option<std::ops::Range<usize>>, message: String| {
        ConfigError::Invalid {
            path: path.to_owned(),
            key,
            line: span.filter(|s| s.end > 0).map(|s| line_of(text, s.start)),
            message,
        }
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| invalid(None, e.span(), e.message().trim().to_owned()))?;
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        // Spanned<T> shows up as a private field in the path; hide it.
        let key = e
            .path()
            .to_string()
            .replace(".$__serde_spanned_private_value", "");
        let inner = e.into_inner();
        let key = (key != ".").then_some(key);
        invalid(key, inner.span(), inner.message().trim().to_owned())
    })?;

    let mut health = Vec::with_capacity(raw.health.len());
    for (i, c) in raw.health.into_iter().enumerate() {
        if health
            .iter()
            .any(|h: &HealthCheck| h.name == *c.name.get_ref())
        {
            return Err(invalid(
                Some(format!("health[{i}].name")),
                Some(c.name.span()),
                format!("duplicate check name {:?}", c.name.get_ref().0),
            ));
        }
        if c.timeout.get_ref().0 > c.interval.get_ref().0 {
            return Err(invalid(
                Some(format!("health[{i}].timeout")),
                Some(c.timeout.span()),
                format!(
                    "timeout {} is longer than the check interval {}",
                    c.timeout.get_ref(),
                    c.interval.get_ref()
                ),
            ));
        }
        health.push(HealthCheck {
            name: c.name.into_inner(),
            url: c.url,
            interval: c.interval.into_inner(),
            timeout: c.timeout.into_inner(),
            status: c.status,
            body_contains: c.body_contains,
            unhealthy_threshold: c.unhealthy_threshold,
            healthy_threshold: c.healthy_threshold,
            publish_latency: c.publish_latency,
            tls_verify: c.tls_verify,
        });
    }

    let publish = raw.publish;
    if raw.cpu.interval > publish.interval.0 {
        return Err(invalid(
            Some("cpu.interval".into()),
            None,
            format!(
                "{} is longer than publish.interval {}",
                raw.cpu.interval, publish.interval.0
            ),
        ));
    }

    let config = Config {
        namespace: raw.namespace,
        cpu: raw.cpu,
        health,
        publish,
        identity: raw.identity,
        spool: raw.spool,
        alarms: raw.alarms,
    };
    crate::alarms::validate(&config.alarms, &config)
        .map_err(|(key, message)| invalid(Some(key), None, message))?;
    Ok(config)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Config {
    /// The effective configuration, defaults filled in, as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

// ---------------------------------------------------------------------------
// Validating newtypes.

/// A positive duration written as `500ms`, `10s`, `1m`, `1h` (or combined, `1m30s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(pub Duration);

impl Interval {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// Parses `500ms`, `10s`, `1m30s`, `2h`. Zero is refused: every duration in
/// the config is an interval or a timeout, and zero means a busy loop.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"10s\", \"500ms\" or \"1m\"".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration {s:?}: expected a number followed by ms, s, m or h"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "" => {
                return Err(format!(
                    "invalid duration {s:?}: missing unit (ms, s, m or h)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {other:?} (use ms, s, m or h)"
                ));
            }
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    if total.is_zero() {
        return Err(format!("invalid duration {s:?}: must be greater than zero"));
    }
    if total > Duration::from_secs(24 * 3600) {
        return Err(format!("invalid duration {s:?}: longer than 24h"));
    }
    Ok(total)
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Interval;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"10s\", \"500ms\" or \"1m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Interval, E> {
                parse_duration(v).map(Interval).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The publish interval: any duration of at least one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PublishInterval(pub Interval);

impl PublishInterval {
    pub fn get(self) -> Duration {
        self.0.0
    }
}

impl fmt::Display for PublishInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for PublishInterval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let i = Interval::deserialize(d)?;
        if i.0 < Duration::from_secs(1) {
            return Err(serde::de::Error::custom(format!(
                "must be at least 1s, got {i}"
            )));
        }
        Ok(Self(i))
    }
}

/// The dimension sets: at least one, no key twice in a set, no set twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DimensionSets(pub Vec<Vec<DimensionKey>>);

impl std::ops::Deref for DimensionSets {
    type Target = [Vec<DimensionKey>];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'de> Deserialize<'de> for DimensionSets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let sets = Vec::<Vec<DimensionKey>>::deserialize(d)?;
        if sets.is_empty() {
            return Err(D::Error::custom(
                "needs at least one dimension set (use [[]] for one fleet-wide series)",
            ));
        }
        for (i, set) in sets.iter().enumerate() {
            if let Some((j, key)) = set.iter().enumerate().find(|(j, k)| set[..*j].contains(k)) {
                return Err(D::Error::custom(format!(
                    "set {i}: {key} appears twice (position {j})"
                )));
            }
            if sets[..i].contains(set) {
                return Err(D::Error::custom(format!(
                    "set {i} is listed twice (it would double the cost)"
                )));
            }
        }
        Ok(Self(sets))
    }
}

/// The CloudWatch namespace; `AWS/` is reserved for AWS services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Namespace(pub String);

impl Default for Namespace {
    fn default() -> Self {
        Self("CWPulse".into())
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let s = String::deserialize(d)?;
        if s.is_empty() || s.len() > 255 {
            return Err(D::Error::custom("must be 1 to 255 characters"));
        }
        if s.starts_with("AWS/") {
            return Err(D::Error::custom(
                "namespaces starting with \"AWS/\" are reserved for AWS services",
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".-_/#:".contains(*c)))
        {
            return Err(D::Error::custom(format!(
                "character {c:?} is not allowed (letters, digits and . - _ / # : only)"
            )));
        }
        Ok(Self(s))
    }
}

/// A non-empty check name; it becomes the `HealthCheck` dimension value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckName(pub String);

impl<'de> Deserialize<'de> for CheckName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(D::Error::custom("check name must not be empty"));
        }
        // CloudWatch dimension values are at most 1024 characters.
        if s.len() > 255 {
            return Err(D::Error::custom("check name longer than 255 characters"));
        }
        Ok(Self(s))
    }
}

/// A non-empty string (identity overrides).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NonEmpty(pub String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(D::Error::custom("must not be empty"));
        }
        Ok(Self(s))
    }
}

/// An `http://` or `https://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeUrl(pub hyper::Uri);

impl ProbeUrl {
    pub fn is_https(&self) -> bool {
        self.0.scheme_str() == Some("https")
    }
}

impl fmt::Display for ProbeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for ProbeUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let uri: hyper::Uri = s.parse().map_err(|e| format!("invalid URL {s:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            Some(other) => {
                return Err(format!(
                    "invalid URL {s:?}: scheme {other:?} is not http or https"
                ));
            }
            None => return Err(format!("invalid URL {s:?}: needs http:// or https://")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("invalid URL {s:?}: no host"));
        }
        Ok(Self(uri))
    }
}

impl<'de> Deserialize<'de> for ProbeUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for ProbeUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// Accepted HTTP status codes, inclusive: `"200-399"` or `"204"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl Default for StatusRange {
    fn default() -> Self {
        Self {
            low: 200,
            high: 399,
        }
    }
}

impl StatusRange {
    pub fn contains(self, code: u16) -> bool {
        (self.low..=self.high).contains(&code)
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let s = String::deserialize(d)?;
        let parse = |p: &str| -> Result<u16, D::Error> {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| {
                    D::Error::custom(format!(
                        "invalid status {p:?}: expected a code 100-599, or a range like \"200-399\""
                    ))
                })
        };
        let (low, high) = match s.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let c = parse(&s)?;
                (c, c)
            }
        };
        if low > high {
            return Err(D::Error::custom(format!(
                "invalid status range {s:?}: {low} > {high}"
            )));
        }
        Ok(Self { low, high })
    }
}

impl Serialize for StatusRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.low == self.high {
            s.collect_str(&self.low)
        } else {
            s.collect_str(&format_args!("{}-{}", self.low, self.high))
        }
    }
}

/// Consecutive results needed to change a check's state (ELB allows 2 to 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Threshold(pub u32);

impl Default for Threshold {
    fn default() -> Self {
        Self(2)
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let n = i64::deserialize(d)?;
        if !(1..=10).contains(&n) {
            return Err(D::Error::custom(format!(
                "threshold {n} out of range 1 to 10"
            )));
        }
        Ok(Self(n as u32))
    }
}

/// A dimension the agent knows how to fill in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DimensionKey {
    InstanceId,
    AutoScalingGroupName,
}

impl fmt::Display for DimensionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InstanceId => "InstanceId",
            Self::AutoScalingGroupName => "AutoScalingGroupName",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("/etc/cwpulse/cwpulse.toml"))
    }

    fn err(text: &str) -> String {
        p(text).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = p("").unwrap();
        assert_eq!(c.namespace.0, "CWPulse");
        assert_eq!(c.cpu.interval.get(), Duration::from_secs(1));
        assert_eq!(c.publish.interval.get(), Duration::from_secs(60));
        assert!(c.health.is_empty());
        assert_eq!(
            c.publish.dimension_sets.0,
            vec![vec![DimensionKey::AutoScalingGroupName]]
        );
    }

    #[test]
    fn full_example_parses_with_defaults_filled() {
        let c = p(r#"
namespace = "Web"
[cpu]
interval = "500ms"
[[health]]
name = "app"
url = "http://127.0.0.1:8080/actuator/health"
[[health]]
name = "tls"
url = "https://localhost:8443/health"
interval = "5s"
timeout = "1s"
status = "200"
body_contains = "UP"
unhealthy_threshold = 3
[publish]
interval = "10s"
high_resolution = true
dimension_sets = [["InstanceId"], ["AutoScalingGroupName"], []]
[identity]
instance_id = "i-0123456789abcdef0"
autoscaling_group = "web"
region = "us-east-1"
"#)
        .unwrap();
        assert_eq!(c.cpu.interval.get(), Duration::from_millis(500));
        assert_eq!(c.health[0].interval.get(), Duration::from_secs(10));
        assert_eq!(c.health[0].timeout.get(), Duration::from_secs(2));
        assert_eq!(c.health[0].status, StatusRange::default());
        assert_eq!(
            c.health[1].status,
            StatusRange {
                low: 200,
                high: 200
            }
        );
        assert_eq!(c.health[1].unhealthy_threshold, Threshold(3));
        assert!(c.health[1].url.is_https());
        assert_eq!(c.publish.dimension_sets[2], Vec::<DimensionKey>::new());
        // The effective config renders and parses back to the same thing.
        let again = p(&c.to_toml()).unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
    }

    #[test]
    fn unknown_key_names_file_key_and_line() {
        let e = err("[cpu]\nintervall = \"1s\"\n");
        assert!(e.contains("/etc/cwpulse/cwpulse.toml:2"), "{e}");
        assert!(e.contains("intervall"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let cases = [
            ("[cpu]\ninterval = \"10 parsecs\"\n", "cpu.interval", 2),
            ("[cpu]\ninterval = \"0s\"\n", "cpu.interval", 2),
            ("[cpu]\ninterval = 5\n", "cpu.interval", 2),
            (
                "[[health]]\nname = \"\"\nurl = \"http://127.0.0.1/\"\n",
                "health[0].name",
                2,
            ),
            (
                "[[health]]\nname = \"a\"\nurl = \"ftp://x/\"\n",
                "health[0].url",
                3,
            ),
            (
                "[[health]]\nname = \"a\"\nurl = \"http://x/\"\ntimeout = true\n",
                "health[0].timeout",
                4,
            ),
            (
                "[[health]]\nname = \"a\"\nurl = \"http://x/\"\nstatus = \"600\"\n",
                "health[0].status",
                4,
            ),
            ("namespace = \"AWS/EC2\"\n", "namespace", 1),
            ("\n[publish]\ninterval = \"0ms\"\n", "publish.interval", 3),
            (
                "[publish]\ndimension_sets = [[\"Bogus\"]]\n",
                "publish.dimension_sets[0][0]",
                2,
            ),
        ];
        for (text, key, line) in cases {
            let e = err(text);
            assert!(e.contains(&format!("key `{key}`")), "{text:?} -> {e}");
            assert!(
                e.contains(&format!("cwpulse.toml:{line}:")),
                "{text:?} -> {e}"
            );
        }
    }

    #[test]
    fn cross_field_checks_name_the_line() {
        let e = err(
            "[[health]]\nname = \"a\"\nurl = \"http://x/\"\n[[health]]\nname = \"a\"\nurl = \"http://y/\"\n",
        );
        assert!(
            e.contains("cwpulse.toml:5:") && e.contains("duplicate"),
            "{e}"
        );
        let e = err(
            "[[health]]\nname = \"a\"\nurl = \"http://x/\"\ninterval = \"1s\"\ntimeout = \"2s\"\n",
        );
        assert!(e.contains("health[0].timeout") && e.contains(":5:"), "{e}");
        let e = err("[publish]\ninterval = \"500ms\"\n");
        assert!(e.contains("publish.interval"), "{e}");
    }

    #[test]
    fn syntax_error_names_line() {
        let e = err("namespace = \"x\"\n[cpu\n");
        assert!(e.contains("cwpulse.toml:2"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert_eq!(Interval(Duration::from_millis(1500)).to_string(), "1500ms");
        assert_eq!(Interval(Duration::from_secs(120)).to_string(), "2m");
    }
}
