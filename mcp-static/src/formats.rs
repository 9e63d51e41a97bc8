//! Format-specific extraction: goblin's parse trees into the neutral `Parsed` model.

use crate::model::{Arch, DeclaredFunction, Export, Format, Import, ParseError, Parsed, Section};
use goblin::Object;

pub fn parse(data: &[u8]) -> Result<Parsed, ParseError> {
    match Object::parse(data) {
        Ok(Object::PE(pe)) => pe_model(data, &pe),
        Ok(Object::Elf(elf)) => Ok(elf_model(&elf)),
        Ok(Object::Mach(goblin::mach::Mach::Binary(m))) => Ok(macho_model(&m)),
        Ok(Object::Mach(goblin::mach::Mach::Fat(_))) => Err(ParseError(
            "fat (universal) Mach-O files are not supported: extract one architecture first".into(),
        )),
        Ok(Object::Archive(_)) => Err(ParseError(
            "this is a static library archive (.a/.lib), not a loadable binary".into(),
        )),
        Ok(_) => Err(ParseError(
            "not a PE, ELF or Mach-O binary (supported formats: pe32, pe32+, elf32, elf64, macho)"
                .into(),
        )),
        Err(e) => Err(ParseError(format!("malformed binary: {e}"))),
    }
}

fn pe_arch(machine: u16) -> Arch {
    match machine {
        0x14c => Arch::X86,
        0x8664 => Arch::X86_64,
        0x1c0 | 0x1c2 | 0x1c4 => Arch::Arm,
        0xaa64 => Arch::Arm64,
        other => Arch::Other(other.into()),
    }
}

fn pe_subsystem(code: u16) -> String {
    match code {
        1 => "native".into(),
        2 => "windows_gui".into(),
        3 => "windows_cui".into(),
        7 => "posix_cui".into(),
        9 => "windows_ce_gui".into(),
        10 => "efi_application".into(),
        11 => "efi_boot_service_driver".into(),
        12 => "efi_runtime_driver".into(),
        14 => "xbox".into(),
        16 => "windows_boot_application".into(),
        other => format!("unknown({other})"),
    }
}

/// Reads a NUL-terminated string at a file offset (at most 4 KiB).
fn c_string(data: &[u8], offset: usize) -> Option<String> {
    let tail = data.get(offset..)?;
    let tail = &tail[..tail.len().min(4096)];
    let end = memchr::memchr(0, tail)?;
    Some(String::from_utf8_lossy(&tail[..end]).into_owned())
}

fn pe_model(data: &[u8], pe: &goblin::pe::PE) -> Result<Parsed, ParseError> {
    let coff = &pe.header.coff_header;
    let opt = pe.header.optional_header;
    let image_base = pe.image_base;
    // Every address below is the base plus a 32-bit RVA (plus a 12-bit relocation offset):
    // a base too close to 2^64 for that is a damaged header, refused rather than wrapped.
    if image_base > u64::MAX - (2 << 32) {
        return Err(ParseError(format!(
            "malformed PE: image base {image_base:#x} leaves no room for its 32-bit RVAs"
        )));
    }
    let mut sections = Vec::with_capacity(pe.sections.len());
    for s in &pe.sections {
        // Names longer than 8 bytes live in the COFF string table (`/4`); goblin resolves them.
        let name = s.name().map(str::to_string).unwrap_or_else(|_| {
            String::from_utf8_lossy(&s.name)
                .trim_end_matches('\0')
                .to_string()
        });
        let c = s.characteristics;
        sections.push(Section {
            name,
            va: image_base + u64::from(s.virtual_address),
            virtual_size: s.virtual_size.into(),
            file_offset: s.pointer_to_raw_data.into(),
            raw_size: s.size_of_raw_data.into(),
            read: c & 0x4000_0000 != 0,
            write: c & 0x8000_0000 != 0,
            execute: c & 0x2000_0000 != 0,
            mapped: true,
        });
    }
    let header_size = opt.map_or(0, |o| u64::from(o.windows_fields.size_of_headers));
    let rva_to_offset = |rva: u32| -> Option<usize> {
        let rva = u64::from(rva);
        for s in &sections {
            let start = s.va - image_base;
            if rva >= start && rva - start < s.raw_size {
                return usize::try_from(s.file_offset + (rva - start)).ok();
            }
        }
        (rva < header_size)
            .then(|| usize::try_from(rva).ok())
            .flatten()
    };

    // Exports straight from the directory, so ordinal-only exports are kept.
    let mut exports = Vec::new();
    if let Some(ed) = &pe.export_data {
        let dir = &ed.export_directory_table;
        let (dir_start, dir_size) = opt
            .and_then(|o| o.data_directories.get_export_table().copied())
            .map_or((0, 0), |d| (d.virtual_address, d.size));
        let mut names: Vec<Option<String>> = vec![None; ed.export_address_table.len()];
        for (j, &name_rva) in ed.export_name_pointer_table.iter().enumerate() {
            if let Some(&index) = ed.export_ordinal_table.get(j)
                && let Some(slot) = names.get_mut(usize::from(index))
            {
                *slot = rva_to_offset(name_rva).and_then(|off| c_string(data, off));
            }
        }
        use goblin::pe::export::ExportAddressTableEntry as E;
        for (i, entry) in ed.export_address_table.iter().enumerate() {
            let rva = match *entry {
                E::ExportRVA(r) | E::ForwarderRVA(r) => r,
            };
            if rva == 0 {
                continue;
            }
            let is_forwarder = rva >= dir_start && rva - dir_start < dir_size;
            let forwarder = if is_forwarder {
                rva_to_offset(rva).and_then(|off| c_string(data, off))
            } else {
                None
            };
            let ordinal = dir
                .ordinal_base
                .saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
            exports.push(Export {
                name: names.get(i).cloned().flatten(),
                ordinal: Some(ordinal),
                va: image_base + u64::from(rva),
                forwarder,
            });
        }
    }

    let imports = pe
        .imports
        .iter()
        .map(|imp| {
            let by_ordinal = imp.name.starts_with("ORDINAL ");
            Import {
                library: Some(imp.dll.to_string()),
                name: (!by_ordinal).then(|| imp.name.to_string()),
                ordinal: by_ordinal.then_some(u32::from(imp.ordinal)),
                slot_va: Some(image_base + imp.offset as u64),
            }
        })
        .collect();

    let tls_callbacks = pe
        .tls_data
        .as_ref()
        .map(|t| t.callbacks.iter().copied().filter(|&c| c != 0).collect())
        .unwrap_or_default();

    let mut declared_functions = Vec::new();
    if let Some(ex) = &pe.exception_data {
        // Entry by entry with checked reads, stopping at the first that is not in the file:
        // goblin's `functions()` slices the directory unchecked (a panic on a .pdata that
        // runs past the end of the file; found by fuzzing).
        let entries = (0..ex.len()).map_while(|i| ex.get_function(i).ok());
        for rf in entries {
            if rf.begin_address != 0 && rf.end_address > rf.begin_address {
                declared_functions.push(DeclaredFunction {
                    va: image_base + u64::from(rf.begin_address),
                    size: Some(u64::from(rf.end_address - rf.begin_address)),
                    name: None,
                    source: "pdata",
                });
            }
        }
    }

    let mut relocations = Vec::new();
    if let Some(rd) = &pe.relocation_data {
        for block in rd.blocks().flatten() {
            for word in block.words().flatten() {
                // 3 = HIGHLOW (32-bit), 10 = DIR64.
                if matches!(word.reloc_type(), 3 | 10) {
                    relocations.push(image_base + u64::from(block.rva) + u64::from(word.offset()));
                }
            }
        }
    }

    let entry = u64::from(pe.entry);
    Ok(Parsed {
        format: Some(if pe.is_64 {
            Format::Pe32Plus
        } else {
            Format::Pe32
        }),
        arch: Some(pe_arch(coff.machine)),
        image_base,
        entry_point: (entry != 0).then_some(image_base + entry),
        is_dll: pe.is_lib,
        timestamp: Some(coff.time_date_stamp),
        subsystem: opt.map(|o| pe_subsystem(o.windows_fields.subsystem)),
        sections,
        exports,
        imports,
        tls_callbacks,
        declared_functions,
        relocations,
        header_size,
    })
}

fn elf_model(elf: &goblin::elf::Elf) -> Parsed {
    use goblin::elf::header::{EM_386, EM_AARCH64, EM_ARM, EM_X86_64, ET_DYN};
    use goblin::elf::section_header::{SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS};
    use goblin::elf::sym::{STB_GLOBAL, STB_WEAK, STT_FUNC, STT_GNU_IFUNC, STT_OBJECT};

    let arch = match elf.header.e_machine {
        EM_386 => Arch::X86,
        EM_X86_64 => Arch::X86_64,
        EM_ARM => Arch::Arm,
        EM_AARCH64 => Arch::Arm64,
        other => Arch::Other(other.into()),
    };
    let image_base = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
        .map(|p| p.p_vaddr & !0xfff)
        .min()
        .unwrap_or(0);
    let sections = elf
        .section_headers
        .iter()
        .filter(|s| s.sh_type != goblin::elf::section_header::SHT_NULL)
        .map(|s| {
            let alloc = s.sh_flags & u64::from(SHF_ALLOC) != 0;
            Section {
                name: elf.shdr_strtab.get_at(s.sh_name).unwrap_or("").to_string(),
                va: if alloc { s.sh_addr } else { 0 },
                virtual_size: s.sh_size,
                file_offset: s.sh_offset,
                raw_size: if s.sh_type == SHT_NOBITS {
                    0
                } else {
                    s.sh_size
                },
                read: alloc,
                write: s.sh_flags & u64::from(SHF_WRITE) != 0,
                execute: s.sh_flags & u64::from(SHF_EXECINSTR) != 0,
                mapped: alloc,
            }
        })
        .collect();

    let mut slot_of_sym = std::collections::HashMap::new();
    for r in elf
        .pltrelocs
        .iter()
        .chain(elf.dynrelas.iter())
        .chain(elf.dynrels.iter())
    {
        if r.r_sym != 0 {
            slot_of_sym.entry(r.r_sym).or_insert(r.r_offset);
        }
    }
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    for (i, sym) in elf.dynsyms.iter().enumerate() {
        let Some(name) = elf.dynstrtab.get_at(sym.st_name).filter(|n| !n.is_empty()) else {
            continue;
        };
        let bind = sym.st_bind();
        if bind != STB_GLOBAL && bind != STB_WEAK {
            continue;
        }
        if sym.st_shndx == 0 {
            imports.push(Import {
                library: None,
                name: Some(name.to_string()),
                ordinal: None,
                slot_va: slot_of_sym.get(&i).copied(),
            });
        } else if matches!(sym.st_type(), STT_FUNC | STT_OBJECT | STT_GNU_IFUNC) {
            exports.push(Export {
                name: Some(name.to_string()),
                ordinal: None,
                va: sym.st_value,
                forwarder: None,
            });
        }
    }
    exports.sort_by_key(|e| e.va);

    let mut declared_functions = Vec::new();
    for sym in elf.syms.iter().chain(elf.dynsyms.iter()) {
        if sym.st_type() == STT_FUNC && sym.st_shndx != 0 && sym.st_value != 0 {
            let name = elf
                .strtab
                .get_at(sym.st_name)
                .or_else(|| elf.dynstrtab.get_at(sym.st_name))
                .filter(|n| !n.is_empty())
                .map(str::to_string);
            declared_functions.push(DeclaredFunction {
                va: sym.st_value,
                size: (sym.st_size > 0).then_some(sym.st_size),
                name,
                source: "symbol",
            });
        }
    }

    Parsed {
        format: Some(if elf.is_64 {
            Format::Elf64
        } else {
            Format::Elf32
        }),
        arch: Some(arch),
        image_base,
        entry_point: (elf.entry != 0).then_some(elf.entry),
        is_dll: elf.header.e_type == ET_DYN && elf.interpreter.is_none(),
        timestamp: None,
        subsystem: None,
        sections,
        exports,
        imports,
        tls_callbacks: Vec::new(),
        declared_functions,
        relocations: Vec::new(),
        header_size: 0,
    }
}

fn macho_model(m: &goblin::mach::MachO) -> Parsed {
    use goblin::mach::cputype::{CPU_TYPE_ARM, CPU_TYPE_ARM64, CPU_TYPE_X86, CPU_TYPE_X86_64};
    let arch = match m.header.cputype {
        CPU_TYPE_X86 => Arch::X86,
        CPU_TYPE_X86_64 => Arch::X86_64,
        CPU_TYPE_ARM => Arch::Arm,
        CPU_TYPE_ARM64 => Arch::Arm64,
        other => Arch::Other(other),
    };
    let mut sections = Vec::new();
    let mut image_base = u64::MAX;
    for seg in m.segments.iter() {
        if seg.name().is_ok_and(|n| n == "__TEXT") {
            image_base = image_base.min(seg.vmaddr);
        }
        let prot = seg.initprot;
        for (s, _) in seg.sections().unwrap_or_default() {
            sections.push(Section {
                name: format!("{},{}", s.segname().unwrap_or("?"), s.name().unwrap_or("?")),
                va: s.addr,
                virtual_size: s.size,
                file_offset: s.offset.into(),
                raw_size: if s.flags & 0xff == 1 || s.flags & 0xff == 0x12 {
                    0
                } else {
                    s.size
                },
                read: prot & 1 != 0,
                write: prot & 2 != 0,
                execute: prot & 4 != 0,
                mapped: true,
            });
        }
    }
    if image_base == u64::MAX {
        image_base = 0;
    }
    let exports = m
        .exports()
        .unwrap_or_default()
        .into_iter()
        // An offset that would wrap past 2^64 is damage: that export is left out.
        .filter_map(|e| {
            Some(Export {
                va: image_base.checked_add(e.offset)?,
                name: Some(e.name),
                ordinal: None,
                forwarder: None,
            })
        })
        .collect();
    let imports = m
        .imports()
        .unwrap_or_default()
        .into_iter()
        .map(|i| Import {
            library: Some(i.dylib.to_string()),
            name: Some(i.name.to_string()),
            ordinal: None,
            slot_va: Some(i.address),
        })
        .collect();
    Parsed {
        format: Some(Format::MachO),
        arch: Some(arch),
        image_base,
        entry_point: (m.entry != 0).then_some(m.entry),
        is_dll: m.header.filetype == goblin::mach::header::MH_DYLIB,
        timestamp: None,
        subsystem: None,
        sections,
        exports,
        imports,
        tls_callbacks: Vec::new(),
        declared_functions: Vec::new(),
        relocations: Vec::new(),
        header_size: 0,
    }
}

#[cfg(test)]
mod tests {
    /// Found by fuzz/ (static_binary): a PE32+ whose image base is near 2^64 overflowed
    /// `image_base + rva` (a panic in debug builds, wrapped addresses in release).
    #[test]
    fn an_image_base_near_2_64_is_refused() {
        let input = include_bytes!("../../fuzz/regressions/static_binary/pe-image-base-near-2-64");
        match super::parse(input) {
            Err(e) => assert!(e.0.contains("image base"), "{}", e.0),
            Ok(p) => panic!("parsed with image base {:#x}", p.image_base),
        }
    }
}
