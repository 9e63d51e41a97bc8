//! Addresses as tools take and give them: a JSON number or a hex string in, a hex string out
//! (64-bit values do not survive as JSON numbers in most clients).

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub u64);

impl Address {
    /// Parses `0x6FAB0000`, `6FAB0000h` or a decimal number.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim().replace('_', "");
        let parsed = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            u64::from_str_radix(hex, 16)
        } else if let Some(hex) = t.strip_suffix('h').or_else(|| t.strip_suffix('H')) {
            u64::from_str_radix(hex, 16)
        } else {
            t.parse::<u64>()
        };
        parsed.ok().map(Address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:X}", self.0)
    }
}

/// Formats a value the way every tool prints addresses.
pub fn hex(value: u64) -> String {
    Address(value).to_string()
}

/// The highest address of a `bits`-bit address space (32 or 64).
pub fn top(bits: u32) -> u64 {
    if bits == 32 {
        u64::from(u32::MAX)
    } else {
        u64::MAX
    }
}

/// `base + offset` when the sum stays within `bits` bits.
pub fn checked_add(base: u64, offset: u64, bits: u32) -> Option<u64> {
    base.checked_add(offset).filter(|&v| v <= top(bits))
}

/// `base + offset` for a signed offset, when the sum stays within `bits` bits and above 0.
pub fn checked_add_signed(base: u64, offset: i64, bits: u32) -> Option<u64> {
    base.checked_add_signed(offset).filter(|&v| v <= top(bits))
}

/// The error of an address sum that leaves the address space: argument `field` was `value`,
/// `sum` shows the addition (`0x7F0000 + 0xFFFF...`), `accepted` says what would fit.
pub fn overflow(
    field: &str,
    value: impl fmt::Display,
    sum: &str,
    bits: u32,
    accepted: impl fmt::Display,
) -> crate::ToolError {
    crate::ToolError::invalid(
        field,
        value,
        format!("{sum} overflows {bits} bits; accepted: {accepted}"),
    )
}

impl From<u64> for Address {
    fn from(v: u64) -> Self {
        Address(v)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected an address: a non-negative integer or a hex string like \"0x6FAB0000\"")
        })? {
            Raw::Num(n) => Ok(Address(n)),
            Raw::Text(t) => Address::parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{}` is not an address (accepted: an integer, \"0x6FAB0000\" or \"6FAB0000h\")",
                    crate::error::quoted(&t)
                ))
            }),
        }
    }
}

impl JsonSchema for Address {
    fn schema_name() -> Cow<'static, str> {
        "Address".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An address: an integer or a hex string such as \"0x6FAB0000\"",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^(0[xX][0-9a-fA-F_]+|[0-9a-fA-F_]+[hH]|[0-9_]+)$" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_accepted_form() {
        assert_eq!(Address::parse("0x6FAB0000"), Some(Address(0x6FAB_0000)));
        assert_eq!(Address::parse("6fab0000h"), Some(Address(0x6FAB_0000)));
        assert_eq!(Address::parse("1024"), Some(Address(1024)));
        assert_eq!(
            Address::parse("0xFFFFFFFFFFFFFFFF"),
            Some(Address(u64::MAX))
        );
        assert_eq!(Address::parse("0x1_0000"), Some(Address(0x10000)));
        assert_eq!(Address::parse("zz"), None);
        assert_eq!(Address::parse("0x1FFFFFFFFFFFFFFFF"), None);
    }

    #[test]
    fn round_trips_through_json() -> Result<(), serde_json::Error> {
        let a: Address = serde_json::from_str("\"0x10\"")?;
        assert_eq!(a, Address(16));
        let b: Address = serde_json::from_str("16")?;
        assert_eq!(b, Address(16));
        assert_eq!(serde_json::to_string(&a)?, "\"0x10\"");
        assert!(serde_json::from_str::<Address>("-1").is_err());
        assert!(serde_json::from_str::<Address>("\"nope\"").is_err());
        Ok(())
    }
}
