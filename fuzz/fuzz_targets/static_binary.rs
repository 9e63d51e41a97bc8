//! PE / ELF / Mach-O bytes -> `Binary` (mcp-static's formats module, as `binary_info` and every
//! other tool loads a file), then the queries that walk its tables: sections, exports,
//! imports, strings, functions, a disassembly page, a pattern search and address conversion.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_static::Binary;
use mcp_static::pattern::Pattern;
use mcp_static::queries::{self, AddressForm, StringKinds, StringQuery};

fuzz_target!(|data: &[u8]| {
    let Ok(bin) = Binary::parse(data.to_vec()) else {
        return;
    };
    let _ = queries::binary_info(&bin);
    let filter = Some("a".to_string());
    for f in [&None, &filter] {
        let _ = queries::exports(&bin, f, 0, 100);
        let _ = queries::imports(&bin, f, 0, 100);
        let _ = queries::functions(&bin, f, 0, 100);
    }
    let first = bin.sections.first().map(|s| s.name.clone());
    for section in [None, first] {
        let all = StringQuery {
            min_length: 4,
            kinds: StringKinds::Both,
            section: &section,
            contains: &None,
        };
        let _ = queries::strings(&bin, &all, 0, 100);
        let some = StringQuery {
            min_length: 2,
            kinds: StringKinds::Ascii,
            section: &section,
            contains: &filter,
        };
        let _ = queries::strings(&bin, &some, 0, 100);
        if let Ok(p) = Pattern::parse("55 8B EC ??") {
            let _ = queries::find_pattern(&bin, &p, &section, 100);
        }
    }
    if let Some(entry) = bin.entry_point {
        let _ = queries::disassemble(&bin, entry, 50, 40_000);
        let _ = queries::convert(&bin, AddressForm::Va(entry), None);
        let _ = queries::make_signature(&bin, entry);
    }
    for s in bin.sections.iter().take(4) {
        let _ = queries::disassemble(&bin, s.va, 20, 40_000);
        let _ = queries::convert(&bin, AddressForm::Va(s.va), Some(0x1000_0000));
        let _ = queries::convert(&bin, AddressForm::FileOffset(s.file_offset), None);
    }
    let _ = queries::convert(&bin, AddressForm::Rva(0x1000), None);
});
