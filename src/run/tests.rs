use std::collections::BTreeMap;

use clap::Parser as _;

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
