//! Ground truth from scanmem (Debian's `scanmem`): the same exact-value scan over the same
//! process. Every address scanmem finds, we find; what we find beyond it must lie where
//! scanmem does not look (it skips the writable data of shared libraries), and is printed.
//! Skips with a message when scanmem is not installed (scripts/setup.sh installs it).

mod common;
use common::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::process::Command;

fn scanmem(pid: u32, value: u32) -> Option<BTreeSet<u64>> {
    let out = Command::new("scanmem")
        .arg("-p")
        .arg(pid.to_string())
        .arg("-c")
        .arg(format!(
            "option region_scan_level 3;option scan_data_type int32;0x{value:X};list;exit"
        ))
        .output()
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some(
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix('[')?.split_once(']')?.1.trim();
                u64::from_str_radix(rest.split(',').next()?.trim(), 16).ok()
            })
            .collect(),
    )
}

#[tokio::test]
async fn exact_scans_agree_with_scanmem() -> TestResult {
    if !program_available("scanmem", "--version", "REQUIRE_SCANMEM") {
        return Ok(());
    }
    let fx = Fixture::native(&["--big-mib", "64"]);
    let pid = fx.pid();
    let lib = (fx.addr("lib_base"), fx.addr("lib_base") + 0x10000);
    let client = start(&[]).await?;
    for value in [0x5EED1234u32, 0x7A11CE55, 0xB16B00B5, 271828, 0x0DD5EED5] {
        let theirs = scanmem(pid, value).ok_or("scanmem did not run")?;
        let s = ok(
            &client,
            "scan_start",
            json!({"pid": pid, "value_type": "u32", "value": value, "alignment": 1}),
        )
        .await;
        let ours: BTreeSet<u64> = match_addrs(&s).into_iter().collect();
        assert!(
            theirs.is_subset(&ours),
            "0x{value:X}: scanmem {theirs:X?} ours {ours:X?}"
        );
        let missed: Vec<u64> = ours.difference(&theirs).copied().collect();
        for m in &missed {
            assert!(
                lib.0 <= *m && *m < lib.1,
                "0x{value:X}: only we found 0x{m:X}"
            );
        }
        eprintln!(
            "0x{value:X}: scanmem {} matches, ours {}; scanmem missed {:X?} (libmemfix.so data)",
            theirs.len(),
            ours.len(),
            missed
        );
    }
    // The planted values in the 64 MiB anonymous region: both find all four.
    let s = ok(
        &client,
        "scan_start",
        json!({"pid": pid, "value_type": "u32", "value": 0xB16B00B5u32}),
    )
    .await;
    let big = fx.addr("big");
    let planted: Vec<u64> = fx.info["big_hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_u64())
        .map(|o| big + o)
        .collect();
    let found = match_addrs(&s);
    assert!(planted.iter().all(|p| found.contains(p)), "{found:X?}");
    client.cancel().await?;
    Ok(())
}
