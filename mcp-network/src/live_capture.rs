//! Live captures through libpcap: interfaces, and background captures written to a pcap file
//! with limits (packets, seconds, bytes) and counters the caller can poll while it runs.

use pcap::{Capture, Device};
use schemars::JsonSchema;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One interface libpcap can capture on.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Interface {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub addresses: Vec<String>,
    pub up: bool,
    pub running: bool,
    pub loopback: bool,
}

/// Every interface libpcap lists.
pub fn list_interfaces() -> Result<Vec<Interface>, String> {
    let devices = Device::list().map_err(|e| format!("libpcap cannot list interfaces: {e}"))?;
    Ok(devices
        .into_iter()
        .map(|d| Interface {
            addresses: d.addresses.iter().map(|a| a.addr.to_string()).collect(),
            up: d.flags.is_up(),
            running: d.flags.is_running(),
            loopback: d.flags.is_loopback(),
            name: d.name,
            description: d.desc,
        })
        .collect())
}

/// How many interface names a refusal lists (a host with many containers has hundreds).
const LISTED_NAMES: usize = 16;

/// Checks that `name` is an interface libpcap lists, before it names a file or reaches
/// libpcap: a name that is no interface is refused naming the argument and the choices.
pub fn check_interface(name: &str) -> Result<(), String> {
    let all = list_interfaces()?;
    if all.iter().any(|i| i.name == name) {
        return Ok(());
    }
    let mut names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
    if names.len() > LISTED_NAMES {
        names.truncate(LISTED_NAMES);
        names.push("…");
    }
    Err(format!(
        "invalid argument `interface`: {} (no such interface; accepted: one of {}, as \
         list_interfaces shows)",
        suite_core::error::quoted(&format!("{name:?}")),
        names.join(", ")
    ))
}

/// What a capture is asked to do.
#[derive(Debug, Clone)]
pub struct CaptureSpec {
    pub interface: String,
    pub bpf_filter: Option<String>,
    pub max_packets: Option<u64>,
    pub max_seconds: Option<u64>,
    pub max_bytes: Option<u64>,
    pub snaplen: i32,
    pub pcap_path: PathBuf,
}

/// Counters of a running (or finished) capture, shared with its thread.
#[derive(Debug, Default)]
pub struct Counters {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub drops: AtomicU64,
    pub running: AtomicBool,
    stop: AtomicBool,
    /// Why it ended: a limit, a stop request, or libpcap's error.
    pub ended: Mutex<Option<String>>,
}

/// A capture running in the background.
#[derive(Debug)]
pub struct LiveCapture {
    pub spec: CaptureSpec,
    pub started: Instant,
    pub counters: Arc<Counters>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Turns libpcap's opening errors into messages that say what to do.
fn open_error(interface: &str, e: pcap::Error) -> String {
    let text = e.to_string();
    if text.contains("Operation not permitted") || text.contains("permission") {
        format!(
            "no permission to capture on {interface:?}: capturing needs CAP_NET_RAW (run as root, \
             or `setcap cap_net_raw,cap_net_admin+eip` on the binary); libpcap said: {text}"
        )
    } else if text.contains("No such device") || text.contains("doesn't exist") {
        format!(
            "invalid argument `interface`: {interface:?} (no such interface; list_interfaces \
             shows them); libpcap said: {text}"
        )
    } else {
        format!("cannot capture on {interface:?}: {text}")
    }
}

/// How long a stopped capture goes on reading what the kernel already queued (packets that
/// were on the wire before the stop). Bounded: on a busy link the queue never empties.
const DRAIN: Duration = Duration::from_millis(200);

impl LiveCapture {
    /// Opens the interface, applies the filter and starts writing `pcap_path`. Errors
    /// (permission, unknown interface, bad filter) are returned before anything runs.
    pub fn start(spec: CaptureSpec) -> Result<Self, String> {
        let inactive = Capture::from_device(spec.interface.as_str())
            .map_err(|e| open_error(&spec.interface, e))?;
        let mut cap = inactive
            .snaplen(spec.snaplen)
            .timeout(100)
            .immediate_mode(true)
            .open()
            .map_err(|e| open_error(&spec.interface, e))?;
        if let Some(f) = &spec.bpf_filter {
            cap.filter(f, true)
                .map_err(|e| format!("invalid argument `bpf_filter`: {f:?} (libpcap said: {e})"))?;
        }
        if let Some(dir) = spec.pcap_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        // Non-blocking: a quiet interface must never keep the thread from seeing a stop.
        let mut cap = cap
            .setnonblock()
            .map_err(|e| format!("cannot capture on {:?}: {e}", spec.interface))?;
        let mut file = cap
            .savefile(&spec.pcap_path)
            .map_err(|e| format!("cannot write {}: {e}", spec.pcap_path.display()))?;
        let counters = Arc::new(Counters::default());
        counters.running.store(true, Ordering::SeqCst);
        let c = counters.clone();
        let limits = spec.clone();
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name(format!("capture-{}", spec.interface))
            .spawn(move || {
                let mut last_flush = Instant::now();
                let mut stop_seen: Option<Instant> = None;
                let why = loop {
                    if stop_seen.is_none() && c.stop.load(Ordering::SeqCst) {
                        stop_seen = Some(Instant::now());
                    }
                    if stop_seen.is_some_and(|t| t.elapsed() > DRAIN) {
                        break "stopped".to_string();
                    }
                    if limits
                        .max_seconds
                        .is_some_and(|s| started.elapsed() >= Duration::from_secs(s))
                    {
                        break "max_seconds reached".into();
                    }
                    match cap.next_packet() {
                        Ok(p) => {
                            file.write(&p);
                            let n = c.packets.fetch_add(1, Ordering::SeqCst) + 1;
                            let b = c.bytes.fetch_add(p.header.len as u64, Ordering::SeqCst)
                                + p.header.len as u64;
                            if limits.max_packets.is_some_and(|m| n >= m) {
                                break "max_packets reached".into();
                            }
                            if limits.max_bytes.is_some_and(|m| b >= m) {
                                break "max_bytes reached".into();
                            }
                        }
                        Err(pcap::Error::TimeoutExpired) if stop_seen.is_some() => {
                            break "stopped".to_string();
                        }
                        Err(pcap::Error::TimeoutExpired) => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => break format!("libpcap: {e}"),
                    }
                    // Flushed often, so the file can be read while the capture runs.
                    if last_flush.elapsed() > Duration::from_millis(100) {
                        let _ = file.flush();
                        last_flush = Instant::now();
                    }
                };
                let _ = file.flush();
                if let Ok(s) = cap.stats() {
                    c.drops
                        .store(s.dropped as u64 + s.if_dropped as u64, Ordering::SeqCst);
                }
                if let Ok(mut e) = c.ended.lock() {
                    *e = Some(why);
                }
                c.running.store(false, Ordering::SeqCst);
            })
            .map_err(|e| format!("cannot start the capture thread: {e}"))?;
        Ok(Self {
            spec,
            started,
            counters,
            thread: Some(thread),
        })
    }

    pub fn running(&self) -> bool {
        self.counters.running.load(Ordering::SeqCst)
    }

    /// Asks the capture to stop and waits for its file to be complete.
    pub fn stop(&mut self) {
        self.counters.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn path(&self) -> &Path {
        &self.spec.pcap_path
    }

    pub fn ended(&self) -> Option<String> {
        self.counters.ended.lock().ok().and_then(|e| e.clone())
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_loopback_and_refuses_unknown_interfaces() -> Result<(), String> {
        let all = list_interfaces()?;
        assert!(all.iter().any(|i| i.loopback), "{all:?}");
        let e = LiveCapture::start(CaptureSpec {
            interface: "no-such-if0".into(),
            bpf_filter: None,
            max_packets: Some(1),
            max_seconds: Some(1),
            max_bytes: None,
            snaplen: 65535,
            pcap_path: std::env::temp_dir().join("never.pcap"),
        })
        .err()
        .unwrap_or_default();
        assert!(e.contains("no-such-if0"), "{e}");
        let lo = all
            .iter()
            .find(|i| i.loopback)
            .map_or("lo", |i| i.name.as_str());
        check_interface(lo)?;
        let e = check_interface(&"A".repeat(1 << 20))
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("`interface`") && e.contains(lo) && e.len() < 4096,
            "{e}"
        );
        Ok(())
    }
}
