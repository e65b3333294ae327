//! `kreload-bench`: kreload against Stakater Reloader on one local control plane (issue 11).
//! Each controller runs alone against the same objects; the figures go to a table on
//! stdout, `BENCHMARKS.md` and `benchmarks/results.json`. Not run in CI.

mod cluster;
mod context;
mod controller;
mod goals;
mod heap;
mod machine;
mod observe;
mod populate;
mod procfs;
mod report;
mod results;
mod scenarios;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::Parser;

use context::Bench;
use results::{LoadSampler, Results, Scenario};

#[derive(Debug, Parser)]
#[command(
    name = "kreload-bench",
    about = "Benchmark kreload against Stakater Reloader"
)]
struct Args {
    /// The Reloader binary (a .gz is unpacked to a temporary directory).
    #[arg(long)]
    reloader_bin: PathBuf,
    /// 1 is issue 11's scale (10,000 Secrets, 5,000 ConfigMaps, 1,000 workloads in 200
    /// namespaces), 10 ten times it; below 1 also shrinks the fixed-size scenarios, for a
    /// quick check of the tool.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Run only these scenarios (comma-separated): memory, latency, burst, fanout, missed,
    /// admission, apiserver. The others keep their figures from benchmarks/results.json.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Updates measured per controller in the latency scenario.
    #[arg(long, default_value_t = 200)]
    updates: usize,
    /// The kreload binary; by default `cargo build --release -p kreload` builds it.
    #[arg(long)]
    kreload_bin: Option<PathBuf>,
    /// Directory with etcd and kube-apiserver; by default hack/controlplane.sh's.
    #[arg(long, env = "KUBEBUILDER_ASSETS")]
    assets: Option<PathBuf>,
    /// Where BENCHMARKS.md and benchmarks/ go (the repository root by default).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Skip the heaptrack profile in the memory scenario.
    #[arg(long)]
    no_heap_profile: bool,
    /// Only write BENCHMARKS.md again from benchmarks/results.json; start nothing.
    #[arg(long)]
    render: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kreload-bench: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        // Dropping `run` on a signal drops every process guard and temporary directory.
        tokio::select! {
            r = run(args) => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted; cleaned up"),
            _ = term.recv() => bail!("terminated; cleaned up"),
        }
    });
    drop(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kreload-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let known = report::ORDER;
    if let Some(bad) = args.only.iter().find(|s| !known.contains(&s.as_str())) {
        bail!("unknown scenario {bad:?} (known: {})", known.join(", "));
    }
    if args.scale.is_nan() || args.scale <= 0.0 {
        bail!("--scale must be positive");
    }
    let root = kreload_testenv::tools::repo_root();
    let out_dir = args.out_dir.clone().unwrap_or_else(|| root.clone());
    let json_path = out_dir.join("benchmarks/results.json");
    if args.render {
        let results = Results::load(&json_path);
        if results.scenarios.is_empty() {
            bail!("{} holds no results", json_path.display());
        }
        return write(&results, &out_dir, &json_path);
    }
    let assets = match &args.assets {
        Some(a) => a.clone(),
        None => controlplane_dir(&root).context("step: control-plane binaries")?,
    };
    let kreload_bin = match &args.kreload_bin {
        Some(b) => b.clone(),
        // A target directory of its own: built alone, kreload's dependencies get other
        // features than in this crate's build, and sharing one directory would rebuild
        // them on every run.
        None => {
            let target = std::env::current_exe()
                .ok()
                .and_then(|exe| Some(exe.parent()?.parent()?.join("bench-kreload")));
            context::build_kreload(&root, &[], target.as_deref(), false)
                .context("step: building kreload")?
        }
    };
    println!("==> control plane");
    let bench = Bench::setup(&assets, kreload_bin, &args.reloader_bin, args.scale)
        .await
        .context("step: setting up the control plane and binaries")?;
    let mut results = Results::load(&json_path);
    results.machine = machine::machine();
    results.versions = machine::versions(
        &args.reloader_bin.display().to_string(),
        &bench.reloader_sha1,
        bench.cluster.kubernetes_version().await,
    );
    results.command = std::env::args().collect::<Vec<_>>().join(" ");
    let heap = (!args.no_heap_profile && has("heaptrack") && has("heaptrack_print"))
        .then(|| out_dir.join("benchmarks/heaptrack-peaks.txt"));
    let sampler = LoadSampler::start();
    let mut populated = false;
    let mut timings = Vec::new();
    for name in known {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
            continue;
        }
        println!("==> {name}");
        let t0 = Instant::now();
        let (_, _, mark) = sampler.since(usize::MAX);
        let mut s = Scenario {
            started_at: now(),
            scale: args.scale,
            kreload_commit: results.versions.kreload_commit.clone(),
            load_start: procfs::loadavg()[0],
            populated: populated || name == "memory",
            ..Scenario::default()
        };
        let b = &bench;
        let outcome = match name {
            "memory" => scenarios::memory::run(b, &mut s, heap.as_deref()).await,
            "latency" => scenarios::latency::run(b, &mut s, args.updates).await,
            "burst" => scenarios::rollouts::burst(b, &mut s).await,
            "fanout" => scenarios::rollouts::fanout(b, &mut s).await,
            "missed" => scenarios::missed::run(b, &mut s).await,
            "admission" => scenarios::admission::server(b, &mut s).await,
            _ => scenarios::admission::apiserver(b, &mut s).await,
        };
        outcome.with_context(|| format!("step: scenario {name}"))?;
        populated |= name == "memory";
        s.seconds = t0.elapsed().as_secs_f64();
        (s.load_mean, s.load_max, _) = sampler.since(mark);
        println!("<== {name}: {:.0} s", s.seconds);
        timings.push(format!("{name} {:.0} s", s.seconds));
        results.scenarios.insert(name.to_owned(), s);
        // Written after every scenario, so a failure later keeps what was measured.
        write(&results, &out_dir, &json_path)?;
    }
    println!("\n{}", report::table(&results));
    println!("{}", report::cost_table(&results));
    println!(
        "scenario times: {}; total {:.0} s",
        timings.join(", "),
        started.elapsed().as_secs_f64()
    );
    println!(
        "wrote {} and {}",
        out_dir.join("BENCHMARKS.md").display(),
        json_path.display()
    );
    Ok(())
}

fn write(results: &Results, out_dir: &std::path::Path, json: &std::path::Path) -> Result<()> {
    results.save(json)?;
    let md = out_dir.join("BENCHMARKS.md");
    std::fs::write(&md, report::markdown(results))
        .with_context(|| format!("writing {}", md.display()))
}

fn controlplane_dir(root: &std::path::Path) -> Result<PathBuf> {
    let out = Command::new("bash")
        .arg(root.join("hack/controlplane.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running hack/controlplane.sh")?;
    if !out.status.success() {
        bail!("hack/controlplane.sh failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .context("hack/controlplane.sh printed no directory")
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
