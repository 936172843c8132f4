//! The embedded store: one SQLite file in the data dir, only this process writing it.

use super::{Backend, Loaded, Logged, Row, Write};
use crate::base::error::{Error, Result};
use rusqlite::{Connection, params};
use std::path::Path;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: the row table.
    "CREATE TABLE rows (
        kind  TEXT NOT NULL,
        key   TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (kind, key)
     ) WITHOUT ROWID;",
    // 2: the projects of a store written before Service Usage had every API Runpool then
    // served enabled (the list is what was served then, whatever is served later).
    "INSERT OR IGNORE INTO rows (kind, key, value)
     SELECT 'enabled_service', p.key || '/services/' || s.name, 'true'
     FROM rows p, (
        SELECT 'cloudresourcemanager.googleapis.com' AS name
        UNION ALL SELECT 'iam.googleapis.com'
        UNION ALL SELECT 'iamcredentials.googleapis.com'
        UNION ALL SELECT 'logging.googleapis.com'
        UNION ALL SELECT 'orgpolicy.googleapis.com'
        UNION ALL SELECT 'policytroubleshooter.googleapis.com'
        UNION ALL SELECT 'recommender.googleapis.com'
        UNION ALL SELECT 'run.googleapis.com'
        UNION ALL SELECT 'serviceusage.googleapis.com'
     ) s
     WHERE p.kind = 'project';",
];

/// SQLite in WAL mode with `synchronous=FULL`: a commit that returned is on disk.
pub struct SqliteStore {
    conn: Connection,
    /// Mutations committed since open: only this process writes the file, so nothing is
    /// ever committed by another.
    version: u64,
}

/// `PRAGMA application_id` of a Runpool store ("RPL1"), so that a database file of some
/// other program is never mistaken for an empty world.
const APPLICATION_ID: i64 = 0x5250_4C31;

impl SqliteStore {
    /// Open (or create) the store at `path`. A file that is not a Runpool store (empty, not
    /// SQLite, or another program's database) is refused rather than seeded over.
    pub fn open(path: &Path) -> Result<Self> {
        let refuse = |why: String| {
            Error::failed_precondition(format!(
                "{} {why}; Runpool will not start a new world over it. Move it away to start afresh, or pass another --data-dir.",
                path.display()
            ))
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.len() == 0 => {
                return Err(refuse(
                    "is empty (0 bytes), so it holds no Runpool state".into(),
                ));
            }
            Ok(_) => {}
            // A new store is made whole under another name and renamed into place, so a
            // crash while making it never leaves an empty file behind.
            Err(_) => {
                let fresh = path.with_extension("db.new");
                let _ = std::fs::remove_file(&fresh);
                let conn = Connection::open(&fresh)?;
                conn.pragma_update(None, "application_id", APPLICATION_ID)?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                drop(conn);
                std::fs::rename(&fresh, path).map_err(|e| {
                    Error::internal(format!("cannot create {}: {e}", path.display()))
                })?;
            }
        }
        let conn = Connection::open(path)?;
        let app_id: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(|e| refuse(format!("is not a SQLite database ({e})")))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        match app_id {
            APPLICATION_ID => {}
            // A new file, or a store written before the application id was set.
            0 if tables == 0 || version > 0 => {
                conn.pragma_update(None, "application_id", APPLICATION_ID)?;
            }
            _ => {
                return Err(refuse(
                    "is another program's SQLite database, not a Runpool store".into(),
                ));
            }
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = SqliteStore { conn, version: 0 };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: usize = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?
            as usize;
        if version > MIGRATIONS.len() {
            return Err(Error::failed_precondition(format!(
                "the data dir was written by a newer Runpool (schema {version}, this binary knows {})",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }
}

impl Backend for SqliteStore {
    fn load(&mut self) -> Result<Loaded> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, key, value FROM rows ORDER BY kind, key")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Row {
                    kind: r.get(0)?,
                    key: r.get(1)?,
                    value: r.get(2)?,
                })
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Loaded {
            rows,
            version: self.version,
        })
    }

    fn begin(&mut self, _seen: u64) -> Result<Vec<Logged>> {
        Ok(vec![])
    }

    fn commit(&mut self, writes: &[Write]) -> Result<u64> {
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO rows (kind, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
            )?;
            let mut del = tx.prepare_cached("DELETE FROM rows WHERE kind = ?1 AND key = ?2")?;
            for w in writes {
                match w {
                    Write::Put { kind, key, value } => {
                        put.execute(params![kind, key, value])?;
                    }
                    Write::Delete { kind, key } => {
                        del.execute(params![kind, key])?;
                    }
                }
            }
        }
        tx.commit()?;
        self.version += 1;
        Ok(self.version)
    }

    fn abort(&mut self) {}

    fn since(&mut self, _seen: u64) -> Result<Vec<Logged>> {
        Ok(vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen_and_deletes_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let mut s = SqliteStore::open(&path).unwrap();
            s.commit(&[
                Write::Put {
                    kind: "a",
                    key: "1".into(),
                    value: "x".into(),
                },
                Write::Put {
                    kind: "a",
                    key: "2".into(),
                    value: "y".into(),
                },
            ])
            .unwrap();
            s.commit(&[
                Write::Delete {
                    kind: "a",
                    key: "1".into(),
                },
                Write::Put {
                    kind: "a",
                    key: "2".into(),
                    value: "z".into(),
                },
            ])
            .unwrap();
        }
        let mut s = SqliteStore::open(&path).unwrap();
        let rows = s.load().unwrap().rows;
        assert_eq!(
            rows,
            vec![Row {
                kind: "a".into(),
                key: "2".into(),
                value: "z".into()
            }]
        );
        let v: i64 = s
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
    }

    #[test]
    fn a_store_from_before_service_usage_has_its_projects_apis_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO rows VALUES ('project', 'projects/42', '{}')",
                [],
            )
            .unwrap();
        }
        let mut s = SqliteStore::open(&path).unwrap();
        let enabled: Vec<String> = s
            .load()
            .unwrap()
            .rows
            .into_iter()
            .filter(|r| r.kind == "enabled_service")
            .map(|r| r.key)
            .collect();
        // The nine APIs Runpool served when Service Usage came.
        assert_eq!(enabled.len(), 9, "{enabled:?}");
        for api in ["run.googleapis.com", "iam.googleapis.com"] {
            assert!(
                enabled.contains(&format!("projects/42/services/{api}")),
                "{enabled:?}"
            );
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = SqliteStore::open(&path).err().expect("must refuse");
        assert!(err.message.contains("newer Runpool"), "{err}");
    }
}
