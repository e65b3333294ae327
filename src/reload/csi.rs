//! CSI Secrets Store (`--enable-csi-integration`): the names of its API, what kreload reads
//! from a `SecretProviderClassPodStatus`, and how the statuses of one SecretProviderClass
//! become the one content hash a decision needs. Values only.
//!
//! The driver writes one SecretProviderClassPodStatus per pod and mounted class
//! (`<pod>-<namespace>-<class>`), with the provider's object versions in `status.objects`;
//! the rotation reconciler rewrites them when a version changes. The class itself holds no
//! content, so the class's content is what its statuses report.

use serde::Deserialize;
use serde_json::Value;

use super::hash::secret_provider_class_hash;

/// The API group of the driver's CRDs (served as `v1`).
pub const GROUP: &str = "secrets-store.csi.x-k8s.io";
pub const VERSION: &str = "v1";
/// The source kind's resource.
pub const SPC_PLURAL: &str = "secretproviderclasses";
/// The trigger: the per-pod status the driver writes.
pub const SPCPS_KIND: &str = "SecretProviderClassPodStatus";
pub const SPCPS_PLURAL: &str = "secretproviderclasspodstatuses";
/// The driver's name, as a pod's CSI volume gives it.
pub const DRIVER: &str = "secrets-store.csi.k8s.io";
/// The CSI volume attribute naming the SecretProviderClass.
pub const SPC_VOLUME_ATTRIBUTE: &str = "secretProviderClass";
/// The label the driver puts on every status it writes.
pub const NODE_LABEL: &str = "internal.secrets-store.csi.k8s.io/node-name";

/// What kreload reads of a SecretProviderClassPodStatus: its `status`, without the target
/// path or anything else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default)]
    pub secret_provider_class_name: String,
    #[serde(default)]
    pub objects: Vec<MountedObject>,
}

/// One object the provider mounted, and its version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MountedObject {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub version: String,
}

impl PodStatus {
    /// The `status` of a SecretProviderClassPodStatus object (as JSON). `None` when it has
    /// none, or it does not name a class, or its fields have the wrong types.
    pub fn of(obj: &Value) -> Option<PodStatus> {
        let status = PodStatus::deserialize(obj.get("status")?).ok()?;
        (!status.secret_provider_class_name.is_empty()).then_some(status)
    }

    /// Reloader's hash of this status.
    pub fn hash(&self) -> String {
        secret_provider_class_hash(
            &self.secret_provider_class_name,
            self.objects
                .iter()
                .map(|o| (o.id.as_str(), o.version.as_str())),
        )
    }
}

/// The class's live hash from the hashes of the statuses naming it: the one they all
/// report. `None` when no pod mounts the class, or when pods disagree (a rotation is under
/// way: the driver rotates pod by pod, and the webhook sees each write; the resync waits
/// for them to agree rather than guess which one is newer).
pub fn agreed<'a>(hashes: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut hashes = hashes.into_iter();
    let first = hashes.next()?;
    hashes.all(|h| h == first).then_some(first)
}

/// What the worker confirms an admitted status write against: the admitted hash when some
/// status carries it (that pod's write was stored), else the hash they all agree on.
pub fn confirmable<'a>(
    admitted: Option<&str>,
    hashes: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<&'a str> {
    if let Some(admitted) = admitted
        && let Some(found) = hashes.clone().into_iter().find(|h| *h == admitted)
    {
        return Some(found);
    }
    agreed(hashes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A status as the driver writes it (pkg/secrets-store/utils.go,
    /// createOrUpdateSecretProviderClassPodStatus, v1.5.3).
    fn written(spc: &str, objects: &[(&str, &str)]) -> Value {
        let objects: Vec<Value> = objects
            .iter()
            .map(|(id, version)| json!({"id": id, "version": version}))
            .collect();
        json!({
            "apiVersion": "secrets-store.csi.x-k8s.io/v1",
            "kind": "SecretProviderClassPodStatus",
            "metadata": {"name": format!("web-0-ns-{spc}"), "labels": {NODE_LABEL: "node-1"}},
            "status": {
                "podName": "web-0",
                "secretProviderClassName": spc,
                "mounted": true,
                "targetPath": "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/secrets/mount",
                "objects": objects,
            }
        })
    }

    #[test]
    fn a_status_hashes_as_reloader_does() {
        let obj = written(
            "vault-db",
            &[("secret/db-password", "v2"), ("secret/api-key", "7")],
        );
        let status = PodStatus::of(&obj).expect("a status");
        assert_eq!(status.secret_provider_class_name, "vault-db");
        // The value of hash::tests::secret_provider_class_is_reloaders_hash.
        assert_eq!(status.hash(), "a75cc321702f1128daaf6dab6634e2916a6f7bb6");
    }

    #[test]
    fn statuses_without_a_class_or_with_wrong_types_are_not_read() {
        assert_eq!(PodStatus::of(&json!({"metadata": {}})), None);
        assert_eq!(PodStatus::of(&json!({"status": {"mounted": true}})), None);
        let wrong = json!({"status": {"secretProviderClassName": "a", "objects": "x"}});
        assert_eq!(PodStatus::of(&wrong), None);
        // No objects yet: still a status, hashing the class name alone.
        let empty = PodStatus::of(&json!({"status": {"secretProviderClassName": "a"}}));
        assert_eq!(empty.map(|s| s.objects.len()), Some(0));
    }

    #[test]
    fn the_live_hash_is_the_one_every_pod_reports() {
        assert_eq!(agreed(["h1", "h1", "h1"]), Some("h1"));
        assert_eq!(agreed(["h1"]), Some("h1"));
        assert_eq!(agreed(Vec::<&str>::new()), None);
        assert_eq!(agreed(["h1", "h2", "h1"]), None);
    }

    #[test]
    fn an_admitted_write_is_confirmed_by_any_pod_carrying_it() {
        // Mid-rotation: one pod already has the new versions.
        assert_eq!(confirmable(Some("h2"), ["h1", "h2"]), Some("h2"));
        // Not stored anywhere: the agreed content, if any.
        assert_eq!(confirmable(Some("h3"), ["h2", "h2"]), Some("h2"));
        assert_eq!(confirmable(Some("h3"), ["h1", "h2"]), None);
        assert_eq!(confirmable(Some("h3"), Vec::<&str>::new()), None);
        assert_eq!(confirmable(None, ["h1"]), Some("h1"));
    }
}
