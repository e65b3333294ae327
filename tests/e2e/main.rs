//! End-to-end tests against a real control plane (etcd + kube-apiserver +
//! kube-controller-manager, built by hack/controlplane.sh).
//!
//! One control plane is shared by every test in this binary: starting one costs seconds
//! (the figure is printed at start), and each test works in namespaces of its own, so they
//! do not see each other. A custom harness (libtest-mimic) owns `main`, so the control
//! plane is torn down after the last test, whatever the tests did.

mod controlplane;
mod csi;
mod faults;
mod gitops;
mod guards;
mod hardening;
mod install;
mod once;
mod options;
mod parity;
mod pause;
mod reload;
mod rollouts;
mod support;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let mut trials = Vec::new();
    trials.extend(controlplane::tests());
    trials.extend(reload::tests());
    trials.extend(guards::tests());
    trials.extend(once::tests());
    trials.extend(options::tests());
    trials.extend(rollouts::tests());
    trials.extend(pause::tests());
    trials.extend(install::tests());
    trials.extend(parity::tests());
    trials.extend(hardening::tests());
    trials.extend(faults::tests());
    trials.extend(gitops::tests());
    trials.extend(csi::tests());

    // Listing tests (cargo test -- --list) must not start anything.
    if args.list {
        return libtest_mimic::run(&args, trials).exit_code();
    }
    let env = match support::Env::start() {
        Ok(env) => env,
        Err(error) => {
            eprintln!("e2e: cannot start the control plane: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    support::install(env);
    let conclusion = libtest_mimic::run(&args, trials);
    support::teardown();
    conclusion.exit_code()
}
