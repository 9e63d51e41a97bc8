//! AOB patterns (mcp-static's pattern module, as `find_pattern` and mcp-memory's AOB scan
//! take them): the text before the first NUL is the pattern, the rest the bytes searched.
//! Every match the anchored search reports must match, and none may be missed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_static::pattern::Pattern;

/// Matches asked for: enough to see a search continue past several.
const LIMIT: usize = 64;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (text, haystack) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(pattern) = Pattern::parse(text) else {
        return;
    };
    assert!(!pattern.is_empty());
    let found = pattern.find_all(haystack, LIMIT);
    let naive: Vec<usize> = (0..haystack.len())
        .filter(|&i| pattern.matches_at(haystack, i))
        .take(LIMIT)
        .collect();
    assert_eq!(found, naive, "anchored search and naive scan disagree");
});
