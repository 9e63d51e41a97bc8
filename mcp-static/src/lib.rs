//! Static analysis of PE, ELF and Mach-O binaries: headers, sections, imports and exports
//! (ordinal-only included), strings, disassembly, functions, cross references, byte
//! patterns, signatures, address conversion and binary diff.
//!
//! `binary` parses a file once into an owned model (`formats` does the per-format work);
//! `analysis` builds the function and cross-reference index lazily on top of it; `listing`
//! keeps each code section's linear sweep so `disassemble` pages are slices; `queries`
//! and `diff` answer the tools' questions; `cache` keeps parsed binaries between calls;
//! `tools` maps all of it onto MCP; `prompts` adds the `triage_binary` prompt and path
//! completion.

pub mod analysis;
pub mod binary;
pub mod cache;
pub mod diff;
pub mod disasm;
mod formats;
pub mod listing;
pub mod model;
pub mod pattern;
pub mod prompts;
pub mod queries;
pub mod strings;
pub mod tools;

pub use binary::Binary;
