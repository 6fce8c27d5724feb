//! CPU utilisation from `/proc/stat`.
//!
//! The kernel exposes cumulative tick counters; a sample is the share of the
//! delta between two reads. The `/proc` root is a parameter so tests can parse
//! fixture files.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The aggregate `cpu` line of `/proc/stat`, in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

/// One CPU sample: shares of elapsed CPU time, in percent (0..=100).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuSample {
    /// `100 × (Δtotal − Δidle − Δiowait) / Δtotal`.
    pub busy: f64,
    pub steal: f64,
    pub iowait: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl CpuTimes {
    /// Parses the contents of a `/proc/stat` file.
    ///
    /// Only the aggregate `cpu` line is read. A general `/proc/stat` parser
    /// also decodes the `intr` line, one number per interrupt source (hundreds
    /// here, thousands on large instances), which made parsing the largest
    /// userspace cost of a sample.
    pub fn parse(buf: &[u8]) -> Result<Self, String> {
        let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = std::str::from_utf8(line).map_err(|_| "the cpu line is not UTF-8".to_owned())?;
        let mut words = line.split_ascii_whitespace();
        if words.next() != Some("cpu") {
            return Err("the first line is not the aggregate cpu line".to_owned());
        }
        // user nice system idle [iowait irq softirq [steal [guest [guest_nice]]]]:
        // older kernels stop early, and missing fields count as zero. Guest
        // time is already counted inside user (and guest_nice inside nice),
        // so it is deliberately not read.
        let mut f = [0u64; 8];
        let mut n = 0;
        for (slot, word) in f.iter_mut().zip(&mut words) {
            *slot = word
                .parse()
                .map_err(|e| format!("cpu field {} ({word:?}): {e}", n + 1))?;
            n += 1;
        }
        if n < 4 {
            return Err(format!("the cpu line has {n} fields, at least 4 expected"));
        }
        let [user, nice, system, idle, iowait, irq, softirq, steal] = f;
        Ok(Self {
            user,
            nice,
            system,
            idle,
            iowait,
            irq,
            softirq,
            steal,
        })
    }

    fn fields(&self) -> [u64; 8] {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
    }

    /// Sum of all states, in ticks.
    pub fn total(&self) -> u64 {
        self.fields().iter().fold(0u64, |a, &b| a.saturating_add(b))
    }

    /// The sample between two reads, or `None` when there is nothing to
    /// report: no time elapsed, or the counters went backwards as a whole
    /// (CPU hot-unplug drops the offlined CPU's ticks from the aggregate).
    pub fn between(prev: &Self, cur: &Self) -> Option<CpuSample> {
        if cur.total() <= prev.total() {
            return None;
        }
        // A single counter may still step back while the sum grows: iowait is
        // known to do so on NO_HZ kernels. Such a field contributes nothing
        // rather than a negative share.
        let d = |a: u64, b: u64| b.saturating_sub(a);
        let (p, c) = (prev.fields(), cur.fields());
        let deltas: [u64; 8] = std::array::from_fn(|i| d(p[i], c[i]));
        let total: u64 = deltas.iter().sum();
        if total == 0 {
            return None;
        }
        let idle = deltas[3];
        let iowait = deltas[4];
        let steal = deltas[7];
        let pct = |n: u64| (100.0 * n as f64 / total as f64).clamp(0.0, 100.0);
        Some(CpuSample {
            busy: pct(total - idle - iowait),
            steal: pct(steal),
            iowait: pct(iowait),
        })
    }
}

/// How much of `/proc/stat` one sample reads: the aggregate `cpu` line is
/// the first and is under 200 bytes (ten 20-digit counters at most).
const READ_BYTES: usize = 512;

/// Reads `/proc/stat` and turns successive reads into samples.
#[derive(Debug)]
pub struct CpuSampler {
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
    prev: Option<CpuTimes>,
}

impl CpuSampler {
    /// A sampler over `<proc_root>/stat`.
    pub fn new(proc_root: &Path) -> Self {
        Self {
            path: proc_root.join("stat"),
            file: None,
            buf: Vec::with_capacity(READ_BYTES),
            prev: None,
        }
    }

    /// Reads the counters once. The first call (and the first after counters
    /// went backwards) only sets the baseline and returns `Ok(None)`.
    pub fn sample(&mut self) -> Result<Option<CpuSample>, CpuError> {
        let cur = self.read()?;
        let sample = self.prev.and_then(|prev| CpuTimes::between(&prev, &cur));
        self.prev = Some(cur);
        Ok(sample)
    }

    fn read(&mut self) -> Result<CpuTimes, CpuError> {
        let err = |source| CpuError::Read {
            path: self.path.clone(),
            source,
        };
        // Keep the file open and read it from offset 0 with one pread: procfs
        // regenerates the contents on every read from offset 0, and it saves
        // an open, a seek and a close per sample. The aggregate line comes
        // first and is short, so one read of READ_BYTES holds it.
        let file = match self.file.as_mut() {
            Some(f) => f,
            None => self.file.insert(File::open(&self.path).map_err(err)?),
        };
        self.buf.resize(READ_BYTES, 0);
        let n = match file.read_at(&mut self.buf, 0) {
            Ok(n) => n,
            Err(e) => {
                self.file = None;
                return Err(err(e));
            }
        };
        self.buf.truncate(n);
        CpuTimes::parse(&self.buf).map_err(|message| CpuError::Parse {
            path: self.path.clone(),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(cpu_line: &str) -> String {
        format!(
            "{cpu_line}\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1 2 3\nctxt 100\nbtime 1700000000\nprocesses 10\nprocs_running 1\nprocs_blocked 0\nsoftirq 1 2\n"
        )
    }

    fn times(cpu_line: &str) -> CpuTimes {
        CpuTimes::parse(stat(cpu_line).as_bytes()).unwrap()
    }

    #[test]
    fn parses_all_fields_and_ignores_guest() {
        let t = times("cpu  100 20 30 400 50 6 7 8 90 10");
        assert_eq!(
            t,
            CpuTimes {
                user: 100,
                nice: 20,
                system: 30,
                idle: 400,
                iowait: 50,
                irq: 6,
                softirq: 7,
                steal: 8
            }
        );
        assert_eq!(t.total(), 621);
    }

    #[test]
    fn old_kernels_without_optional_fields() {
        let t = times("cpu 10 0 10 80");
        assert_eq!(t.total(), 100);
        assert_eq!(t.steal, 0);
    }

    #[test]
    fn busy_share_excludes_idle_and_iowait() {
        let a = times("cpu 0 0 0 0 0 0 0 0 0 0");
        // 100 ticks: 30 user, 10 system, 40 idle, 10 iowait, 5 irq, 5 steal.
        let b = times("cpu 30 0 10 40 10 5 0 5 20 0");
        let s = CpuTimes::between(&a, &b).unwrap();
        assert!((s.busy - 50.0).abs() < 1e-9, "{s:?}");
        assert!((s.iowait - 10.0).abs() < 1e-9);
        assert!((s.steal - 5.0).abs() < 1e-9);
    }

    #[test]
    fn zero_delta_is_no_sample() {
        let a = times("cpu 1 2 3 4 5 6 7 8 0 0");
        assert_eq!(CpuTimes::between(&a, &a), None);
    }

    #[test]
    fn counters_going_backwards_are_no_sample() {
        let a = times("cpu 1000 0 1000 8000 0 0 0 0 0 0");
        let b = times("cpu 500 0 500 4000 0 0 0 0 0 0");
        assert_eq!(CpuTimes::between(&a, &b), None);
    }

    #[test]
    fn one_field_backwards_never_gives_negative_or_over_100() {
        // iowait drops by 5 while everything else moves on.
        let a = times("cpu 100 0 100 800 50 0 0 0 0 0");
        let b = times("cpu 150 0 100 850 45 0 0 0 0 0");
        let s = CpuTimes::between(&a, &b).unwrap();
        assert!((0.0..=100.0).contains(&s.busy), "{s:?}");
        assert_eq!(s.iowait, 0.0);
        assert!((s.busy - 50.0).abs() < 1e-9);
    }

    #[test]
    fn fully_busy_and_fully_idle() {
        let a = times("cpu 0 0 0 0 0 0 0 0 0 0");
        let busy = CpuTimes::between(&a, &times("cpu 100 0 0 0 0 0 0 0 0 0")).unwrap();
        assert_eq!(busy.busy, 100.0);
        let idle = CpuTimes::between(&a, &times("cpu 0 0 0 100 0 0 0 0 0 0")).unwrap();
        assert_eq!(idle.busy, 0.0);
    }

    #[test]
    fn only_the_aggregate_line_is_read() {
        // A large instance's intr line has thousands of numbers; nothing past
        // the first line matters, even if it would not parse.
        let intr: String = (0..5000).map(|i| format!(" {i}")).collect();
        let buf = format!("cpu  1 2 3 4 5 6 7 8 9 10\nintr{intr}\ncpu0 x\n");
        let t = CpuTimes::parse(buf.as_bytes()).unwrap();
        assert_eq!(t.total(), 36);
        assert!(CpuTimes::parse(b"cpu0 1 2 3 4\ncpu 1 2 3 4\n").is_err());
        assert!(
            CpuTimes::parse(b"cpu 1 2 3\n").is_err(),
            "fewer than 4 fields"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(CpuTimes::parse(b"").is_err());
        assert!(CpuTimes::parse(b"cpu x y z\n").is_err());
        assert!(CpuTimes::parse(&[0xff, 0xfe, 0x00]).is_err());
    }

    #[test]
    fn sampler_reads_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        std::fs::write(&path, stat("cpu 0 0 0 0 0 0 0 0 0 0")).unwrap();
        let mut s = CpuSampler::new(dir.path());
        assert!(s.sample().unwrap().is_none(), "first read is the baseline");
        std::fs::write(&path, stat("cpu 75 0 0 25 0 0 0 0 0 0")).unwrap();
        let sample = s.sample().unwrap().unwrap();
        assert_eq!(sample.busy, 75.0);
    }

    #[test]
    fn sampler_reads_the_real_proc_stat() {
        let mut s = CpuSampler::new(Path::new("/proc"));
        s.sample().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        if let Some(x) = s.sample().unwrap() {
            assert!((0.0..=100.0).contains(&x.busy));
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let mut s = CpuSampler::new(Path::new("/nonexistent-proc"));
        let e = s.sample().unwrap_err().to_string();
        assert!(e.contains("/nonexistent-proc/stat"), "{e}");
    }
}
