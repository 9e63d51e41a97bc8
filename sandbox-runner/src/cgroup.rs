//! One cgroup per sandbox, on cgroup v2 (`memory.max`, `pids.max`, `cpu.max`, `cgroup.kill`)
//! or v1 (`memory.limit_in_bytes`, `pids.max`, `cpu.cfs_quota_us`, the freezer), whichever
//! the host has: detected at run time. The limits, the events (OOM kills, pids-limit hits), the
//! usage figures and the kill of everything inside all live here.

use crate::limits::Limits;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROOT: &str = "/sys/fs/cgroup";
/// The parent group sandboxes are made in, unless `$SANDBOX_RUNNER_CGROUP` names another
/// (a group delegated to an unprivileged user, say).
const GROUP: &str = "sandbox-runner";
/// v1 controllers a sandbox joins; `cpuacct` only for the usage figure, when mounted apart.
const V1_CONTROLLERS: &[&str] = &["memory", "pids", "cpu", "freezer", "cpuacct"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
}

/// A sandbox's cgroup: one directory on v2, one per controller on v1.
#[derive(Debug, Clone)]
pub struct Cgroup {
    pub version: Version,
    /// v2: the one directory. v1: memory, pids, cpu, freezer (and cpuacct when separate).
    dirs: Vec<(String, PathBuf)>,
}

/// Usage and events read from the cgroup.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub memory_bytes: u64,
    pub memory_peak_bytes: u64,
    pub cpu_usage_ms: u64,
    pub tasks: u64,
    pub oom_kills: u64,
    pub pids_limit_hits: u64,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|e| format!("cgroup: writing {value:?} to {}: {e}", path.display()))
}

/// `key value` lines (memory.events, pids.events, memory.oom_control, cpu.stat).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next().and_then(|v| v.parse().ok()))
            .flatten()
    })
}

/// This process's own path in a v1 hierarchy (`own`: /proc/self/cgroup, read once for all
/// controllers), so sandboxes nest under whatever already limits the runner.
fn own_v1_path(own: &str, controller: &str) -> String {
    own.lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let names = parts.next()?;
            let path = parts.next()?;
            names
                .split(',')
                .any(|n| n == controller)
                .then(|| path.trim_start_matches('/').to_string())
        })
        .unwrap_or_default()
}

fn hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        " (the sandbox needs root, or a cgroup delegated to this user)"
    } else {
        ""
    }
}

/// The parent group's name: `$SANDBOX_RUNNER_CGROUP` or [`GROUP`].
fn group() -> Result<String, String> {
    match std::env::var("SANDBOX_RUNNER_CGROUP") {
        Ok(g)
            if !g.is_empty()
                && g.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !g.starts_with('.') =>
        {
            Ok(g)
        }
        Ok(g) => Err(format!(
            "SANDBOX_RUNNER_CGROUP {g:?} is not a plain group name; accepted: letters, digits, - _ ."
        )),
        Err(_) => Ok(GROUP.to_string()),
    }
}

/// Which cgroup version carries the memory and pids controllers here.
pub fn detect() -> Result<Version, String> {
    let controllers = read(&Path::new(ROOT).join("cgroup.controllers")).unwrap_or_default();
    if controllers.split_whitespace().any(|c| c == "memory")
        && controllers.split_whitespace().any(|c| c == "pids")
    {
        return Ok(Version::V2);
    }
    if Path::new(ROOT)
        .join("memory/memory.limit_in_bytes")
        .exists()
        && Path::new(ROOT).join("pids").is_dir()
    {
        return Ok(Version::V1);
    }
    Err(format!(
        "no cgroup memory and pids controllers under {ROOT} (neither v2 nor v1): the sandbox cannot limit resources"
    ))
}

/// The parent group's directory in each hierarchy: one on v2; on v1 one per controller,
/// under the runner's own cgroup (`cpuacct` only when mounted apart from `cpu`).
fn group_dirs(version: Version, group: &str) -> Vec<(String, PathBuf)> {
    match version {
        Version::V2 => vec![("unified".into(), Path::new(ROOT).join(group))],
        Version::V1 => {
            let own = read(Path::new("/proc/self/cgroup")).unwrap_or_default();
            V1_CONTROLLERS
                .iter()
                .filter(|c| {
                    let mount = Path::new(ROOT).join(c);
                    **c != "cpuacct" || (mount.is_dir() && !mount.join("cpu.shares").exists())
                })
                .map(|c| {
                    let d = Path::new(ROOT)
                        .join(c)
                        .join(own_v1_path(&own, c))
                        .join(group);
                    (c.to_string(), d)
                })
                .collect()
        }
    }
}

/// Where a sandbox's cgroup lives: its id under each of [`group_dirs`].
fn v1_or_v2_dirs(version: Version, group: &str, id: &str) -> Vec<(String, PathBuf)> {
    group_dirs(version, group)
        .into_iter()
        .map(|(c, d)| (c, d.join(id)))
        .collect()
}

/// The names of the sandbox groups (`sbx-*`) in the parent group, in any hierarchy: what
/// [`crate::sandbox::sweep`] checks for groups whose runner died (on v1 a launch killed while
/// creating its groups may have made some hierarchies' only).
pub fn sandbox_ids() -> Vec<String> {
    let (Ok(version), Ok(group)) = (detect(), group()) else {
        return Vec::new();
    };
    let mut ids = std::collections::BTreeSet::new();
    for (_, d) in group_dirs(version, &group) {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("sbx-") && e.file_type().is_ok_and(|t| t.is_dir()) {
                ids.insert(name);
            }
        }
    }
    ids.into_iter().collect()
}

impl Cgroup {
    /// The directories of an existing sandbox's cgroup (those that exist), to clean up after
    /// a runner that died.
    pub fn existing(id: &str) -> Option<Cgroup> {
        let version = detect().ok()?;
        let dirs: Vec<_> = v1_or_v2_dirs(version, &group().ok()?, id)
            .into_iter()
            .filter(|(_, d)| d.is_dir())
            .collect();
        (!dirs.is_empty()).then_some(Cgroup { version, dirs })
    }

    /// Creates the sandbox's cgroup and writes its limits.
    pub fn create(id: &str, limits: &Limits) -> Result<Cgroup, String> {
        let version = detect()?;
        let group = group()?;
        let cg = match version {
            Version::V2 => {
                let parent = Path::new(ROOT).join(&group);
                std::fs::create_dir_all(&parent)
                    .map_err(|e| format!("cgroup: creating {}: {e}", parent.display()))?;
                // Enable the controllers down to the parent group; a delegated group has them
                // already (and its user may not write the root's file), so what counts is
                // that they are on in the end.
                let _ = write(
                    &Path::new(ROOT).join("cgroup.subtree_control"),
                    "+memory +pids +cpu",
                );
                let _ = write(&parent.join("cgroup.subtree_control"), "+memory +pids +cpu");
                let on = read(&parent.join("cgroup.subtree_control")).unwrap_or_default();
                for c in ["memory", "pids"] {
                    if !on.split_whitespace().any(|x| x == c) {
                        return Err(format!(
                            "cgroup: the {c} controller is not enabled in {}/cgroup.subtree_control{}",
                            parent.display(),
                            " (the sandbox needs root, or a cgroup delegated with memory and pids)"
                        ));
                    }
                }
                let dir = parent.join(id);
                std::fs::create_dir(&dir)
                    .map_err(|e| format!("cgroup: creating {}: {e}{}", dir.display(), hint(&e)))?;
                Cgroup {
                    version,
                    dirs: vec![("unified".into(), dir)],
                }
            }
            Version::V1 => {
                let mut dirs = Vec::new();
                for (c, dir) in v1_or_v2_dirs(version, &group, id) {
                    if let Err(e) = std::fs::create_dir_all(&dir) {
                        let partial = Cgroup { version, dirs };
                        partial.remove();
                        return Err(format!(
                            "cgroup: creating {}: {e}{}",
                            dir.display(),
                            hint(&e)
                        ));
                    }
                    dirs.push((c, dir));
                }
                Cgroup { version, dirs }
            }
        };
        if let Err(e) = cg.set_limits(limits) {
            cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        match self.version {
            Version::V2 => self.dirs.first().map(|(_, d)| d.as_path()),
            Version::V1 => self
                .dirs
                .iter()
                .find(|(c, _)| c == controller)
                .map(|(_, d)| d.as_path()),
        }
    }

    fn set_limits(&self, limits: &Limits) -> Result<(), String> {
        let missing = |c: &str| format!("cgroup: no {c} controller");
        let period: u64 = 100_000;
        let quota = ((limits.cpus * period as f64).round() as u64).max(1000);
        match self.version {
            Version::V2 => {
                let d = self.dir("unified").ok_or_else(|| missing("unified"))?;
                write(&d.join("memory.max"), &limits.memory_bytes.to_string())?;
                // No swap: the limit must end in an OOM kill, not in swapping.
                let _ = write(&d.join("memory.swap.max"), "0");
                write(&d.join("pids.max"), &limits.pids.to_string())?;
                write(&d.join("cpu.max"), &format!("{quota} {period}"))?;
            }
            Version::V1 => {
                let m = self.dir("memory").ok_or_else(|| missing("memory"))?;
                write(
                    &m.join("memory.limit_in_bytes"),
                    &limits.memory_bytes.to_string(),
                )?;
                if m.join("memory.memsw.limit_in_bytes").exists() {
                    write(
                        &m.join("memory.memsw.limit_in_bytes"),
                        &limits.memory_bytes.to_string(),
                    )?;
                }
                let p = self.dir("pids").ok_or_else(|| missing("pids"))?;
                write(&p.join("pids.max"), &limits.pids.to_string())?;
                if let Some(c) = self.dir("cpu") {
                    write(&c.join("cpu.cfs_period_us"), &period.to_string())?;
                    write(&c.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// The files a single-threaded process writes "0" into to join this sandbox: v2's
    /// `cgroup.procs`; on v1 each hierarchy's `tasks`. Moving a whole process (`cgroup.procs`)
    /// takes the kernel's global threadgroup lock for writing, which first waits for an RCU
    /// grace period (4-8 ms here, up to 20 ms on a busy machine: the longest step of a start);
    /// a thread that moves itself alone (`tasks`, "0") skips that lock (measured here on 6.18:
    /// 0.05 ms), and for a single-threaded process that is all of it.
    pub fn join_files(&self) -> Vec<PathBuf> {
        let file = match self.version {
            Version::V1 => "tasks",
            Version::V2 => "cgroup.procs",
        };
        self.dirs.iter().map(|(_, d)| d.join(file)).collect()
    }

    /// Host pids of every process inside.
    pub fn pids(&self) -> Vec<u32> {
        let dir = self.dir("pids").or_else(|| self.dir("unified"));
        let mut pids: Vec<u32> = dir
            .and_then(|d| read(&d.join("cgroup.procs")))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default();
        pids.sort_unstable();
        pids
    }

    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        let num = |p: PathBuf| {
            read(&p)
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        match self.version {
            Version::V2 => {
                if let Some(d) = self.dir("unified") {
                    s.memory_bytes = num(d.join("memory.current"));
                    s.memory_peak_bytes = num(d.join("memory.peak"));
                    s.tasks = num(d.join("pids.current"));
                    let events = read(&d.join("memory.events")).unwrap_or_default();
                    s.oom_kills = keyed(&events, "oom_kill").unwrap_or(0);
                    let pev = read(&d.join("pids.events")).unwrap_or_default();
                    s.pids_limit_hits = keyed(&pev, "max").unwrap_or(0);
                    let cpu = read(&d.join("cpu.stat")).unwrap_or_default();
                    s.cpu_usage_ms = keyed(&cpu, "usage_usec").unwrap_or(0) / 1000;
                }
            }
            Version::V1 => {
                if let Some(m) = self.dir("memory") {
                    s.memory_bytes = num(m.join("memory.usage_in_bytes"));
                    s.memory_peak_bytes = num(m.join("memory.max_usage_in_bytes"));
                    let oom = read(&m.join("memory.oom_control")).unwrap_or_default();
                    s.oom_kills = keyed(&oom, "oom_kill").unwrap_or(0);
                }
                if let Some(p) = self.dir("pids") {
                    s.tasks = num(p.join("pids.current"));
                    let pev = read(&p.join("pids.events")).unwrap_or_default();
                    s.pids_limit_hits = keyed(&pev, "max").unwrap_or(0);
                }
                if let Some(c) = self.dir("cpuacct").or_else(|| self.dir("cpu")) {
                    s.cpu_usage_ms = num(c.join("cpuacct.usage")) / 1_000_000;
                }
            }
        }
        s
    }

    /// Kills every process inside and waits (up to `wait`) until none is left. On v2 this is
    /// `cgroup.kill`; on v1 the freezer stops the group first so nothing forks while it dies.
    pub fn kill_all(&self, wait: Duration) -> Result<(), String> {
        // The usual case at the end of a sandbox: its pid 1 is gone, and with it everything
        // else. Nothing can enter an empty group (no member is left to fork), so there is
        // nothing to freeze or signal.
        if self.pids().is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        match self.version {
            Version::V2 => {
                if let Some(d) = self.dir("unified") {
                    let kill = d.join("cgroup.kill");
                    if kill.exists() {
                        write(&kill, "1")?;
                    } else {
                        self.signal_each();
                    }
                }
            }
            Version::V1 => {
                let freezer = self.dir("freezer").map(|d| d.join("freezer.state"));
                if let Some(f) = &freezer {
                    let _ = write(f, "FROZEN");
                    while start.elapsed() < Duration::from_millis(200)
                        && read(f).is_some_and(|s| s.trim() != "FROZEN")
                    {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                self.signal_each();
                if let Some(f) = &freezer {
                    let _ = write(f, "THAWED");
                }
            }
        }
        while !self.pids().is_empty() {
            if start.elapsed() > wait {
                return Err(format!(
                    "cgroup: processes {:?} still alive after {} ms",
                    self.pids(),
                    wait.as_millis()
                ));
            }
            self.signal_each();
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn signal_each(&self) {
        for pid in self.pids() {
            let pid = nix::unistd::Pid::from_raw(pid as libc::pid_t);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Removes the directories (they must be empty of processes).
    pub fn remove(&self) {
        for (_, d) in &self.dirs {
            // A removal that fails leaves an empty cgroup behind: logged, not fatal.
            if let Err(e) = std::fs::remove_dir(d)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cgroup: removing {}: {e}", d.display());
            }
        }
    }

    /// The directories, for the report and for tests.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, d)| d.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::keyed;

    #[test]
    fn keyed_lines() {
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(oom, "oom_kill"), Some(3));
        assert_eq!(keyed("max 12\n", "max"), Some(12));
        assert_eq!(keyed("usage_usec 5000\n", "max"), None);
    }
}
