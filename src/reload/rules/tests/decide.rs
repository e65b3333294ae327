//! The precedence table of `decide`.

use super::*;
use crate::reload::refs::ContainerUse;

use Decision::{Reload, Skip};
use SkipReason::*;
use WorkloadKind::*;

fn cm(name: &str) -> SourceRef {
    SourceRef::configmap(name)
}

fn sec(name: &str) -> SourceRef {
    SourceRef::secret(name)
}

const AUTO: Decision = Reload { auto: true };
const NAMED: Decision = Reload { auto: false };

struct Case {
    name: &'static str,
    compat: bool,
    all: bool,
    kind: WorkloadKind,
    meta: &'static [(&'static str, &'static str)],
    tmpl: &'static [(&'static str, &'static str)],
    src: SourceRef,
    src_ann: &'static [(&'static str, &'static str)],
    referenced: bool,
    want: Decision,
}

/// Defaults: compat on, no reload-all, a Deployment, `configmap/app-config`, referenced.
fn case(name: &'static str, want: Decision) -> Case {
    Case {
        name,
        compat: true,
        all: false,
        kind: WorkloadKind::Deployment,
        meta: &[],
        tmpl: &[],
        src: SourceRef::configmap("app-config"),
        src_ann: &[],
        referenced: true,
        want,
    }
}

impl Case {
    fn meta(mut self, m: &'static [(&'static str, &'static str)]) -> Self {
        self.meta = m;
        self
    }
    fn tmpl(mut self, m: &'static [(&'static str, &'static str)]) -> Self {
        self.tmpl = m;
        self
    }
    fn src_ann(mut self, m: &'static [(&'static str, &'static str)]) -> Self {
        self.src_ann = m;
        self
    }
    fn src(mut self, s: SourceRef) -> Self {
        self.src = s;
        self
    }
    fn unreferenced(mut self) -> Self {
        self.referenced = false;
        self
    }
    fn strict(mut self) -> Self {
        self.compat = false;
        self
    }
    fn all(mut self) -> Self {
        self.all = true;
        self
    }
    fn kind(mut self, k: WorkloadKind) -> Self {
        self.kind = k;
        self
    }
}

fn cases_1() -> Vec<Case> {
    vec![
        // 1. workload kind ignored (run() ignores Job)
        case("job ignored", Skip(WorkloadKindIgnored))
            .kind(Job)
            .meta(&[("kreload.dev/auto", "true")]),
        case("cronjob not ignored", AUTO)
            .kind(CronJob)
            .meta(&[("kreload.dev/auto", "true")]),
        // 2. source ignore, exactly "true", either prefix
        case("source ignored beats named", Skip(SourceIgnored))
            .meta(&[("configmap.kreload.dev/reload", "app-config")])
            .src_ann(&[("kreload.dev/ignore", "true")]),
        case("ignore True is not true", AUTO)
            .meta(&[("kreload.dev/auto", "true")])
            .src_ann(&[("kreload.dev/ignore", "True")]),
        case("reloader ignore under compat", Skip(SourceIgnored))
            .meta(&[("kreload.dev/auto", "true")])
            .src_ann(&[("reloader.stakater.com/ignore", "true")]),
        case("reloader ignore without compat", AUTO)
            .strict()
            .meta(&[("kreload.dev/auto", "true")])
            .src_ann(&[("reloader.stakater.com/ignore", "true")]),
        // 4. exclude: metadata only, trimmed, exact, per kind
        case("excluded, trimmed", Skip(Excluded)).meta(&[
            ("kreload.dev/auto", "true"),
            ("configmaps.exclude.kreload.dev/reload", "a, app-config ,c"),
        ]),
        case("exclude is exact", AUTO).meta(&[
            ("kreload.dev/auto", "true"),
            ("configmaps.exclude.kreload.dev/reload", "app-conf,app-.*"),
        ]),
        case("secret exclude leaves configmaps", AUTO).meta(&[
            ("kreload.dev/auto", "true"),
            ("secrets.exclude.kreload.dev/reload", "app-config"),
        ]),
        case("exclude beats named", Skip(Excluded)).meta(&[
            ("configmap.reloader.stakater.com/reload", "app-config"),
            (
                "configmaps.exclude.reloader.stakater.com/reload",
                "app-config",
            ),
        ]),
        case("exclude in template ignored", AUTO).tmpl(&[
            ("kreload.dev/auto", "true"),
            ("configmaps.exclude.kreload.dev/reload", "app-config"),
        ]),
    ]
}

fn cases_2() -> Vec<Case> {
    vec![
        // 5. named: anchored regex per trimmed entry; reloads even unreferenced
        case("named exact, unreferenced", NAMED)
            .unreferenced()
            .meta(&[("configmap.kreload.dev/reload", "app-config")]),
        case("named list entry c", NAMED)
            .src(cm("c"))
            .meta(&[("configmap.kreload.dev/reload", "a,b , c")]),
        case("named list entry b", NAMED)
            .src(cm("b"))
            .meta(&[("configmap.kreload.dev/reload", "a,b , c")]),
        case("named list miss", Skip(NotOptedIn))
            .src(cm("d"))
            .meta(&[("configmap.kreload.dev/reload", "a,b , c")]),
        case("named regex", NAMED)
            .src(cm("app-x"))
            .meta(&[("configmap.kreload.dev/reload", "app-.*")]),
        case("named regex anchored at start", Skip(NotOptedIn))
            .src(cm("my-app-x"))
            .meta(&[("configmap.kreload.dev/reload", "app-.*")]),
        case("named regex anchored at end", Skip(NotOptedIn))
            .src(cm("app-config-2"))
            .meta(&[("configmap.kreload.dev/reload", "app-config")]),
        case("invalid entry skipped", NAMED)
            .meta(&[("configmap.kreload.dev/reload", "app-[, app-config")]),
        case("only invalid entry", Skip(NotOptedIn))
            .meta(&[("configmap.kreload.dev/reload", "app-(")]),
        case("dot is a wildcard, as in Reloader", NAMED)
            .src(cm("appxv1"))
            .meta(&[("configmap.kreload.dev/reload", "app.v1")]),
        case("alternation anchors like Reloader's ^a|b$", NAMED)
            .src(cm("abc"))
            .meta(&[("configmap.kreload.dev/reload", "a|b")]),
        case("secret named does not match configmap", Skip(NotOptedIn))
            .meta(&[("secret.kreload.dev/reload", "app-config")]),
        case("secret named matches secret", NAMED)
            .src(sec("app-config"))
            .meta(&[("secret.reloader.stakater.com/reload", "app-config")]),
        case("named beats auto false", NAMED).meta(&[
            ("kreload.dev/auto", "false"),
            ("configmap.kreload.dev/reload", "app-config"),
        ]),
        case("empty named", Skip(NotOptedIn)).meta(&[("configmap.kreload.dev/reload", "")]),
        // 6. search + match, both exactly "true"; referenced only
        case("search and match", AUTO)
            .meta(&[("kreload.dev/search", "true")])
            .src_ann(&[("kreload.dev/match", "true")]),
        case("search and match unreferenced", Skip(NotReferenced))
            .unreferenced()
            .meta(&[("kreload.dev/search", "true")])
            .src_ann(&[("kreload.dev/match", "true")]),
        case("search without match", Skip(NotOptedIn)).meta(&[("kreload.dev/search", "true")]),
        case("match True is not true", Skip(NotOptedIn))
            .meta(&[("kreload.dev/search", "true")])
            .src_ann(&[("kreload.dev/match", "True")]),
        case("search 1 is not true", Skip(NotOptedIn))
            .meta(&[("kreload.dev/search", "1")])
            .src_ann(&[("kreload.dev/match", "true")]),
        case("search and match across prefixes", AUTO)
            .meta(&[("reloader.stakater.com/search", "true")])
            .src_ann(&[("kreload.dev/match", "true")]),
    ]
}

fn cases_3() -> Vec<Case> {
    vec![
        // 7. auto: ParseBool forms, referenced only
        case("auto true", AUTO).meta(&[("kreload.dev/auto", "true")]),
        case("auto 1", AUTO).meta(&[("kreload.dev/auto", "1")]),
        case("auto T", AUTO).meta(&[("kreload.dev/auto", "T")]),
        case("auto yes", Skip(NotOptedIn)).meta(&[("kreload.dev/auto", "yes")]),
        case("auto unreferenced", Skip(NotReferenced))
            .unreferenced()
            .meta(&[("kreload.dev/auto", "true")]),
        case("typed auto", AUTO).meta(&[("configmap.kreload.dev/auto", "true")]),
        case("typed auto other kind", Skip(NotOptedIn))
            .src(sec("app-config"))
            .meta(&[("configmap.kreload.dev/auto", "true")]),
        case("typed secret auto", AUTO)
            .src(sec("app-config"))
            .meta(&[("secret.reloader.stakater.com/auto", "TRUE")]),
        case("nothing", Skip(NotOptedIn)),
        // auto-reload-all and its opt-outs
        case("reload-all", AUTO).all(),
        case("reload-all unreferenced", Skip(NotReferenced))
            .all()
            .unreferenced(),
        case("reload-all auto false", Skip(NotOptedIn))
            .all()
            .meta(&[("kreload.dev/auto", "false")]),
        case("reload-all reloader auto false", Skip(NotOptedIn))
            .all()
            .meta(&[("reloader.stakater.com/auto", "false")]),
        case("reload-all auto garbage opts out", Skip(NotOptedIn))
            .all()
            .meta(&[("kreload.dev/auto", "nope")]),
        case("reload-all auto empty", AUTO)
            .all()
            .meta(&[("kreload.dev/auto", "")]),
        case("reload-all typed cm false", Skip(NotOptedIn))
            .all()
            .meta(&[("configmap.kreload.dev/auto", "false")]),
        case("reload-all typed cm false, secret", AUTO)
            .all()
            .src(sec("s"))
            .meta(&[("configmap.kreload.dev/auto", "false")]),
        case("reload-all template auto false", Skip(NotOptedIn))
            .all()
            .tmpl(&[("kreload.dev/auto", "false")]),
    ]
}

fn cases_4() -> Vec<Case> {
    vec![
        // 3. template fallback
        case("template auto", AUTO).tmpl(&[("kreload.dev/auto", "true")]),
        case("template named", NAMED)
            .unreferenced()
            .tmpl(&[("configmap.reloader.stakater.com/reload", "app-config")]),
        case("metadata key blocks template", Skip(NotOptedIn))
            .meta(&[("kreload.dev/search", "false")])
            .tmpl(&[("kreload.dev/auto", "true")]),
        case(
            "empty metadata value still blocks template",
            Skip(NotOptedIn),
        )
        .meta(&[("kreload.dev/auto", "")])
        .tmpl(&[("kreload.dev/auto", "true")]),
        case("other kind's named key does not block template", NAMED)
            .meta(&[("secret.kreload.dev/reload", "x")])
            .tmpl(&[("configmap.kreload.dev/reload", "app-config")]),
        case(
            "reloader key in metadata blocks kreload key in template",
            Skip(NotOptedIn),
        )
        .meta(&[("reloader.stakater.com/auto", "false")])
        .tmpl(&[("kreload.dev/auto", "true")]),
        case("unrelated metadata does not block template", AUTO)
            .meta(&[("deployment.kreload.dev/pause-period", "5m")])
            .tmpl(&[("kreload.dev/auto", "true")]),
        // vocabularies
        case("reloader auto under compat", AUTO).meta(&[("reloader.stakater.com/auto", "true")]),
        case("reloader auto without compat", Skip(NotOptedIn))
            .strict()
            .meta(&[("reloader.stakater.com/auto", "true")]),
        case("kreload value wins", Skip(NotOptedIn)).meta(&[
            ("kreload.dev/auto", "false"),
            ("reloader.stakater.com/auto", "true"),
        ]),
    ]
}

fn cases() -> Vec<Case> {
    [cases_1(), cases_2(), cases_3(), cases_4()]
        .into_iter()
        .flatten()
        .collect()
}

fn run(c: &Case) -> Decision {
    let opts = RuleOptions {
        vocabulary: Vocabulary::new(c.compat),
        auto_reload_all: c.all,
        ignored_workload_kinds: [WorkloadKind::Job].into(),
    };
    let uses = if c.referenced {
        vec![c.src.clone()]
    } else {
        vec![]
    };
    let refs = PodRefs {
        containers: vec![ContainerUse {
            name: "app".into(),
            mounts: vec![],
            env: uses,
        }],
        init_containers: vec![],
    };
    let (meta, tmpl, src_ann) = (map(c.meta), map(c.tmpl), map(c.src_ann));
    let w = WorkloadView {
        kind: c.kind,
        annotations: &meta,
        template_annotations: &tmpl,
        refs: &refs,
    };
    let s = SourceView {
        source: &c.src,
        annotations: &src_ann,
    };
    let got = decide(&opts, &w, &s);
    // The index's filter must never hide a workload that would reload.
    if matches!(got, Reload { .. }) {
        assert!(opted_in(&opts, &meta, &tmpl), "{}: opted_in false", c.name);
    }
    got
}

#[test]
fn decide_table() {
    let mut failures = Vec::new();
    for c in cases() {
        let got = run(&c);
        if got != c.want {
            failures.push(format!("{}: got {got:?}, want {:?}", c.name, c.want));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
