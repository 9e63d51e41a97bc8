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
//!
//! Used as a plain library, without MCP (`default-features = false`): compress two frames of
//! game-server packets as the server does, then decode the stream and name a packet's fields.
//!
//! ```
//! use mcp_network::{d2_fields::decode_fields, d2_tables::tables, d2gs};
//!
//! // Game loading; then game flags (hell, expansion) and load successful in one frame.
//! let flags: &[u8] = &[0x01, 2, 0, 0, 0, 0, 1, 0, 0x02];
//! let stream = d2gs::encode_server([&[0x00][..], flags])?;
//! let decoded = d2gs::decode_server(&stream)?;
//! let ids: Vec<u8> = decoded.messages.iter().map(|m| m.id).collect();
//! assert_eq!(ids, [0x00, 0x01, 0x02]);
//! assert_eq!(decoded.multi_packet_frames(), 1);
//! let spec = tables()?.s2c(0x01).ok_or("no spec for 0x01")?;
//! let fields = decode_fields(&spec.fields, decoded.bytes(&decoded.messages[1]));
//! assert_eq!((fields["difficulty"].as_u64(), fields["expansion"].as_u64()), (Some(2), Some(1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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
#[cfg(feature = "server")]
pub mod prompts;
pub mod queries;
pub mod reassembly;
pub mod stats;
#[cfg(feature = "server")]
pub mod tools;

pub use analysis::Analysis;
pub use error::NetError;
pub use flows::{AppProtocol, Direction};
