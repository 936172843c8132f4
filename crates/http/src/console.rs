//! The web console: its embedded assets under `/console/`, and the one-time sign-in codes
//! that let `runpool console` sign a browser in as the CLI's account.
//!
//! Sign-in: the CLI, authenticated as its account, asks `POST /runpool/v1/console/codes` for
//! a code (valid [`runpool_control::iam::signin::CODE_SECONDS`], usable once) and prints `ENDPOINT/console/#code=CODE`. The
//! page trades the code at `POST /runpool/v1/console/sessions` for a fresh access and refresh
//! token of that same principal, and from then on calls the public REST APIs with it, as any
//! client does: IAM decides every call. The fragment never reaches the server's logs or a
//! `Referer`. When the CLI also holds the server's admin credential, it may attach it to the
//! code, and the page gets it back with the session so that it can switch to another
//! simulated user through `POST /runpool/v1/tokens`, exactly as `runpool auth login` does.
//!
//! The codes themselves, and who may have one, are `control`'s (`runpool_control::iam::signin`).

use crate::AppState;
use crate::wire::{self, ApiResult, Auth};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(index))
        .route("/console/{*path}", get(asset))
        .route("/runpool/v1/console/codes", post(new_code))
        .route("/runpool/v1/console/sessions", post(new_session))
}

/// The console may load only its own files and talk only to this server.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn serve(a: &'static runpool_console::Asset) -> Response {
    let mut resp = (StatusCode::OK, a.bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if a.immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if a.content_type.starts_with("text/html") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    resp
}

async fn index() -> Response {
    serve(runpool_console::index())
}

/// A built file; any other path under `/console/` is the page itself (the console routes
/// with the URL fragment, so this only matters for a mistyped link).
async fn asset(Path(path): Path<String>) -> Response {
    match runpool_console::get(&path) {
        Some(a) => serve(a),
        None if path.starts_with("assets/") => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Not found",
        )
            .into_response(),
        None => serve(runpool_console::index()),
    }
}

/// `POST /runpool/v1/console/codes`: a one-time sign-in code for the caller. Body:
/// `{"adminCredential": "..."}` (optional; must be the server's, so the session may switch
/// users).
async fn new_code(
    State(s): State<AppState>,
    Auth(c): Auth,
    wire::Body(body): wire::Body<Value>,
) -> ApiResult {
    let admin = body.get("adminCredential").and_then(Value::as_str);
    let code = s.control.issue_signin_code(&c, admin)?;
    let url = format!("{}/console/#code={code}", s.control.endpoint());
    Ok(axum::Json(json!({
        "code": code,
        "url": url,
        "principal": c.member,
        "expiresIn": runpool_control::iam::signin::CODE_SECONDS,
    }))
    .into_response())
}

/// `POST /runpool/v1/console/sessions` `{"code": "..."}`: trade a sign-in code, once, for a
/// session of its principal. Answers as an OAuth token endpoint does (`invalid_grant` for a
/// used, expired or unknown code).
async fn new_session(State(s): State<AppState>, wire::Body(body): wire::Body<Value>) -> Response {
    let code = body.get("code").and_then(Value::as_str).unwrap_or_default();
    let refuse = |d: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant", "error_description": d})),
        )
            .into_response()
    };
    let Some(session) = s.control.redeem_signin_code(code) else {
        return refuse(
            "This sign-in link was already used, has expired, or was issued by another server. \
             Run `runpool console` again for a new one.",
        );
    };
    match session {
        Ok(p) => {
            let mut v = serde_json::to_value(&p.token).unwrap_or_default();
            v["principal"] = json!(p.member);
            if let Some(a) = p.admin_credential {
                v["admin_credential"] = json!(a);
            }
            let mut resp = axum::Json(v).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => refuse(&e.message),
    }
}
