//! The tools' arguments, as typed structs whose doc comments and schemars attributes are
//! the input schemas hosts see.

use super::*;

// Every description and limit here is in `tools/list`, which a model pays for in tokens:
// limits, enums and units go into the schema (schemars attributes), prose stays short, and
// each limit is the one the tool itself checks.

/// `{"type": "string", "enum": [the fixed-size types]}`: arguments that take no strings.
fn numeric_type_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": values::NUMERIC_NAMES })
}

/// `4` or `8`.
fn pointer_size_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer", "enum": [4, 8] })
}

/// A value given as a JSON number or as text (`"0x1F"`, `"-5"`, `"1.5"`).
fn number_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["number", "string"] })
}

/// 1 to 64 locations, described once by the field.
fn addresses_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": ["integer", "string"] },
        "minItems": 1,
        "maxItems": 64
    })
}

/// A number, or `[low, high]` for `between`.
fn condition_value_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["number", "string", "array"] })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListProcessesArgs {
    /// Text in name, exe, command line or Windows .exe.
    pub name_contains: Option<String>,
    #[serde(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListModulesArgs {
    /// Pid.
    pub pid: u32,
    /// Filter on the name (any case).
    pub name_contains: Option<String>,
    #[serde(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListRegionsArgs {
    /// Pid.
    pub pid: u32,
    /// true: writable; false: read-only.
    pub writable: Option<bool>,
    /// true: executable; false: not.
    pub executable: Option<bool>,
    /// Only those of this module.
    pub module: Option<String>,
    #[serde(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ByteFormat {
    #[default]
    Hex,
    Base64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadMemoryArgs {
    /// Pid.
    pub pid: u32,
    pub address: Location,
    /// Bytes to read.
    #[schemars(range(min = 1, max = 65536))]
    pub length: usize,
    /// Default hex.
    pub format: Option<ByteFormat>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadValueArgs {
    /// Pid.
    pub pid: u32,
    pub address: Location,
    /// cstring, utf16: one NUL-terminated string.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// Values (default 1, max 4096); strings: max bytes (default 256).
    #[schemars(range(min = 1, max = 65536))]
    pub count: Option<usize>,
}

/// A pointer-chain offset: an integer (may be negative) or a hex string (`"0x1C"`, `"-0x8"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset(pub i64);

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(i64),
            Text(String),
        }
        let bad = |t: &str| {
            serde::de::Error::custom(format!(
                "`{t}` is not an offset (accepted: an integer or a hex string like \"0x1C\" or \"-0x8\")"
            ))
        };
        match Raw::deserialize(d).map_err(|_| bad("?"))? {
            Raw::Num(n) => Ok(Offset(n)),
            Raw::Text(t) => {
                let s = t.trim();
                let (neg, body) = s.strip_prefix('-').map_or((false, s), |b| (true, b));
                let v = Address::parse(body).ok_or_else(|| bad(&t))?.0;
                let v = i64::try_from(v).map_err(|_| bad(&t))?;
                Ok(Offset(if neg { -v } else { v }))
            }
        }
    }
}

impl JsonSchema for Offset {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Offset".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // The field that holds offsets describes them (integers or hex strings).
        json_schema!({ "type": ["integer", "string"] })
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResolvePointerArgs {
    /// Pid.
    pub pid: u32,
    /// First pointer's address, e.g. Game.dll+0x1C
    pub base: Location,
    /// Integers or hex strings; the last is only added.
    #[schemars(length(max = 32))]
    pub offsets: Vec<Offset>,
    /// Default 4 in 32-bit processes (D2 under Wine), else 8.
    #[serde(default)]
    #[schemars(schema_with = "pointer_size_schema")]
    pub pointer_size: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TextEncoding {
    #[default]
    Utf8,
    Utf16,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ScanStartArgs {
    /// Pid.
    pub pid: u32,
    /// Needed for value scans.
    #[serde(default)]
    #[schemars(schema_with = "numeric_type_schema")]
    pub value_type: Option<ValueType>,
    /// Floats match rounded (100: 99.5-100.5). One of value/pattern/text.
    #[serde(default)]
    #[schemars(schema_with = "number_schema")]
    pub value: Option<Value>,
    /// Hex, ?? wildcards: 8B 0D ?? ?? 85 C9 (max 4096 bytes).
    pub pattern: Option<String>,
    /// Max 4096 bytes encoded.
    #[schemars(length(min = 1, max = 4096))]
    pub text: Option<String>,
    /// Default utf8.
    pub text_encoding: Option<TextEncoding>,
    /// Default: value size; 1 for pattern, text.
    #[schemars(extend("enum" = [1, 2, 4, 8, 16]))]
    pub alignment: Option<usize>,
    /// Default true; false adds code and read-only data.
    pub writable_only: Option<bool>,
    /// Only in this module.
    pub module: Option<String>,
    /// Default 1000000.
    #[schemars(range(min = 1, max = 50_000_000))]
    pub max_results: Option<usize>,
    /// Stop all threads while scanning.
    pub freeze: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum ConditionName {
    Equal,
    NotEqual,
    Changed,
    Unchanged,
    Increased,
    Decreased,
    IncreasedBy,
    DecreasedBy,
    Greater,
    Less,
    Between,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ScanNextArgs {
    /// From scan_start.
    pub scan_id: String,
    /// changed, unchanged, increased, decreased: vs the last scan; the rest: vs value.
    pub condition: ConditionName,
    /// A number; [low, high] for between.
    #[serde(default)]
    #[schemars(schema_with = "condition_value_schema")]
    pub value: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ScanResultsArgs {
    /// From scan_start.
    pub scan_id: String,
    #[serde(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PointerScanArgs {
    /// Pid.
    pub pid: u32,
    /// Where chains must lead, e.g. a scan match.
    pub target: Location,
    /// Most hops.
    #[schemars(range(min = 1, max = 5))]
    pub max_depth: usize,
    /// Largest offset per hop.
    #[schemars(range(min = 0, max = 4096))]
    pub max_offset: u64,
    /// Default 4 in 32-bit processes (D2 under Wine), else 8.
    #[serde(default)]
    #[schemars(schema_with = "pointer_size_schema")]
    pub pointer_size: Option<usize>,
    /// Only bases in these modules.
    pub modules: Option<Vec<String>>,
    /// Default 1000.
    #[schemars(range(min = 1, max = 100_000))]
    pub max_results: Option<usize>,
    /// Seconds (default 60).
    #[schemars(range(min = 1, max = 600))]
    pub timeout_s: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PointerRescanArgs {
    /// From pointer_scan.
    pub pointer_scan_id: String,
    /// Where the value is now.
    pub target: Location,
    /// Default: the scanned one; the new pid after a restart.
    pub pid: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SnapshotArgs {
    /// Pid.
    pub pid: u32,
    pub address: Location,
    /// Bytes (max 64 MiB).
    #[schemars(range(min = 1, max = 67_108_864))]
    pub length: usize,
    /// Stop all threads while copying.
    pub freeze: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DiffSnapshotsArgs {
    /// Snapshot id taken first.
    pub before: String,
    /// Snapshot id taken later.
    pub after: String,
    /// Cell type.
    #[schemars(schema_with = "numeric_type_schema")]
    pub value_type: ValueType,
    #[serde(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadStructArgs {
    /// Pid.
    pub pid: u32,
    pub address: Location,
    /// A name (built in: D2UnitAny, D2Player, D2ItemData...) or fields.
    pub layout: LayoutRef,
    /// Pointer levels to follow (default 1).
    #[schemars(range(min = 0, max = 4))]
    pub depth: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct InferStructArgs {
    /// Pid.
    pub pid: u32,
    /// Instances of one structure.
    #[schemars(schema_with = "addresses_schema")]
    pub addresses: Vec<Location>,
    /// Bytes to examine.
    #[schemars(range(min = 4, max = 4096))]
    pub size: usize,
    /// Default 4 with 32-bit PE code, else 8.
    #[serde(default)]
    #[schemars(schema_with = "pointer_size_schema")]
    pub pointer_size: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WatchArgs {
    /// Pid.
    pub pid: u32,
    pub address: Location,
    /// Value type.
    #[schemars(schema_with = "numeric_type_schema")]
    pub value_type: ValueType,
    /// Milliseconds between samples.
    #[schemars(range(min = 10, max = 60_000))]
    pub interval_ms: u64,
    /// Samples to take.
    #[schemars(range(min = 1, max = 10_000))]
    pub samples: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CodeArch {
    X86,
    X64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DisassembleMemoryArgs {
    /// Pid.
    pub pid: u32,
    pub address: Location,
    /// Instructions.
    #[schemars(range(min = 1, max = 500))]
    pub count: usize,
    /// Default x86 in 32-bit PE code, else x64.
    pub arch: Option<CodeArch>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WriteMemoryArgs {
    /// Pid.
    pub pid: u32,
    pub address: Location,
    /// Hex bytes like 90 90 (max 4096), or value + value_type.
    pub bytes: Option<String>,
    /// Number to write.
    #[serde(default)]
    #[schemars(schema_with = "number_schema")]
    pub value: Option<Value>,
    /// Type of value.
    #[serde(default)]
    #[schemars(schema_with = "numeric_type_schema")]
    pub value_type: Option<ValueType>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UndoWriteArgs {
    /// From write_memory.
    pub write_id: String,
}
