//! An instance holds only its own identity. With the process runtime under a root server,
//! each instance runs as a user of its own: code in one pool's instance tries each way out
//! (the admin credential, the data dir, another instance's and the server's environment,
//! another pool's metadata server) and every one fails, while its own token works; and no
//! local process but the instance takes a pool's token from its metadata server.
//!
//! Needs root (CI runs as root); elsewhere the test says so and passes without running, as
//! `serve` itself then warns that instances share its user.

mod common;

use common::Server;
use common::procs::{kill_ours, marker, procs_with};
use common::session::{Session, sa_base};
use common::wait::wait_for;
use common::world::{POOLS, app_project, cross_project, shared_folder};
use serde_json::json;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The value of `key` in the environment of process `pid` (read as root).
fn environ(pid: u32, key: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0).find_map(|kv| {
        std::str::from_utf8(kv)
            .ok()?
            .strip_prefix(&format!("{key}="))
            .map(str::to_string)
    })
}

struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for m in &self.0 {
            kill_ours(m);
        }
    }
}

#[test]
fn an_instance_cannot_reach_past_its_own_identity() {
    if !is_root() {
        eprintln!("skipped: per-instance users need a root server (serve warns at start)");
        return;
    }
    // The data dir as `serve` makes it (it does not exist yet).
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let mut s = Session::new(Server::spawn(
        Some(&data_dir),
        Some(&cross_project(shared_folder(), app_project()).yaml()),
        &[],
    ));
    let (a_mark, b_mark) = (marker("iso-a"), marker("iso-b"));
    let _cleanup = Cleanup(vec![a_mark.clone(), b_mark.clone()]);

    // Pool A runs as an account of its own; its instance just waits.
    let a_sa = s.create_sa("app-project", "pool-a");
    s.grant(
        &sa_base(&a_sa),
        "roles/iam.serviceAccountUser",
        "user:admin@example.com",
    );
    s.deploy(
        "pool-a",
        json!({"template": {"serviceAccount": a_sa, "containers": [{"image": "img",
            "command": ["sh", "-c", format!("while true; do sleep 1; done # {a_mark}")]}]}}),
    );
    let a_pid = wait_for("pool A's instance", 20, || {
        procs_with(&a_mark)
            .first()
            .copied()
            .ok_or_else(|| "none yet".to_string())
    });
    let a_md = wait_for("pool A's metadata address", 10, || {
        environ(a_pid, "GCE_METADATA_HOST").ok_or_else(|| "not readable yet".to_string())
    });

    // A local process that is not the instance (this test, as root) gets no token.
    let token_path = "/computeMetadata/v1/instance/service-accounts/default/token";
    let refused = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{a_md}{token_path}"))
        .header("Metadata-Flavor", "Google")
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert!(
        refused
            .text()
            .unwrap()
            .contains("answers only its own worker pool instance")
    );

    // Pool B's instance tries every way out, then its own token.
    let data = s.server.data_dir().display().to_string();
    let script = format!(
        r#"echo "given $DATA $A_PID $A_MD"
try() {{ if sh -c "$2" >/dev/null 2>&1; then echo "ESCAPED $1"; else echo "HELD $1"; fi; }}
try credential "cat $DATA/admin-credential"
try data-dir "ls $DATA"
try store "cat $DATA/runpool.db"
try other-environ "cat /proc/$A_PID/environ"
try server-environ "cat /proc/$PPID/environ"
try other-token "curl -sf -H 'Metadata-Flavor: Google' http://$A_MD{token_path}"
if curl -sf -H 'Metadata-Flavor: Google' "http://$GCE_METADATA_HOST{token_path}" | grep -q access_token; then echo "OWN token"; else echo "OWN none"; fi
echo "uid $(id -u)"
E=escaped; setsid sh -c "while true; do sleep 1; done # {b_mark}-$E" </dev/null >/dev/null 2>&1 &
echo finished
while true; do sleep 1; done # {b_mark}"#
    );
    s.deploy(
        "pool-b",
        json!({"template": {"containers": [{"image": "img", "command": ["sh", "-c", script],
            "env": [{"name": "DATA", "value": data}, {"name": "A_PID", "value": a_pid.to_string()},
                    {"name": "A_MD", "value": a_md}]}]}}),
    );
    let lines = wait_for("pool B's report", 30, || {
        let (st, body) = s.api.post(
            &s.admin,
            "/v2/entries:list",
            json!({"resourceNames": ["projects/app-project"], "pageSize": 1000,
                   "filter": "resource.labels.worker_pool_name=\"pool-b\""}),
        );
        assert_eq!(st, 200, "{body}");
        let lines: Vec<String> = body["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["textPayload"].as_str().map(str::to_string))
            .collect();
        if lines.iter().any(|l| l == "finished") {
            Ok(lines)
        } else {
            Err(format!("{lines:?}"))
        }
    });
    assert!(
        lines.contains(&format!("given {data} {a_pid} {a_md}")),
        "the instance knows where to look: {lines:?}"
    );
    for way in [
        "credential",
        "data-dir",
        "store",
        "other-environ",
        "server-environ",
        "other-token",
    ] {
        assert!(lines.contains(&format!("HELD {way}")), "{way}: {lines:?}");
    }
    assert!(lines.contains(&"OWN token".to_string()), "{lines:?}");
    let uid = lines
        .iter()
        .find_map(|l| l.strip_prefix("uid "))
        .and_then(|u| u.parse::<u32>().ok())
        .expect("the instance printed its uid");
    assert_ne!(uid, 0, "an instance never runs as root");
    assert_eq!(
        s.api.get(&s.admin, &format!("{POOLS}/pool-b")).0,
        200,
        "the pool itself is fine"
    );
    assert_eq!(
        procs_with(&format!("{b_mark}-escaped")).len(),
        1,
        "a process left its group"
    );
    // Deleting the pool ends everything its instance's user runs, escaped or not.
    assert_eq!(s.api.delete(&s.admin, &format!("{POOLS}/pool-b")).0, 200);
    wait_for("pool B's processes to go", 20, || {
        let left = procs_with(&b_mark);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    s.server.terminate(std::time::Duration::from_secs(30));
    assert!(
        procs_with(&a_mark).is_empty(),
        "instances stop with the server"
    );
}
