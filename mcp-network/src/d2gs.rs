//! The D2GS game protocol on the byte level.
//!
//! Server to client: an optional uncompressed `AF 01` (compression on) or `AF 00` (off),
//! then frames. A frame whose first byte b0 is below 0xF0 has a 1-byte header and length b0;
//! otherwise a 2-byte header and length ((b0 & 0x0F) << 8) | b1; the length includes the
//! header. The body is Huffman-coded (see `huffman`); the decoded bytes are packets placed
//! end to end, delimited by the size table. A frame whose packets cannot be delimited (an
//! id of unknown size, a packet running past the frame end) is reported as corrupt and
//! decoding goes on with the next frame: the framing does not depend on the contents.
//!
//! Client to server: raw packets, no framing, no compression; an unknown id ends decoding
//! of that direction because nothing else tells where the next packet starts.
//!
//! The encoder does the reverse (compress, frame), so that what it writes decodes back.

use crate::d2_tables::{PacketSpec, SizeError, Tables, tables};
use crate::error::{NetError, Result};
use crate::huffman::{Codec, codec};
use schemars::JsonSchema;
use serde::Serialize;

/// Largest frame length a 2-byte header can state.
pub const MAX_FRAME_LEN: usize = 0x0FFF;
/// Largest frame length a 1-byte header can state.
pub const MAX_SHORT_FRAME_LEN: usize = 0xEF;

/// One compressed frame of the server-to-client stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FrameInfo {
    pub index: u32,
    /// Stream offset of the frame header.
    pub offset: u64,
    pub header_len: u8,
    /// Frame length, header included.
    pub length: u32,
    pub decompressed_len: u32,
    /// Packets delimited in it.
    pub packets: u32,
    pub corrupt: bool,
}

/// One delimited message: where its bytes are in the decoded data and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageSpan {
    pub id: u8,
    /// Start in the decoded data buffer.
    pub start: usize,
    pub len: usize,
    /// Frame index (compressed server-to-client streams only).
    pub frame: Option<u32>,
    /// Stream offset where the message (or its frame) starts.
    pub offset: u64,
    /// Stream offset just past the message (or its frame): when it was complete.
    pub end_offset: u64,
}

/// Something that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct DecodeProblem {
    /// The frame concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u32>,
    /// Stream offset of the frame or message concerned.
    pub offset: u64,
    pub reason: String,
}

/// A decoded server-to-client stream.
#[derive(Debug, Clone, Default)]
pub struct ServerStream {
    /// The `AF xx` prefix value, if the stream starts with one.
    pub prefix: Option<u8>,
    /// False after `AF 00`: packets are raw, without frames.
    pub compressed: bool,
    pub frames: Vec<FrameInfo>,
    /// All decompressed bytes, frame after frame.
    pub data: Vec<u8>,
    pub messages: Vec<MessageSpan>,
    pub problems: Vec<DecodeProblem>,
    pub corrupt_frames: u32,
    /// Bytes at the end of the stream that do not make a whole frame (or packet).
    pub leftover_stream_bytes: u64,
    /// Decompressed bytes of corrupt frames that could not be delimited.
    pub leftover_frame_bytes: u64,
}

impl ServerStream {
    /// Frames holding more than one packet.
    pub fn multi_packet_frames(&self) -> usize {
        self.frames.iter().filter(|f| f.packets > 1).count()
    }

    /// The bytes of message `m`.
    pub fn bytes(&self, m: &MessageSpan) -> &[u8] {
        self.data.get(m.start..m.start + m.len).unwrap_or(&[])
    }
}

fn describe_id(spec: Option<&PacketSpec>, id: u8) -> String {
    match spec {
        Some(s) => format!("0x{id:02X} ({})", s.name),
        None => format!("0x{id:02X}"),
    }
}

/// Why the packet at `buf[0]` cannot be delimited, or its size.
fn packet_size(spec: Option<&PacketSpec>, buf: &[u8]) -> std::result::Result<usize, String> {
    let id = buf.first().copied().unwrap_or(0);
    let what = || describe_id(spec, id);
    let size = match spec.map(|s| s.size_of(buf)) {
        None | Some(Err(SizeError::UnknownId)) => {
            return Err(format!("packet id {} has no known size", what()));
        }
        Some(Err(SizeError::NeedMore(why))) => {
            return Err(format!("packet {} runs past the end: {why}", what()));
        }
        Some(Err(SizeError::Invalid(why))) => return Err(format!("packet {}: {why}", what())),
        Some(Ok(n)) => n,
    };
    if size > buf.len() {
        return Err(format!(
            "packet {} needs {size} bytes, only {} remain",
            what(),
            buf.len()
        ));
    }
    Ok(size)
}

/// Delimits raw packets of `data[from..]` with `lookup`; pushes spans; returns where it
/// stopped and why (None when all bytes were used).
fn split_packets<'t>(
    data: &[u8],
    from: usize,
    lookup: impl Fn(u8) -> Option<&'t PacketSpec>,
    mut push: impl FnMut(u8, usize, usize),
) -> (usize, Option<String>) {
    let mut p = from;
    while let Some(rest) = data.get(p..).filter(|r| !r.is_empty()) {
        let id = rest[0];
        match packet_size(lookup(id), rest) {
            Ok(size) => {
                push(id, p, size);
                p += size;
            }
            Err(why) => return (p, Some(why)),
        }
    }
    (p, None)
}

/// Decodes a server-to-client D2GS stream.
pub fn decode_server(stream: &[u8]) -> Result<ServerStream> {
    decode_server_with(stream, codec()?, tables()?)
}

pub fn decode_server_with(stream: &[u8], codec: &Codec, t: &Tables) -> Result<ServerStream> {
    let mut out = ServerStream {
        compressed: true,
        ..ServerStream::default()
    };
    let mut pos = 0usize;
    if let [0xAF, mode @ (0x00 | 0x01), ..] = stream {
        out.prefix = Some(*mode);
        out.compressed = *mode != 0;
        pos = 2;
    }
    if !out.compressed {
        out.data = stream.get(pos..).unwrap_or(&[]).to_vec();
        let mut messages = Vec::new();
        let (stop, why) = split_packets(
            &out.data,
            0,
            |id| t.s2c(id),
            |id, start, len| {
                messages.push(MessageSpan {
                    id,
                    start,
                    len,
                    frame: None,
                    offset: (pos + start) as u64,
                    end_offset: (pos + start + len) as u64,
                });
            },
        );
        out.messages = messages;
        if let Some(reason) = why {
            out.problems.push(DecodeProblem {
                frame: None,
                offset: (pos + stop) as u64,
                reason: format!("{reason}; uncompressed packets have no framing, decoding stopped"),
            });
            out.leftover_stream_bytes = (out.data.len() - stop) as u64;
        }
        return Ok(out);
    }
    while pos < stream.len() {
        let index = out.frames.len() as u32;
        let b0 = stream[pos];
        let (header_len, length) = if b0 < 0xF0 {
            (1usize, usize::from(b0))
        } else {
            match stream.get(pos + 1) {
                Some(&b1) => (2, usize::from(b0 & 0x0F) << 8 | usize::from(b1)),
                None => (2, usize::MAX),
            }
        };
        if length < header_len {
            out.problems.push(DecodeProblem {
                frame: Some(index),
                offset: pos as u64,
                reason: format!(
                    "frame length {length} is shorter than its {header_len}-byte header; \
                     the framing is lost, decoding stopped"
                ),
            });
            out.leftover_stream_bytes = (stream.len() - pos) as u64;
            break;
        }
        let Some(frame) = stream.get(pos..pos.saturating_add(length)) else {
            let shown = if length == usize::MAX {
                "a 2-byte header".to_string()
            } else {
                format!("{length} bytes")
            };
            out.problems.push(DecodeProblem {
                frame: Some(index),
                offset: pos as u64,
                reason: format!(
                    "the stream ends inside frame {index}: it needs {shown}, {} remain",
                    stream.len() - pos
                ),
            });
            out.leftover_stream_bytes = (stream.len() - pos) as u64;
            break;
        };
        let body = frame.get(header_len..).unwrap_or(&[]);
        let data_start = out.data.len();
        codec.decompress_into(body, &mut out.data);
        let first_message = out.messages.len();
        let (offset, end_offset) = (pos as u64, (pos + length) as u64);
        let messages = &mut out.messages;
        let (stop, why) = split_packets(
            &out.data,
            data_start,
            |id| t.s2c(id),
            |id, start, len| {
                messages.push(MessageSpan {
                    id,
                    start,
                    len,
                    frame: Some(index),
                    offset,
                    end_offset,
                });
            },
        );
        let packets = (out.messages.len() - first_message) as u32;
        let mut corrupt = false;
        if let Some(reason) = why {
            corrupt = true;
            out.corrupt_frames += 1;
            out.leftover_frame_bytes += (out.data.len() - stop) as u64;
            out.problems.push(DecodeProblem {
                frame: Some(index),
                offset,
                reason: format!(
                    "corrupt frame {index}: {reason} (at byte {} of {} decompressed)",
                    stop - data_start,
                    out.data.len() - data_start
                ),
            });
        } else if out.data.len() == data_start {
            corrupt = true;
            out.corrupt_frames += 1;
            out.problems.push(DecodeProblem {
                frame: Some(index),
                offset,
                reason: format!("corrupt frame {index}: it decompresses to nothing"),
            });
        }
        out.frames.push(FrameInfo {
            index,
            offset,
            header_len: header_len as u8,
            length: length as u32,
            decompressed_len: (out.data.len() - data_start) as u32,
            packets,
            corrupt,
        });
        pos += length;
    }
    Ok(out)
}

/// A decoded client-to-server stream (raw packets).
#[derive(Debug, Clone, Default)]
pub struct ClientStream {
    pub messages: Vec<MessageSpan>,
    pub problems: Vec<DecodeProblem>,
    pub leftover_bytes: u64,
}

/// Delimits the raw client-to-server packets of `stream` (spans index into `stream`).
pub fn decode_client(stream: &[u8]) -> Result<ClientStream> {
    let t = tables()?;
    let mut out = ClientStream::default();
    let messages = &mut out.messages;
    let (stop, why) = split_packets(
        stream,
        0,
        |id| t.c2s(id),
        |id, start, len| {
            messages.push(MessageSpan {
                id,
                start,
                len,
                frame: None,
                offset: start as u64,
                end_offset: (start + len) as u64,
            });
        },
    );
    if let Some(reason) = why {
        out.leftover_bytes = (stream.len() - stop) as u64;
        out.problems.push(DecodeProblem {
            frame: None,
            offset: stop as u64,
            reason: format!(
                "{reason}; client packets have no framing, the remaining {} bytes are not decoded",
                out.leftover_bytes
            ),
        });
    }
    Ok(out)
}

/// Appends one frame holding `payload` (compressed) to `out`.
pub fn encode_frame(codec: &Codec, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let body = codec.compress(payload);
    if body.len() < MAX_SHORT_FRAME_LEN {
        out.push((body.len() + 1) as u8);
    } else if body.len() + 2 <= MAX_FRAME_LEN {
        let total = body.len() + 2;
        out.push(0xF0 | (total >> 8) as u8);
        out.push(total as u8);
    } else {
        return Err(NetError::new(format!(
            "a frame of {} payload bytes compresses to {} bytes; at most {} fit in a frame",
            payload.len(),
            body.len(),
            MAX_FRAME_LEN - 2
        )));
    }
    out.extend_from_slice(&body);
    Ok(())
}

/// Builds a server-to-client stream: `AF 01` then one frame per payload.
pub fn encode_server<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>> {
    let codec = codec()?;
    let mut out = vec![0xAF, 0x01];
    for (i, f) in frames.into_iter().enumerate() {
        encode_frame(codec, f, &mut out).map_err(|e| e.context(format!("frame {i}")))?;
    }
    Ok(out)
}

/// Groups packets into frame payloads, each compressing to at most `max_body` bytes.
pub fn pack_packets<'a>(
    packets: impl IntoIterator<Item = &'a [u8]>,
    max_body: usize,
) -> Result<Vec<Vec<u8>>> {
    let codec = codec()?;
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut bits = 0usize;
    for p in packets {
        let p_bits: usize = p.iter().map(|&b| usize::from(codec.code_len(b))).sum();
        if p_bits.div_ceil(8) > max_body {
            return Err(NetError::new(format!(
                "a packet of {} bytes compresses to more than {max_body} bytes",
                p.len()
            )));
        }
        if (bits + p_bits).div_ceil(8) > max_body && !current.is_empty() {
            frames.push(std::mem::take(&mut current));
            bits = 0;
        }
        current.extend_from_slice(p);
        bits += p_bits;
    }
    if !current.is_empty() {
        frames.push(current);
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// The shared D2GS dump; `None` after `mcp_testkit::skipped` (a failure under
    /// REQUIRE_SHARED_FIXTURES) when the shared fixtures are absent.
    fn fixture() -> std::result::Result<Option<Vec<u8>>, std::io::Error> {
        match mcp_testkit::shared_fixtures("d2gs") {
            Some(dir) => std::fs::read(dir.join("d2gs_sc.dump")).map(Some),
            None => Ok(None),
        }
    }

    fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }

    fn u16_at(b: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
    }

    #[test]
    fn fixture_decodes_to_the_known_counts() -> TestResult {
        let Some(dump) = fixture()? else {
            return Ok(());
        };
        let s = decode_server(&dump)?;
        assert_eq!(s.prefix, Some(1));
        assert!(s.problems.is_empty(), "{:?}", s.problems.first());
        assert_eq!(s.frames.len(), 164);
        assert_eq!(s.messages.len(), 956);
        assert_eq!(s.leftover_stream_bytes, 0);
        assert_eq!(s.leftover_frame_bytes, 0);
        assert_eq!(s.corrupt_frames, 0);
        assert_eq!(s.multi_packet_frames(), 90);
        let used: usize = s.messages.iter().map(|m| m.len).sum();
        assert_eq!(used, s.data.len());
        let assign: Vec<&MessageSpan> = s.messages.iter().filter(|m| m.id == 0x59).collect();
        assert_eq!(assign.len(), 1);
        let p = s.bytes(assign[0]);
        assert_eq!(u32_at(p, 1), Some(1));
        assert_eq!(p.get(5), Some(&1));
        assert_eq!(p.get(6..11), Some(&b"cheap"[..]));
        assert_eq!(p.get(11), Some(&0));
        let act: Vec<&MessageSpan> = s.messages.iter().filter(|m| m.id == 0x03).collect();
        assert_eq!(act.len(), 1);
        let p = s.bytes(act[0]);
        assert_eq!(p.get(1), Some(&0));
        assert_eq!(u16_at(p, 6), Some(1));
        // frames with 2-byte headers exist and are handled
        assert!(s.frames.iter().any(|f| f.header_len == 2));
        Ok(())
    }

    #[test]
    fn fixture_round_trips_through_the_encoder() -> TestResult {
        let Some(dump) = fixture()? else {
            return Ok(());
        };
        let s = decode_server(&dump)?;
        // the same frames again
        let frames: Vec<&[u8]> = s
            .frames
            .iter()
            .scan(0usize, |start, f| {
                let bytes = s.data.get(*start..*start + f.decompressed_len as usize);
                *start += f.decompressed_len as usize;
                bytes
            })
            .collect();
        assert_eq!(frames.len(), 164);
        let again = encode_server(frames.iter().copied())?;
        let s2 = decode_server(&again)?;
        assert!(s2.problems.is_empty());
        assert_eq!(s2.data, s.data);
        assert_eq!(s2.messages.len(), 956);
        // the original compressor pads the same way: the bytes are identical
        assert_eq!(again, dump);
        // re-framed differently: every packet in big frames (> 0xEF bytes)
        let packets: Vec<&[u8]> = s.messages.iter().map(|m| s.bytes(m)).collect();
        let big = pack_packets(packets.iter().copied(), MAX_FRAME_LEN - 2)?;
        let stream = encode_server(big.iter().map(Vec::as_slice))?;
        let s3 = decode_server(&stream)?;
        assert!(s3.problems.is_empty(), "{:?}", s3.problems);
        assert_eq!(s3.data, s.data);
        assert_eq!(s3.messages.len(), 956);
        assert!(
            s3.frames
                .iter()
                .any(|f| f.length > 0xEF && f.header_len == 2)
        );
        assert!(s3.frames.len() < 164);
        Ok(())
    }

    #[test]
    fn corrupt_frames_are_reported_and_decoding_continues() -> TestResult {
        let Some(dump) = fixture()? else {
            return Ok(());
        };
        let s = decode_server(&dump)?;
        let mut bad = dump.clone();
        // flip bytes in the middle of every 10th frame body
        let mut flipped = 0;
        for f in s.frames.iter().filter(|f| f.index % 10 == 5) {
            let body = f.offset as usize + usize::from(f.header_len);
            let mid = body + (f.length as usize - usize::from(f.header_len)) / 2;
            if let Some(b) = bad.get_mut(mid) {
                *b ^= 0xFF;
                flipped += 1;
            }
        }
        assert!(flipped > 10);
        let d = decode_server(&bad)?;
        assert_eq!(d.frames.len(), 164, "the framing is unaffected");
        assert!(d.corrupt_frames > 0);
        assert_eq!(d.problems.len() as u32, d.corrupt_frames);
        for p in &d.problems {
            let frame = p.frame.ok_or("frame index")?;
            assert_eq!(frame % 10, 5, "{p:?}");
            assert!(p.reason.contains("corrupt frame"), "{}", p.reason);
        }
        // untouched frames decode exactly as before
        let same = |fi: u32, s: &ServerStream| -> Vec<Vec<u8>> {
            s.messages
                .iter()
                .filter(|m| m.frame == Some(fi))
                .map(|m| s.bytes(m).to_vec())
                .collect()
        };
        for fi in (0..164).filter(|i| i % 10 != 5) {
            assert_eq!(same(fi, &s), same(fi, &d));
        }
        Ok(())
    }

    #[test]
    fn damaged_framing_and_tiny_inputs_never_panic() -> TestResult {
        assert!(decode_server(&[])?.frames.is_empty());
        let s = decode_server(&[0xAF, 0x01, 0x00, 0x05])?;
        assert_eq!(s.problems.len(), 1);
        assert!(s.problems[0].reason.contains("shorter than its"));
        let s = decode_server(&[0xAF, 0x01, 0x10, 0x01])?;
        assert!(s.problems[0].reason.contains("ends inside frame 0"));
        assert_eq!(s.leftover_stream_bytes, 2);
        let s = decode_server(&[0xF3])?;
        assert!(s.problems[0].reason.contains("2-byte header"));
        // garbage
        let mut x: u32 = 99;
        for n in 0..300 {
            let g: Vec<u8> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = decode_server(&g)?;
            let _ = decode_client(&g)?;
        }
        Ok(())
    }

    #[test]
    fn uncompressed_mode_and_encoder_limits() -> TestResult {
        let s = decode_server(&[0xAF, 0x00, 0x02, 0x04, 0x19, 0x07])?;
        assert!(!s.compressed);
        assert_eq!(
            s.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            [0x02, 0x04, 0x19]
        );
        assert_eq!(s.messages[2].len, 2);
        assert!(s.problems.is_empty());
        let codec = codec()?;
        let mut out = Vec::new();
        // 3000 bytes with 11-bit codes need 4125 bytes, more than a frame holds
        let long = (0..=255u8)
            .find(|&b| codec.code_len(b) == 11)
            .ok_or("an 11-bit code")?;
        assert!(encode_frame(codec, &[long; 3000], &mut out).is_err());
        // a frame whose total length is exactly 0xEF stays short; 0xF0 needs two bytes
        let mut out = Vec::new();
        encode_frame(codec, &[1u8; 473], &mut out)?; // 473 * 4 bits = 236.5 -> 237 bytes
        assert_eq!(out[0], 0xEE);
        let mut out = Vec::new();
        encode_frame(codec, &[1u8; 476], &mut out)?; // 238 bytes: total 0xEF, still short
        assert_eq!(out[0], 0xEF);
        let mut out = Vec::new();
        encode_frame(codec, &[1u8; 478], &mut out)?; // 239 bytes: total 0xF0 needs two bytes
        assert_eq!(&out[..2], &[0xF0, 0xF1]);
        let back = decode_server(&[&[0xAF, 0x01][..], &out].concat())?;
        assert_eq!(back.data, vec![1u8; 478]);
        Ok(())
    }

    #[test]
    fn client_packets_are_delimited() -> TestResult {
        let mut c = vec![0x68];
        c.extend_from_slice(&[0; 36]);
        c.extend_from_slice(&[0x6B, 0x03, 0x10, 0, 0x20, 0, 0x6D]);
        c.extend_from_slice(&[1; 12]);
        c.extend_from_slice(&[0x15, 1, 0]);
        c.extend_from_slice(b"hi\0\0\0");
        c.extend_from_slice(&[0xFE, 1, 2]);
        let d = decode_client(&c)?;
        let ids: Vec<u8> = d.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [0x68, 0x6B, 0x03, 0x6D, 0x15]);
        assert_eq!(d.leftover_bytes, 3);
        assert!(d.problems[0].reason.contains("0xFE"));
        Ok(())
    }
}
