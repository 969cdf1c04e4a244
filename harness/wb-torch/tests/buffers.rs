//! Non-finite buffers and logits: a model whose BatchNorm `running_var` holds a NaN is
//! refused at load, naming the tensor, and an evaluation that meets a NaN or infinite
//! logit fails instead of ranking it (real models, real libtorch).

mod common;

use std::io::{Read, Write};
use std::path::Path;
use wb_torch::storages::{self, Scan};
use wb_torch::{dataset, Batches, TorchEvaluator, TorchModel};

/// Copies the TorchScript archive `src` to `dst` with value 0 of the storage entry
/// `poisoned` set to `value` (every entry stored, 64-byte aligned like torch.jit.save).
fn copy_with(src: &Path, dst: &Path, poisoned: &str, value: f32) {
    let mut zin = zip::ZipArchive::new(std::fs::File::open(src).unwrap()).unwrap();
    let mut zout = zip::ZipWriter::new(std::fs::File::create(dst).unwrap());
    let opts =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..zin.len() {
        let mut e = zin.by_index(i).unwrap();
        let name = e.name().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        if name == poisoned {
            bytes[..4].copy_from_slice(&value.to_le_bytes());
        }
        zout.start_file_aligned(name, opts, 64).unwrap();
        zout.write_all(&bytes).unwrap();
    }
    zout.finish().unwrap();
}

#[test]
fn every_zoo_model_scans_finite_with_its_buffers() {
    for name in ["resnet20", "resnet56", "resnet8"] {
        let card = common::card(name);
        let model = TorchModel::load(&card, wb_torch::Device::Cpu).unwrap();
        let params = model.weights().tensors.len();
        match storages::scan(&card.model_path()) {
            // BatchNorm adds running_mean and running_var beside its two parameters.
            Scan::Finite { storages } => assert!(storages > params, "{name}: {storages}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn nan_running_var_is_refused_at_load_and_names_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let mut card = common::card("resnet20");
    let src = card.model_path();
    let list = storages::float_storages_of(&src).unwrap();
    let (_, entry) = list
        .iter()
        .find(|(attr, _)| attr == "running_var")
        .expect("ResNet20 has BatchNorm buffers");
    let poisoned = tmp.path().join("resnet20-nan-var.pt");
    copy_with(&src, &poisoned, entry, f32::NAN);
    card.file = poisoned.clone();
    let e = TorchModel::load(&card, wb_torch::Device::Cpu).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("`running_var`") && msg.contains("NaN"),
        "{msg}"
    );

    // The unchanged copy loads: the rewrite itself is not what is refused.
    let clean = tmp.path().join("resnet20-copy.pt");
    copy_with(&src, &clean, entry, 1.0);
    card.file = clean;
    TorchModel::load(&card, wb_torch::Device::Cpu).unwrap();
}

#[test]
fn non_finite_logits_fail_the_evaluation() {
    let card = common::card("resnet20");
    let mut model = TorchModel::load(&card, wb_torch::Device::Cpu).unwrap();
    let spec = dataset("cifar10-exact932").unwrap();
    let all = spec.load(&common::data_dir()).unwrap();
    let images = all.subset(&(0..100).collect::<Vec<_>>());
    let batches = Batches::new(&model, &images, 50).unwrap();
    let mut w = model.weights().clone();
    let last = w.tensors.len() - 2;
    // An infinite classifier weight makes every logit of its class ±inf or NaN.
    w.tensors[last].data[0] = f32::INFINITY;
    let mut ev = TorchEvaluator::new(&mut model, &batches);
    let e = wb_core::Evaluator::evaluate(&mut ev, &w).unwrap_err();
    assert!(e.to_string().contains("non-finite logits"), "{e}");
    let ok = wb_core::Evaluator::evaluate(&mut ev, &model_weights(&card)).unwrap();
    assert_eq!(ok.total, 100);
}

fn model_weights(card: &wb_torch::ModelCard) -> wb_core::WeightSet {
    TorchModel::load(card, wb_torch::Device::Cpu)
        .unwrap()
        .weights()
        .clone()
}
