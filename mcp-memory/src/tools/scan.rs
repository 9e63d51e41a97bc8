//! Scans: first scans for a value, pattern, text or unknown value, next scans that narrow
//! them, their matches, and pointer scans (with rescans) for chains to an address.

use super::{
    ChainItem, ConditionName, DEFAULT_MAX_RESULTS, MAX_MAX_RESULTS, MatchItem, MemoryServer,
    PointerRescanArgs, PointerScanAnswer, PointerScanArgs, ScanAnswer, ScanNextArgs,
    ScanResultsArgs, ScanStartArgs, Target, TextEncoding, check_range, hex_bytes, mem_error,
    pointer_size, pointer_size_for, target, track_control,
};
use crate::freeze::Frozen;
use crate::modules::{self, Module};
use crate::pointers::{self, Chain};
use crate::reader::MemError;
use crate::scan::{self, Condition, Control, FirstScan, Matches, ScanError};
use crate::sessions::{PointerSession, ScanSession};
use crate::store::Item;
use crate::values::{self, Num, TYPE_NAMES, ValueType};
use mcp_common::paging::MAX_ANSWER_BYTES;
use mcp_common::{Address, Json, Page, ToolError, blocking};
use mcp_static::pattern::Pattern;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn scan_error(e: ScanError, pid: u32) -> ToolError {
    match e {
        ScanError::Mem(MemError::Gone(_)) => ToolError::new(format!(
            "process {pid} exited during the scan; nothing was kept"
        )),
        ScanError::Mem(m) => mem_error(m, pid),
        other => ToolError::new(other.to_string()),
    }
}

/// A pointer scan's target must be reachable by a pointer of `size` bytes: at most
/// 0xFFFFFFFF with 4-byte pointers.
fn check_pointer_target(field: &str, target: u64, size: usize) -> Result<(), ToolError> {
    if size == 4 && target > u64::from(u32::MAX) {
        return Err(ToolError::invalid(
            field,
            Address(target),
            "a 4-byte pointer cannot reach it (above 0xFFFFFFFF: 32 bits); accepted: an \
             address at most 0xFFFFFFFF, or pointer_size 8",
        ));
    }
    Ok(())
}

/// Builds match items (value read now, previous from the scan) for `addrs`.
fn match_items(
    t: &Target,
    vt: Option<ValueType>,
    stride: usize,
    addrs: &[u64],
    prev: &[u8],
) -> Vec<MatchItem> {
    let show = |b: &[u8]| match vt {
        Some(v) => v.to_json(b),
        None => Value::String(hex_bytes(b)),
    };
    let mut now: Vec<Option<Value>> = vec![None; addrs.len()];
    let _ = scan::read_cells(&t.mem, addrs, stride, |i, cur| {
        now[i] = cur.map(show);
        true
    });
    addrs
        .iter()
        .enumerate()
        .map(|(i, &a)| MatchItem {
            address: Address(a),
            module: t.name(a),
            value: now[i].take(),
            previous: prev
                .get(i * stride..(i + 1) * stride)
                .map_or(Value::Null, show),
        })
        .collect()
}

fn first_page(t: &Target, s: &ScanSession) -> Vec<MatchItem> {
    match &s.matches {
        Matches::Cells {
            stride,
            addrs,
            prev,
        } => {
            let n = addrs.len().min(100);
            let mut items = match_items(t, s.value_type, *stride, &addrs[..n], &prev[..n * stride]);
            let mut bytes = 0;
            items.retain(|i| {
                bytes += serde_json::to_vec(i).map_or(0, |v| v.len());
                bytes < MAX_ANSWER_BYTES / 2
            });
            items
        }
        Matches::Copies { .. } => Vec::new(),
    }
}

fn parse_condition(
    c: ConditionName,
    value: Option<&Value>,
    vt: Option<ValueType>,
) -> Result<(Condition, f64), ToolError> {
    let need = |v: Option<&Value>| -> Result<(Num, f64), ToolError> {
        let v = v.ok_or_else(|| {
            ToolError::invalid("value", "missing", format!("condition {c:?} needs a value"))
        })?;
        let t = vt.ok_or_else(|| {
            ToolError::invalid(
                "condition",
                format!("{c:?}"),
                "pattern and text scans accept only changed and unchanged",
            )
        })?;
        let n = values::parse_number(t, v).map_err(|e| ToolError::invalid("value", v, e))?;
        let tol = if t.is_float() {
            values::float_tolerance(v)
        } else {
            0.0
        };
        Ok((n, tol))
    };
    let numeric = |cond: Condition| -> Result<(Condition, f64), ToolError> {
        if vt.is_none() {
            return Err(ToolError::invalid(
                "condition",
                format!("{c:?}"),
                "pattern and text scans accept only changed and unchanged",
            ));
        }
        Ok((cond, 0.0))
    };
    Ok(match c {
        ConditionName::Changed => (Condition::Changed, 0.0),
        ConditionName::Unchanged => (Condition::Unchanged, 0.0),
        ConditionName::Increased => numeric(Condition::Increased)?,
        ConditionName::Decreased => numeric(Condition::Decreased)?,
        ConditionName::Equal => need(value).map(|(n, t)| (Condition::Equal(n), t))?,
        ConditionName::NotEqual => need(value).map(|(n, t)| (Condition::NotEqual(n), t))?,
        ConditionName::IncreasedBy => need(value).map(|(n, t)| (Condition::IncreasedBy(n), t))?,
        ConditionName::DecreasedBy => need(value).map(|(n, t)| (Condition::DecreasedBy(n), t))?,
        ConditionName::Greater => need(value).map(|(n, _)| (Condition::Greater(n), 0.0))?,
        ConditionName::Less => need(value).map(|(n, _)| (Condition::Less(n), 0.0))?,
        ConditionName::Between => {
            let pair = value
                .and_then(Value::as_array)
                .filter(|a| a.len() == 2)
                .ok_or_else(|| {
                    ToolError::invalid(
                        "value",
                        value.map_or("missing".into(), Value::to_string),
                        "between needs [low, high]",
                    )
                })?;
            let (lo, _) = need(pair.first())?;
            let (hi, _) = need(pair.get(1))?;
            (Condition::Between(lo, hi), 0.0)
        }
    })
}

/// Scan ranges: scannable regions, writable if asked, clipped to a module if asked.
fn scan_ranges(t: &Target, writable_only: bool, module: Option<&Module>) -> Vec<(u64, u64)> {
    t.regions
        .iter()
        .filter(|r| r.scannable() && (!writable_only || r.writable))
        .filter_map(|r| match module {
            None => Some((r.start, r.end)),
            Some(m) => {
                let s = r.start.max(m.base);
                let e = r.end.min(m.base.saturating_add(m.size));
                (s < e).then_some((s, e))
            }
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[tool_router(router = scan_router, vis = "pub(super)")]
impl MemoryServer {
    #[tool(
        title = "Start scan",
        description = "First scan for a value, pattern, text, or (value_type alone) an unknown \
             value. Then change it in game and scan_next.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn scan_start(
        &self,
        Parameters(a): Parameters<ScanStartArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<ScanAnswer>, ToolError> {
        let given: Vec<&str> = [
            ("value", a.value.is_some()),
            ("pattern", a.pattern.is_some()),
            ("text", a.text.is_some()),
        ]
        .iter()
        .filter(|(_, g)| *g)
        .map(|(n, _)| *n)
        .collect();
        if given.len() > 1 {
            return Err(ToolError::invalid(
                "value|pattern|text",
                given.join(" and "),
                "give at most one of value, pattern, text",
            ));
        }
        let (what, stride, kind, vt) = if let Some(v) = &a.value {
            let vt = a.value_type.ok_or_else(|| {
                ToolError::invalid(
                    "value_type",
                    "missing",
                    format!("a value scan needs one of: {TYPE_NAMES}"),
                )
            })?;
            let size = vt.size().ok_or_else(|| {
                ToolError::invalid("value_type", vt.name(), "for strings use `text`")
            })?;
            let what = if vt.is_float() {
                let f = match values::parse_number(vt, v) {
                    Ok(n) => n.as_f64(),
                    Err(e) => return Err(ToolError::invalid("value", v, e)),
                };
                FirstScan::Float {
                    vt,
                    value: f,
                    tolerance: values::float_tolerance(v),
                }
            } else {
                FirstScan::Bytes(
                    vt.encode(v)
                        .map_err(|e| ToolError::invalid("value", v, e))?,
                )
            };
            (what, size, "value", Some(vt))
        } else if let Some(p) = &a.pattern {
            let pat = Pattern::parse(p)
                .map_err(|e| ToolError::invalid("pattern", format!("{p:?}"), e))?;
            let len = pat.len();
            (FirstScan::Pattern(pat), len, "pattern", None)
        } else if let Some(text) = &a.text {
            if text.is_empty() || text.len() > 4096 {
                return Err(ToolError::invalid(
                    "text",
                    format!("{text:?}"),
                    "accepted: 1 to 4096 bytes",
                ));
            }
            let bytes: Vec<u8> = match a.text_encoding.unwrap_or_default() {
                TextEncoding::Utf8 => text.as_bytes().to_vec(),
                TextEncoding::Utf16 => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            };
            let len = bytes.len();
            (FirstScan::Bytes(bytes), len, "text", None)
        } else {
            let vt = a.value_type.ok_or_else(|| {
                ToolError::invalid(
                    "value|pattern|text",
                    "none given",
                    format!("give a value (with value_type), a pattern or a text; or value_type alone for an unknown-initial-value scan ({TYPE_NAMES})"),
                )
            })?;
            let size = vt.size().ok_or_else(|| {
                ToolError::invalid("value_type", vt.name(), "for strings use `text`")
            })?;
            (FirstScan::Unknown, size, "unknown", Some(vt))
        };
        let alignment = a
            .alignment
            .unwrap_or(if kind == "value" || kind == "unknown" {
                stride
            } else {
                1
            });
        if ![1, 2, 4, 8, 16].contains(&alignment) {
            return Err(ToolError::invalid(
                "alignment",
                alignment,
                "accepted: 1, 2, 4, 8 or 16",
            ));
        }
        let max_results = check_range(
            "max_results",
            a.max_results.unwrap_or(DEFAULT_MAX_RESULTS),
            1,
            MAX_MAX_RESULTS,
        )?;
        let ctl = Arc::new(Control::default());
        let _progress = track_control(&ctx, &ctl, Some("bytes scanned"));
        let store = self.store.clone();
        blocking(move || {
            let started = Instant::now();
            let t = target(a.pid)?;
            let module = t.module("module", a.module.as_deref())?;
            let ranges = scan_ranges(&t, a.writable_only.unwrap_or(true), module);
            let frozen = if a.freeze.unwrap_or(false) {
                Some(Frozen::new(a.pid).map_err(ToolError::new)?)
            } else {
                None
            };
            let spec = scan::ScanSpec {
                what,
                stride,
                alignment,
                max_results,
                copy_budget: store.budget(),
            };
            let (session, step) = ScanSession::start(&t.mem, &ranges, &spec, vt, kind, &ctl)
                .map_err(|e| scan_error(e, a.pid))?;
            drop(frozen);
            let match_count = session.match_count();
            let matches = first_page(&t, &session);
            let bytes = session.matches.bytes();
            let id = store
                .insert("scan", Item::Scan(Arc::new(Mutex::new(session))), bytes)
                .map_err(ToolError::new)?;
            Ok(ScanAnswer {
                scan_id: id,
                kind: kind.into(),
                value_type: vt.map(|v| v.name().into()),
                match_count,
                limit_reached: step.limit_reached,
                bytes_scanned: step.bytes_scanned,
                unreadable: step.unreadable,
                elapsed_ms: started.elapsed().as_millis() as u64,
                matches,
            })
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Narrow scan",
        description = "Keeps matches meeting a condition. Repeat after each change in game until \
             few remain, then pointer_scan one.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn scan_next(
        &self,
        Parameters(a): Parameters<ScanNextArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<ScanAnswer>, ToolError> {
        let session = self
            .store
            .scan(&a.scan_id)
            .map_err(|e| ToolError::invalid("scan_id", format!("{:?}", a.scan_id), e))?;
        let vt = lock(&session).value_type;
        let (cond, tol) = parse_condition(a.condition, a.value.as_ref(), vt)?;
        let ctl = Arc::new(Control::default());
        let _progress = track_control(&ctx, &ctl, None);
        let store = self.store.clone();
        let id = a.scan_id.clone();
        blocking(move || {
            let started = Instant::now();
            let mut s = lock(&session);
            let t = target(s.pid)?;
            let step = s
                .next(&t.mem, cond, tol, &ctl)
                .map_err(|e| scan_error(e, s.pid))?;
            store.resize(&id, s.matches.bytes());
            let match_count = s.match_count();
            Ok(ScanAnswer {
                matches: first_page(&t, &s),
                scan_id: id,
                kind: s.kind.into(),
                value_type: s.value_type.map(|v| v.name().into()),
                match_count,
                limit_reached: step.limit_reached,
                bytes_scanned: step.bytes_scanned,
                unreadable: step.unreadable,
                elapsed_ms: started.elapsed().as_millis() as u64,
            })
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Scan matches",
        description = "Pages a scan's matches, with values now and at the last scan.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn scan_results(
        &self,
        Parameters(a): Parameters<ScanResultsArgs>,
    ) -> Result<Json<Page<MatchItem>>, ToolError> {
        let (offset, limit) = a.page.resolve()?;
        let session = self
            .store
            .scan(&a.scan_id)
            .map_err(|e| ToolError::invalid("scan_id", format!("{:?}", a.scan_id), e))?;
        blocking(move || {
            let s = lock(&session);
            let Matches::Cells {
                stride,
                addrs,
                prev,
            } = &s.matches
            else {
                return Err(ToolError::invalid(
                    "scan_id",
                    format!("{:?}", a.scan_id),
                    "an unknown-value scan has no list yet: run scan_next (e.g. changed) first",
                ));
            };
            let t = target(s.pid)?;
            let total = addrs.len();
            let end = (offset + limit).min(total);
            let start = offset.min(end);
            let items = match_items(
                &t,
                s.value_type,
                *stride,
                &addrs[start..end],
                &prev[start * stride..end * stride],
            );
            Ok(Page::fit(items, start, total))
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Pointer scan",
        description = "Finds restart-proof pointer chains from module statics to target, shortest \
             first. Then resolve_pointer; later pointer_rescan.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn pointer_scan(
        &self,
        Parameters(a): Parameters<PointerScanArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<PointerScanAnswer>, ToolError> {
        if let Some(v) = a.pointer_size {
            pointer_size(v)?;
        }
        let max_depth = check_range("max_depth", a.max_depth, 1, 5)?;
        let max_offset = check_range("max_offset", a.max_offset, 0, 4096)?;
        let max_results = check_range("max_results", a.max_results.unwrap_or(1000), 1, 100_000)?;
        let timeout = check_range("timeout_s", a.timeout_s.unwrap_or(60), 1, 600)?;
        let ctl = Arc::new(Control::default());
        let _progress = track_control(&ctx, &ctl, Some("bytes indexed"));
        let store = self.store.clone();
        blocking(move || {
            let started = Instant::now();
            let t = target(a.pid)?;
            let size = pointer_size_for(a.pointer_size, &t, a.pid)?;
            let target_addr = t.resolve("target", &a.target)?;
            check_pointer_target("target", target_addr, size)?;
            let wanted = a.modules.unwrap_or_default();
            for m in &wanted {
                if modules::find(&t.modules, m).is_none() {
                    return Err(modules::not_loaded("modules", m, &t.modules));
                }
            }
            let params = pointers::ScanParams {
                target: target_addr,
                max_depth,
                max_offset,
                pointer_size: size,
                modules: wanted,
                max_results,
                time_limit: Duration::from_secs(timeout),
            };
            let out = pointers::scan(&t.mem, &t.regions, &t.modules, &params, &ctl)
                .map_err(|e| scan_error(e, a.pid))?;
            let chains = chain_items(&t, &out.chains);
            let session = PointerSession {
                pid: a.pid,
                pointer_size: size,
                target: target_addr,
                chains: out.chains.clone(),
            };
            let bytes = session.bytes();
            let id = store
                .insert("ptr", Item::Pointers(Arc::new(Mutex::new(session))), bytes)
                .map_err(ToolError::new)?;
            Ok(PointerScanAnswer {
                pointer_scan_id: id,
                target: Address(target_addr),
                chain_count: out.chains.len(),
                chains,
                depth_completed: out.depth_completed,
                stopped: out.stopped,
                pointers_indexed: out.pointers_indexed,
                bytes_scanned: out.bytes_scanned,
                elapsed_ms: started.elapsed().as_millis() as u64,
            })
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Pointer rescan",
        description = "Keeps a pointer scan's chains that reach the value's new address (after a \
             move or restart). Repeat until stable.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn pointer_rescan(
        &self,
        Parameters(a): Parameters<PointerRescanArgs>,
    ) -> Result<Json<PointerScanAnswer>, ToolError> {
        let id = a.pointer_scan_id.clone();
        let session = self
            .store
            .pointers(&id)
            .map_err(|e| ToolError::invalid("pointer_scan_id", format!("{id:?}"), e))?;
        let store = self.store.clone();
        blocking(move || {
            let started = Instant::now();
            let mut s = lock(&session);
            let pid = a.pid.unwrap_or(s.pid);
            let t = target(pid)?;
            let target_addr = t.resolve("target", &a.target)?;
            check_pointer_target("target", target_addr, s.pointer_size)?;
            s.rescan(&t.mem, &t.modules, target_addr);
            store.resize(&id, s.bytes());
            Ok(PointerScanAnswer {
                pointer_scan_id: id,
                target: Address(target_addr),
                chain_count: s.chains.len(),
                chains: chain_items(&t, &s.chains),
                depth_completed: s.chains.iter().map(|c| c.offsets.len()).max().unwrap_or(0),
                stopped: None,
                pointers_indexed: 0,
                bytes_scanned: 0,
                elapsed_ms: started.elapsed().as_millis() as u64,
            })
        })
        .await
        .map(Json)
    }
}

fn chain_items(t: &Target, chains: &[Chain]) -> Vec<ChainItem> {
    chains
        .iter()
        .take(200)
        .map(|c| ChainItem {
            base: format!("{}+0x{:X}", c.module, c.module_offset),
            base_address: Address(
                modules::find(&t.modules, &c.module)
                    .map_or(0, |m| m.base)
                    .saturating_add(c.module_offset),
            ),
            offsets: c.offsets.iter().map(|&o| Address(o)).collect(),
        })
        .collect()
}
