//! Bidirectional flows in one pass: every IP packet is keyed by its canonical 5-tuple in a
//! hash map of compact keys (a fast multiplicative hasher, not SipHash: the keys are not
//! attacker-chosen in a way that matters for an offline analysis), counted per side, and
//! tagged with its flow and direction. Which side is the client (the one that sent the first
//! SYN, else the first sender) and which application protocol the flow speaks are settled
//! once the pass is over.

use crate::capture_file::CaptureFile;
use crate::layers::{IPPROTO_TCP, IPPROTO_UDP, NetLayer, PacketMeta, TCP_ACK, TCP_SYN, endpoint};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;

/// Marks a packet that belongs to no flow (non-IP, later IP fragments).
pub const NO_FLOW: u32 = u32::MAX;

/// D2GS game server port.
pub const PORT_D2GS: u16 = 4000;
/// Battle.net chat / BNCS port.
pub const PORT_BNCS: u16 = 6112;
/// Realm (MCP) port.
pub const PORT_REALM: u16 = 6113;

/// The application protocol of a flow (or, for packets outside flows, what they are).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AppProtocol {
    /// Diablo II game server (port 4000, or a server that opens with AF 00 / AF 01).
    D2gs,
    /// Diablo II realm server, MCP protocol (port 6113).
    Realm,
    /// Battle.net chat server (port 6112, or a client that opens with 01 FF).
    Bncs,
    Tcp,
    Udp,
    /// ARP (packets only, never a flow).
    Arp,
    Other,
}

impl AppProtocol {
    pub const ALL: [AppProtocol; 7] = [
        AppProtocol::D2gs,
        AppProtocol::Realm,
        AppProtocol::Bncs,
        AppProtocol::Tcp,
        AppProtocol::Udp,
        AppProtocol::Arp,
        AppProtocol::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppProtocol::D2gs => "d2gs",
            AppProtocol::Realm => "realm",
            AppProtocol::Bncs => "bncs",
            AppProtocol::Tcp => "tcp",
            AppProtocol::Udp => "udp",
            AppProtocol::Arp => "arp",
            AppProtocol::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<AppProtocol> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    /// True for the protocols that are TCP underneath.
    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            AppProtocol::D2gs | AppProtocol::Realm | AppProtocol::Bncs | AppProtocol::Tcp
        )
    }
}

/// Which way a packet or a byte stream goes within its flow.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client_to_server",
            Direction::ServerToClient => "server_to_client",
        }
    }

    /// Accepts "client_to_server"/"c2s"/"to_server" and "server_to_client"/"s2c"/"to_client".
    pub fn parse(s: &str) -> Option<Direction> {
        match s.to_ascii_lowercase().as_str() {
            "client_to_server" | "c2s" | "to_server" | "client" => Some(Direction::ClientToServer),
            "server_to_client" | "s2c" | "to_client" | "server" => Some(Direction::ServerToClient),
            _ => None,
        }
    }

    pub fn index(self) -> usize {
        match self {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        }
    }
}

/// An address and port (port 0 for protocols without ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

impl Endpoint {
    pub fn display(&self, with_port: bool) -> String {
        endpoint(self.addr, with_port.then_some(self.port))
    }
}

/// Counters of one side of a flow (what that side sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideCounters {
    pub packets: u64,
    /// Bytes on the wire (original frame lengths).
    pub bytes: u64,
    /// TCP/UDP payload bytes (wire lengths, retransmissions included).
    pub payload_bytes: u64,
    /// First packet of this side that carried payload.
    pub first_payload: Option<u32>,
}

/// One bidirectional flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// Index in first-seen order: stable for a given file.
    pub flow_id: u32,
    pub ip_proto: u8,
    pub has_ports: bool,
    /// Canonical endpoints: `a` sorts before `b`.
    pub a: Endpoint,
    pub b: Endpoint,
    /// Whether `a` is the client.
    pub client_is_a: bool,
    /// What `a` sent ([0]) and what `b` sent ([1]).
    pub sides: [SideCounters; 2],
    pub first_index: u32,
    pub last_index: u32,
    pub start: f64,
    pub end: f64,
    pub protocol: AppProtocol,
    /// A SYN was seen (the client is known for sure).
    pub saw_syn: bool,
    syn_side: Option<u8>,
    synack_side: Option<u8>,
    first_side: u8,
}

impl Flow {
    pub fn client(&self) -> Endpoint {
        if self.client_is_a { self.a } else { self.b }
    }

    pub fn server(&self) -> Endpoint {
        if self.client_is_a { self.b } else { self.a }
    }

    /// Counters of what goes in `dir`.
    pub fn counters(&self, dir: Direction) -> &SideCounters {
        let from_a = (dir == Direction::ClientToServer) == self.client_is_a;
        &self.sides[usize::from(!from_a)]
    }

    pub fn packets(&self) -> u64 {
        self.sides[0].packets + self.sides[1].packets
    }

    pub fn bytes(&self) -> u64 {
        self.sides[0].bytes + self.sides[1].bytes
    }
}

/// The canonical 5-tuple, in a form that hashes quickly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    lo_addr: u128,
    hi_addr: u128,
    lo_port: u16,
    hi_port: u16,
    proto: u8,
    v6: bool,
}

impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.lo_addr as u64);
        state.write_u64((self.lo_addr >> 64) as u64);
        state.write_u64(self.hi_addr as u64);
        state.write_u64((self.hi_addr >> 64) as u64);
        state.write_u64(
            u64::from(self.lo_port)
                | u64::from(self.hi_port) << 16
                | u64::from(self.proto) << 32
                | u64::from(self.v6) << 40,
        );
    }
}

/// A multiplicative word hasher (the Fx hash used inside rustc).
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FxBuildHasher = BuildHasherDefault<FxHasher>;

fn addr_bits(a: IpAddr) -> (u128, bool) {
    match a {
        IpAddr::V4(v) => (u128::from(v.to_bits()), false),
        IpAddr::V6(v) => (v.to_bits(), true),
    }
}

/// All flows of a capture plus, per packet, its flow and direction.
#[derive(Debug, Clone, Default)]
pub struct FlowTable {
    pub flows: Vec<Flow>,
    /// Per packet: the flow id, or `NO_FLOW`.
    pub packet_flow: Vec<u32>,
    /// Per packet: 0 = client to server, 1 = server to client (meaningless without a flow).
    packet_dir: Vec<u8>,
}

impl FlowTable {
    /// Builds the table in one pass over the packets' compact records.
    pub fn build(capture: &CaptureFile, metas: &[PacketMeta]) -> FlowTable {
        let n = metas.len();
        let mut map: HashMap<FlowKey, u32, FxBuildHasher> =
            HashMap::with_capacity_and_hasher((n / 16).max(16), FxBuildHasher::default());
        let mut flows: Vec<Flow> = Vec::new();
        let mut packet_flow = vec![NO_FLOW; n];
        let mut from_b = vec![0u8; n];
        let records = capture.records();
        for (i, (meta, record)) in metas.iter().zip(records).enumerate() {
            if !meta.is_ip() {
                continue;
            }
            let has_ports = meta.has_ports;
            if !has_ports && matches!(meta.ip_proto, IPPROTO_TCP | IPPROTO_UDP) {
                continue; // a later fragment: no ports, cannot be placed
            }
            let (sport, dport) = if has_ports {
                (meta.src_port, meta.dst_port)
            } else {
                (0, 0)
            };
            let (s_bits, v6) = addr_bits(meta.src);
            let (d_bits, _) = addr_bits(meta.dst);
            let src_is_lo = (s_bits, sport) <= (d_bits, dport);
            let key = if src_is_lo {
                FlowKey {
                    lo_addr: s_bits,
                    hi_addr: d_bits,
                    lo_port: sport,
                    hi_port: dport,
                    proto: meta.ip_proto,
                    v6,
                }
            } else {
                FlowKey {
                    lo_addr: d_bits,
                    hi_addr: s_bits,
                    lo_port: dport,
                    hi_port: sport,
                    proto: meta.ip_proto,
                    v6,
                }
            };
            let side = u8::from(!src_is_lo);
            let time = record.time();
            let id = *map.entry(key).or_insert_with(|| {
                let id = flows.len() as u32;
                let (src, dst) = (
                    Endpoint {
                        addr: meta.src,
                        port: sport,
                    },
                    Endpoint {
                        addr: meta.dst,
                        port: dport,
                    },
                );
                let (a, b) = if src_is_lo { (src, dst) } else { (dst, src) };
                flows.push(Flow {
                    flow_id: id,
                    ip_proto: meta.ip_proto,
                    has_ports,
                    a,
                    b,
                    client_is_a: true,
                    sides: [SideCounters::default(); 2],
                    first_index: i as u32,
                    last_index: i as u32,
                    start: time,
                    end: time,
                    protocol: AppProtocol::Other,
                    saw_syn: false,
                    syn_side: None,
                    synack_side: None,
                    first_side: side,
                });
                id
            });
            packet_flow[i] = id;
            from_b[i] = side;
            let Some(flow) = flows.get_mut(id as usize) else {
                continue;
            };
            flow.last_index = i as u32;
            flow.start = flow.start.min(time);
            flow.end = flow.end.max(time);
            let c = &mut flow.sides[usize::from(side)];
            c.packets += 1;
            c.bytes += u64::from(record.orig_len);
            c.payload_bytes += u64::from(meta.payload_wire_len);
            if meta.payload_len > 0 && c.first_payload.is_none() {
                c.first_payload = Some(i as u32);
            }
            if meta.ip_proto == IPPROTO_TCP && meta.tcp_flags & TCP_SYN != 0 {
                if meta.tcp_flags & TCP_ACK == 0 {
                    flow.syn_side.get_or_insert(side);
                } else {
                    flow.synack_side.get_or_insert(side);
                }
            }
        }
        for flow in &mut flows {
            let client_side = match (flow.syn_side, flow.synack_side) {
                (Some(s), _) => s,
                (None, Some(s)) => 1 - s,
                (None, None) => flow.first_side,
            };
            flow.saw_syn = flow.syn_side.is_some() || flow.synack_side.is_some();
            flow.client_is_a = client_side == 0;
            flow.protocol = classify(flow, metas, capture);
        }
        // direction: 0 when the packet's side is the client's
        let packet_dir = packet_flow
            .iter()
            .zip(&from_b)
            .map(|(&f, &side)| match flows.get(f as usize) {
                Some(flow) => u8::from((side == 0) != flow.client_is_a),
                None => 0,
            })
            .collect();
        FlowTable {
            flows,
            packet_flow,
            packet_dir,
        }
    }

    /// The flow and direction of packet `index`.
    pub fn of_packet(&self, index: usize) -> Option<(&Flow, Direction)> {
        let id = *self.packet_flow.get(index)?;
        let flow = self.flows.get(id as usize)?;
        let dir = match self.packet_dir.get(index) {
            Some(0) => Direction::ClientToServer,
            _ => Direction::ServerToClient,
        };
        Some((flow, dir))
    }

    pub fn get(&self, flow_id: u32) -> Option<&Flow> {
        self.flows.get(flow_id as usize)
    }

    /// Indexes of the packets of `flow_id` going in `dir` (all of them with `None`).
    pub fn packets_of(
        &self,
        flow_id: u32,
        dir: Option<Direction>,
    ) -> impl Iterator<Item = usize> + '_ {
        let want = dir.map(|d| d.index() as u8);
        self.packet_flow
            .iter()
            .zip(&self.packet_dir)
            .enumerate()
            .filter(move |(_, (f, d))| **f == flow_id && want.is_none_or(|w| w == **d))
            .map(|(i, _)| i)
    }

    /// The protocol label of packet `index`: its flow's, or what the packet is.
    pub fn packet_protocol(&self, index: usize, meta: &PacketMeta) -> AppProtocol {
        match self.of_packet(index) {
            Some((flow, _)) => flow.protocol,
            None if meta.net == NetLayer::Arp => AppProtocol::Arp,
            None => AppProtocol::Other,
        }
    }
}

fn first_payload<'a>(
    side: &SideCounters,
    metas: &[PacketMeta],
    capture: &'a CaptureFile,
) -> &'a [u8] {
    side.first_payload
        .and_then(|i| {
            let meta = metas.get(i as usize)?;
            Some(meta.payload(capture.bytes(i as usize)))
        })
        .unwrap_or(&[])
}

fn classify(flow: &Flow, metas: &[PacketMeta], capture: &CaptureFile) -> AppProtocol {
    match flow.ip_proto {
        IPPROTO_TCP => {}
        IPPROTO_UDP => return AppProtocol::Udp,
        _ => return AppProtocol::Other,
    }
    let server_port = flow.server().port;
    let client_port = flow.client().port;
    let by_port = |port| match port {
        PORT_D2GS => Some(AppProtocol::D2gs),
        PORT_REALM => Some(AppProtocol::Realm),
        PORT_BNCS => Some(AppProtocol::Bncs),
        _ => None,
    };
    if let Some(p) = by_port(server_port) {
        return p;
    }
    let server_first = first_payload(flow.counters(Direction::ServerToClient), metas, capture);
    if matches!(server_first, [0xAF, 0x00 | 0x01, ..]) {
        return AppProtocol::D2gs;
    }
    let client_first = first_payload(flow.counters(Direction::ClientToServer), metas, capture);
    if matches!(client_first, [0x01, 0xFF, ..]) {
        return AppProtocol::Bncs;
    }
    // without a SYN the sides may be swapped: accept the well-known port on either side
    if !flow.saw_syn
        && let Some(p) = by_port(client_port)
    {
        return p;
    }
    AppProtocol::Tcp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture_file::{CaptureFile, LinkType, SourceFormat, create_pcap};
    use crate::layers::build::{tcp4, udp4};
    use crate::layers::{TCP_PSH, parse};
    use std::net::Ipv4Addr;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    const C: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
    const S: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

    /// A synthetic capture: a D2GS session with a handshake, a BNCS session whose server
    /// sorts first, a realm session seen without its handshake, a plain TCP flow, a UDP flow
    /// and an ARP frame.
    fn synthetic() -> Vec<Vec<u8>> {
        let c = (C, 50000);
        let d2 = (S, 4000);
        let b_srv = (Ipv4Addr::new(1, 2, 3, 4), 6112);
        let r_srv = (S, 6113);
        let mut arp = vec![0xFF; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1]);
        arp.extend_from_slice(&C.octets());
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&S.octets());
        vec![
            tcp4(c, d2, 100, 0, TCP_SYN, b""),
            tcp4(d2, c, 900, 101, TCP_SYN | TCP_ACK, b""),
            tcp4(c, d2, 101, 901, TCP_ACK, b""),
            tcp4(d2, c, 901, 101, TCP_PSH | TCP_ACK, &[0xAF, 0x01]),
            tcp4(c, d2, 101, 903, TCP_PSH | TCP_ACK, &[0x68; 37]),
            tcp4((C, 50001), b_srv, 5, 0, TCP_SYN, b""),
            tcp4(b_srv, (C, 50001), 70, 6, TCP_SYN | TCP_ACK, b""),
            tcp4(
                (C, 50001),
                b_srv,
                6,
                71,
                TCP_PSH | TCP_ACK,
                &[0x01, 0xFF, 0x50, 4, 0],
            ),
            tcp4(r_srv, (C, 50002), 7, 9, TCP_PSH | TCP_ACK, &[3, 0, 1]),
            tcp4((C, 50003), (S, 80), 1, 0, TCP_SYN, b""),
            udp4((C, 5353), (S, 53), b"query"),
            arp,
            tcp4(
                d2,
                c,
                903,
                138,
                TCP_PSH | TCP_ACK,
                &[0x07, 1, 2, 3, 4, 5, 6],
            ),
        ]
    }

    fn capture_of(frames: &[Vec<u8>]) -> CaptureFile {
        let mut cap = CaptureFile::new(SourceFormat::Pcap, LinkType::ETHERNET);
        for (i, f) in frames.iter().enumerate() {
            cap.push(1000 + i as i64, 500_000, f.len() as u32, f);
        }
        cap
    }

    fn table(cap: &CaptureFile) -> FlowTable {
        let metas: Vec<PacketMeta> = cap.iter().map(|p| parse(cap.link_type, p.bytes)).collect();
        FlowTable::build(cap, &metas)
    }

    #[test]
    fn flows_and_classification_through_a_written_pcap() -> TestResult {
        let frames = synthetic();
        let path =
            std::env::temp_dir().join(format!("mcp-network-{}-flows.pcap", std::process::id()));
        let mut w = create_pcap(&path, LinkType::ETHERNET)?;
        for (i, f) in frames.iter().enumerate() {
            w.write_packet(1000 + i as i64, 500_000, f.len() as u32, f)?;
        }
        w.finish()?;
        let cap = CaptureFile::read(&path)?;
        std::fs::remove_file(&path)?;
        assert_eq!(cap.len(), frames.len());
        let t = table(&cap);
        assert_eq!(t.flows.len(), 5);
        let protos: Vec<AppProtocol> = t.flows.iter().map(|f| f.protocol).collect();
        assert_eq!(
            protos,
            [
                AppProtocol::D2gs,
                AppProtocol::Bncs,
                AppProtocol::Realm,
                AppProtocol::Tcp,
                AppProtocol::Udp
            ]
        );
        let d2 = &t.flows[0];
        assert_eq!(d2.flow_id, 0);
        assert_eq!(d2.client().addr, IpAddr::V4(C));
        assert_eq!(d2.server().port, 4000);
        let down = d2.counters(Direction::ServerToClient);
        let up = d2.counters(Direction::ClientToServer);
        assert_eq!((up.packets, down.packets), (3, 3));
        assert_eq!((up.payload_bytes, down.payload_bytes), (37, 9));
        assert_eq!(up.bytes, 60 + 60 + (54 + 37));
        assert_eq!(d2.start, 1000.5);
        assert_eq!(d2.end, 1012.5);
        assert_eq!(
            t.of_packet(1).map(|(f, d)| (f.flow_id, d)),
            Some((0, Direction::ServerToClient))
        );
        assert_eq!(
            t.packets_of(0, Some(Direction::ServerToClient))
                .collect::<Vec<_>>(),
            [1, 3, 12]
        );
        // BNCS: the server (1.2.3.4) sorts first, the client is still the SYN sender
        let bncs = &t.flows[1];
        assert!(!bncs.client_is_a);
        assert_eq!(bncs.client().port, 50001);
        // realm flow without handshake: first sender is the server, port rule still applies
        assert_eq!(t.flows[2].protocol, AppProtocol::Realm);
        // ARP has no flow
        assert_eq!(t.packet_flow[11], NO_FLOW);
        Ok(())
    }

    #[test]
    fn classification_by_first_bytes_on_other_ports() {
        let c = (C, 40000);
        let s = (S, 7777);
        let frames = vec![
            tcp4(c, s, 1, 0, TCP_SYN, b""),
            tcp4(s, c, 9, 2, TCP_SYN | TCP_ACK, b""),
            tcp4(s, c, 10, 2, TCP_PSH | TCP_ACK, &[0xAF, 0x01, 0x07]),
            tcp4(
                (C, 40001),
                (S, 7778),
                1,
                0,
                TCP_PSH,
                &[0x01, 0xFF, 0x25, 8, 0],
            ),
        ];
        let cap = capture_of(&frames);
        let t = table(&cap);
        assert_eq!(t.flows[0].protocol, AppProtocol::D2gs);
        assert_eq!(t.flows[1].protocol, AppProtocol::Bncs);
    }

    #[test]
    fn client_is_the_synack_receiver_when_the_syn_was_missed() {
        let c = (C, 40000);
        let s = (S, 7777);
        let frames = vec![
            tcp4(s, c, 9, 2, TCP_SYN | TCP_ACK, b""),
            tcp4(c, s, 2, 10, TCP_ACK, b""),
        ];
        let cap = capture_of(&frames);
        let t = table(&cap);
        assert_eq!(t.flows[0].client().port, 40000);
        assert_eq!(
            t.of_packet(0).map(|(_, d)| d),
            Some(Direction::ServerToClient)
        );
    }

    #[test]
    fn parses_names() {
        assert_eq!(Direction::parse("s2c"), Some(Direction::ServerToClient));
        assert_eq!(
            Direction::parse("client_to_server"),
            Some(Direction::ClientToServer)
        );
        assert_eq!(Direction::parse("up"), None);
        assert_eq!(AppProtocol::parse("D2GS"), Some(AppProtocol::D2gs));
        assert_eq!(AppProtocol::parse("x"), None);
    }
}
