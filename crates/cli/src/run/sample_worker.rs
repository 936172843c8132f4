//! The stand-in for Google's sample worker pool image
//! (`us-docker.pkg.dev/cloudrun/container/worker-pool`, the seed page's example), which the
//! runtime runs for a pool of that image with no command (`runpool sample-worker`, hidden).
//!
//! It does what a worker on Cloud Run does with its service identity: takes its credentials
//! from the metadata server with Google's own auth library (`google-cloud-auth`'s metadata
//! server credentials, the ones Application Default Credentials pick on Cloud Run), reads who
//! it runs as, and on a timer calls one Google API as that identity with Google's own client
//! (`projects.get` on its own project through `google-cloud-resourcemanager-v3`, by Google's
//! host name as its environment routes it), logging the answer: allowed, or Google's denial.
//! A grant or a revocation shows in its next line, with no redeploy. It stops cleanly at
//! SIGTERM, as Cloud Run asks of an instance being shut down.

use anyhow::{Context, Result};
use google_cloud_resourcemanager_v3::client::Projects;
use std::time::Duration;

/// Seconds between two calls, unless the container sets `SAMPLE_INTERVAL_SECONDS`.
const INTERVAL: u64 = 10;

/// One value from the metadata server (`GCE_METADATA_HOST`, as Google's libraries find it).
async fn metadata(path: &str) -> Result<String> {
    let host =
        std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| "metadata.google.internal".into());
    let url = format!("http://{host}/computeMetadata/v1/{path}");
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(&url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("reading {url}"))?;
    Ok(resp.text().await?)
}

/// `runpool sample-worker`
pub async fn run() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let email = metadata("instance/service-accounts/default/email").await?;
    let project = metadata("project/project-id").await?;
    let pool = std::env::var("CLOUD_RUN_WORKER_POOL").unwrap_or_default();
    let revision = std::env::var("CLOUD_RUN_REVISION").unwrap_or_default();
    println!(
        "Worker pool {pool} (revision {revision}) is running as service account {email} in project {project}"
    );
    let credentials = google_cloud_auth::credentials::mds::Builder::default()
        .build()
        .context("metadata server credentials")?;
    let projects = Projects::builder()
        .with_credentials(credentials)
        .build()
        .await
        .context("a Resource Manager client")?;
    let every = std::env::var("SAMPLE_INTERVAL_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(INTERVAL), Duration::from_secs_f64);
    let name = format!("projects/{project}");
    loop {
        let answer = match projects.get_project().set_name(&name).send().await {
            Ok(p) => format!("allowed: {} ({})", p.display_name, p.name),
            Err(e) => match e.status() {
                Some(s) => format!("denied: {}: {}", s.code.name(), s.message),
                None => format!("failed: {e}"),
            },
        };
        println!("As {email}: cloudresourcemanager.googleapis.com projects.get {name} {answer}");
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = term.recv() => {
                println!("Received SIGTERM: stopping");
                return Ok(());
            }
        }
    }
}
