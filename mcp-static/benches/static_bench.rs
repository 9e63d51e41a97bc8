//! Side-by-side timings for the performance targets of mcp-static (one run, same machine,
//! ratios reported). Run: `cargo bench -p mcp-static --bench static_bench`.
//!
//! Needs Wine's user32.dll (package wine64), binutils-mingw-w64 and binutils.

use mcp_static::Binary;
use mcp_static::disasm;
use mcp_static::model::CodeIndex;
use mcp_static::strings;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USER32: &str = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/user32.dll";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn run_to_null(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(status.success(), "{cmd} failed");
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A server process speaking newline-delimited JSON-RPC on stdio.
struct Server {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Server {
    fn start(bin: &str) -> Server {
        let mut child = Command::new(bin)
            .args(["--root", "/usr/lib"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e}"));
        let out = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("no stdout")));
        Server { child, out }
    }

    fn request(&mut self, msg: &str) -> String {
        let stdin = self
            .child
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("no stdin"));
        stdin
            .write_all(msg.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        stdin.write_all(b"\n").unwrap_or_else(|e| panic!("{e}"));
        stdin.flush().unwrap_or_else(|e| panic!("{e}"));
        if msg.contains("\"id\"") {
            let mut line = String::new();
            self.out
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("{e}"));
            line
        } else {
            String::new()
        }
    }

    fn initialize(&mut self) {
        let r = self.request(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#);
        assert!(r.contains("mcp-static"), "{r}");
        self.request(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    let server_bin = env!("CARGO_BIN_EXE_mcp-static");
    let data = std::fs::read(USER32).unwrap_or_else(|e| panic!("{USER32}: {e} (install wine64)"));
    let bin = Binary::parse(data.clone()).unwrap_or_else(|e| panic!("{e}"));
    let text = bin
        .sections
        .iter()
        .find(|s| s.name == ".text")
        .unwrap_or_else(|| panic!("no .text"));
    let code = bin.section_bytes(text).to_vec();
    println!(
        "user32.dll: {} bytes, .text {} bytes",
        data.len(),
        code.len()
    );

    // 1. Linear disassembly of .text to text lines vs objdump -d.
    let mut insns = 0;
    let ours = time(5, || {
        let mut out = String::with_capacity(code.len() * 12);
        insns = disasm::linear_text(bin.arch, &code, text.va, &mut out).unwrap_or(0);
        std::hint::black_box(&out);
    });
    let objdump = time(5, || {
        run_to_null("x86_64-w64-mingw32-objdump", &["-d", "-j", ".text", USER32])
    });
    println!(
        "linear disassembly of .text ({insns} instructions): ours {} | objdump -d {} | objdump/ours = {:.2}x (target >= 2x)",
        ms(ours),
        ms(objdump),
        objdump.as_secs_f64() / ours.as_secs_f64()
    );

    // 2. Function discovery + xrefs, first time and from the cache.
    let mut stats = (0, 0);
    let cold = time(5, || {
        let index = CodeIndex::build(&bin);
        stats = (index.functions.len(), index.xrefs.len());
    });
    let _ = bin.code_index();
    let warm = time(5, || {
        std::hint::black_box(bin.code_index().functions.len());
    });
    println!(
        "function discovery + xrefs ({} functions, {} xrefs): first {} (target < 300 ms) | cached {:.3} ms",
        stats.0,
        stats.1,
        ms(cold),
        warm.as_secs_f64() * 1000.0
    );

    // 3. Strings over the whole file vs strings -a -n 4.
    let ours = time(5, || {
        let mut found = Vec::new();
        strings::ascii(&data, 4, &mut found);
        let mut out = String::with_capacity(data.len() / 2);
        for f in &found {
            out.push_str(&f.text(&data));
            out.push('\n');
        }
        std::hint::black_box(&out);
    });
    let theirs = time(5, || run_to_null("strings", &["-a", "-n", "4", USER32]));
    println!(
        "ascii strings of the whole file: ours {} | strings -a -n 4 {} | strings/ours = {:.2}x (target >= 1x)",
        ms(ours),
        ms(theirs),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );

    // 4. Cold start to the initialize answer, median of 20.
    let start = time(20, || {
        let mut s = Server::start(server_bin);
        s.initialize();
    });
    println!(
        "cold start to initialize answer (median of 20): {} (target < 50 ms)",
        ms(start)
    );

    // 5. binary_info + list_exports on a 6 MB DLL over MCP, fresh server (no cache) each run.
    let mut s_once = Server::start(server_bin);
    s_once.initialize();
    drop(s_once);
    let over_mcp = time(10, || {
        let mut s = Server::start(server_bin);
        s.initialize();
        let t = Instant::now();
        let a = s.request(&format!(r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"binary_info","arguments":{{"path":"{USER32}"}}}}}}"#));
        let b = s.request(&format!(r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"list_exports","arguments":{{"path":"{USER32}"}}}}}}"#));
        // The exports as the default text page: the paging fields in structuredContent.
        assert!(a.contains("pe32+") && b.contains("\"total\":") && !b.contains("\"isError\":true"));
        std::hint::black_box(t.elapsed());
    });
    println!(
        "binary_info + list_exports over MCP on user32.dll ({:.1} MB), incl. server start: {} (target < 200 ms)",
        data.len() as f64 / 1e6,
        ms(over_mcp)
    );
}
