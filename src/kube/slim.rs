//! What a watch of a workload kind decodes: the few metadata fields the index and the watcher
//! read, and the pod template. Everything else of the object (status, the rest of the spec,
//! labels, `managedFields`) is skipped while the list page or watch event is parsed, so it
//! is never allocated; a page of whole typed objects was most of kreload's peak memory.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::Resource;
use kube::api::{DynamicObject, ObjectMeta};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};

use crate::reload::model::WorkloadKind;

/// A watched workload type: the part of its spec that leads to the pod template.
pub trait Templated: Resource + Send + Sync + 'static {
    type Spec: DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;
    fn template(spec: &Self::Spec) -> Option<&PodTemplateSpec>;
}

/// A built-in workload kind.
pub trait Workload: Templated + Resource<DynamicType = ()> {
    const KIND: WorkloadKind;
}

/// `spec.template`, as most kinds keep it.
#[derive(Clone, Debug, Deserialize)]
pub struct TemplateSpec {
    #[serde(default)]
    template: Option<PodTemplateSpec>,
}

/// `spec.jobTemplate.spec.template` of a CronJob.
#[derive(Clone, Debug, Deserialize)]
pub struct CronJobSpec {
    #[serde(default, rename = "jobTemplate")]
    job_template: Option<JobTemplate>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct JobTemplate {
    #[serde(default)]
    spec: Option<TemplateSpec>,
}

/// An Argo Rollout's `spec.template`. Only the CRD's schema checks it, so a template that
/// does not read as a pod template counts as absent instead of failing the whole list.
#[derive(Clone, Debug, Deserialize)]
pub struct RolloutSpec {
    #[serde(default, deserialize_with = "lenient")]
    template: Option<PodTemplateSpec>,
}

fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PodTemplateSpec>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| PodTemplateSpec::deserialize(v).ok()))
}

macro_rules! workload {
    ($ty:ty, $kind:expr) => {
        impl Templated for $ty {
            type Spec = TemplateSpec;
            fn template(spec: &TemplateSpec) -> Option<&PodTemplateSpec> {
                spec.template.as_ref()
            }
        }
        impl Workload for $ty {
            const KIND: WorkloadKind = $kind;
        }
    };
}

workload!(Deployment, WorkloadKind::Deployment);
workload!(StatefulSet, WorkloadKind::StatefulSet);
workload!(DaemonSet, WorkloadKind::DaemonSet);
workload!(Job, WorkloadKind::Job);

impl Templated for CronJob {
    type Spec = CronJobSpec;
    fn template(spec: &CronJobSpec) -> Option<&PodTemplateSpec> {
        spec.job_template.as_ref()?.spec.as_ref()?.template.as_ref()
    }
}
impl Workload for CronJob {
    const KIND: WorkloadKind = WorkloadKind::CronJob;
}

/// Argo Rollouts (a CRD, so addressed through its `ApiResource`).
impl Templated for DynamicObject {
    type Spec = RolloutSpec;
    fn template(spec: &RolloutSpec) -> Option<&PodTemplateSpec> {
        spec.template.as_ref()
    }
}

/// The metadata a watch needs: identity, the resourceVersion the watcher resumes from, and
/// the annotations the projection filters.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = SlimMeta::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        resource_version: m.resource_version,
        annotations: m.annotations,
        ..ObjectMeta::default()
    })
}

/// A workload of type `K` as a watch decodes it; an [`Api`](kube::Api) of `Slim<K>` lists
/// and watches `K`'s resource.
#[derive(Deserialize)]
#[serde(bound = "")]
pub struct Slim<K: Templated> {
    #[serde(default, deserialize_with = "slim_meta")]
    metadata: ObjectMeta,
    #[serde(default = "Option::default")]
    spec: Option<K::Spec>,
    #[serde(skip)]
    kind: PhantomData<fn() -> K>,
}

impl<K: Templated> Slim<K> {
    pub fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(K::template)
    }
}

impl<K: Templated> Clone for Slim<K> {
    fn clone(&self) -> Self {
        Slim {
            metadata: self.metadata.clone(),
            spec: self.spec.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Templated> fmt::Debug for Slim<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slim")
            .field("metadata", &self.metadata)
            .field("spec", &self.spec)
            .finish()
    }
}

impl<K: Templated> Resource for Slim<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests;
