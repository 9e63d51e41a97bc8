//! The game's tables as data (`schemas/d2/*.json`, compiled in): stats, areas, classes,
//! skills and per-version globals. Each file names its source; a new game version is a new
//! entry in `versions.json`, not new code.

use serde::Deserialize;
use std::collections::BTreeMap;

const STATS: &str = include_str!("../../schemas/d2/stats.json");
const AREAS: &str = include_str!("../../schemas/d2/areas.json");
const CLASSES: &str = include_str!("../../schemas/d2/classes.json");
const SKILLS: &str = include_str!("../../schemas/d2/skills.json");
const VERSIONS: &str = include_str!("../../schemas/d2/versions.json");
/// Structure offsets: the same layouts `mcp-memory`'s `read_struct` knows by name.
const LAYOUTS: &str = include_str!("../../schemas/layouts/d2-1.13c.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Stat {
    pub id: u16,
    pub name: String,
    /// Width of the value in a save's stats section (ItemStatCost CSvBits).
    pub save_bits: Option<u32>,
    /// Fixed-point shift (life, mana, stamina: 8).
    #[serde(default)]
    pub shift: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Area {
    pub id: u32,
    pub name: String,
    pub act: u8,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Class {
    pub id: u8,
    pub name: String,
    pub first_skill: u16,
    pub expansion: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Skill {
    pub id: u16,
    pub name: String,
    pub class: Option<u8>,
}

/// Where one game version keeps its globals (module-relative offsets).
#[derive(Debug, Clone, Deserialize)]
pub struct Version {
    pub name: String,
    pub module: String,
    pub file_version: String,
    pub player_unit: String,
    pub unit_table_server: Option<String>,
    pub unit_table_client: Option<String>,
    pub layout: String,
}

impl Version {
    pub fn player_offset(&self) -> u64 {
        parse_hex(&self.player_unit)
    }

    pub fn unit_table_offset(&self) -> Option<u64> {
        self.unit_table_client.as_deref().map(parse_hex)
    }
}

fn parse_hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(0)
}

#[derive(Deserialize)]
struct StatsFile {
    stats: Vec<Stat>,
}
#[derive(Deserialize)]
struct AreasFile {
    areas: Vec<Area>,
}
#[derive(Deserialize)]
struct ClassesFile {
    classes: Vec<Class>,
}
#[derive(Deserialize)]
struct SkillsFile {
    skills: Vec<Skill>,
}
#[derive(Deserialize)]
struct VersionsFile {
    versions: Vec<Version>,
    pd2_modules: Vec<String>,
}
#[derive(Deserialize)]
struct LayoutsFile {
    layouts: BTreeMap<String, LayoutDef>,
}
#[derive(Deserialize)]
struct LayoutDef {
    fields: Vec<LayoutField>,
}
#[derive(Deserialize)]
struct LayoutField {
    name: String,
    offset: u64,
}

/// All tables, loaded once.
#[derive(Debug)]
pub struct Tables {
    pub stats: BTreeMap<u16, Stat>,
    pub areas: BTreeMap<u32, Area>,
    pub classes: Vec<Class>,
    pub skills: BTreeMap<u16, Skill>,
    pub versions: Vec<Version>,
    pub pd2_modules: Vec<String>,
    offsets: BTreeMap<(String, String), u64>,
}

impl Tables {
    pub fn load() -> Result<Self, String> {
        let parse = |name: &str, e: serde_json::Error| format!("schemas/d2/{name}: {e}");
        let stats: StatsFile = serde_json::from_str(STATS).map_err(|e| parse("stats.json", e))?;
        let areas: AreasFile = serde_json::from_str(AREAS).map_err(|e| parse("areas.json", e))?;
        let classes: ClassesFile =
            serde_json::from_str(CLASSES).map_err(|e| parse("classes.json", e))?;
        let skills: SkillsFile =
            serde_json::from_str(SKILLS).map_err(|e| parse("skills.json", e))?;
        let versions: VersionsFile =
            serde_json::from_str(VERSIONS).map_err(|e| parse("versions.json", e))?;
        let layouts: LayoutsFile = serde_json::from_str(LAYOUTS)
            .map_err(|e| format!("schemas/layouts/d2-1.13c.json: {e}"))?;
        let mut offsets = BTreeMap::new();
        for (lname, def) in layouts.layouts {
            for f in def.fields {
                offsets.insert((lname.clone(), f.name), f.offset);
            }
        }
        Ok(Self {
            stats: stats.stats.into_iter().map(|s| (s.id, s)).collect(),
            areas: areas.areas.into_iter().map(|a| (a.id, a)).collect(),
            classes: classes.classes,
            skills: skills.skills.into_iter().map(|s| (s.id, s)).collect(),
            versions: versions.versions,
            pd2_modules: versions.pd2_modules,
            offsets,
        })
    }

    /// The offset of `field` in structure `layout` (e.g. `("D2UnitAny", "path")`).
    pub fn offset(&self, layout: &str, field: &str) -> Result<u64, String> {
        self.offsets
            .get(&(layout.to_string(), field.to_string()))
            .copied()
            .ok_or_else(|| format!("no offset for {layout}.{field} in the layout data"))
    }

    pub fn stat_name(&self, id: u16) -> String {
        self.stats
            .get(&id)
            .map_or_else(|| format!("stat_{id}"), |s| s.name.clone())
    }

    pub fn class_name(&self, id: u32) -> Option<&str> {
        self.classes.get(id as usize).map(|c| c.name.as_str())
    }

    pub fn area_name(&self, id: u32) -> Option<&str> {
        self.areas.get(&id).map(|a| a.name.as_str())
    }

    pub fn version(&self, name: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_load_and_agree_with_the_reference_facts() -> Result<(), String> {
        let t = Tables::load()?;
        assert_eq!(t.stat_name(13), "experience");
        assert_eq!(t.stats.get(&7).map(|s| s.shift), Some(8));
        assert_eq!(t.stats.get(&13).and_then(|s| s.save_bits), Some(32));
        assert_eq!(t.area_name(109), Some("Harrogath"));
        assert_eq!(t.area_name(132), Some("The Worldstone Chamber"));
        assert_eq!(t.class_name(6), Some("Assassin"));
        assert_eq!(t.skills.get(&54).map(|s| s.name.as_str()), Some("Teleport"));
        assert_eq!(
            t.version("1.13c").map(Version::player_offset),
            Some(0x11BBFC)
        );
        assert_eq!(t.offset("D2UnitAny", "path")?, 0x2C);
        assert_eq!(t.offset("D2Level", "level_no")?, 0x1D0);
        for id in 0..16u16 {
            assert!(t.stats.get(&id).and_then(|s| s.save_bits).is_some(), "{id}");
        }
        Ok(())
    }
}
