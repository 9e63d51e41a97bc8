//! Structure layouts (mcp-memory's layout module): a layout file as `--layouts DIR` loads it
//! (first byte even), or inline fields as `read_struct` takes them (odd), then the checks a
//! layout passes before any memory is read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_memory::layout::{self, Field, Layouts};
use std::sync::OnceLock;

/// How deep `read_struct` may follow pointers (its argument's largest value).
const DEPTH: usize = 4;

fn built_in() -> Option<&'static Layouts> {
    static LAYOUTS: OnceLock<Option<Layouts>> = OnceLock::new();
    LAYOUTS.get_or_init(|| Layouts::load(None).ok()).as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some(base) = built_in() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if mode & 1 == 0 {
        let mut layouts = base.clone();
        if layouts.add("fuzz.json", text).is_err() {
            return;
        }
        for name in layouts.names() {
            if let Some(fields) = layouts.get(name) {
                let _ = layout::validate(&layouts, fields, DEPTH);
            }
        }
    } else if let Ok(fields) = serde_json::from_str::<Vec<Field>>(text) {
        let _ = layout::validate(base, &fields, DEPTH);
        let _ = serde_json::to_string(&fields);
    }
});
