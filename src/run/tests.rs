use std::collections::BTreeMap;

use clap::Parser as _;
use tokio::time::Instant;

use super::*;
use crate::cli::{Cli, Command};

fn args(flags: &[&str]) -> ServeArgs {
    let argv = ["kreload", "serve"].iter().chain(flags);
    match Cli::try_parse_from(argv).expect("parse").command {
        Command::Serve(args) => *args,
        other => panic!("unexpected {other:?}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn label_selector_flags_take_kubernetes_selectors() {
    let filter = source_filter(&args(&[
        "--resource-label-selector=env!=dev,tier in (web,api)",
        "--namespace-selector=team notin (b,c)",
        "--namespace-selector=owner:*",
    ]))
    .expect("filter");
    let labels_match = |pairs| filter.resource_labels.matches(&labels(pairs));
    assert!(labels_match(&[("tier", "web")]));
    assert!(labels_match(&[("tier", "api"), ("env", "prod")]));
    assert!(!labels_match(&[("tier", "web"), ("env", "dev")]));
    assert!(!labels_match(&[("tier", "db")]));
    assert_eq!(
        filter.namespace_gate.selector(),
        Some("team notin (b,c),owner")
    );
    let everything = source_filter(&args(&[])).expect("filter");
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
        let error = source_filter(&args(&[flag])).expect_err(flag);
        let text = format!("{error:#}");
        assert!(
            text.starts_with(&format!("invalid {name}: label selector")),
            "{text}"
        );
        assert!(text.contains(part), "{flag}: {text}");
    }
}

fn ready() -> Readiness {
    let readiness = Readiness::new();
    readiness.set_tls_bound();
    readiness.set_index_synced();
    readiness
}

#[tokio::test(start_paused = true)]
async fn readiness_drops_when_shutdown_begins_not_after_the_drain() {
    let token = CancellationToken::new();
    let readiness = ready();
    let drain = Drain::new(token.clone(), Duration::from_secs(20));
    let withdrawn = withdraw_on_shutdown(readiness.clone(), drain.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(readiness.is_ready());
    token.cancel();
    withdrawn.await.expect("join");
    assert!(!readiness.is_ready());
    // Nothing has drained yet: the deadline is the whole grace period away.
    assert_eq!(
        drain.deadline().await,
        Instant::now() + Duration::from_secs(20)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stuck_listener_and_a_stuck_worker_share_one_grace_period() {
    let grace = Duration::from_secs(20);
    let token = CancellationToken::new();
    let drain = Drain::new(token.clone(), grace);
    let queue = Queue::new(10, Duration::from_secs(3));
    // The listener holds a request that never finishes, so it returns at the deadline.
    let listener = {
        let drain = drain.clone();
        async move {
            tokio::time::sleep_until(drain.deadline().await).await;
            Ok::<(), admission::ServerError>(())
        }
    };
    // The worker is stuck on a patch.
    let worker = tokio::spawn(std::future::pending::<()>());
    let began = Instant::now() + Duration::from_secs(5);
    let stop = async {
        tokio::time::sleep_until(began).await;
        token.cancel();
    };
    let (served, ()) = tokio::join!(drain_in_order(listener, worker, &queue, &drain), stop);
    served.expect("served");
    assert_eq!(Instant::now(), began + grace);
}

#[tokio::test(start_paused = true)]
async fn a_listener_error_shuts_down_at_once() {
    let drain = Drain::new(CancellationToken::new(), Duration::from_secs(20));
    let queue = Queue::new(10, Duration::from_secs(3));
    let failed = std::future::ready(Err::<(), _>("bind"));
    let worker = tokio::spawn(async {});
    let started = Instant::now();
    assert_eq!(
        drain_in_order(failed, worker, &queue, &drain).await,
        Err("bind")
    );
    assert_eq!(Instant::now(), started);
}
