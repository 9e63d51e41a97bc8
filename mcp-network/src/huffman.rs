//! The fixed Huffman code of D2GS server-to-client compression, compiled in from
//! `schemas/d2/d2gs-huffman.json` (256 codes, MSB first, at most 11 bits, prefix-free).
//!
//! Decoding is table-driven: the next 11 bits of input index a 2048-entry table giving the
//! byte and its code length, so each output byte costs one lookup and one shift instead of a
//! walk down a tree. Encoding is the reverse table and a 64-bit bit writer.

use crate::error::{NetError, Result};
use serde::Deserialize;
use std::sync::OnceLock;

const HUFFMAN_JSON: &str = include_str!("../../schemas/d2/d2gs-huffman.json");

/// Longest code length; the decode table has 2^MAX_BITS entries.
pub const MAX_BITS: u32 = 11;

#[derive(Deserialize)]
struct CodeFile {
    codes: Vec<CodeEntry>,
}

#[derive(Deserialize)]
struct CodeEntry {
    byte: u8,
    bits: String,
}

/// The compiled code tables.
pub struct Codec {
    /// Indexed by the next 11 bits: low byte = symbol, high byte = code length (0 = none).
    decode: Vec<u16>,
    /// Per byte value: (code right-aligned, length).
    encode: [(u16, u8); 256],
}

/// The codec built from the compiled-in table (built once).
pub fn codec() -> Result<&'static Codec> {
    static CODEC: OnceLock<std::result::Result<Codec, String>> = OnceLock::new();
    CODEC
        .get_or_init(|| Codec::from_json(HUFFMAN_JSON).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| NetError::new(format!("the D2GS Huffman table is unusable: {e}")))
}

impl Codec {
    /// Builds the tables from the JSON list of codes, checking that it is a complete
    /// prefix-free code of every byte value.
    pub fn from_json(text: &str) -> Result<Codec> {
        let file: CodeFile = serde_json::from_str(text)
            .map_err(|e| NetError::new(format!("bad Huffman JSON: {e}")))?;
        let mut encode = [(0u16, 0u8); 256];
        let mut seen = [false; 256];
        let mut decode = vec![0u16; 1 << MAX_BITS];
        for entry in &file.codes {
            let len = entry.bits.len() as u32;
            if len == 0 || len > MAX_BITS {
                return Err(NetError::new(format!(
                    "code of byte {} has {len} bits (1 to {MAX_BITS} accepted)",
                    entry.byte
                )));
            }
            let mut code: u16 = 0;
            for c in entry.bits.chars() {
                code = (code << 1)
                    | match c {
                        '0' => 0,
                        '1' => 1,
                        other => {
                            return Err(NetError::new(format!(
                                "code of byte {} has a '{other}' (only 0 and 1)",
                                entry.byte
                            )));
                        }
                    };
            }
            let slot = usize::from(entry.byte);
            if std::mem::replace(&mut seen[slot], true) {
                return Err(NetError::new(format!("byte {} has two codes", entry.byte)));
            }
            encode[slot] = (code, len as u8);
            let shift = MAX_BITS - len;
            let first = usize::from(code) << shift;
            for e in &mut decode[first..first + (1 << shift)] {
                if *e != 0 {
                    return Err(NetError::new(format!(
                        "code of byte {} is not prefix-free",
                        entry.byte
                    )));
                }
                *e = u16::from(entry.byte) | (len as u16) << 8;
            }
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(NetError::new(format!("byte {missing} has no code")));
        }
        if decode.contains(&0) {
            return Err(NetError::new("the code is not complete"));
        }
        Ok(Codec { decode, encode })
    }

    /// Decodes `input` and appends the bytes to `out`. Codes are read while enough bits
    /// remain; trailing padding bits (fewer than a whole code) are ignored.
    pub fn decompress_into(&self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() * 2);
        let mut acc: u64 = 0; // valid bits are the top `nbits`
        let mut nbits: u32 = 0;
        let mut pos = 0;
        loop {
            while nbits <= 56 {
                match input.get(pos) {
                    Some(&b) => {
                        acc |= u64::from(b) << (56 - nbits);
                        nbits += 8;
                        pos += 1;
                    }
                    None => break,
                }
            }
            if nbits == 0 {
                break;
            }
            let entry = self.decode[(acc >> (64 - MAX_BITS)) as usize];
            let len = u32::from(entry >> 8);
            if len > nbits || len == 0 {
                break;
            }
            out.push(entry as u8);
            acc <<= len;
            nbits -= len;
        }
    }

    /// Decodes `input` into a new vector.
    pub fn decompress(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.decompress_into(input, &mut out);
        out
    }

    /// Encodes `input` and appends it to `out`, padding the last byte with zero bits.
    pub fn compress_into(&self, input: &[u8], out: &mut Vec<u8>) {
        let mut acc: u64 = 0; // pending bits, right-aligned
        let mut nbits: u32 = 0;
        for &b in input {
            let (code, len) = self.encode[usize::from(b)];
            acc = (acc << len) | u64::from(code);
            nbits += u32::from(len);
            while nbits >= 8 {
                nbits -= 8;
                out.push((acc >> nbits) as u8);
            }
        }
        if nbits > 0 {
            out.push((acc << (8 - nbits)) as u8);
        }
    }

    /// Encodes `input` into a new vector.
    pub fn compress(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.compress_into(input, &mut out);
        out
    }

    /// Length in bits of the code of `byte`.
    pub fn code_len(&self, byte: u8) -> u8 {
        self.encode[usize::from(byte)].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn table_is_complete_and_prefix_free() -> TestResult {
        let c = codec()?;
        assert_eq!(c.code_len(0), 1);
        assert_eq!(c.code_len(1), 4);
        assert!((0..=255u8).all(|b| (1..=11).contains(&c.code_len(b))));
        Ok(())
    }

    #[test]
    fn round_trips_every_byte_and_random_data() -> TestResult {
        let c = codec()?;
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(c.decompress(&c.compress(&all)), all);
        let mut x: u32 = 7;
        for len in [0usize, 1, 2, 3, 7, 100, 4000] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (x >> 24) as u8
                })
                .collect();
            assert_eq!(c.decompress(&c.compress(&data)), data, "length {len}");
        }
        Ok(())
    }

    #[test]
    fn padding_never_completes_a_code() -> TestResult {
        let c = codec()?;
        // 0x00 is "1": eight of them fill one byte exactly; one of them leaves 7 zero bits
        assert_eq!(c.compress(&[0; 8]), vec![0xFF]);
        assert_eq!(c.compress(&[0]), vec![0x80]);
        assert_eq!(c.decompress(&[0x80]), vec![0]);
        for n in 0..8 {
            let data = vec![1u8; n];
            assert_eq!(c.decompress(&c.compress(&data)), data);
        }
        Ok(())
    }

    #[test]
    fn rejects_broken_tables() {
        assert!(Codec::from_json("{}").is_err());
        assert!(Codec::from_json(r#"{"codes":[{"byte":0,"bits":"1"}]}"#).is_err());
        assert!(
            Codec::from_json(r#"{"codes":[{"byte":0,"bits":"1"},{"byte":1,"bits":"10"}]}"#)
                .is_err()
        );
    }
}
