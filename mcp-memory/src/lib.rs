//! Live process memory on Linux (Wine processes included): the Cheat Engine workflow for
//! agents. Find a value, narrow it down, find a stable pointer path to it, see what changes,
//! guess the structure around it.
//!
//! `procfs` reads `/proc`; `reader` reads and writes memory without staying attached;
//! `modules` finds ELF and PE images and module-relative addresses; `scan`, `pointers`,
//! `snapshot` and `layout` are the analyses; `sessions` holds scans in progress (first scan,
//! next scans, pointer rescans); `store` keeps results between calls within a
//! memory budget; `freeze` stops a process briefly; `tools` maps all of it onto MCP;
//! `prompts` adds the guided workflows and argument completion.
//!
//! Used as a plain library, without MCP (`default-features = false`): find a value in a
//! process (here this one), change it, and narrow the scan to where it lives.
//!
//! ```
//! use mcp_memory::reader::ProcessMemory;
//! use mcp_memory::scan::{Condition, Control, FirstScan, ScanSpec};
//! use mcp_memory::sessions::ScanSession;
//! use mcp_memory::{procfs, values::{Num, ValueType}};
//!
//! let mut gold = Box::new(48_213_u32);
//! let pid = std::process::id();
//! let mem = ProcessMemory::open(pid)?;
//! let ranges: Vec<(u64, u64)> = procfs::read_maps(pid)?
//!     .iter()
//!     .filter(|r| r.scannable() && r.writable)
//!     .map(|r| (r.start, r.end))
//!     .collect();
//! let spec = ScanSpec {
//!     what: FirstScan::Bytes(48_213_u32.to_le_bytes().to_vec()),
//!     stride: 4,
//!     alignment: 4,
//!     max_results: 10_000,
//!     copy_budget: 0,
//! };
//! let ctl = Control::default();
//! let (mut scan, _) = ScanSession::start(&mem, &ranges, &spec, Some(ValueType::U32), "value", &ctl)?;
//! // The game spends some gold.
//! unsafe { std::ptr::write_volatile(&mut *gold, 47_000) };
//! scan.next(&mem, Condition::Equal(Num::Int(47_000)), 0.0, &ctl)?;
//! let at = &*gold as *const u32 as u64;
//! assert!(scan.addresses().is_some_and(|a| a.contains(&at)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod freeze;
pub mod layout;
pub mod modules;
pub mod pointers;
pub mod procfs;
#[cfg(feature = "server")]
pub mod prompts;
pub mod reader;
pub mod scan;
pub mod sessions;
pub mod snapshot;
pub mod store;
#[cfg(feature = "server")]
pub mod tools;
pub mod values;
pub mod watch;
pub mod writes;
