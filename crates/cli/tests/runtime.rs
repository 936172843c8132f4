//! The runtime of `runpool serve`, against the real binary: worker pool instances run as host
//! processes (count, revisions, restarts, crash loops, shutdown, restart of the server), their
//! logs come back through Cloud Logging `entries:list`, and each instance's metadata server
//! answers as Google's does and hands out tokens minted by the pool project's service agent.
//!
//! Instances are `sh -c` scripts that carry a marker unique to the test in their command line,
//! so the test can find (only) its own processes in `/proc`. Every wait is a poll with a
//! deadline; no assertion is about timing.

mod common;

use common::procs::{kill_ours, marker, procs_with};
use common::session::{Session, permission_denied, sa_base};
use common::wait::wait_for;
use common::world::{
    AGENT, APP_NUMBER, DEFAULT_SA, POOLS, app_project, cross_project, shared_folder,
};
use common::{Server, instance_dir};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

fn world_yaml() -> String {
    cross_project(shared_folder(), app_project()).yaml()
}

/// A server with the world above; on drop it is stopped with SIGTERM (so its instances stop
/// too) rather than killed.
struct World {
    session: Session,
    /// Markers of this test's instances: whatever still carries one when the test ends (an
    /// orphan, or a failed assertion's leftovers) is killed, so no test leaks processes.
    marks: std::cell::RefCell<Vec<String>>,
}

common::session::deref_session!(World, session);

impl Drop for World {
    fn drop(&mut self) {
        self.session.server.terminate(Duration::from_secs(30));
        for m in self.marks.borrow().iter() {
            kill_ours(m);
        }
    }
}

fn world() -> World {
    from_server(Server::start_with_world(&world_yaml()))
}

/// A world whose pool `wp` runs one instance that reports its metadata server: the world, that
/// server's address and the instance id (for the metadata server tests).
fn metadata_world(test: &str) -> (World, String, String) {
    let w = world();
    let mark = w.mark(test);
    let (host, instance) = w.metadata_instance("wp", None, &mark);
    (w, host, instance)
}

fn from_server(server: Server) -> World {
    World {
        session: Session::new(server),
        marks: Default::default(),
    }
}

/// A container that runs `script` with `sh -c`.
fn pool_body(script: &str, count: i32, sa: Option<&str>) -> Value {
    let mut template = json!({"containers": [{
        "image": "us-docker.pkg.dev/cloudrun/container/worker-pool",
        "command": ["sh", "-c", script],
    }]});
    if let Some(sa) = sa {
        template["serviceAccount"] = json!(sa);
    }
    json!({"template": template, "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": count}})
}

/// A script that says it started (with its revision and marker) and then stays up.
fn idle_script(mark: &str) -> String {
    format!("echo \"start $CLOUD_RUN_REVISION {mark}\"; while true; do sleep 0.2; done")
}

/// Wait until exactly `n` processes carry `mark`.
fn wait_procs(mark: &str, n: usize, secs: u64) -> Vec<u32> {
    wait_for(&format!("{n} processes with {mark}"), secs, || {
        let p = procs_with(mark);
        if p.len() == n {
            Ok(p)
        } else {
            Err(format!("{} processes: {p:?}", p.len()))
        }
    })
}

impl World {
    /// A marker for this test's instances, reaped when the world goes.
    fn mark(&self, test: &str) -> String {
        let m = marker(test);
        self.marks.borrow_mut().push(m.clone());
        m
    }

    /// The pool `id`, which must exist.
    fn pool(&self, id: &str) -> Value {
        let (s, p) = self.session.pool(id);
        assert_eq!(s, 200, "{p}");
        p
    }

    /// The latest ready revision's id (`wp-00001-abc`).
    fn latest(&self, id: &str) -> String {
        self.pool(id)["latestReadyRevision"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    }

    fn scale(&self, id: &str, count: i32) {
        let (s, op) = self.api.patch(
            &self.admin,
            &format!("{POOLS}/{id}?updateMask=scaling"),
            json!({"scaling": {"scalingMode": "MANUAL", "manualInstanceCount": count}}),
        );
        assert_eq!(s, 200, "scale {id} to {count}: {op}");
    }

    /// Log lines of pool `id` whose text starts with `prefix`: (instanceId, revision, text).
    fn lines(&self, id: &str, prefix: &str) -> Vec<(String, String, String)> {
        self.log_entries(id)
            .iter()
            .filter_map(|e| {
                let text = e["textPayload"].as_str()?;
                text.starts_with(prefix).then(|| {
                    (
                        e["labels"]["instanceId"].as_str().unwrap_or("").to_string(),
                        e["resource"]["labels"]["revision_name"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        text.to_string(),
                    )
                })
            })
            .collect()
    }

    /// Wait (up to 20 s) for `what`: the lines of pool `id` starting with `prefix` being
    /// `enough` by their count; those lines.
    fn wait_lines(
        &self,
        what: &str,
        id: &str,
        prefix: &str,
        enough: impl Fn(usize) -> bool,
    ) -> Vec<(String, String, String)> {
        wait_for(what, 20, || {
            let l = self.lines(id, prefix);
            if enough(l.len()) {
                Ok(l)
            } else {
                Err(format!("{l:?}"))
            }
        })
    }

    /// Deploy `id` with an instance that prints its metadata server's address, and that
    /// address (`127.0.0.1:PORT`) with the instance's id from the logs.
    fn metadata_instance(&self, id: &str, sa: Option<&str>, mark: &str) -> (String, String) {
        let script =
            format!("echo \"md=$GCE_METADATA_HOST\"; while true; do sleep 0.2; done # {mark}");
        self.deploy(id, pool_body(&script, 1, sa));
        wait_for("the instance's metadata address in its logs", 20, || {
            let l = self.lines(id, "md=");
            match l.first() {
                Some((inst, _, text)) if text.len() > 3 => {
                    Ok((text[3..].to_string(), inst.clone()))
                }
                _ => Err(format!("{l:?}")),
            }
        })
    }
}

/// The metadata server at `host`: GET `path` with the given headers; (status, flavor header,
/// content type, body).
fn md_get(host: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String, String) {
    // An isolated instance's metadata server answers only its instance's user: ask as it.
    if let Some(uid) = instance_uid(host) {
        return md_get_as(uid, host, path, headers);
    }
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = http.get(format!("http://{host}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("metadata server answers");
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (flavor, ctype) = (header("metadata-flavor"), header("content-type"));
    (resp.status().as_u16(), flavor, ctype, resp.text().unwrap())
}

/// The user of the instance whose metadata server is at `host`, when it is not the test's
/// own (the server runs each instance as a user of its own when it is root).
fn instance_uid(host: &str) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let needle = format!("GCE_METADATA_HOST={host}");
    let me = unsafe { libc::geteuid() };
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let env = std::fs::read(e.path().join("environ")).ok()?;
        env.split(|b| *b == 0)
            .any(|kv| kv == needle.as_bytes())
            .then(|| std::fs::metadata(e.path()).ok().map(|m| m.uid()))
            .flatten()
            .filter(|uid| *uid != me)
    })
}

/// [`md_get`] from a process running as `uid` (curl under setpriv), as code in the instance
/// would ask.
fn md_get_as(
    uid: u32,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String, String) {
    let id = uid.to_string();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
        .args(["curl", "-sS", "-i", "--noproxy", "*"]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd
        .arg(format!("http://{host}{path}"))
        .output()
        .expect("setpriv and curl run");
    assert!(out.status.success(), "curl as {uid}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let header = |n: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(n))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    (
        status,
        header("metadata-flavor"),
        header("content-type"),
        body.to_string(),
    )
}

/// GET with `Metadata-Flavor: Google`, insisting on 200; the body.
fn md(host: &str, path: &str) -> String {
    let (s, flavor, _, body) = md_get(host, path, &[("Metadata-Flavor", "Google")]);
    assert_eq!(s, 200, "{path}: {body}");
    assert_eq!(
        flavor, "Google",
        "{path}: Metadata-Flavor on every response"
    );
    body
}

fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.trim().split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

// ----------------------------------------------------------------------------------------------
// Instances: what runs, with what environment

#[test]
fn an_instance_runs_command_and_args_with_only_cloud_runs_environment() {
    let w = world();
    let mark = w.mark("env");
    let dir = instance_dir();
    let workdir = dir.path().canonicalize().unwrap();
    // command + args: `sh -c SCRIPT NAME` then args `one two` as $1 $2.
    let script = "env | sed 's/^/env:/'; echo \"args:$1,$2\"; echo \"pwd:$(pwd)\"; \
         echo \"pg:$$:$(cut -d' ' -f5 /proc/$$/stat)\"; echo to-stderr >&2; \
         while true; do sleep 0.2; done";
    let body = json!({
        "template": {"containers": [{
            "image": "img",
            "command": ["sh", "-c", script, mark],
            "args": ["one", "two"],
            "env": [{"name": "GREETING", "value": "hello world"}],
            "workingDir": workdir.display().to_string(),
        }]},
    });
    w.deploy("wp", body);
    let rev = w.latest("wp");
    let lines = wait_for("the instance's output", 20, || {
        let l = w.lines("wp", "");
        if l.iter().any(|(_, _, t)| t.starts_with("pg:"))
            && l.iter().any(|(_, _, t)| t == "to-stderr")
        {
            Ok(l)
        } else {
            Err(format!("{l:?}"))
        }
    });
    let env: BTreeMap<String, String> = lines
        .iter()
        .filter_map(|(_, _, t)| t.strip_prefix("env:")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(env["CLOUD_RUN_WORKER_POOL"], "wp", "{env:?}");
    assert_eq!(env["CLOUD_RUN_REVISION"], rev, "{env:?}");
    assert_eq!(env["RUNPOOL_ENDPOINT"], w.server.endpoint, "{env:?}");
    assert_eq!(env["GREETING"], "hello world", "the container's env");
    let host = &env["GCE_METADATA_HOST"];
    assert!(host.starts_with("127.0.0.1:"), "{env:?}");
    assert_eq!(&env["GCE_METADATA_IP"], host, "{env:?}");
    assert!(env.contains_key("PATH"), "{env:?}");
    // The harness gives the server these; an instance must not inherit them.
    for leaked in ["RUNPOOL_CONFIG", "RUNPOOL_DATA_DIR"] {
        assert!(!env.contains_key(leaked), "{leaked} leaked: {env:?}");
    }
    let text = |p: &str| {
        lines
            .iter()
            .find_map(|(_, _, t)| t.strip_prefix(p).map(str::to_string))
            .unwrap()
    };
    assert_eq!(text("args:"), "one,two", "args follow command");
    assert_eq!(text("pwd:"), workdir.display().to_string(), "workingDir");
    let pg = text("pg:");
    let (pid, pgid) = pg.split_once(':').unwrap();
    assert_eq!(pid, pgid, "the instance leads its own process group");

    // Every line carries the instance, the revision and a severity by stream.
    let entries = w.log_entries("wp");
    let instances: BTreeSet<&str> = entries
        .iter()
        .map(|e| e["labels"]["instanceId"].as_str().unwrap())
        .collect();
    assert_eq!(instances.len(), 1, "one instance by default: {instances:?}");
    for e in &entries {
        assert_eq!(e["resource"]["type"], "cloud_run_worker_pool");
        assert_eq!(e["resource"]["labels"]["revision_name"], rev);
        assert_eq!(e["resource"]["labels"]["worker_pool_name"], "wp");
        let want = if e["textPayload"] == "to-stderr" {
            "ERROR"
        } else {
            "DEFAULT"
        };
        assert_eq!(e["severity"], want, "{e}");
    }
    assert_eq!(procs_with(&mark).len(), 1);
}

#[test]
fn an_instance_reaches_google_host_names_through_the_servers_proxy_as_its_identity() {
    let w = world();
    let mark = w.mark("proxy");
    // No endpoint, proxy or CA of its own: the runtime's `HTTPS_PROXY` and CA bundle, and a
    // token for the pool's identity from its metadata server.
    let script = format!(
        "t=$(curl -s -H 'Metadata-Flavor: Google' \
             \"http://$GCE_METADATA_HOST/computeMetadata/v1/instance/service-accounts/default/token\" |
           sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/');
         for p in app-project shared-project; do
           curl -sS -o /dev/null -w \"rm:$p:%{{http_code}}:%{{http_version}}\\n\" \
             -H \"Authorization: Bearer $t\" https://cloudresourcemanager.googleapis.com/v3/projects/$p;
         done; echo {mark}; while true; do sleep 0.2; done"
    );
    w.deploy("wp", pool_body(&script, 1, None));
    let lines = wait_for("the instance's calls", 20, || {
        let l: Vec<String> = w
            .lines("wp", "rm:")
            .into_iter()
            .map(|(_, _, t)| t)
            .collect();
        if l.len() == 2 {
            Ok(l)
        } else {
            Err(format!("{l:?} {:?}", w.lines("wp", "")))
        }
    });
    // TLS verified against the bundle, over HTTP/2, answered by this server's IAM: its own
    // project is readable to the pool's identity; another project is not.
    assert_eq!(
        lines,
        vec!["rm:app-project:200:2", "rm:shared-project:403:2"],
        "{lines:?}"
    );
}

#[test]
fn scaling_up_and_down_changes_the_running_count_without_a_new_revision() {
    let w = world();
    let mark = w.mark("scale");
    w.deploy("wp", pool_body(&idle_script(&mark), 2, None));
    wait_procs(&mark, 2, 20);
    let rev = w.latest("wp");

    w.scale("wp", 4);
    wait_procs(&mark, 4, 20);
    assert_eq!(w.revisions("wp"), 1, "scaling makes no revision");
    // The four running instances are four distinct instances of the one revision.
    let started = w.wait_lines("four start lines", "wp", "start ", |n| n >= 4);
    let ids: BTreeSet<&str> = started.iter().map(|(i, ..)| i.as_str()).collect();
    assert_eq!(ids.len(), 4, "{started:?}");
    assert!(
        started
            .iter()
            .all(|(_, r, t)| r == &rev && t.contains(&rev)),
        "{started:?}"
    );

    w.scale("wp", 1);
    let left = wait_procs(&mark, 1, 20);
    // The survivor is not restarted: no fifth instance was started to get down to one.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        procs_with(&mark),
        left,
        "the remaining instance keeps running"
    );
    assert_eq!(
        w.lines("wp", "start ").len(),
        4,
        "scaling down starts nothing"
    );

    w.scale("wp", 0);
    wait_procs(&mark, 0, 20);
    assert_eq!(w.revisions("wp"), 1);

    w.scale("wp", 2);
    wait_procs(&mark, 2, 20);
}

#[test]
fn describe_shows_how_many_instances_are_running_as_the_count_changes() {
    let w = world();
    w.server.ok(&["auth", "login", "admin@example.com"]);
    let mark = w.mark("describe-count");
    w.deploy("wp", pool_body(&idle_script(&mark), 2, None));
    let describe = || {
        w.server
            .describe_pool("wp", &["--project", "app-project"])
            .stdout
    };
    let shows = |n: usize| {
        wait_for(&format!("describe saying {n} running"), 20, || {
            let out = describe();
            if out.contains(&format!("\nInstances: {n} running\n")) {
                Ok(out)
            } else {
                Err(out)
            }
        })
    };
    wait_procs(&mark, 2, 20);
    let out = shows(2);
    assert!(
        out.contains("✔ WorkerPool wp in region us-central1")
            && out.contains("Scaling:   Manual (Instances: 2)"),
        "{out}"
    );
    // On the wire it is the Ready condition's message; reporting it changes no spec: the
    // generation and etag a scaling change left stay as they were.
    let c = w.condition("wp");
    assert_eq!(c["message"], "2 instances running.", "{c}");
    assert_eq!(c["state"], "CONDITION_SUCCEEDED", "{c}");

    w.scale("wp", 3);
    let before = w.pool("wp");
    wait_procs(&mark, 3, 20);
    shows(3);
    let after = w.pool("wp");
    assert_eq!(after["etag"], before["etag"]);
    assert_eq!(after["generation"], before["generation"]);

    w.scale("wp", 1);
    wait_procs(&mark, 1, 20);
    let out = shows(1);
    assert!(out.contains("Scaling:   Manual (Instances: 1)"), "{out}");
    assert_eq!(w.condition("wp")["message"], "1 instance running.");

    w.scale("wp", 0);
    wait_procs(&mark, 0, 20);
    shows(0);
}

#[test]
fn deleting_the_pool_stops_its_instances_and_leaves_other_pools_alone() {
    let w = world();
    let (a, b) = (w.mark("delete-a"), w.mark("delete-b"));
    w.deploy("wp-a", pool_body(&idle_script(&a), 2, None));
    w.deploy("wp-b", pool_body(&idle_script(&b), 1, None));
    wait_procs(&a, 2, 20);
    let kept = wait_procs(&b, 1, 20);
    let (s, op) = w.api.delete(&w.admin, &format!("{POOLS}/wp-a"));
    assert_eq!(s, 200, "{op}");
    wait_procs(&a, 0, 20);
    assert_eq!(
        procs_with(&b),
        kept,
        "the other pool's instance is untouched"
    );
}

#[test]
fn a_new_revision_starts_its_instances_then_stops_the_old_ones() {
    let w = world();
    let (old, new) = (w.mark("rev-old"), w.mark("rev-new"));
    // On SIGTERM an old instance notes in a journal how many of the new revision's
    // instances are running at that moment (found in /proc by the new marker; the regex
    // `ne[w]` does not match the old script's own command line, nor grep's).
    let dir = instance_dir();
    let journal = dir.path().join("journal");
    // Both old instances append to it, each as a user of its own.
    std::fs::write(&journal, "").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let j = journal.display();
    let pattern = new.replacen("rev-new", "rev-ne[w]", 1);
    let old_script = format!(
        "trap 'n=$(grep -l \"{pattern}\" /proc/[0-9]*/cmdline 2>/dev/null | wc -l); \
         echo \"term $CLOUD_RUN_REVISION new=$n\" >> {j}; exit 0' TERM; {}",
        idle_script(&old)
    );
    w.deploy("wp", pool_body(&old_script, 2, None));
    wait_procs(&old, 2, 20);
    let rev1 = w.latest("wp");

    let (s, op) = w.api.patch(
        &w.admin,
        &format!("{POOLS}/wp"),
        pool_body(&idle_script(&new), 2, None),
    );
    assert_eq!(s, 200, "{op}");
    let rev2 = w.latest("wp");
    assert_ne!(rev1, rev2, "a template change makes a revision");
    wait_procs(&new, 2, 20);
    wait_procs(&old, 0, 20);
    assert_eq!(w.revisions("wp"), 2);

    let lines: Vec<String> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // (A new instance forking `sleep` shows for an instant as one more: at least two.)
    let running_new: Vec<Option<u32>> = lines
        .iter()
        .map(|l| {
            l.strip_prefix(&format!("term {rev1} new="))
                .and_then(|n| n.trim().parse().ok())
        })
        .collect();
    assert!(
        running_new.len() == 2 && running_new.iter().all(|n| n.is_some_and(|n| n >= 2)),
        "each old instance got SIGTERM, once both new instances were running: {lines:?}"
    );
    // The logs tell the revisions apart.
    let starts = w.lines("wp", "start ");
    assert!(
        starts
            .iter()
            .any(|(_, r, t)| r == &rev2 && t.contains(&new))
            && starts
                .iter()
                .any(|(_, r, t)| r == &rev1 && t.contains(&old)),
        "{starts:#?}"
    );
}

#[test]
fn a_split_between_two_revisions_runs_each_ones_share() {
    let w = world();
    let (m1, m2) = (w.mark("split-1"), w.mark("split-2"));
    w.deploy("wp", pool_body(&idle_script(&m1), 4, None));
    wait_procs(&m1, 4, 20);
    let rev1 = w.latest("wp");
    let mut body = pool_body(&idle_script(&m2), 4, None);
    body["instanceSplits"] = json!([
        {"type": "INSTANCE_SPLIT_ALLOCATION_TYPE_REVISION", "revision": rev1, "percent": 25},
        {"type": "INSTANCE_SPLIT_ALLOCATION_TYPE_LATEST", "percent": 75},
    ]);
    let (s, op) = w.api.patch(&w.admin, &format!("{POOLS}/wp"), body);
    assert_eq!(s, 200, "{op}");
    wait_procs(&m2, 3, 20);
    wait_procs(&m1, 1, 20);
}

// ----------------------------------------------------------------------------------------------
// Exits, crash loops, bad containers

#[test]
fn an_instance_that_exits_is_restarted() {
    let w = world();
    let mark = w.mark("restart");
    // Up long enough not to be a crash loop's quick exit? No: it exits at once when told to by
    // a file, then the replacement stays up.
    let flag = instance_dir();
    let stop = flag.path().join("stop-once");
    std::fs::write(&stop, "").unwrap();
    let script = format!(
        "echo \"start {mark}\"; if [ -e {f} ]; then rm {f}; exit 7; fi; while true; do sleep 0.2; done",
        f = stop.display()
    );
    w.deploy("wp", pool_body(&script, 1, None));
    let starts = w.wait_lines("a second start", "wp", "start ", |n| n >= 2);
    assert_ne!(starts[0].0, starts[1].0, "a restart is a new instance");
    wait_procs(&mark, 1, 20);
    assert_eq!(
        w.condition("wp")["state"],
        "CONDITION_SUCCEEDED",
        "one exit is not a crash loop"
    );
}

#[test]
fn a_crash_loop_fails_the_pool_and_a_fixed_revision_recovers_it() {
    let w = world();
    let mark = w.mark("crash");
    let script = format!("echo \"start {mark}\"; echo dying >&2; exit 3");
    w.deploy("wp", pool_body(&script, 1, None));
    let c = w.wait_condition("wp", "CONDITION_FAILED", 30);
    let msg = c["message"].as_str().unwrap();
    assert!(msg.starts_with("CrashLoopBackOff:"), "{c}");
    assert_eq!(c["type"], "Ready", "{c}");
    let starts = w.lines("wp", "start ").len();
    assert!(starts >= 3, "restarted before giving up: {starts}");

    // While it keeps crashing it stays failed, and restarts back off rather than spin.
    let t0 = Instant::now();
    let before = w.lines("wp", "start ").len();
    while t0.elapsed() < Duration::from_secs(3) {
        let c = w.condition("wp");
        assert_eq!(c["state"], "CONDITION_FAILED", "still crash looping: {c}");
        std::thread::sleep(Duration::from_millis(150));
    }
    let during = w.lines("wp", "start ").len() - before;
    assert!(
        during <= 4,
        "with exponential backoff a crash loop restarts a handful of times in 3 s, not {during}"
    );

    let ok = w.mark("crash-fixed");
    let (s, op) = w.api.patch(
        &w.admin,
        &format!("{POOLS}/wp"),
        pool_body(&idle_script(&ok), 1, None),
    );
    assert_eq!(s, 200, "{op}");
    wait_procs(&ok, 1, 20);
    let c = w.wait_condition("wp", "CONDITION_SUCCEEDED", 20);
    assert!(
        !c["message"].as_str().unwrap_or("").contains("CrashLoop"),
        "{c}"
    );
}

#[test]
fn a_crash_loop_of_an_instance_that_lives_a_moment_still_shows() {
    // Each run lives ~1 s, then exits: still three quick exits in a row.
    let w = world();
    let mark = w.mark("crash-slow");
    let script = format!("echo \"start {mark}\"; sleep 1; exit 4");
    w.deploy("wp", pool_body(&script, 1, None));
    let c = w.wait_condition("wp", "CONDITION_FAILED", 40);
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .starts_with("CrashLoopBackOff:"),
        "{c}"
    );
    // It keeps crashing; the pool must not read Ready while an instance is up for its second.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        let c = w.condition("wp");
        assert_eq!(
            c["state"], "CONDITION_FAILED",
            "a crash-looping pool flipped back to Ready between crashes: {c}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_container_without_command_fails_the_pool_with_container_missing_command() {
    let w = world();
    // Any image but Google's sample (which has a stand-in): the process runtime cannot run it.
    let body = json!({"template": {"containers": [{"image": "us-docker.pkg.dev/my-project/app/worker:1"}]}});
    w.deploy("wp", body);
    let c = w.wait_condition("wp", "CONDITION_FAILED", 20);
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .starts_with("ContainerMissingCommand: "),
        "{c}"
    );
    assert_eq!(c["reason"], "CONTAINER_MISSING", "Cloud Run's reason: {c}");
    assert!(w.log_entries("wp").is_empty(), "nothing ran");
    // The revision says so too, as Cloud Run's revisions do.
    let first = w.pool("wp")["latestCreatedRevision"]
        .as_str()
        .unwrap()
        .to_string();
    let ready = |revision: &str| -> Value {
        let (s, r) = w.api.get(&w.admin, &format!("/v2/{revision}"));
        assert_eq!(s, 200, "{r}");
        r["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
            .unwrap_or(Value::Null)
    };
    let rc = wait_for("the revision's Ready condition to fail", 20, || {
        let rc = ready(&first);
        if rc["state"] == "CONDITION_FAILED" {
            Ok(rc)
        } else {
            Err(rc.to_string())
        }
    });
    assert_eq!(rc["reason"], "CONTAINER_MISSING", "{rc}");
    assert!(
        rc["message"]
            .as_str()
            .unwrap()
            .starts_with("The container has no command"),
        "{rc}"
    );

    let mark = w.mark("missing-fixed");
    let (s, op) = w.api.patch(
        &w.admin,
        &format!("{POOLS}/wp"),
        pool_body(&idle_script(&mark), 1, None),
    );
    assert_eq!(s, 200, "{op}");
    wait_procs(&mark, 1, 20);
    w.wait_condition("wp", "CONDITION_SUCCEEDED", 20);
    let second = w.pool("wp")["latestCreatedRevision"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, first);
    assert_eq!(ready(&second)["state"], "CONDITION_SUCCEEDED");
    assert_eq!(
        ready(&first)["state"],
        "CONDITION_FAILED",
        "a revision that failed stays failed"
    );
}

#[test]
fn a_command_that_cannot_start_fails_the_pool() {
    let w = world();
    let body = json!({"template": {"containers": [{"image": "img", "command": ["/nonexistent/worker-binary"]}]}});
    w.deploy("wp", body);
    let c = w.wait_condition("wp", "CONDITION_FAILED", 20);
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/worker-binary"),
        "{c}"
    );
}

#[test]
fn an_instance_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let w = world();
    let mark = w.mark("stubborn");
    let script = format!("trap '' TERM; {}", idle_script(&mark));
    w.deploy("wp", pool_body(&script, 1, None));
    wait_procs(&mark, 1, 20);
    w.scale("wp", 0);
    // SIGTERM is ignored; SIGKILL comes after the 10 s grace.
    wait_procs(&mark, 0, 30);
}

#[test]
fn when_an_instances_main_process_exits_its_children_go_too() {
    // A container's processes end with it: when the instance's main process exits, what it
    // left running in its process group must not outlive it (nor the pool, nor the server).
    let mut w = world();
    let mark = w.mark("leftover");
    let flag = instance_dir();
    let once = flag.path().join("once");
    std::fs::write(&once, "").unwrap();
    // The first run leaves a background subshell (same command line, so it carries the
    // marker) and exits; the rerun stays up.
    let script = format!(
        "if [ -e {f} ]; then rm {f}; (while true; do sleep 0.2; done) & exit 5; fi; \
         echo \"start {mark}\"; while true; do sleep 0.2; done",
        f = once.display()
    );
    w.deploy("wp", pool_body(&script, 1, None));
    w.wait_lines("the rerun", "wp", "start ", |n| n >= 1);
    let settled = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(12);
        loop {
            let p = procs_with(&mark);
            if p.len() == n || Instant::now() > deadline {
                return p;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let running = settled(1);
    let (s, op) = w.api.delete(&w.admin, &format!("{POOLS}/wp"));
    assert_eq!(s, 200, "{op}");
    let after_delete = settled(0);
    w.session.server.terminate(Duration::from_secs(30));
    let after_shutdown = procs_with(&mark);
    assert!(
        running.len() == 1 && after_delete.is_empty() && after_shutdown.is_empty(),
        "processes of the instance that exited: while its rerun runs {running:?}, \
         after the pool is deleted {after_delete:?}, after serve stopped {after_shutdown:?}"
    );
}

#[test]
fn the_last_lines_of_a_stopped_instance_reach_the_log() {
    // What an instance prints as it shuts down (on SIGTERM) is what one most wants to read.
    let w = world();
    let mark = w.mark("last-words");
    let script = format!(
        "trap 'echo \"bye-a $$\"; echo \"bye-b $$\"; exit 0' TERM; echo \"start {mark}\"; \
         while true; do sleep 0.2; done"
    );
    w.deploy("wp", pool_body(&script, 4, None));
    wait_procs(&mark, 4, 20);
    w.scale("wp", 0);
    wait_procs(&mark, 0, 20);
    wait_for("every stopped instance's last two lines", 5, || {
        let a = w.lines("wp", "bye-a ").len();
        let b = w.lines("wp", "bye-b ").len();
        if (a, b) == (4, 4) {
            Ok(())
        } else {
            Err(format!("{a} bye-a and {b} bye-b lines of 4 each"))
        }
    });
}

// ----------------------------------------------------------------------------------------------
// The server's own lifecycle

#[test]
fn sigterm_to_serve_stops_every_instance() {
    let mut w = world();
    let (a, b) = (w.mark("shutdown-a"), w.mark("shutdown-b"));
    // Pool a: instances that also run a background child in their group.
    let with_child = format!(
        "(while true; do sleep 0.2; done) & echo \"start {a}\"; while true; do sleep 0.2; done"
    );
    w.deploy("wp-a", pool_body(&with_child, 2, None));
    w.deploy("wp-b", pool_body(&idle_script(&b), 1, None));
    wait_procs(&a, 4, 20);
    wait_procs(&b, 1, 20);
    let status = w.session.server.terminate(Duration::from_secs(30));
    let left: Vec<u32> = procs_with(&a).into_iter().chain(procs_with(&b)).collect();
    kill_ours(&a);
    kill_ours(&b);
    let status = status.expect("runpool serve exits on SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(left.is_empty(), "instances left behind: {left:?}");
}

#[test]
fn restarting_serve_on_the_same_data_dir_brings_the_instances_back() {
    let data = tempfile::tempdir().unwrap();
    let mark;
    let rev;
    {
        let mut w = from_server(Server::start_in(data.path(), &world_yaml()));
        mark = w.mark("restart-serve");
        w.deploy("wp", pool_body(&idle_script(&mark), 2, None));
        wait_procs(&mark, 2, 20);
        // Both have written their start lines (a process in /proc may not have yet; SIGTERM
        // before its `echo` would leave three lines, not four).
        w.wait_lines("two start lines", "wp", "start ", |n| n == 2);
        rev = w.latest("wp");
        assert!(
            w.session
                .server
                .terminate(Duration::from_secs(30))
                .is_some()
        );
        assert!(procs_with(&mark).is_empty(), "stopped with the server");
    }
    let w = from_server(Server::start_in(data.path(), &world_yaml()));
    w.marks.borrow_mut().push(mark.clone());
    wait_procs(&mark, 2, 20);
    assert_eq!(w.latest("wp"), rev);
    // The first run's lines are still there, and the new instances logged too.
    let starts = w.wait_lines("four start lines", "wp", "start ", |n| n >= 4);
    let ids: BTreeSet<&str> = starts.iter().map(|(i, ..)| i.as_str()).collect();
    assert_eq!(ids.len(), 4, "two instances per run: {starts:?}");
}

#[test]
fn after_serve_is_killed_and_restarted_the_pool_runs_its_count_not_more() {
    // SIGKILL (a crash, an OOM kill, `kill -9`) leaves `serve` no chance to stop its
    // instances. Whatever it left must not keep running next to the instances the restarted
    // server starts (they would hold a dead metadata server, and double the pool).
    let data = tempfile::tempdir().unwrap();
    let first = from_server(Server::start_in(data.path(), &world_yaml()));
    let mark = first.mark("killed-serve");
    first.deploy("wp", pool_body(&idle_script(&mark), 1, None));
    let before = wait_procs(&mark, 1, 20);
    // Kill only once the server has read the instance's start line: a process shows in /proc
    // as soon as it is exec'd, before it writes, and what a killed server had not yet read
    // from the pipe is lost with it (on a loaded machine the kill used to land first, and the
    // wait below for a second start line then never ended).
    let first_instance = wait_for("the first instance's start line", 20, || {
        match first.lines("wp", "start ").as_slice() {
            [(id, ..)] => Ok(id.clone()),
            l => Err(format!("{l:?}")),
        }
    });
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &first.server.pid().to_string()])
        .status();
    // Dropping the first world must not reap what the kill left: that is what is tested.
    first.marks.borrow_mut().clear();
    drop(first);
    let w = from_server(Server::start_in(data.path(), &world_yaml()));
    w.marks.borrow_mut().push(mark.clone());
    wait_for("the restarted server's instance", 30, || {
        let l = w.lines("wp", "start ");
        if l.iter().any(|(id, ..)| *id != first_instance) {
            Ok(())
        } else {
            Err(format!("{l:?}"))
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = procs_with(&mark);
    while now.len() != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        now = procs_with(&mark);
    }
    assert_eq!(
        now.len(),
        1,
        "manualInstanceCount 1, yet running {now:?} (the killed server's instance was {before:?})"
    );
    assert_ne!(
        now, before,
        "the killed server's instance was killed, not adopted"
    );
}

// ----------------------------------------------------------------------------------------------
// The metadata server

#[test]
fn the_metadata_server_requires_the_flavor_header_and_refuses_forwarded_requests() {
    let (_w, host, _) = metadata_world("md-guard");
    let path = "/computeMetadata/v1/project/project-id";

    let (s, flavor, _, body) = md_get(&host, path, &[]);
    assert_eq!(s, 403, "no Metadata-Flavor: {body}");
    assert_eq!(flavor, "Google");
    let (s, _, _, _) = md_get(&host, path, &[("Metadata-Flavor", "Nope")]);
    assert_eq!(s, 403, "a wrong flavor");
    let (s, flavor, _, body) = md_get(
        &host,
        path,
        &[
            ("Metadata-Flavor", "Google"),
            ("X-Forwarded-For", "10.0.0.1"),
        ],
    );
    assert_eq!(s, 403, "X-Forwarded-For: {body}");
    assert_eq!(flavor, "Google");
    let token = "/computeMetadata/v1/instance/service-accounts/default/token";
    assert_eq!(
        md_get(&host, token, &[]).0,
        403,
        "no token without the header"
    );

    for unknown in [
        "/computeMetadata/v1/instance/nothing-here",
        "/computeMetadata/v1/project/project-id/deeper",
        "/computeMetadata/v2/project/project-id",
        "/computeMetadata/v1/instance/service-accounts/nobody@x.iam.gserviceaccount.com/token",
        "/computeMetadata/v1/instance/service-accounts/nobody@x.iam.gserviceaccount.com/email",
    ] {
        let (s, flavor, _, body) = md_get(&host, unknown, &[("Metadata-Flavor", "Google")]);
        assert_eq!(s, 404, "{unknown}: {body}");
        assert_eq!(flavor, "Google", "{unknown}");
    }
    // The root answers (Google's auth libraries ping it and check the header).
    assert_eq!(md(&host, "/"), "computeMetadata/\n");
}

#[test]
fn the_metadata_server_describes_the_instance_and_its_identity() {
    let (_w, host, instance) = metadata_world("md-paths");
    let v1 = |p: &str| md(&host, &format!("/computeMetadata/v1/{p}"));

    assert_eq!(v1("project/project-id"), "app-project");
    assert_eq!(v1("project/numeric-project-id"), "300000000001");
    assert_eq!(
        v1("instance/id"),
        instance,
        "the id the instance's logs carry"
    );
    assert_eq!(
        v1("instance/region"),
        "projects/300000000001/regions/us-central1"
    );
    assert!(
        v1("instance/zone").starts_with("projects/300000000001/zones/us-central1-"),
        "{}",
        v1("instance/zone")
    );
    let accounts: BTreeSet<String> = v1("instance/service-accounts/")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        accounts,
        BTreeSet::from(["default/".to_string(), format!("{DEFAULT_SA}/")]),
    );
    for acct in ["default", DEFAULT_SA] {
        let base = format!("instance/service-accounts/{acct}");
        assert_eq!(v1(&format!("{base}/email")), DEFAULT_SA);
        assert!(
            v1(&format!("{base}/aliases"))
                .lines()
                .any(|l| l == "default")
        );
        assert!(
            v1(&format!("{base}/scopes"))
                .lines()
                .any(|l| l == CLOUD_PLATFORM)
        );
    }
    // ?alt=json
    let (_, _, ctype, body) = md_get(
        &host,
        "/computeMetadata/v1/project/project-id?alt=json",
        &[("Metadata-Flavor", "Google")],
    );
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!("app-project")
    );
    let scopes: Value =
        serde_json::from_str(&v1("instance/service-accounts/default/scopes?alt=json")).unwrap();
    assert_eq!(scopes, json!([CLOUD_PLATFORM]));
}

#[test]
fn recursive_answers_are_json_with_camel_case_keys() {
    let (_w, host, instance) = metadata_world("md-recursive");
    let get = |p: &str| -> Value {
        let (s, _, ctype, body) = md_get(
            &host,
            &format!("/computeMetadata/v1/{p}"),
            &[("Metadata-Flavor", "Google")],
        );
        assert_eq!(s, 200, "{p}: {body}");
        assert!(ctype.starts_with("application/json"), "{p}: {ctype}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{p}: {e}: {body}"))
    };
    // What google-auth reads to learn the account.
    let acct = get("instance/service-accounts/default/?recursive=true");
    assert_eq!(acct["email"], DEFAULT_SA, "{acct}");
    assert_eq!(acct["scopes"], json!([CLOUD_PLATFORM]), "{acct}");
    assert_eq!(acct["aliases"], json!(["default"]), "{acct}");

    let project = get("project/?recursive=true");
    assert_eq!(project["projectId"], "app-project", "{project}");
    assert_eq!(project["numericProjectId"], 300000000001u64, "{project}");

    let inst = get("instance/?recursive=true");
    assert_eq!(inst["id"], instance, "{inst}");
    assert_eq!(
        inst["region"], "projects/300000000001/regions/us-central1",
        "{inst}"
    );
    let sas = inst["serviceAccounts"]
        .as_object()
        .unwrap_or_else(|| panic!("serviceAccounts: {inst}"));
    // Keys are camelCased, not account emails: an email is a name, kept as it is.
    let keys: BTreeSet<&str> = sas.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["default", DEFAULT_SA]),
        "account emails as keys must not be camelCased: {inst}"
    );
}

#[test]
fn the_token_is_the_pools_service_account_and_works_as_a_bearer() {
    let (w, host, _) = metadata_world("md-token");
    let raw = md(
        &host,
        "/computeMetadata/v1/instance/service-accounts/default/token",
    );
    let t: Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
    assert_eq!(t["token_type"], "Bearer", "{t}");
    let token = t["access_token"].as_str().expect("access_token");
    assert!(!token.is_empty());
    let expires = t["expires_in"].as_i64().expect("expires_in is a number");
    assert!(expires > 0 && expires <= 3600, "{t}");

    // Who the token is.
    let (s, info) = w
        .api
        .get_with(None, &format!("/tokeninfo?access_token={token}"));
    assert_eq!(s, 200, "{info}");
    assert_eq!(info["email"], DEFAULT_SA, "{info}");

    // The default compute account holds roles/editor on the project.
    let (s, list) = w.api.get(token, "/v1/projects/app-project/serviceAccounts");
    assert_eq!(s, 200, "the token works as the pool's account: {list}");
    // … and nothing on the organization's policy.
    let (s, err) = w.api.post(
        token,
        "/v3/organizations/100000000001:setIamPolicy",
        json!({"policy": {"bindings": []}}),
    );
    assert_eq!(s, 403, "{err}");

    // The same token by the account's email.
    let again: Value = serde_json::from_str(&md(
        &host,
        &format!("/computeMetadata/v1/instance/service-accounts/{DEFAULT_SA}/token"),
    ))
    .unwrap();
    assert!(
        again["access_token"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
}

#[test]
fn a_dedicated_account_with_no_grants_gets_tokens_that_can_do_nothing() {
    let w = world();
    let sa = w.create_sa("app-project", "worker-sa");
    let mark = w.mark("md-dedicated");
    let (host, _) = w.metadata_instance("wp", Some(&sa), &mark);
    assert_eq!(
        md(
            &host,
            "/computeMetadata/v1/instance/service-accounts/default/email"
        ),
        sa
    );
    let t: Value = serde_json::from_str(&md(
        &host,
        "/computeMetadata/v1/instance/service-accounts/default/token",
    ))
    .unwrap();
    let token = t["access_token"].as_str().unwrap();
    let (s, info) = w
        .api
        .get_with(None, &format!("/tokeninfo?access_token={token}"));
    assert_eq!(
        (s, info["email"].as_str()),
        (200, Some(sa.as_str())),
        "{info}"
    );
    let (s, err) = w.api.get(token, "/v1/projects/app-project/serviceAccounts");
    assert_eq!(s, 403, "the dedicated account holds nothing: {err}");
}

#[test]
fn the_identity_token_names_the_audience_and_with_format_full_the_email() {
    let (w, host, _) = metadata_world("md-identity");
    let base = "/computeMetadata/v1/instance/service-accounts/default/identity";
    let full = md(
        &host,
        &format!("{base}?audience=https://api.example.com&format=full"),
    );
    let claims = jwt_claims(&full);
    assert_eq!(claims["aud"], "https://api.example.com", "{claims}");
    assert_eq!(claims["email"], DEFAULT_SA, "{claims}");
    assert_eq!(claims["iss"], "https://accounts.google.com", "{claims}");
    // The server verifies what it issued.
    let (s, info) = w
        .api
        .get_with(None, &format!("/tokeninfo?id_token={}", full.trim()));
    assert_eq!(s, 200, "{info}");
    assert_eq!(info["email"], DEFAULT_SA, "{info}");

    let plain = jwt_claims(&md(&host, &format!("{base}?audience=aud-2")));
    assert_eq!(plain["aud"], "aud-2", "{plain}");
    assert!(
        plain.get("email").is_none(),
        "no email without format=full: {plain}"
    );

    let (s, _, _, body) = md_get(&host, base, &[("Metadata-Flavor", "Google")]);
    assert_eq!(s, 400, "an audience is required: {body}");
}

// ----------------------------------------------------------------------------------------------
// Tokens are minted by the service agent: revocation shows at once

/// An instance that asks its metadata server for a token every 0.2 s and logs the status.
fn token_loop(mark: &str) -> String {
    format!(
        "while true; do echo \"tok $(curl -s -H 'Metadata-Flavor: Google' \
         \"http://$GCE_METADATA_HOST/computeMetadata/v1/instance/service-accounts/default/token\" \
         -o /dev/null -w '%{{http_code}}')\"; sleep 0.2; done # {mark}"
    )
}

/// Wait until the newest `tok` line of `pool` says `code`.
fn wait_token_status(w: &World, pool: &str, code: &str, secs: u64) {
    wait_for(
        &format!("the instance's token requests to answer {code}"),
        secs,
        || {
            let l = w.lines(pool, "tok ");
            match l.last() {
                Some((_, _, t)) if t == &format!("tok {code}") => Ok(()),
                other => Err(format!("{other:?} ({} lines)", l.len())),
            }
        },
    );
}

#[test]
fn revoking_the_agents_token_creator_on_a_cross_project_account_stops_the_tokens() {
    let w = world();
    let sa = w.create_sa("identity-project", "shared-worker");
    let base = sa_base(&sa);
    w.disable_cross_project_constraint("projects/identity-project");
    w.grant(&base, "roles/iam.serviceAccountTokenCreator", AGENT);
    let mark = w.mark("revoke");
    w.deploy("wp", pool_body(&token_loop(&mark), 1, Some(&sa)));
    wait_token_status(&w, "wp", "200", 20);

    w.revoke(&base, "roles/iam.serviceAccountTokenCreator", AGENT);
    wait_token_status(&w, "wp", "403", 20);
    // What the instance is told, in the deploy rule's words.
    let host = wait_for("the metadata host", 5, || {
        procs_with(&mark)
            .first()
            .and_then(|pid| std::fs::read(format!("/proc/{pid}/environ")).ok())
            .and_then(|env| {
                String::from_utf8_lossy(&env)
                    .split('\0')
                    .find_map(|kv| kv.strip_prefix("GCE_METADATA_HOST=").map(str::to_string))
            })
            .ok_or_else(|| "no instance".to_string())
    });
    let (s, flavor, _, body) = md_get(
        &host,
        "/computeMetadata/v1/instance/service-accounts/default/token",
        &[("Metadata-Flavor", "Google")],
    );
    assert_eq!(s, 403, "{body}");
    assert_eq!(flavor, "Google");
    assert!(
        body.starts_with(
            "Google Cloud Run Service Agent does not have permission to get access tokens for the service account"
        ) && body.contains("service-300000000001@serverless-robot-prod.iam.gserviceaccount.com"),
        "{body}"
    );
    let (s, _, _, body) = md_get(
        &host,
        "/computeMetadata/v1/instance/service-accounts/default/identity?audience=x",
        &[("Metadata-Flavor", "Google")],
    );
    assert_eq!(s, 403, "no ID token either: {body}");

    // Granted again: tokens again.
    w.grant(&base, "roles/iam.serviceAccountTokenCreator", AGENT);
    wait_token_status(&w, "wp", "200", 20);

    // A disabled account gets none.
    let (s, body) = w.api.post(&w.admin, &format!("{base}:disable"), json!({}));
    assert_eq!(s, 200, "{body}");
    wait_token_status(&w, "wp", "403", 20);
    let (s, _, _, body) = md_get(
        &host,
        "/computeMetadata/v1/instance/service-accounts/default/token",
        &[("Metadata-Flavor", "Google")],
    );
    assert_eq!(s, 403);
    assert!(body.contains("disabled"), "{body}");
    let (s, body) = w.api.post(&w.admin, &format!("{base}:enable"), json!({}));
    assert_eq!(s, 200, "{body}");
    wait_token_status(&w, "wp", "200", 20);
}

#[test]
fn the_same_project_account_is_minted_through_the_agents_run_service_agent_role() {
    let w = world();
    let sa = w.create_sa("app-project", "worker-sa");
    let mark = w.mark("agent-role");
    w.deploy("wp", pool_body(&token_loop(&mark), 1, Some(&sa)));
    wait_token_status(&w, "wp", "200", 20);
    w.revoke("/v3/projects/app-project", "roles/run.serviceAgent", AGENT);
    wait_token_status(&w, "wp", "403", 20);
}

#[test]
fn logs_are_kept_per_pool_and_read_newest_last() {
    let w = world();
    let mark = w.mark("logs");
    let script = format!(
        "for i in 1 2 3 4 5; do echo \"n=$i\"; done; while true; do sleep 0.2; done # {mark}"
    );
    w.deploy("wp-a", pool_body(&script, 1, None));
    w.deploy("wp-b", pool_body(&idle_script(&mark), 1, None));
    w.wait_lines("five lines", "wp-a", "n=", |n| n == 5);
    let texts: Vec<String> = w.lines("wp-a", "").into_iter().map(|l| l.2).collect();
    assert_eq!(
        texts,
        ["n=1", "n=2", "n=3", "n=4", "n=5"],
        "only wp-a's, oldest first"
    );
    let (s, body) = w.api.post(
        &w.admin,
        "/v2/entries:list",
        json!({
            "resourceNames": ["projects/app-project"],
            "filter": "resource.labels.worker_pool_name=\"wp-a\"",
            "pageSize": 2,
            "orderBy": "timestamp desc",
        }),
    );
    assert_eq!(s, 200, "{body}");
    // Newest first when asked so (the default, ascending, starts from the oldest).
    let newest = common::strs(&body["entries"], "textPayload");
    assert_eq!(newest, ["n=5", "n=4"]);
}

#[test]
fn output_that_is_not_utf8_does_not_cut_the_instances_log() {
    // Programs print bytes; Cloud Logging keeps the line (with replacement characters) and
    // every line after it. Losing the pipe would also kill the instance with SIGPIPE.
    let w = world();
    let mark = w.mark("not-utf8");
    let script = format!(
        "echo \"start {mark}\"; printf 'bad \\377 byte\\n'; i=0; \
         while true; do echo \"after $i\"; i=$((i+1)); sleep 0.1; done"
    );
    w.deploy("wp", pool_body(&script, 1, None));
    let pid = wait_procs(&mark, 1, 20);
    wait_for("lines after the non-UTF-8 one", 10, || {
        let n = w.lines("wp", "after ").len();
        if n >= 5 {
            Ok(())
        } else {
            Err(format!("{n} lines after it; all: {:?}", w.lines("wp", "")))
        }
    });
    assert_eq!(procs_with(&mark), pid, "the instance kept running");
    assert_eq!(w.lines("wp", "start ").len(), 1, "and was not restarted");
}

#[test]
fn an_accounts_directory_lists_its_token_and_identity_leaves() {
    // GCE answers `instance/service-accounts/default/` with
    // `aliases email identity scopes token`.
    let (_w, host, _) = metadata_world("md-listing");
    let listing: BTreeSet<String> = md(
        &host,
        "/computeMetadata/v1/instance/service-accounts/default/",
    )
    .lines()
    .map(str::to_string)
    .collect();
    let want: BTreeSet<String> = ["aliases", "email", "identity", "scopes", "token"]
        .map(String::from)
        .into();
    assert_eq!(listing, want);
}

#[test]
fn a_container_env_cannot_pass_for_cloud_runs_own_variables() {
    // Cloud Run reserves the names it sets: a container `env` naming one is refused at deploy,
    // or else the instance still sees the true value. Never the container's.
    let w = world();
    let mark = w.mark("reserved-env");
    let script = format!(
        "echo \"vars $CLOUD_RUN_WORKER_POOL $CLOUD_RUN_REVISION\"; \
         while true; do sleep 0.2; done # {mark}"
    );
    let body = json!({"template": {"containers": [{
        "image": "img",
        "command": ["sh", "-c", script],
        "env": [
            {"name": "CLOUD_RUN_WORKER_POOL", "value": "fake-pool"},
            {"name": "CLOUD_RUN_REVISION", "value": "fake-rev"},
        ],
    }]}});
    let (s, op) = w
        .api
        .post(&w.admin, &format!("{POOLS}?workerPoolId=wp"), body);
    if s == 400 {
        assert_eq!(op["error"]["status"], "INVALID_ARGUMENT", "{op}");
        return;
    }
    assert_eq!(s, 200, "{op}");
    let line = wait_for("the instance's variables", 20, || {
        w.lines("wp", "vars ")
            .first()
            .map(|l| l.2.clone())
            .ok_or_else(|| "none yet".to_string())
    });
    let rev = w.latest("wp");
    assert!(
        line == format!("vars wp {rev}"),
        "the container's env overrode Cloud Run's variables: {line}"
    );
}

#[test]
fn the_seeds_sample_image_runs_as_its_service_account_and_logs_what_it_may_do() {
    let w = world();
    let sa = w.create_sa("app-project", "worker-id");
    // The seed's own image, with no command: the built-in stand-in runs. It calls Google's
    // API as its identity every 0.3 s here (every 10 s by default).
    let body = json!({
        "template": {"serviceAccount": sa, "containers": [{
            "image": "us-docker.pkg.dev/cloudrun/container/worker-pool:latest",
            "env": [{"name": "SAMPLE_INTERVAL_SECONDS", "value": "0.3"}],
        }]},
        "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 1},
    });
    w.deploy("my-pool", body);
    let call =
        format!("As {sa}: cloudresourcemanager.googleapis.com projects.get projects/app-project ");
    let denied = w.wait_lines("a denied call", "my-pool", &call, |n| n >= 1);
    let rev = w.latest("my-pool");
    let started = w.lines("my-pool", "Worker pool ");
    assert_eq!(
        started
            .iter()
            .map(|(_, _, t)| t.as_str())
            .collect::<Vec<_>>(),
        vec![format!(
            "Worker pool my-pool (revision {rev}) is running as service account {sa} in project app-project"
        )],
        "{started:?}"
    );
    // Google's denial, as Google's client reports it: no role yet.
    assert_eq!(
        denied[0].2,
        format!(
            "{call}denied: PERMISSION_DENIED: {}",
            permission_denied("resourcemanager.projects.get", "projects/app-project")
        ),
        "{denied:?}"
    );
    assert_eq!(w.condition("my-pool")["state"], "CONDITION_SUCCEEDED");

    // A grant shows in the running worker's next call: no redeploy, no restart.
    w.grant(
        "/v3/projects/app-project",
        "roles/browser",
        &format!("serviceAccount:{sa}"),
    );
    let allowed = format!("{call}allowed: ");
    w.wait_lines("an allowed call", "my-pool", &allowed, |n| n >= 1);
    let answered: Vec<String> = w
        .lines("my-pool", &allowed)
        .into_iter()
        .map(|(i, _, t)| format!("{i} {t}"))
        .collect();
    assert!(
        answered[0].ends_with(&format!("{allowed}app-project (projects/{APP_NUMBER})")),
        "{answered:?}"
    );
    assert_eq!(w.revisions("my-pool"), 1);
    let instances: BTreeSet<String> = w
        .lines("my-pool", "")
        .into_iter()
        .map(|(i, ..)| i)
        .collect();
    assert_eq!(instances.len(), 1, "one instance all along: {instances:?}");

    // Scaled to zero, it is sent SIGTERM and stops cleanly, as Cloud Run asks.
    w.scale("my-pool", 0);
    w.wait_lines(
        "a clean stop",
        "my-pool",
        "Received SIGTERM: stopping",
        |n| n == 1,
    );
}
