//! D2GS streams (mcp-network's d2gs and huffman modules): server-to-client frame headers,
//! Huffman decompression and packet splitting by the size table; raw client-to-server
//! splitting; and a raw stream file decoded as `d2_decode` decodes it (with named fields).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_network::Analysis;
use mcp_network::d2gs::{decode_client, decode_server};
use mcp_network::huffman::codec;
use mcp_network::queries::{self, D2Query};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = decode_server(data) {
        for m in &s.messages {
            assert!(
                m.start + m.len <= s.data.len(),
                "a message beyond the decoded bytes"
            );
        }
    }
    if let Ok(c) = decode_client(data) {
        for m in &c.messages {
            assert!(m.start + m.len <= data.len(), "a message beyond the stream");
        }
    }
    if let Ok(codec) = codec() {
        let plain = codec.decompress(data);
        // Compression must round-trip whatever decompression produced (the zero padding of
        // the last byte may decode as a few more bytes: frames carry their length for that).
        assert!(
            codec
                .decompress(&codec.compress(&plain))
                .starts_with(&plain)
        );
    }
    let a = Analysis::from_d2gs_stream(Path::new("fuzz.dump"), data.to_vec());
    let q = D2Query {
        include_hex: true,
        ..D2Query::default()
    };
    let _ = queries::d2_decode(&a, &q, 0, 100);
    let _ = queries::d2_stats(&a, &q);
});
