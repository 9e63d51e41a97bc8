//! Typed values in memory: the types tools accept, decoding bytes into JSON values and
//! parsing the values an agent gives.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The scalar and string types tools read and scan. Inlined in schemas: each argument says
/// what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum ValueType {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
    Ptr32,
    Ptr64,
    Cstring,
    Utf16,
}

pub const TYPE_NAMES: &str =
    "u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, ptr32, ptr64, cstring, utf16";

/// The fixed-size types: what scans, diffs, watches and typed writes accept.
pub const NUMERIC_NAMES: [&str; 12] = [
    "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64", "ptr32", "ptr64",
];

impl ValueType {
    pub fn parse(name: &str) -> Option<Self> {
        serde_json::from_value(Value::String(name.to_string())).ok()
    }

    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::U16 => "u16",
            ValueType::U32 => "u32",
            ValueType::U64 => "u64",
            ValueType::I8 => "i8",
            ValueType::I16 => "i16",
            ValueType::I32 => "i32",
            ValueType::I64 => "i64",
            ValueType::F32 => "f32",
            ValueType::F64 => "f64",
            ValueType::Ptr32 => "ptr32",
            ValueType::Ptr64 => "ptr64",
            ValueType::Cstring => "cstring",
            ValueType::Utf16 => "utf16",
        }
    }

    /// Size in bytes of a fixed-size type; `None` for strings.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            ValueType::U8 | ValueType::I8 => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 | ValueType::Ptr32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::Ptr64 => 8,
            ValueType::Cstring | ValueType::Utf16 => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, ValueType::F32 | ValueType::F64)
    }

    pub fn is_pointer(self) -> bool {
        matches!(self, ValueType::Ptr32 | ValueType::Ptr64)
    }

    /// Decodes a fixed-size value (`bytes` at least `size()` long) as a number for
    /// comparisons: integers exactly (as i128), floats as f64.
    pub fn number(self, bytes: &[u8]) -> Option<Num> {
        let b = |n: usize| bytes.get(..n);
        Some(match self {
            ValueType::U8 => Num::Int(*bytes.first()? as i128),
            ValueType::I8 => Num::Int(*bytes.first()? as i8 as i128),
            ValueType::U16 => Num::Int(u16::from_le_bytes(b(2)?.try_into().ok()?) as i128),
            ValueType::I16 => Num::Int(i16::from_le_bytes(b(2)?.try_into().ok()?) as i128),
            ValueType::U32 | ValueType::Ptr32 => {
                Num::Int(u32::from_le_bytes(b(4)?.try_into().ok()?) as i128)
            }
            ValueType::I32 => Num::Int(i32::from_le_bytes(b(4)?.try_into().ok()?) as i128),
            ValueType::U64 | ValueType::Ptr64 => {
                Num::Int(u64::from_le_bytes(b(8)?.try_into().ok()?) as i128)
            }
            ValueType::I64 => Num::Int(i64::from_le_bytes(b(8)?.try_into().ok()?) as i128),
            ValueType::F32 => Num::Float(f32::from_le_bytes(b(4)?.try_into().ok()?) as f64),
            ValueType::F64 => Num::Float(f64::from_le_bytes(b(8)?.try_into().ok()?)),
            ValueType::Cstring | ValueType::Utf16 => return None,
        })
    }

    /// A fixed-size value as JSON: pointers as hex strings, integers and floats as numbers
    /// (a float that is not finite as its text, since JSON has no NaN).
    pub fn to_json(self, bytes: &[u8]) -> Value {
        match self.number(bytes) {
            Some(Num::Int(i)) if self.is_pointer() => Value::String(format!("0x{i:X}")),
            Some(Num::Int(i)) => {
                if let Ok(v) = i64::try_from(i) {
                    Value::from(v)
                } else {
                    Value::from(i as u64)
                }
            }
            Some(Num::Float(f)) if f.is_finite() => {
                // f32 values print with f32 precision (1.1, not 1.100000023841858).
                if self == ValueType::F32 {
                    let short: f64 = format!("{}", f as f32).parse().unwrap_or(f);
                    Value::from(short)
                } else {
                    Value::from(f)
                }
            }
            Some(Num::Float(f)) => Value::String(f.to_string()),
            None => Value::Null,
        }
    }

    /// Encodes an integer or float given by the agent into this type's bytes.
    pub fn encode(self, value: &Value) -> Result<Vec<u8>, String> {
        let target = parse_number(self, value)?;
        Ok(match (self, target) {
            (ValueType::F32, Num::Float(f)) => (f as f32).to_le_bytes().to_vec(),
            (ValueType::F64, Num::Float(f)) => f.to_le_bytes().to_vec(),
            (t, Num::Int(i)) => {
                let size = t.size().ok_or("strings are not encoded as numbers")?;
                i.to_le_bytes()[..size].to_vec()
            }
            (_, Num::Float(_)) => return Err("expected an integer".into()),
        })
    }
}

/// A number read from memory or given by the agent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// The range of integers a type holds.
fn int_range(t: ValueType) -> (i128, i128) {
    match t {
        ValueType::U8 => (0, u8::MAX as i128),
        ValueType::U16 => (0, u16::MAX as i128),
        ValueType::U32 | ValueType::Ptr32 => (0, u32::MAX as i128),
        ValueType::U64 | ValueType::Ptr64 => (0, u64::MAX as i128),
        ValueType::I8 => (i8::MIN as i128, i8::MAX as i128),
        ValueType::I16 => (i16::MIN as i128, i16::MAX as i128),
        ValueType::I32 => (i32::MIN as i128, i32::MAX as i128),
        _ => (i64::MIN as i128, i64::MAX as i128),
    }
}

/// Parses an agent's value (JSON number, or a string: decimal, `0x` hex, float) for type
/// `t`, checking it fits.
pub fn parse_number(t: ValueType, value: &Value) -> Result<Num, String> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => return Err(format!("expected a number, got {other}")),
    };
    if t.is_float() {
        let f: f64 = text
            .parse()
            .map_err(|_| format!("`{text}` is not a number ({} expects a float)", t.name()))?;
        return Ok(Num::Float(f));
    }
    if t.size().is_none() {
        return Err(format!("{} is not a numeric type", t.name()));
    }
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.as_str()),
    };
    let magnitude = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i128::from_str_radix(h, 16).ok()
    } else {
        digits.parse::<i128>().ok()
    }
    .ok_or_else(|| format!("`{text}` is not an integer ({} expects one)", t.name()))?;
    let v = if neg { -magnitude } else { magnitude };
    let (lo, hi) = int_range(t);
    if v < lo || v > hi {
        return Err(format!("{v} does not fit in {} ({lo} to {hi})", t.name()));
    }
    Ok(Num::Int(v))
}

/// How closely a float must match for an exact float scan: half a unit of the last decimal
/// the agent wrote (`100` matches 99.5 to 100.5, `1.25` matches 1.245 to 1.255), the way
/// memory scanners round displayed values.
pub fn float_tolerance(value: &Value) -> f64 {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return 0.0,
    };
    if text.contains(['e', 'E']) {
        return 0.0;
    }
    let decimals = text.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    0.5 * 10f64.powi(-decimals)
}

/// Decodes a NUL-terminated string (lossy UTF-8) from the start of `bytes`.
pub fn cstring(bytes: &[u8]) -> String {
    let end = memchr::memchr(0, bytes).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Decodes a NUL-terminated UTF-16LE string from the start of `bytes`.
pub fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// Printable ASCII of `bytes`, other bytes as `.`.
pub fn ascii_preview(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_names_are_the_fixed_size_types() {
        let all: Vec<&str> = TYPE_NAMES.split(", ").collect();
        let numeric: Vec<&str> = all
            .iter()
            .copied()
            .filter(|n| ValueType::parse(n).is_some_and(|t| t.size().is_some()))
            .collect();
        assert_eq!(numeric, NUMERIC_NAMES);
        assert!(
            all.iter()
                .all(|n| ValueType::parse(n).is_some_and(|t| t.name() == *n))
        );
    }

    #[test]
    fn decodes_and_encodes() -> Result<(), String> {
        assert_eq!(ValueType::I32.to_json(&(-5i32).to_le_bytes()), json!(-5));
        assert_eq!(
            ValueType::U64.to_json(&u64::MAX.to_le_bytes()),
            json!(u64::MAX)
        );
        assert_eq!(
            ValueType::Ptr32.to_json(&0x6FAB_0000u32.to_le_bytes()),
            json!("0x6FAB0000")
        );
        assert_eq!(ValueType::F32.to_json(&1.1f32.to_le_bytes()), json!(1.1));
        assert_eq!(ValueType::U16.encode(&json!("0x1234"))?, vec![0x34, 0x12]);
        assert_eq!(ValueType::I8.encode(&json!(-1))?, vec![0xFF]);
        assert!(ValueType::U8.encode(&json!(256)).is_err());
        assert!(ValueType::U32.encode(&json!(-1)).is_err());
        assert!(ValueType::U32.encode(&json!("abc")).is_err());
        assert_eq!(
            ValueType::F64.encode(&json!(2.5))?,
            2.5f64.to_le_bytes().to_vec()
        );
        assert_eq!(ValueType::parse("f32"), Some(ValueType::F32));
        assert_eq!(ValueType::parse("float"), None);
        Ok(())
    }

    #[test]
    fn tolerances_follow_written_decimals() {
        assert_eq!(float_tolerance(&json!(100)), 0.5);
        assert!((float_tolerance(&json!("1.25")) - 0.005).abs() < 1e-12);
        assert_eq!(cstring(b"abc\0def"), "abc");
        assert_eq!(utf16(&[b'h', 0, b'i', 0, 0, 0, b'x', 0]), "hi");
    }
}
