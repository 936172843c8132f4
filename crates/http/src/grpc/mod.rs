//! gRPC for every API Runpool serves, by transcoding, as Google's own front ends (ESPv2) and
//! grpc-gateway do: a gRPC call's message is turned into the REST request its method's
//! `google.api.http` rule describes, served by the REST router itself (authentication,
//! rules, audit and all), and the REST answer is turned back into the method's response
//! message, or into Google's gRPC status (`grpc-status`, `grpc-message`, and
//! `grpc-status-details-bin` with the same `google.rpc.Status` and `ErrorInfo` the REST body
//! carries). So a REST method is a gRPC method for free and no rule is written twice.
//!
//! Messages are read by descriptor (`runpool-googleapis`, compiled from Google's `.proto`
//! files), and answers written from their JSON straight as protobuf ([`transcode`]); tonic
//! does the framing, size limits and status trailers. Served on the
//! API port in plaintext HTTP/2 (h2c) and on every proxy tunnel over TLS.

mod codec;
mod rule;
mod transcode;

use crate::wire::{MAX_BODY, operation::Op};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use codec::DynamicCodec;
use prost_reflect::{DynamicMessage, MethodDescriptor, Value};
use rule::Binding;
use std::collections::HashMap;
use std::sync::LazyLock;
use tonic::Status;
use tower::ServiceExt as _;

/// The REST router the gateway calls.
#[derive(Clone)]
pub struct Gateway {
    rest: Router,
}

impl Gateway {
    pub fn new(rest: Router) -> Gateway {
        Gateway { rest }
    }
}

/// Middleware: a gRPC request goes to the gateway, anything else on through.
pub async fn layer(State(gateway): State<Gateway>, req: Request, next: Next) -> Response {
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t == "application/grpc" || t.starts_with("application/grpc+proto"));
    if !grpc {
        return next.run(req).await;
    }
    let Some(method) = methods().get(req.uri().path()) else {
        return Status::unimplemented(format!(
            "Method not found: {}",
            req.uri().path().trim_start_matches('/')
        ))
        .into_http();
    };
    let authority = req.uri().authority().map(|a| a.to_string()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
    });
    let call = Call {
        method,
        rest: gateway.rest.clone(),
        authority,
    };
    let resp = tonic::server::Grpc::new(DynamicCodec {
        input: method.desc.input(),
    })
    .max_decoding_message_size(MAX_BODY)
    .unary(call, req)
    .await;
    too_large(&resp)
        .map(|found| {
            Status::resource_exhausted(format!(
                "Received message larger than max ({found} vs. {MAX_BODY})"
            ))
            .into_http()
        })
        .unwrap_or_else(|| resp.map(axum::body::Body::new))
}

/// tonic refuses a message over the limit with OUT_OF_RANGE; gRPC's own servers (and so
/// Google's) answer RESOURCE_EXHAUSTED. The size found, if that is the answer.
fn too_large<B>(resp: &axum::http::Response<B>) -> Option<String> {
    let h = resp.headers();
    if h.get("grpc-status")?.as_bytes() != b"11" {
        return None;
    }
    let message = h.get("grpc-message")?.to_str().ok()?;
    let found = message.split("found%20").nth(1)?.split("%20").next()?;
    Some(found.to_string())
}

/// A served method: its descriptor and the REST bindings its rule gives, in order.
struct Method {
    desc: MethodDescriptor,
    bindings: Vec<Binding>,
}

/// `google.longrunning.Operations` is a mixin: each API binds it to its own paths in its
/// service configuration (`http.rules`), not in `operations.proto`. These are the bindings of
/// the APIs Runpool serves whose operations can be read: Cloud Run Admin API v2
/// (`run_v2.yaml`) and Resource Manager v3 (`cloudresourcemanager_v3.yaml`). Their name
/// patterns do not overlap, so one list serves every host. Service Usage's
/// (`serviceusage_v1.yaml`, `/v1/{name=operations/*}`) names its operations as Resource
/// Manager does, and one operation store answers both, so the `operations/**` binding is
/// its too.
const OPERATIONS: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "ListOperations",
        "GET",
        "/v2/{name=projects/*/locations/*}/operations",
        None,
    ),
    (
        "GetOperation",
        "GET",
        "/v2/{name=projects/*/locations/*/operations/*}",
        None,
    ),
    ("GetOperation", "GET", "/v3/{name=operations/**}", None),
    (
        "DeleteOperation",
        "DELETE",
        "/v2/{name=projects/*/locations/*/operations/*}",
        None,
    ),
    (
        "WaitOperation",
        "POST",
        "/v2/{name=projects/*/locations/*/operations/*}:wait",
        Some("*"),
    ),
];

/// IAM's deprecated `signBlob` and `signJwt` share their REST paths with IAM Credentials'
/// methods of the same names (the host tells them apart on Google); Runpool's routes serve
/// IAM Credentials', so these two are not transcoded there.
const SHADOWED: &[&str] = &[
    "google.iam.admin.v1.IAM.SignBlob",
    "google.iam.admin.v1.IAM.SignJwt",
];

/// Every served method by its gRPC path (`/package.Service/Method`), built on first use.
fn methods() -> &'static HashMap<String, Method> {
    static METHODS: LazyLock<HashMap<String, Method>> = LazyLock::new(|| {
        let pool = runpool_googleapis::pool();
        let http = pool
            .get_extension_by_name("google.api.http")
            .expect("google.api.http is in the pool");
        let mut out = HashMap::new();
        for name in runpool_googleapis::SERVICES {
            let service = pool
                .get_service_by_name(name)
                .expect("every served service is in the pool");
            for desc in service.methods() {
                let mut bindings: Vec<Binding> = OPERATIONS
                    .iter()
                    .filter(|(m, ..)| *name == "google.longrunning.Operations" && *m == desc.name())
                    .map(|(_, verb, path, body)| {
                        Binding::new(
                            verb.parse().expect("an HTTP method"),
                            path,
                            body.map(str::to_string),
                        )
                    })
                    .collect::<Result<_, _>>()
                    .expect("the operations bindings parse");
                let options = desc.options();
                if bindings.is_empty()
                    && !SHADOWED.contains(&desc.full_name())
                    && options.has_extension(&http)
                    && let Value::Message(rule) = &*options.get_extension(&http)
                {
                    bindings = Binding::from_rule(rule).expect("Google's http rules parse");
                }
                out.insert(
                    format!("/{name}/{}", desc.name()),
                    Method { desc, bindings },
                );
            }
        }
        out
    });
    &METHODS
}

/// One gRPC call, answered through the REST router.
struct Call {
    method: &'static Method,
    rest: Router,
    authority: Option<String>,
}

impl tonic::server::UnaryService<DynamicMessage> for Call {
    /// The response message, encoded.
    type Response = Vec<u8>;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<tonic::Response<Vec<u8>>, Status>> + Send>>;

    fn call(&mut self, request: tonic::Request<DynamicMessage>) -> Self::Future {
        let method = self.method;
        let rest = self.rest.clone();
        let authority = self.authority.clone();
        Box::pin(async move {
            let (metadata, extensions, msg) = request.into_parts();
            let req = rest_request(method, &msg, metadata, authority)?;
            let mut req = req;
            *req.extensions_mut() = extensions;
            let resp = crate::wire::AS_VALUE
                .scope((), rest.oneshot(req))
                .await
                .unwrap_or_else(|e| match e {});
            answer(method, resp).await.map(tonic::Response::new)
        })
    }
}

/// The REST request for a gRPC call: the first binding the message's path fields fit, the
/// call's metadata as headers (the bearer token among them), JSON in and out.
fn rest_request(
    method: &Method,
    msg: &DynamicMessage,
    metadata: tonic::metadata::MetadataMap,
    authority: Option<String>,
) -> Result<Request, Status> {
    let mut refused = None;
    let rest = method
        .bindings
        .iter()
        .find_map(|b| {
            b.rest(msg)
                .map_err(|e| refused = refused.take().or(Some(e)))
                .ok()
        })
        .ok_or_else(|| match refused {
            Some(e) => Status::invalid_argument(format!(
                "Invalid resource field value in the request: {} {:?} is not a name {} takes.",
                e.field,
                e.value,
                method.desc.full_name()
            )),
            None => Status::unimplemented(format!(
                "Method {} is not implemented by Runpool.",
                method.desc.full_name()
            )),
        })?;
    let body = match &rest.body {
        Some(json) => axum::body::Body::from(serde_json::to_vec(json).unwrap_or_default()),
        None => axum::body::Body::empty(),
    };
    let mut req = Request::new(body);
    *req.method_mut() = rest.method.clone();
    // Enums as numbers, which the response message reads as well as names: the REST side
    // then has no names to write (as Google's own REST clients ask).
    let sep = if rest.path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    *req.uri_mut() = format!(
        "{}{sep}%24alt=json%3Benum-encoding%3Dint",
        rest.path_and_query
    )
    .parse()
    .map_err(|e| Status::invalid_argument(format!("Invalid request path: {e}")))?;
    let headers = req.headers_mut();
    for (name, value) in metadata.into_headers().iter() {
        let n = name.as_str();
        let transport = n.starts_with("grpc-")
            || n.ends_with("-bin")
            || matches!(n, "te" | "content-type" | "content-length");
        if !transport {
            headers.append(name.clone(), value.clone());
        }
    }
    if rest.body.is_some() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(host) = authority.and_then(|a| HeaderValue::from_str(&a).ok()) {
        headers.insert(header::HOST, host);
    }
    Ok(req)
}

/// The method's response message (encoded) from a REST answer, or Google's status from its
/// error.
async fn answer(method: &Method, mut resp: Response) -> Result<Vec<u8>, Status> {
    let status = resp.status();
    let served = resp.extensions().get::<&'static Op>().is_some();
    let output = method.desc.output();
    let invalid = |e: &dyn std::fmt::Display| {
        tracing::error!(method = method.desc.full_name(), error = %e, "a REST answer is not its gRPC response");
        Status::internal("Internal error encountered.")
    };
    let encode =
        |json: &serde_json::Value| transcode::encode(&output, json).map_err(|e| invalid(&e));
    if let Some(crate::wire::Answer(json)) = resp.extensions_mut().remove() {
        return encode(&json);
    }
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .map_err(|e| Status::internal(format!("reading the answer: {e}")))?;
    if status.is_success() {
        if bytes.is_empty() {
            return Ok(vec![]);
        }
        let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| invalid(&e))?;
        return encode(&json);
    }
    if !served && matches!(status.as_u16(), 404 | 405) {
        return Err(Status::unimplemented(format!(
            "Method {} is not implemented by Runpool.",
            method.desc.full_name()
        )));
    }
    Err(status_of(status, &bytes))
}

/// Google's error body as a gRPC status: the code by name, the message, and the body's own
/// `google.rpc.Status` (details and all) as `grpc-status-details-bin`.
fn status_of(http: axum::http::StatusCode, body: &[u8]) -> Status {
    let pool = runpool_googleapis::pool();
    let error = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|mut v| v.get_mut("error").map(serde_json::Value::take));
    let Some(error) = error else {
        return Status::unknown(format!("HTTP {http}"));
    };
    let message = error["message"].as_str().unwrap_or_default().to_string();
    let code = error["status"]
        .as_str()
        .and_then(|s| {
            pool.get_enum_by_name("google.rpc.Code")?
                .get_value_by_name(s)
        })
        .map_or(2, |v| v.number());
    let rpc = serde_json::json!({
        "code": code,
        "message": message,
        "details": error.get("details").cloned().unwrap_or_else(|| serde_json::json!([])),
    });
    let desc = pool
        .get_message_by_name("google.rpc.Status")
        .expect("google.rpc.Status is in the pool");
    match DynamicMessage::deserialize(desc, rpc) {
        Ok(details) => Status::with_details(
            tonic::Code::from(code),
            message,
            prost::Message::encode_to_vec(&details).into(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "error details that google.rpc.Status cannot carry");
            Status::new(tonic::Code::from(code), message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::ReflectMessage as _;
    use runpool_control::Control;
    use runpool_control::base::store::SqliteStore;
    use std::sync::Arc;

    /// Set a (nested) string field.
    fn set(msg: &mut DynamicMessage, path: &[String], value: String) {
        let (first, rest) = path.split_first().unwrap();
        let field = msg.descriptor().get_field_by_name(first).unwrap();
        if rest.is_empty() {
            msg.set_field(&field, Value::String(value));
        } else if let Value::Message(inner) = msg.get_field_mut(&field) {
            set(inner, rest, value);
        }
    }

    /// Each method's first binding, filled in, reaches the REST route that names the same
    /// method (as its audit records do); the methods no route serves are the ones listed.
    #[tokio::test]
    async fn every_served_method_reaches_the_rest_route_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let rest = crate::rest_router(Arc::new(Control::open(Box::new(store)).unwrap()));
        let (mut unserved, mut wrong) = (vec![], vec![]);
        let mut all: Vec<_> = methods().values().collect();
        all.sort_by_key(|m| m.desc.full_name().to_string());
        for method in all {
            let name = method.desc.full_name().to_string();
            let mut reached = false;
            for binding in &method.bindings {
                let mut msg = DynamicMessage::new(method.desc.input());
                for (field, value) in binding.example() {
                    set(&mut msg, &field, value);
                }
                let r = binding.rest(&msg).unwrap();
                let req = Request::builder()
                    .method(r.method)
                    .uri(r.path_and_query)
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from("{}"))
                    .unwrap();
                let resp = rest.clone().oneshot(req).await.unwrap();
                match resp.extensions().get::<&'static Op>() {
                    Some(op) if op.method_name() == name => reached = true,
                    Some(op) => wrong.push((name.clone(), op.method_name())),
                    None => {}
                }
            }
            if !reached {
                unserved.push(name);
            }
        }
        assert_eq!(wrong, Vec::<(String, String)>::new());
        // What the REST surface does not serve either (so gRPC answers UNIMPLEMENTED), and
        // the two methods IAM Credentials' routes shadow.
        let not_served = [
            "google.cloud.orgpolicy.v2.OrgPolicy.CreateCustomConstraint",
            "google.cloud.orgpolicy.v2.OrgPolicy.DeleteCustomConstraint",
            "google.cloud.orgpolicy.v2.OrgPolicy.GetCustomConstraint",
            "google.cloud.orgpolicy.v2.OrgPolicy.ListCustomConstraints",
            "google.cloud.orgpolicy.v2.OrgPolicy.UpdateCustomConstraint",
            "google.cloud.recommender.v1.Recommender.GetInsightTypeConfig",
            "google.cloud.recommender.v1.Recommender.GetRecommenderConfig",
            "google.cloud.recommender.v1.Recommender.MarkInsightAccepted",
            "google.cloud.recommender.v1.Recommender.UpdateInsightTypeConfig",
            "google.cloud.recommender.v1.Recommender.UpdateRecommenderConfig",
            "google.iam.admin.v1.IAM.LintPolicy",
            "google.iam.admin.v1.IAM.QueryAuditableServices",
            "google.iam.admin.v1.IAM.QueryGrantableRoles",
            "google.iam.admin.v1.IAM.QueryTestablePermissions",
            "google.iam.admin.v1.IAM.SignBlob",
            "google.iam.admin.v1.IAM.SignJwt",
            "google.longrunning.Operations.CancelOperation",
        ];
        assert_eq!(unserved, not_served);
    }
}
