//! Loaded images of a process (ELF shared objects, and the PE .exe/.dll files Wine maps)
//! and module-relative addresses such as `D2Client.dll+0x11BBFC`.

use crate::procfs::Region;
use crate::reader::ProcessMemory;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use suite_core::{Address, ToolError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    Elf,
    Pe,
}

impl ModuleKind {
    pub fn name(self) -> &'static str {
        match self {
            ModuleKind::Elf => "elf",
            ModuleKind::Pe => "pe",
        }
    }
}

/// One image in memory: `[base, base + size)`.
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub path: String,
    pub base: u64,
    pub size: u64,
    pub kind: ModuleKind,
    /// For PE images: whether the optional header is PE32 (32-bit code).
    pub pe32: bool,
    /// Width of the image's addresses: 32 for PE32 and ELFCLASS32 images, else 64. An
    /// offset into it must stay within that width.
    pub bits: u32,
}

impl Module {
    pub fn contains(&self, addr: u64) -> bool {
        self.base <= addr && addr - self.base < self.size
    }
}

pub use suite_core::address::{checked_add, checked_add_signed, overflow, top};

/// `base + offset` (offset signed) as an error text shows it: `0x1000 + 0x8`, `0x1000 - 0x8`.
pub fn sum_text(base: u64, offset: i64) -> String {
    if offset < 0 {
        format!("{} - {}", Address(base), Address(offset.unsigned_abs()))
    } else {
        format!("{} + {}", Address(base), Address(offset as u64))
    }
}

/// Checks that `len` bytes at `addr` (argument `field`; `what` names where the length comes
/// from, e.g. "length") end (exclusive) within a `bits`-bit address space.
pub fn check_span(
    field: &str,
    addr: u64,
    len: u64,
    what: &str,
    bits: u32,
) -> Result<(), ToolError> {
    if checked_add(addr, len, bits).is_some() {
        return Ok(());
    }
    Err(overflow(
        field,
        Address(addr),
        &format!("{} + {} bytes ({what})", Address(addr), Address(len)),
        bits,
        match top(bits).checked_sub(len) {
            Some(max) => format!("an address at most {} for {len} bytes", Address(max)),
            None => format!("none: {len} bytes do not fit in {bits} bits"),
        },
    ))
}

/// Finds the images in a memory map. An image starts at a file's offset-0 mapping whose
/// first bytes are `MZ` or `\x7fELF`; a PE's size is its `SizeOfImage`, an ELF's runs to
/// the end of its last mapping plus the anonymous `.bss` right after it.
pub fn modules(mem: &ProcessMemory, regions: &[Region]) -> Vec<Module> {
    let mut out: Vec<Module> = Vec::new();
    for (i, r) in regions.iter().enumerate() {
        let Some(path) = r.path.as_deref() else {
            continue;
        };
        if !path.starts_with('/') || r.offset != 0 || !r.readable {
            continue;
        }
        let mut head = [0u8; 0x200];
        let Ok(n) = mem.read_some(r.start, &mut head) else {
            continue;
        };
        let head = &head[..n];
        let name = path
            .trim_end_matches(" (deleted)")
            .rsplit('/')
            .next()
            .unwrap_or(path)
            .to_string();
        if head.starts_with(b"MZ") {
            let (size, pe32) = pe_image_size(head).unwrap_or((r.len(), false));
            out.push(Module {
                name,
                path: path.to_string(),
                base: r.start,
                size,
                kind: ModuleKind::Pe,
                pe32,
                bits: if pe32 { 32 } else { 64 },
            });
        } else if head.starts_with(b"\x7fELF") {
            let mut end = r.end;
            let mut last = i;
            for (j, s) in regions.iter().enumerate().skip(i + 1) {
                if s.path.as_deref() == Some(path) && s.offset != 0 {
                    end = s.end;
                    last = j;
                } else if s.path.as_deref() == Some(path) {
                    break;
                }
            }
            if let Some(bss) = regions.get(last + 1)
                && bss.path.is_none()
                && bss.start == end
                && bss.writable
            {
                end = bss.end;
            }
            out.push(Module {
                name,
                path: path.to_string(),
                base: r.start,
                size: end - r.start,
                kind: ModuleKind::Elf,
                pe32: false,
                // e_ident[EI_CLASS]: 1 is ELFCLASS32.
                bits: if head.get(4) == Some(&1) { 32 } else { 64 },
            });
        }
    }
    out
}

/// `SizeOfImage` and whether the image is PE32, from the headers at the start of the image.
fn pe_image_size(head: &[u8]) -> Option<(u64, bool)> {
    let rd32 = |o: usize| -> Option<u32> {
        Some(u32::from_le_bytes(head.get(o..o + 4)?.try_into().ok()?))
    };
    let pe = rd32(0x3C)? as usize;
    if head.get(pe..pe + 4)? != b"PE\0\0" {
        return None;
    }
    let opt = pe + 24;
    let magic = u16::from_le_bytes(head.get(opt..opt + 2)?.try_into().ok()?);
    let size = rd32(opt + 56)? as u64;
    (size > 0).then_some((size, magic == 0x10b))
}

/// Finds a module by file name, case-insensitively (`d2client.dll` finds `D2Client.dll`).
pub fn find<'a>(mods: &'a [Module], name: &str) -> Option<&'a Module> {
    mods.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

/// Error for a module that is not loaded, listing a few that are.
pub fn not_loaded(field: &str, name: &str, mods: &[Module]) -> ToolError {
    let mut names: Vec<&str> = mods.iter().map(|m| m.name.as_str()).collect();
    names.dedup();
    let shown: Vec<&str> = names.iter().take(12).copied().collect();
    ToolError::invalid(
        field,
        format!("{name:?}"),
        format!(
            "no module of that name is loaded; loaded: {}{}",
            shown.join(", "),
            if names.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        ),
    )
}

/// Names `addr` as `module+0xOFFSET` when it falls inside a module.
pub fn describe(mods: &[Module], addr: u64) -> Option<String> {
    mods.iter()
        .find(|m| m.contains(addr))
        .map(|m| format!("{}+0x{:X}", m.name, addr - m.base))
}

/// An address as tools accept it: a number, a hex string, or `Module.dll+0x1234`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Absolute(u64),
    InModule { module: String, offset: u64 },
}

impl Location {
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        if let Some(a) = suite_core::Address::parse(t) {
            return Some(Location::Absolute(a.0));
        }
        let (module, offset) = match t.rsplit_once('+') {
            Some((m, o)) => (m.trim(), suite_core::Address::parse(o.trim())?.0),
            None => (t, 0),
        };
        if module.is_empty() {
            return None;
        }
        Some(Location::InModule {
            module: module.to_string(),
            offset,
        })
    }

    /// The absolute address; `field` names the argument in errors. A module offset whose
    /// sum with the base leaves the module's address width (64 bits, 32 for a 32-bit image)
    /// is refused, never wrapped.
    pub fn resolve(&self, field: &str, mods: &[Module]) -> Result<u64, ToolError> {
        match self {
            Location::Absolute(a) => Ok(*a),
            Location::InModule { module, offset } => {
                let m = find(mods, module).ok_or_else(|| not_loaded(field, module, mods))?;
                checked_add(m.base, *offset, m.bits).ok_or_else(|| {
                    overflow(
                        field,
                        format!("{self}"),
                        &format!("{} base {} + {}", m.name, Address(m.base), Address(*offset)),
                        m.bits,
                        format!(
                            "an offset at most {} (the module is {} bytes)",
                            Address(top(m.bits).saturating_sub(m.base)),
                            Address(m.size)
                        ),
                    )
                })
            }
        }
    }

    pub fn needs_modules(&self) -> bool {
        matches!(self, Location::InModule { .. })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Absolute(a) => write!(f, "0x{a:X}"),
            Location::InModule { module, offset } => write!(f, "{module}+0x{offset:X}"),
        }
    }
}

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected an address: an integer, \"0x6FAB0000\" or \"Module.dll+0x1234\"",
            )
        })? {
            Raw::Num(n) => Ok(Location::Absolute(n)),
            Raw::Text(t) => Location::parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{}` is not an address (accepted: an integer, \"0x6FAB0000\" or \
                     \"Module.dll+0x1234\")",
                    suite_core::error::quoted(&t)
                ))
            }),
        }
    }
}

impl JsonSchema for Location {
    fn schema_name() -> Cow<'static, str> {
        "Location".into()
    }

    // Inlined: one short schema per argument costs fewer tokens than a shared definition.
    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // `minimum` bounds only the integer form: the argument check then refuses a negative
        // one naming the argument (the deserialiser's error cannot name it).
        json_schema!({
            "description": "Number, hex or Module.dll+0x10",
            "type": ["integer", "string"],
            "minimum": 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(Location::parse("0x10"), Some(Location::Absolute(16)));
        assert_eq!(Location::parse("42"), Some(Location::Absolute(42)));
        assert_eq!(
            Location::parse("D2Client.dll+0x11BBFC"),
            Some(Location::InModule {
                module: "D2Client.dll".into(),
                offset: 0x11BBFC
            })
        );
        assert_eq!(
            Location::parse("libc.so.6"),
            Some(Location::InModule {
                module: "libc.so.6".into(),
                offset: 0
            })
        );
        assert_eq!(Location::parse("x.dll+zz"), None);
        assert_eq!(Location::parse("+0x10"), None);
    }

    fn module(name: &str, base: u64, size: u64, bits: u32) -> Module {
        Module {
            name: name.into(),
            path: format!("/x/{name}"),
            base,
            size,
            kind: ModuleKind::Pe,
            pe32: bits == 32,
            bits,
        }
    }

    #[test]
    fn module_offsets_that_overflow_are_refused() -> Result<(), String> {
        let mods = [
            module("Game.dll", 0x7FF6_0000_0000, 0x10000, 64),
            module("D2Client.dll", 0x6FAB_0000, 0x10000, 32),
        ];
        let ok = Location::parse("game.dll+0x1234").ok_or("parse")?;
        assert_eq!(ok.resolve("address", &mods).ok(), Some(0x7FF6_0000_1234));

        let wraps = Location::parse("Game.dll+0xFFFFFFFFFFFFFFFF").ok_or("parse")?;
        let e = wraps
            .resolve("base", &mods)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("`base`"), "{e}");
        assert!(e.contains("Game.dll+0xFFFFFFFFFFFFFFFF"), "{e}");
        assert!(
            e.contains("Game.dll base 0x7FF600000000 + 0xFFFFFFFFFFFFFFFF overflows 64 bits"),
            "{e}"
        );
        assert!(e.contains("an offset at most 0xFFFF8009FFFFFFFF"), "{e}");

        // A 32-bit image: the sum must stay below 4 GiB.
        let past = Location::parse("D2Client.dll+0x90550000").ok_or("parse")?;
        let e = past
            .resolve("target", &mods)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("`target`") && e.contains("overflows 32 bits"),
            "{e}"
        );
        assert!(e.contains("an offset at most 0x9054FFFF"), "{e}");
        Ok(())
    }

    #[test]
    fn spans_and_signed_sums_stay_in_range() {
        assert!(check_span("address", u64::MAX - 0x10, 0x10, "length", 64).is_ok());
        let e = check_span("address", u64::MAX - 0x10, 0x11, "length", 64)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("`address`"), "{e}");
        assert!(
            e.contains("0xFFFFFFFFFFFFFFEF + 0x11 bytes (length) overflows 64 bits"),
            "{e}"
        );
        assert!(e.contains("an address at most 0xFFFFFFFFFFFFFFEE"), "{e}");
        let e = check_span("address", 0xFFFF_FFF0, 0x20, "length", 32)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("overflows 32 bits"), "{e}");
        assert_eq!(checked_add_signed(0x1000, -8, 64), Some(0xFF8));
        assert_eq!(checked_add_signed(4, -8, 64), None);
        assert_eq!(checked_add_signed(0xFFFF_FFF0, 0x20, 32), None);
        assert_eq!(sum_text(0x1000, -8), "0x1000 - 0x8");
        let m = module("x.dll", u64::MAX - 0xFF, 0x1000, 64);
        assert!(m.contains(u64::MAX) && !m.contains(0));
    }

    #[test]
    fn finds_own_modules() -> Result<(), String> {
        let me = std::process::id();
        let mem = ProcessMemory::open(me).map_err(|e| e.to_string())?;
        let maps = crate::procfs::read_maps(me).map_err(|e| e.to_string())?;
        let mods = modules(&mem, &maps);
        let here = finds_own_modules as *const () as u64;
        let own = mods.iter().find(|m| m.contains(here));
        assert!(own.is_some_and(|m| m.kind == ModuleKind::Elf), "{mods:?}");
        assert!(mods.iter().any(|m| m.name.starts_with("libc.so")));
        Ok(())
    }
}
