//! Docker's default seccomp profile (moby `profiles/seccomp/default.json` as shipped with Docker
//! 26, whose BuildKit applies it to every `RUN` step), as data.
//!
//! Checked on this kind of machine against `docker buildx build` (Docker 26, BuildKit 0.13,
//! runc 1.1): every syscall number from 0 to 470 was called inside a `RUN` step with harmless
//! arguments, and the errno seen (`EPERM` for a denied call, `ENOSYS` past the profile's last
//! syscall, anything else for an allowed one) is what [`super::compile`] reproduces; the test
//! suite repeats that comparison (`tests/sandbox_seccomp.rs`). Against the JSON in moby's
//! repository of that time, Docker 26 no longer allows `io_uring_*`, and adds
//! `cachestat`, `fchmodat2`, `map_shadow_stack` and `futex_wake`/`futex_wait`/`futex_requeue`.

use super::{Action, Arg, Cmp, Rule};

#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget", "capset", "chdir",
    "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
    "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve",
    "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl",
    "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
    "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue",
    "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
    "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
    "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
    "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr",
    "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat",
    "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir",
    "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr",
    "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
    "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open",
    "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64",
    "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64",
    "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom",
    "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
    "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
    "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32",
    "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
    "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat",
    "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo",
    "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
    "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink",
    "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid",
    "write", "writev",
];

/// `CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
/// CLONE_NEWCGROUP`: without `CAP_SYS_ADMIN`, `clone` may create no namespace.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

const fn eq(index: u8, value: u64) -> Arg {
    Arg { index, cmp: Cmp::Eq(value) }
}

const fn allow(names: &'static [&'static str]) -> Rule {
    Rule { names, action: Action::Allow, args: &[], arches: &[], caps: 0, without_caps: 0 }
}

/// Allowed only when the process keeps capability `cap` (moby's `"includes": {"caps": [...]}`).
const fn allow_with_cap(names: &'static [&'static str], cap: u32) -> Rule {
    Rule { caps: 1u64 << cap, ..allow(names) }
}

// Capability numbers (linux/capability.h).
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_MODULE: u32 = 16;
const CAP_SYS_RAWIO: u32 = 17;
const CAP_SYS_CHROOT: u32 = 18;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_PACCT: u32 = 20;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_BOOT: u32 = 22;
const CAP_SYS_NICE: u32 = 23;
const CAP_SYS_TIME: u32 = 25;
const CAP_SYS_TTY_CONFIG: u32 = 26;
const CAP_SYSLOG: u32 = 34;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The profile's rules, in the JSON's order. Rules naming the same syscall are alternatives:
/// the first whose argument conditions hold decides.
pub const RULES: &[Rule] = &[
    allow(ALLOWED),
    // "includes": {"minKernel": "4.8"}: every kernel strata runs on is newer.
    allow(&["process_vm_readv", "process_vm_writev", "ptrace"]),
    // Any socket but AF_VSOCK (40).
    Rule { args: &[Arg { index: 0, cmp: Cmp::Ne(40) }], ..allow(&["socket"]) },
    // The personalities of `linux32`/`setarch` and the query value.
    Rule { args: &[eq(0, 0x0)], ..allow(&["personality"]) },
    Rule { args: &[eq(0, 0x0008)], ..allow(&["personality"]) },
    Rule { args: &[eq(0, 0x20000)], ..allow(&["personality"]) },
    Rule { args: &[eq(0, 0x20008)], ..allow(&["personality"]) },
    Rule { args: &[eq(0, 0xffff_ffff)], ..allow(&["personality"]) },
    Rule {
        arches: &[super::Arch::Aarch64],
        ..allow(&["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"])
    },
    Rule { arches: &[super::Arch::X86_64, super::Arch::X32], ..allow(&["arch_prctl"]) },
    Rule { arches: &[super::Arch::X86_64, super::Arch::X32, super::Arch::I386], ..allow(&["modify_ldt"]) },
    allow_with_cap(&["open_by_handle_at"], CAP_DAC_READ_SEARCH),
    allow_with_cap(
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        CAP_SYS_ADMIN,
    ),
    Rule {
        args: &[Arg { index: 0, cmp: Cmp::MaskedEq { mask: CLONE_NAMESPACE_FLAGS, value: 0 } }],
        without_caps: 1u64 << CAP_SYS_ADMIN,
        ..allow(&["clone"])
    },
    // glibc falls back to clone on ENOSYS; EPERM would make it give up.
    Rule { action: Action::Errno(38), without_caps: 1u64 << CAP_SYS_ADMIN, ..allow(&["clone3"]) },
    allow_with_cap(&["reboot"], CAP_SYS_BOOT),
    allow_with_cap(&["chroot"], CAP_SYS_CHROOT),
    allow_with_cap(&["delete_module", "init_module", "finit_module"], CAP_SYS_MODULE),
    allow_with_cap(&["acct"], CAP_SYS_PACCT),
    allow_with_cap(
        &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"],
        CAP_SYS_PTRACE,
    ),
    allow_with_cap(&["iopl", "ioperm"], CAP_SYS_RAWIO),
    allow_with_cap(&["settimeofday", "stime", "clock_settime", "clock_settime64"], CAP_SYS_TIME),
    allow_with_cap(&["vhangup"], CAP_SYS_TTY_CONFIG),
    allow_with_cap(&["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"], CAP_SYS_NICE),
    allow_with_cap(&["syslog"], CAP_SYSLOG),
    allow_with_cap(&["bpf"], CAP_BPF),
    allow_with_cap(&["perf_event_open"], CAP_PERFMON),
];
