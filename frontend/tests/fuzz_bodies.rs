//! The fuzz targets' bodies (`strata_frontend::fuzzing`) on the stable toolchain, in CI: property
//! tests over Dockerfile-shaped and arbitrary inputs, a fixed-time random smoke run, and a hang
//! guard — pathological inputs (deep nesting, huge lines, many heredocs, many stages) that must
//! each finish well within a time limit.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use strata_frontend::fuzzing;

/// Pieces that, strung together, reach the parser's, the lexer's and the checks' special cases.
const PIECES: &[&str] = &[
    "FROM ",
    "from ",
    "FROM scratch AS b\n",
    "FROM --platform=$TARGETPLATFORM x AS y\n",
    "RUN ",
    "CMD ",
    "ENTRYPOINT ",
    "COPY ",
    "ADD ",
    "COPY --from=b ",
    "--chown=",
    "--chmod=755 ",
    "ENV ",
    "LABEL ",
    "ARG ",
    "ONBUILD ",
    "EXPOSE ",
    "WORKDIR ",
    "USER ",
    "VOLUME ",
    "SHELL ",
    "HEALTHCHECK CMD ",
    "STOPSIGNAL ",
    "MAINTAINER ",
    "# check=",
    "# escape=`\n",
    "skip=all;error=true",
    "experimental=all",
    "<<EOF",
    "<<-EOF",
    "EOF",
    "\tEOF",
    "$",
    "${",
    "${A:-",
    "${A:?x}",
    "${A/",
    "}",
    "$A",
    "$EMPTY",
    "'",
    "\"",
    "\\",
    "`",
    "[",
    "]",
    "[\"a\"]",
    "=",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\\\n",
    "a",
    "/x",
    ".",
    "..",
    "*",
    "80/TcP",
    "1.2.3.4:80:80",
    "é",
    "\u{feff}",
    "\0",
];

fn assemble(idx: &[usize]) -> String {
    idx.iter().map(|i| PIECES[i % PIECES.len()]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn dockerfile_shaped_inputs(idx in prop::collection::vec(0usize..1000, 0..60)) {
        fuzzing::dockerfile(assemble(&idx).as_bytes());
    }

    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..300)) {
        fuzzing::dockerfile(&data);
        fuzzing::expand(&data);
    }

    #[test]
    fn words_for_the_expander(flags in any::<u8>(), idx in prop::collection::vec(0usize..1000, 0..40)) {
        let mut data = vec![flags];
        data.extend_from_slice(assemble(&idx).as_bytes());
        fuzzing::expand(&data);
    }
}

/// xorshift64*: a fixed-seed source of inputs, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Random inputs for a fixed time (a smoke run of what `cargo fuzz` does for hours).
#[test]
fn fixed_time_smoke_run() {
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let len = (rng.next() % 48) as usize;
        let idx: Vec<usize> = (0..len).map(|_| rng.next() as usize).collect();
        let mut text = assemble(&idx).into_bytes();
        // Now and then, damage a byte.
        if rng.next().is_multiple_of(4) && !text.is_empty() {
            let at = (rng.next() as usize) % text.len();
            text[at] = rng.next() as u8;
        }
        fuzzing::dockerfile(&text);
        fuzzing::expand(&text);
        runs += 1;
    }
    assert!(runs > 100, "only {runs} inputs in the time box");
}

/// Runs `f` on another thread; fails if it panics or takes longer than `limit`.
fn within(name: &str, limit: Duration, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            f();
            let _ = tx.send(());
        })
        .expect("thread");
    match rx.recv_timeout(limit) {
        Ok(()) => eprintln!("{name}: {:?}", start.elapsed()),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: no result after {limit:?}: the frontend hangs"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{name}: panicked after {:?}", start.elapsed()),
    }
}

#[test]
fn hang_guard_pathological_inputs() {
    // Each finishes in milliseconds in a release build; the limit leaves room for a loaded,
    // unoptimized CI run while still catching anything quadratic on these sizes.
    let limit = Duration::from_secs(20);
    let deep = 20_000;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("nested ${:-} in a word", format!("\0{}x{}", "${A:-".repeat(deep), "}".repeat(deep)).into_bytes()),
        (
            "nested ${:-} in FROM and ENV",
            format!("FROM {}x{}\nENV A={}y\n", "${B:-".repeat(deep), "}".repeat(deep), "${A:+".repeat(deep))
                .into_bytes(),
        ),
        ("unclosed ${ many times", format!("\0{}", "${".repeat(50_000)).into_bytes()),
        ("many dollars", format!("FROM scratch\nCOPY {} /\n", "$".repeat(60_000)).into_bytes()),
        ("longest allowed line", format!("FROM scratch\nRUN {}\n", "a ".repeat(32_765)).into_bytes()),
        ("line over the limit", format!("FROM scratch\nRUN {}\n", "a".repeat(200_000)).into_bytes()),
        ("many heredocs on one line", {
            let n = 3_000;
            let heads: String = (0..n).map(|i| format!("<<E{i} ")).collect();
            let bodies: String = (0..n).map(|i| format!("body {i}\nE{i}\n")).collect();
            format!("FROM scratch\nRUN cat {heads}\n{bodies}").into_bytes()
        }),
        (
            "an unterminated heredoc at the top",
            format!("FROM scratch\nRUN <<EOF\n{}", "line\n".repeat(100_000)).into_bytes(),
        ),
        ("many continuation lines", format!("FROM scratch\nRUN a \\\n{}b\n", "  c \\\n".repeat(100_000)).into_bytes()),
        ("many empty continuation lines", format!("FROM scratch\nRUN a \\\n{}b\n", "\n".repeat(100_000)).into_bytes()),
        ("many instructions", format!("FROM scratch\nENV A=1\n{}", "RUN echo $A\n".repeat(20_000)).into_bytes()),
        // Each value is the previous one plus a bit: the image's history alone grows
        // quadratically, so this stays at a size BuildKit would handle too.
        ("a chain of ENV values", format!("FROM scratch\n{}", "ENV A=$A:x\n".repeat(2_000)).into_bytes()),
        ("many distinct variables", {
            let envs: String = (0..5_000).map(|i| format!("ENV V{i}=x\n")).collect();
            format!("FROM scratch\n{envs}COPY $V4999 $NOPE /\n").into_bytes()
        }),
        ("many stages", {
            let mut s = String::from("FROM scratch AS s0\n");
            for i in 1..2_000 {
                s.push_str(&format!("FROM s{} AS s{i}\nCOPY --from=s{} / /\n", i - 1, i / 2));
            }
            s.into_bytes()
        }),
        ("a long JSON array", format!("FROM scratch\nCMD [{}\"x\"]\n", "\"a\",".repeat(30_000)).into_bytes()),
        ("many ARGs and variables", {
            let args: String = (0..3_000usize).map(|i| format!("ARG V{i}=$V{}\n", i.saturating_sub(1))).collect();
            format!("{args}FROM scratch\n{args}COPY {} /\n", (0..3_000).map(|i| format!("$V{i}")).collect::<String>())
                .into_bytes()
        }),
        ("a port range", b"FROM scratch\nEXPOSE 1-65535/udp 1-65535\n".to_vec()),
        ("many quotes", format!("FROM scratch\nENV A={}\n", "'\"".repeat(50_000)).into_bytes()),
    ];
    for (name, input) in cases {
        let copy = input.clone();
        within(name, limit, move || {
            fuzzing::dockerfile(&copy);
            fuzzing::expand(&copy);
        });
    }
}
