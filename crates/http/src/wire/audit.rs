//! Every authenticated call becomes an audit record: this layer gives the request a
//! [`Trace`] (the `Auth` extractor attaches it to the caller, and `control` adds each
//! decision to it), names the call as Google's audit logs name it, and hands the record to
//! the audit log when the answer is ready.

use crate::AppState;
use crate::wire::operation::Op;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use runpool_control::intelligence::audit::{Record, Trace};
use std::sync::Arc;

/// The `google.rpc.Code` of a failed answer, left on the response by `ApiError`.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

/// The resource a call is about, from its path: what follows the API version, without the
/// custom verb (`/v2/projects/p/locations/l/workerPools/w:getIamPolicy` →
/// `projects/p/locations/l/workerPools/w`).
fn resource_of(path: &str) -> String {
    let path = match path.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((id, _)) => format!("{head}/{id}"),
            None => path.to_string(),
        },
        None => path.to_string(),
    };
    let rest = ["/apis/run.googleapis.com/v1/", "/v1/", "/v2/", "/v3/"]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))
        .unwrap_or_default();
    rest.trim_end_matches('/').to_string()
}

pub async fn layer(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if s.control.audit_log().is_none() {
        return next.run(req).await;
    }
    let trace = Arc::new(Trace::default());
    req.extensions_mut().insert(trace.clone());
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    // Only calls made by an authenticated principal are audited.
    let Some(principal) = trace.principal() else {
        return resp;
    };
    // Each route names the method it served (`operation::serves`); what no route names (the
    // token endpoint, the console's files) is not a Google API call.
    let Some(op) = resp.extensions().get::<&'static Op>().copied() else {
        return resp;
    };
    let resource = if op.names_resource {
        resource_of(&path)
    } else {
        String::new()
    };
    let activity = op.activity;
    let failure = resp.extensions().get::<Failure>().cloned();
    let project = resource
        .strip_prefix("projects/")
        .and_then(|r| r.split('/').next())
        .and_then(|p| s.control.project_id_of(p))
        .unwrap_or_default();
    if let Some(log) = s.control.audit_log() {
        let record = Record {
            time: chrono::Utc::now(),
            service_name: op.interface.service.to_string(),
            method_name: op.method_name(),
            resource_name: resource,
            project,
            principal_email: principal,
            workload: trace.workload(),
            decisions: trace.decisions(),
            status_code: failure.as_ref().map(|f| f.code).unwrap_or(0),
            status_message: failure.map(|f| f.message).unwrap_or_default(),
            activity,
        };
        // A change is answered only once its record is on disk: a crash after the answer
        // cannot lose it. Reads are answered at once (their records follow within the
        // writer's next batch).
        if activity {
            let _ = log.record_committed(record).await;
        } else {
            log.record(record);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_the_path_after_the_version() {
        assert_eq!(
            resource_of("/v2/projects/p/locations/us-central1/workerPools"),
            "projects/p/locations/us-central1/workerPools"
        );
        assert_eq!(resource_of("/v3/projects/p:setIamPolicy"), "projects/p");
        assert_eq!(
            resource_of("/apis/run.googleapis.com/v1/namespaces/p/workerpools/w"),
            "namespaces/p/workerpools/w"
        );
        assert_eq!(resource_of("/token"), "");
    }
}
