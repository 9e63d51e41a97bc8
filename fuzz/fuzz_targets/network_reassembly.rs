//! TCP reassembly (mcp-network's reassembly module) over segments made from the input:
//! retransmissions, overlaps, holes, sequence wrap-around, SYN/FIN, snap-length cuts.
//! Each segment is [seq delta: 2 bytes][flags][payload length][wire extra][payload].
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_network::reassembly::{Segment, Stream};

fuzz_target!(|data: &[u8]| {
    let Some((isn, mut rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let isn = u32::from_le_bytes(*isn);
    let mut segments = Vec::new();
    while let Some((head, tail)) = rest.split_first_chunk::<5>() {
        let [d0, d1, flags, len, extra] = *head;
        let len = usize::from(len).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        // Sequence numbers near the ISN, a few backwards (retransmissions), wrapping at 2^32.
        let delta = i32::from(i16::from_le_bytes([d0, d1]));
        segments.push(Segment {
            packet_index: segments.len() as u32,
            time: segments.len() as f64 * 0.01,
            seq: isn.wrapping_add_signed(delta),
            flags,
            payload,
            wire_len: len as u32 + u32::from(extra & 0x0F),
        });
        rest = tail;
    }
    let stream = Stream::reassemble(&segments);
    let leading = stream.leading_bytes();
    assert!(leading.len() as u64 <= stream.received());
    let _ = stream.window(0, 1 << 20);
    let _ = stream.window(7, 13);
    for s in &segments {
        let _ = stream.chunk_at(u64::from(s.seq.wrapping_sub(isn)));
    }
    let _ = stream.runs_data().count();
    let datagrams =
        Stream::from_datagrams(segments.iter().map(|s| (s.packet_index, s.time, s.payload)));
    let total: usize = segments.iter().map(|s| s.payload.len()).sum();
    assert_eq!(datagrams.received(), total as u64);
});
