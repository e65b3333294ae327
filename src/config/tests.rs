//! The typed configuration, from command lines.

use std::time::Duration;

use clap::Parser as _;

use super::*;
use crate::cli::{Cli, Command};
use crate::reload::keys::Key;
use crate::reload::model::{SourceKind, WorkloadKind};
use crate::testing::pairs as labels;

fn args(flags: &[&str]) -> ServeArgs {
    let argv = ["kreload", "serve"].iter().chain(flags);
    match Cli::try_parse_from(argv).expect("parse").command {
        Command::Serve(args) => *args,
        other => panic!("unexpected {other:?}"),
    }
}

fn config(flags: &[&str]) -> anyhow::Result<Config> {
    Ok(Config::from_args(&args(flags), None)?)
}

#[test]
fn label_selector_flags_take_kubernetes_selectors() {
    let filter = config(&[
        "--resource-label-selector=env!=dev,tier in (web,api)",
        "--namespace-selector=team notin (b,c)",
        "--namespace-selector=owner:*",
    ])
    .expect("config")
    .scope;
    let labels_match = |pairs| filter.resource_labels.matches(&labels(pairs));
    assert!(labels_match(&[("tier", "web")]));
    assert!(labels_match(&[("tier", "api"), ("env", "prod")]));
    assert!(!labels_match(&[("tier", "web"), ("env", "dev")]));
    assert!(!labels_match(&[("tier", "db")]));
    assert_eq!(
        filter.namespace_gate.selector(),
        Some("team notin (b,c),owner")
    );
    let everything = config(&[]).expect("config").scope;
    assert!(everything.resource_labels.is_empty());
    assert_eq!(everything.namespace_gate.selector(), None);
}

#[test]
fn a_bad_label_selector_fails_naming_the_flag_and_the_part() {
    for (flag, part) in [
        ("--resource-label-selector=env!", "'!'"),
        ("--namespace-selector=team in (a", "end of input"),
        ("--namespace-selector=Team/x=a", "Team/x"),
    ] {
        let name = flag.split('=').next().unwrap_or_default();
        let error = config(&[flag]).expect_err(flag);
        let text = format!("{error:#}");
        assert!(
            text.starts_with(&format!("invalid {name}: label selector")),
            "{text}"
        );
        assert!(text.contains(part), "{flag}: {text}");
    }
}

#[test]
fn flags_become_scope_rules_and_settings() {
    let c = config(&[
        "--namespaces= a ,b,,",
        "--namespaces-to-ignore=kube-public",
        "--own-namespace=kreload",
        "--resources-to-ignore=secrets",
        "--ignored-workload-types=jobs",
        "--auto-reload-all",
        "--compat-reloader=false",
        "--reload-strategy=annotations",
        "--reload-on-delete",
        "--coalesce-window=250ms",
        "--queue-capacity=7",
    ])
    .expect("config");
    let scope = &c.scope;
    assert_eq!(scope.namespaces, ["a", "b"].map(String::from).into());
    assert!(scope.namespace_allowed("a"));
    assert!(!scope.namespace_allowed("c"));
    assert!(!scope.namespace_allowed("kreload"));
    assert!(scope.ignored_kinds.contains(&SourceKind::Secret));
    assert!(scope.reload_on_delete && !scope.reload_on_create);
    assert!(c.rules.auto_reload_all);
    assert!(c.rules.ignored_workload_kinds.contains(&WorkloadKind::Job));
    assert_eq!(
        c.rules.vocabulary.prefixes().len(),
        1,
        "kreload's prefix only"
    );
    assert_eq!(c.strategy, Strategy::Annotations);
    assert_eq!(c.coalesce_window, Duration::from_millis(250));
    assert_eq!(c.queue_capacity, 7);
}

#[test]
fn an_empty_own_namespace_or_instance_means_none() {
    let c = Config::from_args(&args(&["--own-namespace="]), Some(String::new())).expect("config");
    assert_eq!(c.scope.own_namespace, None);
    assert_eq!(c.instance, None);
    let c = Config::from_args(&args(&[]), Some("kreload-0".into())).expect("config");
    assert_eq!(c.instance.as_deref(), Some("kreload-0"));
    assert_eq!(c.tunables.worker_concurrency, 8);
}

#[test]
fn kubernetes_namespace_is_reloaders_single_namespace_mode() {
    let scope = |flags: &[&str], ns: &str| {
        let mut a = args(flags);
        a.reloader.kubernetes_namespace = Some(ns.to_owned());
        Config::from_args(&a, None).expect("config").scope
    };
    // Reloader's chart: KUBERNETES_NAMESPACE is its own namespace, which it then watches.
    let single = scope(
        &[
            "--own-namespace=tools",
            "--namespaces-to-ignore=tools",
            "--namespace-selector=a=b",
        ],
        "tools",
    );
    assert!(single.namespace_allowed("tools"));
    assert!(!single.namespace_allowed("shop"));
    assert_eq!(single.namespace_gate.selector(), None);
    // Another namespace than kreload's own: its own stays out.
    let other = scope(&["--own-namespace=kreload"], "shop");
    assert!(other.namespace_allowed("shop"));
    assert!(!other.namespace_allowed("kreload"));
    // --namespaces wins, as in Reloader; an empty value is no mode at all.
    let listed = scope(&["--namespaces=a,b"], "shop");
    assert!(listed.namespace_allowed("a") && !listed.namespace_allowed("shop"));
    let empty = scope(&["--namespaces-to-ignore=x"], " ");
    assert!(empty.namespace_allowed("shop") && !empty.namespace_allowed("x"));
}

/// What Reloader's chart renders: a quoted selector, Reloader's own annotation keys replaced,
/// `--is-Argo-Rollouts`, Reloader's log level names.
#[test]
fn reloaders_chart_values_read_as_reloader_reads_them() {
    let c = config(&[
        "--namespace-selector=\"team=a,env in (x,y)\"",
        "--auto-annotation",
        "example.com/auto",
        "--pause-deployment-time-annotation=example.com/paused-at",
        "--is-Argo-Rollouts=false",
        "--webhook-url",
        "http://hooks.example/x",
    ])
    .expect("config");
    assert_eq!(
        c.scope.namespace_gate.selector(),
        Some("team=a,env in (x,y)")
    );
    assert_eq!(
        c.rules.vocabulary.key("reloader.stakater.com", Key::Auto),
        "example.com/auto"
    );
    assert_eq!(
        c.rules
            .vocabulary
            .key("reloader.stakater.com", Key::PausedAt),
        "example.com/paused-at"
    );
    assert_eq!(
        c.rules.vocabulary.key("kreload.dev", Key::Auto),
        "kreload.dev/auto"
    );
    assert!(
        c.rules
            .ignored_workload_kinds
            .contains(&WorkloadKind::Rollout)
    );
    assert_eq!(
        c.notify.webhook_url.as_deref(),
        Some("http://hooks.example/x")
    );
    assert!(c.notify.alerts.is_none());
    let alerting = config(&[
        "--alert-on-reload=true",
        "--alert-sink=Teams",
        "--alert-webhook-url=http://127.0.0.1:1/a",
        "--alert-webhook-proxy= ",
    ])
    .expect("config");
    let a = alerting.notify.alerts.expect("alerts on");
    assert_eq!(a.sink, crate::notify::sinks::Sink::Teams);
    assert_eq!(a.proxy, None);
    let no_url = config(&["--alert-on-reload=true"]).expect("config");
    assert!(no_url.notify.alerts.is_none());
    assert!(!c.metrics_by_namespace);
    let rollouts = config(&["--is-Argo-Rollouts=true"]).expect("config");
    assert!(rollouts.rules.ignored_workload_kinds.is_empty());
}

#[test]
fn the_lease_is_taken_only_with_enable_ha_in_kreloads_own_namespace() {
    assert!(config(&[]).expect("config").reliability.lease.is_none());
    let flags = [
        "--enable-ha",
        "--own-namespace=kreload",
        "--lease-duration=20s",
    ];
    let c = Config::from_args(&args(&flags), Some("kreload-7f9c".into())).expect("config");
    let lease = c.reliability.lease.expect("lease");
    assert_eq!(lease.namespace, "kreload");
    assert_eq!(lease.name, "kreload");
    assert_eq!(lease.identity, "kreload-7f9c");
    assert_eq!(lease.duration, Duration::from_secs(20));
    let c = config(&["--enable-ha", "--lease-namespace=ops"]).expect("config");
    assert_eq!(c.reliability.lease.expect("lease").namespace, "ops");
}

#[test]
fn storm_and_resync_flags_reach_the_config() {
    let c = config(&[
        "--storm-max-reloads=2",
        "--storm-period=1m",
        "--storm-quiet=5s",
        "--max-patches-per-second=0",
        "--resync-period=0s",
        "--sync-after-restart=false",
    ])
    .expect("config")
    .reliability;
    assert_eq!(c.storm.limits.max, 2);
    assert_eq!(c.storm.limits.period, Duration::from_secs(60));
    assert_eq!(c.storm.limits.quiet, Duration::from_secs(5));
    assert_eq!(c.storm.patches_per_second, 0);
    assert!(c.resync.period.is_zero() && !c.resync.on_start);
}

#[test]
fn secret_provider_classes_are_acted_on_only_with_enable_csi_integration() {
    let spc = SourceKind::SecretProviderClass;
    let off = config(&[]).expect("config");
    assert!(off.scope.ignored_kinds.contains(&spc));
    assert!(!off.scope.ignored_kinds.contains(&SourceKind::Secret));
    for flag in ["--enable-csi-integration", "--enable-csi-integration=true"] {
        let on = config(&[flag]).expect("config");
        assert!(!on.scope.ignored_kinds.contains(&spc), "{flag}");
    }
    let on =
        config(&["--enable-csi-integration", "--resources-to-ignore=secrets"]).expect("config");
    assert_eq!(on.scope.ignored_kinds, [SourceKind::Secret].into());
    let off = config(&["--enable-csi-integration=false"]).expect("config");
    assert!(off.scope.ignored_kinds.contains(&spc));
}
