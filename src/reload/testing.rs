//! Helpers for the pure core's unit tests (compiled for tests only).

use std::collections::BTreeMap;

/// A string map from pairs: annotations, labels.
pub fn pairs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
