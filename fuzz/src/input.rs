// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Reading a fuzz input as little-endian fields: every read either takes
//! its bytes or reports the end, so any byte string is a valid input.

/// A cursor over one fuzz input.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes, or `None` (nothing taken) if fewer are left.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let b = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }

    /// Up to `n` bytes: what is left if fewer.
    pub fn bytes_up_to(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.remaining());
        self.bytes(n).unwrap_or_default()
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N).and_then(|b| b.try_into().ok())
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|b| b[0])
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
}

/// Writing inputs in the same format (seeds and regression tests).
#[derive(Debug, Clone, Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// Appends a little-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a little-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a little-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_stops_at_the_end() {
        let mut w = Writer::default();
        w.u8(7).u16(0x1234).u32(0xdead_beef).u64(42).bytes(b"xy");
        let mut i = Input::new(&w.buf);
        assert_eq!(i.u8(), Some(7));
        assert_eq!(i.u16(), Some(0x1234));
        assert_eq!(i.u32(), Some(0xdead_beef));
        assert_eq!(i.u64(), Some(42));
        assert_eq!(i.remaining(), 2);
        // A read past the end takes nothing.
        assert_eq!(i.u32(), None);
        assert_eq!(i.bytes_up_to(10), b"xy");
        assert!(i.is_empty());
        assert_eq!(i.u8(), None);
    }
}
