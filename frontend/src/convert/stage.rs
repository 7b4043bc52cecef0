//! Dispatching one stage: its base, then each instruction in order, as BuildKit's
//! `dispatch*` functions do. Filesystem changes become graph nodes; everything else edits the
//! image config; every instruction but ARG-before-FROM and ONBUILD adds a history entry with
//! BuildKit's exact `created_by` text (see the tests and `../shared/peers` comparisons).

use std::collections::BTreeSet;

use std::sync::Arc;

use strata_builder::copy::SymbolicMode;
use strata_builder::graph::{
    CacheSharing, Chmod, Chown, CopyAction, ExecOp, FileAction, FileOp, GitSource, HttpSource, Mount, MountKind,
    NetworkMode, Node, NodeId, Op, Origin, PathFilter, SecurityMode,
};
use strata_store::oci::{DEFAULT_PATH, Empty, Healthcheck, History, ImageConfig};

use super::copy_sources::{self, Source};
use super::env::{EnvList, PROXY_ARGS};
use super::mounts::{self, MountType, RunMount, Sharing};
use super::values;
use super::{StageResult, Translator};
use crate::ast::{Heredoc, Instruction};
use crate::diagnostic::Diagnostic;
use crate::gofmt::{format_duration, parse_duration, plain_list, quote_list, quote_rune};
use crate::instructions::{ArgDecl, Command, CommandLine, CopyCommand, HealthcheckCommand, KeyValue};

/// BuildKit's comment on every history entry it writes.
const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";
/// The default shell for shell-form commands on Linux.
const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The state of a stage being dispatched.
struct Stage<'t, 'a> {
    t: &'t mut Translator<'a>,
    index: usize,
    /// The name progress shows (`build`, `stage-2`; empty for a single-stage Dockerfile).
    display: String,
    node: NodeId,
    config: ImageConfig,
    env: EnvList,
    build_args: Vec<(String, Option<String>)>,
    cmd_set: bool,
    cmd_index: usize,
    cmd_total: usize,
    ignore_cache: bool,
}

/// Translates stage `idx`.
pub(super) fn dispatch(t: &mut Translator<'_>, idx: usize, single: bool) -> Result<StageResult, Diagnostic> {
    let decl = &t.stages[idx];
    let display = if single { String::new() } else { decl.name.clone().unwrap_or_else(|| format!("stage-{idx}")) };
    let from = decl.from.clone();
    let base = decl.base.clone();
    let name = decl.name.clone();
    // The stage's platform: `FROM --platform=…` (expanded with the global args), else the base
    // stage's, else the target platform, as BuildKit's dockerfile2llb chooses it.
    let platform = match &decl.platform {
        Some(p) => {
            let expanded = t.lexer.process_word(p, &t.global_args).map_err(|e| t.expand_error(&from, &e))?;
            strata_store::platforms::parse(&expanded).map_err(|e| {
                let pos = t.locate(&from, p).unwrap_or(from.start);
                t.error(pos, format!("FROM --platform={expanded}: {e}"))
            })?
        }
        None => match t.base_stage(idx).and_then(|s| t.results[s].as_ref()) {
            Some(r) => r.platform.clone(),
            None => t.opts.target_platform.clone(),
        },
    };
    t.stage_platform = platform.clone();
    let commands = decl.commands.clone();
    let counted = commands
        .iter()
        .filter(|(_, c)| matches!(c, Command::Run { .. } | Command::Copy(_) | Command::Add(_) | Command::Workdir(_)))
        .count();
    let ignore_cache = t.opts.no_cache
        || name.as_ref().is_some_and(|n| t.opts.no_cache_filter.iter().any(|f| f.eq_ignore_ascii_case(n)));

    // The base: scratch, an earlier stage, or an image.
    let (node, mut config, env, build_args, from_counts) = if base.eq_ignore_ascii_case("scratch") {
        let mut cfg = ImageConfig::scratch(&platform);
        cfg.config.working_dir = "/".to_string();
        let node = t.graph.add(Node::new(Op::Scratch, "scratch"));
        (node, cfg, EnvList::default(), Vec::new(), false)
    } else if let Some(s) = t.base_stage(idx) {
        let r = t.results[s].clone().ok_or_else(|| t.error(from.start, format!("stage {base} was not built")))?;
        (r.node, r.config, r.env, r.build_args, false)
    } else {
        let total = counted + 1;
        let stage_display = display.clone();
        let (node, resolved) = t.image(&base, &from, |r| {
            let text = format!("FROM {}@{}", r.name, r.manifest_digest);
            prefix_name(&stage_display, 1, total, &text)
        })?;
        let mut cfg = resolved.config.clone();
        cfg.created = None;
        (node, cfg, EnvList::default(), Vec::new(), true)
    };
    // Onbuild triggers of the base image run first, then are dropped from the new image.
    let triggers = config.config.on_build.take().unwrap_or_default();
    // BuildKit makes sure PATH is always set.
    if config.config.env_var("PATH").is_none() {
        config.config.env.get_or_insert_with(Vec::new).push(format!("PATH={DEFAULT_PATH}"));
    }
    let env = if env.names().next().is_none() {
        EnvList::from_config(config.config.env.as_deref().unwrap_or_default())
    } else {
        env
    };

    let mut stage = Stage {
        t,
        index: idx,
        display,
        node,
        config,
        env,
        build_args,
        cmd_set: false,
        cmd_index: usize::from(from_counts),
        cmd_total: counted + usize::from(from_counts) + triggers.len(),
        ignore_cache,
    };
    for trigger in triggers {
        let parsed = crate::parser::parse(&trigger, "ONBUILD trigger").map_err(|e| {
            stage.t.error(from.start, format!("invalid ONBUILD trigger {trigger:?} of the base image: {e}"))
        })?;
        let [ins] = parsed.instructions.as_slice() else {
            return Err(stage.t.error(from.start, "onbuild trigger should be a single expression"));
        };
        let mut ins = ins.clone();
        ins.start = from.start;
        ins.end_line = from.end_line;
        let cmd = crate::instructions::parse_command(&ins)
            .map_err(|e| stage.t.error(from.start, format!("ONBUILD trigger {trigger:?}: {}", e.message)))?;
        stage.instruction(&ins, &cmd, true)?;
    }
    for (ins, cmd) in &commands {
        stage.instruction(ins, cmd, false)?;
    }
    Ok(StageResult { node: stage.node, config: stage.config, env: stage.env, build_args: stage.build_args, platform })
}

/// `[name i/n] text`, with BuildKit's padding of `i` to the width of `n`.
fn prefix_name(stage: &str, index: usize, total: usize, text: &str) -> String {
    let width = total.to_string().len();
    let name = if stage.is_empty() { String::new() } else { format!("{stage} ") };
    format!("[{name}{index:>width$}/{total}] {text}")
}

impl Stage<'_, '_> {
    fn err(&self, ins: &Instruction, message: impl Into<String>) -> Diagnostic {
        self.t.error(ins.start, message)
    }

    fn expand(&self, ins: &Instruction, word: &str) -> Result<String, Diagnostic> {
        self.t.lexer.process_word(word, &self.env).map_err(|e| self.t.expand_error(ins, &e))
    }

    fn expand_words(&self, ins: &Instruction, word: &str) -> Result<Vec<String>, Diagnostic> {
        self.t.lexer.process_words(word, &self.env).map_err(|e| self.t.expand_error(ins, &e))
    }

    fn history(&mut self, created_by: String, layer: bool) {
        self.config.history.get_or_insert_with(Vec::new).push(History {
            created: None,
            created_by: Some(created_by),
            author: None,
            comment: Some(HISTORY_COMMENT.to_string()),
            empty_layer: !layer,
        });
    }

    /// Adds a node for a step of this stage, named and located for progress and errors.
    fn add_node(&mut self, op: Op, ins: &Instruction, onbuild: bool) -> NodeId {
        self.cmd_index += 1;
        let keyword = ins.keyword.to_uppercase();
        let rest = ins.original.trim_start().get(ins.keyword.len()..).unwrap_or("").trim_start();
        let text = format!("{}{keyword} {rest}", if onbuild { "ONBUILD " } else { "" });
        let name = prefix_name(&self.display, self.cmd_index, self.cmd_total, text.trim_end());
        let mut node = Node::new(op, name);
        node.origin =
            Some(Origin { file: self.t.opts.file_name.clone(), start_line: ins.start.line, end_line: ins.end_line });
        node.ignore_cache = self.ignore_cache;
        self.t.graph.add(node)
    }

    fn workdir(&self) -> String {
        if self.config.config.working_dir.is_empty() { "/".to_string() } else { self.config.config.working_dir.clone() }
    }

    fn instruction(&mut self, ins: &Instruction, cmd: &Command, onbuild: bool) -> Result<(), Diagnostic> {
        match cmd {
            Command::From { .. } => Err(self.err(ins, "FROM inside a stage")),
            Command::Maintainer(m) => {
                self.config.author = Some(m.clone());
                self.history(format!("MAINTAINER {m}"), false);
                Ok(())
            }
            Command::Env(pairs) => self.env_instr(ins, pairs),
            Command::Label(pairs) => self.label(ins, pairs),
            Command::Arg(decls) => self.arg(ins, decls),
            Command::Run { command, mounts, network, security } => {
                self.run(ins, command, mounts, network.as_deref(), security.as_deref(), onbuild)
            }
            Command::Cmd(c) => {
                let args = self.with_shell(c);
                self.history(format!("CMD {}", quote_list(&args)), false);
                self.config.config.cmd = Some(args);
                self.config.config.args_escaped = true;
                self.cmd_set = true;
                Ok(())
            }
            Command::Entrypoint(c) => {
                let args = self.with_shell(c);
                self.history(format!("ENTRYPOINT {}", quote_list(&args)), false);
                self.config.config.entrypoint = Some(args);
                if !self.cmd_set {
                    self.config.config.cmd = None;
                }
                Ok(())
            }
            Command::Copy(c) => self.copy(ins, c, false, onbuild),
            Command::Add(c) => self.copy(ins, c, true, onbuild),
            Command::Workdir(w) => self.workdir_instr(ins, w, onbuild),
            Command::User(u) => {
                let user = self.expand(ins, u)?;
                self.history(format!("USER {user}"), false);
                self.config.config.user = user;
                Ok(())
            }
            Command::Expose(words) => {
                let mut ports = BTreeSet::new();
                for w in words {
                    for word in self.expand_words(ins, w)? {
                        let hint = "ports are PORT[/tcp|udp|sctp] or a range START-END[/PROTO]";
                        let spec =
                            values::expose_ports(&word).map_err(|e| self.err(ins, e).with_hint(Some(hint.into())))?;
                        ports.extend(spec);
                    }
                }
                let exposed = self.config.config.exposed_ports.get_or_insert_with(Default::default);
                for p in &ports {
                    exposed.insert(p.clone(), Empty {});
                }
                self.history(values::expose_history(&ports), false);
                Ok(())
            }
            Command::Volume(vols) => {
                let mut expanded = Vec::new();
                for v in vols {
                    let v = self.expand(ins, v)?;
                    if v.is_empty() {
                        return Err(self.err(ins, "VOLUME specified can not be an empty string"));
                    }
                    expanded.push(v);
                }
                let volumes = self.config.config.volumes.get_or_insert_with(Default::default);
                for v in &expanded {
                    volumes.insert(v.clone(), Empty {});
                }
                self.history(format!("VOLUME {}", plain_list(&expanded)), false);
                Ok(())
            }
            Command::StopSignal(s) => {
                let sig = self.expand(ins, s)?;
                values::check_signal(&sig).map_err(|e| {
                    self.err(ins, e)
                        .with_hint(Some("a signal is a name (SIGTERM, TERM) or a number from 1 to 64".into()))
                })?;
                self.history(format!("STOPSIGNAL {sig}"), false);
                self.config.config.stop_signal = sig;
                Ok(())
            }
            Command::Healthcheck(h) => self.healthcheck(ins, h),
            Command::Shell(sh) => {
                self.history(format!("SHELL {}", plain_list(sh)), false);
                self.config.config.shell = Some(sh.clone());
                Ok(())
            }
            Command::Onbuild(inner) => {
                // BuildKit keeps the trigger's text as written and records no history for it.
                let text = inner.original.trim().to_string();
                self.config.config.on_build.get_or_insert_with(Vec::new).push(text);
                Ok(())
            }
        }
    }

    fn with_shell(&self, c: &CommandLine) -> Vec<String> {
        if !c.prepend_shell {
            return c.args.clone();
        }
        let mut args: Vec<String> = match &self.config.config.shell {
            Some(sh) if !sh.is_empty() => sh.clone(),
            _ => DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
        };
        args.push(c.args.join(" "));
        args
    }

    fn env_instr(&mut self, ins: &Instruction, pairs: &[KeyValue]) -> Result<(), Diagnostic> {
        // Every value of one ENV expands against the environment before the instruction.
        let mut expanded = Vec::new();
        for kv in pairs {
            expanded.push((self.expand(ins, &kv.key)?, self.expand(ins, &kv.value)?));
        }
        let mut msg = String::from("ENV");
        for (k, v) in &expanded {
            msg.push_str(&format!(" {k}={v}"));
            self.env.set(k, v);
            self.config.config.set_env_var(k, v);
        }
        self.history(msg, false);
        Ok(())
    }

    fn label(&mut self, ins: &Instruction, pairs: &[KeyValue]) -> Result<(), Diagnostic> {
        let mut msg = String::from("LABEL");
        for kv in pairs {
            let (k, v) = (self.expand(ins, &kv.key)?, self.expand(ins, &kv.value)?);
            msg.push_str(&format!(" {k}={v}"));
            self.config.config.labels.get_or_insert_with(Default::default).insert(k, v);
        }
        self.history(msg, false);
        Ok(())
    }

    fn arg(&mut self, ins: &Instruction, decls: &[ArgDecl]) -> Result<(), Diagnostic> {
        let mut shown = Vec::new();
        for d in decls {
            let default = match &d.default {
                Some(v) => Some(self.expand(ins, v)?),
                None => None,
            };
            // BuildKit 0.13 records the declaration (name and expanded default), not the value
            // a --build-arg gave it.
            shown.push(match &default {
                Some(v) => format!("{}={v}", d.name),
                None => d.name.clone(),
            });
            let value = if let Some(v) = self.t.opts.build_args.get(&d.name) {
                self.t.used_build_args.insert(d.name.clone());
                Some(v.clone())
            } else if default.is_some() {
                default
            } else {
                self.t.global_args.get(&d.name).map(str::to_string)
            };
            if let Some(v) = &value {
                self.env.set(&d.name, v);
            }
            self.build_args.push((d.name.clone(), value));
        }
        self.history(format!("ARG {}", shown.join(" ")), false);
        Ok(())
    }

    /// `|N K=V ... args`: BuildKit prefixes RUN history with the stage's build args.
    fn run_command_string(&self, args: &[String]) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.build_args {
            let value = self.env.get(k).map(str::to_string).unwrap_or_else(|| v.clone().unwrap_or_default());
            match pairs.iter_mut().find(|(pk, _)| pk == k) {
                Some(slot) => slot.1 = value,
                None => pairs.push((k.clone(), value)),
            }
        }
        let mut words: Vec<String> = Vec::new();
        if !pairs.is_empty() {
            words.push(format!("|{}", pairs.len()));
            words.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
        }
        words.extend(args.iter().cloned());
        words.join(" ")
    }

    fn run(
        &mut self,
        ins: &Instruction,
        command: &CommandLine,
        mount_specs: &[String],
        network: Option<&str>,
        security: Option<&str>,
        onbuild: bool,
    ) -> Result<(), Diagnostic> {
        let mut args = command.args.clone();
        let mut extra_mounts = Vec::new();
        if !ins.heredocs.is_empty() {
            if args.len() != 1 || !command.prepend_shell {
                return Err(self.err(ins, format!("parsing produced an invalid run command: {args:?}")));
            }
            if matches!(crate::parser::parse_heredoc_word(&args[0]), Ok(Some(_))) {
                let data = ins.heredocs[0].content.clone();
                if data.starts_with("#!") {
                    // A script with a shebang runs as a file, mounted read-only at /dev/pipes/.
                    let name = ins.heredocs[0].name.clone();
                    let scratch = self.t.graph.add(Node::new(Op::Scratch, "scratch"));
                    let op = Op::File(FileOp {
                        root: scratch,
                        actions: vec![FileAction::Mkfile {
                            path: format!("/{name}"),
                            mode: 0o755,
                            data: data.into_bytes(),
                            chown: None,
                        }],
                    });
                    let file = self.t.graph.add(Node::new(op, "preparing inline document"));
                    extra_mounts.push(Mount {
                        target: "/dev/pipes/".into(),
                        kind: MountKind::Bind { source: file, source_path: "/".into(), readonly: true },
                    });
                    args = vec![format!("/dev/pipes/{name}")];
                } else {
                    args = vec![data];
                }
            } else {
                let mut script = args[0].clone();
                // BuildKit hands the shell the body as written (tabs kept) and lets it strip them.
                for h in &ins.heredocs {
                    script.push('\n');
                    script.push_str(&h.raw_content);
                    script.push_str(&h.name);
                }
                args = vec![script];
            }
            if args.len() == 1 && args[0].starts_with("/dev/pipes/") {
                // exec the script directly
            } else {
                args = self.with_shell(&CommandLine { args, prepend_shell: command.prepend_shell });
            }
        } else {
            args = self.with_shell(command);
        }

        let mut mounts = extra_mounts;
        for spec in mount_specs {
            let expanded = self.expand(ins, spec)?;
            let parsed = mounts::parse_mount(&expanded).map_err(|e| self.err(ins, e))?;
            mounts.push(self.run_mount(ins, parsed)?);
        }
        let network = match network.map(|n| self.expand(ins, n)).transpose()?.as_deref() {
            None | Some("default") => NetworkMode::Default,
            Some("none") => NetworkMode::None,
            Some("host") => {
                if !self.t.opts.allow.iter().any(|a| a == "network.host") {
                    return Err(self
                        .err(ins, "network.host is not allowed")
                        .with_hint(Some("grant it with: strata build --allow network.host".into())));
                }
                NetworkMode::Host
            }
            Some(other) => {
                return Err(self
                    .err(ins, format!("unsupported network mode \"{other}\""))
                    .with_hint(Some("--network takes default, none or host".into())));
            }
        };
        let security = match security {
            None | Some("sandbox") => SecurityMode::Sandbox,
            Some("insecure") => {
                if !self.t.opts.allow.iter().any(|a| a == "security.insecure") {
                    return Err(self
                        .err(ins, "security.insecure is not allowed")
                        .with_hint(Some("grant it with: strata build --allow security.insecure".into())));
                }
                SecurityMode::Insecure
            }
            Some(other) => {
                return Err(self
                    .err(ins, format!("unsupported security mode \"{other}\""))
                    .with_hint(Some("--security takes sandbox or insecure".into())));
            }
        };

        // The process sees the stage environment (ENV and valued ARGs) plus proxy build args.
        let mut env = self.env.clone();
        for p in PROXY_ARGS {
            if env.get(p).is_none()
                && let Some(v) = self.t.opts.build_args.get(*p)
            {
                env.set(p, v);
            }
        }
        let history = format!("RUN {} # buildkit", self.run_command_string(&args));
        let op = Op::Exec(ExecOp {
            root: self.node,
            args,
            env: env.to_strings(),
            cwd: self.workdir(),
            user: self.config.config.user.clone(),
            network,
            security,
            mounts,
            platform: Some(self.t.stage_platform.clone()),
        });
        self.node = self.add_node(op, ins, onbuild);
        self.history(history, true);
        Ok(())
    }

    fn run_mount(&mut self, ins: &Instruction, m: RunMount) -> Result<Mount, Diagnostic> {
        let target = if m.target.starts_with('/') { m.target.clone() } else { join_path(&self.workdir(), &m.target) };
        let source_node = |stage: &mut Self| -> Result<Option<NodeId>, Diagnostic> {
            match &m.from {
                None => Ok(None),
                Some(f) => stage.node_for_from(ins, f).map(Some),
            }
        };
        let kind = match m.kind {
            MountType::Bind => {
                let source = match source_node(self)? {
                    Some(n) => n,
                    None => self.t.context_node(ins)?,
                };
                MountKind::Bind {
                    source,
                    source_path: m.source.clone().unwrap_or_else(|| "/".into()),
                    readonly: m.readonly,
                }
            }
            MountType::Cache => MountKind::Cache {
                id: m.id.clone().unwrap_or_else(|| target.clone()),
                sharing: match m.sharing {
                    Sharing::Shared => CacheSharing::Shared,
                    Sharing::Private => CacheSharing::Private,
                    Sharing::Locked => CacheSharing::Locked,
                },
                from: source_node(self)?,
                source_path: m.source.clone().unwrap_or_else(|| "/".into()),
                mode: m.mode.unwrap_or(0o755),
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
                readonly: m.readonly,
            },
            MountType::Tmpfs => MountKind::Tmpfs { size: m.size },
            MountType::Secret | MountType::Ssh => {
                return super::mounts::secret_or_ssh(&m).map_err(|e| self.err(ins, e));
            }
        };
        Ok(Mount { target, kind })
    }

    /// The node a `--from` names: an earlier stage (by name or index) or an image.
    fn node_for_from(&mut self, ins: &Instruction, from: &str) -> Result<NodeId, Diagnostic> {
        self.t.check_literal_from(from, ins)?;
        if let Some(s) = self.t.stage_by_name(from) {
            if s >= self.index {
                let me = if self.display.is_empty() { format!("stage-{}", self.index) } else { self.display.clone() };
                return Err(self.err(
                    ins,
                    format!("cannot copy from stage \"{from}\", it needs to be defined before current stage \"{me}\""),
                ));
            }
            return self.t.results[s]
                .as_ref()
                .map(|r| r.node)
                .ok_or_else(|| self.err(ins, format!("stage \"{from}\" was not built")));
        }
        let (node, _) =
            self.t.image(from, ins, |r| format!("[internal] load image {}@{}", r.name, r.manifest_digest))?;
        Ok(node)
    }

    fn copy(&mut self, ins: &Instruction, c: &CopyCommand, is_add: bool, onbuild: bool) -> Result<(), Diagnostic> {
        let name = if is_add { "ADD" } else { "COPY" };
        let mut sources = Vec::new();
        for s in &c.sources {
            sources.push(self.expand(ins, s)?);
        }
        let dest_raw = self.expand(ins, &c.dest)?;
        let chown = c.chown.as_ref().map(|v| self.expand(ins, v)).transpose()?.filter(|v| !v.is_empty());
        let chmod_text = c.chmod.as_ref().map(|v| self.expand(ins, v)).transpose()?.filter(|v| !v.is_empty());
        let chmod =
            chmod_text.as_ref().map(|v| copy_sources::parse_chmod(v)).transpose().map_err(|e| self.err(ins, e))?;
        let mut exclude = Vec::new();
        for e in &c.exclude {
            exclude.push(self.expand(ins, e)?);
        }
        let checksum = c.checksum.as_ref().map(|v| self.expand(ins, v)).transpose()?.filter(|v| !v.is_empty());
        let classified: Vec<Source> = sources
            .iter()
            .map(|s| copy_sources::classify(s, is_add))
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(ins, e))?;
        if checksum.is_some() {
            if classified.len() != 1 || !c.heredocs.is_empty() {
                return Err(self.err(ins, "checksum can't be specified for multiple sources"));
            }
            if matches!(classified[0], Source::Local(_)) {
                return Err(self.err(ins, "checksum requires HTTP(S) or Git sources"));
            }
        }
        let dest = resolve_dest(&self.workdir(), &dest_raw);
        let chown_spec = chown.as_ref().map(|v| parse_chown(v));
        // BuildKit runs a `--link` copy on scratch and merges it over the stage (when the copy
        // has no --chmod: then it is an ordinary copy), so names cannot be looked up there.
        let link = c.link && chmod.is_none();
        if link && let Some(spec) = &chown_spec {
            let named = |s: &str| !s.is_empty() && s != "root" && !s.bytes().all(|b| b.is_ascii_digit());
            if named(&spec.user) || spec.group.as_deref().is_some_and(named) {
                return Err(self.err(
                    ins,
                    format!(
                        "{name} --link --chown={}: a --link copy cannot look up user or group names \
                         (it does not see the image's /etc/passwd and /etc/group); use numeric ids",
                        chown.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        let exclude_filter = if exclude.is_empty() {
            None
        } else {
            let m = copy_sources::exclude_filter(&exclude).map_err(|e| self.err(ins, format!("--exclude: {e}")))?;
            Some(Arc::new(m) as Arc<dyn PathFilter>)
        };
        let base = CopyAction {
            source: self.node,
            src_paths: Vec::new(),
            dest: dest.clone(),
            chown: chown_spec.clone(),
            chmod: chmod.clone(),
            allow_wildcard: true,
            allow_empty_wildcard: true,
            unpack_archives: false,
            parents: false,
            include: Vec::new(),
            required_paths: Vec::new(),
            exclude: exclude.clone(),
            link,
            include_filter: None,
            exclude_filter,
        };

        // Sources in order (BuildKit adds one copy per source), then the here-documents.
        let mut actions = Vec::new();
        let mut local_group: Vec<String> = Vec::new();
        let local_source = if classified.iter().any(|s| matches!(s, Source::Local(_))) {
            Some(match &c.from {
                Some(f) => (self.node_for_from(ins, f)?, false),
                None => (self.t.context_node(ins)?, true),
            })
        } else {
            None
        };
        let local_path = |s: &str, from_context: bool| {
            if from_context { s.trim_start_matches('/').to_string() } else { join_path("/", s) }
        };
        for src in &classified {
            match src {
                Source::Local(s) => {
                    let Some((node, from_context)) = local_source else { continue };
                    if c.parents {
                        let p = copy_sources::split_parents(s);
                        let filter = copy_sources::IncludeFilter::new(std::slice::from_ref(&p.pattern))
                            .map_err(|e| self.err(ins, format!("--parents {s}: {e}")))?;
                        actions.push(FileAction::Copy(CopyAction {
                            source: node,
                            src_paths: vec![local_path(&p.root, from_context)],
                            unpack_archives: is_add && from_context,
                            parents: true,
                            include: vec![p.pattern.clone()],
                            required_paths: p.required.iter().map(|r| local_path(r, from_context)).collect(),
                            include_filter: Some(Arc::new(filter)),
                            ..base.clone()
                        }));
                    } else {
                        local_group.push(local_path(s, from_context));
                    }
                }
                Source::Http { url, filename } => {
                    copy_sources::flush_locals(&mut actions, &mut local_group, local_source, is_add, &base);
                    let op = Op::Http(HttpSource {
                        url: url.clone(),
                        filename: filename.clone(),
                        checksum: checksum.clone(),
                    });
                    let node = self.add_source_node(op, ins, onbuild);
                    actions.push(FileAction::Copy(CopyAction {
                        source: node,
                        src_paths: vec![filename.clone()],
                        allow_wildcard: false,
                        allow_empty_wildcard: false,
                        ..base.clone()
                    }));
                }
                Source::Git(g) => {
                    copy_sources::flush_locals(&mut actions, &mut local_group, local_source, is_add, &base);
                    let op = Op::Git(GitSource {
                        remote: g.remote.clone(),
                        reference: g.reference.clone(),
                        subdir: g.subdir.clone(),
                        keep_git_dir: c.keep_git_dir,
                        checksum: checksum.clone(),
                    });
                    let node = self.add_source_node(op, ins, onbuild);
                    actions.push(FileAction::Copy(CopyAction {
                        source: node,
                        src_paths: vec!["/".to_string()],
                        allow_wildcard: false,
                        allow_empty_wildcard: false,
                        ..base.clone()
                    }));
                }
            }
        }
        copy_sources::flush_locals(&mut actions, &mut local_group, local_source, is_add, &base);
        for h in &c.heredocs {
            let data = if h.expand { self.expand_heredoc(ins, h)? } else { h.content.clone() };
            if link {
                // As BuildKit makes it: the document is a file in a scratch filesystem, copied
                // like any source, so the --link copy has no file action of its own.
                let scratch = self.t.graph.add(Node::new(Op::Scratch, "scratch"));
                let doc = Op::File(FileOp {
                    root: scratch,
                    actions: vec![FileAction::Mkfile {
                        path: format!("/{}", h.name),
                        mode: 0o644,
                        data: data.into_bytes(),
                        chown: None,
                    }],
                });
                let node = self.t.graph.add(Node::new(doc, "preparing inline document"));
                actions.push(FileAction::Copy(CopyAction {
                    source: node,
                    src_paths: vec![format!("/{}", h.name)],
                    allow_wildcard: false,
                    allow_empty_wildcard: false,
                    ..base.clone()
                }));
                continue;
            }
            let path = if dest.ends_with('/') { format!("{dest}{}", h.name) } else { dest.clone() };
            actions.push(FileAction::Mkfile {
                path,
                mode: match &chmod {
                    Some(Chmod::Octal(m)) => *m,
                    Some(Chmod::Symbolic(sym)) => {
                        SymbolicMode::parse(sym).map(|m| m.apply(0o644, false)).unwrap_or(0o644)
                    }
                    None => 0o644,
                },
                data: data.into_bytes(),
                chown: chown_spec.clone(),
            });
        }
        let mut msg = String::from(name);
        if c.parents {
            msg.push_str(" --parents");
        }
        if let Some(o) = &chown {
            msg.push_str(&format!(" --chown={o}"));
        }
        if let Some(m) = &chmod_text {
            msg.push_str(&format!(" --chmod={m}"));
        }
        for s in &sources {
            msg.push_str(&format!(" {s}"));
        }
        for h in &c.heredocs {
            msg.push_str(&format!(" <<{}", h.name));
        }
        msg.push_str(&format!(" {dest_raw} # buildkit"));
        let op = Op::File(FileOp { root: self.node, actions });
        self.node = self.add_node(op, ins, onbuild);
        self.history(msg, true);
        Ok(())
    }

    /// A remote source of this step (a download or a checkout), named like the step.
    fn add_source_node(&mut self, op: Op, ins: &Instruction, onbuild: bool) -> NodeId {
        let keyword = ins.keyword.to_uppercase();
        let rest = ins.original.trim_start().get(ins.keyword.len()..).unwrap_or("").trim_start();
        let text = format!("{}{keyword} {rest}", if onbuild { "ONBUILD " } else { "" });
        let name = prefix_name(&self.display, self.cmd_index + 1, self.cmd_total, text.trim_end());
        let mut node = Node::new(op, name);
        node.origin =
            Some(Origin { file: self.t.opts.file_name.clone(), start_line: ins.start.line, end_line: ins.end_line });
        node.ignore_cache = self.ignore_cache;
        self.t.graph.add(node)
    }

    /// Heredoc bodies of COPY/ADD expand like BuildKit's `ExpandRaw`: `\\` escapes, quotes
    /// kept as written.
    fn expand_heredoc(&self, ins: &Instruction, h: &Heredoc) -> Result<String, Diagnostic> {
        let mut lexer = crate::shell::Lexer::new('\\');
        lexer.skip_process_quotes = true;
        lexer.process_word(&h.content, &self.env).map_err(|e| self.t.expand_error(ins, &e))
    }

    fn workdir_instr(&mut self, ins: &Instruction, w: &str, onbuild: bool) -> Result<(), Diagnostic> {
        let value = self.expand(ins, w)?;
        let wd = if value.starts_with('/') { clean_path(&value) } else { join_path(&self.workdir(), &value) };
        self.config.config.working_dir = wd.clone();
        let layer = wd != "/";
        if layer {
            let user = self.config.config.user.clone();
            let chown = (!user.is_empty()).then(|| parse_chown(&user));
            let op = Op::File(FileOp {
                root: self.node,
                actions: vec![FileAction::Mkdir { path: wd.clone(), mode: 0o755, parents: true, chown }],
            });
            self.node = self.add_node(op, ins, onbuild);
        }
        self.history(format!("WORKDIR {wd}"), layer);
        Ok(())
    }

    fn healthcheck(&mut self, ins: &Instruction, h: &HealthcheckCommand) -> Result<(), Diagnostic> {
        let hc = match h {
            HealthcheckCommand::None => Healthcheck { test: Some(vec!["NONE".into()]), ..Healthcheck::default() },
            HealthcheckCommand::Check { test, interval, timeout, start_period, start_interval, retries } => {
                let dur = |flag: &str, v: &Option<String>| -> Result<i64, Diagnostic> {
                    let Some(v) = v else { return Ok(0) };
                    let ns = parse_duration(v).map_err(|e| {
                        self.err(ins, format!("--{flag}: {e}"))
                            .with_hint(Some("a duration is a number with a unit: 30s, 1m30s, 500ms".into()))
                    })?;
                    if ns != 0 && ns < 1_000_000 {
                        return Err(self.err(ins, format!("Interval \"{flag}\" cannot be less than 1ms")));
                    }
                    if ns < 0 {
                        return Err(self.err(ins, format!("--{flag} cannot be negative")));
                    }
                    Ok(ns)
                };
                let retries = match retries {
                    Some(r) => {
                        r.parse::<i64>().map_err(|_| self.err(ins, format!("--retries: invalid value {r:?}")))?
                    }
                    None => 0,
                };
                if retries < 0 {
                    return Err(self.err(ins, "--retries cannot be negative"));
                }
                Healthcheck {
                    test: Some(test.clone()),
                    interval: dur("interval", interval)?,
                    timeout: dur("timeout", timeout)?,
                    start_period: dur("start-period", start_period)?,
                    start_interval: dur("start-interval", start_interval)?,
                    retries,
                }
            }
        };
        let msg = format!(
            "HEALTHCHECK &{{{} {} {} {} {} {}}}",
            quote_list(hc.test.as_deref().unwrap_or_default()),
            crate::gofmt::quote(&format_duration(hc.interval)),
            crate::gofmt::quote(&format_duration(hc.timeout)),
            crate::gofmt::quote(&format_duration(hc.start_period)),
            crate::gofmt::quote(&format_duration(hc.start_interval)),
            quote_rune(hc.retries),
        );
        self.config.config.healthcheck = Some(hc);
        self.history(msg, false);
        Ok(())
    }
}

/// `user[:group]` of --chown / USER.
fn parse_chown(v: &str) -> Chown {
    match v.split_once(':') {
        Some((u, g)) => Chown { user: u.to_string(), group: Some(g.to_string()) },
        None => Chown { user: v.to_string(), group: None },
    }
}

/// Lexical cleaning of an absolute slash path (Go's `path.Clean` for paths starting with `/`).
pub(crate) fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `path.Join(base, rel)` for an absolute base.
pub(crate) fn join_path(base: &str, rel: &str) -> String {
    clean_path(&format!("{base}/{rel}"))
}

/// The destination of COPY/ADD: relative to the working directory, cleaned, keeping a trailing
/// `/` (or `/.`) that means "into this directory", as BuildKit's `pathRelativeToWorkingDir`.
pub(crate) fn resolve_dest(workdir: &str, dest: &str) -> String {
    let into_dir = dest.ends_with('/') || dest.ends_with("/.") || dest == "." || dest.is_empty();
    let base = if dest.starts_with('/') { clean_path(dest) } else { join_path(workdir, dest) };
    if into_dir && !base.ends_with('/') { format!("{base}/") } else { base }
}
