//! sandbox-runner: runs a program (wine + Game.exe first of all) inside Linux namespaces, a
//! cgroup and a seccomp filter, while analysers outside can still read its memory and capture
//! its traffic.
//!
//! Layering: `profile` and `limits` are data; `cgroup`, `seccomp`, `net` and `inside` each do one
//! kernel job; `sandbox` puts them together (launch, watch, stop, report); `attach` finds the
//! host pids an analyser needs; `tools` is the thin MCP layer.
//!
//! Used as a plain library, without MCP (`default-features = false`): load the strictest
//! built-in profile and compile its seccomp policy to the BPF program a sandbox would load.
//!
//! ```
//! use sandbox_runner::profile::{NetMode, Profile};
//! use sandbox_runner::seccomp;
//!
//! let strict = Profile::load("strict")?;
//! assert_eq!(strict.network, NetMode::None);
//! assert!(strict.seccomp.allow.iter().any(|s| s == "read"));
//! let bpf = seccomp::compile(&strict.seccomp, None)?;
//! assert!(!bpf.is_empty() && bpf.len() % 8 == 0); // whole `sock_filter` instructions
//! # Ok::<(), String>(())
//! ```

pub mod attach;
pub mod cgroup;
pub mod inside;
pub mod limits;
pub mod net;
pub mod profile;
pub mod sandbox;
pub mod seccomp;
#[cfg(feature = "server")]
pub mod tools;
