//! The disk spool: every closed window is made durable here before it is
//! sent, and removed only after CloudWatch acknowledged it.
//!
//! One file per window, named `<seq>-<timestamp>.win` so names sort in the
//! order windows were closed. A file is a one-line header followed by the
//! datums as JSON:
//!
//! ```text
//! cwpulse-spool 1 <crc32 of body, hex> <body length>\n
//! [{"MetricName":...}, ...]
//! ```
//!
//! Files are written to a temporary name, fsynced, renamed and the directory
//! fsynced, so a crash leaves either the whole window or nothing. A file that
//! fails any check (header, version, length, checksum, JSON, datum validity)
//! is moved to `quarantine/` with a WARN and never blocks newer data.
//!
//! Delivery is exactly once except for one window of uncertainty: a crash (or
//! a shutdown deadline) after CloudWatch processed a call but before its
//! files were deleted re-sends that one call's datums on the next start. There
//! is no idempotency token in `PutMetricData` to close that window; it is
//! bounded to one batch.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::publish::{MAX_BYTES_PER_CALL, MAX_DATUMS_PER_CALL, estimated_size};
use crate::window::Datum;

const MAGIC: &str = "cwpulse-spool";
const VERSION: u32 = 1;
const EXT: &str = "win";
/// Quarantined files kept for inspection; older ones are deleted.
const MAX_QUARANTINED: usize = 32;
/// Where `cwpulse status` reads from, inside the spool directory.
pub const STATE_FILE: &str = "state.json";

/// CloudWatch rejects datums older than two weeks; keep a margin for the
/// time the call itself takes.
pub const MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600 - 600);
/// ... and datums more than two hours in the future.
pub const MAX_FUTURE: Duration = Duration::from_secs(2 * 3600 - 300);

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("spool {path} is locked by another cwpulse process; run one agent per spool directory")]
    Locked { path: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corrupt {
    #[error("not a spool file (bad header)")]
    Header,
    #[error("spool format version {0} is not supported (this agent reads {VERSION})")]
    Version(u32),
    #[error("truncated: header says {expected} bytes, found {found}")]
    Length { expected: usize, found: usize },
    #[error("checksum mismatch")]
    Checksum,
    #[error("unreadable datums: {0}")]
    Json(String),
    #[error("invalid datum (NaN, infinity or an inconsistent statistic set)")]
    InvalidDatum,
}

/// Encodes datums into the file format.
pub fn encode(datums: &[Datum]) -> Vec<u8> {
    let body = serde_json::to_vec(datums).expect("datums always serialize");
    let crc = crc32fast::hash(&body);
    let mut out = format!("{MAGIC} {VERSION} {crc:08x} {}\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Decodes a file; never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<Vec<Datum>, Corrupt> {
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Corrupt::Header)?;
    let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| Corrupt::Header)?;
    let mut parts = header.split(' ');
    if parts.next() != Some(MAGIC) {
        return Err(Corrupt::Header);
    }
    let version: u32 = parts
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or(Corrupt::Header)?;
    if version != VERSION {
        return Err(Corrupt::Version(version));
    }
    let crc = parts
        .next()
        .and_then(|v| u32::from_str_radix(v, 16).ok())
        .ok_or(Corrupt::Header)?;
    let len: usize = parts
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or(Corrupt::Header)?;
    if parts.next().is_some() {
        return Err(Corrupt::Header);
    }
    let body = &bytes[nl + 1..];
    if body.len() != len {
        return Err(Corrupt::Length {
            expected: len,
            found: body.len(),
        });
    }
    if crc32fast::hash(body) != crc {
        return Err(Corrupt::Checksum);
    }
    let datums: Vec<Datum> =
        serde_json::from_slice(body).map_err(|e| Corrupt::Json(e.to_string()))?;
    if !datums.iter().all(Datum::is_valid) {
        return Err(Corrupt::InvalidDatum);
    }
    Ok(datums)
}

/// One spooled window in the index.
#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    timestamp: i64,
    bytes: u64,
}

impl Entry {
    fn name(&self) -> String {
        format!("{:016}-{}.{EXT}", self.seq, self.timestamp)
    }

    fn parse(name: &str) -> Option<(u64, i64)> {
        let stem = name.strip_suffix(&format!(".{EXT}"))?;
        let (seq, ts) = stem.split_once('-')?;
        Some((seq.parse().ok()?, ts.parse().ok()?))
    }
}

/// Counters and times for `cwpulse status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub pid: u32,
    pub unsent_windows: u64,
    pub unsent_bytes: u64,
    /// Timestamp (ms) of the oldest unsent window.
    pub oldest_unsent_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_error_ms: Option<i64>,
    pub last_error: Option<String>,
    pub sent_datums: u64,
    pub evicted_windows: u64,
    pub expired_datums: u64,
    pub rejected_datums: u64,
    pub quarantined_files: u64,
    pub updated_ms: i64,
}

struct Inner {
    entries: VecDeque<Entry>,
    bytes: u64,
    next_seq: u64,
    state: State,
}

impl Inner {
    /// Drops a window from the index (its file is handled by the caller).
    fn forget(&mut self, seq: u64) {
        if let Some(pos) = self.entries.iter().position(|e| e.seq == seq) {
            let e = self.entries.remove(pos).expect("position is valid");
            self.bytes -= e.bytes;
        }
    }
}

/// The spool directory. Shared between the window loop (which appends) and
/// the publisher (which reads and removes); the lock is held only for index
/// updates, never across I/O that waits on the network.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    inner: Mutex<Inner>,
    _lock: File,
}

/// A batch handed to the publisher: whole windows in order, except that a
/// window larger than one call is sent in parts.
#[derive(Debug)]
pub struct Batch {
    pub datums: Vec<Datum>,
    /// (window seq, number of its datums in this batch, datums it has in all)
    parts: Vec<(u64, usize, usize)>,
    /// Datums dropped while loading because CloudWatch would refuse their age.
    pub expired: usize,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Spool {
    /// Opens (creating) the spool directory, takes its lock and indexes the
    /// windows already there.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(SpoolError::Locked {
                    path: dir.to_owned(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let mut entries = Vec::new();
        for item in fs::read_dir(dir).map_err(io_err(dir))? {
            let item = item.map_err(io_err(dir))?;
            let name = item.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") {
                // A write that never reached its rename: not a window yet.
                let _ = fs::remove_file(item.path());
                continue;
            }
            if let Some((seq, timestamp)) = Entry::parse(&name) {
                let bytes = item.metadata().map(|m| m.len()).unwrap_or(0);
                entries.push(Entry {
                    seq,
                    timestamp,
                    bytes,
                });
            }
        }
        entries.sort_by_key(|e| e.seq);
        let bytes = entries.iter().map(|e| e.bytes).sum();
        let next_seq = entries.last().map_or(0, |e| e.seq + 1);
        let previous = fs::read(dir.join(STATE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<State>(&b).ok())
            .unwrap_or_default();
        let spool = Self {
            dir: dir.to_owned(),
            max_bytes,
            inner: Mutex::new(Inner {
                entries: entries.into(),
                bytes,
                next_seq,
                state: State {
                    pid: std::process::id(),
                    ..previous
                },
            }),
            _lock: lock,
        };
        spool.save_state();
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// (windows, bytes) waiting.
    pub fn depth(&self) -> (usize, u64) {
        let g = self.inner.lock().unwrap();
        (g.entries.len(), g.bytes)
    }

    /// Makes one closed window durable. Evicts the oldest windows beyond the
    /// size cap.
    pub fn append(&self, timestamp: SystemTime, datums: &[Datum]) -> Result<(), SpoolError> {
        if datums.is_empty() {
            return Ok(());
        }
        let timestamp = timestamp
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let seq = {
            let mut g = self.inner.lock().unwrap();
            g.next_seq += 1;
            g.next_seq - 1
        };
        let bytes = encode(datums);
        let entry = Entry {
            seq,
            timestamp,
            bytes: bytes.len() as u64,
        };
        self.write_atomic(&entry.name(), &bytes)?;
        let evicted = {
            let mut g = self.inner.lock().unwrap();
            g.bytes += entry.bytes;
            g.entries.push_back(entry);
            let mut evicted = Vec::new();
            while g.bytes > self.max_bytes && g.entries.len() > 1 {
                let old = g.entries.pop_front().expect("len > 1");
                g.bytes -= old.bytes;
                g.state.evicted_windows += 1;
                evicted.push(old);
            }
            evicted
        };
        if !evicted.is_empty() {
            for e in &evicted {
                let _ = fs::remove_file(self.dir.join(e.name()));
            }
            tracing::warn!(
                windows = evicted.len(),
                max_bytes = self.max_bytes,
                "Spool full; evicted the oldest unsent windows"
            );
        }
        self.save_state();
        Ok(())
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), SpoolError> {
        let tmp = self.dir.join(format!(".tmp-{name}"));
        let dst = self.dir.join(name);
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &dst)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(&dst)(e)
        })
    }

    /// Loads the next batch, oldest first, within the API limits. Corrupt
    /// files are quarantined on the way; datums CloudWatch would refuse for
    /// their age are dropped (and counted).
    pub fn next_batch(&self) -> Option<Batch> {
        let now = now_ms();
        let oldest_ok = now - MAX_AGE.as_millis() as i64;
        let newest_ok = now + MAX_FUTURE.as_millis() as i64;
        let mut batch = Batch {
            datums: Vec::new(),
            parts: Vec::new(),
            expired: 0,
        };
        let mut bytes = 0usize;
        let mut index = 0usize;
        loop {
            let Some(entry) = self.inner.lock().unwrap().entries.get(index).cloned() else {
                break;
            };
            let path = self.dir.join(entry.name());
            let datums = match fs::read(&path) {
                Ok(b) => decode(&b),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Corrupt::Header),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "Cannot read spool file; will retry");
                    break;
                }
            };
            let datums = match datums {
                Ok(d) => d,
                Err(reason) => {
                    self.quarantine(&entry, &reason);
                    continue; // the index shifted; same position is the next file
                }
            };
            let (fresh, stale): (Vec<Datum>, Vec<Datum>) = datums
                .into_iter()
                .partition(|d| (oldest_ok..=newest_ok).contains(&d.timestamp));
            if !stale.is_empty() {
                // Rewrite without the datums CloudWatch would refuse, so they
                // are counted once, not on every attempt.
                batch.expired += stale.len();
                let gone = fresh.is_empty();
                self.shrink(&entry, fresh.clone());
                if gone {
                    continue; // removed from the index; same position is the next file
                }
            }
            let total = fresh.len();
            let room = MAX_DATUMS_PER_CALL - batch.datums.len();
            let mut take = 0;
            let mut add_bytes = 0;
            for d in fresh.iter().take(room) {
                let s = estimated_size(d);
                if bytes + add_bytes + s > MAX_BYTES_PER_CALL
                    && !(take == 0 && batch.parts.is_empty())
                {
                    break;
                }
                add_bytes += s;
                take += 1;
            }
            let whole = take == total;
            if !whole && !batch.parts.is_empty() {
                break; // starts the next batch instead
            }
            batch.datums.extend(fresh.into_iter().take(take));
            batch.parts.push((entry.seq, take, total));
            bytes += add_bytes;
            index += 1;
            if !whole || batch.datums.len() == MAX_DATUMS_PER_CALL {
                break;
            }
        }
        if batch.expired > 0 {
            tracing::warn!(
                datums = batch.expired,
                "Dropped spooled datums CloudWatch no longer accepts (older than 14 days or over 2 h in the future)"
            );
            self.inner.lock().unwrap().state.expired_datums += batch.expired as u64;
            self.save_state();
        }
        (!batch.datums.is_empty()).then_some(batch)
    }

    /// Records that the first `done` datums of `batch` are settled (delivered
    /// or rejected): whole windows are deleted, a partly settled one is
    /// rewritten with what remains.
    pub fn settle(&self, batch: &Batch, done: usize, sent: usize, rejected: usize) {
        let mut left = done;
        for &(seq, n, total) in &batch.parts {
            if left == 0 {
                break;
            }
            let entry = {
                let g = self.inner.lock().unwrap();
                g.entries.iter().find(|e| e.seq == seq).cloned()
            };
            let Some(entry) = entry else { continue };
            let settled = left.min(n);
            left -= settled;
            if settled == total {
                self.remove(&entry);
            } else {
                // Part of this window is settled: keep the rest.
                let path = self.dir.join(entry.name());
                if let Ok(rest) = fs::read(&path)
                    .map_err(|_| Corrupt::Header)
                    .and_then(|b| decode(&b))
                {
                    let skip = settled.min(rest.len());
                    self.shrink(&entry, rest.into_iter().skip(skip).collect());
                }
            }
        }
        let mut g = self.inner.lock().unwrap();
        g.state.sent_datums += sent as u64;
        g.state.rejected_datums += rejected as u64;
        if sent > 0 {
            g.state.last_success_ms = Some(now_ms());
        }
        drop(g);
        self.save_state();
    }

    /// Records a failed attempt for `cwpulse status`.
    pub fn record_error(&self, error: &str) {
        let mut g = self.inner.lock().unwrap();
        g.state.last_error_ms = Some(now_ms());
        g.state.last_error = Some(error.to_owned());
        drop(g);
        self.save_state();
    }

    fn shrink(&self, entry: &Entry, rest: Vec<Datum>) {
        if rest.is_empty() {
            self.remove(entry);
            return;
        }
        let bytes = encode(&rest);
        match self.write_atomic(&entry.name(), &bytes) {
            Ok(()) => {
                let mut g = self.inner.lock().unwrap();
                if let Some(e) = g.entries.iter_mut().find(|e| e.seq == entry.seq) {
                    let old = e.bytes;
                    e.bytes = bytes.len() as u64;
                    g.bytes = g.bytes - old + bytes.len() as u64;
                }
            }
            Err(e) => tracing::warn!(error = %e, "Cannot rewrite spool file"),
        }
    }

    fn remove(&self, entry: &Entry) {
        let path = self.dir.join(entry.name());
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "Cannot delete a sent window");
        }
        let mut g = self.inner.lock().unwrap();
        g.forget(entry.seq);
    }

    fn quarantine(&self, entry: &Entry, reason: &Corrupt) {
        let qdir = self.dir.join("quarantine");
        let from = self.dir.join(entry.name());
        let moved =
            fs::create_dir_all(&qdir).and_then(|_| fs::rename(&from, qdir.join(entry.name())));
        if moved.is_err() {
            let _ = fs::remove_file(&from);
        }
        tracing::warn!(
            file = %from.display(),
            %reason,
            "Corrupt spool file moved to quarantine; newer windows go on"
        );
        {
            let mut g = self.inner.lock().unwrap();
            g.forget(entry.seq);
            g.state.quarantined_files += 1;
        }
        // Keep the quarantine bounded too.
        if let Ok(rd) = fs::read_dir(&qdir) {
            let mut names: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            if names.len() > MAX_QUARANTINED {
                names.sort();
                for p in &names[..names.len() - MAX_QUARANTINED] {
                    let _ = fs::remove_file(p);
                }
            }
        }
    }

    /// Writes `state.json` (not fsynced: it is informational).
    pub fn save_state(&self) {
        let state = {
            let mut g = self.inner.lock().unwrap();
            g.state.unsent_windows = g.entries.len() as u64;
            g.state.unsent_bytes = g.bytes;
            g.state.oldest_unsent_ms = g.entries.front().map(|e| e.timestamp);
            g.state.updated_ms = now_ms();
            g.state.clone()
        };
        let tmp = self.dir.join(".state.json.tmp");
        let json = serde_json::to_vec_pretty(&state).expect("state serializes");
        if fs::write(&tmp, json)
            .and_then(|_| fs::rename(&tmp, self.dir.join(STATE_FILE)))
            .is_err()
        {
            let _ = fs::remove_file(&tmp);
        }
    }

    pub fn state(&self) -> State {
        self.inner.lock().unwrap().state.clone()
    }
}

/// Reads the state file of a spool directory (for `cwpulse status`).
pub fn read_state(dir: &Path) -> Result<State, SpoolError> {
    let path = dir.join(STATE_FILE);
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    serde_json::from_slice(&bytes).map_err(|e| SpoolError::Io {
        path,
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Dimension;

    fn datum(ts: i64, v: f64) -> Datum {
        Datum {
            metric_name: "CPUUtilization".into(),
            dimensions: vec![Dimension {
                name: "InstanceId".into(),
                value: "i-1".into(),
            }],
            timestamp: ts,
            unit: "Percent".into(),
            value: Some(v),
            statistic_values: None,
            storage_resolution: 60,
        }
    }

    fn at(ms: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    }

    #[test]
    fn encode_decode_round_trip() {
        let d = vec![datum(now_ms(), 1.0), datum(now_ms(), 2.5)];
        assert_eq!(decode(&encode(&d)).unwrap(), d);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_not_a_panic() {
        let bytes = encode(&[datum(1_764_000_000_000, 42.0)]);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                // A flip may land in the header's digits and still decode to
                // the same datum only if it is a no-op; anything else errors.
                if let Ok(d) = decode(&b) {
                    assert_eq!(d, decode(&bytes).unwrap(), "flip {i}:{bit}");
                }
            }
        }
    }

    #[test]
    fn pseudo_random_bytes_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..2000 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode(&bytes);
            let mut with_header = format!("{MAGIC} 1 00000000 {len}\n").into_bytes();
            with_header.extend_from_slice(&bytes);
            let _ = decode(&with_header);
        }
    }

    #[test]
    fn other_versions_are_refused() {
        let body = b"[]";
        let crc = crc32fast::hash(body);
        let mut b = format!("{MAGIC} 2 {crc:08x} 2\n").into_bytes();
        b.extend_from_slice(body);
        assert_eq!(decode(&b), Err(Corrupt::Version(2)));
    }

    #[test]
    fn append_batch_settle_in_order_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let now = now_ms();
        {
            let s = Spool::open(dir.path(), 1 << 20).unwrap();
            for i in 0..3 {
                s.append(at(now + i), &[datum(now + i, i as f64)]).unwrap();
            }
            assert_eq!(s.depth().0, 3);
        }
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.depth().0, 3, "windows survive a restart");
        let b = s.next_batch().unwrap();
        assert_eq!(
            b.datums
                .iter()
                .map(|d| d.value.unwrap())
                .collect::<Vec<_>>(),
            [0.0, 1.0, 2.0]
        );
        // Only the first two were acknowledged.
        s.settle(&b, 2, 2, 0);
        let b = s.next_batch().unwrap();
        assert_eq!(b.datums.len(), 1);
        assert_eq!(b.datums[0].value, Some(2.0));
        s.settle(&b, 1, 1, 0);
        assert!(s.next_batch().is_none());
        assert_eq!(s.depth(), (0, 0));
        let st = read_state(dir.path()).unwrap();
        assert_eq!(st.sent_datums, 3);
        assert_eq!(st.unsent_windows, 0);
        // New windows after a restart sort after the old ones.
        s.append(at(now), &[datum(now, 9.0)]).unwrap();
        drop(s);
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.next_batch().unwrap().datums[0].value, Some(9.0));
    }

    #[test]
    fn a_second_agent_cannot_open_the_same_spool() {
        let dir = tempfile::tempdir().unwrap();
        let _a = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(matches!(
            Spool::open(dir.path(), 1 << 20),
            Err(SpoolError::Locked { .. })
        ));
    }

    #[test]
    fn big_windows_split_and_partial_settle_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 1 << 30).unwrap();
        let now = now_ms();
        let big: Vec<Datum> = (0..2500).map(|i| datum(now, i as f64)).collect();
        s.append(at(now), &big).unwrap();
        s.append(at(now), &[datum(now, -1.0)]).unwrap();
        let b = s.next_batch().unwrap();
        assert_eq!(b.datums.len(), 1000);
        s.settle(&b, 1000, 1000, 0);
        let b = s.next_batch().unwrap();
        assert_eq!(b.datums.len(), 1000);
        assert_eq!(b.datums[0].value, Some(1000.0));
        s.settle(&b, 1000, 1000, 0);
        let b = s.next_batch().unwrap();
        assert_eq!(
            b.datums.len(),
            501,
            "the rest of the big window, then the next one"
        );
        assert_eq!(b.datums[500].value, Some(-1.0));
        // The call fails after the big window's rest was settled: only the
        // small window remains.
        s.settle(&b, 500, 500, 0);
        assert_eq!(s.depth().0, 1);
        let b = s.next_batch().unwrap();
        assert_eq!(b.datums.len(), 1);
        assert_eq!(b.datums[0].value, Some(-1.0));
    }

    #[test]
    fn corrupt_files_are_quarantined_and_do_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let now = now_ms();
        {
            let s = Spool::open(dir.path(), 1 << 20).unwrap();
            s.append(at(now), &[datum(now, 1.0)]).unwrap();
            s.append(at(now), &[datum(now, 2.0)]).unwrap();
        }
        let first = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == EXT))
            .min()
            .unwrap();
        let bytes = fs::read(&first).unwrap();
        fs::write(&first, &bytes[..bytes.len() / 2]).unwrap();
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        let b = s.next_batch().unwrap();
        assert_eq!(b.datums.len(), 1);
        assert_eq!(b.datums[0].value, Some(2.0));
        assert!(
            dir.path()
                .join("quarantine")
                .join(first.file_name().unwrap())
                .exists()
        );
        assert_eq!(s.state().quarantined_files, 1);
    }

    #[test]
    fn cap_evicts_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let now = now_ms();
        let one = encode(&[datum(now, 0.0)]).len() as u64;
        let s = Spool::open(dir.path(), one * 3).unwrap();
        for i in 0..10 {
            s.append(at(now), &[datum(now, i as f64)]).unwrap();
        }
        assert_eq!(s.depth().0, 3);
        assert_eq!(s.state().evicted_windows, 7);
        let b = s.next_batch().unwrap();
        assert_eq!(
            b.datums
                .iter()
                .map(|d| d.value.unwrap())
                .collect::<Vec<_>>(),
            [7.0, 8.0, 9.0]
        );
    }

    #[test]
    fn too_old_and_too_new_datums_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let now = now_ms();
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        let old = now - 15 * 24 * 3600 * 1000;
        let future = now + 3 * 3600 * 1000;
        s.append(at(old), &[datum(old, 1.0)]).unwrap();
        s.append(at(now), &[datum(now, 2.0), datum(future, 3.0)])
            .unwrap();
        let b = s.next_batch().unwrap();
        assert_eq!(b.expired, 2);
        assert_eq!(b.datums.len(), 1);
        assert_eq!(b.datums[0].value, Some(2.0));
        s.settle(&b, 1, 1, 0);
        assert_eq!(s.depth().0, 0);
        assert_eq!(s.state().expired_datums, 2);
        assert!(s.next_batch().is_none());
    }
}
