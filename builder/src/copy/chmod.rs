//! Symbolic `--chmod` modes (`u+x`, `go-w`, `a=rX`, `u=rwx,go=u-w`): parsing and applying
//! them to each copied entry's own mode.
//!
//! BuildKit 0.13's Dockerfile frontend (the one in docker 26) takes octal `--chmod` values only
//! and silently drops anything else (a symbolic value leaves modes unchanged, verified). Newer
//! Dockerfile frontends (1.14+, BuildKit 0.20+) accept symbolic modes: the frontend validates
//! the value with `github.com/tonistiigi/dchapes-mode` (a Go port of BSD `setmode(3)`) and
//! fsutil applies it to every copied file, directory and special file, starting from the
//! source's mode. strata follows the newer behaviour, since silently ignoring a flag is worse
//! than honouring it; this is the one deliberate difference from BuildKit 0.13 in COPY.
//!
//! The semantics are BSD `setmode`'s, as that port implements them:
//! - clauses are separated by `,`; each is `[ugoa]*` followed by one or more `op perms`
//!   actions, `op` one of `+ - =`, perms any of `rwxXst` or one of `u g o` (copy that class);
//! - an omitted `who` means all classes *masked by the umask* for `+`/`-`/`=` (BuildKit's
//!   daemon runs with umask 022, so `+w` adds only the owner's write bit, `+x` all three);
//! - `=` clears the affected classes' bits (for an omitted `who`, all 12 bits) before setting;
//! - `s` is set-user-ID with `u`, set-group-ID with `g` (both for `a` or no `who`), ignored for
//!   `o` alone; `t` is the sticky bit, only with `a`, no `who`, or with `u`/`g` present;
//! - `X` (only meaningful with `+`) adds execute if the entry is a directory or its *original*
//!   mode had any execute bit.
//!
//! An octal value is handled by the caller (it replaces all 12 bits); a value starting with a
//! digit is never symbolic here.

use std::fmt;

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;
const RWXU: u32 = 0o700;
const RWXG: u32 = 0o070;
const RWXO: u32 = 0o007;
const READ: u32 = 0o444;
const WRITE: u32 = 0o222;
const EXEC: u32 = 0o111;
/// All bits `a` (or `=` with no `who`) covers, without the sticky bit.
const STANDARD: u32 = S_ISUID | S_ISGID | RWXU | RWXG | RWXO;

/// The umask BuildKit's daemon runs with: symbolic clauses without `who` are masked by it.
pub const BUILDKIT_UMASK: u32 = 0o022;

/// A value that is not a valid symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMode(pub String);

impl fmt::Display for BadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid chmod parameter: {:?}: not a symbolic mode like u+x,g-w (or an octal mode)", self.0)
    }
}

impl std::error::Error for BadMode {}

/// One step of a parsed mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    /// Set `bits`.
    Add(u32),
    /// Clear `bits`.
    Clear(u32),
    /// Set `bits` if the entry is a directory or had an execute bit.
    AddIfExec(u32),
    /// Copy the permissions of class `from` (`u`, `g` or `o`, as a 3-bit value taken from the
    /// current mode) into the classes in `to` (bits mask), with `op`.
    Copy { from: u8, op: u8, to_u: bool, to_g: bool, to_o: bool, mask: u32 },
}

/// A parsed symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolicMode {
    cmds: Vec<Cmd>,
}

impl SymbolicMode {
    /// Parses `s` with BuildKit's umask.
    pub fn parse(s: &str) -> Result<SymbolicMode, BadMode> {
        SymbolicMode::parse_with_umask(s, BUILDKIT_UMASK)
    }

    /// Parses `s`; clauses without `who` are masked by `umask`.
    pub fn parse_with_umask(s: &str, umask: u32) -> Result<SymbolicMode, BadMode> {
        let bad = || BadMode(s.to_string());
        let b = s.as_bytes();
        if b.is_empty() || b[0].is_ascii_digit() {
            return Err(bad());
        }
        let mask = !umask & 0o7777;
        let mut cmds = Vec::new();
        let mut i = 0;
        loop {
            // Who.
            let mut who = 0u32;
            while let Some(&c) = b.get(i) {
                match c {
                    b'a' => who |= STANDARD,
                    b'u' => who |= S_ISUID | RWXU,
                    b'g' => who |= S_ISGID | RWXG,
                    b'o' => who |= RWXO,
                    _ => break,
                }
                i += 1;
            }
            // One or more `op perms` actions.
            let mut actions = 0;
            loop {
                let op = match b.get(i) {
                    Some(&c @ (b'+' | b'-' | b'=')) => c,
                    _ if actions > 0 => break,
                    _ => return Err(bad()),
                };
                i += 1;
                actions += 1;
                let mut who = who & !S_ISVTX;
                let mut perm = 0u32;
                let mut perm_x = 0u32;
                let mut copied = false;
                while let Some(&c) = b.get(i) {
                    match c {
                        b'r' => perm |= READ,
                        b'w' => perm |= WRITE,
                        b'x' => perm |= EXEC,
                        b'X' if op == b'+' => perm_x = EXEC,
                        b'X' => {}
                        b's' => {
                            if who == 0 || who & !RWXO != 0 {
                                perm |= S_ISUID | S_ISGID;
                            }
                        }
                        b't' => {
                            if who == 0 || who & !RWXO != 0 {
                                who |= S_ISVTX;
                                perm |= S_ISVTX;
                            }
                        }
                        b'u' | b'g' | b'o' => {
                            if perm != 0 {
                                push_op(&mut cmds, op, who, perm, mask);
                                perm = 0;
                            }
                            if perm_x != 0 {
                                cmds.push(Cmd::AddIfExec(if who != 0 { who & perm_x } else { mask & perm_x }));
                                perm_x = 0;
                            }
                            cmds.push(copy_cmd(c, op, who, mask));
                            copied = true;
                        }
                        _ => break,
                    }
                    i += 1;
                }
                if perm != 0 || (op == b'=' && !copied) {
                    push_op(&mut cmds, op, who, perm, mask);
                }
                if perm_x != 0 {
                    cmds.push(Cmd::AddIfExec(if who != 0 { who & perm_x } else { mask & perm_x }));
                }
            }
            match b.get(i) {
                None => break,
                Some(b',') if i + 1 < b.len() => i += 1,
                _ => return Err(bad()),
            }
        }
        Ok(SymbolicMode { cmds })
    }

    /// The mode (12 bits) an entry with mode `perm` gets.
    pub fn apply(&self, perm: u32, is_dir: bool) -> u32 {
        let original = perm & 0o7777;
        let mut mode = original;
        for c in &self.cmds {
            match *c {
                Cmd::Add(bits) => mode |= bits,
                Cmd::Clear(bits) => mode &= !bits,
                Cmd::AddIfExec(bits) => {
                    if is_dir || original & EXEC != 0 {
                        mode |= bits;
                    }
                }
                Cmd::Copy { from, op, to_u, to_g, to_o, mask } => {
                    let value = match from {
                        b'u' => (mode & RWXU) >> 6,
                        b'g' => (mode & RWXG) >> 3,
                        _ => mode & RWXO,
                    };
                    let targets = [(to_u, 6), (to_g, 3), (to_o, 0)];
                    if op == b'-' || op == b'=' {
                        let clear = if op == b'=' { 0o7 } else { value };
                        for (on, shift) in targets {
                            if on {
                                mode &= !((clear << shift) & mask);
                            }
                        }
                    }
                    if op == b'+' || op == b'=' {
                        for (on, shift) in targets {
                            if on {
                                mode |= (value << shift) & mask;
                            }
                        }
                    }
                }
            }
        }
        mode & 0o7777
    }
}

/// `+`, `-` or `=` of `perm` for `who` (BSD `addcmd`): `=` first clears what `who` covers.
fn push_op(cmds: &mut Vec<Cmd>, op: u8, who: u32, perm: u32, mask: u32) {
    let bits = if who != 0 { who & perm } else { mask & perm };
    match op {
        b'=' => {
            cmds.push(Cmd::Clear(if who != 0 { who } else { STANDARD }));
            cmds.push(Cmd::Add(bits));
        }
        b'+' => cmds.push(Cmd::Add(bits)),
        _ => cmds.push(Cmd::Clear(bits)),
    }
}

/// A class copy (`g=u`): which classes receive it, and the bits it may touch.
fn copy_cmd(from: u8, op: u8, who: u32, mask: u32) -> Cmd {
    if who != 0 {
        Cmd::Copy { from, op, to_u: who & 0o400 != 0, to_g: who & 0o040 != 0, to_o: who & 0o004 != 0, mask: 0o7777 }
    } else {
        Cmd::Copy { from, op, to_u: true, to_g: true, to_o: true, mask }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(mode: &str, perm: u32, is_dir: bool) -> u32 {
        SymbolicMode::parse(mode).unwrap_or_else(|e| panic!("{e}")).apply(perm, is_dir)
    }

    /// The cases of BuildKit's `testChmodNonOctal` (a file 0666 and a directory 0124, each
    /// compared with busybox `chmod` of the same mode), and their results.
    #[test]
    fn buildkits_non_octal_cases() {
        assert_eq!(apply("go-w", 0o666, false), 0o644);
        assert_eq!(apply("u=rw,g=r,o=r", 0o666, false), 0o644);
        assert_eq!(apply("a+X", 0o666, false), 0o666);
        assert_eq!(apply("go-w", 0o124, true), 0o104);
        assert_eq!(apply("u+rw,g+r,o-x,o+w", 0o124, true), 0o766);
        assert_eq!(apply("a+X", 0o124, true), 0o135);
    }

    /// Compared with GNU coreutils `chmod` on real files (umask 022), which agrees on all of these
    /// but the last: GNU keeps a directory's set-id bits on `=`, BSD `setmode` (BuildKit's) does not.
    #[test]
    fn chmod_1_semantics() {
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("+x", 0o644, false), 0o755);
        assert_eq!(apply("+w", 0o444, false), 0o644, "no who: masked by the umask");
        assert_eq!(apply("a+w", 0o444, false), 0o666);
        assert_eq!(apply("=r", 0o4755, false), 0o444, "= without who clears set-id bits too");
        assert_eq!(apply("go=", 0o777, false), 0o700);
        assert_eq!(apply("u=rwx,go=u-w", 0o600, false), 0o755);
        assert_eq!(apply("g=u", 0o640, false), 0o660);
        assert_eq!(apply("o+g", 0o750, false), 0o755);
        assert_eq!(apply("u+s,g+s", 0o755, false), 0o6755);
        assert_eq!(apply("o+s", 0o755, false), 0o755, "s for others alone is ignored");
        assert_eq!(apply("+t", 0o755, true), 0o1755);
        assert_eq!(apply("o+t", 0o755, true), 0o755, "t for others alone is ignored");
        assert_eq!(apply("a+X", 0o644, false), 0o644);
        assert_eq!(apply("a+X", 0o744, false), 0o755);
        assert_eq!(apply("u-x,a+X", 0o744, false), 0o755, "X looks at the original mode");
        assert_eq!(apply("u+r-w", 0o200, false), 0o400, "several actions in one clause");
        assert_eq!(apply("a-rwx", 0o7777, false), 0o7000, "set-id and sticky bits stay");
        assert_eq!(apply("a=", 0o7777, true), 0o1000, "= with a leaves the sticky bit");
    }

    #[test]
    fn malformed_values_are_rejected() {
        for bad in ["", "u", "u+x,", ",u+x", "x+u", "u+q", "u*x", "644", "0755", "u+x g-w", "+x,,g-w", "ug"] {
            assert!(SymbolicMode::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        for ok in ["u+x", "a=rwx", "=", "-", "+", "u=", "ug+rw,o-rwx", "u+x-w+r", "=rw,+X"] {
            assert!(SymbolicMode::parse(ok).is_ok(), "{ok:?} should parse");
        }
    }
}
