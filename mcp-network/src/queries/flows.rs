//! Flows: their list, sorted and filtered.

use super::*;

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

pub(super) fn flow_item(f: &Flow) -> FlowItem {
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
pub(super) fn raw_flow_item(len: u64) -> FlowItem {
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
