//! The compiled filter, run by a small BPF interpreter.

use super::*;

/// What the kernel would do: runs `prog` on one `seccomp_data`.
fn run(prog: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let word = |off: u32| -> u32 {
        match off {
            OFFSET_NR => nr,
            OFFSET_ARCH => arch,
            o if o >= OFFSET_ARGS => {
                let i = ((o - OFFSET_ARGS) / 8) as usize;
                if (o - OFFSET_ARGS).is_multiple_of(8) { args[i] as u32 } else { (args[i] >> 32) as u32 }
            }
            o => panic!("load of offset {o}"),
        }
    };
    let (mut pc, mut a) = (0usize, 0u32);
    loop {
        let insn = prog[pc];
        pc += 1;
        match insn.code {
            BPF_LD_W_ABS => a = word(insn.k),
            BPF_ALU_AND_K => a &= insn.k,
            BPF_RET_K => return insn.k,
            BPF_JMP_JA => pc += insn.k as usize,
            code => {
                let taken = match code {
                    BPF_JMP_JEQ_K => a == insn.k,
                    BPF_JMP_JGT_K => a > insn.k,
                    BPF_JMP_JGE_K => a >= insn.k,
                    other => panic!("unexpected opcode {other:#x}"),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
        }
    }
}

/// Docker's default capabilities (CAP_SYS_CHROOT among them, CAP_SYS_ADMIN not).
const DEFAULT_CAPS: u64 = 0xa80425fb;
const ALLOW: u32 = SECCOMP_RET_ALLOW;
const DENY: u32 = SECCOMP_RET_ERRNO | 1;
const NOSYS: u32 = SECCOMP_RET_ERRNO | 38;

fn x86_64(caps: u64) -> impl Fn(&str, [u64; 6]) -> u32 {
    let prog = compile(profile::RULES, &[Arch::X86_64, Arch::X32, Arch::I386], caps).unwrap();
    move |name, args| run(&prog, AUDIT_ARCH_X86_64, Arch::X86_64.number(name).unwrap(), args)
}

#[test]
fn plain_syscalls_follow_the_allow_list() {
    let call = x86_64(DEFAULT_CAPS);
    for name in ["read", "write", "openat", "execve", "fchmodat2", "futex_requeue", "chroot", "mknodat"] {
        assert_eq!(call(name, [0; 6]), ALLOW, "{name}");
    }
    for name in ["unshare", "mount", "setns", "bpf", "reboot", "acct"] {
        assert_eq!(call(name, [0; 6]), DENY, "{name}");
    }
    // Names the profile never mentions: kexec_load, keyctl, io_uring_setup, io_uring_enter.
    let prog = compile(profile::RULES, &[Arch::X86_64], DEFAULT_CAPS).unwrap();
    for nr in [246, 250, 425, 426] {
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, nr, [0; 6]), DENY, "{nr}");
    }
    assert_eq!(call("clone3", [0; 6]), NOSYS, "clone3 asks glibc to fall back to clone");
}

#[test]
fn numbers_past_the_profile_get_enosys() {
    let prog = compile(profile::RULES, &[Arch::X86_64, Arch::X32, Arch::I386], DEFAULT_CAPS).unwrap();
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 456, [0; 6]), ALLOW, "futex_requeue, the last named");
    for nr in [457, 460, 1000, 0x3fff_ffff] {
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, nr, [0; 6]), NOSYS, "{nr}");
    }
    // Gaps below the last number are denied.
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 450, [0; 6]), DENY, "set_mempolicy_home_node needs CAP_SYS_NICE");
}

#[test]
fn argument_conditions() {
    let call = x86_64(DEFAULT_CAPS);
    for (persona, want) in [(0, ALLOW), (8, ALLOW), (0x20000, ALLOW), (0x20008, ALLOW), (0xffff_ffff, ALLOW)] {
        assert_eq!(call("personality", [persona, 0, 0, 0, 0, 0]), want, "{persona:#x}");
    }
    assert_eq!(call("personality", [0x40000, 0, 0, 0, 0, 0]), DENY);
    assert_eq!(call("personality", [1 << 32, 0, 0, 0, 0, 0]), DENY, "the high half counts");
    assert_eq!(call("socket", [2, 1, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call("socket", [40, 1, 0, 0, 0, 0]), DENY, "AF_VSOCK");
    assert_eq!(call("socket", [40 | 1 << 32, 1, 0, 0, 0, 0]), ALLOW, "not 40 as a 64-bit value");
    assert_eq!(call("clone", [17, 0, 0, 0, 0, 0]), ALLOW, "fork-like clone");
    assert_eq!(call("clone", [0x1000_0000 | 17, 0, 0, 0, 0, 0]), DENY, "CLONE_NEWUSER");
    assert_eq!(call("clone", [0x0200_0000 | 17, 0, 0, 0, 0, 0]), DENY, "CLONE_NEWCGROUP");
    assert_eq!(call("clone", [0x003d_0f00, 0, 0, 0, 0, 0]), ALLOW, "pthread_create's flags");
}

#[test]
fn capabilities_widen_the_profile() {
    let admin = x86_64(DEFAULT_CAPS | 1 << 21);
    assert_eq!(admin("unshare", [0; 6]), ALLOW);
    assert_eq!(admin("mount", [0; 6]), ALLOW);
    assert_eq!(admin("clone", [0x1000_0000, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(admin("clone3", [0; 6]), ALLOW);
    let no_chroot = x86_64(DEFAULT_CAPS & !(1 << 18));
    assert_eq!(no_chroot("chroot", [0; 6]), DENY);
}

#[test]
fn other_abis() {
    let prog = compile(profile::RULES, &[Arch::X86_64, Arch::X32, Arch::I386], DEFAULT_CAPS).unwrap();
    let x32_read = Arch::X32.number("read").unwrap();
    assert_eq!(x32_read, X32_SYSCALL_BIT);
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, x32_read, [0; 6]), ALLOW);
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, Arch::X32.number("unshare").unwrap(), [0; 6]), DENY);
    assert_eq!(run(&prog, AUDIT_ARCH_I386, Arch::I386.number("read").unwrap(), [0; 6]), ALLOW);
    assert_eq!(run(&prog, AUDIT_ARCH_I386, Arch::I386.number("chown32").unwrap(), [0; 6]), ALLOW);
    assert_eq!(run(&prog, AUDIT_ARCH_I386, Arch::I386.number("unshare").unwrap(), [0; 6]), DENY);
    assert_eq!(run(&prog, AUDIT_ARCH_AARCH64, 63, [0; 6]), SECCOMP_RET_KILL_PROCESS, "not a host ABI");
    let arm = compile(profile::RULES, &[Arch::Aarch64], DEFAULT_CAPS).unwrap();
    assert_eq!(run(&arm, AUDIT_ARCH_AARCH64, Arch::Aarch64.number("read").unwrap(), [0; 6]), ALLOW);
    assert_eq!(run(&arm, AUDIT_ARCH_AARCH64, Arch::Aarch64.number("unshare").unwrap(), [0; 6]), DENY);
    assert_eq!(run(&arm, AUDIT_ARCH_X86_64, 0, [0; 6]), SECCOMP_RET_KILL_PROCESS);
}

#[test]
fn program_is_small_enough() {
    let prog = compile(profile::RULES, &[Arch::X86_64, Arch::X32, Arch::I386], DEFAULT_CAPS).unwrap();
    assert!(prog.len() < 1500, "{} instructions", prog.len());
}

/// BuildKit's decisions on this kind of machine, recorded by `tests/data/seccomp_probe.c`
/// (number, then `ok` or the errno). A number the filter denies must have failed with EPERM
/// there, one past the profile with ENOSYS; an allowed one must not have been refused by the
/// filter (the kernel itself may still say EPERM, for want of a capability).
#[test]
fn decisions_agree_with_buildkits_recording() {
    let recorded = include_str!("../../../tests/data/seccomp_buildkit.txt");
    let prog = compile(profile::RULES, &[Arch::X86_64, Arch::X32, Arch::I386], DEFAULT_CAPS).unwrap();
    let mut checked = 0;
    for line in recorded.lines() {
        let mut f = line.split_whitespace();
        let Some(Ok(nr)) = f.next().map(str::parse::<u32>) else { continue };
        let result = f.next().unwrap();
        // The probe passes (-100, pointer, 0, ...): the pointer's high half is not 0.
        let got = run(&prog, AUDIT_ARCH_X86_64, nr, [u64::MAX - 99, 0x5555_0000_0000, 0, 0, 0, 0]);
        match got {
            DENY => assert_eq!(result, "1", "syscall {nr}: the filter denies it, BuildKit's run said {result}"),
            NOSYS => assert_eq!(result, "38", "syscall {nr}: past the profile, BuildKit's run said {result}"),
            ALLOW => {}
            other => panic!("syscall {nr}: unexpected action {other:#x}"),
        }
        checked += 1;
    }
    assert!(checked > 450, "{checked} numbers");
}
