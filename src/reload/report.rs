//! What kreload tells people about a reload: the Events' reasons and notes.

use super::model::WorkloadKind;

/// The API server limits an Event's note to 1 kB.
pub const NOTE_LIMIT: usize = 1000;

pub const RELOADED: &str = "Reloaded";
/// Reloader's reason for a failed reload.
pub const RELOAD_FAILED: &str = "ReloadFail";
pub const RESUMED: &str = "Resumed";
pub const RELOADS_HELD: &str = "ReloadsHeld";

/// The note of a `Reloaded` Event: `sources` (`configmap/app`) caused it.
pub fn reloaded(kind: WorkloadKind, sources: &[String]) -> String {
    let verb = if kind == WorkloadKind::Job {
        "recreated"
    } else {
        "restarted"
    };
    limit(format!("{verb} because {} changed", sources.join(", ")))
}

/// A change as the log line names it: `configmap/app@86eda77` (the hash's first 7
/// characters; `deleted` for a deleted source).
pub fn short(change: &super::plan::Reload) -> String {
    if change.deleted {
        return format!("{}@deleted", change.source);
    }
    let hash = change.hash.get(..7).unwrap_or(&change.hash);
    format!("{}@{hash}", change.source)
}

/// The note of a `ReloadFail` Event.
pub fn failed(sources: &[String], error: &str) -> String {
    limit(format!("reload for {} failed: {error}", sources.join(", ")))
}

/// The note of a `Resumed` Event; `reason` says why the pause ended.
pub fn resumed(reason: &str) -> String {
    limit(format!(
        "{reason}: resumed the rollout kreload paused after a reload"
    ))
}

/// The note of a `ReloadsHeld` Warning: the per-workload limit tripped.
pub fn held(sources: &[String], max: usize, period: std::time::Duration) -> String {
    limit(format!(
        "more than {max} rollouts in {}s: holding the reload for {}; the latest content is applied once the sources are quiet",
        period.as_secs(),
        sources.join(", ")
    ))
}

/// Cuts `note` to [`NOTE_LIMIT`] bytes, on a character boundary.
pub fn limit(mut note: String) -> String {
    if note.len() > NOTE_LIMIT {
        let mut end = NOTE_LIMIT;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::model::SourceRef;
    use crate::reload::plan::Reload;

    #[test]
    fn the_log_line_names_each_change_by_a_short_hash() {
        let change = |hash: &str, deleted| Reload {
            source: SourceRef::configmap("app"),
            hash: hash.to_owned(),
            auto: true,
            deleted,
        };
        assert_eq!(
            short(&change("86eda770a6060824b090dd4df091e3bd4121279c", false)),
            "configmap/app@86eda77"
        );
        assert_eq!(short(&change("abc", false)), "configmap/app@abc");
        assert_eq!(short(&change("da39a3e", true)), "configmap/app@deleted");
        assert_eq!(RELOAD_FAILED, "ReloadFail");
    }

    #[test]
    fn notes_name_every_source_and_the_verb_fits_the_kind() {
        let sources = ["configmap/app".to_owned(), "secret/db".to_owned()];
        assert_eq!(
            reloaded(WorkloadKind::Deployment, &sources),
            "restarted because configmap/app, secret/db changed"
        );
        assert_eq!(
            reloaded(WorkloadKind::Job, &sources[..1]),
            "recreated because configmap/app changed"
        );
        assert_eq!(
            failed(&sources[1..], "patching: 403"),
            "reload for secret/db failed: patching: 403"
        );
        assert_eq!(
            resumed("window-over"),
            "window-over: resumed the rollout kreload paused after a reload"
        );
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        // 999 ASCII bytes, then a 2-byte character that would cross the limit.
        let note = format!("{}é and more", "a".repeat(NOTE_LIMIT - 1));
        let cut = limit(note);
        assert_eq!(cut.len(), NOTE_LIMIT - 1);
        assert!(cut.chars().all(|c| c == 'a'));
        let many: Vec<String> = (0..200).map(|i| format!("configmap/c{i}")).collect();
        assert!(reloaded(WorkloadKind::Deployment, &many).len() <= NOTE_LIMIT);
        assert_eq!(limit("short".into()), "short");
    }
}
