//! Behaviour of a running program for agents: which instruction writes (reads, executes) an
//! address, watched with hardware breakpoints.
//!
//! The library knows nothing of MCP: `perf` arms the debug registers through the kernel's
//! perf events and reads their samples; `writers` runs a watch window over every thread of a
//! process and attributes each hit to its instruction. `tools` puts them on MCP.
//!
//! Used as a plain library, without MCP (`default-features = false`): read what Wine's debug
//! channels say a Windows program did.
//!
//! ```
//! use mcp_behavior::wine_debug::{Line, parse};
//!
//! let loaded = r#"0130:trace:loaddll:build_module Loaded L"C:\\Diablo II\\D2Game.dll" at 6FC20000: native"#;
//! assert_eq!(
//!     parse(loaded),
//!     Some(Line::Loaded {
//!         tid: 0x130,
//!         path: r"C:\Diablo II\D2Game.dll".into(),
//!         base: 0x6fc2_0000,
//!         bits32: true,
//!     })
//! );
//! let call = "0130:Call KERNEL32.IsDebuggerPresent() ret=00401601";
//! assert!(matches!(parse(call), Some(Line::Call { function, .. }) if function == "IsDebuggerPresent"));
//! assert_eq!(parse("the game's own output"), None);
//! ```

pub mod detect;
pub mod events;
pub mod perf;
pub mod series;
pub mod summary;
#[cfg(feature = "server")]
pub mod tools;
pub mod trace;
pub mod wine_debug;
pub mod writers;
