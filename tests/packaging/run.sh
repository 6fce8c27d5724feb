#!/usr/bin/env bash
# Packaging tests: install.sh (into temp roots, idempotence, operator edits,
# --no-start, uninstall, every error path), the systemd unit (verify and an
# exposure of at most 2.0), the .deb and .rpm (inspected and installed into
# throwaway roots), the aarch64 build under qemu-user, and the unit under a
# real systemd in a container.
#
# Installs what it needs (apt-get, rustup, cargo install) the first time and
# only looks afterwards. Runs as root (CI does).
#
#   CWPULSE_TEST_AARCH64=0   skip the aarch64 cross build and qemu smoke test
#                            (on by default; the build is cached, see below)
#   CWPULSE_TEST_SYSTEMD=0   skip booting a Debian container under
#                            systemd-nspawn to run the unit for real
#                            (tests/packaging/systemd-e2e.sh; on by default)
#   CWPULSE_PKG_TARGET_DIR   cargo target dir for the musl release builds;
#                            default ~/.cache/cwpulse/packaging-target so a
#                            fresh CI clone on the same machine reuses it
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
started=$(date +%s)
aarch64=${CWPULSE_TEST_AARCH64:-1}
max_exposure=2.0

pass=0
fail=0
failed_names=()
work=$(mktemp -d "${TMPDIR:-/tmp}/cwpulse-pkg-test.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
log=$work/last.log

ok() { pass=$((pass + 1)); printf 'ok - %s\n' "$1"; }
not_ok() {
	fail=$((fail + 1))
	failed_names+=("$1")
	printf 'not ok - %s\n' "$1"
	[[ -s $log ]] && sed 's/^/    | /' "$log" | tail -40
	return 0
}
# t NAME CMD...: passes when CMD exits 0; its output goes to the log.
t() {
	local name=$1
	shift
	if "$@" >"$log" 2>&1; then ok "$name"; else not_ok "$name"; fi
}
# t_exit NAME CODE PATTERN CMD...: passes when CMD exits CODE and prints PATTERN.
t_exit() {
	local name=$1 want=$2 pattern=$3 rc=0
	shift 3
	"$@" >"$log" 2>&1 || rc=$?
	if [[ $rc == "$want" ]] && grep -qE -- "$pattern" "$log"; then
		ok "$name"
	else
		echo "(exit $rc, wanted $want and /$pattern/)" >>"$log"
		not_ok "$name"
	fi
}
section() { printf '\n# %s\n' "$*"; }
tree_state() { (cd "$1" && find . -printf '%p %y %m %s %T@ %l\n' | LC_ALL=C sort); }
empty_dir() { [[ -z $(find "$1" -mindepth 1 -print -quit) ]]; }

# --- tools ---------------------------------------------------------------------

section "tools"
need_pkgs=()
command -v rpm >/dev/null || need_pkgs+=(rpm)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v shellcheck >/dev/null || need_pkgs+=(shellcheck)
command -v systemd-analyze >/dev/null || need_pkgs+=(systemd)
command -v file >/dev/null || need_pkgs+=(file)
if [[ $aarch64 == 1 ]]; then
	command -v qemu-aarch64 >/dev/null || need_pkgs+=(qemu-user)
fi
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
	echo "apt-get install ${need_pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
arch_args=(--arch x86_64)
[[ $aarch64 == 1 ]] && arch_args+=(--arch aarch64)
t "build tools present (scripts/dist.sh --deps-only)" scripts/dist.sh --deps-only "${arch_args[@]}"

# --- build ---------------------------------------------------------------------

section "dist build (static musl, size profile)"
export CARGO_TARGET_DIR=${CWPULSE_PKG_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cwpulse/packaging-target}
dist=$work/dist
build_started=$(date +%s)
if DIST_DIR=$dist scripts/dist.sh "${arch_args[@]}" >"$log" 2>&1; then
	ok "scripts/dist.sh ${arch_args[*]} ($(($(date +%s) - build_started)) s)"
else
	not_ok "scripts/dist.sh ${arch_args[*]}"
	echo "cannot go on without a build"
	echo "$pass passed, $fail failed"
	exit 1
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
bin=$dist/cwpulse-linux-x86_64
deb=$dist/cwpulse_${version}-1_amd64.deb
rpmf=$dist/cwpulse-${version}-1.x86_64.rpm
t "dist has binary, deb, rpm, install.sh, SHA256SUMS" \
	test -x "$bin" -a -f "$deb" -a -f "$rpmf" -a -x "$dist/install.sh" -a -f "$dist/SHA256SUMS"
t "SHA256SUMS verifies" bash -c "cd '$dist' && sha256sum --check --strict SHA256SUMS"
t "x86_64 binary is static and stripped" bash -c "file '$bin' | grep -E 'x86-64.*static(ally|-pie) linked.*stripped'"
t "x86_64 binary needs no glibc symbol versions" bash -c "! objdump -T '$bin' 2>/dev/null | grep -q GLIBC_"
t "x86_64 binary runs" "$bin" --version

cat >"$work/identity.toml" <<'EOF'
# Identity given, so `once` never asks IMDS.
namespace = "CWPulseTest"
[identity]
instance_id = "i-0123456789abcdef0"
autoscaling_group = "test-asg"
region = "us-east-1"
EOF

# --- static checks ---------------------------------------------------------------

section "scripts"
t "scripts pass shellcheck" shellcheck install.sh scripts/dist.sh tests/packaging/run.sh tests/packaging/systemd-e2e.sh packaging/user-data.sh
t "maintainer scripts pass shellcheck" shellcheck -s sh packaging/deb/postrm packaging/rpm/post_install.sh packaging/rpm/pre_uninstall.sh packaging/rpm/post_uninstall.sh
t "install.sh's unit is packaging/systemd/cwpulse.service" \
	diff <(bash install.sh --print-unit | sed 's#/usr/local/bin/cwpulse#/usr/bin/cwpulse#g') packaging/systemd/cwpulse.service
t "install.sh's default config is packaging/cwpulse.toml" diff <(bash install.sh --print-config) packaging/cwpulse.toml
t "install.sh's sysusers entry is packaging/systemd/cwpulse.sysusers" diff <(bash install.sh --print-sysusers) packaging/systemd/cwpulse.sysusers
t "default config passes cwpulse check" "$bin" check --config packaging/cwpulse.toml
t "shaped config passes cwpulse check" bash -c \
	"bash install.sh --print-config --namespace 'Shop/Web' --health-url http://127.0.0.1:8080/health --high-resolution >'$work/shaped.toml' && '$bin' check --config '$work/shaped.toml' | grep -q 'high_resolution = true'"

# --- install.sh --root ------------------------------------------------------------

section "install.sh --root"
R=$work/root1
mkdir -p "$R"
inst() { bash install.sh --root "$R" --binary "$bin" "$@"; }
t "first install" inst --health-url http://127.0.0.1:8080/actuator/health
t "binary at /usr/local/bin/cwpulse, 0755" test "$(stat -c %a "$R/usr/local/bin/cwpulse")" = 755
t "unit installed" cmp -s <(bash install.sh --print-unit) "$R/etc/systemd/system/cwpulse.service"
t "enabled (multi-user.target.wants symlink)" \
	test "$(readlink "$R/etc/systemd/system/multi-user.target.wants/cwpulse.service")" = /etc/systemd/system/cwpulse.service
t "sysusers entry installed" test -f "$R/etc/sysusers.d/cwpulse.conf"
t "config has the health route" grep -q 'url = "http://127.0.0.1:8080/actuator/health"' "$R/etc/cwpulse/cwpulse.toml"
t "installed config passes cwpulse check" "$R/usr/local/bin/cwpulse" check --config "$R/etc/cwpulse/cwpulse.toml"
t "state directory 0750" test "$(stat -c %a "$R/var/lib/cwpulse")" = 750

before=$(tree_state "$R")
t_exit "second run is a no-op" 0 'cwpulse.toml: unchanged' inst --health-url http://127.0.0.1:8080/actuator/health
t "second run changed nothing on disk" test "$before" = "$(tree_state "$R")"

echo "# operator: keep 5-second probes" >>"$R/etc/cwpulse/cwpulse.toml"
edited=$(cat "$R/etc/cwpulse/cwpulse.toml")
t_exit "re-run with an operator edit says so" 0 'edited locally and is kept.*cwpulse.toml.new' \
	inst --health-url http://127.0.0.1:8080/actuator/health --namespace Shop
t "operator's edit kept" test "$edited" = "$(cat "$R/etc/cwpulse/cwpulse.toml")"
t "new default written beside it" grep -q 'namespace = "Shop"' "$R/etc/cwpulse/cwpulse.toml.new"

R2=$work/root2
mkdir -p "$R2"
t "install CPU-only" bash install.sh --root "$R2" --binary "$bin"
t "CPU-only config is the packaged default" cmp -s packaging/cwpulse.toml "$R2/etc/cwpulse/cwpulse.toml"
t_exit "unedited config is updated in place" 0 'cwpulse.toml: updated' \
	bash install.sh --root "$R2" --binary "$bin" --high-resolution
t "... with the new setting and no .new file" \
	bash -c "grep -q 'high_resolution = true' '$R2/etc/cwpulse/cwpulse.toml' && test ! -e '$R2/etc/cwpulse/cwpulse.toml.new'"
t "--config FILE installs that file" bash -c \
	"bash install.sh --root '$R2' --binary '$bin' --config '$work/identity.toml' && cmp -s '$work/identity.toml' '$R2/etc/cwpulse/cwpulse.toml'"

section "install.sh --no-start (AMI bake)"
mkdir -p "$R2/var/lib/cwpulse/spool" "$R2/var/lib/private/cwpulse"
echo '{"instance_id":"i-bake"}' >"$R2/var/lib/cwpulse/identity.json"
echo datum >"$R2/var/lib/cwpulse/spool/000001.json"
t "--no-start" bash install.sh --root "$R2" --binary "$bin" --no-start
t "state directory emptied, no cached identity or spool" empty_dir "$R2/var/lib/cwpulse"
t "no /var/lib/private/cwpulse left" test ! -e "$R2/var/lib/private/cwpulse"
t "still enabled" test -L "$R2/etc/systemd/system/multi-user.target.wants/cwpulse.service"

section "systemd unit"
# verify resolves ExecStart= on the host, so point it at the tree's binary.
mkdir -p "$work/verify"
sed "s#/usr/local/bin/cwpulse#$R/usr/local/bin/cwpulse#g" "$R/etc/systemd/system/cwpulse.service" >"$work/verify/cwpulse.service"
t "systemd-analyze verify" bash -c "systemd-analyze verify '$work/verify/cwpulse.service' 2>&1 | tee /dev/stderr | { ! grep -q .; }"
t "packaged unit: systemd-analyze verify" bash -c \
	"sed 's#/usr/bin/cwpulse#$R/usr/local/bin/cwpulse#g' packaging/systemd/cwpulse.service >'$work/verify/cwpulse.service' && systemd-analyze verify '$work/verify/cwpulse.service' 2>&1 | { ! grep -q .; }"
systemd-analyze security --offline=true --root="$R" cwpulse.service >"$work/security.txt" 2>&1
exposure=$(sed -n 's/.*Overall exposure level for cwpulse.service: \([0-9.]*\).*/\1/p' "$work/security.txt")
cp "$work/security.txt" "$log"
if [[ -n $exposure ]] && awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
	ok "systemd-analyze security: exposure $exposure <= $max_exposure"
else
	not_ok "systemd-analyze security: exposure '${exposure:-?}' > $max_exposure"
fi
t "unit: RestartPreventExitStatus=78, ExecStartPre check, TimeoutStopSec=20s, jitter" bash -c \
	"f=packaging/systemd/cwpulse.service; grep -qx 'RestartPreventExitStatus=78' \$f && grep -qx 'ExecStartPre=-/usr/bin/cwpulse check' \$f && grep -qx 'TimeoutStopSec=20s' \$f && grep -q 'shuf -i 0-' \$f && grep -qx 'StateDirectory=cwpulse' \$f"
# The jitter line after systemd's $$ unescaping must be valid sh that sleeps 0..N.
t "jitter ExecStartPre is valid sh" bash -c \
	"cmd=\$(sed -n \"s/^ExecStartPre=\\/bin\\/sh -c '\\(.*\\)'\$/\\1/p\" packaging/systemd/cwpulse.service | sed 's/\\\$\\\$/\$/g; s/exec sleep/echo/'); n=\$(CWPULSE_START_JITTER=3 sh -c \"\$cmd\" | tr -d '\"'); [[ \$n =~ ^[0-3]\$ ]]"

section "install.sh --uninstall"
t "uninstall" bash install.sh --root "$R" --uninstall
t "binary, unit, symlink, sysusers gone" bash -c \
	"cd '$R' && test ! -e usr/local/bin/cwpulse -a ! -e etc/systemd/system/cwpulse.service -a ! -L etc/systemd/system/multi-user.target.wants/cwpulse.service -a ! -e etc/sysusers.d/cwpulse.conf"
t "config and state kept without --purge" test -f "$R/etc/cwpulse/cwpulse.toml" -a -d "$R/var/lib/cwpulse"
t "uninstall again is fine" bash install.sh --root "$R" --uninstall
t "uninstall --purge" bash install.sh --root "$R" --uninstall --purge
t "--purge removed config and state" test ! -e "$R/etc/cwpulse" -a ! -e "$R/var/lib/cwpulse"

section "install.sh from a release directory"
rel=$work/release
mkdir -p "$rel"
cp "$bin" "$rel/cwpulse-linux-x86_64"
(cd "$rel" && sha256sum cwpulse-linux-x86_64 >SHA256SUMS)
R3=$work/root3
mkdir -p "$R3"
t_exit "file:// release verifies and installs" 0 'verified sha256' bash install.sh --root "$R3" --url "file://$rel"
t "release binary installed" cmp -s "$bin" "$R3/usr/local/bin/cwpulse"
t_exit "CWPULSE_RELEASE_URL is honoured" 0 'verified sha256' env CWPULSE_RELEASE_URL="$rel" bash install.sh --root "$R3"
t_exit "--sha256 pin accepted" 0 'verified sha256' bash install.sh --root "$R3" --url "file://$rel" --sha256 "$(sha256sum "$bin" | cut -d' ' -f1)"
t "aarch64 in --root from an x86_64 build fails (wrong ELF)" bash -c "! bash install.sh --root '$R3' --url 'file://$rel' --arch aarch64 2>/dev/null"

section "install.sh error paths"
E=$work/root-err
mkdir -p "$E"
bad=$work/bad-release
mkdir -p "$bad"
cp "$bin" "$bad/cwpulse-linux-x86_64"
printf '%064d  cwpulse-linux-x86_64\n' 0 >"$bad/SHA256SUMS"
t_exit "checksum mismatch (SHA256SUMS)" 65 'checksum mismatch' bash install.sh --root "$E" --url "file://$bad"
t_exit "checksum mismatch (--sha256)" 65 'checksum mismatch' bash install.sh --root "$E" --url "file://$rel" --sha256 "$(printf '%064d' 1)"
echo "deadbeef  something-else" >"$bad/SHA256SUMS"
t_exit "no checksum for the asset" 65 'no entry for cwpulse-linux-x86_64' bash install.sh --root "$E" --url "file://$bad"
t_exit "missing release" 66 'could not download' bash install.sh --root "$E" --url "file://$work/nowhere"
t_exit "unsupported architecture (--arch)" 69 'unsupported architecture: riscv64' bash install.sh --root "$E" --binary "$bin" --arch riscv64
mkdir -p "$work/fakebin"
printf '#!/bin/sh\necho s390x\n' >"$work/fakebin/uname"
printf '#!/bin/sh\necho 1000\n' >"$work/fakebin/id"
chmod +x "$work/fakebin/uname" "$work/fakebin/id"
t_exit "unsupported architecture (uname -m)" 69 'unsupported architecture: s390x' \
	env PATH="$work/fakebin:$PATH" bash install.sh --root "$E" --binary "$bin"
# The fake id says uid 1000; --binary points nowhere, so even a broken root
# check could not install anything into /.
t_exit "not root" 77 'must run as root' env PATH="$work/fakebin:$PATH" bash install.sh --binary "$work/nowhere"
if [[ $(id -u) == 0 ]]; then
	t_exit "no systemd" 69 'no systemd' env CWPULSE_SYSTEMCTL="$work/nowhere/systemctl" bash install.sh --binary "$work/nowhere"
fi
printf 'namespace = "X"\nintervall = "10s"\n' >"$work/typo.toml"
t_exit "invalid config is refused (78)" 78 'config is invalid' bash install.sh --root "$E" --binary "$bin" --config "$work/typo.toml"
t_exit "bad --health-url" 64 'must be an http' bash install.sh --root "$E" --binary "$bin" --health-url ftp://x
t_exit "unknown option" 64 'unknown option' bash install.sh --frobnicate
t_exit "missing --binary" 66 'no such file' bash install.sh --root "$E" --binary "$work/nowhere"
t "nothing was written by the failed runs" empty_dir "$E"

# --- .deb ---------------------------------------------------------------------------

section ".deb"
dpkg-deb -I "$deb" >"$work/deb-info.txt" 2>&1
dpkg-deb -c "$deb" >"$work/deb-contents.txt" 2>&1
cp "$work/deb-info.txt" "$log"
t "dpkg-deb -I: package, arch amd64, depends on systemd(-sysusers) and ca-certificates" bash -c \
	"grep -q '^ Package: cwpulse' '$work/deb-info.txt' && grep -q '^ Architecture: amd64' '$work/deb-info.txt' && grep '^ Depends:' '$work/deb-info.txt' | grep -q 'systemd | systemd-sysusers' && grep '^ Depends:' '$work/deb-info.txt' | grep -q 'ca-certificates'"
t "dpkg-deb -I: postinst, prerm, postrm, conffiles" bash -c \
	"for f in postinst prerm postrm conffiles; do grep -qE \"^ +[0-9]+ bytes, +[0-9]+ lines +\\*? +\$f\" '$work/deb-info.txt' || { echo missing \$f; exit 1; }; done"
cp "$work/deb-contents.txt" "$log"
t "dpkg-deb -c: binary, unit, config, sysusers" bash -c \
	"for f in ./usr/bin/cwpulse ./etc/cwpulse/cwpulse.toml ./usr/lib/sysusers.d/cwpulse.conf 'lib/systemd/system/cwpulse.service'; do grep -q -- \"\$f\$\" '$work/deb-contents.txt' || { echo missing \$f; exit 1; }; done"
mkdir -p "$work/deb-ctl"
dpkg-deb -e "$deb" "$work/deb-ctl"
t "conffile is /etc/cwpulse/cwpulse.toml" grep -qx /etc/cwpulse/cwpulse.toml "$work/deb-ctl/conffiles"
t "postinst creates the user and enables the unit" bash -c \
	"grep -q 'systemd-sysusers.* cwpulse.conf' '$work/deb-ctl/postinst' && grep -q 'deb-systemd-helper' '$work/deb-ctl/postinst' && grep -q daemon-reload '$work/deb-ctl/postinst'"
t "maintainer scripts are valid sh" bash -c "for f in postinst prerm postrm; do sh -n '$work/deb-ctl/'\$f || exit 1; done"
D=$work/deb-x
t "dpkg -x and run the packaged binary" bash -c "dpkg -x '$deb' '$D' && '$D/usr/bin/cwpulse' --version"
t "packaged unit is the source unit" bash -c \
	"cmp -s packaging/systemd/cwpulse.service \"\$(find '$D' -name cwpulse.service | head -1)\""
# A real dpkg install into a throwaway root, maintainer scripts and all: they
# honour DPKG_ROOT, which --force-script-chrootless sets.
DR=$work/deb-root
mkdir -p "$DR/var/lib/dpkg/info" "$DR/var/lib/dpkg/updates" "$DR/etc"
touch "$DR/var/lib/dpkg/status" "$DR/var/lib/dpkg/available"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$DR/etc/passwd"
printf 'root:x:0:\n' >"$DR/etc/group"
t "dpkg --root install (scripts run chrootless)" \
	dpkg --root="$DR" --force-script-chrootless --force-not-root --force-depends --log=/dev/null -i "$deb"
t "... user cwpulse created in the root" grep -q '^cwpulse:' "$DR/etc/passwd"
t "... unit enabled in the root" test -L "$DR/etc/systemd/system/multi-user.target.wants/cwpulse.service"
t "... dpkg lists the conffile" bash -c "dpkg --root='$DR' --status cwpulse | grep -q '/etc/cwpulse/cwpulse.toml'"
echo "# operator edit" >>"$DR/etc/cwpulse/cwpulse.toml"
t "dpkg --root reinstall keeps the edited conffile" bash -c \
	"dpkg --root='$DR' --force-script-chrootless --force-depends --force-confold --log=/dev/null -i '$deb' && grep -q 'operator edit' '$DR/etc/cwpulse/cwpulse.toml'"
t "dpkg --root purge" bash -c \
	"dpkg --root='$DR' --force-script-chrootless --log=/dev/null --purge cwpulse && test ! -e '$DR/usr/bin/cwpulse' -a ! -e '$DR/etc/cwpulse/cwpulse.toml' -a ! -e '$DR/var/lib/cwpulse'"

# --- .rpm ------------------------------------------------------------------------------

section ".rpm"
rpm -qip "$rpmf" >"$work/rpm-info.txt" 2>&1
rpm -qlp "$rpmf" >"$work/rpm-list.txt" 2>&1
cp "$work/rpm-info.txt" "$log"
t "rpm -qip: name, arch x86_64" bash -c \
	"grep -qE '^Name +: cwpulse' '$work/rpm-info.txt' && grep -qE '^Architecture: x86_64' '$work/rpm-info.txt'"
cp "$work/rpm-list.txt" "$log"
t "rpm -qlp: binary, unit, config, sysusers" bash -c \
	"for f in /usr/bin/cwpulse /usr/lib/systemd/system/cwpulse.service /etc/cwpulse/cwpulse.toml /usr/lib/sysusers.d/cwpulse.conf; do grep -qx \"\$f\" '$work/rpm-list.txt' || { echo missing \$f; exit 1; }; done"
t "config is %config(noreplace)" bash -c "rpm -qp --configfiles '$rpmf' | grep -qx /etc/cwpulse/cwpulse.toml && rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' '$rpmf' | grep -qx 'cn /etc/cwpulse/cwpulse.toml'"
t "scriptlets create the user and reload systemd" bash -c \
	"rpm -qp --scripts '$rpmf' >'$log' && grep -q systemd-sysusers '$log' && grep -q daemon-reload '$log' && grep -q 'disable --now' '$log'"
t "requires systemd and ca-certificates, no shared libraries" bash -c \
	"rpm -qp --requires '$rpmf' >'$log' && grep -q '^systemd' '$log' && grep -q '^ca-certificates' '$log' && ! grep -q '\\.so' '$log'"
RX=$work/rpm-x
mkdir -p "$RX"
t "rpm2cpio extract and run the packaged binary" bash -c \
	"cd '$RX' && rpm2cpio '$rpmf' | cpio -idm --quiet && ./usr/bin/cwpulse --version"
t "packaged unit is the source unit" cmp -s packaging/systemd/cwpulse.service "$RX/usr/lib/systemd/system/cwpulse.service"

# --- aarch64 -------------------------------------------------------------------------------

section "aarch64"
if [[ $aarch64 == 1 ]]; then
	abin=$dist/cwpulse-linux-aarch64
	t "aarch64 binary is static and stripped" bash -c "file '$abin' | grep -E 'ARM aarch64.*static(ally|-pie) linked.*stripped'"
	t_exit "qemu-aarch64: cwpulse --version" 0 "^cwpulse $version" qemu-aarch64 "$abin" --version
	t_exit "qemu-aarch64: cwpulse once" 0 '"MetricName": "CPUUtilization"' \
		timeout 120 qemu-aarch64 "$abin" once --config "$work/identity.toml"
	t "aarch64 .deb is arm64" bash -c "dpkg-deb -f '$dist/cwpulse_${version}-1_arm64.deb' Architecture | grep -qx arm64"
	t "aarch64 .rpm is aarch64" bash -c "rpm -qp --qf '%{ARCH}' '$dist/cwpulse-${version}-1.aarch64.rpm' | grep -qx aarch64"
	R4=$work/root4
	mkdir -p "$R4"
	(cd "$dist" && sha256sum cwpulse-linux-aarch64 >"$work/a64.sum")
	t_exit "install.sh --arch aarch64 from the release dir" 0 'aarch64 build on a x86_64 machine' \
		bash install.sh --root "$R4" --url "file://$dist" --arch aarch64
	t "aarch64 binary installed" cmp -s "$abin" "$R4/usr/local/bin/cwpulse"
else
	echo "skipped (CWPULSE_TEST_AARCH64=0)"
fi

# --- real systemd ---------------------------------------------------------------------------

section "real systemd (systemd-nspawn, private network)"
if [[ ${CWPULSE_TEST_SYSTEMD:-1} == 1 ]]; then
	e2e_started=$(date +%s)
	rc=0
	tests/packaging/systemd-e2e.sh "$bin" "$deb" >"$work/e2e.txt" 2>"$log" || rc=$?
	while IFS= read -r line; do
		case $line in
		"ok - "*) ok "systemd: ${line#ok - }" ;;
		"not ok - "*) not_ok "systemd: ${line#not ok - }" ;;
		esac
	done <"$work/e2e.txt"
	if [[ $rc != 0 ]] && ! grep -q '^not ok' "$work/e2e.txt"; then
		not_ok "systemd: container run (exit $rc)"
	fi
	echo "(systemd end-to-end: $(($(date +%s) - e2e_started)) s)"
else
	echo "skipped (CWPULSE_TEST_SYSTEMD=0)"
fi

# --- summary -----------------------------------------------------------------------------

echo
for n in "${failed_names[@]}"; do echo "FAILED: $n"; done
echo "packaging tests took $(($(date +%s) - started)) s"
echo "$pass passed, $fail failed"
[[ $fail == 0 ]]
