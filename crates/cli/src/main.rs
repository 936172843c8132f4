//! `runpool`: the Runpool server (`runpool serve`) and a gcloud-shaped client for it.
//!
//! The client commands mirror gcloud's paths, flags and default output, so a command from
//! Google's docs works with `gcloud` replaced by `runpool` (`beta`/`alpha` are accepted as
//! no-op prefixes). They speak Google's own REST APIs to the server (Resource Manager v3,
//! Org Policy v2, IAM v1, IAM Credentials v1) through one helper ([`api::Api`]) that adds the bearer token,
//! decodes Google's error body and waits on long-running operations.
//!
//! Local state lives in `runpool_control::base::local::config_dir()` (`$RUNPOOL_CONFIG` overrides):
//! `properties` (gcloud's INI layout) and `credentials/ACCOUNT.json` (mode 0600). Logging in
//! as a simulated user mints a token with the server's admin credential, found through the
//! record a local `runpool serve` leaves there.
//!
//! Errors print as `ERROR: (runpool.GROUP.COMMAND) MESSAGE` on stderr with exit status 1;
//! usage errors exit 2.
//!
//! The HTTP calls, credentials, properties and `--format` are `runpool_client`'s; Terraform is
//! `runpool_terraform`'s. Here: `config` and `auth` (their commands), and the command groups in
//! the rooms of Google's services: `resourcemanager`, `iam` (`iam::policy` is the allow-policy
//! commands every resource shares), `run` (`logs` is also `logging read`) and `intelligence`
//! (`troubleshoot` is `policy-intelligence troubleshoot-policy iam`).

mod auth;
mod config;
mod console;
mod env;
mod gcloud;
mod iam;
mod intelligence;
mod resourcemanager;
mod run;
mod serve;

use anyhow::{Result, anyhow};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use output::Format;
use runpool_client::{api, output};
use serde_json::Value;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "runpool",
    version,
    about = "A local Google Cloud for Cloud Run worker pools and IAM"
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

/// gcloud's global flags, accepted before or after the command.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct Globals {
    /// The project to use for this command (overrides `core/project`).
    #[arg(long, global = true, value_name = "PROJECT_ID")]
    pub project: Option<String>,
    /// The account to use for this command (overrides `core/account`).
    #[arg(long, global = true)]
    pub account: Option<String>,
    /// Output format: json, yaml, none, value(KEYS), table(KEYS), csv(KEYS).
    #[arg(long, global = true, value_parser = Format::parse)]
    pub format: Option<Format>,
    /// Flatten the output on these list fields, e.g. `bindings[].members`.
    #[arg(long, global = true)]
    pub flatten: Option<String>,
    /// Keep only records matching `key:value`, `key=value`, `key!=value` terms (ANDed).
    #[arg(long, global = true)]
    pub filter: Option<String>,
    /// Disable interactive prompts (this client never prompts; accepted for gcloud parity).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Act as this service account (overrides `auth/impersonate_service_account`); a
    /// comma-separated list is a delegation chain, the last one the target.
    #[arg(long, global = true, value_name = "SERVICE_ACCOUNT_EMAILS")]
    pub impersonate_service_account: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the Runpool server.
    Serve(serve::ServeArgs),
    /// Manage properties.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Manage credentials.
    #[command(subcommand)]
    Auth(auth::AuthCmd),
    /// Open the web console, signed in as the current account (prints a one-time link).
    Console(console::ConsoleArgs),
    /// Print the path and PEM of the server's local CA (what its proxy signs Google's host
    /// names with).
    Ca,
    /// Print the `export` lines that send this shell's programs to Runpool by Google's own host
    /// names: proxy, CA bundle, Application Default Credentials (`eval "$(runpool env)"`).
    Env,
    /// Send Google's own gcloud to this server (`gcloud init`: a gcloud configuration `runpool`).
    #[command(subcommand)]
    Gcloud(gcloud::GcloudCmd),
    /// Manage projects.
    #[command(subcommand)]
    Projects(resourcemanager::projects::ProjectsCmd),
    /// Manage organizations.
    #[command(subcommand)]
    Organizations(resourcemanager::organizations::OrganizationsCmd),
    /// Manage folders and organization policies.
    #[command(subcommand)]
    ResourceManager(ResourceManagerCmd),
    /// Organization policies over Org Policy v2 (`set-policy FILE` with conditional rules).
    #[command(subcommand)]
    OrgPolicies(resourcemanager::org_policies::OrgPoliciesV2Cmd),
    /// Manage IAM roles.
    #[command(subcommand)]
    Iam(IamCmd),
    /// Manage Cloud Run worker pools.
    #[command(subcommand)]
    Run(run::worker_pools::RunCmd),
    /// Plan and apply Terraform configurations of worker pools and service accounts.
    #[command(subcommand)]
    Terraform(run::terraform::TerraformCmd),
    /// Policy Intelligence: troubleshoot IAM access (Policy Troubleshooter v3).
    #[command(subcommand)]
    PolicyIntelligence(intelligence::troubleshoot::PolicyIntelligenceCmd),
    /// Read Cloud Logging entries (worker pool instance logs).
    #[command(subcommand)]
    Logging(run::logs::LoggingCmd),
    /// Import container images for `serve --runtime oci`.
    #[command(subcommand)]
    Images(run::images::ImagesCmd),
    /// Recommendations and insights (Recommender v1): least-privilege roles and accounts.
    #[command(subcommand)]
    Recommender(intelligence::recommender::RecommenderCmd),
    /// The stand-in for Google's sample worker pool image, run by the runtime inside an
    /// instance.
    #[command(hide = true)]
    SampleWorker,
    /// Runs one container of `serve --runtime oci` and removes it should the server go.
    #[command(hide = true, name = runpool_runtime::oci::GUARD_COMMAND)]
    OciGuard {
        runc: std::path::PathBuf,
        root: std::path::PathBuf,
        id: String,
        bundle: std::path::PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ResourceManagerCmd {
    #[command(subcommand)]
    Folders(resourcemanager::folders::FoldersCmd),
    #[command(subcommand)]
    OrgPolicies(resourcemanager::org_policies::OrgPoliciesCmd),
    /// Manage tags: keys, values and their bindings to resources.
    #[command(subcommand)]
    Tags(resourcemanager::tags::TagsCmd),
}

#[derive(Subcommand, Debug)]
enum IamCmd {
    #[command(subcommand)]
    Roles(iam::roles::RolesCmd),
    /// Manage service accounts and their keys.
    #[command(subcommand)]
    ServiceAccounts(iam::service_accounts::ServiceAccountsCmd),
    /// Manage IAM deny policies (IAM v2).
    #[command(subcommand)]
    Policies(iam::deny_policies::PoliciesCmd),
}

/// What every client command gets: global flags and the stored properties.
pub struct Ctx {
    pub globals: Globals,
    pub config: runpool_client::config::Config,
}

impl Ctx {
    pub fn endpoint(&self) -> String {
        self.config.endpoint()
    }

    pub fn account(&self) -> Result<String> {
        self.globals
            .account
            .clone()
            .or(self.config.account())
            .ok_or_else(runpool_client::auth::no_active_account)
    }

    /// An API client authenticated as the active account, or as the service account it
    /// impersonates (`--impersonate-service-account`, `auth/impersonate_service_account`).
    pub async fn api(&self) -> Result<api::Api> {
        let endpoint = self.endpoint();
        let mut token = runpool_client::auth::access_token(&self.account()?, &endpoint).await?;
        if let Some(spec) = runpool_client::auth::impersonation(
            self.globals.impersonate_service_account.as_deref(),
            &self.config,
        ) {
            runpool_client::auth::warn_impersonation(&spec);
            token =
                runpool_client::auth::impersonated_access_token(&endpoint, &token, &spec).await?;
        }
        Ok(api::Api::new(endpoint, token))
    }

    /// `--project`, else `core/project`.
    pub fn project(&self) -> Result<String> {
        self.globals
            .project
            .clone()
            .or(self.config.project())
            .ok_or_else(|| {
                anyhow!(
                    "The required property [project] is not currently set.\nIt can be set on a \
                 per-command basis by re-running your command with the [--project] flag.\n\nYou \
                 may set it for your current workspace by running:\n\n  $ runpool config set \
                 project VALUE"
                )
            })
    }

    fn format_or(&self, default: Format) -> Format {
        self.globals.format.clone().unwrap_or(default)
    }

    /// Print one resource (default format `default`); `--flatten` turns it into records.
    pub fn print_one(&self, v: &Value, default: Format) {
        if self.globals.flatten.is_some() || self.globals.filter.is_some() {
            return self.print_list(vec![v.clone()], default);
        }
        emit(&output::render_one(&self.format_or(default), v));
    }

    pub fn print_list(&self, items: Vec<Value>, default: Format) {
        let items = match &self.globals.flatten {
            Some(spec) => output::flatten(items, spec),
            None => items,
        };
        // The filter was validated when the command started (see `run`), so this cannot fail.
        let items = match &self.globals.filter {
            Some(spec) => output::filter(items, spec).unwrap_or_default(),
            None => items,
        };
        emit(&output::render_list(&self.format_or(default), &items));
    }

    /// Print a resource only when `--format` asked for it (commands like `create` print just a
    /// status line by default, as gcloud's do).
    pub fn print_if_asked(&self, v: &Value) {
        if self.globals.format.is_some() {
            self.print_one(v, Format::Yaml);
        }
    }
}

/// Write command output to stdout. A reader that went away (`runpool ... | head`) is not an
/// error worth a panic or a message: stop quietly, as gcloud and coreutils do.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("ERROR: writing output: {e}");
        std::process::exit(1);
    }
}

/// A default `table(...)` projection, written as gcloud's.
pub fn table(spec: &str) -> Format {
    Format::parse(spec).expect("static format spec")
}

/// Drop `alpha`/`beta` where gcloud accepts them (right after the program name and global
/// flags). Returns the release track, for the error prefix.
fn strip_release_track(args: &mut Vec<String>) -> Option<String> {
    const VALUE_FLAGS: &[&str] = &[
        "--project",
        "--account",
        "--format",
        "--flatten",
        "--filter",
        "--impersonate-service-account",
    ];
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if VALUE_FLAGS.contains(&a.as_str()) {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else if a == "alpha" || a == "beta" {
            return Some(args.remove(i));
        } else {
            return None;
        }
    }
    None
}

/// `runpool.projects.describe`, from the matched subcommands.
fn command_path(m: &ArgMatches, track: Option<&str>) -> String {
    let mut path = vec!["runpool".to_string()];
    path.extend(track.map(str::to_string));
    let mut cur = m;
    while let Some((name, sub)) = cur.subcommand() {
        path.push(name.to_string());
        cur = sub;
    }
    path.join(".")
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    let track = strip_release_track(&mut args);
    let matches = Cli::command().get_matches_from(&args);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let path = command_path(&matches, track.as_deref());
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Terraform's own error box, printed as Terraform prints it.
            if let Some(d) = e.downcast_ref::<runpool_terraform::Diagnostics>() {
                eprint!("{d}");
                return ExitCode::FAILURE;
            }
            let hint = if api::has_status(&e, "UNAUTHENTICATED") {
                "\nThe server did not accept the stored token (a restarted server forgets old \
                 ones; a deleted or disabled service account or key is refused at once). Please \
                 run:\n\n  $ runpool auth login ACCOUNT\n\n(or `runpool auth \
                 activate-service-account --key-file=FILE` for a service account) to obtain new \
                 credentials."
            } else {
                ""
            };
            eprintln!("ERROR: ({path}) {e:#}{hint}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    if let Some(spec) = &cli.globals.filter {
        // Reject a bad filter before any call is made, not after a write succeeded.
        output::filter(vec![], spec)?;
    }
    let ctx = || -> Result<Ctx> {
        Ok(Ctx {
            globals: cli.globals.clone(),
            config: runpool_client::config::Config::load()?,
        })
    };
    match &cli.command {
        Command::Serve(a) => serve::run(a).await,
        Command::Config(c) => config::run(c),
        Command::Auth(c) => auth::run(c, &cli.globals).await,
        Command::Console(a) => console::run(&ctx()?, a).await,
        Command::Ca => env::run_ca(&ctx()?).await,
        Command::Env => env::run_env(&ctx()?).await,
        Command::Gcloud(c) => gcloud::run(&ctx()?, c).await,
        Command::SampleWorker => run::sample_worker::run().await,
        Command::OciGuard {
            runc,
            root,
            id,
            bundle,
        } => runpool_runtime::oci::guard(runc, root, id, bundle),
        Command::Projects(c) => resourcemanager::projects::run(&ctx()?, c).await,
        Command::Organizations(c) => resourcemanager::organizations::run(&ctx()?, c).await,
        Command::ResourceManager(ResourceManagerCmd::Folders(c)) => {
            resourcemanager::folders::run(&ctx()?, c).await
        }
        Command::ResourceManager(ResourceManagerCmd::OrgPolicies(c)) => {
            resourcemanager::org_policies::run(&ctx()?, c).await
        }
        Command::ResourceManager(ResourceManagerCmd::Tags(c)) => {
            resourcemanager::tags::run(&ctx()?, c).await
        }
        Command::OrgPolicies(c) => resourcemanager::org_policies::run_v2(&ctx()?, c).await,
        Command::Iam(IamCmd::Roles(c)) => iam::roles::run(&ctx()?, c).await,
        Command::Iam(IamCmd::ServiceAccounts(c)) => iam::service_accounts::run(&ctx()?, c).await,
        Command::Iam(IamCmd::Policies(c)) => iam::deny_policies::run(&ctx()?, c).await,
        Command::Run(c) => run::worker_pools::run(&ctx()?, c).await,
        Command::Terraform(c) => run::terraform::run(&ctx()?, c).await,
        Command::PolicyIntelligence(c) => intelligence::troubleshoot::run(&ctx()?, c).await,
        Command::Logging(c) => run::logs::run_logging(&ctx()?, c).await,
        Command::Images(c) => run::images::run(&ctx()?, c).await,
        Command::Recommender(c) => intelligence::recommender::run(&ctx()?, c).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn release_track_is_stripped_only_in_command_position() {
        let mut a = args("runpool beta projects describe p");
        assert_eq!(strip_release_track(&mut a).as_deref(), Some("beta"));
        assert_eq!(a, args("runpool projects describe p"));
        let mut a = args("runpool --project beta projects describe beta");
        assert_eq!(strip_release_track(&mut a), None);
        let mut a = args("runpool -q alpha iam roles list");
        assert_eq!(strip_release_track(&mut a).as_deref(), Some("alpha"));
    }

    #[test]
    fn command_path_names_the_leaf() {
        let m = Cli::command()
            .try_get_matches_from(args(
                "runpool resource-manager org-policies describe c --project p",
            ))
            .unwrap();
        assert_eq!(
            command_path(&m, None),
            "runpool.resource-manager.org-policies.describe"
        );
        let m = Cli::command()
            .try_get_matches_from(args("runpool projects describe p"))
            .unwrap();
        assert_eq!(
            command_path(&m, Some("beta")),
            "runpool.beta.projects.describe"
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
