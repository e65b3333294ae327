//! Reads of the CSI Secrets Store API (`--enable-csi-integration`): a SecretProviderClass's
//! annotations (for `ignore` and `match`, as Reloader reads them from the class), and the
//! hashes of the SecretProviderClassPodStatus objects naming it. A status holds object ids
//! and versions, never secret content; only the hash and labels of each are kept.

use std::collections::BTreeMap;

use kube::api::{Api, ListParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Client, ResourceExt as _};

use crate::reload::csi::{GROUP, PodStatus, SPC_PLURAL, SPCPS_KIND, SPCPS_PLURAL, VERSION};

/// Statuses are listed in pages of this many.
const PAGE: u32 = 500;

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: GROUP.to_owned(),
        version: VERSION.to_owned(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

/// What kreload keeps of one SecretProviderClassPodStatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub hash: String,
    /// For `--resource-label-selector`, which Reloader applies to the statuses.
    pub labels: BTreeMap<String, String>,
}

/// The statuses in `namespace` that name the SecretProviderClass `spc` (one per pod
/// mounting it), listed page by page.
pub async fn statuses(client: &Client, namespace: &str, spc: &str) -> kube::Result<Vec<Status>> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource(SPCPS_KIND, SPCPS_PLURAL),
    );
    let mut params = ListParams::default().limit(PAGE);
    let mut out = Vec::new();
    loop {
        let page = match api.list(&params).await {
            Ok(page) => page,
            // The driver's CRDs are not installed: no pod mounts any class.
            Err(kube::Error::Api(e)) if e.code == 404 && out.is_empty() => return Ok(out),
            Err(error) => return Err(error),
        };
        for obj in &page.items {
            let Some(status) = PodStatus::of(&obj.data) else {
                continue;
            };
            if status.secret_provider_class_name == spc {
                out.push(Status {
                    hash: status.hash(),
                    labels: obj.labels().clone(),
                });
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

/// The annotations of the SecretProviderClass `name`; `None` when it does not exist.
pub async fn class_annotations(
    client: &Client,
    namespace: &str,
    name: &str,
) -> kube::Result<Option<BTreeMap<String, String>>> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("SecretProviderClass", SPC_PLURAL),
    );
    Ok(api
        .get_opt(name)
        .await?
        .map(|obj| obj.annotations().clone()))
}
