//! `sandbox-runner-stage`: the inside stages ([`sandbox_runner::inside`]) as an executable of
//! their own, which the runner starts once per sandbox. It links only what the stages use
//! (0.75 MB of code, 1k relocations, no libseccomp), so starting it costs 0.84 ms of CPU here
//! against 0.60 for `/bin/true` and 1.38 for the whole runner (8 MB of code, 10k relocations,
//! 100 more page faults, clap) that ran the stages before.
//!
//! `no_main`: std's start-up is skipped as well (a stack-guard probe reading /proc/self/maps,
//! the overflow handler, SIGPIPE ignored); the stages need none of it.
#![no_main]

/// The C entry point: `sandbox-runner-stage __stage1 SYNC_FD RUNNER_PID CONFIG`, as the
/// runner passes it ([`sandbox_runner::inside::stage_args`]).
#[unsafe(no_mangle)]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    sandbox_runner::inside::stage_main()
}
