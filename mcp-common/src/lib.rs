//! Plumbing shared by every MCP server of the suite.
//!
//! Nothing here knows about binaries, processes or packets: it is the thin layer between an
//! analysis library and the MCP protocol (serving, error results, paging, addresses, the file
//! allow-list). Each server's `tools` module uses these pieces so that every tool behaves the
//! same way for the host.

pub mod any_server;
pub mod error;
pub mod jsonrpc;
pub mod output;
pub mod progress;
pub mod prompts;
pub mod roots;
pub mod schema;
pub mod serve;
pub mod task;

// The plain types, below the MCP line, under the paths the tool layers have always used.
pub use suite_core::{address, bytes, files, paging, recent};

pub use address::Address;
pub use error::ToolError;
pub use output::{Json, Summary};
pub use paging::{Format, Line, Noun, Page, PageArgs};
pub use roots::Roots;
pub use task::blocking;
