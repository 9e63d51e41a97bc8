//! Paging and size caps for list results, so that no answer overflows a model's context.

use crate::ToolError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// The most JSON one page carries (~10k tokens); longer pages are cut and say so. The answer
/// repeats the JSON as text (see [`crate::output`]), so a page stays under 100 KB on the wire.
pub const MAX_ANSWER_BYTES: usize = 40_000;

/// `offset`/`limit` arguments shared by every list tool (flattened into its input).
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
pub struct PageArgs {
    /// First item (default 0; a page's `next_offset`).
    pub offset: Option<usize>,
    /// Items per page (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<usize>,
}

impl PageArgs {
    /// The checked `(offset, limit)`.
    pub fn resolve(&self) -> Result<(usize, usize), ToolError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ToolError::invalid(
                "limit",
                limit,
                format!("accepted: 1 to {MAX_LIMIT}"),
            ));
        }
        Ok((self.offset.unwrap_or(0), limit))
    }
}

/// One page of a longer list.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Page<T> {
    /// How many items match in all.
    pub total: usize,
    /// Index of the first item of this page.
    pub offset: usize,
    /// Where the next page starts; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
    /// True when the page was cut short to keep the answer small.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    pub items: Vec<T>,
}

impl<T: Serialize> Page<T> {
    /// Pages a whole list.
    pub fn of(all: Vec<T>, args: PageArgs) -> Result<Self, ToolError> {
        let total = all.len();
        let (offset, limit) = args.resolve()?;
        let items = all.into_iter().skip(offset).take(limit);
        Ok(Self::fit(items, offset, total))
    }

    /// Builds a page from the items already selected for it, cutting it at the size cap.
    pub fn fit(items: impl IntoIterator<Item = T>, offset: usize, total: usize) -> Self {
        let mut kept = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        for item in items {
            bytes += json_len(&item) + 1;
            if bytes > MAX_ANSWER_BYTES && !kept.is_empty() {
                truncated = true;
                break;
            }
            kept.push(item);
        }
        let end = offset + kept.len();
        Self {
            total,
            offset,
            next_offset: (end < total).then_some(end),
            truncated,
            items: kept,
        }
    }
}

/// The length of `value`'s JSON, counted as it is written (nothing is kept).
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Serialising into a counter fails only for values that have no JSON form (a map with
    // non-string keys); those count as nothing, as before.
    match serde_json::to_writer(&mut c, value) {
        Ok(()) => c.0,
        Err(_) => 0,
    }
}

/// What a list's items are called in its one-line summary ("exports", "strings").
pub trait Noun {
    const NOUN: &'static str;
}

impl<T: Noun> crate::Summary for Page<T> {
    fn summary(&self) -> String {
        let mut s = format!(
            "{} of {} {} from offset {}",
            self.items.len(),
            self.total,
            T::NOUN,
            self.offset
        );
        if let Some(n) = self.next_offset {
            s.push_str(&format!("; next_offset {n}"));
        }
        if self.truncated {
            s.push_str(" (page cut to keep the answer small)");
        }
        s
    }
}
