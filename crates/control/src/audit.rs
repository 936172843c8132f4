//! The audit log: every API call an authenticated principal makes becomes a Cloud Audit Log
//! entry (`protoPayload` an `AuditLog`: service, method, resource, principal, each
//! authorization decision with its outcome, status). Recording is a channel send on the
//! request path; a writer thread batches entries into their own SQLite file and keeps a
//! bounded history. Cloud Logging's `entries:list` reads them back.
//!
//! Enforcement modes live here too: in `soft` mode a check that strict mode would deny is
//! allowed and marked in the entry (`granted: false` with `runpoolEnforcement: "soft"`), so
//! a team can learn what a workload needs before enforcing it.

use crate::error::Result;
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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
    decisions: Mutex<Vec<Decision>>,
}

impl Trace {
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
        json!({
            "logName": format!("projects/{}/logs/cloudaudit.googleapis.com%2F{log}", self.project),
            "resource": {"type": "audited_resource", "labels": {
                "project_id": self.project, "service": self.service_name, "method": self.method_name}},
            "protoPayload": {
                "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                "serviceName": self.service_name,
                "methodName": self.method_name,
                "resourceName": self.resource_name,
                "authenticationInfo": {"principalEmail": self.principal_email},
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
/// Requests that find the writer this far behind are not recorded (and counted).
/// (A bounded std channel allocates its whole buffer up front: 4,096 records is ~1 MB, where
/// 65,536 cost 13 MB of idle memory; the writer drains up to 1,024 a transaction.)
const QUEUE: usize = 4_096;

/// The audit store: a writer thread behind a bounded channel, and a read connection.
pub struct AuditLog {
    tx: SyncSender<Record>,
    path: PathBuf,
    dropped: std::sync::atomic::AtomicU64,
}

fn open(path: &Path) -> Result<Connection> {
    let c = Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    // Audit entries are not acknowledged state: losing the last instant on a crash is fine.
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS entries (
            id INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            project TEXT NOT NULL,
            entry TEXT NOT NULL
         );
         CREATE INDEX IF NOT EXISTS entries_project ON entries (project, id);",
    )?;
    Ok(c)
}

fn writer(conn: Connection, rx: Receiver<Record>) {
    let mut conn = conn;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 1024 {
                break;
            }
        }
        let result: rusqlite::Result<()> = (|| {
            let tx = conn.transaction()?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO entries (time, project, entry) VALUES (?1, ?2, ?3)",
                )?;
                let mut id_base: i64 =
                    tx.query_row("SELECT COALESCE(MAX(id), 0) FROM entries", [], |r| r.get(0))?;
                for r in &batch {
                    id_base += 1;
                    let e = r.entry(&format!("{id_base:016x}"));
                    ins.execute(params![r.time.to_rfc3339(), r.project, e.to_string()])?;
                }
                tx.execute(
                    "DELETE FROM entries WHERE id <= ?1",
                    params![id_base - RETENTION_ENTRIES],
                )?;
            }
            tx.commit()
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "audit log write failed");
        }
    }
}

impl AuditLog {
    /// Open (or create) `audit.db` at `path` and start its writer thread.
    pub fn open(path: &Path) -> Result<AuditLog> {
        let conn = open(path)?;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("runpool-audit".into())
            .spawn(move || writer(conn, rx))
            .map_err(|e| crate::Error::internal(format!("audit writer: {e}")))?;
        Ok(AuditLog {
            tx,
            path: path.to_path_buf(),
            dropped: Default::default(),
        })
    }

    /// Record a request; never blocks the request path.
    pub fn record(&self, r: Record) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(r) {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// How many entries were dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
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
        let conn = Connection::open(&self.path)?;
        let order = if newest_first { "DESC" } else { "ASC" };
        let mut stmt = conn.prepare(&format!(
            "SELECT time, entry FROM entries WHERE project = ?1 ORDER BY id {order}"
        ))?;
        let mut rows = stmt.query(params![project])?;
        let mut out = vec![];
        while let Some(row) = rows.next()? {
            let time: String = row.get(0)?;
            if let (Some(s), Ok(t)) = (since, chrono::DateTime::parse_from_rfc3339(&time))
                && t < s
            {
                if newest_first {
                    break;
                }
                continue;
            }
            let e: Value = serde_json::from_str(&row.get::<_, String>(1)?).unwrap_or_default();
            if keep(&e) {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}
