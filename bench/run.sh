#!/usr/bin/env bash
# The footprint / accuracy / detection benchmark of cwpulse against the
# do-it-yourself peers, on one machine, against LocalStack on loopback.
# BENCHMARKS.md explains what is measured and how to read the table.
#
#   bench/run.sh            full run (about 35 minutes)
#   bench/run.sh --quick    smoke test of the whole script (about 7 minutes)
#
# Knobs (environment): BENCH_REPEATS, BENCH_MINUTE (seconds per "minute"),
# BENCH_IDLE_MINUTES, BENCH_DETECT_TRIALS, BENCH_SCALE (e.g. 1,10,100),
# BENCH_SCALE_WINDOWS, BENCH_DRAIN (backlog hours, e.g. 1,24),
# BENCH_PHASES (footprint,detect,scale,drain), BENCH_OUT, BENCH_CWPULSE (a
# prebuilt binary to measure instead of building this tree).
# Nothing leaves 127.0.0.0/8: every AWS client points at LocalStack, IMDS is
# disabled and the credentials are fake.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=0
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $arg" >&2; exit 64 ;;
  esac
done
if ((quick)); then
  : "${BENCH_REPEATS:=1}" "${BENCH_MINUTE:=30}" "${BENCH_IDLE_MINUTES:=1}"
  : "${BENCH_DETECT_TRIALS:=1}" "${BENCH_SCALE:=1,100}" "${BENCH_SCALE_WINDOWS:=2}"
  : "${BENCH_DRAIN:=1}"
else
  : "${BENCH_REPEATS:=3}" "${BENCH_MINUTE:=60}" "${BENCH_IDLE_MINUTES:=2}"
  : "${BENCH_DETECT_TRIALS:=3}" "${BENCH_SCALE:=1,10,100}" "${BENCH_SCALE_WINDOWS:=6}"
  : "${BENCH_DRAIN:=1,24}"
fi
: "${BENCH_PHASES:=footprint,detect,scale,drain}"
: "${BENCH_OUT:=$root/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}"

# Peer versions, pinned so a rerun compares the same programs.
AWSCLI_REQ=awscli==1.46.2
BOTO3_REQ=boto3==1.44.5

step() { printf '\n==> %s\n' "$*" >&2; }

# Debian's packages for the reference exporter and the load generator.
need_apt=()
command -v stress >/dev/null || need_apt+=(stress)
[[ -x /usr/bin/prometheus-node-exporter ]] || need_apt+=(prometheus-node-exporter)
if ((${#need_apt[@]})); then
  step "apt-get install ${need_apt[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "bench/run.sh: needs ${need_apt[*]} (apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# One virtualenv per peer, cached, so each peer's installed size is its own.
bench_python() {
  local c
  for c in "${BENCH_PYTHON:-}" python3; do
    [[ -n $c ]] && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null && {
      "$c" -c 'import sys; print(sys.executable)'
      return
    }
  done
  echo "bench/run.sh: no python3 >= 3.9" >&2
  return 1
}
peer_venv() { # NAME REQUIREMENT -> prints the venv path
  local py key dir
  py=$(bench_python) || return 1
  key=$(printf '%s\n' "$("$py" -V 2>&1)" "$2" | sha256sum | cut -c1-12)
  dir="${CWPULSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cwpulse}/bench-$1-$key"
  if [[ ! -f $dir/.complete ]]; then
    echo "Installing $2 into $dir (once; cached afterwards)" >&2
    rm -rf "$dir"
    "$py" -m venv "$dir" >&2
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$2" >&2
    touch "$dir/.complete"
  fi
  echo "$dir"
}
# What the package adds to a Python install: site-packages without pip and
# setuptools (the interpreter itself is on the AMI either way).
site_size() {
  local sp
  sp=$(echo "$1"/lib/python3*/site-packages)
  du -sb --exclude='pip' --exclude='pip-*' --exclude='setuptools' --exclude='setuptools-*' \
    --exclude='_distutils_hack' --exclude='pkg_resources' --exclude='distutils-precedence.pth' \
    "$sp" | cut -f1
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

step "peers: $AWSCLI_REQ, $BOTO3_REQ"
awscli_venv=$(peer_venv awscli "$AWSCLI_REQ")
boto3_venv=$(peer_venv boto3 "$BOTO3_REQ")

if [[ -n ${BENCH_CWPULSE:-} ]]; then
  bin=$(realpath "$BENCH_CWPULSE") # a prebuilt binary, e.g. to compare two builds
else
  step "cargo build --release"
  cargo build --release --quiet
  bin=$root/target/release/cwpulse
fi

ne_kib=$(dpkg-query -W -f='${Installed-Size}' prometheus-node-exporter 2>/dev/null || echo 0)
sizes=$(printf '{"cwpulse": "%s", "boto3": "%s", "cron+awscli": "%s", "node_exporter": "%s"}' \
  "$(mib "$(stat -c %s "$bin")")" \
  "$(mib "$(($(site_size "$boto3_venv") + $(stat -c %s bench/peers/boto3_daemon.py)))")" \
  "$(mib "$(($(site_size "$awscli_venv") + $(stat -c %s bench/peers/cron_job.sh)))")" \
  "$(mib $((ne_kib * 1024)))")
echo "installed sizes: $sizes" >&2

. tests/localstack.sh
trap localstack_stop EXIT
step "LocalStack"
localstack_start

# A hard cap on the whole run, from the knobs: footprint repeats, detection
# trials (at most about 5 minutes each), scale runs, backlog drains (each
# capped by the harness at 60 s + 0.5 s per window), plus slack.
n_scale=$(tr ',' '\n' <<<"$BENCH_SCALE" | grep -c .)
drain_s=0
for h in ${BENCH_DRAIN//,/ }; do drain_s=$((drain_s + 80 + h * 30)); done
cap=$((BENCH_REPEATS * (BENCH_IDLE_MINUTES + 5) * BENCH_MINUTE + BENCH_DETECT_TRIALS * 330 \
  + n_scale * (BENCH_SCALE_WINDOWS * 10 + 40) + drain_s + 300))
step "bench (results in $BENCH_OUT; capped at ${cap}s)"
mkdir -p "$BENCH_OUT"
{
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet -- src Cargo.toml || echo '+dirty')"
  echo "cwpulse: $("$bin" --version) ($bin, $(stat -c %s "$bin") bytes)"
  echo "kernel: $(uname -r), cpus: $(nproc)"
  echo "peers: $AWSCLI_REQ, $BOTO3_REQ, $(dpkg-query -W -f='prometheus-node-exporter ${Version}' prometheus-node-exporter 2>/dev/null)"
} >"$BENCH_OUT/env.txt"
cc -O2 -o "$BENCH_OUT/floor" bench/floor.c
timeout --signal=TERM --kill-after=30 "$cap" \
  "$boto3_venv/bin/python" bench/harness.py \
  --out "$BENCH_OUT" --endpoint "$CWPULSE_TEST_ENDPOINT" --cwpulse "$bin" \
  --awscli-venv "$awscli_venv" --boto3-venv "$boto3_venv" \
  --node-exporter /usr/bin/prometheus-node-exporter --floor "$BENCH_OUT/floor" \
  --minute "$BENCH_MINUTE" --idle-minutes "$BENCH_IDLE_MINUTES" --repeats "$BENCH_REPEATS" \
  --detect-trials "$BENCH_DETECT_TRIALS" --scale "$BENCH_SCALE" \
  --scale-windows "$BENCH_SCALE_WINDOWS" --drain "$BENCH_DRAIN" --phases "$BENCH_PHASES" --sizes "$sizes"
echo >&2
cat "$BENCH_OUT/env.txt" >&2
echo "Results: $BENCH_OUT/summary.md, $BENCH_OUT/results.json" >&2
