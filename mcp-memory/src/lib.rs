//! Live process memory on Linux (Wine processes included): the Cheat Engine workflow for
//! agents. Find a value, narrow it down, find a stable pointer path to it, see what changes,
//! guess the structure around it.
//!
//! `procfs` reads `/proc`; `reader` reads and writes memory without staying attached;
//! `modules` finds ELF and PE images and module-relative addresses; `scan`, `pointers`,
//! `snapshot` and `layout` are the analyses; `store` keeps results between calls within a
//! memory budget; `freeze` stops a process briefly; `tools` maps all of it onto MCP;
//! `prompts` adds the guided workflows and argument completion.

pub mod freeze;
pub mod layout;
pub mod modules;
pub mod pointers;
pub mod procfs;
pub mod prompts;
pub mod reader;
pub mod scan;
pub mod snapshot;
pub mod store;
pub mod tools;
pub mod values;
pub mod watch;
pub mod writes;
