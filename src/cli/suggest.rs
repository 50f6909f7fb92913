//! "Did you mean": the closest known word to a mistyped command or flag.

/// The optimal-string-alignment distance between `a` and `b` (insertions, deletions,
/// substitutions and transpositions of neighbours each cost 1), on characters.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// The candidate closest to `typed`, if it is close enough to be what was meant: within a third
/// of the longer word's length (at least 1, at most 3 edits), or `typed` is a prefix of exactly
/// one candidate. Ties go to the earlier candidate.
pub fn closest<'a>(typed: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if typed.is_empty() {
        return None;
    }
    let prefixed: Vec<&&str> = candidates
        .iter()
        .filter(|c| c.starts_with(typed) && typed.len() >= 3)
        .collect();
    if prefixed.len() == 1 {
        return Some(prefixed[0]);
    }
    let mut best: Option<(usize, &str)> = None;
    for &c in candidates {
        let d = distance(typed, c);
        let limit = (typed.chars().count().max(c.chars().count()) / 3).clamp(1, 3);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits_and_transpositions() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("train", "train"), 0);
        assert_eq!(distance("trian", "train"), 1);
        assert_eq!(distance("tran", "train"), 1);
        assert_eq!(distance("trainn", "train"), 1);
        assert_eq!(distance("trxin", "train"), 1);
        assert_eq!(distance("eval", "train"), 4);
        assert_eq!(distance("", "abc"), 3);
    }

    #[test]
    fn closest_suggests_only_near_words() {
        let commands = ["train", "eval", "gradcheck", "explain", "info"];
        assert_eq!(closest("trian", &commands), Some("train"));
        assert_eq!(closest("evl", &commands), Some("eval"));
        assert_eq!(closest("gradchek", &commands), Some("gradcheck"));
        assert_eq!(closest("expl", &commands), Some("explain"));
        assert_eq!(closest("fit", &commands), None);
        assert_eq!(closest("", &commands), None);
        let flags = ["--epochs", "--lr", "--momentum", "--batch-size"];
        assert_eq!(closest("--epoch", &flags), Some("--epochs"));
        assert_eq!(closest("--batchsize", &flags), Some("--batch-size"));
        assert_eq!(closest("--learning-rate", &flags), None);
    }
}
