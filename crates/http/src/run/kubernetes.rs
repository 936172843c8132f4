//! `GET /runpool/v1/kubernetes/manifests[?endpoint=URL]`, for the admin credential's holder:
//! the Kubernetes objects that would run every pool's instances as pods
//! (`runpool_control::run::kubernetes`, `docs/kubernetes.md`), as one `v1` `List`. `endpoint`
//! is Runpool's address as the cluster reaches it (default: this server's).

use crate::proxy::Proxy;
use crate::wire::{ApiResult, bearer};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use runpool_control::Control;
use runpool_control::run::kubernetes::CA_PATH;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

pub fn router(control: Arc<Control>, proxy: Arc<Proxy>) -> Router {
    Router::new()
        .route(
            "/runpool/v1/kubernetes/manifests",
            axum::routing::get(manifests),
        )
        .with_state((control, proxy))
}

async fn manifests(
    State((control, proxy)): State<(Arc<Control>, Arc<Proxy>)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    control.require_admin(bearer(&headers), "read the Kubernetes manifests")?;
    let endpoint = q
        .get("endpoint")
        .cloned()
        .unwrap_or_else(|| control.endpoint().to_string());
    let vars = runpool_runtime::proxy_env(&endpoint, CA_PATH);
    let items = control.kubernetes_manifests(proxy.ca.cert_pem(), &endpoint, &vars);
    Ok(axum::Json(json!({"apiVersion": "v1", "kind": "List", "items": items})).into_response())
}
