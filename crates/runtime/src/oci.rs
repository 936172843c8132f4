//! The OCI runtime (`runpool serve --runtime oci`): each instance is a container that `runc`
//! runs from an image imported with `runpool images import`, in a network namespace of its
//! own where, as on Google Cloud, the metadata server answers at `169.254.169.254:80` (and as
//! `metadata.google.internal`, through the container's `/etc/hosts`) and Runpool's API at
//! `169.254.169.254:8484` (`RUNPOOL_ENDPOINT`), which is also the proxy to Google's host names
//! (`HTTPS_PROXY`, with the CA bundle mounted at `/etc/runpool/ca-bundle.pem`), so Google's
//! clients reach Runpool with no options, as on the host. The namespace has loopback only:
//! nothing else is needed, so no veth pair or firewall rule is ever left on the host.
//!
//! The listeners are made by a thread that enters the namespace for just that (a socket
//! stays in the namespace it was created in) and are served by the server's own tokio
//! runtime, so the per-instance metadata router is the one the process runtime uses.
//!
//! Per instance, under `DATA_DIR/oci/instances/ID/`: `config.json` (the OCI runtime spec),
//! `hosts`, and `rootfs/`, an overlay of the image's root (read-only, below) and a tmpfs
//! (`rw/`, above: Cloud Run's filesystem is writable and in memory). Its network namespace is
//! `runpool-ID` (`/var/run/netns`), and runc keeps its state under `DATA_DIR/oci/runc`. The
//! instance's directory is made before anything else of it and removed after everything else,
//! so a server that was killed finds in `instances/` what it left (mounts, namespaces, a
//! container its guard had no time to delete) and removes it at its next start, as the
//! process runtime does with its pids file. The containers themselves go with their server
//! (see [`guard`]).
//!
//! runc, not crun: crun 1.8 (Debian 12) refuses hosts with hybrid cgroups.

use axum::Router;
use runpool_artifacts::images::{Image, ImageConfig};
use runpool_control::run::instances::RevisionSpec;
use serde_json::{Value, json};
use std::ffi::CString;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// Where the metadata server answers inside an instance, as on Google Cloud.
pub const METADATA_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The API's port inside an instance: the one `runpool serve` listens on by default.
const API_PORT: u16 = 8484;
/// Where an instance finds the CA bundle (the machine's roots and Runpool's CA) that its
/// programs trust for Google's host names; runc makes the file in the image's root.
const CA_BUNDLE: &str = "/etc/runpool/ca-bundle.pem";
/// Docker's default `PATH`, for images that set none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const HOSTS: &str =
    "127.0.0.1\tlocalhost\n::1\tlocalhost\n169.254.169.254\tmetadata.google.internal metadata\n";
/// Docker's default capabilities (what a container's root may do).
const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The programs the OCI runtime drives.
#[derive(Clone)]
pub struct Tools {
    runc: PathBuf,
    ip: PathBuf,
}

impl Tools {
    /// Find `runc` and `ip` on `PATH`; the OCI runtime also needs root (it mounts each
    /// instance's root filesystem and makes its network namespace).
    pub fn find() -> Result<Tools, String> {
        if unsafe { libc::geteuid() } != 0 {
            return Err(
                "--runtime oci needs root: it mounts each instance's root filesystem \
                        and makes its network namespace."
                    .into(),
            );
        }
        let find = |name: &str, package: &str| {
            which(name).ok_or_else(|| {
                format!("--runtime oci needs `{name}` on PATH (Debian: apt-get install {package}).")
            })
        };
        Ok(Tools {
            runc: find("runc", "runc")?,
            ip: find("ip", "iproute2")?,
        })
    }
}

fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|f| {
            f.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs instances as containers.
#[derive(Clone)]
pub struct Oci {
    tools: Tools,
    /// `DATA_DIR/oci`
    dir: PathBuf,
    /// Runpool's API and proxy, served inside each instance's network namespace.
    api: Router,
    /// This binary: the program of the stand-in for Google's sample image, and each
    /// container's [`guard`].
    runpool: PathBuf,
}

/// What a container runs: an image's root, and host files bound into it read-only.
pub struct Root {
    pub image: Image,
    binds: Vec<(PathBuf, String)>,
}

impl From<Image> for Root {
    fn from(image: Image) -> Root {
        Root {
            image,
            binds: vec![],
        }
    }
}

/// Where the stand-in's program is inside its container.
const SAMPLE_PROGRAM: &str = "/runpool";

/// A running container instance.
pub struct Started {
    pub child: Child,
    /// The metadata server and the API, inside the instance's network namespace.
    pub servers: Vec<JoinHandle<()>>,
    pub container: Container,
}

/// What an instance holds on the host besides its `runc run` process: container state,
/// mounts, network namespace, bundle directory.
pub struct Container {
    id: String,
    dir: PathBuf,
    runc: PathBuf,
    ip: PathBuf,
    state: PathBuf,
}

impl Oci {
    /// `runpool` is this binary (the stand-in for Google's sample image runs it, and so does
    /// each container's guard).
    pub fn new(tools: Tools, dir: PathBuf, api: Router, runpool: PathBuf) -> std::io::Result<Oci> {
        std::fs::create_dir_all(dir.join("instances"))?;
        std::fs::create_dir_all(dir.join("runc"))?;
        Ok(Oci {
            tools,
            dir,
            api,
            runpool,
        })
    }

    /// The stand-in for Google's sample image, which needs no import: this binary, run with
    /// `args`, and the machine's own `/usr` (its libraries) bound read-only under an
    /// otherwise empty root.
    pub fn sample(&self, args: &[String]) -> Result<Root, String> {
        let rootfs = self.dir.join("sample-root");
        let io = |e: std::io::Error| format!("Cannot make the sample image's root: {e}");
        for d in ["usr", "etc", "tmp", "proc", "dev", "sys"] {
            std::fs::create_dir_all(rootfs.join(d)).map_err(io)?;
        }
        // The mount point of the program (made once: lower layers of running overlays stay
        // untouched).
        let program = rootfs.join(SAMPLE_PROGRAM.trim_start_matches('/'));
        if !program.exists() {
            std::fs::write(&program, "").map_err(io)?;
        }
        let mut binds = vec![
            (PathBuf::from("/usr"), "/usr".to_string()),
            (self.runpool.clone(), SAMPLE_PROGRAM.to_string()),
        ];
        // As the host has them: links into /usr (merged /usr), or directories bound too.
        for top in ["bin", "sbin", "lib", "lib64"] {
            let host = Path::new("/").join(top);
            let inside = rootfs.join(top);
            match std::fs::read_link(&host) {
                Ok(target) => {
                    if std::fs::read_link(&inside).ok() != Some(target.clone()) {
                        let _ = std::fs::remove_file(&inside);
                        std::os::unix::fs::symlink(&target, &inside).map_err(io)?;
                    }
                }
                Err(_) if host.is_dir() => {
                    std::fs::create_dir_all(&inside).map_err(io)?;
                    binds.push((host, format!("/{top}")));
                }
                Err(_) => {}
            }
        }
        Ok(Root {
            image: Image {
                id: "runpool:sample-worker".into(),
                rootfs,
                config: ImageConfig {
                    entrypoint: std::iter::once(SAMPLE_PROGRAM.to_string())
                        .chain(args.iter().cloned())
                        .collect(),
                    ..Default::default()
                },
            },
            binds,
        })
    }

    fn container(&self, id: &str) -> Container {
        Container {
            id: id.to_string(),
            dir: self.dir.join("instances").join(id),
            runc: self.tools.runc.clone(),
            ip: self.tools.ip.clone(),
            state: self.dir.join("runc"),
        }
    }

    /// Remove what a killed predecessor left: its instances' containers, mounts and
    /// network namespaces.
    pub async fn remove_leftovers(&self) {
        let Ok(dirs) = std::fs::read_dir(self.dir.join("instances")) else {
            return;
        };
        for d in dirs.flatten() {
            if let Some(id) = d.file_name().to_str() {
                tracing::info!(instance = %id, "removing a container a previous server left");
                self.container(id).remove().await;
            }
        }
    }

    /// Start instance `id` of `rev` from `image`, with the runtime's `vars` and `metadata`
    /// as its metadata server. On failure nothing of it is left.
    pub async fn start(
        &self,
        id: &str,
        root: &Root,
        rev: &RevisionSpec,
        vars: &[(&str, String)],
        metadata: Router,
        ca_bundle: Option<&str>,
    ) -> Result<Started, String> {
        let c = self.container(id);
        match self.launch(&c, root, rev, vars, metadata, ca_bundle).await {
            Ok((child, servers)) => Ok(Started {
                child,
                servers,
                container: c,
            }),
            Err(e) => {
                c.remove().await;
                Err(e)
            }
        }
    }

    async fn launch(
        &self,
        c: &Container,
        root: &Root,
        rev: &RevisionSpec,
        vars: &[(&str, String)],
        metadata: Router,
        ca_bundle: Option<&str>,
    ) -> Result<(Child, Vec<JoinHandle<()>>), String> {
        let image = &root.image;
        let io = |what: &str| {
            let what = what.to_string();
            move |e: std::io::Error| format!("Cannot {what}: {e}")
        };
        let (uid, gid) = image
            .user_ids()
            .map_err(|e| format!("Cannot run image {}: {e}", rev.image))?;
        std::fs::create_dir_all(&c.dir).map_err(io("make the instance directory"))?;
        std::fs::write(c.dir.join("hosts"), HOSTS).map_err(io("write /etc/hosts"))?;
        let (rw, rootfs) = (c.dir.join("rw"), c.dir.join("rootfs"));
        for d in [&rw, &rootfs] {
            std::fs::create_dir(d).map_err(io("make the instance's root"))?;
        }
        mount("tmpfs", &rw, "mode=0755")?;
        for d in ["upper", "work"] {
            std::fs::create_dir(rw.join(d)).map_err(io("make the instance's root"))?;
        }
        let layers = [&image.rootfs, &rw.join("upper"), &rw.join("work")];
        if layers
            .iter()
            .any(|p| p.to_string_lossy().contains([',', ':']))
        {
            return Err(
                "The data dir's path has a ',' or ':', which overlay mounts cannot take.".into(),
            );
        }
        mount(
            "overlay",
            &rootfs,
            &format!(
                "lowerdir={},upperdir={},workdir={}",
                layers[0].display(),
                layers[1].display(),
                layers[2].display()
            ),
        )?;

        let netns = c.netns();
        c.ip(&["netns", "add", &netns]).await?;
        c.ip(&["-n", &netns, "link", "set", "lo", "up"]).await?;
        c.ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{METADATA_IP}/32"),
            "dev",
            "lo",
        ])
        .await?;
        let netns_path = Path::new("/var/run/netns").join(&netns);
        let listeners = bind_in_netns(
            &netns_path,
            &[
                SocketAddr::from((METADATA_IP, 80)),
                SocketAddr::from((METADATA_IP, API_PORT)),
            ],
        )
        .map_err(io("listen inside the instance's network namespace"))?;

        let endpoint = format!("http://{METADATA_IP}:{API_PORT}");
        let mut env_vars = vars.to_vec();
        env_vars.push(("RUNPOOL_ENDPOINT", endpoint.clone()));
        // The API's port in the namespace is the proxy too, as on the host.
        let mut binds = root.binds.clone();
        if let Some(bundle) = ca_bundle {
            let file = c.dir.join("ca-bundle.pem");
            std::fs::write(&file, bundle).map_err(io("write the CA bundle"))?;
            env_vars.extend(crate::proxy_env(&endpoint, CA_BUNDLE));
            binds.push((file, CA_BUNDLE.to_string()));
        }
        let spec = runtime_spec(&Process {
            args: process_args(&rev.command, &rev.args, &image.config),
            env: environment(&image.config.env, &rev.env, &env_vars),
            cwd: [rev.working_dir.as_str(), image.config.working_dir.as_str()]
                .into_iter()
                .find(|d| !d.is_empty())
                .unwrap_or("/")
                .to_string(),
            uid,
            gid,
            netns: netns_path,
            hosts: c.dir.join("hosts"),
            binds,
        });
        std::fs::write(
            c.dir.join("config.json"),
            serde_json::to_vec_pretty(&spec).expect("a JSON value serializes"),
        )
        .map_err(io("write the container's config.json"))?;

        let listeners = listeners
            .into_iter()
            .map(tokio::net::TcpListener::from_std)
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(io("serve inside the instance's network namespace"))?;
        let servers: Vec<JoinHandle<()>> = listeners
            .into_iter()
            .zip([metadata, self.api.clone()])
            .map(|(listener, app)| {
                tokio::spawn(async move {
                    let _ = runpool_listener::serve(
                        listener,
                        app,
                        crate::metadata::limits(),
                        "instance",
                        std::future::pending(),
                    )
                    .await;
                })
            })
            .collect();
        // `runc run` under the container's guard (see [`guard`]), which holds the other end
        // of the pipe on its stdin: so the container goes with the server, however the server
        // goes, and the guard, never killed on a drop, is left to remove it.
        let child = Command::new(&self.runpool)
            .arg(GUARD_COMMAND)
            .arg(&c.runc)
            .arg(&c.state)
            .arg(&c.id)
            .arg(&c.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn();
        match child {
            Ok(child) => Ok((child, servers)),
            Err(e) => {
                for s in servers {
                    s.abort();
                }
                Err(format!("Cannot start {}: {e}", self.runpool.display()))
            }
        }
    }
}

/// The hidden command of this binary that runs one container for the server
/// (`runpool oci-guard RUNC RUNC_ROOT ID BUNDLE`).
pub const GUARD_COMMAND: &str = "oci-guard";

/// Run container `id` and remove it should the server go first: `runc run` in the foreground,
/// a child that writes the container's output straight into this process's stdout and stderr
/// (the server's pipes into the instance's log) and exits with the container's status, with
/// which this process exits. The guard's stdin is a pipe whose other end only the server
/// holds, so it reads end-of-file exactly when the server is gone, even by `kill -9`. `runc
/// run` would outlive it, and its container too (runc gives a container's init no
/// parent-death signal), so the guard then deletes the container, as a node's containers go
/// with the node: over a shared database another server runs the pool's instances next, and
/// none runs twice. A server that stops the instance itself does so through runc, and the
/// guard ends with `runc run`.
pub fn guard(runc: &Path, root: &Path, id: &str, bundle: &Path) -> ! {
    use std::io::Read as _;
    let (runc, root, id) = (runc.to_path_buf(), root.to_path_buf(), id.to_string());
    let runc_with = move |args: &[&std::ffi::OsStr]| {
        let mut cmd = std::process::Command::new(&runc);
        cmd.arg("--root").arg(&root).args(args).stdin(Stdio::null());
        cmd
    };
    let run = runc_with(&[
        "run".as_ref(),
        "--bundle".as_ref(),
        bundle.as_os_str(),
        id.as_ref(),
    ])
    .spawn();
    let mut run = match run {
        Ok(child) => child,
        Err(e) => {
            eprintln!("Cannot start runc: {e}");
            std::process::exit(1);
        }
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
        let _ = runc_with(&["delete".as_ref(), "--force".as_ref(), id.as_ref()]).status();
    });
    use std::os::unix::process::ExitStatusExt as _;
    let code = match run.wait() {
        Ok(s) => s
            .code()
            .or_else(|| s.signal().map(|sig| 128 + sig))
            .unwrap_or(1),
        Err(_) => 1,
    };
    std::process::exit(code)
}

impl Container {
    fn netns(&self) -> String {
        format!("runpool-{}", self.id)
    }

    async fn ip(&self, args: &[&str]) -> Result<(), String> {
        run(Command::new(&self.ip).args(args)).await
    }

    async fn runc(&self, args: &[&str]) -> Result<(), String> {
        run(Command::new(&self.runc)
            .arg("--root")
            .arg(&self.state)
            .args(args))
        .await
    }

    /// Send `signal` (`TERM`, `KILL`) to the container's main process; false if runc could
    /// not (the container is not running, or not yet).
    pub async fn kill(&self, signal: &str) -> bool {
        self.runc(&["kill", &self.id, signal]).await.is_ok()
    }

    /// Remove everything of the instance: its container (killed if still running), its
    /// mounts, its network namespace, its directory. Each step tolerates what is already
    /// gone, so a half-started or half-removed instance is removed as well.
    pub async fn remove(&self) {
        // The container first: its processes keep the mounts busy.
        let _ = self.runc(&["delete", "--force", &self.id]).await;
        let mut unmounted = true;
        for m in [self.dir.join("rootfs"), self.dir.join("rw")] {
            if let Err(e) = unmount(&m) {
                tracing::warn!(instance = %self.id, error = %e, "cannot unmount");
                unmounted = false;
            }
        }
        if Path::new("/var/run/netns").join(self.netns()).exists()
            && let Err(e) = self.ip(&["netns", "del", &self.netns()]).await
        {
            tracing::warn!(instance = %self.id, error = %e, "cannot remove the network namespace");
        }
        // Never delete through a mount that is still there.
        if unmounted && let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(instance = %self.id, error = %e, "cannot remove the instance directory");
        }
    }
}

/// Run a tool to completion; its stderr is the error.
async fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{:?}", cmd.as_std());
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("Cannot run {shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn c_path(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("Bad path {}", p.display()))
}

fn mount(fstype: &str, target: &Path, options: &str) -> Result<(), String> {
    let (source, kind) = (CString::new(fstype), CString::new(fstype));
    let (Ok(source), Ok(kind), Ok(data)) = (source, kind, CString::new(options)) else {
        return Err(format!("Bad mount options for {}", target.display()));
    };
    let target_c = c_path(target)?;
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            kind.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "Cannot mount {fstype} on {}: {}",
            target.display(),
            std::io::Error::last_os_error()
        ))
    }
}

/// Detach a mount; what is not (or no longer) mounted is fine.
fn unmount(target: &Path) -> Result<(), String> {
    let t = c_path(target)?;
    if unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(()),
        _ => Err(format!("{}: {e}", target.display())),
    }
}

/// Listeners on `addrs`, made inside the network namespace at `netns`.
fn bind_in_netns(
    netns: &Path,
    addrs: &[SocketAddr],
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let ns = std::fs::File::open(netns)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // Only this short-lived thread enters the namespace; its sockets stay there.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            addrs
                .iter()
                .map(|a| {
                    let l = std::net::TcpListener::bind(a)?;
                    l.set_nonblocking(true)?;
                    Ok(l)
                })
                .collect()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the namespace thread panicked")))
    })
}

/// What the container runs, as Cloud Run (like Kubernetes) reads `command` and `args`
/// against the image: `command` replaces the image's Entrypoint (and drops its Cmd), `args`
/// replace its Cmd.
pub fn process_args(command: &[String], args: &[String], image: &ImageConfig) -> Vec<String> {
    let mut out = if command.is_empty() {
        image.entrypoint.clone()
    } else {
        command.to_vec()
    };
    if !args.is_empty() {
        out.extend_from_slice(args);
    } else if command.is_empty() {
        out.extend_from_slice(&image.cmd);
    }
    out
}

/// The container's environment: the image's, then the container's `env` (which may
/// override it), then the runtime's own variables, which nothing overrides. As with Docker,
/// `PATH` has a default when the image sets none.
fn environment(
    image: &[String],
    container: &[(String, String)],
    runtime: &[(&str, String)],
) -> Vec<String> {
    let mut vars: Vec<(String, String)> = vec![("PATH".into(), DEFAULT_PATH.into())];
    let pairs = image
        .iter()
        .map(|kv| kv.split_once('=').unwrap_or((kv.as_str(), "")))
        .chain(container.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .chain(runtime.iter().map(|(k, v)| (*k, v.as_str())));
    for (k, v) in pairs {
        match vars.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => vars.push((k.to_string(), v.to_string())),
        }
    }
    vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

struct Process {
    args: Vec<String>,
    env: Vec<String>,
    cwd: String,
    uid: u32,
    gid: u32,
    netns: PathBuf,
    hosts: PathBuf,
    /// Host paths bound read-only into the container: (source, destination).
    binds: Vec<(PathBuf, String)>,
}

/// The bundle's `config.json` (OCI runtime spec 1.0): runc's default container, with
/// Docker's capabilities, the instance's network namespace and `/etc/hosts`.
fn runtime_spec(p: &Process) -> Value {
    // As Docker does, a non-root user gets the capabilities only in its bounding set.
    let granted: &[&str] = if p.uid == 0 { CAPABILITIES } else { &[] };
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": p.uid, "gid": p.gid},
            "args": p.args,
            "env": p.env,
            "cwd": p.cwd,
            "capabilities": {
                "bounding": CAPABILITIES,
                "effective": granted,
                "permitted": granted,
            },
            // Docker's default too: setuid programs in the image keep working.
            "noNewPrivileges": false,
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "localhost",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/etc/hosts", "type": "bind", "source": p.hosts,
             "options": ["rbind", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "network", "path": p.netns},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    });
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for (source, destination) in &p.binds {
            mounts.push(
                json!({"destination": destination, "type": "bind", "source": source,
                               "options": ["rbind", "ro"]}),
            );
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn command_and_args_combine_with_the_image_as_cloud_run_does() {
        let image = ImageConfig {
            entrypoint: s(&["/entry"]),
            cmd: s(&["default"]),
            ..Default::default()
        };
        assert_eq!(process_args(&[], &[], &image), s(&["/entry", "default"]));
        assert_eq!(process_args(&[], &s(&["a"]), &image), s(&["/entry", "a"]));
        assert_eq!(process_args(&s(&["sh"]), &[], &image), s(&["sh"]));
        assert_eq!(
            process_args(&s(&["sh"]), &s(&["-c", "x"]), &image),
            s(&["sh", "-c", "x"])
        );
    }

    #[test]
    fn the_runtimes_variables_win_and_path_has_a_default() {
        let env = environment(
            &s(&["A=image", "B=image"]),
            &[
                ("B".into(), "container".into()),
                ("CLOUD_RUN_REVISION".into(), "fake".into()),
            ],
            &[("CLOUD_RUN_REVISION", "r-1".into())],
        );
        assert_eq!(
            env,
            s(&[
                &format!("PATH={DEFAULT_PATH}"),
                "A=image",
                "B=container",
                "CLOUD_RUN_REVISION=r-1"
            ])
        );
        let env = environment(&s(&["PATH=/bin"]), &[], &[]);
        assert_eq!(env, s(&["PATH=/bin"]));
    }
}
