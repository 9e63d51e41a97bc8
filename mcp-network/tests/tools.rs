//! Every file-based tool over MCP on the real D2GS stream of `../shared/fixtures/d2gs`
//! (`skipped` when absent: a failure under REQUIRE_SHARED_FIXTURES), pcaps the tests write,
//! and bad input.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn raw_d2gs_stream_decodes_to_the_readme_counts() -> TestResult {
    let Some(dir) = d2gs_dir() else { return Ok(()) };
    let out = tmp_dir("net-out")?;
    let client = start(&[&dir], &out, None).await?;
    let src = dir.join("d2gs_sc.dump").display().to_string();
    let msgs = all_messages(&client, json!({"source": src})).await;
    assert_eq!(msgs.len(), 956);
    let one = |id: &str| {
        msgs.iter()
            .filter(|m| m["id"] == id)
            .cloned()
            .collect::<Vec<_>>()
    };
    let assign = one("0x59");
    assert_eq!(assign.len(), 1);
    assert_eq!(assign[0]["fields"]["unit_id"], 1);
    assert_eq!(assign[0]["fields"]["class"], 1);
    assert_eq!(assign[0]["fields"]["name"], "cheap");
    let act = one("0x03");
    assert_eq!(act.len(), 1);
    assert_eq!(act[0]["fields"]["act"], 0);
    assert_eq!(act[0]["fields"]["area"], 1);
    let d = ok(
        &client,
        "d2_decode",
        json!({"source": src, "ids": ["0x59", 3], "limit": 10}),
    )
    .await;
    assert_eq!(d["total"], 2);
    let frames: Vec<u64> = msgs.iter().filter_map(|m| m["frame"].as_u64()).collect();
    let mut per_frame = std::collections::BTreeMap::new();
    for f in frames {
        *per_frame.entry(f).or_insert(0) += 1;
    }
    assert_eq!(per_frame.len(), 164);
    assert_eq!(per_frame.values().filter(|&&n| n > 1).count(), 90);
    let server = d["directions"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["direction"] == "server_to_client"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(server["frames"], 164, "{server}");
    assert_eq!(server["multi_packet_frames"], 90);
    assert_eq!(server["messages"], 956);
    assert_eq!(server["leftover_bytes"], 0);
    assert_eq!(server["corrupt_frames"], 0);

    let stats = ok(&client, "d2_stats", json!({"source": src})).await;
    assert!(stats.to_string().contains("0x59"), "{stats}");
    let sum = ok(&client, "pcap_summary", json!({"source": src})).await;
    assert_eq!(sum["stream_bytes"], 9121);
    let flows = ok(&client, "list_flows", json!({"source": src})).await;
    assert_eq!(flows["items"][0]["protocol"], "d2gs");
    let s = ok(
        &client,
        "follow_stream",
        json!({"source": src, "flow_id": 0, "limit": 2}),
    )
    .await;
    assert!(
        s["pieces"][0]["hex"]
            .as_str()
            .is_some_and(|h| h.replace(' ', "").eq_ignore_ascii_case("AF01")),
        "{s}"
    );

    // A corrupted frame is reported at its index and decoding goes on.
    let mut bytes = std::fs::read(dir.join("d2gs_sc.dump"))?;
    for b in bytes.iter_mut().skip(40).take(6) {
        *b ^= 0x5A;
    }
    let bad = out.join("corrupt.dump");
    std::fs::write(&bad, &bytes)?;
    let d = ok(
        &client,
        "d2_decode",
        json!({"source": bad.display().to_string(), "limit": 1}),
    )
    .await;
    let total = d["total"].as_u64().unwrap_or(0);
    assert!(total > 900 && total != 956, "{total}");
    let corrupt = d["directions"]
        .as_array()
        .and_then(|r| r.iter().find_map(|x| x["corrupt_frames"].as_u64()))
        .unwrap_or(0);
    assert!(corrupt >= 1, "{}", d["directions"]);
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn bad_sources_and_arguments_are_clear_errors() -> TestResult {
    let out = tmp_dir("net-bad")?;
    let client = start(&[&out], &out, None).await?;
    // A pcap with one good record, then a record that claims more bytes than the file has.
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xA1B2C3D4u32.to_le_bytes());
    pcap.extend_from_slice(&2u16.to_le_bytes());
    pcap.extend_from_slice(&4u16.to_le_bytes());
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&65535u32.to_le_bytes());
    pcap.extend_from_slice(&1u32.to_le_bytes());
    let frame = [0u8; 60];
    for (caplen, body) in [(60u32, &frame[..]), (60, &frame[..20])] {
        pcap.extend_from_slice(&1u32.to_le_bytes());
        pcap.extend_from_slice(&0u32.to_le_bytes());
        pcap.extend_from_slice(&caplen.to_le_bytes());
        pcap.extend_from_slice(&caplen.to_le_bytes());
        pcap.extend_from_slice(body);
    }
    std::fs::write(out.join("truncated.pcap"), &pcap)?;
    let s = ok(&client, "pcap_summary", json!({"source": "truncated.pcap"})).await;
    assert_eq!(s["packets"], 1);
    assert!(s["read_problem"].is_object(), "{s}");
    std::fs::write(
        out.join("garbage.pcap"),
        b"this is not a capture file at all, sorry",
    )?;
    let e = err(&client, "pcap_summary", json!({"source": "garbage.pcap"})).await;
    assert!(e.contains("`source`"), "{e}");
    let e = err(&client, "pcap_summary", json!({"source": "/etc/passwd"})).await;
    assert!(e.contains("outside the allowed roots"), "{e}");
    let e = err(&client, "pcap_summary", json!({"source": "cap-77"})).await;
    assert!(e.contains("cap-77"), "{e}");
    let e = err(
        &client,
        "packet_detail",
        json!({"source": "truncated.pcap", "index": 5}),
    )
    .await;
    assert!(e.contains("5"), "{e}");
    let e = err(
        &client,
        "capture_start",
        json!({"interface": "no-such-if0"}),
    )
    .await;
    assert!(e.contains("no-such-if0"), "{e}");
    // A name that is no interface never reaches a file name (a megabyte would be one).
    let e = err(
        &client,
        "capture_start",
        json!({"interface": "A".repeat(1 << 20)}),
    )
    .await;
    assert!(
        e.contains("`interface`") && e.contains("no such interface") && e.len() < 4096,
        "{e}"
    );
    let e = err(
        &client,
        "capture_start",
        json!({"interface": "lo", "bpf_filter": "tcp port banana"}),
    )
    .await;
    assert!(e.contains("`bpf_filter`") && e.contains("banana"), "{e}");
    let e = err(
        &client,
        "capture_start",
        json!({"interface": "lo", "snaplen": 1}),
    )
    .await;
    assert!(e.contains("`snaplen`"), "{e}");
    let e = err(&client, "capture_status", json!({"capture_id": "cap-9"})).await;
    assert!(e.contains("`capture_id`"), "{e}");
    let e = err(
        &client,
        "list_packets",
        json!({"source": "truncated.pcap", "contains": "hex:ZZ"}),
    )
    .await;
    assert!(e.contains("`contains`"), "{e}");
    let e = err(
        &client,
        "list_packets",
        json!({"source": "truncated.pcap", "host": "not-an-ip"}),
    )
    .await;
    assert!(e.contains("`host`"), "{e}");
    let e = err(
        &client,
        "d2_decode",
        json!({"source": "truncated.pcap", "ids": ["0xZZ"]}),
    )
    .await;
    assert!(e.contains("`ids`"), "{e}");
    for ids in [json!([]), json!(vec![0; 257])] {
        let e = err(
            &client,
            "d2_decode",
            json!({"source": "truncated.pcap", "ids": ids}),
        )
        .await;
        assert!(e.contains("`ids`") && e.contains("256"), "{e}");
    }
    // Still serving.
    let i = ok(&client, "list_interfaces", json!({})).await;
    assert!(
        i["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["loopback"] == true))
    );
    client.cancel().await?;
    Ok(())
}

/// Every tool is listed with an output schema; `schemas/tools/mcp-network.json` is current
/// (`UPDATE_SCHEMAS=1 cargo test -p mcp-network --test tools` rewrites it).
#[tokio::test]
async fn tools_are_listed_and_published_schemas_are_current() -> TestResult {
    let out = tmp_dir("net-schema")?;
    let client = start(&[&out], &out, None).await?;
    let mut tools = client.list_all_tools().await?;
    client.cancel().await?;
    assert_eq!(tools.len(), 12);
    for t in &tools {
        assert!(t.output_schema.is_some(), "{}", t.name);
    }
    check_published_tools(
        &mut tools,
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/tools/mcp-network.json"),
        "cargo test -p mcp-network --test tools",
    )?;
    Ok(())
}

/// Without CAP_NET_RAW (the server run as an unprivileged user), capture_start says so.
#[tokio::test]
async fn capture_without_permission_says_what_is_missing() -> TestResult {
    if !root_available("starting the server as another user")
        || !program_available("setpriv", "--version", "REQUIRE_SETPRIV")
    {
        return Ok(());
    }
    use rmcp::ServiceExt;
    use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
    let out = std::env::temp_dir().join(format!("mcp-network-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&out)?;
    let mut perms = std::fs::metadata(&out)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o777);
    std::fs::set_permissions(&out, perms)?;
    let cmd = tokio::process::Command::new("setpriv").configure(|c| {
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_mcp-network"))
        .arg("--root")
        .arg(&out)
        .arg("--output-dir")
        .arg(&out)
        .current_dir(&out)
        .stderr(std::process::Stdio::null());
    });
    let client = ().serve(TokioChildProcess::new(cmd)?).await?;
    let e = err(&client, "capture_start", json!({"interface": "lo"})).await;
    assert!(e.contains("CAP_NET_RAW"), "{e}");
    client.cancel().await?;
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}

/// The `decode_capture` prompt: listed with its argument, rendered for a file or a capture id,
/// refused naming the argument when it is missing or wrong; `source` completes to capture ids
/// (when a capture can be started here) and files.
#[tokio::test]
async fn decode_prompt_and_source_completion() -> TestResult {
    use rmcp::model::GetPromptRequestParams;
    let out = tmp_dir("net-prompt")?;
    std::fs::write(out.join("game.pcap"), b"")?;
    std::fs::write(out.join("game2.pcap"), b"")?;
    let client = start(&[&out], &out, None).await?;
    let prompts = client.list_all_prompts().await?;
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].name, "decode_capture");
    let args = prompts[0].arguments.clone().unwrap_or_default();
    assert_eq!(args.len(), 1);
    assert_eq!(args[0].name, "source");
    assert_eq!(args[0].required, Some(true));
    let get = |args: serde_json::Value| {
        let mut p = GetPromptRequestParams::new("decode_capture");
        if let serde_json::Value::Object(m) = args {
            p = p.with_arguments(m);
        }
        client.get_prompt(p)
    };
    let p = get(json!({"source": "game.pcap"})).await?;
    let text = serde_json::to_string(&p.messages)?;
    for step in [
        "pcap_summary",
        "list_flows",
        "d2_decode",
        "d2_stats",
        "game.pcap",
    ] {
        assert!(text.contains(step), "{step} missing from {text}");
    }
    for (args, wanted) in [
        (json!({}), "missing argument `source`"),
        (json!({"source": "cap-99"}), "no capture with this id"),
        (
            json!({"source": "/etc/passwd"}),
            "outside the allowed roots",
        ),
    ] {
        let e = get(args.clone())
            .await
            .err()
            .map(|e| format!("{e:?}"))
            .unwrap_or_default();
        assert!(e.contains(wanted), "{args}: {e}");
    }
    let c = client
        .complete_prompt_argument("decode_capture", "source", "ga", None)
        .await?;
    assert_eq!(c.values, vec!["game.pcap", "game2.pcap"]);

    let started = call(
        &client,
        "capture_start",
        json!({"interface": "lo", "max_seconds": 5}),
    )
    .await;
    if started.is_error {
        eprintln!("capture ids not completed: {}", started.text);
    } else {
        let c = client
            .complete_prompt_argument("decode_capture", "source", "cap", None)
            .await?;
        // The capture id first, then files (its pcap is in the output directory, a root).
        assert_eq!(
            c.values.first().map(String::as_str),
            Some("cap-1"),
            "{:?}",
            c.values
        );
        let p = get(json!({"source": "cap-1"})).await?;
        assert!(serde_json::to_string(&p.messages)?.contains("cap-1"));
        ok(&client, "capture_stop", json!({"capture_id": "cap-1"})).await;
    }
    client.cancel().await?;
    Ok(())
}

/// A directory the user names must exist: the server refuses to start, naming the flag,
/// instead of creating a directory nobody asked for.
#[test]
fn a_missing_output_dir_is_a_start_up_error_naming_the_flag() {
    let missing = std::env::temp_dir().join(format!("mcp-network-none-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-network"))
        .arg("--output-dir")
        .arg(&missing)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run mcp-network: {e}"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--output-dir"), "{stderr}");
    assert!(!missing.exists(), "the directory was created");
}
