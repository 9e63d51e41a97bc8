//! Diablo II as data: game versions, the live character, inventory and units read from a
//! running game (through mcp-memory's library), character saves and PlugY stashes.
//!
//! `tables` loads the game's tables and offsets from `schemas/d2/`; `bits` reads and writes
//! bit fields; `save` parses and writes `.d2s` saves; `stash` parses PlugY stashes.
//!
//! Used as a plain library, without MCP (`default-features = false`): write a fresh save and
//! read it back as the game would.
//!
//! ```
//! use mcp_d2::save::{NewSave, parse_save, write_save};
//! use mcp_d2::tables::Tables;
//!
//! let tables = Tables::load()?;
//! let spec = NewSave {
//!     name: "Tal-Rasha".into(),
//!     class: 1, // Sorceress
//!     level: 12,
//!     status: 1 << 5, // expansion
//!     last_played: 0,
//!     map_id: 0,
//!     stats: vec![(12, 12), (14, 2_500)], // level, gold
//!     skills: [0; 30],
//! };
//! let bytes = write_save(&spec, &tables)?;
//! let save = parse_save(&bytes, &tables)?;
//! assert!(save.checksum.valid && save.warnings.is_empty());
//! assert_eq!((save.header.name.as_str(), save.header.level), ("Tal-Rasha", 12));
//! assert_eq!(save.header.class.name.as_deref(), Some("Sorceress"));
//! let gold = save.stats.iter().find(|s| s.name == "gold").map(|s| s.value);
//! assert_eq!(gold, Some(2_500));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bits;
pub mod live;
#[cfg(feature = "server")]
pub mod prompts;
pub mod save;
pub mod stash;
pub mod tables;
#[cfg(feature = "server")]
pub mod tools;
