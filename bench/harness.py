"""The benchmark harness behind bench/run.sh; see BENCHMARKS.md.

Runs cwpulse and its do-it-yourself peers side by side against LocalStack on
loopback, measures each from the outside (/proc and wait4), reads back what
reached CloudWatch, and writes results.json and summary.md into --out.

Every wait in here is bounded: a phase that does not see what it waits for
gives up at its deadline and records the miss.
"""

import argparse
import http.server
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone

import boto3

CLK_TCK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- health route


class HealthServer:
    """Answers GET /g/<group>/<n> with 200, or 503 while <group> is failing."""

    def __init__(self):
        self.failing = set()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                group = self.path.split("/")[2] if self.path.startswith("/g/") else ""
                bad = group in owner.failing
                body = b"DOWN\n" if bad else b"OK\n"
                self.send_response(503 if bad else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # 100 checks connect at the same instant

            def handle_error(self, request, client_address):
                pass  # a probe cut off by its agent's shutdown is not news

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, group, n=0):
        return f"http://127.0.0.1:{self.server.server_address[1]}/g/{group}/{n}"


# ------------------------------------------------------------------ /proc reads


def system_cpu():
    """(total, idle + iowait) ticks of the aggregate cpu line."""
    with open("/proc/stat", "rb") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v), v[3] + v[4]


def busy_pct(a, b):
    dt, di = b[0] - a[0], b[1] - a[1]
    return 100.0 * (dt - di) / dt if dt > 0 else float("nan")


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def schedstat_ns(pid):
    """CPU time of all live threads, in ns (exact, unlike tick-based utime)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def descendants(pid):
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(stat_fields(d)[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


# -------------------------------------------------------------------- programs


LIVE = []  # every Program started, stopped on the way out whatever happens
STRESS = []  # process groups of load generators


class Program:
    """One measured program. kind 'single': one long-running process, CPU
    from schedstat; kind 'tree': a scheduler whose children do the work, CPU
    from utime+stime+cutime+cstime, RSS summed over the process tree."""

    def __init__(self, name, kind, cmd, env, logpath):
        self.name, self.kind = name, kind
        self.log = open(logpath, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        LIVE.append(self)
        self.rss = []  # (time, kB)
        self.peak_sampled = 0
        self.rusage = None
        self.exit = None

    def alive(self):
        return self.exit is None

    def cpu_ms(self):
        if self.kind == "single":
            return schedstat_ns(self.proc.pid) / 1e6
        f = stat_fields(self.proc.pid)
        return sum(int(x) for x in f[11:15]) * 1000.0 / CLK_TCK

    def sample_rss(self):
        pids = [self.proc.pid] if self.kind == "single" else descendants(self.proc.pid)
        kb = hwm = 0
        for p in pids:
            try:
                kb += status_kb(p, "VmRSS")
                hwm += status_kb(p, "VmHWM")
            except OSError:
                pass
        if kb:
            self.rss.append((time.time(), kb))
            # A short-lived child (the AWS CLI) may peak between two samples;
            # its own high-water mark still shows the peak. The sum of the
            # tree's high-water marks errs on the high side.
            self.peak_sampled = max(self.peak_sampled, hwm)

    def hwm_kb(self):
        if self.kind == "single":
            return status_kb(self.proc.pid, "VmHWM")
        return self.peak_sampled

    def stop(self, grace=10.0):
        if not self.alive():
            return
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + grace
        while True:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                pid, status, ru = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.05)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.exit = self.proc.returncode
        self.rusage = ru
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of a tree
        except ProcessLookupError:
            pass
        self.log.close()


class Sampler:
    """Samples RSS of the running programs every 0.25 s."""

    def __init__(self, programs):
        self.programs = programs
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped.wait(0.25):
            for p in list(self.programs):
                if p.alive():
                    try:
                        p.sample_rss()
                    except OSError:
                        pass

    def stop(self):
        self.stopped.set()
        self.thread.join()


# ----------------------------------------------------------------------- time


def next_boundary(t, period):
    return (int(t) // period + 1) * period


def sleep_until(t):
    while True:
        d = t - time.time()
        if d <= 0:
            return
        time.sleep(min(d, 1.0))


def iso(t):
    return datetime.fromtimestamp(t, timezone.utc)


# ------------------------------------------------------------------ the bench


class Bench:
    def __init__(self, args):
        self.a = args
        self.out = args.out
        self.health = HealthServer()
        self.cw = boto3.client("cloudwatch", endpoint_url=args.endpoint, region_name="us-east-1",
                               aws_access_key_id="test", aws_secret_access_key="test")
        self.run_id = str(int(time.time()))
        self.env = {
            "PATH": f"{args.awscli_venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "AWS_ENDPOINT_URL": args.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "NO_PROXY": "127.0.0.1,localhost",
        }

    # -- cwpulse config
    def cwpulse_config(self, path, ns, instance, asg, checks, publish, high_res, spool):
        health = "".join(
            f'[[health]]\nname = "{name}"\nurl = "{url}"\n\n' for name, url in checks)
        text = (
            f'namespace = "{ns}"\n\n{health}'
            f'[publish]\ninterval = "{publish}s"\nhigh_resolution = {str(high_res).lower()}\n'
            # The job every program does: both sets, as the peers send them.
            'dimension_sets = [["InstanceId"], ["AutoScalingGroupName"]]\n\n'
            f'[identity]\ninstance_id = "{instance}"\nautoscaling_group = "{asg}"\nregion = "us-east-1"\n\n'
            f'[spool]\ndir = "{spool}"\n'
        )
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_cwpulse(self, name, tag, checks, publish, high_res, ns, instance, asg):
        d = os.path.join(self.out, tag)
        spool = os.path.join(d, f"spool-{name}")
        os.makedirs(spool, exist_ok=True)
        cfg = self.cwpulse_config(os.path.join(d, f"{name}.toml"), ns, instance, asg, checks,
                                  publish, high_res, spool)
        return Program(name, "single", [self.a.cwpulse, "run", "--config", cfg], self.env,
                       os.path.join(d, f"{name}.log"))

    # -- reading back
    def stats(self, ns, metric, dims, start, end, period):
        r = self.cw.get_metric_statistics(
            Namespace=ns, MetricName=metric,
            Dimensions=[{"Name": k, "Value": v} for k, v in dims],
            StartTime=iso(start), EndTime=iso(end), Period=period,
            Statistics=["Sum", "SampleCount", "Minimum", "Maximum"])
        return {int(p["Timestamp"].timestamp()): p for p in r["Datapoints"]}

    # ---------------------------------------------------------------- footprint
    def footprint(self, rep):
        a, M, K = self.a, self.a.minute, self.a.idle_minutes
        tag = f"footprint-{rep}"
        d = os.path.join(self.out, tag)
        os.makedirs(d, exist_ok=True)
        instance, asg = f"i-bench{self.run_id}{rep}", f"bench-asg-{self.run_id}"
        url = self.health.url("main")
        peer_env = dict(self.env, BENCH_MINUTE=str(M), BENCH_INSTANCE_ID=instance,
                        BENCH_ASG=asg, BENCH_HEALTH_URL=url)
        ns = {n: f"Bench/{self.run_id}/{rep}/{n}" for n in ("cwpulse", "boto3", "cron")}
        state = os.path.join(d, "cron-state")
        os.makedirs(state, exist_ok=True)
        progs = [
            self.start_cwpulse("cwpulse", tag, [("app", url)], M, M < 60, ns["cwpulse"],
                               instance, asg),
            Program("boto3", "single",
                    [f"{a.boto3_venv}/bin/python", os.path.join(HERE, "peers/boto3_daemon.py")],
                    dict(peer_env, BENCH_NAMESPACE=ns["boto3"]), os.path.join(d, "boto3.log")),
            Program("cron+awscli", "tree", ["bash", os.path.join(HERE, "peers/crond.sh")],
                    dict(peer_env, BENCH_NAMESPACE=ns["cron"], BENCH_STATE_DIR=state),
                    os.path.join(d, "cron.log")),
        ]
        if a.floor:
            progs.append(Program("floor (C loop)", "single", [a.floor], self.env,
                                 os.path.join(d, "floor.log")))
        ne_port = None
        if a.node_exporter:
            import socket
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            ne_port = s.getsockname()[1]
            s.close()
            progs.append(Program("node_exporter", "single",
                                 [a.node_exporter, f"--web.listen-address=127.0.0.1:{ne_port}"],
                                 self.env, os.path.join(d, "node_exporter.log")))
        sampler = Sampler(progs)
        t0 = time.time()
        b = [next_boundary(t0 + 10, M) - M]  # b[i] = start of window i; b[1] first measured
        for i in range(1, K + 4):
            b.append(b[0] + i * M)
        log(f"footprint {rep}: all started; measuring windows {iso(b[1]):%H:%M:%S}"
            f"..{iso(b[K + 3]):%H:%M:%S} ({K} idle, 1 gap, 1 stress)")

        truth, cpu_at, rss_window = {}, {}, (b[1], b[K + 1])

        def scrape():
            if ne_port:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{ne_port}/metrics", timeout=5).read()
                except OSError as e:
                    log(f"node_exporter scrape failed: {e}")

        stress = None
        for i in range(1, K + 4):
            if i == K + 2:
                sleep_until(b[i] - 3)
                stress = subprocess.Popen(["stress", "-c", "2"], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)
                STRESS.append(stress.pid)
            sleep_until(b[i])
            truth[b[i]] = system_cpu()
            if i in (1, K + 1):
                cpu_at[i] = {p.name: p.cpu_ms() for p in progs if p.kind == "single"}
            scrape()
            if i in (1, K + 1):
                sleep_until(b[i] + M / 2)
                cpu_at[i].update({p.name: p.cpu_ms() for p in progs if p.kind == "tree"})
        sleep_until(b[K + 3] + 2)
        os.killpg(stress.pid, signal.SIGTERM)
        stress.wait(timeout=10)
        STRESS.remove(stress.pid)
        # The cron job's last publish and everyone's last put land a few
        # seconds after the boundary.
        sleep_until(b[K + 3] + min(10, M / 2))
        hwm = {p.name: p.hwm_kb() for p in progs}
        for p in progs:
            p.stop()
        sampler.stop()

        res = {"windows": b[1:], "programs": {}}
        for p in progs:
            cpu = (cpu_at[K + 1][p.name] - cpu_at[1][p.name]) / K
            steady = [kb for t, kb in p.rss if rss_window[0] <= t <= rss_window[1]]
            # Not ru_maxrss: a child inherits its parent's high-water mark
            # across fork and exec, so it would report the harness's size.
            peak = hwm[p.name]
            r = {"cpu_ms_per_min": cpu, "rss_steady_kb": statistics.median(steady) if steady else None,
                 "rss_peak_kb": peak, "exit": p.exit,
                 "cpu_total_ms": (p.rusage.ru_utime + p.rusage.ru_stime) * 1000 if p.rusage else None}
            short = {"cwpulse": "cwpulse", "boto3": "boto3", "cron+awscli": "cron"}.get(p.name)
            if short:
                r.update(self.readback(ns[short], instance, b, K, M, truth))
            res["programs"][p.name] = r
        log("footprint " + str(rep) + ": " + json.dumps(
            {n: {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()
                 if k != "windows"} for n, r in res["programs"].items()}))
        return res

    def readback(self, ns, instance, b, K, M, truth):
        dims = [("InstanceId", instance)]
        cpu = self.stats(ns, "CPUUtilization", dims, b[1] - M, b[K + 3] + M, M)
        unh = self.stats(ns, "UnHealthyHostCount", dims, b[1] - M, b[K + 3] + M, M)
        windows, delivered = [], 0
        for i in range(1, K + 3):
            kind = "idle" if i <= K else ("gap" if i == K + 1 else "stress")
            p = cpu.get(b[i])
            ok = p is not None and b[i] in unh
            delivered += ok
            t = busy_pct(truth[b[i]], truth[b[i + 1]])
            rep = p["Sum"] / p["SampleCount"] if p else None
            windows.append({"start": b[i], "kind": kind, "truth": t, "reported": rep,
                            "samples": p["SampleCount"] if p else 0,
                            "error": (rep - t) if rep is not None else None})
        return {"windows": windows, "delivered": delivered, "expected": K + 2}

    # ------------------------------------------------------------------ detect
    def detect(self, trial):
        """One trial per mode, both modes at once: start an agent with a fresh
        instance id (so no earlier trial's datum can trip the alarm), fail its
        route at a random point, and time what CloudWatch shows."""
        modes = {"default": (60, False), "hires": (10, True)}
        tag = f"detect-{trial}"
        os.makedirs(os.path.join(self.out, tag), exist_ok=True)
        ns = f"Bench/{self.run_id}/detect"
        st = {}
        for m, (period, hires) in modes.items():
            inst = f"i-det{self.run_id}{trial}{m}"
            group = f"det-{m}"
            self.health.failing.discard(group)
            alarm = f"bench-{self.run_id}-{trial}-{m}-unhealthy"
            self.cw.put_metric_alarm(
                AlarmName=alarm, Namespace=ns, MetricName="UnHealthyHostCount",
                Dimensions=[{"Name": "InstanceId", "Value": inst}], Statistic="Maximum",
                Period=period, EvaluationPeriods=1, Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching")
            prog = self.start_cwpulse(f"cwpulse-{m}", tag, [("app", self.health.url(group))],
                                      period, hires, ns, inst, "bench-det")
            rnd = random.Random(f"{self.run_id}-{trial}-{m}")
            st[m] = {"period": period, "inst": inst, "group": group, "alarm": alarm, "prog": prog,
                     "fail_at": time.time() + 15 + rnd.uniform(0, period), "failed": None,
                     "datum": None, "unhealthy_datum": None, "alarm_at": None}
        deadline = max(s["fail_at"] for s in st.values()) + 60 + 2 * 60 + 30
        while time.time() < deadline:
            now = time.time()
            pending = False
            for m, s in st.items():
                if s["failed"] is None:
                    if now >= s["fail_at"]:
                        self.health.failing.add(s["group"])
                        s["failed"] = time.time()
                    pending = True
                    continue
                if s["alarm_at"] is not None:
                    continue
                pending = True
                lo, hi, P = s["failed"] - s["period"], now + s["period"], s["period"]
                if s["datum"] is None:
                    pts = self.stats(ns, "HealthCheckFailed",
                                     [("InstanceId", s["inst"]), ("HealthCheck", "app")], lo, hi, P)
                    if any(p["Sum"] > 0 for p in pts.values()):
                        s["datum"] = time.time()
                if s["unhealthy_datum"] is None:
                    pts = self.stats(ns, "UnHealthyHostCount", [("InstanceId", s["inst"])], lo, hi, P)
                    if any(p["Maximum"] >= 1 for p in pts.values()):
                        s["unhealthy_datum"] = time.time()
                a = self.cw.describe_alarms(AlarmNames=[s["alarm"]])["MetricAlarms"]
                if a and a[0]["StateValue"] == "ALARM":
                    s["alarm_at"] = time.time()
            if not pending:
                break
            time.sleep(0.5)
        out = {}
        for m, s in st.items():
            s["prog"].stop()
            self.health.failing.discard(s["group"])
            self.cw.delete_alarms(AlarmNames=[s["alarm"]])
            f = s["failed"]
            rel = lambda t: (t - f) if (t is not None and f is not None) else None  # noqa: E731
            out[m] = {"period": s["period"], "datum_s": rel(s["datum"]),
                      "unhealthy_datum_s": rel(s["unhealthy_datum"]), "alarm_s": rel(s["alarm_at"])}
        log(f"detect {trial}: {json.dumps(out)}")
        return out

    # ------------------------------------------------------------------- scale
    def scale(self, n):
        """cwpulse with n health checks, publishing every 10 s (high
        resolution): CPU per window and RSS."""
        P, W = 10, self.a.scale_windows
        tag = f"scale-{n}"
        checks = [(f"check{i}", self.health.url("scale", i)) for i in range(n)]
        prog = self.start_cwpulse("cwpulse", tag, checks, P, True,
                                  f"Bench/{self.run_id}/scale{n}", f"i-scale{self.run_id}{n}",
                                  "bench-scale")
        sampler = Sampler([prog])
        b1 = next_boundary(time.time() + 12, P)
        sleep_until(b1 + 1)
        c0 = prog.cpu_ms()
        sleep_until(b1 + 1 + W * P)
        c1 = prog.cpu_ms()
        hwm = prog.hwm_kb()
        prog.stop()
        sampler.stop()
        steady = [kb for t, kb in prog.rss if t >= b1]
        datums = 2 * (1 + n + 2)
        out = {"checks": n, "datums_per_publish": datums, "cpu_ms_per_window": (c1 - c0) / W,
               "rss_steady_kb": statistics.median(steady) if steady else None,
               "rss_peak_kb": hwm, "exit": prog.exit}
        log(f"scale {n}: {json.dumps(out)}")
        return out


    # ------------------------------------------------------------------- drain
    def drain(self, hours):
        """An outage's backlog in the spool (one window a minute, the datums of
        a real window with their timestamps moved back), then cwpulse starts
        against a reachable CloudWatch: time, CPU and memory to send it all."""
        import zlib
        tag = f"drain-{hours}h"
        d = os.path.join(self.out, tag)
        spool = os.path.join(d, "spool-cwpulse")  # where start_cwpulse points it
        os.makedirs(spool, exist_ok=True)
        inst = f"i-drain{self.run_id}{hours}"
        ns = f"Bench/{self.run_id}/drain{hours}"
        cfg = self.cwpulse_config(os.path.join(d, "once.toml"), ns, inst, "bench-drain",
                                  [("app", self.health.url("main"))], 60, False,
                                  os.path.join(d, "unused"))
        once = subprocess.run([self.a.cwpulse, "once", "--config", cfg, "--duration", "1s"],
                              env=self.env, capture_output=True, text=True, timeout=30, check=True)
        template = json.loads(once.stdout)
        windows = hours * 60
        now_min = int(time.time()) // 60 * 60
        first_ts = now_min - windows * 60
        for k in range(windows):
            ts = first_ts + k * 60
            stamp = iso(ts).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = json.dumps([dict(x, Timestamp=stamp) for x in template],
                              separators=(",", ":")).encode()
            head = f"cwpulse-spool 1 {zlib.crc32(body):08x} {len(body)}\n".encode()
            with open(os.path.join(spool, f"{k:016}-{ts * 1000}.win"), "wb") as f:
                f.write(head + body)
        datums = windows * len(template)
        prog = self.start_cwpulse("cwpulse", tag, [("app", self.health.url("main"))], 60, False,
                                  ns, inst, "bench-drain")
        t0 = time.time()
        sampler = Sampler([prog])
        deadline = t0 + 60 + windows * 0.5
        backlog = lambda: sum(  # noqa: E731
            1 for n in os.listdir(spool) if n.endswith(".win") and int(n.split("-")[0]) < windows)
        drained = None
        while time.time() < deadline:
            if backlog() == 0:
                drained = time.time()
                break
            time.sleep(0.1)
        cpu = prog.cpu_ms()
        hwm = prog.hwm_kb()
        time.sleep(2)
        prog.stop()
        sampler.stop()
        got = {}
        for lo in range(first_ts, first_ts + windows * 60, 1000 * 60):  # 1440 points a call at most
            got.update(self.stats(ns, "CPUUtilization", [("InstanceId", inst)], lo,
                                  min(lo + 1000 * 60, first_ts + windows * 60), 60))
        out = {"hours": hours, "windows": windows, "datums": datums,
               "calls": -(-datums // 1000),
               "drain_s": (drained - t0) if drained else None,
               "cpu_ms_start_to_drained": cpu, "rss_peak_kb": hwm,
               "windows_in_cloudwatch": len(got), "exit": prog.exit}
        log(f"drain {hours}h: {json.dumps(out)}")
        return out


# ---------------------------------------------------------------------- report


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=1):
    return "–" if x is None else f"{x:.{nd}f}"


def summarize(res, sizes, args):
    lines = []
    reps = res["footprint"]
    names = list(reps[0]["programs"]) if reps else []
    lines.append(f"Minute = {args.minute} s, {args.idle_minutes} measured idle minute(s) per repeat, "
                 f"{len(reps)} repeat(s); medians over repeats.\n")
    lines.append("| Program | CPU ms/min | peer ÷ cwpulse (CPU, same run) | RSS steady MB | RSS peak MB "
                 "| Installed | Minutes in CloudWatch | CPU % error idle | CPU % error stress |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in names:
        rs = [r["programs"][n] for r in reps]
        cpu = med([r["cpu_ms_per_min"] for r in rs])
        ratio = med([r["programs"][n]["cpu_ms_per_min"] / r["programs"]["cwpulse"]["cpu_ms_per_min"]
                     for r in reps]) if n != "cwpulse" else None
        ratio_s = "–" if ratio is None else f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.0f}×"
        steady = med([r["rss_steady_kb"] for r in rs])
        peak = med([r["rss_peak_kb"] for r in rs])
        delivered = "–"
        err_idle = err_stress = None
        if "delivered" in rs[0]:
            delivered = f"{sum(r['delivered'] for r in rs)}/{sum(r['expected'] for r in rs)}"
            ei = [abs(w["error"]) for r in rs for w in r["windows"]
                  if w["kind"] != "stress" and w["error"] is not None]
            es = [abs(w["error"]) for r in rs for w in r["windows"]
                  if w["kind"] == "stress" and w["error"] is not None]
            err_idle = (med(ei), max(ei)) if ei else None
            err_stress = (med(es), max(es)) if es else None
        fe = lambda e: "–" if e is None else f"{e[0]:.2f} (max {e[1]:.2f})"  # noqa: E731
        lines.append(
            f"| {n} | {fmt(cpu)} | {ratio_s} | {fmt(steady and steady / 1024)} "
            f"| {fmt(peak and peak / 1024)} | {sizes.get(n, '–')} | {delivered} "
            f"| {fe(err_idle)} | {fe(err_stress)} |")
    lines.append("")
    lines.append("CPU % error: |reported window average − ground truth from /proc/stat deltas at the "
                 "window's boundaries|, in percentage points, median (max) over windows.\n")
    if reps:
        lines.append("Per-window CPU % (reported / truth), repeat 1:\n")
        r0 = reps[0]["programs"]
        pub = [n for n in names if "windows" in r0[n]]
        lines.append("| Window | kind | " + " | ".join(pub) + " |")
        lines.append("|---|---|" + "---:|" * len(pub))
        for i, w in enumerate(r0["cwpulse"]["windows"]):
            cells = []
            for n in names:
                if n not in r0 or "windows" not in r0[n]:
                    continue
                x = r0[n]["windows"][i]
                cells.append(f"{fmt(x['reported'], 2)} / {fmt(x['truth'], 2)} (n={x['samples']:.0f})")
            lines.append(f"| {iso(w['start']):%H:%M:%S} | {w['kind']} | " + " | ".join(cells) + " |")
        lines.append("")
    if res.get("detect"):
        lines.append("Detection latency, seconds from the route's first failing answer "
                     "(median / max over trials):\n")
        lines.append("| cwpulse mode | probe / publish / alarm period | first HealthCheckFailed datum "
                     "| first UnHealthyHostCount=1 datum | alarm in ALARM | target (probe + publish + 1 s) |")
        lines.append("|---|---|---:|---:|---:|---:|")
        for m in ("default", "hires"):
            ts = [t[m] for t in res["detect"]]
            P = ts[0]["period"]
            def mm(k):
                xs = [t[k] for t in ts]
                if any(x is None for x in xs):
                    return f"missed {sum(x is None for x in xs)}/{len(xs)}"
                return f"{statistics.median(xs):.1f} / {max(xs):.1f}"
            lines.append(f"| {m} | 10 s / {P} s / {P} s | {mm('datum_s')} | {mm('unhealthy_datum_s')} "
                         f"| {mm('alarm_s')} | ≤ {10 + P + 1} |")
        lines.append("")
    if res.get("scale"):
        lines.append("Scale: cwpulse with N health checks, 10 s high-resolution windows:\n")
        lines.append("| Checks | datums per publish | CPU ms per 10 s window | RSS steady MB | RSS peak MB |")
        lines.append("|---:|---:|---:|---:|---:|")
        for s in res["scale"]:
            lines.append(f"| {s['checks']} | {s['datums_per_publish']} | {fmt(s['cpu_ms_per_window'], 2)} "
                         f"| {fmt(s['rss_steady_kb'] and s['rss_steady_kb'] / 1024)} "
                         f"| {fmt(s['rss_peak_kb'] / 1024)} |")
        lines.append("")
    if res.get("drain"):
        lines.append("Backlog drain: windows spooled during an outage, sent after restart "
                     "(time and CPU from process start, the first 5 s window included):\n")
        lines.append("| Backlog | windows | datums | PutMetricData calls | time to drain s "
                     "| CPU ms | RSS peak MB | windows found in CloudWatch |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for x in res["drain"]:
            lines.append(f"| {x['hours']} h | {x['windows']} | {x['datums']} | {x['calls']} "
                         f"| {fmt(x['drain_s'])} | {fmt(x['cpu_ms_start_to_drained'])} "
                         f"| {fmt(x['rss_peak_kb'] / 1024)} | {x['windows_in_cloudwatch']} |")
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--cwpulse", required=True)
    ap.add_argument("--awscli-venv", required=True)
    ap.add_argument("--boto3-venv", required=True)
    ap.add_argument("--node-exporter", default="")
    ap.add_argument("--floor", default="", help="the bench/floor.c binary")
    ap.add_argument("--minute", type=int, default=60)
    ap.add_argument("--idle-minutes", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--detect-trials", type=int, default=3)
    ap.add_argument("--scale", default="1,10,100")
    ap.add_argument("--scale-windows", type=int, default=6)
    ap.add_argument("--sizes", default="{}", help="JSON: program -> installed size text")
    ap.add_argument("--drain", default="1,24", help="backlog hours to drain")
    ap.add_argument("--phases", default="footprint,detect,scale,drain")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    bench = Bench(args)
    phases = args.phases.split(",")
    res = {"args": vars(args), "footprint": [], "detect": [], "scale": [], "drain": []}

    def save():
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(res, f, indent=1, default=str)
        summary = summarize(res, json.loads(args.sizes), args)
        with open(os.path.join(args.out, "summary.md"), "w") as f:
            f.write(summary + "\n")
        return summary

    def on_term(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        run_phases(bench, args, phases, res, save)
    finally:
        for pgid in STRESS:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in LIVE:
            if p.alive():
                p.stop(grace=3)
    print(save())


def run_phases(bench, args, phases, res, save):
    if "footprint" in phases:
        for r in range(args.repeats):
            res["footprint"].append(bench.footprint(r))
            save()
    if "detect" in phases:
        for t in range(args.detect_trials):
            res["detect"].append(bench.detect(t))
            save()
    if "scale" in phases:
        for n in [int(x) for x in args.scale.split(",") if x]:
            res["scale"].append(bench.scale(n))
            save()
    if "drain" in phases:
        for h in [int(x) for x in args.drain.split(",") if x]:
            res["drain"].append(bench.drain(h))
            save()


if __name__ == "__main__":
    main()
