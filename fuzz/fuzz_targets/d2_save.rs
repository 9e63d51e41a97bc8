//! Diablo II character saves (`.d2s`, mcp-d2's save and bits modules) as `save_read` and
//! `save_diff` read them: header of every version, checksum, stats, skills, items, trailing
//! sections; then the answer's JSON, a diff, and a rewrite of what was read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_d2::save::{NewSave, diff_saves, parse_save, write_save};
use mcp_d2::tables::Tables;
use std::sync::OnceLock;

fn tables() -> Option<&'static Tables> {
    static TABLES: OnceLock<Option<Tables>> = OnceLock::new();
    TABLES.get_or_init(|| Tables::load().ok()).as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some(t) = tables() else {
        return;
    };
    let Ok(save) = parse_save(data, t) else {
        return;
    };
    let _ = serde_json::to_string(&save);
    let _ = diff_saves(&save, &save);
    if let Ok(spec) = NewSave::from_save(&save)
        && let Ok(bytes) = write_save(&spec, t)
    {
        // What the writer makes, the reader must read.
        if let Err(e) = parse_save(&bytes, t) {
            panic!("a rewritten save does not parse: {e}");
        }
    }
});
