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
#[derive(Debug, Clone)]
pub struct Analysis {
    pub path: PathBuf,
    pub format: SourceFormat,
    pub capture: CaptureFile,
    /// Per packet, its headers.
    pub metas: Vec<PacketMeta>,
    pub flows: FlowTable,
    raw_stream: Option<Vec<u8>>,
}

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
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture_file::create_pcap;
    use crate::layers::build::tcp4;
    use crate::layers::{TCP_ACK, TCP_PSH};
    use std::net::Ipv4Addr;
    use std::time::Instant;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// Throughput check, run by hand in release mode:
    /// `cargo test --release -p mcp-network --lib perf -- --ignored --nocapture`
    /// (compare with `tshark -q -z conv,tcp -r /tmp/mcp-network-perf.pcap`).
    #[test]
    #[ignore]
    fn perf_one_million_packets_and_d2_decode() -> TestResult {
        let path = std::env::temp_dir().join("mcp-network-perf.pcap");
        let n = 1_000_000u32;
        let mut w = create_pcap(&path, LinkType::ETHERNET)?;
        let payload = [0x42u8; 100];
        for i in 0..n {
            let flow = i % 5000;
            let c = (
                Ipv4Addr::from(0x0A00_0000 + flow),
                40000 + (flow % 20000) as u16,
            );
            let s = (Ipv4Addr::new(192, 168, 1, 1), 4000 + (flow % 3) as u16);
            let seq = (i / 5000) * 100;
            let f = if i % 2 == 0 {
                tcp4(c, s, seq, 0, TCP_PSH | TCP_ACK, &payload)
            } else {
                tcp4(s, c, seq, 0, TCP_ACK, &payload[..10])
            };
            w.write_packet(
                1_700_000_000 + i64::from(i / 1000),
                (i % 1000) * 1000,
                f.len() as u32,
                &f,
            )?;
        }
        w.finish()?;
        let t0 = Instant::now();
        let cap = CaptureFile::read(&path)?;
        let t1 = Instant::now();
        let metas: Vec<PacketMeta> = cap.iter().map(|p| parse(cap.link_type, p.bytes)).collect();
        let t2 = Instant::now();
        let table = FlowTable::build(&cap, &metas);
        let t3 = Instant::now();
        println!(
            "read {:?}, parse {:?}, flows {:?} ({} flows)",
            t1 - t0,
            t2 - t1,
            t3 - t2,
            table.flows.len()
        );
        drop((cap, metas, table));
        let t0 = Instant::now();
        let a = Analysis::open(&path)?;
        let sum = crate::queries::summary(&a, 10);
        let flows = crate::queries::list_flows(&a, &Default::default(), 0, 100)?;
        let took = t0.elapsed();
        println!(
            "open + flows + summary of {} packets: {:?} ({} flows, {} listed)",
            sum.packets,
            took,
            sum.flows,
            flows.items.len()
        );
        assert_eq!(sum.packets, n as usize);
        assert_eq!(sum.flows, 5000);

        let dump = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/d2gs/d2gs_sc.dump"
        ));
        if let Ok(dump) = dump {
            let body = &dump[2..];
            let mut big = vec![0xAF, 0x01];
            while big.len() < 64 << 20 {
                big.extend_from_slice(body);
            }
            let t0 = Instant::now();
            let s = crate::d2gs::decode_server(&big)?;
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "d2 decode: {} MB compressed -> {} packets in {secs:.3}s = {:.0} MB/s",
                big.len() >> 20,
                s.messages.len(),
                big.len() as f64 / secs / 1e6
            );
            assert!(s.problems.is_empty());
        }
        Ok(())
    }
}
