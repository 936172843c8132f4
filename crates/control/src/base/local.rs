//! Where a Runpool server and its clients on one machine find each other.
//!
//! The server writes its admin credential into its data dir (mode 0600) and a small record
//! under the client config dir naming the endpoint and that credential's path, so that
//! `runpool auth login EMAIL` works on the same machine with no flags, `--ephemeral` included.
//! Reading the record only helps a caller who can already read the 0600 credential file:
//! file permissions are the trust boundary, as for gcloud's own credential store.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// The client configuration dir: `$RUNPOOL_CONFIG`, else `$XDG_CONFIG_HOME/runpool`, else
/// `~/.config/runpool` (the analogue of gcloud's `CLOUDSDK_CONFIG`).
pub fn config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNPOOL_CONFIG") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x).join("runpool"),
        _ => home().join(".config").join("runpool"),
    }
}

/// The server's default data dir: `$RUNPOOL_DATA_DIR`, else `$XDG_DATA_HOME/runpool`, else
/// `~/.local/share/runpool`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNPOOL_DATA_DIR") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("XDG_DATA_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x).join("runpool"),
        _ => home().join(".local").join("share").join("runpool"),
    }
}

/// The file holding the admin credential inside a data dir.
pub const ADMIN_CREDENTIAL_FILE: &str = "admin-credential";

/// What a running server leaves for local clients.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerRecord {
    /// e.g. `http://127.0.0.1:8484`
    pub endpoint: String,
    pub admin_credential_file: PathBuf,
    pub pid: u32,
}

/// `config_dir()/servers/PORT.json`: one record per local port.
pub fn server_record_path(port: u16) -> PathBuf {
    config_dir().join("servers").join(format!("{port}.json"))
}

/// The record for the server at `port`, if one is running here.
pub fn read_server_record(port: u16) -> Option<ServerRecord> {
    let text = std::fs::read_to_string(server_record_path(port)).ok()?;
    serde_json::from_str(&text).ok()
}
