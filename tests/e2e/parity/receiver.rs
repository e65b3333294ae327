//! A local HTTP receiver for alerts and webhook posts, and a CONNECT proxy in front of it.
//! Neither is the Kubernetes API: they stand in for Slack, Teams, Google Chat, a webhook
//! and a corporate proxy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub content_type: String,
    pub body: String,
}

#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Received>>>);

impl Log {
    pub fn all(&self) -> Vec<Received> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub log: Log,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Answers every request `200 OK`, or never answers when `hang` (a stuck sink).
    pub async fn start(hang: bool) -> Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let log = Log::default();
        let l = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, l.clone(), hang));
            }
        });
        Ok(Receiver { addr, log, task })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Reads one request head (up to the blank line); `None` at end of stream.
async fn head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn serve(mut stream: TcpStream, log: Log, hang: bool) {
    let mut buf = Vec::new();
    while let Some(head) = head(&mut stream, &mut buf).await {
        let length: usize = header(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        let path = head
            .lines()
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or_default()
            .to_owned();
        if let Ok(mut v) = log.0.lock() {
            v.push(Received {
                path,
                content_type: header(&head, "content-type").unwrap_or_default().to_owned(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        if hang {
            std::future::pending::<()>().await;
        }
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if stream.write_all(ok).await.is_err() {
            return;
        }
    }
}

/// A CONNECT proxy; records the targets it tunnelled to.
pub struct Proxy {
    pub addr: SocketAddr,
    pub targets: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start() -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let targets = Arc::new(Mutex::new(Vec::new()));
        let t = targets.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let t = t.clone();
                tokio::spawn(async move {
                    let _ = tunnel(stream, t).await;
                });
            }
        });
        Ok(Proxy {
            addr,
            targets,
            task,
        })
    }
}

async fn tunnel(mut client: TcpStream, targets: Arc<Mutex<Vec<String>>>) -> Result<()> {
    let mut buf = Vec::new();
    let head = head(&mut client, &mut buf).await.context("no request")?;
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next())
        .context("not a CONNECT")?
        .to_owned();
    if let Ok(mut v) = targets.lock() {
        v.push(target.clone());
    }
    let mut upstream = TcpStream::connect(&target).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    upstream.write_all(&buf).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
