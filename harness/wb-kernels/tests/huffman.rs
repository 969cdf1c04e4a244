//! Huffman code lengths against known optima and a brute-force search, canonical codes,
//! and exact encode/decode round trips.

use proptest::prelude::*;
use wb_kernels::huffman::{code_lengths, coded_bits, CanonicalCode, MAX_CODE_LEN};
use wb_kernels::KernelError;

fn cost(freqs: &[u64], lengths: &[Option<u8>]) -> u64 {
    coded_bits(freqs, lengths).expect("every used symbol has a code")
}

/// The smallest `Σ f·l` over all complete prefix codes for the used symbols (lengths
/// 1 … m−1 with Kraft sum 1), by exhaustive enumeration; small alphabets only.
fn brute_force_optimum(freqs: &[u64]) -> u64 {
    let used: Vec<u64> = freqs.iter().copied().filter(|&f| f > 0).collect();
    let m = used.len();
    if m <= 1 {
        return 0;
    }
    let max = (m - 1) as u32;
    let mut best = u64::MAX;
    let mut l = vec![1u32; m];
    loop {
        let kraft: u64 = l.iter().map(|&x| 1u64 << (max - x)).sum();
        if kraft == 1u64 << max {
            best = best.min(l.iter().zip(&used).map(|(&x, &f)| x as u64 * f).sum());
        }
        // Next length vector (odometer).
        let mut i = 0;
        while i < m && l[i] == max {
            l[i] = 1;
            i += 1;
        }
        if i == m {
            return best;
        }
        l[i] += 1;
    }
}

fn kraft_is_one(lengths: &[Option<u8>]) -> bool {
    let s: u128 = lengths
        .iter()
        .flatten()
        .map(|&l| 1u128 << (MAX_CODE_LEN - l))
        .sum();
    s == 1u128 << MAX_CODE_LEN
}

#[test]
fn textbook_distribution_clrs() {
    // CLRS §16.3: a:45 b:13 c:12 d:16 e:9 f:5 → lengths 1,3,3,3,4,4, cost 224.
    let f = [45u64, 13, 12, 16, 9, 5];
    let l = code_lengths(&f).unwrap();
    assert_eq!(
        l,
        vec![Some(1), Some(3), Some(3), Some(3), Some(4), Some(4)]
    );
    assert_eq!(cost(&f, &l), 224);
    assert_eq!(brute_force_optimum(&f), 224);
}

#[test]
fn dyadic_distribution_meets_the_entropy() {
    // Probabilities 1/2, 1/4, 1/8, 1/8: lengths equal −log2 p, cost = n·H.
    let f = [400u64, 200, 100, 100];
    let l = code_lengths(&f).unwrap();
    assert_eq!(l, vec![Some(1), Some(2), Some(3), Some(3)]);
    assert_eq!(cost(&f, &l), 400 + 400 + 300 + 300);
}

#[test]
fn uniform_distribution_gives_fixed_width_codes() {
    let l = code_lengths(&[7u64; 256]).unwrap();
    assert!(l.iter().all(|&x| x == Some(8)));
    // Not a power of two: lengths ⌊log2 m⌋ and ⌈log2 m⌉ only.
    let l = code_lengths(&[3u64; 5]).unwrap();
    let mut v: Vec<u8> = l.iter().flatten().copied().collect();
    v.sort();
    assert_eq!(v, vec![2, 2, 2, 3, 3]);
}

#[test]
fn fibonacci_frequencies_give_the_deepest_tree() {
    let mut f = vec![1u64, 1];
    while f.len() < 20 {
        let n = f[f.len() - 1] + f[f.len() - 2];
        f.push(n);
    }
    let l = code_lengths(&f).unwrap();
    assert_eq!(l.iter().flatten().max(), Some(&19));
    assert!(kraft_is_one(&l));
    let c = CanonicalCode::new(&l).unwrap();
    let symbols: Vec<u32> = (0..20).collect();
    let (bytes, bits) = c.encode(&symbols).unwrap();
    assert_eq!(c.decode(&bytes, bits, 20).unwrap(), symbols);
}

#[test]
fn single_symbol_takes_zero_bits() {
    let f = [0u64, 0, 42, 0];
    let l = code_lengths(&f).unwrap();
    assert_eq!(l, vec![None, None, Some(0), None]);
    let c = CanonicalCode::new(&l).unwrap();
    let (bytes, bits) = c.encode(&[2; 42]).unwrap();
    assert_eq!((bytes.len(), bits), (0, 0));
    assert_eq!(c.decode(&[], 0, 42).unwrap(), vec![2; 42]);
    assert!(c.encode(&[1]).is_err(), "an unused symbol has no code");
    assert!(
        c.decode(&[0], 8, 42).is_err(),
        "no bits may follow a 0-bit code"
    );
}

#[test]
fn two_symbols_take_one_bit_each() {
    let l = code_lengths(&[1000, 1]).unwrap();
    assert_eq!(l, vec![Some(1), Some(1)]);
    let c = CanonicalCode::new(&l).unwrap();
    let (bytes, bits) = c.encode(&[0, 1, 1, 0, 0, 0, 0, 0, 1]).unwrap();
    assert_eq!(bits, 9);
    assert_eq!(bytes, vec![0b0110_0000, 0b1000_0000]);
    assert_eq!(
        c.decode(&bytes, bits, 9).unwrap(),
        vec![0, 1, 1, 0, 0, 0, 0, 0, 1]
    );
}

#[test]
fn no_symbol_is_an_empty_code() {
    let l = code_lengths(&[0, 0]).unwrap();
    assert_eq!(l, vec![None, None]);
    let c = CanonicalCode::new(&l).unwrap();
    assert_eq!(c.encode(&[]).unwrap(), (vec![], 0));
    assert!(c.decode(&[], 0, 1).is_err());
    assert_eq!(code_lengths(&[]).unwrap(), vec![]);
}

#[test]
fn malformed_streams_are_rejected() {
    let c = CanonicalCode::from_frequencies(&[5, 3, 1, 1]).unwrap();
    let (bytes, bits) = c.encode(&[0, 1, 2, 3, 3]).unwrap();
    assert!(c.decode(&bytes, bits, 5).is_ok());
    // Too few symbols for the bits, too many, a wrong byte count, dirty padding.
    assert!(matches!(
        c.decode(&bytes, bits, 4),
        Err(KernelError::InvalidInput { .. })
    ));
    assert!(c.decode(&bytes, bits, 6).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(c.decode(&longer, bits, 5).is_err());
    if bits % 8 != 0 {
        let mut dirty = bytes.clone();
        *dirty.last_mut().unwrap() |= 1;
        assert!(c.decode(&dirty, bits, 5).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn prop_huffman_cost_is_the_brute_force_optimum(
        freqs in prop::collection::vec(prop_oneof![1 => Just(0u64), 4 => 1u64..1000], 1..=6)
    ) {
        let l = code_lengths(&freqs).unwrap();
        prop_assert_eq!(cost(&freqs, &l), brute_force_optimum(&freqs));
        for (f, x) in freqs.iter().zip(&l) {
            prop_assert_eq!(*f == 0, x.is_none());
        }
    }

    #[test]
    fn prop_round_trip_is_exact(
        freqs in prop::collection::vec(prop_oneof![1 => Just(0u64), 3 => 1u64..10_000], 1..300),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..2000),
    ) {
        let l = code_lengths(&freqs).unwrap();
        let used: Vec<u32> = (0..freqs.len() as u32).filter(|&s| freqs[s as usize] > 0).collect();
        prop_assume!(!used.is_empty() || picks.is_empty());
        if used.len() >= 2 {
            prop_assert!(kraft_is_one(&l));
        }
        let c = CanonicalCode::new(&l).unwrap();
        let symbols: Vec<u32> = if used.is_empty() {
            vec![]
        } else {
            picks.iter().map(|i| used[i.index(used.len())]).collect()
        };
        let (bytes, bits) = c.encode(&symbols).unwrap();
        prop_assert_eq!(bits, c.encoded_bits(&symbols).unwrap());
        let mut counts = vec![0u64; freqs.len()];
        for &s in &symbols {
            counts[s as usize] += 1;
        }
        prop_assert_eq!(Some(bits), coded_bits(&counts, &l));
        prop_assert_eq!(bytes.len() as u64, bits.div_ceil(8));
        prop_assert_eq!(c.decode(&bytes, bits, symbols.len()).unwrap(), symbols);
        // Canonical: the code is a function of the lengths alone.
        prop_assert_eq!(CanonicalCode::new(c.lengths()).unwrap(), c);
    }

    #[test]
    fn prop_codes_are_prefix_free_and_canonical(
        freqs in prop::collection::vec(1u64..500, 2..60)
    ) {
        let c = CanonicalCode::from_frequencies(&freqs).unwrap();
        let codes: Vec<(u64, u8)> = (0..freqs.len() as u32).map(|s| c.code(s).unwrap()).collect();
        for (i, &(ci, li)) in codes.iter().enumerate() {
            for (j, &(cj, lj)) in codes.iter().enumerate() {
                if i != j && li <= lj {
                    prop_assert!(cj >> (lj - li) != ci, "code {} is a prefix of {}", i, j);
                }
                // Canonical order: shorter codes, then lower symbols, come first.
                if (li, i) < (lj, j) {
                    prop_assert!((ci << (64 - li as u32) as u64) < (cj << (64 - lj as u32) as u64) || li == 0);
                }
            }
        }
    }
}
