//! Serving a router on a TCP listener within bounds, whatever clients do.
//!
//! - **A connection cap** below the process's file limit (the soft limit is first raised to
//!   the hard one): at the cap, the connection idle longest is closed to make room, so idle
//!   or abandoned connections can never lock out a client that has something to ask; when
//!   every connection is busy, new ones wait in the kernel's backlog. Reaching the cap is
//!   logged (at most once every ten seconds).
//! - **Timeouts**: request headers must arrive within [`Limits::header_timeout`] of the
//!   connection starting to wait for them, and a connection with no request in flight is
//!   closed after [`Limits::idle_timeout`].
//! - **Graceful shutdown, bounded**: on shutdown no connection is accepted, idle ones close at
//!   once, requests in flight get [`Limits::grace`] to finish, and then the rest are dropped.
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge, "h2c") are both served on the one port.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower_service::Service;

/// The bounds a listener keeps.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most connections open at once; `None`: derived from the file limit.
    pub max_connections: Option<usize>,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: None,
            // hyper times a connection's wait for a request's headers from the moment it
            // starts waiting, so this is also how long a kept-alive HTTP/1.1 connection may
            // sit idle: as long as `idle_timeout`. A slow sender holds a connection no longer,
            // and at the cap it is closed first like any idle one.
            header_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(120),
            grace: Duration::from_secs(10),
        }
    }
}

/// Raise the soft file limit to the hard one and return the connection cap it allows: three
/// quarters of it (at most 256 descriptors kept back for the store, logs, instances and
/// their metadata servers).
pub fn connection_cap() -> usize {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let soft = unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 768;
        }
        if r.rlim_cur < r.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
        r.rlim_cur
    };
    let soft = usize::try_from(soft).unwrap_or(usize::MAX).min(1 << 20);
    soft.saturating_sub((soft / 4).min(256)).max(16)
}

/// One open connection, as the accept loop and the idle watchdog see it.
struct Conn {
    /// Requests in flight.
    busy: AtomicUsize,
    /// When the last request ended (or the connection opened), in ms since the listener
    /// started.
    idle_since: AtomicU64,
    closing: AtomicBool,
    close: Notify,
}

struct Conns {
    start: Instant,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Signalled whenever a connection ends.
    ended: Notify,
}

impl Conns {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Ask the connection idle longest to close; false if every one is busy.
    fn evict_idle(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let victim = open
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0 && !c.closing.load(Ordering::Acquire))
            .min_by_key(|c| c.idle_since.load(Ordering::Acquire));
        match victim {
            Some(c) => {
                c.closing.store(true, Ordering::Release);
                c.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn close_all(&self) {
        for c in self.open.lock().unwrap_or_else(|e| e.into_inner()).values() {
            c.closing.store(true, Ordering::Release);
            c.close.notify_one();
        }
    }

    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Who may use a listener: connections for which `check` fails are answered by `refused`
/// instead of the router (e.g. a metadata server that answers only its own instance).
#[derive(Clone)]
pub struct Admit {
    pub check: Arc<dyn Fn(&tokio::net::TcpStream) -> bool + Send + Sync>,
    pub refused: Router,
}

/// How every connection is served: HTTP/1.1 or HTTP/2 by what the client speaks first, with
/// the header timeout of `limits`.
fn connection_builder(limits: &Limits) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Serve one already-established stream (a proxy's TLS tunnel) with `router`: HTTP/1.1 or
/// HTTP/2 by what the client speaks first, with the header timeout of `limits` (which also
/// closes an HTTP/1.1 client idle that long). Ends when the client closes the stream.
pub async fn serve_stream<S>(stream: S, router: Router, limits: Limits)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let builder = connection_builder(&limits);
    let served = builder.serve_connection(
        TokioIo::new(stream),
        hyper_util::service::TowerToHyperService::new(router),
    );
    if let Err(e) = served.await {
        tracing::debug!("tunnel closed: {e}");
    }
}

/// Serve `router` on `listener` until `shutdown` completes, then finish within the grace
/// period. `name` labels log lines (`api`, `metadata`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    name: &'static str,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_admitting(listener, router, limits, name, None, shutdown).await
}

/// [`serve`], answering connections that `admit` refuses with its `refused` router.
pub async fn serve_admitting(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    name: &'static str,
    admit: Option<Admit>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let cap = limits.max_connections.unwrap_or_else(connection_cap);
    let permits = Arc::new(Semaphore::new(cap));
    let conns = Arc::new(Conns {
        start: Instant::now(),
        open: Mutex::new(HashMap::new()),
        ended: Notify::new(),
    });
    let builder = Arc::new(connection_builder(&limits));
    let mut next_id = 0u64;
    let mut last_cap_log: Option<Instant> = None;
    // The connections' tasks belong to this future: when it ends (or is dropped, as a
    // stopped instance's metadata server is), every connection still open goes with it.
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while tasks.try_join_next().is_some() {}
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let evicted = conns.evict_idle();
                if last_cap_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    last_cap_log = Some(Instant::now());
                    tracing::warn!(
                        listener = name,
                        cap,
                        "connection cap reached: {}",
                        if evicted {
                            "closing the connection idle longest"
                        } else {
                            "every connection is busy; new ones wait"
                        }
                    );
                }
                // Every connection busy: wait for one to end, or for a second to pass, when
                // one that has since gone idle can be closed to make room.
                tokio::select! {
                    p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors (the cap is above what the process may open, or
                    // something else holds them) or a connection reset before accept: not
                    // fatal. Out of descriptors, the connection idle longest makes room.
                    let out_of_files = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                    let evicted = out_of_files && conns.evict_idle();
                    tracing::warn!(listener = name, error = %e, evicted, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(conns.now_ms()),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        conns
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, conn.clone());
        let (conns, builder, router, admit) = (
            conns.clone(),
            builder.clone(),
            router.clone(),
            admit.clone(),
        );
        let (idle, grace) = (limits.idle_timeout, limits.grace);
        tasks.spawn(async move {
            let open = Open {
                conns: conns.clone(),
                id,
                _permit: permit,
            };
            // Who is calling is asked here, off the accept loop.
            let router = match admit {
                Some(a) if !(a.check)(&stream) => a.refused,
                _ => router,
            };
            let service = Tracked {
                router,
                conn: conn.clone(),
                conns: conns.clone(),
            };
            let served = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(service),
            );
            tokio::pin!(served);
            // Once asked to close, a connection has `grace` to do so: a client that never
            // reads its answer, or never acknowledges HTTP/2's goodbye, is then dropped.
            let mut closing: Option<tokio::time::Instant> = None;
            let mut tick = tokio::time::interval(idle / 4);
            loop {
                tokio::select! {
                    _ = served.as_mut() => break,
                    _ = conn.close.notified(), if closing.is_none() => {
                        served.as_mut().graceful_shutdown();
                        closing = Some(tokio::time::Instant::now() + grace);
                    }
                    _ = tokio::time::sleep_until(closing.unwrap_or_else(tokio::time::Instant::now)), if closing.is_some() => break,
                    _ = tick.tick(), if closing.is_none() => {
                        let since = conn.idle_since.load(Ordering::Acquire);
                        if conn.busy.load(Ordering::Acquire) == 0
                            && conns.now_ms().saturating_sub(since) >= idle.as_millis() as u64
                        {
                            served.as_mut().graceful_shutdown();
                            closing = Some(tokio::time::Instant::now() + grace);
                        }
                    }
                }
            }
            drop(open);
        });
    }
    drop(listener);
    // Idle connections close now; busy ones finish their request, within the grace period.
    conns.close_all();
    let deadline = tokio::time::Instant::now() + limits.grace;
    while conns.len() > 0 {
        let ended = conns.ended.notified();
        if conns.len() == 0 {
            break;
        }
        if tokio::time::timeout_at(deadline, ended).await.is_err() {
            tracing::warn!(
                listener = name,
                open = conns.len(),
                "grace period over: dropping connections still open"
            );
            break;
        }
    }
    tasks.abort_all();
    Ok(())
}

/// Takes a connection off the books however its task ends (a panic included).
struct Open {
    conns: Arc<Conns>,
    id: u64,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.conns
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        self.conns.ended.notify_waiters();
    }
}

/// The router, counting each connection's requests in flight so that idle ones are known.
#[derive(Clone)]
struct Tracked {
    router: Router,
    conn: Arc<Conn>,
    conns: Arc<Conns>,
}

impl Service<hyper::Request<Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: hyper::Request<Incoming>) -> Self::Future {
        self.conn.busy.fetch_add(1, Ordering::AcqRel);
        let busy = Busy {
            conn: self.conn.clone(),
            conns: self.conns.clone(),
        };
        let fut = self.router.call(req.map(axum::body::Body::new));
        Box::pin(async move {
            let r = fut.await;
            drop(busy);
            r
        })
    }
}

/// Marks a request finished when dropped, however its future ends.
struct Busy {
    conn: Arc<Conn>,
    conns: Arc<Conns>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(self.conns.now_ms(), Ordering::Release);
        self.conn.busy.fetch_sub(1, Ordering::AcqRel);
    }
}
