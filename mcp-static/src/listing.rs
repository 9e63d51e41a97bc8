//! A code section decoded once, from its first byte to its last (a linear sweep, as
//! `objdump -d` does), and kept with its binary. `disassemble` pages that continue at the
//! previous page's `next_address` land on an instruction of the sweep, so each page is a
//! slice of it instead of a new decode of the same bytes.
//!
//! Kept compact (offsets, one text arena, targets) because a section of a few megabytes holds
//! about a million instructions; sections above [`MAX_SECTION_BYTES`] are not kept and every
//! page decodes its own bytes.

use crate::disasm;
use crate::model::{Arch, Section};
use capstone::Capstone;

/// The largest section swept and kept whole (about 120 MB of listing at worst).
pub const MAX_SECTION_BYTES: u64 = 8 << 20;

/// One section's instructions, in address order.
pub struct Listing {
    /// Address of the section's first byte.
    pub va: u64,
    /// Offset of each instruction from `va`, then the offset where the last one ends.
    starts: Vec<u32>,
    /// Mnemonics and operands, one after the other.
    text: String,
    /// Per instruction: where its mnemonic ends and where its operands end in `text`.
    text_ends: Vec<(u32, u32)>,
    /// Per instruction: its direct branch target, else the address a memory operand reads.
    targets: Vec<Option<u64>>,
}

impl std::fmt::Debug for Listing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listing")
            .field("va", &self.va)
            .field("instructions", &self.len())
            .finish()
    }
}

/// One instruction of a [`Listing`], borrowed.
pub struct Line<'a> {
    pub va: u64,
    pub len: usize,
    pub mnemonic: &'a str,
    pub operands: &'a str,
    pub target: Option<u64>,
}

impl Listing {
    /// Sweeps `code`, the file bytes of `section`, with `cs` (detail on, for the targets).
    /// None when the section is too large to keep.
    pub fn build(cs: &Capstone, arch: Arch, section: &Section, code: &[u8]) -> Option<Listing> {
        if section.raw_size > MAX_SECTION_BYTES || code.len() as u64 > MAX_SECTION_BYTES {
            return None;
        }
        let mut l = Listing {
            va: section.va,
            starts: Vec::with_capacity(code.len() / 3),
            text: String::with_capacity(code.len() * 6),
            text_ends: Vec::with_capacity(code.len() / 3),
            targets: Vec::with_capacity(code.len() / 3),
        };
        let mut pos = 0usize;
        while pos < code.len() {
            // Decode in runs of this size so a run's Vec stays small.
            let run = disasm::decode(cs, arch, &code[pos..], section.va + pos as u64, 4096);
            if run.is_empty() {
                // Capstone refused the bytes outright; pages decode afresh instead.
                return None;
            }
            for i in run {
                l.starts.push(u32::try_from(i.va - section.va).ok()?);
                pos += i.bytes.len();
                l.text.push_str(&i.mnemonic);
                let mnemonic_end = u32::try_from(l.text.len()).ok()?;
                l.text.push_str(&i.operands);
                let operands_end = u32::try_from(l.text.len()).ok()?;
                l.text_ends.push((mnemonic_end, operands_end));
                l.targets.push(i.facts.target.or(i.facts.mem_ref));
            }
        }
        l.starts.push(u32::try_from(pos).ok()?);
        l.text.shrink_to_fit();
        Some(l)
    }

    /// Bytes of memory the listing holds, for the cache's accounting.
    pub fn heap_bytes(&self) -> usize {
        self.starts.capacity() * 4
            + self.text.capacity()
            + self.text_ends.capacity() * 8
            + self.targets.capacity() * std::mem::size_of::<Option<u64>>()
    }

    /// The index of the instruction that starts exactly at `va`, if the sweep has one there.
    pub fn index_of(&self, va: u64) -> Option<usize> {
        let off = u32::try_from(va.checked_sub(self.va)?).ok()?;
        let i = self.starts.binary_search(&off).ok()?;
        (i + 1 < self.starts.len()).then_some(i)
    }

    /// How many instructions the listing holds.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The instruction at index `i` (`i < len()`).
    pub fn line(&self, i: usize) -> Line<'_> {
        let text_start = if i == 0 {
            0
        } else {
            self.text_ends[i - 1].1 as usize
        };
        let (m_end, o_end) = self.text_ends[i];
        Line {
            va: self.va + u64::from(self.starts[i]),
            len: (self.starts[i + 1] - self.starts[i]) as usize,
            mnemonic: &self.text[text_start..m_end as usize],
            operands: &self.text[m_end as usize..o_end as usize],
            target: self.targets[i],
        }
    }
}
