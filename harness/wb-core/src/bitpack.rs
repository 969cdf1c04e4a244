//! Bit packing of unsigned indices at a fixed width (LSB first), the storage of every
//! codebook encoding.

/// Smallest bit width that can index `k` distinct values: ⌈log2 k⌉, and 0 for k ≤ 1
/// (a single shared value needs no index at all).
pub fn index_bits(k: usize) -> u8 {
    if k <= 1 {
        0
    } else {
        (usize::BITS - (k - 1).leading_zeros()) as u8
    }
}

/// Number of bytes that `n` values take at `bits` bits each; `usize::MAX` when that
/// does not fit (only a damaged header asks, and no buffer is that long).
pub fn packed_len(n: usize, bits: u8) -> usize {
    let len = (n as u128 * bits as u128).div_ceil(8);
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// Packs `values` at `bits` bits each, LSB first. Values must fit in `bits` bits
/// (checked by the caller; higher bits are masked off here).
pub fn pack(values: &[u32], bits: u8) -> Vec<u8> {
    assert!(bits <= 32, "bit width {bits} > 32");
    let mut out = vec![0u8; packed_len(values.len(), bits)];
    if bits == 0 {
        return out;
    }
    let mask: u64 = if bits == 32 {
        u32::MAX as u64
    } else {
        (1u64 << bits) - 1
    };
    let mut acc: u64 = 0;
    let mut filled: u32 = 0;
    let mut pos = 0;
    for &v in values {
        acc |= (v as u64 & mask) << filled;
        filled += bits as u32;
        while filled >= 8 {
            out[pos] = acc as u8;
            pos += 1;
            acc >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out[pos] = acc as u8;
    }
    out
}

/// Unpacks `n` values of `bits` bits each from `bytes` (which must hold at least
/// [`packed_len`]`(n, bits)` bytes).
pub fn unpack(bytes: &[u8], n: usize, bits: u8) -> Vec<u32> {
    assert!(bits <= 32, "bit width {bits} > 32");
    if bits == 0 {
        return vec![0; n];
    }
    assert!(
        bytes.len() >= packed_len(n, bits),
        "packed buffer too short"
    );
    let mask: u64 = if bits == 32 {
        u32::MAX as u64
    } else {
        (1u64 << bits) - 1
    };
    let mut out = Vec::with_capacity(n);
    let mut acc: u64 = 0;
    let mut filled: u32 = 0;
    let mut it = bytes.iter();
    for _ in 0..n {
        while filled < bits as u32 {
            acc |= (*it.next().expect("length checked above") as u64) << filled;
            filled += 8;
        }
        out.push((acc & mask) as u32);
        acc >>= bits;
        filled -= bits as u32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_len_saturates_instead_of_wrapping() {
        assert_eq!(packed_len(3, 5), 2);
        // 2^60 values at 32 bits is 2^62 bytes: fits. usize::MAX values at 32 bits does
        // not, and must not wrap to a small length a damaged header could satisfy.
        assert_eq!(packed_len(1 << 60, 32), 1 << 62);
        assert_eq!(packed_len(usize::MAX, 32), usize::MAX);
    }

    #[test]
    fn index_bits_is_ceil_log2() {
        assert_eq!(index_bits(1), 0);
        assert_eq!(index_bits(2), 1);
        assert_eq!(index_bits(3), 2);
        assert_eq!(index_bits(4), 2);
        assert_eq!(index_bits(5), 3);
        assert_eq!(index_bits(256), 8);
        assert_eq!(index_bits(257), 9);
    }

    #[test]
    fn pack_layout_is_lsb_first() {
        assert_eq!(pack(&[1, 2, 3], 2), vec![0b0011_1001]);
        assert_eq!(pack(&[0x1ff], 9), vec![0xff, 0x01]);
    }
}
