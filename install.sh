#!/usr/bin/env bash
# install.sh: install, upgrade or remove the cwpulse agent on a systemd host,
# or lay it out in an image tree (--root). Safe to run again: files that are
# already right are left alone, and a config the operator edited is kept.
#
#   install.sh --url https://HOST/cwpulse/v0.1.0                 # fetch, verify, install, start
#   install.sh --binary ./cwpulse --health-url http://127.0.0.1:8080/health
#   install.sh --url ... --no-start                              # AMI bake: enable, don't start
#   install.sh --uninstall [--purge]
#
# Run `install.sh --help` for every option; packaging/README.md documents the
# release layout this script downloads from.
set -euo pipefail

# Exit codes (sysexits.h), so callers such as user-data can tell failures apart.
readonly EX_USAGE=64 EX_DATAERR=65 EX_NOINPUT=66 EX_UNAVAILABLE=69 EX_SOFTWARE=70
readonly EX_NOPERM=77 EX_CONFIG=78

readonly NAME=cwpulse
readonly BIN_PATH=/usr/local/bin/cwpulse
readonly UNIT_PATH=/etc/systemd/system/cwpulse.service
readonly WANTS_PATH=/etc/systemd/system/multi-user.target.wants/cwpulse.service
readonly SYSUSERS_PATH=/etc/sysusers.d/cwpulse.conf
readonly CONF_DIR=/etc/cwpulse
readonly CONF_PATH=/etc/cwpulse/cwpulse.toml
# sha256 of the config this script last wrote. A config whose hash differs was
# edited by someone else and is never overwritten.
readonly CONF_HASH_PATH=/etc/cwpulse/.cwpulse.toml.installed-sha256
readonly STATE_DIR=/var/lib/cwpulse

log() { printf '%s: %s\n' "$NAME-install" "$*" >&2; }
die() {
	local code=$1
	shift
	printf '%s: error: %s\n' "$NAME-install" "$*" >&2
	exit "$code"
}

usage() {
	cat <<'EOF'
Usage: install.sh [OPTIONS]

Install cwpulse (binary, hardened systemd unit, system user, config, state
directory), enable it and start it when systemd is running.

Where the binary comes from (one of):
  --binary PATH         install this binary
  --url URL             release directory to download from (http://, https://,
                        file:// or a local path); default: $CWPULSE_RELEASE_URL.
                        Downloads cwpulse-linux-<arch> and verifies it against
                        SHA256SUMS in the same directory.
  --sha256 HEX          expected sha256 of the binary (pins it independently of
                        SHA256SUMS; also checked with --binary)

Config (/etc/cwpulse/cwpulse.toml):
  --namespace NS        CloudWatch namespace (default: CWPulse)
  --health-url URL      probe this HTTP health route (default: CPU only)
  --high-resolution     publish 1-second storage-resolution metrics
  --config FILE         install FILE as the config (ignores the three above)
  A config that was edited after this script wrote it is never overwritten:
  the new one is written beside it as cwpulse.toml.new.

Modes:
  --no-start            install and enable, but do not start; stop it if it is
                        running and empty /var/lib/cwpulse (for AMI baking)
  --root DIR            install into the tree DIR instead of / (image
                        builders, tests); enables by symlink, starts nothing
  --arch ARCH           x86_64 or aarch64 (default: this machine, uname -m)
  --uninstall           stop and remove the binary, unit and sysusers entry
  --purge               with --uninstall: also remove config and state/spool
  --print-config        print the config these options would write, and exit
  --print-unit          print the systemd unit this script installs, and exit
  --print-sysusers      print the sysusers.d entry for the cwpulse user, and exit
  -h, --help            this help

Exit codes: 0 ok, 64 usage, 65 checksum mismatch, 66 binary not found or
download failed, 69 unsupported architecture or no systemd, 77 not root,
78 invalid config.
EOF
}

# The unit. packaging/systemd/cwpulse.service is the source; this copy only
# differs in the binary path (/usr/local/bin, since install.sh is a local
# install). tests/packaging/run.sh fails if the two drift apart.
unit_text() {
	cat <<'EOF'
# cwpulse: CPU and HTTP health metrics to CloudWatch.
#
# Installed by the .deb/.rpm as /usr/lib/systemd/system/cwpulse.service and by
# install.sh as /etc/systemd/system/cwpulse.service (with ExecStart pointing at
# /usr/local/bin). Local changes belong in a drop-in:
#   systemctl edit cwpulse
[Unit]
Description=cwpulse CloudWatch CPU and health metrics agent
Wants=network-online.target
After=network-online.target
# A crash loop gives up after 5 starts in 5 minutes instead of hammering IMDS.
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=exec
User=cwpulse
Group=cwpulse
# Validate the config and log the effective config before every start. The
# "-" is deliberate: RestartPreventExitStatus= only looks at the main process
# (systemd issue 11868), so a failing ExecStartPre would be retried until the
# start limit. Ignoring it here lets `run` re-validate and exit 78, which is
# never restarted.
ExecStartPre=-/usr/local/bin/cwpulse check
# Random 0..CWPULSE_START_JITTER seconds before starting, so a fleet launched
# together does not publish in the same second. Set it to 0 in a drop-in to
# restart without waiting.
Environment=CWPULSE_START_JITTER=30
ExecStartPre=/bin/sh -c 'exec sleep "$$(shuf -i 0-$${CWPULSE_START_JITTER:-30} -n 1)"'
ExecStart=/usr/local/bin/cwpulse run
Restart=on-failure
RestartSec=10s
RestartPreventExitStatus=78
# The agent bounds its shutdown flush at about 5 s; leave room for it.
TimeoutStopSec=20s
TimeoutStartSec=90s

# State: the spool of unsent datums lives in /var/lib/cwpulse/spool.
StateDirectory=cwpulse
StateDirectoryMode=0750
WorkingDirectory=/var/lib/cwpulse
UMask=0077

# Sandbox. The agent reads /proc/stat and /etc/cwpulse, talks HTTP to IMDS
# (169.254.169.254, fd00:ec2::254) and the local health route, HTTPS to
# CloudWatch and Auto Scaling, logs to the journal, and writes its spool.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
PrivateIPC=yes
PrivateMounts=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelLogs=yes
ProtectKernelModules=yes
ProtectKernelTunables=yes
ProtectControlGroups=yes
ProtectProc=invisible
# ProcSubset=pid would hide /proc/stat, which is the whole point.
ProcSubset=all
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
DevicePolicy=closed
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

# A runaway agent must not hurt the instance it measures.
MemoryMax=128M

[Install]
WantedBy=multi-user.target
EOF
}

sysusers_text() {
	printf '%s\n' \
		'# cwpulse runs as this unprivileged system user (see cwpulse.service).' \
		'u cwpulse - "cwpulse metrics agent" /var/lib/cwpulse /usr/sbin/nologin'
}

# TOML basic string: escape backslash and double quote; control characters
# are rejected by the caller.
toml_string() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}

config_text() {
	cat <<EOF
# cwpulse configuration. Check it with: cwpulse check --config /etc/cwpulse/cwpulse.toml
# Keys left out take their defaults; see the README for the full reference.
namespace = $(toml_string "$namespace")

[cpu]
interval = "1s"
EOF
	if [[ -n $health_url ]]; then
		cat <<EOF

[[health]]
name = "app"
url = $(toml_string "$health_url")
interval = "10s"
timeout = "2s"
EOF
	else
		cat <<'EOF'

# Probe a local HTTP health route as well (repeat the table for more routes):
# [[health]]
# name = "app"
# url = "http://127.0.0.1:8080/health"
# interval = "10s"
# timeout = "2s"
EOF
	fi
	# High resolution exists for 10 s alarms, so it comes with 10 s windows.
	local publish_interval=60s
	[[ $high_resolution == true ]] && publish_interval=10s
	cat <<EOF

[publish]
interval = "$publish_interval"
high_resolution = $high_resolution
# Series shared by the whole Auto Scaling group (per instance outside one).
# Add ["InstanceId"] for per-instance series: \$0.30 a metric per instance-month.
dimension_sets = [["AutoScalingGroupName"]]
EOF
}

# --- options -----------------------------------------------------------------

binary=""
url=${CWPULSE_RELEASE_URL:-}
want_sha256=""
namespace=CWPulse
health_url=""
high_resolution=false
config_file=""
no_start=false
root=/
arch=""
uninstall=false
purge=false
print=""

need_arg() { [[ $# -ge 2 && -n $2 ]] || die $EX_USAGE "$1 needs a value (see --help)"; }

while [[ $# -gt 0 ]]; do
	opt=$1
	# Accept --opt=value as well as --opt value.
	if [[ $opt == --*=* ]]; then
		set -- "${opt%%=*}" "${opt#*=}" "${@:2}"
		opt=$1
	fi
	case $opt in
	--binary) need_arg "$@"; binary=$2; shift ;;
	--url) need_arg "$@"; url=$2; shift ;;
	--sha256) need_arg "$@"; want_sha256=$2; shift ;;
	--namespace) need_arg "$@"; namespace=$2; shift ;;
	--health-url) need_arg "$@"; health_url=$2; shift ;;
	--high-resolution) high_resolution=true ;;
	--config) need_arg "$@"; config_file=$2; shift ;;
	--no-start) no_start=true ;;
	--root) need_arg "$@"; root=$2; shift ;;
	--arch) need_arg "$@"; arch=$2; shift ;;
	--uninstall) uninstall=true ;;
	--purge) purge=true ;;
	--print-config) print=config ;;
	--print-unit) print=unit ;;
	--print-sysusers) print=sysusers ;;
	-h | --help) usage; exit 0 ;;
	*) die $EX_USAGE "unknown option: $opt (see --help)" ;;
	esac
	shift
done

for v in "$namespace" "$health_url"; do
	[[ $v != *[[:cntrl:]]* ]] || die $EX_USAGE "control characters are not allowed in --namespace or --health-url"
done
[[ -z $health_url || $health_url == http://* || $health_url == https://* ]] ||
	die $EX_USAGE "--health-url must be an http:// or https:// URL: $health_url"
[[ -z $want_sha256 || $want_sha256 =~ ^[0-9a-fA-F]{64}$ ]] ||
	die $EX_USAGE "--sha256 must be 64 hex digits"
want_sha256=${want_sha256,,}
if $purge && ! $uninstall; then die $EX_USAGE "--purge only goes with --uninstall"; fi

case $print in
config) config_text; exit 0 ;;
unit) unit_text; exit 0 ;;
sysusers) sysusers_text; exit 0 ;;
esac

# --- preflight: everything that can fail is checked before anything is written

[[ -d $root ]] || die $EX_USAGE "--root $root is not a directory"
root=$(cd "$root" && pwd -P)
live=false
[[ $root == / ]] && live=true
R=${root%/} # prefix for every path we touch; empty for /

if $live && [[ $(id -u) != 0 ]]; then
	die $EX_NOPERM "must run as root (try: sudo $0 ...); --root DIR installs into a tree without it"
fi

systemctl=${CWPULSE_SYSTEMCTL:-systemctl}
systemd_running=false
if $live; then
	command -v "$systemctl" >/dev/null 2>&1 ||
		die $EX_UNAVAILABLE "no systemd: cwpulse runs as a systemd service and this host has no systemctl (use --root DIR to only lay out files)"
	[[ -d /run/systemd/system ]] && systemd_running=true
	# A package owns its files; don't fight it.
	if { command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W -f='${Status}' cwpulse 2>/dev/null | grep -q 'ok installed'; } ||
		{ command -v rpm >/dev/null 2>&1 && rpm -q cwpulse >/dev/null 2>&1; }; then
		die $EX_SOFTWARE "cwpulse is installed from a .deb/.rpm package; upgrade or remove it with apt/dnf instead"
	fi
fi

# systemctl for the live system; a no-op message when systemd is not running.
sysctl_live() {
	if $live && $systemd_running; then
		"$systemctl" "$@"
	fi
}

if $uninstall; then
	if $live; then
		if $systemd_running; then
			"$systemctl" disable --now cwpulse.service >/dev/null 2>&1 || true
		else
			"$systemctl" disable cwpulse.service >/dev/null 2>&1 || true
		fi
	fi
	removed=0
	for f in "$BIN_PATH" "$UNIT_PATH" "$WANTS_PATH" "$SYSUSERS_PATH"; do
		if [[ -e $R$f || -L $R$f ]]; then
			rm -f -- "$R$f"
			log "removed $f"
			removed=$((removed + 1))
		fi
	done
	if $purge; then
		for d in "$CONF_DIR" "$STATE_DIR" /var/lib/private/cwpulse; do
			if [[ -e $R$d || -L $R$d ]]; then
				rm -rf -- "$R$d"
				log "purged $d"
				removed=$((removed + 1))
			fi
		done
		log "the system user cwpulse is kept (remove it with: userdel cwpulse)"
	else
		log "kept $CONF_DIR and $STATE_DIR (add --purge to remove them)"
	fi
	sysctl_live daemon-reload || true
	[[ $removed -gt 0 ]] || log "nothing to remove: cwpulse was not installed by install.sh in $root"
	log "uninstalled"
	exit 0
fi

host_arch() {
	local m
	m=$(uname -m)
	case $m in
	x86_64 | amd64) echo x86_64 ;;
	aarch64 | arm64) echo aarch64 ;;
	*) echo "$m" ;;
	esac
}
machine_arch=$(host_arch)
[[ -n $arch ]] || arch=$machine_arch
case $arch in
amd64) arch=x86_64 ;;
arm64) arch=aarch64 ;;
esac
case $arch in
x86_64 | aarch64) ;;
*) die $EX_UNAVAILABLE "unsupported architecture: $arch (cwpulse ships x86_64 and aarch64 builds)" ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cwpulse-install.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

fetch() { # URL DEST
	local src=$1 dest=$2
	case $src in
	file://*) cp -- "${src#file://}" "$dest" 2>/dev/null ;;
	http://* | https://*)
		if command -v curl >/dev/null 2>&1; then
			curl -fsSL --retry 5 --retry-delay 2 --connect-timeout 10 -o "$dest" -- "$src"
		elif command -v wget >/dev/null 2>&1; then
			wget -q --tries=5 --timeout=10 -O "$dest" -- "$src"
		else
			die $EX_UNAVAILABLE "need curl or wget to download $src"
		fi
		;;
	*://*) die $EX_USAGE "unsupported URL scheme: $src (use https://, http:// or file://)" ;;
	*) cp -- "$src" "$dest" 2>/dev/null ;;
	esac
}

sha256_of() { sha256sum -- "$1" | cut -d' ' -f1; }

new_bin=$tmp/cwpulse
if [[ -n $binary ]]; then
	[[ -f $binary ]] || die $EX_NOINPUT "--binary $binary: no such file"
	cp -- "$binary" "$new_bin"
	source_desc=$binary
else
	[[ -n $url ]] || die $EX_USAGE "give --binary PATH, or --url URL (or set CWPULSE_RELEASE_URL) to download a release"
	base=${url%/}
	asset=cwpulse-linux-$arch
	fetch "$base/$asset" "$new_bin" || die $EX_NOINPUT "could not download $base/$asset"
	if [[ -z $want_sha256 ]]; then
		fetch "$base/SHA256SUMS" "$tmp/SHA256SUMS" || die $EX_NOINPUT "could not download $base/SHA256SUMS"
		# sha256sum format: "<hex>  <name>" (or "<hex> *<name>" in binary mode).
		want_sha256=$(awk -v f="$asset" '$2 == f || $2 == "*" f { print tolower($1); exit }' "$tmp/SHA256SUMS")
		[[ -n $want_sha256 ]] || die $EX_DATAERR "checksum mismatch: $base/SHA256SUMS has no entry for $asset"
	fi
	source_desc=$base/$asset
fi
if [[ -n $want_sha256 ]]; then
	got=$(sha256_of "$new_bin")
	[[ $got == "$want_sha256" ]] ||
		die $EX_DATAERR "checksum mismatch for $source_desc: expected $want_sha256, got $got; nothing was installed"
	log "verified sha256 $got"
fi

# The ELF header says which machine a binary is for (e_machine at offset 18):
# catch an x86_64 build about to be installed on Graviton before systemd does.
elf_arch() {
	local magic machine
	magic=$(od -An -tx1 -N4 -- "$1" | tr -d ' \n')
	[[ $magic == 7f454c46 ]] || { echo "not-elf"; return; }
	machine=$(od -An -tx1 -j18 -N2 -- "$1" | tr -d ' \n')
	case $machine in
	3e00) echo x86_64 ;;
	b700) echo aarch64 ;;
	*) echo "elf-$machine" ;;
	esac
}
bin_arch=$(elf_arch "$new_bin")
[[ $bin_arch == "$arch" ]] ||
	die $EX_UNAVAILABLE "$source_desc is not an $arch Linux binary (it is: $bin_arch)"
chmod 0755 "$new_bin"

runnable=false
if [[ $arch == "$machine_arch" ]]; then
	version=$("$new_bin" --version 2>&1) || die $EX_NOINPUT "$source_desc does not run: $version"
	runnable=true
	log "binary: $version ($arch)"
else
	log "binary: $arch build on a $machine_arch machine; not running it here"
fi

new_conf=$tmp/cwpulse.toml
if [[ -n $config_file ]]; then
	[[ -f $config_file ]] || die $EX_NOINPUT "--config $config_file: no such file"
	if [[ -n $health_url || $namespace != CWPulse || $high_resolution != false ]]; then
		log "--config given: ignoring --namespace, --health-url and --high-resolution"
	fi
	cp -- "$config_file" "$new_conf"
else
	config_text >"$new_conf"
fi
if $runnable; then
	if ! out=$("$new_bin" check --config "$new_conf" 2>&1); then
		printf '%s\n' "$out" >&2
		die $EX_CONFIG "the config is invalid (cwpulse check failed); nothing was installed"
	fi
fi

# --- install -------------------------------------------------------------------

# put SRC DEST MODE: replace DEST atomically unless it already has this content.
# Prints "changed" or "unchanged" on stdout.
put() {
	local src=$1 dest=$R$2 mode=$3
	mkdir -p -- "$(dirname -- "$dest")"
	if [[ -f $dest ]] && cmp -s -- "$src" "$dest"; then
		chmod "$mode" -- "$dest"
		echo unchanged
		return
	fi
	install -m "$mode" -- "$src" "$dest.cwpulse-tmp"
	mv -f -- "$dest.cwpulse-tmp" "$dest"
	echo changed
}

bin_state=$(put "$new_bin" "$BIN_PATH" 0755)
log "$BIN_PATH: $bin_state"

unit_text >"$tmp/cwpulse.service"
unit_state=$(put "$tmp/cwpulse.service" "$UNIT_PATH" 0644)
log "$UNIT_PATH: $unit_state"

sysusers_text >"$tmp/sysusers.conf"
put "$tmp/sysusers.conf" "$SYSUSERS_PATH" 0644 >/dev/null

# The system user.
passwd_entry() { awk -F: '$1 == "cwpulse" { print $3 ":" $4 }' "$R/etc/passwd" 2>/dev/null || true; }
if [[ -z $(passwd_entry) ]]; then
	if $live; then
		if command -v systemd-sysusers >/dev/null 2>&1; then
			systemd-sysusers "$SYSUSERS_PATH"
		elif command -v useradd >/dev/null 2>&1; then
			useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
				--shell /usr/sbin/nologin --comment "cwpulse metrics agent" cwpulse
		else
			die $EX_UNAVAILABLE "cannot create the cwpulse user: neither systemd-sysusers nor useradd found"
		fi
		log "created system user cwpulse"
	elif [[ -f $R/etc/passwd ]] && command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers --root="$root" "$SYSUSERS_PATH" && log "created system user cwpulse in $root"
	else
		log "user cwpulse will be created at first boot by systemd-sysusers ($SYSUSERS_PATH)"
	fi
fi

# Config: never overwrite an operator's edit.
mkdir -p -- "$R$CONF_DIR"
chmod 0755 -- "$R$CONF_DIR"
conf_state=unchanged
new_sha=$(sha256_of "$new_conf")
if [[ ! -e $R$CONF_PATH ]]; then
	put "$new_conf" "$CONF_PATH" 0644 >/dev/null
	conf_state=changed
	log "$CONF_PATH: written"
elif cmp -s -- "$new_conf" "$R$CONF_PATH"; then
	log "$CONF_PATH: unchanged"
else
	cur_sha=$(sha256_of "$R$CONF_PATH")
	last_sha=$(cat -- "$R$CONF_HASH_PATH" 2>/dev/null || true)
	if [[ $cur_sha == "$last_sha" ]]; then
		put "$new_conf" "$CONF_PATH" 0644 >/dev/null
		conf_state=changed
		log "$CONF_PATH: updated"
	else
		put "$new_conf" "$CONF_PATH.new" 0644 >/dev/null
		log "$CONF_PATH was edited locally and is kept; the new config is in $CONF_PATH.new (compare: diff $CONF_PATH $CONF_PATH.new)"
		new_sha=""
	fi
fi
if [[ -n $new_sha ]]; then
	[[ $(cat -- "$R$CONF_HASH_PATH" 2>/dev/null) == "$new_sha" ]] ||
		printf '%s\n' "$new_sha" >"$R$CONF_HASH_PATH"
	rm -f -- "$R$CONF_PATH.new"
fi

# State directory. systemd's StateDirectory= creates and chowns it at start
# too; creating it here lets `ls` show where the spool goes right away.
mkdir -p -- "$R$STATE_DIR"
chmod 0750 -- "$R$STATE_DIR"
owner=$(passwd_entry)
if [[ -n $owner && $(id -u) == 0 ]]; then
	chown "$owner" -- "$R$STATE_DIR"
fi

if $no_start; then
	# An image must not carry the bake instance's spool or cached identity.
	if $systemd_running && "$systemctl" is-active --quiet cwpulse.service; then
		"$systemctl" stop cwpulse.service
		log "stopped cwpulse for baking"
	fi
	find "$R$STATE_DIR" -mindepth 1 -delete
	rm -rf -- "$R/var/lib/private/cwpulse"
	log "$STATE_DIR emptied for baking"
fi

# Enable.
if $live; then
	sysctl_live daemon-reload
	"$systemctl" enable cwpulse.service >/dev/null 2>&1 ||
		die $EX_SOFTWARE "systemctl enable cwpulse.service failed"
else
	if [[ $(readlink -- "$R$WANTS_PATH" 2>/dev/null) != "$UNIT_PATH" ]]; then
		mkdir -p -- "$(dirname -- "$R$WANTS_PATH")"
		ln -sfn -- "$UNIT_PATH" "$R$WANTS_PATH"
	fi
fi
log "enabled cwpulse.service"

# Start or restart.
if ! $live; then
	log "installed into $root; nothing started"
elif $no_start; then
	log "installed and enabled, not started (--no-start): it starts on the next boot"
elif ! $systemd_running; then
	log "systemd is not running here; cwpulse is enabled and starts on the next boot"
elif ! "$systemctl" is-active --quiet cwpulse.service; then
	# --no-block: the unit waits a random 0-30 s before its first sample.
	"$systemctl" start --no-block cwpulse.service
	log "started cwpulse (first sample within 30 s); follow it with: journalctl -u cwpulse -f"
elif [[ $bin_state == changed || $unit_state == changed || $conf_state == changed ]]; then
	"$systemctl" restart --no-block cwpulse.service
	log "restarted cwpulse to pick up the changes"
else
	log "cwpulse is running and up to date"
fi
