//! Reads of and writes to workloads: the guarded JSON Patch of a reload (or a resume), and
//! the delete-and-create of a Job. Every write is made under kreload's field manager.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions,
    PropagationPolicy,
};
use kube::{Api, Client};

use crate::reload::keys::FIELD_MANAGER;
use crate::reload::model::WorkloadKind;

/// The API resource of a workload kind (Argo Rollouts: `argoproj.io/v1alpha1`).
pub fn api_resource(kind: WorkloadKind) -> ApiResource {
    match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        WorkloadKind::CronJob => ApiResource::erase::<CronJob>(&()),
        WorkloadKind::Job => ApiResource::erase::<Job>(&()),
        WorkloadKind::Rollout => ApiResource {
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
            plural: "rollouts".into(),
        },
    }
}

/// One workload's API.
pub struct Workloads {
    api: Api<DynamicObject>,
}

impl Workloads {
    pub fn new(client: &Client, namespace: &str, kind: WorkloadKind) -> Self {
        Workloads {
            api: Api::namespaced_with(client.clone(), namespace, &api_resource(kind)),
        }
    }

    pub async fn get(&self, name: &str) -> Result<Option<DynamicObject>, kube::Error> {
        self.api.get_opt(name).await
    }

    /// Every workload of this kind in the namespace (for `kreload explain`); a kind the API
    /// server does not serve (no Argo Rollouts CRD) has none.
    pub async fn list(&self) -> Result<Vec<DynamicObject>, kube::Error> {
        match self.api.list(&kube::api::ListParams::default()).await {
            Ok(list) => Ok(list.items),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Sends `ops` as one JSON Patch (they start with their resourceVersion test).
    pub async fn patch(
        &self,
        name: &str,
        ops: Vec<json_patch::PatchOperation>,
    ) -> Result<(), kube::Error> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        self.api
            .patch(name, &params, &Patch::Json::<()>(json_patch::Patch(ops)))
            .await
            .map(drop)
    }
}

/// Jobs, which are deleted and created rather than patched.
pub struct Jobs {
    api: Api<Job>,
    namespace: String,
}

impl Jobs {
    pub fn new(client: &Client, namespace: &str) -> Self {
        Jobs {
            api: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_owned(),
        }
    }

    pub async fn get(&self, name: &str) -> Result<Option<Job>, kube::Error> {
        self.api.get_opt(name).await
    }

    /// The CronJob `name` in the same namespace (to start a Job from it).
    pub async fn cronjob(&self, name: &str) -> Result<Option<CronJob>, kube::Error> {
        let api: Api<CronJob> = Api::namespaced(self.api.clone().into_client(), &self.namespace);
        api.get_opt(name).await
    }

    /// Deletes exactly `job` (its uid and resourceVersion): another replica that already
    /// recreated it makes this fail with a conflict.
    pub async fn delete_exactly(&self, job: &Job) -> Result<(), kube::Error> {
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: job.metadata.uid.clone(),
                resource_version: job.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        self.api.delete(name, &params).await.map(drop)
    }

    pub async fn create(&self, job: &Job) -> Result<(), kube::Error> {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        self.api.create(&params, job).await.map(drop)
    }
}
