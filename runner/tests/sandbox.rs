fn main() {
    strata_runner::maybe_run_sandbox();
}
