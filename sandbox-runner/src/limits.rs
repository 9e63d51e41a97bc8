//! Resource limits given on the command line, in a profile or to `launch`: parsed and checked
//! against what this host can give, so that a limit of 0 or an absurd one is refused up front.

use serde::{Deserialize, Serialize};

/// The limits one sandbox runs under.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory (RAM) in bytes; the cgroup OOM-kills above it.
    pub memory_bytes: u64,
    /// Maximum number of tasks (processes and threads), the runner's own two included.
    pub pids: u64,
    /// CPU bandwidth in cores (1.5 = one and a half cores).
    pub cpus: f64,
}

/// The smallest memory limit accepted: below it not even the set-up runs.
pub const MIN_MEMORY: u64 = 8 << 20;
/// The runner's init inside the sandbox, the program, and one more for the program to start.
pub const MIN_PIDS: u64 = 3;

/// Parses a size: a number of bytes with an optional K, M, G or T suffix (binary units).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => {
            return Err(format!(
                "size {text:?}: unknown unit; accepted: a number with K, M, G or T"
            ));
        }
    };
    let value: f64 = digits
        .parse()
        .map_err(|_| format!("size {text:?}: not a number; accepted: e.g. 512M, 4G, 1073741824"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("size {text:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// What this host offers, to judge absurd limits.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    pub memory_bytes: u64,
    pub cpus: f64,
    pub pid_max: u64,
}

impl Host {
    pub fn probe() -> Self {
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(u64::MAX, |kb| kb * 1024);
        let cpus = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4_194_304);
        Host {
            memory_bytes,
            cpus,
            pid_max,
        }
    }
}

impl Limits {
    /// Refuses a limit of 0 or one this host cannot honour, naming the argument and the range.
    pub fn check(&self, host: &Host) -> Result<(), String> {
        if self.memory_bytes < MIN_MEMORY || self.memory_bytes > host.memory_bytes {
            return Err(format!(
                "memory {} bytes is out of range; accepted: {} MiB to this host's {} MiB",
                self.memory_bytes,
                MIN_MEMORY >> 20,
                host.memory_bytes >> 20
            ));
        }
        if self.pids < MIN_PIDS || self.pids > host.pid_max {
            return Err(format!(
                "pids {} is out of range; accepted: {MIN_PIDS} to {} (the runner's init inside counts)",
                self.pids, host.pid_max
            ));
        }
        if !(self.cpus.is_finite() && self.cpus >= 0.01 && self.cpus <= host.cpus) {
            return Err(format!(
                "cpus {} is out of range; accepted: 0.01 to this host's {}",
                self.cpus, host.cpus
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() -> Result<(), String> {
        assert_eq!(parse_size("4G")?, 4 << 30);
        assert_eq!(parse_size("512M")?, 512 << 20);
        assert_eq!(parse_size("1.5k")?, 1536);
        assert_eq!(parse_size("64MiB")?, 64 << 20);
        assert_eq!(parse_size("1000")?, 1000);
        assert!(parse_size("4X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        Ok(())
    }

    #[test]
    fn absurd_limits_refused() {
        let host = Host {
            memory_bytes: 8 << 30,
            cpus: 2.0,
            pid_max: 32768,
        };
        let ok = Limits {
            memory_bytes: 1 << 30,
            pids: 64,
            cpus: 1.0,
        };
        assert!(ok.check(&host).is_ok());
        for bad in [
            Limits {
                memory_bytes: 0,
                ..ok
            },
            Limits {
                memory_bytes: 1 << 40,
                ..ok
            },
            Limits { pids: 0, ..ok },
            Limits {
                pids: 1 << 40,
                ..ok
            },
            Limits { cpus: 0.0, ..ok },
            Limits { cpus: 64.0, ..ok },
            Limits {
                cpus: f64::NAN,
                ..ok
            },
        ] {
            let e = bad.check(&host).err().unwrap_or_default();
            assert!(e.contains("accepted"), "{bad:?}: {e}");
        }
    }
}
