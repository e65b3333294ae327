use std::time::Duration;

use axum::body::{Body, Bytes};

use super::*;

fn limits(body_limit: usize, body_bytes: usize) -> Limits {
    Limits {
        body_bytes,
        slots: 2,
        ..Limits::with_body_limit(body_limit)
    }
}

/// A body fed through the returned sender.
fn streamed() -> (
    Body,
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (Body::from_stream(stream), tx)
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_times_out_and_gives_back_its_bytes() {
    let load = Load::new(limits(1024, 4096));
    let (body, tx) = streamed();
    tx.send(Ok(Bytes::from_static(b"{\"a\"")))
        .await
        .expect("send");
    let read = load.read(body, None).await;
    assert!(
        matches!(read, Err(BodyError::TimedOut(_))),
        "{:?}",
        read.err()
    );
    assert_eq!(load.bytes.available_permits(), 4096);
    assert_eq!(load.gauges.body_timeouts.get(), 1);
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn bodies_hold_their_bytes_and_a_body_that_finds_no_room_is_refused() {
    let load = Load::new(limits(1000, 1000));
    let first = load
        .read(Body::from(vec![b'x'; 600]), Some(600))
        .await
        .expect("first");
    assert_eq!(first.bytes.len(), 600);
    assert!(load.limits.body_bytes - load.bytes.available_permits() >= 600);
    // The second cannot get room while the first is held: refused at the deadline, and
    // counted as overload, not as the client's fault.
    let second = load.read(Body::from(vec![b'y'; 600]), Some(600)).await;
    assert!(
        matches!(second, Err(BodyError::NoRoom)),
        "{:?}",
        second.err()
    );
    drop(first);
    assert_eq!(load.bytes.available_permits(), 1000);
    let third = load.read(Body::from(vec![b'z'; 600]), Some(600)).await;
    assert_eq!(third.expect("room again").bytes, vec![b'z'; 600]);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_body_gets_room_when_another_is_dropped() {
    let load = Load::new(limits(1000, 1000));
    let first = load
        .read(Body::from(vec![b'x'; 900]), None)
        .await
        .expect("first");
    let waiting = tokio::spawn({
        let load = load.clone();
        async move {
            load.read(Body::from(vec![b'y'; 900]), None)
                .await
                .map(|b| b.bytes.len())
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished());
    drop(first);
    assert_eq!(waiting.await.expect("join").expect("read"), 900);
}

#[tokio::test(start_paused = true)]
async fn over_limit_bodies_are_refused_by_length_and_by_content() {
    let load = Load::new(limits(100, 1000));
    let by_header = load.read(Body::from(vec![b' '; 10]), Some(101)).await;
    assert!(matches!(by_header, Err(BodyError::TooLarge { limit: 100 })));
    let by_content = load.read(Body::from(vec![b' '; 101]), None).await;
    assert!(matches!(
        by_content,
        Err(BodyError::TooLarge { limit: 100 })
    ));
    assert_eq!(load.bytes.available_permits(), 1000);
}

#[tokio::test(start_paused = true)]
async fn taken_slots_are_a_stall_only_after_stall_after() {
    let load = Load::new(limits(100, 1000));
    let a = load.slot(Duration::ZERO).await.expect("a");
    let b = load.slot(Duration::ZERO).await.expect("b");
    assert!(
        load.slot(Duration::from_millis(10)).await.is_none(),
        "both taken"
    );
    assert_eq!(load.gauges.saturated.get(), 1);
    assert_eq!(load.stalled(), None);
    tokio::time::advance(DEFAULT_STALL_AFTER).await;
    assert!(load.stalled().is_some());
    drop(a);
    assert_eq!(load.stalled(), None);
    assert_eq!(load.gauges.saturated.get(), 0);
    assert_eq!(load.gauges.in_flight.get(), 1);
    drop(b);
    assert_eq!(load.gauges.in_flight.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn bodies_arriving_together_do_not_each_hold_part_of_the_bound() {
    // Three 500-byte bodies in 100-byte pieces, room for two. Reserving as bytes arrive,
    // each would hold part of the bound and wait for the rest, and none would finish.
    let load = Load::new(limits(500, 1000));
    let mut senders = Vec::new();
    let mut reads = Vec::new();
    for _ in 0..3 {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
        let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        let load = load.clone();
        reads.push(tokio::spawn(async move {
            load.read(body, Some(500)).await.map(|b| b.bytes.len())
        }));
        senders.push(tx);
    }
    for _ in 0..5 {
        for tx in &senders {
            tx.send(Ok(Bytes::from(vec![b'x'; 100])))
                .await
                .expect("send");
        }
    }
    drop(senders);
    let mut read = 0;
    for handle in reads {
        if handle.await.expect("join").is_ok() {
            read += 1;
        }
    }
    assert!(read >= 2, "only {read} of 3 bodies were read");
}
