//! Paging and size caps for list results, so that no answer overflows a model's context.

use crate::ToolError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// The most JSON one page carries (~10k tokens); longer pages are cut and say so. The answer
/// repeats the JSON as text (mcp-common's `output`), so a page stays under 100 KB on the wire.
pub const MAX_ANSWER_BYTES: usize = 40_000;

/// `offset`/`limit` arguments shared by every list tool (flattened into its input).
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
pub struct PageArgs {
    /// Start index (next_offset).
    pub offset: Option<usize>,
    /// Default 100.
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
    /// The items as objects; absent when they were asked for as text (`format: "text"`).
    #[serde(default)]
    pub items: Vec<T>,
    /// The items as text lines, when asked for: sent as the text content instead of `items`.
    #[serde(skip)]
    pub lines: Option<Lines>,
}

// How a list answer carries its items. (Plain comments, not doc comments: these would be
// repeated in every tool's input schema; the argument's own description says it once.)
// - `text` (the default): one tab-separated line per item after a `#` header naming the
//   columns, as the text content only; `structuredContent` keeps the paging fields. About two
//   thirds of the tokens of `json` and under half its text (cl100k, pages of user32.dll's
//   lists), and a walk of every page costs about what the peer tool's output costs: the
//   default for the model reading it.
// - `json`: objects, in `structuredContent` and repeated as JSON text: for programs that
//   read `structuredContent`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    #[default]
    Text,
}

/// The description of a `format` argument.
pub const FORMAT_DOC: &str =
    "json: items as structuredContent objects; default text: tab-separated, fewer tokens.";

/// An item's one-line form for [`Format::Text`].
pub trait Line {
    /// The column names, tab-separated, for the header line.
    const COLUMNS: &'static str;
    /// Appends the item's columns, tab-separated, without the newline.
    fn line(&self, out: &mut String);
}

/// Items rendered as text lines: how many, and the text (header line first).
#[derive(Debug, Clone, Default)]
pub struct Lines {
    pub count: usize,
    pub text: String,
}

impl Lines {
    /// An empty text with the header line of `T`'s columns.
    pub fn new<T: Line>() -> Self {
        Self::with_columns(T::COLUMNS)
    }

    /// An empty text with a header line naming `columns` (tab-separated).
    pub fn with_columns(columns: &str) -> Self {
        let mut text = String::with_capacity(4096);
        text.push_str("# ");
        text.push_str(columns);
        text.push('\n');
        Self { count: 0, text }
    }

    /// Appends one item unless that would take the text over `max_bytes` (the first item
    /// always goes in); false when it did not fit.
    pub fn push<T: Line>(&mut self, item: &T, max_bytes: usize) -> bool {
        self.push_with(max_bytes, |out| item.line(out))
    }

    /// As [`Lines::push`], the line written by `write` (without its newline).
    pub fn push_with(&mut self, max_bytes: usize, write: impl FnOnce(&mut String)) -> bool {
        let before = self.text.len();
        write(&mut self.text);
        self.text.push('\n');
        if self.text.len() > max_bytes && self.count > 0 {
            self.text.truncate(before);
            return false;
        }
        self.count += 1;
        true
    }
}

/// A text column: tabs, newlines, carriage returns and backslashes escaped as `\t`, `\n`,
/// `\r`, `\\`, so that one item stays one line.
pub fn push_escaped(out: &mut String, text: &str) {
    if !text.contains(['\t', '\n', '\r', '\\']) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
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
            lines: None,
        }
    }
}

impl<T> Page<T> {
    /// A page given as text lines already made: `full` when they stopped at the size cap.
    pub fn lines(lines: Lines, offset: usize, total: usize, full: bool) -> Self {
        let end = offset + lines.count;
        Self {
            total,
            offset,
            next_offset: (end < total).then_some(end),
            truncated: full,
            items: Vec::new(),
            lines: Some(lines),
        }
    }
}

impl<T: Serialize + Line> Page<T> {
    /// As [`Page::of`], in the asked format.
    pub fn of_as(all: Vec<T>, args: PageArgs, format: Format) -> Result<Self, ToolError> {
        let total = all.len();
        let (offset, limit) = args.resolve()?;
        let items = all.into_iter().skip(offset).take(limit);
        Ok(Self::fit_as(items, offset, total, format))
    }

    /// As [`Page::fit`], in the asked format: for [`Format::Text`] the items become lines,
    /// cut at the same size cap.
    pub fn fit_as(
        items: impl IntoIterator<Item = T>,
        offset: usize,
        total: usize,
        format: Format,
    ) -> Self {
        if format == Format::Json {
            return Self::fit(items, offset, total);
        }
        let mut lines = Lines::new::<T>();
        let mut full = false;
        for item in items {
            if !lines.push(&item, MAX_ANSWER_BYTES) {
                full = true;
                break;
            }
        }
        Self::lines(lines, offset, total, full)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Item(u32, &'static str);

    impl Line for Item {
        const COLUMNS: &'static str = "n\tname";
        fn line(&self, out: &mut String) {
            out.push_str(&self.0.to_string());
            out.push('\t');
            push_escaped(out, self.1);
        }
    }

    #[test]
    fn escaping_keeps_one_item_on_one_line() {
        let mut out = String::new();
        push_escaped(&mut out, "a\tb\nc\r\\d");
        assert_eq!(out, "a\\tb\\nc\\r\\\\d");
    }

    #[test]
    fn text_pages_are_cut_at_the_answer_bound() {
        let long = "x".repeat(1000);
        let long: &'static str = Box::leak(long.into_boxed_str());
        let items = (0..100).map(|n| Item(n, long));
        let p = Page::fit_as(items, 10, 500, Format::Text);
        let lines = p.lines.as_ref().map(|l| (l.count, l.text.clone()));
        let (count, text) = lines.unwrap_or_default();
        assert!(text.len() <= MAX_ANSWER_BYTES, "{} bytes", text.len());
        assert_eq!(count, text.lines().count() - 1);
        assert!(text.starts_with("# n\tname\n0\txxx"));
        assert!(p.truncated);
        assert_eq!(p.next_offset, Some(10 + count));
        assert!(p.items.is_empty());

        let all = Page::fit_as([Item(1, "a\tb"), Item(2, "c")], 0, 2, Format::Text);
        let text = all.lines.map(|l| l.text).unwrap_or_default();
        assert_eq!(text, "# n\tname\n1\ta\\tb\n2\tc\n");
        assert_eq!(all.next_offset, None);
        assert!(!all.truncated);
    }
}
