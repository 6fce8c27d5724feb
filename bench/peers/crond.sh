#!/usr/bin/env bash
# The do-it-yourself peer's scheduler: what a crontab line `* * * * * job.sh`
# does, at any period (BENCH_MINUTE seconds, 60 by default). It starts one
# bench/peers/cron_job.sh per period boundary and reaps it, so this process's
# children CPU time (cutime+cstime) is the job's whole cost: bash, sleep,
# curl and the AWS CLI.
set -u
here=$(cd "$(dirname "$0")" && pwd)
period=${BENCH_MINUTE:-60}

stop() {
  local p
  for p in $(jobs -p); do kill "$p" 2>/dev/null; done
  wait
  exit 0
}
trap stop TERM INT

while :; do
  now_us=${EPOCHREALTIME/./}
  next=$((now_us / 1000000 / period * period + period))
  left_us=$((next * 1000000 - now_us))
  # Sleep in the background and wait for it, so TERM is handled at once.
  sleep "$((left_us / 1000000)).$(printf '%06d' $((left_us % 1000000)))" &
  wait $!
  bash "$here/cron_job.sh" "$next" &
done
