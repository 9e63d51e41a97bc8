//! `schemas/tools/mcp-coordinator.json` holds the coordinator's own tools (findings, fan-out,
//! supervision) exactly as `tools/list` returns them; this test fails when it is stale.

mod common;

use common::{child_config, coordinator, tmp};
use mcp_testkit::*;
use std::path::Path;

#[tokio::test]
async fn published_schemas_of_the_coordinators_own_tools_are_current() -> TestResult {
    let dir = tmp("coord-schema")?;
    let client = coordinator(&child_config(&dir)?, &[]).await?;
    let mut own: Vec<_> = client
        .list_all_tools()
        .await?
        .into_iter()
        .filter(|t| !t.name.contains("__"))
        .collect();
    own.sort_by(|a, b| a.name.cmp(&b.name));
    client.cancel().await?;
    for t in &own {
        assert!(t.output_schema.is_some(), "{} has no output schema", t.name);
        assert!(t.annotations.is_some(), "{} has no annotations", t.name);
    }
    check_published_tools(
        &mut own,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/tools/mcp-coordinator.json"),
        "cargo test -p mcp-coordinator --test schema",
    )?;
    Ok(())
}
