//! Network traffic for agents: pcap/pcapng files and live captures, flows, TCP reassembly,
//! and the Diablo II protocols (D2GS with its Huffman compression, realm, Battle.net).
//!
//! The library knows nothing of MCP. Data flows one way:
//! `capture_file` reads packets (or a raw D2GS stream) -> `layers` parses each packet's
//! headers into a compact record -> `flows` groups them into bidirectional flows in one pass
//! (all three held by `analysis::Analysis`) -> `reassembly` rebuilds a direction's bytes on
//! demand -> `d2gs` (with `huffman` and the `d2_tables` data) and `battle_net` delimit Diablo
//! II messages, `d2_session` does that per flow direction, `d2_fields` names their fields and
//! `stats` counts them -> `queries` answers the questions the tools ask with serde/schemars
//! types. `live_capture` runs libpcap captures into `output_dir`, kept private; `tools` puts all of it on MCP; `prompts` adds
//! the `decode_capture` prompt and the completion of its `source`.

pub mod analysis;
pub mod battle_net;
pub mod capture_file;
pub mod d2_fields;
pub mod d2_session;
pub mod d2_tables;
pub mod d2gs;
pub mod error;
pub mod flows;
pub mod huffman;
pub mod layers;
pub mod live_capture;
pub mod output_dir;
pub mod prompts;
pub mod queries;
pub mod reassembly;
pub mod stats;
pub mod tools;

pub use analysis::Analysis;
pub use error::NetError;
pub use flows::{AppProtocol, Direction};
