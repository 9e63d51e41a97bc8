//! Packets: the filter, the list, one packet's detail, and a filtered pcap export.

use super::*;

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

pub(super) struct CompiledFilter<'f> {
    f: &'f PacketFilter,
    host: Option<IpAddr>,
    needle: Option<Vec<u8>>,
}

/// The bytes `contains` asks for: `hex:` followed by hex digits, or the text itself.
pub(super) fn parse_contains(c: &Option<String>) -> Result<Option<Vec<u8>>> {
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

pub(super) fn parse_host(host: &Option<String>) -> Result<Option<IpAddr>> {
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

pub(super) fn packet_item(a: &Analysis, i: usize) -> Option<PacketItem> {
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
