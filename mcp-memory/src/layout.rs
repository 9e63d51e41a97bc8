//! Structures in memory: decoding a described layout (`read_struct`) and guessing one from
//! several live instances (`infer_struct`).
//!
//! Named layouts are data: `schemas/layouts/*.json` is built in, and `--layouts DIR` adds
//! more files of the same form (`{"source": ..., "layouts": {"Name": {"size", "fields"}}}`).

use crate::modules::{self, Module};
use crate::procfs::Region;
use crate::reader::ProcessMemory;
use crate::values::{self, ValueType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use suite_core::{Address, ToolError};

/// Layout files compiled into the server.
const BUILT_IN: &[(&str, &str)] = &[(
    "d2-1.13c.json",
    include_str!("../../schemas/layouts/d2-1.13c.json"),
)];

/// One field of a layout.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Field {
    pub name: String,
    /// Offset from the start of the structure.
    pub offset: Address,
    #[serde(rename = "type")]
    pub ty: ValueType,
    /// For `ptr32`/`ptr64`: the layout of what it points to (a name or inline fields),
    /// followed while `depth` allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<LayoutRef>,
    /// Array length (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Most bytes to read for `cstring`/`utf16` (default 64, at most 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
}

/// A layout by name, or inline fields.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum LayoutRef {
    Name(String),
    Inline(Vec<Field>),
}

/// Written by hand: the derived schema is recursive (a field's `layout` is a `LayoutRef`),
/// which needs shared definitions; here a nested layout is only typed (a name or fields),
/// the limits are those [`validate`] checks, and a field's `type` refers to read_value's
/// enum instead of repeating it (the listing is paid for in tokens).
impl JsonSchema for LayoutRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LayoutRef".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                { "type": "string" },
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": { "type": "string" },
                            "offset": { "type": ["integer", "string"] },
                            "type": { "description": "A read_value type", "type": "string" },
                            "layout": {
                                "description": "Pointee layout",
                                "type": ["string", "array"]
                            },
                            "count": {
                                "description": "Array length",
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_COUNT
                            },
                            "length": {
                                "description": "String bytes (default 64)",
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_STRING
                            }
                        },
                        "required": ["name", "offset", "type"]
                    }
                }
            ]
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
struct LayoutDef {
    #[allow(dead_code)]
    size: Option<u64>,
    fields: Vec<Field>,
}

#[derive(Debug, Deserialize)]
struct LayoutFile {
    #[allow(dead_code)]
    source: String,
    layouts: BTreeMap<String, LayoutDef>,
}

/// The largest layout file read from `--layouts DIR` (the built-in ones are a few KB).
const MAX_LAYOUT_FILE_BYTES: u64 = 1 << 20;

/// Every named layout the server knows.
#[derive(Debug, Clone, Default)]
pub struct Layouts {
    by_name: BTreeMap<String, Vec<Field>>,
}

impl Layouts {
    /// The built-in layouts plus every `*.json` file of `dir`.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut me = Self::default();
        for (name, text) in BUILT_IN {
            me.add(name, text)?;
        }
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let mut files: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for f in files {
                let text = suite_core::files::read_text(&f, "layout", MAX_LAYOUT_FILE_BYTES)?;
                me.add(&f.display().to_string(), &text)?;
            }
        }
        Ok(me)
    }

    /// Adds the layouts of one file's text (`origin` names it in errors).
    pub fn add(&mut self, origin: &str, text: &str) -> Result<(), String> {
        let file: LayoutFile =
            serde_json::from_str(text).map_err(|e| format!("layout file {origin}: {e}"))?;
        for (name, def) in file.layouts {
            self.by_name.insert(name, def.fields);
        }
        Ok(())
    }

    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Vec<Field>> {
        self.by_name.get(name)
    }

    /// The fields of a reference, or an error naming the known layouts.
    pub fn fields<'a>(&'a self, r: &'a LayoutRef) -> Result<&'a [Field], String> {
        match r {
            LayoutRef::Inline(f) => Ok(f),
            LayoutRef::Name(n) => self.get(n).map(Vec::as_slice).ok_or_else(|| {
                format!("no layout named {n:?} (known: {})", self.names().join(", "))
            }),
        }
    }
}

const MAX_STRING: usize = 4096;
const MAX_COUNT: usize = 1024;

/// Checks a layout before reading: sizes, counts and that named layouts exist.
pub fn validate(layouts: &Layouts, fields: &[Field], depth: usize) -> Result<(), String> {
    for f in fields {
        if f.count.is_some_and(|c| c == 0 || c > MAX_COUNT) {
            return Err(format!(
                "field {:?}: count must be 1 to {MAX_COUNT}",
                f.name
            ));
        }
        if f.length.is_some_and(|l| l == 0 || l > MAX_STRING) {
            return Err(format!(
                "field {:?}: length must be 1 to {MAX_STRING}",
                f.name
            ));
        }
        if let Some(r) = &f.layout {
            if !f.ty.is_pointer() {
                return Err(format!(
                    "field {:?}: only ptr32/ptr64 fields can have a layout",
                    f.name
                ));
            }
            let inner = layouts.fields(r)?;
            if depth > 0 && matches!(r, LayoutRef::Inline(_)) {
                validate(layouts, inner, depth - 1)?;
            }
        }
    }
    Ok(())
}

/// Bytes a field reads: its string length, or its value size times its count; `None` when
/// that product overflows.
fn field_bytes(f: &Field) -> Option<u64> {
    match f.ty {
        ValueType::Cstring | ValueType::Utf16 => {
            Some(f.length.unwrap_or(64).min(MAX_STRING) as u64)
        }
        t => (t.size().unwrap_or(1) as u64).checked_mul(f.count.unwrap_or(1) as u64),
    }
}

/// Where field `f` of a structure at `base` starts, when all its bytes stay within a
/// `bits`-bit address space; else the sum that leaves it, as text.
fn field_at(base: u64, f: &Field, bits: u32) -> Result<u64, String> {
    let offset = f.offset.0;
    let Some(at) = modules::checked_add(base, offset, bits) else {
        return Err(format!(
            "{} + field {:?} offset {}",
            Address(base),
            f.name,
            Address(offset)
        ));
    };
    let len = field_bytes(f).unwrap_or(u64::MAX);
    if modules::checked_add(at, len, bits).is_none() {
        return Err(format!(
            "{} + field {:?} offset {} + {len} bytes",
            Address(base),
            f.name,
            Address(offset)
        ));
    }
    Ok(at)
}

/// Checks, before reading, that every field of a structure at `addr` lies within a
/// `bits`-bit address space. For `inline` fields the offset is named as the argument at
/// fault (`layout[2].offset`); for a named layout, the address is.
pub fn check_fields(fields: &[Field], addr: u64, bits: u32, inline: bool) -> Result<(), ToolError> {
    for (i, f) in fields.iter().enumerate() {
        let Err(sum) = field_at(addr, f, bits) else {
            continue;
        };
        let len = field_bytes(f).unwrap_or(u64::MAX);
        // The highest start of the field's bytes, then what leaves room for them.
        let last_start = modules::top(bits).checked_sub(len);
        return Err(if inline {
            let accepted = match last_start.and_then(|r| r.checked_sub(addr)) {
                Some(max) => format!("an offset at most {} at this address", Address(max)),
                None => format!("none: {len} bytes do not fit after this address"),
            };
            modules::overflow(
                &format!("layout[{i}].offset"),
                f.offset,
                &sum,
                bits,
                accepted,
            )
        } else {
            let accepted = match last_start.and_then(|r| r.checked_sub(f.offset.0)) {
                Some(max) => format!("an address at most {} for this layout", Address(max)),
                None => format!("none: field {:?} does not fit in {bits} bits", f.name),
            };
            modules::overflow("address", Address(addr), &sum, bits, accepted)
        });
    }
    Ok(())
}

/// Decodes `fields` at `addr`, following typed pointers while `depth` > 0.
pub fn read_struct(
    mem: &ProcessMemory,
    layouts: &Layouts,
    mods: &[Module],
    addr: u64,
    fields: &[Field],
    depth: usize,
) -> Vec<Value> {
    fields
        .iter()
        .map(|f| read_field(mem, layouts, mods, addr, f, depth))
        .collect()
}

fn read_field(
    mem: &ProcessMemory,
    layouts: &Layouts,
    mods: &[Module],
    base: u64,
    f: &Field,
    depth: usize,
) -> Value {
    // A structure reached through a pointer can sit where a field would pass 2^64: that
    // field says so instead of reading a wrapped address.
    let at = match field_at(base, f, 64) {
        Ok(at) => at,
        Err(sum) => {
            return json!({
                "name": f.name,
                "offset": f.offset,
                "type": f.ty.name(),
                "error": format!("{sum} overflows 64 bits"),
            });
        }
    };
    let mut out = json!({
        "name": f.name,
        "offset": f.offset,
        "address": Address(at),
        "type": f.ty.name(),
    });
    let value = match f.ty {
        ValueType::Cstring | ValueType::Utf16 => {
            let len = f.length.unwrap_or(64).min(MAX_STRING);
            let mut buf = vec![0u8; len];
            match mem.read_some(at, &mut buf) {
                Ok(n) if n > 0 => Ok(Value::String(if f.ty == ValueType::Cstring {
                    values::cstring(&buf[..n])
                } else {
                    values::utf16(&buf[..n])
                })),
                Ok(_) => Err(format!("0x{at:X} is not readable")),
                Err(e) => Err(e.to_string()),
            }
        }
        t => {
            let size = t.size().unwrap_or(1);
            // At most 8 × MAX_COUNT bytes: `validate` bounds the count.
            let mut buf = vec![0u8; field_bytes(f).unwrap_or(0) as usize];
            match mem.read_exact(at, &mut buf) {
                Ok(()) => {
                    let vals: Vec<Value> = buf.chunks_exact(size).map(|c| t.to_json(c)).collect();
                    if f.count.is_some() {
                        Ok(Value::Array(vals))
                    } else {
                        Ok(vals.into_iter().next().unwrap_or(Value::Null))
                    }
                }
                Err(e) => Err(e.to_string()),
            }
        }
    };
    match value {
        Ok(v) => {
            out["value"] = v;
        }
        Err(e) => {
            out["error"] = Value::String(e);
            return out;
        }
    }
    if f.ty.is_pointer() && f.count.is_none() {
        let ptr = out["value"]
            .as_str()
            .and_then(Address::parse)
            .map_or(0, |a| a.0);
        if let Some(name) = modules::describe(mods, ptr) {
            out["points_into"] = Value::String(name);
        }
        if let Some(r) = &f.layout {
            if ptr == 0 {
                out["target"] = Value::Null;
            } else if depth == 0 {
                out["target_not_followed"] = Value::String("depth limit reached".into());
            } else {
                match layouts.fields(r) {
                    Ok(inner) => {
                        if let LayoutRef::Name(n) = r {
                            out["target_layout"] = Value::String(n.clone());
                        }
                        out["target"] =
                            Value::Array(read_struct(mem, layouts, mods, ptr, inner, depth - 1));
                    }
                    Err(e) => out["error"] = Value::String(e),
                }
            }
        }
    }
    out
}

/// What one offset of a structure seems to hold.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InferredField {
    pub offset: Address,
    /// `pointer64`, `pointer32`, `float`, `double`, `bool`, `small_int`, `int`, `string`,
    /// `zero`.
    pub kind: String,
    pub size: u64,
    /// How sure: the share of instances that agree, discounted when there are few.
    pub confidence: f64,
    /// For pointers: where they point (`module+0x...` or the region kind).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points_to: Option<String>,
    /// The value in each instance.
    pub values: Vec<Value>,
}

/// Guesses the fields of `size` bytes at each of `bases` (already read into `data`).
pub fn infer(
    data: &[Vec<u8>],
    regions: &[Region],
    mods: &[Module],
    pe32: bool,
) -> Vec<InferredField> {
    let n = data.len();
    let size = data.iter().map(Vec::len).min().unwrap_or(0);
    let is_mapped = |v: u64| regions.iter().any(|r| r.readable && r.contains(v));
    let where_ = |v: u64| -> String {
        modules::describe(mods, v).unwrap_or_else(|| {
            regions
                .iter()
                .find(|r| r.contains(v))
                .map_or("unmapped".into(), |r| {
                    r.path
                        .clone()
                        .unwrap_or_else(|| format!("anonymous {} region", r.perms()))
                })
        })
    };
    let share = |agree: usize| -> f64 {
        let s = agree as f64 / n as f64;
        let discount = 1.0 - 0.5f64.powi(n as i32);
        (s * discount * 1000.0).round() / 1000.0
    };
    let u32_at = |d: &Vec<u8>, o: usize| u32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
    let u64_at =
        |d: &Vec<u8>, o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap_or([0; 8]));
    let mut out = Vec::new();
    let mut o = 0usize;
    while o + 4 <= size {
        // A printable run of 4+ bytes that ends in NUL in every instance: a string.
        let str_len = data
            .iter()
            .map(|d| {
                let run = d[o..size]
                    .iter()
                    .take_while(|&&b| (0x20..0x7f).contains(&b))
                    .count();
                if run >= 4 && d.get(o + run) == Some(&0) {
                    run + 1
                } else {
                    0
                }
            })
            .min()
            .unwrap_or(0);
        if str_len > 0 {
            let len = str_len.div_ceil(4) * 4;
            out.push(InferredField {
                offset: Address(o as u64),
                kind: "string".into(),
                size: len as u64,
                confidence: share(n),
                points_to: None,
                values: data
                    .iter()
                    .map(|d| Value::String(values::cstring(&d[o..(o + len).min(size)])))
                    .collect(),
            });
            o += len;
            continue;
        }
        if !pe32 && o.is_multiple_of(8) && o + 8 <= size {
            let vals: Vec<u64> = data.iter().map(|d| u64_at(d, o)).collect();
            let ptrs = vals.iter().filter(|&&v| v > 0xFFFF && is_mapped(v)).count();
            let nulls = vals.iter().filter(|&&v| v == 0).count();
            if ptrs > 0 && ptrs + nulls == n {
                let first = vals.iter().copied().find(|&v| v != 0).unwrap_or(0);
                out.push(InferredField {
                    offset: Address(o as u64),
                    kind: "pointer64".into(),
                    size: 8,
                    confidence: share(ptrs),
                    points_to: Some(where_(first)),
                    values: vals
                        .iter()
                        .map(|&v| Value::String(format!("0x{v:X}")))
                        .collect(),
                });
                o += 8;
                continue;
            }
            let doubles: Vec<f64> = vals.iter().map(|&v| f64::from_bits(v)).collect();
            if doubles.iter().all(|&f| plausible_float(f))
                && vals.iter().any(|&v| v >> 32 != 0 && v & 0xFFFF_FFFF != 0)
            {
                out.push(InferredField {
                    offset: Address(o as u64),
                    kind: "double".into(),
                    size: 8,
                    confidence: share(n),
                    points_to: None,
                    values: doubles.iter().map(|&f| json!(f)).collect(),
                });
                o += 8;
                continue;
            }
        }
        let vals: Vec<u32> = data.iter().map(|d| u32_at(d, o)).collect();
        let (kind, agree, points_to, shown): (&str, usize, Option<String>, Vec<Value>) = {
            let zeros = vals.iter().filter(|&&v| v == 0).count();
            let ptrs = vals
                .iter()
                .filter(|&&v| v > 0xFFFF && is_mapped(v as u64))
                .count();
            let floats = vals
                .iter()
                .filter(|&&v| v != 0 && plausible_float(f32::from_bits(v) as f64) && v > 0xFFFF)
                .count();
            let small = vals
                .iter()
                .filter(|&&v| (v as i32).unsigned_abs() < 0x10000)
                .count();
            let bools = vals.iter().filter(|&&v| v <= 1).count();
            if zeros == n {
                ("zero", n, None, vals.iter().map(|&v| json!(v)).collect())
            } else if pe32 && ptrs > 0 && ptrs + zeros == n {
                let first = vals.iter().copied().find(|&v| v != 0).unwrap_or(0);
                (
                    "pointer32",
                    ptrs,
                    Some(where_(first as u64)),
                    vals.iter()
                        .map(|&v| Value::String(format!("0x{v:X}")))
                        .collect(),
                )
            } else if floats > 0 && floats + zeros == n {
                (
                    "float",
                    floats,
                    None,
                    vals.iter()
                        .map(|&v| ValueType::F32.to_json(&v.to_le_bytes()))
                        .collect(),
                )
            } else if bools == n {
                ("bool", n, None, vals.iter().map(|&v| json!(v)).collect())
            } else if small == n {
                (
                    "small_int",
                    n,
                    None,
                    vals.iter().map(|&v| json!(v as i32)).collect(),
                )
            } else {
                ("int", n, None, vals.iter().map(|&v| json!(v)).collect())
            }
        };
        out.push(InferredField {
            offset: Address(o as u64),
            kind: kind.into(),
            size: 4,
            confidence: share(agree),
            points_to,
            values: shown,
        });
        o += 4;
    }
    out
}

/// A float a program would plausibly store: finite, normal, magnitude 1e-4 to 1e9.
fn plausible_float(f: f64) -> bool {
    f.is_finite() && f != 0.0 && (1e-4..1e9).contains(&f.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_layouts_load_and_are_consistent() -> Result<(), String> {
        let l = Layouts::load(None)?;
        assert!(l.get("D2UnitAny").is_some());
        for name in l.names() {
            let fields = l.get(name).ok_or("missing")?;
            validate(&l, fields, 4)?;
            for f in fields {
                if let Some(LayoutRef::Name(n)) = &f.layout {
                    assert!(
                        l.get(n).is_some(),
                        "{name}.{} refers to unknown {n}",
                        f.name
                    );
                }
            }
        }
        Ok(())
    }

    fn field(name: &str, offset: u64, ty: &str, count: Option<usize>) -> Result<Field, String> {
        serde_json::from_value(json!({
            "name": name, "offset": Address(offset), "type": ty, "count": count
        }))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn refuses_fields_that_overflow_the_address_space() -> Result<(), String> {
        let at = 0x7FFD_0000_0000;
        let fine = [
            field("hp", 0x10, "u32", None)?,
            field("xs", 0x20, "u16", Some(4))?,
        ];
        assert!(check_fields(&fine, at, 64, true).is_ok());

        // An inline offset of 2^64-1: the offset is the argument at fault.
        let wraps = [fine[0].clone(), field("bad", u64::MAX, "u32", None)?];
        let e = check_fields(&wraps, at, 64, true)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("`layout[1].offset`"), "{e}");
        assert!(e.contains("0xFFFFFFFFFFFFFFFF"), "{e}");
        assert!(
            e.contains(
                "0x7FFD00000000 + field \"bad\" offset 0xFFFFFFFFFFFFFFFF overflows 64 bits"
            ),
            "{e}"
        );
        assert!(
            e.contains("accepted: an offset at most 0xFFFF8002FFFFFFFB"),
            "{e}"
        );

        // An array that runs past the top: offset + count × size.
        let array = [field("arr", 0x10, "u64", Some(1024))?];
        let e = check_fields(&array, u64::MAX - 0x1000, 64, true)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("`layout[0].offset`") && e.contains("+ 8192 bytes"),
            "{e}"
        );

        // A named layout at an address too high for it: the address is at fault.
        let e = check_fields(&fine, 0xFFFF_FFF0, 32, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("`address`") && e.contains("overflows 32 bits"),
            "{e}"
        );
        assert!(e.contains("an address at most 0xFFFFFFEB"), "{e}");
        Ok(())
    }

    #[test]
    fn a_followed_structure_near_the_top_reports_the_field() -> Result<(), String> {
        let mem = ProcessMemory::open(std::process::id()).map_err(|e| e.to_string())?;
        let f = field("far", 0x100, "u32", None)?;
        let v = read_field(&mem, &Layouts::default(), &[], u64::MAX - 0x10, &f, 0);
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.contains("overflows 64 bits"), "{v}");
        assert!(v.get("address").is_none(), "{v}");
        Ok(())
    }

    #[test]
    fn infers_kinds() {
        let mut a = vec![0u8; 24];
        let mut b = vec![0u8; 24];
        a[0..4].copy_from_slice(&1.5f32.to_le_bytes());
        b[0..4].copy_from_slice(&250.25f32.to_le_bytes());
        a[4..8].copy_from_slice(&7u32.to_le_bytes());
        b[4..8].copy_from_slice(&9u32.to_le_bytes());
        a[8..13].copy_from_slice(b"abcd\0");
        b[8..13].copy_from_slice(b"wxyz\0");
        let got = infer(&[a, b], &[], &[], true);
        let kinds: Vec<&str> = got.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, vec!["float", "small_int", "string", "zero", "zero"]);
        assert_eq!(got[0].confidence, 0.75);
    }
}
