//! The questions the tools answer, as plain functions over a parsed `Binary`.
//! Results are serde/schemars types; nothing here knows about MCP.

use crate::binary::{Binary, Listed, StringsKey, entropy};
use crate::disasm;
use crate::pattern::Pattern;
use crate::strings;
use schemars::JsonSchema;
use serde::Serialize;
use suite_core::address::{checked_add, overflow, top};
use suite_core::{Address, ToolError};

pub const MAX_DISASSEMBLE: usize = 2000;
/// Longest string text an answer carries; `StringItem::length` gives the full length.
pub const MAX_STRING_CHARS: usize = 2048;
/// Most sections an error message names.
const MAX_LISTED: usize = 40;

/// `items` joined by ", ", the first `MAX_LISTED` of them and how many more.
pub fn listed(items: Vec<String>) -> String {
    let more = items.len().saturating_sub(MAX_LISTED);
    let mut s = items
        .into_iter()
        .take(MAX_LISTED)
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SectionInfo {
    pub name: String,
    pub va: Address,
    pub virtual_size: u64,
    pub file_offset: Address,
    pub raw_size: u64,
    /// `r`, `w`, `x` or `-` for each.
    pub permissions: String,
    /// Shannon entropy of the raw bytes, 0 to 8 bits per byte (packed or encrypted data is near 8).
    pub entropy: f64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BinaryInfo {
    /// `pe32`, `pe32+`, `elf32`, `elf64` or `macho`.
    pub format: String,
    /// `x86`, `x86_64`, `arm`, `arm64`.
    pub arch: String,
    pub image_base: Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<Address>,
    pub is_dll: bool,
    /// Link time (PE COFF header), seconds since 1970.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u32>,
    pub sha256: String,
    /// File size in bytes.
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsystem: Option<String>,
    /// Import hash as pefile/VirusTotal compute it (PE only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imphash: Option<String>,
    pub export_count: usize,
    pub import_count: usize,
    pub sections: Vec<SectionInfo>,
    /// Sections left out to keep the answer small (files with thousands of sections).
    #[serde(skip_serializing_if = "is_zero")]
    pub sections_omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

pub fn binary_info(bin: &Binary) -> BinaryInfo {
    BinaryInfo {
        format: bin.format.name().into(),
        arch: bin.arch.name(),
        image_base: bin.image_base.into(),
        entry_point: bin.entry_point.map(Address),
        is_dll: bin.is_dll,
        timestamp: bin.timestamp,
        sha256: bin.sha256.clone(),
        size: bin.data.len() as u64,
        subsystem: bin.subsystem.clone(),
        imphash: bin.imphash.clone(),
        export_count: bin.exports.len(),
        import_count: bin.imports.len(),
        sections: bin
            .sections
            .iter()
            .map(|s| SectionInfo {
                name: s.name.clone(),
                va: s.va.into(),
                virtual_size: s.virtual_size,
                file_offset: s.file_offset.into(),
                raw_size: s.raw_size,
                permissions: s.permissions(),
                entropy: (entropy(bin.section_bytes(s)) * 1000.0).round() / 1000.0,
            })
            .collect(),
        sections_omitted: 0,
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ExportItem {
    /// Absent for exports by ordinal only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordinal: Option<u32>,
    pub rva: Address,
    pub va: Address,
    /// `OTHER.dll.Function` when the export forwards to another DLL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarder: Option<String>,
}

/// Exports whose name (or `#ordinal`) contains `filter`, case-insensitively.
/// One page of the exports matching `filter` and how many match: only the page's items are
/// built, so walking every page costs about one listing.
pub fn exports(
    bin: &Binary,
    filter: &Option<String>,
    offset: usize,
    limit: usize,
) -> (usize, Vec<ExportItem>) {
    let label = |e: &crate::model::Export| match (&e.name, e.ordinal) {
        (Some(n), Some(o)) => format!("{n} #{o}"),
        (Some(n), None) => n.clone(),
        (None, Some(o)) => format!("#{o}"),
        (None, None) => String::new(),
    };
    let m = matching(bin, Listed::Exports, &bin.exports, filter, label);
    let (total, page) = from_offset(&bin.exports, m.as_deref().map(Vec::as_slice), offset);
    let items = page
        .take(limit)
        .map(|e| ExportItem {
            name: e.name.clone(),
            ordinal: e.ordinal,
            rva: Address(e.va.wrapping_sub(bin.image_base)),
            va: e.va.into(),
            forwarder: e.forwarder.clone(),
        })
        .collect();
    (total, items)
}

/// The indices of the items of `all` whose `label` contains `filter` (any case), or `None`
/// without a filter. A filter's matches are found once and kept ([`Binary::matching`]), so
/// each page of a filtered list is a slice too.
fn matching<T>(
    bin: &Binary,
    list: Listed,
    all: &[T],
    filter: &Option<String>,
    label: impl Fn(&T) -> String,
) -> Option<std::sync::Arc<Vec<u32>>> {
    let needle = needle(filter)?;
    Some(bin.matching(list, &needle, || {
        (0u32..)
            .zip(all)
            .filter(|(_, item)| label(item).to_lowercase().contains(&needle))
            .map(|(i, _)| i)
            .collect()
    }))
}

/// What a filter is matched as: its lowercase form (the match ignores case).
fn needle(filter: &Option<String>) -> Option<String> {
    filter.as_ref().map(|f| f.to_lowercase())
}

/// What a page of a list is a slice of.
pub enum Slice<'a> {
    Exports(&'a Option<String>),
    Imports(&'a Option<String>),
    Functions(&'a Option<String>),
    Strings(&'a StringQuery<'a>),
    /// Instructions from this start on.
    Code(Start<'a>),
}

/// Whether everything `slice` is cut from is computed and kept already, so that its page
/// costs about the page's own size (the tool layer then answers it without a thread hop).
pub fn is_kept(bin: &Binary, slice: Slice) -> bool {
    let filter_kept = |list: Listed, filter: &Option<String>| {
        needle(filter).is_none_or(|n| bin.matching_kept(&list, &n))
    };
    match slice {
        Slice::Exports(filter) => filter_kept(Listed::Exports, filter),
        Slice::Imports(filter) => filter_kept(Listed::Imports, filter),
        Slice::Functions(filter) => {
            bin.code_index_ready() && filter_kept(Listed::Functions, filter)
        }
        Slice::Strings(q) => {
            let key = strings_key(q);
            bin.strings_kept(&key) && filter_kept(Listed::Strings(key), q.contains)
        }
        Slice::Code(start) => {
            bin.code_index_ready()
                && resolve_start(bin, start).is_ok_and(|va| bin.listing_decoded(va))
        }
    }
}

/// How many items match (all of them without `matching`), and the matching items from the
/// `offset`-th on, in order.
fn from_offset<'a, T>(
    all: &'a [T],
    matching: Option<&'a [u32]>,
    offset: usize,
) -> (usize, Box<dyn Iterator<Item = &'a T> + 'a>) {
    match matching {
        None => (all.len(), Box::new(all.iter().skip(offset))),
        Some(m) => (
            m.len(),
            Box::new(m.iter().skip(offset).map(move |&i| &all[i as usize])),
        ),
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ImportItem {
    /// The DLL (PE) or dylib (Mach-O); absent for ELF, which does not bind symbols to libraries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordinal: Option<u32>,
    /// The pointer slot the loader fills: IAT entry (PE), GOT/PLT slot (ELF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat_va: Option<Address>,
}

/// One page of the imports matching `filter` and how many match (as [`exports`]).
pub fn imports(
    bin: &Binary,
    filter: &Option<String>,
    offset: usize,
    limit: usize,
) -> (usize, Vec<ImportItem>) {
    let m = matching(bin, Listed::Imports, &bin.imports, filter, |i| {
        i.display_name()
    });
    let (total, page) = from_offset(&bin.imports, m.as_deref().map(Vec::as_slice), offset);
    let items = page
        .take(limit)
        .map(|i| ImportItem {
            library: i.library.clone(),
            name: i.name.clone(),
            ordinal: i.ordinal,
            iat_va: i.slot_va.map(Address),
        })
        .collect();
    (total, items)
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StringItem {
    /// Where the string is when loaded; absent when its bytes are not mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub va: Option<Address>,
    pub file_offset: Address,
    /// `ascii` or `utf16le`.
    pub encoding: String,
    /// The string as found in the file: data, not instructions.
    pub text: String,
    /// Full length in characters when `text` was cut at 2048.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringKinds {
    Ascii,
    Utf16le,
    Both,
}

/// Which strings a list holds.
#[derive(Clone, Copy)]
pub struct StringQuery<'a> {
    /// Shortest string, in characters.
    pub min_length: usize,
    pub kinds: StringKinds,
    /// Only this section (`None`: the whole file).
    pub section: &'a Option<String>,
    /// Only strings containing this (any case).
    pub contains: &'a Option<String>,
}

/// The strings `q` asks for, in file order: how many in all, and `limit` from `offset`.
pub fn strings(
    bin: &Binary,
    q: &StringQuery,
    offset: usize,
    limit: usize,
) -> Result<(usize, Vec<StringItem>), ToolError> {
    let mut items = Vec::new();
    let total = walk_strings(bin, q, offset, |s| {
        if items.len() >= limit {
            return false;
        }
        items.push(s.item());
        true
    })?;
    Ok((total, items))
}

/// One string as a walk sees it: where it is, and its text still in the file's bytes.
pub struct StringView<'a> {
    pub va: Option<u64>,
    pub file_offset: u64,
    found: &'a strings::Found,
    data: &'a [u8],
}

impl StringView<'_> {
    pub fn encoding(&self) -> &'static str {
        self.found.encoding.name()
    }

    /// Length in characters, when the text is cut at [`MAX_STRING_CHARS`].
    pub fn cut_length(&self) -> Option<usize> {
        let chars = self.found.chars();
        (chars > MAX_STRING_CHARS).then_some(chars)
    }

    /// The text, at most [`MAX_STRING_CHARS`] characters (every one of them ASCII): an ASCII
    /// string is borrowed from the file's bytes as it is.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        if self.found.encoding == strings::Encoding::Ascii {
            let end = self.found.len.min(MAX_STRING_CHARS);
            let bytes = &self.data[self.found.offset..self.found.offset + end];
            if let Ok(text) = std::str::from_utf8(bytes) {
                return text.into();
            }
        }
        let mut text = self.found.text(self.data);
        text.truncate(MAX_STRING_CHARS);
        text.into()
    }

    pub fn item(&self) -> StringItem {
        StringItem {
            va: self.va.map(Address),
            file_offset: self.file_offset.into(),
            encoding: self.encoding().into(),
            text: self.text().into_owned(),
            length: self.cut_length(),
        }
    }
}

/// What the extraction behind `q` is kept under.
fn strings_key(q: &StringQuery) -> StringsKey {
    let code = match q.kinds {
        StringKinds::Ascii => 0,
        StringKinds::Utf16le => 1,
        StringKinds::Both => 2,
    };
    (q.min_length, code, q.section.clone())
}

/// Walks the strings of [`strings`] from the `offset`-th match on, handing each to `take`
/// until it answers false; returns how many match in all.
pub fn walk_strings(
    bin: &Binary,
    q: &StringQuery,
    offset: usize,
    mut take: impl FnMut(&StringView) -> bool,
) -> Result<usize, ToolError> {
    let StringQuery {
        min_length,
        kinds,
        section,
        contains,
    } = *q;
    let (base, data): (usize, &[u8]) = match section {
        None => (0, &bin.data[..]),
        Some(name) => {
            let s = find_section(bin, name)?;
            (s.file_offset as usize, bin.section_bytes(s))
        }
    };
    let key = strings_key(q);
    let found = bin.strings_found(key.clone(), || {
        let mut found = Vec::new();
        if kinds != StringKinds::Utf16le {
            strings::ascii(data, min_length, &mut found);
        }
        if kinds != StringKinds::Ascii {
            strings::utf16le(data, min_length, &mut found);
            found.sort_by_key(|f| f.offset);
        }
        found
    });
    fn view<'a>(
        bin: &Binary,
        base: usize,
        data: &'a [u8],
        f: &'a strings::Found,
    ) -> StringView<'a> {
        let file_offset = (base + f.offset) as u64;
        StringView {
            va: bin.offset_to_va(file_offset),
            file_offset,
            found: f,
            data,
        }
    }
    let m = matching(bin, Listed::Strings(key), &found, contains, |f| {
        f.text(data)
    });
    let (total, rest) = from_offset(&found, m.as_deref().map(Vec::as_slice), offset);
    for f in rest {
        if !take(&view(bin, base, data, f)) {
            break;
        }
    }
    Ok(total)
}

fn find_section<'a>(bin: &'a Binary, name: &str) -> Result<&'a crate::model::Section, ToolError> {
    bin.sections.iter().find(|s| s.name == name).ok_or_else(|| {
        let names = bin.sections.iter().map(|s| s.name.clone()).collect();
        ToolError::invalid(
            "section",
            format!("{name:?}"),
            format!("sections of this file: {}", listed(names)),
        )
    })
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InsnItem {
    pub va: Address,
    /// Instruction bytes in hex, space separated.
    pub bytes: String,
    pub mnemonic: String,
    pub operands: String,
    /// Direct branch/call target, or the address a memory operand reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Address>,
    /// Name of the target: an import (through its IAT slot), an export or a known function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
}

/// Where disassembly should start.
#[derive(Clone, Copy)]
pub enum Start<'a> {
    Address(u64),
    Export(&'a str),
    Ordinal(u32),
}

pub fn resolve_start(bin: &Binary, start: Start) -> Result<u64, ToolError> {
    match start {
        Start::Address(va) => Ok(va),
        Start::Export(name) => bin
            .exports
            .iter()
            .find(|e| e.name.as_deref() == Some(name))
            .map(|e| e.va)
            .ok_or_else(|| {
                ToolError::invalid(
                    "export",
                    format!("{name:?}"),
                    "no export of this name (see list_exports)",
                )
            }),
        Start::Ordinal(o) => bin
            .exports
            .iter()
            .find(|e| e.ordinal == Some(o))
            .map(|e| e.va)
            .ok_or_else(|| {
                ToolError::invalid(
                    "ordinal",
                    o,
                    "no export with this ordinal (see list_exports)",
                )
            }),
    }
}

pub fn hex_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    push_hex_bytes(&mut s, bytes);
    s
}

/// Appends `bytes` as upper-case hex pairs separated by spaces.
pub fn push_hex_bytes(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
}

/// One instruction as the walk sees it, borrowed from the kept sweep or the decoder.
pub struct InsnView<'a> {
    pub va: u64,
    pub bytes: &'a [u8],
    pub mnemonic: &'a str,
    pub operands: &'a str,
    /// Direct branch target, or the address a memory operand reads.
    pub target: Option<u64>,
    /// The target's name: an import, an export or a known function.
    pub symbol: Option<&'a str>,
}

impl InsnView<'_> {
    pub fn item(&self) -> InsnItem {
        InsnItem {
            va: self.va.into(),
            bytes: hex_bytes(self.bytes),
            mnemonic: self.mnemonic.to_string(),
            operands: self.operands.to_string(),
            target: self.target.map(Address),
            symbol: self.symbol.map(str::to_string),
        }
    }
}

/// Instructions from one address on, as many as asked or as fit one answer.
pub struct Disassembled {
    pub items: Vec<InsnItem>,
    /// The address after the last instruction returned.
    pub next_va: u64,
    /// True when fewer than asked were returned because the answer was full.
    pub cut: bool,
}

/// Disassembles up to `count` instructions at `va` as items, naming targets, and stops early
/// when the items reach `max_bytes` of JSON (see [`walk_code`]).
pub fn disassemble(
    bin: &Binary,
    va: u64,
    count: usize,
    max_bytes: usize,
) -> Result<Disassembled, ToolError> {
    let mut items = Vec::new();
    let mut used = 0usize;
    let walk = walk_code(bin, va, count, |insn| {
        let item = insn.item();
        used += suite_core::paging::json_len(&item) + 1;
        if used > max_bytes && !items.is_empty() {
            return false;
        }
        items.push(item);
        true
    })?;
    Ok(Disassembled {
        items,
        next_va: walk.next_va,
        cut: walk.cut,
    })
}

/// Where a walk of the code stopped.
pub struct Walked {
    /// How many instructions `take` accepted.
    pub count: usize,
    /// The address after the last one accepted.
    pub next_va: u64,
    /// True when `take` refused one (its answer was full).
    pub cut: bool,
}

/// Walks up to `count` instructions at `va`, handing each to `take` until it answers false
/// (that instruction is not counted). Where `va` is an instruction of its section's linear
/// sweep (the start of a section, or where a previous page stopped) the instructions come
/// from the kept sweep ([`Binary::listing`]); elsewhere the bytes from `va` are decoded.
/// Bytes that do not decode are one-byte `(bad)` instructions, as in objdump.
pub fn walk_code(
    bin: &Binary,
    va: u64,
    count: usize,
    mut take: impl FnMut(&InsnView) -> bool,
) -> Result<Walked, ToolError> {
    if count == 0 || count > MAX_DISASSEMBLE {
        return Err(ToolError::invalid(
            "count",
            count,
            format!("accepted: 1 to {MAX_DISASSEMBLE}"),
        ));
    }
    let code = code_at(bin, "address", va)?;
    let names = &bin.code_index().names;
    let symbol = |target: Option<u64>| target.and_then(|t| names.get(&t).map(String::as_str));
    let mut out = Walked {
        count: 0,
        next_va: va,
        cut: false,
    };
    let mut accept = |out: &mut Walked, insn: &InsnView| {
        if !take(insn) {
            out.cut = true;
            return false;
        }
        out.count += 1;
        out.next_va = insn.va.saturating_add(insn.bytes.len() as u64);
        true
    };
    if let Some(listing) = bin.listing(va)
        && let Some(first) = listing.index_of(va)
    {
        let last = (first + count).min(listing.len());
        for n in first..last {
            let l = listing.line(n);
            let off = (l.va - va) as usize;
            let insn = InsnView {
                va: l.va,
                bytes: code.get(off..off + l.len).unwrap_or(&[]),
                mnemonic: l.mnemonic,
                operands: l.operands,
                target: l.target,
                symbol: symbol(l.target),
            };
            if !accept(&mut out, &insn) {
                break;
            }
        }
        return Ok(out);
    }
    let cs = disasm::capstone(bin.arch, true).map_err(ToolError::new)?;
    // Decoded in small runs so that a page cut by size has not decoded all `count`.
    let mut pos = 0usize;
    while out.count < count && pos < code.len() {
        let run = (count - out.count).min(256);
        // A section that ends past 2^64 (a damaged header) stops the page there.
        let Some(at) = va.checked_add(pos as u64) else {
            break;
        };
        let insns = disasm::decode(&cs, bin.arch, &code[pos..], at, run);
        if insns.is_empty() {
            break;
        }
        for i in &insns {
            pos += i.bytes.len();
            let target = i.facts.target.or(i.facts.mem_ref);
            let insn = InsnView {
                va: i.va,
                bytes: &i.bytes,
                mnemonic: &i.mnemonic,
                operands: &i.operands,
                target,
                symbol: symbol(target),
            };
            if !accept(&mut out, &insn) {
                return Ok(out);
            }
        }
    }
    if out.count == 0 {
        return Err(ToolError::new(format!(
            "no valid instruction at {}",
            Address(va)
        )));
    }
    Ok(out)
}

/// The file bytes from `va` on, or an error naming the field and the valid ranges.
fn code_at<'a>(bin: &'a Binary, field: &str, va: u64) -> Result<&'a [u8], ToolError> {
    bin.bytes_at(va).ok_or_else(|| {
        let ranges: Vec<String> = bin
            .sections
            .iter()
            .filter(|s| s.mapped && s.raw_size > 0)
            .map(|s| {
                format!(
                    "{} {}..{}",
                    s.name,
                    Address(s.va),
                    Address(s.va.saturating_add(s.raw_size))
                )
            })
            .collect();
        ToolError::invalid(
            field,
            Address(va),
            format!(
                "not in any section with file bytes; sections: {}",
                listed(ranges)
            ),
        )
    })
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FunctionItem {
    pub va: Address,
    pub size: u64,
    pub name: String,
    /// `entry`, `export`, `tls_callback`, `pdata`, `symbol` or `call`.
    pub found_by: String,
}

/// The functions whose name contains `filter` (any case): how many in all, and the items of
/// the page from `offset` (only those are built).
pub fn functions(
    bin: &Binary,
    filter: &Option<String>,
    offset: usize,
    limit: usize,
) -> (usize, Vec<FunctionItem>) {
    let all = &bin.code_index().functions;
    let m = matching(bin, Listed::Functions, all, filter, |f| f.name.clone());
    let (total, page) = from_offset(all, m.as_deref().map(Vec::as_slice), offset);
    let items = page
        .take(limit)
        .map(|f| FunctionItem {
            va: f.va.into(),
            size: f.size,
            name: f.name.clone(),
            found_by: f.found_by.into(),
        })
        .collect();
    (total, items)
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct XrefItem {
    pub from_va: Address,
    /// `call`, `jmp`, `memory` (operand reads or writes the address) or `immediate`.
    pub kind: String,
    /// The function holding the referencing instruction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// What is referenced (a string's address, an IAT slot, a thunk).
    pub to_va: Address,
}

/// What `xrefs_to` looks for.
pub enum XrefTarget<'a> {
    Address(u64),
    String(&'a str),
    Import(&'a str),
}

/// References to an address, to every copy of a string, or to an import (its IAT slot and
/// any `jmp [slot]` thunk).
pub fn xrefs(bin: &Binary, target: XrefTarget) -> Result<Vec<XrefItem>, ToolError> {
    let index = bin.code_index();
    let mut targets: Vec<u64> = Vec::new();
    match target {
        XrefTarget::Address(va) => targets.push(va),
        XrefTarget::String(text) => {
            if text.is_empty() {
                return Err(ToolError::invalid(
                    "string",
                    "\"\"",
                    "give the text of a string in the file",
                ));
            }
            let ascii = text.as_bytes().to_vec();
            let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
            for needle in [ascii, utf16] {
                for off in memchr::memmem::find_iter(&bin.data, &needle) {
                    if let Some(va) = bin.offset_to_va(off as u64) {
                        targets.push(va);
                    }
                }
            }
            if targets.is_empty() {
                return Err(ToolError::invalid(
                    "string",
                    format!("{text:?}"),
                    "not found in any mapped section",
                ));
            }
        }
        XrefTarget::Import(name) => {
            let lname = name.to_lowercase();
            for imp in &bin.imports {
                let full = imp.display_name().to_lowercase();
                let short = imp.name.as_deref().unwrap_or("").to_lowercase();
                if (full == lname || short == lname)
                    && let Some(slot) = imp.slot_va
                {
                    targets.push(slot);
                    // Thunks that jump through the slot stand for the import too.
                    for x in index.xrefs_to(slot) {
                        if index
                            .functions
                            .binary_search_by_key(&x.from, |f| f.va)
                            .is_ok()
                        {
                            targets.push(x.from);
                        }
                    }
                }
            }
            if targets.is_empty() {
                return Err(ToolError::invalid(
                    "import",
                    format!("{name:?}"),
                    "no import of this name (accepted: `Function` or `LIBRARY.dll!Function`; see list_imports)",
                ));
            }
        }
    }
    targets.sort_unstable();
    targets.dedup();
    let mut out = Vec::new();
    for t in targets {
        for x in index.xrefs_to(t) {
            out.push(XrefItem {
                from_va: x.from.into(),
                kind: x.kind.name().into(),
                function: index.function_at(x.from).map(|f| f.name.clone()),
                to_va: x.to.into(),
            });
        }
    }
    out.sort_by_key(|x| x.from_va);
    Ok(out)
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PatternMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub va: Option<Address>,
    pub file_offset: Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
}

/// Matches of a pattern in one section or in the whole file.
pub fn find_pattern(
    bin: &Binary,
    pattern: &Pattern,
    section: &Option<String>,
    limit: usize,
) -> Result<Vec<PatternMatch>, ToolError> {
    let (base, data) = match section {
        Some(name) => {
            let s = find_section(bin, name)?;
            (s.file_offset, bin.section_bytes(s))
        }
        None => (0, &bin.data[..]),
    };
    Ok(pattern
        .find_all(data, limit)
        .into_iter()
        .map(|off| {
            let file_offset = base + off as u64;
            PatternMatch {
                va: bin.offset_to_va(file_offset).map(Address),
                file_offset: file_offset.into(),
                section: bin.section_of_offset(file_offset).map(|s| s.name.clone()),
            }
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Signature {
    pub address: Address,
    /// The pattern, `??` where an address or relative target would change between builds.
    pub pattern: String,
    pub length: usize,
    pub wildcards: usize,
    /// How many instructions it covers.
    pub instructions: usize,
    /// Verified: the pattern matches exactly once in the file's code, at `address`.
    pub unique: bool,
}

/// How far a signature may grow before giving up.
const MAX_SIGNATURE_BYTES: usize = 256;
/// Matches of a signature's prefix kept between steps; more than this and the next step
/// searches again.
const SIGNATURE_CANDIDATES: usize = 1 << 16;
/// The most pattern bytes compared in searches of the code before giving up: code that
/// repeats (a run of one byte) would otherwise cost a search per instruction.
const SIGNATURE_WORK: usize = 1 << 26;

/// The shortest pattern starting at `va`, whole instructions at a time, that matches only
/// once in the executable sections. Address fields are wildcarded: relocated bytes, rel32
/// branch targets, RIP-relative displacements, absolute operands inside the image.
pub fn make_signature(bin: &Binary, va: u64) -> Result<Signature, ToolError> {
    let code = code_at(bin, "address", va)?;
    if !bin.is_executable_va(va) {
        return Err(ToolError::invalid(
            "address",
            Address(va),
            "not in an executable section",
        ));
    }
    let cs = disasm::capstone(bin.arch, true).map_err(ToolError::new)?;
    let image = (bin.image_base, bin.image_end());
    let in_image = |a: u64| a >= image.0 && a < image.1;
    let exec: Vec<(u64, &[u8])> = bin
        .executable_sections()
        .map(|s| (s.file_offset, bin.section_bytes(s)))
        .collect();
    let own_offset = bin.va_to_offset(va).unwrap_or(u64::MAX);
    let mut pattern: Vec<Option<u8>> = Vec::new();
    // Matches of the pattern as it was `known_len` bytes long.
    let mut known: Option<Vec<(usize, usize)>> = None;
    let mut known_len = 0usize;
    let mut work = 0usize;
    let mut count = 0usize;
    let Ok(mut iter) = cs.disasm_iter(&code[..code.len().min(MAX_SIGNATURE_BYTES)], va) else {
        return Err(ToolError::new("capstone could not start"));
    };
    while let Some(insn) = iter.next() {
        let f = disasm::facts(&cs, bin.arch, &insn);
        let bytes = insn.bytes();
        let mut wild = vec![false; bytes.len()];
        let mut mark = |span: Option<(u8, u8)>| {
            if let Some((o, l)) = span {
                for w in wild.iter_mut().skip(o as usize).take(l as usize) {
                    *w = true;
                }
            }
        };
        let relative_branch = f.target.is_some() && f.imm_span.is_some_and(|(_, l)| l >= 4);
        if relative_branch {
            mark(f.imm_span);
        }
        if f.mem_ref.is_some_and(in_image) {
            mark(f.disp_span);
        }
        if f.immediate.is_some_and(in_image) {
            mark(f.imm_span);
        }
        let insn_va = insn.address();
        // A base relocation marks a whole pointer-sized field from its start.
        let mut k = 0;
        while k < bytes.len() {
            if bin.relocations.binary_search(&(insn_va + k as u64)).is_ok() {
                let width = bin.arch.pointer_size();
                for w in wild.iter_mut().skip(k).take(width) {
                    *w = true;
                }
                k += width;
            } else {
                k += 1;
            }
        }
        for (b, w) in bytes.iter().zip(&wild) {
            pattern.push((!w).then_some(*b));
        }
        count += 1;
        if pattern.iter().all(Option::is_none) {
            continue;
        }
        let p = Pattern(pattern.clone());
        // A longer pattern can match only where its prefix matched: once the prefix's
        // matches are all known, each step re-checks those instead of searching the code.
        let found: Vec<(usize, usize)> = match &known {
            Some(prev) => prev
                .iter()
                .copied()
                .filter(|&(i, off)| p.tail_matches_at(exec[i].1, off, known_len))
                .collect(),
            None => {
                let mut all = Vec::new();
                for (i, (_, data)) in exec.iter().enumerate() {
                    let room = SIGNATURE_CANDIDATES - all.len();
                    all.extend(p.find_all(data, room).into_iter().map(|off| (i, off)));
                    if all.len() >= SIGNATURE_CANDIDATES {
                        break;
                    }
                }
                work += all.len().max(1) * pattern.len();
                if work > SIGNATURE_WORK {
                    return Err(ToolError::new(format!(
                        "no unique signature at {}: the code from there repeats ({} bytes \
                         still match {}+ places); try an address past the repetition",
                        Address(va),
                        pattern.len(),
                        all.len()
                    )));
                }
                all
            }
        };
        let at_self = found
            .iter()
            .any(|&(i, off)| exec[i].0 + off as u64 == own_offset);
        let unique = found.len() == 1 && at_self;
        known_len = pattern.len();
        known = (found.len() < SIGNATURE_CANDIDATES).then_some(found);
        if unique {
            let wildcards = pattern.iter().filter(|b| b.is_none()).count();
            return Ok(Signature {
                address: va.into(),
                pattern: p.to_string(),
                length: pattern.len(),
                wildcards,
                instructions: count,
                unique: true,
            });
        }
        if matches!(
            f.flow,
            disasm::Flow::Return | disasm::Flow::Jump | disasm::Flow::Stop
        ) {
            break;
        }
    }
    Err(ToolError::new(format!(
        "no unique signature at {}: the {} bytes up to the end of its code also occur elsewhere",
        Address(va),
        pattern.len()
    )))
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Conversion {
    pub va: Address,
    pub rva: Address,
    /// Absent when the byte is not in the file (uninitialised data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_offset: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// The same byte in a process where the module is loaded at `live_base`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_va: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_base: Option<Address>,
}

pub enum AddressForm {
    Va(u64),
    Rva(u64),
    FileOffset(u64),
}

pub fn convert(
    bin: &Binary,
    form: AddressForm,
    live_base: Option<u64>,
) -> Result<Conversion, ToolError> {
    let field = match form {
        AddressForm::Va(_) => "va",
        AddressForm::Rva(_) => "rva",
        AddressForm::FileOffset(_) => "file_offset",
    };
    let va = match form {
        AddressForm::Va(v) => {
            if bin.section_of_va(v).is_none() && bin.va_to_offset(v).is_none() {
                return Err(ToolError::invalid("va", Address(v), section_ranges(bin)));
            }
            v
        }
        AddressForm::Rva(r) => {
            let v = bin.image_base.checked_add(r).ok_or_else(|| {
                overflow(
                    "rva",
                    Address(r),
                    &format!("image base {} + {}", Address(bin.image_base), Address(r)),
                    64,
                    format!("an RVA below {}", Address(u64::MAX - bin.image_base + 1)),
                )
            })?;
            if bin.section_of_va(v).is_none() && bin.va_to_offset(v).is_none() {
                return Err(ToolError::invalid("rva", Address(r), section_ranges(bin)));
            }
            v
        }
        AddressForm::FileOffset(o) => bin.offset_to_va(o).ok_or_else(|| {
            if o >= bin.data.len() as u64 {
                ToolError::invalid(
                    "file_offset",
                    Address(o),
                    format!("past the end of the file ({} bytes)", bin.data.len()),
                )
            } else {
                ToolError::invalid(
                    "file_offset",
                    Address(o),
                    "this byte is not loaded (no mapped section holds it, or its section's \
                     address overflows 64 bits)",
                )
            }
        })?,
    };
    // A section below the image base (a damaged ELF) has no RVA; never a wrapped one.
    let rva = va.checked_sub(bin.image_base).ok_or_else(|| {
        ToolError::invalid(
            field,
            Address(va),
            format!(
                "lies at {} below the image base {}, so it has no RVA; accepted: addresses \
                 from the image base on",
                Address(va),
                Address(bin.image_base)
            ),
        )
    })?;
    let live_va = match live_base {
        Some(base) => Some(Address(live_address(bin, base, rva)?)),
        None => None,
    };
    Ok(Conversion {
        va: va.into(),
        rva: rva.into(),
        file_offset: bin.va_to_offset(va).map(Address),
        section: bin.section_of_va(va).map(|s| s.name.clone()),
        live_va,
        live_base: live_base.map(Address),
    })
}

/// `base + rva` in the address space of a process that loads this binary: 32 bits for a
/// 32-bit binary (a PE32 under Wine lives below 4 GiB), 64 otherwise; beyond it, an error
/// naming `live_base`.
fn live_address(bin: &Binary, base: u64, rva: u64) -> Result<u64, ToolError> {
    let bits = if bin.arch.pointer_size() == 4 { 32 } else { 64 };
    checked_add(base, rva, bits).ok_or_else(|| {
        let top = top(bits);
        let accepted = match top.checked_sub(rva) {
            Some(max) => format!("a base at most {}", Address(max)),
            None => format!("none: the RVA alone is past {}", Address(top)),
        };
        overflow(
            "live_base",
            Address(base),
            &format!("{} + rva {}", Address(base), Address(rva)),
            bits,
            accepted,
        )
    })
}

fn section_ranges(bin: &Binary) -> String {
    let ranges: Vec<String> = bin
        .sections
        .iter()
        .filter(|s| s.mapped)
        .map(|s| {
            format!(
                "{} {}..{}",
                s.name,
                Address(s.va),
                Address(s.va.saturating_add(s.mem_size()))
            )
        })
        .collect();
    format!("not inside the image; sections: {}", listed(ranges))
}

pub fn encoding_from(name: &str) -> Option<StringKinds> {
    match name {
        "ascii" => Some(StringKinds::Ascii),
        "utf16le" => Some(StringKinds::Utf16le),
        "both" => Some(StringKinds::Both),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arch, Format, Parsed, Section};

    /// A 0x2000-byte image with one `.text` section at RVA 0x1000, file offset 0x400.
    fn image(format: Format, arch: Arch, image_base: u64) -> Result<Binary, String> {
        let parsed = Parsed {
            format: Some(format),
            arch: Some(arch),
            image_base,
            header_size: 0x400,
            sections: vec![Section {
                name: ".text".into(),
                va: image_base.wrapping_add(0x1000),
                virtual_size: 0x1000,
                file_offset: 0x400,
                raw_size: 0x200,
                read: true,
                write: false,
                execute: true,
                mapped: true,
            }],
            ..Parsed::default()
        };
        Binary::from_parsed(vec![0; 0x600], parsed).map_err(|e| e.to_string())
    }

    fn refused(r: Result<Conversion, ToolError>) -> String {
        match r {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// A page is answered in place only once what it is cut from was computed: the
    /// extraction, the filter's matches, the code index and the section's listing.
    #[test]
    fn a_slice_is_kept_only_after_its_source_is_computed() -> Result<(), String> {
        let mut bin = image(Format::Pe32Plus, Arch::X86_64, 0x1_4000_0000)?;
        bin.data[0x420..0x428].copy_from_slice(b"kernel32");
        let (none, some) = (None, Some("KERN".to_string()));
        let q = StringQuery {
            min_length: 4,
            kinds: StringKinds::Ascii,
            section: &None,
            contains: &some,
        };
        let all = StringQuery {
            contains: &none,
            ..q
        };
        assert!(!is_kept(&bin, Slice::Strings(&all)));
        walk_strings(&bin, &all, 0, |_| true).map_err(|e| e.to_string())?;
        assert!(is_kept(&bin, Slice::Strings(&all)));
        // The extraction is kept, the filter's matches are not yet.
        assert!(!is_kept(&bin, Slice::Strings(&q)));
        let total = walk_strings(&bin, &q, 0, |_| true).map_err(|e| e.to_string())?;
        assert_eq!(total, 1);
        assert!(is_kept(&bin, Slice::Strings(&q)));

        assert!(is_kept(&bin, Slice::Exports(&None)));
        assert!(!is_kept(&bin, Slice::Exports(&some)));
        exports(&bin, &some, 0, 10);
        assert!(is_kept(&bin, Slice::Exports(&some)));

        let code = Slice::Code(Start::Address(0x1_4000_1000));
        assert!(!is_kept(&bin, code));
        walk_code(&bin, 0x1_4000_1000, 4, |_| true).map_err(|e| e.to_string())?;
        assert!(is_kept(&bin, Slice::Code(Start::Address(0x1_4000_1000))));
        // No export of this name: nothing to slice.
        assert!(!is_kept(&bin, Slice::Code(Start::Export("nope"))));
        Ok(())
    }

    #[test]
    fn live_base_near_2_pow_64_is_refused() -> Result<(), String> {
        let bin = image(Format::Pe32Plus, Arch::X86_64, 0x1_4000_0000)?;
        let ok = convert(&bin, AddressForm::Rva(0x1000), Some(0x7FF0_0000_0000))
            .map_err(|e| e.to_string())?;
        assert_eq!(ok.live_va, Some(Address(0x7FF0_0000_1000)));
        for form in [
            AddressForm::Va(0x1_4000_1000),
            AddressForm::Rva(0x1000),
            AddressForm::FileOffset(0x400),
        ] {
            let e = refused(convert(&bin, form, Some(u64::MAX - 0xFFF)));
            assert!(e.contains("`live_base`"), "{e}");
            assert!(
                e.contains("0xFFFFFFFFFFFFF000 + rva 0x1000 overflows 64 bits"),
                "{e}"
            );
            assert!(e.contains("at most 0xFFFFFFFFFFFFEFFF"), "{e}");
        }
        Ok(())
    }

    #[test]
    fn live_base_of_a_32_bit_module_stays_below_4_gib() -> Result<(), String> {
        let bin = image(Format::Pe32, Arch::X86, 0x6FAB_0000)?;
        let ok = convert(&bin, AddressForm::Rva(0x1000), Some(0xFFFF_E000))
            .map_err(|e| e.to_string())?;
        assert_eq!(ok.live_va, Some(Address(0xFFFF_F000)));
        let e = refused(convert(&bin, AddressForm::Rva(0x1000), Some(0xFFFF_F000)));
        assert!(
            e.contains("`live_base`") && e.contains("overflows 32 bits"),
            "{e}"
        );
        assert!(e.contains("at most 0xFFFFEFFF"), "{e}");
        let e = refused(convert(&bin, AddressForm::Rva(0x1000), Some(0x1_0000_0000)));
        assert!(e.contains("overflows 32 bits"), "{e}");
        Ok(())
    }

    #[test]
    fn rva_past_2_pow_64_is_refused() -> Result<(), String> {
        let bin = image(Format::Pe32Plus, Arch::X86_64, 0x1_4000_0000)?;
        let e = refused(convert(&bin, AddressForm::Rva(u64::MAX), None));
        assert!(e.contains("`rva`"), "{e}");
        assert!(
            e.contains("image base 0x140000000 + 0xFFFFFFFFFFFFFFFF overflows 64 bits"),
            "{e}"
        );
        assert!(e.contains("an RVA below 0xFFFFFFFEC0000000"), "{e}");
        Ok(())
    }

    #[test]
    fn va_below_the_image_base_has_no_rva() -> Result<(), String> {
        // A damaged ELF: its one section lies below the base the header claims.
        let mut bin = image(Format::Elf64, Arch::X86_64, 0x40_0000)?;
        bin.image_base = 0x50_0000;
        let e = refused(convert(&bin, AddressForm::Va(0x40_1000), None));
        assert!(
            e.contains("`va`") && e.contains("below the image base 0x500000"),
            "{e}"
        );
        let e = refused(convert(&bin, AddressForm::FileOffset(0x400), None));
        assert!(e.contains("`file_offset`") && e.contains("no RVA"), "{e}");
        Ok(())
    }

    #[test]
    fn file_offset_whose_va_would_wrap_is_refused() -> Result<(), String> {
        // A damaged header: the section's address ends past 2^64.
        let mut bin = image(Format::Pe32Plus, Arch::X86_64, 0x1_4000_0000)?;
        bin.sections[0].va = u64::MAX - 0xFF;
        assert_eq!(bin.offset_to_va(0x400 + 0xFF), Some(u64::MAX));
        let e = refused(convert(&bin, AddressForm::FileOffset(0x400 + 0x100), None));
        assert!(
            e.contains("`file_offset`") && e.contains("overflows 64 bits"),
            "{e}"
        );
        Ok(())
    }
}
