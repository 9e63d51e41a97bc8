//! Turns a packet's bytes into named JSON fields following its layout from the tables.
//! Fields that would run past the packet's end are left out and `truncated` is set.

use crate::d2_tables::{FieldSpec, FieldType};
use serde_json::{Map, Value, json};
use suite_core::bytes::to_hex;

/// Text of game strings: bytes up to the first NUL; UTF-8 if valid, else Latin-1 (the game's
/// colour codes start with byte 0xFF, "ÿc4").
pub fn text(bytes: &[u8]) -> String {
    let end = memchr::memchr(0, bytes).unwrap_or(bytes.len());
    let bytes = &bytes[..end];
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Decodes `fields` from `packet` (whose first byte is the id).
pub fn decode_fields(fields: &[FieldSpec], packet: &[u8]) -> Map<String, Value> {
    let mut out = Map::new();
    let mut pos = 1usize; // byte position
    let mut bit = 0usize; // bits used of the current bit field, from `pos`
    for f in fields {
        if !matches!(f.ty, FieldType::Bits(_)) && bit > 0 {
            pos += bit.div_ceil(8);
            bit = 0;
        }
        let fixed = |n: usize| packet.get(pos..pos + n);
        let (value, used) = match f.ty {
            FieldType::U8 | FieldType::U16 | FieldType::U32 | FieldType::U64 => {
                let n = match f.ty {
                    FieldType::U8 => 1,
                    FieldType::U16 => 2,
                    FieldType::U32 => 4,
                    _ => 8,
                };
                match fixed(n) {
                    Some(b) if n == 8 => (json!(format!("0x{:016x}", le(b))), n),
                    Some(b) => (json!(le(b)), n),
                    None => break,
                }
            }
            FieldType::Bytes(n) => match fixed(n) {
                Some(b) => (json!(to_hex(b)), n),
                None => break,
            },
            FieldType::Str(n) => match fixed(n) {
                Some(b) => (json!(text(b)), n),
                None => break,
            },
            FieldType::CString => {
                let rest = packet.get(pos..).unwrap_or(&[]);
                match memchr::memchr(0, rest) {
                    Some(end) => (json!(text(&rest[..end])), end + 1),
                    None => break,
                }
            }
            FieldType::Rest => {
                let rest = packet.get(pos..).unwrap_or(&[]);
                (json!(to_hex(rest)), rest.len())
            }
            FieldType::Bits(n) => {
                let n = n as usize;
                if (bit + n).div_ceil(8) + pos > packet.len() {
                    break;
                }
                let mut v: u64 = 0;
                for k in 0..n {
                    let at = bit + k;
                    let b = packet.get(pos + at / 8).copied().unwrap_or(0);
                    v |= u64::from((b >> (at % 8)) & 1) << k;
                }
                bit += n;
                out.insert(f.name.clone(), json!(v));
                continue;
            }
        };
        out.insert(f.name.clone(), value);
        pos += used;
    }
    if out.len() < fields.len() {
        out.insert("truncated".into(), json!(true));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::d2_tables::tables;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn assign_player_fields() -> TestResult {
        let spec = tables()?.s2c(0x59).ok_or("0x59")?;
        let mut p = vec![0x59, 1, 0, 0, 0, 1];
        let mut name = b"cheap".to_vec();
        name.resize(16, 0);
        p.extend_from_slice(&name);
        p.extend_from_slice(&[0x34, 0x12, 0x78, 0x56]);
        let f = decode_fields(&spec.fields, &p);
        assert_eq!(f.get("unit_id"), Some(&json!(1)));
        assert_eq!(f.get("class"), Some(&json!(1)));
        assert_eq!(f.get("name"), Some(&json!("cheap")));
        assert_eq!(f.get("x"), Some(&json!(0x1234)));
        assert_eq!(f.get("y"), Some(&json!(0x5678)));
        assert!(f.get("truncated").is_none());
        Ok(())
    }

    #[test]
    fn bit_fields_are_lsb_first() -> TestResult {
        let spec = tables()?.s2c(0x95).ok_or("0x95")?;
        // life 100, mana 50, stamina 300, x 5000, y 6000, rest 0
        let v: u128 = 100 | 50 << 15 | 300 << 30 | 5000 << 45 | 6000 << 61;
        let mut p = vec![0x95];
        p.extend_from_slice(&v.to_le_bytes()[..12]);
        let f = decode_fields(&spec.fields, &p);
        assert_eq!(f.get("life"), Some(&json!(100)));
        assert_eq!(f.get("mana"), Some(&json!(50)));
        assert_eq!(f.get("stamina"), Some(&json!(300)));
        assert_eq!(f.get("x"), Some(&json!(5000)));
        assert_eq!(f.get("y"), Some(&json!(6000)));
        Ok(())
    }

    #[test]
    fn chat_strings_and_truncation() -> TestResult {
        let spec = tables()?.s2c(0x26).ok_or("0x26")?;
        let mut p = vec![0x26, 1, 0, 0, 0, 0, 0, 0, 0, 5];
        p.extend_from_slice(b"bob\0hello\0");
        let f = decode_fields(&spec.fields, &p);
        assert_eq!(f.get("type"), Some(&json!(1)));
        assert_eq!(f.get("name"), Some(&json!("bob")));
        assert_eq!(f.get("message"), Some(&json!("hello")));
        let f = decode_fields(&spec.fields, &p[..6]);
        assert_eq!(f.get("truncated"), Some(&json!(true)));
        assert_eq!(to_hex(&[0, 0xAB, 0x10]), "00ab10");
        assert_eq!(text(b"\xffc4red\0junk"), "\u{ff}c4red");
        Ok(())
    }
}
