//! Build progress: what a user or a CI log sees while a build runs.
//!
//! Steps report events to a [`Progress`] sink; the sink decides the rendering:
//! - [`PlainProgress`]: BuildKit's `--progress=plain` log (`#3 [build 2/4] RUN make`,
//!   `#3 0.512 output line`, `#3 DONE 1.2s`, `#3 CACHED`, `#3 ERROR: ...`), one vertex number
//!   per step in the order steps start, timestamps relative to the step's start;
//! - [`JsonProgress`]: one JSON object per event and line, for CI tools;
//! - [`TtyProgress`]: an indicatif multi-bar, one line per running step with its last output
//!   line and elapsed time.
//!
//! Sinks are shared by concurrently running steps, so they take `&self` and lock inside.

use std::io::{self, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Identifies a step to the progress sink.
pub type StepId = usize;

/// What happened to a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// A step began; `name` is its display name (`[build 2/4] RUN make`).
    Started { name: &'a str },
    /// The step's result came from the cache.
    Cached,
    /// A chunk of the step's output (stdout and stderr interleaved as they arrive).
    Output { data: &'a [u8] },
    /// A progress note of the step itself (`pulling sha256:… 3.1MB`).
    Status { text: &'a str },
    /// The step finished successfully.
    Done { elapsed: Duration },
    /// The step failed.
    Failed { error: &'a str, elapsed: Duration },
}

/// A sink for progress events.
pub trait Progress: Send + Sync {
    fn event(&self, step: StepId, event: Event<'_>);
    /// A line not tied to a step (warnings, the final image digest).
    fn message(&self, text: &str);
}

/// Discards everything (library use, tests).
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: StepId, _: Event<'_>) {}
    fn message(&self, _: &str) {}
}

struct PlainState<W> {
    out: W,
    /// Vertex number per step id, assigned when the step starts.
    numbers: Vec<Option<usize>>,
    names: Vec<String>,
    starts: Vec<Option<Instant>>,
    next: usize,
    /// The step that printed last: BuildKit repeats a step's header when output interleaves.
    last: Option<StepId>,
    /// Partial output lines per step, printed once complete.
    partial: Vec<Vec<u8>>,
}

/// BuildKit's plain progress format.
pub struct PlainProgress<W: Write + Send> {
    state: Mutex<PlainState<W>>,
}

impl<W: Write + Send> PlainProgress<W> {
    pub fn new(out: W) -> PlainProgress<W> {
        PlainProgress {
            state: Mutex::new(PlainState {
                out,
                numbers: Vec::new(),
                names: Vec::new(),
                starts: Vec::new(),
                next: 1,
                last: None,
                partial: Vec::new(),
            }),
        }
    }

    /// The writer back (tests).
    pub fn into_inner(self) -> W {
        match self.state.into_inner() {
            Ok(s) => s.out,
            Err(poisoned) => poisoned.into_inner().out,
        }
    }
}

impl<W: Write> PlainState<W> {
    fn slot(&mut self, step: StepId) {
        if self.numbers.len() <= step {
            self.numbers.resize(step + 1, None);
            self.names.resize(step + 1, String::new());
            self.starts.resize(step + 1, None);
            self.partial.resize(step + 1, Vec::new());
        }
    }

    fn header_if_switched(&mut self, step: StepId) -> io::Result<()> {
        if self.last != Some(step) {
            if let Some(n) = self.numbers[step] {
                let name = self.names[step].clone();
                writeln!(self.out, "\n#{n} {name}")?;
            }
            self.last = Some(step);
        }
        Ok(())
    }

    fn write_line(&mut self, step: StepId, line: &[u8]) -> io::Result<()> {
        let n = self.numbers[step].unwrap_or(0);
        let t = self.starts[step].map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
        self.header_if_switched(step)?;
        write!(self.out, "#{n} {t:.3} ")?;
        self.out.write_all(line)?;
        writeln!(self.out)
    }

    fn handle(&mut self, step: StepId, event: Event<'_>) -> io::Result<()> {
        self.slot(step);
        match event {
            Event::Started { name } => {
                let n = self.next;
                self.next += 1;
                self.numbers[step] = Some(n);
                self.names[step] = name.to_string();
                self.starts[step] = Some(Instant::now());
                writeln!(self.out, "\n#{n} {name}")?;
                self.last = Some(step);
            }
            Event::Cached => {
                let n = self.numbers[step].unwrap_or(0);
                self.header_if_switched(step)?;
                writeln!(self.out, "#{n} CACHED")?;
            }
            Event::Output { data } => {
                let mut buf = std::mem::take(&mut self.partial[step]);
                buf.extend_from_slice(data);
                let mut start = 0;
                while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
                    let line = buf[start..start + pos].to_vec();
                    self.write_line(step, &line)?;
                    start += pos + 1;
                }
                self.partial[step] = buf[start..].to_vec();
            }
            Event::Status { text } => {
                let n = self.numbers[step].unwrap_or(0);
                self.header_if_switched(step)?;
                writeln!(self.out, "#{n} {text}")?;
            }
            Event::Done { elapsed } => {
                self.flush_partial(step)?;
                let n = self.numbers[step].unwrap_or(0);
                self.header_if_switched(step)?;
                writeln!(self.out, "#{n} DONE {:.1}s", elapsed.as_secs_f64())?;
            }
            Event::Failed { error, elapsed } => {
                self.flush_partial(step)?;
                let n = self.numbers[step].unwrap_or(0);
                self.header_if_switched(step)?;
                writeln!(self.out, "#{n} ERROR: {error}")?;
                let _ = elapsed;
            }
        }
        self.out.flush()
    }

    fn flush_partial(&mut self, step: StepId) -> io::Result<()> {
        let rest = std::mem::take(&mut self.partial[step]);
        if !rest.is_empty() {
            self.write_line(step, &rest)?;
        }
        Ok(())
    }
}

impl<W: Write + Send> Progress for PlainProgress<W> {
    fn event(&self, step: StepId, event: Event<'_>) {
        if let Ok(mut s) = self.state.lock() {
            // Progress output failing (a closed pipe) must not fail the build.
            let _ = s.handle(step, event);
        }
    }

    fn message(&self, text: &str) {
        if let Ok(mut s) = self.state.lock() {
            let _ = writeln!(s.out, "{text}");
            s.last = None;
        }
    }
}

/// One JSON object per line: `{"step":3,"event":"started","name":"..."}`.
pub struct JsonProgress<W: Write + Send> {
    out: Mutex<W>,
    start: Instant,
}

impl<W: Write + Send> JsonProgress<W> {
    pub fn new(out: W) -> JsonProgress<W> {
        JsonProgress { out: Mutex::new(out), start: Instant::now() }
    }
}

impl<W: Write + Send> Progress for JsonProgress<W> {
    fn event(&self, step: StepId, event: Event<'_>) {
        let t = self.start.elapsed().as_secs_f64();
        let v = match event {
            Event::Started { name } => serde_json::json!({"time": t, "step": step, "event": "started", "name": name}),
            Event::Cached => serde_json::json!({"time": t, "step": step, "event": "cached"}),
            Event::Output { data } => {
                serde_json::json!({"time": t, "step": step, "event": "output", "data": String::from_utf8_lossy(data)})
            }
            Event::Status { text } => serde_json::json!({"time": t, "step": step, "event": "status", "text": text}),
            Event::Done { elapsed } => {
                serde_json::json!({"time": t, "step": step, "event": "done", "elapsed": elapsed.as_secs_f64()})
            }
            Event::Failed { error, elapsed } => serde_json::json!({
                "time": t, "step": step, "event": "error", "error": error, "elapsed": elapsed.as_secs_f64()
            }),
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{v}");
        }
    }

    fn message(&self, text: &str) {
        let v = serde_json::json!({"time": self.start.elapsed().as_secs_f64(), "event": "message", "text": text});
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{v}");
        }
    }
}

/// An interactive display: one bar per running step with its last output line.
pub struct TtyProgress {
    bars: indicatif::MultiProgress,
    state: Mutex<Vec<Option<(indicatif::ProgressBar, String)>>>,
}

impl Default for TtyProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl TtyProgress {
    pub fn new() -> TtyProgress {
        TtyProgress { bars: indicatif::MultiProgress::new(), state: Mutex::new(Vec::new()) }
    }
}

impl Progress for TtyProgress {
    fn event(&self, step: StepId, event: Event<'_>) {
        let Ok(mut state) = self.state.lock() else { return };
        if state.len() <= step {
            state.resize_with(step + 1, || None);
        }
        match event {
            Event::Started { name } => {
                let bar = self.bars.add(indicatif::ProgressBar::new_spinner());
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {prefix} {elapsed:>4} {wide_msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar.set_prefix(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                state[step] = Some((bar, name.to_string()));
            }
            Event::Output { data } => {
                if let Some((bar, _)) = &state[step] {
                    let text = String::from_utf8_lossy(data);
                    if let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) {
                        bar.set_message(line.trim().to_string());
                    }
                }
            }
            Event::Status { text } => {
                if let Some((bar, _)) = &state[step] {
                    bar.set_message(text.to_string());
                }
            }
            Event::Cached | Event::Done { .. } | Event::Failed { .. } => {
                if let Some((bar, name)) = state[step].take() {
                    let end = match event {
                        Event::Cached => "CACHED".to_string(),
                        Event::Done { elapsed } => format!("DONE {:.1}s", elapsed.as_secs_f64()),
                        Event::Failed { error, .. } => format!("ERROR: {error}"),
                        _ => String::new(),
                    };
                    bar.finish_and_clear();
                    let _ = self.bars.println(format!("{name} {end}"));
                }
            }
        }
    }

    fn message(&self, text: &str) {
        let _ = self.bars.println(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_output_looks_like_buildkit() {
        let p = PlainProgress::new(Vec::new());
        p.event(4, Event::Started { name: "[a 1/1] RUN seq 3" });
        p.event(4, Event::Output { data: b"1\n2" });
        p.event(7, Event::Started { name: "[b 1/1] RUN true" });
        p.event(7, Event::Cached);
        p.event(4, Event::Output { data: b"\n3\n" });
        p.event(4, Event::Done { elapsed: Duration::from_millis(1250) });
        p.message("done");
        let out = String::from_utf8(p.into_inner()).unwrap();
        let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines[0], "#1 [a 1/1] RUN seq 3");
        assert!(lines[1].starts_with("#1 0.") && lines[1].ends_with(" 1"), "{out}");
        assert_eq!(lines[2], "#2 [b 1/1] RUN true");
        assert_eq!(lines[3], "#2 CACHED");
        assert_eq!(lines[4], "#1 [a 1/1] RUN seq 3", "header repeated when steps interleave");
        assert!(lines[5].ends_with(" 2") && lines[6].ends_with(" 3"));
        assert_eq!(lines[7], "#1 DONE 1.2s");
        assert_eq!(lines[8], "done");
    }

    #[test]
    fn json_output_is_one_object_per_line() {
        let buf: Vec<u8> = Vec::new();
        let p = JsonProgress::new(buf);
        p.event(1, Event::Started { name: "x" });
        p.event(1, Event::Output { data: b"hi\n" });
        p.event(1, Event::Failed { error: "boom", elapsed: Duration::from_secs(1) });
        let out = String::from_utf8(p.out.into_inner().unwrap()).unwrap();
        let events: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0]["event"], "started");
        assert_eq!(events[1]["data"], "hi\n");
        assert_eq!(events[2]["error"], "boom");
    }
}
