//! Cloud Run commands: worker pools and their revisions, logs, images.

pub mod images;
pub mod logs;
pub mod sample_worker;
pub mod terraform;
pub mod worker_pools;

/// `--region`, else the `run/region` property.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RegionArg {
    /// Region in which the resource can be found (overrides `run/region`).
    #[arg(long)]
    pub region: Option<String>,
}
