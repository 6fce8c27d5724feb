#!/usr/bin/env bash
# Installs LocalStack (PyPI localstack-core, host mode, no Docker) into a cached
# virtualenv and runs it on a free 127.0.0.1 port. Sourced by tests/run.sh:
#   localstack_start   sets CWPULSE_TEST_ENDPOINT and LOCALSTACK_PID
#   localstack_stop
# LocalStack is kept off the network: its proxy variables point at a dead
# loopback port, and it downloads nothing.

LOCALSTACK_REQUIREMENTS=(
  'localstack-core[runtime]==2026.3.0'
  'cbor2<6'
  'pyopenssl==25.3.0'
  'cryptography>=45.0.7,<47'
  'service_identity'
)

# A Python >= 3.13 (LocalStack needs it): $CWPULSE_PYTHON, one on PATH, or pyenv's.
# pyenv shims exist for versions that are not selected, so each candidate is
# asked for its version rather than trusted for its name.
find_python() {
  local c root
  root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  for c in "${CWPULSE_PYTHON:-}" python3.14 python3.13 python3 "$root"/versions/3.1[3-9]*/bin/python3; do
    [[ -n $c ]] || continue
    if "$c" -c 'import sys; sys.exit(sys.version_info < (3, 13))' >/dev/null 2>&1; then
      "$c" -c 'import sys; print(sys.executable)'
      return
    fi
  done
  echo "tests/localstack.sh: no Python >= 3.13 found (set CWPULSE_PYTHON, or install one with pyenv)" >&2
  return 1
}

localstack_venv() {
  local py key cache
  py=$(find_python) || return 1
  key=$(printf '%s\n' "$("$py" -V 2>&1)" "${LOCALSTACK_REQUIREMENTS[@]}" | sha256sum | cut -c1-12)
  cache="${CWPULSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cwpulse}/localstack-$key"
  if [[ ! -x $cache/bin/python || ! -f $cache/.complete ]]; then
    echo "Installing LocalStack into $cache (once; cached afterwards)" >&2
    rm -rf "$cache"
    "$py" -m venv "$cache" >&2 || return 1
    "$cache/bin/pip" install --quiet --disable-pip-version-check "${LOCALSTACK_REQUIREMENTS[@]}" >&2 || return 1
    touch "$cache/.complete"
  fi
  echo "$cache"
}

free_port() {
  "$1" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

localstack_start() {
  local venv port dir
  venv=$(localstack_venv) || return 1
  port=$(free_port "$venv/bin/python")
  dir=$(mktemp -d "${TMPDIR:-/tmp}/cwpulse-localstack.XXXXXX")
  mkdir -p "$dir/fs" "$dir/home" "$dir/tmp"
  LOCALSTACK_DIR=$dir
  (
    cd "$dir"
    exec env -i PATH="$PATH" LANG=C.UTF-8 \
      GATEWAY_LISTEN="127.0.0.1:$port" \
      SERVICES=cloudwatch,sns,sqs \
      EAGER_SERVICE_LOADING=1 DISABLE_EVENTS=1 \
      SKIP_SSL_CERT_DOWNLOAD=1 SKIP_INFRA_DOWNLOADS=1 \
      DNS_ADDRESS=0 PERSISTENCE=0 \
      FILESYSTEM_ROOT="$dir/fs" HOME="$dir/home" TMPDIR="$dir/tmp" \
      HTTP_PROXY="http://127.0.0.1:9" HTTPS_PROXY="http://127.0.0.1:9" \
      http_proxy="http://127.0.0.1:9" https_proxy="http://127.0.0.1:9" \
      NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost \
      "$venv/bin/python" -m localstack.runtime.main
  ) >"$dir/localstack.log" 2>&1 &
  LOCALSTACK_PID=$!
  local i
  for ((i = 0; i < 240; i++)); do
    if grep -q '^Ready\.' "$dir/localstack.log" 2>/dev/null; then
      export CWPULSE_TEST_ENDPOINT="http://127.0.0.1:$port"
      echo "LocalStack ready at $CWPULSE_TEST_ENDPOINT (pid $LOCALSTACK_PID)" >&2
      return 0
    fi
    if ! kill -0 "$LOCALSTACK_PID" 2>/dev/null; then
      break
    fi
    sleep 0.5
  done
  echo "LocalStack did not start; its log:" >&2
  tail -n 50 "$dir/localstack.log" >&2
  return 1
}

localstack_stop() {
  if [[ -n ${LOCALSTACK_PID:-} ]]; then
    kill "$LOCALSTACK_PID" 2>/dev/null || true
    wait "$LOCALSTACK_PID" 2>/dev/null || true
    LOCALSTACK_PID=
  fi
  [[ -n ${LOCALSTACK_DIR:-} ]] && rm -rf "$LOCALSTACK_DIR"
  return 0
}
