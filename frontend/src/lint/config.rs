//! Which checks run and whether a warning fails the build: the `# check=` directive, or the
//! `BUILDKIT_DOCKERFILE_CHECK` build argument, which replaces the directive when given (as
//! BuildKit's `dockerui` client does).
//!
//! The syntax is BuildKit's `linter.ParseLintOptions`: `;`-separated `key=value` options among
//! `skip=Rule1,Rule2` (or `skip=all`), `error=<bool>` (Go's `strconv.ParseBool`) and
//! `experimental=Rule1,…` (or `all`). Experimental rules are off by default and, once named, run
//! even when `skip` would drop them.

use super::rules::Rule;

/// The build argument that overrides the `# check=` directive.
pub const CHECK_BUILD_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// The parsed check options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintConfig {
    pub skip: Vec<String>,
    pub skip_all: bool,
    /// Turn warnings into a build error.
    pub error: bool,
    pub experimental: Vec<String>,
    pub experimental_all: bool,
}

/// A `check` option strata (and BuildKit) does not understand; the text is BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse check options: {0}")]
pub struct ConfigError(pub String);

impl LintConfig {
    /// Parses a `check` value (the directive's or the build argument's).
    pub fn parse(text: &str) -> Result<LintConfig, ConfigError> {
        let text = text.trim();
        let mut config = LintConfig::default();
        if text.is_empty() {
            return Ok(config);
        }
        for part in text.split(';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(ConfigError(format!("invalid check option {}", go_quote(part))));
            };
            let value = value.trim();
            match key.trim() {
                "skip" => match value {
                    "all" => config.skip_all = true,
                    _ => config.skip = value.split(',').map(|r| r.trim().to_string()).collect(),
                },
                "experimental" => match value {
                    "all" => config.experimental_all = true,
                    _ => config.experimental = value.split(',').map(|r| r.trim().to_string()).collect(),
                },
                "error" => {
                    config.error = parse_go_bool(value).ok_or_else(|| {
                        ConfigError(format!(
                            "failed to parse check option {}: strconv.ParseBool: parsing {}: invalid syntax",
                            go_quote(part),
                            go_quote(value)
                        ))
                    })?;
                }
                other => return Err(ConfigError(format!("invalid check option {}", go_quote(other)))),
            }
        }
        Ok(config)
    }

    /// The options in force: the build argument if given, else the directive.
    pub fn resolve(directive: Option<&str>, build_arg: Option<&str>) -> Result<LintConfig, ConfigError> {
        LintConfig::parse(build_arg.or(directive).unwrap_or(""))
    }

    /// Whether `rule` runs under these options.
    pub fn enabled(&self, rule: &Rule) -> bool {
        if rule.experimental {
            return self.experimental_all || self.experimental.iter().any(|r| r == rule.name);
        }
        !self.skip_all && !self.skip.iter().any(|r| r == rule.name)
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn go_quote(s: &str) -> String {
    crate::gofmt::quote(s)
}

#[cfg(test)]
mod tests {
    use super::super::rules;
    use super::*;

    #[test]
    fn options_as_buildkit_reads_them() {
        let c = LintConfig::parse("skip=ConsistentInstructionCasing, FromAsCasing ;error=true").unwrap();
        assert_eq!(c.skip, ["ConsistentInstructionCasing", "FromAsCasing"]);
        assert!(c.error);
        assert!(!c.enabled(&rules::FROM_AS_CASING));
        assert!(c.enabled(&rules::STAGE_NAME_CASING));
        assert!(!c.enabled(&rules::COPY_IGNORED_FILE), "experimental rules are off by default");

        let c = LintConfig::parse("skip=all;experimental=CopyIgnoredFile").unwrap();
        assert!(!c.enabled(&rules::UNDEFINED_VAR));
        assert!(c.enabled(&rules::COPY_IGNORED_FILE), "experimental wins over skip");
        assert!(LintConfig::parse("experimental=all").unwrap().enabled(&rules::INVALID_DEFINITION_DESCRIPTION));

        assert!(LintConfig::parse("error=T").unwrap().error);
        assert_eq!(LintConfig::parse("  ").unwrap(), LintConfig::default());
        assert_eq!(
            LintConfig::parse("bogus").unwrap_err().to_string(),
            "failed to parse check options: invalid check option \"bogus\""
        );
        assert_eq!(
            LintConfig::parse("foo=bar").unwrap_err().to_string(),
            "failed to parse check options: invalid check option \"foo\""
        );
        assert!(LintConfig::parse("error=maybe").unwrap_err().to_string().contains("invalid syntax"));
    }

    #[test]
    fn the_build_argument_replaces_the_directive() {
        let c = LintConfig::resolve(Some("error=true"), Some("skip=all")).unwrap();
        assert!(!c.error);
        assert!(c.skip_all);
        assert!(LintConfig::resolve(Some("error=true"), None).unwrap().error);
    }
}
