//! `runpool serve`: flags → `runpool_http::ServeOptions`, and the process's log output (the
//! binary owns it; the library crates only emit `tracing` events). The server itself lives in
//! `runpool-http`.

use anyhow::Result;
use clap::{Args, ValueEnum};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Port to listen on; 0 picks a free one (printed as `Listening on http://ADDR:PORT`).
    #[arg(long, default_value_t = runpool_http::DEFAULT_PORT)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    listen: IpAddr,
    /// Where state is kept (default: `$RUNPOOL_DATA_DIR` or `~/.local/share/runpool`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep the state in PostgreSQL (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`) instead of
    /// SQLite in the data dir: every server given the same database serves one world.
    #[arg(long, value_name = "URL", env = "RUNPOOL_DATABASE")]
    database: Option<String>,
    /// Keep state in a temporary dir, removed on exit.
    #[arg(long)]
    ephemeral: bool,
    /// YAML file describing the initial world (organizations, projects, principals).
    #[arg(long, value_name = "FILE.yaml")]
    world: Option<PathBuf>,
    /// How IAM decisions apply: strict (Google's), soft (denials allowed and marked in the
    /// audit log), off.
    #[arg(long, default_value = "strict")]
    enforcement: runpool_control::intelligence::audit::Enforcement,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// How worker pool instances run: `process` (the container's command as a host process)
    /// or `oci` (the container's image, imported with `runpool images import`, under runc;
    /// needs root).
    #[arg(long, value_enum, default_value_t = RuntimeKind::Process)]
    runtime: RuntimeKind,
    /// Who process-runtime instances run as: `users` (when the server is root, each instance
    /// a user of its own, so it holds only its own identity) or `none` (the server's own
    /// user, which lets an instance read the data dir and other instances' environments; for
    /// commands that need files only the server's user can read).
    #[arg(long, value_enum, default_value_t = IsolationKind::Users)]
    instance_isolation: IsolationKind,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum IsolationKind {
    Users,
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum RuntimeKind {
    Process,
    Oci,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`), as text or one JSON object a
/// line for machines.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub async fn run(a: &ServeArgs) -> Result<()> {
    init_logging(a.log_format);
    // What the server writes (the store, logs, audit log, credential, server record) is its
    // user's alone, whatever directory it lands in.
    // SAFETY: umask only sets the process's file mode mask.
    unsafe { libc::umask(0o077) };
    // Before the server opens: a machine that cannot run containers fails here, not later.
    let oci_tools = match a.runtime {
        RuntimeKind::Process => None,
        RuntimeKind::Oci => Some(runpool_runtime::oci::Tools::find().map_err(anyhow::Error::msg)?),
    };
    let opts = runpool_http::ServeOptions {
        listen: a.listen,
        port: a.port,
        data_dir: a.data_dir.clone(),
        database: a.database.clone(),
        ephemeral: a.ephemeral,
        world: a.world.clone(),
        log_json: a.log_format == LogFormat::Json,
        enforcement: a.enforcement,
    };
    let mut server = runpool_http::Server::open(opts).await?;
    let logs = server
        .control
        .log_store()
        .cloned()
        .expect("serve sets the log store");
    let pids = server.data_dir.join("instances.pids");
    let kind = match oci_tools {
        None => runpool_runtime::Runtime::Process {
            isolated: a.instance_isolation == IsolationKind::Users,
        },
        Some(tools) => runpool_runtime::Runtime::Oci(runpool_runtime::oci::Oci::new(
            tools,
            server.data_dir.join("oci"),
            server.app(),
            std::env::current_exe()?,
        )?),
    };
    let control = server.control.clone();
    let endpoint = server.endpoint.clone();
    let ca = server.proxy.ca.bundle();
    let start = move || {
        runpool_runtime::start(
            control.clone(),
            endpoint.clone(),
            logs.clone(),
            pids.clone(),
            kind.clone(),
            Some(ca.clone()),
            // This binary itself, whoever the instance runs as: the kernel opens it through the
            // link, not by its path (which may sit in a directory the instance cannot enter).
            vec!["/proc/self/exe".into(), "sample-worker".into()],
        )
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let lease = server.control.runtime_lease()?;
    let runtime = tokio::spawn(run_instances(start, lease, stopped));
    let served = server.run(runpool_http::shutdown_signal()).await;
    // Every instance stops before the server (and an ephemeral data dir) goes.
    let _ = stop.send(true);
    let _ = runtime.await;
    drop(server);
    served?;
    Ok(())
}

/// Run the instances while this server holds the runtime's lease (always, on a store only it
/// writes): several servers over one database run each instance once, and when the holder
/// dies another takes the lease and reconciles, starting what the pools want. Stops the
/// runtime, and returns, when `stopped` turns true.
async fn run_instances(
    start: impl Fn() -> runpool_runtime::RuntimeHandle,
    lease: Option<tokio::sync::watch::Receiver<bool>>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    // Each wait drops the channel's guard before the next await (it is not `Send`).
    async fn until(rx: &mut tokio::sync::watch::Receiver<bool>, want: bool) -> bool {
        rx.wait_for(|v| *v == want).await.is_ok()
    }
    // A store only this server writes: a lease held for good.
    let (_held, always) = tokio::sync::watch::channel(true);
    let mut lease = lease.unwrap_or(always);
    loop {
        tokio::select! {
            held = until(&mut lease, true) => if !held { return },
            _ = until(&mut stopped, true) => return,
        }
        tracing::info!("this server holds the runtime lease: it runs the instances");
        let runtime = start();
        tokio::select! {
            _ = until(&mut lease, false) => {
                tracing::warn!("the runtime lease was lost: stopping the instances");
                runtime.shutdown().await;
            }
            _ = until(&mut stopped, true) => return runtime.shutdown().await,
        }
    }
}
