//! What changed between two saves: header fields, stats, skills, items (matched by
//! everything but their offset), sections.

use super::*;

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

pub(super) fn summary(item: &SaveItem) -> ItemSummary {
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
pub(super) fn item_key(item: &SaveItem) -> SaveItem {
    SaveItem {
        offset: 0,
        socketed_in: None,
        ..item.clone()
    }
}

pub(super) fn text_change(out: &mut Vec<FieldChange>, field: &str, before: String, after: String) {
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
