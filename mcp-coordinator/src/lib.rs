//! The coordinator: one MCP endpoint for the suite. It starts the analysis servers as child
//! processes, forwards their tools under `<prefix>__<tool>`, runs calls with timeouts, and
//! supervises the children (restart with backoff, circuit breaker).
//!
//! `config` reads TOML or Claude Desktop's JSON; `child` supervises one child; `tools` is the
//! MCP face (routing and the coordinator's own tools); `findings` keeps what was learned.

pub mod cache;
pub mod child;
pub mod config;
pub mod findings;
pub mod hosts;
pub mod tools;
