//! Every authenticated call becomes an audit record: this layer gives the request a
//! [`Trace`] (the `Auth` extractor attaches it to the caller, and `control` adds each
//! decision to it), names the call as Google's audit logs name it, and hands the record to
//! the audit log when the answer is ready.

use crate::AppState;
use axum::extract::{Request, State};
use axum::http::Method;
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

/// (serviceName, methodName, resourceName, activity) of a request, as Cloud Audit Logs name
/// them, e.g. `run.googleapis.com`, `google.cloud.run.v2.WorkerPools.CreateWorkerPool`.
pub fn describe(method: &Method, path: &str) -> Option<(&'static str, String, String, bool)> {
    let (path, verb) = match path.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((id, v)) => (format!("{head}/{id}"), v.to_string()),
            None => (path.to_string(), String::new()),
        },
        None => (path.to_string(), String::new()),
    };
    let path = path.trim_end_matches('/');
    let (service, package, resource) = if let Some(r) = path.strip_prefix("/v3/") {
        if r == "iam" {
            (
                "policytroubleshooter.googleapis.com",
                "google.cloud.policytroubleshooter.iam.v3.PolicyTroubleshooter".to_string(),
                String::new(),
            )
        } else {
            let coll = r.split('/').next().unwrap_or_default();
            let svc = match coll {
                "folders" => "Folders",
                "organizations" => "Organizations",
                "operations" => "Operations",
                _ => "Projects",
            };
            (
                "cloudresourcemanager.googleapis.com",
                format!("google.cloud.resourcemanager.v3.{svc}"),
                r.to_string(),
            )
        }
    } else if let Some(r) = path.strip_prefix("/v2/") {
        if r.starts_with("policies/") {
            (
                "iam.googleapis.com",
                "google.iam.v2.Policies".to_string(),
                r.to_string(),
            )
        } else if r.starts_with("entries") {
            (
                "logging.googleapis.com",
                "google.logging.v2.LoggingServiceV2".to_string(),
                String::new(),
            )
        } else if r.contains("/locations/") {
            (
                "run.googleapis.com",
                "google.cloud.run.v2.WorkerPools".to_string(),
                r.to_string(),
            )
        } else {
            (
                "orgpolicy.googleapis.com",
                "google.cloud.orgpolicy.v2.OrgPolicy".to_string(),
                r.to_string(),
            )
        }
    } else if let Some(r) = path.strip_prefix("/v1/") {
        if r.contains("/recommenders/") || r.contains("/insightTypes/") {
            (
                "recommender.googleapis.com",
                "google.cloud.recommender.v1.Recommender".to_string(),
                r.to_string(),
            )
        } else if matches!(
            verb.as_str(),
            "generateAccessToken" | "generateIdToken" | "signBlob" | "signJwt"
        ) {
            (
                "iamcredentials.googleapis.com",
                "google.iam.credentials.v1.IAMCredentials".to_string(),
                r.to_string(),
            )
        } else {
            (
                "iam.googleapis.com",
                "google.iam.admin.v1.IAM".to_string(),
                r.to_string(),
            )
        }
    } else if let Some(r) = path.strip_prefix("/apis/run.googleapis.com/v1/") {
        (
            "run.googleapis.com",
            "google.cloud.run.v1.WorkerPools".to_string(),
            r.to_string(),
        )
    } else {
        return None;
    };
    // The last collection named in the path, and whether an item of it is named.
    let segs: Vec<&str> = resource.split('/').filter(|s| !s.is_empty()).collect();
    let (coll, item) = if segs.len().is_multiple_of(2) {
        (
            segs.get(segs.len().wrapping_sub(2))
                .copied()
                .unwrap_or_default(),
            true,
        )
    } else {
        (segs.last().copied().unwrap_or_default(), false)
    };
    let mut singular = coll
        .strip_suffix("ies")
        .map(|s| format!("{s}y"))
        .unwrap_or_else(|| coll.trim_end_matches('s').to_string());
    if let Some(first) = singular.get(0..1) {
        singular = first.to_uppercase() + &singular[1..];
    }
    let plural = if coll.is_empty() {
        String::new()
    } else {
        coll[..1].to_uppercase() + &coll[1..]
    };
    let verb_name = if !verb.is_empty() {
        verb[..1].to_uppercase() + &verb[1..]
    } else {
        match (method.as_str(), item) {
            ("GET", true) => format!("Get{singular}"),
            ("GET", false) => format!("List{plural}"),
            ("POST", _) => format!("Create{singular}"),
            ("PATCH", _) => format!("Update{singular}"),
            ("PUT", _) => format!("Replace{singular}"),
            ("DELETE", _) => format!("Delete{singular}"),
            _ => method.to_string(),
        }
    };
    let reads = matches!(
        verb.as_str(),
        "getIamPolicy"
            | "testIamPermissions"
            | "search"
            | "getEffectivePolicy"
            | "troubleshoot"
            | "list"
            | "wait"
    );
    let activity = method != Method::GET && !reads;
    Some((
        service,
        format!("{package}.{verb_name}"),
        resource,
        activity,
    ))
}

pub async fn layer(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if s.control.audit_log().is_none() {
        return next.run(req).await;
    }
    let trace = Arc::new(Trace::default());
    req.extensions_mut().insert(trace.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    // Only calls made by an authenticated principal are audited.
    let Some(principal) = trace.principal() else {
        return resp;
    };
    let Some((service, method_name, resource, activity)) = describe(&method, &path) else {
        return resp;
    };
    let failure = resp.extensions().get::<Failure>().cloned();
    let project = resource
        .strip_prefix("projects/")
        .and_then(|r| r.split('/').next())
        .and_then(|p| s.control.project_id_of(p))
        .unwrap_or_default();
    if let Some(log) = s.control.audit_log() {
        let record = Record {
            time: chrono::Utc::now(),
            service_name: service.to_string(),
            method_name,
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
    fn calls_are_named_as_audit_logs_name_them() {
        let d = |m: Method, p: &str| describe(&m, p);
        assert_eq!(
            d(
                Method::POST,
                "/v2/projects/p/locations/us-central1/workerPools"
            ),
            Some((
                "run.googleapis.com",
                "google.cloud.run.v2.WorkerPools.CreateWorkerPool".into(),
                "projects/p/locations/us-central1/workerPools".into(),
                true
            ))
        );
        assert_eq!(
            d(Method::GET, "/v3/projects/p").unwrap().1,
            "google.cloud.resourcemanager.v3.Projects.GetProject"
        );
        let (_, n, r, a) = d(Method::POST, "/v3/projects/p:setIamPolicy").unwrap();
        assert_eq!(
            (n.as_str(), r.as_str(), a),
            (
                "google.cloud.resourcemanager.v3.Projects.SetIamPolicy",
                "projects/p",
                true
            )
        );
        assert!(
            !d(Method::POST, "/v3/projects/p:getIamPolicy").unwrap().3,
            "a read"
        );
        assert_eq!(
            d(Method::GET, "/v1/projects/p/serviceAccounts").unwrap().1,
            "google.iam.admin.v1.IAM.ListServiceAccounts"
        );
        assert_eq!(
            d(
                Method::POST,
                "/v1/projects/-/serviceAccounts/a@b:generateAccessToken"
            )
            .unwrap()
            .0,
            "iamcredentials.googleapis.com"
        );
        assert_eq!(
            d(Method::GET, "/v2/projects/p/policies/c:getEffectivePolicy")
                .unwrap()
                .1,
            "google.cloud.orgpolicy.v2.OrgPolicy.GetEffectivePolicy"
        );
        assert_eq!(describe(&Method::POST, "/token"), None);
    }
}
