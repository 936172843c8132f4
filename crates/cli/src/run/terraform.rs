//! `terraform plan|apply [PATH]`: the Terraform Google provider's worker pool and identity
//! resources (the `runpool-terraform` crate), with this client's project and credentials.

use crate::Ctx;
use anyhow::Result;
use clap::Args;

#[derive(Debug, clap::Subcommand)]
pub enum TerraformCmd {
    /// Show what `apply` would create or change (nothing is written).
    Plan(TfArgs),
    /// Create or update the configuration's resources.
    Apply(TfArgs),
}

#[derive(Args, Debug)]
pub struct TfArgs {
    /// `[PATH] [-var NAME=VALUE]... [-auto-approve]`, as Terraform takes them.
    #[arg(allow_hyphen_values = true, num_args = 0.., trailing_var_arg = true)]
    pub args: Vec<String>,
}

pub async fn run(ctx: &Ctx, cmd: &TerraformCmd) -> Result<()> {
    let (args, apply) = match cmd {
        TerraformCmd::Plan(a) => (a, false),
        TerraformCmd::Apply(a) => (a, true),
    };
    runpool_terraform::run(&args.args, apply, ctx.project().ok(), ctx.api()).await
}
