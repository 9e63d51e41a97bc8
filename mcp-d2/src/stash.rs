//! PlugY stashes (and ATMA/GoMule `.d2x` stashes), after squeek502/d2itemreader's
//! `docs/formats/plugy.md` and `atma.md`:
//!
//! - shared `.sss`: "SSS\0", version "01" or "02", (02: shared gold u32), page count u32;
//! - personal `.d2x`: "CSTM", version "01", 4 unused bytes, page count u32;
//! - each page: "ST", optional flags u32 (PlugY 11.02+), a NUL-terminated name, then an item
//!   list ("JM" + u16 count + items). The flags are present when the
//!   two bytes after the first NUL following "ST" are not "JM" (PlugY's own test). Names: the
//!   d2itemreader notes say at most 15 characters, but `plugy14.sss` (PlugY 14) holds a
//!   20-character name, so up to [`MAX_PAGE_NAME`] are accepted;
//! - ATMA / GoMule `.d2x`: "D2X", u16 item count, u16 version (96), u32 checksum, then the
//!   items without a "JM" list header. It is reported as one page.
//!
//! Items are located the way [`crate::save`] locates them (compact items have a known size,
//! full items end where the next item or page header starts). Unlike a save, a stash holds
//! nothing but pages and items, so any damage is an error naming what is wrong and where.

use crate::save::{IssueKind, ListEnd, SaveItem, describe_bytes, locate_items};
use schemars::JsonSchema;
use serde::Serialize;

/// The longest page name accepted (PlugY 14 writes up to 20 characters).
pub const MAX_PAGE_NAME: usize = 20;

/// Why a stash could not be read: the byte and what is wrong there, as for saves.
pub type StashError = crate::save::SaveError;

/// A parsed stash.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Stash {
    /// "plugy_shared" (.sss), "plugy_personal" (.d2x "CSTM") or "atma" (.d2x "D2X").
    pub kind: String,
    /// Human-readable description of the format.
    pub format: String,
    /// File version: "01" or "02" for PlugY, "96" for ATMA.
    pub version: String,
    /// Shared gold (PlugY shared stash version 02).
    pub gold: Option<u32>,
    /// Pages the header announces (1 for ATMA).
    pub page_count: u32,
    pub pages: Vec<StashPage>,
    /// Items the pages' list headers announce (items in sockets not counted).
    pub total_items: usize,
    /// Items located, items in sockets included.
    pub located_items: usize,
    pub file_size: usize,
    /// Anything odd that did not stop the parse (bytes after the last page).
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StashPage {
    /// Page number, from 1, as PlugY shows it.
    pub index: u32,
    /// Byte offset of the page's "ST" (for ATMA, of its first item).
    pub offset: usize,
    pub name: String,
    /// The page flags, when the page has them (PlugY 11.02+).
    pub flags: Option<u32>,
    /// Names of the flag bits set (PlugY's Stash struct: shared, index, main_index,
    /// reserved), plus "bit N" for others.
    pub flag_names: Vec<String>,
    /// Items the page's list header announces (items in sockets not counted).
    pub item_count: u16,
    /// Every item located, items in sockets right after their parent.
    pub items: Vec<SaveItem>,
}

fn u16_at(bytes: &[u8], off: usize) -> Option<u16> {
    let b = bytes.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], off: usize) -> Option<u32> {
    let b = bytes.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn flag_names(flags: u32) -> Vec<String> {
    (0..32)
        .filter(|b| flags & (1 << b) != 0)
        .map(|b| match b {
            0 => "shared".to_string(),
            1 => "index".to_string(),
            2 => "main_index".to_string(),
            3 => "reserved".to_string(),
            n => format!("bit {n}"),
        })
        .collect()
}

fn truncated_header(what: &str, bytes: &[u8]) -> StashError {
    StashError::at(
        bytes.len(),
        format!(
            "truncated: the {what} header runs past the end of the file at byte {}",
            bytes.len()
        ),
    )
}

/// Parses a PlugY shared (`.sss`) or personal (`.d2x`) stash, or an ATMA/GoMule `.d2x`.
pub fn parse_stash(bytes: &[u8]) -> Result<Stash, StashError> {
    if bytes.starts_with(b"SSS\0") {
        parse_plugy(bytes, true)
    } else if bytes.starts_with(b"CSTM") {
        parse_plugy(bytes, false)
    } else if bytes.starts_with(b"D2X") {
        parse_atma(bytes)
    } else {
        Err(StashError::at(
            0,
            format!(
                "bad header: not a stash: expected \"SSS\\0\" (PlugY shared), \"CSTM\" (PlugY personal) or \"D2X\" (ATMA/GoMule) at offset 0, found {}",
                describe_bytes(bytes, 0, 4)
            ),
        ))
    }
}

fn parse_plugy(bytes: &[u8], shared: bool) -> Result<Stash, StashError> {
    let what = if shared {
        "PlugY shared stash"
    } else {
        "PlugY personal stash"
    };
    let version = bytes
        .get(4..6)
        .ok_or_else(|| truncated_header(what, bytes))?;
    let known: &[&[u8]] = if shared { &[b"01", b"02"] } else { &[b"01"] };
    if !known.contains(&version) {
        return Err(StashError::at(
            4,
            format!(
                "bad header: {what} version {} at byte 4, expected {}",
                describe_bytes(bytes, 4, 2),
                if shared { "\"01\" or \"02\"" } else { "\"01\"" }
            ),
        ));
    }
    let version = String::from_utf8_lossy(version).into_owned();
    let (gold, count_at) = if !shared {
        (None, 10)
    } else if version == "02" {
        (
            Some(u32_at(bytes, 6).ok_or_else(|| truncated_header(what, bytes))?),
            10,
        )
    } else {
        (None, 6)
    };
    let page_count = u32_at(bytes, count_at).ok_or_else(|| truncated_header(what, bytes))?;
    let first = count_at + 4;
    // An impossible count (more pages than bytes) is a bad header; a file that ends before
    // the last page is reported as truncated where it ends.
    if usize::try_from(page_count).map_or(true, |n| n > bytes.len()) {
        return Err(StashError::at(
            count_at,
            format!(
                "bad header: the {what} header announces {page_count} pages at byte {count_at}, more than the file has bytes ({})",
                bytes.len()
            ),
        ));
    }
    let mut pages = Vec::new();
    let mut cursor = ListEnd::Exact(first);
    for index in 1..=page_count {
        let (page, end) = next_page(bytes, cursor, index, page_count)?;
        pages.push(page);
        cursor = end;
    }
    let note = match cursor {
        ListEnd::Exact(p) if p < bytes.len() => Some(format!(
            "{} bytes after the last page (from byte {p}) were not read",
            bytes.len() - p
        )),
        _ => None,
    };
    Ok(finish(
        if shared {
            "plugy_shared"
        } else {
            "plugy_personal"
        },
        format!(
            "{what} (.{}) version {version}",
            if shared { "sss" } else { "d2x" }
        ),
        version,
        gold,
        page_count,
        pages,
        bytes.len(),
        note,
    ))
}

#[allow(clippy::too_many_arguments)]
fn finish(
    kind: &str,
    format: String,
    version: String,
    gold: Option<u32>,
    page_count: u32,
    pages: Vec<StashPage>,
    file_size: usize,
    note: Option<String>,
) -> Stash {
    Stash {
        kind: kind.to_string(),
        format,
        version,
        gold,
        page_count,
        total_items: pages.iter().map(|p| usize::from(p.item_count)).sum(),
        located_items: pages.iter().map(|p| p.items.len()).sum(),
        pages,
        file_size,
        note,
    }
}

/// The page `index` starting at `cursor` (exactly, or somewhere after the previous page's
/// last full item), with where it ends.
fn next_page(
    bytes: &[u8],
    cursor: ListEnd,
    index: u32,
    count: u32,
) -> Result<(StashPage, ListEnd), StashError> {
    let start = match cursor {
        ListEnd::Exact(p) => p,
        ListEnd::Open { last, min_end } => {
            // The previous page ended with a full item: its "ST" is somewhere after it.
            let hay = bytes.get(min_end..).unwrap_or(&[]);
            let mut first_error = None;
            for c in memchr::memmem::find_iter(hay, b"ST").map(|i| min_end + i) {
                match page_header(bytes, c, index, count) {
                    Ok(h) => return page_items(bytes, h, index),
                    Err(e) => {
                        if first_error.is_none() {
                            first_error = Some(e);
                        }
                    }
                }
            }
            return Err(first_error.unwrap_or_else(|| {
                StashError::at(
                    bytes.len(),
                    format!(
                        "truncated: the file ends at byte {} without the header \"ST\" of page {index} of {count} (the last item found starts at byte {last})",
                        bytes.len()
                    ),
                )
            }));
        }
    };
    let h = page_header(bytes, start, index, count)?;
    page_items(bytes, h, index)
}

struct PageHeader {
    offset: usize,
    name: String,
    flags: Option<u32>,
    /// Byte offset of the item list's "JM".
    list: usize,
}

fn page_header(bytes: &[u8], at: usize, index: u32, count: u32) -> Result<PageHeader, StashError> {
    let page = format!("page {index} of {count}");
    if at >= bytes.len() {
        return Err(StashError::at(
            bytes.len(),
            format!(
                "truncated: the file ends at byte {} where {page} should start",
                bytes.len()
            ),
        ));
    }
    if at + 2 > bytes.len() {
        return Err(StashError::at(
            at,
            format!("truncated: the header of {page} at byte {at} runs past the end of the file"),
        ));
    }
    if bytes.get(at..at + 2) != Some(&b"ST"[..]) {
        return Err(StashError::at(
            at,
            format!(
                "bad header: {page} at byte {at} starts with {}, expected \"ST\"",
                describe_bytes(bytes, at, 2)
            ),
        ));
    }
    let after = at + 2;
    let nul_from = |from: usize| {
        bytes
            .get(from..)
            .and_then(|s| memchr::memchr(0, s))
            .map(|i| from + i)
    };
    // No flags when the first NUL after "ST" is followed by "JM" (PlugY's test).
    let (flags, name_at) = match nul_from(after) {
        Some(nul) if bytes.get(nul + 1..nul + 3).is_some_and(|j| j == b"JM") => (None, after),
        _ => match u32_at(bytes, after) {
            Some(f) => (Some(f), after + 4),
            None => {
                return Err(StashError::at(
                    after,
                    format!(
                        "truncated: the flags of {page} at byte {after} run past the end of the file"
                    ),
                ));
            }
        },
    };
    let name_end = match nul_from(name_at) {
        Some(nul) if nul - name_at <= MAX_PAGE_NAME => nul,
        Some(nul) => {
            return Err(StashError::at(
                name_at,
                format!(
                    "string too long: the name of {page} at byte {name_at} has {} characters, at most {MAX_PAGE_NAME} are allowed",
                    nul - name_at
                ),
            ));
        }
        None if bytes.len().saturating_sub(name_at) > MAX_PAGE_NAME => {
            return Err(StashError::at(
                name_at,
                format!(
                    "string too long: the name of {page} at byte {name_at} has no NUL terminator within {} bytes (at most {MAX_PAGE_NAME} characters)",
                    MAX_PAGE_NAME + 1
                ),
            ));
        }
        None => {
            return Err(StashError::at(
                name_at,
                format!(
                    "truncated: the name of {page} at byte {name_at} runs past the end of the file (no NUL terminator)"
                ),
            ));
        }
    };
    let name: String = bytes
        .get(name_at..name_end)
        .unwrap_or(&[])
        .iter()
        .map(|&b| b as char)
        .collect();
    let list = name_end + 1;
    if list + 4 > bytes.len() {
        return Err(StashError::at(
            list,
            format!(
                "truncated: the item list header of {page} at byte {list} runs past the end of the file"
            ),
        ));
    }
    if bytes.get(list..list + 2) != Some(&b"JM"[..]) {
        return Err(StashError::at(
            list,
            format!(
                "bad header: {page}: expected the item list \"JM\" at byte {list} after the page name, found {}",
                describe_bytes(bytes, list, 2)
            ),
        ));
    }
    Ok(PageHeader {
        offset: at,
        name,
        flags,
        list,
    })
}

fn page_items(bytes: &[u8], h: PageHeader, index: u32) -> Result<(StashPage, ListEnd), StashError> {
    let item_count = u16_at(bytes, h.list + 2).unwrap_or(0);
    let located = locate_items(bytes, h.list + 4, item_count);
    if let Some(issue) = located.issue {
        let prefix = match issue.kind {
            IssueKind::Truncated => "",
            IssueKind::UnexpectedSocketed => "unexpected socketed item: ",
            IssueKind::Invalid | IssueKind::NotFound => "bad item: ",
        };
        return Err(StashError::at(
            issue.offset,
            format!(
                "{prefix}page {index} ({:?}, list at byte {}, {item_count} items): {}",
                h.name, h.list, issue.message
            ),
        ));
    }
    Ok((
        StashPage {
            index,
            offset: h.offset,
            name: h.name,
            flag_names: h.flags.map(flag_names).unwrap_or_default(),
            flags: h.flags,
            item_count,
            items: located.items,
        },
        located.end,
    ))
}

/// ATMA / GoMule: "D2X", u16 item count, u16 version 96, u32 checksum, items.
fn parse_atma(bytes: &[u8]) -> Result<Stash, StashError> {
    const FIRST_ITEM: usize = 11;
    if bytes.len() < FIRST_ITEM {
        return Err(truncated_header("ATMA stash", bytes));
    }
    let count = u16_at(bytes, 3).unwrap_or(0);
    let version = u16_at(bytes, 5).unwrap_or(0);
    if version != 96 {
        return Err(StashError::at(
            5,
            format!("bad header: ATMA stash version {version} at byte 5, expected 96"),
        ));
    }
    let located = locate_items(bytes, FIRST_ITEM, count);
    if let Some(issue) = located.issue {
        let prefix = match issue.kind {
            IssueKind::Truncated => "",
            IssueKind::UnexpectedSocketed => "unexpected socketed item: ",
            IssueKind::Invalid | IssueKind::NotFound => "bad item: ",
        };
        return Err(StashError::at(
            issue.offset,
            format!("{prefix}ATMA stash ({count} items): {}", issue.message),
        ));
    }
    let note = match located.end {
        ListEnd::Exact(p) if p < bytes.len() => Some(format!(
            "{} bytes after the last item (from byte {p}) were not read",
            bytes.len() - p
        )),
        _ => None,
    };
    let page = StashPage {
        index: 1,
        offset: FIRST_ITEM,
        name: String::new(),
        flags: None,
        flag_names: Vec::new(),
        item_count: count,
        items: located.items,
    };
    Ok(finish(
        "atma",
        "ATMA/GoMule stash (.d2x) version 96".to_string(),
        version.to_string(),
        None,
        1,
        vec![page],
        bytes.len(),
        note,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::save::tests::{TestResult, fixtures};

    fn read(dir: &std::path::Path, name: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        Ok(std::fs::read(dir.join(name))?)
    }

    fn show(name: &str, s: &Stash) {
        println!(
            "{name}: {} gold {:?} pages {}/{} items {} located {} note {:?}",
            s.format,
            s.gold,
            s.pages.len(),
            s.page_count,
            s.total_items,
            s.located_items,
            s.note
        );
        for p in &s.pages {
            println!(
                "  page {} @{} {:?} flags {:?} {:?} items {}: {:?}",
                p.index,
                p.offset,
                p.name,
                p.flags,
                p.flag_names,
                p.item_count,
                p.items
                    .iter()
                    .map(|i| format!(
                        "{}@{}({},{})",
                        i.code.as_deref().unwrap_or("ear"),
                        i.offset,
                        i.x,
                        i.y
                    ))
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn fixture_stashes_parse() -> TestResult {
        let Some(dir) = fixtures() else {
            return Ok(());
        };
        for name in ["simple.sss", "plugy14.sss", "simple.d2x", "atma.d2x"] {
            let stash = parse_stash(&read(&dir, name)?).map_err(|e| format!("{name}: {e}"))?;
            show(name, &stash);
            assert_eq!(stash.pages.len(), stash.page_count as usize, "{name}");
            assert_eq!(stash.note, None, "{name}");
            for p in &stash.pages {
                let roots = p.items.iter().filter(|i| i.socketed_in.is_none()).count();
                assert_eq!(roots, usize::from(p.item_count), "{name} page {}", p.index);
                for i in &p.items {
                    assert!(
                        i.location != 0 || matches!(i.storage, 1 | 4 | 5),
                        "{name}: {i:?}"
                    );
                }
            }
        }
        let s = parse_stash(&read(&dir, "simple.sss")?)?;
        assert_eq!(s.kind, "plugy_shared");
        assert_eq!(s.version, "02");
        assert_eq!(s.gold, Some(10));
        assert_eq!(s.page_count, 20);
        assert_eq!(
            s.pages.first().map(|p| (p.item_count, p.flags)),
            Some((4, None))
        );
        assert_eq!(s.total_items, 5);
        let s = parse_stash(&read(&dir, "plugy14.sss")?)?;
        assert_eq!(s.version, "01");
        assert_eq!(s.gold, None);
        assert_eq!(s.page_count, 14);
        assert_eq!(s.pages.first().map(|p| p.flags), Some(Some(7)));
        assert!(s.pages.iter().any(|p| p.name == "a long long name of "));
        let s = parse_stash(&read(&dir, "simple.d2x")?)?;
        assert_eq!(s.kind, "plugy_personal");
        assert_eq!(s.page_count, 1);
        assert_eq!(s.pages.first().map(|p| p.item_count), Some(24));
        let s = parse_stash(&read(&dir, "atma.d2x")?)?;
        assert_eq!(s.kind, "atma");
        assert_eq!(s.total_items, 6);
        assert_eq!(s.located_items, 13);
        // Two items with runes in their sockets, the runes right after their parent.
        let items = &s.pages.first().ok_or("no page")?.items;
        for (parent, code, runes) in [(40, "sbb", 3), (130, "fla", 4)] {
            let p = items
                .iter()
                .find(|i| i.offset == parent)
                .ok_or("no parent")?;
            assert_eq!(p.code.as_deref(), Some(code));
            assert_eq!(p.socketed_items, runes);
            let children: Vec<&SaveItem> = items
                .iter()
                .filter(|i| i.socketed_in == Some(parent))
                .collect();
            assert_eq!(children.len(), usize::from(runes));
            assert!(children.iter().all(|c| c.location_name == "socketed"
                && c.code.as_deref().is_some_and(|c| c.starts_with('r'))));
        }
        Ok(())
    }

    #[test]
    fn damaged_stashes_name_the_problem() -> TestResult {
        let Some(dir) = fixtures() else {
            return Ok(());
        };
        for (name, want) in [
            ("err-eof.d2x", "truncated"),
            ("err-string-too-long.d2x", "string too long"),
            ("err-atma-unexpected-socketed.d2x", "socketed"),
        ] {
            let e = parse_stash(&read(&dir, name)?)
                .err()
                .ok_or_else(|| format!("{name} parsed"))?;
            println!("{name}: {e} (offset {:?})", e.offset);
            assert!(e.message.contains(want), "{name}: {e}");
            assert!(e.offset.is_some(), "{name}");
        }
        Ok(())
    }

    #[test]
    fn every_prefix_parses_or_errors() -> TestResult {
        let Some(dir) = fixtures() else {
            return Ok(());
        };
        for name in ["simple.sss", "plugy14.sss", "simple.d2x", "atma.d2x"] {
            let bytes = read(&dir, name)?;
            for n in 0..bytes.len() {
                let prefix = bytes.get(..n).ok_or("prefix")?;
                if let Err(e) = parse_stash(prefix) {
                    assert!(e.offset.is_some() && !e.message.is_empty(), "{name}[..{n}]");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn bad_headers_are_errors() {
        let e = parse_stash(b"XYZ")
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(e.contains("bad header"), "{e}");
        let e = parse_stash(b"SSS\x0003\0\0\0\0")
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(e.contains("version"), "{e}");
        let e = parse_stash(b"CSTM01\0\0\0\0\xff\xff\xff\xffST")
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(e.contains("pages"), "{e}");
        let e = parse_stash(b"SSS\x0002\x05")
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(e.starts_with("truncated"), "{e}");
        let ok = parse_stash(b"SSS\x0001\x01\0\0\0ST\0JM\0\0");
        assert!(ok.is_ok_and(|s| s.pages.len() == 1 && s.total_items == 0));
    }
}
