//! Every route names the Google API methods it serves where it is defined: the HTTP method,
//! the custom verb (`:setIamPolicy`) and the RPC (`google.cloud.run.v2.WorkerPools.CreateWorkerPool`
//! of `run.googleapis.com`). [`serves`] puts the method a request reached on its response, so
//! the audit log names calls from the routes themselves; a custom verb a route does not list
//! is answered as Google answers an unknown method, before any handler runs.

use crate::AppState;
use crate::wire::ApiError;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use runpool_control::Error;

/// A Google API interface: the service that serves it and its protobuf name.
#[derive(Debug)]
pub struct Interface {
    pub service: &'static str,
    pub name: &'static str,
}

/// One RPC of an interface, as one route serves it.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    /// `GET`, `POST`, …
    pub http: &'static str,
    /// The custom verb after `:` in the path, or `""`.
    pub verb: &'static str,
    pub interface: &'static Interface,
    /// `CreateWorkerPool`
    pub rpc: &'static str,
    /// A change (an Admin Activity audit record) rather than a read (Data Access).
    pub activity: bool,
    /// Whether the path names the resource the call is about (`projects/p/...`); the
    /// troubleshooter and log reads name none.
    pub names_resource: bool,
}

impl Op {
    /// A method that changes something.
    pub const fn write(
        http: &'static str,
        verb: &'static str,
        interface: &'static Interface,
        rpc: &'static str,
    ) -> Op {
        Op {
            http,
            verb,
            interface,
            rpc,
            activity: true,
            names_resource: true,
        }
    }

    /// A method that only reads.
    pub const fn read(
        http: &'static str,
        verb: &'static str,
        interface: &'static Interface,
        rpc: &'static str,
    ) -> Op {
        Op {
            activity: false,
            ..Op::write(http, verb, interface, rpc)
        }
    }

    /// A read about no one resource of the path.
    pub const fn query(
        http: &'static str,
        verb: &'static str,
        interface: &'static Interface,
        rpc: &'static str,
    ) -> Op {
        Op {
            names_resource: false,
            ..Op::read(http, verb, interface, rpc)
        }
    }

    /// `google.cloud.run.v2.WorkerPools.CreateWorkerPool`
    pub fn method_name(&self) -> String {
        format!("{}.{}", self.interface.name, self.rpc)
    }
}

/// The three IAM policy methods an interface's resource has (`:getIamPolicy` by `get_http`:
/// POST on most APIs, GET on Cloud Run's).
pub const fn iam_ops(interface: &'static Interface, get_http: &'static str) -> [Op; 3] {
    [
        Op::read(get_http, "getIamPolicy", interface, "GetIamPolicy"),
        Op::write("POST", "setIamPolicy", interface, "SetIamPolicy"),
        Op::read(
            "POST",
            "testIamPermissions",
            interface,
            "TestIamPermissions",
        ),
    ]
}

/// The custom verb of a path: what follows `:` in its last segment.
pub fn verb_of(path: &str) -> &str {
    let last = path.rsplit('/').next().unwrap_or_default();
    last.split_once(':').map(|(_, v)| v).unwrap_or_default()
}

/// A route's handlers, with the methods they serve named (in one or more lists: a resource's
/// own methods and its IAM policy methods, say).
pub fn serves(
    ops: &'static [&'static [Op]],
    handlers: MethodRouter<AppState>,
) -> MethodRouter<AppState> {
    handlers.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| name_call(ops, req, next),
    ))
}

async fn name_call(ops: &'static [&'static [Op]], req: Request, next: Next) -> Response {
    let verb = verb_of(req.uri().path()).to_string();
    let mut all = ops.iter().flat_map(|o| o.iter());
    let op = all
        .clone()
        .find(|o| o.http == req.method().as_str() && o.verb == verb);
    let Some(op) = op else {
        // An HTTP method the route does not serve is the router's to refuse (405).
        if !all.any(|o| o.http == req.method().as_str()) {
            return next.run(req).await;
        }
        let message = if verb.is_empty() {
            "Method not found.".to_string()
        } else {
            format!("Method '{verb}' not found.")
        };
        return ApiError(Error::not_found(message)).into_response();
    };
    // The method is known before any handler runs: `Auth` reads it for the enablement rule.
    let mut req = req;
    req.extensions_mut().insert(op);
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(op);
    resp
}
