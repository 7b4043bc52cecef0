//! "Did you mean …?" suggestions for names a user may have mistyped: instructions, flags,
//! stage names, variables.
//!
//! Two measures, for two purposes:
//! - [`search`] is BuildKit's `suggest.Search` rule, used where strata reproduces BuildKit's text
//!   exactly (the lint messages `UndefinedVar` and `UndefinedArgInFrom`): the first option at a
//!   Levenshtein distance below 3, an exact match meaning "no suggestion".
//! - [`closest`] is for strata's own hints: the same threshold, but measured as optimal string
//!   alignment (a swap of two neighbours counts once, so `--chwon` suggests `--chown`, where
//!   BuildKit's plain Levenshtein ties it with `--chmod`), and ties go to the option that shares
//!   the longer prefix.

/// Levenshtein distance over characters (insert, delete, substitute: 1 each).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Optimal string alignment distance: Levenshtein plus the swap of two adjacent characters.
pub fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// BuildKit's `suggest.Search`: the first option closer than 3 edits, `None` if there is none or
/// if `value` is itself one of the options. Case-insensitive matching returns the option in the
/// case of `value` when that is all-lower or all-upper.
pub fn search<S: AsRef<str>>(value: &str, options: &[S], case_sensitive: bool) -> Option<String> {
    let wanted = if case_sensitive { value.to_string() } else { value.to_lowercase() };
    let mut best: Option<String> = None;
    let mut min = 3;
    for opt in options {
        let opt = opt.as_ref();
        let cmp = if case_sensitive { opt.to_string() } else { opt.to_lowercase() };
        if cmp == wanted {
            return None;
        }
        let d = levenshtein(&wanted, &cmp);
        if d < min {
            min = d;
            best = Some(if case_sensitive { cmp } else { match_case(&cmp, value) });
        }
    }
    best
}

fn match_case(option: &str, original: &str) -> String {
    if original == original.to_lowercase() {
        option.to_lowercase()
    } else if original == original.to_uppercase() {
        option.to_uppercase()
    } else {
        option.to_string()
    }
}

/// strata's own suggestion: the option closest to `value` (case-insensitively), if it is within
/// reach (fewer than 3 edits, and fewer edits than half the value's length so that short names
/// do not match everything). `None` for an exact match.
pub fn closest<S: AsRef<str>>(value: &str, options: &[S]) -> Option<String> {
    let wanted = value.to_lowercase();
    let limit = 3.min(wanted.chars().count().div_ceil(2).max(1));
    let mut best: Option<(usize, usize, &str)> = None;
    for opt in options {
        let opt = opt.as_ref();
        let cmp = opt.to_lowercase();
        if cmp == wanted {
            return None;
        }
        let d = osa_distance(&wanted, &cmp);
        if d > limit {
            continue;
        }
        let prefix = wanted.chars().zip(cmp.chars()).take_while(|(a, b)| a == b).count();
        let better = match best {
            None => true,
            Some((bd, bp, _)) => d < bd || (d == bd && prefix > bp),
        };
        if better {
            best = Some((d, prefix, opt));
        }
    }
    best.map(|(_, _, o)| o.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("chwon", "chown"), 2);
        assert_eq!(osa_distance("chwon", "chown"), 1);
        assert_eq!(osa_distance("ab", "ba"), 1);
        assert_eq!(levenshtein("é", "e"), 1);
    }

    #[test]
    fn buildkit_search_rule() {
        // The cases of BuildKit's lint tests.
        let keys = ["DIR_BINARIES", "DIR_ASSETS", "DIR_CONFIG"];
        assert_eq!(search("DIR_ASSET", &keys, true).as_deref(), Some("DIR_ASSETS"));
        assert_eq!(search("PAHT", &["PATH"], true).as_deref(), Some("PATH"));
        assert_eq!(
            search("BULIDPLATFORM", &["BUILDPLATFORM", "TARGETPLATFORM"], true).as_deref(),
            Some("BUILDPLATFORM")
        );
        assert_eq!(search("MYARCH", &["MY_OS", "MY_ARCH"], true).as_deref(), Some("MY_ARCH"));
        assert_eq!(search("version", &["tag"], true), None);
        // An exact match is no suggestion; the first of equally close options wins.
        assert_eq!(search("PATH", &["PATH", "PATHS"], true), None);
        assert_eq!(search("ab", &["ax", "ay"], true).as_deref(), Some("ax"));
        assert_eq!(search("coppy", &["COPY", "RUN"], false).as_deref(), Some("copy"));
        assert_eq!(search("COPPY", &["copy"], false).as_deref(), Some("COPY"));
    }

    #[test]
    fn strata_hints() {
        assert_eq!(closest("chwon", &["chown", "chmod", "from"]).as_deref(), Some("chown"));
        assert_eq!(closest("mout", &["mount", "network", "security"]).as_deref(), Some("mount"));
        assert_eq!(closest("biuld", &["build", "test"]).as_deref(), Some("build"));
        assert_eq!(closest("x", &["from"]), None);
        assert_eq!(closest("frobnicate", &["from", "run"]), None);
        assert_eq!(closest("build", &["build"]), None);
    }
}
