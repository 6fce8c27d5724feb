#!/usr/bin/env bash
# End-to-end under a real systemd: boot a minimal Debian 12 container with
# systemd-nspawn (private network: loopback only), then inside it install with
# install.sh and with the .deb, and watch the hardened unit start (after its
# random delay), run sandboxed, stop with its final flush, refuse to
# restart-loop on a bad config, get baked (--no-start), uninstall and purge.
#
#   tests/packaging/systemd-e2e.sh BINARY DEB
#
# Prints "ok - ..." / "not ok - ..." lines; exits non-zero if any failed, 2 if
# the container could not be made or booted. The debootstrapped tree is cached
# as ~/.cache/cwpulse/nspawn-bookworm.tar.
set -euo pipefail

bin=$1
deb=$2
here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/cwpulse
tarball=$cache/nspawn-bookworm.tar

need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [[ ${#need[@]} -gt 0 ]]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$cache"
if [[ ! -s $tarball ]]; then
	build=$(mktemp -d "$cache/debootstrap.XXXXXX")
	if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,procps,ca-certificates \
		bookworm "$build" >"$cache/debootstrap.log" 2>&1; then
		tail -20 "$cache/debootstrap.log" >&2
		rm -rf "$build"
		echo "cannot debootstrap a container root" >&2
		exit 2
	fi
	tar -C "$build" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
	rm -rf "$build"
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/cwpulse-nspawn.XXXXXX")
# CWPULSE_E2E_KEEP=1 keeps the container tree for a post-mortem.
[[ ${CWPULSE_E2E_KEEP:-0} == 1 ]] || trap 'rm -rf -- "$root"' EXIT
tar -C "$root" -xf "$tarball"
# mktemp makes 0700 directories (and the tarball's "." came from one): the
# container's / must let the cwpulse user through.
chmod 0755 "$root"
install -m 0755 "$bin" "$root/root/cwpulse"
install -m 0755 "$repo/install.sh" "$root/root/install.sh"
cp "$deb" "$root/root/cwpulse.deb"
cat >"$root/root/cwpulse-test.toml" <<'EOF'
# Identity given so nothing asks IMDS; the health route is a closed port.
namespace = "CWPulseTest"
[identity]
instance_id = "i-0123456789abcdef0"
autoscaling_group = "test-asg"
region = "us-east-1"
[[health]]
name = "app"
url = "http://127.0.0.1:9/health"
interval = "10s"
timeout = "2s"
EOF

cat >"$root/root/e2e.sh" <<'EOS'
#!/bin/bash
# Runs as a oneshot unit inside the container, then powers it off.
set -u
out=/root/results.txt
: >"$out"
exec 2>/root/e2e.log
ok() { echo "ok - $1" >>"$out"; }
no() { echo "not ok - $1${2:+ ($2)}" >>"$out"; }
check() { local n=$1; shift; if "$@" >>/root/e2e.log 2>&1; then ok "$n"; else no "$n"; fi; }
prop() { systemctl show cwpulse -p "$1" --value; }
main_is_cwpulse() { local p; p=$(prop MainPID); [ "$p" != 0 ] && [ "$(ps -o comm= -p "$p")" = cwpulse ]; }
wait_running() { for _ in $(seq 1 "$1"); do main_is_cwpulse && return 0; sleep 1; done; return 1; }

# No AWS here: static test credentials and an endpoint on a closed loopback port.
mkdir -p /etc/systemd/system/cwpulse.service.d
printf '[Service]\nEnvironment=AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true AWS_REGION=us-east-1 AWS_ENDPOINT_URL=http://127.0.0.1:9\n' \
	>/etc/systemd/system/cwpulse.service.d/test.conf

# --- install.sh
check "install.sh installs and starts" bash /root/install.sh --binary /root/cwpulse --config /root/cwpulse-test.toml
t0=$(date +%s)
if wait_running 45; then ok "running after the random start delay ($(( $(date +%s) - t0 )) s <= 30 s + start)"; else no "running within 45 s" "$(systemctl status cwpulse --no-pager 2>&1 | head -5 | tr '\n' ' ')"; fi
sleep 4
check "still running, no restarts" test "$(prop ActiveState)/$(prop NRestarts)" = active/0
pid=$(prop MainPID)
check "runs as the cwpulse user" test "$(awk '/^Uid:/ {print $2}' /proc/"$pid"/status)" = "$(id -u cwpulse)"
check "no capabilities, NoNewPrivs, seccomp" bash -c "grep -q '^CapEff:.*0000000000000000' /proc/$pid/status && grep -q '^NoNewPrivs:.*1' /proc/$pid/status && grep -q '^Seccomp:.*2' /proc/$pid/status"
check "state directory owned by cwpulse" test "$(stat -c %U:%a /var/lib/cwpulse)" = cwpulse:750
check "journal: started, CA roots found" bash -c "journalctl -u cwpulse --no-pager | grep -q 'cwpulse starting' && ! journalctl -u cwpulse --no-pager | grep -qi 'no native root CA'"
check "sampling and probing inside the sandbox (publish attempted)" bash -c "for i in \$(seq 1 20); do journalctl -u cwpulse --no-pager | grep -q 'PutMetricData' && exit 0; sleep 1; done; exit 1"
check "install.sh again: up to date" bash -c "bash /root/install.sh --binary /root/cwpulse --config /root/cwpulse-test.toml 2>&1 | grep -q 'running and up to date'"
t0=$(date +%s%N)
systemctl stop cwpulse
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ "$ms" -lt 20000 ] && [ "$(prop Result)" = success ]; then ok "stop with final flush took $ms ms (< TimeoutStopSec=20s)"; else no "stop" "$ms ms, $(prop Result)"; fi
check "final flush logged" bash -c "journalctl -u cwpulse --no-pager | grep -qi 'final window'"

printf '[Service]\nEnvironment=CWPULSE_START_JITTER=0\n' >/etc/systemd/system/cwpulse.service.d/nojitter.conf
systemctl daemon-reload
echo 'intervall = "10s"' >>/etc/cwpulse/cwpulse.toml
systemctl start cwpulse >/dev/null 2>&1
sleep 20
check "bad config: failed with 78/CONFIG and no restart" test "$(prop ActiveState)/$(prop ExecMainStatus)/$(prop NRestarts)" = failed/78/0
check "bad config: journal names the file and key" bash -c "journalctl -u cwpulse --no-pager | grep -q 'cwpulse.toml:.*intervall'"
sed -i '/intervall/d' /etc/cwpulse/cwpulse.toml
systemctl reset-failed cwpulse
systemctl start cwpulse
wait_running 10 || true
check "bake: --no-start stops it" bash /root/install.sh --binary /root/cwpulse --config /root/cwpulse-test.toml --no-start
check "bake: inactive, enabled, empty state" bash -c "! systemctl is-active -q cwpulse && systemctl is-enabled -q cwpulse && [ -z \"\$(ls -A /var/lib/cwpulse)\" ]"
check "uninstall --purge" bash /root/install.sh --uninstall --purge
check "uninstall --purge: all gone" bash -c "! systemctl is-enabled -q cwpulse 2>/dev/null; test ! -e /usr/local/bin/cwpulse -a ! -e /etc/systemd/system/cwpulse.service -a ! -e /etc/cwpulse -a ! -e /var/lib/cwpulse"

# --- .deb
check ".deb: dpkg -i installs, creates the user, starts" dpkg -i /root/cwpulse.deb
# The packaged default config has no [identity] and this container has no
# IMDS, so the agent exits at once; that it got started is what counts here.
check ".deb: postinst started the service" bash -c "for i in \$(seq 1 15); do journalctl -u cwpulse --no-pager | grep -q 'cwpulse starting' && exit 0; sleep 1; done; exit 1"
cp /root/cwpulse-test.toml /etc/cwpulse/cwpulse.toml
systemctl reset-failed cwpulse
systemctl restart cwpulse
check ".deb: running with a test identity" wait_running 15
check ".deb: enabled" systemctl is-enabled -q cwpulse
check ".deb: conffile in place" test -f /etc/cwpulse/cwpulse.toml
check "install.sh refuses to fight the package" bash -c "bash /root/install.sh --binary /root/cwpulse 2>&1 | grep -q 'installed from a .deb/.rpm'"
check ".deb: dpkg --purge stops and removes everything" bash -c "dpkg --purge cwpulse && ! systemctl is-active -q cwpulse && test ! -e /usr/bin/cwpulse -a ! -e /etc/cwpulse/cwpulse.toml -a ! -e /var/lib/cwpulse"
echo done >>/root/e2e.log
systemctl poweroff
EOS
chmod 0755 "$root/root/e2e.sh"
cat >"$root/etc/systemd/system/cwpulse-e2e.service" <<'EOF'
[Unit]
Description=cwpulse end-to-end test
After=basic.target
[Service]
Type=oneshot
ExecStart=/root/e2e.sh
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/cwpulse-e2e.service "$root/etc/systemd/system/multi-user.target.wants/cwpulse-e2e.service"
# D-Bus cannot raise its fd limit in this sandbox and then times out for 90 s;
# nothing here needs it (systemctl talks to PID 1 over its private socket).
for u in dbus.service dbus.socket systemd-logind.service; do
	ln -sf /dev/null "$root/etc/systemd/system/$u"
done

# --keep-unit/--register=no: the host need not run systemd or machined.
if ! timeout "${CWPULSE_E2E_TIMEOUT:-300}" systemd-nspawn --quiet --keep-unit --register=no --private-network \
	-D "$root" --boot >"$root.boot.log" 2>&1; then
	if [[ ! -s $root/root/results.txt ]]; then
		tail -30 "$root.boot.log" >&2
		tail -30 "$root/root/e2e.log" >&2 2>/dev/null || true
		rm -f "$root.boot.log"
		echo "the container did not boot" >&2
		exit 2
	fi
fi
rm -f "$root.boot.log"
cat "$root/root/results.txt"
if grep -q '^not ok' "$root/root/results.txt" || ! grep -qx 'done' "$root/root/e2e.log"; then
	sed 's/^/    | /' "$root/root/e2e.log" | tail -30 >&2
	exit 1
fi
