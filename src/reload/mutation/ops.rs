//! Pure JSON Patch operations for the workload mutation. Each function reads the workload
//! as JSON and returns RFC 6902 operations that apply, in order, to the object in the
//! request. Paths are built from tokens by the shared builders, which escape them.

use std::collections::BTreeMap;

use json_patch::PatchOperation;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Value, json};

use crate::reload::keys::{ENV_PREFIX, Key, Vocabulary};
use crate::reload::model::WorkloadKind;
use crate::reload::observed::Observed;
use crate::reload::ops::{add, replace};
use crate::reload::patch::{ReloadRecord, env_var_name, template_path, template_tokens};

/// The path tokens of the template, followed by `rest`.
fn at(kind: WorkloadKind, rest: &[&str]) -> Vec<String> {
    template_tokens(kind)
        .iter()
        .chain(rest)
        .map(|t| (*t).to_owned())
        .collect()
}

fn tokens(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

pub(super) fn template(kind: WorkloadKind, obj: &Value) -> Option<PodTemplateSpec> {
    obj.pointer(template_path(kind))
        .and_then(|t| serde_json::from_value(t.clone()).ok())
}

pub(super) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn containers(template: &Value) -> &[Value] {
    template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn env_name(var: &Value) -> Option<&str> {
    var.get("name").and_then(Value::as_str)
}

fn is_ours(name: &str) -> bool {
    name.starts_with(ENV_PREFIX) && (name.ends_with("_CONFIGMAP") || name.ends_with("_SECRET"))
}

/// kreload's marks in one kind of workload's template: its env vars and its
/// last-reloaded-from records, under the prefixes of `vocabulary`.
#[derive(Clone, Copy)]
pub struct Marks<'a> {
    pub kind: WorkloadKind,
    pub vocabulary: &'a Vocabulary,
}

impl Marks<'_> {
    fn template<'v>(&self, obj: &'v Value) -> Option<&'v Value> {
        obj.pointer(template_path(self.kind))
    }
}

/// Operations that put back kreload's env vars and last-reloaded-from annotations that
/// `old` had and `new` lost (a re-apply with replace), so the template stays as it was.
pub fn restore_ops(marks: Marks, old: &Value, new: &Value) -> Vec<PatchOperation> {
    let (kind, vocabulary) = (marks.kind, marks.vocabulary);
    let mut ops = Vec::new();
    let (Some(old_t), Some(new_t)) = (marks.template(old), marks.template(new)) else {
        return ops;
    };
    for (i, nc) in containers(new_t).iter().enumerate() {
        let Some(oc) = containers(old_t)
            .iter()
            .find(|oc| oc.get("name") == nc.get("name"))
        else {
            continue;
        };
        let new_env = nc.get("env").and_then(Value::as_array);
        let present =
            |name: &str| new_env.is_some_and(|e| e.iter().any(|v| env_name(v) == Some(name)));
        let missing: Vec<&Value> = oc
            .get("env")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter(|v| env_name(v).is_some_and(|n| is_ours(n) && !present(n)))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let i = i.to_string();
        if new_env.is_some() {
            let path = at(kind, &["spec", "containers", &i, "env", "-"]);
            for var in missing {
                ops.push(add(&tokens(&path), var.clone()));
            }
        } else {
            // One add of the whole list: separate adds of `env` would overwrite each other.
            let path = at(kind, &["spec", "containers", &i, "env"]);
            ops.push(add(&tokens(&path), json!(missing)));
        }
    }
    let old_ann = string_map(old_t.pointer("/metadata/annotations"));
    let new_ann = new_t.pointer("/metadata/annotations");
    let mut missing = BTreeMap::new();
    for prefix in vocabulary.prefixes() {
        let key = Key::LastReloadedFrom.with_prefix(prefix);
        if let Some(v) = old_ann.get(&key)
            && new_ann.and_then(|a| a.get(&key)).is_none()
        {
            missing.insert(key, v.clone());
        }
    }
    if !missing.is_empty() {
        if new_ann.is_some() {
            for (k, v) in missing {
                let path = at(kind, &["metadata", "annotations", &k]);
                ops.push(add(&tokens(&path), Value::String(v)));
            }
        } else if new_t.get("metadata").is_some() {
            let path = at(kind, &["metadata", "annotations"]);
            ops.push(add(&tokens(&path), json!(missing)));
        } else {
            let path = at(kind, &["metadata"]);
            ops.push(add(&tokens(&path), json!({ "annotations": missing })));
        }
    }
    ops
}

/// When the template changes for another reason, its new pods start with the live content,
/// which `live` records. kreload's marks for those sources (env vars, last-reloaded-from
/// records) must say the same, or a later change back to a hash a stale mark still carries
/// would be taken as already applied. The template changes anyway, so this adds no rollout.
pub fn rebaseline_ops(marks: Marks, obj: &Value, live: &Observed) -> Vec<PatchOperation> {
    let (kind, vocabulary) = (marks.kind, marks.vocabulary);
    let Some(t) = marks.template(obj) else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    for (source, hash) in live.iter() {
        let name = env_var_name(source);
        for (i, c) in containers(t).iter().enumerate() {
            let env = c
                .get("env")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            for (j, var) in env.iter().enumerate() {
                if env_name(var) == Some(name.as_str())
                    && var.get("value").and_then(Value::as_str) != Some(hash.as_str())
                {
                    let (i, j) = (i.to_string(), j.to_string());
                    let path = at(kind, &["spec", "containers", &i, "env", &j]);
                    ops.push(replace(
                        &tokens(&path),
                        json!({"name": name, "value": hash}),
                    ));
                }
            }
        }
    }
    let annotations = string_map(t.pointer("/metadata/annotations"));
    for prefix in vocabulary.prefixes() {
        let key = Key::LastReloadedFrom.with_prefix(prefix);
        let Some(mut record) = annotations.get(&key).and_then(|v| ReloadRecord::parse(v)) else {
            continue;
        };
        let live_hash = live.iter().find_map(|(s, h)| {
            (s.kind.env_suffix() == record.kind && s.name == record.name).then_some(h)
        });
        if let Some(h) = live_hash
            && record.hash != *h
        {
            record.hash = h.to_owned();
            let path = at(kind, &["metadata", "annotations", &key]);
            ops.push(replace(&tokens(&path), Value::String(record.to_json())));
        }
    }
    ops
}

#[cfg(test)]
mod tests;
