//! Every file tool at its largest accepted arguments answers within the bound an answer
//! keeps: at most 48,000 bytes of JSON (mcp-common's `MAX_JSON_BYTES`), so that text and
//! structured content together stay under 100 KB on the wire. Sources: the real D2GS stream
//! of `../shared/fixtures/d2gs` (when present) and captures written here to be large: forty
//! game sessions with gaps and garbage, a stream of 1-byte segments of `"` with a hole
//! after each, a frame with thousands of 802.1Q tags. Run with `--nocapture` for the sizes.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::Path;

/// mcp-common's `output::MAX_JSON_BYTES`.
const BOUND: usize = 48_000;

/// Calls `tool`, checks the answer is a success within the bound, prints its sizes.
async fn measured(client: &Client, tool: &str, args: Value) -> Value {
    let a = call(client, tool, args.clone()).await;
    assert!(!a.is_error, "{tool} {args} failed: {}", a.text);
    let json_len = a.data.to_string().len();
    let wire = a.text.len() + json_len;
    eprintln!("{tool:16} json {json_len:6} wire ~{wire:6}  {args}");
    assert!(json_len <= BOUND, "{tool} {args}: {json_len} bytes of JSON");
    a.data
}

/// A classic pcap (Ethernet) being written.
struct Pcap(Vec<u8>);

impl Pcap {
    fn new() -> Self {
        let mut b = Vec::new();
        b.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&262_144u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        Self(b)
    }

    fn frame(&mut self, t: u32, frame: &[u8]) {
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        self.0
            .extend_from_slice(&(1_700_000_000 + t / 1000).to_le_bytes());
        self.0.extend_from_slice(&((t % 1000) * 1000).to_le_bytes());
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(frame);
    }

    /// One TCP segment from `src` to `dst` ((IPv4 octets, port)).
    fn tcp(
        &mut self,
        t: u32,
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        flags: u8,
        data: &[u8],
    ) {
        self.frame(t, &tcp_frame(&[], src, dst, seq, flags, data));
    }
}

/// Ethernet (with `vlans` 802.1Q tags) + IPv4 + TCP.
fn tcp_frame(
    vlans: &[u16],
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for v in vlans {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = u16::try_from(40 + data.len()).unwrap_or(u16::MAX);
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]);
    f.extend_from_slice(data);
    f
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;

/// Forty game sessions: each server sends `stream` (a D2GS server stream) in 1460-byte
/// segments, every fourth session missing one; each client sends 3000 bytes of noise.
fn sessions(stream: &[u8]) -> Vec<u8> {
    let mut p = Pcap::new();
    let server = ([10, 0, 1, 1], 4000);
    let mut t = 0;
    let mut noise = 0x1234_5678u32;
    for i in 0..40u16 {
        let client = ([10, 0, 0, 2], 50_000 + i);
        p.tcp(t, client, server, 1000, SYN, &[]);
        p.tcp(t + 1, server, client, 5000, SYN | ACK, &[]);
        t += 2;
        for (n, chunk) in stream.chunks(1460).enumerate() {
            if i % 4 == 0 && n == 2 {
                continue;
            }
            let seq = 5001 + u32::try_from(n * 1460).unwrap_or(0);
            p.tcp(t, server, client, seq, PSH_ACK, chunk);
            t += 1;
        }
        for n in 0..6u32 {
            let data: Vec<u8> = (0..500)
                .map(|_| {
                    noise ^= noise << 13;
                    noise ^= noise >> 17;
                    noise ^= noise << 5;
                    noise.to_le_bytes()[0]
                })
                .collect();
            p.tcp(t, client, server, 1001 + n * 500, PSH_ACK, &data);
            t += 1;
        }
    }
    p.0
}

/// One flow whose server sends `"` one byte at a time, skipping every other byte: a window
/// of these is thousands of pieces and gaps, and `"` doubles in JSON text.
fn quotes() -> Vec<u8> {
    let mut p = Pcap::new();
    let (client, server) = (([10, 0, 0, 2], 50_000), ([10, 0, 1, 1], 80));
    p.tcp(0, client, server, 1000, SYN, &[]);
    p.tcp(1, server, client, 5000, SYN | ACK, &[]);
    for n in 0..10_000u32 {
        p.tcp(2 + n, server, client, 5001 + 2 * n, PSH_ACK, b"\"");
    }
    p.0
}

/// One frame with 4000 stacked 802.1Q tags.
fn vlans() -> Vec<u8> {
    let mut p = Pcap::new();
    let tags: Vec<u16> = (0..4000).map(|i| i % 4096).collect();
    let f = tcp_frame(
        &tags,
        ([10, 0, 0, 2], 50_000),
        ([10, 0, 1, 1], 80),
        1,
        PSH_ACK,
        b"x",
    );
    p.frame(0, &f);
    p.0
}

#[tokio::test]
async fn largest_answers_stay_within_the_bound() -> TestResult {
    let Some(d2gs) = d2gs_dir() else {
        return Ok(());
    };
    let out = tmp_dir("net-sizes")?;
    let dump = d2gs.join("d2gs_sc.dump");
    let stream = std::fs::read(&dump)?;
    std::fs::write(out.join("sessions.pcap"), sessions(&stream))?;
    std::fs::write(out.join("quotes.pcap"), quotes())?;
    std::fs::write(out.join("vlans.pcap"), vlans())?;
    let client = start(&[&out, Path::new(&d2gs)], &out, None).await?;
    let dump = dump.display().to_string();

    for src in ["sessions.pcap", "quotes.pcap", "vlans.pcap", dump.as_str()] {
        measured(&client, "pcap_summary", json!({"source": src})).await;
        measured(&client, "list_flows", json!({"source": src, "limit": 1000})).await;
        measured(
            &client,
            "list_packets",
            json!({"source": src, "limit": 1000}),
        )
        .await;
    }
    let v = measured(
        &client,
        "packet_detail",
        json!({"source": "vlans.pcap", "index": 0}),
    )
    .await;
    assert_eq!(
        v["layers"][0]["fields"]["vlan_tags"], 4000,
        "{}",
        v["layers"][0]
    );
    measured(
        &client,
        "packet_detail",
        json!({"source": "sessions.pcap", "index": 3}),
    )
    .await;

    let q = measured(
        &client,
        "follow_stream",
        json!({"source": "quotes.pcap", "flow_id": 0, "limit": 8192}),
    )
    .await;
    assert_eq!(q["truncated"], true, "the window must be shortened");
    let next = q["next_offset"].as_u64().unwrap_or(0);
    assert!(next > 0 && next < 8192, "{}", q["next_offset"]);
    for (src, dir) in [
        ("sessions.pcap", "server"),
        ("sessions.pcap", "client"),
        (dump.as_str(), "server"),
    ] {
        measured(
            &client,
            "follow_stream",
            json!({"source": src, "flow_id": 0, "direction": dir, "limit": 8192}),
        )
        .await;
    }

    let d = measured(
        &client,
        "d2_decode",
        json!({"source": "sessions.pcap", "limit": 1000}),
    )
    .await;
    assert!(
        d["next_offset"].is_u64(),
        "more messages than one answer holds"
    );
    measured(
        &client,
        "d2_decode",
        json!({"source": "sessions.pcap", "flow_id": 0, "limit": 1000, "offset": 500}),
    )
    .await;
    measured(&client, "d2_decode", json!({"source": dump, "limit": 1000})).await;
    let s = measured(&client, "d2_stats", json!({"source": "sessions.pcap"})).await;
    let reports = s["directions"].as_array().map_or(0, Vec::len);
    assert!(
        reports == 80 || s["truncated"] == true,
        "all 80 reports, or truncated: {reports}"
    );
    measured(
        &client,
        "d2_stats",
        json!({"source": "sessions.pcap", "flow_id": 4}),
    )
    .await;
    measured(&client, "d2_stats", json!({"source": dump})).await;
    measured(&client, "list_interfaces", json!({})).await;
    measured(
        &client,
        "export_pcap",
        json!({"source": "sessions.pcap", "port": 4000}),
    )
    .await;
    client.cancel().await?;
    Ok(())
}
