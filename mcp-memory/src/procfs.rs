//! What `/proc` says about processes and their address spaces: the process list (with Wine
//! recognised), threads and the memory map.

use schemars::JsonSchema;
use serde::Serialize;
use std::fs;
use std::path::Path;

/// One process as `list_processes` shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    pub cmdline: Vec<String>,
    pub uid: u32,
    pub is_wine: bool,
    /// The Windows executable a Wine process runs (its `.exe` mapping), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_image: Option<String>,
    pub threads: u32,
    /// Resident memory in bytes.
    pub rss: u64,
}

/// Whether `/proc/<pid>` exists (the process is alive or a zombie).
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Every process whose name, executable or command line contains `filter` (case-insensitive).
/// Processes that vanish while being read are left out.
pub fn list_processes(filter: Option<&str>) -> Vec<ProcessInfo> {
    let filter = filter.map(str::to_lowercase);
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<ProcessInfo> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(process_info)
        .filter(|p| {
            filter.as_ref().is_none_or(|f| {
                p.name.to_lowercase().contains(f)
                    || p.exe.as_ref().is_some_and(|e| e.to_lowercase().contains(f))
                    || p.cmdline.join(" ").to_lowercase().contains(f)
                    || p.main_image
                        .as_ref()
                        .is_some_and(|m| m.to_lowercase().contains(f))
            })
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// Reads one process; `None` when it has gone.
pub fn process_info(pid: u32) -> Option<ProcessInfo> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    let name = field("Name:").unwrap_or_default();
    let uid = field("Uid:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let threads = field("Threads:").and_then(|v| v.parse().ok()).unwrap_or(0);
    let rss = field("VmRSS:")
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    let exe = fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.display().to_string());
    let cmdline: Vec<String> = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let exe_name = exe
        .as_deref()
        .and_then(|e| e.rsplit('/').next())
        .unwrap_or("");
    let is_wine = exe_name.starts_with("wine") || exe_name.ends_with("-preloader");
    let main_image = if is_wine { wine_main_image(pid) } else { None };
    Some(ProcessInfo {
        pid,
        name,
        exe,
        cmdline,
        uid,
        is_wine,
        main_image,
        threads,
        rss,
    })
}

/// The first `.exe` file mapped into a Wine process.
fn wine_main_image(pid: u32) -> Option<String> {
    let maps = read_maps(pid).ok()?;
    maps.into_iter()
        .filter_map(|r| r.path)
        .find(|p| p.to_lowercase().ends_with(".exe"))
}

/// The thread ids of a process.
pub fn threads(pid: u32) -> std::io::Result<Vec<u32>> {
    let mut out: Vec<u32> = fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// One line of `/proc/<pid>/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    pub shared: bool,
    pub offset: u64,
    pub inode: u64,
    /// File path, or a pseudo name such as `[heap]`; `None` for anonymous memory.
    pub path: Option<String>,
}

impl Region {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    pub fn perms(&self) -> String {
        format!(
            "{}{}{}{}",
            if self.readable { 'r' } else { '-' },
            if self.writable { 'w' } else { '-' },
            if self.executable { 'x' } else { '-' },
            if self.shared { 's' } else { 'p' }
        )
    }

    /// Memory a scan may read without side effects: readable, and not a kernel page or a
    /// device mapping (reading `/dev/*` mappings can touch hardware).
    pub fn scannable(&self) -> bool {
        self.readable
            && !matches!(
                self.path.as_deref(),
                Some("[vvar]" | "[vsyscall]" | "[vvar_vclock]")
            )
            && !self.path.as_deref().is_some_and(|p| p.starts_with("/dev/"))
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// Parses `/proc/<pid>/maps`.
pub fn read_maps(pid: u32) -> std::io::Result<Vec<Region>> {
    let text = fs::read_to_string(format!("/proc/{pid}/maps"))?;
    Ok(text.lines().filter_map(parse_maps_line).collect())
}

fn parse_maps_line(line: &str) -> Option<Region> {
    let mut rest = line;
    let mut next = || {
        let t = rest.trim_start();
        let end = t.find(' ').unwrap_or(t.len());
        let (tok, r) = t.split_at(end);
        rest = r;
        tok
    };
    let range = next();
    let perms = next().as_bytes().to_vec();
    let offset = u64::from_str_radix(next(), 16).ok()?;
    let _dev = next();
    let inode = next().parse().ok()?;
    let path = rest.trim();
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    if perms.len() < 4 || end < start {
        return None;
    }
    Some(Region {
        start,
        end,
        readable: perms[0] == b'r',
        writable: perms[1] == b'w',
        executable: perms[2] == b'x',
        shared: perms[3] == b's',
        offset,
        inode,
        path: (!path.is_empty()).then(|| path.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let r = parse_maps_line(
            "7f1c2a000000-7f1c2a021000 r-xp 00001000 08:01 1234   /usr/lib/my lib.so (deleted)",
        );
        assert_eq!(
            r,
            Some(Region {
                start: 0x7f1c2a000000,
                end: 0x7f1c2a021000,
                readable: true,
                writable: false,
                executable: true,
                shared: false,
                offset: 0x1000,
                inode: 1234,
                path: Some("/usr/lib/my lib.so (deleted)".into()),
            })
        );
        let anon = parse_maps_line("00400000-00401000 rw-p 00000000 00:00 0 ");
        assert_eq!(anon.map(|r| r.path), Some(None));
        assert!(parse_maps_line("garbage").is_none());
    }

    #[test]
    fn reads_this_process() -> std::io::Result<()> {
        let me = std::process::id();
        let info = process_info(me);
        assert!(info.as_ref().is_some_and(|p| p.threads >= 1 && p.rss > 0));
        let maps = read_maps(me)?;
        let here = parses_maps_lines as *const () as u64;
        assert!(maps.iter().any(|r| r.contains(here) && r.executable));
        Ok(())
    }
}
