//! Benchmark of mcp-network's targets, side by side in one run:
//! - flows + summary of a 1M-packet pcap (5000 TCP flows, written here) against
//!   `tshark -r FILE -q -z conv,tcp` on the same file (target: at least 20x faster),
//! - `d2_decode` of a long D2GS stream (the fixture's frames repeated to 64 MiB) in MB/s of
//!   compressed input (target: at least 50 MB/s).
//!
//! - every page of `d2_decode` (limit 1000) over an 8 MiB D2GS stream file against all of its
//!   messages in one call (target: at most 1.5x).
//!
//! Run: `cargo bench -p mcp-network --bench network_bench`.

use mcp_network::Analysis;
use mcp_network::capture_file::{LinkType, create_pcap};
use mcp_network::queries;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// An Ethernet + IPv4 + TCP frame (checksums left zero: nothing here verifies them).
fn frame(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + payload.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (20 + 20 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src.0.octets());
    f.extend_from_slice(&dst.0.octets());
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fn main() -> Res<()> {
    let path = std::env::temp_dir().join(format!("mcp-network-bench-{}.pcap", std::process::id()));
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
            frame(c, s, seq, 0x18, &payload)
        } else {
            frame(s, c, seq, 0x10, &payload[..10])
        };
        w.write_packet(
            1_700_000_000 + i64::from(i / 1000),
            (i % 1000) * 1000,
            f.len() as u32,
            &f,
        )?;
    }
    w.finish()?;

    let mut ours = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let a = Analysis::open(&path)?;
        let sum = queries::summary(&a, 10);
        let flows = queries::list_flows(&a, &Default::default(), 0, 100)?;
        ours.push(t.elapsed());
        assert_eq!(
            (sum.packets, sum.flows, flows.total),
            (n as usize, 5000, 5000)
        );
    }
    let ours = ours.into_iter().min().unwrap_or_default();
    println!(
        "flows + summary of 1M packets: ours {:.0} ms",
        ours.as_secs_f64() * 1e3
    );
    if Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok()
    {
        let t = Instant::now();
        let out = Command::new("tshark")
            .args(["-r", &path.display().to_string(), "-q", "-z", "conv,tcp"])
            .stderr(Stdio::null())
            .output()?;
        let tshark = t.elapsed();
        let conversations = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("<->"))
            .count();
        println!(
            "tshark -q -z conv,tcp: {:.0} ms ({conversations} conversations) -> ours is {:.1}x faster",
            tshark.as_secs_f64() * 1e3,
            tshark.as_secs_f64() / ours.as_secs_f64()
        );
    } else {
        println!("tshark not installed: comparison skipped");
    }
    let _ = std::fs::remove_file(&path);

    let dump = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/d2gs/d2gs_sc.dump");
    match std::fs::read(&dump) {
        Ok(dump) => {
            let body = &dump[2..];
            let mut big = vec![0xAF, 0x01];
            while big.len() < 64 << 20 {
                big.extend_from_slice(body);
            }
            let mut best = f64::MAX;
            let mut packets = 0;
            for _ in 0..3 {
                let t = Instant::now();
                let s = mcp_network::d2gs::decode_server(&big)?;
                best = best.min(t.elapsed().as_secs_f64());
                packets = s.messages.len();
            }
            println!(
                "d2 decode: {} MiB compressed -> {packets} packets in {:.0} ms = {:.0} MB/s",
                big.len() >> 20,
                best * 1e3,
                big.len() as f64 / best / 1e6
            );
            pages_against_one_call(&big[..8 << 20])?;
        }
        Err(_) => println!("../shared/fixtures/d2gs absent: d2 decode not measured"),
    }
    Ok(())
}

/// Walks every `d2_decode` page of a raw D2GS stream file and, on a fresh copy of the same
/// source, takes all its messages in one call: what paging costs over the whole list.
fn pages_against_one_call(stream: &[u8]) -> Res<()> {
    let path = std::env::temp_dir().join(format!("network-bench-{}.d2gs", std::process::id()));
    std::fs::write(&path, stream)?;
    let q = queries::D2Query::default();
    let one = Analysis::open(&path)?;
    let t = Instant::now();
    let all = queries::d2_decode(&one, &q, 0, usize::MAX)?;
    let whole = t.elapsed().as_secs_f64();
    let paged = Analysis::open(&path)?;
    let t = Instant::now();
    let (mut offset, mut pages, mut seen) = (0, 0, 0);
    loop {
        let page = queries::d2_decode(&paged, &q, offset, 1000)?;
        pages += 1;
        seen += page.messages.len();
        offset += page.messages.len();
        if page.messages.is_empty() || offset >= page.total {
            break;
        }
    }
    let walk = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        seen,
        all.messages.len(),
        "the pages and the one call differ"
    );
    println!(
        "d2_decode pages: {seen} messages in {pages} pages {:.0} ms, in one call {:.0} ms; ratio {:.2}x",
        walk * 1e3,
        whole * 1e3,
        walk / whole
    );
    Ok(())
}
