//! The HTTP listener for `/metrics`, `/healthz` and `/readyz` (hyper, HTTP/1.1, on the agent's
//! tokio runtime), over TLS and behind a bearer token when configured (`crate::serve`).
//! Anything else is 404; only GET and HEAD are served.
use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::{
    metrics::Metrics,
    serve::{Auth, ListenSecurity},
};

/// Content type of the OpenMetrics text exposition.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}; choose a free address for --listen")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr`; returns the bound address (the real port for port 0) once it listens, and
/// serves on a spawned task.
pub(crate) async fn spawn(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    security: ListenSecurity,
) -> Result<SocketAddr, ServeError> {
    let bind = |source| ServeError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
    let scheme = if security.tls() { "https" } else { "http" };
    tokio::spawn(serve(listener, metrics, security));
    tracing::info!(%bound, "metrics and health on {scheme}://{bound}/metrics, /healthz, /readyz");
    Ok(bound)
}

async fn serve(listener: TcpListener, metrics: Arc<Metrics>, security: ListenSecurity) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let security = security.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE, security.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "metrics connection: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = service_fn(move |request| {
                let response = respond(&metrics, &security, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "metrics connection ended");
            }
        });
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Answers one request: health is open to all, anything else needs the token when one is set.
fn respond(
    metrics: &Metrics,
    security: &ListenSecurity,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !matches!(path, "/healthz" | "/readyz") && security.check(request.headers()) == Auth::Denied
    {
        metrics
            .listeners
            .unauthorized(crate::metrics::serve::Listener::Metrics)
            .inc();
        let mut response = text(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "send Authorization: Bearer <token> (--auth-token-file)\n".into(),
        );
        response.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    route(metrics, request.method(), path)
}

fn route(metrics: &Metrics, method: &Method, path: &str) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "only GET and HEAD\n".into(),
        );
    }
    match path {
        "/metrics" => text(StatusCode::OK, OPENMETRICS, metrics.encode()),
        "/healthz" => match metrics.health.check() {
            Ok(()) => text(StatusCode::OK, PLAIN, "ok\n".into()),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, format!("{why}\n")),
        },
        "/readyz" => {
            if metrics.health.is_ready() {
                text(StatusCode::OK, PLAIN, "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    PLAIN,
                    "probes or the first cgroup scan not done yet\n".into(),
                )
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_status_codes() {
        let metrics = Metrics::new();
        let status = |m: &Method, p: &str| route(&metrics, m, p).status();
        assert_eq!(status(&Method::GET, "/metrics"), StatusCode::OK);
        assert_eq!(
            status(&Method::GET, "/healthz"),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(&Method::GET, "/readyz"),
            StatusCode::SERVICE_UNAVAILABLE
        );
        metrics.health.reader_beat();
        metrics.health.pipeline_beat();
        metrics.health.set_ready();
        assert_eq!(status(&Method::GET, "/healthz"), StatusCode::OK);
        assert_eq!(status(&Method::HEAD, "/readyz"), StatusCode::OK);
        assert_eq!(status(&Method::GET, "/nope"), StatusCode::NOT_FOUND);
        assert_eq!(
            status(&Method::POST, "/metrics"),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let response = route(&metrics, &Method::GET, "/metrics");
        assert_eq!(response.headers()[CONTENT_TYPE], OPENMETRICS);
    }
}
