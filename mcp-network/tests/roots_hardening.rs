//! The default output directory (`$TMPDIR/mcp-network`) is a root the server keeps private:
//! created 0700, a pre-existing symlink there refused at start-up, and a symlink inside it
//! that leads out of the roots refused like any other path. Driven over MCP with `TMPDIR`
//! pointed at a test directory, so the real `/tmp` is never touched.

mod common;
use common::*;
use mcp_network::capture_file::{LinkType, create_pcap};
use rmcp::transport::ConfigureCommandExt;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

/// A valid one-packet pcap at `path`.
fn write_pcap(path: &Path) -> TestResult {
    let mut w = create_pcap(path, LinkType::ETHERNET)?;
    w.write_packet(1, 0, 60, &[0u8; 60])?;
    w.finish()?;
    Ok(())
}

/// `mcp-network` with `--root root` and no `--output-dir`, its temporary directory `tmp`.
async fn start_default(tmp: &Path, root: &Path) -> Result<Client, Error> {
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-network")).configure(|c| {
        c.arg("--root").arg(root).env("TMPDIR", tmp);
        c.stderr(Stdio::null());
    });
    serve(cmd).await
}

#[tokio::test]
async fn symlink_in_default_output_dir_to_outside_pcap_is_refused() -> TestResult {
    let base = tmp_dir("net-roots-link")?;
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&outside)?;
    let secret = outside.join("secret.pcap");
    write_pcap(&secret)?;

    let client = start_default(&base, &root).await?;
    let out = base.join("mcp-network");
    let mode = std::fs::symlink_metadata(&out)?.permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "output directory mode {mode:o}");

    // A pcap really in the output directory is a source.
    let own = out.join("own.pcap");
    write_pcap(&own)?;
    let s = ok(
        &client,
        "pcap_summary",
        json!({"source": own.display().to_string()}),
    )
    .await;
    assert_eq!(s["packets"], 1, "{s}");

    // A symlink there to a pcap outside the roots is not.
    let evil = out.join("evil.pcap");
    std::os::unix::fs::symlink(&secret, &evil)?;
    let e = err(
        &client,
        "pcap_summary",
        json!({"source": evil.display().to_string()}),
    )
    .await;
    assert!(e.contains("source"), "{e}");
    assert!(e.contains("evil.pcap"), "{e}");
    assert!(e.contains("outside the allowed roots"), "{e}");
    let e = err(
        &client,
        "list_packets",
        json!({"source": evil.display().to_string()}),
    )
    .await;
    assert!(e.contains("evil.pcap"), "{e}");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn planted_symlink_as_default_output_dir_stops_the_server() -> TestResult {
    let base = tmp_dir("net-roots-planted")?;
    let root = base.join("root");
    let elsewhere = base.join("elsewhere");
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&elsewhere)?;
    write_pcap(&elsewhere.join("secret.pcap"))?;
    std::os::unix::fs::symlink(&elsewhere, base.join("mcp-network"))?;

    // Over MCP: the server never comes up, so no initialize answer.
    assert!(start_default(&base, &root).await.is_err());
    // And it says why on stderr.
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-network"))
        .arg("--root")
        .arg(&root)
        .env("TMPDIR", base.path())
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is a symlink"), "{stderr}");
    assert!(stderr.contains("mcp-network"), "{stderr}");
    Ok(())
}
