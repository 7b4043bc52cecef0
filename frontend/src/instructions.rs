//! Typed Dockerfile instructions: the syntax tree's keyword/flags/arguments checked and sorted
//! into one variant per instruction, as BuildKit's `frontend/dockerfile/instructions` package
//! does between parsing and translation.
//!
//! This layer validates what the parser does not: the instruction keyword (with a "did you
//! mean" hint), which flags an instruction accepts and their values (`unknown flag: --foo`,
//! BuildKit's wording), argument counts. It does not expand variables: values stay as written so
//! the translator can expand them in the right scope (stage env, build args) at the right time.

use crate::ast::{Heredoc, Instruction, Pos};

/// An instruction that cannot be typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InstructionError {
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

/// An error about an instruction's form; the hint shows the form it takes.
fn err(ins: &Instruction, message: impl Into<String>) -> InstructionError {
    InstructionError {
        pos: ins.start,
        message: message.into(),
        hint: usage(&ins.keyword).map(|u| format!("usage: {u}")),
    }
}

/// An error about one flag, with what to write instead.
fn flag_err(ins: &Instruction, message: String, hint: String) -> InstructionError {
    InstructionError { pos: ins.start, message, hint: Some(hint) }
}

/// The synopsis of an instruction, as the Dockerfile reference gives it.
pub fn usage(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "from" => "FROM [--platform=<platform>] <image> [AS <name>]",
        "arg" => "ARG <name>[=<default value>] ...",
        "env" => "ENV <key>=<value> ...",
        "label" => "LABEL <key>=<value> ...",
        "run" => "RUN [--mount=...] [--network=...] <command>, or RUN [\"executable\", \"param\", ...]",
        "cmd" => "CMD [\"executable\", \"param\", ...], or CMD <command>",
        "entrypoint" => "ENTRYPOINT [\"executable\", \"param\", ...], or ENTRYPOINT <command>",
        "copy" => "COPY [--from=<stage>] [--chown=<user>:<group>] [--chmod=<mode>] [--link] <src> ... <dest>",
        "add" => "ADD [--chown=<user>:<group>] [--chmod=<mode>] [--link] <src> ... <dest>",
        "workdir" => "WORKDIR /path/to/workdir",
        "user" => "USER <user>[:<group>]",
        "expose" => "EXPOSE <port>[/<protocol>] ...",
        "volume" => "VOLUME /path ..., or VOLUME [\"/path\", ...]",
        "stopsignal" => "STOPSIGNAL <signal>",
        "healthcheck" => "HEALTHCHECK [--interval=<duration>] ... CMD <command>, or HEALTHCHECK NONE",
        "shell" => "SHELL [\"executable\", \"parameters\"]",
        "onbuild" => "ONBUILD <INSTRUCTION>",
        "maintainer" => "MAINTAINER <name> (deprecated: LABEL org.opencontainers.image.authors=<name>)",
        _ => return None,
    })
}

/// A command line as RUN, CMD, ENTRYPOINT and HEALTHCHECK take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The arguments: one string for shell form, the array for JSON (exec) form.
    pub args: Vec<String>,
    /// Shell form: the stage's SHELL is prepended when it runs.
    pub prepend_shell: bool,
}

/// A `key=value` pair of ENV or LABEL, unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// One name of an ARG instruction, with its default (unexpanded) if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyCommand {
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    /// ADD only.
    pub checksum: Option<String>,
    /// ADD only.
    pub keep_git_dir: bool,
    /// Sources given as here-documents (`COPY <<EOF /dest`).
    pub heredocs: Vec<Heredoc>,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthcheckCommand {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    Check {
        /// `CMD-SHELL` + command for shell form, `CMD` + args for exec form.
        test: Vec<String>,
        interval: Option<String>,
        timeout: Option<String>,
        start_period: Option<String>,
        start_interval: Option<String>,
        retries: Option<String>,
    },
}

/// A typed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    From { image: String, stage_name: Option<String>, platform: Option<String> },
    Arg(Vec<ArgDecl>),
    Env(Vec<KeyValue>),
    Label(Vec<KeyValue>),
    Run { command: CommandLine, mounts: Vec<String>, network: Option<String>, security: Option<String> },
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Copy(CopyCommand),
    Add(CopyCommand),
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(HealthcheckCommand),
    Shell(Vec<String>),
    Onbuild(Box<Instruction>),
    Maintainer(String),
}

/// Every instruction keyword BuildKit knows.
pub const KEYWORDS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// The flags of one instruction, parsed as BuildKit's BFlags does: `--name=value`, or a bare
/// `--name` for booleans (`--name=true|false` also accepted).
struct Flags<'a> {
    ins: &'a Instruction,
    parsed: Vec<(String, Option<String>, bool)>, // name, value, used
    /// The flags the instruction accepts (every name asked for), for "did you mean" hints.
    known: Vec<&'static str>,
}

impl<'a> Flags<'a> {
    fn parse(ins: &'a Instruction) -> Result<Flags<'a>, InstructionError> {
        let mut parsed = Vec::new();
        for f in &ins.flags {
            let body = f.strip_prefix("--").ok_or_else(|| err(ins, format!("invalid flag {f:?}")))?;
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            if name.is_empty() {
                return Err(err(ins, format!("invalid flag {f:?}")));
            }
            parsed.push((name, value, false));
        }
        Ok(Flags { ins, parsed, known: Vec::new() })
    }

    /// A flag that may appear once with a value.
    fn string(&mut self, name: &'static str) -> Result<Option<String>, InstructionError> {
        self.known.push(name);
        let mut out = None;
        for (n, v, used) in self.parsed.iter_mut().filter(|(n, ..)| n == name) {
            if out.is_some() {
                return Err(flag_err(self.ins, format!("duplicate flag specified: {n}"), format!("give --{n} once")));
            }
            *used = true;
            match v {
                Some(v) => out = Some(v.clone()),
                None => {
                    return Err(flag_err(
                        self.ins,
                        format!("missing a value on flag: {n}"),
                        format!("write --{n}=VALUE"),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// A flag that may appear many times with a value.
    fn strings(&mut self, name: &'static str) -> Result<Vec<String>, InstructionError> {
        self.known.push(name);
        let mut out = Vec::new();
        for (n, v, used) in self.parsed.iter_mut().filter(|(n, ..)| n == name) {
            *used = true;
            match v {
                Some(v) => out.push(v.clone()),
                None => {
                    return Err(flag_err(
                        self.ins,
                        format!("missing a value on flag: {n}"),
                        format!("write --{n}=VALUE"),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn boolean(&mut self, name: &'static str) -> Result<bool, InstructionError> {
        self.known.push(name);
        let mut out = false;
        for (n, v, used) in self.parsed.iter_mut().filter(|(n, ..)| n == name) {
            *used = true;
            out = match v.as_deref() {
                None | Some("true") | Some("") => true,
                Some("false") => false,
                Some(other) => {
                    return Err(flag_err(
                        self.ins,
                        format!("expecting boolean value for flag {n}, not: {other}"),
                        format!("write --{n}, --{n}=true or --{n}=false"),
                    ));
                }
            };
        }
        Ok(out)
    }

    /// Fails on any flag the instruction does not define, suggesting the one meant.
    fn finish(self) -> Result<(), InstructionError> {
        let Some((name, ..)) = self.parsed.iter().find(|(_, _, used)| !used) else { return Ok(()) };
        let keyword = self.ins.keyword.to_uppercase();
        let accepted: Vec<String> = self.known.iter().map(|k| format!("--{k}")).collect();
        let hint = match (crate::suggest::closest(name, &self.known), accepted.is_empty()) {
            (Some(s), _) => format!("did you mean --{s}? ({keyword} accepts {})", accepted.join(", ")),
            (None, true) => format!("{keyword} takes no flags"),
            (None, false) => format!("{keyword} accepts {}", accepted.join(", ")),
        };
        Err(InstructionError { pos: self.ins.start, message: format!("unknown flag: --{name}"), hint: Some(hint) })
    }
}

/// Types one instruction.
pub fn parse_command(ins: &Instruction) -> Result<Command, InstructionError> {
    let mut flags = Flags::parse(ins)?;
    let name = ins.keyword.to_uppercase();
    let cmd = match ins.keyword.as_str() {
        "from" => {
            let platform = flags.string("platform")?;
            let (image, stage_name) = match ins.args.as_slice() {
                [image] => (image.clone(), None),
                [image, as_kw, stage] if as_kw.eq_ignore_ascii_case("as") => {
                    (image.clone(), Some(check_stage_name(ins, stage)?))
                }
                _ => return Err(err(ins, "FROM requires either one or three arguments")),
            };
            Command::From { image, stage_name, platform }
        }
        "arg" => {
            if ins.args.is_empty() {
                return Err(err(ins, "ARG requires at least one argument"));
            }
            // ARG words are `name` or `name=default` (BuildKit's parseNameOrNameVal); the
            // default keeps its quotes for the translator to expand.
            let mut decls = Vec::new();
            for w in &ins.args {
                let (name, default) = match w.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (w.clone(), None),
                };
                if name.is_empty() {
                    return Err(err(ins, "ARG names can not be blank"));
                }
                decls.push(ArgDecl { name, default });
            }
            Command::Arg(decls)
        }
        "env" | "label" => {
            if ins.args.is_empty() {
                return Err(err(ins, format!("{name} requires at least one argument")));
            }
            let pairs = triples(ins)?.into_iter().map(|(key, value, _)| KeyValue { key, value }).collect();
            if ins.keyword == "env" { Command::Env(pairs) } else { Command::Label(pairs) }
        }
        "run" => {
            let mounts = flags.strings("mount")?;
            let network = flags.string("network")?;
            let security = flags.string("security")?;
            Command::Run { command: command_line(ins, "RUN")?, mounts, network, security }
        }
        "cmd" => Command::Cmd(command_line(ins, "CMD")?),
        "entrypoint" => Command::Entrypoint(command_line(ins, "ENTRYPOINT")?),
        "copy" | "add" => {
            let is_add = ins.keyword == "add";
            let mut c = CopyCommand {
                from: if is_add { None } else { flags.string("from")? },
                chown: flags.string("chown")?,
                chmod: flags.string("chmod")?,
                link: flags.boolean("link")?,
                parents: if is_add { false } else { flags.boolean("parents")? },
                exclude: flags.strings("exclude")?,
                checksum: if is_add { flags.string("checksum")? } else { None },
                keep_git_dir: if is_add { flags.boolean("keep-git-dir")? } else { false },
                heredocs: ins.heredocs.clone(),
                ..CopyCommand::default()
            };
            let mut words = ins.args.clone();
            if words.len() + usize::from(!ins.heredocs.is_empty()) < 2 {
                return Err(err(
                    ins,
                    format!(
                        "{name} requires at least two arguments, but only one was provided. Destination could not be determined"
                    ),
                ));
            }
            c.dest = words.pop().unwrap_or_default();
            // Heredoc sources appear among the words as `<<EOF`; they are taken from `heredocs`.
            c.sources = words.into_iter().filter(|w| !is_heredoc_word(w, &ins.heredocs)).collect();
            if is_add { Command::Add(c) } else { Command::Copy(c) }
        }
        "workdir" => Command::Workdir(single(ins, "WORKDIR")?),
        "user" => Command::User(single(ins, "USER")?),
        "expose" => {
            if ins.args.is_empty() {
                return Err(err(ins, "EXPOSE requires at least one argument"));
            }
            Command::Expose(ins.args.clone())
        }
        "volume" => {
            if ins.args.is_empty() {
                return Err(err(ins, "VOLUME requires at least one argument"));
            }
            if ins.args.iter().any(|v| v.trim().is_empty()) {
                return Err(err(ins, "VOLUME specified can not be an empty string"));
            }
            Command::Volume(ins.args.clone())
        }
        "stopsignal" => Command::StopSignal(single(ins, "STOPSIGNAL")?),
        "healthcheck" => healthcheck(ins, &mut flags)?,
        "shell" => {
            if !ins.json {
                return Err(err(ins, "SHELL requires the arguments to be in JSON form"));
            }
            if ins.args.is_empty() {
                return Err(err(ins, "SHELL requires at least one argument"));
            }
            Command::Shell(ins.args.clone())
        }
        "onbuild" => {
            let inner = ins.inner.as_ref().ok_or_else(|| err(ins, "ONBUILD requires at least one argument"))?;
            match inner.keyword.as_str() {
                "onbuild" => return Err(err(ins, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")),
                "from" | "maintainer" => {
                    return Err(err(
                        ins,
                        format!("{} isn't allowed as an ONBUILD trigger", inner.keyword.to_uppercase()),
                    ));
                }
                _ => {}
            }
            Command::Onbuild(inner.clone())
        }
        "maintainer" => {
            if ins.args.is_empty() {
                return Err(err(ins, "MAINTAINER requires exactly one argument"));
            }
            Command::Maintainer(ins.args.join(" "))
        }
        other => return Err(unknown_instruction(ins, other)),
    };
    flags.finish()?;
    Ok(cmd)
}

/// BuildKit tells heredoc sources from paths by parsing each source word as a heredoc marker.
fn is_heredoc_word(word: &str, heredocs: &[Heredoc]) -> bool {
    !heredocs.is_empty() && matches!(crate::parser::parse_heredoc_word(word), Ok(Some(_)))
}

fn single(ins: &Instruction, name: &str) -> Result<String, InstructionError> {
    match ins.args.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(err(ins, format!("{name} requires exactly one argument"))),
        _ if name == "WORKDIR" || name == "STOPSIGNAL" || name == "USER" => {
            Err(err(ins, format!("{name} requires exactly one argument")))
        }
        _ => Ok(ins.args.join(" ")),
    }
}

/// ENV/LABEL/ARG arguments come from the parser as (name, value, separator) triples.
fn triples(ins: &Instruction) -> Result<Vec<(String, String, bool)>, InstructionError> {
    if !ins.args.len().is_multiple_of(3) {
        return Err(err(ins, format!("{} has malformed arguments", ins.keyword.to_uppercase())));
    }
    let mut out = Vec::new();
    for t in ins.args.chunks(3) {
        if t[0].is_empty() {
            return Err(err(ins, format!("{} names can not be blank", ins.keyword.to_uppercase())));
        }
        out.push((t[0].clone(), t[1].clone(), t[2] == "="));
    }
    Ok(out)
}

fn command_line(ins: &Instruction, name: &str) -> Result<CommandLine, InstructionError> {
    if ins.json {
        return Ok(CommandLine { args: ins.args.clone(), prepend_shell: false });
    }
    let text = ins.args.join(" ");
    if name == "RUN" && text.trim().is_empty() && ins.heredocs.is_empty() {
        return Err(err(ins, "RUN requires at least one argument"));
    }
    Ok(CommandLine { args: vec![text], prepend_shell: true })
}

fn check_stage_name(ins: &Instruction, name: &str) -> Result<String, InstructionError> {
    // BuildKit: ^[a-z][a-z0-9-_.]*$ after lower-casing.
    let lower = name.to_ascii_lowercase();
    let ok = lower.starts_with(|c: char| c.is_ascii_lowercase())
        && lower.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(InstructionError {
            pos: ins.start,
            message: format!(
                "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
            ),
            hint: Some("a stage name starts with a letter and has only letters, digits, `-`, `_` and `.`".into()),
        });
    }
    Ok(lower)
}

fn healthcheck(ins: &Instruction, flags: &mut Flags) -> Result<Command, InstructionError> {
    let interval = flags.string("interval")?;
    let timeout = flags.string("timeout")?;
    let start_period = flags.string("start-period")?;
    let start_interval = flags.string("start-interval")?;
    let retries = flags.string("retries")?;
    let Some(kind) = ins.args.first() else {
        return Err(err(ins, "HEALTHCHECK requires an argument"));
    };
    match kind.to_ascii_uppercase().as_str() {
        "NONE" => {
            if ins.args.len() > 1 {
                return Err(err(ins, "HEALTHCHECK NONE takes no arguments"));
            }
            Ok(Command::Healthcheck(HealthcheckCommand::None))
        }
        "CMD" => {
            let rest = &ins.args[1..];
            if rest.is_empty() || rest.iter().all(|a| a.trim().is_empty()) {
                return Err(err(ins, "Missing command after HEALTHCHECK CMD"));
            }
            let test = if ins.json {
                std::iter::once("CMD".to_string()).chain(rest.iter().cloned()).collect()
            } else {
                vec!["CMD-SHELL".to_string(), rest.join(" ")]
            };
            Ok(Command::Healthcheck(HealthcheckCommand::Check {
                test,
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
            }))
        }
        other => Err(err(ins, format!("Unknown type \"{other}\" in HEALTHCHECK (try CMD)"))),
    }
}

fn unknown_instruction(ins: &Instruction, keyword: &str) -> InstructionError {
    let upper = keyword.to_uppercase();
    let hint = match crate::suggest::closest(keyword, KEYWORDS) {
        Some(k) => format!("did you mean {}?", k.to_uppercase()),
        // A line that belongs to the previous instruction, cut off by a missing `\`.
        None if keyword.starts_with('-') || keyword.contains(['=', '/', '&', '|', ';']) => {
            "this looks like part of the previous instruction: end that line with the escape character (\\) to continue it".to_string()
        }
        None => format!("instructions are {}", KEYWORDS.iter().map(|k| k.to_uppercase()).collect::<Vec<_>>().join(", ")),
    };
    InstructionError { pos: ins.start, message: format!("unknown instruction: {upper}"), hint: Some(hint) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(keyword: &str, flags: &[&str], args: &[&str], json: bool) -> Instruction {
        Instruction {
            keyword: keyword.into(),
            flags: flags.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            json,
            original: String::new(),
            heredocs: vec![],
            inner: None,
            start: Pos { line: 3, column: 1 },
            end_line: 3,
            comments: vec![],
        }
    }

    #[test]
    fn copy_flags_are_typed_and_unknown_ones_rejected() {
        let c =
            parse_command(&ins("copy", &["--from=build", "--chown=1:2", "--link"], &["a", "b", "/d/"], false)).unwrap();
        let Command::Copy(c) = c else { panic!() };
        assert_eq!(c.from.as_deref(), Some("build"));
        assert_eq!(c.chown.as_deref(), Some("1:2"));
        assert!(c.link);
        assert_eq!(c.sources, ["a", "b"]);
        assert_eq!(c.dest, "/d/");

        let e = parse_command(&ins("copy", &["--user=me"], &["a", "b"], false)).unwrap_err();
        assert_eq!(e.message, "unknown flag: --user");
        assert_eq!(e.pos.line, 3);
        // ADD has no --from
        let e = parse_command(&ins("add", &["--from=x"], &["a", "b"], false)).unwrap_err();
        assert_eq!(e.message, "unknown flag: --from");
        let e = parse_command(&ins("copy", &["--chown"], &["a", "b"], false)).unwrap_err();
        assert_eq!(e.message, "missing a value on flag: chown");
        let e = parse_command(&ins("copy", &[], &["a"], false)).unwrap_err();
        assert!(e.message.contains("requires at least two arguments"), "{}", e.message);
    }

    #[test]
    fn unknown_instructions_get_a_suggestion() {
        let e = parse_command(&ins("coppy", &[], &["a", "b"], false)).unwrap_err();
        assert_eq!(e.message, "unknown instruction: COPPY");
        assert_eq!(e.hint.as_deref(), Some("did you mean COPY?"));
        let e = parse_command(&ins("frobnicate", &[], &["a"], false)).unwrap_err();
        assert!(e.hint.unwrap().starts_with("instructions are ADD, ARG, CMD"));
        // A continuation line whose `\` went missing.
        let e = parse_command(&ins("&&", &[], &["apt-get", "clean"], false)).unwrap_err();
        assert!(e.hint.unwrap().contains("end that line with the escape character"));
    }

    #[test]
    fn malformed_instructions_show_their_form() {
        let e = parse_command(&ins("from", &[], &["a", "b"], false)).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("usage: FROM [--platform=<platform>] <image> [AS <name>]"));
        let e = parse_command(&ins("shell", &[], &["/bin/sh -c"], false)).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("usage: SHELL [\"executable\", \"parameters\"]"));
        let e = parse_command(&ins("copy", &["--chown"], &["a", "b"], false)).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("write --chown=VALUE"));
        let e = parse_command(&ins("from", &[], &["a", "as", "1x"], false)).unwrap_err();
        assert!(e.hint.unwrap().starts_with("a stage name starts with a letter"));
        for k in KEYWORDS {
            assert!(usage(k).is_some_and(|u| u.starts_with(&k.to_uppercase())), "{k}");
        }
    }

    #[test]
    fn unknown_flags_get_the_flag_meant() {
        let e = parse_command(&ins("copy", &["--chwon=1"], &["a", "b"], false)).unwrap_err();
        assert_eq!(e.message, "unknown flag: --chwon");
        assert_eq!(
            e.hint.as_deref(),
            Some("did you mean --chown? (COPY accepts --from, --chown, --chmod, --link, --parents, --exclude)")
        );
        let e = parse_command(&ins("run", &["--mout=type=cache,target=/x"], &["true"], false)).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean --mount? (RUN accepts --mount, --network, --security)"));
        let e = parse_command(&ins("workdir", &["--x"], &["/a"], false)).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("WORKDIR takes no flags"));
        let e = parse_command(&ins("add", &["--frm=x"], &["a", "b"], false)).unwrap_err();
        assert_eq!(e.message, "unknown flag: --frm");
        assert!(!e.hint.unwrap().contains("did you mean"), "ADD has no --from to suggest");
    }

    #[test]
    fn from_forms_and_stage_names() {
        let Command::From { image, stage_name, .. } =
            parse_command(&ins("from", &[], &["alpine", "AS", "Build"], false)).unwrap()
        else {
            panic!()
        };
        assert_eq!((image.as_str(), stage_name.as_deref()), ("alpine", Some("build")));
        assert!(parse_command(&ins("from", &[], &["a", "b"], false)).is_err());
        assert!(parse_command(&ins("from", &[], &["a", "as", "1x"], false)).is_err());
    }

    #[test]
    fn healthcheck_forms() {
        let Command::Healthcheck(HealthcheckCommand::Check { test, interval, .. }) =
            parse_command(&ins("healthcheck", &["--interval=5s"], &["CMD", "curl -f x"], false)).unwrap()
        else {
            panic!()
        };
        assert_eq!(test, ["CMD-SHELL", "curl -f x"]);
        assert_eq!(interval.as_deref(), Some("5s"));
        let Command::Healthcheck(HealthcheckCommand::Check { test, .. }) =
            parse_command(&ins("healthcheck", &[], &["CMD", "curl", "-f"], true)).unwrap()
        else {
            panic!()
        };
        assert_eq!(test, ["CMD", "curl", "-f"]);
        assert_eq!(
            parse_command(&ins("healthcheck", &[], &["NONE"], false)).unwrap(),
            Command::Healthcheck(HealthcheckCommand::None)
        );
        assert!(parse_command(&ins("healthcheck", &["--bogus=1"], &["NONE"], false)).is_err());
    }

    #[test]
    fn arg_and_env_triples() {
        let Command::Arg(a) = parse_command(&ins("arg", &[], &["A=1", "B"], false)).unwrap() else { panic!() };
        assert_eq!(
            a,
            [ArgDecl { name: "A".into(), default: Some("1".into()) }, ArgDecl { name: "B".into(), default: None }]
        );
        let Command::Env(e) = parse_command(&ins("env", &[], &["K", "v w", ""], false)).unwrap() else { panic!() };
        assert_eq!(e, [KeyValue { key: "K".into(), value: "v w".into() }]);
    }

    #[test]
    fn shell_needs_json_and_boolean_flags_parse() {
        assert!(parse_command(&ins("shell", &[], &["/bin/sh -c"], false)).is_err());
        let Command::Copy(c) = parse_command(&ins("copy", &["--link=false"], &["a", "b"], false)).unwrap() else {
            panic!()
        };
        assert!(!c.link);
        assert!(parse_command(&ins("copy", &["--link=maybe"], &["a", "b"], false)).is_err());
    }
}
