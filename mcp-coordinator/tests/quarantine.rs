//! The quarantine through the coordinator: a file is copied in once however often it is
//! added, read-only, typed by its magic, and mcp-static analyses it as
//! `quarantine://<sha256>` (the coordinator hands its children the store); removing it makes
//! that name unknown. Files are taken only from under --quarantine-from.

mod common;

use common::{TEST_CHILD, coordinator, server_with_args, sibling, tmp, write_config};
use mcp_testkit::{Error, err, ok};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn a_quarantined_file_is_analysed_by_its_hash() -> Result<(), Error> {
    let dir = tmp("quarantine")?;
    let src = dir.join("incoming");
    std::fs::create_dir_all(&src)?;
    // Any binary will do: the test child is an ELF file this build made.
    let sample = src.join("sample.bin");
    std::fs::copy(TEST_CHILD, &sample)?;
    std::fs::copy(TEST_CHILD, src.join("again.bin"))?;
    let expected = mcp_common::bytes::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&sample)?,
    ));
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere)?;
    let config = server_with_args(
        "static",
        sibling("mcp-static")?.display(),
        &["--root", &elsewhere.display().to_string()],
    );
    let cfg = write_config(&dir, "c.toml", &config)?;
    let from = src.display().to_string();
    let c = coordinator(&cfg, &["--quarantine-from", &from]).await?;

    let added = ok(&c, "quarantine_add", json!({"path": sample})).await;
    assert_eq!(added["sha256"], expected.as_str(), "{added}");
    assert_eq!(added["new"], true, "{added}");
    assert_eq!(added["type"], "ELF 64-bit", "{added}");
    assert_eq!(added["added_by"], "stdio", "{added}");
    let uri = added["uri"].as_str().ok_or("no uri")?.to_string();
    assert_eq!(uri, format!("quarantine://{expected}"));
    let again = ok(&c, "quarantine_add", json!({"path": src.join("again.bin")})).await;
    assert_eq!(
        (
            again["new"].as_bool(),
            again["origins"].as_array().map(Vec::len)
        ),
        (Some(false), Some(2))
    );
    let stored = dir.join("data/quarantine").join(&expected);
    assert_eq!(
        std::fs::metadata(&stored)?.permissions().mode() & 0o777,
        0o444
    );
    let listed = ok(&c, "quarantine_list", json!({})).await;
    assert_eq!(listed["total"], 1, "{listed}");

    // The static analyser reads it by name, outside its own --root.
    let info = ok(&c, "static__binary_info", json!({"path": uri})).await;
    assert_eq!(info["sha256"], expected.as_str(), "{info}");
    assert_eq!(info["format"], "elf64", "{info}");
    // ... and nothing else of the quarantine's directory by path.
    let e = err(&c, "static__binary_info", json!({"path": stored})).await;
    assert!(e.contains("outside the allowed roots"), "{e}");

    // Outside --quarantine-from: refused, naming the argument.
    let e = err(&c, "quarantine_add", json!({"path": TEST_CHILD})).await;
    assert!(
        e.contains("`path`") && e.contains("outside the allowed roots"),
        "{e}"
    );

    let removed = ok(&c, "quarantine_remove", json!({"sha256": expected})).await;
    assert_eq!(removed["sha256"], expected.as_str());
    assert!(!stored.exists());
    let e = err(&c, "static__binary_info", json!({"path": uri})).await;
    assert!(
        e.contains("no file in the quarantine has this SHA-256"),
        "{e}"
    );
    let e = err(&c, "quarantine_remove", json!({"sha256": "xyz"})).await;
    assert!(
        e.contains("`sha256`") && e.contains("64 lowercase hex"),
        "{e}"
    );
    Ok(())
}
