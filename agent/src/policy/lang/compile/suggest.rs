//! "Did you mean": catalogue attribute names close to a misspelt one.

use crate::model::catalogue::Attr;

/// Catalogue names close to `name` (same last segment, or at most two edits away).
pub(super) fn suggest(name: &str) -> Vec<&'static str> {
    let last = name.rsplit('.').next().unwrap_or(name);
    Attr::ALL
        .iter()
        .map(|a| a.name())
        .filter(|cand| {
            edit_distance(cand, name) <= 2
                || (last.len() > 2 && cand.rsplit('.').next() == Some(last))
        })
        .take(3)
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
