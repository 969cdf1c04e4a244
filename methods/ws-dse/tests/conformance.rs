//! `ws-dse` keeps the method contract (wb_core::conformance): defaults, a small
//! uniform-seeded search, and the cross-field rule k_min <= k_max.

wb_core::method_conformance!(
    ws_dse::WS_DSE,
    params = [
        {},
        {"init": "uniform", "k_points": 10, "pop_size": 8, "generations": 3, "quality": 0.5},
    ],
    bad = [{"k_min": 64, "k_max": 8}],
    readme = include_str!("../README.md"),
);
