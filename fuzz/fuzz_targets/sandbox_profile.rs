//! Sandbox profiles (sandbox-runner's profile module): TOML text as `--profile FILE` and
//! `launch` read it, checked against libseccomp's syscall names and the syscall sets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox_runner::profile::Profile;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Profile::parse("fuzz", text);
    }
});
