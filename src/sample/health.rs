//! The health-route probe and ELB-style check state.
//!
//! One probe is one fresh connection, one `GET`, under one deadline that
//! covers connect, TLS, headers and body: a hostile or hung endpoint costs at
//! most `timeout` and [`MAX_BODY`] bytes, never a leaked task.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Buf;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::HealthCheck;

/// Largest response body accepted; a bigger one fails the probe. Health
/// routes answer a few hundred bytes; this bounds memory per probe.
pub const MAX_BODY: usize = 64 * 1024;

/// hyper's read buffer, which bounds the size of the response head.
const MAX_HEAD: usize = 16 * 1024;

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    Timeout(Duration),
    Connect(String),
    Tls(String),
    Http(String),
    Status(u16),
    BodyTooLarge,
    BodyMismatch,
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(t) => write!(f, "no complete answer within {}ms", t.as_millis()),
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            Self::Http(e) => write!(f, "HTTP error: {e}"),
            Self::Status(s) => write!(f, "unexpected status {s}"),
            Self::BodyTooLarge => write!(f, "response body larger than {MAX_BODY} bytes"),
            Self::BodyMismatch => write!(f, "response body does not contain the expected text"),
        }
    }
}

/// The outcome of one probe.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub latency: Duration,
    pub outcome: Result<(), ProbeFailure>,
}

/// Probes one check's URL.
#[derive(Clone)]
pub struct Prober {
    check: Arc<HealthCheck>,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Prober {
    pub fn new(check: HealthCheck) -> Self {
        let tls = check
            .url
            .is_https()
            .then(|| tls_connector(check.tls_verify));
        Self {
            check: Arc::new(check),
            tls,
        }
    }

    pub fn check(&self) -> &HealthCheck {
        &self.check
    }

    /// Runs one probe; never takes longer than the check's timeout.
    pub async fn probe(&self) -> ProbeResult {
        let start = Instant::now();
        let timeout = self.check.timeout.get();
        let outcome = match tokio::time::timeout(timeout, self.exchange()).await {
            Ok(r) => r,
            Err(_) => Err(ProbeFailure::Timeout(timeout)),
        };
        ProbeResult {
            latency: start.elapsed(),
            outcome,
        }
    }

    async fn exchange(&self) -> Result<(), ProbeFailure> {
        let uri = &self.check.url.0;
        let host = uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| ProbeFailure::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.request(tcp).await,
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| ProbeFailure::Tls(e.to_string()))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| ProbeFailure::Tls(e.to_string()))?;
                self.request(stream).await
            }
        }
    }

    async fn request<S>(&self, io: S) -> Result<(), ProbeFailure>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let http = |e: hyper::Error| ProbeFailure::Http(e.to_string());
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(MAX_HEAD)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
            .await
            .map_err(http)?;
        let uri = &self.check.url.0;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = uri.authority().map_or("", |a| a.as_str());
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("cwpulse/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::new())
            .map_err(|e| ProbeFailure::Http(e.to_string()))?;

        // The connection is driven here, not spawned, so a timeout that drops
        // this future also drops the socket.
        let exchange = async {
            let resp = sender.send_request(req).await.map_err(http)?;
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let want = self.check.body_contains.as_deref();
            let mut seen = Vec::new();
            let mut len = 0usize;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(http)?;
                if let Some(data) = frame.data_ref() {
                    len += data.remaining();
                    if len > MAX_BODY {
                        return Err(ProbeFailure::BodyTooLarge);
                    }
                    if want.is_some() {
                        seen.extend_from_slice(data.chunk());
                    }
                }
            }
            if !self.check.status.contains(status) {
                return Err(ProbeFailure::Status(status));
            }
            if let Some(want) = want
                && !contains(&seen, want.as_bytes())
            {
                return Err(ProbeFailure::BodyMismatch);
            }
            Ok(())
        };
        let mut exchange = std::pin::pin!(exchange);
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            biased;
            r = &mut exchange => r,
            c = &mut conn => match c {
                Ok(()) => exchange.await,
                Err(e) => Err(http(e)),
            },
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn tls_connector(verify: bool) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Accepts any certificate, like an ELB health check does; the handshake
/// signatures are still checked. Only used with `tls_verify = false`.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A check's state, as an ELB target's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    /// No verdict yet. Counted as healthy, so a booting instance does not page
    /// before it has failed `unhealthy_threshold` probes in a row.
    Initial,
    Healthy,
    Unhealthy,
}

impl CheckState {
    pub fn is_unhealthy(self) -> bool {
        self == Self::Unhealthy
    }
}

/// Consecutive-result thresholds that turn probe results into a state.
#[derive(Debug, Clone)]
pub struct CheckTracker {
    state: CheckState,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    passes: u32,
    fails: u32,
}

impl CheckTracker {
    pub fn new(healthy_threshold: u32, unhealthy_threshold: u32) -> Self {
        Self {
            state: CheckState::Initial,
            healthy_threshold: healthy_threshold.max(1),
            unhealthy_threshold: unhealthy_threshold.max(1),
            passes: 0,
            fails: 0,
        }
    }

    pub fn state(&self) -> CheckState {
        self.state
    }

    /// Records one probe; returns the new state when it changed.
    pub fn record(&mut self, ok: bool) -> Option<CheckState> {
        let next = if ok {
            self.fails = 0;
            self.passes = self.passes.saturating_add(1);
            (self.passes >= self.healthy_threshold).then_some(CheckState::Healthy)
        } else {
            self.passes = 0;
            self.fails = self.fails.saturating_add(1);
            (self.fails >= self.unhealthy_threshold).then_some(CheckState::Unhealthy)
        };
        match next {
            Some(s) if s != self.state => {
                self.state = s;
                Some(s)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_need_consecutive_results() {
        let mut t = CheckTracker::new(2, 3);
        assert_eq!(t.state(), CheckState::Initial);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), None, "a pass resets the failure run");
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(CheckState::Unhealthy));
        assert_eq!(t.record(false), None, "no repeated transition");
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(true), Some(CheckState::Healthy));
    }

    #[test]
    fn threshold_one_flips_immediately() {
        let mut t = CheckTracker::new(1, 1);
        assert_eq!(t.record(true), Some(CheckState::Healthy));
        assert_eq!(t.record(false), Some(CheckState::Unhealthy));
    }

    #[test]
    fn substring_search() {
        assert!(contains(b"{\"status\":\"UP\"}", b"\"UP\""));
        assert!(!contains(b"DOWN", b"UP"));
        assert!(contains(b"", b""));
    }
}
