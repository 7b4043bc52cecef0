//! The seccomp filter of a `RUN` step: Docker's default profile compiled to classic BPF.
//!
//! BuildKit (through runc and libseccomp) confines every sandboxed `RUN` step with Docker's
//! default profile; `--security=insecure` runs without one. No maintained Rust crate does what
//! is needed here: `seccompiler` (rust-vmm) compiles its own JSON dialect without moby's
//! capability/architecture conditions or runc's `ENOSYS` rule, and `libseccomp` bindings need
//! the C library and its headers at build time; neither is among the project's allowed
//! dependencies. The filter is small and fixed, so it is generated here from the profile as
//! data (`profile.rs`) and the syscall numbers of the kernel's tables (`tables.rs`).
//!
//! What the program does, for the architecture in `seccomp_data.arch`:
//! * an architecture other than the host's own ABIs (x86-64 with its i386 and x32 ABIs;
//!   aarch64) is killed, as libseccomp's default bad-arch action does;
//! * a syscall number above the highest one the profile names for that ABI gets `ENOSYS`:
//!   runc adds this so that programs probing for syscalls newer than the profile (glibc's
//!   `clone3`, `fchmodat2`, ...) fall back instead of failing with `EPERM`;
//! * otherwise the profile's rules for that number decide (the first rule whose argument
//!   conditions hold), and a number no rule allows gets `EPERM` (the profile's default action).
//!
//! Rules whose `includes`/`excludes` name capabilities apply according to the capabilities the
//! process keeps, as moby's profile loader decides from the spec's bounding set.
//!
//! Numbers are tested as ranges in ascending order (consecutive numbers with the same plain
//! action share one range), so every jump is short and the program stays well under the
//! kernel's 4096 instructions.

mod profile;
mod tables;

use std::collections::BTreeMap;

/// An ABI a filter can see in `seccomp_data.arch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    I386,
    X32,
    Aarch64,
}

/// `AUDIT_ARCH_*` values (linux/audit.h).
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
/// x32 syscalls arrive with `AUDIT_ARCH_X86_64` and this bit set in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

impl Arch {
    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Arch::X86_64 => tables::X86_64,
            Arch::I386 => tables::I386,
            Arch::X32 => tables::X32,
            Arch::Aarch64 => tables::AARCH64,
        }
    }

    fn number(self, name: &str) -> Option<u32> {
        self.table().iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr)
    }
}

/// What a rule does with a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Errno(u16),
}

/// A comparison of one 64-bit syscall argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq(u64),
    Ne(u64),
    /// `arg & mask == value`.
    MaskedEq {
        mask: u64,
        value: u64,
    },
}

/// A condition on argument `index` (0-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    pub index: u8,
    pub cmp: Cmp,
}

/// One entry of the profile.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub names: &'static [&'static str],
    pub action: Action,
    /// All must hold.
    pub args: &'static [Arg],
    /// The rule applies only on these ABIs (empty: all).
    pub arches: &'static [Arch],
    /// The rule applies only if the process keeps all these capabilities (bit mask).
    pub caps: u64,
    /// The rule applies only if the process keeps none of these capabilities (bit mask).
    pub without_caps: u64,
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// linux/filter.h opcodes.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGT_K: u16 = 0x25;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_RET_K: u16 = 0x06;

// linux/seccomp.h return values.
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7FFF_0000;

// Offsets in `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARGS: u32 = 16;

const EPERM: u16 = 1;
const ENOSYS: u16 = 38;

fn ld(k: u32) -> Insn {
    Insn { code: BPF_LD_W_ABS, jt: 0, jf: 0, k }
}
fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}
fn ja(len: usize) -> Insn {
    Insn { code: BPF_JMP_JA, jt: 0, jf: 0, k: len as u32 }
}
fn ret(k: u32) -> Insn {
    Insn { code: BPF_RET_K, jt: 0, jf: 0, k }
}
fn ret_action(a: Action) -> Insn {
    ret(match a {
        Action::Allow => SECCOMP_RET_ALLOW,
        Action::Errno(e) => SECCOMP_RET_ERRNO | u32::from(e),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("no seccomp profile for this architecture ({0}); use --security=insecure to run without one")]
    UnsupportedArch(&'static str),
    #[error("the seccomp filter does not fit BPF's jump range ({0})")]
    TooLong(String),
}

/// The ABIs of the host: the native one first.
pub fn host_arches() -> Result<&'static [Arch], SeccompError> {
    if cfg!(target_arch = "x86_64") {
        Ok(&[Arch::X86_64, Arch::X32, Arch::I386])
    } else if cfg!(target_arch = "aarch64") {
        Ok(&[Arch::Aarch64])
    } else {
        Err(SeccompError::UnsupportedArch(std::env::consts::ARCH))
    }
}

/// The filter for a process keeping the capabilities in `caps` (bit mask), on the host's ABIs.
pub fn default_filter(caps: u64) -> Result<Vec<Insn>, SeccompError> {
    compile(profile::RULES, host_arches()?, caps)
}

/// The rules that apply on `arch` with `caps`, by syscall number.
fn rules_by_number(rules: &[Rule], arch: Arch, caps: u64) -> BTreeMap<u32, Vec<Rule>> {
    let mut by_nr: BTreeMap<u32, Vec<Rule>> = BTreeMap::new();
    for rule in rules {
        let applies = (rule.arches.is_empty() || rule.arches.contains(&arch))
            && rule.caps & caps == rule.caps
            && rule.without_caps & caps == 0;
        if !applies {
            continue;
        }
        for name in rule.names {
            if let Some(nr) = arch.number(name) {
                by_nr.entry(nr).or_default().push(*rule);
            }
        }
    }
    by_nr
}

/// Compiles `rules` for `arches` into a BPF program.
pub fn compile(rules: &[Rule], arches: &[Arch], caps: u64) -> Result<Vec<Insn>, SeccompError> {
    let body = |arch: Arch| arch_body(&rules_by_number(rules, arch, caps));
    // One block per audit arch, each guarded by `jeq ARCH, 1, 0; ja +len` so that any block
    // length can be jumped over (`ja` takes a 32-bit offset). x86-64 and x32 share an audit
    // arch; the x32 bit in the number picks between their bodies the same way.
    let mut prog = vec![ld(OFFSET_ARCH)];
    for arch in arches {
        let (audit, block) = match arch {
            Arch::X86_64 => {
                let native = body(Arch::X86_64)?;
                let x32 =
                    if arches.contains(&Arch::X32) { body(Arch::X32)? } else { vec![ret(SECCOMP_RET_KILL_PROCESS)] };
                let mut block = vec![ld(OFFSET_NR), jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1), ja(native.len())];
                block.extend(native);
                block.extend(x32);
                (AUDIT_ARCH_X86_64, block)
            }
            Arch::I386 => (AUDIT_ARCH_I386, [vec![ld(OFFSET_NR)], body(Arch::I386)?].concat()),
            Arch::Aarch64 => (AUDIT_ARCH_AARCH64, [vec![ld(OFFSET_NR)], body(Arch::Aarch64)?].concat()),
            Arch::X32 => continue,
        };
        prog.push(jump(BPF_JMP_JEQ_K, audit, 1, 0));
        prog.push(ja(block.len()));
        prog.extend(block);
    }
    prog.push(ret(SECCOMP_RET_KILL_PROCESS));
    if prog.len() > BPF_MAXINSNS {
        return Err(SeccompError::TooLong(format!("{} instructions", prog.len())));
    }
    Ok(prog)
}

/// The kernel's limit on a filter's length.
const BPF_MAXINSNS: usize = 4096;

/// The part of the program for one ABI, entered with the syscall number in A.
fn arch_body(by_nr: &BTreeMap<u32, Vec<Rule>>) -> Result<Vec<Insn>, SeccompError> {
    let mut body = Vec::new();
    let Some(max) = by_nr.keys().next_back().copied() else {
        body.push(ret_action(Action::Errno(EPERM)));
        return Ok(body);
    };
    // runc: numbers past the profile's last known syscall get ENOSYS.
    body.push(jump(BPF_JMP_JGT_K, max, 0, 1));
    body.push(ret_action(Action::Errno(ENOSYS)));
    for (first, last, block) in ranges(by_nr) {
        // A > last: next range. A < first: a gap, the default. Otherwise this block.
        let jt = u8::try_from(block.len() + 2).map_err(|_| SeccompError::TooLong(format!("syscall {first}")))?;
        body.push(jump(BPF_JMP_JGT_K, last, jt, 0));
        body.push(jump(BPF_JMP_JGE_K, first, 1, 0));
        body.push(ret_action(Action::Errno(EPERM)));
        body.extend(block);
    }
    body.push(ret_action(Action::Errno(EPERM)));
    Ok(body)
}

/// Ascending, disjoint number ranges with the code deciding them (entered with A = nr).
/// Consecutive numbers with the same unconditional first rule are merged.
fn ranges(by_nr: &BTreeMap<u32, Vec<Rule>>) -> Vec<(u32, u32, Vec<Insn>)> {
    let mut out: Vec<(u32, u32, Vec<Insn>)> = Vec::new();
    for (nr, rules) in by_nr {
        let block = decide(rules);
        let plain = block.len() == 1;
        if let Some((_, last, prev)) = out.last_mut()
            && plain
            && *last + 1 == *nr
            && *prev == block
        {
            *last = *nr;
            continue;
        }
        out.push((*nr, *nr, block));
    }
    out
}

/// The code for one syscall's rules: the first rule whose conditions hold returns its action;
/// if none does, the default (`EPERM`). A rule without conditions ends the block.
fn decide(rules: &[Rule]) -> Vec<Insn> {
    let mut code = Vec::new();
    for rule in rules {
        if rule.args.is_empty() {
            code.push(ret_action(rule.action));
            return code;
        }
        // Conditions jump to `fail` (the next rule) when they do not hold; patched below.
        let start = code.len();
        let mut fails: Vec<(usize, bool)> = Vec::new(); // (index, is_jt)
        for arg in rule.args {
            let lo = OFFSET_ARGS + 8 * u32::from(arg.index);
            let hi = lo + 4;
            let (mask, value, negate) = match arg.cmp {
                Cmp::Eq(v) => (u64::MAX, v, false),
                Cmp::Ne(v) => (u64::MAX, v, true),
                Cmp::MaskedEq { mask, value } => (mask, value, false),
            };
            let halves = [(lo, mask as u32, value as u32), (hi, (mask >> 32) as u32, (value >> 32) as u32)];
            if negate {
                // Holds unless both halves are equal: lo != v_lo -> pass; hi != v_hi -> pass.
                let pass_from_lo = code.len();
                code.push(ld(halves[0].0));
                code.push(jump(BPF_JMP_JEQ_K, halves[0].2, 0, 0)); // jf patched to pass
                code.push(ld(halves[1].0));
                code.push(jump(BPF_JMP_JEQ_K, halves[1].2, 0, 0)); // jt -> fail, jf -> pass
                let end = code.len();
                code[pass_from_lo + 1].jf = (end - (pass_from_lo + 2)) as u8;
                fails.push((end - 1, true));
            } else {
                for (offset, m, v) in halves {
                    if m == 0 {
                        continue; // Nothing of this half is compared.
                    }
                    code.push(ld(offset));
                    if m != u32::MAX {
                        code.push(Insn { code: BPF_ALU_AND_K, jt: 0, jf: 0, k: m });
                    }
                    code.push(jump(BPF_JMP_JEQ_K, v & m, 0, 0)); // jf -> fail
                    fails.push((code.len() - 1, false));
                }
            }
        }
        code.push(ret_action(rule.action));
        let fail = code.len();
        for (i, is_jt) in fails {
            let off = (fail - (i + 1)) as u8;
            if is_jt {
                code[i].jt = off;
            } else {
                code[i].jf = off;
            }
        }
        debug_assert!(code.len() - start < 64);
    }
    code.push(ret_action(Action::Errno(EPERM)));
    code
}

#[cfg(test)]
mod tests;
