#!/usr/bin/env bash
# One period of the do-it-yourself cron job, as a careful user would write it:
# CPU from /proc/stat every second with bash built-ins, the health route every
# 10 s with curl, ELB-style thresholds (2/2) kept in a state file, then one
# `aws cloudwatch put-metric-data` with the same datums cwpulse sends
# (CPUUtilization statistic set, HealthCheckFailed, HealthyHostCount and
# UnHealthyHostCount, under InstanceId and under AutoScalingGroupName).
#
# Usage: cron_job.sh PERIOD_START_EPOCH_SECONDS
# Environment: BENCH_MINUTE, BENCH_NAMESPACE, BENCH_INSTANCE_ID, BENCH_ASG,
# BENCH_HEALTH_URL, BENCH_STATE_DIR, AWS_ENDPOINT_URL (LocalStack).
set -u
export TZ=UTC
start=$1
period=${BENCH_MINUTE:-60}
end=$((start + period))
probe_every=${BENCH_PROBE_INTERVAL:-10}
state=${BENCH_STATE_DIR:?}/health
resolution=60
((period < 60)) && resolution=1

read_cpu() {
  local _c u n s i w q sq st _rest
  read -r _c u n s i w q sq st _rest </proc/stat
  total=$((u + n + s + i + w + q + sq + st))
  idle=$((i + w))
}

fails=0 passes=0 health=healthy
[[ -f $state ]] && read -r fails passes health <"$state"

read_cpu
prev_total=$total prev_idle=$idle
count=0 sum=0 min=10000 max=0 probes=0 failed=0
next_probe=$start
while :; do
  printf -v now '%(%s)T' -1
  ((now >= end)) && break
  if ((now >= next_probe)); then
    next_probe=$((next_probe + probe_every))
    probes=$((probes + 1))
    if curl -fsS -m 2 -o /dev/null "$BENCH_HEALTH_URL" 2>/dev/null; then
      passes=$((passes + 1)) fails=0
      ((passes >= 2)) && health=healthy
    else
      failed=$((failed + 1)) fails=$((fails + 1)) passes=0
      ((fails >= 2)) && health=unhealthy
    fi
  fi
  sleep 1
  read_cpu
  dt=$((total - prev_total)) di=$((idle - prev_idle))
  prev_total=$total prev_idle=$idle
  ((dt > 0)) || continue
  busy=$((10000 * (dt - di) / dt)) # hundredths of a percent
  count=$((count + 1)) sum=$((sum + busy))
  ((busy < min)) && min=$busy
  ((busy > max)) && max=$busy
done
echo "$fails $passes $health" >"$state"

dec() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }
printf -v ts '%(%Y-%m-%dT%H:%M:%SZ)T' "$start"
unhealthy=0
[[ $health == unhealthy ]] && unhealthy=1
data=
for dims in "Name=InstanceId,Value=$BENCH_INSTANCE_ID" "Name=AutoScalingGroupName,Value=$BENCH_ASG"; do
  d=${dims#Name=}
  dim="{\"Name\":\"${d%%,*}\",\"Value\":\"${d#*Value=}\"}"
  if ((count > 0)); then
    data+="{\"MetricName\":\"CPUUtilization\",\"Dimensions\":[$dim],\"Timestamp\":\"$ts\",\"Unit\":\"Percent\",\"StorageResolution\":$resolution,\"StatisticValues\":{\"SampleCount\":$count,\"Sum\":$(dec $sum),\"Minimum\":$(dec $min),\"Maximum\":$(dec $max)}},"
  fi
  if ((probes > 0)); then
    data+="{\"MetricName\":\"HealthCheckFailed\",\"Dimensions\":[$dim,{\"Name\":\"HealthCheck\",\"Value\":\"app\"}],\"Timestamp\":\"$ts\",\"Unit\":\"Count\",\"StorageResolution\":$resolution,\"StatisticValues\":{\"SampleCount\":$probes,\"Sum\":$failed,\"Minimum\":$((failed == probes ? 1 : 0)),\"Maximum\":$((failed > 0 ? 1 : 0))}},"
  fi
  data+="{\"MetricName\":\"HealthyHostCount\",\"Dimensions\":[$dim],\"Timestamp\":\"$ts\",\"Unit\":\"Count\",\"StorageResolution\":$resolution,\"Value\":$((1 - unhealthy))},"
  data+="{\"MetricName\":\"UnHealthyHostCount\",\"Dimensions\":[$dim],\"Timestamp\":\"$ts\",\"Unit\":\"Count\",\"StorageResolution\":$resolution,\"Value\":$unhealthy},"
done
exec aws cloudwatch put-metric-data --endpoint-url "$AWS_ENDPOINT_URL" \
  --namespace "$BENCH_NAMESPACE" --metric-data "[${data%,}]"
