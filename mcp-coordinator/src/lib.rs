//! The coordinator: one MCP endpoint for the suite. It starts the analysis servers as child
//! processes, forwards their tools under `<prefix>__<tool>`, runs calls with timeouts, and
//! supervises the children (restart with backoff, circuit breaker).
//!
//! `config` reads TOML or Claude Desktop's JSON; `child` supervises one child (stdio or
//! streamable HTTP); `tools` is the MCP face (routing and the coordinator's own tools);
//! `progress` passes the children's progress on to the hosts that asked for it;
//! `resources` routes the children's resources by URI;
//! `findings` keeps what was learned (SQLite, and the outbox), `dgraph` is the remote graph's
//! HTTP client and `outbox` ships to it; `cache` keeps deterministic results (in process or
//! in Redis); `shared` is the Redis several coordinators share; `gateway` guards the HTTP endpoint (auth, rate limits, health, metrics,
//! audit), with `metrics` counting and encoding what its /metrics shows.

pub mod cache;
pub mod child;
pub mod config;
pub mod dashboard;
pub mod dgraph;
pub mod findings;
pub mod gateway;
pub mod hosts;
pub mod jwt;
pub mod lanes;
mod metrics;
pub mod outbox;
pub mod progress;
pub mod quarantine;
pub mod recipe;
pub mod report;
pub mod resources;
pub mod shared;
pub mod tools;
pub mod upkeep;
