//! Posting to alert sinks and Reloader's `--webhook-url`: HTTP or HTTPS (the system's
//! roots), directly or through an HTTP proxy (a CONNECT tunnel), each post bounded in time.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::TokioExecutor;

use super::sinks::Body;

/// Longest a post may take; a slow sink only delays later alerts, never a reload.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid URL {0:?}")]
    Url(String),
    #[error("invalid proxy URL {0:?}")]
    Proxy(String),
    #[error("loading the system's root certificates")]
    Roots(#[source] std::io::Error),
    #[error("building the request")]
    Request(#[source] http::Error),
    #[error("sending the request")]
    Send(#[source] hyper_util::client::legacy::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answered with status {0}")]
    Status(http::StatusCode),
}

type Direct = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;
type Proxied = Client<HttpsConnector<Tunnel<HttpConnector>>, Full<Bytes>>;

/// An HTTP client for posts, with or without a proxy.
#[derive(Clone)]
pub enum Poster {
    Direct(Direct),
    Proxied(Proxied),
}

fn https<C>(builder_conn: C) -> Result<HttpsConnector<C>, Error> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(Error::Roots)?
        .https_or_http()
        .enable_http1()
        .wrap_connector(builder_conn))
}

impl Poster {
    /// A poster through `proxy` (`http://host:port`) when given and not empty.
    pub fn new(proxy: Option<&str>) -> Result<Poster, Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(POST_TIMEOUT));
        let builder = Client::builder(TokioExecutor::new());
        match proxy.map(str::trim).filter(|p| !p.is_empty()) {
            None => Ok(Poster::Direct(builder.build(https(http)?))),
            Some(p) => {
                let uri: Uri = p.parse().map_err(|_| Error::Proxy(p.to_owned()))?;
                if uri.host().is_none() {
                    return Err(Error::Proxy(p.to_owned()));
                }
                Ok(Poster::Proxied(
                    builder.build(https(Tunnel::new(uri, http))?),
                ))
            }
        }
    }

    /// POSTs `body` to `url`; a status of 400 or more is an error (Reloader's rule).
    pub async fn post(&self, url: &str, body: &Body) -> Result<http::StatusCode, Error> {
        let uri: Uri = url.parse().map_err(|_| Error::Url(url.to_owned()))?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, body.content_type)
            .body(Full::new(Bytes::from(body.text.clone())))
            .map_err(Error::Request)?;
        let sent = async {
            match self {
                Poster::Direct(c) => c.request(request).await,
                Poster::Proxied(c) => c.request(request).await,
            }
        };
        let response = tokio::time::timeout(POST_TIMEOUT, sent)
            .await
            .map_err(|_| Error::Timeout(POST_TIMEOUT))?
            .map_err(Error::Send)?;
        let status = response.status();
        if status.as_u16() >= 400 {
            return Err(Error::Status(status));
        }
        Ok(status)
    }
}
