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
//!
//! Features: without any, the crate is `disasm`, `pattern`, `listing`, `strings` and `model`
//! (capstone and memchr only), for the memory and game layers; `files` adds parsing and
//! analysis (goblin); `server` (the default) adds the MCP tools and the program.
//!
//! Used as a plain library, without MCP: find a byte pattern, then disassemble what it found.
//!
//! ```
//! use mcp_static::{disasm, model::Arch, pattern::Pattern};
//!
//! // push ebp; mov ebp, esp; mov eax, [0x6FBA7000]; pop ebp; ret
//! let code = [0x55, 0x89, 0xE5, 0xA1, 0x00, 0x70, 0xBA, 0x6F, 0x5D, 0xC3];
//! let at = Pattern::parse("89 E5 A1 ?? ?? ?? ??")?.find_all(&code, 10);
//! assert_eq!(at, vec![1]);
//! let cs = disasm::capstone(Arch::X86, false)?;
//! let insns = disasm::decode(&cs, Arch::X86, &code[at[0]..], 0x1000 + at[0] as u64, 2);
//! assert_eq!(insns[1].mnemonic, "mov");
//! assert_eq!(insns[1].operands, "eax, dword ptr [0x6fba7000]");
//! # Ok::<(), String>(())
//! ```

pub mod disasm;
pub mod listing;
pub mod model;
pub mod pattern;
pub mod strings;

#[cfg(feature = "files")]
pub mod analysis;
#[cfg(feature = "files")]
pub mod binary;
#[cfg(feature = "files")]
pub mod cache;
#[cfg(feature = "files")]
pub mod diff;
#[cfg(feature = "files")]
mod formats;
#[cfg(feature = "server")]
pub mod prompts;
#[cfg(feature = "files")]
pub mod queries;
#[cfg(feature = "server")]
pub mod tools;

#[cfg(feature = "files")]
pub use binary::Binary;
