use super::*;
use crate::testing::pairs as labels;

fn parse(values: &[&str]) -> Result<Selector, SelectorError> {
    let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    Selector::parse(&values)
}

#[test]
fn each_form_parses_to_its_kubernetes_text() {
    let cases: &[(&[&str], &str)] = &[
        (&[], ""),
        (&[""], ""),
        (&["  "], ""),
        (&["env=prod"], "env=prod"),
        (&["env==prod"], "env=prod"),
        (&["env!=dev"], "env!=dev"),
        (&["env"], "env"),
        (&["!env"], "!env"),
        (&[" env = prod "], "env=prod"),
        (&["env="], "env="),
        (&["env!="], "env!="),
        // clap split `env in (a,b)` at the comma; the parts are joined back.
        (&["env in (a", "b)"], "env in (a,b)"),
        (&["env notin (b", " a", "b)"], "env notin (a,b)"),
        (&["env in(a)"], "env in (a)"),
        (&["env in ()"], "env in ()"),
        (&["env in (a", ")"], "env in (,a)"),
        (&["env in (a", "", "b)"], "env in (,a,b)"),
        (&["replicas>2", "replicas<10"], "replicas>2,replicas<10"),
        (
            &["app.kubernetes.io/name=web", "tier"],
            "app.kubernetes.io/name=web,tier",
        ),
        (&["a=b", "!c", "d in (e)"], "a=b,!c,d in (e)"),
        // `in` and `notin` are operators only after a key.
        (&["in=notin"], "in=notin"),
        (&["in in (in", "notin)"], "in in (in,notin)"),
        // Reloader's legacy forms.
        (&["env:prod"], "env=prod"),
        (&["env:*"], "env"),
        (&["env=*"], "env"),
        (&["env = *"], "env"),
        (&["team:a", "env=*", "tier!=db"], "team=a,env,tier!=db"),
    ];
    for (values, want) in cases {
        let selector = parse(values).unwrap_or_else(|e| panic!("{values:?}: {e}"));
        assert_eq!(selector.to_kubernetes(), *want, "{values:?}");
        assert_eq!(selector.is_empty(), want.is_empty(), "{values:?}");
        // What kreload sends the API server reads back as the same selector.
        let again = parse(&[want]).unwrap_or_else(|e| panic!("{want:?}: {e}"));
        assert_eq!(again, selector, "{want:?}");
    }
}

#[test]
fn matching_follows_kubernetes_including_absent_keys() {
    let none = labels(&[]);
    let dev = labels(&[("env", "dev")]);
    let prod = labels(&[("env", "prod")]);
    let empty = labels(&[("env", "")]);
    let cases: &[(&str, &BTreeMap<String, String>, bool)] = &[
        ("", &none, true),
        ("", &dev, true),
        ("env=dev", &dev, true),
        ("env=dev", &prod, false),
        ("env=dev", &none, false),
        ("env==dev", &dev, true),
        // `!=` and `notin` hold when the key is absent.
        ("env!=dev", &none, true),
        ("env!=dev", &dev, false),
        ("env!=dev", &prod, true),
        ("env notin (dev,test)", &none, true),
        ("env notin (dev,test)", &dev, false),
        ("env notin (dev,test)", &prod, true),
        ("env in (dev,test)", &none, false),
        ("env in (dev,test)", &dev, true),
        ("env in (dev,test)", &prod, false),
        ("env", &empty, true),
        ("env", &none, false),
        ("!env", &none, true),
        ("!env", &empty, false),
        ("env=", &empty, true),
        ("env=", &none, false),
        ("env in (,dev)", &empty, true),
        ("env=dev,tier", &dev, false),
        ("env=dev,!tier", &dev, true),
    ];
    for (text, labels, want) in cases {
        let selector = parse(&[text]).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(selector.matches(labels), *want, "{text:?} on {labels:?}");
    }
}

#[test]
fn greater_and_less_compare_integers_and_need_the_key() {
    let selector = parse(&["n>2", "n<10"]).expect("parse");
    for (value, want) in [("3", true), ("9", true), ("2", false), ("10", false)] {
        assert_eq!(selector.matches(&labels(&[("n", value)])), want, "{value}");
    }
    assert!(!selector.matches(&labels(&[("n", "three")])));
    assert!(!selector.matches(&labels(&[])));
}

const BAD: &str = include_str!("bad.jsonl");

#[test]
fn bad_selectors_are_refused_naming_the_bad_part() {
    let cases: Vec<(Vec<String>, String, String)> = BAD
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(cases.len(), 24, "every line of the table is read");
    for (values, kind, part) in &cases {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let err = parse(&values).expect_err(&format!("{values:?}"));
        let message = err.to_string();
        let named = match (kind.as_str(), &err) {
            ("syntax", SelectorError::Syntax { found, .. }) => found == part,
            ("key", SelectorError::Key { key, .. }) => key == part,
            ("value", SelectorError::Value { value, .. }) => value == part,
            _ => false,
        };
        assert!(named, "{values:?}: expected {kind} {part:?}, got {err:?}");
        assert!(message.starts_with("label selector "), "{message}");
    }
}

#[test]
fn length_limits_are_kubernetes_limits() {
    let name = "n".repeat(63);
    let value = "v".repeat(63);
    let prefix = format!("{}.example.com", "p".repeat(241));
    assert_eq!(prefix.len(), 253);
    for ok in [
        format!("{name}={value}"),
        format!("{prefix}/{name}"),
        format!("k in ({value})"),
    ] {
        assert!(parse(&[&ok]).is_ok(), "{ok}");
    }
    for bad in [
        format!("{name}n=v"),
        format!("k={value}v"),
        format!("p{prefix}/k"),
        format!("k notin (a,{value}v)"),
    ] {
        assert!(parse(&[&bad]).is_err(), "{bad}");
    }
}

#[test]
fn a_syntax_error_says_where_and_what_was_expected() {
    let err = parse(&["env in (a", "b"]).expect_err("unclosed");
    assert_eq!(
        err.to_string(),
        r#"label selector "env in (a,b": found end of input at offset 11, expected ',' or ')'"#
    );
}
