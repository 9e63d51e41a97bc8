//! Writing a fresh version-96 save: the header, stats and skills, no items, with its size
//! and checksum.

use super::*;

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
