//! Dockerfile → build graph, as BuildKit's `dockerfile2llb` translates a Dockerfile to LLB.
//!
//! The translation runs in BuildKit's order, because its observable results (which stages are
//! built, which images are resolved, what the image config and history say) follow from it:
//!
//! 1. Type every instruction ([`crate::instructions`]); split them into the global `ARG`s
//!    before the first `FROM` and the stages.
//! 2. Global args: the automatic platform args, then each pre-FROM `ARG` (a `--build-arg`
//!    value, else its default expanded with the args before it). `FROM` lines expand against
//!    these only.
//! 3. Pick the target stage (`--target`, else the last) and walk its dependencies: its base
//!    stage, `COPY --from`, `RUN --mount from=`. Only reachable stages are translated and only
//!    their base images resolved, so `--target` skips unrelated work. A stage can only use
//!    stages defined before it (BuildKit: "cannot copy from stage ..., it needs to be defined
//!    before current stage").
//! 4. Each reachable stage is dispatched instruction by instruction ([`stage`]), adding graph
//!    nodes for filesystem changes (RUN → exec, COPY/ADD/WORKDIR → file ops) and editing the
//!    image config and history for the rest, exactly as BuildKit records them.
//!
//! Image resolution goes through [`ImageResolver`] so the frontend never talks to a registry or
//! the store itself.

mod copy_sources;
mod env;
mod mounts;
mod stage;
mod values;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use strata_builder::graph::{Graph, LocalSource, Node, NodeId, Op, PathFilter, Target};
use strata_store::digest::Digest;
use strata_store::oci::{ImageConfig, Platform};

use crate::ast::{Dockerfile, Instruction, Pos};
use crate::diagnostic::Diagnostic;
use crate::instructions::{self, Command};
use crate::shell::{ExpandError, ExpandErrorKind, Lexer};
pub use env::{EnvList, PROXY_ARGS, platform_args};

/// The build context directory and its `.dockerignore`.
#[derive(Debug, Clone)]
pub struct ContextDir {
    pub path: PathBuf,
    pub filter: Option<Arc<dyn PathFilter>>,
}

/// What the translation needs besides the Dockerfile.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// The Dockerfile's name as errors show it.
    pub file_name: String,
    /// The Dockerfile's text, for showing offending lines in errors.
    pub source: String,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub target_platform: Platform,
    pub build_platform: Platform,
    pub context: Option<ContextDir>,
    pub no_cache: bool,
    /// Stages whose steps must not come from the cache.
    pub no_cache_filter: Vec<String>,
    /// Granted entitlements (`network.host`, `security.insecure`), as `--allow` gives them.
    pub allow: Vec<String>,
}

/// A base image, resolved.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The normalized reference (`docker.io/library/busybox:latest`).
    pub name: String,
    /// The platform-specific manifest it resolved to.
    pub manifest_digest: Digest,
    pub config: ImageConfig,
}

/// Resolves image references for `FROM`, `COPY --from` and `RUN --mount from=`.
pub trait ImageResolver {
    /// `reference` is as written after expansion (`busybox`, `127.0.0.1:5000/x:1`).
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String>;
}

/// The translation's result: the graph, the image to produce, and warnings for the user.
#[derive(Debug)]
pub struct BuildPlan {
    pub graph: Graph,
    pub target: Target,
    pub warnings: Vec<String>,
}

/// One stage as declared.
struct StageDecl {
    /// `AS name`, lower-cased.
    name: Option<String>,
    /// The `FROM` image/stage after expanding global args.
    base: String,
    platform: Option<String>,
    from: Instruction,
    commands: Vec<(Instruction, Command)>,
}

/// A stage after translation: what later stages build on or copy from.
#[derive(Debug, Clone)]
struct StageResult {
    node: NodeId,
    config: ImageConfig,
    env: EnvList,
    build_args: Vec<(String, Option<String>)>,
    /// The platform the stage runs as (`FROM --platform`, else its base stage's, else the
    /// target platform); a stage built on it inherits it.
    platform: Platform,
}

/// Translates a parsed Dockerfile into a build graph and the target image's config.
pub fn convert(df: &Dockerfile, opts: &ConvertOptions, resolver: &dyn ImageResolver) -> Result<BuildPlan, Diagnostic> {
    Translator::new(df, opts, resolver).run()
}

pub(crate) struct Translator<'a> {
    df: &'a Dockerfile,
    opts: &'a ConvertOptions,
    resolver: &'a dyn ImageResolver,
    lexer: Lexer,
    graph: Graph,
    context_node: Option<NodeId>,
    /// Resolved images by reference and platform.
    images: HashMap<(String, Platform), (NodeId, ResolvedImage)>,
    /// The platform of the stage being translated: its images are resolved for it and its RUN
    /// steps run as it.
    stage_platform: Platform,
    global_args: EnvList,
    stages: Vec<StageDecl>,
    results: Vec<Option<StageResult>>,
    used_build_args: std::collections::BTreeSet<String>,
    warnings: Vec<String>,
    /// Per FROM line: the variables its image name used that no global ARG declares (for the
    /// hint when the image then cannot be resolved).
    from_unmatched: HashMap<usize, Vec<String>>,
}

impl<'a> Translator<'a> {
    fn new(df: &'a Dockerfile, opts: &'a ConvertOptions, resolver: &'a dyn ImageResolver) -> Translator<'a> {
        Translator {
            df,
            opts,
            resolver,
            lexer: Lexer::new(df.directives.escape),
            graph: Graph::new(),
            context_node: None,
            images: HashMap::new(),
            stage_platform: opts.target_platform.clone(),
            global_args: EnvList::default(),
            stages: Vec::new(),
            results: Vec::new(),
            used_build_args: Default::default(),
            warnings: Vec::new(),
            from_unmatched: HashMap::new(),
        }
    }

    pub(crate) fn error(&self, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.opts.file_name, &self.opts.source, pos, message)
    }

    /// Where `needle` first appears in the source lines of `ins`, at or after its keyword.
    pub(crate) fn locate(&self, ins: &Instruction, needle: &str) -> Option<Pos> {
        if needle.is_empty() {
            return None;
        }
        let lines: Vec<&str> = self.opts.source.split('\n').collect();
        for line in ins.start.line..=ins.end_line.max(ins.start.line) {
            let text = lines.get(line.checked_sub(1)?)?;
            let from = if line == ins.start.line {
                text.char_indices().nth(ins.start.column.saturating_sub(1)).map_or(text.len(), |(i, _)| i)
            } else {
                0
            };
            if let Some(at) = text.get(from..).and_then(|t| t.find(needle)) {
                return Some(Pos { line, column: text[..from + at].chars().count() + 1 });
            }
        }
        None
    }

    /// A word that cannot be expanded: pointed at the construct that failed (when the word
    /// is found on one source line), with what to do about it.
    pub(crate) fn expand_error(&self, ins: &Instruction, e: &ExpandError) -> Diagnostic {
        let pos = self
            .locate(ins, &e.input)
            .map(|p| Pos { column: p.column + e.input.get(..e.offset).map_or(0, |s| s.chars().count()), ..p })
            .unwrap_or(ins.start);
        let hint = match &e.kind {
            ExpandErrorKind::UnterminatedSingleQuote | ExpandErrorKind::UnterminatedDoubleQuote => {
                "close the quote, or escape it to use it as a plain character".to_string()
            }
            ExpandErrorKind::MissingBrace => "end the variable reference with `}`".to_string(),
            ExpandErrorKind::MissingSlash => "a replacement is written ${VAR/pattern/replacement}".to_string(),
            ExpandErrorKind::BadSubstitution => "a variable reference is $NAME or ${NAME}, NAME made of letters, digits and _".to_string(),
            ExpandErrorKind::UnsupportedModifier(_) => {
                "supported forms: ${v:-w} ${v-w} ${v:+w} ${v+w} ${v:?msg} ${v?msg} ${v#p} ${v##p} ${v%p} ${v%%p} ${v/p/r} ${v//p/r}".to_string()
            }
            ExpandErrorKind::Required { name, .. } => {
                format!("give {name} a value: --build-arg {name}=VALUE, or ARG/ENV before this line")
            }
            ExpandErrorKind::InvalidPattern { .. } => "in a pattern, escape only *, ?, \\, } and /".to_string(),
            ExpandErrorKind::TooDeep(_) => "nest fewer ${...} inside each other".to_string(),
        };
        self.error(pos, e.to_string()).with_hint(Some(hint))
    }

    fn run(mut self) -> Result<BuildPlan, Diagnostic> {
        let meta_args = self.split_stages()?;
        self.build_global_args(&meta_args)?;
        if self.stages.is_empty() {
            return Err(self.error(Pos { line: 1, column: 1 }, "dockerfile contains no stages to build"));
        }
        let target = self.target_index()?;
        let reachable = self.reachable(target)?;
        self.results = vec![None; self.stages.len()];
        let single = self.stages.len() == 1;
        for (idx, needed) in reachable.iter().enumerate() {
            if *needed {
                let result = stage::dispatch(&mut self, idx, single)?;
                self.results[idx] = Some(result);
            }
        }
        let result =
            self.results[target].take().ok_or_else(|| self.error(Pos::default(), "target stage was not built"))?;
        let mut config = result.config;
        config.created = None;
        config.os = self.opts.target_platform.os.clone();
        config.architecture = self.opts.target_platform.architecture.clone();
        config.variant = self.opts.target_platform.variant.clone();
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_build_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.warnings.push(format!("One or more build-args [{}] were not consumed", names.join(" ")));
        }
        Ok(BuildPlan { graph: self.graph, target: Target { root: result.node, config }, warnings: self.warnings })
    }

    /// Types the instructions and groups them into stages; returns the global ARGs.
    fn split_stages(&mut self) -> Result<Vec<(Instruction, Vec<instructions::ArgDecl>)>, Diagnostic> {
        let mut meta = Vec::new();
        for ins in &self.df.instructions {
            let cmd = instructions::parse_command(ins).map_err(|e| {
                let pos = e.message.strip_prefix("unknown flag: ").and_then(|f| self.locate(ins, f)).unwrap_or(e.pos);
                Diagnostic::new(&self.opts.file_name, &self.opts.source, pos, e.message).with_hint(e.hint)
            })?;
            match cmd {
                Command::From { image, stage_name, platform } => {
                    // Expanded once the global args are known (build_global_args).
                    let base = image;
                    self.stages.push(StageDecl {
                        name: stage_name,
                        base,
                        platform,
                        from: ins.clone(),
                        commands: Vec::new(),
                    });
                }
                Command::Arg(decls) if self.stages.is_empty() => meta.push((ins.clone(), decls)),
                other => match self.stages.last_mut() {
                    Some(stage) => stage.commands.push((ins.clone(), other)),
                    None => {
                        return Err(self.error(ins.start, "no build stage in current context").with_hint(Some(
                            "a Dockerfile must start with FROM (only ARG may come before it)".into(),
                        )));
                    }
                },
            }
        }
        Ok(meta)
    }

    fn build_global_args(&mut self, meta: &[(Instruction, Vec<instructions::ArgDecl>)]) -> Result<(), Diagnostic> {
        let mut global = EnvList::default();
        for (k, v) in platform_args(&self.opts.target_platform, &self.opts.build_platform) {
            global.set(&k, &v);
        }
        for (ins, decls) in meta {
            for d in decls {
                let value = match self.opts.build_args.get(&d.name) {
                    Some(v) => {
                        self.used_build_args.insert(d.name.clone());
                        Some(v.clone())
                    }
                    None => match &d.default {
                        Some(def) => {
                            Some(self.lexer.process_word(def, &global).map_err(|e| self.expand_error(ins, &e))?)
                        }
                        None => None,
                    },
                };
                if let Some(v) = value {
                    global.set(&d.name, &v);
                }
            }
        }
        self.global_args = global;
        for i in 0..self.stages.len() {
            let (raw, from) = (self.stages[i].base.clone(), self.stages[i].from.clone());
            self.stages[i].base = self.expand_global(&raw, &from)?;
        }
        Ok(())
    }

    /// Expands a FROM value against the global args only.
    fn expand_global(&mut self, word: &str, ins: &Instruction) -> Result<String, Diagnostic> {
        let (value, matches) =
            self.lexer.process_word_with_matches(word, &self.global_args).map_err(|e| self.expand_error(ins, &e))?;
        if !matches.unmatched.is_empty() {
            self.from_unmatched.insert(ins.start.line, matches.unmatched.iter().cloned().collect());
        }
        if value.is_empty() {
            let names: Vec<&str> = matches.unmatched.iter().map(String::as_str).collect();
            let hint = (!names.is_empty())
                .then(|| format!("{} used in FROM but not declared with ARG before the first FROM", names.join(", ")));
            return Err(self.error(ins.start, format!("base name ({word}) should not be blank")).with_hint(hint));
        }
        Ok(value)
    }

    fn target_index(&self) -> Result<usize, Diagnostic> {
        let Some(t) = &self.opts.target else { return Ok(self.stages.len() - 1) };
        let lower = t.to_ascii_lowercase();
        self.stages.iter().position(|s| s.name.as_deref() == Some(lower.as_str())).ok_or_else(|| {
            let names: Vec<&str> = self.stages.iter().filter_map(|s| s.name.as_deref()).collect();
            Diagnostic {
                file: self.opts.file_name.clone(),
                pos: Pos { line: 1, column: 1 },
                message: format!("target stage \"{t}\" could not be found"),
                line_text: None,
                hint: Some(match crate::suggest::closest(t, &names) {
                    _ if names.is_empty() => "this Dockerfile names no stages (FROM image AS name)".to_string(),
                    Some(s) => format!("did you mean {s}? (stages are: {})", names.join(", ")),
                    None => format!("stages are: {}", names.join(", ")),
                }),
            }
        })
    }

    /// The index of the stage `name` refers to (by name or number), if any.
    fn stage_by_name(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = self.stages.iter().position(|s| s.name.as_deref() == Some(lower.as_str())) {
            return Some(i);
        }
        name.parse::<usize>().ok().filter(|i| *i < self.stages.len())
    }

    /// The stage a FROM refers to, if its base is an earlier stage.
    fn base_stage(&self, idx: usize) -> Option<usize> {
        let base = self.stages[idx].base.to_ascii_lowercase();
        self.stages[..idx].iter().position(|s| s.name.as_deref() == Some(base.as_str()))
    }

    /// Which stages the target needs.
    fn reachable(&self, target: usize) -> Result<Vec<bool>, Diagnostic> {
        let mut seen = vec![false; self.stages.len()];
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            if let Some(b) = self.base_stage(i) {
                todo.push(b);
            }
            for (ins, cmd) in &self.stages[i].commands {
                for from in self.stage_refs(ins, cmd)? {
                    if let Some(s) = self.stage_by_name(&from) {
                        todo.push(s);
                    }
                }
            }
        }
        Ok(seen)
    }

    /// The `--from` names an instruction refers to (COPY --from, RUN --mount from=).
    fn stage_refs(&self, ins: &Instruction, cmd: &Command) -> Result<Vec<String>, Diagnostic> {
        let mut out = Vec::new();
        match cmd {
            Command::Copy(c) => {
                if let Some(f) = &c.from {
                    self.check_literal_from(f, ins)?;
                    out.push(f.clone());
                }
            }
            Command::Run { mounts, .. } => {
                for m in mounts {
                    if let Ok(parsed) = mounts::parse_mount(m)
                        && let Some(f) = parsed.from
                    {
                        out.push(f);
                    }
                }
            }
            _ => {}
        }
        Ok(out)
    }

    fn check_literal_from(&self, from: &str, ins: &Instruction) -> Result<(), Diagnostic> {
        if from.contains('$') {
            return Err(self.error(ins.start, format!(
                "variable expansion is not supported for --from ({from}), define a new stage with FROM using ARG from global scope as a workaround"
            )));
        }
        Ok(())
    }

    /// The node of the build context (one per build), created on first use.
    pub(crate) fn context_node(&mut self, ins: &Instruction) -> Result<NodeId, Diagnostic> {
        if let Some(n) = self.context_node {
            return Ok(n);
        }
        let Some(ctx) = &self.opts.context else {
            return Err(self
                .error(ins.start, "this build has no context directory to copy from")
                .with_hint(Some("pass a context directory (strata build -f Dockerfile DIR)".into())));
        };
        let op = Op::Local(LocalSource { name: "context".into(), path: ctx.path.clone(), filter: ctx.filter.clone() });
        let id = self.graph.add(Node::new(op, "[internal] load build context"));
        self.context_node = Some(id);
        Ok(id)
    }

    /// Resolves an image once per build and returns its node and config.
    pub(crate) fn image(
        &mut self,
        reference: &str,
        ins: &Instruction,
        node_name: impl FnOnce(&ResolvedImage) -> String,
    ) -> Result<(NodeId, ResolvedImage), Diagnostic> {
        let platform = self.stage_platform.clone();
        if let Some(hit) = self.images.get(&(reference.to_string(), platform.clone())) {
            return Ok(hit.clone());
        }
        let resolved = self.resolver.resolve(reference, &platform).map_err(|e| {
            let names: Vec<&str> = self.stages.iter().filter_map(|s| s.name.as_deref()).collect();
            let undeclared = self.from_unmatched.get(&ins.start.line).filter(|_| ins.keyword == "from");
            let hint = match (crate::suggest::closest(reference, &names), undeclared) {
                (Some(s), _) => Some(format!("did you mean the stage {s}? (stages are: {})", names.join(", "))),
                (None, Some(vars)) => {
                    Some(format!("{} used in FROM but not declared with ARG before the first FROM", vars.join(", ")))
                }
                (None, None) => None,
            };
            let pos = self.locate(ins, reference).unwrap_or(ins.start);
            self.error(pos, format!("{reference}: {e}")).with_hint(hint)
        })?;
        let op = Op::Image(strata_builder::graph::ImageSource {
            reference: resolved.name.clone(),
            manifest_digest: resolved.manifest_digest.clone(),
            platform: platform.clone(),
        });
        let name = node_name(&resolved);
        let id = self.graph.add(Node::new(op, name));
        self.images.insert((reference.to_string(), platform), (id, resolved.clone()));
        Ok((id, resolved))
    }
}

#[cfg(test)]
mod tests;
