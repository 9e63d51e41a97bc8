//! Reads: raw bytes, typed values, pointer chains followed hop by hop, structures (decoded
//! or inferred) and live code disassembled.

use super::{
    BrokenHop, ByteFormat, CodeArch, DisassembleMemoryArgs, HopItem, InferAnswer, InferStructArgs,
    LiveDisassembly, LiveInsn, MAX_READ, MemoryBytes, MemoryServer, PointerPath, ReadMemoryArgs,
    ReadStructArgs, ReadValueArgs, ResolvePointerArgs, StructAnswer, ValuesRead, check_range,
    hex_bytes, mem_error, pointer_size, pointer_size_for, target,
};
use crate::layout::{self, Field, LayoutRef};
use crate::modules;
use crate::pointers;
use crate::reader::MemError;
use crate::values::{self, ValueType};
use mcp_common::{Address, Json, ToolError, blocking};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use serde_json::Value;

/// The longest x86 instruction: `disassemble_memory` reads this many bytes a wanted one.
const MAX_INSN_BYTES: usize = 15;

/// A pointer chain that could not be followed: an offset whose sum with the pointer read
/// leaves the address space is the fault of the argument `offsets[k]`.
fn chain_error(e: pointers::ChainError, pid: u32) -> ToolError {
    match e {
        pointers::ChainError::Mem(m) => mem_error(m, pid),
        pointers::ChainError::Overflow {
            index,
            value,
            offset,
            bits,
        } => {
            let field = format!("offsets[{index}]");
            let shown = if offset < 0 {
                format!("-{}", Address(offset.unsigned_abs()))
            } else {
                Address(offset as u64).to_string()
            };
            let accepted = format!(
                "an offset from -{} to {} after this hop ({}-byte pointers)",
                Address(value),
                Address(modules::top(bits).saturating_sub(value)),
                bits / 8
            );
            let sum = format!("hop {index}: pointer {}", modules::sum_text(value, offset));
            if offset < 0 {
                ToolError::invalid(
                    &field,
                    shown,
                    format!("{sum} goes below 0; accepted: {accepted}"),
                )
            } else {
                modules::overflow(&field, shown, &sum, bits, accepted)
            }
        }
    }
}

fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[tool_router(router = read_router, vis = "pub(super)")]
impl MemoryServer {
    #[tool(
        title = "Read bytes",
        description = "Raw bytes as hex or base64 with an ASCII preview; typed values: \
             read_value.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_memory(
        &self,
        Parameters(a): Parameters<ReadMemoryArgs>,
    ) -> Result<Json<MemoryBytes>, ToolError> {
        check_range("length", a.length, 1, MAX_READ)?;
        blocking(move || {
            let t = target(a.pid)?;
            let addr = t.resolve("address", &a.address)?;
            t.span("address", addr, a.length as u64, "length")?;
            let mut buf = vec![0u8; a.length];
            t.mem
                .read_exact(addr, &mut buf)
                .map_err(|e| mem_error(e, a.pid))?;
            let format = a.format.unwrap_or_default();
            Ok(MemoryBytes {
                address: Address(addr),
                length: buf.len(),
                format: if format == ByteFormat::Hex {
                    "hex"
                } else {
                    "base64"
                }
                .into(),
                data: if format == ByteFormat::Hex {
                    hex_bytes(&buf)
                } else {
                    base64(&buf)
                },
                ascii: values::ascii_preview(&buf),
            })
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Read values",
        description = "Typed values or a string at an address, e.g. to check a scan match or \
             pointer.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_value(
        &self,
        Parameters(a): Parameters<ReadValueArgs>,
    ) -> Result<Json<ValuesRead>, ToolError> {
        blocking(move || {
            let t = target(a.pid)?;
            let addr = t.resolve("address", &a.address)?;
            let vt = a.value_type;
            let values = match vt.size() {
                Some(size) => {
                    let count = check_range("count", a.count.unwrap_or(1), 1, 4096)?;
                    let bytes = size.checked_mul(count).ok_or_else(|| {
                        ToolError::invalid("count", count, "count × value size overflows")
                    })?;
                    t.span(
                        "address",
                        addr,
                        bytes as u64,
                        &format!("count {count} × {size}"),
                    )?;
                    let mut buf = vec![0u8; bytes];
                    t.mem
                        .read_exact(addr, &mut buf)
                        .map_err(|e| mem_error(e, a.pid))?;
                    buf.chunks_exact(size).map(|c| vt.to_json(c)).collect()
                }
                None => {
                    let max = check_range("count", a.count.unwrap_or(256), 1, MAX_READ)?;
                    t.span("address", addr, max as u64, "count")?;
                    let mut buf = vec![0u8; max];
                    let n = t
                        .mem
                        .read_some(addr, &mut buf)
                        .map_err(|e| mem_error(e, a.pid))?;
                    if n == 0 {
                        return Err(mem_error(MemError::Unmapped(addr), a.pid));
                    }
                    let s = if vt == ValueType::Cstring {
                        values::cstring(&buf[..n])
                    } else {
                        values::utf16(&buf[..n])
                    };
                    vec![Value::String(s)]
                }
            };
            Ok(ValuesRead {
                address: Address(addr),
                value_type: vt.name().into(),
                values,
            })
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Follow pointer",
        description = "Follows [[[base]+o1]+o2]+o3, showing each hop or where it breaks. \
             Confirms pointer_scan chains.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn resolve_pointer(
        &self,
        Parameters(a): Parameters<ResolvePointerArgs>,
    ) -> Result<Json<PointerPath>, ToolError> {
        if let Some(v) = a.pointer_size {
            pointer_size(v)?;
        }
        check_range("offsets", a.offsets.len(), 0, 32).map_err(|_| {
            ToolError::invalid(
                "offsets",
                format!("{} offsets", a.offsets.len()),
                "accepted: at most 32",
            )
        })?;
        blocking(move || {
            let t = target(a.pid)?;
            let size = pointer_size_for(a.pointer_size, &t, a.pid)?;
            let base = t.resolve("base", &a.base)?;
            let offs: Vec<i64> = a.offsets.iter().map(|o| o.0).collect();
            let r =
                pointers::resolve(&t.mem, base, &offs, size).map_err(|e| chain_error(e, a.pid))?;
            Ok(PointerPath {
                base: Address(base),
                hops: r
                    .hops
                    .iter()
                    .map(|h| HopItem {
                        address: Address(h.address),
                        value: h.value.map(Address),
                    })
                    .collect(),
                final_in: r.final_address.and_then(|f| t.name(f)),
                final_address: r.final_address.map(Address),
                broken: r.broken_at.map(|(hop, reason)| BrokenHop { hop, reason }),
            })
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Read structure",
        description = "Decodes a structure with a named or inline layout, following typed \
             pointers.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_struct(
        &self,
        Parameters(a): Parameters<ReadStructArgs>,
    ) -> Result<Json<StructAnswer>, ToolError> {
        let depth = check_range("depth", a.depth.unwrap_or(1), 0, 4)?;
        let layouts = self.layouts.clone();
        let fields: Vec<Field> = layouts
            .fields(&a.layout)
            .map_err(|e| {
                ToolError::invalid(
                    "layout",
                    serde_json::to_string(&a.layout).unwrap_or_default(),
                    e,
                )
            })?
            .to_vec();
        if fields.is_empty() {
            return Err(ToolError::invalid(
                "layout",
                "[]",
                "accepted: a layout name or at least one field",
            ));
        }
        layout::validate(&layouts, &fields, depth)
            .map_err(|e| ToolError::invalid("layout", "given fields", e))?;
        blocking(move || {
            let t = target(a.pid)?;
            let addr = t.resolve("address", &a.address)?;
            let inline = matches!(a.layout, LayoutRef::Inline(_));
            layout::check_fields(&fields, addr, t.bits, inline)?;
            let mut probe = [0u8; 1];
            t.mem
                .read_exact(addr, &mut probe)
                .map_err(|e| mem_error(e, a.pid))?;
            Ok(StructAnswer {
                address: Address(addr),
                layout: match &a.layout {
                    LayoutRef::Name(n) => Some(n.clone()),
                    LayoutRef::Inline(_) => None,
                },
                fields: layout::read_struct(&t.mem, &layouts, &t.modules, addr, &fields, depth),
            })
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Infer structure",
        description = "Guesses each offset's type (pointer, float, int, string...) from instances \
             of a structure, for read_struct fields.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn infer_struct(
        &self,
        Parameters(a): Parameters<InferStructArgs>,
    ) -> Result<Json<InferAnswer>, ToolError> {
        let size = check_range("size", a.size, 4, 4096)?;
        check_range("addresses", a.addresses.len(), 1, 64).map_err(|_| {
            ToolError::invalid(
                "addresses",
                format!("{} addresses", a.addresses.len()),
                "accepted: 1 to 64",
            )
        })?;
        if let Some(p) = a.pointer_size {
            pointer_size(p)?;
        }
        blocking(move || {
            let t = target(a.pid)?;
            let mut data = Vec::new();
            let mut pe32 = a.pointer_size == Some(4);
            for (i, loc) in a.addresses.iter().enumerate() {
                let field = format!("addresses[{i}]");
                let addr = t.resolve(&field, loc)?;
                t.span(&field, addr, size as u64, "size")?;
                let mut buf = vec![0u8; size];
                t.mem.read_exact(addr, &mut buf).map_err(|e| match e {
                    MemError::Unmapped(x) => ToolError::invalid(
                        &format!("addresses[{i}]"),
                        Address(addr),
                        format!("{} bytes there are not readable (0x{x:X})", size),
                    ),
                    other => mem_error(other, a.pid),
                })?;
                if a.pointer_size.is_none() && i == 0 {
                    // A 32-bit PE module in the process means 32-bit game structures.
                    pe32 = t
                        .modules
                        .iter()
                        .any(|m| m.kind == modules::ModuleKind::Pe && m.pe32);
                }
                data.push(buf);
            }
            let fields = layout::infer(&data, &t.regions, &t.modules, pe32);
            Ok(InferAnswer {
                instances: data.len(),
                size,
                fields,
            })
        })
        .await
        .map(Json)
    }

    #[tool(
        title = "Disassemble",
        description = "Disassembles live code, naming targets by module.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn disassemble_memory(
        &self,
        Parameters(a): Parameters<DisassembleMemoryArgs>,
    ) -> Result<Json<LiveDisassembly>, ToolError> {
        let count = check_range("count", a.count, 1, 500)?;
        blocking(move || {
            let t = target(a.pid)?;
            let addr = t.resolve("address", &a.address)?;
            let arch = match a.arch {
                Some(CodeArch::X86) => mcp_static::model::Arch::X86,
                Some(CodeArch::X64) => mcp_static::model::Arch::X86_64,
                None => {
                    let pe32 = t
                        .modules
                        .iter()
                        .any(|m| m.contains(addr) && m.kind == modules::ModuleKind::Pe && m.pe32);
                    if pe32 {
                        mcp_static::model::Arch::X86
                    } else {
                        mcp_static::model::Arch::X86_64
                    }
                }
            };
            // The window read: up to 15 bytes an instruction. 32-bit code keeps its addresses
            // below 4 GiB even in a 64-bit process.
            let window = (count * MAX_INSN_BYTES).min(MAX_READ);
            let bits = if arch == mcp_static::model::Arch::X86 {
                32
            } else {
                t.bits
            };
            modules::check_span(
                "address",
                addr,
                window as u64,
                &format!("count {count} × {MAX_INSN_BYTES}"),
                bits,
            )?;
            let mut code = vec![0u8; window];
            let n = t
                .mem
                .read_some(addr, &mut code)
                .map_err(|e| mem_error(e, a.pid))?;
            if n == 0 {
                return Err(mem_error(MemError::Unmapped(addr), a.pid));
            }
            let cs = mcp_static::disasm::capstone(arch, true).map_err(ToolError::new)?;
            let insns = mcp_static::disasm::decode(&cs, arch, &code[..n], addr, count);
            if insns.is_empty() {
                return Err(ToolError::invalid(
                    "address",
                    Address(addr),
                    "no valid instruction there",
                ));
            }
            Ok(LiveDisassembly {
                arch: arch.name(),
                items: insns
                    .into_iter()
                    .map(|i| {
                        let tgt = i.facts.target.or(i.facts.mem_ref);
                        LiveInsn {
                            address: Address(i.va),
                            module: t.name(i.va),
                            bytes: hex_bytes(&i.bytes),
                            mnemonic: i.mnemonic,
                            operands: i.operands,
                            target: tgt
                                .map(|x| t.name(x).unwrap_or_else(|| Address(x).to_string())),
                        }
                    })
                    .collect(),
            })
        })
        .await
        .map(Json)
    }
}
