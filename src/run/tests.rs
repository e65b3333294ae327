use std::time::Duration;

use tokio::time::Instant;

use super::*;

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
            Ok::<(), crate::server::ServerError>(())
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
