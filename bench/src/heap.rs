//! Reading heaptrack_print's report: the totals, and for each of the top peak consumers the
//! first frame that is not the allocator itself (alloc::, core::, std::, hashbrown's
//! growth), so the summary names the code that holds the memory.

use crate::results::Scenario;

const NOISE: [&str; 10] = [
    "malloc",
    "realloc",
    "calloc",
    "alloc::",
    "core::",
    "std::",
    "hashbrown::",
    "__rust",
    "<alloc::",
    "<core::",
];

pub fn summarise(s: &mut Scenario, text: &str) {
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("peak heap memory consumption")
            || l.starts_with("peak RSS")
            || l.starts_with("total memory leaked")
            || l.starts_with("total runtime")
        {
            s.note(format!("heaptrack: {l}"));
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut in_peaks = false;
    let mut listed = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("PEAK MEMORY CONSUMERS") {
            in_peaks = true;
            continue;
        }
        if in_peaks && line.starts_with("MOST ") {
            break;
        }
        if !in_peaks || !line.contains("peak memory consumed over") || listed >= 10 {
            continue;
        }
        let amount = line.split_whitespace().next().unwrap_or("?");
        let site = lines[i + 1..]
            .iter()
            .map(|l| l.trim())
            .take_while(|l| !l.contains("peak memory consumed over"))
            .filter(|l| !l.starts_with("at ") && !l.starts_with("in ") && !l.is_empty())
            .map(|l| l.trim_end_matches(':'))
            .find(|l| !NOISE.iter().any(|n| l.starts_with(n)) && !l.contains("consumed over"))
            .unwrap_or("?");
        s.note(format!("heap peak consumer: {amount} from {site}"));
        listed += 1;
    }
}
