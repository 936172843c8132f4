//! Shared harness: start the real `runpool serve --port 0` with a private `RUNPOOL_CONFIG`,
//! point the client at it, run CLI commands (`Server::run`) or raw REST calls (`Server::api`),
//! kill the server on drop. `world` builds the worlds it serves, `session` is the org admin's
//! REST session on one, `wait` polls for what a server does in the background, `procs` finds a
//! test's worker pool instances on the host.
#![allow(dead_code)] // each test file uses a different subset

pub mod procs;
pub mod session;
pub mod wait;
pub mod world;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Server {
    child: Child,
    pub endpoint: String,
    pub config: tempfile::TempDir,
    data: PathBuf,
    /// Temp dirs (data, world file) that must outlive the server process.
    _keep: Vec<tempfile::TempDir>,
}

/// The result of one CLI run, with the text already decoded.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A temp dir worker pool instances can use. When the server runs as root, each instance
/// runs as a user of its own, to whom a private (0700) temp dir is closed; several instances
/// (several users) may create and remove files in this one.
pub fn instance_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_runpool")
}

/// A command with the environment isolated to this test's config and data dirs.
fn command(config: &Path, data: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env("RUNPOOL_CONFIG", config)
        .env("RUNPOOL_DATA_DIR", data)
        .env("HOME", data)
        .env_remove("RUNPOOL_ADMIN_CREDENTIAL")
        .env_remove("RUNPOOL_CORE_PROJECT")
        .env_remove("RUNPOOL_CORE_ACCOUNT")
        .env_remove("RUNPOOL_CORE_API_ENDPOINT")
        .env_remove("CLOUDSDK_CONFIG")
        .stdin(Stdio::null());
    c
}

impl Server {
    /// The default world, state in a temp dir that goes away with the server.
    pub fn start() -> Server {
        Server::spawn(None, None, &[])
    }

    /// The default world with extra `serve` flags (e.g. `--enforcement soft`).
    pub fn start_with_args(extra: &[&str]) -> Server {
        Server::spawn(None, None, extra)
    }

    /// A world from YAML (`serve --world`), state kept in a temp dir.
    pub fn start_with_world(world_yaml: &str) -> Server {
        Server::spawn(None, Some(world_yaml), &[])
    }

    /// A world from YAML with durable state in `data` (not `--ephemeral`), so a second server
    /// started on the same dir sees what the first one wrote.
    pub fn start_in(data: &Path, world_yaml: &str) -> Server {
        Server::spawn(Some(data), Some(world_yaml), &[])
    }

    /// Start `runpool serve --port 0` and wait (up to 60 s) for `Listening on http://ADDR:PORT`:
    /// state in `data` (else an ephemeral dir), the world from `world_yaml` (else the
    /// default), plus `extra` flags.
    pub fn spawn(data: Option<&Path>, world_yaml: Option<&str>, extra: &[&str]) -> Server {
        Server::spawn_limited(data, world_yaml, extra, None)
    }

    /// [`Server::spawn`] with the server's file limit (soft and hard) set to `nofile`.
    pub fn spawn_limited(
        data: Option<&Path>,
        world_yaml: Option<&str>,
        extra: &[&str],
        nofile: Option<u64>,
    ) -> Server {
        let config = tempfile::tempdir().unwrap();
        let mut keep = Vec::new();
        let data_dir = match data {
            Some(d) => d.to_path_buf(),
            None => {
                let d = tempfile::tempdir().unwrap();
                let p = d.path().to_path_buf();
                keep.push(d);
                p
            }
        };
        let mut args: Vec<String> = vec!["serve".into(), "--port".into(), "0".into()];
        args.extend(extra.iter().map(|a| a.to_string()));
        if data.is_some() {
            args.extend(["--data-dir".into(), data_dir.display().to_string()]);
        } else {
            args.push("--ephemeral".into());
        }
        if let Some(yaml) = world_yaml {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("world.yaml");
            std::fs::write(&file, yaml).unwrap();
            args.extend(["--world".into(), file.display().to_string()]);
            keep.push(dir);
        }
        let mut cmd = command(config.path(), &data_dir);
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe and changes only the child.
            unsafe {
                cmd.pre_exec(move || {
                    let r = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn runpool serve");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("Listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        // Drain stderr so the server never blocks on a full pipe; keep it for failure reports.
        let (etx, erx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                all += &line;
                all.push('\n');
                let _ = etx.send(all.clone());
            }
        });
        let endpoint = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let err = erx.try_iter().last().unwrap_or_default();
                panic!("runpool serve did not report `Listening on ...`; its stderr:\n{err}");
            }
        };
        let server = Server {
            child,
            endpoint,
            config,
            data: data_dir,
            _keep: keep,
        };
        let r = server.run(&["config", "set", "api_endpoint", &server.endpoint]);
        assert!(r.ok(), "{r:?}");
        server
    }

    /// A raw REST client for this server, able to mint tokens with its admin credential.
    pub fn api(&self) -> Api {
        let port = self
            .endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
            .expect("port in endpoint");
        let record = self
            .config
            .path()
            .join("servers")
            .join(format!("{port}.json"));
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(&record)
                .unwrap_or_else(|e| panic!("server record {}: {e}", record.display())),
        )
        .expect("server record is JSON");
        let cred_file = record["adminCredentialFile"]
            .as_str()
            .expect("adminCredentialFile in server record");
        Api {
            endpoint: self.endpoint.clone(),
            admin: std::fs::read_to_string(cred_file)
                .unwrap()
                .trim()
                .to_string(),
            // A fresh connection per call: after refusing an oversized body the server may close
            // the connection, and a pooled one would then fail the next, unrelated request.
            http: reqwest::blocking::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    /// Run `runpool ARGS...` against this server.
    pub fn run(&self, args: &[&str]) -> Run {
        let out: Output = command(self.config.path(), &self.data)
            .args(args)
            .output()
            .expect("run runpool");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run and insist on success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert!(r.ok(), "runpool {}: {r:?}", args.join(" "));
        r
    }

    /// Run `runpool --account ACCOUNT ARGS...`.
    pub fn run_as(&self, account: &str, args: &[&str]) -> Run {
        let mut a = vec!["--account", account];
        a.extend_from_slice(args);
        self.run(&a)
    }

    /// `run worker-pools describe ID --format export --region us-central1` as `account` (None:
    /// the active account), insisting on success: the pool as a file for `replace`.
    pub fn export_pool(&self, account: Option<&str>, id: &str) -> Run {
        let args = [
            "run",
            "worker-pools",
            "describe",
            id,
            "--format",
            "export",
            "--region",
            "us-central1",
        ];
        let r = match account {
            Some(account) => self.run_as(account, &args),
            None => self.run(&args),
        };
        assert!(r.ok(), "export {id}: {r:?}");
        r
    }

    /// `auth login` as the org owner of the default world.
    pub fn login_admin(&self) {
        self.ok(&["auth", "login", "admin@example.com"]);
    }

    /// `auth login` as dev@example.com, then as admin@example.com (the active account, the
    /// developer's reached with `--account`), and `core/project` set to `project`.
    pub fn login_dev_and_admin(&self, project: &str) {
        self.ok(&["auth", "login", "dev@example.com"]);
        self.login_admin();
        self.ok(&["config", "set", "project", project]);
    }

    /// `runpool beta run worker-pools describe ID --region us-central1 EXTRA...`, insisting on
    /// success.
    pub fn describe_pool(&self, id: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "beta",
            "run",
            "worker-pools",
            "describe",
            id,
            "--region",
            "us-central1",
        ];
        args.extend_from_slice(extra);
        self.ok(&args)
    }
}

/// The string `field` of each item of `list`, a JSON array (it must be one, and each item
/// must have the field).
pub fn strs<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|v| v[field].as_str().unwrap())
        .collect()
}

/// Files a test writes for the CLI to read, in a temp dir that goes when it does.
pub struct Files(tempfile::TempDir);

impl Files {
    pub fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    /// Write `name`; its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

impl Drop for Server {
    /// The graceful stop, so the worker pool instances a test started go with the server.
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(15));
    }
}

/// Raw REST calls: `(HTTP status, body as JSON)` (a non-JSON body comes back as a string).
pub struct Api {
    pub endpoint: String,
    admin: String,
    http: reqwest::blocking::Client,
}

impl Api {
    /// An access token for `principal`, minted with the admin credential.
    pub fn token(&self, principal: &str) -> String {
        self.tokens(principal)["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// The whole token response for `principal` (access and refresh token), minted with
    /// the admin credential.
    pub fn tokens(&self, principal: &str) -> Value {
        let resp = self
            .http
            .post(format!("{}/runpool/v1/tokens", self.endpoint))
            .bearer_auth(&self.admin)
            .json(&json!({ "principal": principal }))
            .send()
            .expect("mint token");
        let (status, body) = decode(resp);
        assert_eq!(status, 200, "minting a token for {principal}: {body}");
        body
    }

    pub fn get(&self, token: &str, path: &str) -> (u16, Value) {
        self.get_with(Some(token), path)
    }

    /// Trade a JWT-bearer `assertion` at the token endpoint, as Google's libraries do.
    pub fn jwt_bearer(&self, assertion: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/token", self.endpoint))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion),
            ])
            .send()
            .expect("POST /token");
        decode(resp)
    }

    /// GET with an optional token (None: no Authorization header at all).
    pub fn get_with(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.endpoint));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        decode(req.send().expect("GET"))
    }

    pub fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.post_raw(token, path, body.to_string())
    }

    /// POST a body as given (for malformed or oversized JSON).
    pub fn post_raw(&self, token: &str, path: &str, body: String) -> (u16, Value) {
        self.send(reqwest::Method::POST, token, path, Some(body))
    }

    pub fn patch(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, token, path, Some(body.to_string()))
    }

    pub fn delete(&self, token: &str, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, token, path, None)
    }

    /// Any method with a JSON body (PUT, for instance).
    pub fn send_json(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        self.send(method, token, path, Some(body.to_string()))
    }

    fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.endpoint))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        decode(req.send().expect("request"))
    }
}

fn decode(resp: reqwest::blocking::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A client-only environment (no server), for commands that never touch the network.
pub struct Offline {
    pub config: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl Offline {
    pub fn new() -> Offline {
        Offline {
            config: tempfile::tempdir().unwrap(),
            data: tempfile::tempdir().unwrap(),
        }
    }
    pub fn run(&self, args: &[&str]) -> Run {
        let out = command(self.config.path(), self.data.path())
            .args(args)
            .output()
            .expect("run runpool");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Server {
    /// Where the server keeps its state.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// `kill -9` the server: no clean-up of any kind.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The `runpool serve` process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stop the server as `kill -TERM PID` does (the graceful path: it stops its worker pool
    /// instances before it exits) and wait up to `within` for it to exit. Its exit status, or
    /// None if it was still running then (it is killed, so the test never leaks it).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}
