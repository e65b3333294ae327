//! A ValidatingAdmissionPolicy that rejects updates of one ConfigMap.

use anyhow::Result;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

pub struct Policy {
    client: kube::Client,
    name: String,
}

fn api(client: &kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// Denies every UPDATE of ConfigMaps whose name starts with `name` in `namespace`.
pub async fn deny_configmap_updates(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Policy> {
    let policy_name = format!("deny-{namespace}-{name}");
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy_name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["configmaps"]
            }]},
            "validations": [{"expression": format!("!object.metadata.name.startsWith('{name}')"), "message": "updates of this ConfigMap are denied by the test policy"}]
        }
    }))?;
    api(
        client,
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
    )
    .create(&PostParams::default(), &policy)
    .await?;
    let binding: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy_name},
        "spec": {
            "policyName": policy_name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
        }
    }))?;
    api(
        client,
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
    )
    .create(&PostParams::default(), &binding)
    .await?;
    Ok(Policy {
        client: client.clone(),
        name: policy_name,
    })
}

impl Drop for Policy {
    fn drop(&mut self) {
        let client = self.client.clone();
        let name = self.name.clone();
        tokio::spawn(async move {
            let _ = api(
                &client,
                "ValidatingAdmissionPolicyBinding",
                "validatingadmissionpolicybindings",
            )
            .delete(&name, &DeleteParams::default())
            .await;
            let _ = api(
                &client,
                "ValidatingAdmissionPolicy",
                "validatingadmissionpolicies",
            )
            .delete(&name, &DeleteParams::default())
            .await;
        });
    }
}
