//! The durable store: every piece of state is a row `(kind, key) → JSON`, written in one
//! transaction per mutation. The interface is this narrow on purpose (load everything, then
//! lock, commit a batch of writes, and hear of other servers' batches), so that a backend
//! is little more than its SQL: [`sqlite`], embedded, the default; [`postgres`], for several
//! `serve` processes over one database.
//!
//! Every committed batch is a numbered version of the store. A server keeps the version its
//! memory holds; [`Backend::begin`] takes the store's write lock and hands back the batches
//! other servers committed since, so a mutation is always decided on the newest state, and
//! two servers' read-modify-writes are ordered exactly as one server's are.

pub mod postgres;
pub mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::base::error::{Error, Result};

/// One stored row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub kind: String,
    pub key: String,
    pub value: String,
}

/// One write of a mutation.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put {
        kind: &'static str,
        key: String,
        value: String,
    },
    Delete {
        kind: &'static str,
        key: String,
    },
}

/// Everything in the store, at one version.
pub struct Loaded {
    pub rows: Vec<Row>,
    pub version: u64,
}

/// One batch another server committed: each row as it now is (`value: None` for a row the
/// batch deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub version: u64,
    pub rows: Vec<(String, String, Option<String>)>,
}

/// What a store backend must do.
pub trait Backend: Send {
    /// Every row, for rebuilding the in-memory state at start, with the version it is.
    fn load(&mut self) -> Result<Loaded>;
    /// Take the store's write lock for one mutation, and answer what was committed after
    /// version `seen` (by other servers), oldest first. Ends with [`Backend::commit`] or
    /// [`Backend::abort`].
    fn begin(&mut self, seen: u64) -> Result<Vec<Logged>>;
    /// Apply all writes atomically and durably, or none of them; answers the new version
    /// and releases the lock.
    fn commit(&mut self, writes: &[Write]) -> Result<u64>;
    /// Release the lock, writing nothing.
    fn abort(&mut self);
    /// What was committed after version `seen`, without taking the lock.
    fn since(&mut self, seen: u64) -> Result<Vec<Logged>>;
    /// Whether other servers write this store too.
    fn shared(&self) -> bool {
        false
    }
    /// The lease that one server of those sharing the store holds at a time (the one that
    /// runs the instances): a channel that is `true` while this server holds it. `None` for a
    /// store only this process writes, whose server always holds it.
    fn lease(&mut self) -> Result<Option<tokio::sync::watch::Receiver<bool>>> {
        Ok(None)
    }
    /// A channel that hears of every batch another server commits, for a store that others
    /// write (`None` for one only this process writes).
    fn subscribe(&mut self) -> Result<Option<std::sync::mpsc::Receiver<u64>>> {
        Ok(None)
    }
}

/// Start thread `name`, make its `T` there with `open`, and run `body` with it; answers once
/// `open` has, with its error if it failed. The `postgres` driver must connect on a thread of
/// its own: it starts a runtime, which may not nest inside the server's.
pub(crate) fn spawn_opened<T: 'static>(
    name: &str,
    open: impl FnOnce() -> Result<T> + Send + 'static,
    body: impl FnOnce(T) + Send + 'static,
) -> Result<()> {
    let (opened, ready) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || match open() {
            Ok(t) => {
                let _ = opened.send(Ok(()));
                body(t)
            }
            Err(e) => drop(opened.send(Err(e))),
        })
        .map_err(|e| Error::internal(format!("cannot start thread {name}: {e}")))?;
    ready
        .recv()
        .map_err(|_| Error::internal(format!("thread {name} stopped")))?
}
