//! A network namespace of the test's own, joined to the host by a veth pair, so a process
//! the test runs has an address that is not loopback: Kubernetes refuses loopback addresses
//! in EndpointSlices, and the API server (with `--enable-aggregator-routing`) calls a
//! Service-referenced webhook at its EndpointSlice address. Only the addresses made here
//! are ever dialled. Needs root (`ip netns`); dropping [`NetNs`] deletes the namespace,
//! which deletes both ends of the veth pair.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::tools::{self, run};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("setting up the network namespace")]
    Ip(#[from] tools::Error),
    #[error("no more test network namespaces in this process")]
    Exhausted,
}

const PREFIX: &str = "kre2e-";

pub struct NetNs {
    pub name: String,
    /// The host's end of the veth pair.
    pub host: Ipv4Addr,
    /// The namespace's end.
    pub inner: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<String, tools::Error> {
    run(Command::new("ip").args(args), None)
}

impl NetNs {
    /// Creates `kre2e-<pid>-<n>` with a /30 out of 10.203.<pid % 250>.0/24 (n picks the
    /// /30, so test processes running at once use different addresses), after deleting
    /// namespaces left by test processes that died without cleaning up.
    pub fn create() -> Result<Self, Error> {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        sweep_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        if n >= 64 {
            return Err(Error::Exhausted);
        }
        let pid = std::process::id();
        let name = format!("{PREFIX}{pid}-{n}");
        let net = (pid % 250) as u8;
        let host = Ipv4Addr::new(10, 203, net, n * 4 + 1);
        let inner = Ipv4Addr::new(10, 203, net, n * 4 + 2);
        // Interface names are at most 15 bytes.
        let (h, i) = (
            format!("k{:x}h{n}", pid % 0xfffff),
            format!("k{:x}n{n}", pid % 0xfffff),
        );
        ip(&["netns", "add", &name])?;
        let ns = Self { name, host, inner };
        ip(&[
            "link", "add", &h, "type", "veth", "peer", "name", &i, "netns", &ns.name,
        ])?;
        ip(&["addr", "add", &format!("{host}/30"), "dev", &h])?;
        ip(&["link", "set", &h, "up"])?;
        ns.exec_ip(&["addr", "add", &format!("{inner}/30"), "dev", &i])?;
        ns.exec_ip(&["link", "set", &i, "up"])?;
        ns.exec_ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn exec_ip(&self, args: &[&str]) -> Result<String, tools::Error> {
        let mut all = vec!["netns", "exec", self.name.as_str(), "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Deletes `kre2e-<pid>-<n>` namespaces whose pid no longer exists.
fn sweep_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Forwards TCP connections from `listen` to `to` until the returned task is aborted: the
/// way out of the namespace to the API server, which listens on loopback only.
pub async fn forward(
    listen: std::net::SocketAddr,
    to: std::net::SocketAddr,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    Ok(tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    }))
}
