//! A source's summary: counts, protocols, endpoints, time span.

use super::*;

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
