//! Issue 11's goals, judged from the figures of the run (met, missed, or not measured).

use crate::results::Results;

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn num(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "–".to_owned(), |v| crate::report::format_value(v, unit))
}

pub fn lines(r: &Results) -> Vec<String> {
    let g = |s: &str, m: &str, v: &str| r.get(s, m, v);
    let mut out = Vec::new();
    let mem_scale = r.scenarios.get("memory").map(|s| s.scale);
    let k_c = g("memory", "RSS steady, population C", "kreload");
    let r_c = g("memory", "RSS steady, population C", "reloader");
    let at10 = mem_scale.is_some_and(|s| s >= 10.0);
    let scale_note = mem_scale.map_or_else(String::new, |s| format!(" (memory ran at scale {s})"));
    out.push(format!(
        "- Memory under 40 MiB at 10× scale: {}{scale_note}: kreload {}, Reloader {}.",
        verdict(k_c.filter(|_| at10).map(|k| k < 40.0)),
        num(k_c, "MiB"),
        num(r_c, "MiB")
    ));
    out.push(format!(
        "- At most a twentieth of Reloader's there: {}: ratio {}.",
        verdict(k_c.zip(r_c).filter(|_| at10).map(|(k, r)| k * 20.0 <= r)),
        k_c.zip(r_c)
            .map_or("–".to_owned(), |(k, r)| format!("1/{:.1}", r / k))
    ));
    let per_s = g(
        "memory",
        "RSS growth per 1,000 Secrets (+500 ConfigMaps)",
        "kreload",
    );
    out.push(format!(
        "- No growth per 1,000 Secrets or ConfigMaps (taken as under 0.5 MiB, the noise of \
         one RSS sample): {}: {} per 1,000 Secrets with 500 ConfigMaps.",
        verdict(per_s.map(|v| v < 0.5)),
        num(per_s, "MiB")
    ));
    let per_w = g("memory", "RSS growth per 1,000 workloads", "kreload");
    out.push(format!(
        "- At most 2 MiB per 1,000 workloads: {}: {}.",
        verdict(per_w.map(|v| v <= 2.0)),
        num(per_w, "MiB")
    ));
    let idle = g("memory", "RSS idle, empty cluster", "kreload");
    out.push(format!(
        "- Idle under 12 MiB: {}: {}.",
        verdict(idle.map(|v| v < 12.0)),
        num(idle, "MiB")
    ));
    let p = |v: &str, q: &str| g("latency", &format!("reload latency {q}"), v);
    let (r50, r99) = (p("reloader", "p50"), p("reloader", "p99"));
    let (w50, w99) = (p("kreload-w0", "p50"), p("kreload-w0", "p99"));
    out.push(format!(
        "- Window 0: p50 at most half of Reloader's: {} ({} against {}); p99 no worse: {} \
         ({} against {}).",
        verdict(w50.zip(r50).map(|(w, r)| w * 2.0 <= r)),
        num(w50, "ms"),
        num(r50, "ms"),
        verdict(w99.zip(r99).map(|(w, r)| w <= r)),
        num(w99, "ms"),
        num(r99, "ms")
    ));
    let d50 = p("kreload", "p50");
    out.push(format!(
        "- Default window: p50 at most 3 s plus Reloader's p50: {} ({} against {}).",
        verdict(d50.zip(r50).map(|(d, r)| d <= 3000.0 + r)),
        num(d50, "ms"),
        num(r50.map(|r| r + 3000.0), "ms")
    ));
    let burst = g(
        "burst",
        "rollouts per workload per 5-update burst (mean)",
        "kreload",
    );
    out.push(format!(
        "- One rollout per burst at the default window: {}: {} (Reloader {}).",
        verdict(burst.map(|b| b <= 1.0)),
        num(burst, ""),
        num(
            g(
                "burst",
                "rollouts per workload per 5-update burst (mean)",
                "reloader"
            ),
            ""
        )
    ));
    let fk = g("fanout", "fan-out: time until all patched", "kreload");
    let fr = g("fanout", "fan-out: time until all patched", "reloader");
    out.push(format!(
        "- Fan-out at least 20 times faster than Reloader (default window): {}: {} against {}.",
        verdict(fk.zip(fr).map(|(k, r)| k * 20.0 <= r)),
        num(fk, "s"),
        num(fr, "s")
    ));
    let a = |m: &str| g("admission", m, "kreload");
    let p99 = a("admission p99, 64 KiB, 2 cores, 1 in flight");
    out.push(format!(
        "- Admission p99 under 1 ms at 64 KiB (2 cores, one review at a time): {}: {}; with 32 \
         in flight: {}.",
        verdict(p99.map(|v| v < 1.0)),
        num(p99, "ms"),
        num(a("admission p99, 64 KiB, 2 cores, 32 in flight"), "ms")
    ));
    let rate = a("admission reviews/s, 1 KiB, 2 cores, 32 in flight");
    out.push(format!(
        "- At least 20,000 reviews/s at 1 KiB on 2 cores: {}: {} (h2load shares the 2 cores).",
        verdict(rate.map(|v| v >= 20_000.0)),
        num(rate, "/s")
    ));
    let api = |case: &str| {
        g(
            "apiserver",
            &format!("API server ConfigMap UPDATE p99, webhook {case}"),
            "kreload",
        )
    };
    let (on, off) = (api("registered"), api("not registered"));
    out.push(format!(
        "- API server ConfigMap UPDATE p99 raised by under 5 ms: {}: {} registered, {} not.",
        verdict(on.zip(off).map(|(a, b)| a - b < 5.0)),
        num(on, "ms"),
        num(off, "ms")
    ));
    for (name, s) in &r.scenarios {
        let (Some(k), Some(rl)) = (s.costs.get("kreload"), s.costs.get("reloader")) else {
            continue;
        };
        let mut k = k.clone();
        if let Some(w0) = s.costs.get("kreload-w0") {
            k.add(w0);
            k.cpu_seconds /= 2.0;
            k.requests.total /= 2;
        }
        out.push(format!(
            "- Fewer API requests and CPU seconds than Reloader ({name}, kreload's mean over its \
             runs): {}: {} requests and {:.1} CPU s against {} and {:.1}.",
            verdict(Some(
                k.requests.total < rl.requests.total && k.cpu_seconds < rl.cpu_seconds
            )),
            k.requests.total,
            k.cpu_seconds,
            rl.requests.total,
            rl.cpu_seconds
        ));
    }
    out
}
