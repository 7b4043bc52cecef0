//! The checks themselves, raised in BuildKit's order (see the module doc of `lint`): while typing
//! instructions, over all stages before dispatch, and while dispatching each stage.
//!
//! Each check carries over BuildKit's condition and message exactly (the `validate*`/`report*`
//! functions and `dispatch*` calls of `dockerfile2llb`); the comments name the BuildKit function
//! a check follows where the condition is not obvious.

use std::collections::BTreeMap;

use strata_store::oci::{DEFAULT_PATH, Platform};
use strata_store::reference::Reference;

use super::rules::{self, Rule};
use super::{LintConfig, LintOptions, Warning};
use crate::ast::{Dockerfile, Instruction, Pos};
use crate::convert::{EnvList, platform_args};
use crate::gofmt::quote;
use crate::instructions::{self, ArgDecl, Command};
use crate::shell::Lexer;
use crate::suggest;

/// Build args BuildKit never puts in a stage's environment (nor reports as undefined).
const NON_ENV_ARGS: &[&str] = &["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// Where a warning goes: the lines BuildKit reports and the caret position.
#[derive(Debug, Clone, Copy)]
struct Loc {
    lines: (usize, usize),
    pos: Pos,
}

impl Loc {
    fn of(ins: &Instruction) -> Loc {
        Loc { lines: (ins.start.line, ins.end_line.max(ins.start.line)), pos: ins.start }
    }

    fn at(self, pos: Option<Pos>) -> Loc {
        Loc { pos: pos.unwrap_or(self.pos), ..self }
    }
}

/// A reason to stop checking: the translation fails at this point and reports why itself.
struct Stop;

/// One stage as declared.
struct StageDecl<'d> {
    from: &'d Instruction,
    /// `AS name`, lower-cased.
    name: Option<String>,
    base_raw: String,
    platform_raw: Option<String>,
    /// The base after expanding the global args.
    base: String,
    /// The `--platform` after expansion, parsed.
    platform: Option<(String, String)>,
    commands: Vec<(&'d Instruction, Command)>,
}

/// What a stage's dispatch knows, and what a stage built on it inherits.
#[derive(Debug, Clone, Default)]
struct StageState {
    /// BuildKit's LLB environment: the base image's `Env`, every `ENV`, every valued `ARG`.
    env: EnvList,
    /// False when the base image could not be read: checks on variables are muted.
    env_known: bool,
    /// Every `ARG` name declared in the stage or its base stages, valued or not.
    build_args: Vec<String>,
    /// The image has a `SHELL`.
    shell: bool,
    /// A `WORKDIR` of this Dockerfile has run (base images' working directories do not count).
    workdir_set: bool,
    /// `ONBUILD` triggers of this stage, which run in stages built on it.
    onbuild: Vec<Instruction>,
}

/// What an instruction that may appear only once last looked like, per stage.
#[derive(Default)]
struct Trackers {
    cmd: Option<Loc>,
    entrypoint: Option<Loc>,
    healthcheck: Option<Loc>,
}

struct Linter<'o, 'a> {
    opts: &'o LintOptions<'a>,
    config: &'o LintConfig,
    lines: Vec<&'a str>,
    lexer: Lexer,
    warnings: Vec<Warning>,
}

/// Runs every check; the warnings come out in the order they were raised.
pub(super) fn run(df: &Dockerfile, opts: &LintOptions, config: &LintConfig) -> Vec<Warning> {
    let mut l = Linter {
        opts,
        config,
        lines: opts.source.split('\n').map(|l| l.trim_end_matches('\r')).collect(),
        lexer: Lexer::new(df.directives.escape),
        warnings: Vec::new(),
    };
    let _ = l.all(df);
    l.warnings
}

impl Linter<'_, '_> {
    fn warn(&mut self, rule: &'static Rule, detail: String, loc: Loc) {
        if self.config.enabled(rule) {
            self.warnings.push(Warning { rule, detail, lines: loc.lines, pos: loc.pos });
        }
    }

    fn all(&mut self, df: &Dockerfile) -> Result<(), Stop> {
        self.empty_continuations(df);
        let (mut stages, meta) = self.type_instructions(df)?;
        self.stage_names(&stages);
        self.instruction_casing(&stages);
        let global = self.check_from_lines(&mut stages, &meta)?;
        self.dispatch_stages(&stages, &global)
    }

    /// `NoEmptyContinuation`: BuildKit places it on the last line of the instruction.
    fn empty_continuations(&mut self, df: &Dockerfile) {
        for w in df.warnings.iter().filter(|w| w.message.starts_with("Empty continuation line")) {
            let end = df
                .instructions
                .iter()
                .find(|i| i.start.line <= w.pos.line && w.pos.line <= i.end_line)
                .map_or(w.pos.line, |i| i.end_line);
            let loc = Loc { lines: (end, end), pos: w.pos };
            self.warn(&rules::NO_EMPTY_CONTINUATION, "Empty continuation line".into(), loc);
        }
    }

    // --- 1. while typing instructions (BuildKit's instructions.Parse) ---------------------

    #[allow(clippy::type_complexity)]
    fn type_instructions<'d>(
        &mut self,
        df: &'d Dockerfile,
    ) -> Result<(Vec<StageDecl<'d>>, Vec<(&'d Instruction, Vec<ArgDecl>)>), Stop> {
        let mut stages: Vec<StageDecl> = Vec::new();
        let mut meta = Vec::new();
        for ins in &df.instructions {
            let loc = Loc::of(ins);
            let keyword = written_keyword(ins);
            match ins.keyword.as_str() {
                "maintainer" => self.warn(
                    &rules::MAINTAINER_DEPRECATED,
                    "Maintainer instruction is deprecated in favor of using label".into(),
                    loc,
                ),
                "from" if ins.args.len() >= 3 => {
                    let stage = &ins.args[2];
                    if ins.args.len() == 3 && *stage != stage.to_lowercase() {
                        let pos = self.find(ins, stage, true);
                        self.warn(
                            &rules::STAGE_NAME_CASING,
                            format!("Stage name '{stage}' should be lowercase"),
                            loc.at(pos),
                        );
                    }
                    // Inconsistent casing of FROM itself is ConsistentInstructionCasing's job.
                    let as_kw = &ins.args[1];
                    let lower = keyword == keyword.to_lowercase();
                    let upper = keyword == keyword.to_uppercase();
                    let mismatch = (lower && *as_kw != as_kw.to_lowercase())
                        || (!lower && upper && *as_kw != as_kw.to_uppercase());
                    if mismatch {
                        let pos = self.find(ins, as_kw, false);
                        self.warn(
                            &rules::FROM_AS_CASING,
                            format!("'{as_kw}' and '{keyword}' keywords' casing do not match"),
                            loc.at(pos),
                        );
                    }
                }
                _ => {}
            }
            let Ok(cmd) = instructions::parse_command(ins) else { return Err(Stop) };
            match cmd {
                Command::From { image, stage_name, platform } => {
                    if let Some(name) = &stage_name {
                        self.definition_description("FROM", std::slice::from_ref(name), ins);
                    }
                    stages.push(StageDecl {
                        from: ins,
                        name: stage_name,
                        base_raw: image,
                        platform_raw: platform,
                        base: String::new(),
                        platform: None,
                        commands: Vec::new(),
                    });
                }
                Command::Arg(decls) => {
                    let keys: Vec<String> = decls.iter().map(|d| d.name.clone()).collect();
                    self.definition_description("ARG", &keys, ins);
                    match stages.last_mut() {
                        None => meta.push((ins, decls)),
                        Some(s) => s.commands.push((ins, Command::Arg(decls))),
                    }
                }
                other => match stages.last_mut() {
                    Some(s) => s.commands.push((ins, other)),
                    None => return Err(Stop),
                },
            }
        }
        Ok((stages, meta))
    }

    /// `InvalidDefinitionDescription` (BuildKit's validateDefinitionDescription): the comment
    /// right above an `ARG` or a named `FROM` should start with the name it describes.
    fn definition_description(&mut self, instruction: &str, keys: &[String], ins: &Instruction) {
        let (Some(last), Some(first_key)) = (ins.comments.last(), keys.first()) else { return };
        let first_word = last.split(' ').next().unwrap_or("");
        if keys.iter().any(|k| k == first_word) {
            return;
        }
        let example = if keys.len() > 1 { "<arg_key>" } else { first_key.as_str() };
        self.warn(
            &rules::INVALID_DEFINITION_DESCRIPTION,
            format!("Comment for {instruction} should follow the format: `# {example} <description>`"),
            Loc::of(ins),
        );
    }

    // --- 2. over all stages, before dispatch --------------------------------------------

    /// `ReservedStageName`, `DuplicateStageName` (BuildKit's validateStageNames).
    fn stage_names(&mut self, stages: &[StageDecl]) {
        let mut seen: Vec<&str> = Vec::new();
        for st in stages {
            let Some(name) = st.name.as_deref() else { continue };
            let loc = Loc::of(st.from).at(self.find(st.from, name, true));
            if name == "context" || name == "scratch" {
                self.warn(
                    &rules::RESERVED_STAGE_NAME,
                    format!("Stage name should not use the same name as reserved stage {}", quote(name)),
                    loc,
                );
            }
            if seen.contains(&name) {
                self.warn(
                    &rules::DUPLICATE_STAGE_NAME,
                    format!("Duplicate stage name {}, stage names should be unique", quote(name)),
                    loc,
                );
            }
            seen.push(name);
        }
    }

    /// `ConsistentInstructionCasing` (BuildKit's validateCommandCasing): every instruction of
    /// every stage (not the global ARGs) against the casing most of them use.
    fn instruction_casing(&mut self, stages: &[StageDecl]) {
        let all: Vec<&Instruction> =
            stages.iter().flat_map(|s| std::iter::once(s.from).chain(s.commands.iter().map(|(i, _)| *i))).collect();
        let (mut lower, mut upper) = (0, 0);
        for ins in &all {
            let k = written_keyword(ins);
            if k == k.to_lowercase() {
                lower += 1;
            } else if k == k.to_uppercase() {
                upper += 1;
            }
        }
        let majority_lower = lower > upper;
        for ins in all {
            let k = written_keyword(ins);
            let wanted = if majority_lower && k != k.to_lowercase() {
                "lowercase"
            } else if !majority_lower && k != k.to_uppercase() {
                "uppercase"
            } else {
                continue;
            };
            self.warn(
                &rules::CONSISTENT_INSTRUCTION_CASING,
                format!("Command '{k}' should match the case of the command majority ({wanted})"),
                Loc::of(ins),
            );
        }
    }

    /// The checks on `FROM` lines: `InvalidDefaultArgInFrom`, `UndefinedArgInFrom`,
    /// `RedundantTargetPlatform`, `FromPlatformFlagConstDisallowed`. Expands each stage's base
    /// (and platform) with the global args, as the translation will; returns those args.
    fn check_from_lines(
        &mut self,
        stages: &mut [StageDecl],
        meta: &[(&Instruction, Vec<ArgDecl>)],
    ) -> Result<EnvList, Stop> {
        let mut defaults = EnvList::default();
        for (k, v) in platform_args(&self.opts.target_platform, &self.opts.build_platform) {
            defaults.set(&k, self.opts.build_args.get(&k).unwrap_or(&v));
        }
        // BuildKit's validateBaseImagesWithDefaultArgs: would the defaults alone give valid
        // image names? Abandoned silently where expansion fails (the build reports that).
        if let Some((args, _)) = self.meta_args(defaults.clone(), meta, &BTreeMap::new()) {
            for st in stages.iter() {
                let Ok(name) = self.lexer.process_word(&st.base_raw, &args) else { break };
                if Reference::parse(&name).is_err() {
                    let loc = Loc::of(st.from).at(self.find(st.from, &st.base_raw, false));
                    self.warn(
                        &rules::INVALID_DEFAULT_ARG_IN_FROM,
                        format!("Default value for ARG {} results in empty or invalid base image name", st.base_raw),
                        loc,
                    );
                }
            }
        }
        let (global, declared) = self.meta_args(defaults, meta, &self.opts.build_args).ok_or(Stop)?;
        let mut known: Vec<String> = declared;
        for k in global.names() {
            if !known.iter().any(|n| n == k) {
                known.push(k.to_string());
            }
        }
        for st in stages.iter_mut() {
            let loc = Loc::of(st.from);
            let (base, matches) = self.lexer.process_word_with_matches(&st.base_raw, &global).map_err(|_| Stop)?;
            self.undefined_from_args(&matches.unmatched, &known, st.from, loc);
            if base.is_empty() {
                return Err(Stop);
            }
            st.base = base;
            let Some(raw) = st.platform_raw.clone() else { continue };
            let (value, m) = self.lexer.process_word_with_matches(&raw, &global).map_err(|_| Stop)?;
            self.undefined_from_args(&m.unmatched, &known, st.from, loc);
            let flag_pos = self.find(st.from, &raw, false);
            // BuildKit's reportRedundantTargetPlatform: only $TARGETPLATFORM, expanded to itself.
            if m.matched.len() == 1
                && m.unmatched.is_empty()
                && m.matched.contains("TARGETPLATFORM")
                && global.get("TARGETPLATFORM") == Some(value.as_str())
            {
                self.warn(
                    &rules::REDUNDANT_TARGET_PLATFORM,
                    format!(
                        "Setting platform to predefined {raw} in FROM is redundant as this is the default behavior"
                    ),
                    loc.at(flag_pos),
                );
            }
            let parsed = parse_platform(&value);
            // BuildKit's reportConstPlatformDisallowed: a constant platform, unless the stage's
            // name says which platform it is for.
            if m.matched.is_empty()
                && m.unmatched.is_empty()
                && let Some((os, arch)) = &parsed
            {
                let name = st.name.as_deref().unwrap_or("");
                if !name.contains(os.as_str()) && !name.contains(arch.as_str()) {
                    self.warn(
                        &rules::FROM_PLATFORM_FLAG_CONST_DISALLOWED,
                        format!("FROM --platform flag should not use constant value {}", quote(&value)),
                        loc.at(flag_pos),
                    );
                }
            }
            st.platform = Some(parsed.ok_or(Stop)?);
        }
        Ok(global)
    }

    /// BuildKit's buildMetaArgs: the global args in order, a `--build-arg` replacing a default.
    /// Returns the args and every declared name; `None` if a default cannot be expanded.
    fn meta_args(
        &self,
        mut args: EnvList,
        meta: &[(&Instruction, Vec<ArgDecl>)],
        build_args: &BTreeMap<String, String>,
    ) -> Option<(EnvList, Vec<String>)> {
        let mut declared = Vec::new();
        for (_, decls) in meta {
            for d in decls {
                let value = match (build_args.get(&d.name), &d.default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(def)) => Some(self.lexer.process_word(def, &args).ok()?),
                    (None, None) => None,
                };
                if let Some(v) = value {
                    args.set(&d.name, &v);
                }
                if !declared.contains(&d.name) {
                    declared.push(d.name.clone());
                }
            }
        }
        Some((args, declared))
    }

    /// `UndefinedArgInFrom` (BuildKit's reportUnusedFromArgs).
    fn undefined_from_args(
        &mut self,
        unmatched: &std::collections::BTreeSet<String>,
        known: &[String],
        from: &Instruction,
        loc: Loc,
    ) {
        for arg in unmatched {
            if known.contains(arg) {
                continue;
            }
            let mut detail = format!("FROM argument '{arg}' is not declared");
            if let Some(s) = suggest::search(arg, known, true) {
                detail.push_str(&format!(" (did you mean {s}?)"));
            }
            let pos = self.find_var(from, arg);
            self.warn(&rules::UNDEFINED_ARG_IN_FROM, detail, loc.at(pos));
        }
    }

    // --- 3. dispatching stages ------------------------------------------------------------

    fn dispatch_stages(&mut self, stages: &[StageDecl], global: &EnvList) -> Result<(), Stop> {
        let base_of = |i: usize| -> Option<usize> {
            let base = stages[i].base.to_ascii_lowercase();
            stages[..i].iter().position(|s| s.name.as_deref() == Some(base.as_str()))
        };
        let target = match &self.opts.target {
            Some(t) => {
                let t = t.to_ascii_lowercase();
                stages.iter().position(|s| s.name.as_deref() == Some(t.as_str())).ok_or(Stop)?
            }
            None => stages.len().checked_sub(1).ok_or(Stop)?,
        };
        let wanted = if self.opts.all_stages { vec![true; stages.len()] } else { reachable(stages, target, &base_of) };

        // Base images are resolved (and their platform checked) before any stage runs.
        let mut bases: Vec<Option<BaseInfo>> = (0..stages.len()).map(|_| None).collect();
        for (i, st) in stages.iter().enumerate() {
            if wanted[i] && base_of(i).is_none() && !st.base.eq_ignore_ascii_case("scratch") {
                bases[i] = Some(self.resolve_base(st));
            }
        }

        let mut results: Vec<Option<StageState>> = vec![None; stages.len()];
        for (i, st) in stages.iter().enumerate() {
            if !wanted[i] {
                continue;
            }
            let from_loc = Loc::of(st.from);
            let mut triggers: Vec<Instruction> = Vec::new();
            let mut state = if st.base.eq_ignore_ascii_case("scratch") {
                StageState { env_known: true, ..StageState::default() }
            } else if let Some(b) = base_of(i) {
                let mut s = results[b].clone().unwrap_or_default();
                triggers = std::mem::take(&mut s.onbuild);
                s
            } else {
                match bases[i].take() {
                    Some(BaseInfo { env: Some(env), shell, onbuild }) => {
                        for t in &onbuild {
                            if let Ok(parsed) = crate::parser::parse(t, &self.opts.file_name)
                                && let [ins] = parsed.instructions.as_slice()
                            {
                                triggers.push(ins.clone());
                            }
                        }
                        StageState { env: EnvList::from_config(&env), env_known: true, shell, ..StageState::default() }
                    }
                    _ => StageState::default(),
                }
            };
            if state.env.get("PATH").is_none() {
                state.env.set("PATH", DEFAULT_PATH);
            }
            let mut trackers = Trackers::default();
            for trigger in &triggers {
                let Ok(cmd) = instructions::parse_command(trigger) else { return Err(Stop) };
                self.dispatch(&mut state, &mut trackers, trigger, &cmd, global, Some(from_loc))?;
            }
            for (ins, cmd) in &st.commands {
                self.dispatch(&mut state, &mut trackers, ins, cmd, global, None)?;
            }
            results[i] = Some(state);
        }
        Ok(())
    }

    fn resolve_base(&mut self, st: &StageDecl) -> BaseInfo {
        let Some(resolver) = self.opts.resolver else { return BaseInfo::default() };
        let expected = match &st.platform {
            Some((os, arch)) => Platform {
                os: os.clone(),
                architecture: arch.clone(),
                os_version: None,
                os_features: None,
                variant: None,
            },
            None => self.opts.target_platform.clone(),
        };
        // The translation resolves every base for the target platform (it builds no other), so
        // the checks ask for the same image and nothing else: resolving may pull a manifest and
        // name it in the store, which must not happen for an image the build will never use.
        let target = &self.opts.target_platform;
        if expected.os != target.os || expected.architecture != target.architecture {
            return BaseInfo::default();
        }
        let Ok(image) = resolver.resolve(&st.base, target) else { return BaseInfo::default() };
        let actual = image.config.platform();
        // BuildKit's validateBaseImagePlatform: os and architecture only.
        if actual.os != expected.os || actual.architecture != expected.architecture {
            self.warn(
                &rules::INVALID_BASE_IMAGE_PLATFORM,
                format!(
                    "Base image {} was pulled with platform {}, expected {} for current build",
                    st.base,
                    quote(&actual.to_spec()),
                    quote(&expected.to_spec())
                ),
                Loc::of(st.from),
            );
        }
        let c = &image.config.config;
        BaseInfo {
            env: Some(c.env.clone().unwrap_or_default()),
            shell: c.shell.as_ref().is_some_and(|s| !s.is_empty()),
            onbuild: c.on_build.clone().unwrap_or_default(),
        }
    }

    /// One instruction of a stage (`trigger_at`: an ONBUILD trigger of the base, reported at the
    /// stage's FROM as BuildKit does).
    fn dispatch(
        &mut self,
        st: &mut StageState,
        trackers: &mut Trackers,
        ins: &Instruction,
        cmd: &Command,
        global: &EnvList,
        trigger_at: Option<Loc>,
    ) -> Result<(), Stop> {
        let loc = trigger_at.unwrap_or_else(|| Loc::of(ins));
        let name = written_keyword(ins).to_string();
        let lexer = self.lexer;
        // The words BuildKit expands through its reporting expander (every instruction that
        // supports single-word expansion, except ARG, whose defaults are reported below).
        let words: Vec<&str> = match cmd {
            Command::Env(kv) | Command::Label(kv) => {
                kv.iter().flat_map(|p| [p.key.as_str(), p.value.as_str()]).collect()
            }
            Command::Add(c) => [c.chown.as_deref().unwrap_or(""), c.checksum.as_deref().unwrap_or("")]
                .into_iter()
                .chain(c.sources.iter().map(String::as_str))
                .chain([c.dest.as_str()])
                .collect(),
            Command::Copy(c) => std::iter::once(c.chown.as_deref().unwrap_or(""))
                .chain(c.sources.iter().map(String::as_str))
                .chain([c.dest.as_str()])
                .collect(),
            Command::Workdir(w) | Command::User(w) | Command::StopSignal(w) => vec![w.as_str()],
            Command::Volume(v) => v.iter().map(String::as_str).collect(),
            Command::Run { mounts, .. } => mounts.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let mut expanded = Vec::with_capacity(words.len());
        for w in words {
            expanded.push(self.expand_reporting(st, &lexer, w, ins, loc, trigger_at.is_some())?);
        }
        // Heredoc sources of COPY/ADD expand "raw" (quotes kept), and are reported too.
        if let Command::Copy(c) | Command::Add(c) = cmd {
            let mut raw = Lexer::new('\\');
            raw.skip_process_quotes = true;
            for h in c.heredocs.iter().filter(|h| h.expand) {
                self.expand_reporting(st, &raw, &h.content, ins, loc, trigger_at.is_some())?;
            }
        }

        match cmd {
            Command::Env(pairs) => {
                let legacy = ins.args.chunks(3).any(|t| t.len() == 3 && t[2] != "=");
                for (i, _) in pairs.iter().enumerate() {
                    let (key, value) = (&expanded[2 * i], &expanded[2 * i + 1]);
                    if legacy {
                        self.legacy_key_value(&name, loc);
                    }
                    self.secret_key("ENV", key, ins, loc, trigger_at.is_some());
                    st.env.set(key, value);
                }
            }
            Command::Label(pairs) => {
                let legacy = ins.args.chunks(3).any(|t| t.len() == 3 && t[2] != "=");
                for _ in pairs {
                    if legacy {
                        self.legacy_key_value(&name, loc);
                    }
                }
            }
            Command::Cmd(c) | Command::Entrypoint(c) => {
                let slot = if matches!(cmd, Command::Cmd(_)) { &mut trackers.cmd } else { &mut trackers.entrypoint };
                let previous = slot.replace(loc);
                self.used_once(&name, previous);
                if c.prepend_shell && !st.shell {
                    self.warn(
                        &rules::JSON_ARGS_RECOMMENDED,
                        format!(
                            "JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"
                        ),
                        loc,
                    );
                }
            }
            Command::Healthcheck(_) => {
                let previous = trackers.healthcheck.replace(loc);
                self.used_once(&name, previous);
            }
            Command::Workdir(_) => {
                let path = &expanded[0];
                if !st.workdir_set && !path.starts_with('/') {
                    self.warn(
                        &rules::WORKDIR_RELATIVE_PATH,
                        format!(
                            "Relative workdir {} can have unexpected results if the base image changes",
                            quote(path)
                        ),
                        loc,
                    );
                }
                st.workdir_set = true;
            }
            Command::Arg(decls) => self.arg(st, decls, ins, loc, global, trigger_at.is_some())?,
            Command::Shell(sh) => st.shell = !sh.is_empty(),
            Command::Expose(ports) => {
                for p in ports {
                    for port in lexer.process_words(p, &st.env).map_err(|_| Stop)? {
                        self.expose_port(&port, loc);
                    }
                }
            }
            Command::Onbuild(inner) => st.onbuild.push((**inner).clone()),
            Command::Copy(c) | Command::Add(c) => {
                let is_add = matches!(cmd, Command::Add(_));
                if c.from.is_none() {
                    let n = c.sources.len();
                    let sources: Vec<String> = expanded[expanded.len() - 1 - n..expanded.len() - 1].to_vec();
                    self.ignored_sources(&sources, is_add, loc);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Expands a word as the dispatcher does and reports its undefined variables
    /// (BuildKit's reportUnmatchedVariables).
    fn expand_reporting(
        &mut self,
        st: &StageState,
        lexer: &Lexer,
        word: &str,
        ins: &Instruction,
        loc: Loc,
        in_trigger: bool,
    ) -> Result<String, Stop> {
        let (value, matches) = lexer.process_word_with_matches(word, &st.env).map_err(|_| Stop)?;
        self.report_unmatched(st, &matches.unmatched, ins, loc, in_trigger);
        Ok(value)
    }

    fn report_unmatched(
        &mut self,
        st: &StageState,
        unmatched: &std::collections::BTreeSet<String>,
        ins: &Instruction,
        loc: Loc,
        in_trigger: bool,
    ) {
        if !st.env_known {
            return;
        }
        let options: Vec<&str> = st.env.names().collect();
        for var in unmatched {
            if st.build_args.contains(var) || NON_ENV_ARGS.contains(&var.as_str()) {
                continue;
            }
            let mut detail = format!("Usage of undefined variable '${var}'");
            if let Some(s) = suggest::search(var, &options, true) {
                detail.push_str(&format!(" (did you mean ${s}?)"));
            }
            let pos = if in_trigger { None } else { self.find_var(ins, var) };
            self.warn(&rules::UNDEFINED_VAR, detail, loc.at(pos));
        }
    }

    /// BuildKit's dispatchArg, for what the checks need: secrets, defaults' variables, and the
    /// value the stage environment gets.
    fn arg(
        &mut self,
        st: &mut StageState,
        decls: &[ArgDecl],
        ins: &Instruction,
        loc: Loc,
        global: &EnvList,
        in_trigger: bool,
    ) -> Result<(), Stop> {
        for d in decls {
            self.secret_key("ARG", &d.name, ins, loc, in_trigger);
            let value = if let Some(v) = self.opts.build_args.get(&d.name) {
                Some(v.clone())
            } else if let Some(def) = &d.default {
                let lexer = self.lexer;
                Some(self.expand_reporting(st, &lexer, def, ins, loc, in_trigger)?)
            } else {
                global.get(&d.name).map(str::to_string)
            };
            if let Some(v) = value
                && !NON_ENV_ARGS.contains(&d.name.as_str())
            {
                st.env.set(&d.name, &v);
            }
            st.build_args.push(d.name.clone());
        }
        Ok(())
    }

    /// `MultipleInstructionsDisallowed` (BuildKit's validateUsedOnce): reported at the earlier
    /// instruction, the one that has no effect.
    fn used_once(&mut self, name: &str, previous: Option<Loc>) {
        if let Some(prev) = previous {
            self.warn(
                &rules::MULTIPLE_INSTRUCTIONS_DISALLOWED,
                format!(
                    "Multiple {name} instructions should not be used in the same stage because only the last one will be used"
                ),
                prev,
            );
        }
    }

    fn legacy_key_value(&mut self, name: &str, loc: Loc) {
        self.warn(
            &rules::LEGACY_KEY_VALUE_FORMAT,
            format!("\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"),
            loc,
        );
    }

    /// `SecretsUsedInArgOrEnv` (BuildKit's validateNoSecretKey): a `_`-separated part of the
    /// name is a secret-ish word, and none is `public`.
    fn secret_key(&mut self, instruction: &str, key: &str, ins: &Instruction, loc: Loc, in_trigger: bool) {
        const SECRET: &[&str] =
            &["apikey", "auth", "credential", "credentials", "key", "password", "pword", "passwd", "secret", "token"];
        let parts: Vec<String> = key.split('_').map(str::to_ascii_lowercase).collect();
        let secret = parts.iter().any(|p| SECRET.contains(&p.as_str()));
        let public = parts.iter().any(|p| p == "public");
        if secret && !public {
            let pos = if in_trigger { None } else { self.find(ins, key, false) };
            self.warn(
                &rules::SECRETS_USED_IN_ARG_OR_ENV,
                format!("Do not use ARG or ENV instructions for sensitive data ({instruction} {})", quote(key)),
                loc.at(pos),
            );
        }
    }

    /// `ExposeProtoCasing` and `ExposeInvalidFormat` (BuildKit's parsePort, with Docker's
    /// `ip:hostPort:containerPort/proto` split).
    fn expose_port(&mut self, raw: &str, loc: Loc) {
        let parts: Vec<&str> = raw.split(':').collect();
        let n = parts.len();
        let (ip, host, container) = match n {
            1 => (String::new(), "", parts[0]),
            2 => (String::new(), parts[0], parts[1]),
            _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
        };
        let mut pp = container.split('/');
        let port = pp.next().unwrap_or("");
        if port.is_empty() {
            return;
        }
        let proto = pp.next().filter(|p| !p.is_empty()).unwrap_or("tcp");
        if proto != proto.to_lowercase() {
            self.warn(
                &rules::EXPOSE_PROTO_CASING,
                format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase"),
                loc,
            );
        }
        if !ip.is_empty() || !host.is_empty() {
            self.warn(
                &rules::EXPOSE_INVALID_FORMAT,
                format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"),
                loc,
            );
        }
    }

    /// `CopyIgnoredFile` (BuildKit's validateCopySourcePath): a context source that the
    /// `.dockerignore` excludes. Skipped when the file has exceptions (`!pattern`), as BuildKit
    /// does, since then a parent's exclusion does not tell.
    fn ignored_sources(&mut self, sources: &[String], is_add: bool, loc: Loc) {
        let Some(ignore) = self.opts.ignore else { return };
        if ignore.patterns().iter().any(|p| p.starts_with('!')) {
            return;
        }
        for src in sources {
            if is_add && ["http://", "https://", "git@", "git://"].iter().any(|p| src.starts_with(p)) {
                continue;
            }
            let cleaned = clean_relative(src);
            // Patterns are relative: an absolute source never matches one in BuildKit either.
            if cleaned.starts_with('/') || !ignore.is_excluded(&cleaned) {
                continue;
            }
            let verb = if is_add { "Add" } else { "Copy" };
            self.warn(
                &rules::COPY_IGNORED_FILE,
                format!("Attempting to {verb} file {} that is excluded by .dockerignore", quote(&cleaned)),
                loc,
            );
        }
    }

    // --- positions ----------------------------------------------------------------------

    /// The position of `word` in the instruction's source lines (the last occurrence if
    /// `last`), past the keyword.
    fn find(&self, ins: &Instruction, word: &str, last: bool) -> Option<Pos> {
        if word.is_empty() {
            return None;
        }
        for line in ins.start.line..=ins.end_line.max(ins.start.line) {
            let text = self.lines.get(line.checked_sub(1)?)?;
            let from = if line == ins.start.line { byte_of_column(text, ins.start.column) } else { 0 };
            let hay = text.get(from..)?;
            let hit = if last { hay.rfind(word) } else { hay.find(word) };
            if let Some(at) = hit {
                return Some(Pos { line, column: text[..from + at].chars().count() + 1 });
            }
        }
        None
    }

    /// The position of a reference to variable `name` (`$name` or `${name…`).
    fn find_var(&self, ins: &Instruction, name: &str) -> Option<Pos> {
        for line in ins.start.line..=ins.end_line.max(ins.start.line) {
            let text = self.lines.get(line.checked_sub(1)?)?;
            for (at, _) in text.match_indices('$') {
                let rest = &text[at + 1..];
                let rest = rest.strip_prefix('{').unwrap_or(rest);
                if let Some(after) = rest.strip_prefix(name)
                    && !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Some(Pos { line, column: text[..at].chars().count() + 1 });
                }
            }
        }
        None
    }
}

/// A base image's config, as far as the checks need it (`env: None` if it could not be read).
#[derive(Default)]
struct BaseInfo {
    env: Option<Vec<String>>,
    shell: bool,
    onbuild: Vec<String>,
}

/// The stages the target needs: its base stage, `COPY --from` and `RUN --mount from=` sources.
fn reachable(stages: &[StageDecl], target: usize, base_of: &dyn Fn(usize) -> Option<usize>) -> Vec<bool> {
    let by_name = |name: &str| -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().filter(|i| *i < stages.len()))
    };
    let mut seen = vec![false; stages.len()];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        todo.extend(base_of(i));
        for (_, cmd) in &stages[i].commands {
            let froms: Vec<&str> = match cmd {
                Command::Copy(c) => c.from.as_deref().into_iter().collect(),
                Command::Run { mounts, .. } => {
                    mounts.iter().flat_map(|m| m.split(',')).filter_map(|kv| kv.trim().strip_prefix("from=")).collect()
                }
                _ => Vec::new(),
            };
            todo.extend(froms.into_iter().filter_map(by_name));
        }
    }
    seen
}

/// The instruction keyword as written (`From`, `copy`), which casing checks look at.
fn written_keyword(ins: &Instruction) -> &str {
    ins.original
        .trim_start()
        .split(char::is_whitespace)
        .next()
        .filter(|k| k.eq_ignore_ascii_case(&ins.keyword))
        .unwrap_or(&ins.keyword)
}

/// containerd's `platforms.Parse`, as far as the checks need it: `(os, architecture)`, or
/// `None` for a specifier BuildKit would reject.
fn parse_platform(spec: &str) -> Option<(String, String)> {
    let parts: Vec<String> = spec.split('/').map(str::to_ascii_lowercase).collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return None;
    }
    let arch = |a: &str| match a {
        "x86_64" | "x86-64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        "i386" => "386".to_string(),
        "armhf" | "armel" => "arm".to_string(),
        other => other.to_string(),
    };
    const OSES: &[&str] = &["linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix"];
    match parts.as_slice() {
        [one] if OSES.contains(&one.as_str()) => Some((one.clone(), Platform::host().architecture)),
        [one] => Some(("linux".to_string(), arch(one))),
        [os, a] | [os, a, _] => Some((os.clone(), arch(a))),
        _ => None,
    }
}

/// Go's `filepath.Clean` for a relative or absolute slash path.
fn clean_relative(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The byte offset of 1-based character column `column` in `text` (clamped).
fn byte_of_column(text: &str, column: usize) -> usize {
    text.char_indices().nth(column.saturating_sub(1)).map_or(text.len(), |(i, _)| i)
}
