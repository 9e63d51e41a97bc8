//! Item headers: reading one (its first 154 bits), telling a real one from bytes that read
//! "JM", and locating a list's items with the items in their sockets.

use super::*;

/// Why an item header could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ReadProblem {
    Truncated(String),
    Invalid(String),
}

pub(super) fn field(r: &mut BitReader<'_>, at: usize, n: u32) -> Result<u32, BitError> {
    r.set_position(at);
    r.read(n)
}

/// Decodes the item header at `pos` (its "JM"). Structural only; see [`check_item`].
pub(super) fn read_item(bytes: &[u8], pos: usize) -> Result<SaveItem, ReadProblem> {
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
pub(super) fn valid_code(code: &str) -> bool {
    (3..=4).contains(&code.len()) && code.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// Sanity checks that tell a real item header from bytes that happen to read "JM".
pub(super) fn check_item(item: &SaveItem) -> Result<(), String> {
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
