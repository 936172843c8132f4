//! Runpool's own endpoint for container images: `POST /runpool/v1/images:import` takes a
//! `docker save` tarball or an OCI image layout (a tar, optionally gzipped) as the raw request
//! body and records its images in the server's image store (`?tag=NAME:TAG` names a single
//! image, replacing the tags the archive gives).
//!
//! Importing is the machine owner's act, not a Google API call: like minting a simulated
//! user's token it needs the server's admin credential as the bearer token. The body is
//! streamed to the store's staging directory, so an image is not held in memory and is not
//! bound by the JSON body limit.

use crate::AppState;
use crate::wire::{ApiError, ApiResult, Params, bearer};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use http_body_util::BodyExt;
use runpool_control::Error;
use serde_json::json;
use tokio::io::AsyncWriteExt;

pub fn router() -> Router<AppState> {
    Router::new().route("/runpool/v1/images:import", post(import))
}

async fn import(State(s): State<AppState>, headers: HeaderMap, p: Params, body: Body) -> ApiResult {
    s.control
        .require_admin(bearer(&headers), "Importing an image")?;
    let store = s
        .control
        .image_store()
        .ok_or_else(|| Error::failed_precondition("This server keeps no images."))?;
    let staging = store.staging().map_err(cannot_stage)?;
    let mut file = tokio::fs::File::create(staging.upload_path())
        .await
        .map_err(cannot_stage)?;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Error::invalid(format!("The upload was interrupted: {e}")))?;
        if let Ok(data) = frame.into_data() {
            file.write_all(&data).await.map_err(cannot_stage)?;
        }
    }
    file.flush().await.map_err(cannot_stage)?;
    drop(file);
    let tag = p.0.get("tag").cloned();
    let control = s.control.clone();
    // Unpacking layers is file work: off the async workers.
    let imported = tokio::task::spawn_blocking(move || {
        let store = control.image_store().expect("checked above");
        store.import(staging, tag.as_deref()).map_err(Error::from)
    })
    .await
    .map_err(|e| Error::internal(format!("The import failed: {e}")))??;
    Ok(axum::Json(json!({ "images": imported })).into_response())
}

fn cannot_stage(e: std::io::Error) -> ApiError {
    ApiError(Error::internal(format!("Cannot store the upload: {e}")))
}
