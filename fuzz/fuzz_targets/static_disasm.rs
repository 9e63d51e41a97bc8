//! x86 decoding of arbitrary bytes (mcp-static's disasm module): the objdump-like linear
//! sweep `disassemble` and the section listings use, in 32- and 64-bit mode, and the
//! detailed decode whose operand facts the analyses read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_static::model::Arch;
use mcp_static::disasm;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes (when there) choose the load address, so that wrapping branch
    // targets and 32-bit address masking are reached.
    let (va, code) = match data.split_first_chunk::<8>() {
        Some((head, rest)) => (u64::from_le_bytes(*head), rest),
        None => (0x40_1000, data),
    };
    for arch in [Arch::X86, Arch::X86_64] {
        let mut text = String::new();
        // The sweep starts at `va` and adds offsets: keep it where a section could be.
        let sweep_va = if arch == Arch::X86 {
            va & 0xFFFF_FFFF
        } else {
            va >> 1
        };
        if let Ok(n) = disasm::linear_text(arch, code, sweep_va, &mut text) {
            assert!(n <= code.len(), "more instructions than bytes");
            assert_eq!(text.lines().count(), n);
        }
        let Ok(cs) = disasm::capstone(arch, true) else {
            return;
        };
        let insns = disasm::decode(&cs, arch, code, va, 256);
        let decoded: usize = insns.iter().map(|i| i.bytes.len()).sum();
        assert!(decoded <= code.len());
    }
});
