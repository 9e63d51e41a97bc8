//! The corpse, mercenary and golem sections after the player's item list, whose starts are
//! searched for when an item of the list could not be read to its end.

use super::*;

#[derive(Debug, Clone, Copy)]
pub(super) enum Cursor {
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
    pub(super) fn start(self) -> usize {
        match self {
            Cursor::Exact(p) | Cursor::After(p) => p,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stage {
    Corpse,
    Merc,
    Golem,
    End,
}

impl Stage {
    pub(super) fn next(self) -> Stage {
        match self {
            Stage::Corpse => Stage::Merc,
            Stage::Merc => Stage::Golem,
            Stage::Golem | Stage::End => Stage::End,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Stage::Corpse => "corpse",
            Stage::Merc => "mercenary",
            Stage::Golem => "golem",
            Stage::End => "end of file",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct CorpsePart {
    offset: usize,
    present: bool,
    items: u16,
}

#[derive(Debug, Clone)]
pub(super) struct MercPart {
    offset: usize,
    has_items: bool,
    items: u16,
}

#[derive(Debug, Clone)]
pub(super) struct GolemPart {
    offset: usize,
    item: Option<Box<SaveItem>>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Tail {
    corpse: Option<CorpsePart>,
    merc: Option<MercPart>,
    golem: Option<GolemPart>,
}

#[derive(Debug, Clone)]
pub(super) enum Part {
    Corpse(CorpsePart),
    Merc(MercPart),
    Golem(GolemPart),
}

impl Tail {
    pub(super) fn set(&mut self, part: Part) {
        match part {
            Part::Corpse(c) => self.corpse = Some(c),
            Part::Merc(m) => self.merc = Some(m),
            Part::Golem(g) => self.golem = Some(g),
        }
    }

    /// Takes the parts `other` has and `self` lacks.
    pub(super) fn fill_from(&mut self, other: Tail) {
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
pub(super) struct TailFail {
    stage: Stage,
    offset: usize,
    /// Where the failing stage started searching.
    resume: usize,
    message: String,
    partial: Tail,
}

pub(super) type Fail = Box<TailFail>;

pub(super) struct TailCtx<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) expansion: bool,
    pub(super) merc_id: u32,
}

impl TailCtx<'_> {
    pub(super) fn fail(&self, stage: Stage, offset: usize, resume: usize, message: String) -> Fail {
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
    pub(super) fn header(
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
    pub(super) fn item_list(
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

    pub(super) fn attempt(
        &self,
        stage: Stage,
        at: usize,
        resume: usize,
    ) -> Result<(Part, Cursor), Fail> {
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

    pub(super) fn end_check(&self, cursor: Cursor) -> Result<Tail, Fail> {
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

    pub(super) fn candidates(&self, stage: Stage, from: usize) -> Vec<usize> {
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
    pub(super) fn stage(
        &self,
        stage: Stage,
        cursor: Cursor,
        budget: &mut u32,
    ) -> Result<Tail, Fail> {
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
pub(super) fn parse_tail(ctx: &TailCtx<'_>, player_end: ListEnd) -> Sections {
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
