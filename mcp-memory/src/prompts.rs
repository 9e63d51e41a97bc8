//! MCP prompts: guided workflows over the tools, and completion of their arguments.
//!
//! `find_value_pointer` walks an agent through the Cheat Engine workflow: find a value, narrow
//! it down, find pointer chains to it, confirm the one that survives. Prompt arguments arrive
//! as text (numbers are taken too); each is checked here and a bad one is named in the error.
//! Completion offers live pids (Wine and game processes first), value types, and the ids the
//! store holds for id arguments.

use crate::modules::{self, ModuleKind};
use crate::procfs::{self, ProcessInfo};
use crate::reader::ProcessMemory;
use crate::store::Store;
use crate::tools::MemoryServer;
use crate::values::{self, NUMERIC_NAMES, ValueType};
use rmcp::ErrorData;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CompleteRequestParams, CompletionInfo, GetPromptResult, PromptMessage, Reference, Role,
};
use rmcp::{prompt, prompt_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::Read;

pub const FIND_VALUE_POINTER: &str = "find_value_pointer";

/// The arguments of `find_value_pointer`. Each is taken as raw JSON and checked by
/// [`text_arg`], so that an error names the argument (serde's would not).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindValuePointerArgs {
    /// Process id of the game (list_processes; under Wine the pid of the .exe process).
    #[schemars(required)]
    pub pid: Option<Value>,
    /// The value as the game shows it now, e.g. 1250 gold; leave out if unknown.
    pub value: Option<Value>,
    /// A numeric type such as u32, i16, f32 or f64 (default u32; f32 for a value with a
    /// decimal point).
    pub value_type: Option<Value>,
}

fn bad_argument(name: &str, message: String) -> ErrorData {
    ErrorData::invalid_params(message, Some(json!({ "argument": name })))
}

/// A prompt argument as text: MCP sends strings; a number is taken as its digits. Empty text
/// counts as absent (some hosts send "" for an argument left blank).
fn text_arg(name: &str, v: Option<&Value>) -> Result<Option<String>, ErrorData> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let t = s.trim();
            Ok((!t.is_empty()).then(|| t.to_string()))
        }
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(bad_argument(
            name,
            format!("invalid argument `{name}`: {other} (accepted: text)"),
        )),
    }
}

/// The checked arguments of `find_value_pointer`.
#[derive(Debug)]
struct Checked {
    pid: u32,
    process: ProcessInfo,
    value: Option<String>,
    value_type: ValueType,
}

fn check(a: &FindValuePointerArgs) -> Result<Checked, ErrorData> {
    let pid_text = text_arg("pid", a.pid.as_ref())?.ok_or_else(|| {
        bad_argument(
            "pid",
            "missing argument `pid`: the process id of the game (list_processes shows it)".into(),
        )
    })?;
    let pid = pid_text
        .parse::<u32>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| {
            bad_argument(
                "pid",
                format!("invalid argument `pid`: {pid_text:?} (accepted: a process id, 1 or more)"),
            )
        })?;
    let process = procfs::process_info(pid).ok_or_else(|| {
        bad_argument(
            "pid",
            format!(
                "invalid argument `pid`: {pid} (no such process; list_processes shows live ones)"
            ),
        )
    })?;
    let value = text_arg("value", a.value.as_ref())?;
    let value_type = match text_arg("value_type", a.value_type.as_ref())? {
        Some(t) => ValueType::parse(&t.to_lowercase())
            .filter(|vt| vt.size().is_some())
            .ok_or_else(|| {
                bad_argument(
                    "value_type",
                    format!(
                        "invalid argument `value_type`: {t:?} (accepted: {})",
                        NUMERIC_NAMES.join(", ")
                    ),
                )
            })?,
        None if value.as_deref().is_some_and(|v| v.contains('.')) => ValueType::F32,
        None => ValueType::U32,
    };
    if let Some(v) = &value {
        values::parse_number(value_type, &Value::String(v.clone()))
            .map_err(|e| bad_argument("value", format!("invalid argument `value`: {v:?} ({e})")))?;
    }
    Ok(Checked {
        pid,
        process,
        value,
        value_type,
    })
}

/// The pointer width of the process's game code: 4 when a 32-bit PE image is mapped (a
/// Windows game under Wine), else from the PE or ELF class; `None` when it cannot be told.
fn pointer_width(pid: u32) -> Option<usize> {
    if let (Ok(mem), Ok(regions)) = (ProcessMemory::open(pid), procfs::read_maps(pid)) {
        let mods = modules::modules(&mem, &regions);
        if mods.iter().any(|m| m.kind == ModuleKind::Pe && m.pe32) {
            return Some(4);
        }
        if mods.iter().any(|m| m.kind == ModuleKind::Pe) {
            return Some(8);
        }
    }
    let mut head = [0u8; 5];
    std::fs::File::open(format!("/proc/{pid}/exe"))
        .and_then(|mut f| f.read_exact(&mut head))
        .ok()?;
    (head[..4] == *b"\x7fELF").then_some(if head[4] == 1 { 4 } else { 8 })
}

/// A JSON number as the agent should write it in a tool call: integers bare, others quoted.
fn json_value(v: &str) -> String {
    if v.parse::<i64>().is_ok() || v.parse::<f64>().is_ok_and(f64::is_finite) {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

fn guide(c: &Checked, width: Option<usize>) -> String {
    let pid = c.pid;
    let vt = c.value_type.name();
    let who = c
        .process
        .main_image
        .as_deref()
        .and_then(|m| m.rsplit(['/', '\\']).next())
        .unwrap_or(&c.process.name);
    let (ps, ps_note) = match width {
        Some(w) => (w.to_string(), format!("{w}-byte pointers in this process")),
        None => (
            "<4 or 8>".to_string(),
            "4 for a 32-bit game such as Diablo II under Wine, 8 for 64-bit".to_string(),
        ),
    };
    let (first, next) = match &c.value {
        Some(v) => (
            format!(
                "scan_start {{\"pid\": {pid}, \"value_type\": \"{vt}\", \"value\": {}}}",
                json_value(v)
            ),
            "scan_next {\"scan_id\": \"<scan_id>\", \"condition\": \"equal\", \"value\": \
             <the new value>}"
                .to_string(),
        ),
        None => (
            format!(
                "scan_start {{\"pid\": {pid}, \"value_type\": \"{vt}\"}} (no value: an \
                 unknown-initial-value scan copies the memory)"
            ),
            "scan_next {\"scan_id\": \"<scan_id>\", \"condition\": \"increased\"} (or \
             decreased, changed; unchanged after waiting without changing it)"
                .to_string(),
        ),
    };
    format!(
        "Find where process {pid} ({who}) keeps a value ({vt}) and a pointer chain to it that \
         stays valid when the game restarts. Call the mcp-memory tools step by step and check \
         each answer before the next step.\n\
         \n\
         1. First scan: {first}. Diablo II keeps life, mana and stamina times 256 (50 life \
            is 12800): if the shown value is not found, scan for it times 256, or without a \
            value.\n\
         2. Change the value in the game (pick up or spend gold, take damage, level up), then \
            narrow: {next}. Repeat step 2 until only a few matches remain (scan_results pages \
            them). Check a candidate with read_value, or watch it while the value changes.\n\
         3. Pointer scan from module static memory to the match: pointer_scan {{\"pid\": {pid}, \
            \"target\": \"<match address>\", \"max_depth\": 3, \"max_offset\": 1024, \
            \"pointer_size\": {ps}}} ({ps_note}). Only if no chain is found, raise max_depth \
            (up to 5) or max_offset (up to 4096); the scan grows quickly with both.\n\
         4. Confirm a chain: resolve_pointer {{\"pid\": {pid}, \"base\": \"<chain base, \
            Module.dll+0x...>\", \"offsets\": [<its offsets>], \"pointer_size\": {ps}}} must \
            end at the match, and read_value there shows the value.\n\
         5. Prove it stable: make the value move (leave and join a new game, or restart the \
            game: a new pid), find it again with steps 1 and 2, then pointer_rescan \
            {{\"pointer_scan_id\": \"<pointer_scan_id>\", \"target\": \"<new address>\", \
            \"pid\": <pid now>}}. Repeat until the chains left survive every rescan.\n\
         \n\
         Report the best chain as Module.dll+0xOFFSET with its offsets, the pointer size and \
         the value type, and say how many restarts it survived."
    )
}

#[prompt_router(vis = "pub(crate)")]
impl MemoryServer {
    #[prompt(
        name = "find_value_pointer",
        title = "Find a stable pointer to a value",
        description = "Guides finding a value's address and a pointer chain to it that \
                       survives restarts: scan_start, change the value in the game, \
                       scan_next, pointer_scan, resolve_pointer, pointer_rescan."
    )]
    async fn find_value_pointer(
        &self,
        Parameters(a): Parameters<FindValuePointerArgs>,
    ) -> Result<GetPromptResult, ErrorData> {
        // /proc and the process's memory are read on a blocking thread.
        let (checked, width) = tokio::task::spawn_blocking(move || {
            let c = check(&a)?;
            let width = pointer_width(c.pid);
            Ok::<_, ErrorData>((c, width))
        })
        .await
        .map_err(|e| ErrorData::internal_error(format!("the prompt task failed: {e}"), None))??;
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            guide(&checked, width),
        )])
        .with_description(format!(
            "Find a stable pointer to a {} in process {}",
            checked.value_type.name(),
            checked.pid
        )))
    }
}

/// Well-known processes of a Wine prefix that are never the game.
const WINE_SERVICES: &[&str] = &[
    "services.exe",
    "winedevice.exe",
    "plugplay.exe",
    "explorer.exe",
    "svchost.exe",
    "rpcss.exe",
    "start.exe",
    "conhost.exe",
    "wineboot.exe",
    "tabtip.exe",
    "rundll32.exe",
];

/// Pids to offer for `typed`: digits match the start of the pid, other text the process name
/// or Windows image; games under Wine first, then other Wine processes, then the rest.
fn pid_candidates(typed: &str) -> Vec<String> {
    let typed = typed.trim().to_lowercase();
    let numeric = typed.chars().all(|c| c.is_ascii_digit());
    let mut procs: Vec<(u8, ProcessInfo)> = procfs::list_processes(None)
        .into_iter()
        .filter(|p| {
            if numeric {
                p.pid.to_string().starts_with(&typed)
            } else {
                p.name.to_lowercase().contains(&typed)
                    || p.main_image
                        .as_deref()
                        .is_some_and(|m| m.to_lowercase().contains(&typed))
            }
        })
        .map(|p| {
            let image = p
                .main_image
                .as_deref()
                .and_then(|m| m.rsplit(['/', '\\']).next())
                .map(str::to_lowercase);
            let rank = match image {
                Some(i) if !WINE_SERVICES.contains(&i.as_str()) => 0,
                _ if p.is_wine => 1,
                _ => 2,
            };
            (rank, p)
        })
        .collect();
    // Within a rank the newest process (highest pid) first: usually the one just started.
    procs.sort_by_key(|(rank, p)| (*rank, std::cmp::Reverse(p.pid)));
    procs.into_iter().map(|(_, p)| p.pid.to_string()).collect()
}

/// Answers `completion/complete` for the prompts' arguments, at most 100 values.
pub fn complete(
    server_prompts: &[rmcp::model::Prompt],
    store: &Store,
    request: &CompleteRequestParams,
) -> Result<CompletionInfo, ErrorData> {
    let prompt = match &request.r#ref {
        Reference::Prompt(p) => p.name.as_str(),
        Reference::Resource(r) => {
            return Err(ErrorData::invalid_params(
                format!(
                    "no resource template {:?}: mcp-memory has none to complete",
                    r.uri
                ),
                None,
            ));
        }
        other => {
            return Err(ErrorData::invalid_params(
                format!("cannot complete a {} reference", other.reference_type()),
                None,
            ));
        }
    };
    if !server_prompts.iter().any(|p| p.name == prompt) {
        return Err(ErrorData::invalid_params(
            format!(
                "unknown prompt `{prompt}` (prompts: {})",
                server_prompts
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None,
        ));
    }
    let typed = request.argument.value.as_str();
    let with_prefix = |names: Vec<String>| -> Vec<String> {
        names.into_iter().filter(|n| n.starts_with(typed)).collect()
    };
    let all = match request.argument.name.as_str() {
        "pid" => pid_candidates(typed),
        "value_type" => with_prefix(NUMERIC_NAMES.iter().map(|s| s.to_string()).collect()),
        "scan_id" => with_prefix(store.ids("scan")),
        "pointer_scan_id" => with_prefix(store.ids("ptr")),
        "snapshot_id" | "before" | "after" => with_prefix(store.ids("snap")),
        _ => Vec::new(),
    };
    let total = all.len();
    let mut values = all;
    values.truncate(CompletionInfo::MAX_VALUES);
    CompletionInfo::with_pagination(
        values,
        u32::try_from(total).ok(),
        total > CompletionInfo::MAX_VALUES,
    )
    .map_err(|e| ErrorData::internal_error(e, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The checked arguments, or the error message.
    fn checked(v: Value) -> Result<Result<Checked, String>, serde_json::Error> {
        let a: FindValuePointerArgs = serde_json::from_value(v)?;
        Ok(check(&a).map_err(|e| e.message.to_string()))
    }

    fn error(v: Value) -> Result<String, serde_json::Error> {
        Ok(checked(v)?.map_or_else(|e| e, |c| format!("accepted: {c:?}")))
    }

    #[test]
    fn arguments_are_checked_and_named() -> TestResult {
        let me = std::process::id();
        let c = checked(json!({"pid": me.to_string(), "value": "1250"}))??;
        assert_eq!((c.pid, c.value_type), (me, ValueType::U32));
        let c = checked(json!({"pid": me, "value": "2.5"}))??;
        assert_eq!(c.value_type, ValueType::F32);

        assert!(error(json!({}))?.contains("missing argument `pid`"));
        assert!(error(json!({"pid": ""}))?.contains("missing argument `pid`"));
        assert!(error(json!({"pid": "abc"}))?.contains("invalid argument `pid`"));
        assert!(error(json!({"pid": "0"}))?.contains("invalid argument `pid`"));
        assert!(error(json!({"pid": ["1"]}))?.contains("invalid argument `pid`"));
        assert!(error(json!({"pid": "4294967295"}))?.contains("no such process"));
        let e = error(json!({"pid": me.to_string(), "value_type": "cstring"}))?;
        assert!(
            e.contains("invalid argument `value_type`") && e.contains("ptr64"),
            "{e}"
        );
        let e = error(json!({"pid": me.to_string(), "value": "lots"}))?;
        assert!(e.contains("invalid argument `value`"), "{e}");
        let e = error(json!({"pid": me.to_string(), "value": "300", "value_type": "u8"}))?;
        assert!(
            e.contains("invalid argument `value`") && e.contains("does not fit"),
            "{e}"
        );
        let unknown = serde_json::from_value::<FindValuePointerArgs>(json!({"vaule": "3"}));
        assert!(unknown.is_err_and(|e| e.to_string().contains("unknown field `vaule`")));
        Ok(())
    }

    #[test]
    fn the_guide_fills_in_the_arguments() -> TestResult {
        let me = std::process::id();
        let process = procfs::process_info(me).ok_or("cannot read /proc for this process")?;
        let c = Checked {
            pid: me,
            process,
            value: Some("1250".into()),
            value_type: ValueType::U32,
        };
        let g = guide(&c, Some(4));
        for step in [
            format!("scan_start {{\"pid\": {me}, \"value_type\": \"u32\", \"value\": 1250}}"),
            "scan_next".into(),
            "\"pointer_size\": 4".into(),
            "resolve_pointer".into(),
            "pointer_rescan".into(),
        ] {
            assert!(g.contains(&step), "{step} not in {g}");
        }
        let unknown = guide(&Checked { value: None, ..c }, None);
        assert!(unknown.contains("\"condition\": \"increased\"") && unknown.contains("<4 or 8>"));
        Ok(())
    }

    #[test]
    fn this_process_is_offered_by_pid_and_by_name() {
        let me = std::process::id().to_string();
        assert!(pid_candidates("").contains(&me));
        let by_pid = pid_candidates(&me);
        assert!(by_pid.contains(&me) && by_pid.iter().all(|p| p.starts_with(&me)));
        assert!(!pid_candidates("no-such-process-name-here").contains(&me));
    }

    #[test]
    fn own_pointer_width_is_known() {
        let want = std::mem::size_of::<usize>();
        assert_eq!(pointer_width(std::process::id()), Some(want));
    }
}
