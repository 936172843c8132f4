//! Runs worker pool instances and gives each one its own metadata server.
//!
//! The supervisor reconciles what runs against what the control plane stores (after every
//! committed change, and on a short tick): each pool's revisions get their share of
//! `manualInstanceCount` instances; a new revision's instances start before the old ones
//! get SIGTERM (SIGKILL after the grace period); an instance that exits is restarted with
//! exponential backoff, and a crash loop shows on the pool's `Ready` condition instead of
//! spinning. How many of a pool's instances run is reported on that `Ready` condition too
//! (its message; `describe` prints it). Stopping the runtime stops every instance: no orphans.
//!
//! The process runtime (the default) runs a container's `command` + `args` as a host process
//! in its own process group, with only the container's `env` and Cloud Run's variables
//! (`CLOUD_RUN_WORKER_POOL`, `CLOUD_RUN_REVISION`), `RUNPOOL_ENDPOINT`, and
//! `GCE_METADATA_HOST`/`GCE_METADATA_IP` pointing at its metadata server, so Google's auth
//! libraries find the instance's service identity with no configuration.
//!
//! The OCI runtime ([`oci`], `serve --runtime oci`) runs each instance as a container of an
//! imported image under runc instead, with its metadata server at the standard address.

pub mod isolation;
pub mod metadata;
pub mod oci;

use runpool_artifacts::logs::LogStore;
use runpool_control::Control;
use runpool_control::run::instances::{PoolSpec, PoolStatus, Problem, RevisionSpec};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long an instance has after SIGTERM before SIGKILL (Cloud Run gives 10 s).
pub const GRACE: Duration = Duration::from_secs(10);
/// Restarts within this window count toward a crash loop.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// This many quick exits in a row make a crash loop.
const CRASH_LOOP_AFTER: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The reconcile tick, besides every committed change.
const TICK: Duration = Duration::from_millis(250);

/// One slot of a pool: which revision, which index.
type Slot = (String, String, u32);

struct Instance {
    /// The instance's process (for a container, its `runc run`).
    child: Child,
    /// The process (and process group) id, kept: the child forgets it once reaped.
    pid: u32,
    started: Instant,
    /// Its metadata server (and, for a container, the API inside its network namespace).
    servers: Vec<JoinHandle<()>>,
    readers: Vec<JoinHandle<()>>,
    /// What a container holds on the host besides its process.
    container: Option<oci::Container>,
    /// The user a process instance runs as (its home goes with it).
    user: Option<isolation::InstanceUser>,
}

/// How instances run.
#[derive(Clone)]
pub enum Runtime {
    /// As host processes (the default); `isolated`: each as a user of its own, when the
    /// server is root (see [`isolation`]).
    Process { isolated: bool },
    /// As containers of imported images, under runc.
    Oci(oci::Oci),
}

/// What an instance of a revision will run.
enum Launch<'a> {
    /// A host process: its argv.
    Process(Vec<String>),
    Container(&'a oci::Oci, oci::Root),
}

/// Google's sample worker pool image, the seed page's example: a deploy of it with no command
/// runs the built-in stand-in ([`start`]'s `sample`), any tag or digest.
pub const SAMPLE_IMAGE: &str = "us-docker.pkg.dev/cloudrun/container/worker-pool";

fn is_sample(image: &str) -> bool {
    image
        .strip_prefix(SAMPLE_IMAGE)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '@']))
}

/// Restart bookkeeping of a slot whose process exited.
#[derive(Default)]
struct Backoff {
    quick_exits: u32,
    next_start: Option<Instant>,
    last_exit: String,
}

struct Supervisor {
    /// Process groups of the instances started, so a server that was killed outright can
    /// clean up after itself at its next start.
    pids_file: PathBuf,
    control: Arc<Control>,
    endpoint: String,
    logs: LogStore,
    running: HashMap<Slot, Instance>,
    backoff: HashMap<Slot, Backoff>,
    runtime: Runtime,
    isolation: isolation::Isolation,
    /// The argv of the stand-in for [`SAMPLE_IMAGE`].
    sample: Vec<String>,
    /// What a process instance trusts (the machine's roots and the server's CA), so that
    /// Google's host names reach this server through its proxy.
    ca_bundle: Option<String>,
    /// Where instances that share the server's user read it.
    shared_bundle: PathBuf,
}

/// A running runtime; [`RuntimeHandle::shutdown`] stops every instance.
pub struct RuntimeHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RuntimeHandle {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// What sends programs to this server by Google's host names, an instance's (its runtime sets
/// them) or a shell's (`runpool env` prints them): `proxy` (the API's address as they reach
/// it, since the API's port is its proxy) and the usual CA variables naming `ca_file`, a
/// bundle of the machine's roots and Runpool's CA. Loopback and the metadata server stay
/// direct.
pub fn proxy_env(proxy: &str, ca_file: &str) -> Vec<(&'static str, String)> {
    let direct = format!(
        "127.0.0.1,localhost,::1,{},metadata.google.internal",
        oci::METADATA_IP
    );
    let mut vars = vec![];
    for k in ["HTTPS_PROXY", "https_proxy"] {
        vars.push((k, proxy.to_string()));
    }
    for k in ["NO_PROXY", "no_proxy"] {
        vars.push((k, direct.clone()));
    }
    for k in [
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
        "NODE_EXTRA_CA_CERTS",
    ] {
        vars.push((k, ca_file.to_string()));
    }
    vars
}

/// Start supervising the pools `control` stores, running instances with `runtime`.
/// `endpoint` is this server's URL (`RUNPOOL_ENDPOINT` in processes); logs go to `logs`;
/// `pids_file` records the process groups started (what a killed predecessor left there is
/// killed first, as are the containers it left). With `ca_bundle`, an instance is sent
/// to this server by Google's host names: `HTTPS_PROXY` is `endpoint` (the server's port is
/// its proxy) and the usual CA variables name a file holding the bundle. `sample` is the argv
/// an instance of [`SAMPLE_IMAGE`] with no command runs.
pub fn start(
    control: Arc<Control>,
    endpoint: String,
    logs: LogStore,
    pids_file: PathBuf,
    runtime: Runtime,
    ca_bundle: Option<String>,
    sample: Vec<String>,
) -> RuntimeHandle {
    let (stop, mut stopped) = watch::channel(false);
    let mut changes = control.subscribe();
    kill_leftovers(&pids_file);
    let isolation = match runtime {
        Runtime::Process { isolated: true } => isolation::Isolation::for_server(),
        // A container is isolated by its namespaces and image.
        Runtime::Process { isolated: false } | Runtime::Oci(_) => isolation::Isolation::Shared,
    };
    if matches!(runtime, Runtime::Process { .. }) && !isolation.isolated() {
        tracing::warn!(
            "instances run as this server's own user (it is not root, or --instance-isolation none): \
             an instance's code can read the data dir (the admin credential included), other \
             instances' environments, and reach their metadata servers; run `serve` as root \
             (each instance then runs as a user of its own) or use --runtime oci to keep \
             instances apart"
        );
    }
    let shared_bundle = pids_file.with_file_name("instances-ca-bundle.pem");
    let mut sup = Supervisor {
        ca_bundle,
        shared_bundle,
        pids_file,
        control,
        endpoint,
        logs,
        running: HashMap::new(),
        backoff: HashMap::new(),
        runtime,
        isolation,
        sample,
    };
    let task = tokio::spawn(async move {
        if let Runtime::Oci(oci) = &sup.runtime {
            oci.remove_leftovers().await;
        }
        loop {
            sup.reconcile().await;
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(TICK) => {}
                _ = stopped.changed() => break,
            }
        }
        sup.stop_all().await;
    });
    RuntimeHandle { stop, task }
}

fn instance_id() -> String {
    let mut b = [0u8; 24];
    rand::Rng::fill(&mut rand::rng(), &mut b);
    hex::encode(b)
}

/// SIGTERM an instance, then SIGKILL it if it has not exited within `grace`.
async fn terminate(mut inst: Instance, grace: Duration) {
    match &inst.container {
        Some(c) => {
            c.kill("TERM").await;
            if tokio::time::timeout(grace, inst.child.wait())
                .await
                .is_err()
            {
                // Should runc not reach the container (not started yet), `runc run` goes,
                // and `finish` deletes the container whatever its state.
                c.kill("KILL").await;
                kill_group(inst.pid);
                let _ = inst.child.wait().await;
            }
        }
        None => {
            // The instance runs in its own process group: signal the whole group, so what
            // it started goes too.
            if inst.pid > 0 {
                unsafe { libc::kill(-(inst.pid as i32), libc::SIGTERM) };
            }
            if tokio::time::timeout(grace, inst.child.wait())
                .await
                .is_err()
            {
                kill_group(inst.pid);
                let _ = inst.child.wait().await;
            }
            kill_group(inst.pid);
        }
    }
    finish(inst).await;
}

/// Kill the process groups a previous server left running (it was killed before it could
/// stop them). Each was recorded as `PID STARTTIME`: a pid whose process started at another
/// time is not ours (the pid was reused, perhaps by another server's instance) and is never
/// touched. A bare `PID` (an older file) counts as ours if it carries `RUNPOOL_ENDPOINT`.
fn kill_leftovers(pids_file: &Path) {
    let Ok(text) = std::fs::read_to_string(pids_file) else {
        return;
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(pid) = words
            .next()
            .and_then(|w| w.parse::<i32>().ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        let ours = match words.next() {
            Some(start) => start_time(pid as u32).is_some_and(|t| t == start),
            None => std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|kv| kv.starts_with(b"RUNPOOL_ENDPOINT="))
            }),
        };
        if ours {
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }
    let _ = std::fs::write(pids_file, "");
}

/// When process `pid` started (`/proc/PID/stat` field 22, clock ticks since boot): with the
/// pid, it names one process for good.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// Where `command` is, as `execvp` would find it for an instance: a path with a `/` as it
/// is (relative to the working dir), a bare name on the server's `PATH`. `None`: no
/// executable file there.
fn find_command(command: &str, working_dir: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        let p = Path::new(working_dir).join(command);
        // Relative to a working dir the instance chooses itself: exec will tell.
        if p.is_relative() {
            return Some(p);
        }
        return executable(&p).then_some(p);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(command))
            .find(|p| executable(p))
    })
}

/// Exponential backoff after `n` quick exits, capped.
fn backoff_delay(n: u32) -> Duration {
    Duration::from_millis(100 * 2u64.pow(n.min(9))).min(MAX_BACKOFF)
}

/// SIGKILL whatever is left of an instance's process group (children it left behind).
fn kill_group(pid: u32) {
    // Never 0: `kill(0, …)` would signal the server's own process group.
    if pid > 0 {
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
    }
}

/// Let the log readers drain what the instance wrote before it went (bounded), then stop
/// its servers and remove its container.
async fn finish(inst: Instance) {
    for r in inst.readers {
        let abort = r.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), r)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    for s in inst.servers {
        s.abort();
    }
    if let Some(c) = inst.container {
        c.remove().await;
    }
    // A process of the instance's user that left its process group (setsid) is gone too:
    // `kill -KILL -1` run as that user signals every process the user owns.
    if let Some(u) = &inst.user {
        let _ = Command::new("kill")
            .args(["-KILL", "-1"])
            .uid(u.uid)
            .gid(u.uid)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
    }
    // Its home goes once its processes have.
    drop(inst.user);
}

impl Supervisor {
    async fn reconcile(&mut self) {
        let pools = self.control.desired_pools();
        let mut wanted: HashMap<Slot, (PoolSpec, RevisionSpec)> = HashMap::new();
        for p in &pools {
            for r in &p.revisions {
                for i in 0..r.instances {
                    wanted.insert(
                        (p.name.clone(), r.revision.clone(), i),
                        (p.clone(), r.clone()),
                    );
                }
            }
        }
        self.reap();
        // Start what should run (new revisions first), then stop what should not.
        // By pool: the revision whose instances cannot run, the reason and the message.
        let mut problems: HashMap<String, (String, String, String)> = HashMap::new();
        for (slot, (pool, rev)) in &wanted {
            // A slot that keeps crashing stays a crash loop while its latest instance is up,
            // until that instance proves stable (then `reap` clears the record).
            if let Some(b) = self.backoff.get(slot)
                && b.quick_exits >= CRASH_LOOP_AFTER
            {
                problems.insert(
                    pool.name.clone(),
                    (
                        rev.revision.clone(),
                        "CrashLoopBackOff".into(),
                        format!(
                            "Instance of revision {} keeps exiting ({}); restarting with backoff.",
                            rev.revision, b.last_exit
                        ),
                    ),
                );
            }
            if self.running.contains_key(slot) {
                continue;
            }
            let launch = match self.launch(rev) {
                Ok(l) => l,
                Err((reason, message)) => {
                    problems.insert(pool.name.clone(), (rev.revision.clone(), reason, message));
                    continue;
                }
            };
            if self
                .backoff
                .get(slot)
                .and_then(|b| b.next_start)
                .is_some_and(|t| t > Instant::now())
            {
                continue;
            }
            match self.spawn(pool, rev, launch).await {
                Ok(inst) => {
                    self.running.insert(slot.clone(), inst);
                }
                Err(e) => {
                    let b = self.backoff.entry(slot.clone()).or_default();
                    b.quick_exits += 1;
                    b.last_exit = e.clone();
                    b.next_start = Some(Instant::now() + backoff_delay(b.quick_exits));
                    problems.insert(
                        pool.name.clone(),
                        (rev.revision.clone(), "ContainerFailedToStart".into(), e),
                    );
                }
            }
        }
        let gone: Vec<Slot> = self
            .running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for slot in gone {
            if let Some(inst) = self.running.remove(&slot) {
                tokio::spawn(terminate(inst, GRACE));
            }
            self.backoff.remove(&slot);
        }
        self.backoff.retain(|k, _| wanted.contains_key(k));
        let mut running: HashMap<&str, usize> = HashMap::new();
        for (pool, ..) in self.running.keys() {
            *running.entry(pool.as_str()).or_default() += 1;
        }
        for p in &pools {
            let status = PoolStatus {
                revisions: p.revisions.iter().map(|r| r.revision.as_str()).collect(),
                problem: problems
                    .get(&p.name)
                    .map(|(revision, reason, message)| Problem {
                        revision,
                        reason,
                        message,
                    }),
                running: running.get(p.name.as_str()).copied().unwrap_or(0),
            };
            if let Err(e) = self.control.set_pool_status(&p.name, &status) {
                tracing::warn!(pool = %p.name, error = %e, "cannot record pool status");
            }
        }
    }

    /// Collect instances that exited and schedule their restarts.
    fn reap(&mut self) {
        let exited: Vec<Slot> = self
            .running
            .iter_mut()
            .filter_map(|(k, inst)| inst.child.try_wait().ok().flatten().map(|_| k.clone()))
            .collect();
        for slot in exited {
            let Some(mut inst) = self.running.remove(&slot) else {
                continue;
            };
            // As in a container, what the instance started goes with it.
            kill_group(inst.pid);
            let status = inst
                .child
                .try_wait()
                .ok()
                .flatten()
                .map(|s| s.to_string())
                .unwrap_or_default();
            let quick = inst.started.elapsed() < STABLE_AFTER;
            tokio::spawn(finish(inst));
            let b = self.backoff.entry(slot.clone()).or_default();
            if quick {
                b.quick_exits += 1;
            } else {
                b.quick_exits = 1;
            }
            b.last_exit = status;
            let delay = backoff_delay(b.quick_exits);
            b.next_start = Some(Instant::now() + delay);
            tracing::info!(pool = %slot.0, revision = %slot.1, exit = %b.last_exit, ?delay, "instance exited; restarting");
        }
        // An instance that stayed up long enough clears its slot's crash record.
        for (slot, inst) in &self.running {
            if inst.started.elapsed() >= STABLE_AFTER
                && let Some(b) = self.backoff.get_mut(slot)
            {
                b.quick_exits = 0;
            }
        }
    }

    /// What an instance of `rev` runs, or why none can start: a problem that is not a crash
    /// (it shows until the revision, or the imported images, change).
    fn launch(&self, rev: &RevisionSpec) -> Result<Launch<'_>, (String, String)> {
        match &self.runtime {
            Runtime::Process { .. } if rev.command.is_empty() && is_sample(&rev.image) => {
                Ok(Launch::Process(self.sample.clone()))
            }
            Runtime::Process { .. } if rev.command.is_empty() => Err((
                "ContainerMissingCommand".into(),
                "The container has no command: the process runtime runs template.containers[0].command (and args) as a host process; set command to run it.".into(),
            )),
            Runtime::Process { .. } => match find_command(&rev.command[0], &rev.working_dir) {
                Some(_) => Ok(Launch::Process(
                    rev.command.iter().chain(&rev.args).cloned().collect(),
                )),
                // Looked up before any process is made: a pool whose command is missing
                // costs a lookup a tick, not a fork (and it starts once the file is there).
                None => Err((
                    "ContainerFailedToStart".into(),
                    format!(
                        "Cannot start {:?}: no such executable file (looked up on PATH as the instance would).",
                        rev.command[0]
                    ),
                )),
            },
            Runtime::Oci(oci) => {
                let imported = self
                    .control
                    .image_store()
                    .and_then(|s| s.resolve(&rev.image));
                // An import of that name wins; otherwise the stand-in needs none.
                if imported.is_none() && rev.command.is_empty() && is_sample(&rev.image) {
                    let root = oci
                        .sample(&self.sample[1..])
                        .map_err(|e| ("ContainerFailedToStart".to_string(), e))?;
                    return Ok(Launch::Container(oci, root));
                }
                let image = imported.ok_or_else(|| {
                        (
                            "ImageNotFound".to_string(),
                            format!(
                                "Image '{}' not found: the oci runtime runs images imported with `runpool images import FILE`.",
                                rev.image
                            ),
                        )
                    })?;
                if oci::process_args(&rev.command, &rev.args, &image.config).is_empty() {
                    return Err((
                        "ContainerMissingCommand".into(),
                        format!(
                            "Neither the container nor image '{}' says what to run: set the container's command, or the image's Entrypoint or Cmd.",
                            rev.image
                        ),
                    ));
                }
                Ok(Launch::Container(oci, image.into()))
            }
        }
    }

    async fn spawn(
        &self,
        pool: &PoolSpec,
        rev: &RevisionSpec,
        launch: Launch<'_>,
    ) -> Result<Instance, String> {
        let id = instance_id();
        let identity = metadata::InstanceIdentity {
            instance_id: id.clone(),
            project_id: pool.project_id.clone(),
            project_number: pool.project_number.clone(),
            region: pool.region.clone(),
            service_account: rev.service_account.clone(),
            pool: format!(
                "projects/{}/locations/{}/workerPools/{}",
                pool.project_number, pool.region, pool.id
            ),
        };
        let md = metadata::router(self.control.clone(), identity);
        let vars = rev.cloud_run_env(pool);
        let (mut child, servers, container, user) = match launch {
            Launch::Process(argv) => {
                let user = self
                    .isolation
                    .user_for(&id)
                    .map_err(|e| format!("Cannot make the instance's user and home: {e}"))?;
                let (child, server) = self
                    .spawn_process(&argv, rev, &vars, md, user.as_ref())
                    .await?;
                (child, vec![server], None, user)
            }
            Launch::Container(oci, root) => {
                let s = oci
                    .start(&id, &root, rev, &vars, md, self.ca_bundle.as_deref())
                    .await?;
                (s.child, s.servers, Some(s.container), None)
            }
        };
        let readers = self.read_output(&mut child, pool, rev, &id);
        tracing::info!(pool = %pool.name, revision = %rev.revision, instance = %id, "instance started");
        let pid = child.id().unwrap_or_default();
        // A container is found again through its directory, not its pid.
        if container.is_none() {
            self.record_pid(pid);
        }
        Ok(Instance {
            child,
            pid,
            started: Instant::now(),
            servers,
            readers,
            container,
            user,
        })
    }

    /// Start `rev`'s command as a host process, with its metadata server on loopback; as
    /// `user` when instances have users of their own.
    async fn spawn_process(
        &self,
        argv: &[String],
        rev: &RevisionSpec,
        vars: &[(&str, String)],
        md: axum::Router,
        user: Option<&isolation::InstanceUser>,
    ) -> Result<(Child, JoinHandle<()>), String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let md_addr = listener.local_addr().map_err(|e| e.to_string())?;
        // An instance with a user of its own is the only one its metadata server answers.
        let admit = user.map(|u| {
            let uid = u.uid;
            runpool_listener::Admit {
                // `/proc/net/tcp` is not read as one snapshot: a row can be missed while
                // other sockets come and go, so a miss is asked again.
                check: Arc::new(move |s: &tokio::net::TcpStream| {
                    (0..3).any(|_| isolation::peer_uid(s) == Some(uid))
                }),
                refused: metadata::refused(),
            }
        });
        let metadata = tokio::spawn(async move {
            let _ = runpool_listener::serve_admitting(
                listener,
                md,
                metadata::limits(),
                "metadata",
                admit,
                std::future::pending(),
            )
            .await;
        });

        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        // Only what Cloud Run gives a container, not the server's own environment.
        cmd.env_clear();
        for k in ["PATH", "HOME", "LANG", "TZ"] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        if let Some(u) = user {
            cmd.uid(u.uid).gid(u.uid).env("HOME", &u.home);
            if rev.working_dir.is_empty() {
                cmd.current_dir(&u.home);
            }
        }
        for (k, v) in &rev.env {
            cmd.env(k, v);
        }
        // The runtime's own variables come last: a container's env cannot pass for them.
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.env("RUNPOOL_ENDPOINT", &self.endpoint)
            .env("GCE_METADATA_HOST", md_addr.to_string())
            .env("GCE_METADATA_IP", md_addr.to_string());
        if let Some(bundle) = &self.ca_bundle {
            let path = match user {
                Some(u) => u.home.join(".runpool-ca-bundle.pem"),
                None => self.shared_bundle.clone(),
            };
            write_public(&path, bundle).map_err(|e| format!("{}: {e}", path.display()))?;
            cmd.envs(proxy_env(&self.endpoint, &path.to_string_lossy()));
        }
        if !rev.working_dir.is_empty() {
            cmd.current_dir(&rev.working_dir);
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: umask and prctl are async-signal-safe and touch nothing but the child's
        // own mask and death signal. The server keeps its own files private (umask 077); an
        // instance gets the usual 022. An instance dies with its server, even one killed by
        // SIGKILL, as a container dies with its node: over a shared database another server
        // then takes the runtime's lease and starts the pools' instances afresh, so none runs
        // twice. (std runs this after the child's setuid, which would clear the setting.)
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o022);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(child) => Ok((child, metadata)),
            Err(e) => {
                metadata.abort();
                let hint = match user {
                    Some(u) if e.kind() == std::io::ErrorKind::PermissionDenied => format!(
                        " (instances run as a user of their own, uid {}, not as the server's: the command{} must be readable and executable by other users)",
                        u.uid,
                        if rev.working_dir.is_empty() {
                            ""
                        } else {
                            " and the working dir"
                        }
                    ),
                    _ => String::new(),
                };
                Err(format!("Cannot start {:?}: {e}{hint}", argv[0]))
            }
        }
    }

    /// Feed the instance's stdout and stderr into its log.
    fn read_output(
        &self,
        child: &mut Child,
        pool: &PoolSpec,
        rev: &RevisionSpec,
        id: &str,
    ) -> Vec<JoinHandle<()>> {
        let mut readers = vec![];
        for (stream, out) in [
            (
                "stdout",
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            ),
            (
                "stderr",
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            ),
        ] {
            let Some(out) = out else { continue };
            let (logs, pool_name, revision, instance) = (
                self.logs.clone(),
                pool.name.clone(),
                rev.revision.clone(),
                id.to_string(),
            );
            readers.push(tokio::spawn(async move {
                // Bytes, decoded lossily: one invalid UTF-8 byte must not stop the reading
                // (the instance would then die of SIGPIPE on its next write).
                let mut reader = BufReader::new(out);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf);
                            let _ = logs.append(
                                &pool_name,
                                &revision,
                                &instance,
                                stream,
                                line.trim_end_matches(['\n', '\r']),
                            );
                        }
                    }
                }
            }));
        }
        readers
    }

    fn record_pid(&self, pid: u32) {
        use std::io::Write;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.pids_file);
        // No start time: the process is gone already, and `reap` takes care of its group.
        if let (Ok(mut f), Some(start)) = (file, start_time(pid)) {
            let _ = writeln!(f, "{pid} {start}");
        }
    }

    async fn stop_all(&mut self) {
        let all: Vec<Instance> = self.running.drain().map(|(_, i)| i).collect();
        let stops: Vec<_> = all
            .into_iter()
            .map(|i| tokio::spawn(terminate(i, GRACE)))
            .collect();
        for s in stops {
            let _ = s.await;
        }
        let _ = std::fs::write(&self.pids_file, "");
    }
}

/// Write a file anyone may read (a CA bundle: certificates only), whatever the server's umask.
fn write_public(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn sleeper() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap()
    }

    #[test]
    fn leftovers_are_killed_only_when_pid_and_start_time_both_match() {
        let file = std::env::temp_dir().join(format!("runpool-pids-test-{}", std::process::id()));
        let mut ours = sleeper();
        let mut reused = sleeper();
        let start = start_time(ours.id()).expect("a live process has a start time");
        assert_eq!(start_time(ours.id()), Some(start.clone()), "stable");
        // `reused` stands for a process that took over a recorded pid: its start time differs.
        std::fs::write(&file, format!("{} {start}\n{} 1\n", ours.id(), reused.id())).unwrap();
        kill_leftovers(&file);
        let status = ours.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        assert!(
            reused.try_wait().unwrap().is_none(),
            "a reused pid is left alone"
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "",
            "the record is cleared"
        );
        let _ = std::fs::remove_file(&file);
        let _ = reused.kill();
        let _ = reused.wait();
    }
}
