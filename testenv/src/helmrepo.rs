//! A Helm repository on loopback for Flux's source-controller: charts packaged with
//! `helm package`, indexed with `helm repo index`, served by a small static HTTP server
//! (GET of files in one directory, nothing else). Dropping [`HelmRepo`] stops the server and
//! removes the directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::tools;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the repository directory")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Tool(#[from] tools::Error),
}

pub struct HelmRepo {
    dir: tempfile::TempDir,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl HelmRepo {
    /// An empty repository served at `http://127.0.0.1:<port>`.
    pub async fn start() -> Result<Self, Error> {
        let dir = crate::controlplane::owned_tempdir("kreload-helmrepo-")?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let root = dir.path().join("charts");
        std::fs::create_dir(&root)?;
        let server = tokio::spawn(serve(listener, root));
        Ok(Self { dir, url, server })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// `helm package <chart>` into the repository (with `--version` when given), then
    /// `helm repo index` of the whole repository. Returns the package's file name.
    pub fn add(&self, chart: &Path, version: Option<&str>) -> Result<String, Error> {
        let root = self.root();
        let mut cmd = Command::new(tools::helm()?);
        cmd.arg("package")
            .arg(chart)
            .arg("--destination")
            .arg(&root);
        if let Some(v) = version {
            cmd.args(["--version", v]);
        }
        let out = tools::run(&mut cmd, None)?;
        let mut index = Command::new(tools::helm()?);
        index
            .args(["repo", "index"])
            .arg(&root)
            .args(["--url", &self.url]);
        tools::run(&mut index, None)?;
        // "Successfully packaged chart and saved it to: <path>"
        Ok(out.trim().rsplit('/').next().unwrap_or_default().to_owned())
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("charts")
    }
}

impl Drop for HelmRepo {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, root: PathBuf) {
    while let Ok((stream, _)) = listener.accept().await {
        let root = root.clone();
        tokio::spawn(async move {
            let _ = answer(stream, &root).await;
        });
    }
}

/// One request per connection: the file named by the path of a GET, or 404.
async fn answer(mut stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let name = path.split('?').next().unwrap_or("").trim_start_matches('/');
    // Only plain file names of the one directory: no traversal, no listing.
    let body = if method == "GET" && !name.is_empty() && !name.contains(['/', '\\']) && name != ".."
    {
        tokio::fs::read(root.join(name)).await.ok()
    } else {
        None
    };
    let (status, body) = match body {
        Some(b) => ("200 OK", b),
        None => ("404 Not Found", b"not found\n".to_vec()),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// A plain HTTP/1.1 GET of `path` from `addr` (host:port): the status code and body.
pub async fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_owned()))
}
