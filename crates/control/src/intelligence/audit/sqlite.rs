//! The audit log in its own SQLite file, `DATA_DIR/audit.db`.

use super::{Db, RETENTION_ENTRIES, Record, Usage, uses};
use crate::base::error::Result;
use rusqlite::{Connection, params};
use std::path::Path;

pub(super) struct Sqlite(Connection);

impl Sqlite {
    pub(super) fn open(path: &Path) -> Result<Sqlite> {
        let c = Connection::open(path)?;
        c.pragma_update(None, "journal_mode", "WAL")?;
        // WAL with NORMAL survives a crash of the process; batches holding the record of a
        // change are committed with FULL (see `write`).
        c.pragma_update(None, "synchronous", "NORMAL")?;
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS entries (
                id INTEGER PRIMARY KEY,
                time TEXT NOT NULL,
                project TEXT NOT NULL,
                entry TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS entries_project ON entries (project, id);
             -- What each principal exercised, where, and for which worker pool: the
             -- recommender's input, kept as one row per distinct use so that it costs the same
             -- whatever the number of entries, and outlives the entries' retention.
             CREATE TABLE IF NOT EXISTS usage (
                principal TEXT NOT NULL,
                permission TEXT NOT NULL,
                resource TEXT NOT NULL,
                workload TEXT NOT NULL,
                last_granted TEXT,
                last_soft TEXT,
                uses INTEGER NOT NULL,
                PRIMARY KEY (principal, permission, resource, workload)
             ) WITHOUT ROWID;",
        )?;
        Ok(Sqlite(c))
    }
}

impl Db for Sqlite {
    fn write(&mut self, batch: &[Record], durable: bool) -> Result<()> {
        // The record of an acknowledged change is acknowledged state too: its batch is on
        // disk when the commit returns (one sync per batch, not per record). Reads need not
        // outlive a power cut.
        self.0
            .pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })?;
        let tx = self.0.transaction()?;
        {
            let mut ins = tx
                .prepare_cached("INSERT INTO entries (time, project, entry) VALUES (?1, ?2, ?3)")?;
            let mut used = tx.prepare_cached(
                "INSERT INTO usage VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)
                 ON CONFLICT DO UPDATE SET
                   last_granted = COALESCE(excluded.last_granted, last_granted),
                   last_soft = COALESCE(excluded.last_soft, last_soft),
                   uses = uses + 1",
            )?;
            let mut id: i64 =
                tx.query_row("SELECT COALESCE(MAX(id), 0) FROM entries", [], |r| r.get(0))?;
            for r in batch {
                id += 1;
                let e = r.entry(&format!("{id:016x}"));
                ins.execute(params![r.time.to_rfc3339(), r.project, e.to_string()])?;
                for (p, perm, res, w, granted, soft) in uses(r) {
                    used.execute(params![p, perm, res, w, granted, soft])?;
                }
            }
            tx.execute(
                "DELETE FROM entries WHERE id <= ?1",
                params![id - RETENTION_ENTRIES],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn prune(&mut self, cutoff: &str) -> Result<()> {
        self.0.execute(
            "DELETE FROM usage WHERE COALESCE(last_granted, '') < ?1 AND COALESCE(last_soft, '') < ?1",
            params![cutoff],
        )?;
        Ok(())
    }

    fn usage(&mut self, since: &str) -> Result<Vec<Usage>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT principal, permission, resource, workload,
                    COALESCE(last_granted >= ?1, 0), COALESCE(last_soft >= ?1, 0)
             FROM usage WHERE last_granted >= ?1 OR last_soft >= ?1",
        )?;
        let rows = stmt.query_map(params![since], |r| {
            Ok(Usage {
                principal: r.get(0)?,
                permission: r.get(1)?,
                resource: r.get(2)?,
                workload: r.get(3)?,
                granted: r.get(4)?,
                soft: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn page(
        &mut self,
        project: &str,
        from: Option<i64>,
        newest_first: bool,
        n: i64,
    ) -> Result<Vec<(i64, String, String)>> {
        let sql = if newest_first {
            "SELECT id, time, entry FROM entries WHERE project = ?1 AND id < ?2
             ORDER BY id DESC LIMIT ?3"
        } else {
            "SELECT id, time, entry FROM entries WHERE project = ?1 AND id > ?2
             ORDER BY id ASC LIMIT ?3"
        };
        let from = from.unwrap_or(if newest_first { i64::MAX } else { 0 });
        let mut stmt = self.0.prepare_cached(sql)?;
        let rows = stmt.query_map(params![project, from, n], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
