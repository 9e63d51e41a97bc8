//! sandbox-runner: runs a program (wine + Game.exe first of all) inside Linux namespaces, a
//! cgroup and a seccomp filter, while analysers outside can still read its memory and capture
//! its traffic.
//!
//! Layering: `profile` and `limits` are data; `cgroup`, `seccomp`, `net` and `inside` each do one
//! kernel job; `sandbox` puts them together (launch, watch, stop, report); `attach` finds the
//! host pids an analyser needs; `tools` is the thin MCP layer.

pub mod attach;
pub mod cgroup;
pub mod inside;
pub mod limits;
pub mod net;
pub mod profile;
pub mod sandbox;
pub mod seccomp;
pub mod tools;
