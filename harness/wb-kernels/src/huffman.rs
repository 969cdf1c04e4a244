//! Huffman coding of symbol streams (codebook indices): optimal code lengths, the
//! canonical code they define, and bit-exact encoding and decoding.
//!
//! # Conventions
//!
//! * A code table is one entry per symbol of the alphabet: `None` for a symbol that
//!   does not occur, `Some(len)` for its code length in bits (`len <= MAX_CODE_LEN`).
//! * [`code_lengths`] builds minimum-redundancy lengths from symbol frequencies
//!   (Huffman's algorithm with the two-queue construction on the frequencies sorted by
//!   `(frequency, symbol)`; on equal weights a leaf is taken before an internal node,
//!   which keeps the longest code as short as possible among optimal codes).
//!   Deterministic: equal inputs give equal lengths.
//! * **One symbol** used: it gets a **0-bit** code (the stream is empty; the decoder
//!   repeats the symbol `n` times), which is optimal and matches the fixed-width rule
//!   `⌈log2 1⌉ = 0`. **Two symbols**: one bit each. No symbol: an empty table (only
//!   an empty stream can be encoded).
//! * With two or more symbols the code must be **complete** (Kraft sum exactly 1),
//!   as every Huffman code is; [`CanonicalCode::new`] refuses anything else, so a
//!   stored table cannot describe an ambiguous or wasteful code.
//! * **Canonical codes**: symbols ordered by `(length, symbol)` receive consecutive
//!   code values, the value shifted left whenever the length grows (the DEFLATE
//!   construction), so the lengths alone define the code.
//! * **Bit order**: codes are written most significant bit first, filling each byte
//!   from its most significant bit; the last byte is padded with zero bits.

use crate::KernelError;

const KERNEL: &str = "huffman";

/// Longest code length supported (codes are held in a `u64`). A Huffman code
/// reaches it only when the total frequency exceeds the 66th Fibonacci number
/// (about 2.7 · 10^13 symbols).
pub const MAX_CODE_LEN: u8 = 64;

fn invalid(reason: impl Into<String>) -> KernelError {
    KernelError::InvalidInput {
        kernel: KERNEL,
        reason: reason.into(),
    }
}

/// Optimal (Huffman) code lengths for the given symbol frequencies; `None` for a
/// symbol of frequency 0. See the module documentation for the single-symbol rule.
///
/// # Errors
/// [`KernelError::InvalidInput`] if a code would exceed [`MAX_CODE_LEN`] bits.
pub fn code_lengths(freqs: &[u64]) -> Result<Vec<Option<u8>>, KernelError> {
    let mut used: Vec<(u64, usize)> = freqs
        .iter()
        .enumerate()
        .filter(|(_, &f)| f > 0)
        .map(|(s, &f)| (f, s))
        .collect();
    let mut out = vec![None; freqs.len()];
    match used.len() {
        0 => return Ok(out),
        1 => {
            out[used[0].1] = Some(0);
            return Ok(out);
        }
        _ => {}
    }
    used.sort_unstable();
    let m = used.len();
    // Nodes 0..m are the leaves in sorted order, m.. the internal nodes in creation
    // order (their weights never decrease, so both queues stay sorted).
    let mut weight: Vec<u128> = used.iter().map(|(f, _)| u128::from(*f)).collect();
    weight.reserve(m - 1);
    let mut parent: Vec<usize> = vec![usize::MAX; 2 * m - 1];
    let (mut next_leaf, mut next_inner) = (0usize, m);
    let take = |weight: &Vec<u128>, next_leaf: &mut usize, next_inner: &mut usize| {
        let leaf_ok = *next_leaf < m;
        let inner_ok = *next_inner < weight.len();
        if leaf_ok && (!inner_ok || weight[*next_leaf] <= weight[*next_inner]) {
            *next_leaf += 1;
            *next_leaf - 1
        } else {
            *next_inner += 1;
            *next_inner - 1
        }
    };
    for _ in 0..m - 1 {
        let a = take(&weight, &mut next_leaf, &mut next_inner);
        let b = take(&weight, &mut next_leaf, &mut next_inner);
        let node = weight.len();
        weight.push(weight[a] + weight[b]);
        parent[a] = node;
        parent[b] = node;
    }
    // Depths from the root (the last node) down: a parent is always created after
    // its children, so one reverse pass suffices.
    let root = 2 * m - 2;
    let mut depth = vec![0u32; 2 * m - 1];
    for node in (0..root).rev() {
        depth[node] = depth[parent[node]] + 1;
    }
    for (leaf, &(_, symbol)) in used.iter().enumerate() {
        let d = depth[leaf];
        if d > u32::from(MAX_CODE_LEN) {
            return Err(invalid(format!(
                "a code of {d} bits exceeds the supported {MAX_CODE_LEN}"
            )));
        }
        out[symbol] = Some(d as u8);
    }
    Ok(out)
}

/// Number of bits a stream with the given symbol counts takes under `lengths`
/// (`Σ count · length`), or `None` if a counted symbol has no code.
pub fn coded_bits(counts: &[u64], lengths: &[Option<u8>]) -> Option<u64> {
    if counts.len() > lengths.len() && counts[lengths.len()..].iter().any(|&c| c > 0) {
        return None;
    }
    counts
        .iter()
        .zip(lengths)
        .try_fold(0u64, |acc, (&c, l)| match (c, l) {
            (0, _) => Some(acc),
            (c, Some(l)) => Some(acc + c * u64::from(*l)),
            (_, None) => None,
        })
}

/// A canonical prefix code built from a table of code lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalCode {
    lengths: Vec<Option<u8>>,
    /// Code value of each symbol (meaningful where `lengths` is `Some`).
    codes: Vec<u64>,
    /// Used symbols ordered by `(length, symbol)`.
    sorted: Vec<u32>,
    /// Per length `1 ..= MAX_CODE_LEN`: number of codes, first code value, offset of
    /// the first such symbol in `sorted`.
    count: Vec<u64>,
    first: Vec<u64>,
    offset: Vec<usize>,
}

impl CanonicalCode {
    /// Builds the canonical code of `lengths` after checking that they describe a
    /// usable prefix code (see the module documentation).
    ///
    /// # Errors
    /// [`KernelError::InvalidInput`] for a length above [`MAX_CODE_LEN`], a 0-bit
    /// code next to other symbols, or an incomplete or over-full code (Kraft sum
    /// not exactly 1) with two or more symbols.
    pub fn new(lengths: &[Option<u8>]) -> Result<Self, KernelError> {
        if lengths.len() > u32::MAX as usize {
            return Err(invalid("alphabet larger than 2^32 symbols"));
        }
        let used: Vec<(u8, u32)> = lengths
            .iter()
            .enumerate()
            .filter_map(|(s, l)| l.map(|l| (l, s as u32)))
            .collect();
        if let Some((l, s)) = used.iter().find(|(l, _)| *l > MAX_CODE_LEN) {
            return Err(invalid(format!(
                "symbol {s}: code length {l} exceeds {MAX_CODE_LEN}"
            )));
        }
        let n_len = MAX_CODE_LEN as usize + 1;
        let mut count = vec![0u64; n_len];
        let mut first = vec![0u64; n_len];
        let mut offset = vec![0usize; n_len];
        let mut codes = vec![0u64; lengths.len()];
        let mut sorted: Vec<u32> = Vec::with_capacity(used.len());
        if used.len() == 1 {
            if used[0].0 != 0 {
                return Err(invalid(format!(
                    "the only symbol ({}) must have a 0-bit code, not {} bits",
                    used[0].1, used[0].0
                )));
            }
            sorted.push(used[0].1);
        } else if used.len() >= 2 {
            if let Some((_, s)) = used.iter().find(|(l, _)| *l == 0) {
                return Err(invalid(format!(
                    "symbol {s} has a 0-bit code but {} symbols are used",
                    used.len()
                )));
            }
            // Kraft sum Σ 2^-l must be exactly 1 (a complete code).
            let kraft: u128 = used.iter().map(|(l, _)| 1u128 << (MAX_CODE_LEN - l)).sum();
            if kraft != 1u128 << MAX_CODE_LEN {
                return Err(invalid(format!(
                    "code lengths do not form a complete prefix code (Kraft sum {} / 2^{MAX_CODE_LEN})",
                    kraft
                )));
            }
            let mut order = used.clone();
            order.sort_unstable();
            for &(l, _) in &order {
                count[l as usize] += 1;
            }
            let mut code = 0u64;
            let mut idx = 0usize;
            for len in 1..n_len {
                // Shorter codes take the numerically first values (canonical order).
                first[len] = code;
                offset[len] = idx;
                idx += count[len] as usize;
                code = code.wrapping_add(count[len]);
                if len < n_len - 1 {
                    code <<= 1;
                }
            }
            let mut next = first.clone();
            for &(l, s) in &order {
                codes[s as usize] = next[l as usize];
                next[l as usize] += 1;
                sorted.push(s);
            }
        }
        Ok(Self {
            lengths: lengths.to_vec(),
            codes,
            sorted,
            count,
            first,
            offset,
        })
    }

    /// The Huffman code of `freqs`: [`code_lengths`] then [`Self::new`].
    pub fn from_frequencies(freqs: &[u64]) -> Result<Self, KernelError> {
        Self::new(&code_lengths(freqs)?)
    }

    /// The code length table.
    pub fn lengths(&self) -> &[Option<u8>] {
        &self.lengths
    }

    /// Code value and length of `symbol` (`None` when it has no code).
    pub fn code(&self, symbol: u32) -> Option<(u64, u8)> {
        let l = (*self.lengths.get(symbol as usize)?)?;
        Some((self.codes[symbol as usize], l))
    }

    /// Number of bits `symbols` take.
    ///
    /// # Errors
    /// [`KernelError::InvalidInput`] naming the first symbol without a code.
    pub fn encoded_bits(&self, symbols: &[u32]) -> Result<u64, KernelError> {
        symbols.iter().enumerate().try_fold(0u64, |acc, (i, &s)| {
            let (_, l) = self.code(s).ok_or_else(|| self.no_code(i, s))?;
            Ok(acc + u64::from(l))
        })
    }

    fn no_code(&self, i: usize, s: u32) -> KernelError {
        invalid(format!(
            "symbol {s} at position {i} has no code (alphabet of {})",
            self.lengths.len()
        ))
    }

    /// Encodes `symbols`; returns the bytes (`⌈bits / 8⌉`, zero-padded) and the exact
    /// number of bits.
    ///
    /// # Errors
    /// [`KernelError::InvalidInput`] naming the first symbol without a code.
    pub fn encode(&self, symbols: &[u32]) -> Result<(Vec<u8>, u64), KernelError> {
        let mut out = Vec::new();
        let mut acc: u128 = 0;
        let mut filled: u32 = 0;
        let mut bits = 0u64;
        for (i, &s) in symbols.iter().enumerate() {
            let (code, len) = self.code(s).ok_or_else(|| self.no_code(i, s))?;
            let len = u32::from(len);
            if len == 0 {
                continue;
            }
            acc = (acc << len) | u128::from(code);
            filled += len;
            bits += u64::from(len);
            while filled >= 8 {
                filled -= 8;
                out.push((acc >> filled) as u8);
            }
            acc &= (1u128 << filled) - 1;
        }
        if filled > 0 {
            out.push((acc << (8 - filled)) as u8);
        }
        Ok((out, bits))
    }

    /// Decodes `n` symbols from a stream of exactly `bits` bits held in `bytes`
    /// (`⌈bits / 8⌉` bytes, padding bits zero).
    ///
    /// # Errors
    /// [`KernelError::InvalidInput`] when the byte count does not match `bits`, the
    /// stream ends early, holds more bits than the `n` codes, or has non-zero padding.
    pub fn decode(&self, bytes: &[u8], bits: u64, n: usize) -> Result<Vec<u32>, KernelError> {
        if bytes.len() as u64 != bits.div_ceil(8) {
            return Err(invalid(format!(
                "{} bytes for a stream of {bits} bits (expected {})",
                bytes.len(),
                bits.div_ceil(8)
            )));
        }
        // With two symbols or more every code takes at least one bit: a count beyond
        // the stream's bits is refused before its buffer is allocated.
        if self.sorted.len() > 1 && n as u64 > bits {
            return Err(invalid(format!(
                "{n} symbols cannot fit in a stream of {bits} bits"
            )));
        }
        let mut out = Vec::with_capacity(n);
        match self.sorted.len() {
            0 if n > 0 => return Err(invalid(format!("{n} symbols but the code is empty"))),
            0 => {}
            1 => out.resize(n, self.sorted[0]),
            _ => {
                let mut pos = 0u64;
                for i in 0..n {
                    let mut code = 0u64;
                    let mut len = 0usize;
                    loop {
                        if pos >= bits {
                            return Err(invalid(format!(
                                "stream of {bits} bits ends inside symbol {i} of {n}"
                            )));
                        }
                        let bit = (bytes[(pos >> 3) as usize] >> (7 - (pos & 7))) & 1;
                        pos += 1;
                        code = (code << 1) | u64::from(bit);
                        len += 1;
                        let c = self.count[len];
                        if c > 0 && code >= self.first[len] && code - self.first[len] < c {
                            let k = self.offset[len] + (code - self.first[len]) as usize;
                            out.push(self.sorted[k]);
                            break;
                        }
                        if len == MAX_CODE_LEN as usize {
                            // Unreachable for a complete code; kept as a guard.
                            return Err(invalid(format!("no code matches at symbol {i}")));
                        }
                    }
                }
                if pos != bits {
                    return Err(invalid(format!(
                        "{} bits left after the last of {n} symbols",
                        bits - pos
                    )));
                }
            }
        }
        if self.sorted.len() <= 1 && bits != 0 {
            return Err(invalid(format!(
                "{bits} bits for a code of at most one symbol (0-bit codes)"
            )));
        }
        if bits % 8 != 0 {
            let last = bytes[bytes.len() - 1];
            if last & ((1u8 << (8 - bits % 8)) - 1) != 0 {
                return Err(invalid("non-zero padding bits after the stream"));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_symbols_than_stream_bits_is_refused_before_allocating() {
        let c = CanonicalCode::new(&[Some(1), Some(1)]).unwrap();
        // 2^40 symbols of at least one bit each cannot come from 8 bits; the count is
        // refused before a 4 TiB buffer is reserved.
        let e = c.decode(&[0], 8, 1 << 40).unwrap_err();
        assert!(
            e.to_string().contains("cannot fit in a stream of 8 bits"),
            "{e}"
        );
        assert_eq!(c.decode(&[0b0100_0000], 2, 2).unwrap(), vec![0, 1]);
    }

    #[test]
    fn canonical_codes_of_a_textbook_example() {
        // Lengths (2, 1, 3, 3) → canonical codes b=0, a=10, c=110, d=111.
        let c = CanonicalCode::new(&[Some(2), Some(1), Some(3), Some(3)]).unwrap();
        assert_eq!(c.code(1), Some((0b0, 1)));
        assert_eq!(c.code(0), Some((0b10, 2)));
        assert_eq!(c.code(2), Some((0b110, 3)));
        assert_eq!(c.code(3), Some((0b111, 3)));
        let (bytes, bits) = c.encode(&[0, 1, 3]).unwrap();
        assert_eq!(bits, 6);
        assert_eq!(bytes, vec![0b1001_1100]);
        assert_eq!(c.decode(&bytes, bits, 3).unwrap(), vec![0, 1, 3]);
    }

    #[test]
    fn incomplete_and_overfull_codes_are_refused() {
        assert!(CanonicalCode::new(&[Some(1), Some(2)]).is_err());
        assert!(CanonicalCode::new(&[Some(1), Some(1), Some(1)]).is_err());
        assert!(CanonicalCode::new(&[Some(1)]).is_err());
        assert!(CanonicalCode::new(&[Some(0), Some(1)]).is_err());
        assert!(CanonicalCode::new(&[Some(65), Some(1)]).is_err());
    }
}
