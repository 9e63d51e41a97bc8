//! `.d2s` character saves: parsing, writing and comparing.
//!
//! Layout (version 96, Diablo II 1.10 to 1.14d; see `schemas`' reference notes and
//! krisives/d2s-format): a 765-byte header (signature, version, file size, checksum, name,
//! status, class, level, last played, difficulty, map id, mercenary, "Woo!" quests at 0x14F,
//! "WS" waypoints at 0x279, NPC "w4" at 0x2CA), then "gf" + bit-packed stats, "if" + 30 skill
//! levels, "JM" + the player's items, the corpse "JM" section, and in expansion saves "jf"
//! (+ the mercenary's items) and "kf" (+ the iron golem's item).
//!
//! Items: their first 154 bits (flags, location, position, type code, and for full items the
//! unique id, item level and quality) are decoded here; what follows (property lists) needs
//! the game's item tables, which this crate does not carry. Compact items (and ears) have a
//! fixed, computable size; the end of a full item is found by scanning for the next "JM" that
//! decodes as a sane item header, or, after the last item of a list, the marker of the next
//! section (trying each candidate until the rest of the file parses).
//!
//! Errors versus notes: [`parse_save`] returns an error when the file is not a save (bad
//! signature, unknown version) or when the fixed part it needs (header, stats, skills) is
//! truncated or damaged. Damage from the item list on (a truncated file, a damaged corpse
//! header, items that cannot be located) still gives a [`SaveFile`]: `warnings` says the file is
//! shorter than its header claims ("truncated: ..."), `items.note` and `sections.note` say what
//! could not be read and where. Versions 71, 87, 89 (1.00-1.08) and 92 (1.09) are reported with
//! `layout_supported: false`: only the header fields they share with 1.10 are read.

use crate::bits::{BitError, BitReader};
use crate::tables::Tables;
use schemars::JsonSchema;
use serde::Serialize;

mod diff;
mod items;
mod tail;
#[cfg(test)]
pub(crate) mod tests;
mod write;

pub use diff::*;
pub(crate) use items::*;
use tail::*;
pub use write::*;

/// The first four bytes of every save.
pub const SIGNATURE: u32 = 0xAA55_AA55;
/// The save version of 1.10 to 1.14d.
pub const VERSION_110: u32 = 96;
/// Where the "gf" stats section starts in version 92 and 96 saves.
const STATS_OFFSET: usize = 0x2FD;
/// Bytes in a version 92/96 header.
const HEADER_LEN: usize = 765;
/// Bytes of a compact (simple) non-ear item: 111 bits.
const COMPACT_ITEM_BYTES: usize = 14;
/// The fewest bytes a full (non-compact) item takes: its 154-bit header plus the smallest
/// tail (picture/class flags, timestamp, the 9-bit property list terminator).
const MIN_FULL_ITEM_BYTES: usize = 20;
/// How many candidate positions a section search tries before giving up.
const MAX_CANDIDATES: usize = 32;

/// Why a save could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SaveError {
    /// The byte the problem is at, when it has one.
    pub offset: Option<usize>,
    /// What is wrong, naming the section and byte.
    pub message: String,
}

impl SaveError {
    pub(crate) fn at(offset: usize, message: impl Into<String>) -> Self {
        Self {
            offset: Some(offset),
            message: message.into(),
        }
    }

    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            offset: None,
            message: message.into(),
        }
    }
}

/// A parsed character save.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SaveFile {
    pub header: Header,
    pub checksum: Checksum,
    /// False for versions before 96: only the header fields they share were read.
    pub layout_supported: bool,
    /// Why the rest of the file was not read (older layouts).
    pub unsupported: Option<String>,
    /// The "gf" section, in file order.
    pub stats: Vec<SaveStat>,
    /// The 30 class skills of the "if" section, in file order (levels may be 0).
    pub skills: Vec<SaveSkill>,
    /// The player's items.
    pub items: ItemList,
    /// The sections after the player's items.
    pub sections: Sections,
    /// Problems with the file as a whole: size differing from the header's, checksum
    /// mismatch, missing section markers.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Header {
    /// Save version (71, 87, 89, 92, 96).
    pub version: u32,
    /// The game versions that write it, e.g. "1.10-1.14d".
    pub version_name: String,
    pub name: String,
    pub class: ClassRef,
    /// The level shown on the character selection screen.
    pub level: u8,
    pub status: Status,
    /// Title progression byte (completed difficulties).
    pub progression: u8,
    /// Weapon set in use (0 or 1); versions before 92 keep it in one byte.
    pub active_weapon: u32,
    /// Unix time of the last save; absent from versions before 92.
    pub last_played: Option<u32>,
    /// Normal, nightmare, hell (bytes 0xA8..0xAB); empty for versions before 92.
    pub difficulty: Vec<DifficultyState>,
    pub map_id: u32,
    /// The hired mercenary, when its id (0xB3) is not 0.
    pub mercenary: Option<Mercenary>,
    /// The size the header claims (0x08); absent from versions before 92.
    pub file_size: Option<u32>,
    /// The size of the data parsed.
    pub actual_size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ClassRef {
    pub id: u8,
    /// None for ids the tables do not know.
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Status {
    pub raw: u8,
    /// Bit 2.
    pub hardcore: bool,
    /// Bit 3.
    pub died: bool,
    /// Bit 5.
    pub expansion: bool,
    /// Bit 6.
    pub ladder: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DifficultyState {
    /// "normal", "nightmare" or "hell".
    pub difficulty: String,
    pub raw: u8,
    /// Bit 7: the difficulty the character is in.
    pub active: bool,
    /// The act (1 to 5) from the low 3 bits (which hold 0 to 4).
    pub act: u8,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Mercenary {
    /// The mercenary's id / control seed (u32 at 0xB3).
    pub id: u32,
    /// u16 at 0xB1 is not 0.
    pub dead: bool,
    /// u16 at 0xB7: index into the mercenary name list.
    pub name_id: u16,
    /// u16 at 0xB9: hireling type.
    pub type_id: u16,
    /// u32 at 0xBB.
    pub experience: u32,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Checksum {
    /// The checksum stored at 0x0C ("0x..."); None for layouts without one (before 92).
    pub stored: Option<String>,
    /// The checksum of the data as it is.
    pub computed: Option<String>,
    pub valid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SaveStat {
    pub id: u16,
    pub name: String,
    /// The value as the game shows it (`raw >> shift`: life, mana and stamina are stored
    /// with 8 fractional bits).
    pub value: u32,
    /// The value as stored.
    pub raw: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SaveSkill {
    pub id: u16,
    pub name: String,
    /// Hard points (0 to 255).
    pub level: u8,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ItemList {
    /// Byte offset of the list's "JM" header.
    pub offset: Option<usize>,
    /// Items the list header announces (items in sockets are not counted).
    pub count: u16,
    /// Every item located, items in sockets right after their parent.
    pub items: Vec<SaveItem>,
    /// Set when not every item could be located, saying why and where.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SaveItem {
    /// Byte offset of the item's "JM".
    pub offset: usize,
    /// Size in bytes when it is fixed (compact items, ears); None for full items.
    pub size: Option<usize>,
    /// Type code, trailing spaces trimmed ("hp1", "cap"); None for ears.
    pub code: Option<String>,
    pub ear: bool,
    /// The ear's former owner.
    pub ear_owner: Option<EarOwner>,
    /// Item format version (bits 48..56).
    pub version: u8,
    /// Parent / mode (bits 58..61): 0 stored, 1 equipped, 2 belt, 4 cursor, 6 socketed.
    pub location: u8,
    pub location_name: String,
    /// Body slot when equipped (bits 61..65): 1 head .. 12 left hand (switch).
    pub body_location: u8,
    pub body_location_name: Option<String>,
    /// Column (bits 65..69).
    pub x: u8,
    /// Row (bits 69..73).
    pub y: u8,
    /// Grid (bits 73..76): 0 none, 1 inventory, 4 cube, 5 stash.
    pub storage: u8,
    pub storage_name: String,
    pub flags: ItemFlags,
    /// Items in this item's sockets (bits 108..111).
    pub socketed_items: u8,
    /// For an item in a socket: the byte offset of the item it is in.
    pub socketed_in: Option<usize>,
    /// Unique id ("%08X") of a full item.
    pub unique_id: Option<String>,
    /// Item level of a full item.
    pub item_level: Option<u8>,
    /// Quality of a full item: 1 low .. 8 crafted.
    pub quality: Option<u8>,
    pub quality_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct EarOwner {
    pub class: ClassRef,
    pub level: u8,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ItemFlags {
    /// Bit 20.
    pub identified: bool,
    /// Bit 27.
    pub socketed: bool,
    /// Bit 29: picked up since the last save.
    pub new: bool,
    /// Bit 33: given at character creation.
    pub starter: bool,
    /// Bit 37: a simple item of 111 bits.
    pub compact: bool,
    /// Bit 38.
    pub ethereal: bool,
    /// Bit 40.
    pub personalized: bool,
    /// Bit 42.
    pub runeword: bool,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Sections {
    /// Byte offset of the corpse section's "JM".
    pub corpse_offset: Option<usize>,
    /// The character has a corpse (corpse count 1).
    pub corpse: bool,
    /// Items on the corpse (from its list header).
    pub corpse_items: u16,
    /// Byte offset of "jf" (expansion saves).
    pub mercenary_offset: Option<usize>,
    /// The "jf" section is present.
    pub mercenary_section: bool,
    /// A mercenary item list is present (the header's mercenary id is not 0).
    pub mercenary: bool,
    pub mercenary_items: u16,
    /// Byte offset of "kf" (expansion saves).
    pub golem_offset: Option<usize>,
    /// The "kf" section is present.
    pub golem_section: bool,
    /// An iron golem item is present.
    pub golem: bool,
    /// Type code of the golem's item.
    pub golem_item: Option<String>,
    /// What could not be read, and where.
    pub note: Option<String>,
}

fn u16_at(bytes: &[u8], off: usize) -> Option<u16> {
    let b = bytes.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], off: usize) -> Option<u32> {
    let b = bytes.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn byte_at(bytes: &[u8], off: usize) -> u8 {
    bytes.get(off).copied().unwrap_or(0)
}

fn has_marker(bytes: &[u8], off: usize, marker: &[u8]) -> bool {
    off.checked_add(marker.len())
        .and_then(|end| bytes.get(off..end))
        .is_some_and(|b| b == marker)
}

/// "4A 4C (\"JL\")", or "the end of the file", for error messages.
pub(crate) fn describe_bytes(bytes: &[u8], off: usize, n: usize) -> String {
    let end = off.saturating_add(n).min(bytes.len());
    let Some(slice) = bytes.get(off..end).filter(|s| !s.is_empty()) else {
        return format!("the end of the file ({} bytes)", bytes.len());
    };
    let hex: Vec<String> = slice.iter().map(|b| format!("{b:02X}")).collect();
    let text: String = slice
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{} (\"{}\")", hex.join(" "), text)
}

/// NUL-terminated 8-bit text of a fixed field.
fn fixed_string(bytes: &[u8], off: usize, len: usize) -> String {
    let end = off.saturating_add(len).min(bytes.len());
    let field = bytes.get(off..end).unwrap_or(&[]);
    let used = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field.iter().take(used).map(|&b| b as char).collect()
}

fn hex32(v: u32) -> String {
    format!("0x{v:08X}")
}

/// The save checksum: bytes 12..16 (the checksum itself) count as zero; for every byte
/// `sum = rotl32(sum, 1) + byte`.
pub fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().enumerate().fold(0u32, |sum, (i, &b)| {
        let b = if (12..16).contains(&i) { 0 } else { b };
        sum.rotate_left(1).wrapping_add(u32::from(b))
    })
}

fn version_name(version: u32) -> &'static str {
    match version {
        71 => "1.00-1.06",
        87 => "1.07 / Expansion 1.08",
        89 => "1.08 (classic)",
        92 => "1.09",
        96 => "1.10-1.14d",
        _ => "unknown",
    }
}

fn class_ref(tables: &Tables, id: u8) -> ClassRef {
    ClassRef {
        id,
        name: tables.class_name(u32::from(id)).map(str::to_string),
    }
}

fn status_of(raw: u8) -> Status {
    Status {
        raw,
        hardcore: raw & 0x04 != 0,
        died: raw & 0x08 != 0,
        expansion: raw & 0x20 != 0,
        ladder: raw & 0x40 != 0,
    }
}

/// Name of an item's location (parent) field, after krisives/d2s-format.
pub fn location_name(location: u8) -> String {
    match location {
        0 => "stored".to_string(),
        1 => "equipped".to_string(),
        2 => "belt".to_string(),
        4 => "cursor".to_string(),
        6 => "socketed".to_string(),
        n => format!("unknown ({n})"),
    }
}

/// Name of an item's storage (grid) field.
pub fn storage_name(storage: u8) -> String {
    match storage {
        0 => "none".to_string(),
        1 => "inventory".to_string(),
        4 => "cube".to_string(),
        5 => "stash".to_string(),
        n => format!("unknown ({n})"),
    }
}

/// Name of an equipped item's body slot.
pub fn body_location_name(body: u8) -> Option<String> {
    let name = match body {
        0 => return None,
        1 => "head",
        2 => "neck",
        3 => "torso",
        4 => "right_hand",
        5 => "left_hand",
        6 => "right_ring",
        7 => "left_ring",
        8 => "waist",
        9 => "feet",
        10 => "hands",
        11 => "right_hand_switch",
        12 => "left_hand_switch",
        n => return Some(format!("unknown ({n})")),
    };
    Some(name.to_string())
}

/// Name of a full item's quality.
pub fn quality_name(quality: u8) -> String {
    match quality {
        1 => "low".to_string(),
        2 => "normal".to_string(),
        3 => "superior".to_string(),
        4 => "magic".to_string(),
        5 => "set".to_string(),
        6 => "rare".to_string(),
        7 => "unique".to_string(),
        8 => "crafted".to_string(),
        n => format!("unknown ({n})"),
    }
}

fn empty_items(note: impl Into<String>) -> ItemList {
    ItemList {
        offset: None,
        count: 0,
        items: Vec::new(),
        note: Some(note.into()),
    }
}

/// Parses a `.d2s` save (see the module notes for what is an error and what is a note).
pub fn parse_save(bytes: &[u8], tables: &Tables) -> Result<SaveFile, SaveError> {
    let len = bytes.len();
    let (Some(signature), Some(version)) = (u32_at(bytes, 0), u32_at(bytes, 4)) else {
        return Err(SaveError::at(
            len,
            format!(
                "truncated: a save starts with an 8-byte signature and version, the file has {len} bytes"
            ),
        ));
    };
    if signature != SIGNATURE {
        return Err(SaveError::at(
            0,
            format!(
                "not a Diablo II save: signature {} at offset 0, expected 0xAA55AA55",
                hex32(signature)
            ),
        ));
    }
    match version {
        71 | 87 | 89 => parse_old_layout(bytes, version, tables),
        92 | 96 => parse_v96(bytes, version, tables),
        97..=99 => Err(SaveError::at(
            4,
            format!(
                "version {version} is a Diablo II: Resurrected save, whose layout differs: not supported (this reader knows versions 71 to 96, up to 1.14d)"
            ),
        )),
        _ => Err(SaveError::at(
            4,
            format!(
                "unknown save version {version} at offset 4 (known: 71, 87, 89, 92 and 96 for 1.00 to 1.14d)"
            ),
        )),
    }
}

/// Versions 71, 87 and 89 (1.00-1.08): name at 0x08, status 0x18, progression 0x19, active
/// weapon 0x1A, class 0x22, level 0x24, map id 0x7E; no size, checksum or last-played time.
fn parse_old_layout(bytes: &[u8], version: u32, tables: &Tables) -> Result<SaveFile, SaveError> {
    const OLD_HEADER_MIN: usize = 0x82;
    if bytes.len() < OLD_HEADER_MIN {
        return Err(SaveError::at(
            bytes.len(),
            format!(
                "truncated: the version {version} header runs past the end of the file at byte {} (it needs {OLD_HEADER_MIN} bytes)",
                bytes.len()
            ),
        ));
    }
    let mut warnings = Vec::new();
    if !has_marker(bytes, 0x82, b"Woo!") {
        warnings.push(format!(
            "expected the quest marker \"Woo!\" at byte 130 (0x82), found {}",
            describe_bytes(bytes, 0x82, 4)
        ));
    }
    let note = format!(
        "version {version} ({}) uses an older layout: only the shared header fields were read (name, status, progression, class, level, map id)",
        version_name(version)
    );
    Ok(SaveFile {
        header: Header {
            version,
            version_name: version_name(version).to_string(),
            name: fixed_string(bytes, 0x08, 16),
            class: class_ref(tables, byte_at(bytes, 0x22)),
            level: byte_at(bytes, 0x24),
            status: status_of(byte_at(bytes, 0x18)),
            progression: byte_at(bytes, 0x19),
            active_weapon: u32::from(byte_at(bytes, 0x1A)),
            last_played: None,
            difficulty: Vec::new(),
            map_id: u32_at(bytes, 0x7E).unwrap_or(0),
            mercenary: None,
            file_size: None,
            actual_size: bytes.len(),
        },
        checksum: Checksum {
            stored: None,
            computed: None,
            valid: false,
        },
        layout_supported: false,
        unsupported: Some(note.clone()),
        stats: Vec::new(),
        skills: Vec::new(),
        items: empty_items(format!("not read: {note}")),
        sections: Sections {
            note: Some("not read: older layout".to_string()),
            ..Sections::default()
        },
        warnings,
    })
}

fn parse_v96(bytes: &[u8], version: u32, tables: &Tables) -> Result<SaveFile, SaveError> {
    let len = bytes.len();
    if len < HEADER_LEN {
        return Err(SaveError::at(
            len,
            format!(
                "truncated: the header runs past the end of the file at byte {len} (a version {version} header is {HEADER_LEN} bytes)"
            ),
        ));
    }
    let mut warnings = Vec::new();
    let file_size = u32_at(bytes, 0x08).unwrap_or(0);
    if usize::try_from(file_size).ok() != Some(len) {
        let fs = file_size as usize;
        if fs > len {
            warnings.push(format!(
                "truncated: the header says the file is {fs} bytes but it has {len} ({} missing)",
                fs - len
            ));
        } else {
            warnings.push(format!(
                "the header says the file is {fs} bytes but it has {len} ({} extra)",
                len - fs
            ));
        }
    }
    let stored = u32_at(bytes, 0x0C).unwrap_or(0);
    let computed = checksum(bytes);
    if stored != computed {
        warnings.push(format!(
            "checksum mismatch: stored {}, computed {}",
            hex32(stored),
            hex32(computed)
        ));
    }
    for (off, marker, what) in [
        (0x14F, &b"Woo!"[..], "quests"),
        (0x279, &b"WS"[..], "waypoints"),
        (0x2CA, &b"w4"[..], "NPC introductions"),
    ] {
        if !has_marker(bytes, off, marker) {
            warnings.push(format!(
                "expected the {what} marker \"{}\" at byte {off}, found {}",
                String::from_utf8_lossy(marker),
                describe_bytes(bytes, off, marker.len())
            ));
        }
    }
    let status = status_of(byte_at(bytes, 0x24));
    let class_id = byte_at(bytes, 0x28);
    let merc_id = u32_at(bytes, 0xB3).unwrap_or(0);
    let mercenary = (merc_id != 0).then(|| Mercenary {
        id: merc_id,
        dead: u16_at(bytes, 0xB1).unwrap_or(0) != 0,
        name_id: u16_at(bytes, 0xB7).unwrap_or(0),
        type_id: u16_at(bytes, 0xB9).unwrap_or(0),
        experience: u32_at(bytes, 0xBB).unwrap_or(0),
    });
    let difficulty = ["normal", "nightmare", "hell"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let raw = byte_at(bytes, 0xA8 + i);
            DifficultyState {
                difficulty: (*name).to_string(),
                raw,
                active: raw & 0x80 != 0,
                act: (raw & 0x07) + 1,
            }
        })
        .collect();
    let header = Header {
        version,
        version_name: version_name(version).to_string(),
        name: fixed_string(bytes, 0x14, 16),
        class: class_ref(tables, class_id),
        level: byte_at(bytes, 0x2B),
        status: status.clone(),
        progression: byte_at(bytes, 0x25),
        active_weapon: u32_at(bytes, 0x10).unwrap_or(0),
        last_played: u32_at(bytes, 0x30),
        difficulty,
        map_id: u32_at(bytes, 0xAB).unwrap_or(0),
        mercenary,
        file_size: Some(file_size),
        actual_size: len,
    };
    let checksum = Checksum {
        stored: Some(hex32(stored)),
        computed: Some(hex32(computed)),
        valid: stored == computed,
    };
    if version != VERSION_110 {
        let note = format!(
            "version {version} ({}) stores stats and items in an older format: only the header was read",
            version_name(version)
        );
        return Ok(SaveFile {
            header,
            checksum,
            layout_supported: false,
            unsupported: Some(note.clone()),
            stats: Vec::new(),
            skills: Vec::new(),
            items: empty_items(format!("not read: {note}")),
            sections: Sections {
                note: Some("not read: older layout".to_string()),
                ..Sections::default()
            },
            warnings,
        });
    }

    let (stats, skills_at) = parse_stats(bytes, tables)?;
    let (skills, items_at) = parse_skills(bytes, skills_at, class_id, tables, &mut warnings)?;
    let (mut items, sections) = parse_items(bytes, items_at, status.expansion, merc_id);
    for owner in items.items.iter_mut().filter_map(|i| i.ear_owner.as_mut()) {
        owner.class = class_ref(tables, owner.class.id);
    }

    Ok(SaveFile {
        header,
        checksum,
        layout_supported: true,
        unsupported: None,
        stats,
        skills,
        items,
        sections,
        warnings,
    })
}

/// The "gf" section: returns the stats and the byte where the skills section starts.
fn parse_stats(bytes: &[u8], tables: &Tables) -> Result<(Vec<SaveStat>, usize), SaveError> {
    if !has_marker(bytes, STATS_OFFSET, b"gf") {
        let found = describe_bytes(bytes, STATS_OFFSET, 2);
        return Err(SaveError::at(
            STATS_OFFSET,
            if bytes.len() < STATS_OFFSET + 2 {
                format!(
                    "truncated: the stats section runs past the end of the file at byte {}",
                    bytes.len()
                )
            } else {
                format!("stats section: expected \"gf\" at byte {STATS_OFFSET}, found {found}")
            },
        ));
    }
    let mut r = BitReader::at_byte(bytes, STATS_OFFSET + 2);
    let truncated = |e: BitError| {
        SaveError::at(
            e.byte_offset(),
            format!(
                "truncated: the stats section runs past the end of the file at byte {} (a stat field starts at byte {})",
                bytes.len(),
                e.byte_offset()
            ),
        )
    };
    let mut stats = Vec::new();
    loop {
        let at = r.position();
        let id = r.read(9).map_err(truncated)? as u16;
        if id == 0x1FF {
            break;
        }
        let Some(stat) = tables.stats.get(&id) else {
            return Err(SaveError::at(
                at / 8,
                format!(
                    "stats section: stat id {id} at bit {at} (byte {}) is not a stat the tables know; the rest cannot be read",
                    at / 8
                ),
            ));
        };
        let Some(width) = stat.save_bits else {
            return Err(SaveError::at(
                at / 8,
                format!(
                    "stats section: stat {id} ({}) at byte {} has no save width (ItemStatCost CSvBits) in the tables; the rest cannot be read",
                    stat.name,
                    at / 8
                ),
            ));
        };
        let raw = r.read(width).map_err(truncated)?;
        stats.push(SaveStat {
            id,
            name: stat.name.clone(),
            value: raw.checked_shr(stat.shift).unwrap_or(0),
            raw,
        });
    }
    Ok((stats, r.next_byte_position()))
}

/// The "if" section at `at`: returns the 30 skills and where the item list starts.
fn parse_skills(
    bytes: &[u8],
    at: usize,
    class_id: u8,
    tables: &Tables,
    warnings: &mut Vec<String>,
) -> Result<(Vec<SaveSkill>, usize), SaveError> {
    if at + 32 > bytes.len() {
        return Err(SaveError::at(
            at,
            format!(
                "truncated: the skills section at byte {at} runs past the end of the file at byte {}",
                bytes.len()
            ),
        ));
    }
    if !has_marker(bytes, at, b"if") {
        return Err(SaveError::at(
            at,
            format!(
                "skills section: expected \"if\" at byte {at} (after the stats), found {}",
                describe_bytes(bytes, at, 2)
            ),
        ));
    }
    let first = tables
        .classes
        .iter()
        .find(|c| c.id == class_id)
        .map(|c| c.first_skill);
    if first.is_none() {
        warnings.push(format!(
            "class {class_id} is not a class the tables know: skills are listed by slot"
        ));
    }
    let skills = (0..30u16)
        .map(|i| {
            let level = byte_at(bytes, at + 2 + usize::from(i));
            match first {
                Some(f) => {
                    let id = f + i;
                    SaveSkill {
                        id,
                        name: tables
                            .skills
                            .get(&id)
                            .map_or_else(|| format!("skill_{id}"), |s| s.name.clone()),
                        level,
                    }
                }
                None => SaveSkill {
                    id: i,
                    name: format!("class skill slot {}", i + 1),
                    level,
                },
            }
        })
        .collect();
    Ok((skills, at + 32))
}

/// The player's item list at `at` and the sections after it.
fn parse_items(bytes: &[u8], at: usize, expansion: bool, merc_id: u32) -> (ItemList, Sections) {
    let not_read = |why: &str| Sections {
        note: Some(format!("not read: {why}")),
        ..Sections::default()
    };
    if at + 4 > bytes.len() {
        let msg = format!(
            "truncated: the item list header at byte {at} runs past the end of the file ({} bytes)",
            bytes.len()
        );
        return (empty_items(msg.clone()), not_read(&msg));
    }
    if !has_marker(bytes, at, b"JM") {
        let msg = format!(
            "no item list: expected \"JM\" at byte {at}, found {}",
            describe_bytes(bytes, at, 2)
        );
        return (empty_items(msg.clone()), not_read(&msg));
    }
    let count = u16_at(bytes, at + 2).unwrap_or(0);
    let located = locate_items(bytes, at + 4, count);
    let mut note = None;
    let sections = if let Some(issue) = &located.issue {
        let room = bytes.len().saturating_sub(at + 4) / COMPACT_ITEM_BYTES;
        let mut msg = String::new();
        if usize::from(count) > room {
            msg.push_str(&format!(
                "the list header at byte {at} announces {count} items but the {} bytes after it hold at most {room}; ",
                bytes.len().saturating_sub(at + 4)
            ));
        }
        msg.push_str(&format!(
            "located {} of {count} items: {}",
            located.roots, issue.message
        ));
        note = Some(msg);
        not_read(
            "the player's item list could not be located completely, so where it ends is unknown",
        )
    } else {
        let ctx = TailCtx {
            bytes,
            expansion,
            merc_id,
        };
        parse_tail(&ctx, located.end)
    };
    (
        ItemList {
            offset: Some(at),
            count,
            items: located.items,
            note,
        },
        sections,
    )
}

fn check_name(name: &str) -> Result<(), SaveError> {
    let b = name.as_bytes();
    let bad = |why: &str| {
        SaveError::new(format!(
            "character name {name:?} {why} (2 to 15 ASCII letters, starting with a letter, at most one '-' or '_')"
        ))
    };
    if !(2..=15).contains(&b.len()) {
        return Err(bad("has the wrong length"));
    }
    if !b.first().is_some_and(u8::is_ascii_alphabetic) {
        return Err(bad("does not start with a letter"));
    }
    if !b
        .iter()
        .all(|&c| c.is_ascii_alphabetic() || c == b'-' || c == b'_')
    {
        return Err(bad("has characters other than letters, '-' and '_'"));
    }
    if b.iter().filter(|&&c| c == b'-' || c == b'_').count() > 1 {
        return Err(bad("has more than one '-' or '_'"));
    }
    Ok(())
}
