//! Restarting one process of a control plane (kube-apiserver or etcd) in place: killed, down
//! for a while, started again with the same arguments (ports, data directory), and waited
//! for until the API server is ready again. For fault tests, on a control plane of their own.

use std::time::Duration;

use super::{ControlPlane, Error};

impl ControlPlane {
    /// Kills `name` (`"etcd"`, `"kube-apiserver"`), waits `downtime`, starts it again and
    /// waits until the API server answers ready.
    pub async fn restart(&mut self, name: &'static str, downtime: Duration) -> Result<(), Error> {
        let Some(at) = self.processes.iter().position(|p| p.name == name) else {
            return Err(Error::Exited {
                name,
                log: "not running".to_owned(),
            });
        };
        let mut process = self.processes.remove(at);
        let _ = process.child.kill();
        let _ = process.child.wait();
        tokio::time::sleep(downtime).await;
        let (bin, args) = process.command;
        self.spawn(name, &bin, &args)?;
        self.wait_ready(name, Duration::from_secs(60)).await
    }
}
