//! Start-up overhead of an empty sandbox (`/bin/true`), measured side by side in one run with
//! bubblewrap and firejail, plus plain `/bin/true` as the floor. bubblewrap appears twice: the
//! issue's reference command (`--unshare-all --die-with-parent --ro-bind / / /bin/true`) and
//! the same with the fresh /dev, /proc and /tmp our view has.
//! Run: `cargo bench -p sandbox-runner --bench startup` (an optimised build; root; bwrap and
//! firejail from scripts/setup.sh; firejail is left out when it is not installed).
//! `SANDBOX_RUNNER_BASELINE=PATH` adds another build of the runner (the previous commit's,
//! say) to the same run, for a before/after figure.
//! The cases take turns run by run, so that a machine whose load changes meanwhile weighs on
//! all of them alike. Prints the median and p90 wall time, the CPU time per run (the process
//! and everything it started) and the ratio of our median to each peer's. Target: at most 2x
//! bubblewrap's median.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 60;
const WARM_UP: usize = 5;

/// CPU time (user + system) of the children waited for so far.
fn children_cpu() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out pointer.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One run: wall time and CPU time, or `None` when the command failed.
fn once(cmd: &[&str]) -> Option<(Duration, Duration)> {
    let cpu = children_cpu();
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
    Some((took, children_cpu().saturating_sub(cpu)))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Case {
    name: &'static str,
    cmd: Vec<&'static str>,
    wall: Vec<Duration>,
    cpu: Duration,
    failed: bool,
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the sandbox needs root here");
        return;
    }
    let ours = env!("CARGO_BIN_EXE_sandbox-runner");
    let strict = |net: &'static str| vec![ours, "run", "--profile", "strict", "--net", net];
    let mut cases: Vec<(&str, Vec<&str>)> = vec![
        ("/bin/true (no sandbox)", vec![]),
        ("sandbox-runner strict, net none", strict("none")),
        ("sandbox-runner strict, net host", strict("host")),
        (
            "sandbox-runner wine, net none",
            vec![ours, "run", "--profile", "wine", "--net", "none"],
        ),
    ];
    if let Ok(b) = std::env::var("SANDBOX_RUNNER_BASELINE") {
        // Leaked: one short string that lives as long as the bench anyway.
        let b: &'static str = b.leak();
        cases.push((
            "baseline strict, net none",
            vec![b, "run", "--profile", "strict", "--net", "none"],
        ));
    }
    if installed("bwrap") {
        let bwrap = vec![
            "bwrap",
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
        ];
        cases.push(("bwrap (the issue's command)", bwrap.clone()));
        let mut view = bwrap;
        view.extend(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]);
        cases.push(("bwrap + /dev, /proc, /tmp", view));
    }
    if installed("firejail") {
        cases.push((
            "firejail --noprofile --net=none",
            vec![
                "firejail",
                "--quiet",
                "--noprofile",
                "--net=none",
                "--private-tmp",
            ],
        ));
    }
    let mut cases: Vec<Case> = cases
        .into_iter()
        .map(|(name, mut cmd)| {
            // Ours takes the program after `--`; the others right after their options.
            if cmd.get(1) == Some(&"run") {
                cmd.push("--");
            }
            cmd.push("/bin/true");
            Case {
                name,
                cmd,
                wall: Vec::with_capacity(RUNS),
                cpu: Duration::ZERO,
                failed: false,
            }
        })
        .collect();
    for i in 0..WARM_UP + RUNS {
        for case in cases.iter_mut().filter(|c| !c.failed) {
            match once(&case.cmd) {
                // The first runs warm the caches (and ours compiles its filters once).
                Some(_) if i < WARM_UP => {}
                Some((wall, cpu)) => {
                    case.wall.push(wall);
                    case.cpu += cpu;
                }
                None => case.failed = true,
            }
        }
    }
    println!("{RUNS} runs each, taking turns, same machine, same run");
    let mut medians = Vec::new();
    for case in &mut cases {
        if case.failed || case.wall.is_empty() {
            println!("{:34} unavailable", case.name);
            continue;
        }
        case.wall.sort();
        let med = ms(case.wall[case.wall.len() / 2]);
        let p90 = ms(case.wall[case.wall.len() * 9 / 10]);
        let cpu = ms(case.cpu) / case.wall.len() as f64;
        println!(
            "{:34} median {med:7.2} ms  p90 {p90:7.2} ms  CPU {cpu:6.2} ms/run",
            case.name
        );
        medians.push((case.name, med));
    }
    let find = |n: &str| medians.iter().find(|(m, _)| m.starts_with(n)).map(|m| m.1);
    let Some(o) = find("sandbox-runner strict, net none") else {
        return;
    };
    let peers = medians.iter().filter(|(n, _)| {
        n.starts_with("bwrap") || n.starts_with("firejail") || n.starts_with("baseline")
    });
    for (name, peer) in peers {
        println!("ratio sandbox-runner strict / {name}: {:.2}", o / peer);
    }
    // The target is for the same isolation: bwrap given the same /dev, /proc and /tmp
    // (still without the sandbox's cgroup and seccomp filter). Its bare command is shown too.
    if let Some(b) = find("bwrap + /dev") {
        println!(
            "target: at most 2x bubblewrap's median for the same view ({:.2} ms) -> {}",
            2.0 * b,
            if o <= 2.0 * b { "met" } else { "NOT met" }
        );
    }
    if let Some(b) = find("bwrap (the issue's") {
        println!(
            "against the issue's bare bwrap command (no /dev, /proc or /tmp): {:.2}x",
            o / b
        );
    }
}
