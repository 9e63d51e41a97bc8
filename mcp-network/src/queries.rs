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
use mcp_common::bytes::to_hex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::path::Path;

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

// ---------------------------------------------------------------------------------------
// summary

/// Packets and bytes of one protocol.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ProtocolCount {
    pub protocol: AppProtocol,
    pub packets: u64,
    /// Wire bytes.
    pub bytes: u64,
    pub flows: u64,
}

/// The overview of a source.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SourceSummary {
    pub path: String,
    pub format: SourceFormat,
    /// Link-layer type name ("ethernet", "linux_sll", ...); absent for raw streams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_type: Option<String>,
    pub packets: usize,
    /// Bytes on the wire (original lengths).
    pub bytes: u64,
    /// Bytes present in the file.
    pub captured_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_time: Option<f64>,
    /// Seconds between the first and the last packet.
    pub duration: f64,
    pub flows: usize,
    /// Per protocol (only those present).
    pub protocols: Vec<ProtocolCount>,
    /// The biggest flows by bytes.
    pub top_conversations: Vec<FlowItem>,
    pub non_ip_packets: u64,
    /// Later IP fragments (not placed in any flow).
    pub ip_fragments: u64,
    /// Packets whose headers were cut short.
    pub truncated_packets: u64,
    /// Set when the file is damaged: the packets before the damage are analysed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_problem: Option<ReadProblem>,
    /// For raw D2GS stream files: the stream's length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_bytes: Option<u64>,
}

/// The overview of a source, with its `top` biggest flows.
pub fn summary(a: &Analysis, top: usize) -> SourceSummary {
    let records = a.capture.records();
    let mut per: Vec<ProtocolCount> = AppProtocol::ALL
        .iter()
        .map(|&p| ProtocolCount {
            protocol: p,
            packets: 0,
            bytes: 0,
            flows: 0,
        })
        .collect();
    let slot = |p: AppProtocol| AppProtocol::ALL.iter().position(|&q| q == p).unwrap_or(0);
    let (mut bytes, mut captured) = (0u64, 0u64);
    let (mut first, mut last): (Option<f64>, Option<f64>) = (None, None);
    let (mut non_ip, mut frags, mut truncated) = (0u64, 0u64, 0u64);
    for (i, (record, meta)) in records.iter().zip(&a.metas).enumerate() {
        let t = record.time();
        first = Some(first.map_or(t, |f| f.min(t)));
        last = Some(last.map_or(t, |l| l.max(t)));
        bytes += u64::from(record.orig_len);
        captured += u64::from(record.caplen);
        if let Some(c) = per.get_mut(slot(a.flows.packet_protocol(i, meta))) {
            c.packets += 1;
            c.bytes += u64::from(record.orig_len);
        }
        non_ip += u64::from(!meta.is_ip());
        frags += u64::from(meta.fragment == Fragment::Later);
        truncated += u64::from(meta.truncated);
    }
    for f in &a.flows.flows {
        if let Some(c) = per.get_mut(slot(f.protocol)) {
            c.flows += 1;
        }
    }
    let raw = a.raw_stream();
    if let Some(raw) = raw
        && let Some(c) = per.get_mut(slot(AppProtocol::D2gs))
    {
        c.flows = 1;
        c.bytes = raw.len() as u64;
    }
    let mut order: Vec<&Flow> = a.flows.flows.iter().collect();
    order.sort_by(|x, y| y.bytes().cmp(&x.bytes()).then(x.flow_id.cmp(&y.flow_id)));
    let mut top_conversations: Vec<FlowItem> = order.into_iter().take(top).map(flow_item).collect();
    if let Some(raw) = raw {
        top_conversations = vec![raw_flow_item(raw.len() as u64)];
    }
    SourceSummary {
        path: a.path.display().to_string(),
        format: a.format,
        link_type: raw.is_none().then(|| a.capture.link_type.name()),
        packets: a.packet_count(),
        bytes,
        captured_bytes: captured,
        first_time: first,
        last_time: last,
        duration: match (first, last) {
            (Some(f), Some(l)) => l - f,
            _ => 0.0,
        },
        flows: a.flow_count(),
        protocols: per
            .into_iter()
            .filter(|c| c.packets > 0 || c.flows > 0)
            .collect(),
        top_conversations,
        non_ip_packets: non_ip,
        ip_fragments: frags,
        truncated_packets: truncated,
        read_problem: a.capture.problem.clone(),
        stream_bytes: raw.map(|r| r.len() as u64),
    }
}

// ---------------------------------------------------------------------------------------
// packets

/// Which packets to list or export. Every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PacketFilter {
    /// Only packets of this flow.
    pub flow_id: Option<u32>,
    /// Only packets going this way within their flow.
    pub direction: Option<Direction>,
    /// Only packets of this protocol (their flow's: d2gs, realm, bncs, tcp, udp; or arp, other).
    pub protocol: Option<AppProtocol>,
    /// Only packets from or to this IP address.
    pub host: Option<String>,
    /// Only packets from or to this TCP/UDP port.
    pub port: Option<u16>,
    /// First packet index (inclusive).
    pub from_index: Option<usize>,
    /// Last packet index (exclusive).
    pub to_index: Option<usize>,
    /// Earliest time, seconds since the epoch (inclusive).
    pub from_time: Option<f64>,
    /// Latest time, seconds since the epoch (inclusive).
    pub to_time: Option<f64>,
    /// true: only packets with TCP/UDP payload; false: only packets without.
    pub with_payload: Option<bool>,
    /// Only packets whose captured bytes contain this text, or these bytes when written
    /// `hex:AF01`.
    pub contains: Option<String>,
}

struct CompiledFilter<'f> {
    f: &'f PacketFilter,
    host: Option<IpAddr>,
    needle: Option<Vec<u8>>,
}

/// The bytes `contains` asks for: `hex:` followed by hex digits, or the text itself.
fn parse_contains(c: &Option<String>) -> Result<Option<Vec<u8>>> {
    let Some(c) = c else { return Ok(None) };
    if c.is_empty() {
        return Err(NetError::new(
            "invalid argument `contains`: \"\" (accepted: a text, or hex:AF01)",
        ));
    }
    let Some(h) = c.strip_prefix("hex:") else {
        return Ok(Some(c.as_bytes().to_vec()));
    };
    let digits: String = h.chars().filter(|ch| !ch.is_whitespace()).collect();
    let bad = || {
        NetError::new(format!(
            "invalid argument `contains`: {c:?} (hex:... needs pairs of hex digits, e.g. hex:AF01)"
        ))
    };
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| bad()))
        .collect::<Result<Vec<u8>>>()
        .map(Some)
}

fn parse_host(host: &Option<String>) -> Result<Option<IpAddr>> {
    host.as_deref()
        .map(|h| {
            h.trim().parse::<IpAddr>().map_err(|_| {
                NetError::new(format!(
                    "invalid argument `host`: {h:?} (accepted: an IPv4 or IPv6 address)"
                ))
            })
        })
        .transpose()
}

impl PacketFilter {
    fn compile(&self, a: &Analysis) -> Result<CompiledFilter<'_>> {
        if let Some(id) = self.flow_id
            && a.flows.get(id).is_none()
        {
            return Err(a.bad_flow(id));
        }
        Ok(CompiledFilter {
            f: self,
            host: parse_host(&self.host)?,
            needle: parse_contains(&self.contains)?,
        })
    }
}

impl CompiledFilter<'_> {
    fn range(&self, n: usize) -> std::ops::Range<usize> {
        let from = self.f.from_index.unwrap_or(0).min(n);
        let to = self.f.to_index.unwrap_or(n).min(n).max(from);
        from..to
    }

    fn matches(&self, a: &Analysis, i: usize) -> bool {
        let f = self.f;
        let (Some(meta), Some(record)) = (a.metas.get(i), a.capture.records().get(i)) else {
            return false;
        };
        let flow = a.flows.of_packet(i);
        if f.flow_id
            .is_some_and(|id| flow.map(|(fl, _)| fl.flow_id) != Some(id))
        {
            return false;
        }
        if f.direction
            .is_some_and(|d| flow.map(|(_, dir)| dir) != Some(d))
        {
            return false;
        }
        if f.protocol
            .is_some_and(|p| a.flows.packet_protocol(i, meta) != p)
        {
            return false;
        }
        if self
            .host
            .is_some_and(|h| meta.net == NetLayer::None || (meta.src != h && meta.dst != h))
        {
            return false;
        }
        if f.port
            .is_some_and(|port| !meta.has_ports || (meta.src_port != port && meta.dst_port != port))
        {
            return false;
        }
        let t = record.time();
        if f.from_time.is_some_and(|from| t < from) || f.to_time.is_some_and(|to| t > to) {
            return false;
        }
        if let Some(n) = &self.needle
            && memchr::memmem::find(a.capture.bytes(i), n).is_none()
        {
            return false;
        }
        f.with_payload
            .is_none_or(|w| (meta.payload_wire_len > 0) == w)
    }

    fn indexes<'a>(&'a self, a: &'a Analysis) -> impl Iterator<Item = usize> + 'a {
        self.range(a.packet_count())
            .filter(move |&i| self.matches(a, i))
    }
}

/// One line of a packet list.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PacketItem {
    pub index: usize,
    /// Seconds since the epoch.
    pub time: f64,
    /// "10.0.0.1:4000", an address, or a MAC address for non-IP frames.
    pub src: String,
    pub dst: String,
    pub protocol: AppProtocol,
    /// Bytes on the wire.
    pub length: u32,
    /// One-line description ("10.0.0.1:4000 -> 10.0.0.2:51234 TCP [PSH,ACK] seq=... len=...").
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
}

fn packet_item(a: &Analysis, i: usize) -> Option<PacketItem> {
    let meta = a.metas.get(i)?;
    let record = a.capture.records().get(i)?;
    let bytes = a.capture.bytes(i);
    let link = a.capture.link_type;
    let (src, dst) = src_dst(meta, link, bytes);
    let flow = a.flows.of_packet(i);
    Some(PacketItem {
        index: i,
        time: record.time(),
        src,
        dst,
        protocol: a.flows.packet_protocol(i, meta),
        length: record.orig_len,
        summary: summary_line(meta, link, bytes),
        flow_id: flow.map(|(f, _)| f.flow_id),
        direction: flow.map(|(_, d)| d),
    })
}

/// The packets matching `filter`, `limit` of them from the `offset`-th match.
pub fn list_packets(
    a: &Analysis,
    filter: &PacketFilter,
    offset: usize,
    limit: usize,
) -> Result<Listing<PacketItem>> {
    let compiled = filter.compile(a)?;
    let mut total = 0;
    let mut items = Vec::with_capacity(limit.min(1024));
    for i in compiled.indexes(a) {
        if total >= offset && items.len() < limit {
            items.extend(packet_item(a, i));
        }
        total += 1;
    }
    Ok(Listing {
        total,
        offset,
        items,
    })
}

/// Everything about one packet.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PacketDetail {
    pub index: usize,
    pub time: f64,
    /// Raw timestamp: seconds and microseconds.
    pub ts_sec: i64,
    pub ts_usec: u32,
    /// Bytes on the wire.
    pub length: u32,
    /// Bytes in the file.
    pub captured_length: u32,
    pub link_type: String,
    pub protocol: AppProtocol,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    pub summary: String,
    /// The decoded headers, outermost first.
    pub layers: Vec<Layer>,
    /// Transport payload: offset in the packet and captured length.
    pub payload_offset: u32,
    pub payload_length: u32,
    /// The packet's bytes in hex (at most `max_bytes` of them).
    pub hex: String,
    /// True when `hex` was cut at `max_bytes`.
    pub hex_truncated: bool,
}

/// Everything about packet `index`, with at most `max_bytes` of its bytes in hex.
pub fn packet_detail(a: &Analysis, index: usize, max_bytes: usize) -> Result<PacketDetail> {
    a.check_index(index)?;
    let record = a
        .capture
        .records()
        .get(index)
        .ok_or_else(|| NetError::new(format!("packet {index} is missing")))?;
    let bytes = a.capture.bytes(index);
    let link = a.capture.link_type;
    let (meta, layers) = describe(link, bytes);
    let flow = a.flows.of_packet(index);
    let shown = &bytes[..bytes.len().min(max_bytes)];
    Ok(PacketDetail {
        index,
        time: record.time(),
        ts_sec: record.ts_sec,
        ts_usec: record.ts_usec,
        length: record.orig_len,
        captured_length: record.caplen,
        link_type: link.name(),
        protocol: a.flows.packet_protocol(index, &meta),
        flow_id: flow.map(|(f, _)| f.flow_id),
        direction: flow.map(|(_, d)| d),
        summary: summary_line(&meta, link, bytes),
        layers,
        payload_offset: meta.payload_offset,
        payload_length: meta.payload_len,
        hex: to_hex(shown),
        hex_truncated: shown.len() < bytes.len(),
    })
}

// ---------------------------------------------------------------------------------------
// flows

/// One flow in a list.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FlowItem {
    /// Stable id: index in first-seen order.
    pub flow_id: u32,
    pub protocol: AppProtocol,
    /// "TCP", "UDP", "ICMP", ...
    pub transport: String,
    /// The side that sent the first SYN (else the first sender).
    pub client: String,
    pub server: String,
    /// False when no SYN was seen: the client is only the first sender.
    pub client_known: bool,
    pub packets_to_server: u64,
    pub packets_to_client: u64,
    /// Wire bytes.
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    /// TCP/UDP payload bytes (retransmissions included).
    pub payload_bytes_to_server: u64,
    pub payload_bytes_to_client: u64,
    /// Seconds since the epoch.
    pub start: f64,
    pub end: f64,
    pub duration: f64,
    pub first_packet: u32,
    pub last_packet: u32,
}

fn flow_item(f: &Flow) -> FlowItem {
    let up = f.counters(Direction::ClientToServer);
    let down = f.counters(Direction::ServerToClient);
    FlowItem {
        flow_id: f.flow_id,
        protocol: f.protocol,
        transport: ip_proto_name(f.ip_proto),
        client: f.client().display(f.has_ports),
        server: f.server().display(f.has_ports),
        client_known: f.saw_syn,
        packets_to_server: up.packets,
        packets_to_client: down.packets,
        bytes_to_server: up.bytes,
        bytes_to_client: down.bytes,
        payload_bytes_to_server: up.payload_bytes,
        payload_bytes_to_client: down.payload_bytes,
        start: f.start,
        end: f.end,
        duration: f.end - f.start,
        first_packet: f.first_index,
        last_packet: f.last_index,
    }
}

/// The pseudo-flow of a raw D2GS stream file.
fn raw_flow_item(len: u64) -> FlowItem {
    FlowItem {
        flow_id: 0,
        protocol: AppProtocol::D2gs,
        transport: "TCP".into(),
        client: "client".into(),
        server: "server (raw D2GS stream file)".into(),
        client_known: false,
        packets_to_server: 0,
        packets_to_client: 0,
        bytes_to_server: 0,
        bytes_to_client: len,
        payload_bytes_to_server: 0,
        payload_bytes_to_client: len,
        start: 0.0,
        end: 0.0,
        duration: 0.0,
        first_packet: 0,
        last_packet: 0,
    }
}

/// Order of a flow list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlowSort {
    /// By flow id (first seen first).
    #[default]
    FirstSeen,
    /// Most bytes first.
    Bytes,
    /// Most packets first.
    Packets,
    /// Longest first.
    Duration,
}

/// Which flows to list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FlowFilter {
    pub protocol: Option<AppProtocol>,
    /// Flows with this IP address at either end.
    pub host: Option<String>,
    /// Flows with this port at either end.
    pub port: Option<u16>,
    pub sort: Option<FlowSort>,
}

/// The flows matching `filter`, `limit` of them from the `offset`-th.
pub fn list_flows(
    a: &Analysis,
    filter: &FlowFilter,
    offset: usize,
    limit: usize,
) -> Result<Listing<FlowItem>> {
    let host = parse_host(&filter.host)?;
    if let Some(raw) = a.raw_stream() {
        let item = raw_flow_item(raw.len() as u64);
        let keep = filter.protocol.is_none_or(|p| p == AppProtocol::D2gs)
            && host.is_none()
            && filter.port.is_none();
        let all: Vec<FlowItem> = if keep { vec![item] } else { Vec::new() };
        return Ok(Listing {
            total: all.len(),
            offset,
            items: all.into_iter().skip(offset).take(limit).collect(),
        });
    }
    let mut flows: Vec<&Flow> = a
        .flows
        .flows
        .iter()
        .filter(|f| filter.protocol.is_none_or(|p| f.protocol == p))
        .filter(|f| host.is_none_or(|h| f.a.addr == h || f.b.addr == h))
        .filter(|f| {
            filter
                .port
                .is_none_or(|p| f.has_ports && (f.a.port == p || f.b.port == p))
        })
        .collect();
    match filter.sort.unwrap_or_default() {
        FlowSort::FirstSeen => {}
        FlowSort::Bytes => flows.sort_by_key(|f| std::cmp::Reverse(f.bytes())),
        FlowSort::Packets => flows.sort_by_key(|f| std::cmp::Reverse(f.packets())),
        FlowSort::Duration => flows.sort_by(|x, y| (y.end - y.start).total_cmp(&(x.end - x.start))),
    }
    Ok(Listing {
        total: flows.len(),
        offset,
        items: flows
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(flow_item)
            .collect(),
    })
}

// ---------------------------------------------------------------------------------------
// streams

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

fn printable(bytes: &[u8]) -> String {
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

// ---------------------------------------------------------------------------------------
// Diablo II

/// A message id: a number, or a hex string ("0x59" or "59").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IdArg {
    Number(u8),
    Text(String),
}

impl IdArg {
    fn value(&self) -> Result<u8> {
        match self {
            IdArg::Number(n) => Ok(*n),
            IdArg::Text(s) => {
                let t = s.trim();
                let h = t
                    .strip_prefix("0x")
                    .or_else(|| t.strip_prefix("0X"))
                    .unwrap_or(t);
                u8::from_str_radix(h, 16).map_err(|_| {
                    NetError::new(format!(
                        "invalid argument `ids`: {s:?} (accepted: hex strings \"0x59\" or \"59\", \
                         or numbers 0 to 255)"
                    ))
                })
            }
        }
    }
}

/// Which Diablo II messages to decode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct D2Query {
    /// One flow (default: every d2gs, realm and bncs flow).
    pub flow_id: Option<u32>,
    /// One direction (default: both).
    pub direction: Option<Direction>,
    /// Only flows of this protocol; with `flow_id`, decode that flow as this protocol.
    pub protocol: Option<AppProtocol>,
    /// Only these message ids.
    pub ids: Option<Vec<IdArg>>,
    /// Add each message's bytes in hex.
    pub include_hex: bool,
}

/// One decoded Diablo II message.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct D2Message {
    /// Message number within its flow direction.
    pub index: usize,
    /// Time of the packet that completed it (absent for raw stream files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet_index: Option<u32>,
    pub flow_id: u32,
    pub protocol: AppProtocol,
    pub direction: Direction,
    /// Hex id ("0x59").
    pub id: String,
    pub name: String,
    /// Bytes, id included (decompressed, for the D2GS server side).
    pub size: usize,
    /// The compressed frame it came in (D2GS server side).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u32>,
    /// Stream offset of the message (of its frame, on the D2GS server side).
    pub offset: u64,
    /// Decoded fields, for the packets whose layout is known.
    pub fields: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

/// Decoded messages and what decoding each direction found.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct D2Decode {
    /// Matching messages in all.
    pub total: usize,
    pub offset: usize,
    pub messages: Vec<D2Message>,
    pub directions: Vec<DirectionReport>,
}

fn id_set(ids: &Option<Vec<IdArg>>) -> Result<Option<[bool; 256]>> {
    let Some(ids) = ids else {
        return Ok(None);
    };
    let mut set = [false; 256];
    for id in ids {
        set[usize::from(id.value()?)] = true;
    }
    Ok(Some(set))
}

/// The Diablo II messages of the chosen flows, in time order, `limit` of them from the
/// `offset`-th match.
pub fn d2_decode(a: &Analysis, q: &D2Query, offset: usize, limit: usize) -> Result<D2Decode> {
    let t = tables()?;
    let ids = id_set(&q.ids)?;
    let decodes = decode_flows(a, q.flow_id, q.direction, q.protocol)?;
    // The time order of the matching messages is computed once per query and kept, so a
    // page is a slice of it (the decodes themselves are kept by `decode_flows`).
    let key = (q.flow_id, q.direction, q.protocol, ids);
    let order = a.d2_order(key, || {
        let mut order: Vec<(usize, usize)> = Vec::new();
        for (di, d) in decodes.iter().enumerate() {
            for (mi, m) in d.messages.iter().enumerate() {
                if ids.is_none_or(|set| set[usize::from(m.id)]) {
                    order.push((di, mi));
                }
            }
        }
        let key = |&(di, mi): &(usize, usize)| {
            let d: &DirectionDecode = &decodes[di];
            let time = d.times.get(mi).copied().flatten().map_or(0.0, |(_, t)| t);
            (time, d.report.flow_id, d.report.direction, mi)
        };
        order.sort_by(|x, y| {
            let (kx, ky) = (key(x), key(y));
            kx.0.total_cmp(&ky.0)
                .then(kx.1.cmp(&ky.1))
                .then(kx.2.cmp(&ky.2))
                .then(kx.3.cmp(&ky.3))
        });
        order
    });
    let messages = order
        .iter()
        .skip(offset)
        .take(limit)
        .filter_map(|&(di, mi)| {
            let d = decodes.get(di)?;
            let m = d.messages.get(mi)?;
            let bytes = d.bytes(m);
            let timing = d.times.get(mi).copied().flatten();
            Some(D2Message {
                index: mi,
                time: timing.map(|(_, t)| t),
                packet_index: timing.map(|(p, _)| p),
                flow_id: d.report.flow_id,
                protocol: d.report.protocol,
                direction: d.report.direction,
                id: format!("0x{:02X}", m.id),
                name: d.dialect.name(t, m.id),
                size: m.len,
                frame: m.frame,
                offset: m.offset,
                fields: d
                    .dialect
                    .spec(t, m.id)
                    .map(|s| decode_fields(&s.fields, bytes))
                    .unwrap_or_default(),
                hex: q.include_hex.then(|| to_hex(bytes)),
            })
        })
        .collect();
    Ok(D2Decode {
        total: order.len(),
        offset,
        messages,
        directions: decodes.iter().map(|d| d.report.clone()).collect(),
    })
}

/// Per-id statistics of the chosen flows' Diablo II messages (`ids` and `include_hex` of
/// the query are ignored).
pub fn d2_stats(a: &Analysis, q: &D2Query) -> Result<D2Stats> {
    let t = tables()?;
    let decodes = decode_flows(a, q.flow_id, q.direction, q.protocol)?;
    Ok(crate::stats::d2_stats(&decodes, t))
}

// ---------------------------------------------------------------------------------------
// export

/// What `export_pcap` wrote.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ExportResult {
    pub path: String,
    pub packets: usize,
    /// File size in bytes.
    pub bytes: u64,
}

/// Writes the packets matching `filter` to a classic pcap file at `out` (link type kept).
pub fn export_pcap(a: &Analysis, filter: &PacketFilter, out: &Path) -> Result<ExportResult> {
    if a.raw_stream().is_some() {
        return Err(NetError::new(
            "a raw D2GS stream file has no packets to export (export works on pcap/pcapng sources)",
        ));
    }
    let compiled = filter.compile(a)?;
    let mut w = create_pcap(out, a.capture.link_type)?;
    for i in compiled.indexes(a) {
        if let Some(r) = a.capture.records().get(i) {
            w.write_packet(r.ts_sec, r.ts_usec, r.orig_len, a.capture.bytes(i))?;
        }
    }
    let (packets, bytes) = (w.packets(), w.bytes());
    w.finish()?;
    Ok(ExportResult {
        path: out.display().to_string(),
        packets,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture_file::{LinkType, create_pcap};
    use crate::d2gs::encode_server;
    use crate::layers::build::{tcp4, udp4};
    use crate::layers::{TCP_ACK, TCP_PSH, TCP_SYN};
    use serde_json::json;
    use std::net::Ipv4Addr;
    use std::path::PathBuf;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);
    const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
    /// Server segment size in the synthetic session.
    const SEG: usize = 40;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("mcp-network-q-{}-{name}", std::process::id()))
    }

    /// Game packets of a tiny session, encoded as the server would.
    fn server_stream() -> Result<Vec<u8>> {
        let mut assign = vec![0x59, 1, 0, 0, 0, 1];
        let mut name = b"cheap".to_vec();
        name.resize(16, 0);
        assign.extend_from_slice(&name);
        assign.extend_from_slice(&[0xC7, 0x18, 0x0D, 0x14]);
        let load_act = [0x03, 0, 0xDA, 0x5F, 0xB5, 0x2F, 1, 0, 0, 0, 0, 0];
        let mut chat = vec![0x26, 4, 0, 2, 0, 0, 0, 0, 1, 0];
        chat.extend_from_slice(b"[admin]\0hello\0");
        let frames: Vec<Vec<u8>> = vec![
            vec![0x00],
            [&[0x01, 2, 4, 0x20, 0x10, 0, 1, 0][..], &load_act[..]].concat(),
            [&assign[..], &chat[..], &[0x04][..]].concat(),
            vec![0x02; 300], // 300 one-byte packets: a frame of more than 0xEF bytes
        ];
        encode_server(frames.iter().map(Vec::as_slice))
    }

    fn client_stream() -> Vec<u8> {
        let mut c = vec![0x68];
        c.extend_from_slice(&[0x11; 4]);
        c.extend_from_slice(&[0x22, 0x00, 1]);
        c.extend_from_slice(&[0x0D, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0]);
        let mut name = b"cheap".to_vec();
        name.resize(16, 0);
        c.extend_from_slice(&name);
        c.push(0x6B);
        c.extend_from_slice(&[0x03, 0xC8, 0x18, 0x0E, 0x14]);
        c
    }

    /// A capture with a D2GS session (the server side cut into segments, one pair swapped,
    /// one retransmitted), a realm exchange, a BNCS exchange and a UDP datagram.
    fn write_session(path: &Path, s2c: &[u8]) -> Result<usize> {
        let c = (CLIENT, 51234);
        let s = (SERVER, 4000);
        let mut frames: Vec<Vec<u8>> = vec![
            tcp4(c, s, 1000, 0, TCP_SYN, b""),
            tcp4(s, c, 5000, 1001, TCP_SYN | TCP_ACK, b""),
            tcp4(c, s, 1001, 5001, TCP_ACK, b""),
        ];
        let up = client_stream();
        frames.push(tcp4(c, s, 1001, 5001, TCP_PSH | TCP_ACK, &up[..20]));
        frames.push(tcp4(c, s, 1021, 5001, TCP_PSH | TCP_ACK, &up[20..]));
        let mut segs: Vec<(u32, &[u8])> = s2c
            .chunks(SEG)
            .enumerate()
            .map(|(k, chunk)| (5001 + (SEG * k) as u32, chunk))
            .collect();
        if segs.len() > 4 {
            segs.swap(2, 3);
            let again = segs[1];
            segs.insert(4, again);
        }
        let ack = 1001 + up.len() as u32;
        for (seq, chunk) in segs {
            frames.push(tcp4(s, c, seq, ack, TCP_PSH | TCP_ACK, chunk));
        }
        // realm: the client opens with 0x01, then MCP_STARTUP; the server answers
        let rc = (CLIENT, 51235);
        let rs = (SERVER, 6113);
        frames.push(tcp4(rc, rs, 1, 0, TCP_SYN, b""));
        frames.push(tcp4(rs, rc, 9, 2, TCP_SYN | TCP_ACK, b""));
        frames.push(tcp4(
            rc,
            rs,
            2,
            10,
            TCP_PSH | TCP_ACK,
            &[0x01, 5, 0, 0x01, 0xAA, 0xBB],
        ));
        frames.push(tcp4(rs, rc, 10, 8, TCP_PSH | TCP_ACK, &[4, 0, 0x01, 0]));
        // BNCS
        let bc = (CLIENT, 51236);
        let bs = (SERVER, 6112);
        frames.push(tcp4(bc, bs, 1, 0, TCP_SYN, b""));
        frames.push(tcp4(
            bc,
            bs,
            2,
            0,
            TCP_PSH | TCP_ACK,
            &[0x01, 0xFF, 0x50, 4, 0],
        ));
        frames.push(udp4((CLIENT, 5353), (SERVER, 53), b"dns?"));
        let mut w = create_pcap(path, LinkType::ETHERNET)?;
        for (i, f) in frames.iter().enumerate() {
            w.write_packet(
                1_700_000_000 + i as i64 / 4,
                (i as u32 % 4) * 250_000,
                f.len() as u32,
                f,
            )?;
        }
        w.finish()?;
        Ok(frames.len())
    }

    #[test]
    fn a_whole_session_through_every_query() -> TestResult {
        let s2c = server_stream()?;
        let path = temp("session.pcap");
        let n = write_session(&path, &s2c)?;
        let a = Analysis::open(&path);
        std::fs::remove_file(&path)?;
        let a = a?;

        // summary
        let sum = summary(&a, 10);
        assert_eq!(sum.packets, n);
        assert_eq!(sum.flows, 4);
        assert_eq!(sum.link_type.as_deref(), Some("ethernet"));
        let protos: Vec<(AppProtocol, u64)> = sum
            .protocols
            .iter()
            .map(|p| (p.protocol, p.flows))
            .collect();
        assert_eq!(
            protos,
            [
                (AppProtocol::D2gs, 1),
                (AppProtocol::Realm, 1),
                (AppProtocol::Bncs, 1),
                (AppProtocol::Udp, 1)
            ]
        );
        assert_eq!(sum.top_conversations[0].protocol, AppProtocol::D2gs);
        assert!(sum.read_problem.is_none());

        // flows
        let flows = list_flows(&a, &FlowFilter::default(), 0, 100)?;
        assert_eq!(flows.total, 4);
        let d2 = &flows.items[0];
        assert_eq!(d2.client, "192.168.0.10:51234");
        assert_eq!(d2.server, "203.0.113.7:4000");
        assert!(d2.client_known);
        assert_eq!(d2.payload_bytes_to_server, client_stream().len() as u64);
        assert!(
            d2.payload_bytes_to_client > s2c.len() as u64,
            "retransmission counted"
        );
        let realm = list_flows(
            &a,
            &FlowFilter {
                port: Some(6113),
                ..FlowFilter::default()
            },
            0,
            10,
        )?;
        assert_eq!(realm.items.len(), 1);
        assert_eq!(realm.items[0].protocol, AppProtocol::Realm);
        assert!(
            list_flows(
                &a,
                &FlowFilter {
                    host: Some("nope".into()),
                    ..FlowFilter::default()
                },
                0,
                1
            )
            .is_err()
        );

        // packets
        let all = list_packets(&a, &PacketFilter::default(), 0, 5)?;
        assert_eq!(all.total, n);
        assert_eq!(all.items.len(), 5);
        assert_eq!(
            all.items[0]
                .summary
                .split(' ')
                .take(4)
                .collect::<Vec<_>>()
                .join(" "),
            "192.168.0.10:51234 -> 203.0.113.7:4000 TCP"
        );
        assert_eq!(all.items[1].direction, Some(Direction::ServerToClient));
        let down = list_packets(
            &a,
            &PacketFilter {
                flow_id: Some(0),
                direction: Some(Direction::ServerToClient),
                with_payload: Some(true),
                ..PacketFilter::default()
            },
            1,
            2,
        )?;
        assert_eq!(down.total, s2c.chunks(SEG).count() + 1);
        assert_eq!(down.offset, 1);
        assert_eq!(down.items.len(), 2);
        let udp = list_packets(
            &a,
            &PacketFilter {
                protocol: Some(AppProtocol::Udp),
                ..PacketFilter::default()
            },
            0,
            10,
        )?;
        assert_eq!(udp.total, 1);
        assert!(
            list_packets(
                &a,
                &PacketFilter {
                    flow_id: Some(99),
                    ..PacketFilter::default()
                },
                0,
                1
            )
            .is_err()
        );

        // detail
        let d = packet_detail(&a, 3, 16)?;
        let names: Vec<&str> = d.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["ethernet", "ipv4", "tcp"]);
        assert_eq!(d.payload_length, 20);
        assert_eq!(d.hex.len(), 32);
        assert!(d.hex_truncated);
        assert_eq!(d.flow_id, Some(0));
        assert!(packet_detail(&a, n, 16).is_err());

        // streams
        let down = follow_stream(&a, 0, Direction::ServerToClient, 0, 1 << 20)?;
        let joined: Vec<u8> = down
            .pieces
            .iter()
            .flat_map(|p| {
                (0..p.hex.len())
                    .step_by(2)
                    .map(|k| u8::from_str_radix(&p.hex[k..k + 2], 16).unwrap_or(0))
            })
            .collect();
        assert_eq!(joined, s2c);
        assert!(down.gaps.is_empty());
        assert_eq!(down.reassembly.retransmitted, 1);
        assert_eq!(down.reassembly.out_of_order, 1);
        assert_eq!(down.next_offset, None);
        let up = follow_stream(&a, 0, Direction::ClientToServer, 0, 4)?;
        assert_eq!(up.pieces[0].hex, "68111111");
        assert_eq!(up.next_offset, Some(4));
        assert_eq!(up.packets[0].packet_index, 3);
        assert!(follow_stream(&a, 9, Direction::ClientToServer, 0, 4).is_err());

        // D2 messages
        let all = d2_decode(&a, &D2Query::default(), 0, 1000)?;
        let d2gs_down = all
            .directions
            .iter()
            .find(|r| r.protocol == AppProtocol::D2gs && r.direction == Direction::ServerToClient)
            .ok_or("d2gs server side")?;
        assert_eq!(d2gs_down.frames, Some(4));
        assert_eq!(d2gs_down.compression.as_deref(), Some("on"));
        assert!(d2gs_down.problems.is_empty(), "{:?}", d2gs_down.problems);
        assert_eq!(d2gs_down.messages, 1 + 2 + 3 + 300);
        let up = all
            .directions
            .iter()
            .find(|r| r.protocol == AppProtocol::D2gs && r.direction == Direction::ClientToServer)
            .ok_or("d2gs client side")?;
        assert_eq!(up.messages, 3);
        assert_eq!(up.leftover_bytes, 0);
        // time order: the client's logon comes before the server's frames
        assert_eq!(all.messages[0].id, "0x68");
        assert_eq!(all.messages[0].fields.get("name"), Some(&json!("cheap")));
        assert_eq!(all.messages[0].fields.get("class"), Some(&json!(1)));
        let realm: Vec<&D2Message> = all
            .messages
            .iter()
            .filter(|m| m.protocol == AppProtocol::Realm)
            .collect();
        assert_eq!(realm.len(), 2);
        assert_eq!(realm[0].name, "MCP_STARTUP");
        let bncs: Vec<&D2Message> = all
            .messages
            .iter()
            .filter(|m| m.protocol == AppProtocol::Bncs)
            .collect();
        assert_eq!(bncs.len(), 1);
        assert_eq!(bncs[0].name, "SID_AUTH_INFO");

        let q = D2Query {
            ids: Some(vec![IdArg::Text("0x59".into()), IdArg::Number(3)]),
            direction: Some(Direction::ServerToClient),
            protocol: Some(AppProtocol::D2gs),
            include_hex: true,
            ..D2Query::default()
        };
        let some = d2_decode(&a, &q, 0, 10)?;
        assert_eq!(some.total, 2);
        let assign = some
            .messages
            .iter()
            .find(|m| m.id == "0x59")
            .ok_or("0x59")?;
        assert_eq!(assign.name, "D2GS_CREATECLIENTPLAYER");
        assert_eq!(assign.fields.get("unit_id"), Some(&json!(1)));
        assert_eq!(assign.fields.get("name"), Some(&json!("cheap")));
        assert_eq!(assign.fields.get("x"), Some(&json!(6343)));
        assert_eq!(assign.size, 26);
        assert_eq!(assign.frame, Some(2));
        assert!(assign.time.is_some() && assign.packet_index.is_some());
        assert!(
            assign
                .hex
                .as_deref()
                .is_some_and(|h| h.starts_with("5901000000"))
        );
        let act = some
            .messages
            .iter()
            .find(|m| m.id == "0x03")
            .ok_or("0x03")?;
        assert_eq!(act.fields.get("act"), Some(&json!(0)));
        assert_eq!(act.fields.get("area"), Some(&json!(1)));
        assert!(
            d2_decode(
                &a,
                &D2Query {
                    ids: Some(vec![IdArg::Text("zz".into())]),
                    ..D2Query::default()
                },
                0,
                1
            )
            .is_err()
        );
        assert!(
            d2_decode(
                &a,
                &D2Query {
                    flow_id: Some(3),
                    ..D2Query::default()
                },
                0,
                1
            )
            .is_err()
        );
        // a UDP flow can be forced... but not as a non-D2 protocol
        assert!(
            d2_decode(
                &a,
                &D2Query {
                    flow_id: Some(3),
                    protocol: Some(AppProtocol::Tcp),
                    ..D2Query::default()
                },
                0,
                1
            )
            .is_err()
        );

        // stats
        let st = d2_stats(&a, &D2Query::default())?;
        assert_eq!(st.messages as usize, all.total);
        let twos = st
            .ids
            .iter()
            .find(|s| s.id == "0x02" && s.direction == Direction::ServerToClient)
            .ok_or("0x02")?;
        assert_eq!(twos.count, 300);
        assert_eq!(twos.name, "D2GS_LOADSUCCESSFUL");
        assert!(twos.first_time.is_some());

        // export the D2GS flow and read it back
        let out = temp("export.pcap");
        let res = export_pcap(
            &a,
            &PacketFilter {
                flow_id: Some(0),
                ..PacketFilter::default()
            },
            &out,
        )?;
        let back = Analysis::open(&out);
        std::fs::remove_file(&out)?;
        let back = back?;
        assert_eq!(res.packets, back.packet_count());
        assert_eq!(back.flow_count(), 1);
        assert_eq!(back.capture.link_type, LinkType::ETHERNET);
        assert_eq!(
            d2_decode(&back, &D2Query::default(), 0, 1)?.total,
            all.total - 3
        );
        Ok(())
    }

    #[test]
    fn a_gap_stops_decoding_and_is_reported() -> TestResult {
        let s2c = server_stream()?;
        let c = (CLIENT, 40000);
        let s = (SERVER, 4000);
        let frames = [
            tcp4(c, s, 0, 0, TCP_SYN, b""),
            tcp4(s, c, 99, 1, TCP_SYN | TCP_ACK, b""),
            tcp4(s, c, 100, 1, TCP_ACK, &s2c[..30]),
            tcp4(s, c, 140, 1, TCP_ACK, &s2c[40..]),
        ];
        let mut cap = crate::capture_file::CaptureFile::new(SourceFormat::Pcap, LinkType::ETHERNET);
        for (i, f) in frames.iter().enumerate() {
            cap.push(10 + i as i64, 0, f.len() as u32, f);
        }
        let a = Analysis::from_capture(Path::new("mem"), cap);
        let d = d2_decode(
            &a,
            &D2Query {
                direction: Some(Direction::ServerToClient),
                ..D2Query::default()
            },
            0,
            100,
        )?;
        let r = &d.directions[0];
        assert_eq!(
            r.gaps,
            vec![Gap {
                offset: 30,
                len: 10
            }]
        );
        assert!(
            r.problems
                .iter()
                .any(|p| p.reason.contains("never captured")),
            "{:?}",
            r.problems
        );
        assert!(r.leftover_bytes >= (s2c.len() - 40) as u64);
        let win = follow_stream(&a, 0, Direction::ServerToClient, 25, 20)?;
        assert_eq!(
            win.gaps,
            vec![Gap {
                offset: 30,
                len: 10
            }]
        );
        assert_eq!(
            win.pieces
                .iter()
                .map(|p| (p.offset, p.length))
                .collect::<Vec<_>>(),
            [(25, 5), (40, 5)]
        );
        Ok(())
    }

    #[test]
    fn raw_stream_source_is_one_pseudo_flow() -> TestResult {
        // Without the shared dump (`shared_fixtures` says so, and fails under
        // REQUIRE_SHARED_FIXTURES) a synthetic stream stands in.
        let (path, expected_messages, remove) =
            if let Some(d) = mcp_testkit::shared_fixtures("d2gs") {
                (d.join("d2gs_sc.dump"), 956, false)
            } else {
                let p = temp("raw.dump");
                std::fs::write(&p, server_stream()?)?;
                (p, 306, true)
            };
        let a = Analysis::open(&path);
        if remove {
            std::fs::remove_file(&path)?;
        }
        let a = a?;
        assert_eq!(a.format, SourceFormat::D2gsStream);
        let sum = summary(&a, 5);
        assert_eq!(sum.packets, 0);
        assert_eq!(sum.flows, 1);
        assert_eq!(sum.stream_bytes, a.raw_stream().map(|r| r.len() as u64));
        let flows = list_flows(&a, &FlowFilter::default(), 0, 10)?;
        assert_eq!(flows.total, 1);
        assert_eq!(flows.items[0].protocol, AppProtocol::D2gs);
        let d = d2_decode(&a, &D2Query::default(), 0, 2000)?;
        assert_eq!(d.total, expected_messages);
        assert!(
            d.messages
                .iter()
                .all(|m| m.direction == Direction::ServerToClient && m.time.is_none())
        );
        assert!(d.messages.windows(2).all(|w| w[0].index < w[1].index));
        let assign: Vec<&D2Message> = d.messages.iter().filter(|m| m.id == "0x59").collect();
        assert_eq!(assign.len(), 1);
        assert_eq!(assign[0].fields.get("name"), Some(&json!("cheap")));
        assert_eq!(assign[0].fields.get("unit_id"), Some(&json!(1)));
        assert_eq!(assign[0].fields.get("class"), Some(&json!(1)));
        let st = d2_stats(&a, &D2Query::default())?;
        assert_eq!(st.messages as usize, expected_messages);
        let down = &st.directions[1];
        if !remove {
            assert_eq!(down.frames, Some(164));
            assert_eq!(down.multi_packet_frames, Some(90));
            assert_eq!(down.leftover_bytes, 0);
        }
        let win = follow_stream(&a, 0, Direction::ServerToClient, 0, 2)?;
        assert_eq!(win.pieces[0].hex, "af01");
        assert!(export_pcap(&a, &PacketFilter::default(), &temp("never.pcap")).is_err());
        assert!(
            list_packets(&a, &PacketFilter::default(), 0, 10)?
                .items
                .is_empty()
        );
        assert!(packet_detail(&a, 0, 10).is_err());
        Ok(())
    }

    #[test]
    fn damaged_pcap_gives_a_partial_summary() -> TestResult {
        let s2c = server_stream()?;
        let path = temp("damaged.pcap");
        let n = write_session(&path, &s2c)?;
        let bytes = std::fs::read(&path)?;
        std::fs::write(&path, &bytes[..bytes.len() - 7])?;
        let a = Analysis::open(&path);
        std::fs::remove_file(&path)?;
        let a = a?;
        let sum = summary(&a, 3);
        assert_eq!(sum.packets, n - 1);
        let problem = sum.read_problem.ok_or("read problem")?;
        assert_eq!(problem.packet_index, n - 1);
        assert!(Analysis::open(Path::new("/nonexistent/file.pcap")).is_err());
        Ok(())
    }

    #[test]
    fn answers_serialize() -> TestResult {
        let s2c = server_stream()?;
        let path = temp("ser.pcap");
        write_session(&path, &s2c)?;
        let a = Analysis::open(&path);
        std::fs::remove_file(&path)?;
        let a = a?;
        let v = serde_json::to_value(list_flows(&a, &FlowFilter::default(), 0, 1)?)?;
        assert_eq!(v["items"][0]["protocol"], json!("d2gs"));
        let v = serde_json::to_value(d2_decode(&a, &D2Query::default(), 0, 1)?)?;
        assert_eq!(v["messages"][0]["direction"], json!("client_to_server"));
        let f: PacketFilter =
            serde_json::from_value(json!({"protocol": "d2gs", "direction": "server_to_client"}))?;
        assert_eq!(f.protocol, Some(AppProtocol::D2gs));
        let q: D2Query = serde_json::from_value(json!({"ids": ["0x59", 3]}))?;
        assert_eq!(q.ids.map(|v| v.len()), Some(2));
        let schema = schemars::schema_for!(D2Decode);
        assert!(serde_json::to_string(&schema)?.contains("messages"));
        Ok(())
    }
}
