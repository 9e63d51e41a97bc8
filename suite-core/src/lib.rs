//! The plain types every analysis library of the suite shares: addresses as tools take and
//! give them, the error that names the bad argument, pages of a list, the last results of a
//! computation, small files read with a cap, hex.
//!
//! Nothing here knows MCP: an analysis library depends on this crate, not on rmcp, so it can
//! be used from any Rust program. `mcp-common` re-exports these modules for the tool layers
//! and, with the `mcp` feature, [`ToolError`] becomes a tool's `isError` result.
//!
//! ```
//! use suite_core::{Address, ToolError};
//!
//! let base = Address::parse("0x6fab_0000").ok_or("not an address")?;
//! assert_eq!(base.to_string(), "0x6FAB0000");
//! let e = ToolError::invalid("pid", -3, "a process id, a positive integer");
//! assert_eq!(e.message(), "invalid argument `pid`: -3 (a process id, a positive integer)");
//! # Ok::<(), &str>(())
//! ```

pub mod address;
pub mod bytes;
pub mod error;
pub mod files;
pub mod paging;
pub mod recent;

pub use address::Address;
pub use error::ToolError;
pub use paging::{Format, Line, Noun, Page, PageArgs};
