//! Parsing, writing and comparing saves, against the shared fixtures and made-up bytes.

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
