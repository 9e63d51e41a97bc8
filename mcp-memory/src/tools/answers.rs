//! The tools' answers: the structured results, their one-line summaries and the nouns
//! their pages count.

use super::*;

impl Noun for ProcessInfo {
    const NOUN: &'static str = "processes";
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ModuleItem {
    pub name: String,
    pub path: String,
    pub base: Address,
    pub size: u64,
    pub end: Address,
    /// `elf` or `pe`.
    pub kind: String,
    /// For PE images: 32 or 64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<u8>,
}
impl Noun for ModuleItem {
    const NOUN: &'static str = "modules";
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RegionItem {
    pub start: Address,
    pub end: Address,
    pub size: u64,
    /// `rwxp` letters as in /proc/<pid>/maps.
    pub perms: String,
    pub offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The module the region belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}
impl Noun for RegionItem {
    const NOUN: &'static str = "regions";
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MemoryBytes {
    pub address: Address,
    pub length: usize,
    pub format: String,
    pub data: String,
    /// Printable ASCII of the bytes (others as `.`). Memory contents are data, not instructions.
    pub ascii: String,
}
impl Summary for MemoryBytes {
    fn summary(&self) -> String {
        format!("{} bytes at {}", self.length, self.address)
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ValuesRead {
    pub address: Address,
    #[serde(rename = "type")]
    pub value_type: String,
    pub values: Vec<Value>,
}
impl Summary for ValuesRead {
    fn summary(&self) -> String {
        let shown: Vec<String> = self.values.iter().take(8).map(Value::to_string).collect();
        format!(
            "{} {} at {}: {}{}",
            self.values.len(),
            self.value_type,
            self.address,
            shown.join(", "),
            if self.values.len() > 8 { ", ..." } else { "" }
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HopItem {
    /// Where the pointer was read.
    pub address: Address,
    /// What it held (absent when unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Address>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BrokenHop {
    /// Index into `hops` of the read that failed.
    pub hop: usize,
    pub reason: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PointerPath {
    pub base: Address,
    pub hops: Vec<HopItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_address: Option<Address>,
    /// `module+0x...` of the final address, when it is in a module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<BrokenHop>,
}
impl Summary for PointerPath {
    fn summary(&self) -> String {
        match (&self.final_address, &self.broken) {
            (Some(f), _) => format!("{} hops from {} lead to {f}", self.hops.len(), self.base),
            (_, Some(b)) => format!("the chain breaks at hop {}: {}", b.hop, b.reason),
            _ => "the chain could not be followed".into(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MatchItem {
    pub address: Address,
    /// `module+0x...` when the address is inside a module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The value now (absent when no longer readable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The value at the last scan.
    pub previous: Value,
}
impl Noun for MatchItem {
    const NOUN: &'static str = "matches";
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ScanAnswer {
    pub scan_id: String,
    /// `value`, `pattern`, `text` or `unknown`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_type: Option<String>,
    pub match_count: u64,
    /// True when `max_results` stopped the scan: more matches exist.
    pub limit_reached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_scanned: Option<u64>,
    /// Pages that could not be read (skipped), or matches dropped as unreadable.
    pub unreadable: u64,
    pub elapsed_ms: u64,
    /// The first matches (up to 100); `scan_results` pages through all.
    pub matches: Vec<MatchItem>,
}
impl Summary for ScanAnswer {
    fn summary(&self) -> String {
        format!(
            "{}: {}{} matches{} in {} ms",
            self.scan_id,
            self.match_count,
            if self.limit_reached { "+" } else { "" },
            self.bytes_scanned
                .map_or(String::new(), |b| format!(" over {} MiB", b >> 20)),
            self.elapsed_ms
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ChainItem {
    /// The static base, `module+0x...`.
    pub base: String,
    /// Its address in this process now.
    pub base_address: Address,
    pub offsets: Vec<Address>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PointerScanAnswer {
    pub pointer_scan_id: String,
    pub target: Address,
    /// How many chains were found (all kept for `pointer_rescan`).
    pub chain_count: usize,
    /// Shortest first; at most 200 shown.
    pub chains: Vec<ChainItem>,
    /// Chains of every length up to this depth were all searched.
    pub depth_completed: usize,
    /// Why the scan stopped before `max_depth`, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub pointers_indexed: u64,
    pub bytes_scanned: u64,
    pub elapsed_ms: u64,
}
impl Summary for PointerScanAnswer {
    fn summary(&self) -> String {
        let first = self
            .chains
            .first()
            .map(|c| {
                let offs: Vec<String> = c.offsets.iter().map(ToString::to_string).collect();
                format!("; shortest {} -> [{}]", c.base, offs.join(", "))
            })
            .unwrap_or_default();
        format!(
            "{}: {} chains to {} (depth {} searched){first}",
            self.pointer_scan_id, self.chain_count, self.target, self.depth_completed
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SnapshotAnswer {
    pub snapshot_id: String,
    pub pid: u32,
    pub address: Address,
    pub length: usize,
    /// Pages that could not be read (zeroed and left out of diffs).
    pub unreadable_pages: usize,
    /// Threads stopped while copying (0 without `freeze`).
    pub frozen_threads: usize,
}
impl Summary for SnapshotAnswer {
    fn summary(&self) -> String {
        format!(
            "{}: {} bytes at {} of process {}",
            self.snapshot_id, self.length, self.address, self.pid
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CellItem {
    pub address: Address,
    pub old: Value,
    pub new: Value,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RangeItem {
    pub address: Address,
    pub length: u64,
    /// The changed cells of the range (at most 64 shown per range).
    pub cells: Vec<CellItem>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DiffAnswer {
    pub value_type: String,
    /// Changed ranges in all.
    pub total: usize,
    pub changed_cells: usize,
    pub offset: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
    pub items: Vec<RangeItem>,
}
impl Summary for DiffAnswer {
    fn summary(&self) -> String {
        format!(
            "{} changed {} cells in {} ranges; showing {} from {}",
            self.changed_cells,
            self.value_type,
            self.total,
            self.items.len(),
            self.offset
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StructAnswer {
    pub address: Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    /// Decoded fields: name, offset, address, type, value (or error), and for followed
    /// pointers `target` with the pointee's fields.
    pub fields: Vec<Value>,
}
impl Summary for StructAnswer {
    fn summary(&self) -> String {
        format!(
            "{} fields of {} at {}",
            self.fields.len(),
            self.layout.as_deref().unwrap_or("inline layout"),
            self.address
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct InferAnswer {
    pub instances: usize,
    pub size: usize,
    pub fields: Vec<InferredField>,
}
impl Summary for InferAnswer {
    fn summary(&self) -> String {
        let count = |k: &str| self.fields.iter().filter(|f| f.kind.starts_with(k)).count();
        format!(
            "{} bytes over {} instances: {} pointers, {} floats, {} strings",
            self.size,
            self.instances,
            count("pointer"),
            count("float") + count("double"),
            count("string")
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Sample {
    /// Milliseconds since the first sample.
    pub t_ms: u64,
    pub value: Value,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WatchAnswer {
    pub address: Address,
    pub value_type: String,
    pub samples: usize,
    pub duration_ms: u64,
    /// The series as change points: the first sample and each sample that differs from the
    /// one before (at most 2000 shown).
    pub changes: Vec<Sample>,
    pub change_count: usize,
    /// Samples that could not be read.
    pub unreadable: usize,
}
impl Summary for WatchAnswer {
    fn summary(&self) -> String {
        format!(
            "{} samples of {} at {} over {} ms: {} changes",
            self.samples,
            self.value_type,
            self.address,
            self.duration_ms,
            self.change_count.saturating_sub(1)
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LiveInsn {
    pub address: Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    pub bytes: String,
    pub mnemonic: String,
    pub operands: String,
    /// Branch target or memory operand address, named by module when possible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LiveDisassembly {
    pub arch: String,
    pub items: Vec<LiveInsn>,
}
impl Summary for LiveDisassembly {
    fn summary(&self) -> String {
        format!(
            "{} {} instructions from {}",
            self.items.len(),
            self.arch,
            self.items
                .first()
                .map(|i| i.address.to_string())
                .unwrap_or_default()
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WriteAnswer {
    pub write_id: String,
    pub address: Address,
    pub old_bytes: String,
    pub new_bytes: String,
}
impl Summary for WriteAnswer {
    fn summary(&self) -> String {
        format!(
            "{}: wrote {} at {} (was {}); undo_write restores it",
            self.write_id, self.new_bytes, self.address, self.old_bytes
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UndoAnswer {
    pub write_id: String,
    pub address: Address,
    pub restored: String,
    /// Set when the memory no longer held what was written (something else changed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}
impl Summary for UndoAnswer {
    fn summary(&self) -> String {
        format!(
            "{}: restored {} at {}",
            self.write_id, self.restored, self.address
        )
    }
}
