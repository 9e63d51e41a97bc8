//! The Diablo II message tables, compiled in from `schemas/d2/d2gs-packets.json`: for each
//! D2GS packet id (both directions) its name, its size or the rule that gives it, and its
//! field layout; names of realm (MCP) and Battle.net (BNCS) messages. Facts live in the data
//! file with their sources; this module only reads and checks it.

use crate::error::{NetError, Result};
use serde::Deserialize;
use std::sync::OnceLock;

const PACKETS_JSON: &str = include_str!("../../schemas/d2/d2gs-packets.json");

/// How the total size of a variable packet is found (see the data file's `size_rules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SizeRule {
    /// total = u8 at `offset` * mul + add
    U8At {
        offset: usize,
        mul: usize,
        add: usize,
    },
    /// total = little-endian u16 at `offset` * mul + add
    U16At {
        offset: usize,
        mul: usize,
        add: usize,
    },
    /// total = header + `count` NUL-terminated strings + trailer
    Cstrings {
        header: usize,
        count: usize,
        trailer: usize,
    },
}

/// The size of one packet id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Not known: a packet with this id cannot be delimited.
    Unknown,
    Fixed(usize),
    Rule(SizeRule),
}

/// How one field is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    U8,
    U16,
    U32,
    U64,
    /// Raw bytes, shown as hex.
    Bytes(usize),
    /// NUL-padded text in a fixed number of bytes.
    Str(usize),
    /// NUL-terminated text.
    CString,
    /// Bits of a little-endian bit field, least significant first.
    Bits(u32),
    /// Whatever remains, as hex.
    Rest,
}

impl FieldType {
    fn parse(s: &str) -> Option<FieldType> {
        let (head, n) = match s.split_once(':') {
            Some((h, n)) => (h, Some(n.parse::<usize>().ok()?)),
            None => (s, None),
        };
        Some(match (head, n) {
            ("u8", None) => FieldType::U8,
            ("u16", None) => FieldType::U16,
            ("u32", None) => FieldType::U32,
            ("u64", None) => FieldType::U64,
            ("cstring", None) => FieldType::CString,
            ("rest", None) => FieldType::Rest,
            ("bytes", Some(n)) => FieldType::Bytes(n),
            ("str", Some(n)) => FieldType::Str(n),
            ("bits", Some(n)) if (1..=32).contains(&n) => FieldType::Bits(n as u32),
            _ => return None,
        })
    }
}

/// One named field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: String,
    pub ty: FieldType,
}

/// Everything known about one packet id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketSpec {
    pub id: u8,
    pub name: String,
    pub size: Size,
    /// Fields after the id byte, in order.
    pub fields: Vec<FieldSpec>,
    /// The size was derived from a field layout, not confirmed on traffic.
    pub derived: bool,
}

/// Why a packet's size could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeError {
    /// The id has no known size.
    UnknownId,
    /// More bytes are needed to know the size (a length byte or a string end is missing).
    NeedMore(String),
    /// The packet declares an impossible length.
    Invalid(String),
}

impl PacketSpec {
    /// The total size (id included) of the packet that starts `buf`.
    pub fn size_of(&self, buf: &[u8]) -> std::result::Result<usize, SizeError> {
        match self.size {
            Size::Unknown => Err(SizeError::UnknownId),
            Size::Fixed(n) => Ok(n),
            Size::Rule(SizeRule::U8At { offset, mul, add }) => {
                let v = buf.get(offset).copied().ok_or_else(|| {
                    SizeError::NeedMore(format!("its length byte at offset {offset} is missing"))
                })?;
                check_declared(usize::from(v) * mul + add, offset + 1)
            }
            Size::Rule(SizeRule::U16At { offset, mul, add }) => {
                let v = buf
                    .get(offset..offset + 2)
                    .map(|s| u16::from_le_bytes([s[0], s[1]]))
                    .ok_or_else(|| {
                        SizeError::NeedMore(format!("its length at offset {offset} is missing"))
                    })?;
                check_declared(usize::from(v) * mul + add, offset + 2)
            }
            Size::Rule(SizeRule::Cstrings {
                header,
                count,
                trailer,
            }) => {
                let mut pos = header;
                for k in 0..count {
                    let rest = buf.get(pos..).unwrap_or(&[]);
                    let nul = memchr::memchr(0, rest).ok_or_else(|| {
                        SizeError::NeedMore(format!("string {} is not NUL-terminated", k + 1))
                    })?;
                    pos += nul + 1;
                }
                Ok(pos + trailer)
            }
        }
    }
}

fn check_declared(size: usize, header: usize) -> std::result::Result<usize, SizeError> {
    if size < header {
        Err(SizeError::Invalid(format!(
            "its declared length {size} is shorter than its own header ({header} bytes)"
        )))
    } else {
        Ok(size)
    }
}

/// All tables.
#[derive(Debug)]
pub struct Tables {
    /// D2GS server to client, by id.
    pub s2c: Vec<Option<PacketSpec>>,
    /// D2GS client to server, by id.
    pub c2s: Vec<Option<PacketSpec>>,
    /// Realm (MCP) message names, by id.
    pub realm: Vec<Option<String>>,
    /// Battle.net (BNCS) message names, by id.
    pub bncs: Vec<Option<String>>,
}

impl Tables {
    pub fn s2c(&self, id: u8) -> Option<&PacketSpec> {
        self.s2c.get(usize::from(id)).and_then(Option::as_ref)
    }

    pub fn c2s(&self, id: u8) -> Option<&PacketSpec> {
        self.c2s.get(usize::from(id)).and_then(Option::as_ref)
    }

    pub fn realm_name(&self, id: u8) -> Option<&str> {
        self.realm.get(usize::from(id)).and_then(|n| n.as_deref())
    }

    pub fn bncs_name(&self, id: u8) -> Option<&str> {
        self.bncs.get(usize::from(id)).and_then(|n| n.as_deref())
    }
}

#[derive(Deserialize)]
struct TableFile {
    server_to_client: Vec<PacketEntry>,
    client_to_server: Vec<PacketEntry>,
    realm: Vec<NameEntry>,
    bncs: Vec<NameEntry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeJson {
    Fixed(usize),
    Rule(SizeRule),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PacketEntry {
    id: String,
    name: String,
    size: Option<SizeJson>,
    #[serde(default)]
    fields: Vec<(String, String)>,
    #[serde(default)]
    derived: bool,
}

#[derive(Deserialize)]
struct NameEntry {
    id: String,
    name: String,
}

fn parse_id(s: &str) -> Result<u8> {
    s.strip_prefix("0x")
        .and_then(|h| u8::from_str_radix(h, 16).ok())
        .ok_or_else(|| NetError::new(format!("bad id {s:?} (expected 0xNN)")))
}

fn packet_table(entries: Vec<PacketEntry>, side: &str) -> Result<Vec<Option<PacketSpec>>> {
    let mut table: Vec<Option<PacketSpec>> = vec![None; 256];
    for e in entries {
        let id = parse_id(&e.id).map_err(|err| err.context(side))?;
        let size = match e.size {
            None => Size::Unknown,
            Some(SizeJson::Fixed(0)) => {
                return Err(NetError::new(format!("{side} {}: size 0", e.id)));
            }
            Some(SizeJson::Fixed(n)) => Size::Fixed(n),
            Some(SizeJson::Rule(r)) => Size::Rule(r),
        };
        let mut fields = Vec::with_capacity(e.fields.len());
        for (name, ty) in e.fields {
            let ty = FieldType::parse(&ty).ok_or_else(|| {
                NetError::new(format!(
                    "{side} {}: field {name} has unknown type {ty:?}",
                    e.id
                ))
            })?;
            if fields.iter().any(|f: &FieldSpec| f.name == name) {
                return Err(NetError::new(format!(
                    "{side} {}: field {name} twice",
                    e.id
                )));
            }
            fields.push(FieldSpec { name, ty });
        }
        let slot = &mut table[usize::from(id)];
        if slot.is_some() {
            return Err(NetError::new(format!("{side} {}: listed twice", e.id)));
        }
        *slot = Some(PacketSpec {
            id,
            name: e.name,
            size,
            fields,
            derived: e.derived,
        });
    }
    Ok(table)
}

fn name_table(entries: Vec<NameEntry>, what: &str) -> Result<Vec<Option<String>>> {
    let mut table = vec![None; 256];
    for e in entries {
        let id = parse_id(&e.id).map_err(|err| err.context(what))?;
        table[usize::from(id)] = Some(e.name);
    }
    Ok(table)
}

impl Tables {
    /// Reads and checks the tables from their JSON text.
    pub fn from_json(text: &str) -> Result<Tables> {
        let file: TableFile = serde_json::from_str(text)
            .map_err(|e| NetError::new(format!("bad packet table JSON: {e}")))?;
        Ok(Tables {
            s2c: packet_table(file.server_to_client, "server_to_client")?,
            c2s: packet_table(file.client_to_server, "client_to_server")?,
            realm: name_table(file.realm, "realm")?,
            bncs: name_table(file.bncs, "bncs")?,
        })
    }
}

/// The compiled-in tables (parsed once).
pub fn tables() -> Result<&'static Tables> {
    static TABLES: OnceLock<std::result::Result<Tables, String>> = OnceLock::new();
    TABLES
        .get_or_init(|| Tables::from_json(PACKETS_JSON).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| NetError::new(format!("the D2 packet tables are unusable: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// Bytes a fixed field list occupies after the id (None when it has variable parts).
    fn fixed_len(fields: &[FieldSpec]) -> Option<usize> {
        let mut bytes = 0;
        let mut bits = 0;
        for f in fields {
            match f.ty {
                FieldType::U8 => bytes += 1,
                FieldType::U16 => bytes += 2,
                FieldType::U32 => bytes += 4,
                FieldType::U64 => bytes += 8,
                FieldType::Bytes(n) | FieldType::Str(n) => bytes += n,
                FieldType::Bits(n) => bits += n as usize,
                FieldType::CString | FieldType::Rest => return None,
            }
        }
        Some(bytes + bits.div_ceil(8))
    }

    #[test]
    fn tables_load_and_fixed_layouts_fit_their_sizes() -> TestResult {
        let t = tables()?;
        let mut checked = 0;
        for spec in t.s2c.iter().chain(&t.c2s).flatten() {
            if let (Size::Fixed(n), Some(len)) = (spec.size, fixed_len(&spec.fields))
                && !spec.fields.is_empty()
            {
                assert_eq!(len + 1, n, "{:#04x} {}", spec.id, spec.name);
                checked += 1;
            }
        }
        assert!(checked > 60, "{checked}");
        assert_eq!(t.s2c(0x59).map(|s| s.size), Some(Size::Fixed(26)));
        assert_eq!(t.s2c(0x03).map(|s| s.name.as_str()), Some("D2GS_LOADACT"));
        assert_eq!(t.c2s(0x68).map(|s| s.size), Some(Size::Fixed(37)));
        assert_eq!(t.realm_name(0x19), Some("MCP_CHARLIST2"));
        assert_eq!(t.bncs_name(0x50), Some("SID_AUTH_INFO"));
        Ok(())
    }

    #[test]
    fn d2md_sizes_are_all_there() -> TestResult {
        // the "id:total" list of d2.md section 2
        let list = "00:1 01:8 02:1 03:12 04:1 07:6 08:6 09:11 0A:6 0B:6 0C:9 0D:13 0E:12 0F:16 \
            10:16 11:8 15:11 18:15 19:2 1A:2 1B:3 1C:5 1D:3 1E:4 1F:6 20:10 21:12 22:12 23:13 \
            24:90 25:90 27:40 28:103 29:97 2A:15 2C:8 3E:34 3F:8 40:13 42:6 45:13 47:11 48:11 \
            4C:16 4D:17 4E:7 4F:1 50:15 51:14 52:42 53:10 54:3 57:14 58:7 59:26 5A:40 5C:5 5D:6 \
            5E:38 5F:5 60:7 61:2 62:7 63:21 65:7 66:7 67:16 68:21 69:12 6A:12 6B:16 6C:16 6D:10 \
            6E:1 6F:1 70:1 71:1 72:1 73:32 74:10 75:13 76:6 77:2 78:21 79:6 7A:13 7B:8 7C:6 7D:18 \
            7E:5 7F:10 80:4 81:20 82:29 89:2 8A:6 8B:6 8C:11 8D:7 8E:10 8F:33 90:13 91:26 92:6 \
            93:8 95:13 96:9 97:1 98:7 99:16 9A:17 9B:7 9E:7 9F:8 A0:10 A1:7 A2:8 A3:24 A4:3 A5:8 \
            A7:7 A9:7 AB:7 AF:2 B0:1";
        let t = tables()?;
        for item in list.split_whitespace() {
            let (id, size) = item.split_once(':').ok_or("pair")?;
            let id = u8::from_str_radix(id, 16)?;
            let size: usize = size.parse()?;
            assert_eq!(
                t.s2c(id).map(|s| s.size),
                Some(Size::Fixed(size)),
                "{id:#04x}"
            );
        }
        Ok(())
    }

    #[test]
    fn variable_rules() -> TestResult {
        let t = tables()?;
        let size = |id: u8, buf: &[u8]| t.s2c(id).map(|s| s.size_of(buf));
        assert_eq!(size(0x94, &[0x94, 2]), Some(Ok(12)));
        assert_eq!(size(0x9C, &[0x9C, 4, 30]), Some(Ok(30)));
        assert_eq!(size(0xA8, &[0xA8, 0, 0, 0, 0, 0, 9]), Some(Ok(9)));
        assert_eq!(size(0xAE, &[0xAE, 5, 0]), Some(Ok(8)));
        assert_eq!(size(0x5B, &[0x5B, 36, 0]), Some(Ok(36)));
        assert_eq!(size(0xAC, &[0xAC; 13]), Some(Ok(0xAC)));
        let mut chat = vec![0x26, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        chat.extend_from_slice(b"bob\0hi\0");
        assert_eq!(size(0x26, &chat), Some(Ok(17)));
        assert!(matches!(
            size(0x26, &chat[..12]),
            Some(Err(SizeError::NeedMore(_)))
        ));
        assert!(matches!(
            size(0x9C, &[0x9C, 1, 2]),
            Some(Err(SizeError::Invalid(_)))
        ));
        assert!(matches!(
            size(0x9C, &[0x9C]),
            Some(Err(SizeError::NeedMore(_)))
        ));
        assert!(matches!(
            size(0x05, &[0x05]),
            Some(Err(SizeError::UnknownId))
        ));
        let c = |id: u8, buf: &[u8]| t.c2s(id).map(|s| s.size_of(buf));
        assert_eq!(c(0x15, b"\x15\x01\x00hello\0\0\0"), Some(Ok(11)));
        assert_eq!(c(0x14, b"\x14\x00\x00hi\0\0\0\0"), Some(Ok(9)));
        Ok(())
    }

    #[test]
    fn rejects_bad_tables() {
        let bad = |s: &str| Tables::from_json(s).is_err();
        assert!(bad("[]"));
        assert!(bad(
            r#"{"server_to_client":[{"id":"5","name":"x","size":1}],"client_to_server":[],"realm":[],"bncs":[]}"#
        ));
        assert!(bad(
            r#"{"server_to_client":[{"id":"0x05","name":"x","size":1,"fields":[["a","u7"]]}],"client_to_server":[],"realm":[],"bncs":[]}"#
        ));
        assert!(!bad(
            r#"{"server_to_client":[{"id":"0x05","name":"x","size":2,"fields":[["a","u8"]]}],"client_to_server":[],"realm":[],"bncs":[]}"#
        ));
    }
}
