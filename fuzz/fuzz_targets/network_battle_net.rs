//! Realm (MCP) and BNCS framing (mcp-network's battle_net module), from either side: the
//! first byte chooses framing and direction, the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_network::battle_net::{Framing, split};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let framing = if mode & 1 == 0 {
        Framing::Realm
    } else {
        Framing::Bncs
    };
    let from_client = mode & 2 != 0;
    let s = split(stream, framing, from_client);
    let mut delimited = 0u64;
    for m in &s.messages {
        assert!(
            m.start + m.len <= stream.len(),
            "a message beyond the stream"
        );
        delimited += m.len as u64;
    }
    assert!(delimited + s.leftover_bytes <= stream.len() as u64);
});
