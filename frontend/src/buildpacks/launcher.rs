//! The launcher: the image's entrypoint, which picks a process, sets up the launch environment
//! and execs the process (Buildpack API spec, "Launch"; Platform API spec, "launcher").
//!
//! strata's launcher is a POSIX shell script written at export time, `/cnb/lifecycle/launcher`,
//! with `/cnb/process/<type>` symlinks to it (the process type is the name it is started by,
//! or `$CNB_PROCESS_TYPE` when started as `launcher`). The environment changes of the launch
//! layers' `env/`, `env.launch/` and `env.launch/<type>/` files and their `bin/`, `lib/`
//! directories are compiled into shell statements ([`super::env::shell_ops`]) applied to the
//! container's starting environment, in the spec's order; then each layer's `profile.d/`
//! scripts (and `profile.d/<type>/`) and the app's `.profile` are sourced; then the process
//! runs in its working directory with the user's arguments in place of its default `args`.
//!
//! Why a script rather than the lifecycle's Go launcher: strata has no statically linked
//! helper binary to put into arbitrary run images, and every run image strata's defaults use
//! has `/bin/sh`. The price: a run image without `/bin/sh` cannot start buildpack processes,
//! and `exec.d` executables (which report variables as TOML on fd 3) are not run.

use std::path::{Path, PathBuf};

use super::env::{self, EnvOp, shell_quote};
use super::layers::Process;

/// A launch layer as the launcher sees it.
#[derive(Debug, Clone)]
pub struct LaunchLayer {
    /// The staged directory holding its content on the host.
    pub host: PathBuf,
    /// Its path in the image (`/layers/<buildpack>/<name>`).
    pub inside: String,
}

/// The launch layers of one buildpack, alphabetically.
#[derive(Debug, Clone, Default)]
pub struct LaunchBuildpack {
    pub layers: Vec<LaunchLayer>,
}

/// The environment changes for process type `kind` (or for a plain command when `None`).
fn env_ops(bps: &[LaunchBuildpack], kind: Option<&str>, warnings: &mut Vec<String>) -> std::io::Result<Vec<EnvOp>> {
    let mut ops = Vec::new();
    for bp in bps {
        let dirs: Vec<(PathBuf, String)> = bp.layers.iter().map(|l| (l.host.clone(), l.inside.clone())).collect();
        ops.extend(env::path_ops(&dirs, env::LAUNCH_PATHS));
        for l in &bp.layers {
            ops.extend(env::read_env_dir(&l.host.join("env"), warnings)?);
            ops.extend(env::read_env_dir(&l.host.join("env.launch"), warnings)?);
            if let Some(k) = kind {
                ops.extend(env::read_env_dir(&l.host.join("env.launch").join(k), warnings)?);
            }
        }
    }
    Ok(ops)
}

/// `. 'script'` lines for the profile.d scripts of type `kind`, then the app's `.profile`.
fn profile_lines(bps: &[LaunchBuildpack], kind: Option<&str>, app_dir: &str) -> std::io::Result<String> {
    let mut out = String::new();
    let mut add_dir = |host: &Path, inside: &str| -> std::io::Result<()> {
        let mut files: Vec<String> = match std::fs::read_dir(host) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        files.sort();
        for f in files {
            out.push_str(&format!(". {}\n", shell_quote(&format!("{inside}/{f}"))));
        }
        Ok(())
    };
    for bp in bps {
        for l in &bp.layers {
            add_dir(&l.host.join("profile.d"), &format!("{}/profile.d", l.inside))?;
            if let Some(k) = kind {
                add_dir(&l.host.join("profile.d").join(k), &format!("{}/profile.d/{k}", l.inside))?;
            }
        }
    }
    let profile = format!("{app_dir}/.profile");
    out.push_str(&format!("if [ -f {0} ]; then . {0}; fi\n", shell_quote(&profile)));
    Ok(out)
}

/// The launcher script.
pub fn script(
    bps: &[LaunchBuildpack],
    processes: &[Process],
    app_dir: &str,
    warnings: &mut Vec<String>,
) -> std::io::Result<String> {
    let mut s = String::from(
        "#!/bin/sh\n\
         # Written by strata: starts a process of this buildpack-built image (see\n\
         # io.buildpacks.build.metadata). Started as /cnb/process/TYPE it runs that process type;\n\
         # as /cnb/lifecycle/launcher it runs $CNB_PROCESS_TYPE, or else the command it is given.\n\
         set -e\n\
         if [ \"${0##*/}\" = launcher ]; then cnb_type=\"${CNB_PROCESS_TYPE:-}\"; else cnb_type=\"${0##*/}\"; fi\n\
         case \"$cnb_type\" in\n",
    );
    for p in processes {
        s.push_str(&format!("{})\n", shell_quote(&p.kind)));
        s.push_str(&env::shell_ops(&env_ops(bps, Some(&p.kind), warnings)?));
        s.push_str(&profile_lines(bps, Some(&p.kind), app_dir)?);
        s.push_str(&format!("cd {}\n", shell_quote(&p.working_dir)));
        if !p.args.is_empty() {
            let args: Vec<String> = p.args.iter().map(|a| shell_quote(a)).collect();
            s.push_str(&format!("if [ \"$#\" -eq 0 ]; then set -- {}; fi\n", args.join(" ")));
        }
        let cmd: Vec<String> = p.command.iter().map(|a| shell_quote(a)).collect();
        s.push_str(&format!("exec {} \"$@\"\n;;\n", cmd.join(" ")));
    }
    s.push_str("'')\nif [ \"${1:-}\" = \"--\" ]; then shift; fi\n");
    s.push_str("if [ \"$#\" -eq 0 ]; then echo \"launcher: no process type and no command given\" >&2; exit 1; fi\n");
    s.push_str(&env::shell_ops(&env_ops(bps, None, warnings)?));
    s.push_str(&profile_lines(bps, None, app_dir)?);
    s.push_str(&format!("cd {}\nexec \"$@\"\n;;\n", shell_quote(app_dir)));
    s.push_str("*)\necho \"launcher: unknown process type: $cnb_type\" >&2\nexit 1\n;;\nesac\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    #[test]
    fn runs_processes_with_their_environment() {
        let d = tempfile::tempdir().unwrap();
        // The script refers to paths inside the image; here the "image" is the temp dir.
        let root = d.path().to_str().unwrap().to_string();
        let w = |p: &str, c: &str| {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        };
        w("layers/bp/a/bin/hello", "#!/bin/sh\necho \"hello $GREETING $WHO $EXTRA $PROC_ONLY $FROM_PROFILE $*\"\n");
        std::fs::set_permissions(d.path().join("layers/bp/a/bin/hello"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        w("layers/bp/a/env/GREETING", "hi");
        w("layers/bp/a/env.launch/WHO.default", "world");
        w("layers/bp/a/env.launch/web/PROC_ONLY", "web-only");
        w("layers/bp/a/profile.d/p.sh", "export FROM_PROFILE=profiled\n");
        w("layers/bp2/b/env/EXTRA.append", "two");
        w("layers/bp2/b/env/EXTRA.delim", "+");
        w("workspace/.keep", "");
        let bps = vec![
            LaunchBuildpack {
                layers: vec![LaunchLayer { host: d.path().join("layers/bp/a"), inside: format!("{root}/layers/bp/a") }],
            },
            LaunchBuildpack {
                layers: vec![LaunchLayer {
                    host: d.path().join("layers/bp2/b"),
                    inside: format!("{root}/layers/bp2/b"),
                }],
            },
        ];
        let app = format!("{root}/workspace");
        let proc = |kind: &str, args: &[&str]| Process {
            kind: kind.into(),
            command: vec!["hello".into(), "fixed".into()],
            args: args.iter().map(|s| s.to_string()).collect(),
            direct: true,
            buildpack_id: "bp".into(),
            working_dir: app.clone(),
        };
        let mut warnings = Vec::new();
        let text = script(&bps, &[proc("web", &["default-arg"]), proc("worker", &[])], &app, &mut warnings).unwrap();
        let launcher = d.path().join("launcher");
        std::fs::write(&launcher, &text).unwrap();
        std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(d.path().join("process")).unwrap();
        for t in ["web", "worker"] {
            std::os::unix::fs::symlink(&launcher, d.path().join("process").join(t)).unwrap();
        }
        let run = |exe: &Path, args: &[&str], env: &[(&str, &str)]| {
            let out = Command::new(exe)
                .args(args)
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .envs(env.iter().copied())
                .output()
                .unwrap();
            (String::from_utf8_lossy(&out.stdout).trim().to_string(), out.status.code())
        };
        let web = d.path().join("process/web");
        assert_eq!(run(&web, &[], &[]).0, "hello hi world two web-only profiled fixed default-arg");
        assert_eq!(
            run(&web, &["mine"], &[("WHO", "you"), ("EXTRA", "one")]).0,
            "hello hi you one+two web-only profiled fixed mine"
        );
        let worker = d.path().join("process/worker");
        assert_eq!(run(&worker, &[], &[]).0, "hello hi world two  profiled fixed", "no web-only env for worker");
        assert_eq!(
            run(&launcher, &[], &[("CNB_PROCESS_TYPE", "web")]).0,
            "hello hi world two web-only profiled fixed default-arg"
        );
        assert_eq!(run(&launcher, &["--", "hello", "x"], &[]).0, "hello hi world two  profiled x");
        assert_eq!(run(&launcher, &[], &[]).1, Some(1));
        assert_eq!(run(&launcher, &[], &[("CNB_PROCESS_TYPE", "nope")]).1, Some(1));
    }
}
