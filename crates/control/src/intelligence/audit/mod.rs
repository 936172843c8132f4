//! The audit log: every API call an authenticated principal makes becomes a Cloud Audit Log
//! entry (`protoPayload` an `AuditLog`: service, method, resource, principal, each
//! authorization decision with its outcome, status). Recording is a channel send on the
//! request path; a writer thread batches entries into their own SQLite file ([`sqlite`]), or
//! into the PostgreSQL database several servers share ([`postgres`], so the recommender sees
//! every server's traffic), and keeps a bounded history. Cloud Logging's `entries:list` reads
//! them back, through the same thread, so a read comes after every record sent before it.
//!
//! No record is dropped: when the writer falls behind, senders wait for room (backpressure),
//! and a write's own record is committed before the write is answered (the caller awaits
//! [`AuditLog::record_committed`]'s acknowledgement), so a crash cannot lose the record of an
//! acknowledged change. Only a failed commit of the audit store loses records; they are
//! counted ([`AuditLog::lost`]) and logged.
//!
//! Enforcement modes live here too: in `soft` mode a check that strict mode would deny is
//! allowed and marked in the entry (`granted: false` with `runpoolEnforcement: "soft"`), so
//! a team can learn what a workload needs before enforcing it.

mod postgres;
mod sqlite;

use crate::base::error::Result;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// How IAM decisions are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Enforcement {
    /// Denials deny (Google's behaviour).
    #[default]
    Strict,
    /// Denials are allowed and marked in the audit log.
    Soft,
    /// Nothing is denied or marked (authentication still applies).
    Off,
}

impl std::str::FromStr for Enforcement {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "strict" => Ok(Enforcement::Strict),
            "soft" => Ok(Enforcement::Soft),
            "off" => Ok(Enforcement::Off),
            other => Err(format!(
                "unknown enforcement mode '{other}' (strict, soft or off)"
            )),
        }
    }
}

/// One authorization decision made while serving a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The resource as the caller named it.
    pub resource: String,
    /// The name IAM knows it by (`projects/NUMBER/…`), its type and service: the
    /// `resourceAttributes` of the entry.
    pub canonical: String,
    pub resource_type: String,
    pub service: String,
    pub permission: String,
    pub granted: bool,
    /// Denied by IAM but let through by `soft` enforcement.
    pub soft: bool,
}

/// What one request did, gathered while it is served: who, and every decision.
#[derive(Debug, Default)]
pub struct Trace {
    principal: Mutex<Option<String>>,
    workload: Mutex<Option<String>>,
    decisions: Mutex<Vec<Decision>>,
}

impl Trace {
    pub fn set_workload(&self, pool: &str) {
        *self.workload.lock().unwrap_or_else(|e| e.into_inner()) = Some(pool.to_string());
    }
    pub fn workload(&self) -> Option<String> {
        self.workload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn set_principal(&self, email: &str) {
        *self.principal.lock().unwrap_or_else(|e| e.into_inner()) = Some(email.to_string());
    }
    pub fn principal(&self) -> Option<String> {
        self.principal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn push(&self, d: Decision) {
        self.decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(d);
    }
    pub fn decisions(&self) -> Vec<Decision> {
        self.decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A finished request, as the wire saw it.
#[derive(Debug, Clone)]
pub struct Record {
    pub time: chrono::DateTime<chrono::Utc>,
    pub service_name: String,
    pub method_name: String,
    pub resource_name: String,
    /// Project id the entry belongs to (empty for organization and folder resources).
    pub project: String,
    pub principal_email: String,
    /// The worker pool whose instance made the call (`projects/NUMBER/locations/L/
    /// workerPools/ID`), when the caller's token was minted for one.
    pub workload: Option<String>,
    pub decisions: Vec<Decision>,
    /// `google.rpc.Code` number and message; 0 for success.
    pub status_code: i32,
    pub status_message: String,
    /// Admin activity (a change) rather than data access (a read).
    pub activity: bool,
}

impl Record {
    /// The Cloud Logging `LogEntry` with an `AuditLog` payload.
    pub fn entry(&self, insert_id: &str) -> Value {
        let log = if self.activity {
            "activity"
        } else {
            "data_access"
        };
        let ts = self
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let authz: Vec<Value> = self
            .decisions
            .iter()
            .map(|d| {
                let mut v = json!({
                    "resource": d.resource,
                    "permission": d.permission,
                    "granted": d.granted,
                    "resourceAttributes": {"name": d.canonical, "type": d.resource_type, "service": d.service},
                });
                if d.soft {
                    v["runpoolEnforcement"] = json!("soft");
                }
                v
            })
            .collect();
        let mut status = json!({});
        if self.status_code != 0 {
            status = json!({"code": self.status_code, "message": self.status_message});
        }
        let mut authn = json!({"principalEmail": self.principal_email});
        if let Some(pool) = &self.workload {
            // As Cloud Audit Logs show a call made with a token Cloud Run minted: the service
            // agent that obtained it is the first-party principal.
            let number = pool
                .strip_prefix("projects/")
                .and_then(|r| r.split('/').next())
                .unwrap_or_default();
            authn["serviceAccountDelegationInfo"] = json!([{"firstPartyPrincipal": {
                "principalEmail": crate::run::service_agent(number),
                "serviceMetadata": {"workerPool": pool},
            }}]);
        }
        json!({
            "logName": format!("projects/{}/logs/cloudaudit.googleapis.com%2F{log}", self.project),
            "resource": {"type": "audited_resource", "labels": {
                "project_id": self.project, "service": self.service_name, "method": self.method_name}},
            "protoPayload": {
                "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                "serviceName": self.service_name,
                "methodName": self.method_name,
                "resourceName": self.resource_name,
                "authenticationInfo": authn,
                "authorizationInfo": authz,
                "status": status,
            },
            "timestamp": ts,
            "receiveTimestamp": ts,
            "severity": if self.status_code != 0 { "ERROR" } else if self.activity { "NOTICE" } else { "INFO" },
            "insertId": insert_id,
        })
    }
}

/// Entries beyond this many are dropped, oldest first.
pub const RETENTION_ENTRIES: i64 = 200_000;
/// Requests that find the writer this far behind wait for room.
/// (A bounded std channel allocates its whole buffer up front: 4,096 records is ~1 MB, where
/// 65,536 cost 13 MB of idle memory; the writer drains up to 1,024 a transaction.)
const QUEUE: usize = 4_096;
/// How long the writer lets records gather after a batch of reads.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// Where the log is kept. The writer thread owns it: writes, pruning and reads all run there,
/// in the order they were sent.
trait Db: Send {
    /// Commit `batch` (each entry numbered after the newest, and its uses), and keep the
    /// newest [`RETENTION_ENTRIES`]; `durable`: on disk when this returns.
    fn write(&mut self, batch: &[Record], durable: bool) -> Result<()>;
    /// Drop usage whose last use is before `cutoff` (a [`stamp`]).
    fn prune(&mut self, cutoff: &str) -> Result<()>;
    /// Every use last made at or after `since` (a [`stamp`]).
    fn usage(&mut self, since: &str) -> Result<Vec<Usage>>;
    /// Up to `n` entries of `project` past entry `from` (none: from the end it starts at),
    /// newest first or oldest first: `(id, time, entry)`.
    fn page(
        &mut self,
        project: &str,
        from: Option<i64>,
        newest_first: bool,
        n: i64,
    ) -> Result<Vec<(i64, String, String)>>;
}

/// What the writer thread is sent.
enum Msg {
    /// A record, and whom to tell once it is committed (boxed: the channel's buffer is
    /// allocated whole, at its capacity, so its slots stay small).
    Record(Box<Record>, Option<tokio::sync::oneshot::Sender<()>>),
    /// Answer once everything sent before is written.
    Flush(SyncSender<()>),
    /// A read, run after everything sent before is written.
    Ask(Ask),
}

/// A read the writer runs on its store.
type Ask = Box<dyn FnOnce(&mut dyn Db) + Send>;

/// The audit store: a writer thread behind a bounded channel.
pub struct AuditLog {
    tx: SyncSender<Msg>,
    /// Records whose commit failed.
    lost: Arc<AtomicU64>,
    /// Records committed.
    written: Arc<AtomicU64>,
}

/// One distinct use of a permission, as the recommender reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The caller's email.
    pub principal: String,
    pub permission: String,
    /// Canonical resource name (`projects/NUMBER/…`).
    pub resource: String,
    /// The worker pool whose instance made the call; empty for anything else.
    pub workload: String,
    /// Granted by IAM within the window asked for.
    pub granted: bool,
    /// Denied by IAM but let through by `soft` enforcement within the window: needed.
    pub soft: bool,
}

fn stamp(t: &chrono::DateTime<chrono::Utc>) -> String {
    // One fixed format, so stamps compare as text.
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The resource a use is recorded against: the decision's canonical name, except that a
/// check made on a project for something below it that does not exist yet (creating a worker
/// pool) is recorded against that thing (`projects/NUMBER/locations/L/workerPools/ID`), so
/// the recommender knows who deployed which pool.
fn used_resource(d: &Decision) -> String {
    let below = d
        .resource
        .strip_prefix("projects/")
        .and_then(|r| r.split_once('/'))
        .map(|(_, rest)| rest);
    match below {
        Some(rest) if d.canonical.starts_with("projects/") && !d.canonical[9..].contains('/') => {
            format!("{}/{rest}", d.canonical)
        }
        _ => d.canonical.clone(),
    }
}

/// One use to record: principal, permission, resource, workload, and the stamp of the use
/// as granted or as let through by soft enforcement.
type Use = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// The uses of permissions a record holds: its granted (or soft-allowed) decisions.
fn uses(r: &Record) -> impl Iterator<Item = Use> + '_ {
    let t = stamp(&r.time);
    r.decisions
        .iter()
        .filter(|d| d.granted || d.soft)
        .map(move |d| {
            let (granted, soft) = if d.granted {
                (Some(t.clone()), None)
            } else {
                (None, Some(t.clone()))
            };
            (
                r.principal_email.clone(),
                d.permission.clone(),
                used_resource(d),
                r.workload.clone().unwrap_or_default(),
                granted,
                soft,
            )
        })
}

/// Drop usage nobody will read again: rows whose last use is older than the recommender's
/// observation window. (Entries are bounded by count; usage by the window.)
/// How long permission usage is kept: Google's IAM recommender compares grants with the
/// permissions used in the last 90 days.
pub const OBSERVATION_DAYS: i64 = 90;

fn prune_usage(db: &mut dyn Db) {
    let cutoff = stamp(&(chrono::Utc::now() - chrono::Duration::days(OBSERVATION_DAYS)));
    if let Err(e) = db.prune(&cutoff) {
        tracing::warn!(error = %e, "audit usage pruning failed");
    }
}

/// How often the writer prunes usage.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

fn writer(mut db: Box<dyn Db>, rx: Receiver<Msg>, lost: Arc<AtomicU64>, written: Arc<AtomicU64>) {
    prune_usage(db.as_mut());
    let mut pruned = std::time::Instant::now();
    while let Ok(first) = rx.recv() {
        if pruned.elapsed() > PRUNE_EVERY {
            prune_usage(db.as_mut());
            pruned = std::time::Instant::now();
        }
        let mut batch = vec![];
        let mut acks = vec![];
        let mut flushes = vec![];
        let mut asks = vec![];
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Msg::Record(r, ack) => {
                    batch.push(*r);
                    acks.extend(ack);
                }
                Msg::Flush(done) => flushes.push(done),
                // A read waits for what came before it; what comes after it waits for the
                // next batch.
                Msg::Ask(ask) => {
                    asks.push(ask);
                    break;
                }
            }
            if batch.len() < 1024 {
                next = rx.try_recv().ok();
            }
        }
        // The record of an acknowledged change is acknowledged state too: its batch is on
        // disk when the commit returns (one sync per batch, not per record). Reads need not
        // outlive a power cut.
        let durable = batch.iter().any(|r| r.activity);
        let result = if batch.is_empty() {
            Ok(())
        } else {
            db.write(&batch, durable)
        };
        match result {
            Ok(()) => {
                written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                for ack in acks {
                    let _ = ack.send(());
                }
            }
            Err(e) => {
                let total =
                    lost.fetch_add(batch.len() as u64, Ordering::Relaxed) + batch.len() as u64;
                tracing::error!(error = %e, records = batch.len(), lost_in_all = total, "audit log write failed: these records are lost");
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
        for ask in asks {
            ask(db.as_mut());
        }
        // After reads, let records gather before the next batch: a sender that finds the
        // writer parked in `recv` pays for waking it, one that finds it busy or asleep pays
        // only for the send. After a change's record, straight back: a write waits for its
        // record, and a sleep here would be its latency.
        if !durable && !batch.is_empty() {
            std::thread::sleep(GATHER);
        }
    }
}

impl AuditLog {
    /// Open (or create) `audit.db` at `path` and start its writer thread.
    pub fn open(path: &Path) -> Result<AuditLog> {
        let path = path.to_path_buf();
        AuditLog::start(move || Ok(Box::new(sqlite::Sqlite::open(&path)?) as Box<dyn Db>))
    }

    /// The audit log in the PostgreSQL database at `url`, shared by every server over it
    /// (its tables come with the store's schema).
    pub fn open_postgres(url: &str) -> Result<AuditLog> {
        let url = url.to_string();
        AuditLog::start(move || Ok(Box::new(postgres::Postgres::open(&url)?) as Box<dyn Db>))
    }

    /// Start the writer thread on the store `open` makes there.
    fn start(open: impl FnOnce() -> Result<Box<dyn Db>> + Send + 'static) -> Result<AuditLog> {
        let (tx, rx) = sync_channel(QUEUE);
        let lost = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let (l, w) = (lost.clone(), written.clone());
        crate::base::store::spawn_opened("runpool-audit", open, move |db| writer(db, rx, l, w))?;
        Ok(AuditLog { tx, lost, written })
    }

    /// Hand a record to the writer. When its queue is full this waits for room rather than
    /// drop the record.
    pub fn record(&self, r: Record) {
        self.send(Msg::Record(Box::new(r), None));
    }

    /// [`AuditLog::record`], and an answer that resolves once the record is committed (an
    /// error if its commit failed, which [`AuditLog::lost`] counts).
    pub fn record_committed(&self, r: Record) -> tokio::sync::oneshot::Receiver<()> {
        let (ack, committed) = tokio::sync::oneshot::channel();
        self.send(Msg::Record(Box::new(r), Some(ack)));
        committed
    }

    fn send(&self, msg: Msg) {
        let msg = match self.tx.try_send(msg) {
            Ok(()) => return,
            Err(TrySendError::Disconnected(_)) => return self.writer_gone(),
            Err(TrySendError::Full(msg)) => msg,
        };
        // Backpressure: a request thread of the server's runtime waits without stalling the
        // other tasks of its worker.
        let send = || {
            if self.tx.send(msg).is_err() {
                self.writer_gone();
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(send)
            }
            _ => send(),
        }
    }

    /// The writer thread is gone (it panicked): what it is sent is lost, and counted.
    fn writer_gone(&self) {
        let n = self.lost.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::error!(
                lost_in_all = n,
                "the audit writer has stopped: audit records are lost"
            );
        }
    }

    /// Records whose commit failed (a full disk, say): the only way a record is lost.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Records committed since the server started.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Every distinct use of a permission since `since` (granted, or let through by soft
    /// enforcement), however many entries recorded it.
    pub fn usage(&self, since: chrono::DateTime<chrono::Utc>) -> Result<Vec<Usage>> {
        let since = stamp(&since);
        self.ask(move |db| db.usage(&since))
    }

    /// Run `f` on the writer's store after everything sent before, and wait for its answer.
    fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = sync_channel(1);
        self.send(Msg::Ask(Box::new(move |db| {
            let _ = tx.send(f(db));
        })));
        rx.recv()
            .map_err(|_| crate::Error::internal("the audit writer has stopped"))?
    }

    /// Wait until every record sent so far is written, so a read sees the calls that came
    /// before it.
    pub fn flush(&self) {
        let (done, wait) = sync_channel(1);
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Up to `limit` entries of a project for which `keep` holds, no older than `since`:
    /// the newest, newest first, or the oldest, oldest first.
    pub fn read(
        &self,
        project: &str,
        since: Option<chrono::DateTime<chrono::Utc>>,
        limit: usize,
        newest_first: bool,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<Vec<Value>> {
        let mut out = vec![];
        let mut from = None;
        loop {
            let project = project.to_string();
            let rows = self.ask(move |db| db.page(&project, from, newest_first, PAGE))?;
            for (_, time, entry) in &rows {
                if let (Some(s), Ok(t)) = (since, chrono::DateTime::parse_from_rfc3339(time))
                    && t < s
                {
                    if newest_first {
                        return Ok(out);
                    }
                    continue;
                }
                let e: Value = serde_json::from_str(entry).unwrap_or_default();
                if keep(&e) {
                    out.push(e);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            match rows.last() {
                Some((id, ..)) if rows.len() as i64 == PAGE => from = Some(*id),
                _ => return Ok(out),
            }
        }
    }
}

/// Entries read from the store at a time.
const PAGE: i64 = 500;

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(resource: &str, canonical: &str) -> Decision {
        Decision {
            resource: resource.into(),
            canonical: canonical.into(),
            resource_type: String::new(),
            service: String::new(),
            permission: "run.workerpools.create".into(),
            granted: true,
            soft: false,
        }
    }

    #[test]
    fn a_use_checked_on_the_project_for_a_pool_to_be_is_recorded_against_the_pool() {
        let d = decision(
            "projects/app/locations/us-central1/workerPools/w",
            "projects/300000000001",
        );
        assert_eq!(
            used_resource(&d),
            "projects/300000000001/locations/us-central1/workerPools/w"
        );
        let d = decision("projects/app", "projects/300000000001");
        assert_eq!(used_resource(&d), "projects/300000000001");
        let d = decision(
            "projects/-/serviceAccounts/a@app.iam.gserviceaccount.com",
            "projects/300000000001/serviceAccounts/123",
        );
        assert_eq!(
            used_resource(&d),
            "projects/300000000001/serviceAccounts/123"
        );
    }

    #[test]
    fn usage_keeps_one_row_per_distinct_use_and_reads_back_what_the_window_holds() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.db")).unwrap();
        let mut granted = decision("projects/app", "projects/1");
        granted.permission = "resourcemanager.projects.get".into();
        let mut soft = granted.clone();
        soft.permission = "iam.serviceAccounts.list".into();
        soft.granted = false;
        soft.soft = true;
        let mut denied = granted.clone();
        denied.permission = "resourcemanager.projects.delete".into();
        denied.granted = false;
        for _ in 0..3 {
            log.record(Record {
                time: chrono::Utc::now(),
                service_name: "s".into(),
                method_name: "m".into(),
                resource_name: "projects/app".into(),
                project: "app".into(),
                principal_email: "w@app.iam.gserviceaccount.com".into(),
                workload: Some("projects/1/locations/us-central1/workerPools/w".into()),
                decisions: vec![granted.clone(), soft.clone(), denied.clone()],
                status_code: 0,
                status_message: String::new(),
                activity: false,
            });
        }
        let mut used = log
            .usage(chrono::Utc::now() - chrono::Duration::hours(1))
            .unwrap();
        used.sort_by(|a, b| a.permission.cmp(&b.permission));
        // The strictly denied permission was not exercised; three calls make one row each.
        assert_eq!(used.len(), 2, "{used:?}");
        assert_eq!(used[0].permission, "iam.serviceAccounts.list");
        assert!(used[0].soft && !used[0].granted);
        assert!(used[1].granted && !used[1].soft);
        assert_eq!(
            used[1].workload,
            "projects/1/locations/us-central1/workerPools/w"
        );
        let later = log
            .usage(chrono::Utc::now() + chrono::Duration::hours(1))
            .unwrap();
        assert!(later.is_empty());
    }

    #[test]
    fn usage_older_than_the_observation_window_is_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let log = AuditLog::open(&path).unwrap();
        let mut old = decision("projects/app", "projects/1");
        old.permission = "resourcemanager.projects.get".into();
        let mut recent = old.clone();
        recent.permission = "resourcemanager.projects.list".into();
        for (d, days) in [(old, 91), (recent, 1)] {
            log.record(Record {
                time: chrono::Utc::now() - chrono::Duration::days(days),
                service_name: "s".into(),
                method_name: "m".into(),
                resource_name: "projects/app".into(),
                project: "app".into(),
                principal_email: "a@example.com".into(),
                workload: None,
                decisions: vec![d],
                status_code: 0,
                status_message: String::new(),
                activity: false,
            });
        }
        log.flush();
        drop(log);
        // The next writer prunes as it starts.
        let log = AuditLog::open(&path).unwrap();
        let all = log
            .usage(chrono::Utc::now() - chrono::Duration::days(400))
            .unwrap();
        let perms: Vec<&str> = all.iter().map(|u| u.permission.as_str()).collect();
        assert_eq!(perms, ["resourcemanager.projects.list"]);
    }
}
