//! Shared and personal stashes (mcp-d2's stash module): PlugY `.sss` / `.d2x` and ATMA
//! `.d2x`, as `stash_read` reads them, and the answer's JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_d2::stash::parse_stash;

fuzz_target!(|data: &[u8]| {
    if let Ok(stash) = parse_stash(data) {
        let _ = serde_json::to_string(&stash);
    }
});
