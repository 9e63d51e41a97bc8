//! Address expressions: mcp-common's `Address` (numbers, `0x..`, `..h`, as JSON numbers or
//! strings) and mcp-memory's `Location` (`Module.dll+0x1234`). What a location prints must
//! parse back to the same location (errors and answers print them; agents paste them back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_common::Address;
use mcp_memory::modules::Location;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Address>(data);
    let _ = serde_json::from_slice::<Location>(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(a) = Address::parse(text) {
        assert_eq!(Address::parse(&a.to_string()), Some(a));
    }
    if let Some(loc) = Location::parse(text) {
        let shown = loc.to_string();
        assert_eq!(Location::parse(&shown), Some(loc), "printed as {shown:?}");
    }
});
