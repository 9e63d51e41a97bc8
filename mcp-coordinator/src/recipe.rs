//! `analyze_character`'s steps as data: which kind of server answers each step, with which
//! tool, and the game facts it needs (the player unit's size, the message ids that carry the
//! character), read from `schemas/d2/analyze-character.json` and the 1.13c layouts.

use crate::config::Kind;
use serde::Deserialize;
use std::sync::OnceLock;

const RECIPE: &str = include_str!("../../schemas/d2/analyze-character.json");
const LAYOUTS: &str = include_str!("../../schemas/layouts/d2-1.13c.json");

/// One call: the tool `tool` of the child whose kind is `server`.
#[derive(Debug, Deserialize)]
pub struct Step {
    pub server: Kind,
    pub tool: String,
}

#[derive(Debug, Deserialize)]
struct SnapshotStep {
    #[serde(flatten)]
    step: Step,
    /// The layout whose size the snapshot covers.
    layout: String,
}

#[derive(Debug, Deserialize)]
struct TrafficStep {
    #[serde(flatten)]
    step: Step,
    ids: Vec<String>,
    limit: u32,
}

#[derive(Debug, Deserialize)]
struct RecipeFile {
    character: Step,
    inventory: Step,
    snapshot: SnapshotStep,
    traffic: TrafficStep,
}

/// The steps, with the facts resolved.
#[derive(Debug)]
pub struct Recipe {
    pub character: Step,
    pub inventory: Step,
    pub snapshot: Step,
    /// Bytes of the player unit to snapshot.
    pub snapshot_length: u64,
    pub traffic: Step,
    /// The message ids to decode, and how many messages at most.
    pub traffic_ids: Vec<String>,
    pub traffic_limit: u32,
}

#[derive(Deserialize)]
struct Layouts {
    layouts: std::collections::BTreeMap<String, Layout>,
}

#[derive(Deserialize)]
struct Layout {
    size: u64,
}

fn parse(recipe: &str, layouts: &str) -> Result<Recipe, String> {
    let r: RecipeFile =
        serde_json::from_str(recipe).map_err(|e| format!("analyze-character.json: {e}"))?;
    let layouts: Layouts =
        serde_json::from_str(layouts).map_err(|e| format!("d2-1.13c.json: {e}"))?;
    let snapshot_length = layouts
        .layouts
        .get(&r.snapshot.layout)
        .map(|l| l.size)
        .ok_or_else(|| format!("no layout {:?} in d2-1.13c.json", r.snapshot.layout))?;
    Ok(Recipe {
        character: r.character,
        inventory: r.inventory,
        snapshot: r.snapshot.step,
        snapshot_length,
        traffic: r.traffic.step,
        traffic_ids: r.traffic.ids,
        traffic_limit: r.traffic.limit,
    })
}

/// The recipe built into this binary (checked by a test, so never an error in a release).
pub fn recipe() -> Result<&'static Recipe, String> {
    static R: OnceLock<Result<Recipe, String>> = OnceLock::new();
    R.get_or_init(|| parse(RECIPE, LAYOUTS))
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_recipe_reads_and_takes_the_unit_size_from_the_layouts() -> Result<(), String> {
        let r = recipe()?;
        assert_eq!(r.character.server, Kind::D2);
        assert_eq!(r.character.tool, "character");
        assert_eq!(r.snapshot.server, Kind::Memory);
        assert_eq!(r.snapshot_length, 0xEC);
        assert_eq!(r.traffic.server, Kind::Network);
        assert_eq!(r.traffic_ids, ["0x59", "0x95", "0x15"]);
        let bad = parse(RECIPE, r#"{"layouts": {}}"#);
        assert!(bad.is_err_and(|e| e.contains("D2UnitAny")));
        Ok(())
    }
}
