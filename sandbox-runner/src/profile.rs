//! Profiles are data (`schemas/sandbox/profiles/*.toml`): limits, network mode, the seccomp
//! policy, rlimits and environment. The built-in ones are compiled in; any other file can be
//! named by path. The syscall sets they refer to (`@base`, `@wine`, `@dangerous`) live in
//! `schemas/sandbox/seccomp.toml`.

use crate::limits::{Limits, parse_size};
use crate::seccomp::{ArgRule, SeccompMode, SeccompPolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

const SETS: &str = include_str!("../../schemas/sandbox/seccomp.toml");
const BUILTIN: &[(&str, &str)] = &[
    (
        "wine",
        include_str!("../../schemas/sandbox/profiles/wine.toml"),
    ),
    (
        "strict",
        include_str!("../../schemas/sandbox/profiles/strict.toml"),
    ),
];

/// The names `--profile` accepts besides a path to a .toml file.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// Network modes: `none` (own namespace, loopback only), `isolated` (own namespace plus a veth
/// pair to the host, nothing routed beyond it), `host` (the host's network, only when asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    None,
    Isolated,
    Host,
}

impl std::str::FromStr for NetMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(NetMode::None),
            "isolated" => Ok(NetMode::Isolated),
            "host" => Ok(NetMode::Host),
            _ => Err(format!(
                "network {s:?} is not known; accepted: none, isolated, host"
            )),
        }
    }
}

/// A loaded and checked profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub network: NetMode,
    pub limits: Limits,
    pub seccomp: SeccompPolicy,
    /// Resource limits by name (`core`, `stack`, `nproc`, ...), in their natural unit.
    pub rlimits: BTreeMap<String, u64>,
    /// Environment set inside; `$HOME` in a value is the sandbox's home.
    pub env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    description: String,
    network: NetMode,
    limits: RawLimits,
    seccomp: RawSeccomp,
    #[serde(default)]
    rlimits: BTreeMap<String, u64>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory: String,
    pids: u64,
    cpus: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeccomp {
    mode: SeccompMode,
    allow: Vec<String>,
    #[serde(default)]
    kill: Vec<String>,
    #[serde(default)]
    enosys: Vec<String>,
    #[serde(default)]
    arg_rules: Vec<ArgRule>,
}

/// The rlimits a profile may set. Address space, open files and file size are left out on
/// purpose: Wine raises them and breaks when they are capped; memory is the cgroup's job.
pub const RLIMITS: &[(&str, libc::__rlimit_resource_t)] = &[
    ("core", libc::RLIMIT_CORE),
    ("stack", libc::RLIMIT_STACK),
    ("nproc", libc::RLIMIT_NPROC),
    ("cpu", libc::RLIMIT_CPU),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("nice", libc::RLIMIT_NICE),
];

/// The largest profile file read (the built-in ones are about 2 KB).
const MAX_PROFILE_BYTES: u64 = 64 * 1024;

/// A TOML error as the line and the reason, without the snippet of the text that `toml`
/// quotes: a path named by mistake (or on purpose, `/etc/shadow`) must not be quoted back.
fn toml_error(name: &str, text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(s) => {
            let line = suite_core::files::line_at(text, s.start);
            format!("invalid profile {name:?} at line {line}: {}", e.message())
        }
        None => format!("invalid profile {name:?}: {}", e.message()),
    }
}

impl Profile {
    /// Loads a built-in profile by name, or a profile file by path (a name with a `/` or ending
    /// in `.toml`).
    pub fn load(name_or_path: &str) -> Result<Profile, String> {
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Profile::parse(name, text);
        }
        if name_or_path.ends_with(".toml") {
            let path = Path::new(name_or_path);
            let text = suite_core::files::read_text(path, "profile", MAX_PROFILE_BYTES)?;
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or(name_or_path);
            return Profile::parse(name, &text).map_err(|e| format!("{name_or_path}: {e}"));
        }
        Err(format!(
            "profile {:?} is not known; accepted: {} or a path to a .toml profile",
            suite_core::error::quoted(name_or_path),
            builtin_names().join(", ")
        ))
    }

    /// Parses and checks a profile's text: every syscall name must be known to libseccomp, the
    /// allow and kill lists must not overlap, limits must be positive.
    pub fn parse(name: &str, text: &str) -> Result<Profile, String> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| toml_error(name, text, &e))?;
        let sets: BTreeMap<String, Vec<String>> =
            toml::from_str(SETS).map_err(|e| format!("seccomp sets: {e}"))?;
        let expand = |list: &[String]| -> Result<Vec<String>, String> {
            let mut out = Vec::new();
            for item in list {
                match item.strip_prefix('@') {
                    Some(set) => out.extend(
                        sets.get(set)
                            .ok_or_else(|| {
                                format!(
                                    "profile {name:?}: syscall set {item:?} is not known; accepted: {}",
                                    sets.keys().map(|k| format!("@{k}")).collect::<Vec<_>>().join(", ")
                                )
                            })?
                            .iter()
                            .cloned(),
                    ),
                    None => out.push(item.clone()),
                }
            }
            out.sort();
            out.dedup();
            Ok(out)
        };
        let seccomp = SeccompPolicy {
            mode: raw.seccomp.mode,
            allow: expand(&raw.seccomp.allow)?,
            kill: expand(&raw.seccomp.kill)?,
            enosys: expand(&raw.seccomp.enosys)?,
            arg_rules: raw.seccomp.arg_rules,
        };
        crate::seccomp::check_policy(&seccomp).map_err(|e| format!("profile {name:?}: {e}"))?;
        let memory_bytes =
            parse_size(&raw.limits.memory).map_err(|e| format!("profile {name:?}: limits.{e}"))?;
        let limits = Limits {
            memory_bytes,
            pids: raw.limits.pids,
            cpus: raw.limits.cpus,
        };
        for key in raw.rlimits.keys() {
            if !RLIMITS.iter().any(|(n, _)| n == key) {
                return Err(format!(
                    "profile {name:?}: rlimit {key:?} is not accepted; accepted: {} (as, nofile and fsize are never capped: Wine breaks)",
                    RLIMITS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(Profile {
            name: name.to_string(),
            description: raw.description,
            network: raw.network,
            limits,
            seccomp,
            rlimits: raw.rlimits,
            env: raw.env,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load() -> Result<(), String> {
        let wine = Profile::load("wine")?;
        assert!(wine.seccomp.allow.iter().any(|s| s == "modify_ldt"));
        assert!(wine.seccomp.kill.iter().any(|s| s == "kexec_load"));
        let strict = Profile::load("strict")?;
        assert!(!strict.seccomp.allow.iter().any(|s| s == "ptrace"));
        assert_eq!(strict.network, NetMode::None);
        Ok(())
    }

    #[test]
    fn bad_profiles_are_named() {
        let e = Profile::load("nope").err().unwrap_or_default();
        assert!(e.contains("wine, strict"), "{e}");
        let e = Profile::parse("x", "description = 3")
            .err()
            .unwrap_or_default();
        assert!(e.contains("invalid profile"), "{e}");
        let base = include_str!("../../schemas/sandbox/profiles/strict.toml");
        let e = Profile::parse("x", &base.replace("\"@base\"", "\"@base\", \"frobnicate\""))
            .err()
            .unwrap_or_default();
        assert!(e.contains("frobnicate"), "{e}");
        let e = Profile::parse("x", &base.replace("\"@base\"", "\"@base\", \"bpf\""))
            .err()
            .unwrap_or_default();
        assert!(e.contains("bpf"), "{e}");
        let e = Profile::parse("x", &base.replace("core = 0", "nofile = 10"))
            .err()
            .unwrap_or_default();
        assert!(e.contains("nofile"), "{e}");
    }
}
