//! The `isolated` network: a veth pair between the host and the sandbox's namespace, a /30
//! between them and no route anywhere else. The host end is where mcp-network captures the
//! game's traffic. Wired with iproute2 (`ip`, `nsenter`) from the host side while stage 2
//! builds the view and then waits.

use serde::Serialize;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// The pair's host-side interface and the two addresses.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Isolated {
    /// Host-side interface name: capture here.
    pub interface: String,
    pub host_address: String,
    pub sandbox_address: String,
    /// Prefix length of the link (30: the two ends only).
    pub prefix: u8,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    // Untranslated messages: `wire` looks for "File exists".
    let out = crate::sandbox::spawn_guarded(
        cmd.env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .and_then(|c| c.wait_with_output())
    .map_err(|e| format!("network: running {shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "network: {shown} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Slot `n` (0..16384) of 10.233.0.0/16, four addresses per sandbox.
fn addresses(n: u32) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(10, 233, 0, 0)) + (n % 16384) * 4;
    (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
}

/// Creates the pair, moves one end into the namespace of `pid` as `eth0` and addresses both.
pub fn wire(seed: u32, pid: u32) -> Result<Isolated, String> {
    // The first free slot from the seed's. Another sandbox may take a name between a look
    // and the add, so a name that exists is found out by the add itself.
    let mut slot = seed % 16384;
    let mut tries = 0;
    let name = loop {
        let name = format!("sbx{slot}");
        let added = run(Command::new("ip").args([
            "link",
            "add",
            &name,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &pid.to_string(),
        ]));
        match added {
            Ok(()) => break name,
            Err(e) if e.contains("File exists") && tries < 64 => {
                tries += 1;
                slot = (slot + 1) % 16384;
            }
            Err(e) => return Err(e),
        }
    };
    let (host, inner) = addresses(slot);
    let ns = format!("--net=/proc/{pid}/ns/net");
    let rest = (|| {
        run(Command::new("ip").args(["addr", "add", &format!("{host}/30"), "dev", &name]))?;
        run(Command::new("ip").args(["link", "set", &name, "up"]))?;
        run(Command::new("nsenter").args([
            ns.as_str(),
            "ip",
            "addr",
            "add",
            &format!("{inner}/30"),
            "dev",
            "eth0",
        ]))?;
        run(Command::new("nsenter").args([ns.as_str(), "ip", "link", "set", "eth0", "up"]))
    })();
    if let Err(e) = rest {
        unwire(&name);
        return Err(e);
    }
    Ok(Isolated {
        interface: name,
        host_address: host.to_string(),
        sandbox_address: inner.to_string(),
        prefix: 30,
    })
}

/// Removes the host end (the pair also goes when the namespace dies; this makes it prompt).
pub fn unwire(interface: &str) {
    if std::path::Path::new("/sys/class/net")
        .join(interface)
        .exists()
    {
        let mut cmd = Command::new("ip");
        cmd.args(["link", "del", interface])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = crate::sandbox::spawn_guarded(&mut cmd).and_then(|mut c| c.wait());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slots_do_not_overlap() {
        let (h0, s0) = super::addresses(0);
        let (h1, _) = super::addresses(1);
        assert_eq!(
            (h0.to_string(), s0.to_string()),
            ("10.233.0.1".into(), "10.233.0.2".into())
        );
        assert_eq!(h1.to_string(), "10.233.0.5");
        assert_eq!(super::addresses(16383).0.to_string(), "10.233.255.253");
    }
}
