//! How warnings are shown.
//!
//! - [`check_output`]: `strata build --check`, in the layout of `docker buildx build --check`
//!   (buildx's `printResult` for the lint subrequest, BuildKit's `lint.Warning.PrintTo` and
//!   `errdefs.Source.Print`): a `Check complete, …` line, then per warning `WARNING: Rule - URL`,
//!   the message, and the source excerpt with `>>>` on the lines it is about — each followed
//!   by strata's `file:line:column` form with a caret under the exact place.
//! - [`summary`]: the lines a normal build prints, BuildKit's short form
//!   `Rule: message (line N)`.
//! - [`source_excerpt`]: BuildKit's excerpt, also used for errors in `--check`.

use super::{Report, Warning};
use crate::diagnostic::Diagnostic;

/// The whole `--check` report (what buildx prints to stdout).
pub fn check_output(report: &Report, file_name: &str, source: &str) -> String {
    let mut out = String::new();
    match report.warnings.len() {
        0 => {}
        1 => out.push_str("Check complete, 1 warning has been found!\n"),
        n => out.push_str(&format!("Check complete, {n} warnings have been found!\n")),
    }
    for w in &report.warnings {
        out.push_str(&warning_block(w, file_name, source));
    }
    if report.warnings.is_empty() && report.error.is_none() {
        out.push_str("Check complete, no warnings found.\n");
    }
    out
}

/// One warning of `--check`.
pub fn warning_block(w: &Warning, file_name: &str, source: &str) -> String {
    let mut out = format!("\nWARNING: {}", w.rule.name);
    if !w.rule.url.is_empty() {
        out.push_str(&format!(" - {}", w.rule.url));
    }
    out.push_str(&format!("\n{}\n", w.detail));
    out.push_str(&source_excerpt(file_name, source, &[w.lines]));
    out.push_str(&format!("{}\n", caret_form(w, file_name, source)));
    out
}

/// strata's form of a warning: `file:line:column: Rule`, the line, a caret.
pub fn caret_form(w: &Warning, file_name: &str, source: &str) -> String {
    Diagnostic::new(file_name, source, w.pos, w.rule.name).to_string()
}

/// The lines of a normal build's warning summary (empty when there is nothing to say).
pub fn summary(report: &Report) -> String {
    let n = report.warnings.len();
    if n == 0 {
        return String::new();
    }
    let mut out = format!("{n} warning{} found (use strata build --check to expand):\n", if n == 1 { "" } else { "s" });
    for w in &report.warnings {
        out.push_str(&format!(" - {}\n", w.short()));
    }
    out
}

/// BuildKit's source excerpt (`errdefs.Source.Print`): the file name and first line, then the
/// lines `ranges` cover marked `>>>`, with context around them: up to two lines on each side
/// for a single line, one otherwise (BuildKit's padding loop, reproduced as is).
pub fn source_excerpt(file_name: &str, source: &str, ranges: &[(usize, usize)]) -> String {
    let lines: Vec<&str> = source.split('\n').collect();
    let Some(mut start) = ranges.iter().map(|r| r.0).min() else { return String::new() };
    let mut end = ranges.iter().map(|r| r.1.max(r.0)).max().unwrap_or(start);
    if start > lines.len() || start < 1 {
        return String::new();
    }
    end = end.min(lines.len());
    let pad = if end == start { 4 } else { 2 };
    let first = start;
    let mut p = 0;
    while p < pad {
        if start > 1 {
            start -= 1;
            p += 1;
        }
        if end != lines.len() {
            end += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{file_name}:{first}\n--------------------\n");
    for i in start..=end {
        let marked = ranges.iter().any(|r| r.0 <= i && i <= r.1.max(r.0));
        out.push_str(&format!(" {i:>3} | {} {}\n", if marked { ">>>" } else { "   " }, lines[i - 1]));
    }
    out.push_str("--------------------\n");
    out
}
