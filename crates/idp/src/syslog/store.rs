//! Where events live: an in-memory ring of the most recent ones, backed by
//! an append-only, size-rotated JSON Lines file that refills the ring on
//! restart.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use uuid::Uuid;

use super::event::Event;

const TRACE_TARGET: &str = "portcullis::syslog";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemLogConfig {
    /// The active file, e.g. `/var/lib/portcullis/events.jsonl`; rotated
    /// files get `.1` (newest) … `.keep_files` (oldest) appended.
    pub path: PathBuf,
    /// How many recent events queries can see.
    pub ring_capacity: usize,
    /// Rotate before a write would take the active file past this size.
    pub max_file_bytes: u64,
    /// Rotated files kept besides the active one; 0 discards on rotation.
    pub keep_files: usize,
}

impl SystemLogConfig {
    /// Defaults sized for a single gateway: ~10k events in memory, 5 × 16 MiB
    /// of history on disk.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SystemLogConfig {
            path: path.into(),
            ring_capacity: 10_000,
            max_file_bytes: 16 * 1024 * 1024,
            keep_files: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SystemLogError {
    #[error("invalid System Log configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("System Log I/O failed on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not serialise System Log event {uuid}: {source}")]
    Serialize {
        uuid: Uuid,
        #[source]
        source: serde_json::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SystemLogError + '_ {
    move |source| SystemLogError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The System Log. Cheap to share behind an `Arc`; every method takes
/// `&self` and serialises on one internal lock, which also keeps the file
/// order, the ring order and `published` order identical.
#[derive(Debug)]
pub struct SystemLog {
    config: SystemLogConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    ring: VecDeque<Event>,
    /// `None` after a write failure; the next emit reopens it.
    file: Option<File>,
    file_len: u64,
}

impl SystemLog {
    /// Opens (creating if needed) the log at `config.path` and reloads the
    /// newest `ring_capacity` events from it and its rotated files.
    pub fn open(config: SystemLogConfig) -> Result<SystemLog, SystemLogError> {
        if config.ring_capacity == 0 {
            return Err(SystemLogError::InvalidConfig(
                "ring_capacity must be at least 1",
            ));
        }
        if config.max_file_bytes == 0 {
            return Err(SystemLogError::InvalidConfig(
                "max_file_bytes must be at least 1",
            ));
        }
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        // Terminate a torn line before reading so it is skipped now and the
        // next append cannot glue itself onto it.
        let (file, file_len) = open_active(&config.path)?;

        let mut ring = VecDeque::with_capacity(config.ring_capacity.min(4096));
        let oldest_first = (1..=config.keep_files)
            .rev()
            .map(|i| rotated_path(&config.path, i))
            .chain(std::iter::once(config.path.clone()));
        for path in oldest_first {
            load_file(&path, &mut ring, config.ring_capacity)?;
        }
        tracing::debug!(
            target: TRACE_TARGET,
            path = %config.path.display(),
            events = ring.len(),
            "System Log opened"
        );
        Ok(SystemLog {
            config,
            inner: Mutex::new(Inner {
                ring,
                file: Some(file),
                file_len,
            }),
        })
    }

    pub fn config(&self) -> &SystemLogConfig {
        &self.config
    }

    /// Records `event`: it is in the ring and its line has been handed to
    /// the kernel before this returns. On an I/O error the event is still
    /// queryable and the error is returned for the caller to count or
    /// surface; nothing here panics.
    ///
    /// `published` is raised to its predecessor's if the clock went
    /// backwards (or the event was built earlier than the last one emitted),
    /// so ring order is also time order and cursors stay stable.
    pub fn emit(&self, mut event: Event) -> Result<(), SystemLogError> {
        let mut inner = self.lock();
        if let Some(last) = inner.ring.back() {
            if event.published < last.published {
                event.published = last.published;
            }
        }
        tracing::info!(
            target: TRACE_TARGET,
            uuid = %event.uuid,
            event_type = %event.event_type,
            outcome = event.outcome.result.as_str(),
            severity = event.severity.as_str(),
            "{}",
            event.display_message
        );
        let written = match serde_json::to_vec(&event) {
            Ok(mut line) => {
                line.push(b'\n');
                inner.append(&self.config, &line)
            }
            Err(source) => Err(SystemLogError::Serialize {
                uuid: event.uuid,
                source,
            }),
        };
        push_bounded(&mut inner.ring, event, self.config.ring_capacity);
        if let Err(error) = &written {
            tracing::warn!(target: TRACE_TARGET, %error, "System Log event kept in memory only");
        }
        written
    }

    /// Flushes written events to stable storage.
    pub fn sync(&self) -> Result<(), SystemLogError> {
        let inner = self.lock();
        match &inner.file {
            Some(file) => file.sync_data().map_err(io_error(&self.config.path)),
            None => Ok(()),
        }
    }

    pub fn close(self) -> Result<(), SystemLogError> {
        self.sync()
    }

    /// Number of events currently queryable.
    pub fn len(&self) -> usize {
        self.lock().ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn with_ring<R>(&self, f: impl FnOnce(&VecDeque<Event>) -> R) -> R {
        f(&self.lock().ring)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves the ring and file
        // consistent line-by-line, so keep logging rather than cascade.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn append(&mut self, config: &SystemLogConfig, line: &[u8]) -> Result<(), SystemLogError> {
        if self.file.is_none() {
            let (file, len) = open_active(&config.path)?;
            self.file = Some(file);
            self.file_len = len;
        }
        let line_len = u64::try_from(line.len()).unwrap_or(u64::MAX);
        if self.file_len > 0 && self.file_len.saturating_add(line_len) > config.max_file_bytes {
            self.rotate(config)?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(SystemLogError::InvalidConfig("active file unavailable"));
        };
        // One unbuffered write per line: nothing sits in a userspace buffer
        // once emit returns.
        match file.write_all(line) {
            Ok(()) => {
                self.file_len = self.file_len.saturating_add(line_len);
                Ok(())
            }
            Err(source) => {
                self.file = None;
                Err(io_error(&config.path)(source))
            }
        }
    }

    fn rotate(&mut self, config: &SystemLogConfig) -> Result<(), SystemLogError> {
        let path = &config.path;
        if let Some(file) = self.file.take() {
            file.sync_data().map_err(io_error(path))?;
        }
        if config.keep_files == 0 {
            remove_if_exists(path)?;
        } else {
            remove_if_exists(&rotated_path(path, config.keep_files))?;
            for i in (1..config.keep_files).rev() {
                rename_if_exists(&rotated_path(path, i), &rotated_path(path, i + 1))?;
            }
            rename_if_exists(path, &rotated_path(path, 1))?;
        }
        let (file, len) = open_active(path)?;
        self.file = Some(file);
        self.file_len = len;
        tracing::debug!(target: TRACE_TARGET, path = %path.display(), "System Log rotated");
        Ok(())
    }
}

fn push_bounded(ring: &mut VecDeque<Event>, event: Event, capacity: usize) {
    while ring.len() >= capacity {
        ring.pop_front();
    }
    ring.push_back(event);
}

fn rotated_path(path: &Path, index: usize) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

fn remove_if_exists(path: &Path) -> Result<(), SystemLogError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(path)(e)),
        _ => Ok(()),
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> Result<(), SystemLogError> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(from)(e)),
        _ => Ok(()),
    }
}

/// Opens the active file for appending and makes sure it ends in a newline.
fn open_active(path: &Path) -> Result<(File, u64), SystemLogError> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io_error(path))?;
    let mut len = file.metadata().map_err(io_error(path))?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1))
            .and_then(|_| file.read_exact(&mut last))
            .map_err(io_error(path))?;
        if last != [b'\n'] {
            tracing::warn!(
                target: TRACE_TARGET,
                path = %path.display(),
                "System Log file ends in a partial line (unclean shutdown?); it will be skipped"
            );
            file.write_all(b"\n").map_err(io_error(path))?;
            len += 1;
        }
    }
    Ok((file, len))
}

fn load_file(
    path: &Path,
    ring: &mut VecDeque<Event>,
    capacity: usize,
) -> Result<(), SystemLogError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(path)(e)),
    };
    // Refuse devices and FIFOs: reading one could block or never end.
    if !file.metadata().map_err(io_error(path))?.is_file() {
        return Ok(());
    }
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut line_no = 0usize;
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .map_err(io_error(path))?
            == 0
        {
            return Ok(());
        }
        line_no += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Event>(text) {
            Ok(mut event) => {
                // Files may have been edited or merged by hand; keep the
                // ring's time order, which paging relies on.
                if let Some(last) = ring.back() {
                    if event.published < last.published {
                        event.published = last.published;
                    }
                }
                push_bounded(ring, event, capacity);
            }
            Err(error) => tracing::warn!(
                target: TRACE_TARGET,
                path = %path.display(),
                line = line_no,
                %error,
                "skipping unreadable System Log line"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syslog::event::{OutcomeResult, Severity};
    use crate::syslog::query::Query;

    fn config(dir: &Path) -> SystemLogConfig {
        SystemLogConfig {
            path: dir.join("logs").join("events.jsonl"),
            ring_capacity: 100,
            max_file_bytes: 1 << 20,
            keep_files: 3,
        }
    }

    fn event(n: usize) -> Event {
        Event::new(
            "user.session.start",
            format!("event {n}"),
            Severity::Info,
            OutcomeResult::Success,
        )
        .debug("n", n.to_string())
    }

    fn all(log: &SystemLog) -> Vec<Event> {
        log.with_ring(|ring| ring.iter().cloned().collect())
    }

    fn numbers(events: &[Event]) -> Vec<usize> {
        events
            .iter()
            .map(|e| {
                e.debug_context
                    .debug_data
                    .get("n")
                    .expect("n")
                    .parse()
                    .expect("number")
            })
            .collect()
    }

    #[test]
    fn events_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = SystemLog::open(config(dir.path())).expect("open");
        for n in 0..5 {
            log.emit(event(n)).expect("emit");
        }
        let before = all(&log);
        log.close().expect("close");
        let log = SystemLog::open(config(dir.path())).expect("reopen");
        assert_eq!(all(&log), before);
        let page = log.query(&Query::default());
        assert_eq!(page.events, before);
    }

    #[test]
    fn ring_keeps_only_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = SystemLogConfig {
            ring_capacity: 3,
            ..config(dir.path())
        };
        let log = SystemLog::open(cfg.clone()).expect("open");
        for n in 0..5 {
            log.emit(event(n)).expect("emit");
        }
        assert_eq!(numbers(&all(&log)), [2, 3, 4]);
        drop(log);
        let log = SystemLog::open(cfg).expect("reopen");
        assert_eq!(numbers(&all(&log)), [2, 3, 4]);
        assert_eq!(log.len(), 3);
    }

    #[test]
    fn rotation_respects_size_and_keep_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let line_len = serde_json::to_vec(&event(10)).expect("json").len() as u64 + 1;
        let cfg = SystemLogConfig {
            max_file_bytes: line_len * 3,
            keep_files: 2,
            ..config(dir.path())
        };
        let log = SystemLog::open(cfg.clone()).expect("open");
        for n in 10..30 {
            log.emit(event(n)).expect("emit");
        }
        log.sync().expect("sync");
        for i in 0..=2 {
            let path = if i == 0 {
                cfg.path.clone()
            } else {
                rotated_path(&cfg.path, i)
            };
            let len = fs::metadata(&path).expect("file exists").len();
            assert!(
                len <= cfg.max_file_bytes,
                "{} is {len} bytes",
                path.display()
            );
        }
        assert!(!rotated_path(&cfg.path, 3).exists());
        let files = fs::read_dir(cfg.path.parent().expect("dir"))
            .expect("ls")
            .count();
        assert_eq!(files, 3);
        assert_eq!(all(&log).len(), 20);
        drop(log);

        // 20 lines at 3 per file: the active file holds 2, the kept two
        // rotated files 3 each, so the newest 8 survive a restart.
        let log = SystemLog::open(cfg).expect("reopen");
        assert_eq!(numbers(&all(&log)), (22..30).collect::<Vec<_>>());
    }

    #[test]
    fn keep_files_zero_discards_on_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = SystemLogConfig {
            max_file_bytes: 1,
            keep_files: 0,
            ..config(dir.path())
        };
        let log = SystemLog::open(cfg.clone()).expect("open");
        for n in 0..4 {
            log.emit(event(n)).expect("emit");
        }
        drop(log);
        assert!(!rotated_path(&cfg.path, 1).exists());
        let log = SystemLog::open(cfg).expect("reopen");
        assert_eq!(numbers(&all(&log)), [3]);
    }

    #[test]
    fn truncated_last_line_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path());
        let log = SystemLog::open(cfg.clone()).expect("open");
        log.emit(event(0)).expect("emit");
        log.emit(event(1)).expect("emit");
        drop(log);
        let torn = serde_json::to_vec(&event(2)).expect("json");
        let mut file = OpenOptions::new()
            .append(true)
            .open(&cfg.path)
            .expect("open file");
        file.write_all(torn.get(..torn.len() / 2).expect("half"))
            .expect("tear");
        drop(file);

        let log = SystemLog::open(cfg.clone()).expect("reopen despite torn line");
        assert_eq!(numbers(&all(&log)), [0, 1]);
        log.emit(event(3)).expect("emit after repair");
        drop(log);
        let log = SystemLog::open(cfg).expect("reopen again");
        assert_eq!(numbers(&all(&log)), [0, 1, 3]);
    }

    #[test]
    fn published_never_goes_backwards() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = SystemLog::open(config(dir.path())).expect("open");
        let late = event(0);
        let mut early = event(1);
        early.published -= time::Duration::hours(1);
        log.emit(late).expect("emit");
        log.emit(early).expect("emit");
        let events = all(&log);
        assert_eq!(
            events.first().map(|e| e.published),
            events.get(1).map(|e| e.published)
        );
    }

    #[test]
    fn invalid_config_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zero_ring = SystemLogConfig {
            ring_capacity: 0,
            ..config(dir.path())
        };
        assert!(matches!(
            SystemLog::open(zero_ring),
            Err(SystemLogError::InvalidConfig(_))
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn write_failure_is_returned_but_event_is_kept() {
        let dev_full = Path::new("/dev/full");
        if !dev_full.exists() {
            return;
        }
        let cfg = SystemLogConfig {
            path: dev_full.to_owned(),
            keep_files: 0,
            ..SystemLogConfig::new(dev_full)
        };
        let Ok(log) = SystemLog::open(cfg) else {
            return;
        };
        let result = log.emit(event(7));
        assert!(
            matches!(result, Err(SystemLogError::Io { .. })),
            "{result:?}"
        );
        assert_eq!(numbers(&all(&log)), [7]);
    }
}
