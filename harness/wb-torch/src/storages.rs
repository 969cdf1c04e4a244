//! Finite check of every floating-point tensor a TorchScript file stores: parameters
//! *and buffers*.
//!
//! libtorch's C API, as `tch` exposes it, lists a module's parameters but not its
//! buffers, yet a NaN in a BatchNorm `running_var` silently turns every prediction into
//! chance. A TorchScript file is a zip archive: `<name>/data.pkl` pickles the module
//! tree, each tensor as a persistent id `('storage', torch.FloatStorage, key, device,
//! numel)`, and `<name>/data/<key>` holds that storage's raw little-endian bytes. This
//! module reads the pickle's opcodes far enough to find each float storage, the
//! attribute it belongs to, and checks its values.
//!
//! Anything it cannot read (an archive written differently, a compressed entry, an
//! opcode it does not know) makes it answer [`Scan::Unchecked`] with the reason,
//! never an error: loading the module is libtorch's job, and the evaluation's own
//! finite check on the logits remains.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// What the scan of a TorchScript file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// Every float storage was read and is finite.
    Finite {
        /// Storages checked.
        storages: usize,
    },
    /// A storage holds a NaN or an infinity.
    NonFinite {
        /// The attribute that holds it (`running_var`, `weight` …), when the pickle
        /// names one.
        attribute: String,
        /// The storage's key in the archive (`data/<key>`).
        key: String,
        /// Index of the first non-finite value.
        index: usize,
        /// The value, as text (`NaN`, `inf`, `-inf`).
        value: String,
    },
    /// The file could not be scanned; why.
    Unchecked(String),
}

/// Scans the TorchScript file at `path`.
pub fn scan(path: &Path) -> Scan {
    match try_scan(path) {
        Ok(s) => s,
        Err(reason) => Scan::Unchecked(reason),
    }
}

/// The float storages of the TorchScript file at `path`, as `(attribute, entry)`
/// pairs: the attribute that holds the tensor (`running_var` …) and the archive entry
/// of its bytes (`<name>/data/<key>`).
///
/// # Errors
/// Why the archive or its pickle could not be read.
pub fn float_storages_of(path: &Path) -> Result<Vec<(String, String)>, String> {
    let (_, prefix, storages) = open(path)?;
    Ok(storages
        .into_iter()
        .map(|s| (s.attribute, format!("{prefix}data/{}", s.key)))
        .collect())
}

type Archive = zip::ZipArchive<std::fs::File>;

/// The archive, its entry prefix (`<name>/`) and its float storages.
fn open(path: &Path) -> Result<(Archive, String, Vec<StorageRef>), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("not a zip archive: {e}"))?;
    let pkl_name = zip
        .file_names()
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .map(str::to_string)
        .ok_or("no <name>/data.pkl in the archive")?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let pickle = read_entry(&mut zip, &pkl_name)?;
    let storages = float_storages(&pickle)?;
    Ok((zip, prefix, storages))
}

fn try_scan(path: &Path) -> Result<Scan, String> {
    let (mut zip, prefix, storages) = open(path)?;
    for s in &storages {
        let bytes = read_entry(&mut zip, &format!("{prefix}data/{}", s.key))?;
        if let Some((index, value)) = first_non_finite(&bytes, s.dtype) {
            return Ok(Scan::NonFinite {
                attribute: s.attribute.clone(),
                key: s.key.clone(),
                index,
                value,
            });
        }
    }
    Ok(Scan::Finite {
        storages: storages.len(),
    })
}

fn read_entry(zip: &mut Archive, name: &str) -> Result<Vec<u8>, String> {
    let mut entry = zip
        .by_name(name)
        .map_err(|e| format!("entry `{name}`: {e}"))?;
    let mut out = Vec::new();
    entry
        .read_to_end(&mut out)
        .map_err(|e| format!("entry `{name}`: {e}"))?;
    Ok(out)
}

/// Floating-point storage types and their element sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FloatKind {
    F32,
    F64,
    F16,
    Bf16,
}

fn float_kind(class: &str) -> Option<FloatKind> {
    Some(match class {
        "FloatStorage" => FloatKind::F32,
        "DoubleStorage" => FloatKind::F64,
        "HalfStorage" => FloatKind::F16,
        "BFloat16Storage" => FloatKind::Bf16,
        _ => return None,
    })
}

/// The index and text of the first non-finite value of a raw storage.
fn first_non_finite(bytes: &[u8], kind: FloatKind) -> Option<(usize, String)> {
    let text = |v: f64| {
        if v.is_nan() {
            "NaN".to_string()
        } else {
            v.to_string()
        }
    };
    match kind {
        FloatKind::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .position(|v| !v.is_finite())
            .map(|i| {
                let c = &bytes[4 * i..4 * i + 4];
                (i, text(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
            }),
        FloatKind::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .enumerate()
            .find(|(_, v)| !v.is_finite())
            .map(|(i, v)| (i, text(v))),
        // Both 16-bit formats are non-finite exactly when the exponent bits are all set.
        FloatKind::F16 | FloatKind::Bf16 => {
            let exp_mask = if kind == FloatKind::F16 {
                0x7C00
            } else {
                0x7F80
            };
            bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .position(|b| b & exp_mask == exp_mask)
                .map(|i| (i, "NaN or inf".to_string()))
        }
    }
}

/// One float storage the pickle refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StorageRef {
    attribute: String,
    key: String,
    dtype: FloatKind,
}

/// The pickle opcodes that matter here, reduced to what the pattern needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Str(String),
    Global(String, String),
    Other,
}

/// The float storages of a `data.pkl`: the token sequence `'storage'`, a
/// `torch.<Kind>Storage` global (or a memo reference to one), then the key string. The
/// attribute is the last string before the `_rebuild_*` global that opens the tensor.
fn float_storages(pickle: &[u8]) -> Result<Vec<StorageRef>, String> {
    let tokens = tokens(pickle)?;
    let mut out = Vec::new();
    let mut attribute = String::new();
    let mut last_str = String::new();
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Global(module, name)
                if module == "torch._utils" && name.starts_with("_rebuild") =>
            {
                attribute = last_str.clone();
            }
            Token::Str(s) if s == "storage" => {
                if let (Some(Token::Global(m, class)), Some(Token::Str(key))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    if let (true, Some(dtype)) = (m == "torch", float_kind(class)) {
                        out.push(StorageRef {
                            attribute: attribute.clone(),
                            key: key.clone(),
                            dtype,
                        });
                    }
                }
            }
            Token::Str(s) => last_str = s.clone(),
            _ => {}
        }
    }
    Ok(out)
}

/// Cursor over the pickle bytes.
struct Bytes<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.b.len());
        let end = end.ok_or_else(|| format!("pickle truncated at byte {}", self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn len_prefixed(&mut self, width: usize) -> Result<&'a [u8], String> {
        let raw = self.take(width)?;
        let mut n = [0u8; 8];
        n[..width].copy_from_slice(raw);
        self.take(u64::from_le_bytes(n) as usize)
    }
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.b[self.pos..];
        let end = rest
            .iter()
            .position(|c| *c == b'\n')
            .ok_or("unterminated GLOBAL")?;
        self.pos += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

/// Tokenizes a protocol-2 pickle (what `torch.jit.save` writes), resolving memo
/// references to the globals they stand for.
fn tokens(pickle: &[u8]) -> Result<Vec<Token>, String> {
    let mut r = Bytes { b: pickle, pos: 0 };
    let mut memo: HashMap<u32, Token> = HashMap::new();
    let mut out: Vec<Token> = Vec::new();
    loop {
        let op = r.take(1)?[0];
        let token = match op {
            b'.' => break,
            0x80 => {
                r.take(1)?;
                continue;
            }
            b'c' => Token::Global(r.line()?, r.line()?),
            b'X' => Token::Str(String::from_utf8_lossy(r.len_prefixed(4)?).into_owned()),
            0x8c => Token::Str(String::from_utf8_lossy(r.len_prefixed(1)?).into_owned()),
            b'T' | b'B' => {
                r.len_prefixed(4)?;
                Token::Other
            }
            b'U' | b'C' | 0x8a => {
                r.len_prefixed(1)?;
                Token::Other
            }
            b'q' | b'r' => {
                let id = memo_id(&mut r, op == b'q')?;
                if let Some(last) = out.last() {
                    memo.insert(id, last.clone());
                }
                continue;
            }
            b'h' | b'j' => {
                let id = memo_id(&mut r, op == b'h')?;
                memo.get(&id).cloned().unwrap_or(Token::Other)
            }
            b'K' => skip(&mut r, 1)?,
            b'M' => skip(&mut r, 2)?,
            b'J' => skip(&mut r, 4)?,
            b'G' => skip(&mut r, 8)?,
            b'(' | b')' | b'}' | b']' | b't' | 0x85 | 0x86 | 0x87 | 0x81 | 0x88 | 0x89 | b'N'
            | b'Q' | b'R' | b'u' | b's' | b'b' | b'e' | b'a' | b'0' => Token::Other,
            other => {
                return Err(format!(
                    "pickle opcode 0x{other:02x} at byte {} not understood",
                    r.pos - 1
                ))
            }
        };
        out.push(token);
    }
    Ok(out)
}

fn memo_id(r: &mut Bytes<'_>, short: bool) -> Result<u32, String> {
    Ok(if short {
        u32::from(r.take(1)?[0])
    } else {
        let b = r.take(4)?;
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    })
}

fn skip(r: &mut Bytes<'_>, n: usize) -> Result<Token, String> {
    r.take(n)?;
    Ok(Token::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `torch.jit.save` writes for one tensor attribute, by hand: the storage
    /// class is a GLOBAL the first time and a memo reference after.
    fn tensor_pickle(attr: &str, key: &str, first: bool) -> Vec<u8> {
        let mut p = Vec::new();
        let s = |p: &mut Vec<u8>, v: &str| {
            p.push(b'X');
            p.extend_from_slice(&(v.len() as u32).to_le_bytes());
            p.extend_from_slice(v.as_bytes());
        };
        s(&mut p, attr);
        p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.push(b'(');
        s(&mut p, "storage");
        if first {
            p.extend_from_slice(b"ctorch\nFloatStorage\nq\x08");
        } else {
            p.extend_from_slice(b"h\x08");
        }
        s(&mut p, key);
        s(&mut p, "cpu");
        p.extend_from_slice(b"K\x04tQ");
        p
    }

    #[test]
    fn finds_float_storages_through_memo_references() {
        let mut p = vec![0x80, 2];
        p.extend(tensor_pickle("weight", "0", true));
        p.extend(tensor_pickle("running_var", "7", false));
        p.push(b'.');
        let got = float_storages(&p).unwrap();
        assert_eq!(
            got,
            vec![
                StorageRef {
                    attribute: "weight".into(),
                    key: "0".into(),
                    dtype: FloatKind::F32
                },
                StorageRef {
                    attribute: "running_var".into(),
                    key: "7".into(),
                    dtype: FloatKind::F32
                },
            ]
        );
    }

    #[test]
    fn unknown_opcode_is_a_reason_not_a_panic() {
        let e = float_storages(&[0x80, 2, 0xFE, b'.']).unwrap_err();
        assert!(e.contains("0xfe"), "{e}");
        assert!(float_storages(&[0x80]).is_err());
    }

    #[test]
    fn non_finite_values_are_found_in_every_float_kind() {
        let f32s: Vec<u8> = [1.0f32, f32::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            first_non_finite(&f32s, FloatKind::F32),
            Some((1, "NaN".into()))
        );
        let f64s: Vec<u8> = [f64::NEG_INFINITY]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            first_non_finite(&f64s, FloatKind::F64),
            Some((0, "-inf".into()))
        );
        assert_eq!(
            first_non_finite(&[0x00, 0x7C], FloatKind::F16).unwrap().0,
            0
        );
        assert_eq!(
            first_non_finite(&[0x80, 0x7F], FloatKind::Bf16).unwrap().0,
            0
        );
        assert_eq!(first_non_finite(&[0x00, 0x3C], FloatKind::F16), None);
    }
}
