//! The audit log in the PostgreSQL database several servers share (`runpool_audit_entries`,
//! `runpool_usage`, created with the store's schema), so the recommender reads every
//! server's traffic. Entries are numbered by one sequence, in the order servers commit them.

use super::{Db, RETENTION_ENTRIES, Record, Usage, uses};
use crate::base::error::Result;
use ::postgres::{Client, NoTls};

pub(super) struct Postgres(Client);

impl Postgres {
    pub(super) fn open(url: &str) -> Result<Postgres> {
        Ok(Postgres(Client::connect(url, NoTls)?))
    }
}

impl Db for Postgres {
    fn write(&mut self, batch: &[Record], durable: bool) -> Result<()> {
        let mut tx = self.0.transaction()?;
        // As SQLite's NORMAL: a batch of reads' records need not wait for the disk.
        if !durable {
            tx.batch_execute("SET LOCAL synchronous_commit = off")?;
        }
        let ids: Vec<i64> = tx
            .query(
                "SELECT nextval('runpool_audit_entries_id_seq') FROM generate_series(1, $1::bigint)",
                &[&(batch.len() as i64)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let ins = tx.prepare(
            "INSERT INTO runpool_audit_entries (id, time, project, entry) VALUES ($1, $2, $3, $4)",
        )?;
        let used = tx.prepare(
            "INSERT INTO runpool_usage VALUES ($1, $2, $3, $4, $5, $6, 1)
             ON CONFLICT (principal, permission, resource, workload) DO UPDATE SET
               last_granted = COALESCE(excluded.last_granted, runpool_usage.last_granted),
               last_soft = COALESCE(excluded.last_soft, runpool_usage.last_soft),
               uses = runpool_usage.uses + 1",
        )?;
        for (r, id) in batch.iter().zip(&ids) {
            let e = r.entry(&format!("{id:016x}"));
            tx.execute(
                &ins,
                &[id, &r.time.to_rfc3339(), &r.project, &e.to_string()],
            )?;
            for (p, perm, res, w, granted, soft) in uses(r) {
                tx.execute(&used, &[&p, &perm, &res, &w, &granted, &soft])?;
            }
        }
        if let Some(last) = ids.last() {
            tx.execute(
                "DELETE FROM runpool_audit_entries WHERE id <= $1",
                &[&(last - RETENTION_ENTRIES)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn prune(&mut self, cutoff: &str) -> Result<()> {
        self.0.execute(
            "DELETE FROM runpool_usage
             WHERE COALESCE(last_granted, '') < $1 AND COALESCE(last_soft, '') < $1",
            &[&cutoff],
        )?;
        Ok(())
    }

    fn usage(&mut self, since: &str) -> Result<Vec<Usage>> {
        let rows = self.0.query(
            "SELECT principal, permission, resource, workload,
                    COALESCE(last_granted >= $1, false), COALESCE(last_soft >= $1, false)
             FROM runpool_usage WHERE last_granted >= $1 OR last_soft >= $1",
            &[&since],
        )?;
        Ok(rows
            .iter()
            .map(|r| Usage {
                principal: r.get(0),
                permission: r.get(1),
                resource: r.get(2),
                workload: r.get(3),
                granted: r.get(4),
                soft: r.get(5),
            })
            .collect())
    }

    fn page(
        &mut self,
        project: &str,
        from: Option<i64>,
        newest_first: bool,
        n: i64,
    ) -> Result<Vec<(i64, String, String)>> {
        let sql = if newest_first {
            "SELECT id, time, entry FROM runpool_audit_entries WHERE project = $1 AND id < $2
             ORDER BY id DESC LIMIT $3"
        } else {
            "SELECT id, time, entry FROM runpool_audit_entries WHERE project = $1 AND id > $2
             ORDER BY id ASC LIMIT $3"
        };
        let from = from.unwrap_or(if newest_first { i64::MAX } else { 0 });
        let rows = self.0.query(sql, &[&project, &from, &n])?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}
