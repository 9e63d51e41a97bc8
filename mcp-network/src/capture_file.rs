//! Capture files in and out: pcap and pcapng are read through libpcap (which knows every
//! variant of both), a raw D2GS stream file is recognised so the caller can treat it as one
//! pseudo-flow, and classic pcap is written here by hand (it is a 24-byte header and 16-byte
//! record headers, not worth a dependency).
//!
//! Packets are kept in one contiguous buffer with a small fixed record per packet, so that a
//! million-packet file costs one allocation for the bytes, not a million.

use crate::error::{NetError, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

/// What kind of file a source is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// Classic libpcap format (any byte order, micro- or nanosecond).
    Pcap,
    /// pcapng.
    Pcapng,
    /// A raw D2GS server-to-client byte stream (starts `AF 00` or `AF 01`).
    D2gsStream,
}

/// The link-layer header type of a capture, as libpcap reports it (a DLT_ value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    /// DLT_RAW on most systems.
    pub const RAW: LinkType = LinkType(12);
    /// DLT_RAW on OpenBSD.
    pub const RAW_OPENBSD: LinkType = LinkType(14);
    /// LINKTYPE_RAW as stored in files (libpcap normally maps it to DLT_RAW).
    pub const LINKTYPE_RAW: LinkType = LinkType(101);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// A short name for summaries ("ethernet", "linux_sll", ...).
    pub fn name(self) -> String {
        match self {
            Self::NULL => "null".into(),
            Self::ETHERNET => "ethernet".into(),
            Self::RAW | Self::RAW_OPENBSD | Self::LINKTYPE_RAW => "raw_ip".into(),
            Self::LOOP => "loop".into(),
            Self::LINUX_SLL => "linux_sll".into(),
            Self::LINUX_SLL2 => "linux_sll2".into(),
            Self::IPV4 => "ipv4".into(),
            Self::IPV6 => "ipv6".into(),
            LinkType(n) => format!("dlt_{n}"),
        }
    }

    /// The LINKTYPE_ value to store in a file header for this DLT_ value. They are equal
    /// except for DLT_RAW, whose number differs between systems.
    pub fn file_value(self) -> u32 {
        match self {
            Self::RAW | Self::RAW_OPENBSD => Self::LINKTYPE_RAW.0,
            LinkType(n) => n,
        }
    }
}

/// The fixed part of one captured packet; its bytes live in the capture's shared buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub ts_sec: i64,
    pub ts_usec: u32,
    /// Bytes captured (what the file holds).
    pub caplen: u32,
    /// Bytes the packet had on the wire.
    pub orig_len: u32,
    data_start: usize,
}

impl Record {
    /// Seconds since the epoch as a float (microsecond resolution).
    pub fn time(&self) -> f64 {
        self.ts_sec as f64 + f64::from(self.ts_usec) / 1e6
    }
}

/// Where reading stopped early and why: the packets before it are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ReadProblem {
    /// Index of the packet that could not be read (= number of packets kept).
    pub packet_index: usize,
    /// What libpcap said.
    pub message: String,
}

/// One packet of a capture, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct PacketRef<'a> {
    pub index: usize,
    pub record: &'a Record,
    pub bytes: &'a [u8],
}

/// A whole capture file in memory.
#[derive(Debug, Clone)]
pub struct CaptureFile {
    pub format: SourceFormat,
    pub link_type: LinkType,
    records: Vec<Record>,
    data: Vec<u8>,
    /// Set when the file is damaged: reading stopped there.
    pub problem: Option<ReadProblem>,
}

/// Looks at the first bytes of a file: pcap, pcapng or a raw D2GS stream.
pub fn sniff_format(path: &Path) -> Result<SourceFormat> {
    let mut head = [0u8; 4];
    let mut file = File::open(path).map_err(|e| NetError::new(format!("cannot open: {e}")))?;
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(NetError::new(format!("cannot read: {e}"))),
        }
    }
    let head = &head[..got];
    format_of(head).ok_or_else(|| {
        let shown: Vec<String> = head.iter().map(|b| format!("{b:02X}")).collect();
        NetError::new(format!(
            "not a pcap, pcapng or raw D2GS stream file (starts with [{}]; accepted: pcap magic \
             A1B2C3D4/A1B23C4D in either byte order, pcapng 0A0D0D0A, D2GS stream AF 00 / AF 01)",
            shown.join(" ")
        ))
    })
}

/// The format these leading bytes announce, if any.
pub fn format_of(head: &[u8]) -> Option<SourceFormat> {
    match head {
        [0xD4, 0xC3, 0xB2, 0xA1, ..]
        | [0xA1, 0xB2, 0xC3, 0xD4, ..]
        | [0x4D, 0x3C, 0xB2, 0xA1, ..]
        | [0xA1, 0xB2, 0x3C, 0x4D, ..] => Some(SourceFormat::Pcap),
        [0x0A, 0x0D, 0x0D, 0x0A, ..] => Some(SourceFormat::Pcapng),
        [0xAF, 0x00 | 0x01, ..] => Some(SourceFormat::D2gsStream),
        _ => None,
    }
}

impl CaptureFile {
    /// Reads every packet of a pcap or pcapng file. A damaged file gives the packets before
    /// the damage and `problem`; only a file libpcap cannot open at all is an error.
    pub fn read(path: &Path) -> Result<CaptureFile> {
        let format = match sniff_format(path)? {
            SourceFormat::D2gsStream => {
                return Err(NetError::new(
                    "this is a raw D2GS stream, not a capture file (open it as a source instead)",
                ));
            }
            f => f,
        };
        let size_hint = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mut cap = pcap::Capture::from_file(path)
            .map_err(|e| NetError::new(format!("libpcap cannot open the file: {e}")))?;
        let link = cap.get_datalink();
        let mut file = CaptureFile {
            format,
            link_type: LinkType(u32::try_from(link.0).unwrap_or(u32::MAX)),
            records: Vec::with_capacity((size_hint / 128).min(1 << 24) as usize),
            data: Vec::with_capacity(size_hint.min(MAX_CAPTURE_BYTES) as usize),
            problem: None,
        };
        loop {
            match cap.next_packet() {
                Ok(p)
                    if file.data.len() as u64 + u64::from(p.header.caplen) > MAX_CAPTURE_BYTES =>
                {
                    file.problem = Some(ReadProblem {
                        packet_index: file.records.len(),
                        message: format!(
                            "reading stopped: the packets kept so far fill the memory budget of \
                             {} MiB (split the file, e.g. with editcap -c)",
                            MAX_CAPTURE_BYTES >> 20
                        ),
                    });
                    break;
                }
                Ok(p) => {
                    let ts_sec = p.header.ts.tv_sec;
                    let ts_usec = u32::try_from(p.header.ts.tv_usec).unwrap_or(0);
                    file.push(ts_sec, ts_usec, p.header.len, p.data);
                }
                Err(pcap::Error::NoMorePackets) => break,
                Err(e) => {
                    file.problem = Some(ReadProblem {
                        packet_index: file.records.len(),
                        message: e.to_string(),
                    });
                    break;
                }
            }
        }
        Ok(file)
    }

    /// An empty capture to fill with `push` (tests, synthetic traffic).
    pub fn new(format: SourceFormat, link_type: LinkType) -> CaptureFile {
        CaptureFile {
            format,
            link_type,
            records: Vec::new(),
            data: Vec::new(),
            problem: None,
        }
    }

    /// Appends one packet.
    pub fn push(&mut self, ts_sec: i64, ts_usec: u32, orig_len: u32, bytes: &[u8]) {
        let caplen = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.records.push(Record {
            ts_sec,
            ts_usec,
            caplen,
            orig_len: orig_len.max(caplen),
            data_start: self.data.len(),
        });
        self.data.extend_from_slice(bytes);
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The bytes of packet `index` (empty if out of range).
    pub fn bytes(&self, index: usize) -> &[u8] {
        self.records
            .get(index)
            .and_then(|r| {
                self.data
                    .get(r.data_start..r.data_start.saturating_add(r.caplen as usize))
            })
            .unwrap_or(&[])
    }

    pub fn packet(&self, index: usize) -> Option<PacketRef<'_>> {
        let record = self.records.get(index)?;
        Some(PacketRef {
            index,
            record,
            bytes: self.bytes(index),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = PacketRef<'_>> + '_ {
        (0..self.records.len()).filter_map(move |i| self.packet(i))
    }
}

/// Most captured bytes one source may hold in memory; reading stops there (and says so).
pub const MAX_CAPTURE_BYTES: u64 = 4 << 30;

/// The snap length written into pcap headers: big enough for any packet libpcap keeps.
pub const WRITE_SNAPLEN: u32 = 262_144;

/// Writes classic pcap (microsecond timestamps, little-endian) to any writer.
pub struct PcapWriter<W: Write> {
    out: W,
    packets: usize,
    bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header for `link_type` (a DLT_ value; stored as its LINKTYPE_).
    pub fn new(mut out: W, link_type: LinkType) -> Result<Self> {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&WRITE_SNAPLEN.to_le_bytes());
        header.extend_from_slice(&link_type.file_value().to_le_bytes());
        out.write_all(&header)
            .map_err(|e| NetError::new(format!("writing the pcap header: {e}")))?;
        Ok(Self {
            out,
            packets: 0,
            bytes: 24,
        })
    }

    /// Writes one record. Times before 1970 or after 2106 are clamped (the format has u32
    /// seconds); packets longer than the snap length are cut to it.
    pub fn write_packet(
        &mut self,
        ts_sec: i64,
        ts_usec: u32,
        orig_len: u32,
        bytes: &[u8],
    ) -> Result<()> {
        let keep = &bytes[..bytes.len().min(WRITE_SNAPLEN as usize)];
        let caplen = keep.len() as u32;
        let sec = u32::try_from(ts_sec.max(0)).unwrap_or(u32::MAX);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&sec.to_le_bytes());
        rec[4..8].copy_from_slice(&ts_usec.min(999_999).to_le_bytes());
        rec[8..12].copy_from_slice(&caplen.to_le_bytes());
        rec[12..16].copy_from_slice(&orig_len.max(caplen).to_le_bytes());
        self.out
            .write_all(&rec)
            .and_then(|()| self.out.write_all(keep))
            .map_err(|e| NetError::new(format!("writing pcap record {}: {e}", self.packets)))?;
        self.packets += 1;
        self.bytes += 16 + u64::from(caplen);
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> usize {
        self.packets
    }

    /// File bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes and gives the writer back.
    pub fn finish(mut self) -> Result<W> {
        self.out
            .flush()
            .map_err(|e| NetError::new(format!("flushing the pcap file: {e}")))?;
        Ok(self.out)
    }
}

/// Creates `path` and returns a buffered pcap writer on it.
pub fn create_pcap(path: &Path, link_type: LinkType) -> Result<PcapWriter<BufWriter<File>>> {
    let file = File::create(path)
        .map_err(|e| NetError::new(format!("cannot create {}: {e}", path.display())))?;
    PcapWriter::new(BufWriter::new(file), link_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("mcp-network-{}-{name}", std::process::id()))
    }

    fn write_sample(path: &Path, n: usize) -> Result<()> {
        let mut w = create_pcap(path, LinkType::ETHERNET)?;
        for i in 0..n {
            let body = vec![i as u8; 60 + i];
            w.write_packet(1_700_000_000 + i as i64, 250_000, 60 + i as u32, &body)?;
        }
        w.finish()?;
        Ok(())
    }

    #[test]
    fn writes_and_reads_back_pcap() -> TestResult {
        let path = temp_path("rw.pcap");
        write_sample(&path, 5)?;
        let cap = CaptureFile::read(&path)?;
        std::fs::remove_file(&path)?;
        assert_eq!(cap.format, SourceFormat::Pcap);
        assert_eq!(cap.link_type, LinkType::ETHERNET);
        assert_eq!(cap.len(), 5);
        assert!(cap.problem.is_none());
        let p = cap.packet(3).ok_or("packet 3")?;
        assert_eq!(p.record.ts_sec, 1_700_000_003);
        assert_eq!(p.record.ts_usec, 250_000);
        assert_eq!(p.record.caplen, 63);
        assert_eq!(p.bytes, &vec![3u8; 63][..]);
        assert!((p.record.time() - 1_700_000_003.25).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn truncated_file_keeps_packets_before_the_damage() -> TestResult {
        let path = temp_path("trunc.pcap");
        write_sample(&path, 4)?;
        let full = std::fs::read(&path)?;
        // cut in the middle of the last packet's bytes
        std::fs::write(&path, &full[..full.len() - 10])?;
        let cap = CaptureFile::read(&path)?;
        let problem = cap.problem.clone().ok_or("expected a read problem")?;
        assert_eq!(cap.len(), 3);
        assert_eq!(problem.packet_index, 3);
        assert!(problem.message.contains("truncated"), "{}", problem.message);
        println!("libpcap said: {}", problem.message);
        // cut inside a record header
        std::fs::write(&path, &full[..24 + 16 + 60 + 5])?;
        let cap = CaptureFile::read(&path)?;
        assert_eq!(cap.len(), 1);
        assert_eq!(cap.problem.map(|p| p.packet_index), Some(1));
        // cut inside the global header: libpcap cannot open it at all
        std::fs::write(&path, &full[..10])?;
        let err = CaptureFile::read(&path).err().ok_or("expected an error")?;
        assert!(err.message().contains("libpcap"), "{err}");
        std::fs::remove_file(&path)?;
        Ok(())
    }

    #[test]
    fn garbage_record_is_reported() -> TestResult {
        let path = temp_path("garbage.pcap");
        write_sample(&path, 3)?;
        let mut bytes = std::fs::read(&path)?;
        // the second record's caplen (offset 24 + 16 + 60 + 8) becomes absurd
        let at = 24 + 16 + 60 + 8;
        bytes[at..at + 4].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
        std::fs::write(&path, &bytes)?;
        let cap = CaptureFile::read(&path)?;
        std::fs::remove_file(&path)?;
        assert_eq!(cap.len(), 1);
        let problem = cap.problem.ok_or("expected a problem")?;
        assert_eq!(problem.packet_index, 1);
        assert!(!problem.message.is_empty());
        println!("libpcap said: {}", problem.message);
        Ok(())
    }

    #[test]
    fn recognises_formats() -> TestResult {
        assert_eq!(
            format_of(&[0xD4, 0xC3, 0xB2, 0xA1]),
            Some(SourceFormat::Pcap)
        );
        assert_eq!(
            format_of(&[0x0A, 0x0D, 0x0D, 0x0A]),
            Some(SourceFormat::Pcapng)
        );
        assert_eq!(
            format_of(&[0xAF, 0x01, 0x07]),
            Some(SourceFormat::D2gsStream)
        );
        assert_eq!(format_of(&[0x00]), None);
        let path = temp_path("junk.bin");
        std::fs::write(&path, b"hello world")?;
        let err = sniff_format(&path).err().ok_or("expected an error")?;
        std::fs::remove_file(&path)?;
        assert!(err.message().contains("68 65 6C 6C"), "{err}");
        assert!(sniff_format(Path::new("/nonexistent/x.pcap")).is_err());
        Ok(())
    }

    /// A minimal pcapng: section header, one interface (link type 276, SLL2), two packets.
    fn pcapng_sample() -> Vec<u8> {
        fn block(kind: u32, body: &[u8]) -> Vec<u8> {
            let mut b = body.to_vec();
            while !b.len().is_multiple_of(4) {
                b.push(0);
            }
            let total = (b.len() + 12) as u32;
            let mut out = kind.to_le_bytes().to_vec();
            out.extend_from_slice(&total.to_le_bytes());
            out.extend_from_slice(&b);
            out.extend_from_slice(&total.to_le_bytes());
            out
        }
        let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut idb = 276u16.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&65535u32.to_le_bytes());
        let mut out = block(0x0A0D_0D0A, &shb);
        out.extend(block(1, &idb));
        for (k, len) in [(0u64, 25usize), (1, 30)] {
            let ts = 1_600_000_000_000_000u64 + k * 1_500_000; // microseconds
            let mut epb = 0u32.to_le_bytes().to_vec();
            epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(ts as u32).to_le_bytes());
            epb.extend_from_slice(&(len as u32).to_le_bytes());
            epb.extend_from_slice(&(len as u32 + 10).to_le_bytes());
            epb.extend(std::iter::repeat_n(k as u8 + 1, len));
            out.extend(block(6, &epb));
        }
        out
    }

    #[test]
    fn reads_pcapng_and_its_truncation() -> TestResult {
        let path = temp_path("sample.pcapng");
        let bytes = pcapng_sample();
        std::fs::write(&path, &bytes)?;
        let cap = CaptureFile::read(&path)?;
        assert_eq!(cap.format, SourceFormat::Pcapng);
        assert_eq!(cap.link_type, LinkType::LINUX_SLL2);
        assert_eq!(cap.len(), 2);
        assert!(cap.problem.is_none());
        let p = cap.packet(1).ok_or("packet 1")?;
        assert_eq!(
            (p.record.ts_sec, p.record.ts_usec),
            (1_600_000_001, 500_000)
        );
        assert_eq!((p.record.caplen, p.record.orig_len), (30, 40));
        assert_eq!(p.bytes, &[2u8; 30][..]);
        std::fs::write(&path, &bytes[..bytes.len() - 9])?;
        let cap = CaptureFile::read(&path)?;
        std::fs::remove_file(&path)?;
        assert_eq!(cap.len(), 1);
        let problem = cap.problem.ok_or("expected a problem")?;
        assert_eq!(problem.packet_index, 1);
        assert!(!problem.message.is_empty());
        println!("libpcap said: {}", problem.message);
        Ok(())
    }

    #[test]
    fn raw_ip_link_type_is_stored_as_linktype_raw() {
        assert_eq!(LinkType::RAW.file_value(), 101);
        assert_eq!(LinkType::ETHERNET.file_value(), 1);
        assert_eq!(LinkType::LINUX_SLL2.name(), "linux_sll2");
    }
}
