//! Worker pool instance logs: each instance's stdout and stderr, read back newest last. A
//! server alone keeps them in files, one per instance under
//! `DATA_DIR/logs/POOL_KEY/REVISION/INSTANCE.log`, bounded and rotated, lines
//! `RFC3339_TIME STREAM TEXT`; servers that share a database keep them there, so the lines of
//! instances one server runs are read through any (a [`LogBackend`] of the store's).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file is rotated (to `.log.1`, replacing the previous one) past this size.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One log line of an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub time: chrono::DateTime<chrono::Utc>,
    /// `stdout` or `stderr`
    pub stream: String,
    pub text: String,
    pub pool: String,
    pub revision: String,
    pub instance: String,
}

/// Where the lines are kept.
pub trait LogBackend: Send + Sync {
    fn append(&self, line: Entry) -> std::io::Result<()>;
    /// The newest `limit` lines of a pool (all its revisions and instances) no older than
    /// `since`, oldest first.
    fn read(
        &self,
        pool: &str,
        since: Option<chrono::DateTime<chrono::Utc>>,
        limit: usize,
    ) -> Vec<Entry>;
}

#[derive(Clone)]
pub struct LogStore(Arc<dyn LogBackend>);

impl LogStore {
    /// Files under `dir`.
    pub fn new(dir: PathBuf) -> LogStore {
        LogStore(Arc::new(Files { dir }))
    }

    pub fn with(backend: impl LogBackend + 'static) -> LogStore {
        LogStore(Arc::new(backend))
    }

    /// Append one line, stamped now.
    pub fn append(
        &self,
        pool: &str,
        revision: &str,
        instance: &str,
        stream: &str,
        text: &str,
    ) -> std::io::Result<()> {
        self.0.append(Entry {
            time: chrono::Utc::now(),
            stream: stream.to_string(),
            text: text.trim_end().to_string(),
            pool: pool.to_string(),
            revision: revision.to_string(),
            instance: instance.to_string(),
        })
    }

    /// See [`LogBackend::read`].
    pub fn read(
        &self,
        pool: &str,
        since: Option<chrono::DateTime<chrono::Utc>>,
        limit: usize,
    ) -> Vec<Entry> {
        self.0.read(pool, since, limit)
    }
}

/// Files in the data dir.
struct Files {
    dir: PathBuf,
}

/// `projects/p/locations/l/workerPools/w` → `p.l.w` (a safe directory name).
fn pool_dir(pool: &str) -> String {
    pool.split('/')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(".")
}

impl Files {
    fn file(&self, pool: &str, revision: &str, instance: &str) -> PathBuf {
        self.dir
            .join(pool_dir(pool))
            .join(revision)
            .join(format!("{instance}.log"))
    }
}

impl LogBackend for Files {
    /// Each line is its own write, so concurrent writers do not interleave mid-line.
    fn append(&self, e: Entry) -> std::io::Result<()> {
        let path = self.file(&e.pool, &e.revision, &e.instance);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) > MAX_FILE_BYTES {
            std::fs::rename(&path, path.with_extension("log.1"))?;
        }
        let line = format!(
            "{} {} {}\n",
            e.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            e.stream,
            e.text
        );
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?
            .write_all(line.as_bytes())
    }

    fn read(
        &self,
        pool: &str,
        since: Option<chrono::DateTime<chrono::Utc>>,
        limit: usize,
    ) -> Vec<Entry> {
        let root = self.dir.join(pool_dir(pool));
        let mut out = vec![];
        for rev in read_dir(&root) {
            let revision = name_of(&rev);
            for file in read_dir(&rev) {
                let fname = name_of(&file);
                let Some(instance) = fname
                    .strip_suffix(".log")
                    .or_else(|| fname.strip_suffix(".log.1"))
                else {
                    continue;
                };
                let Ok(text) = std::fs::read_to_string(&file) else {
                    continue;
                };
                for line in text.lines() {
                    let mut parts = line.splitn(3, ' ');
                    let (Some(t), Some(stream)) = (parts.next(), parts.next()) else {
                        continue;
                    };
                    let Ok(time) = chrono::DateTime::parse_from_rfc3339(t) else {
                        continue;
                    };
                    let time = time.with_timezone(&chrono::Utc);
                    if since.is_some_and(|s| time < s) {
                        continue;
                    }
                    out.push(Entry {
                        time,
                        stream: stream.to_string(),
                        text: parts.next().unwrap_or_default().to_string(),
                        pool: pool.to_string(),
                        revision: revision.clone(),
                        instance: instance.to_string(),
                    });
                }
            }
        }
        out.sort_by_key(|e| e.time);
        let skip = out.len().saturating_sub(limit);
        out.split_off(skip)
    }
}

fn read_dir(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_back_newest_last_and_limited() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().to_path_buf());
        let pool = "projects/p/locations/us-central1/workerPools/wp";
        for i in 0..5 {
            logs.append(pool, "wp-00001-abc", "i1", "stdout", &format!("line {i}"))
                .unwrap();
        }
        logs.append(pool, "wp-00001-abc", "i2", "stderr", "oops")
            .unwrap();
        let all = logs.read(pool, None, 100);
        assert_eq!(all.len(), 6);
        assert_eq!(all.last().unwrap().text, "oops");
        let two = logs.read(pool, None, 2);
        assert_eq!(
            two.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(),
            vec!["line 4", "oops"]
        );
        assert!(
            logs.read(
                "projects/p/locations/us-central1/workerPools/other",
                None,
                10
            )
            .is_empty()
        );
    }
}
