//! Puts libtorch's library directory into the rpath of `weightbench` (and the tests), so
//! the binary runs without `LD_LIBRARY_PATH`, and records libtorch's version.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_WB_TORCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_WB_TORCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // A PyTorch install has torch/lib next to torch/version.py.
        let version_py = Path::new(&dir).join("../version.py");
        if let Ok(text) = std::fs::read_to_string(&version_py) {
            if let Some(v) = text
                .lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string())
            {
                println!("cargo:rustc-env=WEIGHTBENCH_LIBTORCH_VERSION={v}");
            }
        }
        // A standalone libtorch has build-version at its root.
        let bv = Path::new(&dir).join("../build-version");
        if let Ok(v) = std::fs::read_to_string(bv) {
            println!("cargo:rustc-env=WEIGHTBENCH_LIBTORCH_VERSION={}", v.trim());
        }
    }
}
