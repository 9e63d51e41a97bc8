//! Printable strings in a byte range: ASCII (7-bit printable plus tab, as GNU `strings`
//! counts them) and UTF-16LE (the same characters, each followed by a zero byte).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Ascii,
    Utf16le,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Ascii => "ascii",
            Encoding::Utf16le => "utf16le",
        }
    }
}

/// A string found at `offset` (relative to the scanned slice), `len` bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub offset: usize,
    pub len: usize,
    pub encoding: Encoding,
}

impl Found {
    /// The text, decoded from the scanned slice.
    pub fn text(&self, data: &[u8]) -> String {
        let bytes = &data[self.offset..self.offset + self.len];
        match self.encoding {
            Encoding::Ascii => bytes.iter().map(|&b| b as char).collect(),
            Encoding::Utf16le => bytes.chunks_exact(2).map(|c| c[0] as char).collect(),
        }
    }

    /// Length in characters.
    pub fn chars(&self) -> usize {
        match self.encoding {
            Encoding::Ascii => self.len,
            Encoding::Utf16le => self.len / 2,
        }
    }
}

const fn printable_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b <= 0x7e {
        t[b] = true;
        b += 1;
    }
    t[b'\t' as usize] = true;
    t
}

static PRINTABLE: [bool; 256] = printable_table();

/// ASCII runs of at least `min_len` printable bytes.
pub fn ascii(data: &[u8], min_len: usize, out: &mut Vec<Found>) {
    let min_len = min_len.max(1);
    let mut start = 0usize;
    let mut run = 0usize;
    for (i, &b) in data.iter().enumerate() {
        if PRINTABLE[b as usize] {
            if run == 0 {
                start = i;
            }
            run += 1;
        } else {
            if run >= min_len {
                out.push(Found {
                    offset: start,
                    len: run,
                    encoding: Encoding::Ascii,
                });
            }
            run = 0;
        }
    }
    if run >= min_len {
        out.push(Found {
            offset: start,
            len: run,
            encoding: Encoding::Ascii,
        });
    }
}

/// UTF-16LE runs of at least `min_len` printable characters (both byte alignments).
pub fn utf16le(data: &[u8], min_len: usize, out: &mut Vec<Found>) {
    let min_len = min_len.max(1);
    let mut found = Vec::new();
    for phase in 0..2 {
        let mut start = phase;
        let mut run = 0usize;
        let mut i = phase;
        while i + 1 < data.len() {
            if PRINTABLE[data[i] as usize] && data[i + 1] == 0 {
                if run == 0 {
                    start = i;
                }
                run += 1;
            } else {
                if run >= min_len {
                    found.push(Found {
                        offset: start,
                        len: run * 2,
                        encoding: Encoding::Utf16le,
                    });
                }
                run = 0;
            }
            i += 2;
        }
        if run >= min_len {
            found.push(Found {
                offset: start,
                len: run * 2,
                encoding: Encoding::Utf16le,
            });
        }
    }
    found.sort_by_key(|f| f.offset);
    out.extend(found);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_both_encodings() {
        let data = b"\x00abc\x00hello world\x01h\x00i\x00t\x00h\x00e\x00r\x00e\x00\x00\x00";
        let mut a = Vec::new();
        ascii(data, 4, &mut a);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].text(data), "hello world");
        let mut u = Vec::new();
        utf16le(data, 4, &mut u);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].text(data), "hithere");
        assert_eq!(u[0].chars(), 7);
    }

    #[test]
    fn run_at_end_counts() {
        let mut a = Vec::new();
        ascii(b"\x00tail", 4, &mut a);
        assert_eq!(
            a,
            vec![Found {
                offset: 1,
                len: 4,
                encoding: Encoding::Ascii
            }]
        );
    }
}
