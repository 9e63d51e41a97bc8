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
use std::fmt;

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

// ------------------------------------------------------------------------------------------
// Errors

/// Why a save could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SaveError {}

// ------------------------------------------------------------------------------------------
// Parsed save

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

// ------------------------------------------------------------------------------------------
// Writing and comparing

/// What [`write_save`] makes: a fresh version-96 save without items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSave {
    /// 2 to 15 ASCII letters, starting with a letter, at most one '-' or '_'.
    pub name: String,
    pub class: u8,
    /// 1 to 99.
    pub level: u8,
    /// Status bits: bit 2 hardcore, bit 3 died, bit 5 expansion, bit 6 ladder.
    pub status: u8,
    pub last_played: u32,
    pub map_id: u32,
    /// (stat id, value as the game shows it); life, mana and stamina are given whole and the
    /// writer applies their shift. Written in id order; a value of 0 is written as given.
    pub stats: Vec<(u16, u32)>,
    /// The 30 class skills' levels, in the class's skill order.
    pub skills: [u8; 30],
}

impl NewSave {
    /// The values of a parsed save, to write it again.
    pub fn from_save(save: &SaveFile) -> Result<Self, SaveError> {
        if !save.layout_supported {
            return Err(SaveError::new(format!(
                "cannot rewrite a version {} save: only version 96 saves are read completely",
                save.header.version
            )));
        }
        let mut skills = [0u8; 30];
        for (slot, s) in skills.iter_mut().zip(&save.skills) {
            *slot = s.level;
        }
        Ok(Self {
            name: save.header.name.clone(),
            class: save.header.class.id,
            level: save.header.level,
            status: save.header.status.raw,
            last_played: save.header.last_played.unwrap_or(0),
            map_id: save.header.map_id,
            stats: save.stats.iter().map(|s| (s.id, s.value)).collect(),
            skills,
        })
    }
}

/// What changed between two saves.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SaveDiff {
    /// Nothing below changed.
    pub identical: bool,
    pub level: Option<ValueChange>,
    /// Other header fields that changed (name, class, status, ...), as text.
    pub header_changed: Vec<FieldChange>,
    pub stats_changed: Vec<StatChange>,
    pub skills_changed: Vec<SkillChange>,
    pub items_added: Vec<ItemSummary>,
    pub items_removed: Vec<ItemSummary>,
    /// Full items (same unique id) found at another place.
    pub items_moved: Vec<ItemMove>,
    /// Trailing sections that changed (corpse, mercenary, golem), as text.
    pub sections_changed: Vec<FieldChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ValueChange {
    pub before: u32,
    pub after: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FieldChange {
    pub field: String,
    pub before: String,
    pub after: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct StatChange {
    pub id: u16,
    pub name: String,
    /// None when the stat is absent (the game leaves out stats that are 0).
    pub before: Option<u32>,
    pub after: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SkillChange {
    pub id: u16,
    pub name: String,
    pub before: Option<u8>,
    pub after: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ItemSummary {
    pub offset: usize,
    pub code: Option<String>,
    pub ear: bool,
    pub location_name: String,
    pub body_location_name: Option<String>,
    pub storage_name: String,
    pub x: u8,
    pub y: u8,
    pub quality_name: Option<String>,
    pub unique_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ItemMove {
    pub before: ItemSummary,
    pub after: ItemSummary,
}

// ------------------------------------------------------------------------------------------
// Small helpers

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

// ------------------------------------------------------------------------------------------
// Items

/// Why an item header could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadProblem {
    Truncated(String),
    Invalid(String),
}

fn field(r: &mut BitReader<'_>, at: usize, n: u32) -> Result<u32, BitError> {
    r.set_position(at);
    r.read(n)
}

/// Decodes the item header at `pos` (its "JM"). Structural only; see [`check_item`].
fn read_item(bytes: &[u8], pos: usize) -> Result<SaveItem, ReadProblem> {
    let rest = bytes.get(pos..).unwrap_or(&[]);
    let truncated = |at: usize| {
        ReadProblem::Truncated(format!(
            "truncated: the item at byte {pos} runs past the end of the file at byte {at}"
        ))
    };
    if rest.len() < 2 {
        return Err(truncated(bytes.len()));
    }
    if !rest.starts_with(b"JM") {
        return Err(ReadProblem::Invalid(format!(
            "expected an item (\"JM\") at byte {pos}, found {}",
            describe_bytes(bytes, pos, 2)
        )));
    }
    let mut r = BitReader::new(rest);
    let tr = |e: BitError| truncated(pos + e.byte_offset());
    let bit = |r: &mut BitReader<'_>, at: usize| field(r, at, 1).map(|v| v == 1);
    let flags = ItemFlags {
        identified: bit(&mut r, 20).map_err(tr)?,
        socketed: bit(&mut r, 27).map_err(tr)?,
        new: bit(&mut r, 29).map_err(tr)?,
        starter: bit(&mut r, 33).map_err(tr)?,
        compact: bit(&mut r, 37).map_err(tr)?,
        ethereal: bit(&mut r, 38).map_err(tr)?,
        personalized: bit(&mut r, 40).map_err(tr)?,
        runeword: bit(&mut r, 42).map_err(tr)?,
    };
    let ear = bit(&mut r, 32).map_err(tr)?;
    let version = field(&mut r, 48, 8).map_err(tr)? as u8;
    let location = field(&mut r, 58, 3).map_err(tr)? as u8;
    let body_location = field(&mut r, 61, 4).map_err(tr)? as u8;
    let x = field(&mut r, 65, 4).map_err(tr)? as u8;
    let y = field(&mut r, 69, 4).map_err(tr)? as u8;
    let storage = field(&mut r, 73, 3).map_err(tr)? as u8;
    let mut item = SaveItem {
        offset: pos,
        size: None,
        code: None,
        ear,
        ear_owner: None,
        version,
        location,
        location_name: location_name(location),
        body_location,
        body_location_name: body_location_name(body_location),
        x,
        y,
        storage,
        storage_name: storage_name(storage),
        flags,
        socketed_items: 0,
        socketed_in: None,
        unique_id: None,
        item_level: None,
        quality: None,
        quality_name: None,
    };
    if ear {
        let class = field(&mut r, 76, 3).map_err(tr)? as u8;
        let level = field(&mut r, 79, 7).map_err(tr)? as u8;
        let mut name = String::new();
        let mut terminated = false;
        for _ in 0..16 {
            let c = r.read(7).map_err(tr)? as u8;
            if c == 0 {
                terminated = true;
                break;
            }
            name.push(c as char);
        }
        if !terminated {
            return Err(ReadProblem::Invalid(format!(
                "the ear at byte {pos} has an owner name longer than 15 characters"
            )));
        }
        item.ear_owner = Some(EarOwner {
            class: ClassRef {
                id: class,
                name: None,
            },
            level,
            name,
        });
        if item.flags.compact {
            item.size = Some(r.next_byte_position());
        }
        return Ok(item);
    }
    let mut code = String::with_capacity(4);
    for i in 0..4 {
        code.push(field(&mut r, 76 + 8 * i, 8).map_err(tr)? as u8 as char);
    }
    item.socketed_items = field(&mut r, 108, 3).map_err(tr)? as u8;
    item.code = Some(code.trim_end_matches([' ', '\0']).to_string());
    if item.flags.compact {
        if rest.len() < COMPACT_ITEM_BYTES {
            return Err(truncated(bytes.len()));
        }
        item.size = Some(COMPACT_ITEM_BYTES);
        return Ok(item);
    }
    item.unique_id = Some(format!("{:08X}", field(&mut r, 111, 32).map_err(tr)?));
    item.item_level = Some(field(&mut r, 143, 7).map_err(tr)? as u8);
    let quality = field(&mut r, 150, 4).map_err(tr)? as u8;
    item.quality = Some(quality);
    item.quality_name = Some(quality_name(quality));
    if rest.len() < MIN_FULL_ITEM_BYTES {
        return Err(truncated(bytes.len()));
    }
    Ok(item)
}

/// Item type codes (trailing padding trimmed): 3 or 4 ASCII letters or digits.
fn valid_code(code: &str) -> bool {
    (3..=4).contains(&code.len()) && code.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// Sanity checks that tell a real item header from bytes that happen to read "JM".
fn check_item(item: &SaveItem) -> Result<(), String> {
    let at = item.offset;
    if !matches!(item.location, 0 | 1 | 2 | 4 | 6) {
        return Err(format!(
            "the item at byte {at} has location {}, which no item has",
            item.location
        ));
    }
    if !matches!(item.storage, 0 | 1 | 4 | 5) {
        return Err(format!(
            "the item at byte {at} has storage {}, which no item has",
            item.storage
        ));
    }
    if item.location == 0 && item.storage == 0 {
        return Err(format!(
            "the item at byte {at} is stored but in no grid (storage 0)"
        ));
    }
    if item.body_location > 12 || (item.location == 1 && item.body_location == 0) {
        return Err(format!(
            "the item at byte {at} has body location {} with location {}",
            item.body_location,
            location_name(item.location)
        ));
    }
    if item.ear {
        let Some(owner) = &item.ear_owner else {
            return Err(format!("the ear at byte {at} has no owner"));
        };
        let name_ok = !owner.name.is_empty()
            && owner
                .name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if owner.class.id > 6 || !(1..=99).contains(&owner.level) || !name_ok {
            return Err(format!(
                "the ear at byte {at} has an impossible owner (class {}, level {}, name {:?})",
                owner.class.id, owner.level, owner.name
            ));
        }
        return Ok(());
    }
    let code = item.code.as_deref().unwrap_or("");
    if !valid_code(code) {
        return Err(format!(
            "the item at byte {at} has type code {code:?}, which is not 3-4 letters or digits"
        ));
    }
    if let Some(q) = item.quality
        && !(1..=8).contains(&q)
    {
        return Err(format!(
            "the item at byte {at} has quality {q}, which no item has"
        ));
    }
    Ok(())
}

/// Where an item list ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListEnd {
    /// Exactly at this byte.
    Exact(usize),
    /// The last item is a full item starting at `last`: the list ends somewhere at or after
    /// `min_end`.
    Open { last: usize, min_end: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IssueKind {
    Truncated,
    UnexpectedSocketed,
    Invalid,
    NotFound,
}

/// Why an item list could not be located completely.
#[derive(Debug, Clone)]
pub(crate) struct Issue {
    pub offset: usize,
    pub kind: IssueKind,
    pub message: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub items: Vec<SaveItem>,
    /// Root items located (items in sockets not counted).
    pub roots: usize,
    pub end: ListEnd,
    pub issue: Option<Issue>,
}

/// Locates the `count` root items (and the items in their sockets) of a list whose first item
/// starts at `first`. Never reads past `bytes`, never allocates more than the items found.
pub(crate) fn locate_items(bytes: &[u8], first: usize, count: u16) -> Located {
    let mut out = Located {
        items: Vec::new(),
        roots: 0,
        end: ListEnd::Exact(first),
        issue: None,
    };
    let mut pending_children: u8 = 0;
    let mut parent: Option<usize> = None;
    let count = usize::from(count);
    while out.roots < count || pending_children > 0 {
        let want_child = pending_children > 0;
        let which = if want_child {
            format!(
                "the socketed item after the item at byte {}",
                parent.unwrap_or(0)
            )
        } else {
            format!("item {} of {count}", out.roots + 1)
        };
        let found = match out.end {
            ListEnd::Exact(pos) => match read_item(bytes, pos) {
                Ok(item) => {
                    if want_child && item.location != 6 {
                        Err(Issue {
                            offset: pos,
                            kind: IssueKind::Invalid,
                            message: format!(
                                "{which} (byte {pos}) should be in a socket but its location is {}",
                                item.location_name
                            ),
                        })
                    } else if !want_child && item.location == 6 {
                        Err(Issue {
                            offset: pos,
                            kind: IssueKind::UnexpectedSocketed,
                            message: format!(
                                "{which} (byte {pos}) is a socketed item (location 6) with no parent item before it"
                            ),
                        })
                    } else {
                        check_item(&item).map(|()| item).map_err(|m| Issue {
                            offset: pos,
                            kind: IssueKind::Invalid,
                            message: format!("{which}: {m}"),
                        })
                    }
                }
                Err(ReadProblem::Truncated(m)) => Err(Issue {
                    offset: pos,
                    kind: IssueKind::Truncated,
                    message: format!("{which}: {m}"),
                }),
                Err(ReadProblem::Invalid(m)) => Err(Issue {
                    offset: pos,
                    kind: IssueKind::Invalid,
                    message: format!("{which}: {m}"),
                }),
            },
            ListEnd::Open { last, min_end } => {
                let tail = bytes.get(min_end..).unwrap_or(&[]);
                memchr::memmem::find_iter(tail, b"JM")
                    .map(|i| min_end + i)
                    .find_map(|q| {
                        let item = read_item(bytes, q).ok()?;
                        (want_child == (item.location == 6) && check_item(&item).is_ok())
                            .then_some(item)
                    })
                    .ok_or_else(|| {
                        if min_end >= bytes.len() {
                            Issue {
                                offset: bytes.len(),
                                kind: IssueKind::Truncated,
                                message: format!(
                                    "truncated: the file ends at byte {} before {which} (the item at byte {last} is the last one found)",
                                    bytes.len()
                                ),
                            }
                        } else {
                            Issue {
                                offset: min_end,
                                kind: IssueKind::NotFound,
                                message: format!(
                                    "{which}: no item header found after the full item at byte {last}"
                                ),
                            }
                        }
                    })
            }
        };
        let mut item = match found {
            Ok(item) => item,
            Err(issue) => {
                out.issue = Some(issue);
                return out;
            }
        };
        let pos = item.offset;
        if want_child {
            item.socketed_in = parent;
            pending_children -= 1;
        } else {
            out.roots += 1;
            parent = Some(pos);
            pending_children = if item.flags.compact {
                0
            } else {
                item.socketed_items
            };
        }
        out.end = match item.size {
            Some(n) => ListEnd::Exact(pos + n),
            None => ListEnd::Open {
                last: pos,
                min_end: pos + MIN_FULL_ITEM_BYTES,
            },
        };
        out.items.push(item);
    }
    out
}

// ------------------------------------------------------------------------------------------
// Sections after the player's items

#[derive(Debug, Clone, Copy)]
enum Cursor {
    Exact(usize),
    After(usize),
}

impl From<ListEnd> for Cursor {
    fn from(e: ListEnd) -> Self {
        match e {
            ListEnd::Exact(p) => Cursor::Exact(p),
            ListEnd::Open { min_end, .. } => Cursor::After(min_end),
        }
    }
}

impl Cursor {
    fn start(self) -> usize {
        match self {
            Cursor::Exact(p) | Cursor::After(p) => p,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Corpse,
    Merc,
    Golem,
    End,
}

impl Stage {
    fn next(self) -> Stage {
        match self {
            Stage::Corpse => Stage::Merc,
            Stage::Merc => Stage::Golem,
            Stage::Golem | Stage::End => Stage::End,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stage::Corpse => "corpse",
            Stage::Merc => "mercenary",
            Stage::Golem => "golem",
            Stage::End => "end of file",
        }
    }
}

#[derive(Debug, Clone)]
struct CorpsePart {
    offset: usize,
    present: bool,
    items: u16,
}

#[derive(Debug, Clone)]
struct MercPart {
    offset: usize,
    has_items: bool,
    items: u16,
}

#[derive(Debug, Clone)]
struct GolemPart {
    offset: usize,
    item: Option<Box<SaveItem>>,
}

#[derive(Debug, Clone, Default)]
struct Tail {
    corpse: Option<CorpsePart>,
    merc: Option<MercPart>,
    golem: Option<GolemPart>,
}

#[derive(Debug, Clone)]
enum Part {
    Corpse(CorpsePart),
    Merc(MercPart),
    Golem(GolemPart),
}

impl Tail {
    fn set(&mut self, part: Part) {
        match part {
            Part::Corpse(c) => self.corpse = Some(c),
            Part::Merc(m) => self.merc = Some(m),
            Part::Golem(g) => self.golem = Some(g),
        }
    }

    /// Takes the parts `other` has and `self` lacks.
    fn fill_from(&mut self, other: Tail) {
        if self.corpse.is_none() {
            self.corpse = other.corpse;
        }
        if self.merc.is_none() {
            self.merc = other.merc;
        }
        if self.golem.is_none() {
            self.golem = other.golem;
        }
    }
}

#[derive(Debug, Clone)]
struct TailFail {
    stage: Stage,
    offset: usize,
    /// Where the failing stage started searching.
    resume: usize,
    message: String,
    partial: Tail,
}

type Fail = Box<TailFail>;

struct TailCtx<'a> {
    bytes: &'a [u8],
    expansion: bool,
    merc_id: u32,
}

impl TailCtx<'_> {
    fn fail(&self, stage: Stage, offset: usize, resume: usize, message: String) -> Fail {
        Box::new(TailFail {
            stage,
            offset,
            resume,
            message,
            partial: Tail::default(),
        })
    }

    /// Checks a section header at `at`: `need` bytes present, starting with `marker`. The
    /// errors say "truncated: the {header} at byte N ..." or "{expected} at byte N, found ...".
    fn header(
        &self,
        (stage, at, resume): (Stage, usize, usize),
        marker: &[u8; 2],
        need: usize,
        header: &str,
        expected: &str,
    ) -> Result<(), Fail> {
        let bytes = self.bytes;
        if at.saturating_add(need) > bytes.len() {
            return Err(self.fail(
                stage,
                at,
                resume,
                format!(
                    "truncated: the {header} at byte {at} runs past the end of the file ({} bytes)",
                    bytes.len()
                ),
            ));
        }
        if !has_marker(bytes, at, marker) {
            return Err(self.fail(
                stage,
                at,
                resume,
                format!(
                    "{expected} at byte {at}, found {}",
                    describe_bytes(bytes, at, 2)
                ),
            ));
        }
        Ok(())
    }

    /// An item list at `list` ("JM" + count + items), named `what` in messages.
    fn item_list(
        &self,
        stage: Stage,
        list: usize,
        resume: usize,
        what: &str,
    ) -> Result<(u16, ListEnd), Fail> {
        let bytes = self.bytes;
        self.header(
            (stage, list, resume),
            b"JM",
            4,
            &format!("{what} list header"),
            &format!("{what}: expected the list header \"JM\""),
        )?;
        let count = u16_at(bytes, list + 2).unwrap_or(0);
        let located = locate_items(bytes, list + 4, count);
        if let Some(issue) = located.issue {
            return Err(self.fail(
                stage,
                issue.offset,
                resume,
                format!(
                    "{what} (list at byte {list}, {count} items): {}",
                    issue.message
                ),
            ));
        }
        Ok((count, located.end))
    }

    fn attempt(&self, stage: Stage, at: usize, resume: usize) -> Result<(Part, Cursor), Fail> {
        let bytes = self.bytes;
        match stage {
            Stage::Corpse => {
                self.header(
                    (stage, at, resume),
                    b"JM",
                    4,
                    "corpse section header",
                    "corpse section: expected \"JM\"",
                )?;
                let n = u16_at(bytes, at + 2).unwrap_or(0);
                match n {
                    0 => Ok((
                        Part::Corpse(CorpsePart {
                            offset: at,
                            present: false,
                            items: 0,
                        }),
                        Cursor::Exact(at + 4),
                    )),
                    1 => {
                        let (items, end) =
                            self.item_list(stage, at + 16, resume, "corpse item list")?;
                        Ok((
                            Part::Corpse(CorpsePart {
                                offset: at,
                                present: true,
                                items,
                            }),
                            end.into(),
                        ))
                    }
                    n => Err(self.fail(
                        stage,
                        at,
                        resume,
                        format!("corpse section at byte {at}: corpse count {n}, expected 0 or 1"),
                    )),
                }
            }
            Stage::Merc => {
                self.header(
                    (stage, at, resume),
                    b"jf",
                    2,
                    "mercenary section header",
                    "mercenary section: expected \"jf\"",
                )?;
                if self.merc_id == 0 {
                    return Ok((
                        Part::Merc(MercPart {
                            offset: at,
                            has_items: false,
                            items: 0,
                        }),
                        Cursor::Exact(at + 2),
                    ));
                }
                let (items, end) = self.item_list(stage, at + 2, resume, "mercenary item list")?;
                Ok((
                    Part::Merc(MercPart {
                        offset: at,
                        has_items: true,
                        items,
                    }),
                    end.into(),
                ))
            }
            Stage::Golem => {
                self.header(
                    (stage, at, resume),
                    b"kf",
                    3,
                    "golem section header",
                    "golem section: expected \"kf\"",
                )?;
                match byte_at(bytes, at + 2) {
                    0 => Ok((
                        Part::Golem(GolemPart {
                            offset: at,
                            item: None,
                        }),
                        Cursor::Exact(at + 3),
                    )),
                    1 => {
                        let located = locate_items(bytes, at + 3, 1);
                        if let Some(issue) = located.issue {
                            return Err(self.fail(
                                stage,
                                issue.offset,
                                resume,
                                format!(
                                    "golem section (byte {at}): the golem's item: {}",
                                    issue.message
                                ),
                            ));
                        }
                        Ok((
                            Part::Golem(GolemPart {
                                offset: at,
                                item: located.items.into_iter().next().map(Box::new),
                            }),
                            located.end.into(),
                        ))
                    }
                    g => Err(self.fail(
                        stage,
                        at,
                        resume,
                        format!("golem section at byte {at}: golem flag {g}, expected 0 or 1"),
                    )),
                }
            }
            Stage::End => Err(self.fail(
                stage,
                at,
                resume,
                "the end of the file has no section to parse".to_string(),
            )),
        }
    }

    fn end_check(&self, cursor: Cursor) -> Result<Tail, Fail> {
        let len = self.bytes.len();
        match cursor {
            Cursor::Exact(p) if p == len => Ok(Tail::default()),
            Cursor::Exact(p) if p < len => Err(self.fail(
                Stage::End,
                p,
                p,
                format!(
                    "{} unexpected bytes after the last section, from byte {p}",
                    len - p
                ),
            )),
            Cursor::After(p) if p <= len => Ok(Tail::default()),
            other => Err(self.fail(
                Stage::End,
                len,
                other.start(),
                format!("truncated: the last section runs past the end of the file ({len} bytes)"),
            )),
        }
    }

    fn candidates(&self, stage: Stage, from: usize) -> Vec<usize> {
        let bytes = self.bytes;
        let hay = bytes.get(from..).unwrap_or(&[]);
        let marker: &[u8] = match stage {
            Stage::Corpse => b"JM",
            Stage::Merc => b"jf",
            Stage::Golem => b"kf",
            Stage::End => return Vec::new(),
        };
        memchr::memmem::find_iter(hay, marker)
            .map(|i| from + i)
            .filter(|&c| {
                stage != Stage::Corpse
                    || (byte_at(bytes, c + 2) <= 1
                        && byte_at(bytes, c + 3) == 0
                        && c + 4 <= bytes.len())
            })
            .take(MAX_CANDIDATES)
            .collect()
    }

    /// Parses `stage` and everything after it, trying each candidate position when the start
    /// is not known exactly; returns the first way the rest of the file parses completely,
    /// else the failure that got furthest.
    fn stage(&self, stage: Stage, cursor: Cursor, budget: &mut u32) -> Result<Tail, Fail> {
        let stage = match stage {
            Stage::Merc | Stage::Golem if !self.expansion => Stage::End,
            s => s,
        };
        if stage == Stage::End {
            return self.end_check(cursor);
        }
        let from = cursor.start();
        let cands = match cursor {
            Cursor::Exact(p) => vec![p],
            Cursor::After(p) => self.candidates(stage, p),
        };
        if cands.is_empty() {
            let msg = if from >= self.bytes.len() {
                format!(
                    "truncated: the file ends at byte {} before the {} section",
                    self.bytes.len(),
                    stage.name()
                )
            } else {
                match stage {
                    Stage::Corpse => format!(
                        "corpse section: no corpse header (\"JM\" and a count of 0 or 1) found after the player's items (searched from byte {from})"
                    ),
                    other => format!(
                        "{} section: no \"{}\" header found (searched from byte {from})",
                        other.name(),
                        if other == Stage::Merc { "jf" } else { "kf" }
                    ),
                }
            };
            return Err(self.fail(stage, from, from, msg));
        }
        let mut best: Option<Fail> = None;
        let keep = |f: Fail, best: &mut Option<Fail>| {
            let better = best
                .as_ref()
                .is_none_or(|b| (f.stage, f.offset) > (b.stage, b.offset));
            if better {
                *best = Some(f);
            }
        };
        for c in cands {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            match self.attempt(stage, c, from) {
                Err(f) => keep(f, &mut best),
                Ok((part, next)) => match self.stage(stage.next(), next, budget) {
                    Ok(mut tail) => {
                        tail.set(part);
                        return Ok(tail);
                    }
                    Err(mut f) => {
                        f.partial.set(part);
                        keep(f, &mut best);
                    }
                },
            }
        }
        Err(best.unwrap_or_else(|| {
            self.fail(
                stage,
                from,
                from,
                format!(
                    "{} section: gave up searching from byte {from}",
                    stage.name()
                ),
            )
        }))
    }
}

/// Reads the corpse, mercenary and golem sections that follow the player's item list.
fn parse_tail(ctx: &TailCtx<'_>, player_end: ListEnd) -> Sections {
    let mut budget: u32 = 4096;
    let mut notes = Vec::new();
    let tail = match ctx.stage(Stage::Corpse, player_end.into(), &mut budget) {
        Ok(t) => t,
        Err(f) => {
            let f = *f;
            let mut t = f.partial;
            notes.push(f.message);
            let next = f.stage.next();
            let resync = matches!(next, Stage::Merc | Stage::Golem) && ctx.expansion;
            if resync && let Ok(more) = ctx.stage(next, Cursor::After(f.resume), &mut budget) {
                let found_at = match next {
                    Stage::Merc => more.merc.as_ref().map(|m| m.offset),
                    _ => more.golem.as_ref().map(|g| g.offset),
                };
                if let Some(at) = found_at {
                    let mut msg = format!(
                        "the {} section was found at byte {at} by searching past the damage",
                        next.name()
                    );
                    if f.stage == Stage::Corpse && next == Stage::Merc && at >= f.resume + 4 {
                        msg.push_str(&format!(
                            "; the 4 bytes before it (byte {}) are {}, where the corpse header \"JM\" + count was expected",
                            at - 4,
                            describe_bytes(ctx.bytes, at - 4, 4)
                        ));
                    }
                    notes.push(msg);
                }
                t.fill_from(more);
            }
            t
        }
    };
    let golem_item = tail.golem.as_ref().and_then(|g| g.item.as_deref());
    Sections {
        corpse_offset: tail.corpse.as_ref().map(|c| c.offset),
        corpse: tail.corpse.as_ref().is_some_and(|c| c.present),
        corpse_items: tail.corpse.as_ref().map_or(0, |c| c.items),
        mercenary_offset: tail.merc.as_ref().map(|m| m.offset),
        mercenary_section: tail.merc.is_some(),
        mercenary: tail.merc.as_ref().is_some_and(|m| m.has_items),
        mercenary_items: tail.merc.as_ref().map_or(0, |m| m.items),
        golem_offset: tail.golem.as_ref().map(|g| g.offset),
        golem_section: tail.golem.is_some(),
        golem: golem_item.is_some(),
        golem_item: golem_item.and_then(|i| i.code.clone()),
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

// ------------------------------------------------------------------------------------------
// Parsing

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

// ------------------------------------------------------------------------------------------
// Writing

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

/// Writes a fresh version-96 save (1.10-1.14d) holding `spec`'s header, stats and skills, no
/// items, no corpse, no mercenary, with a valid size and checksum. The stats are written in id
/// order.
pub fn write_save(spec: &NewSave, tables: &Tables) -> Result<Vec<u8>, SaveError> {
    check_name(&spec.name)?;
    let class = tables
        .classes
        .iter()
        .find(|c| c.id == spec.class)
        .ok_or_else(|| {
            SaveError::new(format!(
                "class {} is not a class the tables know (0 to {})",
                spec.class,
                tables.classes.len().saturating_sub(1)
            ))
        })?;
    let expansion = spec.status & 0x20 != 0;
    if class.expansion && !expansion {
        return Err(SaveError::new(format!(
            "class {} ({}) exists only in the expansion: set status bit 5 (0x20)",
            class.id, class.name
        )));
    }
    if !(1..=99).contains(&spec.level) {
        return Err(SaveError::new(format!(
            "level {} is outside 1 to 99",
            spec.level
        )));
    }
    let mut stats = spec.stats.clone();
    stats.sort_by_key(|s| s.0);
    if let Some(w) = stats.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SaveError::new(format!(
            "stat {} ({}) is given twice",
            w[0].0,
            tables.stat_name(w[0].0)
        )));
    }
    if let Some(&(_, lvl)) = stats.iter().find(|s| s.0 == 12)
        && lvl != u32::from(spec.level)
    {
        return Err(SaveError::new(format!(
            "the level stat (12) is {lvl} but the header level is {}",
            spec.level
        )));
    }

    let mut out = vec![0u8; HEADER_LEN];
    let put = |out: &mut Vec<u8>, off: usize, data: &[u8]| {
        if let Some(dst) = out.get_mut(off..off + data.len()) {
            dst.copy_from_slice(data);
        }
    };
    put(&mut out, 0x00, &SIGNATURE.to_le_bytes());
    put(&mut out, 0x04, &VERSION_110.to_le_bytes());
    put(&mut out, 0x14, spec.name.as_bytes());
    put(&mut out, 0x24, &[spec.status, 0]);
    put(&mut out, 0x28, &[spec.class, 0x10, 0x1E, spec.level]);
    put(&mut out, 0x30, &spec.last_played.to_le_bytes());
    put(&mut out, 0x34, &[0xFF; 4]);
    for hotkey in 0..16 {
        put(&mut out, 0x38 + 4 * hotkey, &[0xFF, 0xFF, 0, 0]);
    }
    put(&mut out, 0x88, &[0xFF; 32]);
    put(&mut out, 0xA8, &[0x80, 0, 0]);
    put(&mut out, 0xAB, &spec.map_id.to_le_bytes());
    put(&mut out, 0x14F, b"Woo!");
    put(&mut out, 0x153, &[6, 0, 0, 0, 0x2A, 0x01]);
    put(&mut out, 0x279, b"WS");
    put(&mut out, 0x27B, &[1, 0, 0, 0, 0x50, 0]);
    for d in 0..3 {
        put(&mut out, 0x281 + 24 * d, &[2, 1, 1]);
    }
    put(&mut out, 0x2C9, &[1]);
    put(&mut out, 0x2CA, b"w4");

    out.extend_from_slice(b"gf");
    let mut w = crate::bits::BitWriter::new();
    for &(id, value) in &stats {
        let stat = tables
            .stats
            .get(&id)
            .ok_or_else(|| SaveError::new(format!("stat id {id} is not a stat the tables know")))?;
        let width = stat.save_bits.ok_or_else(|| {
            SaveError::new(format!(
                "stat {id} ({}) cannot be stored in a save (no save width)",
                stat.name
            ))
        })?;
        let raw = u64::from(value) << stat.shift;
        let limit = 1u64 << width;
        if raw >= limit {
            return Err(SaveError::new(format!(
                "stat {id} ({}): {value} is too large, at most {}",
                stat.name,
                (limit - 1) >> stat.shift
            )));
        }
        w.write(u32::from(id), 9)
            .and_then(|()| w.write(raw as u32, width))
            .map_err(|e| SaveError::new(format!("stat {id} ({}): {e}", stat.name)))?;
    }
    w.write(0x1FF, 9)
        .map_err(|e| SaveError::new(format!("stats terminator: {e}")))?;
    w.align_to_byte();
    out.extend_from_slice(w.as_bytes());
    out.extend_from_slice(b"if");
    out.extend_from_slice(&spec.skills);
    out.extend_from_slice(b"JM\0\0");
    out.extend_from_slice(b"JM\0\0");
    if expansion {
        out.extend_from_slice(b"jfkf\0");
    }
    let size = u32::try_from(out.len())
        .map_err(|_| SaveError::new("the save would be larger than 4 GiB"))?;
    put(&mut out, 0x08, &size.to_le_bytes());
    let sum = checksum(&out);
    put(&mut out, 0x0C, &sum.to_le_bytes());
    Ok(out)
}

// ------------------------------------------------------------------------------------------
// Comparing

fn summary(item: &SaveItem) -> ItemSummary {
    ItemSummary {
        offset: item.offset,
        code: item.code.clone(),
        ear: item.ear,
        location_name: item.location_name.clone(),
        body_location_name: item.body_location_name.clone(),
        storage_name: item.storage_name.clone(),
        x: item.x,
        y: item.y,
        quality_name: item.quality_name.clone(),
        unique_id: item.unique_id.clone(),
    }
}

/// Everything that identifies an item in place, except its byte offset.
fn item_key(item: &SaveItem) -> SaveItem {
    SaveItem {
        offset: 0,
        socketed_in: None,
        ..item.clone()
    }
}

fn text_change(out: &mut Vec<FieldChange>, field: &str, before: String, after: String) {
    if before != after {
        out.push(FieldChange {
            field: field.to_string(),
            before,
            after,
        });
    }
}

/// What changed from `a` to `b`: header fields, stats, skills, items (matched by everything
/// but their byte offset; full items with the same unique id elsewhere count as moved) and
/// the trailing sections.
pub fn diff_saves(a: &SaveFile, b: &SaveFile) -> SaveDiff {
    let (ha, hb) = (&a.header, &b.header);
    let level = (ha.level != hb.level).then(|| ValueChange {
        before: u32::from(ha.level),
        after: u32::from(hb.level),
    });
    let mut header_changed = Vec::new();
    let class_text = |c: &ClassRef| match &c.name {
        Some(n) => format!("{} ({n})", c.id),
        None => c.id.to_string(),
    };
    let opt = |v: Option<u32>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
    text_change(
        &mut header_changed,
        "version",
        ha.version.to_string(),
        hb.version.to_string(),
    );
    text_change(
        &mut header_changed,
        "name",
        ha.name.clone(),
        hb.name.clone(),
    );
    text_change(
        &mut header_changed,
        "class",
        class_text(&ha.class),
        class_text(&hb.class),
    );
    text_change(
        &mut header_changed,
        "status",
        format!("0x{:02X}", ha.status.raw),
        format!("0x{:02X}", hb.status.raw),
    );
    text_change(
        &mut header_changed,
        "progression",
        ha.progression.to_string(),
        hb.progression.to_string(),
    );
    text_change(
        &mut header_changed,
        "last_played",
        opt(ha.last_played),
        opt(hb.last_played),
    );
    text_change(
        &mut header_changed,
        "map_id",
        ha.map_id.to_string(),
        hb.map_id.to_string(),
    );
    let diff_text = |h: &Header| {
        h.difficulty
            .iter()
            .map(|d| format!("{}:{:02X}", d.difficulty, d.raw))
            .collect::<Vec<_>>()
            .join(" ")
    };
    text_change(
        &mut header_changed,
        "difficulty",
        diff_text(ha),
        diff_text(hb),
    );
    let merc_text = |h: &Header| {
        h.mercenary.as_ref().map_or_else(
            || "none".to_string(),
            |m| {
                format!(
                    "id {} type {} name {} experience {}{}",
                    m.id,
                    m.type_id,
                    m.name_id,
                    m.experience,
                    if m.dead { " (dead)" } else { "" }
                )
            },
        )
    };
    text_change(
        &mut header_changed,
        "mercenary",
        merc_text(ha),
        merc_text(hb),
    );

    let mut stat_ids: Vec<u16> = a.stats.iter().chain(&b.stats).map(|s| s.id).collect();
    stat_ids.sort_unstable();
    stat_ids.dedup();
    let stats_changed = stat_ids
        .into_iter()
        .filter_map(|id| {
            let sa = a.stats.iter().find(|s| s.id == id);
            let sb = b.stats.iter().find(|s| s.id == id);
            let (before, after) = (sa.map(|s| s.value), sb.map(|s| s.value));
            (before != after || sa.map(|s| s.raw) != sb.map(|s| s.raw)).then(|| StatChange {
                id,
                name: sa.or(sb).map(|s| s.name.clone()).unwrap_or_default(),
                before,
                after,
            })
        })
        .collect();

    let mut skill_ids: Vec<u16> = a.skills.iter().chain(&b.skills).map(|s| s.id).collect();
    skill_ids.sort_unstable();
    skill_ids.dedup();
    let skills_changed = skill_ids
        .into_iter()
        .filter_map(|id| {
            let sa = a.skills.iter().find(|s| s.id == id);
            let sb = b.skills.iter().find(|s| s.id == id);
            let (before, after) = (sa.map(|s| s.level), sb.map(|s| s.level));
            (before != after).then(|| SkillChange {
                id,
                name: sa.or(sb).map(|s| s.name.clone()).unwrap_or_default(),
                before,
                after,
            })
        })
        .collect();

    // Items: first exact matches (all fields but the offset), then moves by unique id.
    let mut left: Vec<&SaveItem> = a.items.items.iter().collect();
    let mut right: Vec<Option<&SaveItem>> = b.items.items.iter().map(Some).collect();
    left.retain(|ia| {
        let key = item_key(ia);
        let hit = right
            .iter_mut()
            .find(|r| r.is_some_and(|ib| item_key(ib) == key));
        match hit {
            Some(slot) => {
                *slot = None;
                false
            }
            None => true,
        }
    });
    let mut items_moved = Vec::new();
    left.retain(|ia| {
        let Some(uid) = &ia.unique_id else {
            return true;
        };
        let hit = right
            .iter_mut()
            .find(|r| r.is_some_and(|ib| ib.unique_id.as_ref() == Some(uid) && ib.code == ia.code));
        match hit {
            Some(slot) => {
                if let Some(ib) = slot.take() {
                    items_moved.push(ItemMove {
                        before: summary(ia),
                        after: summary(ib),
                    });
                }
                false
            }
            None => true,
        }
    });
    let items_removed: Vec<ItemSummary> = left.into_iter().map(summary).collect();
    let items_added: Vec<ItemSummary> = right.into_iter().flatten().map(summary).collect();

    let mut sections_changed = Vec::new();
    let (sa, sb) = (&a.sections, &b.sections);
    text_change(
        &mut sections_changed,
        "corpse",
        format!("{} ({} items)", sa.corpse, sa.corpse_items),
        format!("{} ({} items)", sb.corpse, sb.corpse_items),
    );
    text_change(
        &mut sections_changed,
        "mercenary",
        format!("{} ({} items)", sa.mercenary, sa.mercenary_items),
        format!("{} ({} items)", sb.mercenary, sb.mercenary_items),
    );
    text_change(
        &mut sections_changed,
        "golem",
        format!("{} {:?}", sa.golem, sa.golem_item),
        format!("{} {:?}", sb.golem, sb.golem_item),
    );

    let mut diff = SaveDiff {
        identical: false,
        level,
        header_changed,
        stats_changed,
        skills_changed,
        items_added,
        items_removed,
        items_moved,
        sections_changed,
    };
    diff.identical = diff.level.is_none()
        && diff.header_changed.is_empty()
        && diff.stats_changed.is_empty()
        && diff.skills_changed.is_empty()
        && diff.items_added.is_empty()
        && diff.items_removed.is_empty()
        && diff.items_moved.is_empty()
        && diff.sections_changed.is_empty();
    diff
}

// ------------------------------------------------------------------------------------------
// Tests

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The shared saves, or None after `mcp_testkit::skipped` (which fails under
    /// REQUIRE_SHARED_FIXTURES) when they are absent.
    pub(crate) fn fixtures() -> Option<PathBuf> {
        mcp_testkit::shared_fixtures("d2s")
    }

    fn load(dir: &std::path::Path, name: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        Ok(std::fs::read(dir.join(name))?)
    }

    type Named = Vec<(String, Vec<u8>)>;

    fn saves(dir: &std::path::Path) -> Result<Named, Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "d2s") {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push((name, std::fs::read(&path)?));
            }
        }
        out.sort();
        Ok(out)
    }

    fn stat(save: &SaveFile, name: &str) -> Option<u32> {
        save.stats.iter().find(|s| s.name == name).map(|s| s.value)
    }

    #[test]
    fn checksum_matches_the_reference_rule() {
        let data: Vec<u8> = (0..40u8).collect();
        let mut sum = 0u32;
        for (i, &b) in data.iter().enumerate() {
            let b = if (12..16).contains(&i) { 0 } else { b };
            // As the d2s-format notes write it: shift left, carry the top bit in, add.
            let carry = u32::from(sum & 0x8000_0000 != 0);
            sum = (sum << 1).wrapping_add(carry).wrapping_add(u32::from(b));
        }
        assert_eq!(checksum(&data), sum);
    }

    #[test]
    fn fixtures_parse_and_checksums_hold() -> TestResult {
        let Some(dir) = fixtures() else {
            return Ok(());
        };
        let tables = Tables::load()?;
        let all = saves(&dir)?;
        assert!(
            all.len() >= 10,
            "expected the fixture saves, found {}",
            all.len()
        );
        for (name, bytes) in &all {
            let save = parse_save(bytes, &tables).map_err(|e| format!("{name}: {e}"))?;
            println!(
                "{name}: v{} {:?} class {:?} level {} items {}/{} note {:?} sections {:?} warnings {:?}",
                save.header.version,
                save.header.name,
                save.header.class.name,
                save.header.level,
                save.items.items.len(),
                save.items.count,
                save.items.note,
                save.sections,
                save.warnings
            );
            for item in &save.items.items {
                println!(
                    "    @{} {:?} ear={} loc={} body={} ({},{}) storage={} compact={} sockets={} q={:?} ilvl={:?}",
                    item.offset,
                    item.code,
                    item.ear,
                    item.location_name,
                    item.body_location,
                    item.x,
                    item.y,
                    item.storage_name,
                    item.flags.compact,
                    item.socketed_items,
                    item.quality_name,
                    item.item_level
                );
            }
            if save.header.version < 92 {
                assert!(!save.layout_supported, "{name}");
                continue;
            }
            let damaged = name == "err-eof.d2s" || name == "badcorpseheader.d2s";
            assert_eq!(save.checksum.valid, !damaged, "{name}: checksum");
            if save.header.version == 96 && !damaged {
                assert!(save.layout_supported, "{name}");
                assert!(save.warnings.is_empty(), "{name}: {:?}", save.warnings);
                assert_eq!(save.items.note, None, "{name}");
                assert_eq!(
                    save.items
                        .items
                        .iter()
                        .filter(|i| i.socketed_in.is_none())
                        .count(),
                    usize::from(save.items.count),
                    "{name}"
                );
                assert_eq!(save.sections.note, None, "{name}");
                assert!(save.sections.corpse_offset.is_some(), "{name}");
                assert_eq!(
                    save.sections.mercenary_section, save.header.status.expansion,
                    "{name}"
                );
                assert_eq!(save.skills.len(), 30, "{name}");
            }
        }
        Ok(())
    }

    #[test]
    fn d2v113c_matches_the_known_facts() -> TestResult {
        let Some(dir) = fixtures() else {
            return Ok(());
        };
        let tables = Tables::load()?;
        let save = parse_save(&load(&dir, "d2v113c.d2s")?, &tables)?;
        let h = &save.header;
        assert_eq!(h.version, 96);
        assert_eq!(h.name, "test");
        assert_eq!(h.class.id, 1);
        assert_eq!(h.class.name.as_deref(), Some("Sorceress"));
        assert_eq!(h.level, 3);
        assert_eq!(h.status.raw, 0x28);
        assert!(h.status.expansion && h.status.died && !h.status.hardcore);
        assert_eq!(h.file_size, Some(913));
        assert_eq!(h.actual_size, 913);
        assert!(h.mercenary.is_none());
        assert_eq!(
            h.difficulty.first().map(|d| (d.active, d.act)),
            Some((true, 1))
        );
        assert!(save.checksum.valid);
        assert_eq!(save.checksum.stored.as_deref(), Some("0x30E59A03"));
        let expected = [
            ("strength", 10),
            ("energy", 35),
            ("dexterity", 25),
            ("vitality", 10),
            ("stat_points", 10),
            ("skill_points", 2),
            ("life", 40),
            ("max_life", 42),
            ("mana", 39),
            ("max_mana", 39),
            ("stamina", 76),
            ("max_stamina", 76),
            ("level", 3),
            ("experience", 1680),
        ];
        for (name, value) in expected {
            assert_eq!(stat(&save, name), Some(value), "{name}");
        }
        assert_eq!(save.stats.len(), expected.len());
        assert_eq!(save.skills.len(), 30);
        assert_eq!(save.skills.first().map(|s| s.id), Some(36));
        assert_eq!(save.items.count, 4);
        assert_eq!(save.items.items.len(), 4);
        for item in &save.items.items {
            assert!(item.flags.compact);
            assert_eq!(item.location_name, "belt");
        }
        assert!(!save.sections.corpse);
        assert!(save.sections.mercenary_section && !save.sections.mercenary);
        assert!(save.sections.golem_section && !save.sections.golem);
        Ok(())
    }

    #[test]
    fn old_versions_are_reported_as_unsupported() -> TestResult {
        let Some(dir) = fixtures() else {
            return Ok(());
        };
        let tables = Tables::load()?;
        for (file, version) in [("d2v107.d2s", 87), ("d2v108.d2s", 89), ("d2v109b.d2s", 92)] {
            let save = parse_save(&load(&dir, file)?, &tables)?;
            assert_eq!(save.header.version, version, "{file}");
            assert!(!save.layout_supported, "{file}");
            let why = save.unsupported.as_deref().unwrap_or("");
            assert!(why.contains(&format!("version {version}")), "{file}: {why}");
            assert!(save.stats.is_empty() && save.items.items.is_empty());
            println!("{file}: {:?}", save.header);
        }
        let old = parse_save(&load(&dir, "d2v107.d2s")?, &tables)?;
        assert_eq!(old.header.name, "testtt");
        assert_eq!(old.header.class.name.as_deref(), Some("Barbarian"));
        assert_eq!(old.header.level, 1);
        assert_eq!(old.header.file_size, None);
        assert!(old.checksum.stored.is_none() && !old.checksum.valid);
        let old = parse_save(&load(&dir, "d2v108.d2s")?, &tables)?;
        assert_eq!(old.header.class.id, 4);
        assert_eq!(old.header.level, 1);
        assert!(!old.header.name.is_empty());
        let v109 = parse_save(&load(&dir, "d2v109b.d2s")?, &tables)?;
        assert_eq!(v109.header.name, "sdfsf");
        assert!(v109.checksum.valid);
        Ok(())
    }

    #[test]
    fn damaged_fixtures_name_the_damage() -> TestResult {
        let Some(dir) = fixtures() else {
            return Ok(());
        };
        let tables = Tables::load()?;
        // err-eof.d2s: a parsed result whose warnings and size fields name the truncation.
        let save = parse_save(&load(&dir, "err-eof.d2s")?, &tables)?;
        assert_eq!(save.header.file_size, Some(981));
        assert_eq!(save.header.actual_size, 978);
        assert!(!save.checksum.valid);
        assert!(
            save.warnings
                .iter()
                .any(|w| w.starts_with("truncated") && w.contains("981")),
            "{:?}",
            save.warnings
        );
        let note = save.sections.note.clone().unwrap_or_default();
        assert!(note.contains("golem"), "{note}");
        // badcorpseheader.d2s: the note names the corpse section.
        let save = parse_save(&load(&dir, "badcorpseheader.d2s")?, &tables)?;
        assert!(!save.checksum.valid);
        assert_eq!(save.items.note, None);
        let note = save.sections.note.clone().unwrap_or_default();
        assert!(note.contains("corpse section"), "{note}");
        assert!(note.contains("JL"), "{note}");
        assert!(save.sections.mercenary_section && save.sections.golem_section);
        Ok(())
    }

    #[test]
    fn golem_merc_and_ear_sections() -> TestResult {
        let Some(dir) = fixtures() else {
            return Ok(());
        };
        let tables = Tables::load()?;
        let golem = parse_save(&load(&dir, "golem.d2s")?, &tables)?;
        assert!(golem.sections.golem_section && golem.sections.golem);
        assert!(golem.sections.golem_item.is_some());
        let nomerc = parse_save(&load(&dir, "nomerc.d2s")?, &tables)?;
        assert!(nomerc.header.mercenary.is_none());
        assert!(!nomerc.sections.mercenary);
        assert!(nomerc.sections.mercenary_section);
        let classic = parse_save(&load(&dir, "classic.d2s")?, &tables)?;
        assert!(!classic.header.status.expansion);
        assert!(!classic.sections.mercenary_section && !classic.sections.golem_section);
        let ear = parse_save(&load(&dir, "ear.d2s")?, &tables)?;
        let ears: Vec<&SaveItem> = ear.items.items.iter().filter(|i| i.ear).collect();
        assert_eq!(ears.len(), 1);
        let owner = ears
            .first()
            .and_then(|e| e.ear_owner.clone())
            .ok_or("no owner")?;
        // d2itemreader's ear test: class 4, level 34, "abcdejdjkdjkjdj".
        assert_eq!(owner.class.id, 4);
        assert_eq!(owner.class.name.as_deref(), Some("Barbarian"));
        assert_eq!(owner.level, 34);
        assert_eq!(owner.name, "abcdejdjkdjkjdj");
        assert!(ears.iter().all(|e| e.code.is_none() && e.size == Some(25)));
        Ok(())
    }

    #[test]
    fn every_prefix_parses_or_errors() -> TestResult {
        let Some(dir) = fixtures() else {
            return Ok(());
        };
        let tables = Tables::load()?;
        for file in ["d2v113c.d2s", "golem.d2s", "sets.d2s"] {
            let bytes = load(&dir, file)?;
            for n in 0..=bytes.len() {
                let prefix = bytes.get(..n).ok_or("prefix")?;
                match parse_save(prefix, &tables) {
                    Ok(save) => {
                        if n < bytes.len() {
                            assert!(
                                save.warnings.iter().any(|w| w.starts_with("truncated")),
                                "{file}[..{n}]"
                            );
                        }
                    }
                    Err(e) => assert!(!e.message.is_empty()),
                }
            }
        }
        Ok(())
    }

    #[test]
    fn bad_inputs_give_errors_that_say_why() -> TestResult {
        let tables = Tables::load()?;
        let e = parse_save(b"hello world", &tables)
            .err()
            .ok_or("accepted")?;
        assert!(e.message.contains("signature 0x6C6C6568"), "{e}");
        assert_eq!(e.offset, Some(0));
        let mut bytes = SIGNATURE.to_le_bytes().to_vec();
        bytes.extend_from_slice(&1234u32.to_le_bytes());
        bytes.resize(900, 0);
        let e = parse_save(&bytes, &tables).err().ok_or("accepted")?;
        assert!(e.message.contains("version 1234"), "{e}");
        let e = parse_save(&bytes[..3], &tables).err().ok_or("accepted")?;
        assert!(e.message.starts_with("truncated"), "{e}");
        bytes.splice(4..8, 98u32.to_le_bytes());
        let e = parse_save(&bytes, &tables).err().ok_or("accepted")?;
        assert!(e.message.contains("version 98"), "{e}");
        Ok(())
    }

    fn sample() -> NewSave {
        let mut skills = [0u8; 30];
        skills[0] = 1;
        skills[7] = 20;
        NewSave {
            name: "Writer_test".to_string(),
            class: 5,
            level: 12,
            status: 0x20 | 0x04,
            last_played: 1_700_000_000,
            map_id: 0x1234_5678,
            stats: vec![
                (13, 98_765),
                (0, 40),
                (1, 25),
                (2, 30),
                (3, 55),
                (4, 5),
                (5, 1),
                (6, 321),
                (7, 330),
                (8, 100),
                (9, 120),
                (10, 150),
                (11, 160),
                (12, 12),
                (14, 5000),
                (15, 250_000),
            ],
            skills,
        }
    }

    #[test]
    fn writer_round_trips() -> TestResult {
        let tables = Tables::load()?;
        let spec = sample();
        let bytes = write_save(&spec, &tables)?;
        let save = parse_save(&bytes, &tables)?;
        assert!(save.checksum.valid, "{:?}", save.checksum);
        assert!(save.warnings.is_empty(), "{:?}", save.warnings);
        assert_eq!(save.header.file_size, Some(u32::try_from(bytes.len())?));
        assert_eq!(save.header.name, spec.name);
        assert_eq!(save.header.class.id, 5);
        assert_eq!(save.header.level, 12);
        assert_eq!(save.header.status.raw, 0x24);
        assert!(save.header.status.hardcore && save.header.status.expansion);
        assert_eq!(save.header.last_played, Some(1_700_000_000));
        assert_eq!(save.header.map_id, 0x1234_5678);
        let mut want = spec.stats.clone();
        want.sort_unstable();
        let got: Vec<(u16, u32)> = save.stats.iter().map(|s| (s.id, s.value)).collect();
        assert_eq!(got, want);
        assert_eq!(
            save.stats.iter().find(|s| s.id == 6).map(|s| s.raw),
            Some(321 << 8)
        );
        let levels: Vec<u8> = save.skills.iter().map(|s| s.level).collect();
        assert_eq!(levels, spec.skills.to_vec());
        assert_eq!(save.skills.first().map(|s| s.id), Some(221));
        assert_eq!(save.items.count, 0);
        assert_eq!(save.items.note, None);
        assert_eq!(save.sections.note, None);
        assert!(save.sections.mercenary_section && save.sections.golem_section);
        // Writing the parsed values again gives the same bytes.
        let again = write_save(&NewSave::from_save(&save)?, &tables)?;
        assert_eq!(again, bytes);
        assert!(diff_saves(&save, &parse_save(&again, &tables)?).identical);
        // A classic character has no "jf"/"kf".
        let classic = NewSave {
            class: 1,
            status: 0,
            ..spec
        };
        let save = parse_save(&write_save(&classic, &tables)?, &tables)?;
        assert!(save.checksum.valid && save.sections.note.is_none());
        assert!(!save.sections.mercenary_section);
        Ok(())
    }

    #[test]
    fn writer_rejects_bad_values() -> TestResult {
        let tables = Tables::load()?;
        let bad = |f: &dyn Fn(&mut NewSave)| {
            let mut s = sample();
            f(&mut s);
            write_save(&s, &tables).err().map(|e| e.message)
        };
        assert!(bad(&|s| s.name = "x".into()).is_some_and(|m| m.contains("name")));
        assert!(bad(&|s| s.name = "a1b".into()).is_some());
        assert!(bad(&|s| s.class = 9).is_some_and(|m| m.contains("class 9")));
        assert!(bad(&|s| s.status = 0).is_some_and(|m| m.contains("expansion")));
        assert!(bad(&|s| s.level = 0).is_some());
        assert!(bad(&|s| s.stats.push((0, 1))).is_some_and(|m| m.contains("twice")));
        assert!(bad(&|s| s.stats.push((20, 1))).is_some_and(|m| m.contains("no save width")));
        assert!(bad(&|s| s.stats[0] = (13, 5)).is_none());
        assert!(bad(&|s| s.stats[1] = (0, 1024)).is_some_and(|m| m.contains("at most 1023")));
        assert!(bad(&|s| s.stats[7] = (6, 8192)).is_some_and(|m| m.contains("at most 8191")));
        assert!(bad(&|s| s.stats[13] = (12, 13)).is_some_and(|m| m.contains("level")));
        Ok(())
    }

    /// One item's bytes: a compact item (111 bits) or a full item padded to 24 bytes.
    #[allow(clippy::too_many_arguments)]
    fn item_bytes(
        code: &str,
        compact: bool,
        location: u32,
        body: u32,
        x: u32,
        y: u32,
        storage: u32,
        sockets: u32,
    ) -> Result<Vec<u8>, BitError> {
        let mut w = crate::bits::BitWriter::new();
        w.write(u32::from(b'J'), 8)?;
        w.write(u32::from(b'M'), 8)?;
        w.write(0, 4)?;
        w.write(1, 1)?; // 20 identified
        w.write(0, 16)?; // 21..37
        w.write(u32::from(compact), 1)?; // 37
        w.write(0b11, 2)?; // 38 ethereal, 39
        w.write(0, 8)?; // 40..48
        w.write(101, 8)?; // 48 version
        w.write(0, 2)?;
        w.write(location, 3)?;
        w.write(body, 4)?;
        w.write(x, 4)?;
        w.write(y, 4)?;
        w.write(storage, 3)?;
        for c in code.bytes().chain(std::iter::repeat(b' ')).take(4) {
            w.write(u32::from(c), 8)?;
        }
        w.write(sockets, 3)?;
        if !compact {
            w.write(0xDEAD_BEEF, 32)?;
            w.write(30, 7)?;
            w.write(2, 4)?;
        }
        w.align_to_byte();
        let mut bytes = w.into_bytes();
        if !compact {
            bytes.resize(24, 0);
        }
        Ok(bytes)
    }

    #[test]
    fn corpse_mercenary_golem_and_sockets_are_located() -> TestResult {
        let tables = Tables::load()?;
        let base = write_save(&sample(), &tables)?;
        let mut bytes = base.get(..base.len() - 13).ok_or("short")?.to_vec();
        let jm = |n: u16| {
            let mut v = b"JM".to_vec();
            v.extend_from_slice(&n.to_le_bytes());
            v
        };
        // Player: a shield with one rune in its socket, then a potion in the belt.
        bytes.extend(jm(2));
        bytes.extend(item_bytes("buc", false, 1, 5, 0, 0, 0, 1)?);
        bytes.extend(item_bytes("r01", true, 6, 0, 0, 0, 0, 0)?);
        bytes.extend(item_bytes("hp1", true, 2, 0, 1, 0, 0, 0)?);
        // Corpse: one corpse, 12 unknown bytes, one full item.
        bytes.extend(jm(1));
        bytes.extend([0u8; 12]);
        bytes.extend(jm(1));
        bytes.extend(item_bytes("cap", false, 1, 1, 0, 0, 0, 0)?);
        // Mercenary: two items, the last one full.
        bytes.extend(b"jf");
        bytes.extend(jm(2));
        bytes.extend(item_bytes("hp2", true, 0, 0, 0, 0, 1, 0)?);
        bytes.extend(item_bytes("lbt", false, 1, 9, 0, 0, 0, 0)?);
        // Iron golem made from a full item.
        bytes.extend(b"kf\x01");
        bytes.extend(item_bytes("7ls", false, 0, 0, 0, 0, 1, 0)?);
        bytes.splice(0xB3..0xB7, 0x1234_5678u32.to_le_bytes());
        let size = u32::try_from(bytes.len())?;
        bytes.splice(8..12, size.to_le_bytes());
        let sum = checksum(&bytes);
        bytes.splice(12..16, sum.to_le_bytes());

        let save = parse_save(&bytes, &tables)?;
        assert!(
            save.checksum.valid && save.warnings.is_empty(),
            "{:?}",
            save.warnings
        );
        assert_eq!(save.items.note, None);
        assert_eq!(save.items.count, 2);
        let codes: Vec<(Option<&str>, Option<usize>)> = save
            .items
            .items
            .iter()
            .map(|i| (i.code.as_deref(), i.socketed_in))
            .collect();
        let shield = save.items.items.first().ok_or("no items")?;
        assert_eq!(
            codes,
            vec![
                (Some("buc"), None),
                (Some("r01"), Some(shield.offset)),
                (Some("hp1"), None)
            ]
        );
        assert_eq!(shield.unique_id.as_deref(), Some("DEADBEEF"));
        assert_eq!(shield.item_level, Some(30));
        assert_eq!(shield.quality_name.as_deref(), Some("normal"));
        assert_eq!(shield.body_location_name.as_deref(), Some("left_hand"));
        assert!(shield.flags.identified && shield.flags.ethereal && !shield.flags.compact);
        let s = &save.sections;
        assert_eq!(s.note, None);
        assert!(s.corpse && s.corpse_items == 1);
        assert!(s.mercenary_section && s.mercenary && s.mercenary_items == 2);
        assert!(s.golem_section && s.golem);
        assert_eq!(s.golem_item.as_deref(), Some("7ls"));
        assert_eq!(
            save.header.mercenary.as_ref().map(|m| m.id),
            Some(0x1234_5678)
        );
        // The same file without the mercenary id: the "jf" list is unexpected, and says so.
        let mut nomerc = bytes.clone();
        nomerc.splice(0xB3..0xB7, [0u8; 4]);
        let save = parse_save(&nomerc, &tables)?;
        assert!(save.sections.note.is_some_and(|n| n.contains("golem")));
        Ok(())
    }

    #[test]
    fn results_serialize_and_have_schemas() -> TestResult {
        let tables = Tables::load()?;
        let save = parse_save(&write_save(&sample(), &tables)?, &tables)?;
        let json = serde_json::to_value(&save)?;
        assert_eq!(json["header"]["class"]["name"], "Druid");
        assert_eq!(json["checksum"]["valid"], true);
        let diff = serde_json::to_value(diff_saves(&save, &save))?;
        assert_eq!(diff["identical"], true);
        for schema in [
            schemars::schema_for!(SaveFile),
            schemars::schema_for!(SaveDiff),
            schemars::schema_for!(crate::stash::Stash),
        ] {
            assert!(serde_json::to_string(&schema)?.contains("properties"));
        }
        Ok(())
    }

    #[test]
    fn absurd_item_counts_are_noted() -> TestResult {
        let tables = Tables::load()?;
        let mut bytes = write_save(&sample(), &tables)?;
        let list = bytes.len() - 13;
        assert_eq!(bytes.get(list..list + 2), Some(&b"JM"[..]));
        bytes.splice(list + 2..list + 4, 60000u16.to_le_bytes());
        let save = parse_save(&bytes, &tables)?;
        assert_eq!(save.items.count, 60000);
        let note = save.items.note.unwrap_or_default();
        assert!(note.contains("60000"), "{note}");
        assert!(save.sections.note.is_some());
        Ok(())
    }

    #[test]
    fn diff_reports_changes() -> TestResult {
        let tables = Tables::load()?;
        let a = parse_save(&write_save(&sample(), &tables)?, &tables)?;
        let mut spec = sample();
        spec.level = 13;
        for s in &mut spec.stats {
            if s.0 == 12 {
                s.1 = 13;
            }
            if s.0 == 0 {
                s.1 = 45;
            }
        }
        spec.skills[7] = 19;
        spec.stats.retain(|s| s.0 != 15);
        let b = parse_save(&write_save(&spec, &tables)?, &tables)?;
        let d = diff_saves(&a, &b);
        assert!(!d.identical);
        assert_eq!(
            d.level,
            Some(ValueChange {
                before: 12,
                after: 13
            })
        );
        let changed: Vec<(u16, Option<u32>, Option<u32>)> = d
            .stats_changed
            .iter()
            .map(|s| (s.id, s.before, s.after))
            .collect();
        assert_eq!(
            changed,
            vec![
                (0, Some(40), Some(45)),
                (12, Some(12), Some(13)),
                (15, Some(250_000), None)
            ]
        );
        assert_eq!(d.skills_changed.len(), 1);
        let Some(dir) = fixtures() else {
            return Ok(());
        };
        let golem = parse_save(&load(&dir, "golem.d2s")?, &tables)?;
        let classic = parse_save(&load(&dir, "classic.d2s")?, &tables)?;
        let d = diff_saves(&golem, &classic);
        assert!(!d.identical);
        assert!(!d.sections_changed.is_empty());
        Ok(())
    }
}
