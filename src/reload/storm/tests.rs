use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::reload::model::SourceRef;

fn change(name: &str, hash: &str) -> Reload {
    Reload {
        source: SourceRef::secret(name),
        hash: hash.into(),
        auto: true,
        deleted: false,
    }
}

fn limits() -> Limits {
    Limits {
        max: 2,
        period: Duration::from_secs(60),
        quiet: Duration::from_secs(10),
    }
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

#[test]
fn under_the_limit_everything_goes() {
    let t0 = Instant::now();
    let mut storm = Storm::new(limits());
    for s in [0, 1] {
        assert_eq!(
            storm.admit(&"web", &[change("s", "1")], secs(t0, s)),
            Admit::Go
        );
        storm.record(&"web", secs(t0, s));
    }
    // Another workload has its own budget.
    assert_eq!(
        storm.admit(&"api", &[change("s", "1")], secs(t0, 2)),
        Admit::Go
    );
}

#[test]
fn a_flapping_source_is_held_and_its_last_content_released_when_quiet() {
    let t0 = Instant::now();
    let mut storm = Storm::new(limits());
    for s in 0..2 {
        assert_eq!(
            storm.admit(&"web", &[change("s", "x")], secs(t0, s)),
            Admit::Go
        );
        storm.record(&"web", secs(t0, s));
    }
    assert_eq!(
        storm.admit(&"web", &[change("s", "3")], secs(t0, 2)),
        Admit::Held { tripped: true }
    );
    for s in 3..20 {
        let hash = s.to_string();
        assert_eq!(
            storm.admit(&"web", &[change("s", &hash), change("t", "a")], secs(t0, s)),
            Admit::Held { tripped: false }
        );
        // Still flapping: nothing is due.
        assert!(storm.due(secs(t0, s)).is_empty());
    }
    assert_eq!(storm.held(), 1);
    // Quiet for 10 s after the last change (at 19 s).
    assert_eq!(storm.next_due(), Some(secs(t0, 29)));
    assert!(storm.due(secs(t0, 28)).is_empty());
    let due = storm.due(secs(t0, 29));
    assert_eq!(
        due,
        vec![("web", vec![change("s", "19"), change("t", "a")])]
    );
    assert_eq!(storm.held(), 0);
    assert_eq!(storm.next_due(), None);
}

#[test]
fn a_source_that_never_stops_still_gets_its_content_once_the_period_has_room() {
    let t0 = Instant::now();
    let mut storm = Storm::new(limits());
    for s in 0..2 {
        storm.admit(&"web", &[change("s", "x")], secs(t0, s));
        storm.record(&"web", secs(t0, s));
    }
    let mut released = Vec::new();
    let mut rollouts = 2;
    for s in 2..300 {
        let now = secs(t0, s);
        if storm.admit(&"web", &[change("s", &s.to_string())], now) == Admit::Go {
            storm.record(&"web", now);
            rollouts += 1;
        }
        for (_, changes) in storm.due(now) {
            storm.record(&"web", now);
            rollouts += 1;
            released.push(changes[0].hash.clone());
        }
    }
    // At most `max` per period: 300 s is five periods.
    assert!(rollouts <= 2 * 5, "{rollouts} rollouts");
    assert!(!released.is_empty());
}

#[test]
fn zero_turns_the_limit_off() {
    let t0 = Instant::now();
    let mut storm = Storm::new(Limits { max: 0, ..limits() });
    for s in 0..100 {
        assert_eq!(
            storm.admit(&"web", &[change("s", "1")], secs(t0, s)),
            Admit::Go
        );
        storm.record(&"web", secs(t0, s));
    }
    assert_eq!(storm.held(), 0);
}

#[test]
fn rollout_times_older_than_the_period_are_forgotten() {
    let t0 = Instant::now();
    let mut storm = Storm::new(limits());
    storm.record(&"web", t0);
    storm.record(&"web", t0);
    assert_eq!(storm.admit(&"web", &[], secs(t0, 60)), Admit::Go);
    assert!(storm.recent.is_empty());
}

#[test]
fn the_bucket_spaces_patches_out() {
    let t0 = Instant::now();
    let mut bucket = Bucket::new(10, 2, t0);
    assert_eq!(bucket.take(t0), Ok(()));
    assert_eq!(bucket.take(t0), Ok(()));
    let wait = bucket.take(t0).expect_err("empty");
    assert_eq!(wait, Duration::from_millis(100));
    assert_eq!(bucket.take(t0 + wait), Ok(()));
    // A rate of 0 is no limit.
    let mut free = Bucket::new(0, 1, t0);
    for _ in 0..1000 {
        assert_eq!(free.take(t0), Ok(()));
    }
}
