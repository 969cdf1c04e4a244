//! Every baseline keeps the method contract (wb_core::conformance).

mod fp32 {
    wb_core::method_conformance!(wb_baselines::FP32, params = [{}]);
}

mod bf16_cast {
    wb_core::method_conformance!(wb_baselines::BF16_CAST, params = [{}]);
}

mod fp16_cast {
    wb_core::method_conformance!(wb_baselines::FP16_CAST, params = [{}]);
}

mod int8_affine {
    wb_core::method_conformance!(wb_baselines::INT8_AFFINE, params = [{}]);
}

mod kmeans_uniform {
    wb_core::method_conformance!(
        wb_baselines::KMEANS_UNIFORM,
        params = [{}, {"k": 2}, {"k": 128, "max_iter": 1, "tol": 0.0}],
    );
}

mod random_sharing {
    wb_core::method_conformance!(
        wb_baselines::RANDOM_SHARING,
        params = [{}, {"k": 2}, {"k": 256}],
    );
}
