#!/usr/bin/env bash
# Lints the CloudFormation template with cfn-lint (PyPI), installed once into
# a cached virtualenv the way tests/localstack.sh installs LocalStack. Any
# error, warning or informational finding fails the run.
#   tests/cfn.sh [TEMPLATE...]   (default: packaging/cloudformation/*.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."

CFN_LINT_REQUIREMENTS=('cfn-lint==1.58.0')

cfn_lint_venv() {
  local py key cache
  py=$(command -v python3) || { echo "tests/cfn.sh: python3 not found" >&2; return 1; }
  key=$(printf '%s\n' "$("$py" -V 2>&1)" "${CFN_LINT_REQUIREMENTS[@]}" | sha256sum | cut -c1-12)
  cache="${CWPULSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cwpulse}/cfn-lint-$key"
  if [[ ! -x $cache/bin/cfn-lint || ! -f $cache/.complete ]]; then
    echo "Installing cfn-lint into $cache (once; cached afterwards)" >&2
    rm -rf "$cache"
    "$py" -m venv "$cache" >&2
    "$cache/bin/pip" install --quiet --disable-pip-version-check "${CFN_LINT_REQUIREMENTS[@]}" >&2
    touch "$cache/.complete"
  fi
  echo "$cache"
}

venv=$(cfn_lint_venv)
if [[ $# -eq 0 ]]; then
  set -- packaging/cloudformation/*.yaml
fi
# Informational rules are included and fail the run as well.
"$venv/bin/cfn-lint" --include-checks I --non-zero-exit-code informational --format parseable -- "$@"
echo "cfn-lint $("$venv/bin/cfn-lint" --version | awk '{print $2}'): $* clean" >&2
