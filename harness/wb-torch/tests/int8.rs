//! The int8 path on real models and images: an int8-affine artifact's weights run on
//! libtorch's quantized kernels, calibrated on images disjoint from those compared,
//! and agree with the FP32 graph on almost every image; misuse is a typed error.

mod common;
use common::{card, data_dir};
use wb_core::WeightSet;
use wb_torch::{dataset, Batches, Int8Model, TorchEvaluator, TorchModel};

/// int8-affine's arithmetic on every compressible tensor: the decoded weights and the
/// per-output-channel scales.
fn int8_affine(w: &WeightSet) -> (WeightSet, Vec<(String, Vec<f32>)>) {
    let mut out = w.clone();
    let mut scales = Vec::new();
    for t in out.tensors.iter_mut().filter(|t| t.compressible) {
        let per = t.data.len() / t.shape[0];
        let mut s = Vec::with_capacity(t.shape[0]);
        for row in t.data.chunks_mut(per) {
            let scale = row.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            for v in row.iter_mut() {
                let q = if scale > 0.0 {
                    (*v / scale).round_ties_even().clamp(-127.0, 127.0)
                } else {
                    0.0
                };
                *v = q * scale;
            }
            s.push(scale);
        }
        scales.push((t.name.clone(), s));
    }
    (out, scales)
}

#[test]
fn int8_path_agrees_with_fp32_on_held_out_images() {
    let all = dataset("cifar10-exact932")
        .unwrap()
        .load(&data_dir())
        .unwrap();
    // Calibrate on the first 200 images, compare on the other 732.
    let calib = all.subset(&(0..200).collect::<Vec<_>>());
    let test = all.subset(&(200..all.len()).collect::<Vec<_>>());
    for name in ["resnet20", "resnet8"] {
        let c = card(name);
        let mut model = TorchModel::load(&c, tch::Device::Cpu).unwrap();
        let (decoded, scales) = int8_affine(model.weights());
        let calib_b = Batches::new(&model, &calib, 100).unwrap();
        let test_b = Batches::new(&model, &test, 250).unwrap();
        let (f32_acc, f32_classes) = TorchEvaluator::new(&mut model, &test_b)
            .predict(&decoded)
            .unwrap();

        let mut m = Int8Model::load(&c, tch::Device::Cpu).unwrap();
        assert!(
            m.forward(&test_b.inputs()[0]).is_err(),
            "{name}: run before calibration"
        );
        m.install(&decoded, &scales).unwrap();
        m.calibrate(&calib_b).unwrap();
        let (acc, classes) = m.predict(&test_b).unwrap();
        assert_eq!(classes.len(), 732);
        let agree = classes
            .iter()
            .zip(&f32_classes)
            .filter(|(a, b)| a == b)
            .count();
        assert!(
            agree * 100 >= 95 * 732,
            "{name}: int8 agrees with FP32 on {agree}/732 images"
        );
        let gap = f32_acc.top1_correct.abs_diff(acc.top1_correct);
        assert!(
            gap <= 15,
            "{name}: int8 {} vs FP32 {} correct",
            acc.top1_correct,
            f32_acc.top1_correct
        );

        // Deterministic: the same calibration gives the same classes.
        m.install(&decoded, &scales).unwrap();
        m.calibrate(&calib_b).unwrap();
        assert_eq!(m.predict(&test_b).unwrap().1, classes, "{name}");

        // The runner's way: BatchNorm statistics from the loaded model, same answers.
        let mut r = Int8Model::for_model(&model).unwrap();
        r.install(&decoded, &scales).unwrap();
        r.calibrate(&calib_b).unwrap();
        assert_eq!(r.predict(&test_b).unwrap().1, classes, "{name}");
    }
}

#[test]
fn int8_path_errors_are_typed() {
    let c = card("resnet20");
    let e = Int8Model::load(&c, tch::Device::Cuda(0)).unwrap_err();
    assert!(e.to_string().contains("CPUs only"), "{e}");
    let mut no_file = c.clone();
    no_file.int8_file = None;
    let e = Int8Model::load(&no_file, tch::Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("int8_file"), "{e}");
    let mut missing = c.clone();
    missing.int8_file = Some("export/nowhere.int8.pt".into());
    let e = Int8Model::load(&missing, tch::Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("nowhere.int8.pt"), "{e}");
    // A weight set without the tensors the program needs.
    let mut m = Int8Model::load(&c, tch::Device::Cpu).unwrap();
    let model = TorchModel::load(&c, tch::Device::Cpu).unwrap();
    let mut w = model.weights().clone();
    w.tensors.retain(|t| !t.name.starts_with("linear."));
    assert!(m.install(&w, &[]).is_err());
}
