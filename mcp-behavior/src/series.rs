//! Series for the timing rules from what the other analysers read: a capture's client
//! actions (the packets that carry data to the game server).

use mcp_network::capture_file::CaptureFile;
use mcp_network::layers;
use std::path::Path;

/// The times, in ms from the first, of the packets in a pcap/pcapng file that carry data to
/// `port` (a game client's actions, in capture order).
pub fn client_actions(path: &Path, port: u16) -> Result<Vec<f64>, String> {
    let cap = CaptureFile::read(path).map_err(|e| e.to_string())?;
    let link = cap.link_type;
    let mut out = Vec::new();
    for p in cap.iter() {
        let m = layers::parse(link, p.bytes);
        if m.has_ports && m.dst_port == port && m.payload_len > 0 {
            out.push(p.record.ts_sec as f64 * 1000.0 + f64::from(p.record.ts_usec) / 1000.0);
        }
    }
    if let Some(&first) = out.first() {
        for t in &mut out {
            *t -= first;
        }
    }
    Ok(out)
}
