//! Instance logs in the PostgreSQL database several servers share (`runpool_instance_logs`,
//! created with the store's schema): the server that holds the runtime's lease writes its
//! instances' lines there, and Cloud Logging's `entries.list` on any server reads them.
//!
//! Lines go to a thread of their own, which writes what has queued up in one statement, so an
//! instance's output never waits on the database; a read is queued behind the lines before
//! it, so this server reads what its instances wrote. The newest [`KEPT`] lines are kept.

use crate::base::error::{Error, Result};
use chrono::{DateTime, Utc};
use postgres::{Client, NoTls};
use runpool_artifacts::logs::{Entry, LogBackend};
use std::sync::mpsc;

/// Lines kept across every pool; older ones are dropped.
const KEPT: i64 = 1_000_000;
/// At most this many lines in one statement.
const BATCH: usize = 1000;
/// The old lines are dropped once per this many written.
const PRUNE_EVERY: u64 = 10_000;

enum Msg {
    Line(Entry),
    Read(Read),
}

struct Read {
    pool: String,
    since: Option<DateTime<Utc>>,
    limit: usize,
    reply: mpsc::Sender<Vec<Entry>>,
}

pub struct PostgresLogs {
    tx: mpsc::Sender<Msg>,
}

impl PostgresLogs {
    /// Connect to `url`, whose schema the store has migrated.
    pub fn open(url: &str) -> Result<PostgresLogs> {
        let (tx, rx) = mpsc::channel();
        let url = url.to_string();
        crate::base::store::spawn_opened(
            "runpool-postgres-logs",
            move || Ok(Client::connect(&url, NoTls)?),
            move |mut client| writer(&mut client, rx),
        )?;
        Ok(PostgresLogs { tx })
    }
}

fn writer(client: &mut Client, rx: mpsc::Receiver<Msg>) {
    let mut written = 0u64;
    while let Ok(first) = rx.recv() {
        let (mut lines, mut reads) = (vec![], vec![]);
        let mut next = Some(first);
        while let Some(m) = next {
            match m {
                Msg::Line(e) => lines.push(e),
                Msg::Read(r) => reads.push(r),
            }
            next = if lines.len() < BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !lines.is_empty() {
            match insert(client, &lines) {
                Ok(()) => {
                    let before = written / PRUNE_EVERY;
                    written += lines.len() as u64;
                    if written / PRUNE_EVERY != before
                        && let Err(e) = client.execute(
                            "DELETE FROM runpool_instance_logs
                             WHERE id <= (SELECT max(id) FROM runpool_instance_logs) - $1",
                            &[&KEPT],
                        )
                    {
                        tracing::warn!(error = %e, "dropping old instance logs failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, lines = lines.len(), "instance log lines lost")
                }
            }
        }
        for r in reads {
            let found = select(client, &r.pool, r.since, r.limit).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading instance logs failed");
                vec![]
            });
            let _ = r.reply.send(found);
        }
    }
}

fn insert(client: &mut Client, lines: &[Entry]) -> Result<()> {
    let column = |f: fn(&Entry) -> String| lines.iter().map(f).collect::<Vec<String>>();
    client.execute(
        "INSERT INTO runpool_instance_logs (time, pool, revision, instance, stream, text)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])",
        &[
            &column(|e| stamp(&e.time)),
            &column(|e| e.pool.clone()),
            &column(|e| e.revision.clone()),
            &column(|e| e.instance.clone()),
            &column(|e| e.stream.clone()),
            &column(|e| e.text.clone()),
        ],
    )?;
    Ok(())
}

fn select(
    client: &mut Client,
    pool: &str,
    since: Option<DateTime<Utc>>,
    limit: usize,
) -> Result<Vec<Entry>> {
    let since = since.map(|t| stamp(&t)).unwrap_or_default();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut out = client
        .query(
            "SELECT time, stream, text, revision, instance FROM runpool_instance_logs
             WHERE pool = $1 AND time >= $2 ORDER BY id DESC LIMIT $3",
            &[&pool, &since, &limit],
        )?
        .iter()
        .map(|r| {
            let time: &str = r.get(0);
            Ok(Entry {
                time: DateTime::parse_from_rfc3339(time)
                    .map_err(|e| {
                        Error::internal(format!("a bad time in runpool_instance_logs: {e}"))
                    })?
                    .with_timezone(&Utc),
                stream: r.get(1),
                text: r.get(2),
                pool: pool.to_string(),
                revision: r.get(3),
                instance: r.get(4),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

/// One width for every time, so the text sorts as the times do.
fn stamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl LogBackend for PostgresLogs {
    fn append(&self, line: Entry) -> std::io::Result<()> {
        self.tx
            .send(Msg::Line(line))
            .map_err(|_| std::io::Error::other("the instance log writer has stopped"))
    }

    fn read(&self, pool: &str, since: Option<DateTime<Utc>>, limit: usize) -> Vec<Entry> {
        let (reply, answer) = mpsc::channel();
        let asked = self.tx.send(Msg::Read(Read {
            pool: pool.to_string(),
            since,
            limit,
            reply,
        }));
        match asked {
            Ok(()) => answer.recv().unwrap_or_default(),
            Err(_) => vec![],
        }
    }
}
