//! One opened source, ready to answer questions: the packets, their compact header records
//! and the flow table, all built in one pass when the source is opened; byte streams are
//! reassembled on demand (cheap for one flow, and nothing to keep in sync).
//!
//! A source is a pcap/pcapng file or a raw D2GS stream file; the latter becomes a single
//! pseudo-flow (id 0) whose server-to-client bytes are the file.

use crate::capture_file::{CaptureFile, LinkType, SourceFormat, sniff_format};
use crate::error::{NetError, Result};
use crate::flows::{AppProtocol, Direction, FlowTable};
use crate::layers::{PacketMeta, parse};
use crate::reassembly::{Segment, Stream};
use std::path::{Path, PathBuf};

/// An opened source.
#[derive(Debug)]
pub struct Analysis {
    pub path: PathBuf,
    pub format: SourceFormat,
    pub capture: CaptureFile,
    /// Per packet, its headers.
    pub metas: Vec<PacketMeta>,
    pub flows: FlowTable,
    raw_stream: Option<Vec<u8>>,
    /// Directions already decoded as Diablo II traffic, so that every page of `d2_decode`
    /// and `d2_stats` after the first reads them instead of reassembling and decoding again.
    decoded: std::sync::Mutex<DecodedDirections>,
    /// The time order of `d2_decode`'s matches, per query (the last few).
    orders: suite_core::recent::Recent<OrderKey, Vec<(usize, usize)>>,
}

/// What a `d2_decode` order depends on: flow, direction, protocol and the ids wanted.
pub type OrderKey = (
    Option<u32>,
    Option<crate::flows::Direction>,
    Option<crate::flows::AppProtocol>,
    Option<[bool; 256]>,
);

/// How many `d2_decode` orders one source keeps.
const KEPT_ORDERS: usize = 8;

/// A direction decoded as one protocol: (flow id, direction, protocol) and the result.
type DecodedDirections = std::collections::HashMap<
    (u32, crate::flows::Direction, crate::flows::AppProtocol),
    std::sync::Arc<crate::d2_session::DirectionDecode>,
>;

impl Analysis {
    /// Opens a pcap, pcapng or raw D2GS stream file.
    pub fn open(path: &Path) -> Result<Analysis> {
        let context = |e: NetError| e.context(path.display());
        match sniff_format(path).map_err(context)? {
            SourceFormat::D2gsStream => {
                let bytes = std::fs::read(path)
                    .map_err(|e| NetError::new(format!("cannot read: {e}")))
                    .map_err(context)?;
                Ok(Self::from_d2gs_stream(path, bytes))
            }
            _ => {
                let capture = CaptureFile::read(path).map_err(context)?;
                Ok(Self::from_capture(path, capture))
            }
        }
    }

    /// Analyses packets already in memory.
    pub fn from_capture(path: &Path, capture: CaptureFile) -> Analysis {
        let link = capture.link_type;
        let metas: Vec<PacketMeta> = capture.iter().map(|p| parse(link, p.bytes)).collect();
        let flows = FlowTable::build(&capture, &metas);
        Analysis {
            path: path.to_path_buf(),
            format: capture.format,
            capture,
            metas,
            flows,
            raw_stream: None,
            decoded: Default::default(),
            orders: suite_core::recent::Recent::new(KEPT_ORDERS),
        }
    }

    /// A raw D2GS server-to-client stream as a source.
    pub fn from_d2gs_stream(path: &Path, bytes: Vec<u8>) -> Analysis {
        Analysis {
            path: path.to_path_buf(),
            format: SourceFormat::D2gsStream,
            capture: CaptureFile::new(SourceFormat::D2gsStream, LinkType(0)),
            metas: Vec::new(),
            flows: FlowTable::default(),
            raw_stream: Some(bytes),
            decoded: Default::default(),
            orders: suite_core::recent::Recent::new(KEPT_ORDERS),
        }
    }

    /// The decode of one direction, from the kept ones or made by `decode` and kept.
    pub fn decoded(
        &self,
        key: (u32, crate::flows::Direction, crate::flows::AppProtocol),
        decode: impl FnOnce() -> Result<crate::d2_session::DirectionDecode>,
    ) -> Result<std::sync::Arc<crate::d2_session::DirectionDecode>> {
        let lock = || self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = lock().get(&key) {
            return Ok(d.clone());
        }
        let d = std::sync::Arc::new(decode()?);
        lock().insert(key, d.clone());
        Ok(d)
    }

    /// The order of one `d2_decode` query, from the kept ones or made by `order` and kept:
    /// the matches in time order as (decode, message) indices.
    pub fn d2_order(
        &self,
        key: OrderKey,
        order: impl FnOnce() -> Vec<(usize, usize)>,
    ) -> std::sync::Arc<Vec<(usize, usize)>> {
        self.orders.get_or_make(key, order)
    }

    /// The raw stream's bytes, for a raw D2GS stream source.
    pub fn raw_stream(&self) -> Option<&[u8]> {
        self.raw_stream.as_deref()
    }

    pub fn packet_count(&self) -> usize {
        self.capture.len()
    }

    /// Checks a packet index.
    pub fn check_index(&self, index: usize) -> Result<()> {
        if index < self.capture.len() {
            Ok(())
        } else if self.capture.is_empty() {
            Err(NetError::new(format!(
                "invalid argument `index`: {index} (this source has no packets)"
            )))
        } else {
            Err(NetError::new(format!(
                "invalid argument `index`: {index} (accepted: 0 to {})",
                self.capture.len() - 1
            )))
        }
    }

    /// Number of flows (1 for a raw stream: its pseudo-flow).
    pub fn flow_count(&self) -> usize {
        if self.raw_stream.is_some() {
            1
        } else {
            self.flows.flows.len()
        }
    }

    /// The application protocol of flow `flow_id` (checked).
    pub fn flow_protocol(&self, flow_id: u32) -> Result<AppProtocol> {
        if self.raw_stream.is_some() {
            return if flow_id == 0 {
                Ok(AppProtocol::D2gs)
            } else {
                Err(self.bad_flow(flow_id))
            };
        }
        self.flows
            .get(flow_id)
            .map(|f| f.protocol)
            .ok_or_else(|| self.bad_flow(flow_id))
    }

    pub fn bad_flow(&self, flow_id: u32) -> NetError {
        let n = self.flow_count();
        if n == 0 {
            NetError::new(format!(
                "invalid argument `flow_id`: {flow_id} (this source has no flows)"
            ))
        } else {
            NetError::new(format!(
                "invalid argument `flow_id`: {flow_id} (accepted: 0 to {})",
                n - 1
            ))
        }
    }

    /// The reassembled bytes of one direction of a flow (TCP: by sequence numbers; UDP and
    /// others: payloads one after the other).
    pub fn stream(&self, flow_id: u32, dir: Direction) -> Result<Stream> {
        if let Some(raw) = &self.raw_stream {
            if flow_id != 0 {
                return Err(self.bad_flow(flow_id));
            }
            return Ok(match dir {
                Direction::ServerToClient => Stream::from_bytes(raw.clone()),
                Direction::ClientToServer => Stream::default(),
            });
        }
        let flow = self
            .flows
            .get(flow_id)
            .ok_or_else(|| self.bad_flow(flow_id))?;
        let packets = self.flows.packets_of(flow_id, Some(dir));
        if flow.ip_proto == crate::layers::IPPROTO_TCP {
            let segments: Vec<Segment<'_>> = packets
                .filter_map(|i| {
                    let meta = self.metas.get(i)?;
                    let record = self.capture.records().get(i)?;
                    Some(Segment {
                        packet_index: i as u32,
                        time: record.time(),
                        seq: meta.seq,
                        flags: meta.tcp_flags,
                        payload: meta.payload(self.capture.bytes(i)),
                        wire_len: meta.payload_wire_len,
                    })
                })
                .collect();
            Ok(Stream::reassemble(&segments))
        } else {
            Ok(Stream::from_datagrams(packets.filter_map(|i| {
                let meta = self.metas.get(i)?;
                let record = self.capture.records().get(i)?;
                Some((i as u32, record.time(), meta.payload(self.capture.bytes(i))))
            })))
        }
    }
}
