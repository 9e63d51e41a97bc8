//! A followed stream: a window of a flow's reassembled bytes and the packets that carried
//! them.

use super::*;

/// Received bytes of a stream window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct StreamPiece {
    pub offset: u64,
    pub length: u64,
    pub hex: String,
    /// The bytes as text, '.' for what is not printable ASCII.
    pub text: String,
}

/// A window of one direction of a flow.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StreamSlice {
    pub flow_id: u32,
    pub direction: Direction,
    pub protocol: AppProtocol,
    /// Length of the stream (received bytes and gaps).
    pub stream_length: u64,
    pub received_bytes: u64,
    pub offset: u64,
    pub limit: u64,
    /// The received bytes in the window (several pieces when gaps cut it).
    pub pieces: Vec<StreamPiece>,
    /// Missing byte ranges that touch the window.
    pub gaps: Vec<Gap>,
    /// Which packets delivered the window's bytes (at most 200).
    pub packets: Vec<Chunk>,
    /// Where the next window starts; absent at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
    /// Retransmissions, overlaps, out-of-order segments of the whole direction.
    pub reassembly: ReassemblyStats,
    /// True when the window was made shorter than asked to keep the answer small.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

pub(super) fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect()
}

/// Bytes `[offset, offset + limit)` of one direction of a flow, reassembled.
pub fn follow_stream(
    a: &Analysis,
    flow_id: u32,
    direction: Direction,
    offset: u64,
    limit: u64,
) -> Result<StreamSlice> {
    if limit == 0 {
        return Err(NetError::new(format!(
            "invalid argument `limit`: 0 (accepted: 1 to {MAX_STREAM_WINDOW})"
        )));
    }
    let limit = limit.min(MAX_STREAM_WINDOW);
    let protocol = a.flow_protocol(flow_id)?;
    let stream = a.stream(flow_id, direction)?;
    let end = offset.saturating_add(limit);
    let pieces = stream
        .window(offset, limit)
        .into_iter()
        .map(|(o, bytes)| StreamPiece {
            offset: o,
            length: bytes.len() as u64,
            hex: to_hex(bytes),
            text: printable(bytes),
        })
        .collect();
    let gaps = stream
        .gaps
        .iter()
        .filter(|g| g.offset < end && g.offset + g.len > offset)
        .copied()
        .collect();
    let packets = stream
        .chunks
        .iter()
        .filter(|c| c.offset < end && c.offset + c.len > offset)
        .take(MAX_WINDOW_PACKETS)
        .copied()
        .collect();
    Ok(StreamSlice {
        flow_id,
        direction,
        protocol,
        stream_length: stream.end,
        received_bytes: stream.received(),
        offset,
        limit,
        pieces,
        gaps,
        packets,
        next_offset: (end < stream.end).then_some(end),
        reassembly: stream.stats,
        truncated: false,
    })
}
