//! `deployment.P/pause-period` (README, "Pausing a Deployment's rollout"): after a reload, keep the Deployment's rollout
//! paused for that long, so further changes land in the same paused template and Kubernetes
//! rolls once when it is resumed.
//!
//! The state lives on the Deployment, not in kreload: `spec.paused` and the metadata
//! annotation `deployment.P/paused-at` (RFC 3339, UTC, whole seconds) are written in the
//! same patch as the reload. A paused Deployment is kreload's only if it carries paused-at;
//! one paused by hand has none and is never resumed by kreload. Because everything needed
//! is on the object, any kreload instance (a restart, another replica) can tell when the
//! window ends: `paused-at + pause-period`, read from the live object.
//!
//! Rules, following Reloader where it has one:
//! - the window starts at the first reload and is not extended by later ones;
//! - paused-at is written under the prefix the pause-period was read from, so a
//!   `deployment.reloader.stakater.com/pause-period` gets Reloader's own
//!   `deployment.reloader.stakater.com/paused-at` and either tool recognises the pause;
//! - a window that can no longer be timed (the period was removed or is invalid, paused-at
//!   is unreadable) ends now rather than leaving the Deployment paused for ever;
//! - an invalid period never fails a reload: the reload goes ahead without a pause.
//!
//! Functions of values only; the caller passes `now`.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use json_patch::{Patch, PatchOperation};
use serde_json::Value;

use super::duration::{DurationError, parse_go_duration};
use super::keys::{Key, Vocabulary};
use super::model::WorkloadKind;
use super::ops::{add, remove, test_resource_version};

/// A live Deployment as the pause decisions see it.
#[derive(Clone, Copy, Debug)]
pub struct PauseView<'a> {
    pub vocabulary: &'a Vocabulary,
    /// The Deployment's full metadata annotations (pause keys are read from metadata only).
    pub annotations: &'a BTreeMap<String, String>,
    /// `spec.paused`.
    pub paused: bool,
}

/// Why a pause kreload made ends now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResumeReason {
    /// `paused-at + pause-period` has passed.
    Elapsed,
    /// The pause-period annotation is gone.
    PeriodRemoved,
    /// The pause-period annotation no longer parses.
    InvalidPeriod(DurationError),
    /// paused-at is not an RFC 3339 time.
    InvalidPausedAt(String),
}

impl ResumeReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            ResumeReason::Elapsed => "pause period over",
            ResumeReason::PeriodRemoved => "pause period removed",
            ResumeReason::InvalidPeriod(_) => "pause period invalid",
            ResumeReason::InvalidPausedAt(_) => "paused-at unreadable",
        }
    }
}

/// What a reload of a Deployment does about pausing; the operations go into the reload's
/// own patch (after its resourceVersion test).
#[derive(Clone, Debug, PartialEq)]
pub enum OnReload {
    /// No pause-period (or not a Deployment): a plain reload.
    NoPause,
    /// The pause-period does not parse: reload without pausing (the caller warns).
    InvalidPeriod(DurationError),
    /// Start a window: pause the rollout until `until`.
    Pause {
        ops: Vec<PatchOperation>,
        until: Timestamp,
    },
    /// kreload's window is still open: the change joins the paused template.
    InWindow { until: Timestamp },
    /// kreload's window is over (nobody resumed it at the time): resume in this same patch,
    /// so this change and the ones that waited roll out together now.
    Resume {
        ops: Vec<PatchOperation>,
        reason: ResumeReason,
    },
    /// Paused by someone else: leave it paused; the change waits for them.
    PausedByOthers,
}

/// What to do when a window's timer fires, or when a Deployment with paused-at is seen.
#[derive(Clone, Debug, PartialEq)]
pub enum OnTimer {
    /// No paused-at: kreload did not pause it (or already resumed it).
    NotOurs,
    /// The window is still open: look again at `until`.
    Wait { until: Timestamp },
    /// Resume the rollout.
    Resume {
        ops: Vec<PatchOperation>,
        reason: ResumeReason,
    },
    /// Someone resumed it already; only paused-at is left over. Remove it (no rollout).
    Forget { ops: Vec<PatchOperation> },
}

/// The paused-at value for `now`: RFC 3339 in UTC, whole seconds (what Go's
/// `time.RFC3339` layout produces for a UTC time, and parses).
pub fn paused_at_value(now: Timestamp) -> String {
    Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// Decides what a reload of a `kind` workload does about pausing.
pub fn on_reload(kind: WorkloadKind, view: &PauseView, now: Timestamp) -> OnReload {
    if kind != WorkloadKind::Deployment {
        return OnReload::NoPause;
    }
    if view.paused && paused_at(view).is_some() {
        return match window(view, now) {
            Window::Open(until) => OnReload::InWindow { until },
            Window::Over(reason) => OnReload::Resume {
                ops: resume_ops(view),
                reason,
            },
        };
    }
    let Some((prefix, value)) = period(view) else {
        return OnReload::NoPause;
    };
    let period = match parse_go_duration(value) {
        Ok(period) => period,
        Err(error) => return OnReload::InvalidPeriod(error),
    };
    if view.paused {
        return OnReload::PausedByOthers;
    }
    let key = view.vocabulary.key(prefix, Key::PausedAt);
    let mut ops = vec![
        add(&["spec", "paused"], Value::Bool(true)),
        add(
            &["metadata", "annotations", &key],
            Value::String(paused_at_value(now)),
        ),
    ];
    // A left-over paused-at under the other prefix would be read first next time.
    ops.extend(
        paused_at_keys(view)
            .filter(|k| *k != key)
            .map(|k| remove(&["metadata", "annotations", &k])),
    );
    OnReload::Pause {
        ops,
        until: add_saturating(
            Timestamp::from_second(now.as_second()).unwrap_or(now),
            period,
        ),
    }
}

/// Decides what to do about a Deployment that may carry kreload's pause, at `now`.
pub fn on_timer(view: &PauseView, now: Timestamp) -> OnTimer {
    if paused_at(view).is_none() {
        return OnTimer::NotOurs;
    }
    if !view.paused {
        return OnTimer::Forget {
            ops: paused_at_keys(view)
                .map(|k| remove(&["metadata", "annotations", &k]))
                .collect(),
        };
    }
    match window(view, now) {
        Window::Open(until) => OnTimer::Wait { until },
        Window::Over(reason) => OnTimer::Resume {
            ops: resume_ops(view),
            reason,
        },
    }
}

/// When to look at a Deployment whose (index-filtered) annotations are `annotations`:
/// `None` without paused-at, `now` when its window cannot be timed. `spec.paused` is not
/// needed here; [`on_timer`] checks it against the live object when the time comes.
pub fn check_at(
    vocabulary: &Vocabulary,
    annotations: &BTreeMap<String, String>,
    now: Timestamp,
) -> Option<Timestamp> {
    let view = PauseView {
        vocabulary,
        annotations,
        paused: true,
    };
    paused_at(&view)?;
    Some(match window(&view, now) {
        Window::Open(until) => until,
        Window::Over(_) => now,
    })
}

/// `ops` guarded by a test of the resourceVersion they were planned against.
pub fn guarded(resource_version: &str, ops: Vec<PatchOperation>) -> Patch {
    let mut all = vec![test_resource_version(resource_version)];
    all.extend(ops);
    Patch(all)
}

enum Window {
    Open(Timestamp),
    Over(ResumeReason),
}

/// The window of a Deployment that carries paused-at.
fn window(view: &PauseView, now: Timestamp) -> Window {
    let Some(raw) = paused_at(view) else {
        return Window::Over(ResumeReason::PeriodRemoved);
    };
    let Ok(started) = raw.parse::<Timestamp>() else {
        return Window::Over(ResumeReason::InvalidPausedAt(raw.to_owned()));
    };
    let Some((_, value)) = period(view) else {
        return Window::Over(ResumeReason::PeriodRemoved);
    };
    let period = match parse_go_duration(value) {
        Ok(period) => period,
        Err(error) => return Window::Over(ResumeReason::InvalidPeriod(error)),
    };
    let until = add_saturating(started, period);
    if now >= until {
        Window::Over(ResumeReason::Elapsed)
    } else {
        Window::Open(until)
    }
}

fn add_saturating(t: Timestamp, period: std::time::Duration) -> Timestamp {
    SignedDuration::try_from(period)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The pause-period in effect and the prefix it was found under (kreload's first).
fn period<'a>(view: &PauseView<'a>) -> Option<(&'static str, &'a str)> {
    view.vocabulary
        .keys(Key::PausePeriod)
        .find_map(|(p, k)| view.annotations.get(&k).map(|v| (p, v.as_str())))
}

fn paused_at<'a>(view: &PauseView<'a>) -> Option<&'a str> {
    view.vocabulary.get(view.annotations, Key::PausedAt)
}

/// paused-at keys present under an enabled prefix.
fn paused_at_keys<'a>(view: &'a PauseView<'a>) -> impl Iterator<Item = String> + 'a {
    view.vocabulary
        .keys(Key::PausedAt)
        .map(|(_, k)| k)
        .filter(|k| view.annotations.contains_key(k))
}

fn resume_ops(view: &PauseView) -> Vec<PatchOperation> {
    let mut ops = vec![add(&["spec", "paused"], Value::Bool(false))];
    ops.extend(paused_at_keys(view).map(|k| remove(&["metadata", "annotations", &k])));
    ops
}

#[cfg(test)]
mod tests;
