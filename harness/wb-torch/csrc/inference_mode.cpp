// libtorch's inference mode for Rust: the tch crate exposes only `no_grad` (grad mode
// off), while PyTorch's own evaluation runs under `torch.inference_mode()`, which also
// skips version-counter bumps and view tracking on every op. The guard is RAII and
// thread-local in C++; the Rust side creates and destroys it on the same thread, in
// LIFO order (see src/infer.rs).
#include <c10/core/InferenceMode.h>

extern "C" void *wb_inference_mode_enter() {
  try {
    return new c10::InferenceMode(true);
  } catch (...) {
    return nullptr;
  }
}

extern "C" void wb_inference_mode_exit(void *guard) {
  delete static_cast<c10::InferenceMode *>(guard);
}
