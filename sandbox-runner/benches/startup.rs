//! Start-up overhead of an empty sandbox (`/bin/true`), measured side by side in one run with
//! bubblewrap and firejail doing the same job (new namespaces including the network, a
//! read-only system view, private /tmp and /proc), plus plain `/bin/true` as the floor.
//! Run: `cargo bench -p sandbox-runner --bench startup` (root; bwrap and firejail from
//! scripts/setup.sh). Target: our median under 50 ms. Prints medians, p90 and ratios.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 60;

fn measure(cmd: &[&str]) -> Option<Vec<Duration>> {
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..RUNS + 5 {
        let start = Instant::now();
        let status = Command::new(cmd[0])
            .args(&cmd[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        let took = start.elapsed();
        if !status.success() {
            eprintln!("{}: failed ({status})", cmd.join(" "));
            return None;
        }
        if i >= 5 {
            times.push(took); // the first five warm the caches
        }
    }
    times.sort();
    Some(times)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the sandbox needs root here");
        return;
    }
    let ours = env!("CARGO_BIN_EXE_sandbox-runner");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("/bin/true (no sandbox)", vec!["/bin/true"]),
        (
            "sandbox-runner strict, net none",
            vec![ours, "run", "--profile", "strict", "--", "/bin/true"],
        ),
        (
            "sandbox-runner strict, net host",
            vec![
                ours,
                "run",
                "--profile",
                "strict",
                "--net",
                "host",
                "--",
                "/bin/true",
            ],
        ),
        (
            "sandbox-runner wine, net none",
            vec![ours, "run", "--profile", "wine", "--", "/bin/true"],
        ),
        (
            "bwrap --unshare-all",
            vec![
                "bwrap",
                "--unshare-all",
                "--die-with-parent",
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--proc",
                "/proc",
                "--tmpfs",
                "/tmp",
                "/bin/true",
            ],
        ),
        (
            "firejail --net=none",
            vec![
                "firejail",
                "--quiet",
                "--noprofile",
                "--net=none",
                "--private-tmp",
                "/bin/true",
            ],
        ),
    ];
    println!("{RUNS} runs each, same machine, same run");
    let mut medians = Vec::new();
    for (name, cmd) in &cases {
        match measure(cmd) {
            Some(t) => {
                let med = t[t.len() / 2];
                let p90 = t[t.len() * 9 / 10];
                println!(
                    "{name:36} median {:7.2} ms  p90 {:7.2} ms",
                    ms(med),
                    ms(p90)
                );
                medians.push((*name, med));
            }
            None => println!("{name:36} unavailable"),
        }
    }
    let find = |n: &str| {
        medians
            .iter()
            .find(|(m, _)| m.starts_with(n))
            .map(|(_, d)| ms(*d))
    };
    if let Some(o) = find("sandbox-runner strict, net none") {
        for other in ["bwrap", "firejail"] {
            if let Some(x) = find(other) {
                println!("ratio sandbox-runner / {other}: {:.2}", o / x);
            }
        }
        println!(
            "target: median under 50 ms -> {}",
            if o < 50.0 { "met" } else { "NOT met" }
        );
    }
}
