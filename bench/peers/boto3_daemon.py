"""The long-running do-it-yourself peer: one Python process with boto3.

The same job as cwpulse, written the way a careful user would: CPU from
/proc/stat every second (aligned to whole seconds), the health route every
10 s with urllib, ELB-style thresholds (2/2), and one PutMetricData per period
(BENCH_MINUTE seconds) with the same datums cwpulse sends, under InstanceId
and under AutoScalingGroupName, stamped with the period start.

Environment: BENCH_MINUTE, BENCH_NAMESPACE, BENCH_INSTANCE_ID, BENCH_ASG,
BENCH_HEALTH_URL, AWS_ENDPOINT_URL (LocalStack), AWS_REGION.
"""

import datetime
import os
import time
import urllib.request

import boto3

PERIOD = int(os.environ.get("BENCH_MINUTE", "60"))
PROBE_EVERY = int(os.environ.get("BENCH_PROBE_INTERVAL", "10"))
NAMESPACE = os.environ["BENCH_NAMESPACE"]
URL = os.environ["BENCH_HEALTH_URL"]
DIMENSION_SETS = [
    [{"Name": "InstanceId", "Value": os.environ["BENCH_INSTANCE_ID"]}],
    [{"Name": "AutoScalingGroupName", "Value": os.environ["BENCH_ASG"]}],
]
RESOLUTION = 60 if PERIOD >= 60 else 1


def read_cpu():
    with open("/proc/stat", "rb") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v), v[3] + v[4]


def probe():
    try:
        with urllib.request.urlopen(URL, timeout=2) as r:
            r.read()
            return 200 <= r.status < 400
    except Exception:
        return False


class Window:
    def __init__(self, start):
        self.start = start
        self.cpu = []
        self.probes = []


def datums(w, unhealthy):
    ts = datetime.datetime.fromtimestamp(w.start, datetime.timezone.utc)
    out = []
    for dims in DIMENSION_SETS:
        common = {"Timestamp": ts, "StorageResolution": RESOLUTION}
        if w.cpu:
            out.append({"MetricName": "CPUUtilization", "Dimensions": dims, "Unit": "Percent",
                        "StatisticValues": {"SampleCount": len(w.cpu), "Sum": sum(w.cpu),
                                            "Minimum": min(w.cpu), "Maximum": max(w.cpu)},
                        **common})
        if w.probes:
            out.append({"MetricName": "HealthCheckFailed",
                        "Dimensions": dims + [{"Name": "HealthCheck", "Value": "app"}],
                        "Unit": "Count",
                        "StatisticValues": {"SampleCount": len(w.probes), "Sum": sum(w.probes),
                                            "Minimum": min(w.probes), "Maximum": max(w.probes)},
                        **common})
        out.append({"MetricName": "HealthyHostCount", "Dimensions": dims, "Unit": "Count",
                    "Value": 0.0 if unhealthy else 1.0, **common})
        out.append({"MetricName": "UnHealthyHostCount", "Dimensions": dims, "Unit": "Count",
                    "Value": 1.0 if unhealthy else 0.0, **common})
    return out


def main():
    cw = boto3.client("cloudwatch", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    now = time.time()
    window = Window(int(now) // PERIOD * PERIOD)
    next_probe = now
    fails = passes = 0
    unhealthy = False
    prev = read_cpu()
    tick = int(now) + 1
    while True:
        time.sleep(max(0.0, tick - time.time()))
        t = tick  # this sample covers [t - 1, t]
        tick += 1
        cur = read_cpu()
        dt, di = cur[0] - prev[0], cur[1] - prev[1]
        prev = cur
        if dt > 0:
            window.cpu.append(100.0 * (dt - di) / dt)
        if t >= window.start + PERIOD:
            try:
                cw.put_metric_data(Namespace=NAMESPACE, MetricData=datums(window, unhealthy))
            except Exception as e:  # keep going, like a daemon should
                print(f"put_metric_data failed: {e}", flush=True)
            window = Window(t // PERIOD * PERIOD)
        if time.time() >= next_probe:
            next_probe += PROBE_EVERY
            ok = probe()
            window.probes.append(0.0 if ok else 1.0)
            if ok:
                passes, fails = passes + 1, 0
                unhealthy = unhealthy and passes < 2
            else:
                fails, passes = fails + 1, 0
                unhealthy = unhealthy or fails >= 2

if __name__ == "__main__":
    main()
