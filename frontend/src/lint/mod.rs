//! Build checks (`strata build --check`, and warnings during every build): BuildKit's Dockerfile
//! linter, for every rule that needs no step to run.
//!
//! How it fits: after parsing, [`check`] reads the syntax tree (plus, where a rule depends on
//! them, the base images' configs through the same [`ImageResolver`] the translation uses, and
//! the `.dockerignore`) and returns [`Warning`]s with BuildKit's rule names, messages and
//! locations. `strata build` prints a one-line summary per warning and builds on (or stops, with
//! `# check=error=true`); `strata build --check` prints each warning in BuildKit's `--check`
//! layout followed by strata's caret form, and builds nothing ([`render`]).
//!
//! Design: BuildKit raises these warnings from three places, and [`checks`] follows the same
//! order, because which warnings exist depends on it:
//! 1. while typing instructions (`instructions.Parse`): MAINTAINER, stage name casing, `AS`
//!    casing, definition comments — for every instruction up to the first one that fails;
//! 2. before dispatch, over all stages: duplicate/reserved stage names, instruction casing, the
//!    `FROM` lines' args and platforms (expanded with the global args);
//! 3. while dispatching each stage (`dispatch*`): everything that depends on a stage's
//!    environment, shell, working directory and earlier instructions. A normal build dispatches
//!    only the stages the target needs; `--check` without `--target` dispatches every stage
//!    (BuildKit: "for lint, no target means all targets").
//!
//! The third part re-walks the stages with the scoping rules of the translation (`convert`):
//! the environment BuildKit expands words against is the base image's `Env` plus every `ENV`
//! and every valued `ARG`; a declared `ARG` without a value is "defined" for `UndefinedVar`.
//! Checking is side-effect free and never fails the walk: a word that cannot be expanded or an
//! image that cannot be resolved only ends (or mutes) the checks that depend on it; the
//! translation reports the error itself.

mod checks;
pub mod config;
pub mod render;
pub mod rules;

use std::collections::BTreeMap;

use strata_store::oci::Platform;

use crate::ast::{Dockerfile, Pos};
use crate::convert::ImageResolver;
use crate::diagnostic::Diagnostic;
use crate::dockerignore::IgnoreMatcher;
pub use config::{CHECK_BUILD_ARG, LintConfig};
pub use rules::Rule;

/// What [`check`] needs besides the syntax tree.
pub struct LintOptions<'a> {
    /// The Dockerfile's name as output shows it.
    pub file_name: String,
    /// The Dockerfile's text (for positions and the source excerpts of the output).
    pub source: &'a str,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// Dispatch every stage, not only those the target needs (`--check` without `--target`).
    pub all_stages: bool,
    pub target_platform: Platform,
    pub build_platform: Platform,
    /// The context's `.dockerignore`, for `CopyIgnoredFile`.
    pub ignore: Option<&'a IgnoreMatcher>,
    /// Base images' configs (their `Env`, `Shell`, `OnBuild` and platform); without it, checks
    /// that depend on a base image are muted for stages built on one.
    pub resolver: Option<&'a dyn ImageResolver>,
}

/// One warning: a rule, BuildKit's message, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub rule: &'static Rule,
    /// BuildKit's message (its `Detail`).
    pub detail: String,
    /// The lines BuildKit attributes it to (an instruction's first to last line); the first is
    /// the `(line N)` of the short form.
    pub lines: (usize, usize),
    /// The exact place, for the caret: the offending word where strata can tell, else the
    /// instruction's keyword.
    pub pos: Pos,
}

impl Warning {
    /// BuildKit's short form: `Rule: message (line N)`.
    pub fn short(&self) -> String {
        format!("{}: {} (line {})", self.rule.name, self.detail, self.lines.0)
    }
}

/// The outcome of [`check`].
#[derive(Debug, Clone)]
pub struct Report {
    /// In BuildKit's order: by line, then in the order the checks raised them.
    pub warnings: Vec<Warning>,
    pub config: LintConfig,
    /// Set when `error=true` is in force and there are warnings: the build must stop.
    pub error: Option<Diagnostic>,
}

/// Runs the build checks on a parsed Dockerfile. Fails only when the check options themselves
/// (`# check=…` or `BUILDKIT_DOCKERFILE_CHECK`) cannot be read.
pub fn check(df: &Dockerfile, opts: &LintOptions) -> Result<Report, Diagnostic> {
    let directive = df.directives.check.as_deref();
    let config =
        LintConfig::resolve(directive, opts.build_args.get(CHECK_BUILD_ARG).map(String::as_str)).map_err(|e| {
            let line = directive_line(opts.source, "check").unwrap_or(1);
            Diagnostic::new(&opts.file_name, opts.source, Pos { line, column: 1 }, e.to_string()).with_hint(Some(
                "options are skip=Rule1,Rule2 (or all), error=true|false and experimental=Rule1,… separated by `;`"
                    .into(),
            ))
        })?;
    let mut warnings = checks::run(df, opts, &config);
    // BuildKit sorts by start line; a stable sort keeps the order the checks raised them in.
    warnings.sort_by_key(|w| w.lines.0);
    let error = (config.error && !warnings.is_empty()).then(|| {
        let mut names: Vec<&str> = warnings.iter().map(|w| w.rule.name).collect();
        names.sort_unstable();
        names.dedup();
        let line = directive_line(opts.source, "check").unwrap_or(1);
        Diagnostic::new(
            &opts.file_name,
            opts.source,
            Pos { line, column: 1 },
            format!("lint violation found for rules: {}", names.join(", ")),
        )
        .with_hint(Some("`error=true` in the check options turns these warnings into errors".into()))
    });
    Ok(Report { warnings, config, error })
}

/// The line of the parser directive `name` (`# check=…`), if the file has one.
fn directive_line(source: &str, name: &str) -> Option<usize> {
    for (i, line) in source.lines().enumerate() {
        let t = line.trim_start();
        let rest = t.strip_prefix('#')?;
        let rest = rest.trim_start();
        let key: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        if key.eq_ignore_ascii_case(name) && rest[key.len()..].trim_start().starts_with('=') {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests;
