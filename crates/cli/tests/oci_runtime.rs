//! `runpool serve --runtime oci` against the real binary: an image built here from the
//! machine's static busybox (an OCI image layout, no registry) is imported with
//! `runpool images import`, a worker pool runs it under runc, and code inside the container
//! reaches its metadata server where Google's is (`169.254.169.254`, and
//! `metadata.google.internal`), gets the pool's service identity and a token, and reaches
//! Runpool's API through `RUNPOOL_ENDPOINT`. Stopping the server, or killing it and starting
//! it again, leaves no container, process or network namespace behind.
//!
//! Needs root, runc and network namespaces; where they are missing the tests say so and
//! pass without running (CI installs runc and busybox-static, and runs as root).

mod common;

use common::Server;
use common::procs::{marker, procs_with};
use common::session::Session;
use common::wait::wait_for;
use common::world::{DEFAULT_SA, Org, app_project, project};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn world_yaml() -> String {
    Org::new()
        .project(app_project())
        .project(project("other-project", "300000000077"))
        .yaml()
}

const BUSYBOX: &str = "/bin/busybox";

/// Why the OCI runtime cannot run here, if it cannot (probed once: the tests run in
/// parallel).
fn unavailable() -> Option<String> {
    static WHY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    WHY.get_or_init(probe).clone()
}

fn probe() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    if !root {
        return Some("not root".into());
    }
    if Command::new("runc").arg("--version").output().is_err() {
        return Some("runc is not installed".into());
    }
    let probe = format!("runpool-probe-{}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .map_err(|e| e.to_string())
        .and_then(|o| {
            if o.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&o.stderr).into_owned())
            }
        });
    if let Err(e) = made {
        return Some(format!("network namespaces are unavailable: {e}"));
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    None
}

macro_rules! require_oci {
    () => {
        if let Some(why) = unavailable() {
            // Straight to stderr, past the test harness's capture: a skip must show.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipping: the OCI runtime cannot run here ({why})"
            );
            return;
        }
    };
}

/// Whether an ELF binary is statically linked (has no program interpreter).
fn is_static(elf: &[u8]) -> bool {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let ph = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..count).all(|i| {
        let at = ph + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) != PT_INTERP
    })
}

fn sha256(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

/// An OCI image layout (as a tar) of one image: `/bin/busybox` and the applets the
/// instance uses, Entrypoint `/bin/sh -c`. It carries no name: it is imported with --tag.
fn busybox_image() -> Vec<u8> {
    image_with(&[])
}

/// The busybox image with the machine's `curl` and the libraries it loads (`ldd`), at the
/// paths the host has them: a real TLS client built against the system's OpenSSL, which
/// trusts only what it is told to.
const ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn curl_image() -> Vec<u8> {
    let curl = "/usr/bin/curl";
    let ldd = Command::new("ldd")
        .arg(curl)
        .output()
        .unwrap_or_else(|e| panic!("ldd {curl}: {e} (apt-get install curl)"));
    assert!(ldd.status.success(), "ldd {curl}: {ldd:?}");
    // The machine's roots alone, to show that TLS fails without Runpool's CA.
    let mut files = vec![curl.to_string(), ROOTS.to_string()];
    files.extend(
        String::from_utf8_lossy(&ldd.stdout)
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                let path = l.split_once("=> ").map_or(l, |(_, p)| p);
                path.split_whitespace()
                    .next()
                    .filter(|p| p.starts_with('/'))
            })
            .map(str::to_string),
    );
    image_with(&files)
}

/// The busybox image, plus each of `host_files` (read through symlinks) at its own path.
fn image_with(host_files: &[String]) -> Vec<u8> {
    let busybox = std::fs::read(BUSYBOX)
        .unwrap_or_else(|e| panic!("{BUSYBOX}: {e} (apt-get install busybox-static)"));
    assert!(
        busybox.starts_with(b"\x7fELF\x02\x01") && is_static(&busybox),
        "{BUSYBOX} must be a static 64-bit binary (apt-get install busybox-static)"
    );
    let mut layer = tar::Builder::new(vec![]);
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        h
    };
    for dir in ["bin/", "etc/", "tmp/"] {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        layer.append_data(&mut h, dir, std::io::empty()).unwrap();
    }
    let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    layer
        .append_data(&mut h, "bin/busybox", busybox.as_slice())
        .unwrap();
    for applet in ["sh", "wget", "sed", "sleep", "cat"] {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        layer
            .append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    let mut dirs = std::collections::BTreeSet::new();
    for file in host_files {
        let path = file.trim_start_matches('/');
        for (i, _) in path.match_indices('/') {
            if dirs.insert(path[..=i].to_string())
                && !["bin/", "etc/", "tmp/"].contains(&&path[..=i])
            {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                layer
                    .append_data(&mut h, &path[..=i], std::io::empty())
                    .unwrap();
            }
        }
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut h = header(tar::EntryType::Regular, 0o755, data.len() as u64);
        layer.append_data(&mut h, path, data.as_slice()).unwrap();
    }
    let layer = layer.into_inner().unwrap();
    let config = json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": {"Entrypoint": ["/bin/sh", "-c"], "Env": ["PATH=/bin"], "WorkingDir": "/tmp"},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256(&layer))]},
    })
    .to_string()
    .into_bytes();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", sha256(&config)), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": format!("sha256:{}", sha256(&layer)), "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{}", sha256(&manifest)), "size": manifest.len()}],
    })
    .to_string()
    .into_bytes();
    let mut out = tar::Builder::new(vec![]);
    let files: Vec<(String, &[u8])> = vec![
        ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json".into(), &index),
        (format!("blobs/sha256/{}", sha256(&manifest)), &manifest),
        (format!("blobs/sha256/{}", sha256(&config)), &config),
        (format!("blobs/sha256/{}", sha256(&layer)), &layer),
    ];
    for (path, data) in files {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        out.append_data(&mut h, path, data).unwrap();
    }
    out.into_inner().unwrap()
}

fn netns_exists(instance: &str) -> bool {
    Path::new("/var/run/netns")
        .join(format!("runpool-{instance}"))
        .exists()
}

/// A logged-in client of a server running `--runtime oci`, with the busybox image imported.
struct Oci {
    session: Session,
}

common::session::deref_session!(Oci, session);

impl Oci {
    fn start(data: Option<&Path>) -> Oci {
        let server = Server::spawn(data, Some(&world_yaml()), &["--runtime", "oci"]);
        server.login_admin();
        Oci {
            session: Session::new(server),
        }
    }

    fn import_busybox(&self) {
        self.import(busybox_image(), "busybox:local");
    }

    fn import(&self, image: Vec<u8>, tag: &str) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("image-oci.tar");
        std::fs::write(&archive, image).unwrap();
        let r = self
            .server
            .ok(&["images", "import", archive.to_str().unwrap(), "--tag", tag]);
        assert!(
            r.stderr.contains("Imported image [sha256:") && r.stderr.contains(&format!("[{tag}]")),
            "{r:?}"
        );
    }

    /// Deploy pool `id` running `script` (the image's Entrypoint is `sh -c`: the script is
    /// the container's only arg).
    fn deploy_script(&self, id: &str, image: &str, script: &str) {
        self.deploy(
            id,
            json!({
                "template": {"containers": [{"image": image, "args": [script]}]},
                "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 1},
            }),
        );
    }

    /// Log lines of pool `id`: (instanceId, text).
    fn lines(&self, id: &str) -> Vec<(String, String)> {
        self.log_entries(id)
            .iter()
            .map(|e| {
                (
                    e["labels"]["instanceId"].as_str().unwrap_or("").to_string(),
                    e["textPayload"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// The value the instance logged as `KEY=VALUE`, and the instance that logged it.
    fn logged(&self, pool: &str, key: &str, secs: u64) -> (String, String) {
        let prefix = format!("{key}=");
        wait_for(&format!("{pool} to log {key}="), secs, || {
            let lines = self.lines(pool);
            lines
                .iter()
                .find_map(|(i, t)| Some((i.clone(), t.strip_prefix(&prefix)?.to_string())))
                .ok_or_else(|| format!("{lines:?}"))
        })
    }

    /// Wait for the line `text` in pool's log; the instance that logged it.
    fn said(&self, pool: &str, text: &str, secs: u64) -> String {
        wait_for(&format!("{pool} to log {text}"), secs, || {
            let lines = self.lines(pool);
            lines
                .iter()
                .find(|(_, t)| t == text)
                .map(|(i, _)| i.clone())
                .ok_or_else(|| format!("{lines:?}"))
        })
    }
}

/// What the instance reports about itself, then it idles (exiting at SIGTERM). `mark` lets
/// the test find its processes on the host.
fn reporting_script(mark: &str) -> String {
    let md = "wget -q -O - --header 'Metadata-Flavor: Google'";
    format!(
        "trap 'exit 0' TERM; : {mark}
echo \"endpoint=$RUNPOOL_ENDPOINT\"
echo \"pool=$CLOUD_RUN_WORKER_POOL\"
echo \"gce=${{GCE_METADATA_HOST:-unset}}\"
echo \"cwd=$(pwd)\"
echo \"email=$({md} http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/email)\"
echo \"project=$({md} http://metadata.google.internal/computeMetadata/v1/project/project-id)\"
token=$({md} http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token | sed -n 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/p')
echo \"tokeninfo=$(wget -q -O - \"$RUNPOOL_ENDPOINT/oauth2/v3/tokeninfo?access_token=$token\")\"
echo ready
while true; do sleep 1; done"
    )
}

#[test]
fn an_imported_image_runs_under_runc_and_reaches_its_metadata_server_at_the_standard_address() {
    require_oci!();
    let w = Oci::start(None);
    w.import_busybox();
    let mark = marker("oci");
    w.deploy_script("wp", "busybox:local", &reporting_script(&mark));

    let (instance, email) = w.logged("wp", "email", 60);
    assert_eq!(
        email, DEFAULT_SA,
        "the pool's service identity, from 169.254.169.254"
    );
    assert_eq!(w.logged("wp", "project", 10).1, "app-project", "by name");
    assert_eq!(
        w.logged("wp", "endpoint", 10).1,
        "http://169.254.169.254:8484"
    );
    assert_eq!(w.logged("wp", "pool", 10).1, "wp");
    assert_eq!(
        w.logged("wp", "gce", 10).1,
        "unset",
        "no GCE_METADATA_HOST needed"
    );
    assert_eq!(
        w.logged("wp", "cwd", 10).1,
        "/tmp",
        "the image's WorkingDir"
    );
    let info: Value = serde_json::from_str(&w.logged("wp", "tokeninfo", 10).1)
        .expect("tokeninfo from inside the container is JSON");
    assert_eq!(
        info["email"], DEFAULT_SA,
        "a token for the pool's identity: {info}"
    );
    w.said("wp", "ready", 10);
    assert_eq!(
        w.condition("wp")["state"],
        "CONDITION_SUCCEEDED",
        "{}",
        w.condition("wp")
    );
    // On the host: a namespace of its own, and the instance's processes in it.
    assert!(
        netns_exists(&instance),
        "network namespace runpool-{instance}"
    );
    assert!(!procs_with(&mark).is_empty(), "the container's shell runs");

    // A pool whose image was never imported does not start, and says why.
    w.deploy_script("missing", "nothere:1", "true");
    let c = w.wait_condition("missing", "CONDITION_FAILED", 20);
    let message = c["message"].as_str().unwrap();
    assert!(message.contains("Image 'nothere:1' not found"), "{c}");
    assert_eq!(c["reason"], "CONTAINER_MISSING", "Cloud Run's reason: {c}");

    let mut server = w.session.server;
    assert!(
        server.terminate(Duration::from_secs(30)).is_some(),
        "serve stops within the grace period"
    );
    assert!(
        procs_with(&mark).is_empty(),
        "no process of the container is left"
    );
    assert!(!netns_exists(&instance), "the network namespace is removed");
}

#[test]
fn a_container_reaches_google_host_names_through_the_proxy_in_its_namespace() {
    require_oci!();
    let w = Oci::start(None);
    w.import(curl_image(), "curl:local");
    // No endpoint, proxy or CA of its own: what the runtime gives the container
    // (`HTTPS_PROXY`, the CA bundle mounted in it) and a token from its metadata server.
    let script = r#"trap 'exit 0' TERM; PATH=/bin:/usr/bin
t=$(curl -s -H 'Metadata-Flavor: Google' \
  http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token |
  sed 's/.*"access_token":"\([^"]*\)".*/\1/')
for p in app-project other-project; do
  curl -sS -o /dev/null -w "rm:$p:%{http_code}:%{http_version}\n" \
    -H "Authorization: Bearer $t" https://cloudresourcemanager.googleapis.com/v3/projects/$p
done
echo "untrusted:$(curl -s -o /dev/null --cacert /etc/ssl/certs/ca-certificates.crt https://run.googleapis.com/ || echo $?)"
echo "elsewhere:$(curl -s -o /dev/null -w '%{http_connect}' https://example.com/)"
while true; do sleep 1; done"#;
    w.deploy_script("wp", "curl:local", script);
    let lines = wait_for("the container's calls", 60, || {
        let l: Vec<String> = w
            .lines("wp")
            .into_iter()
            .map(|(_, t)| t)
            .filter(|t| t.contains(':'))
            .collect();
        if l.len() >= 4 {
            Ok(l)
        } else {
            Err(format!("{:?}", w.lines("wp")))
        }
    });
    // TLS verified against the mounted bundle, over HTTP/2, answered by this server's IAM as
    // the pool's identity (the default compute account, an editor of its own project only);
    // trusting the machine's roots alone, TLS fails (60: the peer's certificate); a host Runpool does not serve is refused at CONNECT.
    assert_eq!(
        lines,
        vec![
            "rm:app-project:200:2",
            "rm:other-project:403:2",
            "untrusted:60",
            "elsewhere:403",
        ],
        "{lines:?}"
    );
}

#[test]
fn a_killed_servers_containers_go_with_it_and_its_next_start_leaves_nothing() {
    require_oci!();
    let data = tempfile::tempdir().unwrap();
    let w = Oci::start(Some(data.path()));
    w.import_busybox();
    let mark = marker("ocikill");
    w.deploy_script("wp", "busybox:local", &reporting_script(&mark));
    let first = w.said("wp", "ready", 60);
    let kill = Command::new("kill")
        .args(["-KILL", &w.server.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut server = w.session.server;
    assert!(server.terminate(Duration::from_secs(10)).is_some());
    // Its guard removes the container, which `runc run` alone would leave running.
    wait_for(
        "the container gone with its server",
        10,
        || match procs_with(&mark) {
            p if p.is_empty() => Ok(()),
            p => Err(format!("{p:?}")),
        },
    );
    // Its mounts and namespace are for the next start to remove.
    assert!(netns_exists(&first));

    let w = Oci::start(Some(data.path()));
    let second = wait_for("a new instance", 60, || {
        w.lines("wp")
            .into_iter()
            .find(|(i, t)| t == "ready" && *i != first)
            .map(|(i, _)| i)
            .ok_or_else(|| "no new instance yet".to_string())
    });
    assert!(
        !netns_exists(&first),
        "the killed server's namespace is gone"
    );
    assert!(netns_exists(&second));
    // Exactly one: the new instance's shell (its subshells come and go, hence the wait).
    wait_for("only the new instance's shell", 10, || {
        match procs_with(&mark) {
            p if p.len() == 1 => Ok(()),
            p => Err(format!("{p:?}")),
        }
    });
    let mut server = w.session.server;
    assert!(server.terminate(Duration::from_secs(30)).is_some());
    assert!(procs_with(&mark).is_empty(), "no process is left");
    assert!(!netns_exists(&second));
}

#[test]
fn bad_archives_are_refused_with_a_clear_error() {
    // Importing needs no runc: the process runtime's server takes images too.
    let server = Server::spawn(None, Some(&world_yaml()), &[]);
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, b"this is not a tar archive").unwrap();
    let r = server.run(&["images", "import", junk.to_str().unwrap(), "--tag", "x:y"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("INVALID_ARGUMENT") && r.stderr.contains("not a tar archive"),
        "{r:?}"
    );
}

#[test]
fn a_container_cannot_reach_past_its_own_identity() {
    require_oci!();
    let parent = tempfile::tempdir().unwrap();
    let w = Oci::start(Some(&parent.path().join("data")));
    w.import_busybox();
    let a_mark = marker("oci-iso-a");
    w.deploy_script(
        "pool-a",
        "busybox:local",
        &format!("trap 'exit 0' TERM; : {a_mark}; echo up; while true; do sleep 1; done"),
    );
    w.said("pool-a", "up", 60);
    let a_pid = wait_for("pool A's process on the host", 10, || {
        procs_with(&a_mark)
            .first()
            .copied()
            .ok_or_else(|| "none yet".to_string())
    });
    let host_port = w.server.endpoint.rsplit(':').next().unwrap().to_string();
    let data = w.server.data_dir().display().to_string();
    let md = "wget -q -O - --header 'Metadata-Flavor: Google'";
    let script = format!(
        "trap 'exit 0' TERM
try() {{ if sh -c \"$2\" >/dev/null 2>&1; then echo \"ESCAPED $1\"; else echo \"HELD $1\"; fi; }}
try data-dir 'cat {data}/admin-credential'
try other-environ 'cat /proc/{a_pid}/environ'
try host-api 'wget -q -O - http://127.0.0.1:{host_port}/v3/projects/app-project'
t=$({md} http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token)
case \"$t\" in *access_token*) echo 'OWN token';; *) echo 'OWN none';; esac
echo finished
while true; do sleep 1; done"
    );
    w.deploy_script("pool-b", "busybox:local", &script);
    w.said("pool-b", "finished", 60);
    let lines: Vec<String> = w.lines("pool-b").into_iter().map(|(_, t)| t).collect();
    for way in ["data-dir", "other-environ", "host-api"] {
        assert!(lines.contains(&format!("HELD {way}")), "{way}: {lines:?}");
    }
    assert!(lines.contains(&"OWN token".to_string()), "{lines:?}");
}

#[test]
fn the_seeds_sample_image_runs_as_a_container_with_no_import() {
    require_oci!();
    let w = Oci::start(None);
    let sa = w.create_sa("app-project", "worker-id");
    w.deploy(
        "my-pool",
        json!({
            "template": {"serviceAccount": sa, "containers": [{
                "image": "us-docker.pkg.dev/cloudrun/container/worker-pool:latest",
                "env": [{"name": "SAMPLE_INTERVAL_SECONDS", "value": "0.3"}],
            }]},
            "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 1},
        }),
    );
    let call =
        format!("As {sa}: cloudresourcemanager.googleapis.com projects.get projects/app-project ");
    let denied = format!(
        "{call}denied: PERMISSION_DENIED: Permission 'resourcemanager.projects.get' denied on resource 'projects/app-project' (or it may not exist)."
    );
    let instance = w.said("my-pool", &denied, 60);
    assert!(netns_exists(&instance), "a container of its own");
    let started: Vec<String> = w
        .lines("my-pool")
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| t.starts_with("Worker pool "))
        .collect();
    assert_eq!(started.len(), 1, "{started:?}");
    assert!(
        started[0].ends_with(&format!(
            "is running as service account {sa} in project app-project"
        )),
        "{started:?}"
    );
    w.grant(
        "/v3/projects/app-project",
        "roles/browser",
        &format!("serviceAccount:{sa}"),
    );
    let allowed = w.said(
        "my-pool",
        &format!("{call}allowed: app-project (projects/300000000001)"),
        30,
    );
    assert_eq!(allowed, instance, "the same instance, not redeployed");
}
