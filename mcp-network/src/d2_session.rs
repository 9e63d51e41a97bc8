//! Decodes the Diablo II protocols of a source's flows, one direction at a time: the
//! direction's bytes are reassembled, delimited into messages by the right dialect (D2GS
//! server frames, raw D2GS client packets, realm or BNCS framing), and each message is given
//! the packet (and time) that completed it. Decoding stops at the first gap in a stream:
//! after missing bytes there is no way to find the next message boundary.

use crate::analysis::Analysis;
use crate::battle_net::{Framing, split};
use crate::d2_tables::{PacketSpec, Tables};
use crate::d2gs::{DecodeProblem, MessageSpan, decode_client, decode_server};
use crate::error::{NetError, Result};
use crate::flows::{AppProtocol, Direction};
use crate::reassembly::Gap;
use schemars::JsonSchema;
use serde::Serialize;

/// At most this many problems are listed per direction (all are counted).
pub const MAX_PROBLEMS: usize = 100;

/// How one direction's bytes are delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    D2gsServer,
    D2gsClient,
    Realm,
    Bncs,
}

impl Dialect {
    pub fn of(protocol: AppProtocol, dir: Direction) -> Option<Dialect> {
        match (protocol, dir) {
            (AppProtocol::D2gs, Direction::ServerToClient) => Some(Dialect::D2gsServer),
            (AppProtocol::D2gs, Direction::ClientToServer) => Some(Dialect::D2gsClient),
            (AppProtocol::Realm, _) => Some(Dialect::Realm),
            (AppProtocol::Bncs, _) => Some(Dialect::Bncs),
            _ => None,
        }
    }

    /// The D2GS packet spec of `id`, for the D2GS dialects.
    pub fn spec(self, t: &Tables, id: u8) -> Option<&PacketSpec> {
        match self {
            Dialect::D2gsServer => t.s2c(id),
            Dialect::D2gsClient => t.c2s(id),
            Dialect::Realm | Dialect::Bncs => None,
        }
    }

    /// The message name of `id` ("unknown" when the tables have none).
    pub fn name(self, t: &Tables, id: u8) -> String {
        let name = match self {
            Dialect::D2gsServer | Dialect::D2gsClient => self.spec(t, id).map(|s| s.name.as_str()),
            Dialect::Realm => t.realm_name(id),
            Dialect::Bncs => t.bncs_name(id),
        };
        name.unwrap_or("unknown").to_string()
    }
}

/// What decoding one direction found.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DirectionReport {
    pub flow_id: u32,
    pub protocol: AppProtocol,
    pub direction: Direction,
    /// Length of the direction's byte stream (received bytes and gaps).
    pub stream_bytes: u64,
    /// Messages delimited.
    pub messages: usize,
    /// D2GS server side: "on" after AF 01, "off" after AF 00, "assumed" without either.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// D2GS server side: compressed frames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_packet_frames: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrupt_frames: Option<u32>,
    /// Bytes that could not be delimited into messages.
    pub leftover_bytes: u64,
    /// Byte ranges missing from the capture.
    pub gaps: Vec<Gap>,
    /// Gaps left out of `gaps` to keep an answer small.
    #[serde(skip_serializing_if = "is_zero")]
    pub gaps_omitted: usize,
    /// The first problems met (at most 100).
    pub problems: Vec<DecodeProblem>,
    pub problems_total: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One decoded direction.
#[derive(Debug, Clone)]
pub struct DirectionDecode {
    pub report: DirectionReport,
    pub dialect: Dialect,
    /// The bytes the spans point into (decompressed for the D2GS server side).
    pub data: Vec<u8>,
    pub messages: Vec<MessageSpan>,
    /// Per message: the packet that completed it and its time (None for raw stream files).
    pub times: Vec<Option<(u32, f64)>>,
}

impl DirectionDecode {
    pub fn bytes(&self, m: &MessageSpan) -> &[u8] {
        self.data.get(m.start..m.start + m.len).unwrap_or(&[])
    }
}

/// Decodes one direction of one flow as `protocol`.
pub fn decode_direction(
    a: &Analysis,
    flow_id: u32,
    dir: Direction,
    protocol: AppProtocol,
) -> Result<DirectionDecode> {
    let dialect = Dialect::of(protocol, dir).ok_or_else(|| {
        NetError::new(format!(
            "invalid argument `protocol`: {} (accepted: d2gs, realm, bncs)",
            protocol.as_str()
        ))
    })?;
    let stream = a.stream(flow_id, dir)?;
    let bytes = stream.leading_bytes();
    let mut problems: Vec<DecodeProblem> = Vec::new();
    let mut report = DirectionReport {
        flow_id,
        protocol,
        direction: dir,
        stream_bytes: stream.end,
        messages: 0,
        compression: None,
        frames: None,
        multi_packet_frames: None,
        corrupt_frames: None,
        leftover_bytes: 0,
        gaps: stream.gaps.clone(),
        gaps_omitted: 0,
        problems: Vec::new(),
        problems_total: 0,
    };
    let (data, messages) = match dialect {
        Dialect::D2gsServer => {
            let s = decode_server(bytes)?;
            report.compression = Some(
                match s.prefix {
                    Some(0) => "off",
                    Some(_) => "on",
                    None => "assumed",
                }
                .to_string(),
            );
            report.frames = Some(s.frames.len());
            report.multi_packet_frames = Some(s.multi_packet_frames());
            report.corrupt_frames = Some(s.corrupt_frames);
            report.leftover_bytes = s.leftover_stream_bytes + s.leftover_frame_bytes;
            problems.extend(s.problems);
            (s.data, s.messages)
        }
        Dialect::D2gsClient => {
            let c = decode_client(bytes)?;
            report.leftover_bytes = c.leftover_bytes;
            problems.extend(c.problems);
            (bytes.to_vec(), c.messages)
        }
        Dialect::Realm | Dialect::Bncs => {
            let framing = if dialect == Dialect::Realm {
                Framing::Realm
            } else {
                Framing::Bncs
            };
            let s = split(bytes, framing, dir == Direction::ClientToServer);
            report.leftover_bytes = s.leftover_bytes;
            problems.extend(s.problems);
            (bytes.to_vec(), s.messages)
        }
    };
    if let Some(gap) = stream.gaps.first() {
        let after = stream.received().saturating_sub(bytes.len() as u64);
        report.leftover_bytes += after;
        problems.push(DecodeProblem {
            frame: None,
            offset: gap.offset,
            reason: format!(
                "{} bytes at stream offset {} were never captured; the {after} received bytes \
                 after them are not decoded (message boundaries are lost)",
                gap.len, gap.offset
            ),
        });
    }
    let times = messages
        .iter()
        .map(|m| {
            stream
                .chunk_at(m.end_offset.saturating_sub(1))
                .map(|c| (c.packet_index, c.time))
        })
        .collect();
    report.messages = messages.len();
    report.problems_total = problems.len();
    problems.truncate(MAX_PROBLEMS);
    report.problems = problems;
    Ok(DirectionDecode {
        report,
        dialect,
        data,
        messages,
        times,
    })
}

/// Decodes the chosen flows and directions (each once per source: see
/// [`Analysis::decoded`]). Without `flow_id`, every d2gs, realm and bncs
/// flow (only those of `protocol` if given); with it, that flow as its own protocol, or as
/// `protocol` when given (to decode traffic on unusual ports).
pub fn decode_flows(
    a: &Analysis,
    flow_id: Option<u32>,
    direction: Option<Direction>,
    protocol: Option<AppProtocol>,
) -> Result<Vec<std::sync::Arc<DirectionDecode>>> {
    let dirs: Vec<Direction> = match direction {
        Some(d) => vec![d],
        None => vec![Direction::ClientToServer, Direction::ServerToClient],
    };
    let targets: Vec<(u32, AppProtocol)> = match flow_id {
        Some(id) => {
            let own = a.flow_protocol(id)?;
            let p = protocol.unwrap_or(own);
            if !matches!(
                p,
                AppProtocol::D2gs | AppProtocol::Realm | AppProtocol::Bncs
            ) {
                return Err(NetError::new(format!(
                    "flow {id} is {}, not a Diablo II protocol (pass `protocol` = d2gs, realm \
                     or bncs to decode it as one)",
                    p.as_str()
                )));
            }
            vec![(id, p)]
        }
        None => (0..a.flow_count() as u32)
            .filter_map(|id| {
                let p = a.flow_protocol(id).ok()?;
                let wanted = match protocol {
                    Some(want) => p == want,
                    None => matches!(
                        p,
                        AppProtocol::D2gs | AppProtocol::Realm | AppProtocol::Bncs
                    ),
                };
                wanted.then_some((id, p))
            })
            .collect(),
    };
    let mut out = Vec::new();
    for (id, p) in targets {
        for &d in &dirs {
            out.push(a.decoded((id, d, p), || decode_direction(a, id, d, p))?);
        }
    }
    Ok(out)
}
