//! The coordinator as an MCP server: its own tools (servers_*, fan_out, analyze_character,
//! findings_*) and every child tool as `<prefix>__<tool>`, definitions and results forwarded
//! untouched.

use crate::child::{CallError, Child, ChildStatus};
use crate::config::valid_name;
use crate::findings::{self, Finding, Link, Query, Store};
use mcp_common::{Json, Noun, Page, Summary, ToolError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// Separates a child's prefix from its tool name.
pub const SEPARATOR: &str = "__";
/// Findings per page of `resources/list`.
const FINDINGS_PER_PAGE: usize = 100;

#[derive(Clone)]
pub struct Coordinator {
    children: Arc<Vec<Arc<Child>>>,
    findings: Arc<Store>,
    hosts: Arc<crate::hosts::Hosts>,
    cache: Arc<crate::cache::Results>,
    /// Ships findings to the remote graph (Dgraph) when one is configured.
    shipper: Option<Arc<crate::outbox::Shipper>>,
    /// Told about every tool call made over HTTP (metrics, audit) when the gateway is on.
    gateway: Option<Arc<crate::gateway::Gateway>>,
    /// The priority lanes forwarded calls wait in (shared by every session).
    lanes: Arc<crate::lanes::Lanes>,
    /// Backup retention and archival age (the store's schedule runs apart).
    upkeep: crate::upkeep::Upkeep,
    /// Where suspicious files are kept (`None`: quarantine tools refuse, saying so).
    quarantine: Option<Arc<crate::quarantine::Quarantine>>,
    tool_router: ToolRouter<Self>,
}

impl Coordinator {
    pub fn new(
        children: Arc<Vec<Arc<Child>>>,
        findings: Arc<Store>,
        hosts: Arc<crate::hosts::Hosts>,
    ) -> Self {
        Self {
            children,
            findings,
            hosts,
            cache: Arc::default(),
            shipper: None,
            gateway: None,
            lanes: Arc::default(),
            upkeep: crate::upkeep::Upkeep::default(),
            quarantine: None,
            tool_router: Self::tool_router(),
        }
    }

    /// Where deterministic results are kept (shared by every session of this process).
    pub fn with_cache(mut self, cache: Arc<crate::cache::Results>) -> Self {
        self.cache = cache;
        self
    }

    /// Forwarded calls wait for a place in these lanes (one set per process).
    pub fn with_lanes(mut self, lanes: Arc<crate::lanes::Lanes>) -> Self {
        self.lanes = lanes;
        self
    }

    /// Backups keep this many; the schedule itself is started apart ([`crate::upkeep`]).
    pub fn with_upkeep(mut self, upkeep: crate::upkeep::Upkeep) -> Self {
        self.upkeep = upkeep;
        self
    }

    /// The quarantine tools work on this store.
    pub fn with_quarantine(mut self, q: Arc<crate::quarantine::Quarantine>) -> Self {
        self.quarantine = Some(q);
        self
    }

    fn quarantine(&self) -> Result<Arc<crate::quarantine::Quarantine>, ToolError> {
        self.quarantine
            .clone()
            .ok_or_else(|| ToolError::new("this coordinator has no quarantine"))
    }

    /// The report `id` as a resource: its text, typed by its extension.
    async fn read_report(
        &self,
        id: &str,
        uri: &str,
    ) -> Result<rmcp::model::ReadResourceResponse, ErrorData> {
        let not_found = || {
            ErrorData::resource_not_found(
                format!("no report {uri:?} (report_generate names the ids)"),
                Some(serde_json::json!({"uri": uri})),
            )
        };
        // Ids are `r-` and a time stamp: nothing else names a file.
        if !id.starts_with("r-") || !id[2..].bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(not_found());
        }
        let dir = self.findings.dir.join("reports");
        for format in [crate::report::Format::Html, crate::report::Format::Markdown] {
            let path = dir.join(format!("{id}.{}", format.extension()));
            let read = tokio::fs::read_to_string(&path).await;
            if let Ok(text) = read {
                return Ok(rmcp::model::ReadResourceResult::new(vec![
                    rmcp::model::ResourceContents::text(text, uri.to_string())
                        .with_mime_type(format.mime()),
                ])
                .into());
            }
        }
        Err(not_found())
    }

    /// Runs store work that is archival (backups, exports, imports) in the low lane.
    async fn in_low_lane<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, String> + Send + 'static,
    ) -> Result<T, ToolError> {
        let _place = self
            .lanes
            .enter(crate::lanes::COORDINATOR, crate::lanes::Lane::Low, |_| {})
            .await;
        let store = self.findings.clone();
        crate::findings::blocking(move || f(&store))
            .await
            .map_err(ToolError::new)
    }

    /// Tool calls over HTTP are reported to this gateway (metrics, audit log).
    pub fn with_gateway(mut self, gateway: Option<Arc<crate::gateway::Gateway>>) -> Self {
        self.gateway = gateway;
        self
    }

    /// Findings also go to a remote graph through this shipper; `findings_get` and
    /// `findings_query {scope: "shared"}` read it.
    pub fn with_shipper(mut self, shipper: Option<Arc<crate::outbox::Shipper>>) -> Self {
        self.shipper = shipper;
        self
    }

    /// A finding with its links: from the local store, else from the remote graph (findings
    /// other coordinators recorded).
    async fn find_one(&self, id: String) -> Result<Option<(Finding, Vec<Link>)>, String> {
        let store = self.findings.clone();
        let key = id.clone();
        let local = crate::findings::blocking(move || store.get(&key)).await?;
        if local.is_some() {
            return Ok(local);
        }
        match &self.shipper {
            Some(s) => s.remote().get(&id).await.map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    /// Records a successful child call as a finding (failures to record are logged, never
    /// turned into a failed call).
    async fn remember(
        &self,
        prefix: &str,
        tool: &str,
        arguments: Option<Value>,
        r: &CallToolResult,
    ) -> Option<String> {
        if r.is_error == Some(true) {
            return None;
        }
        let store = self.findings.clone();
        // Static analysis and saves are about a file's content: its hash is the target.
        let hash_files = self
            .child(prefix)
            .is_some_and(|c| c.spec.kind.about_files());
        let title = format!("{prefix}{SEPARATOR}{tool}");
        let (prefix, tool) = (prefix.to_string(), tool.to_string());
        let summary = r
            .content
            .first()
            .and_then(|c| c.as_text().map(|t| t.text.clone()));
        let data = r.structured_content.clone();
        let behavior = self
            .child(&prefix)
            .is_some_and(|c| c.spec.kind == crate::config::Kind::Behavior);
        let done = findings::blocking(move || {
            let mut target = arguments
                .as_ref()
                .and_then(|a| findings::target_of_call(a, hash_files));
            // A call about a trace names its process in the answer (`pid`), not its arguments.
            if let (Some(pid), None) = (
                data.as_ref()
                    .and_then(|d| d.get("pid"))
                    .filter(|p| p.is_u64()),
                target.as_ref().and_then(|t| t.get("process")),
            ) {
                let t = target.get_or_insert_with(|| Value::Object(Default::default()));
                if let Value::Object(m) = t {
                    m.insert("process".into(), pid.clone());
                }
            }
            let detections = if behavior && tool == "detect" {
                data.as_ref()
                    .and_then(|d| d.get("detections"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let call = store.record(
                "tool_call",
                &title,
                Some(&prefix),
                Some(&tool),
                arguments,
                target.clone(),
                summary,
                data,
            )?;
            // Each pattern that fired is a finding of its own, linked to the call that found
            // it and about the same process.
            for d in detections
                .iter()
                .filter(|d| d.get("skipped") != Some(&Value::Bool(true)))
            {
                let rule = d.get("rule").and_then(Value::as_str).unwrap_or("rule");
                let f = store.record(
                    "detection",
                    &format!(
                        "{rule}: {}",
                        d.get("description")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    ),
                    Some(&prefix),
                    Some(&tool),
                    None,
                    target.clone(),
                    d.get("detail").and_then(Value::as_str).map(str::to_string),
                    Some(d.clone()),
                )?;
                store.link(&f.id, &call.id, "found_by")?;
            }
            Ok(call)
        })
        .await;
        match done {
            Ok(f) => Some(f.id),
            Err(e) => {
                tracing::warn!(error = %e, "a finding was not recorded");
                None
            }
        }
    }

    /// What a host tells its model about the suite, including servers that are not
    /// running and why, so that missing tools are never a silent surprise.
    fn instructions(&self) -> String {
        let mut text = String::from(
            "One endpoint for the analysis suite: every child server's tools appear as \
             <server>__<tool> (static__binary_info, memory__scan_start, d2__character, ...). \
             servers_status shows the children; fan_out runs several calls at once. The \
             children's resources keep their URIs (d2://save/{path}, ...); findings://{id} \
             reads a finding.",
        );
        for c in self.children.iter() {
            let st = c.status();
            if st.state == crate::child::State::Failed {
                text.push_str(&format!(
                    " Server {:?} is not running: {}.",
                    st.name,
                    st.last_error.unwrap_or_default()
                ));
            }
        }
        text
    }

    /// The child whose prompt `<prefix>__<name>` is, and the prompt's own name.
    fn prompt_owner(&self, name: &str) -> Result<(Arc<Child>, String), ErrorData> {
        let found = name.split_once(SEPARATOR).and_then(|(prefix, prompt)| {
            let child = self.child(prefix)?;
            child
                .prompts()
                .iter()
                .any(|p| p.name == prompt)
                .then(|| (child.clone(), prompt.to_string()))
        });
        found.ok_or_else(|| {
            let known: Vec<String> = self
                .children
                .iter()
                .flat_map(|c| {
                    c.prompts()
                        .into_iter()
                        .map(|p| format!("{}{SEPARATOR}{}", c.spec.prefix, p.name))
                        .collect::<Vec<_>>()
                })
                .collect();
            ErrorData::invalid_params(
                format!("unknown prompt {name:?} (prompts: {})", known.join(", ")),
                None,
            )
        })
    }

    /// Ids of the newest findings starting with `partial`.
    async fn complete_finding_ids(
        &self,
        partial: &str,
    ) -> Result<rmcp::model::CompleteResult, ErrorData> {
        let store = self.findings.clone();
        let (_, recent) = findings::blocking(move || store.query(&Query::default(), 0, 1000))
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        let values: Vec<String> = recent
            .into_iter()
            .map(|f| f.id)
            .filter(|id| id.starts_with(partial))
            .take(100)
            .collect();
        let info = rmcp::model::CompletionInfo::new(values)
            .map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(rmcp::model::CompleteResult::new(info))
    }

    fn child(&self, prefix: &str) -> Option<&Arc<Child>> {
        self.children.iter().find(|c| c.spec.prefix == prefix)
    }

    /// The namespaced tool a recipe step calls: `step.tool` of the first child of its kind,
    /// else of the child whose prefix is the kind's name (`d2`, `memory`, `network`: what
    /// configurations written before kinds relied on).
    fn step_tool(&self, step: &crate::recipe::Step) -> Result<String, ToolError> {
        let child = self
            .children
            .iter()
            .find(|c| c.spec.kind == step.server)
            .or_else(|| {
                self.children
                    .iter()
                    .find(|c| c.spec.prefix == step.server.name())
            })
            .ok_or_else(|| {
                ToolError::new(format!(
                    "no server of kind {:?} is configured, and this needs its `{}` tool: \
                     add one, or set `kind` in its entry",
                    step.server.name(),
                    step.tool
                ))
            })?;
        Ok(format!("{}{SEPARATOR}{}", child.spec.prefix, step.tool))
    }

    /// Every exposed child tool under its namespaced name.
    fn child_tools(&self) -> Vec<Tool> {
        let mut out = Vec::new();
        for c in self.children.iter() {
            for mut t in c.tools() {
                if !c.spec.exposes(&t.name) {
                    continue;
                }
                let name = format!("{}{SEPARATOR}{}", c.spec.prefix, t.name);
                if !valid_name(&name) {
                    tracing::warn!(%name, "tool name not valid for MCP hosts: left out");
                    continue;
                }
                t.name = name.into();
                out.push(t);
            }
        }
        out
    }

    /// Routes `<prefix>__<tool>` to its child; `None` when no child has that prefix.
    async fn forward(
        &self,
        params: CallToolRequestParams,
        progress: Option<(rmcp::Peer<RoleServer>, rmcp::model::ProgressToken)>,
    ) -> Option<CallToolResult> {
        self.forward_recorded(params, progress)
            .await
            .map(|(r, _)| r)
    }

    /// Like `forward`, also giving the id of the finding the call was recorded as.
    async fn forward_recorded(
        &self,
        mut params: CallToolRequestParams,
        progress: Option<(rmcp::Peer<RoleServer>, rmcp::model::ProgressToken)>,
    ) -> Option<(CallToolResult, Option<String>)> {
        let (prefix, tool) = params.name.split_once(SEPARATOR)?;
        let (prefix, tool) = (prefix.to_string(), tool.to_string());
        let child = self.child(&prefix)?;
        if !child.spec.exposes(&tool) {
            return None;
        }
        params.name = tool.clone().into();
        let arguments = params.arguments.clone().map(Value::Object);
        let cache = child.spec.cache_ttl_for(&tool).and_then(|ttl| {
            Some((
                crate::cache::key(&format!("{prefix}{SEPARATOR}{tool}"), arguments.as_ref())?,
                ttl,
            ))
        });
        if let Some((key, _)) = &cache
            && let Some(hit) = self.cache.get(key).await
        {
            return Some((hit, None));
        }
        let lane = child.spec.lane_for(&tool);
        let wait = child.spec.timeout_for(&tool);
        let told = progress.clone();
        let queued = move |ahead: usize| {
            // The progress counts up to 0 as the queue drains, so it increases as the
            // specification asks; the call's own progress follows from there.
            if let Some((peer, token)) = told.clone() {
                let message = format!("queued in the {} lane, {ahead} ahead", lane.name());
                let p = rmcp::model::ProgressNotificationParam::new(token, -(ahead as f64))
                    .with_message(message);
                tokio::spawn(async move { peer.notify_progress(p).await });
            }
        };
        // The call's timeout holds while it waits: a call that never got a place says so.
        let server = child.spec.name.clone();
        let entered = self.lanes.enter(&server, lane, queued);
        let Ok(_place) = tokio::time::timeout(wait, entered).await else {
            return Some((
                error_result(format!(
                    "{prefix}{SEPARATOR}{tool} waited {} s in the {} lane ({} calls queued) \
                     without starting, its timeout; it did not run",
                    wait.as_secs_f64(),
                    lane.name(),
                    self.lanes.queued(&server, lane)
                )),
                None,
            ));
        };
        Some(match child.call(params, progress).await {
            Ok(mut r) => {
                // The child spoke the protocol version it agreed with the coordinator; the
                // discriminator is restored so hosts on newer versions get a complete result
                // (rmcp drops it again for hosts on older ones). Content is untouched.
                r.result_type
                    .get_or_insert(rmcp::model::ResultType::COMPLETE);
                let id = self.remember(&prefix, &tool, arguments, &r).await;
                if let Some((key, ttl)) = cache
                    && r.is_error != Some(true)
                {
                    self.cache.put(key, ttl, r.clone()).await;
                }
                (r, id)
            }
            Err(CallError::Timeout(t)) => (
                error_result(format!(
                    "{prefix}{SEPARATOR}{tool} timed out after {} s; the call was cancelled in the child",
                    t.as_secs_f64()
                )),
                None,
            ),
            Err(CallError::Unavailable(m)) | Err(CallError::Failed(m)) => (error_result(m), None),
        })
    }
}

impl Coordinator {
    /// `call_tool` itself: the coordinator's own tools, else the child's.
    async fn call_tool_inner(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if self.tool_router.has_route(&request.name) {
            return mcp_common::error::call_tool(&self.tool_router, self, request, context).await;
        }
        let name = request.name.to_string();
        if let Some(message) = self.unknown_tool(&name) {
            return Err(ErrorData::invalid_params(message, None));
        }
        let progress = context
            .meta
            .get_progress_token()
            .map(|t| (context.peer.clone(), t));
        match self.forward(request, progress).await {
            Some(r) => Ok(r.into()),
            None => Err(ErrorData::invalid_params(
                format!("unknown tool {name:?}"),
                None,
            )),
        }
    }

    /// Why `name` names no tool, with the tools that exist: those of the server its prefix
    /// names, else the servers' prefixes. `None` when the tool exists (or its server is not
    /// running, which the call itself reports).
    fn unknown_tool(&self, name: &str) -> Option<String> {
        let Some((prefix, tool)) = name.split_once(SEPARATOR) else {
            let prefixes: Vec<String> = self
                .children
                .iter()
                .map(|c| format!("{}{SEPARATOR}", c.spec.prefix))
                .collect();
            return Some(format!(
                "unknown tool {name:?}: the coordinator's own tools are {}; a server's tools \
                 are named <server>{SEPARATOR}<tool> ({})",
                self.tool_router
                    .list_all()
                    .iter()
                    .map(|t| t.name.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                prefixes.join(", ")
            ));
        };
        let Some(child) = self.child(prefix) else {
            let prefixes: Vec<&str> = self
                .children
                .iter()
                .map(|c| c.spec.prefix.as_str())
                .collect();
            return Some(format!(
                "unknown tool {name:?}: no server {prefix:?} (servers: {})",
                prefixes.join(", ")
            ));
        };
        let tools: Vec<String> = child
            .tools()
            .into_iter()
            .map(|t| t.name.to_string())
            .filter(|t| child.spec.exposes(t))
            .collect();
        if tools.is_empty() || tools.iter().any(|t| t == tool) {
            return None;
        }
        Some(format!(
            "unknown tool {name:?}: server {prefix:?} has {}",
            tools
                .iter()
                .map(|t| format!("{prefix}{SEPARATOR}{t}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// A finding as a search lists it: without its data (findings_get has it), so that a page
/// holds many findings and stays small.
fn listed(mut f: Finding) -> Finding {
    f.data = None;
    f
}

/// The most of a finding's data one answer carries (the store keeps up to 256 KiB).
const MAX_ANSWER_DATA: usize = 40_000;

/// A finding whose data would make the answer too large has it replaced by a note saying
/// how large it was and how to get it again (the call and its arguments are kept).
pub fn bounded(mut f: Finding) -> Finding {
    let size = f
        .data
        .as_ref()
        .map_or(0, |d| serde_json::to_vec(d).map_or(0, |v| v.len()));
    if size > MAX_ANSWER_DATA {
        f.data = Some(Value::String(format!(
            "({} KB of data, too large for one answer: call the tool again with `arguments`, \
             with a smaller page)",
            size / 1000
        )));
    }
    f
}

/// What a cancelled call answers (hosts ignore it: they stopped waiting).
fn cancelled_error() -> ErrorData {
    ErrorData::internal_error("the call was cancelled by the host", None)
}

fn error_result(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// Most characters of a finding's `kind` and of a link's `relation`: a short label, which
/// queries match and answers repeat.
const MAX_LABEL_CHARS: usize = 200;
/// Most characters of a finding's `title`, a one-line headline.
const MAX_TITLE_CHARS: usize = 1000;
/// Most characters of findings_query's `target` and `text`, search texts: well below
/// SQLite's LIKE limit (50,000 bytes, else "pattern too complex", which names no argument).
const MAX_QUERY_CHARS: usize = 1000;
/// Most `links` one findings_record makes.
const MAX_LINKS: usize = 256;
/// Most `calls` one fan_out runs.
const MAX_CALLS: usize = 64;

/// Refuses a `text` argument that is empty (`min` 1) or longer than `max` characters.
fn check_length(field: &str, text: &str, min: usize, max: usize) -> Result<(), ToolError> {
    let n = text.chars().count();
    if n < min || n > max {
        return Err(ToolError::invalid(
            field,
            format!("{text:?} ({n} characters)"),
            format!("accepted: {min} to {max} characters"),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RestartArgs {
    /// Server name (from servers_status).
    pub name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FanCall {
    /// Namespaced tool, e.g. static__binary_info.
    pub tool: String,
    /// Its arguments.
    #[serde(default)]
    pub arguments: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FanOutArgs {
    /// Calls to run.
    #[schemars(length(min = 1, max = MAX_CALLS))]
    pub calls: Vec<FanCall>,
    /// Most running at once (default 8).
    #[schemars(range(min = 1, max = 64))]
    pub max_parallel: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Servers {
    pub servers: Vec<ChildStatus>,
    /// The priority lanes: calls running and queued in each, and the waits so far.
    pub lanes: Vec<crate::lanes::LaneStatus>,
}
impl Summary for Servers {
    fn summary(&self) -> String {
        let each: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("{} {:?}", s.name, s.state).to_lowercase())
            .collect();
        let queued: Vec<String> = self
            .lanes
            .iter()
            .filter(|l| l.queued > 0)
            .map(|l| format!("{} queued in {}", l.queued, l.lane.name()))
            .collect();
        if queued.is_empty() {
            each.join(", ")
        } else {
            format!("{}; {}", each.join(", "), queued.join(", "))
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FanResult {
    pub tool: String,
    pub is_error: bool,
    /// The text content of the result.
    pub text: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FanOut {
    /// One result per call, in the order of `calls`, errors included.
    pub results: Vec<FanResult>,
}
impl Summary for FanOut {
    fn summary(&self) -> String {
        let errors = self.results.iter().filter(|r| r.is_error).count();
        format!("{} calls, {errors} errors", self.results.len())
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct LinkTo {
    /// Finding id.
    pub to: String,
    /// Meaning, e.g. derived_from (1-200 chars).
    pub relation: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RecordArgs {
    /// pointer_chain, structure, note, ... (1-200 chars).
    pub kind: String,
    /// One-line headline (1-1000 chars).
    pub title: String,
    /// What it is about, e.g. {"process": 1234}; max 32 levels deep, 256 KiB.
    pub target: Option<Value>,
    /// Any JSON (addresses, offsets, values); max 32 levels deep, 256 KiB.
    pub data: Option<Value>,
    /// Links to existing findings.
    #[schemars(length(max = MAX_LINKS))]
    pub links: Option<Vec<LinkTo>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct LinkArgs {
    /// Source finding id.
    pub from: String,
    /// Target finding id.
    pub to: String,
    /// Meaning, e.g. derived_from, same_value_as (1-200 chars).
    pub relation: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct QueryArgs {
    #[serde(flatten)]
    pub query: Query,
    #[schemars(
        description = "local (default): this coordinator's; shared: all coordinators', via \
             --findings-url (target/text 3+ chars)."
    )]
    pub scope: Option<Scope>,
    #[serde(flatten)]
    pub page: mcp_common::PageArgs,
}

/// Which store `findings_query` searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Local,
    Shared,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReportArgs {
    /// From analyze_character: it and findings up to two links away.
    pub analysis_id: Option<String>,
    /// Or these findings and the links between them.
    #[schemars(length(min = 1, max = MAX_REPORTED))]
    pub finding_ids: Option<Vec<String>>,
    /// Default html.
    pub format: Option<crate::report::Format>,
}

/// The most findings one report holds.
const MAX_REPORTED: usize = 500;

/// A finding and those linked to it, two links deep in either direction (at most
/// [`MAX_REPORTED`]), oldest first, with the links among them: what a report of an analysis
/// (and the dashboard's analysis page) shows.
pub fn analysis_findings(s: &Store, root: &str) -> Result<(Vec<Finding>, Vec<Link>), String> {
    let mut seen = std::collections::BTreeMap::new();
    let mut links = std::collections::BTreeSet::new();
    let mut frontier = vec![root.to_string()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for id in frontier {
            if seen.contains_key(&id) || seen.len() >= MAX_REPORTED {
                continue;
            }
            let Some((f, ls)) = s.get(&id)? else {
                if id == root {
                    return Err(format!(
                        "invalid argument `analysis_id`: {root:?} (no finding has this id)"
                    ));
                }
                continue;
            };
            for l in ls {
                next.push(if l.from == id {
                    l.to.clone()
                } else {
                    l.from.clone()
                });
                links.insert((l.from, l.relation, l.to));
            }
            seen.insert(id, f);
        }
        frontier = next;
    }
    Ok(ordered(seen, links))
}

/// The findings named (each must exist) and the links among them.
fn chosen(s: &Store, ids: &[String]) -> Result<(Vec<Finding>, Vec<Link>), String> {
    let mut seen = std::collections::BTreeMap::new();
    let mut links = std::collections::BTreeSet::new();
    for id in ids {
        let (f, ls) = s.get(id)?.ok_or_else(|| {
            format!("invalid argument `finding_ids`: {id:?} (no finding has this id)")
        })?;
        links.extend(ls.into_iter().map(|l| (l.from, l.relation, l.to)));
        seen.insert(id.clone(), f);
    }
    Ok(ordered(seen, links))
}

/// Findings oldest first, and the links whose two ends are among them.
fn ordered(
    seen: std::collections::BTreeMap<String, Finding>,
    links: std::collections::BTreeSet<(String, String, String)>,
) -> (Vec<Finding>, Vec<Link>) {
    let links = links
        .into_iter()
        .filter(|(from, _, to)| seen.contains_key(from) && seen.contains_key(to))
        .map(|(from, relation, to)| Link { from, to, relation })
        .collect();
    let mut findings: Vec<Finding> = seen.into_values().collect();
    findings.sort_by(|a, b| a.time.total_cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    (findings, links)
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReportWritten {
    pub id: String,
    /// Read it as this resource.
    pub uri: String,
    pub path: String,
    pub bytes: u64,
    pub findings: u64,
    pub links: u64,
}
impl Summary for ReportWritten {
    fn summary(&self) -> String {
        format!(
            "report {} ({} findings, {} links, {} KB): {}",
            self.id,
            self.findings,
            self.links,
            self.bytes / 1000,
            self.uri
        )
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct QuarantineAddArgs {
    /// File under a --quarantine-from directory.
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct QuarantineRemoveArgs {
    /// SHA-256 from quarantine_list.
    pub sha256: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Quarantined {
    #[serde(flatten)]
    pub entry: crate::quarantine::Entry,
    /// False when the same content was there already.
    pub new: bool,
}
impl Summary for Quarantined {
    fn summary(&self) -> String {
        let e = &self.entry;
        format!(
            "{} ({}, {} bytes) {}; analyse it as {}",
            e.sha256,
            e.kind,
            e.size,
            if self.new {
                "quarantined"
            } else {
                "was quarantined already"
            },
            e.uri
        )
    }
}
impl Summary for crate::quarantine::Entry {
    fn summary(&self) -> String {
        format!(
            "{} ({}, {} bytes) removed",
            self.sha256, self.kind, self.size
        )
    }
}
impl Noun for crate::quarantine::Entry {
    const NOUN: &'static str = "quarantined files";
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExportArgs {
    /// From this Unix time (seconds).
    pub since: Option<f64>,
    /// File name (default findings-<time>.jsonl).
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ImportArgs {
    /// File name in <data dir>/exports/.
    pub name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ArchiveArgs {
    /// Age in days (0: all).
    #[schemars(range(min = 0.0, max = MAX_AGE_DAYS))]
    pub older_than_days: f64,
}

/// The oldest age findings_archive takes, in days (a century).
const MAX_AGE_DAYS: f64 = 36_500.0;

/// The refusal of an export name that is not a plain file name.
fn check_export_name(name: &str) -> Result<(), ToolError> {
    if crate::findings::valid_export_name(name) {
        Ok(())
    } else {
        Err(ToolError::invalid(
            "name",
            format!("{name:?}"),
            "a file name in exports/: 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`",
        ))
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Exported {
    pub name: String,
    pub path: String,
    pub findings: u64,
    pub links: u64,
}
impl Summary for Exported {
    fn summary(&self) -> String {
        format!(
            "{} findings and {} links written to {}",
            self.findings, self.links, self.path
        )
    }
}

impl Summary for crate::findings::Backup {
    fn summary(&self) -> String {
        format!(
            "{} findings and {} links backed up to {} ({} KB; {} older backups removed)",
            self.findings,
            self.links,
            self.path,
            self.bytes / 1000,
            self.removed.len()
        )
    }
}

/// What an import or archival added or moved.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Imported {
    pub findings: u64,
    pub links: u64,
}
impl Summary for Imported {
    fn summary(&self) -> String {
        format!("{} findings and {} links", self.findings, self.links)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct IdArgs {
    /// Finding id (from findings_query).
    pub id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Recorded {
    pub finding: Finding,
    pub links: Vec<Link>,
}
impl Summary for Recorded {
    fn summary(&self) -> String {
        format!(
            "{}: {} ({} links)",
            self.finding.id,
            self.finding.title,
            self.links.len()
        )
    }
}
impl Summary for Link {
    fn summary(&self) -> String {
        format!("{} -[{}]-> {}", self.from, self.relation, self.to)
    }
}

impl Noun for Finding {
    const NOUN: &'static str = "findings";
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StoreStatus {
    /// `sqlite` (embedded), or `dgraph` (the SQLite store is then also the outbox).
    pub store: String,
    pub path: String,
    pub session: String,
    pub findings: u64,
    pub links: u64,
    pub sessions: u64,
    /// Findings moved to the archive (findings_get finds them, findings_query does not).
    pub archived: u64,
    /// Findings and links waiting in the outbox to be shipped to the remote graph, plus
    /// those the start-up backfill has still to look at (`remote.backfill`).
    pub backlog: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<crate::outbox::RemoteStatus>,
}
impl Summary for StoreStatus {
    fn summary(&self) -> String {
        match &self.remote {
            None => format!(
                "{} findings, {} links in {}",
                self.findings, self.links, self.path
            ),
            Some(r) => format!(
                "{} findings, {} links in {}; {} shipped to {}, {} waiting{}",
                self.findings,
                self.links,
                self.path,
                r.shipped,
                r.url,
                self.backlog,
                r.last_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" (last error: {e})"))
            ),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AnalyzeArgs {
    /// Default: the only game.
    pub pid: Option<u32>,
    /// Traffic to decode too (capture id or pcap path); refused if network__d2_decode can't.
    pub capture_id: Option<String>,
}

/// One part of an analysis: the child's structured result, or its error.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Part {
    pub tool: String,
    pub is_error: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The finding this call was recorded as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Analysis {
    /// The finding that links every part.
    pub analysis_id: String,
    pub character: Part,
    pub inventory: Part,
    /// A snapshot of the player unit (0xEC bytes) for later diffs.
    pub snapshot: Part,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Part>,
}
impl Summary for Analysis {
    fn summary(&self) -> String {
        let c = self.character.result.as_ref();
        let name = c.and_then(|c| c["name"].as_str()).unwrap_or("?");
        let level = c.and_then(|c| c["level"].as_i64()).unwrap_or(0);
        format!("{name} level {level}: analysis {}", self.analysis_id)
    }
}

fn part(tool: &str, answer: Option<(CallToolResult, Option<String>)>) -> Part {
    match answer {
        None => Part {
            tool: tool.into(),
            is_error: true,
            result: None,
            error: Some(format!("no running child serves {tool}")),
            finding: None,
        },
        Some((r, finding)) => {
            let is_error = r.is_error == Some(true);
            Part {
                tool: tool.into(),
                is_error,
                error: is_error.then(|| {
                    r.content
                        .iter()
                        .filter_map(|b| b.as_text().map(|t| t.text.clone()))
                        .collect::<Vec<_>>()
                        .join(" ")
                }),
                result: r.structured_content,
                finding,
            }
        }
    }
}

fn request(tool: &str, args: Value) -> CallToolRequestParams {
    let map = match args {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    CallToolRequestParams::new(tool.to_string()).with_arguments(map)
}

#[tool_router]
impl Coordinator {
    #[tool(
        title = "Analyse character",
        description = "Start here for a running game: character, inventory, player unit snapshot \
             and decoded traffic (capture_id), as linked findings. Then findings_get analysis_id \
             or d2__/memory__ tools.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn analyze_character(
        &self,
        Parameters(a): Parameters<AnalyzeArgs>,
    ) -> Result<Json<Analysis>, ToolError> {
        let recipe = crate::recipe::recipe().map_err(ToolError::new)?;
        // A capture needs a server to decode it: said about the argument, first.
        let traffic_tool =
            match &a.capture_id {
                Some(src) => Some(self.step_tool(&recipe.traffic).map_err(|e| {
                    ToolError::invalid("capture_id", format!("{src:?}"), e.message())
                })?),
                None => None,
            };
        let character_tool = self.step_tool(&recipe.character)?;
        let mut args = serde_json::json!({});
        if let Some(pid) = a.pid {
            args["pid"] = pid.into();
        }
        let character = async {
            part(
                &character_tool,
                self.forward_recorded(request(&character_tool, args), None)
                    .await,
            )
        };
        let traffic = async {
            let src = a.capture_id.as_ref()?;
            let tool = traffic_tool.as_deref()?;
            let decode = request(
                tool,
                serde_json::json!({
                    "source": src, "ids": recipe.traffic_ids, "limit": recipe.traffic_limit
                }),
            );
            Some(part(tool, self.forward_recorded(decode, None).await))
        };
        let (character, traffic) = tokio::join!(character, traffic);
        // A capture that cannot be decoded is a bad argument, not a part of the analysis.
        if let (Some(src), Some(t)) = (&a.capture_id, &traffic)
            && t.is_error
        {
            return Err(ToolError::invalid(
                "capture_id",
                format!("{src:?}"),
                format!(
                    "accepted: a capture id or capture file {} decodes; it said: {}",
                    traffic_tool.as_deref().unwrap_or_default(),
                    t.error.as_deref().unwrap_or_default()
                ),
            ));
        }
        if character.is_error {
            return Err(ToolError::new(format!(
                "{character_tool} failed: {}",
                character.error.unwrap_or_default()
            )));
        }
        let inventory_tool = self.step_tool(&recipe.inventory)?;
        let snapshot_tool = self.step_tool(&recipe.snapshot)?;
        let c = character.result.clone().unwrap_or_default();
        let pid = c["pid"].clone();
        let unit = c["player_unit"].clone();
        let inventory = self.forward_recorded(
            request(&inventory_tool, serde_json::json!({"pid": pid})),
            None,
        );
        let snapshot = self.forward_recorded(
            request(
                &snapshot_tool,
                serde_json::json!({"pid": pid, "address": unit, "length": recipe.snapshot_length}),
            ),
            None,
        );
        let (inventory, snapshot) = tokio::join!(inventory, snapshot);
        let inventory = part(&inventory_tool, inventory);
        let snapshot = part(&snapshot_tool, snapshot);
        let store = self.findings.clone();
        let parts: Vec<Option<String>> = [
            Some(&character),
            Some(&inventory),
            Some(&snapshot),
            traffic.as_ref(),
        ]
        .iter()
        .flatten()
        .map(|p| p.finding.clone())
        .collect();
        let title = format!(
            "character {} level {} (pid {})",
            c["name"].as_str().unwrap_or("?"),
            c["level"],
            pid
        );
        let data = serde_json::json!({
            "name": c["name"], "class": c["class"], "level": c["level"], "experience": c["experience"],
            "area": c["area"], "player_unit": unit, "version": c["version"],
        });
        let target = serde_json::json!({"process": pid, "game_version": c["version"]});
        let analysis_id = mcp_common::blocking(move || {
            let f = store
                .record(
                    "character_analysis",
                    &title,
                    None,
                    None,
                    None,
                    Some(target),
                    None,
                    Some(data),
                )
                .map_err(ToolError::new)?;
            for id in parts.into_iter().flatten() {
                store.link(&f.id, &id, "includes").map_err(ToolError::new)?;
            }
            Ok(f.id)
        })
        .await?;
        Ok(Json(Analysis {
            analysis_id,
            character,
            inventory,
            snapshot,
            traffic,
        }))
    }

    #[tool(
        title = "Record finding",
        description = "Keeps something learnt (pointer chain, structure, note) as a finding, \
             optionally linked to others. Tool calls are recorded automatically.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn findings_record(
        &self,
        Parameters(a): Parameters<RecordArgs>,
    ) -> Result<Json<Recorded>, ToolError> {
        check_length("kind", &a.kind, 1, MAX_LABEL_CHARS)?;
        check_length("title", &a.title, 1, MAX_TITLE_CHARS)?;
        let links = a.links.as_deref().unwrap_or_default();
        if links.len() > MAX_LINKS {
            return Err(ToolError::invalid(
                "links",
                format!("{} links", links.len()),
                format!("accepted: at most {MAX_LINKS}; link more with findings_link"),
            ));
        }
        for (i, l) in links.iter().enumerate() {
            check_length(
                &format!("links[{i}].relation"),
                &l.relation,
                1,
                MAX_LABEL_CHARS,
            )?;
        }
        for (field, v) in [("data", &a.data), ("target", &a.target)] {
            if let Some(v) = v {
                crate::findings::check_recordable(field, v).map_err(ToolError::new)?;
            }
        }
        let store = self.findings.clone();
        mcp_common::blocking(move || {
            let f = store
                .record(&a.kind, &a.title, None, None, None, a.target, None, a.data)
                .map_err(ToolError::new)?;
            let mut links = Vec::new();
            for l in a.links.unwrap_or_default() {
                links.push(
                    store
                        .link(&f.id, &l.to, &l.relation)
                        .map_err(ToolError::new)?,
                );
            }
            Ok(Recorded { finding: f, links })
        })
        .await
        .map(Json)
    }

    /// Links two existing findings with a relation.
    #[tool(
        title = "Link findings",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn findings_link(
        &self,
        Parameters(a): Parameters<LinkArgs>,
    ) -> Result<Json<Link>, ToolError> {
        check_length("relation", &a.relation, 1, MAX_LABEL_CHARS)?;
        let store = self.findings.clone();
        mcp_common::blocking(move || {
            store
                .link(&a.from, &a.to, &a.relation)
                .map_err(ToolError::new)
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Search findings",
        description = "Searches findings (tool calls, records) by target, kind, tool, text (max \
             1000 chars each) or time, newest first. Then findings_get for links.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn findings_query(
        &self,
        Parameters(a): Parameters<QueryArgs>,
    ) -> Result<Json<Page<Finding>>, ToolError> {
        let (offset, limit) = a.page.resolve()?;
        for (field, v) in [("target", &a.query.target), ("text", &a.query.text)] {
            if let Some(v) = v {
                check_length(field, v, 0, MAX_QUERY_CHARS)?;
            }
        }
        if a.scope == Some(Scope::Shared) {
            let Some(shipper) = &self.shipper else {
                return Err(ToolError::invalid(
                    "scope",
                    "\"shared\"",
                    "\"local\" only: no remote graph is configured (--findings-url)",
                ));
            };
            let (total, items) = shipper
                .remote()
                .find(&a.query, offset, limit)
                .await
                .map_err(|e| ToolError::new(e.to_string()))?
                .map_err(|(field, why)| {
                    ToolError::new(format!("invalid argument `{field}`: {why}"))
                })?;
            return Ok(Json(Page::fit(
                items.into_iter().map(listed),
                offset,
                total,
            )));
        }
        let store = self.findings.clone();
        mcp_common::blocking(move || {
            let (total, items) = store
                .query(&a.query, offset, limit)
                .map_err(ToolError::new)?;
            Ok(Page::fit(items.into_iter().map(listed), offset, total))
        })
        .await
        .map(Json)
    }

    /// One finding with its links (also resource findings://{id}).
    #[tool(
        title = "Get finding",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn findings_get(
        &self,
        Parameters(a): Parameters<IdArgs>,
    ) -> Result<Json<Recorded>, ToolError> {
        let (finding, links) = self
            .find_one(a.id.clone())
            .await
            .map_err(ToolError::new)?
            .ok_or_else(|| {
                ToolError::invalid("id", format!("{:?}", a.id), "no finding has this id")
            })?;
        Ok(Json(Recorded {
            finding: bounded(finding),
            links,
        }))
    }

    /// Findings store location, counts and shipping backlog.
    #[tool(
        title = "Findings status",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn findings_status(
        &self,
        Parameters(_a): Parameters<NoArgs>,
    ) -> Result<Json<StoreStatus>, ToolError> {
        let store = self.findings.clone();
        let remote = self.shipper.as_ref().map(|s| s.status());
        mcp_common::blocking(move || {
            let (findings, links, sessions) = store.counts().map_err(ToolError::new)?;
            Ok(StoreStatus {
                store: if remote.is_some() { "dgraph" } else { "sqlite" }.into(),
                path: store.path.clone(),
                session: store.session.clone(),
                findings,
                links,
                sessions,
                archived: store.archived().map_err(ToolError::new)?,
                backlog: store.backlog().map_err(ToolError::new)?,
                remote,
            })
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Back up findings",
        description = "Backs up findings and archive to <data dir>/backups/, keeping the newest \
             --backup-keep. Restore: copy one to a data dir as findings.sqlite3.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn findings_backup(
        &self,
        Parameters(_a): Parameters<NoArgs>,
    ) -> Result<Json<crate::findings::Backup>, ToolError> {
        let keep = self.upkeep.keep;
        self.in_low_lane(move |s| s.backup(keep)).await.map(Json)
    }

    #[tool(
        title = "Export findings",
        description = "Writes findings (archived too) and links to <data dir>/exports/<name> as \
             JSON Lines, for findings_import.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn findings_export(
        &self,
        Parameters(a): Parameters<ExportArgs>,
    ) -> Result<Json<Exported>, ToolError> {
        let name = match a.name {
            Some(n) => {
                check_export_name(&n)?;
                n
            }
            None => format!(
                "findings-{}.jsonl",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
            ),
        };
        self.in_low_lane(move |s| {
            let query = Query {
                since: a.since,
                ..Query::default()
            };
            let (path, moved) = s.export(&query, &name)?;
            Ok(Exported {
                name,
                path: path.display().to_string(),
                findings: moved.findings,
                links: moved.links,
            })
        })
        .await
        .map(Json)
    }

    /// Imports a findings_export file's findings and links, each only once.
    #[tool(
        title = "Import findings",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn findings_import(
        &self,
        Parameters(a): Parameters<ImportArgs>,
    ) -> Result<Json<Imported>, ToolError> {
        check_export_name(&a.name)?;
        let name = a.name.clone();
        let moved = self
            .in_low_lane(move |s| s.import(&name))
            .await
            .map_err(|e| ToolError::invalid("name", format!("{:?}", a.name), e.to_string()))?;
        Ok(Json(Imported {
            findings: moved.findings,
            links: moved.links,
        }))
    }

    #[tool(
        title = "Archive findings",
        description = "Moves findings older than older_than_days, with links, to the archive: \
             findings_get finds them, findings_query not.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn findings_archive(
        &self,
        Parameters(a): Parameters<ArchiveArgs>,
    ) -> Result<Json<Imported>, ToolError> {
        if !(0.0..=MAX_AGE_DAYS).contains(&a.older_than_days) {
            return Err(ToolError::invalid(
                "older_than_days",
                a.older_than_days,
                format!("accepted: 0 to {MAX_AGE_DAYS} days"),
            ));
        }
        let age = a.older_than_days * 86_400.0;
        let moved = self.in_low_lane(move |s| s.archive_older(age)).await?;
        Ok(Json(Imported {
            findings: moved.findings,
            links: moved.links,
        }))
    }

    #[tool(
        title = "Generate report",
        description = "Writes a self-contained report (analysis, character sheet, findings graph, \
             charts, each citing its finding). Then read report://{id}.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn report_generate(
        &self,
        Parameters(a): Parameters<ReportArgs>,
    ) -> Result<Json<ReportWritten>, ToolError> {
        mcp_common::error::exactly_one(
            &[
                ("analysis_id", a.analysis_id.is_some()),
                ("finding_ids", a.finding_ids.is_some()),
            ],
            false,
        )?;
        if let Some(ids) = &a.finding_ids
            && (ids.is_empty() || ids.len() > MAX_REPORTED)
        {
            return Err(ToolError::invalid(
                "finding_ids",
                format!("{} ids", ids.len()),
                format!("accepted: 1 to {MAX_REPORTED} finding ids"),
            ));
        }
        let format = a.format.unwrap_or(crate::report::Format::Html);
        self.in_low_lane(move |s| {
            let (title, findings, links) = match (&a.analysis_id, &a.finding_ids) {
                (Some(root), _) => {
                    let (findings, links) = analysis_findings(s, root)?;
                    let title = findings
                        .iter()
                        .find(|f| &f.id == root)
                        .map_or_else(|| root.clone(), |f| f.title.clone());
                    (title, findings, links)
                }
                (_, Some(ids)) => {
                    let (findings, links) = chosen(s, ids)?;
                    (format!("{} findings", findings.len()), findings, links)
                }
                _ => return Err("no findings named".into()),
            };
            let generated = chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string();
            let input = crate::report::Input {
                title: &title,
                generated: &generated,
                findings: &findings,
                links: &links,
            };
            let text = match format {
                crate::report::Format::Markdown => crate::report::markdown(&input),
                crate::report::Format::Html => crate::report::html(&input),
            };
            let id = format!("r-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ"));
            let dir = s.dir.join("reports");
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let path = dir.join(format!("{id}.{}", format.extension()));
            std::fs::write(&path, &text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(ReportWritten {
                uri: format!("{}{id}", crate::resources::REPORT_PREFIX),
                id,
                path: path.display().to_string(),
                bytes: text.len() as u64,
                findings: findings.len() as u64,
                links: links.len() as u64,
            })
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Quarantine file",
        description = "Copies a suspicious file into the read-only, content-addressed quarantine. \
             Then analysers read its uri, quarantine://<sha256>.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn quarantine_add(
        &self,
        Parameters(a): Parameters<QuarantineAddArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<Quarantined>, ToolError> {
        let q = self.quarantine()?;
        // Who: the gateway's client over HTTP, else the local host.
        let who = context
            .extensions
            .get::<hyper::http::request::Parts>()
            .and_then(|p| p.extensions.get::<crate::gateway::ClientId>())
            .map_or_else(|| "stdio".to_string(), |c| c.0.clone());
        let (entry, new) = mcp_common::blocking(move || q.add(&a.path, &who)).await?;
        Ok(Json(Quarantined { entry, new }))
    }

    /// Quarantined files, oldest first: SHA-256, uri, type, size, origins.
    #[tool(
        title = "List quarantined",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn quarantine_list(
        &self,
        Parameters(a): Parameters<mcp_common::PageArgs>,
    ) -> Result<Json<Page<crate::quarantine::Entry>>, ToolError> {
        let (offset, limit) = a.resolve()?;
        let q = self.quarantine()?;
        let all = mcp_common::blocking(move || q.list().map_err(ToolError::new)).await?;
        let total = all.len();
        Ok(Json(Page::fit(
            all.into_iter().skip(offset).take(limit),
            offset,
            total,
        )))
    }

    /// Deletes a file from the quarantine.
    #[tool(
        title = "Unquarantine file",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            open_world_hint = false
        )
    )]
    async fn quarantine_remove(
        &self,
        Parameters(a): Parameters<QuarantineRemoveArgs>,
    ) -> Result<Json<crate::quarantine::Entry>, ToolError> {
        let q = self.quarantine()?;
        mcp_common::blocking(move || q.remove(&a.sha256))
            .await
            .map(Json)
    }

    #[tool(
        title = "Server status",
        description = "Each server's state, last error, restarts, call counts. Use when tools are \
             missing or failing; then servers_restart.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn servers_status(
        &self,
        Parameters(_a): Parameters<NoArgs>,
    ) -> Result<Json<Servers>, ToolError> {
        Ok(Json(Servers {
            servers: self.children.iter().map(|c| c.status()).collect(),
            lanes: self.lanes.status(),
        }))
    }

    /// Restarts a server, even one failed after repeated crashes.
    #[tool(
        title = "Restart server",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn servers_restart(
        &self,
        Parameters(a): Parameters<RestartArgs>,
    ) -> Result<Json<Servers>, ToolError> {
        let child = self
            .children
            .iter()
            .find(|c| c.spec.name == a.name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.children.iter().map(|c| c.spec.name.as_str()).collect();
                ToolError::invalid(
                    "name",
                    format!("{:?}", a.name),
                    format!("known servers: {}", names.join(", ")),
                )
            })?;
        child
            .restart()
            .await
            .map_err(|e| ToolError::new(format!("{} did not start: {e}", a.name)))?;
        Ok(Json(Servers {
            servers: vec![child.status()],
            lanes: self.lanes.status(),
        }))
    }

    #[tool(
        title = "Parallel calls",
        description = "Runs tool calls concurrently (e.g. binary_info of many files); results in \
             order, errors included.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn fan_out(
        &self,
        Parameters(a): Parameters<FanOutArgs>,
    ) -> Result<Json<FanOut>, ToolError> {
        if a.calls.is_empty() || a.calls.len() > MAX_CALLS {
            return Err(ToolError::invalid(
                "calls",
                format!("{} calls", a.calls.len()),
                format!("accepted: 1 to {MAX_CALLS}"),
            ));
        }
        let parallel = a.max_parallel.unwrap_or(8);
        if parallel == 0 || parallel > 64 {
            return Err(ToolError::invalid(
                "max_parallel",
                parallel,
                "accepted: 1 to 64",
            ));
        }
        let gate = Arc::new(tokio::sync::Semaphore::new(parallel));
        let mut tasks = Vec::new();
        for c in a.calls {
            let me = self.clone();
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire().await;
                let tool = c.tool.clone();
                let params = CallToolRequestParams::new(c.tool).with_arguments(c.arguments);
                let r = me.forward(params, None).await.unwrap_or_else(|| {
                    error_result(format!(
                        "unknown tool {tool:?}: use a namespaced child tool (prefix__tool)"
                    ))
                });
                FanResult {
                    tool,
                    is_error: r.is_error == Some(true),
                    text: r
                        .content
                        .iter()
                        .filter_map(|b| b.as_text().map(|t| t.text.clone()))
                        .collect(),
                    structured_content: r.structured_content,
                }
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(
                t.await
                    .map_err(|e| ToolError::new(format!("a fan-out call failed: {e}")))?,
            );
        }
        Ok(Json(FanOut { results }))
    }
}

impl ServerHandler for Coordinator {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_prompts()
                .enable_completions()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mcp-coordinator",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(self.instructions())
    }

    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        self.hosts.add(context.peer);
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // The gateway's client name travels in the HTTP request rmcp hands over.
        let client = self.gateway.as_ref().and_then(|g| {
            let parts = context.extensions.get::<hyper::http::request::Parts>()?;
            let id = parts.extensions.get::<crate::gateway::ClientId>()?;
            Some((g.clone(), id.clone()))
        });
        // rmcp only flags a host's `notifications/cancelled` on the token: the call is
        // dropped here, which cancels the child's request (see `child::CancelOnDrop`) and
        // ends the call's progress route.
        let cancelled = context.ct.clone();
        let Some((gateway, client)) = client else {
            return tokio::select! {
                r = self.call_tool_inner(request, context) => r,
                _ = cancelled.cancelled() => Err(cancelled_error()),
            };
        };
        let tool = request.name.to_string();
        let arguments = gateway
            .audits()
            .then(|| request.arguments.clone())
            .flatten();
        let started = std::time::Instant::now();
        let r = tokio::select! {
            r = self.call_tool_inner(request, context) => r,
            _ = cancelled.cancelled() => Err(cancelled_error()),
        };
        let outcome = match &r {
            Err(_) => crate::gateway::Outcome::ProtocolError,
            Ok(CallToolResponse::Complete(c)) if c.is_error == Some(true) => {
                crate::gateway::Outcome::IsError
            }
            Ok(_) => crate::gateway::Outcome::Ok,
        };
        gateway.record_call(
            &client,
            &tool,
            arguments.as_ref(),
            outcome,
            started.elapsed(),
        );
        r
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut all: Vec<Tool> = self
            .tool_router
            .list_all()
            .into_iter()
            .map(mcp_common::schema::for_listing)
            .collect();
        all.extend(self.child_tools());
        Ok(ListToolsResult::with_all_items(all))
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, ErrorData> {
        // The first page: every child's resources as it listed them, URIs and all; then the
        // findings, newest first, a page at a time (the cursor is the findings' offset).
        let cursor = request.and_then(|r| r.cursor);
        let offset = match cursor.as_deref() {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| {
                ErrorData::invalid_params(
                    format!("invalid cursor {c:?}: pass the nextCursor of the previous page"),
                    None,
                )
            })?,
        };
        let mut all: Vec<rmcp::model::Resource> = if offset == 0 {
            self.children.iter().flat_map(|c| c.resources().0).collect()
        } else {
            Vec::new()
        };
        let store = self.findings.clone();
        let (total, findings) =
            findings::blocking(move || store.query(&Query::default(), offset, FINDINGS_PER_PAGE))
                .await
                .map_err(|e| ErrorData::internal_error(e, None))?;
        let shown = findings.len();
        for f in findings {
            let mut r = rmcp::model::Resource::new(format!("findings://{}", f.id), f.title)
                .with_mime_type("application/json");
            r.description = f.summary;
            all.push(r);
        }
        let mut result = rmcp::model::ListResourcesResult::with_all_items(all);
        result.next_cursor = (offset + shown < total).then(|| (offset + shown).to_string());
        Ok(result)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListPromptsResult, ErrorData> {
        // Every child's prompts, named `<prefix>__<prompt>` like its tools.
        let all = self
            .children
            .iter()
            .flat_map(|c| {
                c.prompts().into_iter().map(|mut p| {
                    p.name = format!("{}{SEPARATOR}{}", c.spec.prefix, p.name);
                    p
                })
            })
            .collect();
        Ok(rmcp::model::ListPromptsResult::with_all_items(all))
    }

    async fn get_prompt(
        &self,
        mut request: rmcp::model::GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetPromptResponse, ErrorData> {
        let (child, name) = self.prompt_owner(&request.name)?;
        request.name = name;
        child.get_prompt(request).await.map(Into::into)
    }

    async fn complete(
        &self,
        mut request: rmcp::model::CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CompleteResult, ErrorData> {
        use rmcp::model::Reference;
        let child = match &mut request.r#ref {
            Reference::Prompt(p) => {
                let (child, name) = self.prompt_owner(&p.name)?;
                p.name = name;
                child
            }
            Reference::Resource(r) => {
                let owner = self
                    .children
                    .iter()
                    .find(|c| c.resources().1.iter().any(|t| t.uri_template == r.uri));
                match owner {
                    Some(c) => c.clone(),
                    // The coordinator's own template (findings://{id}): recent ids.
                    None if r.uri == crate::resources::FINDINGS_TEMPLATE => {
                        return self.complete_finding_ids(&request.argument.value).await;
                    }
                    None => {
                        return Err(ErrorData::invalid_params(
                            format!("no resource template {:?}", r.uri),
                            None,
                        ));
                    }
                }
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("cannot complete for {other:?}"),
                    None,
                ));
            }
        };
        if !child.completes() {
            return Ok(rmcp::model::CompleteResult::default());
        }
        child.complete(request).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, ErrorData> {
        let mut all = vec![
            rmcp::model::ResourceTemplate::new(crate::resources::FINDINGS_TEMPLATE, "finding")
                .with_description("A finding with its links, as findings_get gives it")
                .with_mime_type("application/json"),
            rmcp::model::ResourceTemplate::new(crate::resources::REPORT_TEMPLATE, "report")
                .with_description("A report report_generate wrote (HTML or Markdown)"),
        ];
        all.extend(self.children.iter().flat_map(|c| c.resources().1));
        Ok(rmcp::model::ListResourceTemplatesResult::with_all_items(
            all,
        ))
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, ErrorData> {
        use crate::resources::Route;
        let uri = request.uri.clone();
        let id = match crate::resources::route(&self.children, &uri) {
            Route::Child(child) => return child.read(request).await,
            Route::Unknown(message) => {
                return Err(ErrorData::resource_not_found(
                    message,
                    Some(serde_json::json!({"uri": uri})),
                ));
            }
            Route::Finding(id) => id,
            Route::Report(id) => return self.read_report(&id, &uri).await,
        };
        let found = self
            .find_one(id)
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?
            .ok_or_else(|| {
                ErrorData::resource_not_found(
                    format!("no finding {uri:?} (findings_query lists the ids)"),
                    Some(serde_json::json!({"uri": uri})),
                )
            })?;
        let (finding, links) = found;
        let finding = bounded(finding);
        let text = serde_json::json!({"finding": finding, "links": links}).to_string();
        Ok(rmcp::model::ReadResourceResult::new(vec![
            rmcp::model::ResourceContents::text(text, request.uri)
                .with_mime_type("application/json"),
        ])
        .into())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        let own = self.tool_router.get(name).cloned();
        own.map(mcp_common::schema::for_listing).or_else(|| {
            // Routed like a call: only the named child's list is searched.
            let (prefix, tool) = name.split_once(SEPARATOR)?;
            let child = self.child(prefix)?;
            if !child.spec.exposes(tool) {
                return None;
            }
            let mut t = child.tools().into_iter().find(|t| t.name == tool)?;
            t.name = name.to_string().into();
            Some(t)
        })
    }
}
