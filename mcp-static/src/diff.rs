//! Comparing two builds of a binary (two game versions, a patched DLL): exports added,
//! removed or moved; sections changed; functions whose bytes changed.

use crate::binary::Binary;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::HashMap;
use suite_core::Address;

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
    /// Full lengths of the lists above (after `filter`).
    pub totals: DiffTotals,
    /// True when lists were cut to keep the answer small: narrow with `filter`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct DiffTotals {
    pub exports_added: usize,
    pub exports_removed: usize,
    pub exports_moved: usize,
    pub sections: usize,
    pub functions_changed: usize,
}

impl BinaryDiff {
    /// Keeps only the exports and functions whose name contains `filter` (case-insensitive).
    pub fn restrict(&mut self, filter: &str) {
        let f = filter.to_lowercase();
        let keep = |name: &str| name.to_lowercase().contains(&f);
        self.exports_added.retain(|e| keep(&e.export));
        self.exports_removed.retain(|e| keep(&e.export));
        self.exports_moved.retain(|e| keep(&e.export));
        self.functions_changed.retain(|c| keep(&c.name));
    }

    /// Sets `totals`, then cuts the lists so that the whole serialises to about `budget`
    /// bytes at most, sharing the room fairly: short lists are kept whole, the longest
    /// are cut.
    pub fn fit(&mut self, budget: usize) {
        self.totals = DiffTotals {
            exports_added: self.exports_added.len(),
            exports_removed: self.exports_removed.len(),
            exports_moved: self.exports_moved.len(),
            sections: self.sections.len(),
            functions_changed: self.functions_changed.len(),
        };
        let lists = [
            sizes(&self.exports_added),
            sizes(&self.exports_removed),
            sizes(&self.exports_moved),
            sizes(&self.sections),
            sizes(&self.functions_changed),
        ];
        // Everything but the lists: hashes, counts, keys (a generous estimate).
        let base = 1024;
        let keep = share(&lists, budget.saturating_sub(base));
        self.truncated = keep.iter().zip(&lists).any(|(k, l)| *k < l.len());
        self.exports_added.truncate(keep[0]);
        self.exports_removed.truncate(keep[1]);
        self.exports_moved.truncate(keep[2]);
        self.sections.truncate(keep[3]);
        self.functions_changed.truncate(keep[4]);
    }
}

/// Serialised size of each item (with its separating comma).
fn sizes<T: Serialize>(items: &[T]) -> Vec<usize> {
    items
        .iter()
        .map(|x| serde_json::to_vec(x).map_or(0, |b| b.len() + 1))
        .collect()
}

/// How many leading items of each list fit in `budget` bytes: lists in order of total size,
/// each given an equal share of what is left, so what a short list does not use goes to the
/// longer ones.
pub fn share(lists: &[Vec<usize>], budget: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lists.len()).collect();
    order.sort_by_key(|&i| lists[i].iter().sum::<usize>());
    let mut left = budget;
    let mut keep = vec![0; lists.len()];
    for (n, &i) in order.iter().enumerate() {
        let room = left / (lists.len() - n);
        let mut used = 0;
        for &s in &lists[i] {
            if used + s > room {
                break;
            }
            used += s;
            keep[i] += 1;
        }
        left -= used;
    }
    keep
}

fn export_key(e: &crate::model::Export) -> String {
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
                    || sa.va.wrapping_sub(a.image_base) != sb.va.wrapping_sub(b.image_base)
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
    let key = |bin: &Binary, f: &crate::model::Function| {
        if f.name.starts_with("sub_") {
            format!("rva:{:X}", f.va.wrapping_sub(bin.image_base))
        } else {
            f.name.clone()
        }
    };
    let fb: HashMap<String, &crate::model::Function> = b
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
        totals: DiffTotals::default(),
        truncated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn short_lists_stay_whole_and_long_ones_share_the_rest() {
        let lists = vec![vec![10; 3], vec![10; 100], vec![], vec![10; 100]];
        let keep = share(&lists, 1000);
        assert_eq!(keep[0], 3);
        assert_eq!(keep[2], 0);
        // 970 left for two long lists: 48 each (480 bytes), the second gets the first's rest.
        assert_eq!(keep[1] + keep[3], 97);
        assert!(keep[1] >= 48 && keep[3] >= 48, "{keep:?}");
        assert_eq!(share(&lists, 100_000), vec![3, 100, 0, 100]);
    }
}
