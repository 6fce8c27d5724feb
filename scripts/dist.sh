#!/usr/bin/env bash
# dist.sh: build the release artefacts into dist/:
#   cwpulse-linux-x86_64, cwpulse-linux-aarch64   static musl binaries
#   cwpulse_<v>-1_amd64.deb, cwpulse_<v>-1_arm64.deb
#   cwpulse-<v>-1.x86_64.rpm, cwpulse-<v>-1.aarch64.rpm
#   install.sh, SHA256SUMS
# That directory, uploaded as is, is the release layout install.sh --url reads
# (packaging/README.md).
#
#   scripts/dist.sh                 both arches
#   scripts/dist.sh --arch x86_64   one arch (repeatable)
#   scripts/dist.sh --deps-only     install the build tools and exit
#   DIST_DIR=out scripts/dist.sh    somewhere else than dist/
#
# Why static musl: one binary per arch that runs on Amazon Linux 2023
# (glibc 2.34), Amazon Linux 2 (2.26), Ubuntu 22.04+ and Debian alike. A gnu
# build linked on this Debian 12 (glibc 2.36) host would carry whatever
# symbol versions this glibc hands out, which an older instance may lack.
set -euo pipefail

cd "$(dirname "$0")/.."
DIST_DIR=${DIST_DIR:-dist}
arches=()
deps_only=false
while [[ $# -gt 0 ]]; do
	case $1 in
	--arch) arches+=("$2"); shift ;;
	--arch=*) arches+=("${1#*=}") ;;
	--deps-only) deps_only=true ;;
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	*) echo "dist.sh: unknown option $1" >&2; exit 64 ;;
	esac
	shift
done
[[ ${#arches[@]} -gt 0 ]] || arches=(x86_64 aarch64)

log() { printf 'dist: %s\n' "$*" >&2; }

# Build tools, installed once; later runs only look. Debian/Ubuntu hosts.
ensure_deps() {
	local pkgs=() p
	command -v musl-gcc >/dev/null || pkgs+=(musl-tools)
	for a in "${arches[@]}"; do
		[[ $a == aarch64 ]] || continue
		command -v aarch64-linux-gnu-gcc >/dev/null || pkgs+=(gcc-aarch64-linux-gnu)
		command -v aarch64-linux-gnu-strip >/dev/null || pkgs+=(binutils-aarch64-linux-gnu)
	done
	command -v dpkg-deb >/dev/null || pkgs+=(dpkg)
	command -v sha256sum >/dev/null || pkgs+=(coreutils)
	if [[ ${#pkgs[@]} -gt 0 ]]; then
		log "apt-get install ${pkgs[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
	fi
	local installed
	installed=$(rustup target list --installed)
	for a in "${arches[@]}"; do
		p=$a-unknown-linux-musl
		grep -qx "$p" <<<"$installed" || { log "rustup target add $p"; rustup target add "$p"; }
	done
	command -v cargo-deb >/dev/null || { log "cargo install cargo-deb"; cargo install --locked cargo-deb; }
	command -v cargo-generate-rpm >/dev/null || { log "cargo install cargo-generate-rpm"; cargo install --locked cargo-generate-rpm; }
}

ensure_deps
$deps_only && exit 0

# ring builds C and assembly: point the cc crate and rustc at the cross tools.
export CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-musl-gcc}
export CC_aarch64_unknown_linux_musl=${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc}
export AR_aarch64_unknown_linux_musl=${AR_aarch64_unknown_linux_musl:-aarch64-linux-gnu-ar}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-aarch64-linux-gnu-gcc}
# Reproducible timestamps in both packages.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

mkdir -p "$DIST_DIR"
version=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"name":"cwpulse","version":"\([^"]*\)".*/\1/p')
[[ -n $version ]] || { log "cannot read the version from Cargo.toml"; exit 1; }

for arch in "${arches[@]}"; do
	case $arch in
	x86_64) deb_arch=amd64 strip=strip ;;
	aarch64) deb_arch=arm64 strip=aarch64-linux-gnu-strip ;;
	*) log "unsupported arch $arch"; exit 64 ;;
	esac
	target=$arch-unknown-linux-musl
	# The size-focused [profile.release] (opt-level "s", LTO, one codegen
	# unit, panic=abort, strip) lives in Cargo.toml.
	log "building $target"
	cargo build --release --locked --target "$target"
	# The packagers look under ./target (cargo-generate-rpm's asset paths are
	# literal); with CARGO_TARGET_DIR elsewhere (a build cache), put the fresh
	# binary there too, so no stale one is ever packaged.
	built=${CARGO_TARGET_DIR:-target}/$target/release/cwpulse
	bin=target/$target/release/cwpulse
	if [[ $(realpath -m "$built") != $(realpath -m "$bin") ]]; then
		mkdir -p "$(dirname "$bin")"
		cp "$built" "$bin"
	fi
	# strip = true in the profile already does this; keep it if that changes.
	"$strip" "$bin"
	cp "$bin" "$DIST_DIR/cwpulse-linux-$arch"

	log "packaging $arch .deb"
	cargo deb --no-build --no-strip --target "$target" \
		--output "$DIST_DIR/cwpulse_${version}-1_${deb_arch}.deb" >/dev/null
	log "packaging $arch .rpm"
	cargo generate-rpm --target "$target" --auto-req no \
		--output "$DIST_DIR/cwpulse-${version}-1.${arch}.rpm"
done

cp install.sh "$DIST_DIR/install.sh"
chmod 0755 "$DIST_DIR/install.sh" "$DIST_DIR"/cwpulse-linux-*
(
	cd "$DIST_DIR"
	# Everything but the sums themselves, in a stable order.
	find . -maxdepth 1 -type f ! -name 'SHA256SUMS*' -printf '%f\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS.tmp
	mv SHA256SUMS.tmp SHA256SUMS
)
log "wrote $DIST_DIR:"
(cd "$DIST_DIR" && ls -l)
