//! `mcp-coordinator --config PATH`: the suite behind one MCP endpoint (stdio by default).

use clap::Parser;
use mcp_common::Roots;
use mcp_common::serve::{CommonArgs, HttpSetup, init_tracing, run_with};
use mcp_coordinator::cache::{RedisCache, Results};
use mcp_coordinator::child::Child;
use mcp_coordinator::config::Config;
use mcp_coordinator::dashboard::Dashboard;
use mcp_coordinator::dgraph::{Credentials, Dgraph};
use mcp_coordinator::findings::Store;
use mcp_coordinator::gateway::{Gateway, Settings};
use mcp_coordinator::hosts::Hosts;
use mcp_coordinator::lanes::Lanes;
use mcp_coordinator::outbox::Shipper;
use mcp_coordinator::quarantine::Quarantine;
use mcp_coordinator::shared::{RedisSessions, SharedRedis};
use mcp_coordinator::tools::Coordinator;
use mcp_coordinator::upkeep::Upkeep;
use rmcp::transport::streamable_http_server::session::SessionStore;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// MCP proxy for the analysis servers: namespaced tools, timeouts, supervision, fan-out.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// The configuration: a .toml file (examples/coordinator.toml) or Claude Desktop's
    /// mcpServers .json. Without it: every server of the suite from this binary's directory,
    /// files readable under $HOME (the embedded default.toml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Start and expose only these servers of the config (comma-separated names, e.g.
    /// `static,d2`), for hosts that want fewer tools in their context.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    servers: Vec<String>,
    /// Where the findings store lives (default: $XDG_DATA_HOME/mcp-suite, or
    /// ~/.local/share/mcp-suite).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Back the findings store up every N seconds into DIR/backups (0: only on demand, with
    /// the findings_backup tool).
    #[arg(long, value_name = "N", default_value_t = 0)]
    backup_every_s: u64,
    /// Backups kept; older ones are deleted after each new one.
    #[arg(long, value_name = "K", default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    backup_keep: u64,
    /// Move findings older than D days to the archive (DIR/archive.sqlite3), hourly or with
    /// each backup; findings_get still finds them (0: never).
    #[arg(long, value_name = "D", default_value_t = 0.0)]
    archive_after_days: f64,
    /// quarantine_add takes files only from under these directories (repeatable; without
    /// it, from nowhere). The quarantine itself is DIR/quarantine of --data-dir.
    #[arg(long, value_name = "DIR")]
    quarantine_from: Vec<PathBuf>,
    /// Also keep findings in Dgraph at this HTTP endpoint (http://HOST:8080): recorded
    /// locally first, shipped in the background, retried until Dgraph has them (default:
    /// $MCP_FINDINGS_URL, which a container deployment sets)
    #[arg(long, value_name = "URL")]
    findings_url: Option<String>,
    /// Dgraph ACL user (default: $DGRAPH_USER); with a password, the coordinator logs in.
    #[arg(long, value_name = "USER")]
    findings_user: Option<String>,
    /// Dgraph ACL password (default: $DGRAPH_PASSWORD, which keeps it out of `ps`).
    #[arg(long, value_name = "PASSWORD")]
    findings_password: Option<String>,
    /// Keep deterministic results (static analysis, saves), the gateway's rate-limit buckets
    /// and MCP sessions over HTTP in this Redis instead of in process, so that they outlive
    /// the coordinator and every coordinator using it shares them (several behind one
    /// address continue each other's sessions): redis://HOST:PORT/DB.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// Gateway (with --http only): serve GET /health and GET /metrics. Implied by the other
    /// gateway flags below.
    #[arg(long)]
    gateway: bool,
    /// Serve the web dashboard under /ui/ on the --http address (implies --gateway): a
    /// browser signs in with a token --auth-tokens or --jwt-secret accepts; without either,
    /// it answers loopback browsers only.
    #[arg(long)]
    dashboard: bool,
    /// Dashboard: mark the session cookie Secure (behind a TLS proxy; `X-Forwarded-Proto:
    /// https` does the same per request).
    #[arg(long)]
    ui_secure_cookie: bool,
    /// Gateway: require `Authorization: Bearer <token>` on every HTTP request but GET
    /// /health. FILE is TOML: [[clients]] entries, each `name` and either `token` or `sha256`
    /// (the token's SHA-256 in hex).
    #[arg(long, value_name = "FILE")]
    auth_tokens: Option<PathBuf>,
    /// Gateway: accept bearer JWTs signed with HS256 by the secret in FILE (32 bytes or
    /// more; a trailing newline is ignored). The client is the token's `sub`; `exp` is
    /// required. Works alone or beside --auth-tokens.
    #[arg(long, value_name = "FILE")]
    jwt_secret: Option<PathBuf>,
    /// Gateway: with --jwt-secret, accept only tokens whose `iss` is this.
    #[arg(long, value_name = "ISSUER")]
    jwt_issuer: Option<String>,
    /// Gateway: with --jwt-secret, accept only tokens whose `aud` names this.
    #[arg(long, value_name = "AUDIENCE")]
    jwt_audience: Option<String>,
    /// Gateway: at most N requests per second per client (a token bucket, in Redis with
    /// --redis-url, else in process); over it, 429 with Retry-After.
    #[arg(long, value_name = "N")]
    rate_limit: Option<f64>,
    /// Gateway: how many requests a client may make at once before the rate applies
    /// (default: --rate-limit rounded up).
    #[arg(long, value_name = "N")]
    rate_burst: Option<u32>,
    /// Gateway: append one JSON line per tools/call over HTTP to FILE (time, client, tool,
    /// arguments_sha256, outcome, duration_ms).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
}

/// The gateway's settings when any gateway flag is given (they need --http).
fn gateway_settings(cli: &Cli) -> Result<Option<Settings>, String> {
    let settings = Settings {
        auth_tokens: cli.auth_tokens.clone(),
        jwt_secret: cli.jwt_secret.clone(),
        jwt_issuer: cli.jwt_issuer.clone(),
        jwt_audience: cli.jwt_audience.clone(),
        rate_limit: cli.rate_limit,
        rate_burst: cli.rate_burst,
        audit_log: cli.audit_log.clone(),
    };
    let given = [
        ("--gateway", cli.gateway),
        ("--dashboard", cli.dashboard),
        ("--auth-tokens", settings.auth_tokens.is_some()),
        ("--jwt-secret", settings.jwt_secret.is_some()),
        ("--jwt-issuer", settings.jwt_issuer.is_some()),
        ("--jwt-audience", settings.jwt_audience.is_some()),
        ("--rate-limit", settings.rate_limit.is_some()),
        ("--rate-burst", settings.rate_burst.is_some()),
        ("--audit-log", settings.audit_log.is_some()),
    ];
    let Some((flag, _)) = given.iter().find(|(_, on)| *on) else {
        return Ok(None);
    };
    if cli.common.http.is_none() {
        return Err(format!(
            "{flag} needs --http ADDR: the gateway guards the HTTP endpoint (stdio has none)"
        ));
    }
    Ok(Some(settings))
}

/// The Dgraph client when --findings-url (or $MCP_FINDINGS_URL, non-empty) is given.
fn dgraph(cli: &Cli) -> Result<Option<Dgraph>, String> {
    let from_env = || {
        std::env::var("MCP_FINDINGS_URL")
            .ok()
            .filter(|u| !u.is_empty())
    };
    let Some(url) = cli.findings_url.clone().or_else(from_env) else {
        return Ok(None);
    };
    let user = cli
        .findings_user
        .clone()
        .or_else(|| std::env::var("DGRAPH_USER").ok());
    let password = cli
        .findings_password
        .clone()
        .or_else(|| std::env::var("DGRAPH_PASSWORD").ok());
    let credentials = match (user, password) {
        (Some(user), Some(password)) => Some(Credentials { user, password }),
        (None, None) => None,
        _ => {
            return Err(
                "give both --findings-user and --findings-password (or DGRAPH_USER and \
                 DGRAPH_PASSWORD), or neither"
                    .into(),
            );
        }
    };
    Dgraph::new(&url, credentials).map(Some)
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("mcp-suite")
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let config = match &cli.config {
        Some(path) => Config::load(path),
        None => Config::embedded(),
    }
    .and_then(|c| c.only(&cli.servers));
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let gateway_settings = match gateway_settings(&cli) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let remote = match dgraph(&cli) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let data_dir = cli.data_dir.clone().unwrap_or_else(default_data_dir);
    let mut store = match Store::open(&data_dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let signal = remote.as_ref().map(|r| store.enable_outbox(r.url()));
    let store = Arc::new(store);
    if !(cli.archive_after_days.is_finite() && cli.archive_after_days >= 0.0) {
        tracing::error!(
            "--archive-after-days {}: accepted a number of days, 0 or more",
            cli.archive_after_days
        );
        return std::process::ExitCode::from(2);
    }
    let upkeep = Upkeep {
        backup_every: (cli.backup_every_s > 0).then(|| Duration::from_secs(cli.backup_every_s)),
        keep: cli.backup_keep as usize,
        archive_after: (cli.archive_after_days > 0.0)
            .then(|| Duration::from_secs_f64(cli.archive_after_days * 86_400.0)),
    };
    let shipper = remote.zip(signal).map(|(remote, signal)| {
        let s = Shipper::new(store.clone(), Arc::new(remote), signal);
        s.spawn();
        s
    });
    let shared = match cli.redis_url.as_deref().map(SharedRedis::new).transpose() {
        Ok(s) => s.map(Arc::new),
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(redis) = &shared
        && let Err(e) = redis.ping().await
    {
        tracing::warn!(error = %e, "Redis does not answer yet: cache misses and in-process rate limits until it does");
    }
    let cache = match &shared {
        None => Results::default(),
        Some(redis) => Results::Redis(RedisCache::new(redis.clone())),
    };
    let cache = Arc::new(cache);
    let from = if cli.quarantine_from.is_empty() {
        Ok(None)
    } else {
        Roots::new(&cli.quarantine_from)
            .map(Some)
            .map_err(|e| e.replace("--root", "--quarantine-from"))
    };
    let quarantine =
        match from.and_then(|from| Quarantine::open(&data_dir.join("quarantine"), from)) {
            Ok(q) => Arc::new(q),
            Err(e) => {
                tracing::error!("{e}");
                return std::process::ExitCode::from(2);
            }
        };
    let hosts = Arc::new(Hosts::default());
    let children: Vec<Arc<Child>> = config
        .children
        .into_iter()
        .map(|mut spec| {
            // The analysers name quarantined files `quarantine://<sha256>` (a child's own
            // setting, or `--quarantine` in its arguments, wins).
            spec.env
                .entry("MCP_QUARANTINE".into())
                .or_insert_with(|| quarantine.dir().display().to_string());
            Child::new(spec, hosts.clone())
        })
        .collect();
    let children = Arc::new(children);
    let lanes = Arc::new(Lanes::new(config.lanes));
    upkeep.spawn(store.clone(), lanes.clone());
    // The gateway's files are checked before any child starts.
    let gateway = match gateway_settings.map(|s| Gateway::new(&s, children.clone(), shared.clone()))
    {
        None => None,
        Some(Ok(g)) => {
            let g = g.with_lanes(lanes.clone());
            Some(Arc::new(if cli.dashboard {
                g.with_dashboard(Arc::new(
                    Dashboard::new(store.clone(), cli.ui_secure_cookie).with_redis(shared.clone()),
                ))
            } else {
                g
            }))
        }
        Some(Err(e)) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    // Every child is started (or has failed) before the first tools/list is answered.
    let starts: Vec<_> = children
        .iter()
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move { c.start().await })
        })
        .collect();
    for s in starts {
        let _ = s.await;
    }
    // Resources keep their URIs: two children offering the same one is a configuration error.
    if let Err(e) = mcp_coordinator::resources::check_collisions(&children) {
        tracing::error!("{e}");
        return std::process::ExitCode::from(2);
    }
    let http = HttpSetup {
        gateway: gateway
            .clone()
            .map(|g| g as Arc<dyn mcp_common::serve::Gateway>),
        session_store: shared.map(|r| Arc::new(RedisSessions(r)) as Arc<dyn SessionStore>),
    };
    match run_with(
        &cli.common,
        move || {
            Coordinator::new(children.clone(), store.clone(), hosts.clone())
                .with_shipper(shipper.clone())
                .with_cache(cache.clone())
                .with_gateway(gateway.clone())
                .with_lanes(lanes.clone())
                .with_upkeep(upkeep)
                .with_quarantine(quarantine.clone())
        },
        http,
    )
    .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
