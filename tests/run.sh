#!/usr/bin/env bash
# The whole test suite, from a fresh machine: formatting and lints, unit
# tests, integration tests of the real binary against LocalStack (installed
# and started here), and the packaging tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/localstack.sh

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --all-targets -- -D warnings

step "LocalStack"
trap localstack_stop EXIT
localstack_start

step "cargo test"
cargo test --quiet --no-fail-fast
step "cfn-lint"; tests/cfn.sh

if [[ -x tests/packaging/run.sh ]]; then
  step "packaging tests"
  tests/packaging/run.sh
fi
