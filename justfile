# weightbench — the front door. `just run-experiment` and `just test` do all set-up.
#
# Environment (all optional):
#   WEIGHTBENCH_VENV   Python venv that provides torch/libtorch (default: .venv in the repo)
#   WEIGHTBENCH_DATA   data directory (default: ../shared/data next to the repo)
#   LIBTORCH           use your own libtorch 2.13 instead of the venv's torch
#   CARGO_TARGET_DIR   cargo's build directory (default: target/)

set shell := ["bash", "-euo", "pipefail", "-c"]

root := justfile_directory()
venv := env_var_or_default("WEIGHTBENCH_VENV", root / ".venv")
data := env_var_or_default("WEIGHTBENCH_DATA", root / "../shared/data")
torch_version := "2.13.0"

# Environment for every cargo call: libtorch from the venv's torch (unless LIBTORCH is set).
cargo_env := 'export WEIGHTBENCH_DATA="' + data + '"; export PATH="' + venv + '/bin:$PATH"; export VIRTUAL_ENV="' + venv + '"; if [ -z "${LIBTORCH:-}" ]; then export LIBTORCH_USE_PYTORCH=1; fi'

# List the recipes.
default:
    @just --list

# Create the Python venv with torch 2.13.0 (idempotent; quick when present).
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x "{{venv}}/bin/python" ]; then
        echo "creating venv {{venv}}"
        python3 -m venv "{{venv}}"
    fi
    if ! "{{venv}}/bin/python" -c "import torch, numpy, safetensors, sys; sys.exit(0 if torch.__version__.split('+')[0] == '{{torch_version}}' else 1)" 2>/dev/null; then
        echo "installing torch=={{torch_version}} numpy safetensors into {{venv}} (first time only)"
        "{{venv}}/bin/python" -m pip install --upgrade pip >/dev/null
        "{{venv}}/bin/python" -m pip install "torch=={{torch_version}}" numpy safetensors
    fi
    if [ ! -d "{{data}}/cifar10_test" ]; then
        echo "error: data directory not found: looked at {{data}} (set WEIGHTBENCH_DATA)" >&2
        exit 1
    fi

# Export the reference models to TorchScript and verify them (skips up-to-date ones).
export-models: setup
    "{{venv}}/bin/python" "{{root}}/models/export.py" --data-dir "{{data}}"

# Build the weightbench binary (release).
build: setup
    {{cargo_env}}; cargo build --release -p wb-runner --bin weightbench

# Run an experiment (default: quick), then print where its tables and figures are.
run-experiment name="quick" *flags="": export-models build
    {{cargo_env}}; cargo run --quiet --release -p wb-runner --bin weightbench -- run "{{root}}/experiments/{{name}}.toml" --data-dir "{{data}}" {{flags}}
    @echo "tables and figures: {{root}}/reports/{{name}}/ (tables.md, tables.tex, {{name}}.csv, fig_*.png/.svg)"

# Regenerate the report of an experiment from results/<name>/ only.
report name="quick": build
    {{cargo_env}}; cargo run --quiet --release -p wb-runner --bin weightbench -- report "{{name}}"

# The whole test suite (real models, real images, real libtorch).
test: export-models
    {{cargo_env}}; cargo test --workspace --no-fail-fast

# Run a small experiment and check it against its golden table (CI: golden-ci). Uses the
# test build of the binary, so after `just test` it compiles nothing.
golden name="golden-ci": export-models
    {{cargo_env}}; cargo run --quiet -p wb-runner --bin weightbench -- run "{{root}}/experiments/{{name}}.toml" --data-dir "{{data}}" --no-report --quiet
    {{cargo_env}}; cargo run --quiet -p wb-runner --bin weightbench -- check-golden "{{name}}"

# A real single-node Slurm cluster (Debian's slurmctld, slurmd, munge; needs root) runs
# the job array `weightbench slurm` writes for experiments/slurm-test.toml; its rows must
# equal a single-process run's. Starts and stops its own daemons. Uses the test build of
# the binary (after `just test` it compiles nothing); about 1.5 min on 2 cores.
test-slurm: export-models
    {{cargo_env}}; cargo build --quiet -p wb-runner --bin weightbench
    {{cargo_env}}; bash "{{root}}/scripts/test-slurm.sh" "${CARGO_TARGET_DIR:-{{root}}/target}/debug/weightbench" "{{data}}"

# Formatting and lints, as CI wants them.
lint: setup
    cargo fmt --all -- --check
    {{cargo_env}}; cargo clippy --workspace --all-targets -- -D warnings

# Criterion benchmarks of the kernels.
bench: setup
    {{cargo_env}}; cargo bench -p wb-kernels

# Evaluation throughput: weightbench's libtorch evaluator vs PyTorch's own, side by side.
bench-eval *args: setup
    {{cargo_env}}; cargo run --quiet --release -p wb-torch --example bench_eval -- --python "{{venv}}/bin/python" {{args}}

# Search accelerations off and on, side by side in one run: ws-dse's layer sweep, pruning
# and NSGA-II generations on ResNet20 and ResNet56 (flags: --models, --images,
# --generations, --rounds, --threads, --stage-cache-mb).
bench-search *args: export-models
    {{cargo_env}}; cargo run --quiet --release -p wb-runner --example bench_search -- {{args}}

# Same data, init, iterations and tolerance on both sides; prints times, speed-up and
# centroid differences. Extra flags go to the example (e.g. `--k 4,8,16 --repeat 9`).
# 1-D k-means kernel vs scikit-learn KMeans on the ResNet20 weights (installs scikit-learn if missing).
bench-kmeans *flags="": setup
    #!/usr/bin/env bash
    set -euo pipefail
    if ! "{{venv}}/bin/python" -c "import sklearn" 2>/dev/null; then
        echo "installing scikit-learn into {{venv}} (first time only)"
        "{{venv}}/bin/python" -m pip install scikit-learn
    fi
    {{cargo_env}}; cargo run --quiet --release -p wb-kernels --example kmeans_vs_sklearn -- --python "{{venv}}/bin/python" --weights "{{data}}/cifar10_resnet_akamaster/resnet20.safetensors" {{flags}}

# Run any weightbench command, e.g. `just wb methods`.
wb *args: build
    {{cargo_env}}; cargo run --quiet --release -p wb-runner --bin weightbench -- {{args}}

# Scaffold a new method crate methods/<name>/ (Cargo.toml, README, parameter declaration,
# a compress() that fails until written, a conformance test) and register it: one line in
# the workspace Cargo.toml, one in wb-runner's Cargo.toml, one in the registry.
new-method name:
    #!/usr/bin/env bash
    set -euo pipefail
    name="{{name}}"
    if ! [[ "$name" =~ ^[a-z][a-z0-9]*(-[a-z0-9]+)*$ ]]; then
        echo "error: method name '$name': use lowercase letters, digits and single hyphens (e.g. my-method)" >&2
        exit 1
    fi
    dir="{{root}}/methods/$name"
    if [ -e "$dir" ]; then
        echo "error: $dir already exists" >&2
        exit 1
    fi
    crate="${name//-/_}"
    type="$(echo "$name" | sed -E 's/(^|-)([a-z0-9])/\U\2/g')"
    tpl="{{root}}/harness/wb-core/template"
    mkdir -p "$dir/src" "$dir/tests"
    fill() { sed -e "s/@NAME@/$name/g" -e "s/@CRATE@/$crate/g" -e "s/@TYPE@/$type/g" "$1" > "$2"; }
    fill "$tpl/Cargo.toml.in" "$dir/Cargo.toml"
    fill "$tpl/README.md.in" "$dir/README.md"
    fill "$tpl/lib.rs.in" "$dir/src/lib.rs"
    fill "$tpl/conformance.rs.in" "$dir/tests/conformance.rs"
    # The three lines outside the folder.
    sed -i "/^# new methods: just new-method adds them above this line/i $name = { path = \"methods/$name\" }" "{{root}}/Cargo.toml"
    sed -i "/^# new methods: just new-method adds them above this line/i $name = { workspace = true }" "{{root}}/harness/wb-runner/Cargo.toml"
    sed -i "/new methods: just new-method adds them above this line/i \    v.extend($crate::methods());" "{{root}}/harness/wb-runner/src/registry.rs"
    echo "created methods/$name/ (Cargo.toml, README.md, src/lib.rs, tests/conformance.rs)"
    echo "registered it: Cargo.toml, harness/wb-runner/Cargo.toml, harness/wb-runner/src/registry.rs"
    echo "next: write compress() in methods/$name/src/lib.rs, then 'cargo test -p $name' (the conformance test fails until compress works)"
