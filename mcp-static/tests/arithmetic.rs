//! `convert_address` over MCP refuses sums that leave the address space (instead of answering
//! a wrapped address), naming the argument, on the PE32 fixture `D2Client.dll` (text at RVA
//! 0x1000, file offset 0x400).

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn convert_address_refuses_overflowing_sums() -> TestResult {
    let client = start(&[fixture_dir()]).await?;
    let dll = fixture("D2Client.dll");

    // The highest base a 32-bit module at RVA 0x1000 can have still answers.
    let c = ok(
        &client,
        "convert_address",
        json!({"path": dll, "rva": "0x1000", "live_base": "0xFFFFE000"}),
    )
    .await;
    assert_eq!(c["live_va"], "0xFFFFF000");

    // live_base near 2^64, from every direction.
    for from in [
        json!({"rva": "0x1000"}),
        json!({"file_offset": "0x400"}),
        json!({"va": c["va"]}),
    ] {
        let mut args = from.clone();
        args["path"] = json!(dll);
        args["live_base"] = json!("0xFFFFFFFFFFFFF000");
        let e = err(&client, "convert_address", args).await;
        assert!(e.contains("`live_base`"), "{from}: {e}");
        assert!(
            e.contains("0xFFFFFFFFFFFFF000 + rva 0x1000 overflows 32 bits"),
            "{from}: {e}"
        );
        assert!(e.contains("at most 0xFFFFEFFF"), "{from}: {e}");
    }

    // An RVA whose sum with the image base passes 2^64.
    let e = err(
        &client,
        "convert_address",
        json!({"path": dll, "rva": "0xFFFFFFFFFFFFFFFF"}),
    )
    .await;
    assert!(e.contains("`rva`"), "{e}");
    assert!(e.contains("+ 0xFFFFFFFFFFFFFFFF overflows 64 bits"), "{e}");

    client.cancel().await?;
    Ok(())
}
