//! PostgreSQL, for several `serve` processes over one database (`serve --database
//! postgres://…`), and so for what speaks its wire protocol.
//!
//! Three tables, named `runpool_*` so they sit beside anything else in the database:
//! `runpool_rows` (the state, as SQLite's `rows`), `runpool_log` (each committed batch, by
//! version, for the servers that have not yet seen it) and `runpool_version` (one row: the
//! newest version). A mutation locks that row (`SELECT … FOR UPDATE`) before it is decided,
//! so mutations from every server are one queue, each decided on the newest state; its
//! commit writes the rows, the batch and the version in one transaction and notifies the
//! others (`NOTIFY runpool`), which read the batch from the log rather than reload.
//!
//! The driver is the synchronous `postgres` crate on a thread of its own (it runs its own
//! small runtime, which may not nest inside the server's), so a call blocks its caller for
//! the round trips and no longer, as a SQLite commit blocks it for its `fsync`.

use super::{Backend, Loaded, Logged, Row, Write};
use crate::base::error::{Error, Result};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Statement};
use std::sync::mpsc;

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        Error::internal(format!("storage failure: {e}"))
    }
}

/// Schema migrations, applied in order under an advisory lock (two servers starting at once
/// migrate once); `runpool_schema` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: the rows, the log of batches and the version.
    "CREATE TABLE runpool_rows (
        kind  TEXT NOT NULL,
        key   TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (kind, key)
     );
     CREATE TABLE runpool_log (
        version BIGINT PRIMARY KEY,
        rows    TEXT NOT NULL
     );
     CREATE TABLE runpool_version (version BIGINT NOT NULL);
     INSERT INTO runpool_version VALUES (0);",
    // 2: the audit log and the permission usage every server records (see
    // `intelligence::audit`, which writes them).
    "CREATE TABLE runpool_audit_entries (
        id      BIGSERIAL PRIMARY KEY,
        time    TEXT NOT NULL,
        project TEXT NOT NULL,
        entry   TEXT NOT NULL
     );
     CREATE INDEX runpool_audit_entries_project ON runpool_audit_entries (project, id);
     CREATE TABLE runpool_usage (
        principal    TEXT NOT NULL,
        permission   TEXT NOT NULL,
        resource     TEXT NOT NULL,
        workload     TEXT NOT NULL,
        last_granted TEXT,
        last_soft    TEXT,
        uses         BIGINT NOT NULL,
        PRIMARY KEY (principal, permission, resource, workload)
     );",
    // 3: worker pool instances' output (see `run::instance_logs`, which writes it).
    "CREATE TABLE runpool_instance_logs (
        id       BIGSERIAL PRIMARY KEY,
        time     TEXT NOT NULL,
        pool     TEXT NOT NULL,
        revision TEXT NOT NULL,
        instance TEXT NOT NULL,
        stream   TEXT NOT NULL,
        text     TEXT NOT NULL
     );
     CREATE INDEX runpool_instance_logs_pool ON runpool_instance_logs (pool, id);",
];

/// `pg_advisory_lock` key for migrations ("RPL1", as SQLite's application id).
const MIGRATION_LOCK: i64 = 0x5250_4C31;

/// `pg_advisory_lock` key of the runtime's lease ("RPL2").
const RUNTIME_LEASE: i64 = 0x5250_4C32;

/// How often a server without the lease asks for it, and one with it checks its connection.
const LEASE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// How many of the newest batches the log keeps: a commit deletes the one this many before
/// it. A server catches up at every notification and before every token it judges, so it is
/// rarely more than a few behind; one that falls further (its notifications lost while it
/// served nothing) finds a gap and reads the rows again (see `Control::catch_up`).
const LOG_KEPT: u64 = 10_000;

/// The channel commits are announced on; the payload is the new version.
const CHANNEL: &str = "runpool";

/// A connection and the statements every commit uses, prepared once.
struct Conn {
    client: Client,
    put: Statement,
    delete: Statement,
    log: Statement,
    prune: Statement,
    bump: Statement,
    notify: Statement,
    since: Statement,
}

impl Conn {
    fn open(url: &str) -> Result<Conn> {
        let mut client = Client::connect(url, NoTls).map_err(|e| {
            Error::failed_precondition(format!("cannot connect to the database: {e}"))
        })?;
        migrate(&mut client)?;
        Ok(Conn {
            put: client.prepare(
                "INSERT INTO runpool_rows (kind, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
            )?,
            delete: client.prepare("DELETE FROM runpool_rows WHERE kind = $1 AND key = $2")?,
            log: client.prepare("INSERT INTO runpool_log (version, rows) VALUES ($1, $2)")?,
            prune: client.prepare("DELETE FROM runpool_log WHERE version <= $1")?,
            bump: client.prepare("UPDATE runpool_version SET version = $1")?,
            notify: client.prepare("SELECT pg_notify($1, $2)")?,
            since: client.prepare(
                "SELECT version, rows FROM runpool_log WHERE version > $1 ORDER BY version",
            )?,
            client,
        })
    }

    fn since(&mut self, seen: u64) -> Result<Vec<Logged>> {
        let rows = self.client.query(&self.since, &[&(seen as i64)])?;
        rows.iter()
            .map(|r| {
                let version: i64 = r.get(0);
                let text: &str = r.get(1);
                Ok(Logged {
                    version: version as u64,
                    rows: serde_json::from_str(text).map_err(|e| {
                        Error::internal(format!("a bad batch {version} in runpool_log: {e}"))
                    })?,
                })
            })
            .collect()
    }

    /// Run `f` in the open transaction; roll it back if `f` fails.
    fn or_rollback<T>(&mut self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let out = f(self);
        if out.is_err() {
            let _ = self.client.batch_execute("ROLLBACK");
        }
        out
    }
}

fn migrate(client: &mut Client) -> Result<()> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let out = (|| {
        let known: Option<String> = client
            .query_one("SELECT to_regclass('runpool_schema')::text", &[])?
            .get(0);
        if known.is_none() {
            client.batch_execute("CREATE TABLE runpool_schema (version INT NOT NULL)")?;
        }
        let version = match client.query_opt("SELECT version FROM runpool_schema", &[])? {
            Some(r) => r.get::<_, i32>(0) as usize,
            None => {
                client.execute("INSERT INTO runpool_schema VALUES (0)", &[])?;
                0
            }
        };
        if version > MIGRATIONS.len() {
            return Err(Error::failed_precondition(format!(
                "the database was written by a newer Runpool (schema {version}, this binary knows {})",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let mut tx = client.transaction()?;
            tx.batch_execute(sql)?;
            tx.execute(
                "UPDATE runpool_schema SET version = $1",
                &[&((i + 1) as i32)],
            )?;
            tx.commit()?;
        }
        Ok(())
    })();
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])?;
    out
}

type Job = Box<dyn FnOnce(&mut Conn) + Send>;

/// The store; its connection lives on its own thread, which runs one job at a time.
pub struct PostgresStore {
    url: String,
    jobs: mpsc::Sender<Job>,
    /// The version [`Backend::begin`] locked, until commit or abort.
    locked: Option<u64>,
    /// How many batches the log keeps ([`LOG_KEPT`]).
    log_kept: u64,
}

impl PostgresStore {
    /// Connect to `url` (`postgres://user:password@host:port/database`) and migrate its
    /// schema.
    pub fn open(url: &str) -> Result<PostgresStore> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let to = url.to_string();
        super::spawn_opened(
            "runpool-postgres",
            move || Conn::open(&to),
            move |mut conn| {
                for job in queue {
                    job(&mut conn);
                }
            },
        )?;
        Ok(PostgresStore {
            url: url.to_string(),
            jobs,
            locked: None,
            log_kept: LOG_KEPT,
        })
    }

    /// Keep only the newest `batches` in the log (at least one), rather than [`LOG_KEPT`].
    pub fn keeping_log(mut self, batches: u64) -> PostgresStore {
        self.log_kept = batches.max(1);
        self
    }

    /// Run `f` on the connection's thread and wait for its answer.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let gone = || Error::internal("the database connection's thread has stopped");
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }
}

impl Backend for PostgresStore {
    /// Under the write lock (a server that found a gap in the log while deciding a mutation)
    /// no other server can commit, so the open transaction reads one version; otherwise the
    /// rows are read in a snapshot of their own.
    fn load(&mut self) -> Result<Loaded> {
        let own = self.locked.is_none();
        self.run(move |c| {
            if own {
                c.client
                    .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
            }
            let loaded = c.or_rollback(|c| {
                let version: i64 = c
                    .client
                    .query_one("SELECT version FROM runpool_version", &[])?
                    .get(0);
                let rows = c
                    .client
                    .query(
                        "SELECT kind, key, value FROM runpool_rows ORDER BY kind, key",
                        &[],
                    )?
                    .iter()
                    .map(|r| Row {
                        kind: r.get(0),
                        key: r.get(1),
                        value: r.get(2),
                    })
                    .collect();
                Ok(Loaded {
                    rows,
                    version: version as u64,
                })
            })?;
            if own {
                c.client.batch_execute("COMMIT")?;
            }
            Ok(loaded)
        })
    }

    fn begin(&mut self, seen: u64) -> Result<Vec<Logged>> {
        let (version, logged) = self.run(move |c| {
            c.client.batch_execute("BEGIN")?;
            c.or_rollback(|c| {
                let version: i64 = c
                    .client
                    .query_one("SELECT version FROM runpool_version FOR UPDATE", &[])?
                    .get(0);
                let logged = if version as u64 > seen {
                    c.since(seen)?
                } else {
                    vec![]
                };
                Ok((version as u64, logged))
            })
        })?;
        self.locked = Some(version);
        Ok(logged)
    }

    fn commit(&mut self, writes: &[Write]) -> Result<u64> {
        let next = self
            .locked
            .take()
            .ok_or_else(|| Error::internal("commit without begin"))?
            + 1;
        let writes = writes.to_vec();
        let pruned = next.saturating_sub(self.log_kept) as i64;
        self.run(move |c| {
            c.or_rollback(|c| {
                let mut logged = Vec::with_capacity(writes.len());
                for w in &writes {
                    match w {
                        Write::Put { kind, key, value } => {
                            c.client.execute(&c.put, &[kind, key, value])?;
                            logged.push((kind.to_string(), key.clone(), Some(value.clone())));
                        }
                        Write::Delete { kind, key } => {
                            c.client.execute(&c.delete, &[kind, key])?;
                            logged.push((kind.to_string(), key.clone(), None));
                        }
                    }
                }
                let batch =
                    serde_json::to_string(&logged).map_err(|e| Error::internal(e.to_string()))?;
                c.client.execute(&c.log, &[&(next as i64), &batch])?;
                if pruned > 0 {
                    c.client.execute(&c.prune, &[&pruned])?;
                }
                c.client.execute(&c.bump, &[&(next as i64)])?;
                c.client
                    .execute(&c.notify, &[&CHANNEL, &next.to_string()])?;
                c.client.batch_execute("COMMIT")?;
                Ok(next)
            })
        })
    }

    fn abort(&mut self) {
        if self.locked.take().is_some() {
            let _ = self.run(|c| Ok(c.client.batch_execute("ROLLBACK")?));
        }
    }

    fn since(&mut self, seen: u64) -> Result<Vec<Logged>> {
        self.run(move |c| c.since(seen))
    }

    fn shared(&self) -> bool {
        true
    }

    /// A session advisory lock on a connection of its own: PostgreSQL releases it the moment
    /// that connection ends, so when the holding server dies (even by `kill -9`) another
    /// takes the lease within [`LEASE_POLL`]. A holder whose connection fails stops holding
    /// it before trying again.
    fn lease(&mut self) -> Result<Option<tokio::sync::watch::Receiver<bool>>> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let url = self.url.clone();
        std::thread::Builder::new()
            .name("runpool-postgres-lease".into())
            .spawn(move || {
                let mut client: Option<Client> = None;
                loop {
                    if tx.is_closed() {
                        return;
                    }
                    let c = match client.as_mut() {
                        Some(c) => c,
                        None => match Client::connect(&url, NoTls) {
                            Ok(c) => client.insert(c),
                            Err(e) => {
                                tracing::warn!(error = %e, "the runtime lease cannot reach the database");
                                std::thread::sleep(LEASE_POLL);
                                continue;
                            }
                        },
                    };
                    let asked = if *tx.borrow() {
                        c.batch_execute("SELECT 1").map(|_| true)
                    } else {
                        c.query_one("SELECT pg_try_advisory_lock($1)", &[&RUNTIME_LEASE])
                            .map(|r| r.get::<_, bool>(0))
                    };
                    match asked {
                        Ok(held) => {
                            tx.send_if_modified(|h| std::mem::replace(h, held) != held);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the runtime lease's connection failed");
                            client = None;
                            tx.send_if_modified(|h| std::mem::replace(h, false));
                        }
                    }
                    std::thread::sleep(LEASE_POLL);
                }
            })
            .map_err(|e| Error::internal(format!("cannot start the lease thread: {e}")))?;
        Ok(Some(rx))
    }

    /// A connection of its own that `LISTEN`s; it reconnects after a failure, and stops
    /// when the receiver is dropped.
    fn subscribe(&mut self) -> Result<Option<mpsc::Receiver<u64>>> {
        let (tx, rx) = mpsc::channel();
        let url = self.url.clone();
        let listen = move || -> Result<Client> {
            let mut client = Client::connect(&url, NoTls)?;
            client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            Ok(client)
        };
        let again = listen.clone();
        super::spawn_opened("runpool-postgres-listen", listen, move |mut client| {
            loop {
                let mut heard = client.notifications();
                let mut it = heard.blocking_iter();
                while let Ok(Some(n)) = it.next() {
                    if tx.send(n.payload().parse().unwrap_or(0)).is_err() {
                        return;
                    }
                }
                drop(it);
                drop(heard);
                // The connection went: whatever was missed is in the log, so one wake-up
                // after reconnecting catches up.
                client = loop {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    if let Ok(c) = again() {
                        break c;
                    }
                };
                if tx.send(0).is_err() {
                    return;
                }
            }
        })?;
        Ok(Some(rx))
    }
}
