//! `cwpulse cost`: the monthly CloudWatch bill a config produces.
//!
//! Pure arithmetic over the config: which series the agent publishes, how
//! often it calls `PutMetricData`, and which alarms `cwpulse alarms` would
//! create. The instances are taken to share one Auto Scaling group, so the
//! series of a set without `InstanceId` are counted once for all of them.

use std::fmt::Write;

use crate::alarms::{self, AlarmsConfig, Scope};
use crate::config::{Config, DimensionKey};
use crate::identity::Identity;
use crate::publish::MAX_DATUMS_PER_CALL;
use crate::window;

/// Where and when the prices below were taken.
pub const PRICES_REGION: &str = "us-east-1";
pub const PRICES_AS_OF: &str = "2026-11-25";

/// Custom metrics per month, tiered by the account's total: (metrics in the
/// tier, dollars per metric). The last tier is open-ended.
pub const METRIC_TIERS: [(u64, f64); 4] = [
    (10_000, 0.30),
    (240_000, 0.10),
    (750_000, 0.05),
    (u64::MAX, 0.02),
];
/// `PutMetricData`: dollars per 1,000 requests.
pub const PUT_PER_1000: f64 = 0.01;
/// Dollars per alarm per month (one metric each).
pub const ALARM_STANDARD: f64 = 0.10;
pub const ALARM_HIGH_RESOLUTION: f64 = 0.30;
/// AWS bills a month as 730 hours.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Dollars per month for `metrics` custom metrics, through the tiers.
pub fn metric_charge(metrics: u64) -> f64 {
    let mut left = metrics;
    let mut total = 0.0;
    for (size, price) in METRIC_TIERS {
        let n = left.min(size);
        total += n as f64 * price;
        left -= n;
        if left == 0 {
            break;
        }
    }
    total
}

/// The metric names the agent publishes under each dimension set.
pub fn metrics_per_set(config: &Config) -> Vec<String> {
    let mut m = vec![window::CPU_UTILIZATION.to_owned()];
    if config.cpu.publish_steal {
        m.push(window::CPU_STEAL.to_owned());
    }
    if config.cpu.publish_iowait {
        m.push(window::CPU_IOWAIT.to_owned());
    }
    for c in &config.health {
        m.push(format!("{}[{}]", window::HEALTH_CHECK_FAILED, c.name.0));
        if c.publish_latency {
            m.push(format!("{}[{}]", window::HEALTH_CHECK_LATENCY, c.name.0));
        }
    }
    // The host counts exist only to count health checks' verdicts.
    if !config.health.is_empty() {
        m.push(window::HEALTHY_HOST_COUNT.to_owned());
        m.push(window::UNHEALTHY_HOST_COUNT.to_owned());
    }
    m
}

/// One dimension set's share of the bill.
#[derive(Debug, Clone, PartialEq)]
pub struct SetLine {
    pub keys: Vec<DimensionKey>,
    /// True when every instance has its own series under this set.
    pub per_instance: bool,
    /// Metrics under this set, for one instance (or for all, when shared).
    pub metrics: u64,
}

/// The bill for one config and fleet size.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub instances: u64,
    pub sets: Vec<SetLine>,
    pub metric_names: Vec<String>,
    pub total_metrics: u64,
    pub metrics_cost: f64,
    pub interval_secs: f64,
    pub calls_per_window: u64,
    pub requests: f64,
    pub requests_cost: f64,
    pub alarms_standard: u64,
    pub alarms_high_resolution: u64,
    pub alarms_cost: f64,
    pub total: f64,
}

impl Estimate {
    pub fn per_instance(&self) -> f64 {
        self.total / self.instances.max(1) as f64
    }
}

/// The monthly bill for `instances` agents running `config`, with the alarms
/// `cwpulse alarms apply` would create from `alarms_config`.
pub fn estimate(config: &Config, alarms_config: &AlarmsConfig, instances: u64) -> Estimate {
    let n = instances.max(1);
    let names = metrics_per_set(config);
    let per_set = names.len() as u64;
    let sets: Vec<SetLine> = config
        .publish
        .dimension_sets
        .iter()
        .map(|keys| SetLine {
            keys: keys.clone(),
            per_instance: keys.contains(&DimensionKey::InstanceId),
            metrics: per_set,
        })
        .collect();
    let total_metrics: u64 = sets
        .iter()
        .map(|s| {
            if s.per_instance {
                s.metrics * n
            } else {
                s.metrics
            }
        })
        .sum();

    // Every instance sends every set's datums in one window's calls.
    let datums_per_window = per_set * sets.len() as u64;
    let calls_per_window = datums_per_window
        .div_ceil(MAX_DATUMS_PER_CALL as u64)
        .max(1);
    let interval_secs = config.publish.interval.get().as_secs_f64();
    let windows = HOURS_PER_MONTH * 3600.0 / interval_secs;
    let requests = windows * calls_per_window as f64 * n as f64;

    // Placeholders: only the number and resolution of alarms matter here.
    let id = Identity {
        instance_id: Some("i-0".into()),
        autoscaling_group: Some("asg".into()),
    };
    let (mut standard, mut high) = (0, 0);
    for a in alarms::desired(config, alarms_config, &id, Scope::All).unwrap_or_default() {
        let count = if a.shared { 1 } else { n };
        if a.is_high_resolution() {
            high += count;
        } else {
            standard += count;
        }
    }

    let metrics_cost = metric_charge(total_metrics);
    let requests_cost = requests / 1000.0 * PUT_PER_1000;
    let alarms_cost = standard as f64 * ALARM_STANDARD + high as f64 * ALARM_HIGH_RESOLUTION;
    Estimate {
        instances: n,
        sets,
        metric_names: names,
        total_metrics,
        metrics_cost,
        interval_secs,
        calls_per_window,
        requests,
        requests_cost,
        alarms_standard: standard,
        alarms_high_resolution: high,
        alarms_cost,
        total: metrics_cost + requests_cost + alarms_cost,
    }
}

/// 43800 -> "43,800".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report `cwpulse cost` prints.
pub fn render(e: &Estimate, source: &str) -> String {
    let mut s = String::new();
    let n = e.instances;
    let _ = writeln!(
        s,
        "CloudWatch cost per month of {source}, for {n} instance{} in one Auto Scaling group",
        if n == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        s,
        "Prices: {PRICES_REGION} list prices as of {PRICES_AS_OF}; {HOURS_PER_MONTH} hours a month; free tier not deducted."
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Metrics under each dimension set: {}",
        e.metric_names.join(", ")
    );
    let _ = writeln!(s, "{:<48}{:>12}{:>12}", "", "count", "USD/month");
    let _ = writeln!(s, "Custom metrics");
    for set in &e.sets {
        let keys: Vec<String> = set.keys.iter().map(ToString::to_string).collect();
        let label = if keys.is_empty() {
            "(no dimensions)".to_owned()
        } else {
            keys.join("+")
        };
        let (what, count) = if set.per_instance {
            (
                format!("  {label}: {} per instance × {n}", set.metrics),
                set.metrics * n,
            )
        } else {
            (format!("  {label}: shared by all instances"), set.metrics)
        };
        let _ = writeln!(s, "{what:<48}{:>12}", thousands(count));
    }
    let _ = writeln!(
        s,
        "{:<48}{:>12}{:>12.2}",
        "  total ($0.30/$0.10/$0.05/$0.02 tiers)",
        thousands(e.total_metrics),
        e.metrics_cost
    );
    let _ = writeln!(
        s,
        "{:<48}{:>12}{:>12.2}",
        "PutMetricData requests ($0.01 per 1,000)",
        thousands(e.requests.round() as u64),
        e.requests_cost
    );
    let _ = writeln!(
        s,
        "  {} call{} per instance every {}s",
        e.calls_per_window,
        if e.calls_per_window == 1 { "" } else { "s" },
        e.interval_secs
    );
    let _ = writeln!(s, "Alarms (as `cwpulse alarms apply` would create them)");
    let _ = writeln!(
        s,
        "{:<48}{:>12}{:>12.2}",
        "  standard resolution ($0.10)",
        e.alarms_standard,
        e.alarms_standard as f64 * ALARM_STANDARD
    );
    let _ = writeln!(
        s,
        "{:<48}{:>12}{:>12.2}",
        "  high resolution ($0.30)",
        e.alarms_high_resolution,
        e.alarms_high_resolution as f64 * ALARM_HIGH_RESOLUTION
    );
    let _ = writeln!(s, "{:<48}{:>12}{:>12.2}", "Total", "", e.total);
    let _ = writeln!(
        s,
        "{:<48}{:>12}{:>12.2}",
        "Per instance",
        "",
        e.per_instance()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn tier_boundaries() {
        assert!(close(metric_charge(0), 0.0));
        assert!(close(metric_charge(1), 0.30));
        assert!(close(metric_charge(10_000), 3_000.0));
        assert!(close(metric_charge(10_001), 3_000.10));
        assert!(close(metric_charge(250_000), 3_000.0 + 24_000.0));
        assert!(close(metric_charge(250_001), 27_000.05));
        assert!(close(metric_charge(1_000_000), 27_000.0 + 37_500.0));
        assert!(close(metric_charge(1_000_001), 64_500.02));
        assert!(close(metric_charge(2_000_000), 64_500.0 + 20_000.0));
    }

    /// Unless the text says otherwise, publish per instance and per group,
    /// the expensive shape these tests price.
    fn parse(text: &str) -> (Config, AlarmsConfig) {
        let mut c = crate::config::parse(text, Path::new("cwpulse.toml")).unwrap();
        if !text.contains("dimension_sets") {
            c.publish.dimension_sets = crate::config::DimensionSets(vec![
                vec![DimensionKey::InstanceId],
                vec![DimensionKey::AutoScalingGroupName],
            ]);
        }
        let a = c.alarms.clone();
        (c, a)
    }

    #[test]
    fn built_in_defaults_stay_under_a_dollar_per_instance_month() {
        let c = Config::default();
        let e = estimate(&c, &c.alarms, 1);
        // CPUUtilization under the group set; cpu-high and no-heartbeat.
        assert_eq!(e.total_metrics, 1);
        assert_eq!(e.alarms_standard, 2);
        assert!(close(e.total, 0.30 + 0.438 + 0.20), "{}", e.total);
        assert!(e.per_instance() <= 1.0);
        let e = estimate(&c, &c.alarms, 50);
        assert_eq!(e.total_metrics, 1);
        assert!(close(e.per_instance(), (0.30 + 21.9 + 0.20) / 50.0));
    }

    #[test]
    fn both_sets_one_and_fifty_instances() {
        let (c, a) = parse("");
        let e = estimate(&c, &a, 1);
        // No health checks: CPUUtilization under the instance set and the
        // group set, and no host counts.
        assert_eq!(e.metric_names, ["CPUUtilization"]);
        assert_eq!(e.total_metrics, 2);
        assert!(close(e.metrics_cost, 0.60));
        // One call a minute: 730 × 60 = 43,800 calls.
        assert!(close(e.requests, 43_800.0));
        assert!(close(e.requests_cost, 0.438));
        // cpu-high and no-heartbeat, per instance and per group.
        assert_eq!((e.alarms_standard, e.alarms_high_resolution), (4, 0));
        assert!(close(e.total, 0.60 + 0.438 + 0.40));

        let e = estimate(&c, &a, 50);
        assert_eq!(e.total_metrics, 50 + 1);
        assert!(close(e.metrics_cost, 51.0 * 0.30));
        assert!(close(e.requests, 43_800.0 * 50.0));
        assert_eq!(e.alarms_standard, 2 * 50 + 2);
        assert!(close(e.per_instance(), (15.3 + 21.9 + 10.2) / 50.0));
    }

    #[test]
    fn one_health_check_adds_three_metrics_and_two_alarms_per_set() {
        let (c, a) = parse("[[health]]\nname = \"app\"\nurl = \"http://127.0.0.1/\"\n");
        let e = estimate(&c, &a, 1);
        assert_eq!(e.total_metrics, 8);
        assert_eq!(e.alarms_standard, 6);
    }

    #[test]
    fn options_add_metrics_and_high_resolution_alarms() {
        let (c, a) = parse(
            "[cpu]\npublish_steal = true\npublish_iowait = true\n[[health]]\nname = \"a\"\nurl = \"http://127.0.0.1/\"\npublish_latency = true\n[[health]]\nname = \"b\"\nurl = \"http://127.0.0.1/b\"\n[publish]\ninterval = \"10s\"\nhigh_resolution = true\ndimension_sets = [[\"AutoScalingGroupName\"]]\n",
        );
        assert_eq!(metrics_per_set(&c).len(), 8);
        let e = estimate(&c, &a, 10);
        // Only the shared set: the metric count does not grow with the fleet.
        assert_eq!(e.total_metrics, 8);
        assert!(close(e.requests, 730.0 * 360.0 * 10.0));
        assert_eq!((e.alarms_standard, e.alarms_high_resolution), (0, 3));
        let text = render(&e, "test");
        assert!(
            text.contains("us-east-1") && text.contains(PRICES_AS_OF),
            "{text}"
        );
    }

    #[test]
    fn many_datums_need_more_calls() {
        let mut text = String::from("[publish]\ndimension_sets = [[\"InstanceId\"]]\n");
        for i in 0..1000 {
            text.push_str(&format!(
                "[[health]]\nname = \"c{i}\"\nurl = \"http://127.0.0.1/{i}\"\n"
            ));
        }
        let (c, a) = parse(&text);
        assert_eq!(estimate(&c, &a, 1).calls_per_window, 2);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(43_800), "43,800");
        assert_eq!(thousands(2_190_000), "2,190,000");
    }
}
