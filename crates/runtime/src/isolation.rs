//! Who a process-runtime instance runs as, so that it holds only its own identity.
//!
//! When the server runs as root, every instance runs as a user of its own (a uid from a
//! range no account uses, with no supplementary groups), with a private home directory
//! (0700, its own) as `HOME` and working directory. So it cannot read the data dir (0700,
//! root's: the store, the admin credential, the logs), another instance's `/proc/PID/environ`
//! (0400, that instance's user), or the CLI's credentials; and each metadata server answers
//! only connections whose socket belongs to its instance's uid (the owner the kernel records
//! in `/proc/net/tcp`), so no other local process can take the pool's token.
//!
//! A server that is not root cannot change users: instances then run as the server's own
//! user, which can read all of that. `serve` says so at start, and so does the README.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// Instance uids are drawn from `[UID_BASE, UID_BASE + UID_SPAN)`, far above any account's
/// and the usual subordinate-id ranges, starting at a random place so that a restarted
/// server does not hand a new instance the uid of one a killed predecessor left behind.
const UID_BASE: u32 = 2_000_000_000;
const UID_SPAN: u32 = 100_000_000;

/// How instances are isolated from each other and from the server.
pub enum Isolation {
    /// Each instance its own uid and home (the server is root).
    Users {
        /// Holds the instances' homes: root's, 0711 (others may enter a home they own, not
        /// list the others).
        homes: tempfile::TempDir,
        next: AtomicU32,
    },
    /// Instances run as the server's own user.
    Shared,
}

/// The user an instance runs as, and its home; the home goes when this is dropped.
pub struct InstanceUser {
    pub uid: u32,
    pub home: PathBuf,
}

impl Drop for InstanceUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

impl Isolation {
    /// Per-instance users if the server is root (and the homes directory can be made).
    pub fn for_server() -> Isolation {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Isolation::Shared;
        }
        let made = tempfile::Builder::new()
            .prefix("runpool-instances-")
            .tempdir()
            .and_then(|d| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o711))?;
                Ok(d)
            });
        match made {
            Ok(homes) => {
                let start = rand::Rng::random_range(&mut rand::rng(), 0..UID_SPAN);
                Isolation::Users {
                    homes,
                    next: AtomicU32::new(start),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot make the instances' home directories; instances run as the server's user");
                Isolation::Shared
            }
        }
    }

    pub fn isolated(&self) -> bool {
        matches!(self, Isolation::Users { .. })
    }

    /// A fresh user and home for instance `id`; `None` when instances share the server's
    /// user.
    pub fn user_for(&self, id: &str) -> std::io::Result<Option<InstanceUser>> {
        let Isolation::Users { homes, next } = self else {
            return Ok(None);
        };
        let uid = UID_BASE + next.fetch_add(1, Ordering::Relaxed) % UID_SPAN;
        let home = homes.path().join(id);
        std::fs::create_dir(&home)?;
        std::os::unix::fs::chown(&home, Some(uid), Some(uid))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Some(InstanceUser { uid, home }))
    }
}

/// The uid that owns the client end of a loopback TCP connection, as the kernel records it
/// (`/proc/net/tcp`: the row whose local address is the client's and whose remote address is
/// ours). `None` if it cannot be told.
pub fn peer_uid(stream: &tokio::net::TcpStream) -> Option<u32> {
    let (SocketAddr::V4(peer), SocketAddr::V4(local)) =
        (stream.peer_addr().ok()?, stream.local_addr().ok()?)
    else {
        return None;
    };
    let hex = |a: std::net::SocketAddrV4| {
        format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(a.ip().octets()),
            a.port()
        )
    };
    let (want_local, want_remote) = (hex(peer), hex(local));
    uid_in(
        &std::fs::read_to_string("/proc/net/tcp").ok()?,
        &want_local,
        &want_remote,
    )
}

fn uid_in(table: &str, local: &str, remote: &str) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&local) && f.get(2) == Some(&remote))
            .then(|| f.get(7)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uid_is_read_from_the_row_of_the_clients_socket() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:A1B2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 2000000007        0 2 1 0 20 4 30 10 -1\n\
   2: 0100007F:1F90 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n";
        assert_eq!(
            uid_in(table, "0100007F:A1B2", "0100007F:1F90"),
            Some(2_000_000_007)
        );
        assert_eq!(uid_in(table, "0100007F:1F90", "0100007F:A1B2"), Some(0));
        assert_eq!(uid_in(table, "0100007F:FFFF", "0100007F:1F90"), None);
    }

    #[tokio::test]
    async fn a_real_connection_is_owned_by_this_process_user() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = l.accept().await.unwrap();
        // SAFETY: geteuid has no preconditions.
        assert_eq!(peer_uid(&server_side), Some(unsafe { libc::geteuid() }));
    }
}
