//! The questions an agent asks about a source, answered with plain serde + schemars types:
//! summary, packet list and detail, flows, a followed stream, decoded Diablo II messages and
//! their statistics, and a filtered pcap export. The MCP layer pages and caps these answers;
//! nothing here knows about MCP.

use crate::analysis::Analysis;
use crate::capture_file::{ReadProblem, SourceFormat, create_pcap};
use crate::d2_fields::decode_fields;
use crate::d2_session::{DirectionDecode, DirectionReport, decode_flows};
use crate::d2_tables::tables;
use crate::error::{NetError, Result};
use crate::flows::{AppProtocol, Direction, Flow};
use crate::layers::{Fragment, Layer, NetLayer, describe, ip_proto_name, src_dst, summary_line};
use crate::reassembly::{Chunk, Gap, ReassemblyStats};
use crate::stats::D2Stats;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::path::Path;
use suite_core::bytes::to_hex;

mod d2;
mod flows;
mod packets;
mod stream;
mod summary;
#[cfg(test)]
mod tests;

pub use d2::*;
pub use flows::*;
pub use packets::*;
pub use stream::*;
pub use summary::*;

/// Largest window `follow_stream` returns at once.
pub const MAX_STREAM_WINDOW: u64 = 1 << 20;
/// At most this many delivering packets are listed with a stream window.
pub const MAX_WINDOW_PACKETS: usize = 200;

/// A selected part of a longer list.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Listing<T> {
    /// How many items match in all.
    pub total: usize,
    /// Index (among the matches) of the first item given.
    pub offset: usize,
    pub items: Vec<T>,
}
