//! The process set-up `main` uses before anything runs: mimalloc's purge delay, transparent
//! huge pages off, and the tokio runtime with a bounded number of threads. All three are
//! about memory (docs/memory.md).

use std::num::NonZeroUsize;

/// Worker threads when `TOKIO_WORKER_THREADS` does not say: at most two, whatever the node
/// has. kreload's work is small and mostly waiting; tokio's default of one worker per core
/// of the node (a pod without a CPU limit sees them all) gives each its own stack and
/// allocator pages for nothing. Two keep admission off the patching's critical path.
pub const DEFAULT_WORKER_THREADS: usize = 2;

/// Threads for blocking work (DNS lookups, certificate file reads); tokio allows 512.
pub const MAX_BLOCKING_THREADS: usize = 8;

/// How many worker threads: `TOKIO_WORKER_THREADS` when it is a positive number (tokio's own
/// variable, honoured as tokio would), else [`DEFAULT_WORKER_THREADS`] bounded by the cores
/// available (`available`, which respects a cgroup CPU limit).
pub fn worker_threads(env: Option<&str>, available: Option<NonZeroUsize>) -> usize {
    if let Some(n) = env
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return n;
    }
    available
        .map_or(1, NonZeroUsize::get)
        .min(DEFAULT_WORKER_THREADS)
}

/// The runtime `kreload serve` and `kreload explain` run on.
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    let env = std::env::var("TOKIO_WORKER_THREADS").ok();
    let workers = worker_threads(env.as_deref(), std::thread::available_parallelism().ok());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
}

/// mimalloc's option for how long freed memory stays committed before it goes back to the
/// system, and the value kreload runs with.
pub const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";
pub const PURGE_DELAY: &str = "0";

/// Whether to start again with [`PURGE_DELAY_VAR`] set: only when nobody set it. mimalloc
/// reads its options from the environment when the process starts, before `main`, and has
/// no safe way to change them afterwards.
pub fn needs_purge_delay(current: Option<&std::ffi::OsStr>) -> bool {
    cfg!(all(unix, not(feature = "system-allocator"))) && current.is_none()
}

/// Replaces this process by itself with `MIMALLOC_PURGE_DELAY=0` (same pid, arguments and
/// environment otherwise) unless the variable is set. With mimalloc's default of one second,
/// the pages a relist decodes one at a time stay committed until the delay passes on a
/// thread that allocates again: a fresh start with 10,000 workloads peaked at 47 MiB
/// instead of 31. The image sets the variable; this gives bare-metal runs the same. If the
/// exec fails, kreload runs on with the default.
pub fn with_purge_delay() {
    if !needs_purge_delay(std::env::var_os(PURGE_DELAY_VAR).as_deref()) {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        let mut args = std::env::args_os();
        let Some(arg0) = args.next() else { return };
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let error = std::process::Command::new(exe)
            .arg0(arg0)
            .args(args)
            .env(PURGE_DELAY_VAR, PURGE_DELAY)
            .exec();
        eprintln!("kreload: could not restart with {PURGE_DELAY_VAR}={PURGE_DELAY}: {error}");
    }
}

/// Turns transparent huge pages off for this process. On a node whose THP mode is `always`
/// (or `madvise`, where mimalloc asks for them), every 2 MiB region the allocator touches
/// becomes resident whole: idle kreload held 12 MiB of huge pages for about 1 MiB of heap.
/// Failure (not Linux, an old kernel) leaves things as they were.
pub fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("kreload: could not turn transparent huge pages off: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cores(n: usize) -> Option<NonZeroUsize> {
        NonZeroUsize::new(n)
    }

    #[test]
    fn the_purge_delay_is_set_only_when_nobody_did() {
        let mimalloc = cfg!(all(unix, not(feature = "system-allocator")));
        assert_eq!(needs_purge_delay(None), mimalloc);
        assert!(!needs_purge_delay(Some("250".as_ref())));
        assert!(!needs_purge_delay(Some("".as_ref())));
    }

    #[test]
    fn workers_are_bounded_unless_tokio_worker_threads_says() {
        assert_eq!(worker_threads(None, cores(64)), 2);
        assert_eq!(worker_threads(None, cores(1)), 1);
        assert_eq!(worker_threads(None, None), 1);
        assert_eq!(worker_threads(Some("6"), cores(2)), 6);
        // What tokio would reject falls back to the default instead of failing the start.
        assert_eq!(worker_threads(Some("0"), cores(64)), 2);
        assert_eq!(worker_threads(Some("many"), cores(64)), 2);
    }
}
