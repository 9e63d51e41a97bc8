//! Ground truth from GNU objdump (binutils, mingw-w64 builds for PE): the same sections,
//! exports, imports and instruction boundaries as the library finds, on real files this
//! project did not make: Wine's user32.dll (PE32+), mingw's libgnat-12.dll (PE32), and
//! Debian's libc.so.6 and /bin/ls (ELF64).

use mcp_static::Binary;
use mcp_static::queries;
use std::collections::BTreeSet;
use std::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const USER32: &str = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/user32.dll";
const GNAT32: &str = "/usr/lib/gcc/i686-w64-mingw32/12-win32/adalib/libgnat-12.dll";
const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";
const LS: &str = "/bin/ls";

fn objdump(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} is needed (binutils / binutils-mingw-w64): {e}"));
    assert!(out.status.success(), "{tool} {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn load(path: &str) -> Binary {
    let data = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{path} is needed (installed by scripts/test.sh): {e}"));
    Binary::parse(data).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (name, size, vma, file offset) from `objdump -h`.
fn sections(tool: &str, path: &str) -> Vec<(String, u64, u64, u64)> {
    let text = objdump(tool, &["-h", path]);
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 7 && f[0].parse::<u32>().is_ok() {
            let h = |s: &str| u64::from_str_radix(s, 16).unwrap_or(u64::MAX);
            out.push((f[1].to_string(), h(f[2]), h(f[3]), h(f[5])));
        }
    }
    out
}

fn check_sections(tool: &str, path: &str, bin: &Binary) {
    let theirs = sections(tool, path);
    assert!(!theirs.is_empty());
    let ours: Vec<(String, u64, u64, u64)> = bin
        .sections
        .iter()
        .filter(|s| theirs.iter().any(|t| t.0 == s.name))
        // objdump -h prints the virtual size for PE and sh_size for ELF.
        .map(|s| (s.name.clone(), s.virtual_size, s.va, s.file_offset))
        .collect();
    // objdump hides some ELF sections (e.g. .symtab, .strtab) in -h; every one it shows must
    // be ours, with the same numbers.
    for t in &theirs {
        assert!(
            ours.contains(t),
            "{path}: objdump section {t:?} differs from ours {ours:?}"
        );
    }
}

/// Exports from `objdump -p`: EAT RVAs by ordinal and the set of names.
fn pe_exports(tool: &str, path: &str) -> (Vec<(u32, u64)>, BTreeSet<String>) {
    let text = objdump(tool, &["-p", path]);
    let mut eat = Vec::new();
    let mut names = BTreeSet::new();
    let mut section = "";
    for line in text.lines() {
        if line.starts_with("Export Address Table -- Ordinal Base") {
            section = "eat";
            continue;
        }
        if line.starts_with("[Ordinal/Name Pointer] Table") {
            section = "names";
            continue;
        }
        if line.trim().is_empty() {
            section = "";
            continue;
        }
        let t = line.trim();
        match section {
            "eat" => {
                // [   0] +base[10001] 100c Export RVA
                if let Some(rest) = t.split_once("+base[").map(|(_, r)| r)
                    && let Some((ord, tail)) = rest.split_once(']')
                {
                    let rva = tail.split_whitespace().next().unwrap_or("");
                    eat.push((
                        ord.trim().parse().unwrap_or(0),
                        u64::from_str_radix(rva, 16).unwrap_or(0),
                    ));
                }
            }
            "names" => {
                if let Some((_, name)) = t.split_once(']') {
                    names.insert(name.trim().to_string());
                }
            }
            _ => {}
        }
    }
    (eat, names)
}

fn check_pe_exports(tool: &str, path: &str, bin: &Binary) {
    let (eat, names) = pe_exports(tool, path);
    assert!(!eat.is_empty(), "{path}: objdump listed no exports");
    let ours: Vec<(u32, u64)> = bin
        .exports
        .iter()
        .map(|e| (e.ordinal.unwrap_or(0), e.va - bin.image_base))
        .collect();
    let theirs: Vec<(u32, u64)> = eat.into_iter().filter(|&(_, rva)| rva != 0).collect();
    assert_eq!(ours, theirs, "{path}: export ordinals/RVAs differ");
    let our_names: BTreeSet<String> = bin.exports.iter().filter_map(|e| e.name.clone()).collect();
    assert_eq!(our_names, names, "{path}: export names differ");
}

/// Imports from `objdump -p`: (library, name) pairs.
fn pe_imports(tool: &str, path: &str) -> BTreeSet<(String, String)> {
    let text = objdump(tool, &["-p", path]);
    let mut out = BTreeSet::new();
    let mut lib: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("DLL Name: ") {
            lib = Some(name.to_lowercase());
            continue;
        }
        if t.is_empty() {
            lib = None;
            continue;
        }
        if let Some(l) = &lib {
            let f: Vec<&str> = t.split_whitespace().collect();
            if f.len() >= 3 && u64::from_str_radix(f[0], 16).is_ok() {
                out.insert((l.clone(), f[2].to_string()));
            } else if f.len() == 2 && u64::from_str_radix(f[0], 16).is_ok() {
                // Ordinal import: "vma  <ordinal>".
                out.insert((l.clone(), format!("#{}", f[1])));
            }
        }
    }
    out
}

fn check_pe_imports(tool: &str, path: &str, bin: &Binary) {
    let theirs = pe_imports(tool, path);
    assert!(!theirs.is_empty());
    let ours: BTreeSet<(String, String)> = bin
        .imports
        .iter()
        .map(|i| {
            let name = i
                .name
                .clone()
                .unwrap_or_else(|| format!("#{}", i.ordinal.unwrap_or(0)));
            (i.library.clone().unwrap_or_default().to_lowercase(), name)
        })
        .collect();
    assert_eq!(ours, theirs, "{path}: imports differ");
}

/// Instruction starts and mnemonics from `objdump -d -M intel` in [va, va + 96).
fn objdump_insns(tool: &str, path: &str, va: u64) -> Vec<(u64, String)> {
    let start = format!("--start-address=0x{va:x}");
    let stop = format!("--stop-address=0x{:x}", va + 96);
    let text = objdump(tool, &["-d", "-M", "intel", &start, &stop, path]);
    let mut out = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        if parts.len() >= 3
            && let Ok(addr) = u64::from_str_radix(parts[0].trim().trim_end_matches(':'), 16)
        {
            let mnem = parts[2]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_lowercase();
            out.push((addr, mnem));
        }
    }
    out
}

fn check_instructions(tool: &str, path: &str, bin: &Binary, exports: &[&str]) {
    let mut same_mnemonic = 0usize;
    let mut compared = 0usize;
    for name in exports {
        let va = bin
            .exports
            .iter()
            .find(|e| e.name.as_deref() == Some(*name))
            .map(|e| e.va)
            .unwrap_or_else(|| panic!("{path} has no export {name}"));
        let theirs = objdump_insns(tool, path, va);
        let ours = queries::disassemble(bin, va, 12, usize::MAX)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .items;
        // The last objdump lines may be cut by --stop-address: compare the first 10.
        assert!(theirs.len() >= 10, "{name}: objdump gave {theirs:?}");
        for (t, o) in theirs.iter().take(10).zip(&ours) {
            assert_eq!(t.0, o.va.0, "{path} {name}: instruction boundaries differ");
            compared += 1;
            if t.1 == o.mnemonic {
                same_mnemonic += 1;
            }
        }
    }
    // Boundaries must agree exactly; a few mnemonics are spelled differently by the two
    // disassemblers (e.g. `movabs`, prefixes), so most, not all, must match.
    assert!(
        same_mnemonic * 10 >= compared * 9,
        "{path}: {same_mnemonic}/{compared} mnemonics agree"
    );
}

#[test]
fn user32_pe32_plus_matches_objdump() -> TestResult {
    let tool = "x86_64-w64-mingw32-objdump";
    let bin = load(USER32);
    assert_eq!(bin.format.name(), "pe32+");
    check_sections(tool, USER32, &bin);
    check_pe_exports(tool, USER32, &bin);
    check_pe_imports(tool, USER32, &bin);
    check_instructions(
        tool,
        USER32,
        &bin,
        &[
            "MessageBoxA",
            "GetWindowTextA",
            "SetWindowPos",
            "DefWindowProcA",
        ],
    );
    Ok(())
}

#[test]
fn libgnat_pe32_matches_objdump() -> TestResult {
    let tool = "i686-w64-mingw32-objdump";
    let bin = load(GNAT32);
    assert_eq!(bin.format.name(), "pe32");
    check_sections(tool, GNAT32, &bin);
    check_pe_exports(tool, GNAT32, &bin);
    check_pe_imports(tool, GNAT32, &bin);
    let named: Vec<String> = bin
        .exports
        .iter()
        .filter(|e| bin.is_executable_va(e.va))
        .filter_map(|e| e.name.clone())
        .filter(|n| n.starts_with("ada__strings"))
        .take(4)
        .collect();
    let refs: Vec<&str> = named.iter().map(String::as_str).collect();
    assert_eq!(refs.len(), 4);
    check_instructions(tool, GNAT32, &bin, &refs);
    Ok(())
}

/// Defined and undefined dynamic symbols from `objdump -T`.
fn elf_dynamic(path: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let text = objdump("objdump", &["-T", path]);
    let mut defined = BTreeSet::new();
    let mut undefined = BTreeSet::new();
    for line in text.lines() {
        // 0000000000029dc0 g    DF .text  0000000000000026  GLIBC_2.34  __libc_start_main
        if line.len() < 25 || u64::from_str_radix(line.get(..16).unwrap_or(""), 16).is_err() {
            continue;
        }
        let flags = line.get(17..24).unwrap_or("");
        let rest: Vec<&str> = line.get(25..).unwrap_or("").split_whitespace().collect();
        let (Some(section), Some(name)) = (rest.first(), rest.last()) else {
            continue;
        };
        let bind = flags.get(..2).unwrap_or("");
        let global = bind.contains('g') || bind.contains('w') || bind.contains('u');
        if *section == "*UND*" {
            if global || flags.trim().is_empty() || flags.contains('D') {
                undefined.insert(name.to_string());
            }
        } else if global && (flags.contains('F') || flags.contains('O') || flags.contains('i')) {
            defined.insert(name.to_string());
        }
    }
    (defined, undefined)
}

#[test]
fn elf_matches_objdump() -> TestResult {
    for path in [LIBC, LS] {
        let bin = load(path);
        assert_eq!(bin.format.name(), "elf64");
        check_sections("objdump", path, &bin);
        let (defined, undefined) = elf_dynamic(path);
        let ours_def: BTreeSet<String> =
            bin.exports.iter().filter_map(|e| e.name.clone()).collect();
        let ours_undef: BTreeSet<String> =
            bin.imports.iter().filter_map(|i| i.name.clone()).collect();
        let only_ours: Vec<&String> = ours_def.difference(&defined).collect();
        let only_theirs: Vec<&String> = defined.difference(&ours_def).collect();
        assert!(
            only_ours.is_empty() && only_theirs.is_empty(),
            "{path}: exported symbols differ: only ours {only_ours:?}, only objdump {only_theirs:?}"
        );
        assert!(
            ours_undef.is_subset(&undefined),
            "{path}: imports not in objdump -T"
        );
        assert!(!ours_undef.is_empty() || path == LIBC);
    }
    Ok(())
}

/// Every page of the ASCII strings of user32.dll, in turn, is what GNU `strings -a -n 4`
/// prints, in its order: the extraction is made once and each page is a slice of it.
#[test]
fn string_pages_walk_the_same_strings_as_gnu_strings() -> TestResult {
    let bin = load(USER32);
    let want = objdump("strings", &["-a", "-n", "4", USER32]);
    let want: Vec<&str> = want.lines().collect();
    let mut got = Vec::new();
    let mut offset = 0;
    loop {
        let q = queries::StringQuery {
            min_length: 4,
            kinds: queries::StringKinds::Ascii,
            section: &None,
            contains: &None,
        };
        let (total, items) = queries::strings(&bin, &q, offset, 1000)?;
        assert_eq!(total, want.len());
        if items.is_empty() {
            break;
        }
        offset += items.len();
        got.extend(items.into_iter().map(|s| s.text));
    }
    assert_eq!(got.len(), want.len());
    let differing = got.iter().zip(&want).position(|(g, w)| g != w);
    assert_eq!(differing, None, "first difference at string {differing:?}");
    Ok(())
}

/// Every page of libgnat-12.dll's 13,644 exports, in turn, is the export table in order, with
/// the ordinals objdump lists; a filter pages the same way.
#[test]
fn export_pages_walk_the_whole_table() -> TestResult {
    let bin = load(GNAT32);
    let (want, _) = pe_exports("i686-w64-mingw32-objdump", GNAT32);
    let mut got = Vec::new();
    let mut offset = 0;
    loop {
        let (total, items) = queries::exports(&bin, &None, offset, 1000);
        assert_eq!(total, bin.exports.len());
        if items.is_empty() {
            break;
        }
        offset += items.len();
        got.extend(items);
    }
    assert_eq!(got.len(), bin.exports.len());
    let ordinals: Vec<u32> = got.iter().filter_map(|e| e.ordinal).collect();
    let mut wanted: Vec<u32> = want.iter().map(|(o, _)| *o).collect();
    let mut listed = ordinals.clone();
    wanted.sort_unstable();
    listed.sort_unstable();
    assert_eq!(listed, wanted);
    let filter = Some("ada__".to_string());
    let (total, first) = queries::exports(&bin, &filter, 0, 10);
    assert!(total > 10 && first.len() == 10);
    let (_, last) = queries::exports(&bin, &filter, total - 1, 10);
    assert_eq!(last.len(), 1);
    Ok(())
}

/// Instruction starts of `objdump -d -z -w` over a whole section (zeros decoded, one line
/// per instruction), up to the first `.byte` line: there objdump cut an instruction short at
/// a symbol and restarted decoding at it, which a sweep that knows no symbols does not do.
fn objdump_section_starts(tool: &str, path: &str, section: &str) -> (Vec<u64>, usize) {
    let text = objdump(tool, &["-d", "-z", "-w", "-j", section, path]);
    let mut starts = Vec::new();
    let mut all = 0;
    let mut cut = false;
    for line in text.lines() {
        let Some((addr, rest)) = line.split_once(":\t") else {
            continue;
        };
        // An instruction line has bytes then a tab then the mnemonic; a label has none.
        let Some((_, insn)) = rest.split_once('\t') else {
            continue;
        };
        let Ok(va) = u64::from_str_radix(addr.trim(), 16) else {
            continue;
        };
        all += 1;
        cut |= insn.starts_with(".byte");
        if !cut {
            starts.push(va);
        }
    }
    (starts, all)
}

/// Walking user32.dll's whole `.text` page by page (each page cut by size, continuing at its
/// `next_address`, the second walk served from the kept sweep) meets every instruction start
/// objdump prints, bad bytes included, and no other.
#[test]
fn disassemble_pages_walk_the_whole_text_as_objdump() -> TestResult {
    let tool = "x86_64-w64-mingw32-objdump";
    let bin = load(USER32);
    let (want, all) = objdump_section_starts(tool, USER32, ".text");
    // The symbols that stop objdump's sweep sit in the data tables at the end of .text.
    assert!(want.len() * 1000 > all * 999, "{} of {all}", want.len());
    let text = bin
        .sections
        .iter()
        .find(|s| s.name == ".text")
        .ok_or("user32.dll has no .text")?;
    let end = text.va + text.raw_size.min(text.virtual_size);
    for walk in 0..2 {
        let mut got = Vec::with_capacity(want.len());
        let mut va = text.va;
        let mut pages = 0;
        while va < end {
            let page = queries::disassemble(&bin, va, 2000, 40_000)?;
            pages += 1;
            got.extend(page.items.iter().map(|i| i.va.0).filter(|v| *v < end));
            assert!(page.next_va > va, "no progress at {va:#x}");
            va = page.next_va;
        }
        assert!(pages > 1, "one page cannot hold all of .text");
        let differing = got.iter().zip(&want).position(|(g, w)| g != w);
        assert_eq!(
            differing,
            None,
            "walk {walk}: first difference at instruction {differing:?}: ours {:?}, objdump {:?}",
            differing.map(|i| got[i]),
            differing.map(|i| want[i])
        );
        assert!(got.len() >= want.len(), "walk {walk}");
    }
    // A page served from the sweep is what decoding its bytes afresh gives.
    let cs = mcp_static::disasm::capstone(bin.arch, true)?;
    for &va in want.iter().step_by(want.len() / 40 + 1) {
        let page = queries::disassemble(&bin, va, 20, usize::MAX)?;
        let code = bin.bytes_at(va).ok_or("no bytes")?;
        let fresh = mcp_static::disasm::decode(&cs, bin.arch, code, va, 20);
        let ours: Vec<_> = page
            .items
            .iter()
            .map(|i| (i.va.0, i.mnemonic.clone(), i.operands.clone()))
            .collect();
        let theirs: Vec<_> = fresh
            .into_iter()
            .map(|i| (i.va, i.mnemonic, i.operands))
            .collect();
        assert_eq!(ours, theirs, "at {va:#x}");
    }
    Ok(())
}

/// Every page of user32.dll's functions in turn is the whole list in order, and a filtered
/// walk is the matching part of it; each page builds only its own items.
#[test]
fn function_pages_walk_the_whole_list() -> TestResult {
    let bin = load(USER32);
    let all: Vec<u64> = bin.code_index().functions.iter().map(|f| f.va).collect();
    assert!(all.len() > 1000, "{} functions", all.len());
    for (filter, want) in [
        (None, all.clone()),
        (
            Some("window".to_string()),
            bin.code_index()
                .functions
                .iter()
                .filter(|f| f.name.to_lowercase().contains("window"))
                .map(|f| f.va)
                .collect(),
        ),
    ] {
        let mut got = Vec::new();
        loop {
            let (total, items) = queries::functions(&bin, &filter, got.len(), 700);
            assert_eq!(total, want.len());
            if items.is_empty() {
                break;
            }
            got.extend(items.iter().map(|f| f.va.0));
        }
        assert_eq!(got, want, "filter {filter:?}");
    }
    Ok(())
}
