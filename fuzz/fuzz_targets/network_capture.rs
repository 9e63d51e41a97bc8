//! pcap / pcapng / raw D2GS stream files as `capture_open` reads them (libpcap's offline
//! reader, from a file: the input is written to a temporary file first), then what the tools
//! ask of the result: the summary, flows, packet details, filtered packet lists, each flow's
//! reassembled streams, and the Diablo II decode (D2GS, realm, BNCS) with statistics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_network::Analysis;
use mcp_network::flows::{AppProtocol, Direction};
use mcp_network::queries::{self, D2Query, FlowFilter, PacketFilter};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Flows and packets looked at one by one: the first few are enough to reach every path.
const FIRST: usize = 8;

/// One file per fuzzing process, rewritten for each input.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("mcp-fuzz-capture-{}.bin", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    if std::fs::write(path, data).is_err() {
        return;
    }
    let Ok(a) = Analysis::open(path) else {
        return;
    };
    let _ = queries::summary(&a, 10);
    let _ = queries::list_flows(&a, &FlowFilter::default(), 0, 100);
    for index in 0..a.packet_count().min(FIRST) {
        let _ = queries::packet_detail(&a, index, 256);
    }
    let filter = PacketFilter {
        contains: Some("hex:AF01".into()),
        with_payload: Some(true),
        ..PacketFilter::default()
    };
    let _ = queries::list_packets(&a, &filter, 0, 50);
    for flow_id in 0..a.flow_count().min(FIRST) as u32 {
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let _ = queries::follow_stream(&a, flow_id, dir, 0, 4096);
            let _ = queries::follow_stream(&a, flow_id, dir, 100, 1);
        }
        // Every flow decoded as each Diablo II protocol (what `protocol` makes a tool do).
        for protocol in [AppProtocol::D2gs, AppProtocol::Realm, AppProtocol::Bncs] {
            let q = D2Query {
                flow_id: Some(flow_id),
                protocol: Some(protocol),
                include_hex: true,
                ..D2Query::default()
            };
            let _ = queries::d2_decode(&a, &q, 0, 100);
        }
    }
    let _ = queries::d2_decode(&a, &D2Query::default(), 0, 100);
    let _ = queries::d2_stats(&a, &D2Query::default());
});
