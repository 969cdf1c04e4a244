//! 1. Puts libtorch's library directory into the rpath of this crate's tests, so they
//!    run without `LD_LIBRARY_PATH`. torch-sys (`links = "tch"`) reports the directory
//!    it linked against as `DEP_TCH_LIBTORCH_LIB`.
//!    It also passes the directory on to dependents as `DEP_WB_TORCH_LIBTORCH_LIB`.
//! 2. Compiles the inference-mode shim (`csrc/inference_mode.cpp`) against the headers
//!    of that same libtorch (`<lib>/../include`) and sets `cfg(wb_inference_mode)`.
//!    Without the headers the crate falls back to `no_grad` and says so in a warning.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=csrc/inference_mode.cpp");
    println!("cargo:rustc-check-cfg=cfg(wb_inference_mode)");
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=torch-sys did not report libtorch's directory: evaluation runs under no_grad, not inference mode");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    // Dependents read it as DEP_WB_TORCH_LIBTORCH_LIB (the `links` key).
    println!("cargo:libtorch_lib={dir}");
    let include = PathBuf::from(&dir).join("../include");
    if !include.join("c10/core/InferenceMode.h").is_file() {
        println!(
            "cargo:warning=no libtorch headers under {}: evaluation runs under no_grad, not inference mode",
            include.display()
        );
        return;
    }
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .include(&include)
        .file("csrc/inference_mode.cpp")
        .warnings(false)
        .compile("wb_inference_mode");
    // The shim calls into libc10 (thread-local dispatch state).
    println!("cargo:rustc-link-search=native={dir}");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-cfg=wb_inference_mode");
}
