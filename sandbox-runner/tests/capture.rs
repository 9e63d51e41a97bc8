//! The `isolated` network's promise: the sandboxed program reaches only the host end of its
//! veth pair, and mcp-network captures that traffic on the host-side interface the sandbox
//! reports. mcp-network runs as the real server over MCP. Needs root and cgroups, and the
//! workspace built (scripts/test.sh builds it); skips without root.

mod common;
use common::{accept_within, usable};
use mcp_testkit::{TestResult, ok, start_bin};
use serde_json::json;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

#[tokio::test]
async fn mcp_network_captures_the_sandbox_on_its_host_interface() -> TestResult {
    if !usable() {
        return Ok(());
    }
    let network = Path::new(env!("CARGO_BIN_EXE_sandbox-runner")).with_file_name("mcp-network");
    if !network.exists() {
        return Err(format!(
            "{} is missing: build the workspace first (scripts/test.sh does)",
            network.display()
        )
        .into());
    }
    let out = mcp_testkit::TestDir::new(Path::new(env!("CARGO_TARGET_TMPDIR")), "sbx-capture")?;
    let out_s = out.display().to_string();
    // mcp-network first, so that the probe's 20 s of retries are all left for the capture.
    let client = start_bin(
        &network.display().to_string(),
        &["--root".into(), out_s.clone(), "--output-dir".into(), out_s],
    )
    .await?;
    let port = 5000 + (std::process::id() % 1000) as u16;
    let sandbox = common::launch_peer_probe(port, Duration::from_secs(60))?;
    let iface = sandbox
        .status()
        .interface
        .ok_or("isolated mode without an interface")?;

    let cap = ok(
        &client,
        "capture_start",
        json!({"interface": iface.interface, "bpf_filter": format!("tcp port {port}"), "max_seconds": 60}),
    )
    .await;
    let id = cap["capture_id"]
        .as_str()
        .ok_or("no capture id")?
        .to_string();

    // The host end answers the probe (which retries for 20 s) and sends it a greeting.
    let listener = std::net::TcpListener::bind((iface.host_address.as_str(), port))?;
    let (mut conn, from) = accept_within(&listener, Duration::from_secs(30))?;
    assert_eq!(from.ip().to_string(), iface.sandbox_address);
    conn.write_all(b"hello from the host\n")?;
    drop(conn);
    let (_, stdout) = sandbox.take_stdio();
    let mut text = String::new();
    stdout.ok_or("no stdout")?.read_to_string(&mut text)?;
    assert!(text.contains("RESULT peer 0 OK"), "{text}");
    assert!(text.contains("GREETING hello from the host"), "{text}");
    let report = sandbox
        .wait(Some(Duration::from_secs(20)))
        .ok_or("no report")?;
    assert_eq!(report.exit_code, Some(0));

    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = ok(&client, "capture_stop", json!({"capture_id": id})).await;
    assert!(
        st["packets"].as_u64().unwrap_or(0) >= 4,
        "handshake, data, close: {st}"
    );
    // Attempts refused before the listener was bound are flows of their own (SYN, RST, no
    // payload); the one that connected carries the greeting.
    let flows = ok(&client, "list_flows", json!({"source": id})).await;
    let items = flows["items"].as_array().ok_or("no flow items")?;
    assert!(!items.is_empty(), "{flows}");
    for flow in items {
        let client_end = flow["client"].as_str().unwrap_or("");
        assert!(
            client_end.starts_with(&format!("{}:", iface.sandbox_address)),
            "{flow}"
        );
        assert_eq!(
            flow["server"],
            format!("{}:{port}", iface.host_address),
            "{flow}"
        );
    }
    let greeted: Vec<_> = items
        .iter()
        .filter(|f| f["payload_bytes_to_client"].as_u64() > Some(0))
        .collect();
    assert_eq!(greeted.len(), 1, "{flows}");
    assert_eq!(greeted[0]["payload_bytes_to_client"], 20, "{flows}");
    assert_eq!(
        greeted[0]["client_known"], true,
        "the SYN from the sandbox was seen"
    );
    client.cancel().await?;
    Ok(())
}
