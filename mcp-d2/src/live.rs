//! The running game, read through mcp-memory's library: which processes are Diablo II and
//! which version, the player's character, its inventory, and the unit hash tables.
//!
//! Every offset comes from the data files (`schemas/d2/versions.json` for globals,
//! `schemas/layouts/d2-1.13c.json` for structures); pointers are 32-bit, as in the game.

use crate::tables::{Tables, Version};
use mcp_memory::modules::{self, Module, ModuleKind};
use mcp_memory::procfs;
use mcp_memory::reader::{MemError, ProcessMemory};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Why the game could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// No Diablo II process (or not the given pid).
    #[error("{0}")]
    NoGame(String),
    /// Several Diablo II processes run and none was named: their pids.
    #[error("{} Diablo II processes are running (pids {})", .0.len(), pid_list(.0))]
    SeveralGames(Vec<u32>),
    /// The version could not be recognised and none was given.
    #[error("{0}")]
    UnknownVersion(String),
    /// A read failed; `what` names the structure being read.
    #[error("reading {what}: {error}")]
    Read { what: String, error: MemError },
    /// A structure is not where it should be (null player pointer: not in a game).
    #[error("{0}")]
    NotInGame(String),
}

/// `1, 2, 3`: the pids of [`LiveError::SeveralGames`].
fn pid_list(pids: &[u32]) -> String {
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    list.join(", ")
}

/// A Diablo II process as `find_game` reports it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GameInfo {
    pub pid: u32,
    pub name: String,
    pub is_wine: bool,
    /// `1.13c`, `1.13d`, `1.14d` or `unknown`.
    pub version: String,
    /// Project Diablo 2: PD2_EXT.dll or ProjectDiablo.dll loaded.
    pub pd2: bool,
    /// How the version was recognised.
    pub recognised_by: String,
    /// The game's modules with their bases.
    pub modules: Vec<GameModule>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GameModule {
    pub name: String,
    pub base: suite_core::Address,
    pub size: u64,
}

/// Modules that identify a Diablo II process.
const GAME_MODULES: &[&str] = &[
    "D2Client.dll",
    "D2Common.dll",
    "D2Win.dll",
    "D2Gfx.dll",
    "D2Game.dll",
    "D2Net.dll",
    "D2Lang.dll",
    "D2Launch.dll",
    "Fog.dll",
    "Storm.dll",
    "Game.exe",
];

/// The file version in a PE file's VS_FIXEDFILEINFO (`1.0.13.60`).
pub fn file_version(bytes: &[u8]) -> Option<String> {
    let sig = 0xFEEF04BDu32.to_le_bytes();
    let at = memchr::memmem::find(bytes, &sig)?;
    let rd = |o: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            bytes.get(at + o..at + o + 4)?.try_into().ok()?,
        ))
    };
    let ms = rd(8)?;
    let ls = rd(12)?;
    Some(format!(
        "{}.{}.{}.{}",
        ms >> 16,
        ms & 0xFFFF,
        ls >> 16,
        ls & 0xFFFF
    ))
}

/// Recognises the version from the versioned module's file on disk (each file read once).
fn recognise(tables: &Tables, mods: &[Module]) -> (Option<Version>, String) {
    let mut read: Vec<(String, Option<String>)> = Vec::new();
    let mut seen = Vec::new();
    for v in &tables.versions {
        let Some(m) = modules::find(mods, &v.module) else {
            continue;
        };
        let path = m.path.trim_end_matches(" (deleted)").to_string();
        let fv = match read.iter().find(|(p, _)| *p == path) {
            Some((_, fv)) => fv.clone(),
            None => {
                let fv = std::fs::read(&path).ok().as_deref().and_then(file_version);
                read.push((path.clone(), fv.clone()));
                fv
            }
        };
        if fv.as_deref() == Some(v.file_version.as_str()) {
            let fv = v.file_version.as_str();
            return (
                Some(v.clone()),
                format!("{} file version {fv} ({path})", v.module),
            );
        }
        let shown = fv.unwrap_or_else(|| "no version resource".into());
        seen.push(format!("{} {shown}", v.module));
    }
    (
        None,
        if seen.is_empty() {
            "no versioned game module found".into()
        } else {
            format!("not a known version: {}", seen.join(", "))
        },
    )
}

/// A Diablo II process maps D2Client.dll (1.13 and older) or Game.exe (1.14, one image).
fn is_game(mods: &[Module]) -> bool {
    mods.iter().any(|m| {
        m.kind == ModuleKind::Pe
            && (m.name.eq_ignore_ascii_case("D2Client.dll")
                || m.name.eq_ignore_ascii_case("Game.exe"))
    })
}

/// Every running Diablo II process.
pub fn find_games(tables: &Tables) -> Vec<GameInfo> {
    let mut out = Vec::new();
    for p in procfs::list_processes(None) {
        let Ok(mem) = ProcessMemory::open(p.pid) else {
            continue;
        };
        let Ok(regions) = procfs::read_maps(p.pid) else {
            continue;
        };
        // Cheap filter before reading module headers.
        if !regions.iter().any(|r| {
            r.path.as_deref().is_some_and(|path| {
                let lower = path.to_lowercase();
                lower.ends_with("d2client.dll") || lower.ends_with("game.exe")
            })
        }) {
            continue;
        }
        let mods = modules::modules(&mem, &regions);
        if !is_game(&mods) {
            continue;
        }
        out.push(describe(tables, p.pid, p.name, p.is_wine, &mods).0);
    }
    out
}

/// The game as `find_game` reports it, and the version recognised (if any).
fn describe(
    tables: &Tables,
    pid: u32,
    name: String,
    is_wine: bool,
    mods: &[Module],
) -> (GameInfo, Option<Version>) {
    let (version, recognised_by) = recognise(tables, mods);
    let info = GameInfo {
        pid,
        name,
        is_wine,
        version: version
            .as_ref()
            .map_or_else(|| "unknown".into(), |v| v.name.clone()),
        pd2: tables
            .pd2_modules
            .iter()
            .any(|n| modules::find(mods, n).is_some()),
        recognised_by,
        modules: mods
            .iter()
            .filter(|m| {
                m.kind == ModuleKind::Pe
                    && (GAME_MODULES.iter().any(|g| m.name.eq_ignore_ascii_case(g))
                        || tables
                            .pd2_modules
                            .iter()
                            .any(|g| m.name.eq_ignore_ascii_case(g)))
            })
            .map(|m| GameModule {
                name: m.name.clone(),
                base: suite_core::Address(m.base),
                size: m.size,
            })
            .collect(),
    };
    (info, version)
}

/// An opened game: memory, version, and the base of the module holding the globals.
pub struct Game {
    pub pid: u32,
    pub mem: ProcessMemory,
    pub version: Version,
    pub module_base: u64,
    pub info: GameInfo,
}

/// Opens the game `pid` (or the only running one), with `version` overriding detection.
pub fn open(tables: &Tables, pid: Option<u32>, version: Option<&str>) -> Result<Game, LiveError> {
    let pid = match pid {
        Some(p) => p,
        None => {
            let games = find_games(tables);
            match games.as_slice() {
                [] => {
                    return Err(LiveError::NoGame(
                        "no Diablo II process is running (none has D2Client.dll or Game.exe mapped)"
                            .into(),
                    ));
                }
                [one] => one.pid,
                many => {
                    return Err(LiveError::SeveralGames(
                        many.iter().map(|g| g.pid).collect(),
                    ));
                }
            }
        }
    };
    let mem = ProcessMemory::open(pid)
        .map_err(|_| LiveError::NoGame(format!("process {pid} does not exist")))?;
    let regions = procfs::read_maps(pid).map_err(|e| {
        LiveError::NoGame(format!("cannot read the memory map of process {pid}: {e}"))
    })?;
    let mods = modules::modules(&mem, &regions);
    if !is_game(&mods) {
        return Err(LiveError::NoGame(format!(
            "process {pid} is not Diablo II (no D2Client.dll or Game.exe mapped)"
        )));
    }
    let name = procfs::process_info(pid)
        .map(|p| (p.name, p.is_wine))
        .unwrap_or_default();
    let (info, recognised) = describe(tables, pid, name.0, name.1, &mods);
    let version = match version {
        Some(v) => tables.version(v).cloned().ok_or_else(|| {
            let known: Vec<&str> = tables.versions.iter().map(|v| v.name.as_str()).collect();
            LiveError::UnknownVersion(format!(
                "invalid argument `version`: {v:?} (accepted: {})",
                known.join(", ")
            ))
        })?,
        None => recognised.ok_or_else(|| {
            let known: Vec<&str> = tables.versions.iter().map(|v| v.name.as_str()).collect();
            LiveError::UnknownVersion(format!(
                "the game's version was not recognised ({}); the layouts known are {}",
                info.recognised_by,
                known.join(", ")
            ))
        })?,
    };
    let module = modules::find(&mods, &version.module).ok_or_else(|| {
        LiveError::NoGame(format!(
            "version {} keeps its globals in {}, which process {pid} has not loaded",
            version.name, version.module
        ))
    })?;
    Ok(Game {
        pid,
        module_base: module.base,
        mem,
        version,
        info,
    })
}

/// Reads game structures with 32-bit pointers, naming what failed.
struct Reader<'a> {
    mem: &'a ProcessMemory,
    t: &'a Tables,
}

impl Reader<'_> {
    fn bytes(&self, what: &str, addr: u64, n: usize) -> Result<Vec<u8>, LiveError> {
        let mut b = vec![0u8; n];
        self.mem
            .read_exact(addr, &mut b)
            .map_err(|error| LiveError::Read {
                what: what.to_string(),
                error,
            })?;
        Ok(b)
    }

    fn u32(&self, what: &str, addr: u64) -> Result<u32, LiveError> {
        let b = self.bytes(what, addr, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u16(&self, what: &str, addr: u64) -> Result<u16, LiveError> {
        let b = self.bytes(what, addr, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u8(&self, what: &str, addr: u64) -> Result<u8, LiveError> {
        Ok(self.bytes(what, addr, 1)?[0])
    }

    /// A field of a structure: its offset from the layout data.
    fn field(&self, layout: &str, field: &str, base: u64) -> Result<u64, LiveError> {
        let off = self.t.offset(layout, field).map_err(LiveError::NotInGame)?;
        Ok(base + off)
    }

    fn ptr(&self, layout: &str, field: &str, base: u64) -> Result<u64, LiveError> {
        let at = self.field(layout, field, base)?;
        Ok(self.u32(&format!("{layout}.{field} at 0x{at:X}"), at)? as u64)
    }

    fn f32(&self, layout: &str, field: &str, base: u64) -> Result<u32, LiveError> {
        let at = self.field(layout, field, base)?;
        self.u32(&format!("{layout}.{field} at 0x{at:X}"), at)
    }

    /// A stat array: (id, value) pairs of layer 0 (at most 1024 read).
    fn stat_array(
        &self,
        what: &str,
        arr: u64,
        count: u16,
    ) -> Result<BTreeMap<u16, i64>, LiveError> {
        let mut out = BTreeMap::new();
        if arr == 0 || count == 0 {
            return Ok(out);
        }
        let n = (count as usize).min(1024);
        let raw = self.bytes(what, arr, n * 8)?;
        for rec in raw.chunks_exact(8) {
            let layer = u16::from_le_bytes([rec[0], rec[1]]);
            let id = u16::from_le_bytes([rec[2], rec[3]]);
            let value = i32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]) as i64;
            if layer == 0 {
                out.insert(id, value);
            }
        }
        Ok(out)
    }
}

/// A stat with its base value where the full value differs.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct StatValue {
    pub value: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<i64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Attributes {
    pub strength: StatValue,
    pub energy: StatValue,
    pub dexterity: StatValue,
    pub vitality: StatValue,
    pub stat_points: StatValue,
    pub skill_points: StatValue,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Resistance {
    pub value: i64,
    /// The cap: 75 plus the stat that raises it.
    pub max: i64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Resistances {
    pub fire: Resistance,
    pub cold: Resistance,
    pub lightning: Resistance,
    pub poison: Resistance,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Bonuses {
    pub faster_cast: i64,
    pub faster_hit_recovery: i64,
    pub attack_speed: i64,
    pub run_walk: i64,
    pub magic_find: i64,
    pub gold_find: i64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NamedId {
    pub id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Position {
    pub x: u32,
    pub y: u32,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StatEntry {
    pub id: u16,
    pub name: String,
    pub value: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<i64>,
}

/// The player's character.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Character {
    pub pid: u32,
    pub version: String,
    pub player_unit: suite_core::Address,
    pub name: String,
    pub class: NamedId,
    pub level: i64,
    pub experience: i64,
    pub gold: i64,
    pub stash_gold: i64,
    pub stats: Attributes,
    pub life: i64,
    pub max_life: i64,
    pub mana: i64,
    pub max_mana: i64,
    pub stamina: i64,
    pub max_stamina: i64,
    pub resistances: Resistances,
    pub bonuses: Bonuses,
    pub position: Position,
    /// Act number, 1 to 5.
    pub act: u32,
    pub area: NamedId,
    pub unit_id: u32,
    /// Every stat of the full list, with the base value where it differs.
    pub all_stats: Vec<StatEntry>,
}

fn player(r: &Reader<'_>, game: &Game) -> Result<u64, LiveError> {
    let slot = game.module_base + game.version.player_offset();
    let p = r.u32(
        &format!(
            "the player pointer at {}+0x{:X}",
            game.version.module,
            game.version.player_offset()
        ),
        slot,
    )? as u64;
    if p == 0 {
        return Err(LiveError::NotInGame(format!(
            "the player pointer at {}+0x{:X} is null: the game is not in a game session (menu or loading)",
            game.version.module,
            game.version.player_offset()
        )));
    }
    Ok(p)
}

/// The area id: Path -> Room1 -> Room2 -> Level -> levelNo (0 when a link is null).
fn area_of(r: &Reader<'_>, path: u64) -> Result<u32, LiveError> {
    if path == 0 {
        return Ok(0);
    }
    let room1 = r.ptr("D2Path", "room1", path)?;
    if room1 == 0 {
        return Ok(0);
    }
    let room2 = r.ptr("D2Room1", "room2", room1)?;
    if room2 == 0 {
        return Ok(0);
    }
    let level = r.ptr("D2Room2", "level", room2)?;
    if level == 0 {
        return Ok(0);
    }
    r.f32("D2Level", "level_no", level)
}

pub fn character(tables: &Tables, game: &Game) -> Result<Character, LiveError> {
    let r = Reader {
        mem: &game.mem,
        t: tables,
    };
    let p = player(&r, game)?;
    let class_id = r.f32("D2UnitAny", "txt_file_no", p)?;
    let unit_id = r.f32("D2UnitAny", "unit_id", p)?;
    let pdata = r.ptr("D2Player", "player_data", p)?;
    let name = if pdata == 0 {
        String::new()
    } else {
        let raw = r.bytes(
            "PlayerData.name",
            r.field("D2PlayerData", "name", pdata)?,
            16,
        )?;
        mcp_memory::values::cstring(&raw)
    };
    let stats = r.ptr("D2UnitAny", "stats", p)?;
    if stats == 0 {
        return Err(LiveError::NotInGame("the player has no stat list".into()));
    }
    let base_arr = r.ptr("D2StatListEx", "base_stats", stats)?;
    let base_n = r.u16(
        "StatListEx.base_count",
        r.field("D2StatListEx", "base_count", stats)?,
    )?;
    let full_arr = r.ptr("D2StatListEx", "full_stats", stats)?;
    let full_n = r.u16(
        "StatListEx.full_count",
        r.field("D2StatListEx", "full_count", stats)?,
    )?;
    let base = r.stat_array("the base stat array", base_arr, base_n)?;
    let mut full = r.stat_array("the full stat array", full_arr, full_n)?;
    if full.is_empty() {
        full = base.clone();
    }
    let shift = |id: u16| tables.stats.get(&id).map_or(0, |s| s.shift);
    let get = |id: u16| full.get(&id).copied().unwrap_or(0) >> shift(id);
    let sv = |id: u16| {
        let value = get(id);
        let b = base.get(&id).map(|v| v >> shift(id));
        StatValue {
            value,
            base: b.filter(|b| *b != value),
        }
    };
    let res = |id: u16| Resistance {
        value: get(id),
        max: 75 + get(id + 1),
    };
    let path = r.ptr("D2UnitAny", "path", p)?;
    let (x, y) = if path == 0 {
        (0, 0)
    } else {
        (
            r.u16("Path.x", r.field("D2Path", "x", path)?)? as u32,
            r.u16("Path.y", r.field("D2Path", "y", path)?)? as u32,
        )
    };
    let area = area_of(&r, path)?;
    let act = r.u8("UnitAny.act", r.field("D2UnitAny", "act", p)?)? as u32 + 1;
    let all_stats = full
        .iter()
        .map(|(&id, &v)| {
            let value = v >> shift(id);
            StatEntry {
                id,
                name: tables.stat_name(id),
                value,
                base: base
                    .get(&id)
                    .map(|b| b >> shift(id))
                    .filter(|b| *b != value),
            }
        })
        .collect();
    Ok(Character {
        pid: game.pid,
        version: game.version.name.clone(),
        player_unit: suite_core::Address(p),
        name,
        class: NamedId {
            id: class_id,
            name: tables.class_name(class_id).map(str::to_string),
        },
        level: get(12),
        experience: full.get(&13).copied().unwrap_or(0) as u32 as i64,
        gold: get(14),
        stash_gold: get(15),
        stats: Attributes {
            strength: sv(0),
            energy: sv(1),
            dexterity: sv(2),
            vitality: sv(3),
            stat_points: sv(4),
            skill_points: sv(5),
        },
        life: get(6),
        max_life: get(7),
        mana: get(8),
        max_mana: get(9),
        stamina: get(10),
        max_stamina: get(11),
        resistances: Resistances {
            fire: res(39),
            lightning: res(41),
            cold: res(43),
            poison: res(45),
        },
        bonuses: Bonuses {
            faster_cast: get(105),
            faster_hit_recovery: get(99),
            attack_speed: get(93),
            run_walk: get(96),
            magic_find: get(80),
            gold_find: get(79),
        },
        position: Position { x, y },
        act,
        area: NamedId {
            id: area,
            name: tables.area_name(area).map(str::to_string),
        },
        unit_id,
        all_stats,
    })
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ItemFlags {
    pub identified: bool,
    pub socketed: bool,
    pub ethereal: bool,
    pub runeword: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LiveItem {
    pub unit_id: u32,
    pub txt_file_no: u32,
    pub quality: NamedId,
    pub flags: ItemFlags,
    pub item_level: u32,
    /// 0 inventory, 3 cube, 4 stash.
    pub page: u8,
    /// 0 when not equipped; 1 head .. 10 gloves, 11/12 swap slots.
    pub body_location: u8,
    /// `equipped`, `inventory`, `cube`, `stash`, `belt`, `cursor`, `ground`, `socketed`.
    pub location: String,
    /// Item mode: 0 stored, 1 equipped, 2 belt, 3 ground, 4 cursor, 5 dropping, 6 socketed.
    pub mode: u32,
    pub x: u32,
    pub y: u32,
}

const QUALITIES: [&str; 9] = [
    "", "low", "normal", "superior", "magic", "set", "rare", "unique", "crafted",
];

fn location_name(mode: u32, page: u8) -> &'static str {
    match mode {
        1 => "equipped",
        2 => "belt",
        3 | 5 => "ground",
        4 => "cursor",
        6 => "socketed",
        _ => match page {
            0 => "inventory",
            3 => "cube",
            4 => "stash",
            _ => "other",
        },
    }
}

/// Items of the player's inventory (first item, chained through ItemData's next item).
pub fn inventory(tables: &Tables, game: &Game) -> Result<Vec<LiveItem>, LiveError> {
    let r = Reader {
        mem: &game.mem,
        t: tables,
    };
    let p = player(&r, game)?;
    let inv = r.ptr("D2UnitAny", "inventory", p)?;
    if inv == 0 {
        return Ok(Vec::new());
    }
    let mut item = r.ptr("D2Inventory", "first_item", inv)?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    while item != 0 && seen.insert(item) && out.len() < 1000 {
        let data = r.ptr("D2Item", "item_data", item)?;
        let mode = r.f32("D2Item", "mode", item)?;
        let (quality, flags, ilvl, body, page, next) = if data == 0 {
            (0, 0, 0, 0, 0, 0)
        } else {
            (
                r.f32("D2ItemData", "quality", data)?,
                r.f32("D2ItemData", "flags", data)?,
                r.f32("D2ItemData", "item_level", data)?,
                r.u8(
                    "ItemData.body_location",
                    r.field("D2ItemData", "body_location", data)?,
                )?,
                r.u8("ItemData.page", r.field("D2ItemData", "page", data)?)?,
                r.ptr("D2ItemData", "next_item", data)?,
            )
        };
        let ipath = r.ptr("D2Item", "item_path", item)?;
        let (x, y) = if ipath == 0 {
            (0, 0)
        } else {
            (
                r.f32("D2ItemPath", "x", ipath)?,
                r.f32("D2ItemPath", "y", ipath)?,
            )
        };
        out.push(LiveItem {
            unit_id: r.f32("D2Item", "unit_id", item)?,
            txt_file_no: r.f32("D2Item", "txt_file_no", item)?,
            quality: NamedId {
                id: quality,
                name: QUALITIES
                    .get(quality as usize)
                    .filter(|q| !q.is_empty())
                    .map(|q| q.to_string()),
            },
            flags: ItemFlags {
                identified: flags & 0x10 != 0,
                socketed: flags & 0x800 != 0,
                ethereal: flags & 0x40_0000 != 0,
                runeword: flags & 0x400_0000 != 0,
            },
            item_level: ilvl,
            page,
            body_location: body,
            location: location_name(mode, page).into(),
            mode,
            x,
            y,
        });
        item = next;
    }
    Ok(out)
}

/// A unit from the hash tables.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LiveUnit {
    pub address: suite_core::Address,
    pub unit_type: String,
    pub unit_id: u32,
    pub txt_file_no: u32,
    pub mode: u32,
    pub x: u32,
    pub y: u32,
}

pub const UNIT_TYPES: [&str; 6] = ["player", "monster", "object", "missile", "item", "tile"];

/// Units of one type from the client unit hash table (`UnitAny*[128]` per type, chained
/// through pListNext), at most `limit`.
pub fn units(
    tables: &Tables,
    game: &Game,
    unit_type: usize,
    limit: usize,
) -> Result<Vec<LiveUnit>, LiveError> {
    let r = Reader {
        mem: &game.mem,
        t: tables,
    };
    let off = game.version.unit_table_offset().ok_or_else(|| {
        LiveError::NotInGame(format!(
            "the unit hash table of version {} is not in the data (schemas/d2/versions.json)",
            game.version.name
        ))
    })?;
    let table = game.module_base + off + unit_type as u64 * 128 * 4;
    let raw = r.bytes("the unit hash table", table, 128 * 4)?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for bucket in raw.chunks_exact(4) {
        let mut u = u32::from_le_bytes([bucket[0], bucket[1], bucket[2], bucket[3]]) as u64;
        while u != 0 && seen.insert(u) && out.len() < limit {
            let path = r.ptr("D2UnitAny", "path", u)?;
            // Players, monsters and missiles have a Path (u16 x/y); objects and items a
            // static path (u32 x/y at 0x0C/0x10).
            let (x, y) = if path == 0 {
                (0, 0)
            } else if matches!(unit_type, 2 | 4 | 5) {
                (
                    r.f32("D2ItemPath", "x", path)?,
                    r.f32("D2ItemPath", "y", path)?,
                )
            } else {
                (
                    r.u16("Path.x", r.field("D2Path", "x", path)?)? as u32,
                    r.u16("Path.y", r.field("D2Path", "y", path)?)? as u32,
                )
            };
            out.push(LiveUnit {
                address: suite_core::Address(u),
                unit_type: UNIT_TYPES[unit_type].into(),
                unit_id: r.f32("D2UnitAny", "unit_id", u)?,
                txt_file_no: r.f32("D2UnitAny", "txt_file_no", u)?,
                mode: r.f32("D2UnitAny", "mode", u)?,
                x,
                y,
            });
            u = r.ptr("D2UnitAny", "list_next", u)?;
        }
    }
    out.sort_by_key(|u| u.unit_id);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_file_versions() {
        let mut b = vec![0u8; 64];
        b[10..14].copy_from_slice(&0xFEEF04BDu32.to_le_bytes());
        b[18..22].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        b[22..26].copy_from_slice(&0x000D_003Cu32.to_le_bytes());
        assert_eq!(file_version(&b).as_deref(), Some("1.0.13.60"));
        assert_eq!(file_version(&b[..20]), None);
        assert_eq!(location_name(1, 0), "equipped");
        assert_eq!(location_name(0, 4), "stash");
    }
}
