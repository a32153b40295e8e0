#!/usr/bin/env bash
# Runs the whole test suite: unit, integration, property and doc tests, the
# loom models, the planner's unit tests, and a compile check of the examples
# and benchmarks. It needs only cargo: every dependency comes from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust from https://rustup.rs and rerun" >&2
    exit 1
fi

echo "== cargo test (unit, integration, property and doc tests)"
cargo test --all-features

echo "== the planner's unit tests (examples are only built by cargo test)"
cargo test --all-features --example plan

echo "== loom models of the lock-free state"
RUSTFLAGS="--cfg tollgate_loom" CARGO_TARGET_DIR=target/loom \
    cargo test --release --lib loom

echo "== examples and benchmarks compile"
cargo build --all-features --examples
cargo bench --all-features --no-run
