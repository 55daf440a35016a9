#!/usr/bin/env bash
# Install syncmgr on a fresh Debian 12 machine: the Debian packages it builds
# and tests with, a release build, and `syncmgr` in /usr/local/bin.
#   ./install.sh              packages + build + install
#   ./install.sh --deps-only  packages only (used by tests/run.sh)
set -euo pipefail
cd "$(dirname "$0")"

packages=(
	build-essential meson ninja-build pkg-config cmake
	libcurl4-openssl-dev libssh2-1-dev libprotobuf-c-dev protobuf-c-compiler
	libnng-dev libssl-dev libexpat1-dev libcmocka-dev
	openssh-server openssh-client rsync rclone iproute2 nftables curl
	python3 python3-prometheus-client media-types time clang-format util-linux clang libclang-rt-14-dev strace
	nodejs
)
# The tests' s3rver (tests/servers/s3rver.sh) runs on node and comes from
# npm. A nodejs that brings its own npm (NodeSource's) conflicts with
# Debian's npm package: ask for that only when there is no npm.
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "install.sh: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# Packages must not start their services (openssh-server would listen on
	# 0.0.0.0:22): the tests start their own servers on loopback.
	policy=/usr/sbin/policy-rc.d
	ours_policy=false
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
		$sudo chmod 755 "$policy"
		ours_policy=true
	fi
	rc=0
	{ $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; } </dev/null || rc=$?
	if $ours_policy; then $sudo rm -f "$policy"; fi
	[ "$rc" -eq 0 ] || exit "$rc"
fi
[ "${1:-}" = "--deps-only" ] && exit 0

if [ ! -f build-release/build.ninja ]; then
	meson setup build-release --buildtype=release --prefix=/usr/local
fi
ninja -C build-release
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo meson install -C build-release --no-rebuild --quiet
echo "install.sh: $(command -v syncmgr) ($(syncmgr --version))" >&2
