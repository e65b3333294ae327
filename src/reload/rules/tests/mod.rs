use super::*;
use crate::reload::testing::pairs as map;

mod decide;

type Pairs = &'static [(&'static str, &'static str)];

/// (name, compat, auto_reload_all, metadata, template, want)
const OPTED_IN: &[(&str, bool, bool, Pairs, Pairs, bool)] = &[
    ("nothing", true, false, &[], &[], false),
    ("reload-all", true, true, &[], &[], true),
    (
        "reload-all auto false",
        true,
        true,
        &[("kreload.dev/auto", "false")],
        &[],
        false,
    ),
    (
        "reload-all typed cm false",
        true,
        true,
        &[("configmap.kreload.dev/auto", "false")],
        &[],
        true,
    ),
    (
        // A SecretProviderClass change would still reload it, as in Reloader.
        "reload-all both typed false",
        true,
        true,
        &[
            ("configmap.kreload.dev/auto", "false"),
            ("secret.kreload.dev/auto", "0"),
        ],
        &[],
        true,
    ),
    (
        "reload-all every typed false",
        true,
        true,
        &[
            ("configmap.kreload.dev/auto", "false"),
            ("secret.kreload.dev/auto", "0"),
            ("secretproviderclass.kreload.dev/auto", "false"),
        ],
        &[],
        false,
    ),
    (
        "spc typed auto",
        true,
        false,
        &[("secretproviderclass.reloader.stakater.com/auto", "true")],
        &[],
        true,
    ),
    (
        "spc named",
        true,
        false,
        &[("secretproviderclass.kreload.dev/reload", "vault")],
        &[],
        true,
    ),
    (
        "auto false alone",
        true,
        false,
        &[("kreload.dev/auto", "false")],
        &[],
        false,
    ),
    (
        "auto false with named",
        true,
        false,
        &[
            ("kreload.dev/auto", "false"),
            ("secret.kreload.dev/reload", "s"),
        ],
        &[],
        true,
    ),
    (
        "empty named",
        true,
        false,
        &[("configmap.kreload.dev/reload", "")],
        &[],
        false,
    ),
    (
        "template auto",
        true,
        false,
        &[],
        &[("kreload.dev/auto", "true")],
        true,
    ),
    (
        "search",
        true,
        false,
        &[("kreload.dev/search", "true")],
        &[],
        true,
    ),
    (
        "search false",
        true,
        false,
        &[("kreload.dev/search", "false")],
        &[],
        false,
    ),
    (
        "auto garbage",
        true,
        false,
        &[("kreload.dev/auto", "yes")],
        &[],
        false,
    ),
    (
        "reloader auto compat",
        true,
        false,
        &[("reloader.stakater.com/auto", "true")],
        &[],
        true,
    ),
    (
        "reloader auto strict",
        false,
        false,
        &[("reloader.stakater.com/auto", "true")],
        &[],
        false,
    ),
    (
        "exclude alone",
        true,
        false,
        &[("configmaps.exclude.kreload.dev/reload", "x")],
        &[],
        false,
    ),
];

#[test]
fn opted_in_table() {
    for (name, compat, all, meta, tmpl, want) in OPTED_IN {
        let opts = RuleOptions {
            vocabulary: Vocabulary::new(*compat),
            auto_reload_all: *all,
            ignored_workload_kinds: BTreeSet::new(),
        };
        assert_eq!(opted_in(&opts, &map(meta), &map(tmpl)), *want, "{name}");
    }
}

#[test]
fn invalid_patterns_are_reported() {
    let ann = map(&[
        ("configmap.kreload.dev/reload", "ok, app-[ ,(x"),
        ("secret.reloader.stakater.com/reload", "[z-a],fine"),
        ("kreload.dev/auto", "[not-a-pattern-key"),
        (
            "secretproviderclass.reloader.stakater.com/reload",
            "vault-(db",
        ),
    ]);
    let found = invalid_reload_patterns(&Vocabulary::new(true), &ann);
    let got: Vec<(&str, &str)> = found
        .iter()
        .map(|p| (p.key.as_str(), p.entry.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("configmap.kreload.dev/reload", "app-["),
            ("configmap.kreload.dev/reload", "(x"),
            ("secret.reloader.stakater.com/reload", "[z-a]"),
            (
                "secretproviderclass.reloader.stakater.com/reload",
                "vault-(db"
            ),
        ]
    );
    assert!(
        found[0]
            .to_string()
            .starts_with("invalid regex \"app-[\" in annotation configmap.kreload.dev/reload: ")
    );
    let strict = invalid_reload_patterns(&Vocabulary::new(false), &ann);
    assert_eq!(strict.len(), 2);
    assert!(invalid_reload_patterns(&Vocabulary::new(true), &map(&[])).is_empty());
}
