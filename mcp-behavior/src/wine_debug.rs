//! Wine's own debug channels as events: `relay` (Win32 calls with their arguments and
//! results), `loaddll` (modules loaded, with their Windows path and base) and `seh`
//! (exceptions). Wine writes them to the program's standard error as lines such as
//!
//! ```text
//! 0130:Call KERNEL32.VirtualAlloc(00000000,00001000,00001000,00000040) ret=0040164f
//! 0130:Ret  KERNEL32.VirtualAlloc() retval=003f0000 ret=0040164f
//! 0130:trace:loaddll:build_module Loaded L"Z:\\tmp\\a.dll" at 10000000: native
//! ```
//!
//! where `0130` is Wine's thread id. Which calls are relayed is set in the prefix's registry
//! (`RelayInclude`, `RelayFromExclude`) from schemas/behavior/relay.json.

use crate::events::What;
use crate::trace::Shared;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Deserialize)]
pub struct Relay {
    pub include: Vec<String>,
    pub from_exclude: Vec<String>,
    pub registry: BTreeMap<String, String>,
    /// File API name prefixes and their operation (`why` is documentation).
    pub files: BTreeMap<String, String>,
}

pub fn relay() -> Result<&'static Relay, String> {
    static R: OnceLock<Result<Relay, String>> = OnceLock::new();
    R.get_or_init(|| {
        serde_json::from_str(include_str!("../../schemas/behavior/relay.json"))
            .map_err(|e| format!("schemas/behavior/relay.json: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The `WINEDEBUG` value for the asked kinds: quiet except the channels they need.
pub fn winedebug(kinds: &[String]) -> Option<String> {
    let has = |k: &str| kinds.iter().any(|x| x == k);
    let mut ch = vec!["-all".to_string()];
    if has("api") || has("registry") || has("file") {
        ch.push("+relay".into());
    }
    if has("module") {
        ch.push("+loaddll".into());
    }
    if has("exception") {
        ch.push("+seh".into());
    }
    (ch.len() > 1).then(|| ch.join(","))
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Call {
        tid: u32,
        module: String,
        function: String,
        args: Vec<String>,
        caller: Option<u64>,
    },
    Ret {
        tid: u32,
        function: String,
        retval: String,
    },
    Loaded {
        tid: u32,
        path: String,
        base: u64,
        /// Wine prints the base as a pointer: 8 digits in a 32-bit process, 16 in a 64-bit.
        bits32: bool,
    },
    Exception {
        tid: u32,
        code: String,
        address: Option<u64>,
    },
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// Splits `a,b,L"c,d",e` at the commas outside quotes.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The text of the first quoted string (`L"..."` or `"..."`), backslash escapes undone.
fn quoted(s: &str) -> Option<String> {
    let start = s.find('"')? + 1;
    let mut out = String::new();
    let mut chars = s[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return Some(out),
            _ => out.push(c),
        }
    }
    None
}

/// Parses one line of Wine's debug output; other lines (the program's own) are None.
pub fn parse(line: &str) -> Option<Line> {
    let (tid, rest) = line.split_once(':')?;
    if tid.len() < 4 || !tid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tid = hex(tid)? as u32;
    if let Some(call) = rest.strip_prefix("Call ") {
        let open = call.find('(')?;
        let close = call.rfind(')')?;
        let (module, function) = call[..open].split_once('.')?;
        if module.contains(' ') {
            // "Call PE DLL (...)", "Call TLS callback (...)": not API calls.
            return None;
        }
        let caller = call[close..]
            .split_once("ret=")
            .and_then(|(_, r)| hex(r.split_whitespace().next().unwrap_or("")));
        return Some(Line::Call {
            tid,
            module: module.to_string(),
            function: function.to_string(),
            args: split_args(&call[open + 1..close]),
            caller,
        });
    }
    if let Some(ret) = rest.strip_prefix("Ret  ") {
        let open = ret.find('(')?;
        let (_, function) = ret[..open].split_once('.')?;
        let retval = ret.split_once("retval=")?.1.split_whitespace().next()?;
        return Some(Line::Ret {
            tid,
            function: function.to_string(),
            retval: retval.to_string(),
        });
    }
    if rest.starts_with("trace:loaddll:") {
        let path = quoted(rest)?;
        let base = rest.split_once(" at ")?.1.split(':').next()?;
        return Some(Line::Loaded {
            tid,
            path,
            base: hex(base)?,
            bits32: base.trim().len() <= 8,
        });
    }
    if rest.contains(":seh:") && rest.contains("code=") {
        let field = |k: &str| {
            rest.split_once(k).map(|(_, v)| {
                v.chars()
                    .take_while(|c| c.is_ascii_hexdigit() || *c == 'x')
                    .collect::<String>()
            })
        };
        return Some(Line::Exception {
            tid,
            code: field("code=")?,
            address: field("addr=").and_then(|a| hex(&a)),
        });
    }
    None
}

/// Which event kinds to make from Wine's debug lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted {
    pub api: bool,
    pub registry: bool,
    pub module: bool,
    pub exception: bool,
    pub file: bool,
}

impl Wanted {
    pub fn of(kinds: &[String]) -> Self {
        let has = |k: &str| kinds.iter().any(|x| x == k);
        Wanted {
            api: has("api"),
            registry: has("registry"),
            module: has("module"),
            exception: has("exception"),
            file: has("file"),
        }
    }
}

/// A Wine prefix: `WINEPREFIX`, else `$HOME/.wine`, looked up with `var` (the launch's
/// environment over the server's).
pub fn prefix(var: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    var("WINEPREFIX")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| Path::new(&h).join(".wine")))
}

/// Whether a program's file name is wineserver's: `wineserver`, or Debian's `wineserver32`
/// and `wineserver64`.
pub fn is_wineserver_name(name: &str) -> bool {
    name.starts_with("wineserver")
}

/// The wineserver already serving `prefix`, if one runs: wineserver works in the directory
/// Wine names after the prefix's device and inode (`/tmp/.wine-UID/server-DEV-INODE`, or
/// Debian's `/tmp/wine-XXXXXX/server-...`), and in the prefix itself while it loads or
/// saves the registry.
pub fn running_wineserver(prefix: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(prefix).ok()?;
    let dir = format!("server-{:x}-{:x}", m.dev(), m.ino());
    let prefix = std::fs::canonicalize(prefix).ok()?;
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
        let serves = cwd == prefix || cwd.file_name().is_some_and(|n| n == dir.as_str());
        (is_wineserver_name(&comm) && serves).then_some(pid)
    })
}

/// The Unix file a Windows path names in `prefix`: its drive's link under dosdevices, then
/// each component, matched regardless of case when the exact name is absent (as Wine
/// matches). A 32-bit process's `system32` is the prefix's `syswow64` when it has one
/// (Wine's redirection).
pub fn unix_path(prefix: &Path, dos: &str, bits32: bool) -> Option<PathBuf> {
    let dos = dos.strip_prefix(r"\??\").unwrap_or(dos);
    let (drive, rest) = dos.split_once(':')?;
    if drive.len() != 1 || !drive.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let mut path = prefix
        .join("dosdevices")
        .join(format!("{}:", drive.to_ascii_lowercase()));
    let mut parts: Vec<&str> = rest
        .split(['\\', '/'])
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let wow64 = bits32 && prefix.join("drive_c/windows/syswow64").is_dir();
    if wow64
        && drive.eq_ignore_ascii_case("c")
        && parts.len() > 2
        && parts[0].eq_ignore_ascii_case("windows")
        && parts[1].eq_ignore_ascii_case("system32")
    {
        parts[1] = "syswow64";
    }
    for part in parts {
        let exact = path.join(part);
        path = if part == ".." || exact.exists() {
            exact
        } else {
            std::fs::read_dir(&path)
                .ok()?
                .flatten()
                .find(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(part))
                })?
                .path()
        };
    }
    Some(path)
}

/// Reads a launched Wine program's standard error to its end, turning debug lines into
/// events (attributed to `pid`, with Wine's thread ids). Modules are hashed from the files
/// their Windows paths name in `prefix`.
pub fn follow(
    sh: &Arc<Shared>,
    pid: u32,
    err: impl std::io::Read + std::os::fd::AsFd,
    want: Wanted,
    prefix: Option<PathBuf>,
) {
    let mut f = Follower {
        sh,
        pid,
        want,
        registry: relay()
            .map(|r| {
                r.registry
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        prefix,
        open: HashMap::new(),
        hashes: HashMap::new(),
    };
    sh.read_lines(err, |line| {
        if let Some(parsed) = parse(String::from_utf8_lossy(line).trim_end_matches(['\n', '\r'])) {
            f.handle(parsed);
        }
    });
}

/// What following one launch keeps from line to line.
struct Follower<'a> {
    sh: &'a Arc<Shared>,
    pid: u32,
    want: Wanted,
    /// Registry API name prefixes and their operation (schemas/behavior/relay.json).
    registry: Vec<(String, String)>,
    prefix: Option<PathBuf>,
    /// Calls waiting for their result: per Wine thread, the event's sequence number.
    open: HashMap<u32, Vec<(String, u64)>>,
    /// Module hashes by Windows path and bitness, each file read once.
    hashes: HashMap<(String, bool), Option<String>>,
}

impl Follower<'_> {
    fn hash(&mut self, dos: &str, bits32: bool) -> Option<String> {
        let prefix = self.prefix.as_deref();
        self.hashes
            .entry((dos.to_string(), bits32))
            .or_insert_with(|| crate::trace::sha256_file(&unix_path(prefix?, dos, bits32)?))
            .clone()
    }

    /// Turns one parsed line into the events asked for.
    fn handle(&mut self, parsed: Line) {
        let (sh, pid, want) = (self.sh, self.pid, self.want);
        match parsed {
            Line::Call {
                tid,
                module,
                function,
                args,
                caller,
            } => {
                if want.registry
                    && let Some((_, op)) =
                        self.registry.iter().find(|(p, _)| function.starts_with(p))
                {
                    let key = args
                        .iter()
                        .find_map(|a| quoted(a))
                        .unwrap_or_else(|| args.first().cloned().unwrap_or_default());
                    sh.push(
                        pid,
                        tid,
                        What::Registry {
                            op: registry_op(op),
                            key,
                        },
                    );
                }
                if want.file
                    && let Some(what) = file_event(&function, &args)
                {
                    sh.push(pid, tid, what);
                }
                if want.api {
                    let mut st = crate::trace::lock(&sh.store);
                    let seq = st.events.len() as u64;
                    let t = sh.t_ms();
                    st.push(
                        t,
                        pid,
                        tid,
                        What::Api {
                            module,
                            function: function.clone(),
                            args,
                            ret: None,
                            caller,
                        },
                    );
                    self.open.entry(tid).or_default().push((function, seq));
                }
            }
            Line::Ret {
                tid,
                function,
                retval,
            } => {
                let Some(stack) = self.open.get_mut(&tid) else {
                    return;
                };
                let Some(i) = stack.iter().rposition(|(f, _)| *f == function) else {
                    return;
                };
                let (_, seq) = stack.remove(i);
                let mut st = crate::trace::lock(&sh.store);
                if let Some(ev) = st.events.get_mut(seq as usize)
                    && let What::Api { ret, .. } = &mut ev.what
                {
                    *ret = Some(retval);
                }
            }
            Line::Loaded {
                tid,
                path,
                base,
                bits32,
            } if want.module => {
                let sha256 = self.hash(&path, bits32);
                sh.push(pid, tid, What::Module { path, base, sha256 })
            }
            Line::Exception { tid, code, address } if want.exception => {
                sh.push(pid, tid, What::Exception { code, address })
            }
            _ => {}
        }
    }
}

/// A file API call as a file event: CreateFile by its disposition and access (create,
/// write or open), DeleteFile (remove), MoveFile (rename, with its destination).
pub fn file_event(function: &str, args: &[String]) -> Option<What> {
    let files = &relay().ok()?.files;
    let (_, op) = files
        .iter()
        .find(|(prefix, _)| *prefix != "why" && function.starts_with(prefix.as_str()))?;
    let path = quoted(args.first()?)?;
    let num = |i: usize| {
        args.get(i)
            .and_then(|a| u64::from_str_radix(a.split_whitespace().next()?, 16).ok())
            .unwrap_or(0)
    };
    let what = match op.as_str() {
        "open" => {
            // dwCreationDisposition: CREATE_NEW 1, CREATE_ALWAYS 2; dwDesiredAccess:
            // GENERIC_WRITE 0x40000000, GENERIC_ALL 0x10000000, FILE_WRITE_DATA 2.
            let (access, disposition) = (num(1), num(4));
            let op = if disposition == 1 || disposition == 2 {
                "create"
            } else if access & 0x5000_0002 != 0 {
                "write"
            } else {
                "open"
            };
            What::File { op, path, to: None }
        }
        "remove" => What::File {
            op: "remove",
            path,
            to: None,
        },
        _ => What::File {
            op: "rename",
            path,
            to: args.get(1).and_then(|a| quoted(a)),
        },
    };
    Some(what)
}

fn registry_op(op: &str) -> &'static str {
    match op {
        "open" => "open",
        "create" => "create",
        "set" => "set",
        _ => "delete",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_lines_parse() {
        let c = parse(
            "0130:Call KERNEL32.VirtualAlloc(00000000,00001000,00001000,00000040) ret=0040164f",
        );
        assert_eq!(
            c,
            Some(Line::Call {
                tid: 0x130,
                module: "KERNEL32".into(),
                function: "VirtualAlloc".into(),
                args: vec![
                    "00000000".into(),
                    "00001000".into(),
                    "00001000".into(),
                    "00000040".into()
                ],
                caller: Some(0x40164f),
            })
        );
        let r = parse("0130:Ret  KERNEL32.IsDebuggerPresent() retval=00000000 ret=00401601");
        assert_eq!(
            r,
            Some(Line::Ret {
                tid: 0x130,
                function: "IsDebuggerPresent".into(),
                retval: "00000000".into()
            })
        );
        assert_eq!(
            parse(
                r#"0130:trace:loaddll:build_module Loaded L"Z:\\tmp\\dbg32.exe" at 00400000: native"#
            ),
            Some(Line::Loaded {
                tid: 0x130,
                path: r"Z:\tmp\dbg32.exe".into(),
                base: 0x400000,
                bits32: true
            })
        );
        let wide = r#"0188:trace:loaddll:build_module Loaded L"C:\\windows\\system32\\kernel32.dll" at 000000007B600000: builtin"#;
        assert!(matches!(
            parse(wide),
            Some(Line::Loaded {
                base: 0x7b60_0000,
                bits32: false,
                ..
            })
        ));
        assert_eq!(
            parse("0130:Call PE DLL (proc=7BC69420,module=7BC00000 L\"ntdll.dll\")"),
            None
        );
        assert_eq!(parse("hello: world"), None);
        assert_eq!(
            split_args(r#"80000001,0063fd88 L"Software\\A,B",0"#),
            vec!["80000001", r#"0063fd88 L"Software\\A,B""#, "0"]
        );
        assert_eq!(
            quoted(r#"0063fd88 L"Software\\Wine""#).as_deref(),
            Some(r"Software\Wine")
        );
    }

    #[test]
    fn windows_paths_name_the_prefix_files() -> std::io::Result<()> {
        let root = std::env::temp_dir().join(format!("wd-paths-{}", std::process::id()));
        let win = root.join("drive_c/windows");
        std::fs::create_dir_all(win.join("system32"))?;
        std::fs::create_dir_all(win.join("syswow64"))?;
        std::fs::create_dir_all(root.join("dosdevices"))?;
        std::os::unix::fs::symlink("../drive_c", root.join("dosdevices/c:"))?;
        std::fs::write(win.join("system32/Kernel32.dll"), "64")?;
        std::fs::write(win.join("syswow64/kernel32.dll"), "32")?;
        let read = |dos: &str, bits32: bool| {
            unix_path(&root, dos, bits32).and_then(|p| std::fs::read_to_string(p).ok())
        };
        // Case differs from the file's: matched as Wine matches.
        let high = false;
        assert_eq!(
            read(r"C:\windows\system32\KERNEL32.DLL", high).as_deref(),
            Some("64")
        );
        // A 32-bit process's system32 is syswow64.
        assert_eq!(
            read(r"C:\windows\system32\kernel32.dll", true).as_deref(),
            Some("32")
        );
        assert_eq!(
            read(r"\??\C:\windows\syswow64\kernel32.dll", true).as_deref(),
            Some("32")
        );
        assert_eq!(read(r"C:\windows\system32\absent.dll", high), None);
        assert_eq!(read(r"D:\a.dll", high), None);
        assert_eq!(read("not a path", high), None);
        std::fs::remove_dir_all(&root)
    }
}
