//! Byte patterns with wildcards (`8B 0D ?? ?? ?? ?? 85 C9`): parsing, searching, and
//! building the shortest unique pattern for an address (a signature that survives rebuilds
//! because address fields are wildcarded).

use memchr::memmem;

/// The most bytes a pattern may have: far above make_signature's 256, while a megabyte of
/// hex is refused at once instead of being searched for and echoed in the answer.
pub const MAX_PATTERN_BYTES: usize = 4096;

/// A pattern: `None` matches any byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(pub Vec<Option<u8>>);

impl Pattern {
    /// Parses space-separated tokens: two hex digits, or `?`/`??` for any byte. Tokens may
    /// also be written without spaces (`8B0D????`). At most [`MAX_PATTERN_BYTES`] bytes.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut bytes = Vec::new();
        for token in text.split_whitespace() {
            let chars: Vec<char> = token.chars().collect();
            if chars.iter().all(|&c| c == '?') && chars.len() <= 2 {
                bytes.push(None);
                continue;
            }
            if !chars.len().is_multiple_of(2) {
                return Err(format!(
                    "token `{token}` is not a byte (accepted: two hex digits or ??)"
                ));
            }
            for pair in chars.chunks(2) {
                let s: String = pair.iter().collect();
                if s == "??" {
                    bytes.push(None);
                } else {
                    let b = u8::from_str_radix(&s, 16).map_err(|_| {
                        format!(
                            "token `{token}`: `{s}` is not a byte (accepted: two hex digits or ??)"
                        )
                    })?;
                    bytes.push(Some(b));
                }
            }
        }
        if bytes.len() > MAX_PATTERN_BYTES {
            return Err(format!(
                "the pattern has {} bytes (accepted: 1 to {MAX_PATTERN_BYTES} bytes)",
                bytes.len()
            ));
        }
        if bytes.is_empty() {
            return Err("the pattern is empty (example: \"8B 0D ?? ?? ?? ?? 85 C9\")".into());
        }
        if bytes.iter().all(Option::is_none) {
            return Err("the pattern has only wildcards: give at least one fixed byte".into());
        }
        Ok(Pattern(bytes))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The longest run of fixed bytes, used as the search anchor: (offset in pattern, bytes).
    fn anchor(&self) -> (usize, Vec<u8>) {
        // Indices only while scanning, one copy at the end: patterns grow to thousands of
        // bytes in `make_signature`, which asks for the anchor after every instruction.
        let (mut best_start, mut best_len) = (0usize, 0usize);
        let mut run_start = 0usize;
        for (i, b) in self.0.iter().enumerate() {
            if b.is_none() {
                run_start = i + 1;
            } else if i + 1 - run_start > best_len {
                (best_start, best_len) = (run_start, i + 1 - run_start);
            }
        }
        let bytes = self.0[best_start..best_start + best_len]
            .iter()
            .flatten()
            .copied()
            .collect();
        (best_start, bytes)
    }

    pub fn matches_at(&self, data: &[u8], pos: usize) -> bool {
        self.tail_matches_at(data, pos, 0)
    }

    /// Whether the pattern's bytes from `from` on match at `pos + from` (and the whole
    /// pattern fits in `data` at `pos`): the check a longer pattern needs where its first
    /// `from` bytes are already known to match.
    pub fn tail_matches_at(&self, data: &[u8], pos: usize, from: usize) -> bool {
        let Some(window) = pos
            .checked_add(self.0.len())
            .and_then(|end| data.get(pos..end))
        else {
            return false;
        };
        self.0
            .iter()
            .zip(window)
            .skip(from)
            .all(|(p, b)| p.is_none_or(|v| v == *b))
    }

    /// Offsets of every match in `data`, stopping after `limit` matches.
    pub fn find_all(&self, data: &[u8], limit: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let (anchor_at, anchor) = self.anchor();
        let finder = memmem::Finder::new(&anchor);
        // Each search starts one byte after the last hit: `find_iter` skips overlapping
        // hits of the anchor (`FF FF` in `FF FF FF`), and so matches that start there.
        let mut from = 0;
        while let Some(found) = data.get(from..).and_then(|rest| finder.find(rest)) {
            let hit = from + found;
            from = hit + 1;
            if hit < anchor_at {
                continue;
            }
            let start = hit - anchor_at;
            if self.matches_at(data, start) {
                out.push(start);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|b| b.map_or_else(|| "??".to_string(), |v| format!("{v:02X}")))
            .collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_finds() -> Result<(), String> {
        let p = Pattern::parse("8B 0D ?? ?? ?? ?? 85 C9")?;
        assert_eq!(p.len(), 8);
        let data = [
            0x90, 0x8B, 0x0D, 1, 2, 3, 4, 0x85, 0xC9, 0x8B, 0x0D, 0, 0, 0, 0, 0x85, 0xC8,
        ];
        assert_eq!(p.find_all(&data, 10), vec![1]);
        // Only the bytes from `from` on are compared; the length must still fit.
        assert!(p.tail_matches_at(&data, 1, 6));
        assert!(!p.tail_matches_at(&data, 9, 6)); // 85 C8
        assert!(p.tail_matches_at(&data, 9, 8)); // nothing left to compare, and it fits
        assert!(!p.tail_matches_at(&data, 10, 8)); // past the end
        assert!(!p.tail_matches_at(&data, usize::MAX, 0));
        assert_eq!(Pattern::parse("8B0D????????85C9")?, p);
        assert_eq!(p.to_string(), "8B 0D ?? ?? ?? ?? 85 C9");
        Ok(())
    }

    /// Found by fuzz/ (static_pattern): overlapping matches were skipped.
    #[test]
    fn finds_overlapping_matches() -> Result<(), String> {
        let p = Pattern::parse("FF FF")?;
        assert_eq!(p.find_all(&[0xFF; 4], 10), vec![0, 1, 2]);
        let p = Pattern::parse("?? 41 41")?;
        assert_eq!(p.find_all(b"xAAAA", 10), vec![0, 1, 2]);
        assert_eq!(p.find_all(b"xAAAA", 1), vec![0]);
        Ok(())
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse(&"AA".repeat(MAX_PATTERN_BYTES)).is_ok());
        match Pattern::parse(&"AA".repeat(MAX_PATTERN_BYTES + 1)) {
            Err(e) => assert!(e.contains("4097 bytes") && e.contains("1 to 4096"), "{e}"),
            Ok(p) => panic!("a pattern of {} bytes was accepted", p.len()),
        }
        assert!(Pattern::parse("?? ??").is_err());
        assert!(Pattern::parse("8G").is_err());
        assert!(Pattern::parse("8B 0").is_err());
        assert!(Pattern::parse("???").is_err());
    }
}
