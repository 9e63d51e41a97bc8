//! Coordinator configurations (mcp-coordinator's config module): TOML (first byte even) or
//! Claude Desktop JSON (odd), with `${VAR}` expansion, prefix and cache checks; then the
//! per-tool questions a config answers (allow/deny and cache globs, timeouts).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_coordinator::config::{Config, expand_env, glob};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = expand_env(text);
    // The text's two halves as a glob and a name: globs must stay linear.
    let half = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(0, |(i, _)| i);
    let _ = glob(&text[..half], &text[half..]);
    let parsed = if mode & 1 == 0 {
        Config::from_toml(text)
    } else {
        Config::from_json(text)
    };
    let Ok(config) = parsed else {
        return;
    };
    for c in &config.children {
        for tool in ["binary_info", "read_memory", "capture_start", "character"] {
            let _ = c.exposes(tool);
            let _ = c.timeout_for(tool);
            let _ = c.cache_ttl_for(tool);
        }
    }
    let names: Vec<String> = config.children.iter().map(|c| c.name.clone()).collect();
    let _ = config.only(&names);
});
