//! Property tests of the container, the size accounting, bit packing, the f32 → 16-bit
//! casts and the content hash.

use proptest::prelude::*;
use proptest::strategy::Union;
use wb_core::bitpack::{pack, packed_len, unpack};
use wb_core::container::{self, TensorSpan};
use wb_core::{
    bf16fields, Artifact, Bf16Exponents, CodeLengths, CodeTableRef, CodebookRef, CoreError,
    EncodedTensor, Encoding, ExpTableRef, HuffmanScope, IndexCoding, Pq, PqCodewords, Ref, Tensor,
    ValueTable, WeightSet,
};

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

/// Any f32 bit pattern half the time (NaN payloads, infinities, subnormals, -0.0), an
/// ordinary weight-like value otherwise.
fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<u32>().prop_map(f32::from_bits),
        (-4.0f32..4.0),
        Just(0.0f32),
        Just(-0.0f32),
    ]
}

fn finite_f32() -> impl Strategy<Value = f32> {
    any::<u32>()
        .prop_map(f32::from_bits)
        .prop_filter("finite", |v| v.is_finite())
}

/// Shapes of 0 to 4 dimensions (zero-sized dimensions included), at most 2048 values.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![3 => 1usize..=4, 1 => 0usize..=40], 0..=4)
        .prop_filter("at most 2048 values", |s| {
            s.iter().product::<usize>() <= 2048
        })
}

/// Names: arbitrary Unicode (the index is prefixed by the caller to keep them unique).
fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z][a-z0-9_.]{0,24}", "\\PC{0,12}",]
}

/// Sign and mantissa streams of `n` values for an exponent table `table` of `k`
/// entries, with its size.
fn bf16_exponents(
    n: usize,
    k: usize,
    table: ExpTableRef,
) -> impl Strategy<Value = (ValueTable, usize)> {
    (0u8..=7).prop_flat_map(move |m| {
        let table = table.clone();
        (
            prop::collection::vec(any::<bool>(), n),
            prop::collection::vec((0..1u16 << m).prop_map(|v| v as u8), n),
        )
            .prop_map(move |(signs, mantissas)| {
                (
                    ValueTable::Bf16Exponents(Bf16Exponents {
                        table: table.clone(),
                        mantissa_bits: m,
                        signs,
                        mantissas,
                    }),
                    k,
                )
            })
    })
}

/// A Huffman code table for a codebook of `k` entries: the optimal lengths of random
/// frequencies (some entries unused, at least one used).
fn code_table(k: usize) -> impl Strategy<Value = CodeLengths> {
    prop::collection::vec(prop_oneof![1 => Just(0u64), 2 => 1u64..50], k).prop_map(|mut f| {
        if f.iter().all(|&x| x == 0) {
            f[0] = 1;
        }
        wb_kernels::huffman::code_lengths(&f).unwrap()
    })
}

/// `n` indices drawn from the entries of `table` that have a code.
fn coded_indices(table: &CodeLengths, n: usize) -> impl Strategy<Value = Vec<u32>> {
    let used: Vec<u32> = (0..table.len() as u32)
        .filter(|&s| table[s as usize].is_some())
        .collect();
    prop::collection::vec(any::<prop::sample::Index>(), n)
        .prop_map(move |ix| ix.iter().map(|i| used[i.index(used.len())]).collect())
}

/// Any value table for `n` values with its number of entries: a local FP32, FP16 or
/// BF16 table of 1 to 300 entries, a local exponent table of 1 to 256 (duplicates, 0
/// and 255 included), or a shared codebook or exponent table of the artifact.
fn value_table(
    n: usize,
    shared: Vec<usize>,
    shared_exp: Vec<usize>,
) -> BoxedStrategy<(ValueTable, usize)> {
    let mut options: Vec<BoxedStrategy<(ValueTable, usize)>> = vec![
        prop::collection::vec(any_f32(), 1..=300)
            .prop_map(|cb| {
                let k = cb.len();
                (ValueTable::F32(CodebookRef::Local(cb)), k)
            })
            .boxed(),
        prop::collection::vec(any::<u16>(), 1..=300)
            .prop_map(|v| {
                let k = v.len();
                (ValueTable::F16(v), k)
            })
            .boxed(),
        prop::collection::vec(any::<u16>(), 1..=300)
            .prop_map(|v| {
                let k = v.len();
                (ValueTable::Bf16(v), k)
            })
            .boxed(),
        prop::collection::vec(any::<u8>(), 1..=256)
            .prop_flat_map(move |t| {
                let k = t.len();
                bf16_exponents(n, k, ExpTableRef::Local(t))
            })
            .boxed(),
    ];
    if !shared.is_empty() {
        options.push(
            (0..shared.len())
                .prop_map(move |id| (ValueTable::F32(CodebookRef::Shared(id as u32)), shared[id]))
                .boxed(),
        );
    }
    if !shared_exp.is_empty() {
        options.push(
            (0..shared_exp.len())
                .prop_flat_map(move |id| {
                    bf16_exponents(n, shared_exp[id], ExpTableRef::Shared(id as u32))
                })
                .boxed(),
        );
    }
    Union::new(options).boxed()
}

/// Any index coding of `n` indices into a table of `k` entries, with the indices:
/// fixed width, Huffman with a local code table, or Huffman with one of the artifact's
/// shared code tables of `k` entries.
fn index_coding(
    n: usize,
    k: usize,
    shared_code: Vec<CodeLengths>,
) -> BoxedStrategy<(IndexCoding, Vec<u32>)> {
    let mut options: Vec<BoxedStrategy<(IndexCoding, Vec<u32>)>> = vec![
        prop::collection::vec(0..k as u32, n)
            .prop_map(move |idx| (IndexCoding::fixed(k), idx))
            .boxed(),
        code_table(k)
            .prop_flat_map(move |table| {
                coded_indices(&table, n).prop_map(move |idx| {
                    let code =
                        IndexCoding::huffman(Ref::Local(table.clone()), &table, &idx).unwrap();
                    (code, idx)
                })
            })
            .boxed(),
    ];
    let fitting: Vec<u32> = (0..shared_code.len() as u32)
        .filter(|&id| shared_code[id as usize].len() == k)
        .collect();
    if !fitting.is_empty() {
        options.push(
            prop::sample::select(fitting)
                .prop_flat_map(move |id| {
                    let table = shared_code[id as usize].clone();
                    coded_indices(&table, n).prop_map(move |idx| {
                        let code = IndexCoding::huffman(Ref::Shared(id), &table, &idx).unwrap();
                        (code, idx)
                    })
                })
                .boxed(),
        );
    }
    Union::new(options).boxed()
}

/// An encoding of `n` values for a tensor with `c` output channels, given the sizes of
/// the artifact's shared codebooks and shared exponent tables, and the shared Huffman
/// code tables: a dense one, or any value table with any index coding.
fn encoding(
    n: usize,
    c: usize,
    shared: Vec<usize>,
    shared_exp: Vec<usize>,
    shared_code: Vec<CodeLengths>,
) -> BoxedStrategy<Encoding> {
    let pq_code = shared_code.clone();
    let pq = (1u32..=12, 1usize..=40, any::<bool>())
        .prop_flat_map(move |(dim, k, half)| {
            let m = n.div_ceil(dim as usize);
            let words = if half {
                prop::collection::vec(any::<u16>(), k * dim as usize)
                    .prop_map(PqCodewords::F16)
                    .boxed()
            } else {
                prop::collection::vec(any_f32(), k * dim as usize)
                    .prop_map(PqCodewords::F32)
                    .boxed()
            };
            (words, index_coding(m, k, pq_code.clone())).prop_map(
                move |(codewords, (coding, indices))| {
                    Encoding::ProductQuantized(Pq {
                        dim,
                        codewords,
                        coding,
                        indices,
                        values: n,
                    })
                },
            )
        })
        .boxed();
    let indexed = value_table(n, shared, shared_exp)
        .prop_flat_map(move |(table, k)| {
            index_coding(n, k, shared_code.clone()).prop_map(move |(coding, indices)| {
                Encoding::Indexed {
                    table: table.clone(),
                    coding,
                    indices,
                }
            })
        })
        .boxed();
    prop_oneof![
        1 => prop::collection::vec(any_f32(), n).prop_map(Encoding::F32),
        1 => prop::collection::vec(any::<u16>(), n).prop_map(Encoding::Bf16),
        1 => prop::collection::vec(any::<u16>(), n).prop_map(Encoding::F16),
        1 => (
            prop::collection::vec(any_f32(), c),
            prop::collection::vec(any::<i8>(), n),
        )
            .prop_map(|(scales, q)| Encoding::Int8PerChannel { scales, q }),
        6 => indexed,
        2 => pq,
    ]
    .boxed()
}

fn tensor(
    shared: Vec<usize>,
    shared_exp: Vec<usize>,
    shared_code: Vec<CodeLengths>,
) -> impl Strategy<Value = EncodedTensor> {
    (name(), shape(), any::<bool>()).prop_flat_map(move |(name, shape, compressible)| {
        let n = shape.iter().product();
        let c = shape.first().copied().unwrap_or(1).max(1);
        encoding(
            n,
            c,
            shared.clone(),
            shared_exp.clone(),
            shared_code.clone(),
        )
        .prop_map(move |encoding| EncodedTensor {
            name: name.clone(),
            shape: shape.clone(),
            compressible,
            encoding,
        })
    })
}

/// A valid artifact: 0 to 3 shared codebooks of 1 to 300 values, 0 to 2 shared exponent
/// tables of 1 to 256 entries, half the time one shared Huffman code table per shared
/// codebook (of its size), 0 to 6 tensors with unique names.
fn artifact() -> impl Strategy<Value = Artifact> {
    (
        prop::collection::vec(prop::collection::vec(any_f32(), 1..=300), 0..=3),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..=256), 0..=2),
        any::<bool>(),
    )
        .prop_flat_map(|(shared_codebooks, shared_exp_tables, with_code)| {
            let ks: Vec<usize> = shared_codebooks.iter().map(Vec::len).collect();
            let tables: Vec<BoxedStrategy<CodeLengths>> = if with_code {
                ks.iter().map(|&k| code_table(k).boxed()).collect()
            } else {
                vec![]
            };
            (Just(shared_codebooks), Just(shared_exp_tables), tables)
        })
        .prop_flat_map(
            |(shared_codebooks, shared_exp_tables, shared_code_tables)| {
                let ks: Vec<usize> = shared_codebooks.iter().map(Vec::len).collect();
                let es: Vec<usize> = shared_exp_tables.iter().map(Vec::len).collect();
                prop::collection::vec(tensor(ks, es, shared_code_tables.clone()), 0..=6).prop_map(
                    move |mut tensors| {
                        for (i, t) in tensors.iter_mut().enumerate() {
                            t.name = format!("{i}:{}", t.name);
                        }
                        Artifact {
                            shared_codebooks: shared_codebooks.clone(),
                            shared_exp_tables: shared_exp_tables.clone(),
                            shared_code_tables: shared_code_tables.clone(),
                            tensors,
                        }
                    },
                )
            },
        )
}

/// A weight set of finite values, at least one value in total.
fn weight_set() -> impl Strategy<Value = WeightSet> {
    prop::collection::vec(
        (name(), shape(), any::<bool>()).prop_flat_map(|(name, shape, compressible)| {
            let n: usize = shape.iter().product();
            prop::collection::vec(finite_f32(), n).prop_map(move |data| {
                Tensor::new(name.clone(), shape.clone(), data, compressible).unwrap()
            })
        }),
        1..=5,
    )
    .prop_map(|mut ts| {
        for (i, t) in ts.iter_mut().enumerate() {
            t.name = format!("{i}:{}", t.name);
        }
        WeightSet::new(ts).unwrap()
    })
    .prop_filter("at least one value", |w| w.total_params() > 0)
}

// ---------------------------------------------------------------------------------------
// Bit-exact comparison (f32 `==` would fail on NaN and ignore the sign of zero)
// ---------------------------------------------------------------------------------------

fn f32_bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn same_table(a: &ValueTable, b: &ValueTable) -> bool {
    match (a, b) {
        (ValueTable::F32(CodebookRef::Local(x)), ValueTable::F32(CodebookRef::Local(y))) => {
            f32_bits(x) == f32_bits(y)
        }
        // No floats inside: structural equality is bit equality.
        (ValueTable::F32(CodebookRef::Local(_)), _)
        | (_, ValueTable::F32(CodebookRef::Local(_))) => false,
        _ => a == b,
    }
}

fn same_encoding(a: &Encoding, b: &Encoding) -> bool {
    match (a, b) {
        (Encoding::F32(x), Encoding::F32(y)) => f32_bits(x) == f32_bits(y),
        (Encoding::Bf16(x), Encoding::Bf16(y)) | (Encoding::F16(x), Encoding::F16(y)) => x == y,
        (
            Encoding::Int8PerChannel { scales: sa, q: qa },
            Encoding::Int8PerChannel { scales: sb, q: qb },
        ) => f32_bits(sa) == f32_bits(sb) && qa == qb,
        (
            Encoding::Indexed {
                table: ta,
                coding: ca,
                indices: ia,
            },
            Encoding::Indexed {
                table: tb,
                coding: cb,
                indices: ib,
            },
        ) => ca == cb && ia == ib && same_table(ta, tb),
        (Encoding::ProductQuantized(x), Encoding::ProductQuantized(y)) => {
            let words = match (&x.codewords, &y.codewords) {
                (PqCodewords::F32(a), PqCodewords::F32(b)) => f32_bits(a) == f32_bits(b),
                (a, b) => a == b,
            };
            words
                && x.dim == y.dim
                && x.coding == y.coding
                && x.indices == y.indices
                && x.values == y.values
        }
        _ => false,
    }
}

fn same_artifact(a: &Artifact, b: &Artifact) -> bool {
    a.shared_exp_tables == b.shared_exp_tables
        && a.shared_code_tables == b.shared_code_tables
        && a.shared_codebooks.len() == b.shared_codebooks.len()
        && a.shared_codebooks
            .iter()
            .zip(&b.shared_codebooks)
            .all(|(x, y)| f32_bits(x) == f32_bits(y))
        && a.tensors.len() == b.tensors.len()
        && a.tensors.iter().zip(&b.tensors).all(|(x, y)| {
            x.name == y.name
                && x.shape == y.shape
                && x.compressible == y.compressible
                && same_encoding(&x.encoding, &y.encoding)
        })
}

fn same_weights(a: &WeightSet, b: &WeightSet) -> bool {
    a.bit_identical(b)
        && a.tensors
            .iter()
            .zip(&b.tensors)
            .all(|(x, y)| x.compressible == y.compressible)
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// 1. `read(write(a))` is `a`, and decodes bit for bit to `a.decode()`.
    #[test]
    fn container_round_trip(a in artifact()) {
        let bytes = container::write(&a).unwrap();
        let back = container::read(&bytes).unwrap();
        prop_assert!(same_artifact(&a, &back), "{a:?}\n!=\n{back:?}");
        // Compare with `==` too where it is meaningful (no NaN anywhere).
        if !format!("{a:?}").contains("NaN") {
            prop_assert_eq!(&back, &a);
        }
        let (d1, d2) = (a.decode().unwrap(), back.decode().unwrap());
        prop_assert!(same_weights(&d1, &d2));
        // The container is canonical: writing the read artifact gives the same bytes.
        prop_assert_eq!(container::write(&back).unwrap(), bytes);
    }

    /// 2. Each tensor's span equals its analytic size, and the file its total size.
    #[test]
    fn sizes_match_spans(a in artifact()) {
        let (bytes, spans) = container::write_with_spans(&a).unwrap();
        let size = a.size();
        prop_assert_eq!(bytes.len() as u64, size.total_bytes);
        prop_assert_eq!(spans.len(), a.tensors.len());
        prop_assert_eq!(size.tensors.len(), a.tensors.len());
        for ((t, span), (name, s)) in a.tensors.iter().zip(&spans).zip(&size.tensors) {
            prop_assert_eq!(&span.name, &t.name);
            prop_assert_eq!(name, &t.name);
            prop_assert_eq!(span.end - span.start, t.size().bytes(), "tensor {}", t.name);
            prop_assert_eq!(*s, t.size());
        }
        // Spans tile the tensor section: header + shared codebooks, then tensors back to
        // back, then the trailer.
        let shared_bytes: u64 =
            a.shared_codebooks.iter().map(|c| 4 + 4 * c.len() as u64).sum::<u64>()
            + a.shared_exp_tables.iter().map(|t| 4 + t.len() as u64).sum::<u64>()
            + a.shared_code_tables.iter().map(|t| 4 + t.len() as u64).sum::<u64>();
        let header = if !a.shared_code_tables.is_empty() {
            prop_assert_eq!(&bytes[..8], container::MAGIC_V3);
            container::FIXED_HEADER_BYTES_V3
        } else if a.shared_exp_tables.is_empty() {
            prop_assert_eq!(&bytes[..8], container::MAGIC);
            container::FIXED_HEADER_BYTES
        } else {
            prop_assert_eq!(&bytes[..8], container::MAGIC_V2);
            container::FIXED_HEADER_BYTES_V2
        };
        let mut pos = header + shared_bytes;
        for TensorSpan { start, end, .. } in &spans {
            prop_assert_eq!(*start, pos);
            pos = *end;
        }
        prop_assert_eq!(pos + container::TRAILER_BYTES, bytes.len() as u64);
        prop_assert_eq!(
            size.container_overhead
                + size.shared_codebooks
                + size.shared_exp_tables
                + size.shared_code_tables
                + size.component(|s| s.bytes()),
            size.total_bytes
        );
        // Paper accounting of the whole artifact: compressible payload bits plus every
        // shared table at its stored width (32-bit centroids, 8-bit exponents).
        let payload: u64 = a
            .tensors
            .iter()
            .filter(|t| t.compressible)
            .map(|t| t.size().payload_bits())
            .sum();
        prop_assert_eq!(
            size.bits_compressed,
            payload + 8 * size.shared_codebooks + 8 * size.shared_exp_tables
                + 8 * size.shared_code_tables
        );
        // Paper accounting of each tensor: the analytic bits round up to its payload bytes.
        for t in &a.tensors {
            let s = t.size();
            prop_assert_eq!(s.codebook_bits.div_ceil(8), s.codebook);
            prop_assert_eq!(s.index_bits.div_ceil(8), s.indices);
            prop_assert_eq!(s.value_bits.div_ceil(8), s.values);
            prop_assert_eq!(s.scale_bits.div_ceil(8), s.scales);
        }
    }

    /// 2b. Huffman coding of the indices as a post-stage, per tensor and model-wide, on
    /// any artifact: it writes and reads back at exactly its analytic size, decodes bit
    /// for bit to the same weights, and per tensor never costs payload bits.
    #[test]
    fn huffman_post_stage_is_lossless_and_counted(a in artifact()) {
        let before = a.size();
        // Undoing Huffman coding gives a fixed-width artifact of the same weights.
        let fixed = a.fixed_width().unwrap();
        prop_assert!(fixed.shared_code_tables.is_empty());
        let fb = container::write(&fixed).unwrap();
        prop_assert_eq!(fb.len() as u64, fixed.size().total_bytes);
        prop_assert!(same_weights(&a.decode().unwrap(), &fixed.decode().unwrap()));
        for scope in [HuffmanScope::Tensor, HuffmanScope::Model] {
            let h = a.huffman_coded(scope).unwrap();
            let bytes = container::write(&h).unwrap();
            prop_assert_eq!(bytes.len() as u64, h.size().total_bytes);
            let back = container::read(&bytes).unwrap();
            prop_assert!(same_artifact(&h, &back));
            prop_assert!(same_weights(&a.decode().unwrap(), &back.decode().unwrap()));
            if scope == HuffmanScope::Model {
                let fixed = h.tensors.iter().filter(|t| {
                    matches!(&t.encoding, Encoding::Indexed { coding: IndexCoding::Fixed { .. }, .. })
                });
                prop_assert_eq!(fixed.count(), 0);
            }
            if scope == HuffmanScope::Tensor {
                for (x, y) in a.tensors.iter().zip(&h.tensors) {
                    prop_assert!(y.size().payload_bits() <= x.size().payload_bits());
                }
                prop_assert!(h.size().bits_compressed <= before.bits_compressed);
            }
        }
    }

    /// 3. Bit packing round-trips at every width.
    #[test]
    fn bitpack_round_trip(
        (bits, values) in (0u8..=32).prop_flat_map(|bits| {
            let max = if bits == 32 { u32::MAX } else { (1u32 << bits).wrapping_sub(1) };
            (Just(bits), prop::collection::vec(0..=max, 0..200))
        })
    ) {
        let packed = pack(&values, bits);
        prop_assert_eq!(packed.len(), packed_len(values.len(), bits));
        prop_assert_eq!(packed.len() as u64, (values.len() as u64 * bits as u64).div_ceil(8));
        prop_assert_eq!(unpack(&packed, values.len(), bits), values);
    }

    /// 4. Any single corrupted byte makes `read` fail.
    #[test]
    fn corrupted_byte_is_detected(
        a in artifact(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut bytes = container::write(&a).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        match container::read(&bytes) {
            Err(CoreError::MalformedContainer { .. }) => {}
            Err(e) => prop_assert!(false, "byte {i}: unexpected error kind {e}"),
            Ok(_) => prop_assert!(false, "byte {i} of {} corrupted but read succeeded", bytes.len()),
        }
    }

    /// 4b. Any truncation makes `read` fail too.
    #[test]
    fn truncation_is_detected(a in artifact(), at in any::<prop::sample::Index>()) {
        let bytes = container::write(&a).unwrap();
        let cut = at.index(bytes.len());
        prop_assert!(
            matches!(
                container::read(&bytes[..cut]),
                Err(CoreError::MalformedContainer { .. })
            ),
            "truncated to {cut} of {} bytes",
            bytes.len()
        );
    }

    /// 5. Changing any one weight by one ulp changes the content hash.
    #[test]
    fn content_hash_sees_one_ulp(
        w in weight_set(),
        at in any::<prop::sample::Index>(),
    ) {
        let total = w.total_params() as usize;
        let flat = at.index(total);
        let mut changed = w.clone();
        let (mut ti, mut i) = (0, flat);
        while i >= changed.tensors[ti].numel() {
            i -= changed.tensors[ti].numel();
            ti += 1;
        }
        let v = &mut changed.tensors[ti].data[i];
        // Flipping the last mantissa bit moves a finite value by exactly one ulp.
        let before = *v;
        *v = f32::from_bits(v.to_bits() ^ 1);
        prop_assert!(before != *v);
        prop_assert_eq!(w.content_hash(), w.clone().content_hash());
        prop_assert_ne!(w.content_hash(), changed.content_hash());
        prop_assert!(!w.bit_identical(&changed));
    }

    /// 5b. The hash also sees the sign of zero and the compressible flag.
    #[test]
    fn content_hash_sees_sign_of_zero_and_flags(w in weight_set(), ti in any::<prop::sample::Index>()) {
        let ti = ti.index(w.tensors.len());
        let mut flag = w.clone();
        flag.tensors[ti].compressible ^= true;
        prop_assert_ne!(w.content_hash(), flag.content_hash());
        if let Some(i) = w.tensors[ti].data.iter().position(|v| *v == 0.0) {
            let mut z = w.clone();
            z.tensors[ti].data[i] = -z.tensors[ti].data[i];
            prop_assert_ne!(w.content_hash(), z.content_hash());
        }
    }

    /// The bf16 cast rounds to nearest, ties to even, and overflows to infinity exactly
    /// where round-to-nearest says so.
    #[test]
    fn bf16_cast_is_round_to_nearest_even(x in any::<u32>().prop_map(f32::from_bits)) {
        let Encoding::Bf16(b) = Encoding::bf16_from_f32(&[x]) else { unreachable!() };
        check_rne(x, b[0], 0x7F80, bf16_value);
    }

    /// The f16 cast rounds to nearest, ties to even, and overflows to infinity exactly
    /// where round-to-nearest says so (|x| ≥ 65520).
    #[test]
    fn f16_cast_is_round_to_nearest_even(
        x in prop_oneof![
            any::<u32>().prop_map(f32::from_bits),
            (-70000.0f32..70000.0),
            (-1e-3f32..1e-3),
            (-1e-7f32..1e-7),
        ]
    ) {
        let Encoding::F16(b) = Encoding::f16_from_f32(&[x]) else { unreachable!() };
        check_rne(x, b[0], 0x7C00, f16_value);
        if x.is_finite() {
            prop_assert_eq!(b[0] & 0x7FFF == 0x7C00, x.abs() >= 65520.0);
        }
    }
}

/// Value of a non-negative bfloat16 magnitude bit pattern; `0x7F80` stands for 2^128,
/// the value one step past the largest finite (what rounding compares against).
fn bf16_value(m: u16) -> f64 {
    if m == 0x7F80 {
        2f64.powi(128)
    } else {
        f64::from(f32::from_bits(u32::from(m) << 16))
    }
}

/// Value of a non-negative IEEE half magnitude bit pattern, computed from the format
/// definition; `0x7C00` stands for 2^16.
fn f16_value(m: u16) -> f64 {
    let (e, f) = (i32::from(m >> 10), f64::from(m & 0x3FF));
    if e == 0 {
        f * 2f64.powi(-24)
    } else {
        (1024.0 + f) * 2f64.powi(e - 25)
    }
}

/// Checks that the 16-bit pattern `h` is `x` rounded to nearest even: same sign, its
/// magnitude nearest to |x| among its neighbours, even on a tie; NaN stays NaN.
fn check_rne(x: f32, h: u16, inf: u16, value: fn(u16) -> f64) {
    let m = h & 0x7FFF;
    if x.is_nan() {
        assert!(m > inf, "NaN {x:?} cast to non-NaN {h:#06x}");
        return;
    }
    assert_eq!(
        h >> 15 == 1,
        x.is_sign_negative(),
        "sign of {x:e} -> {h:#06x}"
    );
    assert!(m <= inf, "{x:e} -> NaN pattern {h:#06x}");
    if x.is_infinite() {
        assert_eq!(m, inf);
        return;
    }
    let ax = f64::from(x.abs()); // exact
    let d = (ax - value(m)).abs();
    for n in [m.wrapping_sub(1), m + 1] {
        if n > inf {
            continue; // below zero (wrapped) or past the infinity pattern
        }
        let dn = (ax - value(n)).abs();
        assert!(
            d < dn || (d == dn && m % 2 == 0),
            "{x:e} -> {h:#06x} ({}), but {n:#06x} ({}) is {}",
            value(m),
            value(n),
            if d == dn {
                "as near and even"
            } else {
                "nearer"
            }
        );
    }
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

fn small_artifact() -> Artifact {
    let w = WeightSet::new(vec![
        Tensor::new(
            "conv.weight",
            vec![2, 3],
            vec![0.5, -1.0, 2.0, 0.0, 1.5, -0.25],
            true,
        )
        .unwrap(),
        Tensor::new("conv.bias", vec![2], vec![0.1, 0.2], false).unwrap(),
    ])
    .unwrap();
    Artifact::map_compressible(&w, |t| {
        Ok(Encoding::codebook_local(
            vec![-1.0, 0.0, 2.0],
            t.data
                .iter()
                .map(|v| {
                    if *v < 0.0 {
                        0
                    } else if *v < 1.0 {
                        1
                    } else {
                        2
                    }
                })
                .collect(),
        ))
    })
    .unwrap()
}

#[test]
fn read_file_round_trips_and_names_the_path_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let a = small_artifact();

    // Round trip through a file.
    let path = dir.path().join("nested").join("model.wbc");
    let written = container::write_file(&a, &path).unwrap();
    assert_eq!(written, a.size().total_bytes);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), written);
    assert_eq!(container::read_file(&path).unwrap(), a);

    // Missing file: an I/O error whose message names the path.
    let missing = dir.path().join("does-not-exist.wbc");
    let e = container::read_file(&missing).unwrap_err();
    assert!(
        matches!(&e, CoreError::Io { path, .. } if path == &missing),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );

    // Truncated file: MalformedContainer naming the path.
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
        let truncated = dir.path().join(format!("truncated-{cut}.wbc"));
        std::fs::write(&truncated, &bytes[..cut]).unwrap();
        let e = container::read_file(&truncated).unwrap_err();
        assert!(
            matches!(&e, CoreError::MalformedContainer { path: Some(p), .. } if p == &truncated),
            "{e:?}"
        );
        assert!(
            e.to_string().contains(&truncated.display().to_string()),
            "{e}"
        );
    }
}

#[test]
fn shape_whose_product_overflows_is_rejected_before_writing() {
    // 2^16 · 2^16 · 2^16 · 2^16 = 2^64 wraps to 0 in usize: the empty encoding must not be
    // accepted as matching the shape (the reader would refuse the file).
    let a = Artifact {
        tensors: vec![EncodedTensor {
            name: "huge".into(),
            shape: vec![1 << 16; 4],
            compressible: true,
            encoding: Encoding::F32(vec![]),
        }],
        ..Default::default()
    };
    let e = container::write(&a).unwrap_err();
    assert!(
        matches!(&e, CoreError::InvalidEncoding { name, .. } if name == "huge"),
        "{e:?}"
    );
    assert!(a.decode().is_err());
}

#[test]
fn header_field_limits_are_enforced_at_the_boundary() {
    let t = |name: String, ndim: usize| EncodedTensor {
        name,
        shape: vec![1; ndim],
        compressible: false,
        encoding: Encoding::F32(vec![1.5]),
    };
    let one = |t: EncodedTensor| Artifact {
        tensors: vec![t],
        ..Default::default()
    };
    // Largest name and rank the header can hold: written, read back, sized exactly.
    let a = one(t("n".repeat(u16::MAX as usize), u8::MAX as usize));
    let bytes = container::write(&a).unwrap();
    assert_eq!(bytes.len() as u64, a.size().total_bytes);
    assert_eq!(container::read(&bytes).unwrap(), a);
    // One more is refused, not truncated.
    for bad in [
        one(t("n".repeat(u16::MAX as usize + 1), 1)),
        one(t("n".into(), u8::MAX as usize + 1)),
    ] {
        assert!(matches!(
            container::write(&bad),
            Err(CoreError::InvalidEncoding { .. })
        ));
    }
}

// ---------------------------------------------------------------------------------------
// bfloat16 fields
// ---------------------------------------------------------------------------------------

/// Every one of the 65,536 bfloat16 bit patterns — ±0, subnormals (exponent field 0),
/// normals, ±inf and every NaN payload (field 255) — goes through the field codec, the
/// container and the decoder bit for bit when the table holds all 256 exponents.
#[test]
fn every_bf16_pattern_round_trips_through_fields_and_container() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    // A table in a scrambled order, so that index ≠ exponent.
    let table: Vec<u8> = (0..=255u8)
        .map(|e| e.wrapping_mul(37).wrapping_add(11))
        .collect();
    let enc = Encoding::bf16_fields_local(&all, table.clone(), 7).unwrap();
    let Encoding::Indexed {
        coding: IndexCoding::Fixed { bits: index_bits },
        ref indices,
        ..
    } = enc
    else {
        unreachable!()
    };
    assert_eq!(index_bits, 8);
    for (b, i) in all.iter().zip(indices) {
        assert_eq!(table[*i as usize], bf16fields::exponent_field(*b));
    }
    let a = Artifact {
        tensors: vec![EncodedTensor {
            name: "all".into(),
            shape: vec![256, 256],
            compressible: true,
            encoding: enc,
        }],
        ..Default::default()
    };
    let bytes = container::write(&a).unwrap();
    assert_eq!(bytes.len() as u64, a.size().total_bytes);
    let back = container::read(&bytes).unwrap();
    assert_eq!(back, a);
    let decoded = back.decode().unwrap();
    for (b, v) in all.iter().zip(&decoded.tensors[0].data) {
        assert_eq!(v.to_bits(), (*b as u32) << 16, "pattern {b:#06x}");
    }
    // Paper accounting: 1 + 8 + 7 = 16 bits per value plus 8 bits per table entry.
    let s = a.tensors[0].size();
    assert_eq!(s.payload_bits(), 16 * 65_536 + 8 * 256);
}

/// With `m` < 7 kept mantissa bits, exactly the patterns whose dropped bits are zero are
/// accepted, and they round-trip; a table without an exponent refuses exactly the
/// patterns that have it.
#[test]
fn reduced_mantissa_and_partial_tables_accept_exactly_what_they_can_store() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    for m in 0..=7u8 {
        let drop_mask = (1u16 << (7 - m)) - 1;
        let table: Vec<u8> = (0..=255).collect();
        let mut accepted = 0usize;
        for &b in &all {
            match bf16fields::split(&[b], &table, m) {
                Ok(f) => {
                    assert_eq!(b & drop_mask, 0);
                    assert_eq!(bf16fields::join(&table, m, &f), vec![b]);
                    accepted += 1;
                }
                Err(bf16fields::FieldError::MantissaNotRepresentable { .. }) => {
                    assert_ne!(b & drop_mask, 0)
                }
                Err(e) => panic!("{b:#06x}: {e}"),
            }
        }
        assert_eq!(accepted, 2 * 256 * (1 << m), "m = {m}");
    }
    // Table {0, 127}: zero, subnormals and [1, 2) only.
    let table = [127u8, 0];
    for &b in &all {
        let ok = bf16fields::split(&[b], &table, 7).is_ok();
        let e = bf16fields::exponent_field(b);
        assert_eq!(ok, e == 0 || e == 127, "{b:#06x}");
    }
}

/// A model-wide exponent table is written once (container version 2) and counted once.
#[test]
fn shared_exponent_table_is_stored_once_and_counted_at_8_bits_per_entry() {
    let table = vec![126u8, 125, 124, 0];
    let v: Vec<u16> = vec![0x3F00, 0xBE80, 0x3E00, 0x0000, 0x8000, 0x3F7F];
    let t = |name: &str| EncodedTensor {
        name: name.into(),
        shape: vec![2, 3],
        compressible: true,
        encoding: Encoding::bf16_fields_shared(&v, 0, &table, 7).unwrap(),
    };
    let a = Artifact {
        shared_exp_tables: vec![table.clone()],
        tensors: vec![t("a"), t("b")],
        ..Default::default()
    };
    let (bytes, spans) = container::write_with_spans(&a).unwrap();
    assert_eq!(&bytes[..8], container::MAGIC_V2);
    let size = a.size();
    assert_eq!(bytes.len() as u64, size.total_bytes);
    assert_eq!(spans[0].start, container::FIXED_HEADER_BYTES_V2 + 4 + 4);
    // 6 values × (1 sign + 2 index + 7 mantissa bits) per tensor + 4 shared entries × 8.
    assert_eq!(size.bits_compressed, 2 * 6 * 10 + 4 * 8);
    assert_eq!(size.shared_exp_tables, 4);
    let back = container::read(&bytes).unwrap();
    assert_eq!(back, a);
    let d = back.decode().unwrap();
    assert_eq!(
        f32_bits(&d.tensors[1].data),
        v.iter().map(|b| (*b as u32) << 16).collect::<Vec<_>>()
    );
    // A reference to a table that does not exist is refused before writing.
    let mut bad = a.clone();
    bad.shared_exp_tables.clear();
    assert!(matches!(
        container::write(&bad),
        Err(CoreError::InvalidEncoding { .. })
    ));
}

/// The version-1 layout of the existing kinds is unchanged, byte for byte.
#[test]
fn version_1_layout_is_unchanged() {
    let a = Artifact {
        tensors: vec![EncodedTensor {
            name: "w".into(),
            shape: vec![2],
            compressible: true,
            encoding: Encoding::F32(vec![1.0, -2.0]),
        }],
        ..Default::default()
    };
    let bytes = container::write(&a).unwrap();
    let mut body = b"WBCONT01".to_vec();
    body.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0]); // n_shared, n_tensors
    body.extend_from_slice(&[1, 0, b'w', 1, 2, 0, 0, 0, 1, 0]); // name, shape, flags, kind
    body.extend_from_slice(&[0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0]); // 1.0, -2.0
    assert_eq!(&bytes[..bytes.len() - 32], body.as_slice());
    assert_eq!(container::read(&bytes).unwrap(), a);
}

/// A version-2 header that announces no exponent table is not canonical and refused.
#[test]
fn version_2_without_exponent_tables_is_refused() {
    use sha2::{Digest, Sha256};
    let mut body = b"WBCONT02".to_vec();
    body.extend_from_slice(&[0; 12]); // no codebooks, no tensors, no exponent tables
    let digest = Sha256::digest(&body);
    body.extend_from_slice(&digest);
    assert!(matches!(
        container::read(&body),
        Err(CoreError::MalformedContainer { .. })
    ));
}

/// Value sharing in bfloat16: 16 bits per table entry, ⌈log2 k⌉-bit indices.
#[test]
fn bf16_table_accounting() {
    let v: Vec<u16> = vec![0x3F80, 0x3F80, 0xC000, 0x0001, 0xC000];
    let enc = Encoding::bf16_table(&v);
    let t = EncodedTensor {
        name: "t".into(),
        shape: vec![5],
        compressible: true,
        encoding: enc,
    };
    let s = t.size();
    assert_eq!(s.codebook_bits, 3 * 16);
    assert_eq!(s.index_bits, 5 * 2);
    let d = t.decode(Default::default()).unwrap();
    assert_eq!(
        f32_bits(&d),
        v.iter().map(|b| (*b as u32) << 16).collect::<Vec<_>>()
    );
}

/// A version-3 header that announces no code table is not canonical and refused.
#[test]
fn version_3_without_code_tables_is_refused() {
    use sha2::{Digest, Sha256};
    let mut body = b"WBCONT03".to_vec();
    body.extend_from_slice(&[0; 16]);
    let digest = Sha256::digest(&body);
    body.extend_from_slice(&digest);
    assert!(matches!(
        container::read(&body),
        Err(CoreError::MalformedContainer { .. })
    ));
}

/// Huffman-coded codebook: the stream is Σ code lengths bits, the local table one byte
/// per codebook entry, and a model-wide table is stored (and counted) once.
#[test]
fn huffman_codebook_accounting_and_shared_table() {
    // Frequencies 4, 2, 1, 1 → lengths 1, 2, 3, 3 → 4·1 + 2·2 + 3 + 3 = 14 bits.
    let idx = vec![0u32, 0, 1, 0, 2, 1, 3, 0];
    let cb = vec![-1.0f32, 0.0, 0.5, 2.0];
    let enc = Encoding::huffman_local(cb.clone(), idx.clone()).unwrap();
    let t = EncodedTensor {
        name: "a".into(),
        shape: vec![2, 4],
        compressible: true,
        encoding: enc,
    };
    let s = t.size();
    assert_eq!(s.index_bits, 14);
    assert_eq!(s.indices, 2);
    assert_eq!(s.codebook_bits, 4 * 32 + 4 * 8);
    assert_eq!(s.header, 2 + 1 + 1 + 8 + 1 + 1 + 1 + 4 + 1 + 4 + 8);
    let d = t.decode(Default::default()).unwrap();
    assert_eq!(d, idx.iter().map(|&i| cb[i as usize]).collect::<Vec<_>>());

    // Two tensors on one shared codebook and one shared table (a model-wide tree).
    let table = wb_kernels::huffman::code_lengths(&[6, 2, 1, 1]).unwrap();
    let mk = |name: &str, indices: Vec<u32>| EncodedTensor {
        name: name.into(),
        shape: vec![indices.len()],
        compressible: true,
        encoding: Encoding::huffman_codebook(
            CodebookRef::Shared(0),
            CodeTableRef::Shared(0),
            &table,
            indices,
        )
        .unwrap(),
    };
    let a = Artifact {
        shared_codebooks: vec![cb.clone()],
        shared_code_tables: vec![table.clone()],
        tensors: vec![mk("x", vec![0, 0, 1, 2, 0]), mk("y", vec![0, 3, 1, 0, 0])],
        ..Default::default()
    };
    let size = a.size();
    let bytes = container::write(&a).unwrap();
    assert_eq!(&bytes[..8], container::MAGIC_V3);
    assert_eq!(bytes.len() as u64, size.total_bytes);
    assert_eq!(size.shared_code_tables, 4);
    let stream: u64 = size.component(|s| s.index_bits);
    assert_eq!(stream, 6 + 2 * 2 + 3 + 3);
    assert_eq!(size.bits_compressed, stream + 4 * 32 + 4 * 8);
    let back = container::read(&bytes).unwrap();
    assert_eq!(back, a);
    assert!(back.decode().unwrap().bit_identical(&a.decode().unwrap()));

    // A stream length that does not match the indices, an index without code, a table
    // of the wrong size: refused before writing.
    let mut bad = a.clone();
    if let Encoding::Indexed {
        coding: IndexCoding::Huffman { stream_bits, .. },
        ..
    } = &mut bad.tensors[0].encoding
    {
        *stream_bits += 1;
    }
    assert!(container::write(&bad).is_err());
    let short = wb_kernels::huffman::code_lengths(&[1, 1, 0, 0]).unwrap();
    assert!(Encoding::huffman_codebook(
        CodebookRef::Local(cb.clone()),
        CodeTableRef::Local(short.clone()),
        &short,
        vec![2],
    )
    .is_err());
    let mut wrong = a.clone();
    wrong.shared_code_tables = vec![vec![Some(1), Some(1)]];
    assert!(wrong.validate().is_err());
}

/// One shared value: a 0-bit code, an empty stream.
#[test]
fn huffman_single_symbol_costs_no_index_bits() {
    let enc = Encoding::huffman_local(vec![0.25], vec![0; 100]).unwrap();
    let a = Artifact {
        tensors: vec![EncodedTensor {
            name: "w".into(),
            shape: vec![100],
            compressible: true,
            encoding: enc,
        }],
        ..Default::default()
    };
    let size = a.size();
    assert_eq!(size.component(|s| s.index_bits), 0);
    assert_eq!(size.component(|s| s.indices), 0);
    let bytes = container::write(&a).unwrap();
    assert_eq!(bytes.len() as u64, size.total_bytes);
    assert_eq!(container::read(&bytes).unwrap(), a);
}

/// The four table × coding combinations that existed as kinds of their own keep their
/// kind tag (so their bytes, and every artifact written before, are unchanged); every
/// other combination is the generic kind 8.
#[test]
fn indexed_kind_tags_are_stable() {
    let one = |table: ValueTable, huffman: bool| {
        let e = Encoding::indexed_fixed(table, 2, vec![0, 1, 1]);
        let e = if huffman {
            e.with_huffman_indices(2).unwrap()
        } else {
            e
        };
        let a = Artifact {
            tensors: vec![EncodedTensor {
                name: "t".into(),
                shape: vec![3],
                compressible: true,
                encoding: e,
            }],
            ..Default::default()
        };
        let bytes = container::write(&a).unwrap();
        assert_eq!(bytes.len() as u64, a.size().total_bytes);
        assert_eq!(container::read(&bytes).unwrap(), a);
        // magic 8 + counts 8 + name_len 2 + "t" + ndim 1 + dim 4 + flags 1, then the kind
        (bytes[25], a.tensors[0].encoding.kind())
    };
    let exp = || {
        ValueTable::Bf16Exponents(Bf16Exponents {
            table: ExpTableRef::Local(vec![120, 127]),
            mantissa_bits: 2,
            signs: vec![false, true, false],
            mantissas: vec![0, 3, 1],
        })
    };
    let f32 = || ValueTable::F32(CodebookRef::Local(vec![-1.0, 0.5]));
    assert_eq!(one(f32(), false), (3, "codebook"));
    assert_eq!(one(exp(), false), (5, "bf16-fields"));
    assert_eq!(
        one(ValueTable::Bf16(vec![0x3F80, 0x4000]), false),
        (6, "bf16-table")
    );
    assert_eq!(one(f32(), true), (7, "huffman-codebook"));
    assert_eq!(one(exp(), true), (8, "bf16-fields+huffman"));
    assert_eq!(
        one(ValueTable::Bf16(vec![0x3F80, 0x4000]), true),
        (8, "bf16-table+huffman")
    );
    assert_eq!(
        one(ValueTable::F16(vec![0x3C00, 0x4000]), false),
        (8, "f16-codebook")
    );
    assert_eq!(
        one(ValueTable::F16(vec![0x3C00, 0x4000]), true),
        (8, "f16-codebook+huffman")
    );
}

/// A kind-8 tensor whose table or coding kind is unknown, or whose 16-bit table claims
/// to be shared, is a malformed container, never a panic.
#[test]
fn generic_kind_rejects_unknown_parts() {
    let a = Artifact {
        tensors: vec![EncodedTensor {
            name: "t".into(),
            shape: vec![2],
            compressible: true,
            encoding: Encoding::indexed_fixed(ValueTable::F16(vec![0x3C00, 0x4000]), 2, vec![0, 1]),
        }],
        ..Default::default()
    };
    let bytes = container::write(&a).unwrap();
    assert_eq!(bytes[25], 8);
    let reseal = |mut b: Vec<u8>, at: usize, v: u8| {
        b[at] = v;
        let n = b.len() - 32;
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&b[..n]);
        b[n..].copy_from_slice(&digest);
        b
    };
    for (at, v, msg) in [
        (26, 4, "unknown table kind"),
        (27, 2, "index coding"),
        (28, 1, "cannot be shared"),
    ] {
        let e = container::read(&reseal(bytes.clone(), at, v)).unwrap_err();
        assert!(e.to_string().contains(msg), "{e}");
    }
}

/// PQ accounting by hand: 100 values at dim 8 are 13 sub-vectors (the last holds 4
/// values and still costs a full index); k = 16 codewords of 8 FP32 values; 4-bit indices.
#[test]
fn pq_accounting_counts_the_partial_subvector_and_the_codebook() {
    let words: Vec<f32> = (0..16 * 8).map(|i| i as f32 / 8.0).collect();
    let idx: Vec<u32> = (0..13).map(|i| (i * 5 % 16) as u32).collect();
    let t = EncodedTensor {
        name: "w".into(),
        shape: vec![10, 10],
        compressible: true,
        encoding: Encoding::ProductQuantized(Pq::fixed(
            8,
            PqCodewords::F32(words.clone()),
            idx.clone(),
            100,
        )),
    };
    let s = t.size();
    assert_eq!(s.index_bits, 13 * 4);
    assert_eq!(s.indices, 7);
    assert_eq!(s.codebook_bits, 16 * 8 * 32);
    assert_eq!(s.codebook, 512);
    // name_len 2 + name 1 + ndim 1 + 2 dims 8 + flags 1 + kind 1, then the PQ header 11.
    assert_eq!(s.header, 14 + 11);
    let a = Artifact {
        tensors: vec![t],
        ..Default::default()
    };
    let bytes = container::write(&a).unwrap();
    assert_eq!(bytes.len() as u64, a.size().total_bytes);
    let d = container::read(&bytes).unwrap().decode().unwrap();
    assert_eq!(d.tensors[0].data.len(), 100);
    // The last sub-vector (index idx[12]) decodes to the first 4 values of its codeword.
    let last = idx[12] as usize * 8;
    assert_eq!(&d.tensors[0].data[96..], &words[last..last + 4]);
    // Wrong index count and wrong codebook length are refused.
    let bad = Pq::fixed(8, PqCodewords::F32(words.clone()), idx[..12].to_vec(), 100);
    let e = EncodedTensor {
        encoding: Encoding::ProductQuantized(bad),
        ..a.tensors[0].clone()
    };
    assert!(e
        .validate(Default::default())
        .unwrap_err()
        .to_string()
        .contains("13"));
    let bad = Pq::fixed(8, PqCodewords::F32(words[..100].to_vec()), idx, 100);
    let e = EncodedTensor {
        encoding: Encoding::ProductQuantized(bad),
        ..a.tensors[0].clone()
    };
    assert!(e.validate(Default::default()).is_err());
}
