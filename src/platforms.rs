//! Running RUN steps for a foreign platform: the kernel runs a foreign binary through the
//! QEMU user-mode emulator registered in binfmt_misc (Debian's `qemu-user-static` registers
//! `qemu-aarch64` and friends with the `F` flag: the interpreter is opened at registration, so
//! it works inside the sandbox's namespaces and chroot without being in the image's rootfs).
//! strata needs no emulator of its own, but checks before building that one is registered, so
//! that a missing emulator is a clear error instead of `exec format error` in the middle of a
//! build (BuildKit checks its emulators the same way before it runs a step).

use std::path::Path;

use anyhow::{Result, bail};
use strata_builder::graph::{Graph, Op};
use strata_store::oci::Platform;
use strata_store::platforms;

const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// QEMU's name for an architecture (`qemu-<name>`), for the platforms QEMU emulates.
fn qemu_arch(p: &Platform) -> Option<&'static str> {
    Some(match platforms::normalize(p).architecture.as_str() {
        "arm64" => "aarch64",
        "amd64" => "x86_64",
        "arm" => "arm",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// What binfmt_misc says about `qemu-<arch>` in `dir`: `Ok(())` when it is enabled with the
/// `F` flag, else why not.
fn emulator_state(dir: &Path, arch: &str) -> Result<(), String> {
    let entry = dir.join(format!("qemu-{arch}"));
    let text = std::fs::read_to_string(&entry).map_err(|_| format!("no binfmt_misc entry {}", entry.display()))?;
    if !text.lines().any(|l| l.trim() == "enabled") {
        return Err(format!("{} is disabled", entry.display()));
    }
    let flags = text.lines().find_map(|l| l.strip_prefix("flags:")).unwrap_or("").trim();
    if !flags.contains('F') {
        return Err(format!(
            "{} lacks the F flag (flags: {flags:?}): its interpreter cannot be found inside the sandbox",
            entry.display()
        ));
    }
    Ok(())
}

/// Fails clearly when `graph` runs a process for a platform that is not `host`'s and no
/// emulator for it is registered.
pub fn check_emulation(graph: &Graph, host: &Platform) -> Result<()> {
    let mut checked: Vec<Platform> = Vec::new();
    for node in &graph.nodes {
        let Op::Exec(e) = &node.op else { continue };
        let Some(p) = &e.platform else { continue };
        if platforms::same(p, host) || checked.contains(p) {
            continue;
        }
        checked.push(p.clone());
        let why = match qemu_arch(p) {
            Some(arch) => match emulator_state(Path::new(BINFMT_DIR), arch) {
                Ok(()) => continue,
                Err(why) => why,
            },
            None => "QEMU has no user-mode emulator for it".to_string(),
        };
        bail!(
            "cannot run RUN steps for {} on this {} machine: {why} (install Debian's qemu-user-static, which \
             registers the emulators in binfmt_misc with the F flag)",
            p.to_spec(),
            host.to_spec()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_states() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("qemu-aarch64", "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\n");
        write("qemu-arm", "disabled\nflags: F\n");
        write("qemu-s390x", "enabled\nflags: OC\n");
        assert!(emulator_state(dir.path(), "aarch64").is_ok());
        assert!(emulator_state(dir.path(), "arm").unwrap_err().contains("disabled"));
        assert!(emulator_state(dir.path(), "s390x").unwrap_err().contains("F flag"));
        assert!(emulator_state(dir.path(), "riscv64").unwrap_err().contains("no binfmt_misc entry"));
    }

    #[test]
    fn qemu_names() {
        assert_eq!(qemu_arch(&platforms::parse("linux/arm64/v8").unwrap()), Some("aarch64"));
        assert_eq!(qemu_arch(&platforms::parse("linux/amd64").unwrap()), Some("x86_64"));
        assert_eq!(qemu_arch(&platforms::parse("linux/wasm").unwrap()), None);
    }
}
