//! The plain types a format parser fills in (`Parsed`) and a binary is made of: format,
//! architecture, sections, exports, imports, declared functions. They depend on nothing
//! else in the crate, so the parsers (formats.rs), the disassembler and the listing use
//! them without the `Binary` that caches and analyses a file. The code index's types are
//! here too: analysis.rs builds it, `Binary` keeps it.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pe32,
    Pe32Plus,
    Elf32,
    Elf64,
    MachO,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Pe32 => "pe32",
            Format::Pe32Plus => "pe32+",
            Format::Elf32 => "elf32",
            Format::Elf64 => "elf64",
            Format::MachO => "macho",
        }
    }

    pub fn is_pe(self) -> bool {
        matches!(self, Format::Pe32 | Format::Pe32Plus)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86,
    X86_64,
    Arm,
    Arm64,
    Other(u32),
}

impl Arch {
    pub fn name(self) -> String {
        match self {
            Arch::X86 => "x86".into(),
            Arch::X86_64 => "x86_64".into(),
            Arch::Arm => "arm".into(),
            Arch::Arm64 => "arm64".into(),
            Arch::Other(code) => format!("unknown(0x{code:X})"),
        }
    }

    pub fn pointer_size(self) -> usize {
        match self {
            Arch::X86 | Arch::Arm => 4,
            _ => 8,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    /// Virtual address where the loader maps it; 0 for sections that are not mapped.
    pub va: u64,
    pub virtual_size: u64,
    pub file_offset: u64,
    /// Bytes present in the file (0 for uninitialised data).
    pub raw_size: u64,
    pub read: bool,
    pub write: bool,
    pub execute: bool,
    /// Whether the section is part of the loaded image at all.
    pub mapped: bool,
}

impl Section {
    pub fn permissions(&self) -> String {
        let mut p = String::with_capacity(3);
        p.push(if self.read { 'r' } else { '-' });
        p.push(if self.write { 'w' } else { '-' });
        p.push(if self.execute { 'x' } else { '-' });
        p
    }

    /// The extent the section covers in memory.
    pub fn mem_size(&self) -> u64 {
        self.virtual_size.max(self.raw_size)
    }

    pub fn contains_va(&self, va: u64) -> bool {
        self.mapped && va >= self.va && va - self.va < self.mem_size()
    }
}

#[derive(Debug, Clone)]
pub struct Export {
    pub name: Option<String>,
    pub ordinal: Option<u32>,
    pub va: u64,
    pub forwarder: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Import {
    pub library: Option<String>,
    pub name: Option<String>,
    pub ordinal: Option<u32>,
    /// The pointer slot the loader fills (PE IAT entry, ELF GOT/PLT slot, Mach-O bind address).
    pub slot_va: Option<u64>,
}

impl Import {
    /// `KERNEL32.dll!GetProcAddress` or `D2Common.dll!#10000`.
    pub fn display_name(&self) -> String {
        let item = match (&self.name, self.ordinal) {
            (Some(n), _) => n.clone(),
            (None, Some(o)) => format!("#{o}"),
            (None, None) => "?".into(),
        };
        match &self.library {
            Some(lib) => format!("{lib}!{item}"),
            None => item,
        }
    }
}

/// Why a file could not be analysed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// A parsed binary with its bytes.

#[derive(Debug, Clone)]
pub struct DeclaredFunction {
    pub va: u64,
    pub size: Option<u64>,
    pub name: Option<String>,
    pub source: &'static str,
}

/// The fields a format parser fills in; `Binary::parse` adds the bytes and hashes.
#[derive(Debug, Default)]
pub struct Parsed {
    pub format: Option<Format>,
    pub arch: Option<Arch>,
    pub image_base: u64,
    pub entry_point: Option<u64>,
    pub is_dll: bool,
    pub timestamp: Option<u32>,
    pub subsystem: Option<String>,
    pub sections: Vec<Section>,
    pub exports: Vec<Export>,
    pub imports: Vec<Import>,
    pub tls_callbacks: Vec<u64>,
    pub declared_functions: Vec<DeclaredFunction>,
    pub relocations: Vec<u64>,
    pub header_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XrefKind {
    Call,
    Jmp,
    Memory,
    Immediate,
}

impl XrefKind {
    pub fn name(self) -> &'static str {
        match self {
            XrefKind::Call => "call",
            XrefKind::Jmp => "jmp",
            XrefKind::Memory => "memory",
            XrefKind::Immediate => "immediate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Xref {
    pub to: u64,
    pub from: u64,
    pub kind: XrefKind,
}

#[derive(Debug, Clone)]
pub struct Function {
    pub va: u64,
    pub size: u64,
    pub name: String,
    pub found_by: &'static str,
}

#[derive(Debug, Default)]
pub struct CodeIndex {
    /// Sorted by address.
    pub functions: Vec<Function>,
    /// Sorted by target, then source.
    pub xrefs: Vec<Xref>,
    pub instructions: usize,
    /// Names by address: imports by their slot, exports, functions.
    pub names: HashMap<u64, String>,
    /// Why no code could be analysed, when that is the case.
    pub note: Option<String>,
}
