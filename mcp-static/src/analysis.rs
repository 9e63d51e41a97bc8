//! Function discovery and cross references over a binary's code.
//!
//! Recursive descent: start from what the file declares (entry point, exports, TLS
//! callbacks, `.pdata` on x64 PE, symbol tables on ELF), follow branches inside each
//! function and treat every direct call target as a new function. Every instruction met on
//! the way contributes its references (call, jump, memory operand, immediate) to one table,
//! sorted by target, so `xrefs_to` is a binary search. Built once per binary and cached.

use crate::binary::Binary;
use crate::disasm::{self, Flow};
use crate::model::{Arch, CodeIndex, Function, Xref, XrefKind};
use std::collections::{HashMap, HashSet};

impl Binary {
    /// The functions and cross references of the code, found on first use and kept.
    pub fn code_index(&self) -> &CodeIndex {
        self.code_index.get_or_init(|| CodeIndex::build(self))
    }
}

impl CodeIndex {
    pub fn build(bin: &Binary) -> CodeIndex {
        let mut index = CodeIndex::default();
        for imp in &bin.imports {
            if let Some(slot) = imp.slot_va {
                index.names.insert(slot, imp.display_name());
            }
        }
        let cs = match disasm::capstone(bin.arch, true) {
            Ok(cs) => cs,
            Err(e) => {
                index.note = Some(e);
                return index;
            }
        };

        // Seeds, in order of trust: the first way a start is found is the one reported.
        let mut seeds: Vec<(u64, &'static str, Option<String>, Option<u64>)> = Vec::new();
        if let Some(e) = bin.entry_point {
            seeds.push((e, "entry", Some("entry".into()), None));
        }
        for ex in &bin.exports {
            if ex.forwarder.is_none() {
                let name = match (&ex.name, ex.ordinal) {
                    (Some(n), _) => n.clone(),
                    (None, Some(o)) => format!("Ordinal_{o}"),
                    (None, None) => continue,
                };
                seeds.push((ex.va, "export", Some(name), None));
            }
        }
        for (i, &cb) in bin.tls_callbacks.iter().enumerate() {
            seeds.push((cb, "tls_callback", Some(format!("tls_callback_{i}")), None));
        }
        for f in &bin.declared_functions {
            seeds.push((f.va, f.source, f.name.clone(), f.size));
        }

        let mut found: HashMap<u64, Function> = HashMap::new();
        let mut declared_size: HashMap<u64, u64> = HashMap::new();
        let mut queue: Vec<u64> = Vec::new();
        for (va, how, name, size) in seeds {
            if !bin.is_executable_va(va) {
                continue;
            }
            if let Some(s) = size {
                declared_size.entry(va).or_insert(s);
            }
            let f = found.entry(va).or_insert_with(|| {
                queue.push(va);
                Function {
                    va,
                    size: 0,
                    name: String::new(),
                    found_by: how,
                }
            });
            if f.name.is_empty()
                && let Some(n) = name
            {
                f.name = n;
            }
        }

        let mut visited: HashSet<u64> = HashSet::new();
        let mut xrefs = Vec::new();
        let image = (bin.image_base, bin.image_end());
        let in_image = |a: u64| a >= image.0 && a < image.1;
        let mut next = 0;
        while next < queue.len() {
            let start = queue[next];
            next += 1;
            let mut end = start;
            let mut blocks = vec![start];
            while let Some(block) = blocks.pop() {
                let Some(code) = bin.bytes_at(block).filter(|_| bin.is_executable_va(block)) else {
                    continue;
                };
                let Ok(mut iter) = cs.disasm_iter(code, block) else {
                    continue;
                };
                while let Some(insn) = iter.next() {
                    let va = insn.address();
                    // Falling into another function's start ends this block.
                    if va != block && found.contains_key(&va) {
                        break;
                    }
                    if !visited.insert(va) {
                        break;
                    }
                    index.instructions += 1;
                    end = end.max(va + insn.len() as u64);
                    let f = disasm::facts(&cs, bin.arch, &insn);
                    if let Some(m) = f.mem_ref.filter(|&m| in_image(m)) {
                        xrefs.push(Xref {
                            to: m,
                            from: va,
                            kind: XrefKind::Memory,
                        });
                    }
                    if let Some(imm) = f.immediate.filter(|&i| in_image(i)) {
                        xrefs.push(Xref {
                            to: imm,
                            from: va,
                            kind: XrefKind::Immediate,
                        });
                    }
                    match f.flow {
                        Flow::Call => {
                            if let Some(t) = f.target {
                                xrefs.push(Xref {
                                    to: t,
                                    from: va,
                                    kind: XrefKind::Call,
                                });
                                if bin.is_executable_va(t) && !found.contains_key(&t) {
                                    found.insert(
                                        t,
                                        Function {
                                            va: t,
                                            size: 0,
                                            name: String::new(),
                                            found_by: "call",
                                        },
                                    );
                                    queue.push(t);
                                }
                            }
                        }
                        Flow::Jump | Flow::ConditionalJump => {
                            if let Some(t) = f.target {
                                xrefs.push(Xref {
                                    to: t,
                                    from: va,
                                    kind: XrefKind::Jmp,
                                });
                                if !found.contains_key(&t) {
                                    blocks.push(t);
                                }
                            }
                            if f.flow == Flow::Jump {
                                break;
                            }
                        }
                        Flow::Return | Flow::Stop => break,
                        Flow::Normal => {}
                    }
                }
            }
            if let Some(func) = found.get_mut(&start) {
                func.size = declared_size.get(&start).copied().unwrap_or(end - start);
            }
        }

        // Import thunks (`jmp [slot]`) are named after the import they jump to.
        let slot_names: HashMap<u64, String> = index.names.clone();
        let mut functions: Vec<Function> = found.into_values().collect();
        functions.sort_by_key(|f| f.va);
        let thunk_targets: HashMap<u64, u64> = xrefs
            .iter()
            .filter(|x| x.kind == XrefKind::Memory)
            .map(|x| (x.from, x.to))
            .collect();
        for f in &mut functions {
            if f.name.is_empty() {
                f.name = match thunk_targets
                    .get(&f.va)
                    .and_then(|slot| slot_names.get(slot))
                {
                    Some(import) if f.size <= 8 => format!("j_{import}"),
                    _ => format!("sub_{:X}", f.va),
                };
            }
            index.names.entry(f.va).or_insert_with(|| f.name.clone());
        }
        xrefs.sort_unstable();
        xrefs.dedup();
        index.functions = functions;
        index.xrefs = xrefs;
        if bin.arch != Arch::X86 && bin.arch != Arch::X86_64 {
            index.note = Some(format!("{} code is not analysed", bin.arch.name()));
        }
        index
    }

    /// The function whose range holds `va`.
    pub fn function_at(&self, va: u64) -> Option<&Function> {
        let i = self.functions.partition_point(|f| f.va <= va);
        let f = self.functions.get(i.checked_sub(1)?)?;
        (va < f.va + f.size.max(1)).then_some(f)
    }

    /// References to an address.
    pub fn xrefs_to(&self, to: u64) -> &[Xref] {
        let lo = self.xrefs.partition_point(|x| x.to < to);
        let hi = self.xrefs.partition_point(|x| x.to <= to);
        &self.xrefs[lo..hi]
    }
}
