//! OAuth 2.0 and OpenID Connect, as Google's token endpoint and certificate URLs answer:
//! the token endpoint (JWT-bearer and refresh grants), `tokeninfo`, the ID-token keys as JWKS
//! and as PEM, per-account certificates, and the discovery document. Plus Runpool's own
//! endpoint for minting a simulated user's token.

use crate::AppState;
use crate::wire::{self, ApiResult, Params};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use runpool_control::iam::auth::OAuthError;
use serde_json::{Map, Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/token", post(token))
        .route("/oauth2/v4/token", post(token))
        .route("/revoke", post(revoke))
        .route("/tokeninfo", get(tokeninfo).post(tokeninfo))
        .route("/oauth2/v3/tokeninfo", get(tokeninfo).post(tokeninfo))
        .route("/oauth2/v3/certs", get(jwks))
        .route("/oauth2/v1/certs", get(pem_certs))
        .route("/robot/v1/metadata/x509/{email}", get(account_certs))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/runpool/v1/tokens", post(mint_token))
}

fn oauth_error(e: OAuthError) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(e)).into_response()
}

/// `POST /token`, form-encoded as Google's libraries send it.
/// The token endpoint's parameters: a form, as the OAuth 2.0 spec has them, or a JSON object,
/// which Google's endpoint also takes (and Google's Rust auth library sends).
fn token_params(body: &[u8]) -> Vec<(String, String)> {
    match serde_json::from_slice::<Map<String, Value>>(body) {
        Ok(m) => m
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
            .collect(),
        Err(_) => serde_urlencoded::from_bytes(body).unwrap_or_default(),
    }
}

async fn token(State(s): State<AppState>, body: axum::body::Bytes) -> Response {
    let form = token_params(&body);
    let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    let err = |error: &'static str, d: String| {
        oauth_error(OAuthError {
            error,
            error_description: d,
        })
    };
    let result = match get("grant_type") {
        Some("refresh_token") => s.control.refresh(get("refresh_token").unwrap_or_default()),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => match get("assertion") {
            Some(a) => s.control.jwt_bearer(a),
            None => {
                return err(
                    "invalid_request",
                    "Missing required parameter: assertion".into(),
                );
            }
        },
        Some(other) => {
            return err(
                "unsupported_grant_type",
                format!("Invalid grant_type: {other}"),
            );
        }
        None => {
            return err(
                "invalid_request",
                "Missing required parameter: grant_type".into(),
            );
        }
    };
    match result {
        Ok(t) if t.id_token.is_some() => {
            axum::Json(json!({ "id_token": t.id_token })).into_response()
        }
        Ok(t) => axum::Json(t).into_response(),
        Err(e) => oauth_error(e),
    }
}

/// `POST /revoke?token=` (or `token` in the form), as Google's libraries call it: `{}`, or
/// 400 `invalid_token` for a token that is not live.
async fn revoke(State(s): State<AppState>, p: Params, body: axum::body::Bytes) -> Response {
    let form = token_params(&body);
    let token = form
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| p.str("token"));
    match s.control.revoke(token) {
        Ok(()) => axum::Json(json!({})).into_response(),
        Err(e) => oauth_error(e),
    }
}

/// `tokeninfo?access_token=` (or a bearer header) and `tokeninfo?id_token=`.
async fn tokeninfo(State(s): State<AppState>, p: Params, headers: HeaderMap) -> Response {
    let invalid = || {
        oauth_error(OAuthError {
            error: "invalid_token",
            error_description: "Invalid Value".into(),
        })
    };
    if let Some(id) = p.get("id_token") {
        return match s.control.verify_id_token(id) {
            Ok(claims) => {
                // tokeninfo answers every claim as a string, as Google's does.
                let strings: Map<String, Value> = claims
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            Value::String(
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string()),
                            ),
                        )
                    })
                    .collect();
                axum::Json(Value::Object(strings)).into_response()
            }
            Err(_) => invalid(),
        };
    }
    let token = p.get("access_token").or_else(|| wire::bearer(&headers));
    match s.control.token_info(token.unwrap_or_default()) {
        Some((member, expires_in)) => {
            let email = member.split_once(':').map(|(_, e)| e).unwrap_or_default();
            // A service account's OAuth client is its unique id, as Google answers.
            let client = s
                .control
                .unique_id_of(email)
                .unwrap_or_else(|| email.to_string());
            axum::Json(json!({
                "azp": client, "aud": client, "sub": client, "email": email, "email_verified": "true",
                "scope": "https://www.googleapis.com/auth/cloud-platform",
                "expires_in": expires_in.to_string(),
                "exp": (chrono::Utc::now().timestamp() + expires_in).to_string(),
                "access_type": "online",
            }))
            .into_response()
        }
        None => invalid(),
    }
}

async fn jwks(State(s): State<AppState>) -> Response {
    let keys: Vec<Value> = s
        .control
        .id_token_keys()
        .into_iter()
        .map(|(kid, k)| json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": k.n, "e": k.e}))
        .collect();
    axum::Json(json!({ "keys": keys })).into_response()
}

fn pem_map(keys: Vec<(String, runpool_control::base::crypto::PublicKey)>) -> Response {
    let map: Map<String, Value> = keys
        .into_iter()
        .map(|(kid, k)| (kid, Value::String(k.cert_pem)))
        .collect();
    axum::Json(Value::Object(map)).into_response()
}

async fn pem_certs(State(s): State<AppState>) -> Response {
    pem_map(s.control.id_token_keys())
}

async fn account_certs(State(s): State<AppState>, Path(email): Path<String>) -> ApiResult {
    match s.control.account_certs(&email) {
        Some(keys) => Ok(pem_map(keys)),
        None => Err(runpool_control::Error::not_found(format!(
            "Service account {email} does not exist."
        ))
        .into()),
    }
}

async fn discovery(State(s): State<AppState>) -> Response {
    let e = s.control.endpoint();
    axum::Json(json!({
        "issuer": "https://accounts.google.com",
        "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
        "token_endpoint": format!("{e}/token"),
        "userinfo_endpoint": "https://openidconnect.googleapis.com/v1/userinfo",
        "revocation_endpoint": "https://oauth2.googleapis.com/revoke",
        "jwks_uri": format!("{e}/oauth2/v3/certs"),
        "response_types_supported": ["code", "token", "id_token", "code token", "code id_token", "token id_token", "code token id_token", "none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "sub", "azp"],
        "grant_types_supported": ["refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
    }))
    .into_response()
}

/// Runpool's own endpoint: mint a simulated user's token, for the admin credential's holder.
async fn mint_token(
    State(s): State<AppState>,
    headers: HeaderMap,
    wire::Body(body): wire::Body<Value>,
) -> ApiResult {
    let principal = body
        .get("principal")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let t = s
        .control
        .mint_user_token(wire::bearer(&headers), principal)?;
    Ok(axum::Json(t).into_response())
}
