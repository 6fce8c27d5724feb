//! Publishing datums to CloudWatch with `PutMetricData`.
//!
//! The SDK retries transient errors and gzips large bodies inside one call;
//! this module splits work into calls within the API limits, bounds each call
//! with a timeout, and classifies failures so the caller can decide whether to
//! keep the data.

use std::time::Duration;

use aws_sdk_cloudwatch::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, StatisticSet};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::DateTime;

use crate::identity::error_chain;
use crate::window::Datum;

/// CloudWatch accepts at most 1000 datums per `PutMetricData` call.
pub const MAX_DATUMS_PER_CALL: usize = 1000;
/// ... and at most 1 MB of request payload (before compression). The
/// estimate below is conservative, so the budget leaves no extra margin.
pub const MAX_BYTES_PER_CALL: usize = 1_000_000;

/// The HTTP client for every AWS call and IMDS: rustls with ring, the same
/// TLS stack the health probe uses, so the binary carries exactly one.
pub fn http_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// A generous upper bound of one datum's encoded size, in any of the wire
/// protocols CloudWatch speaks (the query protocol is the widest).
pub fn estimated_size(d: &Datum) -> usize {
    let dims: usize = d
        .dimensions
        .iter()
        .map(|x| 96 + 2 * (x.name.len() + x.value.len()))
        .sum();
    400 + 2 * (d.metric_name.len() + d.unit.len()) + dims
}

/// Splits datums into runs that each fit in one call.
pub fn batches(datums: &[Datum]) -> Vec<&[Datum]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, d) in datums.iter().enumerate() {
        let size = estimated_size(d);
        if i > start && (i - start == MAX_DATUMS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL) {
            out.push(&datums[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < datums.len() {
        out.push(&datums[start..]);
    }
    out
}

/// Converts our datum into the SDK's.
pub fn to_sdk(d: &Datum) -> MetricDatum {
    let mut b = MetricDatum::builder()
        .metric_name(&d.metric_name)
        .timestamp(DateTime::from_millis(d.timestamp))
        .unit(StandardUnit::from(d.unit.as_str()))
        .storage_resolution(d.storage_resolution)
        .set_value(d.value);
    for dim in &d.dimensions {
        b = b.dimensions(
            Dimension::builder()
                .name(&dim.name)
                .value(&dim.value)
                .build(),
        );
    }
    if let Some(s) = d.statistic_values {
        b = b.statistic_values(
            StatisticSet::builder()
                .sample_count(s.sample_count)
                .sum(s.sum)
                .minimum(s.minimum)
                .maximum(s.maximum)
                .build(),
        );
    }
    b.build()
}

/// Why a call failed, as a decision about the data.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// Throttling, 5xx, network, timeout, credentials: keep the data and try later.
    #[error("{0}")]
    Retryable(String),
    /// CloudWatch refused the content (a 400 validation error): sending the
    /// same datums again cannot succeed.
    #[error("{0}")]
    Rejected(String),
}

impl PutError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

/// Sends datums to one namespace.
#[derive(Clone, Debug)]
pub struct Publisher {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
    timeout: Duration,
}

impl Publisher {
    pub fn new(client: aws_sdk_cloudwatch::Client, namespace: String, timeout: Duration) -> Self {
        Self {
            client,
            namespace,
            timeout,
        }
    }

    /// One `PutMetricData` call; `datums` must fit in one call (see [`batches`]).
    pub async fn put_batch(&self, datums: &[Datum]) -> Result<(), PutError> {
        let call = self
            .client
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(datums.iter().map(to_sdk).collect()))
            .send();
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(PutError::Retryable(format!(
                "PutMetricData did not finish within {}s",
                self.timeout.as_secs_f32()
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }

    /// Sends one batch (which must fit in one call). A validation error is
    /// narrowed down by bisection to the datums CloudWatch refuses, so only
    /// those are dropped. Stops at the first retryable error; everything
    /// before it is settled, in order.
    pub async fn deliver(&self, datums: &[Datum]) -> Delivery {
        let mut d = Delivery::default();
        let mut work = vec![(0usize, datums.len())];
        while let Some((start, end)) = work.pop() {
            match self.put_batch(&datums[start..end]).await {
                Ok(()) => {
                    d.done = end;
                    d.sent += end - start;
                }
                Err(PutError::Rejected(reason)) if end - start == 1 => {
                    d.done = end;
                    d.rejected.push((start, reason));
                }
                Err(PutError::Rejected(_)) => {
                    let mid = start + (end - start) / 2;
                    // Left half first: settled datums stay a prefix.
                    work.push((mid, end));
                    work.push((start, mid));
                }
                Err(e @ PutError::Retryable(_)) => {
                    d.error = Some(e);
                    break;
                }
            }
        }
        d
    }
}

/// The outcome of [`Publisher::deliver`].
#[derive(Debug, Default)]
pub struct Delivery {
    /// The first `done` datums are settled (sent or rejected).
    pub done: usize,
    pub sent: usize,
    /// Index and reason of each datum CloudWatch refused.
    pub rejected: Vec<(usize, String)>,
    /// Why delivery stopped before the end, if it did.
    pub error: Option<PutError>,
}

fn classify<R>(
    e: &SdkError<aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataError, R>,
) -> PutError
where
    R: std::fmt::Debug + 'static,
{
    let msg = error_chain(e);
    match e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            let rejected = matches!(
                code,
                "InvalidParameterValue"
                    | "InvalidParameterValueException"
                    | "InvalidParameterCombination"
                    | "InvalidParameterCombinationException"
                    | "MissingParameter"
                    | "MissingRequiredParameterException"
            );
            let detail = format!("{code}: {}", se.err().message().unwrap_or(msg.as_str()));
            if rejected {
                PutError::Rejected(detail)
            } else {
                PutError::Retryable(detail)
            }
        }
        _ => PutError::Retryable(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Dimension as Dim;

    fn datum(dim_len: usize) -> Datum {
        Datum {
            metric_name: "CPUUtilization".into(),
            dimensions: vec![Dim {
                name: "InstanceId".into(),
                value: "x".repeat(dim_len),
            }],
            timestamp: 1_764_000_000_000,
            unit: "Percent".into(),
            value: Some(1.0),
            statistic_values: None,
            storage_resolution: 60,
        }
    }

    #[test]
    fn batches_respect_the_count_limit() {
        let d = vec![datum(10); 2500];
        let b = batches(&d);
        assert_eq!(
            b.iter().map(|x| x.len()).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn batches_respect_the_byte_limit() {
        let d = vec![datum(1000); 1000];
        let b = batches(&d);
        assert!(b.len() > 1);
        for x in &b {
            assert!(x.iter().map(estimated_size).sum::<usize>() <= MAX_BYTES_PER_CALL);
        }
        assert_eq!(b.iter().map(|x| x.len()).sum::<usize>(), 1000);
    }

    #[test]
    fn sdk_datum_carries_everything() {
        let m = to_sdk(&datum(3));
        assert_eq!(m.metric_name(), Some("CPUUtilization"));
        assert_eq!(m.unit(), Some(&StandardUnit::Percent));
        assert_eq!(m.storage_resolution(), Some(60));
        assert_eq!(
            m.timestamp().unwrap().to_millis().unwrap(),
            1_764_000_000_000
        );
        assert_eq!(m.dimensions()[0].value(), Some("xxx"));
    }
}

/// Exponential backoff with jitter between delivery attempts, capped. The SDK
/// already retried inside each call; this spaces out the calls themselves so
/// a fleet does not hammer a recovering endpoint in step.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
            seed: seed | 1,
        }
    }

    /// The wait before the next attempt: uniformly in [d/2, d] where d is
    /// base × 2^failures, capped.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64: jitter needs no cryptographic quality.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let frac = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        exp.mul_f64(0.5 + 0.5 * frac)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn failures(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let delays: Vec<Duration> = (0..15).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(500) && delays[0] <= Duration::from_secs(1));
        assert!(delays[3] >= Duration::from_secs(4) && delays[3] <= Duration::from_secs(8));
        for d in &delays[10..] {
            assert!(
                *d >= Duration::from_secs(150) && *d <= Duration::from_secs(300),
                "{d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }
}
