//! What a traced process tree did, as structured events. The tracer (`trace`) and Wine's
//! debug channels (`wine_debug`) produce them; `summary` and `detect` read them.

use schemars::JsonSchema;
use serde::Serialize;

/// One thing a process did, with when and who.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct Event {
    /// Sequence number within the trace, from 0.
    pub seq: u64,
    /// Milliseconds since the trace started.
    pub t_ms: f64,
    pub pid: u32,
    pub tid: u32,
    #[serde(flatten)]
    pub what: What,
}

/// The event's kind and its fields (serialised with a `kind` tag).
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// A file opened, created, removed or renamed; `op` is `open` (read only), `write`
    /// (opened for writing), `create`, `remove` or `rename` (then `to`).
    File {
        op: &'static str,
        path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// A socket call: `op` is `connect`, `bind`, `listen`, `accept`, `send` or `receive`.
    Socket {
        op: &'static str,
        /// `ip:port` (IPv6 as `[ip]:port`) or a Unix socket path.
        #[serde(skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
    },
    /// A process or thread started (`spawn`, `thread`), a program run (`exec`), an exit.
    Process {
        op: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        child: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        argv: Vec<String>,
    },
    /// A module (ELF shared object, or a PE image under Wine) mapped.
    Module {
        path: String,
        base: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// Memory made executable (mmap or mprotect with PROT_EXEC); `path` when file-backed.
    ExecMemory {
        op: &'static str,
        address: u64,
        length: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// A Win32 call seen through Wine's relay channel.
    Api {
        module: String,
        function: String,
        args: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ret: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<u64>,
    },
    /// A registry key opened, created or written through the Win32 API.
    Registry { op: &'static str, key: String },
    /// A structured exception Wine dispatched (seh channel).
    Exception {
        code: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        address: Option<u64>,
    },
}

impl What {
    /// The `kind` tag as serialised.
    pub fn kind(&self) -> &'static str {
        match self {
            What::File { .. } => "file",
            What::Socket { .. } => "socket",
            What::Process { .. } => "process",
            What::Module { .. } => "module",
            What::ExecMemory { .. } => "exec_memory",
            What::Api { .. } => "api",
            What::Registry { .. } => "registry",
            What::Exception { .. } => "exception",
        }
    }
}

/// The kinds a trace can record, as `trace_start` accepts them.
pub const KINDS: [&str; 8] = [
    "file",
    "socket",
    "process",
    "module",
    "exec_memory",
    "api",
    "registry",
    "exception",
];
