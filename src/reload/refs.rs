//! Which ConfigMaps, Secrets and SecretProviderClasses a pod spec uses, per container
//! (README, "Opting in").

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};

use super::csi::SPC_VOLUME_ATTRIBUTE;
use super::model::SourceRef;

/// What one container uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerUse {
    pub name: String,
    /// Reached through this container's volumeMounts (configMap, secret, projected and CSI
    /// Secrets Store volumes).
    pub mounts: Vec<SourceRef>,
    /// `env[].valueFrom` key refs and `envFrom[]` refs.
    pub env: Vec<SourceRef>,
}

/// The compact projection of a pod spec that decisions need; the workload index stores this
/// instead of whole objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRefs {
    pub containers: Vec<ContainerUse>,
    pub init_containers: Vec<ContainerUse>,
}

/// The references of `spec`. A volume counts only through a container that mounts it;
/// imagePullSecrets and ephemeral containers never count.
pub fn pod_refs(spec: &PodSpec) -> PodRefs {
    let volumes: BTreeMap<&str, Vec<SourceRef>> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| (v.name.as_str(), volume_sources(v)))
        .collect();
    let project = |cs: &[Container]| cs.iter().map(|c| container_use(c, &volumes)).collect();
    PodRefs {
        containers: project(&spec.containers),
        init_containers: project(spec.init_containers.as_deref().unwrap_or_default()),
    }
}

fn volume_sources(v: &Volume) -> Vec<SourceRef> {
    let mut out = Vec::new();
    if let Some(cm) = &v.config_map {
        push(&mut out, SourceRef::configmap(&cm.name));
    }
    if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.as_ref()) {
        push(&mut out, SourceRef::secret(name));
    }
    // A CSI volume naming a SecretProviderClass. Like Reloader (getVolumeMountName in
    // internal/pkg/handler/upgrade.go), only the attribute counts, not the driver name.
    let attributes = v.csi.as_ref().and_then(|c| c.volume_attributes.as_ref());
    if let Some(spc) = attributes.and_then(|a| a.get(SPC_VOLUME_ATTRIBUTE)) {
        push(&mut out, SourceRef::secret_provider_class(spc));
    }
    for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
        if let Some(cm) = &p.config_map {
            push(&mut out, SourceRef::configmap(&cm.name));
        }
        if let Some(s) = &p.secret {
            push(&mut out, SourceRef::secret(&s.name));
        }
    }
    out
}

fn container_use(c: &Container, volumes: &BTreeMap<&str, Vec<SourceRef>>) -> ContainerUse {
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        for r in volumes.get(m.name.as_str()).into_iter().flatten() {
            push(&mut mounts, r.clone());
        }
    }
    let mut env = Vec::new();
    for from in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
        if let Some(k) = &from.config_map_key_ref {
            push(&mut env, SourceRef::configmap(&k.name));
        }
        if let Some(k) = &from.secret_key_ref {
            push(&mut env, SourceRef::secret(&k.name));
        }
    }
    for from in c.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            push(&mut env, SourceRef::configmap(&r.name));
        }
        if let Some(r) = &from.secret_ref {
            push(&mut env, SourceRef::secret(&r.name));
        }
    }
    ContainerUse {
        name: c.name.clone(),
        mounts,
        env,
    }
}

/// Appends unless already there (first-seen order) or nameless (a nameless ref can never
/// match a real object).
fn push(out: &mut Vec<SourceRef>, r: SourceRef) {
    if !r.name.is_empty() && !out.contains(&r) {
        out.push(r);
    }
}

impl ContainerUse {
    pub fn uses(&self, src: &SourceRef) -> bool {
        self.mounts.contains(src) || self.env.contains(src)
    }
}

impl PodRefs {
    /// Whether any container or init container uses `src`.
    pub fn references(&self, src: &SourceRef) -> bool {
        self.containers
            .iter()
            .chain(&self.init_containers)
            .any(|c| c.uses(src))
    }

    /// Everything referenced, by containers and init containers.
    pub fn sources(&self) -> BTreeSet<SourceRef> {
        self.containers
            .iter()
            .chain(&self.init_containers)
            .flat_map(|c| c.mounts.iter().chain(&c.env))
            .cloned()
            .collect()
    }

    /// The container whose env var records a reload of `src`, chosen as Reloader's
    /// getContainerUsingResource does, so a migrated workload keeps its variable where it is:
    /// mounts first, then env refs; a use only by init containers goes to the first
    /// container (init containers' env vars would not roll anything useful); a named
    /// (`!auto`) reload without any use also goes to the first container.
    pub fn target_container(&self, src: &SourceRef, auto: bool) -> Option<&str> {
        let first = self.containers.first().map(|c| c.name.as_str());
        let mounts = |c: &ContainerUse| c.mounts.contains(src);
        let env = |c: &ContainerUse| c.env.contains(src);
        if let Some(c) = self.containers.iter().find(|c| mounts(c)) {
            return Some(&c.name);
        }
        if self.init_containers.iter().any(mounts) {
            return first;
        }
        if let Some(c) = self.containers.iter().find(|c| env(c)) {
            return Some(&c.name);
        }
        if self.init_containers.iter().any(env) || !auto {
            return first;
        }
        None
    }
}

#[cfg(test)]
mod tests;
