//! Gradient statistics on the real ResNet20 and CIFAR-10 images: the gradient agrees
//! with central finite differences of the loss, is deterministic, does not depend on the
//! batching of its mean, and leaves the model's outputs (BatchNorm statistics) alone.

mod common;
use common::{card, data_dir};

use wb_core::{GradientConfig, GradientSource, Gradients, NoProgress, WeightSet};
use wb_torch::{dataset, Images, Split, TorchGradients, TorchModel};

/// A seeded, class-balanced handful of test images (the search split's draw).
fn pool(n: usize) -> Images {
    let all = dataset("cifar10-jpeg75")
        .unwrap()
        .load(&data_dir())
        .unwrap();
    let idx = Split::Search { images: n, seed: 0 }
        .indices(&all.labels)
        .unwrap();
    all.subset(&idx)
}

/// Mean cross-entropy of `weights` on `images`, from the model's logits, in float64.
fn loss(model: &mut TorchModel, weights: &WeightSet, images: &Images) -> f64 {
    model.install(weights).unwrap();
    let classes = model.card().num_classes;
    let logits = model.logits(images, 500).unwrap();
    let total: f64 = logits
        .chunks(classes)
        .zip(&images.labels)
        .map(|(row, &y)| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let lse = max
                + row
                    .iter()
                    .map(|&v| (v as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            lse - row[y as usize] as f64
        })
        .sum();
    total / images.len() as f64
}

fn cfg(batch: usize) -> GradientConfig {
    GradientConfig {
        images: 0,
        batch,
        seed: 0,
    }
}

/// The positions of the `k` largest |mean gradient| entries of compressible tensor `t`.
fn largest(g: &Gradients, t: usize, k: usize) -> Vec<usize> {
    let m = &g.tensors[t].mean;
    let mut idx: Vec<usize> = (0..m.len()).collect();
    idx.sort_by(|&a, &b| m[b].abs().total_cmp(&m[a].abs()));
    idx.truncate(k);
    idx
}

#[test]
fn gradients_match_finite_differences_on_resnet20() {
    let card = card("resnet20");
    let images = pool(40);
    let mut model = TorchModel::load(&card, tch::Device::Cpu).unwrap();
    let w = model.weights().clone();
    let mut src = TorchGradients::new(
        TorchModel::load(&card, tch::Device::Cpu).unwrap(),
        images.clone(),
    );
    let g = src.gradients(&w, &cfg(40), &NoProgress).unwrap();
    assert_eq!((g.images, g.batches), (40, 1));
    let l0 = loss(&mut model, &w, &images);
    assert!(
        (g.loss - l0).abs() < 1e-4 * l0.max(1.0),
        "{} vs {l0}",
        g.loss
    );

    let comp: Vec<usize> = (0..w.tensors.len())
        .filter(|&i| w.tensors[i].compressible)
        .collect();
    // The stem, a middle convolution and the classifier.
    let picks = [0, comp.len() / 2, comp.len() - 1];
    let mut worst = 0.0f64;
    for &c in &picks {
        for j in largest(&g, c, 3) {
            let h = 2.5e-4f32;
            let (mut plus, mut minus) = (w.clone(), w.clone());
            plus.tensors[comp[c]].data[j] += h;
            minus.tensors[comp[c]].data[j] -= h;
            let fd = (loss(&mut model, &plus, &images) - loss(&mut model, &minus, &images))
                / (2.0 * h as f64);
            let an = g.tensors[c].mean[j] as f64;
            let rel = (fd - an).abs() / an.abs().max(1e-6);
            eprintln!(
                "{} [{j}]: autograd {an:.6e}, finite difference {fd:.6e}, rel {rel:.2e}",
                g.tensors[c].name
            );
            worst = worst.max(rel);
        }
    }
    assert!(worst < 0.02, "worst relative error {worst}");
}

#[test]
fn gradients_are_deterministic_and_batching_keeps_the_mean() {
    let card = card("resnet20");
    let images = pool(40);
    let mut src = TorchGradients::new(
        TorchModel::load(&card, tch::Device::Cpu).unwrap(),
        images.clone(),
    );
    let w = TorchModel::load(&card, tch::Device::Cpu)
        .unwrap()
        .weights()
        .clone();
    let a = src.gradients(&w, &cfg(8), &NoProgress).unwrap();
    let b = src.gradients(&w, &cfg(8), &NoProgress).unwrap();
    assert_eq!(a, b, "same weights, images and batch: same statistics");
    assert_eq!((a.batches, src.calls()), (5, 2));
    let whole = src.gradients(&w, &cfg(40), &NoProgress).unwrap();
    let mut max_diff = 0.0f32;
    let mut max_abs = 0.0f32;
    for (x, y) in a.tensors.iter().zip(&whole.tensors) {
        for (p, q) in x.mean.iter().zip(&y.mean) {
            max_diff = max_diff.max((p - q).abs());
            max_abs = max_abs.max(q.abs());
        }
        // Batch gradients vary around their mean: E|g_b| ≥ |E g_b| for every weight.
        for (m, abs) in x.mean.iter().zip(&x.mean_abs) {
            assert!(*abs + 1e-7 >= m.abs());
        }
    }
    assert!(max_diff <= 1e-4 * max_abs, "{max_diff} of {max_abs}");

    // A seeded draw of fewer images is reproducible and changes with the seed.
    let draw = |seed| GradientConfig {
        images: 20,
        batch: 10,
        seed,
    };
    let s0 = src.gradients(&w, &draw(0), &NoProgress).unwrap();
    assert_eq!(s0, src.gradients(&w, &draw(0), &NoProgress).unwrap());
    assert_ne!(s0, src.gradients(&w, &draw(1), &NoProgress).unwrap());
    assert_eq!(s0.images, 20);
}

#[test]
fn gradients_leave_the_model_in_evaluation_mode() {
    let card = card("resnet20");
    let images = pool(20);
    let model = TorchModel::load(&card, tch::Device::Cpu).unwrap();
    let w = model.weights().clone();
    let before = model.logits(&images, 20).unwrap();
    let mut src = TorchGradients::new(model, images.clone());
    src.gradients(&w, &cfg(5), &NoProgress).unwrap();
    // Same model instance: a drift of BatchNorm statistics would change the logits.
    let m = src.model().unwrap();
    m.install(&w).unwrap();
    assert_eq!(before, m.logits(&images, 20).unwrap());
    let err = src
        .gradients(
            &w,
            &GradientConfig {
                images: 0,
                batch: 0,
                seed: 0,
            },
            &NoProgress,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch"), "{err}");
}
