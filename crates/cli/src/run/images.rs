//! `runpool images import FILE`: hand a `docker save` tarball or an OCI image layout (a tar,
//! optionally gzipped) to the server, which unpacks it into its data dir for
//! `serve --runtime oci`. The server owns the data dir (and runs as the user its files
//! belong to), so the client uploads rather than writing there itself; like `auth login`, it
//! needs the server's admin credential, found the same way.

use crate::Ctx;
use anyhow::{Context, Result};
use clap::Subcommand;
use runpool_client::api::{ApiError, connect_error};
use runpool_client::auth::find_admin_credential;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum ImagesCmd {
    /// Import an image archive (`docker save` output or an OCI image layout tar) under the
    /// tags it names, or under --tag.
    Import {
        /// The archive.
        file: PathBuf,
        /// Record the image as NAME[:TAG] instead of the tags the archive names (the archive
        /// must then hold one image).
        #[arg(long, value_name = "NAME[:TAG]")]
        tag: Option<String>,
        /// File holding the server's admin credential.
        #[arg(long, value_name = "FILE")]
        admin_credential: Option<PathBuf>,
    },
}

pub async fn run(ctx: &Ctx, cmd: &ImagesCmd) -> Result<()> {
    match cmd {
        ImagesCmd::Import {
            file,
            tag,
            admin_credential,
        } => {
            let endpoint = ctx.endpoint();
            let admin = find_admin_credential(admin_credential.as_deref(), &endpoint)?;
            let archive = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("Cannot read {}", file.display()))?;
            // No overall timeout: a large image takes as long as it takes to unpack.
            let http = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?;
            let mut req = http
                .post(format!("{endpoint}/runpool/v1/images:import"))
                .bearer_auth(admin)
                .header("content-type", "application/x-tar")
                .body(archive);
            if let Some(t) = tag {
                req = req.query(&[("tag", t)]);
            }
            let resp = req.send().await.map_err(|e| connect_error(&endpoint, e))?;
            let status = resp.status();
            let text = resp.text().await?;
            if !status.is_success() {
                return Err(ApiError::from_body(status.as_u16(), &text).into());
            }
            let body: Value = serde_json::from_str(&text)?;
            for image in body["images"].as_array().into_iter().flatten() {
                let tags: Vec<&str> = image["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                eprintln!(
                    "Imported image [{}] as [{}].",
                    image["id"].as_str().unwrap_or_default(),
                    tags.join(", ")
                );
            }
            ctx.print_if_asked(&body);
            Ok(())
        }
    }
}
