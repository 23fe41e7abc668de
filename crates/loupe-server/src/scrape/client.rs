//! One target's HTTP/1.1 connection: kept alive between scrapes, opened
//! again after any failure. Asks for the exposition formats as Prometheus
//! does ([`SCRAPE_ACCEPT`], gzip), and reads at most a limit of bytes.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use loupe_ingest::exposition::SCRAPE_ACCEPT;

/// Why a scrape got no body.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("server returned HTTP status {0}")]
    Status(StatusCode),
    #[error("body is over the limit of {0} bytes (body_size_limit)")]
    TooLarge(usize),
    #[error("bad request: {0}")]
    Request(String),
}

/// What a target answered.
pub struct Fetched {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub body: Bytes,
}

/// A target's connection, if one is open.
#[derive(Default)]
pub struct TargetClient {
    conn: Option<SendRequest<Empty<Bytes>>>,
}

impl TargetClient {
    /// `GET http://{address}{path}`, at most `limit` bytes (as sent, before
    /// any gzip is undone). A failure closes the connection.
    pub async fn fetch(
        &mut self,
        address: &str,
        path: &str,
        timeout: Duration,
        limit: usize,
    ) -> Result<Fetched, FetchError> {
        let r = self.try_fetch(address, path, timeout, limit).await;
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    async fn try_fetch(
        &mut self,
        address: &str,
        path: &str,
        timeout: Duration,
        limit: usize,
    ) -> Result<Fetched, FetchError> {
        let reusable = match &mut self.conn {
            Some(c) => c.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            self.conn = Some(connect(address).await?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let req = Request::get(path)
            .header(header::HOST, address)
            .header(header::ACCEPT, SCRAPE_ACCEPT)
            .header(header::ACCEPT_ENCODING, "gzip")
            .header(
                header::USER_AGENT,
                concat!("loupe/", env!("CARGO_PKG_VERSION")),
            )
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", timeout.as_secs_f64()),
            )
            .body(Empty::new())
            .map_err(|e| FetchError::Request(e.to_string()))?;
        let mut resp = conn.send_request(req).await?;
        if resp.status() != StatusCode::OK {
            return Err(FetchError::Status(resp.status()));
        }
        let text = |h| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = text(header::CONTENT_TYPE);
        let content_encoding = text(header::CONTENT_ENCODING);
        let mut body = Vec::new();
        while let Some(frame) = resp.body_mut().frame().await {
            if let Ok(data) = frame?.into_data() {
                if body.len() + data.len() > limit {
                    return Err(FetchError::TooLarge(limit));
                }
                body.extend_from_slice(&data);
            }
        }
        Ok(Fetched {
            content_type,
            content_encoding,
            body: Bytes::from(body),
        })
    }
}

async fn connect(address: &str) -> Result<SendRequest<Empty<Bytes>>, FetchError> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|source| FetchError::Connect {
            addr: address.to_string(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection's own task; it ends when the sender is dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
