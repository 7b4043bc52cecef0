//! What the builder process and the sandbox helper say to each other.
//!
//! The helper's standard input is one end of a Unix socket pair. The parent writes one JSON
//! [`HelperRequest`] and shuts its side for writing; the helper (and, until it execs, the
//! sandbox's pid 1) answer with newline-separated JSON [`Report`]s. The socket is
//! close-on-exec inside the sandbox, so the sandboxed process never sees it, and its output
//! stays on the separate stdout/stderr pipes, never mixed with reports.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::launch::ExitStatus;
use crate::spec::SandboxSpec;

/// Everything the helper needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelperRequest {
    pub spec: SandboxSpec,
    /// An empty directory (removed by the parent afterwards) on which the helper mounts a
    /// private tmpfs holding the rootfs mount point `root/`, an empty directory `empty/`, and
    /// staging mount points `mnt/N`.
    pub scratch: PathBuf,
}

/// One message from the sandbox side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Report {
    /// Setup failed; the process never ran.
    Error(String),
    /// Something went wrong that does not fail the run (a stub left behind).
    Warning(String),
    /// How the sandbox's process ended.
    Exit(ExitStatus),
}

impl Report {
    /// The wire form: one JSON line.
    pub fn to_line(&self) -> Vec<u8> {
        // Serializing these plain enums cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| b"{\"error\":\"unserializable report\"}".to_vec());
        line.push(b'\n');
        line
    }

    /// Parses every complete line; unparsable lines become errors rather than being dropped.
    pub fn parse_all(bytes: &[u8]) -> Vec<Report> {
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_slice(l).unwrap_or_else(|e| {
                    Report::Error(format!("garbled report from the sandbox ({e}): {}", String::from_utf8_lossy(l)))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_as_lines() {
        let reports = [
            Report::Error("boom".into()),
            Report::Warning("w".into()),
            Report::Exit(ExitStatus::Code(3)),
            Report::Exit(ExitStatus::Signal(9)),
        ];
        let wire: Vec<u8> = reports.iter().flat_map(Report::to_line).collect();
        assert_eq!(Report::parse_all(&wire), reports);
    }

    #[test]
    fn garbage_becomes_an_error() {
        let got = Report::parse_all(b"{\"exit\":{\"code\":1}}\nnot json\n");
        assert_eq!(got[0], Report::Exit(ExitStatus::Code(1)));
        assert!(matches!(&got[1], Report::Error(m) if m.contains("not json")));
    }
}
