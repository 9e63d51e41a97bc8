//! What an analyser outside needs to reach a process inside: host pids (from the cgroup), the
//! matching pid inside the namespace (`NSpid:` in /proc/<pid>/status) and which process is the
//! game (the one mapping the .exe, or the program itself for native programs).
//!
//! Reading another process's memory (`process_vm_readv`, /proc/<pid>/mem) needs ptrace-attach
//! permission: root or CAP_SYS_PTRACE, or, under Yama `ptrace_scope=1`, being an ancestor (so
//! start the runner from the analyser's side). It takes no tracer slot. A long-lived
//! PTRACE_ATTACH/SEIZE would take the only slot and break wineserver's own ptrace use: attach
//! only briefly (mcp-memory's `freeze` does) and detach. The pid namespace does not hide the
//! sandbox from the host; host pids are what the analysers use.

use serde::Serialize;
use std::path::Path;

/// One process of the sandbox, seen from the host.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Proc {
    /// Host pid (use this with mcp-memory).
    pub pid: u32,
    /// Pid inside the sandbox's pid namespace (absent for a process outside it).
    pub ns_pid: Option<u32>,
    pub name: String,
    /// `init` is the runner's own (`holder` for one outside the namespace); `program` is what
    /// was launched; `process` anything it started.
    pub role: String,
    /// Windows executables mapped (under Wine), file names only.
    pub exe_mappings: Vec<String>,
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

/// `.exe` files mapped by `pid`, by file name, lower case.
fn exe_mappings(pid: u32) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut out: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.to_ascii_lowercase().ends_with(".exe"))
        .filter_map(|p| {
            Path::new(p)
                .file_name()
                .and_then(|f| f.to_str())
                .map(str::to_ascii_lowercase)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Describes each host pid of the sandbox; `program_ns_pid` is the launched program's pid
/// inside the namespace.
pub fn describe(pids: &[u32], program_ns_pid: u32) -> Vec<Proc> {
    pids.iter()
        .filter_map(|&pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let name = status_field(&status, "Name:").unwrap_or("").to_string();
            let nspids: Vec<u32> = status_field(&status, "NSpid:")
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let ns_pid = if nspids.len() > 1 {
                nspids.last().copied()
            } else {
                None
            };
            let role = match ns_pid {
                None => "holder",
                Some(1) => "init",
                Some(n) if n == program_ns_pid => "program",
                Some(_) => "process",
            }
            .to_string();
            Some(Proc {
                pid,
                ns_pid,
                name,
                role,
                exe_mappings: exe_mappings(pid),
            })
        })
        .collect()
}

/// The game: the process mapping `exe_name` (the .exe given to Wine) when known; else the
/// first process mapping any .exe outside Wine's own system directory set; else the program.
pub fn game_pid(procs: &[Proc], exe_name: Option<&str>) -> Option<u32> {
    const WINE_OWN: &[&str] = &[
        "start.exe",
        "services.exe",
        "winedevice.exe",
        "plugplay.exe",
        "explorer.exe",
        "svchost.exe",
        "rpcss.exe",
        "conhost.exe",
        "wineboot.exe",
        "rundll32.exe",
        "tabtip.exe",
    ];
    if let Some(want) = exe_name.map(str::to_ascii_lowercase)
        && let Some(p) = procs.iter().find(|p| p.exe_mappings.contains(&want))
    {
        return Some(p.pid);
    }
    procs
        .iter()
        .find(|p| {
            p.exe_mappings
                .iter()
                .any(|m| !WINE_OWN.contains(&m.as_str()))
        })
        .or_else(|| procs.iter().find(|p| p.role == "program"))
        .map(|p| p.pid)
}
