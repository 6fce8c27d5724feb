//! Windows: samples aggregated over one publish interval, and the pure
//! conversion of a closed window into CloudWatch datums.
//!
//! Windows are aligned to multiples of the publish interval since the Unix
//! epoch and stamped with the start of their period, so one window maps onto
//! exactly one CloudWatch period. That is what makes `HealthyHostCount` summed
//! under `AutoScalingGroupName` equal the number of healthy hosts: each agent
//! contributes one datum per period.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::sample::cpu::CpuSample;
use crate::sample::health::ProbeResult;

/// A statistic set over the samples of one window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// Adds one value; non-finite values are ignored so NaN can never reach
    /// CloudWatch (which rejects the whole request for it).
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.count == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        self.sum += v;
    }

    fn is_publishable(&self) -> bool {
        self.count > 0 && self.sum.is_finite() && self.min.is_finite() && self.max.is_finite()
    }
}

/// One check's part of a window.
#[derive(Debug, Clone)]
pub struct CheckWindow {
    pub name: String,
    /// 1 per failed probe, 0 per passed probe.
    pub failed: Stats,
    pub latency_ms: Stats,
    pub publish_latency: bool,
}

/// The host state a window reports, taken at the window's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostState {
    pub healthy: bool,
}

/// Samples of one window.
#[derive(Debug, Clone)]
pub struct Window {
    /// Start of the CloudWatch period this window belongs to.
    pub timestamp: SystemTime,
    pub cpu: Stats,
    pub steal: Stats,
    pub iowait: Stats,
    pub checks: Vec<CheckWindow>,
    /// The host counts, present on exactly one window per period (the first
    /// one closed in it), so a period never holds two heartbeats.
    pub host: Option<HostState>,
}

impl Window {
    /// An empty window for the period starting at `timestamp`.
    pub fn new(timestamp: SystemTime, checks: impl IntoIterator<Item = (String, bool)>) -> Self {
        Self {
            timestamp,
            cpu: Stats::default(),
            steal: Stats::default(),
            iowait: Stats::default(),
            checks: checks
                .into_iter()
                .map(|(name, publish_latency)| CheckWindow {
                    name,
                    failed: Stats::default(),
                    latency_ms: Stats::default(),
                    publish_latency,
                })
                .collect(),
            host: None,
        }
    }

    /// A fresh window for another period, with the same checks.
    pub fn next(&self, timestamp: SystemTime) -> Self {
        Self::new(
            timestamp,
            self.checks
                .iter()
                .map(|c| (c.name.clone(), c.publish_latency)),
        )
    }

    pub fn add_cpu(&mut self, s: &CpuSample) {
        self.cpu.add(s.busy);
        self.steal.add(s.steal);
        self.iowait.add(s.iowait);
    }

    pub fn add_probe(&mut self, check: usize, r: &ProbeResult) {
        if let Some(c) = self.checks.get_mut(check) {
            c.failed.add(if r.outcome.is_ok() { 0.0 } else { 1.0 });
            c.latency_ms.add(r.latency.as_secs_f64() * 1000.0);
        }
    }
}

/// Start of the period that contains `t`.
pub fn period_start(t: SystemTime, interval: Duration) -> SystemTime {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let step = interval.as_millis().max(1);
    let start = since.as_millis() / step * step;
    UNIX_EPOCH + Duration::from_millis(start as u64)
}

/// End of the period that contains `t` (the next boundary).
pub fn period_end(t: SystemTime, interval: Duration) -> SystemTime {
    period_start(t, interval) + interval
}

/// One CloudWatch dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dimension {
    pub name: String,
    pub value: String,
}

/// What the conversion needs besides the window.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Dimension sets with their values resolved (sets with unknown values
    /// already removed).
    pub dimension_sets: Vec<Vec<Dimension>>,
    pub high_resolution: bool,
    pub publish_steal: bool,
    pub publish_iowait: bool,
}

/// A CloudWatch statistic set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatisticValues {
    pub sample_count: f64,
    pub sum: f64,
    pub minimum: f64,
    pub maximum: f64,
}

/// One datum, shaped like the `MetricDatum` of the CloudWatch API (and of
/// `aws cloudwatch put-metric-data --metric-data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Datum {
    pub metric_name: String,
    pub dimensions: Vec<Dimension>,
    /// Milliseconds since the Unix epoch.
    #[serde(with = "iso8601")]
    pub timestamp: i64,
    pub unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic_values: Option<StatisticValues>,
    pub storage_resolution: i32,
}

impl Datum {
    /// True when every number is finite and a statistic set is consistent.
    pub fn is_valid(&self) -> bool {
        let v_ok = self.value.is_none_or(f64::is_finite);
        let s_ok = self.statistic_values.is_none_or(|s| {
            s.sample_count > 0.0
                && [s.sample_count, s.sum, s.minimum, s.maximum]
                    .iter()
                    .all(|x| x.is_finite())
                && s.minimum <= s.maximum
        });
        v_ok && s_ok && (self.value.is_some() != self.statistic_values.is_some())
    }
}

mod iso8601 {
    use aws_smithy_types::DateTime;
    use aws_smithy_types::date_time::Format;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        let dt = DateTime::from_millis(*ms);
        s.serialize_str(
            &dt.fmt(Format::DateTime)
                .map_err(serde::ser::Error::custom)?,
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        let dt = DateTime::from_str(&s, Format::DateTime).map_err(serde::de::Error::custom)?;
        dt.to_millis().map_err(serde::de::Error::custom)
    }
}

pub const CPU_UTILIZATION: &str = "CPUUtilization";
pub const CPU_STEAL: &str = "CPUStealPercent";
pub const CPU_IOWAIT: &str = "CPUIOWaitPercent";
pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
pub const HEALTH_CHECK_LATENCY: &str = "HealthCheckLatency";
pub const HEALTHY_HOST_COUNT: &str = "HealthyHostCount";
pub const UNHEALTHY_HOST_COUNT: &str = "UnHealthyHostCount";

/// Converts a closed window into datums, once per dimension set. Pure: no I/O,
/// no clock. Empty statistic sets are left out rather than sent as zeros.
pub fn to_datums(w: &Window, shape: &Shape) -> Vec<Datum> {
    let timestamp = w
        .timestamp
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let resolution = if shape.high_resolution { 1 } else { 60 };
    let mut out = Vec::new();
    for dims in &shape.dimension_sets {
        let stat =
            |out: &mut Vec<Datum>, name: &str, unit: &str, dims: Vec<Dimension>, s: &Stats| {
                if s.is_publishable() {
                    out.push(Datum {
                        metric_name: name.to_owned(),
                        dimensions: dims,
                        timestamp,
                        unit: unit.to_owned(),
                        value: None,
                        statistic_values: Some(StatisticValues {
                            sample_count: s.count as f64,
                            sum: s.sum,
                            minimum: s.min,
                            maximum: s.max,
                        }),
                        storage_resolution: resolution,
                    });
                }
            };
        stat(&mut out, CPU_UTILIZATION, "Percent", dims.clone(), &w.cpu);
        if shape.publish_steal {
            stat(&mut out, CPU_STEAL, "Percent", dims.clone(), &w.steal);
        }
        if shape.publish_iowait {
            stat(&mut out, CPU_IOWAIT, "Percent", dims.clone(), &w.iowait);
        }
        for c in &w.checks {
            let mut cdims = dims.clone();
            cdims.push(Dimension {
                name: "HealthCheck".into(),
                value: c.name.clone(),
            });
            stat(
                &mut out,
                HEALTH_CHECK_FAILED,
                "Count",
                cdims.clone(),
                &c.failed,
            );
            if c.publish_latency {
                stat(
                    &mut out,
                    HEALTH_CHECK_LATENCY,
                    "Milliseconds",
                    cdims,
                    &c.latency_ms,
                );
            }
        }
        if let Some(host) = w.host {
            for (name, v) in [
                (HEALTHY_HOST_COUNT, host.healthy),
                (UNHEALTHY_HOST_COUNT, !host.healthy),
            ] {
                out.push(Datum {
                    metric_name: name.to_owned(),
                    dimensions: dims.clone(),
                    timestamp,
                    unit: "Count".to_owned(),
                    value: Some(if v { 1.0 } else { 0.0 }),
                    statistic_values: None,
                    storage_resolution: resolution,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::health::ProbeFailure;

    fn dims(pairs: &[(&str, &str)]) -> Vec<Dimension> {
        pairs
            .iter()
            .map(|(n, v)| Dimension {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect()
    }

    fn shape() -> Shape {
        Shape {
            dimension_sets: vec![
                dims(&[("InstanceId", "i-1")]),
                dims(&[("AutoScalingGroupName", "web")]),
            ],
            high_resolution: false,
            publish_steal: false,
            publish_iowait: false,
        }
    }

    fn ts() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_764_000_000)
    }

    fn find<'a>(d: &'a [Datum], name: &str, first_dim: &str) -> Vec<&'a Datum> {
        d.iter()
            .filter(|x| x.metric_name == name && x.dimensions[0].name == first_dim)
            .collect()
    }

    #[test]
    fn cpu_statistic_set_per_dimension_set() {
        let mut w = Window::new(ts(), []);
        for busy in [10.0, 50.0, 90.0] {
            w.add_cpu(&CpuSample {
                busy,
                steal: 0.0,
                iowait: 0.0,
            });
        }
        let d = to_datums(&w, &shape());
        assert_eq!(d.len(), 2, "{d:?}");
        for first in ["InstanceId", "AutoScalingGroupName"] {
            let cpu = find(&d, CPU_UTILIZATION, first);
            assert_eq!(cpu.len(), 1);
            let s = cpu[0].statistic_values.unwrap();
            assert_eq!(
                s,
                StatisticValues {
                    sample_count: 3.0,
                    sum: 150.0,
                    minimum: 10.0,
                    maximum: 90.0
                }
            );
            assert_eq!(cpu[0].unit, "Percent");
            assert_eq!(cpu[0].timestamp, 1_764_000_000_000);
            assert_eq!(cpu[0].storage_resolution, 60);
        }
    }

    #[test]
    fn empty_window_sends_nothing_but_host_counts() {
        let mut w = Window::new(ts(), [("app".into(), false)]);
        assert!(to_datums(&w, &shape()).is_empty());
        w.host = Some(HostState { healthy: true });
        let d = to_datums(&w, &shape());
        assert_eq!(d.len(), 4);
        let h = find(&d, HEALTHY_HOST_COUNT, "InstanceId");
        assert_eq!(h[0].value, Some(1.0));
        let u = find(&d, UNHEALTHY_HOST_COUNT, "AutoScalingGroupName");
        assert_eq!(u[0].value, Some(0.0));
    }

    #[test]
    fn unhealthy_host_and_check_dimension() {
        let mut w = Window::new(ts(), [("app".into(), true)]);
        let fail = ProbeResult {
            latency: Duration::from_millis(2000),
            outcome: Err(ProbeFailure::Timeout(Duration::from_secs(2))),
        };
        let pass = ProbeResult {
            latency: Duration::from_millis(4),
            outcome: Ok(()),
        };
        w.add_probe(0, &fail);
        w.add_probe(0, &pass);
        w.add_probe(7, &pass); // unknown index is ignored, not a panic
        w.host = Some(HostState { healthy: false });
        let mut s = shape();
        s.high_resolution = true;
        let d = to_datums(&w, &s);
        let f = find(&d, HEALTH_CHECK_FAILED, "InstanceId");
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].dimensions,
            dims(&[("InstanceId", "i-1"), ("HealthCheck", "app")])
        );
        let sv = f[0].statistic_values.unwrap();
        assert_eq!(
            (sv.sample_count, sv.sum, sv.minimum, sv.maximum),
            (2.0, 1.0, 0.0, 1.0)
        );
        let l = find(&d, HEALTH_CHECK_LATENCY, "AutoScalingGroupName");
        assert_eq!(l[0].statistic_values.unwrap().maximum, 2000.0);
        assert_eq!(l[0].unit, "Milliseconds");
        assert_eq!(
            find(&d, UNHEALTHY_HOST_COUNT, "InstanceId")[0].value,
            Some(1.0)
        );
        assert_eq!(
            find(&d, HEALTHY_HOST_COUNT, "InstanceId")[0].value,
            Some(0.0)
        );
        assert!(d.iter().all(|x| x.storage_resolution == 1));
    }

    #[test]
    fn nan_and_infinity_never_reach_a_datum() {
        let mut w = Window::new(ts(), []);
        w.add_cpu(&CpuSample {
            busy: f64::NAN,
            steal: f64::INFINITY,
            iowait: f64::NEG_INFINITY,
        });
        let mut s = shape();
        s.publish_steal = true;
        s.publish_iowait = true;
        assert!(to_datums(&w, &s).is_empty());
        w.add_cpu(&CpuSample {
            busy: 5.0,
            steal: 1.0,
            iowait: 2.0,
        });
        let d = to_datums(&w, &s);
        assert_eq!(d.len(), 6);
        assert!(d.iter().all(Datum::is_valid));
        assert_eq!(
            find(&d, CPU_STEAL, "InstanceId")[0]
                .statistic_values
                .unwrap()
                .sum,
            1.0
        );
    }

    #[test]
    fn fleet_wide_empty_dimension_set() {
        let mut w = Window::new(ts(), []);
        w.host = Some(HostState { healthy: true });
        let s = Shape {
            dimension_sets: vec![vec![]],
            ..shape()
        };
        let d = to_datums(&w, &s);
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|x| x.dimensions.is_empty()));
    }

    #[test]
    fn periods_align_to_the_interval() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_000_065_500);
        let m = Duration::from_secs(60);
        assert_eq!(
            period_start(t, m),
            UNIX_EPOCH + Duration::from_secs(1_764_000_060)
        );
        assert_eq!(
            period_end(t, m),
            UNIX_EPOCH + Duration::from_secs(1_764_000_120)
        );
        let ten = Duration::from_secs(10);
        assert_eq!(
            period_start(t, ten),
            UNIX_EPOCH + Duration::from_secs(1_764_000_060)
        );
    }

    #[test]
    fn datum_json_round_trips_in_cloudwatch_shape() {
        let mut w = Window::new(ts(), []);
        w.host = Some(HostState { healthy: true });
        let d = to_datums(&w, &shape());
        let json = serde_json::to_string(&d[0]).unwrap();
        assert!(
            json.contains("\"MetricName\":\"HealthyHostCount\""),
            "{json}"
        );
        assert!(
            json.contains("\"Timestamp\":\"2025-11-24T16:00:00Z\""),
            "{json}"
        );
        let back: Datum = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d[0]);
    }
}
