//! Behaviour of a running program for agents: which instruction writes (reads, executes) an
//! address, watched with hardware breakpoints.
//!
//! The library knows nothing of MCP: `perf` arms the debug registers through the kernel's
//! perf events and reads their samples; `writers` runs a watch window over every thread of a
//! process and attributes each hit to its instruction. `tools` puts them on MCP.

pub mod detect;
pub mod events;
pub mod perf;
pub mod series;
pub mod summary;
pub mod tools;
pub mod trace;
pub mod wine_debug;
pub mod writers;
