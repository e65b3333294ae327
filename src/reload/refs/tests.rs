use super::*;
use serde_json::json;

fn spec(v: serde_json::Value) -> PodSpec {
    serde_json::from_value(v).expect("valid PodSpec")
}

fn cm(n: &str) -> SourceRef {
    SourceRef::configmap(n)
}

fn sec(n: &str) -> SourceRef {
    SourceRef::secret(n)
}

/// A pod that uses every kind of reference once, and a few that must not count.
fn full() -> PodSpec {
    spec(json!({
        "imagePullSecrets": [{"name": "pull"}],
        "volumes": [
            {"name": "cfg", "configMap": {"name": "cm-vol"}},
            {"name": "tls", "secret": {"secretName": "sec-vol"}},
            {"name": "proj", "projected": {"sources": [
                {"configMap": {"name": "cm-proj"}},
                {"secret": {"name": "sec-proj"}},
                {"serviceAccountToken": {"path": "token"}}
            ]}},
            {"name": "unmounted", "configMap": {"name": "cm-unmounted"}},
            {"name": "init-only", "secret": {"secretName": "sec-init"}},
            {"name": "scratch", "emptyDir": {}}
        ],
        "initContainers": [{
            "name": "init",
            "volumeMounts": [{"name": "init-only", "mountPath": "/i"}],
            "envFrom": [{"configMapRef": {"name": "cm-init-env"}}]
        }],
        "containers": [
            {
                "name": "app",
                "volumeMounts": [
                    {"name": "cfg", "mountPath": "/c"},
                    {"name": "scratch", "mountPath": "/s"},
                    {"name": "cfg", "mountPath": "/c2"}
                ],
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-key", "key": "a"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "sec-key", "key": "b"}}},
                    {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "D", "value": "plain"}
                ]
            },
            {
                "name": "sidecar",
                "volumeMounts": [{"name": "tls", "mountPath": "/t"}, {"name": "proj", "mountPath": "/p"}],
                "envFrom": [{"secretRef": {"name": "sec-envfrom"}}, {"configMapRef": {"name": "cm-key"}}]
            }
        ],
        "ephemeralContainers": [{
            "name": "debug",
            "envFrom": [{"configMapRef": {"name": "cm-ephemeral"}}]
        }]
    }))
}

#[test]
fn projects_every_reference_per_container() {
    let refs = pod_refs(&full());
    assert_eq!(
        refs.containers,
        vec![
            ContainerUse {
                name: "app".into(),
                mounts: vec![cm("cm-vol")],
                env: vec![cm("cm-key"), sec("sec-key")],
            },
            ContainerUse {
                name: "sidecar".into(),
                mounts: vec![sec("sec-vol"), cm("cm-proj"), sec("sec-proj")],
                env: vec![sec("sec-envfrom"), cm("cm-key")],
            },
        ]
    );
    assert_eq!(
        refs.init_containers,
        vec![ContainerUse {
            name: "init".into(),
            mounts: vec![sec("sec-init")],
            env: vec![cm("cm-init-env")],
        }]
    );
}

#[test]
fn what_does_not_count() {
    let refs = pod_refs(&full());
    for not in [
        cm("cm-unmounted"),
        sec("pull"),
        cm("cm-ephemeral"),
        sec("cm-vol"),
    ] {
        assert!(!refs.references(&not), "{not}");
    }
    let all: Vec<String> = refs.sources().iter().map(ToString::to_string).collect();
    assert_eq!(
        all,
        [
            "configmap/cm-init-env",
            "configmap/cm-key",
            "configmap/cm-proj",
            "configmap/cm-vol",
            "secret/sec-envfrom",
            "secret/sec-init",
            "secret/sec-key",
            "secret/sec-proj",
            "secret/sec-vol",
        ]
    );
}

#[test]
fn empty_and_nameless() {
    let refs = pod_refs(&PodSpec::default());
    assert_eq!(refs, PodRefs::default());
    assert_eq!(refs.target_container(&cm("x"), false), None);
    // An optional secret volume without secretName references nothing.
    let refs = pod_refs(&spec(json!({
        "volumes": [{"name": "v", "secret": {}}],
        "containers": [{"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}]
    })));
    assert!(refs.sources().is_empty());
}

#[test]
fn target_container_follows_reloader() {
    let refs = pod_refs(&full());
    let cases: &[(SourceRef, bool, Option<&str>)] = &[
        // Mounted by a container: that container.
        (cm("cm-vol"), true, Some("app")),
        (sec("sec-proj"), true, Some("sidecar")),
        // Env ref: first container with it.
        (sec("sec-key"), true, Some("app")),
        (sec("sec-envfrom"), true, Some("sidecar")),
        // An env ref of both app and sidecar: the first container wins.
        (cm("cm-key"), true, Some("app")),
        // Used only by the init container: the first container.
        (sec("sec-init"), true, Some("app")),
        (cm("cm-init-env"), true, Some("app")),
        // Not used: only a named reload gets a container.
        (cm("cm-unmounted"), true, None),
        (cm("cm-unmounted"), false, Some("app")),
        (sec("nothing"), false, Some("app")),
    ];
    for (src, auto, want) in cases {
        assert_eq!(
            refs.target_container(src, *auto),
            *want,
            "{src} auto={auto}"
        );
    }
}

#[test]
fn mount_wins_over_earlier_env_ref() {
    // "a" references x by env, "b" mounts it: Reloader looks at mounts first.
    let refs = pod_refs(&spec(json!({
        "volumes": [{"name": "v", "configMap": {"name": "x"}}],
        "containers": [
            {"name": "a", "envFrom": [{"configMapRef": {"name": "x"}}]},
            {"name": "b", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}
        ]
    })));
    assert_eq!(refs.target_container(&cm("x"), true), Some("b"));
}

#[test]
fn init_only_use_without_containers_gets_none() {
    let refs = PodRefs {
        containers: vec![],
        init_containers: vec![ContainerUse {
            name: "init".into(),
            mounts: vec![cm("x")],
            env: vec![],
        }],
    };
    assert!(refs.references(&cm("x")));
    assert_eq!(refs.target_container(&cm("x"), true), None);
    assert_eq!(refs.target_container(&cm("x"), false), None);
}

#[test]
fn same_volume_twice_and_same_source_in_two_volumes_dedup() {
    let refs = pod_refs(&spec(json!({
        "volumes": [
            {"name": "v1", "configMap": {"name": "x"}},
            {"name": "v2", "projected": {"sources": [{"configMap": {"name": "x"}}, {"configMap": {"name": "y"}}]}}
        ],
        "containers": [{"name": "c", "volumeMounts": [
            {"name": "v2", "mountPath": "/a"}, {"name": "v1", "mountPath": "/b"}, {"name": "v1", "mountPath": "/c"}
        ]}]
    })));
    assert_eq!(refs.containers[0].mounts, vec![cm("x"), cm("y")]);
}

#[test]
fn a_csi_volume_references_its_secret_provider_class() {
    let spc = |n: &str| SourceRef::secret_provider_class(n);
    let refs = pod_refs(&spec(json!({
        "volumes": [
            {"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true,
                "volumeAttributes": {"secretProviderClass": "vault-db"}}},
            {"name": "init-secrets", "csi": {"driver": "secrets-store.csi.k8s.io",
                "volumeAttributes": {"secretProviderClass": "vault-init"}}},
            {"name": "unmounted", "csi": {"driver": "secrets-store.csi.k8s.io",
                "volumeAttributes": {"secretProviderClass": "vault-unused"}}},
            // Another CSI driver without the attribute names no class.
            {"name": "other", "csi": {"driver": "ebs.csi.aws.com", "volumeAttributes": {"type": "gp3"}}},
            {"name": "bare", "csi": {"driver": "secrets-store.csi.k8s.io"}}
        ],
        "initContainers": [{"name": "init", "volumeMounts": [{"name": "init-secrets", "mountPath": "/i"}]}],
        "containers": [
            {"name": "app", "volumeMounts": [{"name": "other", "mountPath": "/o"}, {"name": "bare", "mountPath": "/b"}]},
            {"name": "sidecar", "volumeMounts": [{"name": "secrets", "mountPath": "/mnt/secrets"}]}
        ]
    })));
    assert_eq!(refs.containers[0].mounts, vec![]);
    assert_eq!(refs.containers[1].mounts, vec![spc("vault-db")]);
    assert!(refs.references(&spc("vault-init")));
    assert!(!refs.references(&spc("vault-unused")));
    // Reloader's container choice: the mounting container; an init-only use goes to the
    // first container.
    assert_eq!(
        refs.target_container(&spc("vault-db"), true),
        Some("sidecar")
    );
    assert_eq!(refs.target_container(&spc("vault-init"), true), Some("app"));
    assert_eq!(refs.target_container(&spc("vault-unused"), true), None);
    assert_eq!(
        refs.target_container(&spc("vault-unused"), false),
        Some("app")
    );
}
