//! Test fixtures: a tiny HTTP server for the fakes (IMDSv2, the Auto Scaling
//! API, a health route that can be flipped), the real binary as a child
//! process, and a CloudWatch client pointed at LocalStack.
//!
//! Everything listens on 127.0.0.1 port 0; nothing leaves loopback.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// One parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// What a handler answers: status, body; `None` means hang without answering.
pub type Response = Option<(u16, String)>;

/// A minimal HTTP/1.1 server: one request per connection, then close.
pub async fn serve<F>(handler: F) -> SocketAddr
where
    F: Fn(&Request) -> Response + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = handle(sock, &*handler).await;
            });
        }
    });
    addr
}

async fn handle<F>(mut sock: TcpStream, handler: &F) -> std::io::Result<()>
where
    F: Fn(&Request) -> Response,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    let req = Request {
        method,
        path,
        headers,
        body,
    };
    match handler(&req) {
        None => {
            // Hang: keep the socket open and never answer.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        Some((status, body)) => {
            let resp = format!(
                // The TTL header is what IMDSv2 sends with a token; other
                // clients ignore it.
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: text/plain\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(resp.as_bytes()).await?;
            sock.shutdown().await
        }
    }
}

/// The health route's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    Healthy = 0,
    Failing = 1,
    Hanging = 2,
    HugeBody = 3,
}

/// A health route the test can flip.
#[derive(Clone)]
pub struct HealthServer {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    pub hits: Arc<AtomicUsize>,
}

impl HealthServer {
    pub async fn start() -> Self {
        let mode = Arc::new(AtomicU8::new(Health::Healthy as u8));
        let hits = Arc::new(AtomicUsize::new(0));
        let (m, h) = (mode.clone(), hits.clone());
        let addr = serve(move |_req| {
            h.fetch_add(1, Ordering::SeqCst);
            match m.load(Ordering::SeqCst) {
                0 => Some((200, "{\"status\":\"UP\"}".into())),
                1 => Some((503, "{\"status\":\"DOWN\"}".into())),
                2 => None,
                _ => Some((200, "UP".repeat(100_000))),
            }
        })
        .await;
        Self { addr, mode, hits }
    }

    pub fn set(&self, h: Health) {
        self.mode.store(h as u8, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("http://{}/actuator/health", self.addr)
    }
}

/// An IMDSv2 fake: a token is required for every read (IMDSv1 reads are
/// refused and counted), tags can be switched off, and it also answers the
/// Auto Scaling API's DescribeAutoScalingInstances.
#[derive(Clone)]
pub struct Imds {
    pub addr: SocketAddr,
    pub tags_enabled: Arc<AtomicBool>,
    pub v1_attempts: Arc<AtomicUsize>,
    pub asg_api_calls: Arc<AtomicUsize>,
}

pub const INSTANCE_ID: &str = "i-0123456789abcdef0";
const TOKEN: &str = "fake-token-AQAEAN";

impl Imds {
    /// `asg`: the group the instance belongs to (tag and API agree).
    pub async fn start(asg: Option<&str>) -> Self {
        let tags_enabled = Arc::new(AtomicBool::new(true));
        let v1 = Arc::new(AtomicUsize::new(0));
        let api = Arc::new(AtomicUsize::new(0));
        let asg = asg.map(str::to_owned);
        let (t, v, a) = (tags_enabled.clone(), v1.clone(), api.clone());
        let addr = serve(move |req| {
            if req.method == "POST" && req.body.contains("Action=DescribeAutoScalingInstances") {
                a.fetch_add(1, Ordering::SeqCst);
                let members = asg.as_ref().map_or(String::new(), |g| format!(
                    "<member><InstanceId>{INSTANCE_ID}</InstanceId><AutoScalingGroupName>{g}</AutoScalingGroupName><AvailabilityZone>us-east-1a</AvailabilityZone><LifecycleState>InService</LifecycleState><HealthStatus>HEALTHY</HealthStatus><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>"
                ));
                return Some((200, format!(
                    "<DescribeAutoScalingInstancesResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><DescribeAutoScalingInstancesResult><AutoScalingInstances>{members}</AutoScalingInstances></DescribeAutoScalingInstancesResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeAutoScalingInstancesResponse>"
                )));
            }
            if req.method == "PUT" && req.path == "/latest/api/token" {
                return if req.headers.contains_key("x-aws-ec2-metadata-token-ttl-seconds") {
                    Some((200, TOKEN.into()))
                } else {
                    Some((400, String::new()))
                };
            }
            if req.headers.get("x-aws-ec2-metadata-token").map(String::as_str) != Some(TOKEN) {
                v.fetch_add(1, Ordering::SeqCst);
                return Some((401, String::new()));
            }
            let tags = t.load(Ordering::SeqCst);
            match req.path.as_str() {
                "/latest/meta-data/instance-id" => Some((200, INSTANCE_ID.into())),
                "/latest/meta-data/placement/region" => Some((200, "us-east-1".into())),
                "/latest/meta-data/tags/instance" if tags => Some((
                    200,
                    if asg.is_some() { "Name\naws:autoscaling:groupName" } else { "Name" }.into(),
                )),
                "/latest/meta-data/tags/instance/aws:autoscaling:groupName" if tags => {
                    asg.clone().map(|g| (200, g)).or(Some((404, String::new())))
                }
                "/latest/meta-data/tags/instance/Name" if tags => Some((200, "web-1".into())),
                _ => Some((404, String::new())),
            }
        })
        .await;
        Self {
            addr,
            tags_enabled,
            v1_attempts: v1,
            asg_api_calls: api,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// The LocalStack endpoint started by `tests/run.sh`.
pub fn localstack() -> String {
    std::env::var("CWPULSE_TEST_ENDPOINT").expect(
        "CWPULSE_TEST_ENDPOINT is not set: run the suite with tests/run.sh, which installs and starts LocalStack",
    )
}

/// A unique namespace per test, so parallel tests never read each other's data.
pub fn namespace(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("CWPulseTest/{test}/{}-{nanos}", std::process::id())
}

/// A CloudWatch client on LocalStack.
pub async fn cloudwatch() -> aws_sdk_cloudwatch::Client {
    let conf = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(localstack())
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .http_client(cwpulse::publish::http_client())
        .build();
    aws_sdk_cloudwatch::Client::from_conf(conf)
}

/// Writes a config file into a temp dir and returns (dir, path). Unless the
/// text has its own `[spool]`, the spool goes to `<dir>/spool`, so parallel
/// tests never share one.
pub fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cwpulse.toml");
    let mut text = text.to_owned();
    if !text.contains("[spool]") {
        text.push_str(&format!(
            "\n[spool]\ndir = \"{}\"\n",
            dir.path().join("spool").display()
        ));
    }
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cwpulse")
}

/// The binary with a clean environment: no AWS profile, IMDS pointed at the
/// fake (or disabled), CloudWatch at LocalStack.
pub fn command(args: &[&str], imds: Option<&Imds>) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("CWPULSE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Ok(ep) = std::env::var("CWPULSE_TEST_ENDPOINT") {
        c.env("AWS_ENDPOINT_URL", ep);
    }
    match imds {
        Some(i) => {
            c.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", i.endpoint())
                .env("AWS_ENDPOINT_URL_AUTO_SCALING", i.endpoint());
        }
        // Never let a test reach for the real link-local IMDS address.
        None => {
            c.env("AWS_EC2_METADATA_DISABLED", "true")
                .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/");
        }
    }
    c
}

/// A running agent whose stderr is collected in the background.
pub struct Agent {
    pub child: Child,
    pub stderr: Arc<Mutex<String>>,
}

impl Agent {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { child, stderr }
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits; returns (exit code, seconds it took).
    pub async fn terminate(&mut self) -> (Option<i32>, f64) {
        let pid = self.child.id().expect("still running") as i32;
        let start = Instant::now();
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc_kill(pid, 15) };
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("agent did not exit within 30s of SIGTERM")
            .unwrap();
        (status.code(), start.elapsed().as_secs_f64())
    }
}

impl Agent {
    /// SIGKILL: no shutdown path runs at all.
    pub async fn kill9(&mut self) {
        let pid = self.child.id().expect("still running") as i32;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc_kill(pid, 9) };
        let _ = self.child.wait().await;
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- agent log ---\n{}--- end of agent log ---", self.log());
        }
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One datapoint as read back from LocalStack.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub timestamp: i64,
    pub sample_count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

/// GetMetricStatistics over the last 3 minutes at 1-second periods.
pub async fn points(
    cw: &aws_sdk_cloudwatch::Client,
    ns: &str,
    metric: &str,
    dims: &[(&str, &str)],
) -> Vec<Point> {
    let now = SystemTime::now();
    let mut req = cw
        .get_metric_statistics()
        .namespace(ns)
        .metric_name(metric)
        .start_time((now - Duration::from_secs(180)).into())
        .end_time((now + Duration::from_secs(10)).into())
        .period(1)
        .statistics(Statistic::SampleCount)
        .statistics(Statistic::Sum)
        .statistics(Statistic::Minimum)
        .statistics(Statistic::Maximum);
    for (n, v) in dims {
        req = req.dimensions(Dimension::builder().name(*n).value(*v).build());
    }
    let out = req.send().await.expect("GetMetricStatistics");
    let mut pts: Vec<Point> = out
        .datapoints()
        .iter()
        .map(|d| Point {
            timestamp: d.timestamp().unwrap().to_millis().unwrap(),
            sample_count: d.sample_count().unwrap_or(0.0),
            sum: d.sum().unwrap_or(0.0),
            min: d.minimum().unwrap_or(0.0),
            max: d.maximum().unwrap_or(0.0),
        })
        .collect();
    pts.sort_by_key(|p| p.timestamp);
    pts
}

/// Burns CPU in `n` shell loops at the lowest priority until dropped. Nice
/// time is busy time to the agent, while LocalStack (a Python process on the
/// same two cores) still gets scheduled and answers in time.
pub struct Burn(Vec<std::process::Child>);

pub fn burn(n: usize) -> Burn {
    Burn(
        (0..n)
            .map(|_| {
                std::process::Command::new("nice")
                    .args(["-n", "19", "sh", "-c", "while :; do :; done"])
                    .spawn()
                    .expect("spawn a CPU burner")
            })
            .collect(),
    )
}

impl Drop for Burn {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What the fault proxy does with new requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward to LocalStack.
    Pass,
    /// Answer 503 Service Unavailable.
    Unavailable,
    /// Answer a throttling error in the SDK's CBOR protocol.
    Throttle,
    /// Reset the connection as soon as the request arrives.
    Reset,
    /// Accept, read, never answer (a black hole).
    Hang,
    /// Answer every request itself: a validation error when the body
    /// mentions `Poison`, success otherwise (recording the accepted bodies).
    RejectPoison,
}

/// A TCP proxy in front of LocalStack that injects faults. Switching the mode
/// also cuts every pooled pass-through connection, so the next request sees
/// the new mode.
pub struct FaultProxy {
    pub addr: SocketAddr,
    mode: tokio::sync::watch::Sender<Fault>,
    pub forwarded: Arc<AtomicUsize>,
    /// Bodies accepted in `RejectPoison` mode.
    pub accepted: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::watch::channel(Fault::Pass);
        let forwarded = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (fwd, acc) = (forwarded.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut rx = rx.clone();
                let upstream = upstream.clone();
                let (fwd, acc) = (fwd.clone(), acc.clone());
                tokio::spawn(async move {
                    let mode = *rx.borrow_and_update();
                    let _ = proxy_one(client, &upstream, mode, &mut rx, &fwd, &acc).await;
                });
            }
        });
        Self {
            addr,
            mode: tx,
            forwarded,
            accepted,
        }
    }

    pub fn set(&self, f: Fault) {
        self.mode.send_replace(f);
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn read_request_head(sock: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(buf);
        }
    }
}

fn cbor_error(code: &str, message: &str) -> Vec<u8> {
    let mut body = vec![0xa2];
    for s in ["__type", code, "message", message] {
        assert!(s.len() < 24, "short CBOR strings only");
        body.push(0x60 | s.len() as u8);
        body.extend_from_slice(s.as_bytes());
    }
    let mut r = format!(
        "HTTP/1.1 400 Bad Request\r\nsmithy-protocol: rpc-v2-cbor\r\ncontent-type: application/cbor\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(&body);
    r
}

/// `RejectPoison`: keep-alive request loop answering every request itself.
async fn judge(mut client: TcpStream, accepted: &Mutex<Vec<Vec<u8>>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = client.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = client.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let resp = if body.windows(6).any(|w| w == b"Poison") {
            cbor_error("InvalidParameterValue", "bad datum")
        } else {
            accepted.lock().unwrap().push(body);
            b"HTTP/1.1 200 OK\r\nsmithy-protocol: rpc-v2-cbor\r\ncontent-type: application/cbor\r\ncontent-length: 1\r\n\r\n\xa0".to_vec()
        };
        client.write_all(&resp).await?;
    }
}

async fn proxy_one(
    mut client: TcpStream,
    upstream: &str,
    mode: Fault,
    rx: &mut tokio::sync::watch::Receiver<Fault>,
    forwarded: &AtomicUsize,
    accepted: &Mutex<Vec<Vec<u8>>>,
) -> std::io::Result<()> {
    match mode {
        Fault::RejectPoison => judge(client, accepted).await,
        Fault::Pass => {
            let mut server = TcpStream::connect(upstream).await?;
            forwarded.fetch_add(1, Ordering::SeqCst);
            tokio::select! {
                r = tokio::io::copy_bidirectional(&mut client, &mut server) => r.map(|_| ()),
                _ = rx.changed() => Ok(()), // cut: the next request sees the new mode
            }
        }
        Fault::Unavailable | Fault::Throttle => {
            let _ = read_request_head(&mut client).await?;
            let resp: Vec<u8> = if mode == Fault::Unavailable {
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec()
            } else {
                cbor_error("Throttling", "Rate exceeded")
            };
            client.write_all(&resp).await?;
            client.shutdown().await
        }
        Fault::Reset => {
            let _ = read_request_head(&mut client).await?;
            // Linger 0 turns the close into an RST.
            let std = client.into_std()?;
            socket_linger_zero(&std);
            drop(std);
            Ok(())
        }
        Fault::Hang => {
            let _ = read_request_head(&mut client).await?;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
    }
}

fn socket_linger_zero(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Linger {
        l_onoff: i32,
        l_linger: i32,
    }
    unsafe extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, val: *const Linger, len: u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_LINGER: i32 = 13;
    let l = Linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid fd and a correctly sized struct linger.
    unsafe {
        setsockopt(
            s.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            &l,
            std::mem::size_of::<Linger>() as u32,
        )
    };
}

/// Resident set size of a process, in KiB, from /proc/<pid>/status.
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
