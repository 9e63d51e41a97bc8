//! x86 and x86-64 disassembly over capstone, with the operand facts the analyses need
//! (branch targets, absolute and RIP-relative memory references, immediates).

use crate::model::Arch;
use capstone::arch::x86::{ArchMode, ArchSyntax, X86OperandType, X86Reg};
use capstone::arch::{BuildsCapstone, BuildsCapstoneSyntax, DetailsArchInsn};
use capstone::{Capstone, InsnGroupId, InsnGroupType, RegId};

/// What kind of control flow an instruction has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Normal,
    Call,
    Jump,
    ConditionalJump,
    Return,
    /// Stops execution (hlt, ud2, int3): nothing falls through.
    Stop,
}

/// Operand facts of one instruction: what the analyses read (no text, no allocation).
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub flow: Flow,
    /// Direct branch/call target.
    pub target: Option<u64>,
    /// Address of a memory operand with no register other than RIP (an absolute or
    /// RIP-relative reference).
    pub mem_ref: Option<u64>,
    /// First immediate operand that is not a branch target.
    pub immediate: Option<u64>,
    /// Byte ranges inside the instruction (offset, length) that hold the displacement and
    /// the immediate: what a signature wildcards when they are addresses.
    pub disp_span: Option<(u8, u8)>,
    pub imm_span: Option<(u8, u8)>,
}

/// One decoded instruction as tools show it.
#[derive(Debug, Clone)]
pub struct Insn {
    pub va: u64,
    pub bytes: Vec<u8>,
    pub mnemonic: String,
    pub operands: String,
    pub facts: Facts,
}

/// Makes a capstone handle for `arch`; `detail` is needed for operand facts.
pub fn capstone(arch: Arch, detail: bool) -> Result<Capstone, String> {
    let mode = match arch {
        Arch::X86 => ArchMode::Mode32,
        Arch::X86_64 => ArchMode::Mode64,
        other => {
            return Err(format!(
                "disassembly supports x86 and x86_64, this binary is {}",
                other.name()
            ));
        }
    };
    Capstone::new()
        .x86()
        .mode(mode)
        .syntax(ArchSyntax::Intel)
        .detail(detail)
        .build()
        .map_err(|e| format!("capstone: {e}"))
}

/// Decodes up to `count` instructions from `code` (at `va`). A byte capstone cannot decode
/// becomes one `(bad)` entry and decoding goes on after it, as objdump does, so a listing
/// walks through data in a code section instead of stopping there.
pub fn decode(cs: &Capstone, arch: Arch, code: &[u8], va: u64, count: usize) -> Vec<Insn> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while out.len() < count && pos < code.len() {
        let at = va.wrapping_add(pos as u64);
        let Ok(mut iter) = cs.disasm_iter(&code[pos..], at) else {
            return out;
        };
        while out.len() < count
            && let Some(insn) = iter.next()
        {
            pos += insn.len();
            out.push(Insn {
                va: insn.address(),
                bytes: insn.bytes().to_vec(),
                mnemonic: insn.mnemonic().unwrap_or("").to_string(),
                operands: insn.op_str().unwrap_or("").to_string(),
                facts: facts(cs, arch, &insn),
            });
        }
        if out.len() < count && pos < code.len() {
            // Capstone stopped at bytes it cannot decode.
            let bad_va = va.wrapping_add(pos as u64);
            out.push(Insn {
                va: bad_va,
                bytes: vec![code[pos]],
                mnemonic: "(bad)".into(),
                operands: String::new(),
                facts: Facts::none(),
            });
            pos += 1;
        }
    }
    out
}

impl Facts {
    /// The facts of something that is not an instruction: no flow beyond it, no operands.
    pub fn none() -> Self {
        Facts {
            flow: Flow::Stop,
            target: None,
            mem_ref: None,
            immediate: None,
            disp_span: None,
            imm_span: None,
        }
    }
}

/// Operand facts of one capstone instruction (the handle must have detail on).
/// `arch` decides address width: 32-bit code wraps addresses at 4 GiB.
pub fn facts(cs: &Capstone, arch: Arch, insn: &capstone::Insn) -> Facts {
    let addr_mask = if arch == Arch::X86 {
        0xFFFF_FFFF
    } else {
        u64::MAX
    };
    let mut out = Facts {
        flow: Flow::Normal,
        target: None,
        mem_ref: None,
        immediate: None,
        disp_span: None,
        imm_span: None,
    };
    let Ok(detail) = cs.insn_detail(insn) else {
        return out;
    };
    let groups = detail.groups();
    let has = |g: u32| groups.contains(&InsnGroupId(g as u8));
    let id = insn.id().0;
    use capstone::arch::x86::X86Insn;
    out.flow = if has(InsnGroupType::CS_GRP_CALL) {
        Flow::Call
    } else if has(InsnGroupType::CS_GRP_RET) || has(InsnGroupType::CS_GRP_IRET) {
        Flow::Return
    } else if has(InsnGroupType::CS_GRP_JUMP) {
        if id == X86Insn::X86_INS_JMP as u32 || id == X86Insn::X86_INS_LJMP as u32 {
            Flow::Jump
        } else {
            Flow::ConditionalJump
        }
    } else if id == X86Insn::X86_INS_HLT as u32
        || id == X86Insn::X86_INS_UD2 as u32
        || id == X86Insn::X86_INS_INT3 as u32
    {
        Flow::Stop
    } else {
        Flow::Normal
    };
    let capstone::arch::ArchDetail::X86Detail(x86) = detail.arch_detail() else {
        return out;
    };
    let enc = x86.encoding();
    out.disp_span = enc.disp.map(|s| (s.offset, s.size));
    out.imm_span = enc.imm.map(|s| (s.offset, s.size));
    let next = insn.address().wrapping_add(insn.len() as u64);
    let is_branch = matches!(out.flow, Flow::Call | Flow::Jump | Flow::ConditionalJump);
    for op in x86.operands() {
        match op.op_type {
            X86OperandType::Imm(v) => {
                if is_branch {
                    out.target = Some(v as u64 & addr_mask);
                } else if out.immediate.is_none() {
                    out.immediate = Some(v as u64 & addr_mask);
                }
            }
            X86OperandType::Mem(m) => {
                let base = m.base();
                let index = m.index();
                if index == RegId(0) && base == RegId(0) {
                    out.mem_ref = Some(m.disp() as u64 & addr_mask);
                } else if index == RegId(0) && base == RegId(X86Reg::X86_REG_RIP as u16) {
                    out.mem_ref = Some(next.wrapping_add(m.disp() as u64));
                }
            }
            _ => {}
        }
    }
    out
}

/// Formats one instruction line like objdump does: address, bytes, mnemonic, operands.
pub fn write_line(out: &mut String, va: u64, bytes: &[u8], mnemonic: &str, operands: &str) {
    use std::fmt::Write;
    let _ = write!(out, "{va:x}:\t");
    for b in bytes {
        let _ = write!(out, "{b:02x} ");
    }
    out.push('\t');
    out.push_str(mnemonic);
    if !operands.is_empty() {
        out.push(' ');
        out.push_str(operands);
    }
    out.push('\n');
}

/// Linear sweep of a whole code range into text lines (no operand detail: the fast path).
/// Undecodable bytes become `(bad)` lines, as in objdump. Returns the instruction count.
pub fn linear_text(arch: Arch, code: &[u8], va: u64, out: &mut String) -> Result<usize, String> {
    let cs = capstone(arch, false)?;
    let mut pos = 0usize;
    let mut count = 0usize;
    while pos < code.len() {
        let Ok(mut iter) = cs.disasm_iter(&code[pos..], va + pos as u64) else {
            return Err("capstone could not allocate an instruction".into());
        };
        let mut advanced = false;
        while let Some(insn) = iter.next() {
            write_line(
                out,
                insn.address(),
                insn.bytes(),
                insn.mnemonic().unwrap_or(""),
                insn.op_str().unwrap_or(""),
            );
            pos += insn.len();
            count += 1;
            advanced = true;
        }
        if pos < code.len() {
            // Capstone stopped at bytes it cannot decode: emit one and go on.
            write_line(out, va + pos as u64, &code[pos..pos + 1], "(bad)", "");
            pos += 1;
            count += 1;
        } else if !advanced {
            break;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0x06 (push es) does not exist in 64-bit mode: one `(bad)` byte, then decoding goes on,
    /// as objdump shows it.
    #[test]
    fn undecodable_bytes_are_marked_and_passed() -> Result<(), String> {
        let cs = capstone(Arch::X86_64, true)?;
        let code = [0x90, 0x06, 0x90, 0xC3];
        let insns = decode(&cs, Arch::X86_64, &code, 0x1000, 10);
        let listed: Vec<(u64, &str)> = insns.iter().map(|i| (i.va, i.mnemonic.as_str())).collect();
        assert_eq!(
            listed,
            vec![
                (0x1000, "nop"),
                (0x1001, "(bad)"),
                (0x1002, "nop"),
                (0x1003, "ret")
            ]
        );
        assert_eq!(decode(&cs, Arch::X86_64, &code, 0x1000, 2).len(), 2);
        Ok(())
    }
}
