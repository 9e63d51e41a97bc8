//! One parsed binary (PE, ELF or Mach-O) as an owned, format-neutral model.
//!
//! goblin does the parsing; this module copies what the tools need into plain structs so the
//! result can be cached and shared between calls without borrowing the file bytes. Exports
//! are read from the PE export directory directly, because goblin lists only named exports
//! and Diablo II's DLLs export almost everything by ordinal alone.

use crate::formats;
use crate::model::{Arch, DeclaredFunction, Export, Format, Import, ParseError, Parsed, Section};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use suite_core::bytes::to_hex;

#[derive(Debug)]
pub struct Binary {
    pub data: Vec<u8>,
    pub sha256: String,
    pub format: Format,
    pub arch: Arch,
    pub image_base: u64,
    pub entry_point: Option<u64>,
    pub is_dll: bool,
    pub timestamp: Option<u32>,
    pub subsystem: Option<String>,
    pub imphash: Option<String>,
    pub sections: Vec<Section>,
    pub exports: Vec<Export>,
    pub imports: Vec<Import>,
    /// TLS callbacks (PE), run before the entry point.
    pub tls_callbacks: Vec<u64>,
    /// Function ranges the file itself declares: PE `.pdata`, ELF/Mach-O symbol tables.
    pub declared_functions: Vec<DeclaredFunction>,
    /// VAs of fields the loader rebases (PE base relocations), sorted.
    pub relocations: Vec<u64>,
    /// Size of the headers, mapped at the image base (PE).
    pub header_size: u64,
    /// Built on first use (analysis.rs, `Binary::code_index`).
    pub(crate) code_index: OnceLock<crate::model::CodeIndex>,
    /// Strings found by one extraction (see [`Binary::strings_found`]), newest last.
    strings: suite_core::recent::Recent<StringsKey, Vec<crate::strings::Found>>,
    /// Which items of a list match a filter (see [`Binary::matching`]).
    matching: suite_core::recent::Recent<(Listed, String), Vec<u32>>,
    /// Each section's linear-sweep listing (see [`Binary::listing`]), by section index.
    listings: Vec<OnceLock<Option<std::sync::Arc<crate::listing::Listing>>>>,
}

/// What a string extraction depends on: minimum length, encodings (0 ascii, 1 utf16le,
/// 2 both) and the section (`None`: the whole file).
pub type StringsKey = (usize, u8, Option<String>);

/// A list a filter runs over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    Strings(StringsKey),
    Exports,
    Imports,
    Functions,
}

/// How many extractions of one binary are kept (each is 24 bytes a string).
const KEPT_EXTRACTIONS: usize = 4;

impl Binary {
    /// Parses a whole file. Never panics on malformed input: a parser panic is caught and
    /// reported as an error.
    pub fn parse(data: Vec<u8>) -> Result<Binary, ParseError> {
        if data.is_empty() {
            return Err(ParseError("the file is empty".into()));
        }
        let parsed = std::panic::catch_unwind(|| formats::parse(&data)).map_err(|_| {
            ParseError("the parser failed on this file (malformed headers)".into())
        })??;
        Self::from_parsed(data, parsed)
    }

    /// The model of `data` from what a format parser found in it (tests build one directly,
    /// to have headers no real file would pass through goblin with).
    pub(crate) fn from_parsed(data: Vec<u8>, parsed: Parsed) -> Result<Binary, ParseError> {
        let format = parsed
            .format
            .ok_or_else(|| ParseError("format not recognised".into()))?;
        let sha256 = to_hex(&Sha256::digest(&data));
        let imphash = format.is_pe().then(|| imphash(&parsed.imports)).flatten();
        let mut relocations = parsed.relocations;
        relocations.sort_unstable();
        Ok(Binary {
            sha256,
            format,
            arch: parsed.arch.unwrap_or(Arch::Other(0)),
            image_base: parsed.image_base,
            entry_point: parsed.entry_point,
            is_dll: parsed.is_dll,
            timestamp: parsed.timestamp,
            subsystem: parsed.subsystem,
            imphash,
            exports: parsed.exports,
            imports: parsed.imports,
            tls_callbacks: parsed.tls_callbacks,
            declared_functions: parsed.declared_functions,
            relocations,
            header_size: parsed.header_size,
            code_index: OnceLock::new(),
            strings: suite_core::recent::Recent::new(KEPT_EXTRACTIONS),
            matching: suite_core::recent::Recent::new(KEPT_EXTRACTIONS),
            listings: parsed.sections.iter().map(|_| OnceLock::new()).collect(),
            sections: parsed.sections,
            data,
        })
    }

    /// The section holding `va`, if any.
    pub fn section_of_va(&self, va: u64) -> Option<&Section> {
        self.sections.iter().find(|s| s.contains_va(va))
    }

    /// The section whose file bytes hold `offset`, if any.
    pub fn section_of_offset(&self, offset: u64) -> Option<&Section> {
        self.sections.iter().find(|s| {
            s.raw_size > 0 && offset >= s.file_offset && offset - s.file_offset < s.raw_size
        })
    }

    /// File offset of the byte at `va`; `None` when it is not backed by the file.
    pub fn va_to_offset(&self, va: u64) -> Option<u64> {
        if let Some(s) = self.section_of_va(va) {
            let delta = va - s.va;
            // Checked: a damaged header can put a section's file offset near 2^64.
            return (delta < s.raw_size)
                .then(|| s.file_offset.checked_add(delta))
                .flatten();
        }
        if self.format.is_pe() && va >= self.image_base && va - self.image_base < self.header_size {
            return Some(va - self.image_base);
        }
        None
    }

    /// VA of the byte at file `offset`; `None` when that byte is not loaded (or its address
    /// would overflow 64 bits: a damaged header, never a wrapped answer).
    pub fn offset_to_va(&self, offset: u64) -> Option<u64> {
        if let Some(s) = self.section_of_offset(offset) {
            return s
                .mapped
                .then(|| s.va.checked_add(offset - s.file_offset))
                .flatten();
        }
        if self.format.is_pe() && offset < self.header_size {
            return self.image_base.checked_add(offset);
        }
        None
    }

    /// The file bytes from `va` to the end of its section's raw data.
    pub fn bytes_at(&self, va: u64) -> Option<&[u8]> {
        let s = self.section_of_va(va)?;
        let delta = va - s.va;
        if delta >= s.raw_size {
            return None;
        }
        let start = usize::try_from(s.file_offset.checked_add(delta)?).ok()?;
        let end = usize::try_from(s.file_offset.saturating_add(s.raw_size)).unwrap_or(usize::MAX);
        self.data.get(start..end.min(self.data.len()))
    }

    /// The file bytes of a section.
    pub fn section_bytes(&self, s: &Section) -> &[u8] {
        let start = usize::try_from(s.file_offset).unwrap_or(usize::MAX);
        let end = usize::try_from(s.file_offset.saturating_add(s.raw_size)).unwrap_or(usize::MAX);
        self.data
            .get(start.min(self.data.len())..end.min(self.data.len()))
            .unwrap_or(&[])
    }

    pub fn executable_sections(&self) -> impl Iterator<Item = &Section> {
        self.sections.iter().filter(|s| s.mapped && s.execute)
    }

    pub fn is_executable_va(&self, va: u64) -> bool {
        self.section_of_va(va).is_some_and(|s| s.execute)
    }

    /// The image's extent in memory: from the image base to the end of the last section.
    pub fn image_end(&self) -> u64 {
        self.sections
            .iter()
            .filter(|s| s.mapped)
            .map(|s| s.va.saturating_add(s.mem_size()))
            .max()
            .unwrap_or(self.image_base)
    }

    /// The strings of one extraction, computed by `extract` on first use and kept (the last
    /// few extractions), so that each page of a list is a slice, not a new pass over the file.
    pub fn strings_found(
        &self,
        key: StringsKey,
        extract: impl FnOnce() -> Vec<crate::strings::Found>,
    ) -> std::sync::Arc<Vec<crate::strings::Found>> {
        self.strings.get_or_make(key, extract)
    }

    /// The indices of a list's items that match a filter, found by `find` on first use and
    /// kept (the last few filters), so that the pages of a filtered list are slices too.
    pub fn matching(
        &self,
        list: Listed,
        filter: &str,
        find: impl FnOnce() -> Vec<u32>,
    ) -> std::sync::Arc<Vec<u32>> {
        self.matching.get_or_make((list, filter.to_string()), find)
    }

    /// The linear sweep of the executable section holding `va`, decoded on first use and
    /// kept; None when `va` is in no executable section or the section is too large to keep.
    pub fn listing(&self, va: u64) -> Option<std::sync::Arc<crate::listing::Listing>> {
        let i = self.sections.iter().position(|s| s.contains_va(va))?;
        let section = &self.sections[i];
        if !section.execute {
            return None;
        }
        self.listings[i]
            .get_or_init(|| {
                let cs = crate::disasm::capstone(self.arch, true).ok()?;
                let code = self.section_bytes(section);
                crate::listing::Listing::build(&cs, self.arch, section, code)
                    .map(std::sync::Arc::new)
            })
            .clone()
    }

    /// Bytes this binary holds in memory: the file and what was computed from it and kept
    /// (listings, string extractions; the code index is not counted).
    pub fn held_bytes(&self) -> usize {
        let listings: usize = self
            .listings
            .iter()
            .filter_map(|l| l.get().and_then(Option::as_ref))
            .map(|l| l.heap_bytes())
            .sum();
        let strings: usize = self
            .strings
            .values()
            .iter()
            .map(|f| f.capacity() * std::mem::size_of::<crate::strings::Found>())
            .sum();
        let matching: usize = self
            .matching
            .values()
            .iter()
            .map(|m| m.capacity() * std::mem::size_of::<u32>())
            .sum();
        self.data.len() + listings + strings + matching
    }

    /// Whether the code index has been computed already (for reporting cache hits).
    pub fn code_index_ready(&self) -> bool {
        self.code_index.get().is_some()
    }

    /// Whether the extraction `key` is kept (see [`Binary::strings_found`]).
    pub fn strings_kept(&self, key: &StringsKey) -> bool {
        self.strings.contains(key)
    }

    /// Whether the matches of `filter` in `list` are kept (see [`Binary::matching`]).
    pub fn matching_kept(&self, list: &Listed, filter: &str) -> bool {
        self.matching.contains(&(list.clone(), filter.to_string()))
    }

    /// Whether the listing of the section holding `va` was decoded already (see
    /// [`Binary::listing`]); false also when `va` is in no section.
    pub fn listing_decoded(&self, va: u64) -> bool {
        self.sections
            .iter()
            .position(|s| s.contains_va(va))
            .is_some_and(|i| self.listings[i].get().is_some())
    }
}

/// Shannon entropy in bits per byte (0 to 8).
pub fn entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u64; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// The import hash as pefile computes it: md5 of `lib.func` pairs, lower case, the library's
/// `.dll`/`.ocx`/`.sys` extension dropped, ordinal-only imports as `ordN`.
fn imphash(imports: &[Import]) -> Option<String> {
    use md5::Md5;
    if imports.is_empty() {
        return None;
    }
    let mut parts = Vec::with_capacity(imports.len());
    for imp in imports {
        let lib = imp.library.clone().unwrap_or_default().to_lowercase();
        let lib = match lib.rsplit_once('.') {
            Some((stem, "dll" | "ocx" | "sys")) => stem.to_string(),
            _ => lib,
        };
        let func = match (&imp.name, imp.ordinal) {
            (Some(n), _) => n.to_lowercase(),
            (None, Some(o)) => format!("ord{o}"),
            (None, None) => String::new(),
        };
        parts.push(format!("{lib}.{func}"));
    }
    Some(to_hex(&Md5::digest(parts.join(",").as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_bounds() {
        assert_eq!(entropy(&[]), 0.0);
        assert_eq!(entropy(&[7; 100]), 0.0);
        let all: Vec<u8> = (0..=255).collect();
        assert!((entropy(&all) - 8.0).abs() < 1e-9);
    }

    #[test]
    fn imphash_matches_pefile_rules() {
        let imports = vec![
            Import {
                library: Some("KERNEL32.dll".into()),
                name: Some("ExitProcess".into()),
                ordinal: None,
                slot_va: None,
            },
            Import {
                library: Some("D2Common.dll".into()),
                name: None,
                ordinal: Some(10000),
                slot_va: None,
            },
        ];
        // md5("kernel32.exitprocess,d2common.ord10000")
        let expected = to_hex(&<md5::Md5 as Digest>::digest(
            b"kernel32.exitprocess,d2common.ord10000",
        ));
        assert_eq!(imphash(&imports), Some(expected));
    }
}
