//! Model cards: a TOML file next to a TorchScript model saying where the file is, what
//! input it expects and which tensors may be compressed (format: `models/README.md`).

use crate::error::{Result, TorchError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A parsed model card.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// Identifier used in experiments and result rows.
    pub name: String,
    /// One line for humans (origin, license).
    #[serde(default)]
    pub description: String,
    /// TorchScript file, relative to the card's directory.
    pub file: PathBuf,
    /// Dataset family the model was trained for (`"cifar10"`).
    pub dataset: String,
    /// Number of logits.
    pub num_classes: usize,
    /// Input preprocessing.
    pub input: InputSpec,
    /// Which parameters are compressible.
    #[serde(default)]
    pub weights: WeightsSpec,
    /// Optional golden logits for regression tests.
    #[serde(default)]
    pub reference: Option<ReferenceSpec>,
    /// Whether the TorchScript module offers a staged forward pass (`stage_count`,
    /// `stage_prefixes`, `run_stages`), so that evaluations can resume from cached
    /// activations ([`crate::stages`]).
    #[serde(default)]
    pub stages: bool,
    /// Whether the TorchScript module exports its BatchNorm layers and statistics
    /// (`batchnorm_layers`, `batchnorm_buffers`), so that quantization-aware training can
    /// train them (`wb_core::BatchNormMode::Train`) and fold them into γ/β.
    #[serde(default)]
    pub batchnorm: bool,
    /// The model's int8 program (`models/int8_program.py`), relative to the card's
    /// directory: int8 artifacts also run on libtorch's quantized kernels through it
    /// (the `int8-native` path, [`crate::int8`]).
    #[serde(default)]
    pub int8_file: Option<PathBuf>,
    /// Directory of the card (set after parsing; `file` is relative to it).
    #[serde(skip)]
    pub card_dir: PathBuf,
    /// Path of the card itself (set after parsing).
    #[serde(skip)]
    pub card_path: PathBuf,
}

/// How uint8 RGB images become the model's float input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Tensor layout.
    pub layout: Layout,
    /// Pixel range before normalization.
    pub range: PixelRange,
    /// Per-channel mean (R, G, B), applied after the range scaling.
    #[serde(default)]
    pub mean: Option<[f32; 3]>,
    /// Per-channel standard deviation (R, G, B).
    #[serde(default)]
    pub std: Option<[f32; 3]>,
}

/// Input tensor layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[N, 3, H, W]`.
    Nchw,
    /// `[N, H, W, 3]`.
    Nhwc,
}

/// Pixel value range fed to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelRange {
    /// Pixels divided by 255.
    Unit,
    /// Pixels kept as 0..255 floats.
    Raw255,
}

/// Which parameters a method may compress.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsSpec {
    /// `"conv-linear"` or an explicit list of parameter names.
    pub compressible: Compressible,
}

impl Default for WeightsSpec {
    fn default() -> Self {
        Self {
            compressible: Compressible::Rule(CompressibleRule::ConvLinear),
        }
    }
}

/// The compressible-tensor selection.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Compressible {
    /// A named rule.
    Rule(CompressibleRule),
    /// Explicit parameter names.
    List(Vec<String>),
}

/// Named rules for selecting compressible tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CompressibleRule {
    /// Every parameter named `*.weight` with two or more dimensions (conv kernels and
    /// linear matrices); biases and BatchNorm affine parameters stay FP32.
    #[serde(rename = "conv-linear")]
    ConvLinear,
}

impl Compressible {
    /// Whether the parameter `name` with `shape` is compressible under this selection.
    pub fn selects(&self, name: &str, shape: &[usize]) -> bool {
        match self {
            Compressible::Rule(CompressibleRule::ConvLinear) => {
                name.ends_with(".weight") && shape.len() >= 2
            }
            Compressible::List(names) => names.iter().any(|n| n == name),
        }
    }
}

/// Golden logits for the regression test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSpec {
    /// Safetensors file relative to the data directory.
    pub logits: PathBuf,
    /// Tensor name in that file (`[images, classes]`, f32).
    pub key: String,
    /// Dataset id the logits were computed on.
    pub dataset: String,
}

impl ModelCard {
    /// Reads and checks the card at `path`.
    pub fn load(path: &Path) -> Result<ModelCard> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                TorchError::Missing {
                    what: "model card",
                    path: path.to_path_buf(),
                    hint: String::new(),
                }
            } else {
                TorchError::Io {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })?;
        Self::parse(&text, path)
    }

    /// Parses card text; `path` is used for messages and to resolve `file`.
    pub fn parse(text: &str, path: &Path) -> Result<ModelCard> {
        let mut card: ModelCard = toml::from_str(text).map_err(|e| TorchError::Card {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        card.card_path = path.to_path_buf();
        card.card_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        card.check()?;
        Ok(card)
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| TorchError::Card {
            path: self.card_path.clone(),
            message: m,
        };
        if self.name.is_empty() {
            return Err(bad("field `name` is empty".into()));
        }
        let families: Vec<&str> = crate::data::DATASETS
            .iter()
            .filter_map(|d| d.id.split('-').next())
            .fold(Vec::new(), |mut v, f| {
                if !v.contains(&f) {
                    v.push(f);
                }
                v
            });
        if !families.contains(&self.dataset.as_str()) {
            return Err(bad(format!(
                "field `dataset`: unknown dataset family `{}`; allowed: {}",
                self.dataset,
                families.join(", ")
            )));
        }
        if self.num_classes == 0 {
            return Err(bad("field `num_classes` must be ≥ 1".into()));
        }
        if let Some(std) = self.input.std {
            if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                return Err(bad(format!(
                    "field `input.std` must be finite and > 0, got {std:?}"
                )));
            }
        }
        if self.input.mean.is_some() != self.input.std.is_some() {
            return Err(bad(
                "fields `input.mean` and `input.std` must be given together".into(),
            ));
        }
        if let Compressible::List(l) = &self.weights.compressible {
            if l.is_empty() {
                return Err(bad("field `weights.compressible` lists no tensors".into()));
            }
        }
        Ok(())
    }

    /// The TorchScript file, resolved against the card's directory.
    pub fn model_path(&self) -> PathBuf {
        self.card_dir.join(&self.file)
    }
}

/// Finds the card of model `name` in `models_dir` (`<models_dir>/<name>.toml`).
pub fn find_card(models_dir: &Path, name: &str) -> Result<ModelCard> {
    find_card_in(&[models_dir.to_path_buf()], name)
}

/// Finds the card of model `name` in the first of `dirs` that has `<name>.toml`, so a
/// folder of one's own cards can sit in front of the repository's zoo. The card's
/// `name` must be its file's stem (it is the model's id in every result row).
pub fn find_card_in(dirs: &[PathBuf], name: &str) -> Result<ModelCard> {
    let Some(path) = dirs
        .iter()
        .map(|d| d.join(format!("{name}.toml")))
        .find(|p| p.exists())
    else {
        let mut known: Vec<String> = dirs
            .iter()
            .flat_map(|d| list_cards(d).unwrap_or_default())
            .collect();
        known.sort();
        known.dedup();
        let looked: Vec<String> = dirs
            .iter()
            .skip(1)
            .map(|d| d.join(format!("{name}.toml")).display().to_string())
            .collect();
        let mut hint = String::new();
        if !looked.is_empty() {
            hint.push_str(&format!(" and at `{}`", looked.join("`, `")));
        }
        if !known.is_empty() {
            hint.push_str(&format!("; cards found: {}", known.join(", ")));
        }
        return Err(TorchError::Missing {
            what: "model card",
            path: dirs.first().map_or_else(
                || PathBuf::from(format!("{name}.toml")),
                |d| d.join(format!("{name}.toml")),
            ),
            hint,
        });
    };
    let card = ModelCard::load(&path)?;
    if card.name != name {
        return Err(TorchError::Card {
            path,
            message: format!(
                "field `name` is \"{}\" but the file is {name}.toml: they must agree (the name \
                 is the model's id in results)",
                card.name
            ),
        });
    }
    Ok(card)
}

/// Names of the model cards (`*.toml`) in `models_dir`, sorted.
pub fn list_cards(models_dir: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(models_dir).map_err(|e| TorchError::Io {
        path: models_dir.to_path_buf(),
        source: e,
    })?;
    let mut out: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            (p.extension().and_then(|x| x.to_str()) == Some("toml"))
                .then(|| p.file_stem()?.to_str().map(str::to_string))
                .flatten()
        })
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "m"
file = "export/m.pt"
dataset = "cifar10"
num_classes = 10
[input]
layout = "nchw"
range = "unit"
"#;

    #[test]
    fn parses_minimal_card_with_default_rule() {
        let c = ModelCard::parse(GOOD, Path::new("models/m.toml")).unwrap();
        assert_eq!(c.model_path(), Path::new("models/export/m.pt"));
        assert!(c.weights.compressible.selects("a.weight", &[3, 3]));
        assert!(!c.weights.compressible.selects("a.weight", &[3]));
        assert!(!c.weights.compressible.selects("a.bias", &[3, 3]));
    }

    #[test]
    fn unknown_dataset_family_is_refused() {
        let text = GOOD.replace("\"cifar10\"", "\"imagenet\"");
        let e = ModelCard::parse(&text, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown dataset family `imagenet`; allowed: cifar10"),
            "{e}"
        );
    }

    #[test]
    fn cards_are_searched_in_order_and_their_name_must_match_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (mine, zoo) = (tmp.path().join("mine"), tmp.path().join("zoo"));
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::create_dir_all(&zoo).unwrap();
        std::fs::write(zoo.join("m.toml"), GOOD).unwrap();
        std::fs::write(mine.join("m.toml"), GOOD.replace("m.pt", "mine.pt")).unwrap();
        std::fs::write(
            zoo.join("z.toml"),
            GOOD.replace("name = \"m\"", "name = \"z\""),
        )
        .unwrap();
        let dirs = [mine.clone(), zoo.clone()];
        // A card of one's own comes first; the zoo still provides the rest.
        assert!(find_card_in(&dirs, "m").unwrap().file.ends_with("mine.pt"));
        assert_eq!(find_card_in(&dirs, "z").unwrap().name, "z");
        let e = find_card_in(&dirs, "q").unwrap_err().to_string();
        assert!(
            e.contains("mine/q.toml")
                && e.contains("zoo/q.toml")
                && e.contains("cards found: m, z"),
            "{e}"
        );
        std::fs::write(mine.join("other.toml"), GOOD).unwrap();
        let e = find_card_in(&dirs, "other").unwrap_err().to_string();
        assert!(
            e.contains("field `name` is \"m\" but the file is other.toml"),
            "{e}"
        );
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = format!("{GOOD}colour = \"red\"\n");
        let e = ModelCard::parse(&text, Path::new("models/m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("models/m.toml"), "{e}");
        assert!(e.contains("colour"), "{e}");
        assert!(e.contains("line"), "{e}");
    }

    #[test]
    fn bad_layout_lists_allowed_values() {
        let text = GOOD.replace("\"nchw\"", "\"chw\"");
        let e = ModelCard::parse(&text, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nchw") && e.contains("nhwc"), "{e}");
    }

    #[test]
    fn explicit_list_and_mean_without_std() {
        let text = format!("{GOOD}mean = [0.5, 0.5, 0.5]\n");
        assert!(ModelCard::parse(&text, Path::new("m.toml")).is_err());
        let text = format!("{GOOD}[weights]\ncompressible = [\"fc.weight\"]\n");
        let c = ModelCard::parse(&text, Path::new("m.toml")).unwrap();
        assert!(c.weights.compressible.selects("fc.weight", &[10]));
        assert!(!c.weights.compressible.selects("conv.weight", &[3, 3]));
    }

    #[test]
    fn missing_card_says_where_it_looked() {
        let e = find_card(Path::new("no/such/dir"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no/such/dir/x.toml"), "{e}");
    }
}
