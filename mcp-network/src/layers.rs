//! Link, network and transport headers: Ethernet (802.1Q/QinQ tags), Linux cooked SLL and
//! SLL2, BSD null/loop, raw IP; IPv4 (options, fragments), IPv6 (extension headers), TCP, UDP,
//! ICMP and ARP.
//!
//! One walker does both jobs: without a detail sink it fills a small `Copy` record per packet
//! (the one-pass flow table needs nothing more and allocates nothing); with one it also
//! builds the layered, named description for `packet_detail`. Any byte sequence is accepted:
//! what is cut short is marked `truncated`, never read past.

use crate::capture_file::LinkType;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;
pub const TCP_ECE: u8 = 0x40;
pub const TCP_CWR: u8 = 0x80;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86DD;

/// What sits above the link layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetLayer {
    /// Nothing could be read (unknown link type, or cut before the network header).
    #[default]
    None,
    Ipv4,
    Ipv6,
    Arp,
    /// Some other ethertype / protocol family.
    Other,
}

/// IP fragmentation state of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fragment {
    #[default]
    None,
    /// Offset 0 with more fragments: has the transport header, not all the payload.
    First,
    /// A later fragment: no transport header.
    Later,
}

/// What the flow table and the summaries need from one packet (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketMeta {
    pub net: NetLayer,
    /// The ethertype (or 0 when the link type carries IP directly).
    pub ethertype: u16,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (after IPv6 extension headers).
    pub ip_proto: u8,
    /// True when a TCP or UDP header was read (ports, and for TCP flags/seq/ack, are valid).
    pub has_ports: bool,
    pub src_port: u16,
    pub dst_port: u16,
    pub tcp_flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    /// Where the transport payload starts in the captured bytes.
    pub payload_offset: u32,
    /// Transport payload bytes present in the capture.
    pub payload_len: u32,
    /// Transport payload bytes on the wire (from the IP/UDP lengths); more than
    /// `payload_len` when the snap length cut the packet.
    pub payload_wire_len: u32,
    pub fragment: Fragment,
    /// A header was cut short by the capture length or is malformed.
    pub truncated: bool,
}

impl Default for PacketMeta {
    fn default() -> Self {
        Self {
            net: NetLayer::None,
            ethertype: 0,
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ip_proto: 0,
            has_ports: false,
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
            seq: 0,
            ack: 0,
            window: 0,
            payload_offset: 0,
            payload_len: 0,
            payload_wire_len: 0,
            fragment: Fragment::None,
            truncated: false,
        }
    }
}

impl PacketMeta {
    pub fn is_ip(&self) -> bool {
        matches!(self.net, NetLayer::Ipv4 | NetLayer::Ipv6)
    }

    pub fn is_tcp(&self) -> bool {
        self.is_ip() && self.ip_proto == IPPROTO_TCP && self.has_ports
    }

    pub fn is_udp(&self) -> bool {
        self.is_ip() && self.ip_proto == IPPROTO_UDP && self.has_ports
    }

    /// The transport payload within the packet's captured bytes.
    pub fn payload<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        let start = self.payload_offset as usize;
        bytes
            .get(start..start.saturating_add(self.payload_len as usize))
            .unwrap_or(&[])
    }
}

/// Most 802.1Q tags a layer lists (`vlan_tags` counts them all when there are more).
const MAX_VLANS_SHOWN: usize = 8;

/// One decoded header for `packet_detail`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Layer {
    /// "ethernet", "ipv4", "tcp", ...
    pub name: String,
    /// The header's fields by name.
    pub fields: Map<String, Value>,
}

fn layer(name: &str, fields: Vec<(&str, Value)>) -> Layer {
    Layer {
        name: name.to_string(),
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn byte(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

fn ipv4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(Ipv4Addr::from(s))
}

fn ipv6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let s: [u8; 16] = b.get(at..at.checked_add(16)?)?.try_into().ok()?;
    Some(Ipv6Addr::from(s))
}

fn mac_at(b: &[u8], at: usize, len: usize) -> String {
    b.get(at..at.saturating_add(len))
        .map(|s| {
            s.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default()
}

/// Names of the TCP flags set in `flags`, in the usual order.
pub fn tcp_flag_names(flags: u8) -> Vec<&'static str> {
    const NAMES: [(u8, &str); 8] = [
        (TCP_SYN, "SYN"),
        (TCP_FIN, "FIN"),
        (TCP_RST, "RST"),
        (TCP_PSH, "PSH"),
        (TCP_ACK, "ACK"),
        (TCP_URG, "URG"),
        (TCP_ECE, "ECE"),
        (TCP_CWR, "CWR"),
    ];
    NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// Name of an IP protocol number, for summaries.
pub fn ip_proto_name(proto: u8) -> String {
    match proto {
        IPPROTO_ICMP => "ICMP".into(),
        2 => "IGMP".into(),
        IPPROTO_TCP => "TCP".into(),
        IPPROTO_UDP => "UDP".into(),
        47 => "GRE".into(),
        50 => "ESP".into(),
        51 => "AH".into(),
        IPPROTO_ICMPV6 => "ICMPv6".into(),
        132 => "SCTP".into(),
        n => format!("proto {n}"),
    }
}

/// Where the link layer hands over.
enum Next {
    Ether(u16, usize),
    Ip(usize),
    Nothing,
}

/// The compact record for one packet.
pub fn parse(link: LinkType, bytes: &[u8]) -> PacketMeta {
    Walker {
        b: bytes,
        m: PacketMeta::default(),
        detail: None,
    }
    .run(link)
}

/// The compact record and the layered description of one packet.
pub fn describe(link: LinkType, bytes: &[u8]) -> (PacketMeta, Vec<Layer>) {
    let mut layers = Vec::new();
    let meta = Walker {
        b: bytes,
        m: PacketMeta::default(),
        detail: Some(&mut layers),
    }
    .run(link);
    (meta, layers)
}

struct Walker<'a, 'd> {
    b: &'a [u8],
    m: PacketMeta,
    detail: Option<&'d mut Vec<Layer>>,
}

impl Walker<'_, '_> {
    fn push(&mut self, name: &str, fields: impl FnOnce() -> Vec<(&'static str, Value)>) {
        if let Some(d) = self.detail.as_deref_mut() {
            d.push(layer(name, fields()));
        }
    }

    fn cut(&mut self, what: &str) -> PacketMeta {
        self.m.truncated = true;
        let available = self.b.len();
        self.push("truncated", || {
            vec![("where", json!(what)), ("captured_bytes", json!(available))]
        });
        self.m
    }

    fn run(mut self, link: LinkType) -> PacketMeta {
        let next = self.link_layer(link);
        match next {
            Next::Ether(ethertype, off) => self.ethertype(ethertype, off),
            Next::Ip(off) => match byte(self.b, off).map(|v| v >> 4) {
                Some(4) => self.ipv4(off),
                Some(6) => self.ipv6(off),
                Some(v) => {
                    self.m.net = NetLayer::Other;
                    self.push("unknown", || vec![("ip_version", json!(v))]);
                    self.m
                }
                None => self.cut("ip"),
            },
            Next::Nothing => self.m,
        }
    }

    fn link_layer(&mut self, link: LinkType) -> Next {
        let b = self.b;
        match link {
            LinkType::ETHERNET => {
                let Some(mut ethertype) = be16(b, 12) else {
                    self.cut("ethernet");
                    return Next::Nothing;
                };
                let mut off = 14;
                let mut vlans = Vec::new();
                // A crafted frame can stack thousands of tags: the first few are shown.
                let mut vlan_count = 0usize;
                while matches!(ethertype, 0x8100 | 0x88A8 | 0x9100) {
                    match (be16(b, off), be16(b, off + 2)) {
                        (Some(tci), Some(inner)) => {
                            if vlans.len() < MAX_VLANS_SHOWN {
                                vlans.push(json!({"id": tci & 0x0FFF, "priority": tci >> 13}));
                            }
                            vlan_count += 1;
                            ethertype = inner;
                            off += 4;
                        }
                        _ => {
                            self.cut("802.1q tag");
                            return Next::Nothing;
                        }
                    }
                }
                self.push("ethernet", || {
                    let mut f = vec![
                        ("dst", json!(mac_at(b, 0, 6))),
                        ("src", json!(mac_at(b, 6, 6))),
                    ];
                    if !vlans.is_empty() {
                        f.push(("vlans", Value::Array(vlans)));
                    }
                    if vlan_count > MAX_VLANS_SHOWN {
                        f.push(("vlan_tags", json!(vlan_count)));
                    }
                    if ethertype < 0x0600 {
                        f.push(("length", json!(ethertype)));
                    } else {
                        f.push(("ethertype", json!(format!("0x{ethertype:04x}"))));
                    }
                    f
                });
                if ethertype < 0x0600 {
                    self.m.net = NetLayer::Other;
                    return Next::Nothing;
                }
                Next::Ether(ethertype, off)
            }
            LinkType::LINUX_SLL => {
                let (Some(pkttype), Some(hatype), Some(alen), Some(proto)) =
                    (be16(b, 0), be16(b, 2), be16(b, 4), be16(b, 14))
                else {
                    self.cut("linux_sll");
                    return Next::Nothing;
                };
                self.push("linux_sll", || {
                    vec![
                        ("packet_type", json!(pkttype)),
                        ("arphrd_type", json!(hatype)),
                        ("address", json!(mac_at(b, 6, usize::from(alen.min(8))))),
                        ("protocol", json!(format!("0x{proto:04x}"))),
                    ]
                });
                Next::Ether(proto, 16)
            }
            LinkType::LINUX_SLL2 => {
                let (Some(proto), Some(ifindex), Some(hatype), Some(pkttype), Some(alen)) =
                    (be16(b, 0), be32(b, 4), be16(b, 8), byte(b, 10), byte(b, 11))
                else {
                    self.cut("linux_sll2");
                    return Next::Nothing;
                };
                if b.len() < 20 {
                    self.cut("linux_sll2");
                    return Next::Nothing;
                }
                self.push("linux_sll2", || {
                    vec![
                        ("protocol", json!(format!("0x{proto:04x}"))),
                        ("interface_index", json!(ifindex)),
                        ("arphrd_type", json!(hatype)),
                        ("packet_type", json!(pkttype)),
                        ("address", json!(mac_at(b, 12, usize::from(alen.min(8))))),
                    ]
                });
                Next::Ether(proto, 20)
            }
            LinkType::NULL | LinkType::LOOP => {
                let Some(raw) = le32(b, 0) else {
                    self.cut("loopback header");
                    return Next::Nothing;
                };
                // DLT_NULL is in the capturing host's byte order, DLT_LOOP in network order.
                let family = if link == LinkType::LOOP || raw > 0xFFFF {
                    raw.swap_bytes()
                } else {
                    raw
                };
                self.push("loopback", || vec![("family", json!(family))]);
                match family {
                    2 | 10 | 24 | 28 | 30 => Next::Ip(4),
                    _ => {
                        self.m.net = NetLayer::Other;
                        Next::Nothing
                    }
                }
            }
            LinkType::RAW | LinkType::RAW_OPENBSD | LinkType::LINKTYPE_RAW => Next::Ip(0),
            LinkType::IPV4 => Next::Ip(0),
            LinkType::IPV6 => Next::Ip(0),
            LinkType(n) => {
                self.push("unknown_link", || vec![("link_type", json!(n))]);
                Next::Nothing
            }
        }
    }

    fn ethertype(mut self, ethertype: u16, off: usize) -> PacketMeta {
        self.m.ethertype = ethertype;
        match ethertype {
            ETHERTYPE_IPV4 => self.ipv4(off),
            ETHERTYPE_IPV6 => self.ipv6(off),
            ETHERTYPE_ARP => self.arp(off),
            other => {
                self.m.net = NetLayer::Other;
                self.push("unknown", || {
                    vec![("ethertype", json!(format!("0x{other:04x}")))]
                });
                self.m
            }
        }
    }

    fn arp(mut self, off: usize) -> PacketMeta {
        let b = self.b;
        self.m.net = NetLayer::Arp;
        let (Some(htype), Some(ptype), Some(hlen), Some(plen), Some(op)) = (
            be16(b, off),
            be16(b, off + 2),
            byte(b, off + 4),
            byte(b, off + 5),
            be16(b, off + 6),
        ) else {
            return self.cut("arp");
        };
        let (h, p) = (usize::from(hlen), usize::from(plen));
        let sha = off + 8;
        let spa = sha + h;
        let tha = spa + p;
        let tpa = tha + h;
        if b.len() < tpa + p {
            return self.cut("arp");
        }
        if ptype == ETHERTYPE_IPV4
            && p == 4
            && let (Some(s), Some(t)) = (ipv4_at(b, spa), ipv4_at(b, tpa))
        {
            self.m.src = IpAddr::V4(s);
            self.m.dst = IpAddr::V4(t);
        }
        let (src, dst) = (self.m.src, self.m.dst);
        self.push("arp", || {
            vec![
                ("hardware_type", json!(htype)),
                ("protocol_type", json!(format!("0x{ptype:04x}"))),
                ("operation", json!(op)),
                ("sender_hardware", json!(mac_at(b, sha, h))),
                ("sender_protocol", json!(src.to_string())),
                ("target_hardware", json!(mac_at(b, tha, h))),
                ("target_protocol", json!(dst.to_string())),
            ]
        });
        self.m
    }

    fn ipv4(mut self, off: usize) -> PacketMeta {
        let b = self.b;
        let Some(vihl) = byte(b, off) else {
            return self.cut("ipv4");
        };
        let ihl = usize::from(vihl & 0x0F) * 4;
        if vihl >> 4 != 4 || ihl < 20 {
            self.m.net = NetLayer::Other;
            return self.cut("ipv4 (bad version or header length)");
        }
        let (Some(total), Some(id), Some(frag), Some(ttl), Some(proto), Some(csum)) = (
            be16(b, off + 2),
            be16(b, off + 4),
            be16(b, off + 6),
            byte(b, off + 8),
            byte(b, off + 9),
            be16(b, off + 10),
        ) else {
            return self.cut("ipv4");
        };
        let (Some(src), Some(dst)) = (ipv4_at(b, off + 12), ipv4_at(b, off + 16)) else {
            return self.cut("ipv4");
        };
        if b.len() < off + ihl {
            return self.cut("ipv4 options");
        }
        self.m.net = NetLayer::Ipv4;
        self.m.src = IpAddr::V4(src);
        self.m.dst = IpAddr::V4(dst);
        self.m.ip_proto = proto;
        let more = frag & 0x2000 != 0;
        let frag_offset = u32::from(frag & 0x1FFF) * 8;
        self.m.fragment = if frag_offset > 0 {
            Fragment::Later
        } else if more {
            Fragment::First
        } else {
            Fragment::None
        };
        let total = usize::from(total);
        // A zero or short total length happens with segmentation offload: trust the capture.
        let (wire_len, end) = if total >= ihl {
            (total - ihl, (off + total).min(b.len()))
        } else {
            (b.len().saturating_sub(off + ihl), b.len())
        };
        let tos = byte(b, off + 1).unwrap_or(0);
        self.push("ipv4", || {
            vec![
                ("version", json!(4)),
                ("header_length", json!(ihl)),
                ("options_length", json!(ihl - 20)),
                ("dscp", json!(tos >> 2)),
                ("ecn", json!(tos & 3)),
                ("total_length", json!(total)),
                ("identification", json!(format!("0x{id:04x}"))),
                ("dont_fragment", json!(frag & 0x4000 != 0)),
                ("more_fragments", json!(more)),
                ("fragment_offset", json!(frag_offset)),
                ("ttl", json!(ttl)),
                ("protocol", json!(proto)),
                ("checksum", json!(format!("0x{csum:04x}"))),
                ("src", json!(src.to_string())),
                ("dst", json!(dst.to_string())),
            ]
        });
        if self.m.fragment == Fragment::Later {
            self.push("fragment", || {
                vec![("offset", json!(frag_offset)), ("length", json!(wire_len))]
            });
            return self.m;
        }
        self.transport(proto, off + ihl, end, wire_len)
    }

    fn ipv6(mut self, off: usize) -> PacketMeta {
        let b = self.b;
        let (Some(word0), Some(plen), Some(next), Some(hops)) = (
            be32(b, off),
            be16(b, off + 4),
            byte(b, off + 6),
            byte(b, off + 7),
        ) else {
            return self.cut("ipv6");
        };
        let (Some(src), Some(dst)) = (ipv6_at(b, off + 8), ipv6_at(b, off + 24)) else {
            return self.cut("ipv6");
        };
        self.m.net = NetLayer::Ipv6;
        self.m.src = IpAddr::V6(src);
        self.m.dst = IpAddr::V6(dst);
        let plen = usize::from(plen);
        let start = off + 40;
        let (mut wire_len, end) = if plen > 0 {
            (plen, (start + plen).min(b.len()))
        } else {
            (b.len().saturating_sub(start), b.len())
        };
        self.push("ipv6", || {
            vec![
                ("version", json!(6)),
                ("traffic_class", json!((word0 >> 20) & 0xFF)),
                ("flow_label", json!(format!("0x{:05x}", word0 & 0xF_FFFF))),
                ("payload_length", json!(plen)),
                ("next_header", json!(next)),
                ("hop_limit", json!(hops)),
                ("src", json!(src.to_string())),
                ("dst", json!(dst.to_string())),
            ]
        });
        let mut nh = next;
        let mut p = start;
        let mut skipped = Vec::new();
        for _ in 0..16 {
            let len = match nh {
                0 | 43 | 60 | 135 | 139 | 140 => match byte(b, p + 1) {
                    Some(l) => (usize::from(l) + 1) * 8,
                    None => return self.cut("ipv6 extension header"),
                },
                44 => {
                    let Some(fo) = be16(b, p + 2) else {
                        return self.cut("ipv6 fragment header");
                    };
                    let frag_offset = u32::from(fo >> 3) * 8;
                    self.m.fragment = if frag_offset > 0 {
                        Fragment::Later
                    } else if fo & 1 != 0 {
                        Fragment::First
                    } else {
                        Fragment::None
                    };
                    8
                }
                51 => match byte(b, p + 1) {
                    Some(l) => (usize::from(l) + 2) * 4,
                    None => return self.cut("ipv6 authentication header"),
                },
                _ => break,
            };
            let Some(following) = byte(b, p) else {
                return self.cut("ipv6 extension header");
            };
            skipped.push(json!({"type": nh, "length": len}));
            nh = following;
            p += len;
            wire_len = wire_len.saturating_sub(len);
        }
        self.m.ip_proto = nh;
        if !skipped.is_empty() {
            let fragment = self.m.fragment;
            self.push("ipv6_extensions", || {
                vec![
                    ("headers", Value::Array(skipped)),
                    ("upper_protocol", json!(nh)),
                    ("fragment", json!(format!("{fragment:?}").to_lowercase())),
                ]
            });
        }
        if self.m.fragment == Fragment::Later {
            return self.m;
        }
        self.transport(nh, p, end, wire_len)
    }

    /// `off`: transport header start; `end`: end of the IP payload within the capture;
    /// `wire_len`: the IP payload length on the wire.
    fn transport(mut self, proto: u8, off: usize, end: usize, wire_len: usize) -> PacketMeta {
        let b = self.b;
        match proto {
            IPPROTO_TCP => {
                let (Some(sp), Some(dp), Some(seq), Some(ack), Some(doff), Some(flags)) = (
                    be16(b, off),
                    be16(b, off + 2),
                    be32(b, off + 4),
                    be32(b, off + 8),
                    byte(b, off + 12),
                    byte(b, off + 13),
                ) else {
                    return self.cut("tcp");
                };
                let (Some(win), Some(csum), Some(urg)) =
                    (be16(b, off + 14), be16(b, off + 16), be16(b, off + 18))
                else {
                    return self.cut("tcp");
                };
                let hlen = usize::from(doff >> 4) * 4;
                if hlen < 20 {
                    return self.cut("tcp (data offset below 5)");
                }
                self.m.has_ports = true;
                self.m.src_port = sp;
                self.m.dst_port = dp;
                self.m.seq = seq;
                self.m.ack = ack;
                self.m.tcp_flags = flags;
                self.m.window = win;
                self.set_payload(off + hlen, end, wire_len.saturating_sub(hlen));
                let payload_len = self.m.payload_wire_len;
                self.push("tcp", || {
                    vec![
                        ("src_port", json!(sp)),
                        ("dst_port", json!(dp)),
                        ("seq", json!(seq)),
                        ("ack", json!(ack)),
                        ("header_length", json!(hlen)),
                        ("options_length", json!(hlen - 20)),
                        ("flags", json!(tcp_flag_names(flags))),
                        ("window", json!(win)),
                        ("checksum", json!(format!("0x{csum:04x}"))),
                        ("urgent_pointer", json!(urg)),
                        ("payload_length", json!(payload_len)),
                    ]
                });
                if b.len() < off + hlen {
                    return self.cut("tcp options");
                }
                self.m
            }
            IPPROTO_UDP => {
                let (Some(sp), Some(dp), Some(ulen), Some(csum)) = (
                    be16(b, off),
                    be16(b, off + 2),
                    be16(b, off + 4),
                    be16(b, off + 6),
                ) else {
                    return self.cut("udp");
                };
                self.m.has_ports = true;
                self.m.src_port = sp;
                self.m.dst_port = dp;
                let ulen_usize = usize::from(ulen);
                let wire = if ulen_usize >= 8 && self.m.fragment == Fragment::None {
                    (ulen_usize - 8).min(wire_len.saturating_sub(8))
                } else {
                    wire_len.saturating_sub(8)
                };
                self.set_payload(off + 8, end, wire);
                self.push("udp", || {
                    vec![
                        ("src_port", json!(sp)),
                        ("dst_port", json!(dp)),
                        ("length", json!(ulen)),
                        ("checksum", json!(format!("0x{csum:04x}"))),
                        ("payload_length", json!(wire)),
                    ]
                });
                self.m
            }
            IPPROTO_ICMP | IPPROTO_ICMPV6 => {
                let (Some(t), Some(c)) = (byte(b, off), byte(b, off + 1)) else {
                    return self.cut("icmp");
                };
                self.set_payload(off, end, wire_len);
                let name = if proto == IPPROTO_ICMP {
                    "icmp"
                } else {
                    "icmpv6"
                };
                self.push(name, || vec![("type", json!(t)), ("code", json!(c))]);
                self.m
            }
            _ => {
                self.set_payload(off, end, wire_len);
                self.m
            }
        }
    }

    fn set_payload(&mut self, start: usize, end: usize, wire_len: usize) {
        let captured = end.saturating_sub(start).min(wire_len);
        self.m.payload_offset = u32::try_from(start.min(self.b.len())).unwrap_or(u32::MAX);
        self.m.payload_len = u32::try_from(captured).unwrap_or(u32::MAX);
        self.m.payload_wire_len = u32::try_from(wire_len).unwrap_or(u32::MAX);
    }
}

/// "10.0.0.1:4000" or "[::1]:4000"; the bare address when there are no ports.
pub fn endpoint(addr: IpAddr, port: Option<u16>) -> String {
    match (addr, port) {
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (a, Some(p)) => format!("{a}:{p}"),
        (a, None) => a.to_string(),
    }
}

/// Source and destination as shown in packet lists (MAC addresses for non-IP Ethernet).
pub fn src_dst(meta: &PacketMeta, link: LinkType, bytes: &[u8]) -> (String, String) {
    if meta.is_ip() {
        let ports = meta.has_ports;
        (
            endpoint(meta.src, ports.then_some(meta.src_port)),
            endpoint(meta.dst, ports.then_some(meta.dst_port)),
        )
    } else if meta.net == NetLayer::Arp {
        (meta.src.to_string(), meta.dst.to_string())
    } else if link == LinkType::ETHERNET && bytes.len() >= 14 {
        (mac_at(bytes, 6, 6), mac_at(bytes, 0, 6))
    } else {
        (String::new(), String::new())
    }
}

/// The compact one-line description of a packet for lists.
pub fn summary_line(meta: &PacketMeta, link: LinkType, bytes: &[u8]) -> String {
    let (src, dst) = src_dst(meta, link, bytes);
    let mut s = match meta.net {
        NetLayer::Ipv4 | NetLayer::Ipv6 => {
            if meta.fragment == Fragment::Later {
                format!(
                    "{src} -> {dst} {} fragment len={}",
                    ip_proto_name(meta.ip_proto),
                    meta.payload_wire_len
                )
            } else if meta.is_tcp() {
                format!(
                    "{src} -> {dst} TCP [{}] seq={} ack={} win={} len={}",
                    tcp_flag_names(meta.tcp_flags).join(","),
                    meta.seq,
                    meta.ack,
                    meta.window,
                    meta.payload_wire_len
                )
            } else if meta.is_udp() {
                format!("{src} -> {dst} UDP len={}", meta.payload_wire_len)
            } else {
                format!(
                    "{src} -> {dst} {} len={}",
                    ip_proto_name(meta.ip_proto),
                    meta.payload_wire_len
                )
            }
        }
        NetLayer::Arp => format!("ARP {src} -> {dst}"),
        NetLayer::Other => {
            if meta.ethertype != 0 {
                format!("{src} -> {dst} ethertype 0x{:04x}", meta.ethertype)
            } else {
                format!("{src} -> {dst} non-IP frame")
            }
        }
        NetLayer::None => format!("unparsed ({} link)", link.name()),
    };
    if meta.fragment == Fragment::First {
        s.push_str(" (first fragment)");
    }
    if meta.truncated {
        s.push_str(" (truncated)");
    }
    s
}

/// Builders of synthetic frames, for this crate's tests.
#[cfg(test)]
pub(crate) mod build {
    use std::net::Ipv4Addr;

    /// An Ethernet + IPv4 + TCP frame.
    pub fn tcp4(
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let total = (20 + 20 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src.0.octets());
        f.extend_from_slice(&dst.0.octets());
        f.extend_from_slice(&src.1.to_be_bytes());
        f.extend_from_slice(&dst.1.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&ack.to_be_bytes());
        f.extend_from_slice(&[0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        while f.len() < 60 {
            f.push(0); // Ethernet padding, not payload
        }
        f
    }

    /// An Ethernet + IPv4 + UDP frame.
    pub fn udp4(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&src.0.octets());
        f.extend_from_slice(&dst.0.octets());
        f.extend_from_slice(&src.1.to_be_bytes());
        f.extend_from_slice(&dst.1.to_be_bytes());
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn ethernet_ipv4_tcp_with_padding() {
        let f = tcp4((A, 4000), (B, 51234), 1000, 2000, TCP_PSH | TCP_ACK, b"hi");
        let m = parse(LinkType::ETHERNET, &f);
        assert_eq!(m.net, NetLayer::Ipv4);
        assert!(m.is_tcp());
        assert_eq!((m.src_port, m.dst_port), (4000, 51234));
        assert_eq!((m.seq, m.ack), (1000, 2000));
        // the Ethernet padding is not payload
        assert_eq!(m.payload_len, 2);
        assert_eq!(m.payload(&f), b"hi");
        assert_eq!(
            summary_line(&m, LinkType::ETHERNET, &f),
            "10.0.0.1:4000 -> 10.0.0.2:51234 TCP [PSH,ACK] seq=1000 ack=2000 win=65535 len=2"
        );
    }

    #[test]
    fn vlan_sll_sll2_null_and_raw() -> TestResult {
        let f = tcp4((A, 1), (B, 2), 0, 0, TCP_SYN, b"");
        let ip = &f[14..54];
        // 802.1Q
        let mut v = f[..12].to_vec();
        v.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00]);
        v.extend_from_slice(ip);
        let (m, layers) = describe(LinkType::ETHERNET, &v);
        assert!(m.is_tcp());
        assert_eq!(
            layers[0].fields.get("vlans"),
            Some(&json!([{"id": 5, "priority": 0}]))
        );
        // SLL
        let mut s = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        s.extend_from_slice(ip);
        assert!(parse(LinkType::LINUX_SLL, &s).is_tcp());
        // SLL2
        let mut s2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ];
        s2.extend_from_slice(ip);
        assert!(parse(LinkType::LINUX_SLL2, &s2).is_tcp());
        // BSD null, little-endian family 2
        let mut n = vec![2, 0, 0, 0];
        n.extend_from_slice(ip);
        assert!(parse(LinkType::NULL, &n).is_tcp());
        // and big-endian
        let mut n = vec![0, 0, 0, 2];
        n.extend_from_slice(ip);
        assert!(parse(LinkType::NULL, &n).is_tcp());
        // raw
        assert!(parse(LinkType::RAW, ip).is_tcp());
        assert!(parse(LinkType::IPV4, ip).is_tcp());
        Ok(())
    }

    #[test]
    fn ipv6_with_extension_headers() {
        let mut p = vec![0x60, 0, 0, 0];
        let tcp_len = 20 + 3;
        p.extend_from_slice(&((8 + tcp_len) as u16).to_be_bytes());
        p.push(0); // hop-by-hop next
        p.push(64);
        p.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        p.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        p.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]); // hop-by-hop, next = TCP
        p.extend_from_slice(&4000u16.to_be_bytes());
        p.extend_from_slice(&5000u16.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x18, 1, 0, 0, 0, 0, 0]);
        p.extend_from_slice(b"abc");
        let (m, layers) = describe(LinkType::IPV6, &p);
        assert_eq!(m.net, NetLayer::Ipv6);
        assert!(m.is_tcp());
        assert_eq!(m.payload(&p), b"abc");
        assert_eq!(m.seq, 7);
        let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["ipv6", "ipv6_extensions", "tcp"]);
        assert!(summary_line(&m, LinkType::IPV6, &p).starts_with("[::1]:4000 -> [::1]:5000 TCP"));
    }

    #[test]
    fn ipv4_options_and_fragments() {
        let f = tcp4((A, 1), (B, 2), 0, 0, TCP_ACK, b"xyz");
        let mut ip = f[14..57].to_vec();
        // add 4 bytes of options: IHL 6
        ip[0] = 0x46;
        ip.splice(20..20, [1, 1, 1, 0]);
        let total = ip.len() as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let (m, layers) = describe(LinkType::RAW, &ip);
        assert_eq!(m.payload(&ip), b"xyz");
        assert_eq!(layers[0].fields.get("options_length"), Some(&json!(4)));
        // a later fragment: no ports
        let mut frag = f[14..57].to_vec();
        frag[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
        let m = parse(LinkType::RAW, &frag);
        assert_eq!(m.fragment, Fragment::Later);
        assert!(!m.has_ports);
        // a first fragment
        let mut frag = f[14..57].to_vec();
        frag[6..8].copy_from_slice(&0x2000u16.to_be_bytes());
        assert_eq!(parse(LinkType::RAW, &frag).fragment, Fragment::First);
    }

    #[test]
    fn udp_and_snaplen_cut_payload() {
        let f = udp4((A, 6112), (B, 6112), &[1, 2, 3, 4, 5]);
        let m = parse(LinkType::ETHERNET, &f);
        assert!(m.is_udp());
        assert_eq!(m.payload(&f), &[1, 2, 3, 4, 5]);
        let cut = &f[..f.len() - 2];
        let m = parse(LinkType::ETHERNET, cut);
        assert_eq!((m.payload_len, m.payload_wire_len), (3, 5));
    }

    #[test]
    fn never_panics_on_any_prefix_or_garbage() {
        let f = tcp4((A, 1), (B, 2), 5, 6, TCP_SYN, b"payload");
        let links = [
            LinkType::ETHERNET,
            LinkType::LINUX_SLL,
            LinkType::LINUX_SLL2,
            LinkType::NULL,
            LinkType::LOOP,
            LinkType::RAW,
            LinkType::IPV6,
            LinkType(999),
        ];
        for link in links {
            for n in 0..f.len() {
                let _ = describe(link, &f[..n]);
            }
        }
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let mut g = Vec::new();
            for _ in 0..(x % 90) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                g.push((x >> 16) as u8);
            }
            if g.len() > 14 {
                g[12] = 0x08;
                g[13] = if x & 1 == 0 { 0x00 } else { 0xDD };
                g[14] = if x & 2 == 0 { 0x45 } else { 0x60 };
            }
            for link in links {
                let (m, _) = describe(link, &g);
                let _ = summary_line(&m, link, &g);
                let _ = m.payload(&g);
            }
        }
    }
}
