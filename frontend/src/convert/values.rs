//! Parsing of instruction values whose syntax is not shell words: EXPOSE port specs,
//! STOPSIGNAL signals, `--chmod` modes and HEALTHCHECK retries, with BuildKit's rules and error
//! wording.

use std::collections::BTreeSet;

/// Expands one EXPOSE word (`80`, `80/tcp`, `53/UDP`, `8000-8002/tcp`) into `port/proto`
/// entries, as Docker's `nat.ParsePortSpecs` does for image configs.
pub fn expose_ports(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    // `ip:host:container` forms are for `docker run -p`, not for images.
    if ports.contains(':') {
        return Err(format!("invalid containerPort: {ports}"));
    }
    let parse = |s: &str| s.parse::<u16>().map_err(|_| format!("invalid containerPort: {ports}"));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(format!("invalid range specified for container port: {ports}"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// `EXPOSE map[443/udp:{} 80/tcp:{}]`: Go prints a map's keys sorted.
pub fn expose_history(ports: &BTreeSet<String>) -> String {
    let inner: Vec<String> = ports.iter().map(|p| format!("{p}:{{}}")).collect();
    format!("EXPOSE map[{}]", inner.join(" "))
}

const SIGNALS: &[(&str, u32)] = &[
    ("ABRT", 6),
    ("ALRM", 14),
    ("BUS", 7),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("FPE", 8),
    ("HUP", 1),
    ("ILL", 4),
    ("INT", 2),
    ("IO", 29),
    ("IOT", 6),
    ("KILL", 9),
    ("PIPE", 13),
    ("POLL", 29),
    ("PROF", 27),
    ("PWR", 30),
    ("QUIT", 3),
    ("SEGV", 11),
    ("STKFLT", 16),
    ("STOP", 19),
    ("SYS", 31),
    ("TERM", 15),
    ("TRAP", 5),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("USR1", 10),
    ("USR2", 12),
    ("VTALRM", 26),
    ("WINCH", 28),
    ("XCPU", 24),
    ("XFSZ", 25),
];

/// Checks a STOPSIGNAL value as moby's `signal.ParseSignal` does: a number, or a name with or
/// without `SIG` (any case), or `RTMIN+n` / `RTMAX-n`.
pub fn check_signal(s: &str) -> Result<(), String> {
    let bad = || format!("Invalid signal: {s}");
    if let Ok(n) = s.parse::<u32>() {
        return if n == 0 || n > 64 { Err(bad()) } else { Ok(()) };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.iter().any(|(n, _)| *n == name) {
        return Ok(());
    }
    for (prefix, base) in [("RTMIN", 34i32), ("RTMAX", 64)] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let off: i32 = if rest.is_empty() { 0 } else { rest.parse().map_err(|_| bad())? };
            let n = base + off;
            if (34..=64).contains(&n) {
                return Ok(());
            }
        }
    }
    Err(bad())
}

/// Parses a `--chmod` value. BuildKit 0.13's Dockerfile frontend takes octal modes only.
pub fn parse_chmod(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!("invalid chmod parameter: '{s}'. it should be octal string and between 0 and 07777")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expose_specs() {
        assert_eq!(expose_ports("80").unwrap(), ["80/tcp"]);
        assert_eq!(expose_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(expose_ports("8000-8002").unwrap(), ["8000/tcp", "8001/tcp", "8002/tcp"]);
        assert!(expose_ports("80/icmp").is_err());
        assert!(expose_ports("x").is_err());
        assert!(expose_ports("90-80").is_err());
        let set: BTreeSet<String> = ["80/tcp".to_string(), "443/udp".to_string()].into();
        assert_eq!(expose_history(&set), "EXPOSE map[443/udp:{} 80/tcp:{}]");
    }

    #[test]
    fn signals() {
        for ok in ["SIGKILL", "kill", "9", "SIGRTMIN+3", "RTMAX-1", "SIGTERM"] {
            assert!(check_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["SIGFOO", "0", "99", "RTMIN+40", ""] {
            assert!(check_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chmod_octal_only() {
        assert_eq!(parse_chmod("0640"), Ok(0o640));
        assert_eq!(parse_chmod("755"), Ok(0o755));
        assert!(parse_chmod("u+x").is_err());
        assert!(parse_chmod("17777").is_err());
    }
}
