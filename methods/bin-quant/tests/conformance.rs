//! `bin-quant` keeps the method contract (wb_core::conformance): defaults, uniform levels
//! with the decrement schedule and bins by layer count, one bin, a bin per layer with a
//! zero tolerance, the gradient readings, and the cross-field rule `min_levels ≤ init_levels`.

wb_core::method_conformance!(
    bin_quant::INFO,
    params = [
        {},
        {"levels": "uniform", "schedule": "decrement", "bin_by": "layers", "init_levels": 8},
        {"bins": 1, "init_levels": 16, "min_levels": 1},
        {"bins": 1024, "tolerance_pp": 0.0, "probe_levels": 1},
        {"sensitivity": "snip"},
        {"sensitivity": "fisher", "calibration_images": 0, "calibration_batch": 16},
    ],
    bad = [{"init_levels": 4, "min_levels": 8}],
    readme = include_str!("../README.md"),
);
