//! Bit fields as Diablo II stores them: least significant bit first, fields crossing byte
//! boundaries freely (the character stats section, items, ears).
//!
//! [`BitReader`] reads up to 32 bits at a time from a byte slice and reports, instead of
//! panicking, when a read would run past the end (with the bit offset where it started).
//! [`BitWriter`] builds the same layout.

/// A read (or write) that could not be done: where, how many bits, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{message} (a {bits}-bit field at bit offset {bit_offset}, byte {})",
    self.byte_offset()
)]
pub struct BitError {
    /// Bit offset (from the start of the data) where the failing field starts.
    pub bit_offset: usize,
    /// How many bits the field has.
    pub bits: u32,
    /// What is wrong.
    pub message: String,
}

impl BitError {
    /// The byte holding the first bit of the failing field.
    pub fn byte_offset(&self) -> usize {
        self.bit_offset / 8
    }
}

/// Reads bit fields, least significant bit first, from a byte slice.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at bit 0 of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// A reader at byte `byte` of `data` (may be past the end: reads then fail).
    pub fn at_byte(data: &'a [u8], byte: usize) -> Self {
        Self {
            data,
            pos: byte.saturating_mul(8),
        }
    }

    /// Position in bits from the start of the data.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Moves to an absolute bit position (may be past the end: reads then fail).
    pub fn set_position(&mut self, bit: usize) {
        self.pos = bit;
    }

    /// Total size of the data in bits.
    pub fn len_bits(&self) -> usize {
        self.data.len().saturating_mul(8)
    }

    /// Bits left to read (0 when the position is at or past the end).
    pub fn remaining_bits(&self) -> usize {
        self.len_bits().saturating_sub(self.pos)
    }

    /// The byte index that holds the current position, rounded up to the next whole byte:
    /// where byte-aligned data would continue.
    pub fn next_byte_position(&self) -> usize {
        self.pos.div_ceil(8)
    }

    /// Skips to the next byte boundary (no-op when already aligned).
    pub fn align_to_byte(&mut self) {
        self.pos = self.next_byte_position().saturating_mul(8);
    }

    /// Reads `n` bits (0..=32), least significant bit first. Fails without moving when the
    /// field would run past the end of the data or `n` is more than 32.
    pub fn read(&mut self, n: u32) -> Result<u32, BitError> {
        let v = self.peek(n)?;
        self.pos += n as usize;
        Ok(v)
    }

    /// Reads one bit as a bool.
    pub fn read_bool(&mut self) -> Result<bool, BitError> {
        Ok(self.read(1)? == 1)
    }

    /// Reads `n` bits without moving.
    pub fn peek(&self, n: u32) -> Result<u32, BitError> {
        if n > 32 {
            return Err(BitError {
                bit_offset: self.pos,
                bits: n,
                message: "a field can be at most 32 bits wide".to_string(),
            });
        }
        let end = self.pos.checked_add(n as usize);
        if end.is_none_or(|e| e > self.len_bits()) {
            return Err(BitError {
                bit_offset: self.pos,
                bits: n,
                message: format!(
                    "reading past the end of the data ({} bytes)",
                    self.data.len()
                ),
            });
        }
        let mut value: u64 = 0;
        let mut got: u32 = 0;
        let mut bit = self.pos;
        while got < n {
            let byte = self.data.get(bit / 8).copied().unwrap_or(0);
            let shift = (bit % 8) as u32;
            let take = (8 - shift).min(n - got);
            let mask = (1u32 << take) - 1;
            let chunk = (u32::from(byte) >> shift) & mask;
            value |= u64::from(chunk) << got;
            got += take;
            bit += take as usize;
        }
        Ok(value as u32)
    }

    /// Skips `n` bits; fails (without moving) when that runs past the end.
    pub fn skip(&mut self, n: usize) -> Result<(), BitError> {
        let end = self.pos.checked_add(n);
        if end.is_none_or(|e| e > self.len_bits()) {
            return Err(BitError {
                bit_offset: self.pos,
                bits: u32::try_from(n).unwrap_or(u32::MAX),
                message: format!(
                    "skipping past the end of the data ({} bytes)",
                    self.data.len()
                ),
            });
        }
        self.pos += n;
        Ok(())
    }
}

/// Writes bit fields, least significant bit first.
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Length in bits.
    len: usize,
}

impl BitWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Length written so far, in bits.
    pub fn len_bits(&self) -> usize {
        self.len
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the low `n` bits (0..=32) of `value`. Fails when `n` is more than 32 or
    /// `value` does not fit in `n` bits (nothing is written then).
    pub fn write(&mut self, value: u32, n: u32) -> Result<(), BitError> {
        if n > 32 {
            return Err(BitError {
                bit_offset: self.len,
                bits: n,
                message: "a field can be at most 32 bits wide".to_string(),
            });
        }
        if n < 32 && u64::from(value) >= (1u64 << n) {
            return Err(BitError {
                bit_offset: self.len,
                bits: n,
                message: format!("value {value} does not fit in {n} bits"),
            });
        }
        for i in 0..n {
            let bit = (value >> i) & 1;
            let byte = self.len / 8;
            if byte >= self.bytes.len() {
                self.bytes.push(0);
            }
            if bit == 1
                && let Some(b) = self.bytes.get_mut(byte)
            {
                *b |= 1 << (self.len % 8);
            }
            self.len += 1;
        }
        Ok(())
    }

    /// Writes one bit.
    pub fn write_bool(&mut self, bit: bool) {
        // One bit always fits.
        let _ = self.write(u32::from(bit), 1);
    }

    /// Pads with zero bits to the next byte boundary.
    pub fn align_to_byte(&mut self) {
        self.len = self.len.div_ceil(8) * 8;
        while self.bytes.len() * 8 < self.len {
            self.bytes.push(0);
        }
    }

    /// The bytes written, the last one padded with zero bits.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lsb_first_across_bytes() -> Result<(), BitError> {
        // The item-code example of d2itemreader's docs: bits 76.. of an item read "r11 ".
        let mut data = vec![0u8; 9];
        data.extend_from_slice(&[0x2A, 0x17, 0x13, 0x03, 0x02]);
        let mut r = BitReader::new(&data);
        r.set_position(76);
        let code: Vec<u8> = (0..4)
            .map(|_| r.read(8).map(|c| c as u8))
            .collect::<Result<_, _>>()?;
        assert_eq!(&code, b"r11 ");
        let mut r = BitReader::new(&[0b1010_1100, 0xFF]);
        assert_eq!(r.read(2)?, 0b00);
        assert_eq!(r.read(3)?, 0b011);
        assert_eq!(r.read(5)?, 0b11_101);
        assert_eq!(r.position(), 10);
        assert_eq!(r.remaining_bits(), 6);
        r.align_to_byte();
        assert_eq!(r.position(), 16);
        let mut r = BitReader::new(&[0x78, 0x56, 0x34, 0x12, 0xFF]);
        assert_eq!(r.read(32)?, 0x1234_5678);
        assert_eq!(r.read(0)?, 0);
        Ok(())
    }

    #[test]
    fn errors_past_the_end_with_the_offset() {
        let mut r = BitReader::new(&[0xFF, 0xFF]);
        assert!(r.read(9).is_ok());
        let e = r.read(8);
        assert!(matches!(&e, Err(e) if e.bit_offset == 9 && e.bits == 8));
        // The failed read did not move the reader.
        assert_eq!(r.position(), 9);
        assert!(r.read(7).is_ok());
        assert!(r.read(1).is_err());
        assert!(r.read(33).is_err());
        assert!(r.skip(1).is_err());
        let msg = BitReader::new(&[]).read(1).err().map(|e| e.to_string());
        assert!(msg.is_some_and(|m| m.contains("bit offset 0")));
    }

    #[test]
    fn writer_round_trips() -> Result<(), BitError> {
        let mut w = BitWriter::new();
        let fields: [(u32, u32); 6] = [(13, 9), (1680, 32), (0x1FF, 9), (0, 0), (5, 3), (1, 1)];
        for (v, n) in fields {
            w.write(v, n)?;
        }
        assert_eq!(w.len_bits(), 54);
        assert!(w.write(8, 3).is_err());
        assert!(w.write(0, 33).is_err());
        w.align_to_byte();
        assert_eq!(w.len_bits(), 56);
        let bytes = w.into_bytes();
        assert_eq!(bytes.len(), 7);
        let mut r = BitReader::new(&bytes);
        for (v, n) in fields {
            assert_eq!(r.read(n)?, v);
        }
        Ok(())
    }
}
