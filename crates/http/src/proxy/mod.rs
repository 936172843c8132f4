//! Google's host names, through Runpool as an HTTP proxy on its own port. A client told to
//! use it (`HTTPS_PROXY`, see `runpool env`) sends `CONNECT run.googleapis.com:443`; Runpool
//! answers for the Google API hosts it serves only, terminates TLS with a certificate for that
//! host signed by its local CA ([`ca::LocalCa`]), and serves its own router on the tunnel,
//! HTTP/1.1 or HTTP/2 as ALPN settles. Absolute-form plain-HTTP proxy requests
//! (`GET http://run.googleapis.com/...`) are served the same way. Every other host is refused
//! and logged: Runpool is never an open proxy and never reaches the internet.

pub mod ca;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, OnceLock};

/// The Google API hosts Runpool answers for: each service it serves, Cloud Run's regional
/// hosts (`us-central1-run.googleapis.com`) and the OAuth token host.
const HOSTS: &[&str] = &[
    "run.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "orgpolicy.googleapis.com",
    "recommender.googleapis.com",
    "policytroubleshooter.googleapis.com",
    "logging.googleapis.com",
    "oauth2.googleapis.com",
    "serviceusage.googleapis.com",
];

/// Whether Runpool answers for `host` (no port).
pub fn serves_host(host: &str) -> bool {
    HOSTS.contains(&host)
        || host
            .strip_suffix("-run.googleapis.com")
            .is_some_and(|region| {
                !region.is_empty()
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
}

/// What the proxy needs: the CA, and the router the tunnels are served with (set once the
/// router is built, since the router holds the proxy).
pub struct Proxy {
    pub ca: ca::LocalCa,
    app: OnceLock<Router>,
}

impl Proxy {
    pub fn new(ca: ca::LocalCa) -> Arc<Proxy> {
        Arc::new(Proxy {
            ca,
            app: OnceLock::new(),
        })
    }

    /// The router served inside tunnels and to absolute-form requests.
    pub fn set_app(&self, app: Router) {
        let _ = self.app.set(app);
    }
}

fn refuse(host: &str) -> Response {
    tracing::warn!(
        host,
        "proxy request refused: not a Google API host Runpool serves"
    );
    (
        StatusCode::FORBIDDEN,
        format!(
            "Runpool serves only the Google API hosts it emulates; '{host}' is not one, and \
             Runpool never connects to the internet.\n"
        ),
    )
        .into_response()
}

/// In front of every route: a `CONNECT`, or a request naming a host (absolute form), is a
/// proxy request, for a Google API host Runpool serves or refused.
pub async fn layer(State(proxy): State<Arc<Proxy>>, req: Request, next: Next) -> Response {
    let host = req.uri().host().map(str::to_ascii_lowercase);
    if req.method() == Method::CONNECT {
        let Some(host) = host else {
            return (StatusCode::BAD_REQUEST, "CONNECT needs HOST:PORT.\n").into_response();
        };
        if !serves_host(&host) || req.uri().port_u16().is_some_and(|p| p != 443) {
            return refuse(&req.uri().to_string());
        }
        let config = match proxy.ca.server_config(&host) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(host, "no certificate for the tunnel: {e}");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
        let Some(app) = proxy.app.get().cloned() else {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        };
        tokio::spawn(async move {
            let upgraded = match hyper::upgrade::on(req).await {
                Ok(u) => u,
                Err(e) => return tracing::debug!(host, "CONNECT not upgraded: {e}"),
            };
            let io = hyper_util::rt::TokioIo::new(upgraded);
            let tls = match tokio_rustls::TlsAcceptor::from(config).accept(io).await {
                Ok(t) => t,
                // A client that does not trust the CA ends here, at its side's refusal.
                Err(e) => return tracing::debug!(host, "TLS handshake failed: {e}"),
            };
            runpool_listener::serve_stream(tls, app, runpool_listener::Limits::default()).await;
        });
        return StatusCode::OK.into_response();
    }
    // Only HTTP/1 has absolute-form requests: an HTTP/2 request always names its authority,
    // here the API port itself (h2c, a gRPC client's insecure channel, say).
    match host {
        Some(h) if req.version() < axum::http::Version::HTTP_2 && !serves_host(&h) => refuse(&h),
        _ => next.run(req).await,
    }
}

/// `app` behind the proxy: tunnels and absolute-form requests are served by `app` itself, and
/// `GET /runpool/v1/ca` gives the CA certificate and the bundle to trust (public; what
/// `runpool ca` prints and `runpool env` writes).
pub fn serving(app: Router, proxy: Arc<Proxy>) -> Router {
    proxy.set_app(app.clone());
    app.merge(
        Router::new()
            .route("/runpool/v1/ca", axum::routing::get(ca_cert))
            .with_state(proxy.clone()),
    )
    .layer(axum::middleware::from_fn_with_state(proxy, layer))
}

async fn ca_cert(State(proxy): State<Arc<Proxy>>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "path": proxy.ca.cert_path().display().to_string(),
        "pem": proxy.ca.cert_pem(),
        "bundle": proxy.ca.bundle(),
    }))
}
