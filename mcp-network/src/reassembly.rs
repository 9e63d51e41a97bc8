//! TCP stream reassembly for one direction of a flow.
//!
//! Segments are placed by sequence number relative to the SYN (or, without one, to the
//! lowest sequence number seen), in arrival order: bytes already received are never
//! overwritten (first data wins, as in tshark's default), so retransmissions are dropped and
//! overlaps keep the earlier copy; out-of-order segments simply land where they belong.
//! Missing byte ranges stay missing: the result lists them as gaps and keeps the received
//! bytes as separate runs, so nothing downstream mistakes a hole for data. Every delivered
//! byte range remembers the packet that brought it, for message timestamps.

use crate::layers::TCP_SYN;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeMap;

/// One TCP segment of the direction being reassembled.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub packet_index: u32,
    pub time: f64,
    pub seq: u32,
    pub flags: u8,
    /// The payload bytes present in the capture.
    pub payload: &'a [u8],
    /// The payload length on the wire (more than `payload.len()` if the snap length cut it).
    pub wire_len: u32,
}

/// A contiguous range of received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Run {
    /// Stream offset of the first byte.
    pub offset: u64,
    pub len: u64,
    #[serde(skip)]
    data_start: usize,
}

/// A range of stream bytes that never arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Gap {
    pub offset: u64,
    pub len: u64,
}

/// Which packet delivered a range of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub struct Chunk {
    pub offset: u64,
    pub len: u64,
    /// Capture packet index.
    pub packet_index: u32,
    pub time: f64,
}

/// What happened to the segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ReassemblyStats {
    /// Segments given (with or without payload).
    pub segments: u64,
    /// Segments that carried payload.
    pub data_segments: u64,
    /// Segments whose bytes had all been received already (dropped).
    pub retransmitted: u64,
    /// Segments partly overlapping bytes already received (the old bytes were kept).
    pub overlapping: u64,
    /// Segments that filled a hole left by earlier ones.
    pub out_of_order: u64,
    /// Bytes before the start of the stream (before the SYN), dropped.
    pub before_start: u64,
    /// Bytes missing in all gaps.
    pub missing_bytes: u64,
}

/// The reassembled bytes of one direction.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    data: Vec<u8>,
    pub runs: Vec<Run>,
    pub gaps: Vec<Gap>,
    pub chunks: Vec<Chunk>,
    pub stats: ReassemblyStats,
    /// Sequence number of stream offset 0 (None for non-TCP streams).
    pub base_seq: Option<u32>,
    /// One past the last stream offset seen (received or known missing).
    pub end: u64,
}

/// A piece of new data: where it goes and where it comes from.
struct Piece {
    start: u64,
    len: u64,
    segment: usize,
    from: usize,
}

const WRAP: i64 = 1 << 32;

impl Stream {
    /// A stream that is simply these bytes (a raw stream file).
    pub fn from_bytes(data: Vec<u8>) -> Stream {
        let len = data.len() as u64;
        Stream {
            runs: if len > 0 {
                vec![Run {
                    offset: 0,
                    len,
                    data_start: 0,
                }]
            } else {
                Vec::new()
            },
            data,
            end: len,
            ..Stream::default()
        }
    }

    /// Datagrams one after the other (UDP "streams").
    pub fn from_datagrams<'a>(datagrams: impl IntoIterator<Item = (u32, f64, &'a [u8])>) -> Stream {
        let mut s = Stream::default();
        for (packet_index, time, bytes) in datagrams {
            s.stats.segments += 1;
            if bytes.is_empty() {
                continue;
            }
            s.stats.data_segments += 1;
            s.chunks.push(Chunk {
                offset: s.end,
                len: bytes.len() as u64,
                packet_index,
                time,
            });
            s.data.extend_from_slice(bytes);
            s.end += bytes.len() as u64;
        }
        if s.end > 0 {
            s.runs.push(Run {
                offset: 0,
                len: s.end,
                data_start: 0,
            });
        }
        s
    }

    /// Reassembles TCP segments given in capture order.
    pub fn reassemble(segments: &[Segment<'_>]) -> Stream {
        let mut s = Stream::default();
        s.stats.segments = segments.len() as u64;
        let data_seq =
            |seg: &Segment<'_>| seg.seq.wrapping_add(u32::from(seg.flags & TCP_SYN != 0));
        // the stream starts after the SYN; without one, at the lowest sequence number
        let base = match segments.iter().find(|g| g.flags & TCP_SYN != 0) {
            Some(syn) => Some(data_seq(syn)),
            None => {
                let mut with_data = segments.iter().filter(|g| g.wire_len > 0);
                with_data.next().map(|first| {
                    let first_seq = data_seq(first);
                    let lowest = std::iter::once(first)
                        .chain(with_data)
                        .map(|g| data_seq(g).wrapping_sub(first_seq) as i32)
                        .min()
                        .unwrap_or(0);
                    first_seq.wrapping_add(lowest as u32)
                })
            }
        };
        let Some(base) = base else {
            return s;
        };
        s.base_seq = Some(base);
        let mut covered: BTreeMap<u64, u64> = BTreeMap::new();
        let mut pieces: Vec<Piece> = Vec::new();
        let mut hint: i64 = 0;
        let mut max_end: u64 = 0;
        for (k, seg) in segments.iter().enumerate() {
            if seg.wire_len == 0 {
                continue;
            }
            s.stats.data_segments += 1;
            let rel32 = i64::from(data_seq(seg).wrapping_sub(base));
            // unwrap the 32-bit sequence space around where the stream is now
            let mut rel = (hint & !(WRAP - 1)) | rel32;
            if rel - hint > WRAP / 2 {
                rel -= WRAP;
            } else if hint - rel > WRAP / 2 {
                rel += WRAP;
            }
            let captured = seg.payload.len().min(seg.wire_len as usize) as i64;
            let wire_end = rel + i64::from(seg.wire_len);
            if wire_end <= 0 {
                s.stats.before_start += u64::from(seg.wire_len);
                s.stats.retransmitted += 1;
                continue;
            }
            let skip = (-rel).max(0);
            if skip > 0 {
                s.stats.before_start += skip as u64;
            }
            hint = hint.max(wire_end);
            s.end = s.end.max(wire_end as u64);
            let start = (rel + skip) as u64;
            let end = (rel + captured).max(rel + skip) as u64;
            let from = skip as usize;
            let new = uncovered(&covered, start, end);
            let new_len: u64 = new.iter().map(|(a, b)| b - a).sum();
            if end > start {
                if new_len == 0 {
                    s.stats.retransmitted += 1;
                } else if new_len < end - start {
                    s.stats.overlapping += 1;
                }
                if new.first().is_some_and(|(a, _)| *a < max_end) {
                    s.stats.out_of_order += 1;
                }
                max_end = max_end.max(end);
                cover(&mut covered, start, end);
            }
            for (a, b) in new {
                pieces.push(Piece {
                    start: a,
                    len: b - a,
                    segment: k,
                    from: from + (a - start) as usize,
                });
            }
        }
        pieces.sort_unstable_by_key(|p| p.start);
        let total: u64 = pieces.iter().map(|p| p.len).sum();
        s.data.reserve(usize::try_from(total).unwrap_or(0));
        for p in &pieces {
            let Some(seg) = segments.get(p.segment) else {
                continue;
            };
            let Some(bytes) = seg.payload.get(p.from..p.from + p.len as usize) else {
                continue;
            };
            let data_start = s.data.len();
            s.data.extend_from_slice(bytes);
            match s.runs.last_mut() {
                Some(run) if run.offset + run.len == p.start => run.len += p.len,
                _ => s.runs.push(Run {
                    offset: p.start,
                    len: p.len,
                    data_start,
                }),
            }
            s.chunks.push(Chunk {
                offset: p.start,
                len: p.len,
                packet_index: seg.packet_index,
                time: seg.time,
            });
        }
        let mut pos = 0;
        for run in &s.runs {
            if run.offset > pos {
                s.gaps.push(Gap {
                    offset: pos,
                    len: run.offset - pos,
                });
            }
            pos = run.offset + run.len;
        }
        if s.end > pos {
            s.gaps.push(Gap {
                offset: pos,
                len: s.end - pos,
            });
        }
        s.stats.missing_bytes = s.gaps.iter().map(|g| g.len).sum();
        s
    }

    /// Bytes actually received.
    pub fn received(&self) -> u64 {
        self.data.len() as u64
    }

    /// The received runs as (stream offset, bytes).
    pub fn runs_data(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.runs.iter().map(|r| {
            let bytes = self
                .data
                .get(r.data_start..r.data_start + r.len as usize)
                .unwrap_or(&[]);
            (r.offset, bytes)
        })
    }

    /// The bytes from offset 0 up to the first gap.
    pub fn leading_bytes(&self) -> &[u8] {
        match self.runs_data().next() {
            Some((0, bytes)) => bytes,
            _ => &[],
        }
    }

    /// The chunk (packet) that delivered stream offset `offset`.
    pub fn chunk_at(&self, offset: u64) -> Option<&Chunk> {
        let i = self.chunks.partition_point(|c| c.offset + c.len <= offset);
        self.chunks.get(i).filter(|c| c.offset <= offset)
    }

    /// The received bytes within `[offset, offset + limit)`, as (stream offset, bytes) pieces.
    pub fn window(&self, offset: u64, limit: u64) -> Vec<(u64, &[u8])> {
        let end = offset.saturating_add(limit);
        self.runs_data()
            .filter_map(|(o, bytes)| {
                let run_end = o + bytes.len() as u64;
                let a = offset.max(o);
                let b = end.min(run_end);
                (a < b).then(|| {
                    let slice = bytes.get((a - o) as usize..(b - o) as usize).unwrap_or(&[]);
                    (a, slice)
                })
            })
            .collect()
    }
}

/// The parts of `[start, end)` not in `covered` (merged, non-overlapping intervals).
fn uncovered(covered: &BTreeMap<u64, u64>, start: u64, end: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    if end <= start {
        return out;
    }
    let mut cursor = start;
    if let Some((_, &pe)) = covered.range(..=start).next_back() {
        cursor = cursor.max(pe);
    }
    for (&is, &ie) in covered.range(start + 1..end) {
        if is > cursor {
            out.push((cursor, is));
        }
        cursor = cursor.max(ie);
    }
    if cursor < end {
        out.push((cursor, end));
    }
    out
}

/// Adds `[start, end)` to `covered`, merging touching intervals.
fn cover(covered: &mut BTreeMap<u64, u64>, start: u64, end: u64) {
    let mut lo = start;
    let mut hi = end;
    if let Some((&ps, &pe)) = covered.range(..=start).next_back()
        && pe >= start
    {
        lo = ps;
        hi = hi.max(pe);
    }
    let inside: Vec<(u64, u64)> = covered.range(lo..=hi).map(|(&a, &b)| (a, b)).collect();
    for (a, b) in inside {
        hi = hi.max(b);
        covered.remove(&a);
    }
    covered.insert(lo, hi);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{TCP_ACK, TCP_FIN};

    fn seg(i: u32, seq: u32, payload: &[u8]) -> Segment<'_> {
        Segment {
            packet_index: i,
            time: f64::from(i),
            seq,
            flags: TCP_ACK,
            payload,
            wire_len: payload.len() as u32,
        }
    }

    fn syn(i: u32, seq: u32) -> Segment<'static> {
        Segment {
            packet_index: i,
            time: f64::from(i),
            seq,
            flags: TCP_SYN,
            payload: b"",
            wire_len: 0,
        }
    }

    #[test]
    fn in_order_stream() {
        let segs = [syn(0, 999), seg(1, 1000, b"hello "), seg(2, 1006, b"world")];
        let s = Stream::reassemble(&segs);
        assert_eq!(s.leading_bytes(), b"hello world");
        assert!(s.gaps.is_empty());
        assert_eq!(s.base_seq, Some(1000));
        assert_eq!(s.chunk_at(7).map(|c| c.packet_index), Some(2));
        assert_eq!(s.chunk_at(0).map(|c| c.packet_index), Some(1));
        assert_eq!(s.chunk_at(11), None);
    }

    #[test]
    fn out_of_order_retransmitted_and_overlapping() {
        let segs = [
            syn(0, 0),
            seg(1, 1, b"AAAA"),     // 0..4
            seg(2, 9, b"CCCC"),     // 8..12, leaves a hole
            seg(3, 5, b"BBBB"),     // 4..8 fills it (out of order)
            seg(4, 1, b"AAAA"),     // retransmission
            seg(5, 11, b"xxDDDD"),  // overlaps 10..12: first data wins
            seg(6, 3, b"zzzzzzzz"), // overlaps everything: dropped as retransmission
        ];
        let s = Stream::reassemble(&segs);
        assert_eq!(s.leading_bytes(), b"AAAABBBBCCCCDDDD");
        assert!(s.gaps.is_empty());
        assert_eq!(s.stats.retransmitted, 2);
        assert_eq!(s.stats.overlapping, 1);
        assert_eq!(s.stats.out_of_order, 1);
        assert_eq!(s.chunk_at(5).map(|c| c.packet_index), Some(3));
        assert_eq!(s.chunk_at(13).map(|c| c.packet_index), Some(5));
    }

    #[test]
    fn gaps_are_reported_not_filled() {
        let segs = [syn(0, 100), seg(1, 101, b"abc"), seg(2, 110, b"xyz")];
        let s = Stream::reassemble(&segs);
        assert_eq!(s.gaps, vec![Gap { offset: 3, len: 6 }]);
        assert_eq!(s.stats.missing_bytes, 6);
        assert_eq!(s.end, 12);
        assert_eq!(s.received(), 6);
        let runs: Vec<(u64, &[u8])> = s.runs_data().collect();
        assert_eq!(runs, vec![(0, &b"abc"[..]), (9, &b"xyz"[..])]);
        assert_eq!(s.window(2, 9), vec![(2, &b"c"[..]), (9, &b"xy"[..])]);
    }

    #[test]
    fn snaplen_cut_leaves_a_gap_and_no_syn_uses_lowest_seq() {
        let mut cut = seg(1, 50, b"ab");
        cut.wire_len = 5;
        let segs = [seg(0, 55, b"late"), cut];
        let s = Stream::reassemble(&segs);
        assert_eq!(s.base_seq, Some(50));
        assert_eq!(s.gaps, vec![Gap { offset: 2, len: 3 }]);
        assert_eq!(s.end, 9);
    }

    #[test]
    fn sequence_wraparound_and_data_before_start() {
        let segs = [
            syn(0, u32::MAX - 2),
            seg(1, u32::MAX - 1, b"ab"),
            seg(2, 0, b"cd"),
            seg(3, 2, b"ef"),
            seg(4, u32::MAX - 4, b"old"), // one byte at the start... before the stream: dropped
        ];
        let s = Stream::reassemble(&segs);
        assert_eq!(s.leading_bytes(), b"abcdef");
        assert!(s.stats.before_start > 0);
        let fin = Segment {
            flags: TCP_FIN | TCP_ACK,
            ..seg(5, 4, b"")
        };
        let s = Stream::reassemble(&[syn(0, u32::MAX - 2), seg(1, u32::MAX - 1, b"ab"), fin]);
        assert_eq!(s.leading_bytes(), b"ab");
    }

    #[test]
    fn interval_helpers() {
        let mut c = BTreeMap::new();
        cover(&mut c, 10, 20);
        cover(&mut c, 30, 40);
        assert_eq!(uncovered(&c, 0, 50), vec![(0, 10), (20, 30), (40, 50)]);
        assert_eq!(uncovered(&c, 12, 18), vec![]);
        cover(&mut c, 20, 30);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&10), Some(&40));
    }

    #[test]
    fn datagrams_and_raw_bytes() {
        let s = Stream::from_datagrams([(0, 1.0, &b"ab"[..]), (3, 2.0, &b"cde"[..])]);
        assert_eq!(s.leading_bytes(), b"abcde");
        assert_eq!(s.chunk_at(2).map(|c| c.packet_index), Some(3));
        let r = Stream::from_bytes(vec![1, 2, 3]);
        assert_eq!(r.leading_bytes(), &[1, 2, 3]);
        assert_eq!(r.chunk_at(0), None);
    }
}
