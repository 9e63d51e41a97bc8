//! Diablo II as data: game versions, the live character, inventory and units read from a
//! running game (through mcp-memory's library), character saves and PlugY stashes.
//!
//! `tables` loads the game's tables and offsets from `schemas/d2/`; `bits` reads and writes
//! bit fields; `save` parses and writes `.d2s` saves; `stash` parses PlugY stashes.

pub mod bits;
pub mod live;
pub mod prompts;
pub mod save;
pub mod stash;
pub mod tables;
pub mod tools;
