//! Live capture end to end: two network namespaces joined by a veth pair (addresses only
//! inside them), a small TCP server on port 4000 replaying the real D2GS stream of
//! `../shared/fixtures/d2gs` to a client, captured by `capture_start` on the veth from a
//! server running inside the first namespace. Then `d2_decode` of the capture gives the same
//! 956 packets, and tshark agrees on packets, flows and per-flow TCP payload bytes, for the
//! capture and for a pcap written by `export_pcap`.
//! Needs root, `ip` and tshark (scripts/setup.sh installs them); `skipped` otherwise (a
//! failure under REQUIRE_ROOT / REQUIRE_TSHARK / MCP_SUITE_STRICT).

mod common;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The two namespaces; deleted (with the veth pair) when dropped.
struct Netns {
    a: String,
    b: String,
    veth_a: String,
}

impl Netns {
    fn create() -> Result<Self, String> {
        let tag = std::process::id() % 100_000;
        let me = Self {
            a: format!("mcpn{tag}a"),
            b: format!("mcpn{tag}b"),
            veth_a: format!("vn{tag}a"),
        };
        let veth_b = format!("vn{tag}b");
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        ip(&["netns", "add", &me.a])?;
        ip(&["netns", "add", &me.b])?;
        ip(&[
            "link", "add", &me.veth_a, "type", "veth", "peer", "name", &veth_b,
        ])?;
        ip(&["link", "set", &me.veth_a, "netns", &me.a])?;
        ip(&["link", "set", &veth_b, "netns", &me.b])?;
        ip(&[
            "-n",
            &me.a,
            "addr",
            "add",
            "10.231.7.1/24",
            "dev",
            &me.veth_a,
        ])?;
        ip(&["-n", &me.b, "addr", "add", "10.231.7.2/24", "dev", &veth_b])?;
        for (ns, dev) in [(&me.a, &me.veth_a), (&me.b, &veth_b)] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(me)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// TCP payload bytes per (sender, receiver) endpoint pair.
type PayloadBytes = BTreeMap<(String, String), u64>;

/// tshark's view: packets, and per TCP stream and direction the payload bytes.
fn tshark_view(pcap: &str) -> Result<(usize, PayloadBytes), String> {
    let out = Command::new("tshark")
        .args([
            "-r",
            pcap,
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.len",
        ])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("tshark: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut packets = 0;
    let mut bytes = BTreeMap::new();
    for line in text.lines() {
        packets += 1;
        let f: Vec<&str> = line.split('\t').collect();
        let len = f.get(4).and_then(|l| l.parse::<u64>().ok()).unwrap_or(0);
        if f.len() == 5 && len > 0 {
            let key = (format!("{}:{}", f[0], f[1]), format!("{}:{}", f[2], f[3]));
            *bytes.entry(key).or_insert(0) += len;
        }
    }
    Ok((packets, bytes))
}

fn flow_view(flows: &Value) -> PayloadBytes {
    let mut m = BTreeMap::new();
    for f in flows["items"].as_array().into_iter().flatten() {
        let (c, s) = (
            f["client"].as_str().unwrap_or("").to_string(),
            f["server"].as_str().unwrap_or("").to_string(),
        );
        let to_s = f["payload_bytes_to_server"].as_u64().unwrap_or(0);
        let to_c = f["payload_bytes_to_client"].as_u64().unwrap_or(0);
        if to_s > 0 {
            m.insert((c.clone(), s.clone()), to_s);
        }
        if to_c > 0 {
            m.insert((s, c), to_c);
        }
    }
    m
}

#[tokio::test]
async fn capture_in_namespaces_decodes_like_the_file_and_agrees_with_tshark() -> TestResult {
    let Some(dir) = d2gs_dir() else { return Ok(()) };
    if !root_available("a capture in network namespaces")
        || !program_available("tshark", "--version", "REQUIRE_TSHARK")
        || !program_available("ip", "-V", "REQUIRE_IPROUTE2")
    {
        return Ok(());
    }
    let ns = Netns::create()?;
    let out = tmp_dir("net-live")?;
    let client = start(&[&dir, &out], &out, Some(&ns.a)).await?;
    let cap = ok(
        &client,
        "capture_start",
        json!({"interface": ns.veth_a, "bpf_filter": "tcp port 4000", "max_seconds": 60}),
    )
    .await;
    let id = cap["capture_id"].as_str().unwrap_or_default().to_string();
    assert_eq!(cap["running"], true);

    let dump = dir.join("d2gs_sc.dump");
    let server_py = "import socket,sys\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('10.231.7.1',4000))\ns.listen(1)\nprint('ready',flush=True)\nc,_=s.accept()\nc.sendall(open(sys.argv[1],'rb').read())\nc.close()\n";
    let mut server = Command::new("ip")
        .args(["netns", "exec", &ns.a, "python3", "-c", server_py])
        .arg(&dump)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().ok_or("no stdout")?),
        &mut line,
    )?;
    assert_eq!(line.trim(), "ready");
    let client_py = "import socket\ns=socket.create_connection(('10.231.7.1',4000))\nn=0\nwhile True:\n    b=s.recv(65536)\n    if not b: break\n    n+=len(b)\nprint(n)\n";
    let got = Command::new("ip")
        .args(["netns", "exec", &ns.b, "python3", "-c", client_py])
        .output()?;
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "9121");
    let _ = server.wait();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let st = ok(&client, "capture_stop", json!({"capture_id": id})).await;
    assert_eq!(st["running"], false);
    assert!(st["packets"].as_u64() >= Some(6), "{st}");
    let pcap = st["pcap_path"].as_str().unwrap_or_default().to_string();

    // The capture decodes to the same 956 packets as the file.
    let msgs = all_messages(&client, json!({"source": id, "direction": "server"})).await;
    assert_eq!(msgs.len(), 956);
    let from_file = all_messages(&client, json!({"source": dump.display().to_string()})).await;
    let ids = |v: &[Value]| {
        v.iter()
            .map(|m| m["id"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&msgs), ids(&from_file));
    assert!(msgs.iter().all(|m| m["time"].is_number()));

    // tshark agrees on packets and per-flow payload bytes.
    let summary = ok(&client, "pcap_summary", json!({"source": pcap})).await;
    let flows = ok(&client, "list_flows", json!({"source": pcap})).await;
    let (tpackets, tbytes) = tshark_view(&pcap)?;
    assert_eq!(summary["packets"].as_u64(), Some(tpackets as u64));
    assert_eq!(flows["total"], 1);
    assert_eq!(flows["items"][0]["protocol"], "d2gs");
    assert_eq!(flow_view(&flows), tbytes);
    let server_bytes = tbytes.values().copied().max().unwrap_or(0);
    assert_eq!(server_bytes, 9121);

    // export_pcap writes a pcap tshark opens, with the flow's packets.
    let ex = ok(
        &client,
        "export_pcap",
        json!({"source": pcap, "flow_id": 0}),
    )
    .await;
    let (epackets, ebytes) = tshark_view(ex["path"].as_str().unwrap_or_default())?;
    assert_eq!(epackets as u64, ex["packets"].as_u64().unwrap_or(0));
    assert_eq!(ebytes, tbytes);
    let p = ok(
        &client,
        "list_packets",
        json!({"source": pcap, "contains": "cheap", "limit": 5}),
    )
    .await;
    assert_eq!(
        p["total"], 0,
        "the player name is compressed on the wire: {p}"
    );
    let d = ok(
        &client,
        "packet_detail",
        json!({"source": pcap, "index": 0}),
    )
    .await;
    assert!(d["layers"].to_string().contains("10.231.7"), "{d}");
    client.cancel().await?;
    Ok(())
}
