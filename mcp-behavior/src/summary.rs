//! A trace folded into what an analyst asks first: which files, registry keys, endpoints,
//! processes, modules, executable memory and API calls, each once with its first time and
//! count. Each list is bounded; its total says how many there were.

use crate::events::{Event, What};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::HashMap;

/// Entries kept per list (most frequent first, then earliest).
pub const MAX_ENTRIES: usize = 40;

#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct Entry {
    /// The file, key, endpoint, process, module, region or `MODULE.Function`.
    pub name: String,
    pub first_ms: f64,
    pub count: u64,
    /// What was done (file ops, socket ops), or a detail such as a module's base and hash.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Bytes sent and received (endpoints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema, Default)]
pub struct List {
    pub total: usize,
    pub items: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, JsonSchema, Default)]
pub struct Summary {
    pub events: usize,
    pub files: List,
    pub registry: List,
    pub endpoints: List,
    pub processes: List,
    pub modules: List,
    pub exec_memory: List,
    pub api: List,
    pub exceptions: List,
}

#[derive(Default)]
struct Acc {
    order: Vec<String>,
    by: HashMap<String, Entry>,
}

impl Acc {
    fn add(&mut self, name: String, t: f64, op: &str, bytes: Option<u64>) {
        let e = self.by.entry(name.clone()).or_insert_with(|| {
            self.order.push(name.clone());
            Entry {
                name,
                first_ms: t,
                count: 0,
                detail: String::new(),
                bytes: None,
            }
        });
        e.count += 1;
        if !op.is_empty() && !e.detail.split(',').any(|d| d == op) {
            if !e.detail.is_empty() {
                e.detail.push(',');
            }
            e.detail.push_str(op);
        }
        if let Some(b) = bytes {
            *e.bytes.get_or_insert(0) += b;
        }
    }

    fn list(self) -> List {
        let Acc { order, mut by } = self;
        let mut items: Vec<Entry> = order.into_iter().filter_map(|n| by.remove(&n)).collect();
        let total = items.len();
        items.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.first_ms.total_cmp(&b.first_ms))
        });
        items.truncate(MAX_ENTRIES);
        List { total, items }
    }
}

/// Folds `events` into a summary.
pub fn summarise(events: &[Event]) -> Summary {
    let mut files = Acc::default();
    let mut registry = Acc::default();
    let mut endpoints = Acc::default();
    let mut processes = Acc::default();
    let mut modules = Acc::default();
    let mut exec = Acc::default();
    let mut api = Acc::default();
    let mut exceptions = Acc::default();
    for e in events {
        let t = e.t_ms;
        match &e.what {
            What::File { op, path, to } => {
                files.add(path.clone(), t, op, None);
                if let Some(to) = to {
                    files.add(to.clone(), t, "renamed_to", None);
                }
            }
            What::Registry { op, key } => registry.add(key.clone(), t, op, None),
            What::Socket {
                op, peer, bytes, ..
            } => {
                if let Some(p) = peer {
                    endpoints.add(p.clone(), t, op, *bytes);
                }
            }
            What::Process {
                op,
                child,
                path,
                argv,
            } => {
                let name = match (op, child) {
                    (&"spawn", Some(c)) | (&"thread", Some(c)) => format!("{op} {c}"),
                    _ => format!(
                        "{} {}",
                        e.pid,
                        path.clone()
                            .or_else(|| argv.first().cloned())
                            .unwrap_or_default()
                    ),
                };
                processes.add(name, t, op, None);
            }
            What::Module { path, base, sha256 } => {
                modules.add(path.clone(), t, "", None);
                if let Some(m) = modules.by.get_mut(path)
                    && m.detail.is_empty()
                {
                    m.detail = match sha256 {
                        Some(h) => format!("base 0x{base:X} sha256 {h}"),
                        None => format!("base 0x{base:X}"),
                    };
                }
            }
            What::ExecMemory {
                op,
                address,
                length,
                path,
            } => {
                let name = match path {
                    Some(p) => format!("0x{address:X}+0x{length:X} {p}"),
                    None => format!("0x{address:X}+0x{length:X} anonymous"),
                };
                exec.add(name, t, op, None);
            }
            What::Api {
                module, function, ..
            } => api.add(format!("{module}.{function}"), t, "", None),
            What::Exception { code, .. } => exceptions.add(code.clone(), t, "", None),
        }
    }
    Summary {
        events: events.len(),
        files: files.list(),
        registry: registry.list(),
        endpoints: endpoints.list(),
        processes: processes.list(),
        modules: modules.list(),
        exec_memory: exec.list(),
        api: api.list(),
        exceptions: exceptions.list(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, t: f64, what: What) -> Event {
        Event {
            seq,
            t_ms: t,
            pid: 1,
            tid: 1,
            what,
        }
    }

    #[test]
    fn files_and_endpoints_fold_with_first_time_and_count() {
        let events = vec![
            ev(
                0,
                1.0,
                What::File {
                    op: "open",
                    path: "/a".into(),
                    to: None,
                },
            ),
            ev(
                1,
                2.0,
                What::File {
                    op: "write",
                    path: "/a".into(),
                    to: None,
                },
            ),
            ev(
                2,
                3.0,
                What::Socket {
                    op: "send",
                    peer: Some("1.2.3.4:4000".into()),
                    port: Some(4000),
                    bytes: Some(10),
                },
            ),
            ev(
                3,
                4.0,
                What::Socket {
                    op: "send",
                    peer: Some("1.2.3.4:4000".into()),
                    port: Some(4000),
                    bytes: Some(5),
                },
            ),
        ];
        let s = summarise(&events);
        assert_eq!(s.files.total, 1);
        assert_eq!(s.files.items[0].count, 2);
        assert_eq!(s.files.items[0].first_ms, 1.0);
        assert_eq!(s.files.items[0].detail, "open,write");
        assert_eq!(s.endpoints.items[0].bytes, Some(15));
        assert_eq!(s.api.total, 0);
    }
}
