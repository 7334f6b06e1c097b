//! The stat fast path: (size, mtime, ctime, inode) → content hash and encoding, recorded by
//! the last build, so an unchanged file is not read again.
//!
//! Git's racy-timestamp rule applies: an entry is trusted only when the file's mtime is older
//! than the moment its stat was taken minus [`RACY_NANOS`] (coarse file-system clocks), so a
//! file modified in the same clock tick as the stat is always re-read. A tree whose mtimes
//! were all reset (a fresh checkout, a restored CI cache) has no trusted entry and costs one
//! hashing pass — never a wrong hit. Entries are keyed by repo-relative path; inodes and times
//! are never part of a stage key.


use serde::{Deserialize, Serialize};

use crate::source::ContentHash;

/// Slack for file systems whose timestamps are coarser than nanoseconds.
pub const RACY_NANOS: i128 = 2_000_000_000;

/// What `stat` says of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub inode: u64,
}

impl Stat {
    pub fn of(meta: &std::fs::Metadata) -> Stat {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            Stat {
                size: meta.len(),
                mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
                ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
                inode: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let nanos = |t: std::io::Result<std::time::SystemTime>| {
                t.ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as i128)
            };
            Stat { size: meta.len(), mtime_ns: nanos(meta.modified()), ctime_ns: nanos(meta.created()), inode: 0 }
        }
    }
}

/// One file's recorded stat and what its bytes were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatEntry {
    pub path: String,
    pub stat: Stat,
    /// Wall-clock nanoseconds when `stat` was taken.
    pub taken_ns: i128,
    pub hash: ContentHash,
    pub encoding: String,
    /// The racy window of the file's file system: the entry is trusted only when the mtime is
    /// more than this much older than `taken_ns` ([`RACY_NANOS`] for sources; measured for
    /// the artifacts the build writes, see [`timestamp_granularity_ns`]).
    pub window_ns: i128,
}

impl StatEntry {
    /// The entry vouches for a file that stats as `now`.
    pub fn trusted_for(&self, now: &Stat) -> bool {
        self.stat == *now && self.stat.mtime_ns + self.window_ns < self.taken_ns
    }
}

/// The stat entries of the last build, by path.
#[derive(Debug, Default)]
pub struct StatCache {
    entries: rustc_hash::FxHashMap<String, StatEntry>,
    /// Whether `entries` are the stored ones (else the store is rewritten whole).
    stored: bool,
}

/// What a build writes of its stat entries: all of them in place of the stored ones
/// (`replace`), or those that differ from the stored ones and the paths gone.
pub struct StatsUpdate<'a> {
    pub replace: bool,
    pub put: Vec<&'a StatEntry>,
    pub remove: Vec<String>,
}

impl StatCache {
    /// The cache of the stored entries, `None` when they could not be read.
    pub fn new(entries: Option<Vec<StatEntry>>) -> Self {
        let stored = entries.is_some();
        StatCache { entries: entries.unwrap_or_default().into_iter().map(|e| (e.path.clone(), e)).collect(), stored }
    }

    pub fn get(&self, path: &str) -> Option<&StatEntry> {
        self.entries.get(path)
    }

    /// What to write for this build's `entries`: a file the stat vouched for keeps its stored
    /// entry, so an edit writes the few entries it re-took.
    pub fn update<'a>(&self, entries: &'a [StatEntry]) -> StatsUpdate<'a> {
        if !self.stored {
            return StatsUpdate { replace: true, put: entries.iter().collect(), remove: Vec::new() };
        }
        let mut stored_seen = 0;
        let put = entries
            .iter()
            .filter(|e| match self.entries.get(&e.path) {
                Some(stored) => {
                    stored_seen += 1;
                    stored != *e
                }
                None => true,
            })
            .collect();
        // Paths are unique: when every stored entry was seen, none is gone (the usual case,
        // which then needs no set of this build's paths).
        let mut remove: Vec<String> = Vec::new();
        if stored_seen < self.entries.len() {
            let live: std::collections::HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
            remove = self.entries.keys().filter(|path| !live.contains(path.as_str())).cloned().collect();
            remove.sort();
        }
        StatsUpdate { replace: false, put, remove }
    }
}

/// Now, in wall-clock nanoseconds since the epoch.
/// The granularity of file modification times in `dir`, measured: a file there is rewritten
/// until its mtime has advanced a few times, and the smallest step is the clock tick the file
/// system stamps with (Linux stamps with a coarse clock, a few milliseconds, even on file
/// systems that store nanoseconds). `None` when it did not advance within 100 ms (a coarse
/// file system) or the probe could not be written.
pub fn timestamp_granularity_ns(dir: &std::path::Path) -> Option<i128> {
    use std::io::Write as _;
    let mut probe = tempfile::Builder::new().prefix(".tmp-clock-").tempfile_in(dir).ok()?;
    let started = std::time::Instant::now();
    let mut seen: Vec<i128> = Vec::new();
    while started.elapsed() < std::time::Duration::from_millis(100) && seen.len() < 4 {
        probe.as_file_mut().write_all(b"x").ok()?;
        let mtime = Stat::of(&probe.as_file().metadata().ok()?).mtime_ns;
        if seen.last() != Some(&mtime) {
            seen.push(mtime);
        }
    }
    seen.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0).min()
}

/// The racy window for artifacts written to `dir`: twice the measured timestamp granularity
/// plus a millisecond, or [`RACY_NANOS`] when it cannot be measured.
pub fn artifact_window_ns(dir: &std::path::Path) -> i128 {
    timestamp_granularity_ns(dir).map_or(RACY_NANOS, |g| (2 * g + 1_000_000).min(RACY_NANOS))
}

/// [`artifact_window_ns`] of a directory, measured on a thread of its own while a build
/// evaluates: the probe waits for a few clock ticks (~10 ms where Linux stamps with a 4 ms
/// tick) that the build need not wait for. Dropping it waits for the probe, so that its
/// temporary file never outlives the build.
pub struct WindowProbe {
    probe: Option<std::thread::JoinHandle<i128>>,
    measured: Option<i128>,
}

impl WindowProbe {
    pub fn start(dir: &std::path::Path) -> WindowProbe {
        let dir = dir.to_path_buf();
        let probe = std::thread::Builder::new().name("clock-probe".into()).spawn(move || artifact_window_ns(&dir)).ok();
        WindowProbe { probe, measured: None }
    }

    /// The measured window ([`RACY_NANOS`] when the probe failed); waits for the probe once.
    pub fn window_ns(&mut self) -> i128 {
        if let Some(probe) = self.probe.take() {
            self.measured = probe.join().ok();
        }
        self.measured.unwrap_or(RACY_NANOS)
    }
}

impl Drop for WindowProbe {
    fn drop(&mut self) {
        self.window_ns();
    }
}

pub fn now_ns() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mtime_ns: i128, taken_ns: i128) -> StatEntry {
        StatEntry {
            path: "a.py".into(),
            stat: Stat { size: 3, mtime_ns, ctime_ns: mtime_ns, inode: 7 },
            taken_ns,
            hash: ContentHash([0; 32]),
            encoding: "utf-8".into(),
            window_ns: RACY_NANOS,
        }
    }

    /// A build writes the entries it re-took and removes the paths gone; without readable
    /// stored entries, it replaces them all.
    #[test]
    fn stat_entries_are_written_entry_by_entry() {
        let at = |path: &str, mtime_ns: i128| StatEntry { path: path.into(), ..entry(mtime_ns, 5) };
        let cache = StatCache::new(Some(vec![at("a.py", 1), at("b.py", 1), at("c.py", 1)]));
        let now = [at("a.py", 1), at("b.py", 2), at("d.py", 1)];
        let update = cache.update(&now);
        assert!(!update.replace);
        assert_eq!(update.put.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["b.py", "d.py"]);
        assert_eq!(update.remove, ["c.py"]);
        let unread = StatCache::new(None).update(&now);
        assert!(unread.replace && unread.remove.is_empty() && unread.put.len() == 3);
    }

    #[test]
    fn timestamp_granularity_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        // Every file system this runs on stamps at least once a second; Linux ext4/tmpfs with
        // its coarse clock, every few milliseconds.
        if let Some(step) = timestamp_granularity_ns(dir.path()) {
            assert!(step > 0 && step <= 1_000_000_000, "{step}");
            assert!(artifact_window_ns(dir.path()) <= RACY_NANOS);
        }
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "the probe is removed");
    }

    #[test]
    fn racy_entries_are_not_trusted() {
        let old = entry(1_000_000_000, 10_000_000_000);
        assert!(old.trusted_for(&old.stat));
        // Modified within the racy window before the stat was taken: re-read.
        let racy = entry(9_000_000_000, 10_000_000_000);
        assert!(!racy.trusted_for(&racy.stat));
        // Any field of the stat differing: re-read.
        for changed in [
            Stat { size: 4, ..old.stat },
            Stat { mtime_ns: 2, ..old.stat },
            Stat { ctime_ns: 2, ..old.stat },
            Stat { inode: 8, ..old.stat },
        ] {
            assert!(!old.trusted_for(&changed));
        }
    }
}
