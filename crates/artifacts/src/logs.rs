//! Worker pool instance logs: each instance's stdout and stderr, one file per instance under
//! `DATA_DIR/logs/POOL_KEY/REVISION/INSTANCE.log`, bounded and rotated, read back newest
//! last. Lines are `RFC3339_TIME STREAM TEXT`.

use std::io::Write;
use std::path::{Path, PathBuf};

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

#[derive(Debug, Clone)]
pub struct LogStore {
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

impl LogStore {
    pub fn new(dir: PathBuf) -> LogStore {
        LogStore { dir }
    }

    fn file(&self, pool: &str, revision: &str, instance: &str) -> PathBuf {
        self.dir
            .join(pool_dir(pool))
            .join(revision)
            .join(format!("{instance}.log"))
    }

    /// Append one line (its own write, so concurrent writers do not interleave mid-line).
    pub fn append(
        &self,
        pool: &str,
        revision: &str,
        instance: &str,
        stream: &str,
        text: &str,
    ) -> std::io::Result<()> {
        let path = self.file(pool, revision, instance);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) > MAX_FILE_BYTES {
            std::fs::rename(&path, path.with_extension("log.1"))?;
        }
        let line = format!(
            "{} {stream} {}\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            text.trim_end()
        );
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?
            .write_all(line.as_bytes())
    }

    /// The newest `limit` lines of a pool (all its revisions and instances) no older than
    /// `since`, oldest first.
    pub fn read(
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
