//! Puts libtorch's library directory into the rpath of this crate's tests, so they run
//! without `LD_LIBRARY_PATH`. torch-sys (`links = "tch"`) reports the directory it linked
//! against as `DEP_TCH_LIBTORCH_LIB`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
