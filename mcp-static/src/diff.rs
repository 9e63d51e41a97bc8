//! Comparing two builds of a binary (two game versions, a patched DLL): exports added,
//! removed or moved; sections changed; functions whose bytes changed.

use crate::binary::Binary;
use mcp_common::Address;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ExportRef {
    /// The export's name, or `#ordinal` when it has none.
    pub export: String,
    pub va: Address,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MovedExport {
    pub export: String,
    pub va_a: Address,
    pub va_b: Address,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SectionChange {
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_a: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_b: Option<u64>,
    /// Whether the raw bytes differ (for sections present in both).
    pub bytes_differ: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FunctionChange {
    pub name: String,
    pub va_a: Address,
    pub va_b: Address,
    pub size_a: u64,
    pub size_b: u64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BinaryDiff {
    pub sha256_a: String,
    pub sha256_b: String,
    pub identical: bool,
    pub exports_added: Vec<ExportRef>,
    pub exports_removed: Vec<ExportRef>,
    pub exports_moved: Vec<MovedExport>,
    pub sections: Vec<SectionChange>,
    /// Functions found in both (matched by name) whose code bytes differ; address fields
    /// (base relocations) are ignored, so a function that only moved is not listed.
    pub functions_changed: Vec<FunctionChange>,
    pub functions_compared: usize,
}

fn export_key(e: &crate::binary::Export) -> String {
    match (&e.name, e.ordinal) {
        (Some(n), _) => n.clone(),
        (None, Some(o)) => format!("#{o}"),
        (None, None) => String::new(),
    }
}

/// Code bytes of a function with relocated fields zeroed, so rebasing does not count.
fn normalised(bin: &Binary, va: u64, size: u64) -> Option<Vec<u8>> {
    let bytes = bin.bytes_at(va)?;
    let len = usize::try_from(size).ok()?.min(bytes.len());
    let mut out = bytes[..len].to_vec();
    let width = bin.arch.pointer_size();
    let lo = bin.relocations.partition_point(|&r| r < va);
    for &r in &bin.relocations[lo..] {
        if r >= va + size {
            break;
        }
        let k = (r - va) as usize;
        for b in out.iter_mut().skip(k).take(width) {
            *b = 0;
        }
    }
    Some(out)
}

pub fn diff(a: &Binary, b: &Binary) -> BinaryDiff {
    let ea: HashMap<String, u64> = a.exports.iter().map(|e| (export_key(e), e.va)).collect();
    let eb: HashMap<String, u64> = b.exports.iter().map(|e| (export_key(e), e.va)).collect();
    let mut exports_added: Vec<ExportRef> = eb
        .iter()
        .filter(|(k, _)| !ea.contains_key(*k))
        .map(|(k, &va)| ExportRef {
            export: k.clone(),
            va: va.into(),
        })
        .collect();
    let mut exports_removed: Vec<ExportRef> = ea
        .iter()
        .filter(|(k, _)| !eb.contains_key(*k))
        .map(|(k, &va)| ExportRef {
            export: k.clone(),
            va: va.into(),
        })
        .collect();
    let mut exports_moved: Vec<MovedExport> = ea
        .iter()
        .filter_map(|(k, &va_a)| {
            let &va_b = eb.get(k)?;
            (va_a != va_b).then(|| MovedExport {
                export: k.clone(),
                va_a: va_a.into(),
                va_b: va_b.into(),
            })
        })
        .collect();
    exports_added.sort_by_key(|e| e.va);
    exports_removed.sort_by_key(|e| e.va);
    exports_moved.sort_by_key(|e| e.va_a);

    let mut sections = Vec::new();
    for sa in &a.sections {
        match b.sections.iter().find(|sb| sb.name == sa.name) {
            None => sections.push(SectionChange {
                name: sa.name.clone(),
                change: "removed".into(),
                size_a: Some(sa.virtual_size),
                size_b: None,
                bytes_differ: true,
            }),
            Some(sb) => {
                let differ = a.section_bytes(sa) != b.section_bytes(sb);
                if differ
                    || sa.virtual_size != sb.virtual_size
                    || sa.va - a.image_base != sb.va - b.image_base
                {
                    sections.push(SectionChange {
                        name: sa.name.clone(),
                        change: "changed".into(),
                        size_a: Some(sa.virtual_size),
                        size_b: Some(sb.virtual_size),
                        bytes_differ: differ,
                    });
                }
            }
        }
    }
    for sb in &b.sections {
        if !a.sections.iter().any(|sa| sa.name == sb.name) {
            sections.push(SectionChange {
                name: sb.name.clone(),
                change: "added".into(),
                size_a: None,
                size_b: Some(sb.virtual_size),
                bytes_differ: true,
            });
        }
    }

    // Functions are matched by name; generated `sub_` names only match at the same RVA.
    let key = |bin: &Binary, f: &crate::analysis::Function| {
        if f.name.starts_with("sub_") {
            format!("rva:{:X}", f.va - bin.image_base)
        } else {
            f.name.clone()
        }
    };
    let fb: HashMap<String, &crate::analysis::Function> = b
        .code_index()
        .functions
        .iter()
        .map(|f| (key(b, f), f))
        .collect();
    let mut functions_changed = Vec::new();
    let mut functions_compared = 0;
    for fa in &a.code_index().functions {
        let Some(fbf) = fb.get(&key(a, fa)) else {
            continue;
        };
        functions_compared += 1;
        let same =
            fa.size == fbf.size && normalised(a, fa.va, fa.size) == normalised(b, fbf.va, fbf.size);
        if !same {
            functions_changed.push(FunctionChange {
                name: fa.name.clone(),
                va_a: fa.va.into(),
                va_b: fbf.va.into(),
                size_a: fa.size,
                size_b: fbf.size,
            });
        }
    }

    BinaryDiff {
        sha256_a: a.sha256.clone(),
        sha256_b: b.sha256.clone(),
        identical: a.sha256 == b.sha256,
        exports_added,
        exports_removed,
        exports_moved,
        sections,
        functions_changed,
        functions_compared,
    }
}
