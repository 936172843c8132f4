//! The wire: one router per Google REST surface, bearer authentication, Google's error body,
//! and `serve`, which opens the store, seeds the world and listens.
//!
//! Handlers only decode Google's JSON into the official model types, call a `control`
//! service method with the authenticated caller, and render the answer; no rule lives here.

mod console;
mod grpc;
mod iam;
mod intelligence;
pub mod proxy;
mod resourcemanager;
mod run;
mod serviceusage;
pub mod wire;

use axum::Router;
use runpool_control::base::store::{PostgresStore, SqliteStore};
use runpool_control::{Caller, Control, Error, base::local};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wire::{ApiError, ApiResult, Params, reply};

/// How `runpool serve` was asked to run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: IpAddr,
    /// 0 picks a free port; the chosen one is printed as `Listening on http://ADDR:PORT`.
    pub port: u16,
    pub data_dir: Option<PathBuf>,
    /// `postgres://…`: the state in PostgreSQL, shared with every server given the same
    /// database (default: SQLite in the data dir).
    pub database: Option<String>,
    pub ephemeral: bool,
    pub world: Option<PathBuf>,
    pub log_json: bool,
    pub enforcement: runpool_control::intelligence::audit::Enforcement,
}

pub const DEFAULT_PORT: u16 = 8484;

#[derive(Clone)]
pub struct AppState {
    pub control: Arc<Control>,
}

/// Every route Runpool serves, REST and, transcoded onto the same routes, gRPC.
pub fn router(control: Arc<Control>) -> Router {
    let rest = rest_router(control);
    rest.clone().layer(axum::middleware::from_fn_with_state(
        grpc::Gateway::new(rest),
        grpc::layer,
    ))
}

/// Every REST route.
fn rest_router(control: Arc<Control>) -> Router {
    let state = AppState { control };
    Router::new()
        .merge(resourcemanager::router())
        .merge(resourcemanager::v1::router())
        .merge(resourcemanager::v2::router())
        .merge(resourcemanager::tags::router())
        .merge(resourcemanager::orgpolicy::router())
        .merge(iam::roles::router())
        .merge(intelligence::recommender::router())
        .merge(iam::denypolicies::router())
        .merge(run::router())
        .merge(run::v1::router())
        .merge(iam::serviceaccounts::router())
        .merge(iam::oauth::router())
        .merge(intelligence::troubleshooter::router())
        .merge(intelligence::logging::router())
        .merge(run::images::router())
        .merge(serviceusage::router())
        .merge(console::router())
        .route("/runpool/v1/status", axum::routing::get(status))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(wire::schema::layer))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            wire::audit::layer,
        ))
        .layer(panics_answer_500())
        .with_state(state)
}

/// The server's own counters, for any authenticated caller: audit records committed and lost
/// (lost only when the audit store failed to commit; never silently).
async fn status(
    axum::extract::State(s): axum::extract::State<AppState>,
    wire::Auth(_): wire::Auth,
) -> axum::Json<Value> {
    let (written, lost) = s
        .control
        .audit_log()
        .map(|l| (l.written(), l.lost()))
        .unwrap_or_default();
    axum::Json(serde_json::json!({
        "auditRecordsWritten": written.to_string(),
        "auditRecordsLost": lost.to_string(),
    }))
}

type PanicAnswer = fn(Box<dyn std::any::Any + Send>) -> axum::response::Response;

/// A bug that panics answers that one request with Google's 500; the server stays up.
fn panics_answer_500() -> tower_http::catch_panic::CatchPanicLayer<PanicAnswer> {
    tower_http::catch_panic::CatchPanicLayer::custom(|_| {
        use axum::response::IntoResponse;
        ApiError(Error::internal("Internal error encountered.")).into_response()
    })
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(Error::not_found(format!(
        "The requested URL {} was not found on this server.",
        uri.path()
    )))
}

/// `getIamPolicy` / `setIamPolicy` / `testIamPermissions` on a Resource Manager node; `None`
/// if `verb` is none of them.
pub(crate) fn iam_verbs(
    s: &AppState,
    c: &Caller,
    p: &Params,
    name: &str,
    verb: &str,
    body: Value,
) -> Option<ApiResult> {
    matches!(verb, "getIamPolicy" | "setIamPolicy" | "testIamPermissions").then(|| {
        iam_policy_verbs(
            p,
            verb,
            body,
            |v| s.control.node_get_iam_policy(c, name, v),
            |pol, mask| s.control.node_set_iam_policy(c, name, pol, mask),
            |perms| s.control.node_test_iam_permissions(c, name, perms),
        )
    })
}

/// Decode the body of one of the three IAM policy methods (the same on every API that has
/// them) and call the resource's own implementation.
pub(crate) fn iam_policy_verbs(
    p: &Params,
    verb: &str,
    body: Value,
    get: impl FnOnce(i32) -> runpool_control::Result<google_cloud_iam_v1::model::Policy>,
    set: impl FnOnce(
        google_cloud_iam_v1::model::Policy,
        &[String],
    ) -> runpool_control::Result<google_cloud_iam_v1::model::Policy>,
    test: impl FnOnce(&[String]) -> runpool_control::Result<Vec<String>>,
) -> ApiResult {
    use google_cloud_iam_v1::model as iam;
    match verb {
        "getIamPolicy" => {
            let req: iam::GetIamPolicyRequest = wire::parse(body)?;
            let from_query = p.int("options.requestedPolicyVersion")?.unwrap_or(0) as i32;
            let v = req
                .options
                .map(|o| o.requested_policy_version)
                .unwrap_or(from_query);
            Ok(reply(p, &get(v)?, &[]))
        }
        "setIamPolicy" => {
            let req: iam::SetIamPolicyRequest = wire::parse(body)?;
            let policy = req
                .policy
                .ok_or_else(|| ApiError(Error::invalid("policy is required.")))?;
            let mask = req.update_mask.map(|m| m.paths).unwrap_or_default();
            Ok(reply(p, &set(policy, &mask)?, &[]))
        }
        "testIamPermissions" => {
            let req: iam::TestIamPermissionsRequest = wire::parse(body)?;
            let mut resp = iam::TestIamPermissionsResponse::new();
            resp.permissions = test(&req.permissions)?;
            Ok(reply(p, &resp, &[]))
        }
        _ => Err(wire::unknown_verb(verb)),
    }
}

/// Read the admin credential from the data dir, or write a new one (mode 0600).
fn admin_credential(dir: &Path) -> std::io::Result<(String, PathBuf)> {
    let path = dir.join(local::ADMIN_CREDENTIAL_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let t = text.trim().to_string();
        if !t.is_empty() {
            return Ok((t, path));
        }
    }
    let cred = runpool_control::iam::auth::new_admin_credential();
    write_private(&path, &cred)?;
    Ok((cred, path))
}

/// Write a file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The store holds the server's signing keys, so a data dir Runpool creates is its owner's
/// alone (0700). One that exists keeps its mode (never changed behind the user's back); if
/// others may read it, start says so. The files with secrets in it are 0600 either way.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(dir) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    mode = format!("{mode:o}"),
                    "the data dir can be read by others (its store holds signing keys); \
                     `chmod 700` it to make it private"
                );
            }
            Ok(())
        }
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir),
    }
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Removes the server record when the server stops.
struct RecordGuard(PathBuf);

impl Drop for RecordGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}

/// A server that has opened its store, seeded its world and bound its port, ready to
/// [`Server::run`]. The binary starts the runtime between the two.
pub struct Server {
    pub control: Arc<Control>,
    /// `http://ADDR:PORT`
    pub endpoint: String,
    pub data_dir: PathBuf,
    /// The proxy for Google's host names, with its CA.
    pub proxy: Arc<proxy::Proxy>,
    listener: Option<tokio::net::TcpListener>,
    _record: RecordGuard,
    /// Declared last: an ephemeral data dir goes when everything else has stopped.
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// Open the store, seed the world on first start, write the admin credential and the
    /// local server record, bind, and print `Listening on ENDPOINT`.
    pub async fn open(opts: ServeOptions) -> std::io::Result<Server> {
        let temp = if opts.ephemeral {
            Some(tempfile::Builder::new().prefix("runpool-").tempdir()?)
        } else {
            None
        };
        let dir = match (&temp, &opts.data_dir) {
            (Some(t), _) => t.path().to_path_buf(),
            (None, Some(d)) => d.clone(),
            (None, None) => local::default_data_dir(),
        };
        private_dir(&dir)?;
        // The state, and the audit log and instance logs beside it: over a shared database all
        // are there, so every server serves one world, the recommender reads every server's
        // traffic, and an instance's output is read through any server.
        use runpool_artifacts::logs::LogStore;
        use runpool_control::base::store::Backend;
        use runpool_control::intelligence::audit::AuditLog;
        let (store, audit, logs): (Box<dyn Backend>, _, _) = match &opts.database {
            Some(url) => (
                Box::new(PostgresStore::open(url).map_err(io_err)?),
                AuditLog::open_postgres(url),
                LogStore::with(
                    runpool_control::run::instance_logs::PostgresLogs::open(url).map_err(io_err)?,
                ),
            ),
            None => (
                Box::new(SqliteStore::open(&dir.join("runpool.db")).map_err(io_err)?),
                AuditLog::open(&dir.join("audit.db")),
                LogStore::new(dir.join("logs")),
            ),
        };
        let control = Control::open(store).map_err(io_err)?;
        if control.is_empty() {
            let world = match &opts.world {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        io_err(format!("cannot read world file {}: {e}", path.display()))
                    })?;
                    runpool_control::world::World::from_yaml(&text).map_err(io_err)?
                }
                None => runpool_control::world::World::default_world(),
            };
            if !control.seed(&world).map_err(io_err)? {
                tracing::info!("another server seeded the database first");
            }
        } else if opts.world.is_some() {
            tracing::warn!(dir = %dir.display(), "the data dir already holds a world; --world is ignored");
        }
        let (mine, cred_path) = admin_credential(&dir)?;
        // Over a shared database every server accepts the one admin credential it holds.
        let cred = control
            .shared_admin_credential(mine.clone())
            .map_err(io_err)?;
        if cred != mine {
            write_private(&cred_path, &cred)?;
        }
        control.set_admin_credential(cred);
        control.set_log_store(logs);
        control.set_image_store(runpool_artifacts::images::ImageStore::open(
            dir.join("images"),
        )?);
        control.set_audit_log(audit.map_err(io_err)?);
        control.set_enforcement(opts.enforcement);
        if opts.enforcement != runpool_control::intelligence::audit::Enforcement::Strict {
            tracing::warn!(mode = ?opts.enforcement, "IAM enforcement is not strict: denials are let through");
        }

        let listener =
            tokio::net::TcpListener::bind(SocketAddr::new(opts.listen, opts.port)).await?;
        let addr = listener.local_addr()?;
        let endpoint = format!("http://{addr}");
        control.set_endpoint(endpoint.clone());
        let record_path = local::server_record_path(addr.port());
        if let Some(parent) = record_path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let record = local::ServerRecord {
            endpoint: endpoint.clone(),
            admin_credential_file: cred_path,
            pid: std::process::id(),
        };
        write_private(
            &record_path,
            &serde_json::to_string(&record).map_err(io_err)?,
        )?;
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "Listening on {endpoint}")?;
            out.flush()?;
        }
        tracing::info!(%endpoint, data_dir = %dir.display(), "runpool serving");
        let control = Arc::new(control);
        // Other servers' commits, as the database announces them: the runtime reconciles
        // against them without waiting for a request.
        if let Some(heard) = control.commits_elsewhere().map_err(io_err)? {
            let weak = Arc::downgrade(&control);
            std::thread::Builder::new()
                .name("runpool-refresh".into())
                .spawn(move || {
                    for _ in heard {
                        let Some(control) = weak.upgrade() else {
                            return;
                        };
                        if let Err(e) = control.catch_up() {
                            tracing::warn!(error = %e, "catching up with the database failed");
                        }
                    }
                })?;
        }
        // Over a shared database every server signs with the one CA it holds, so a client
        // trusts it once for all of them.
        let ca = proxy::ca::LocalCa::open(&dir.join("ca"), |mine| {
            control.shared_local_ca(mine).map_err(io_err)
        })?;
        Ok(Server {
            proxy: proxy::Proxy::new(ca),
            control,
            endpoint,
            data_dir: dir,
            listener: Some(listener),
            _record: RecordGuard(record_path),
            _temp: temp,
        })
    }

    /// What the API port serves: every API, and the proxy for Google's host names. The OCI
    /// runtime serves it inside each instance's network namespace too.
    pub fn app(&self) -> Router {
        let api = router(self.control.clone()).merge(run::kubernetes::router(
            self.control.clone(),
            self.proxy.clone(),
        ));
        proxy::serving(api, self.proxy.clone())
    }

    /// Serve until `shutdown` completes.
    pub async fn run(
        &mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listener = self
            .listener
            .take()
            .ok_or_else(|| io_err("the server already ran"))?;
        runpool_listener::serve(
            listener,
            self.app(),
            runpool_listener::Limits::default(),
            "api",
            shutdown,
        )
        .await
    }
}

/// Serve the APIs alone (no runtime) until SIGINT/SIGTERM.
pub async fn serve(opts: ServeOptions) -> std::io::Result<()> {
    Server::open(opts).await?.run(shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_googles_500_and_the_next_request_is_served() {
        use tower_service::Service as _;
        let mut app: Router = Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    if true {
                        panic!("a bug");
                    }
                }),
            )
            .route("/fine", axum::routing::get(|| async { "ok" }))
            .layer(panics_answer_500());
        let get = |p: &str| {
            axum::http::Request::get(p)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let resp = app.call(get("/boom")).await.unwrap();
        assert_eq!(resp.status(), 500);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["status"], "INTERNAL");
        assert_eq!(v["error"]["message"], "Internal error encountered.");
        assert_eq!(app.call(get("/fine")).await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn every_route_names_the_method_it_serves_as_audit_logs_name_it() {
        use crate::wire::operation::Op;
        use tower_service::Service as _;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let control = Arc::new(Control::open(Box::new(store)).unwrap());
        let mut app = router(control);
        let mut call = async |method: &str, path: &str| {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{}"))
                .unwrap();
            let resp = app.call(req).await.unwrap();
            let op = resp.extensions().get::<&'static Op>().copied();
            (
                resp.status().as_u16(),
                op.map(|o| (o.interface.service, o.method_name(), o.activity)),
            )
        };
        let named = |service: &'static str, method: &str, activity: bool| {
            Some((service, method.to_string(), activity))
        };
        assert_eq!(
            call("POST", "/v2/projects/p/locations/us-central1/workerPools")
                .await
                .1,
            named(
                "run.googleapis.com",
                "google.cloud.run.v2.WorkerPools.CreateWorkerPool",
                true
            )
        );
        assert_eq!(
            call("GET", "/v3/projects/p").await.1,
            named(
                "cloudresourcemanager.googleapis.com",
                "google.cloud.resourcemanager.v3.Projects.GetProject",
                false
            )
        );
        assert_eq!(
            call("POST", "/v3/projects/p:setIamPolicy").await.1,
            named(
                "cloudresourcemanager.googleapis.com",
                "google.cloud.resourcemanager.v3.Projects.SetIamPolicy",
                true
            )
        );
        assert_eq!(
            call("POST", "/v3/projects/p:getIamPolicy").await.1,
            named(
                "cloudresourcemanager.googleapis.com",
                "google.cloud.resourcemanager.v3.Projects.GetIamPolicy",
                false
            )
        );
        assert_eq!(
            call("GET", "/v1/projects/p/serviceAccounts").await.1,
            named(
                "iam.googleapis.com",
                "google.iam.admin.v1.IAM.ListServiceAccounts",
                false
            )
        );
        assert_eq!(
            call(
                "POST",
                "/v1/projects/-/serviceAccounts/a@b:generateAccessToken"
            )
            .await
            .1,
            named(
                "iamcredentials.googleapis.com",
                "google.iam.credentials.v1.IAMCredentials.GenerateAccessToken",
                false
            )
        );
        assert_eq!(
            call("GET", "/v2/projects/p/policies/c:getEffectivePolicy")
                .await
                .1,
            named(
                "orgpolicy.googleapis.com",
                "google.cloud.orgpolicy.v2.OrgPolicy.GetEffectivePolicy",
                false
            )
        );
        assert_eq!(
            call("POST", "/token").await.1,
            None,
            "not a Google API method"
        );
        // A custom verb no route serves is Google's unknown method, before any handler runs.
        assert_eq!(call("POST", "/v3/projects/p:frobnicate").await, (404, None));
    }
}
