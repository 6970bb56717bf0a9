#!/bin/bash
# SPDX-License-Identifier: MIT
#
# deps.sh - installs what building and testing mqbus needs on Debian 12
# (or a Debian-like system): compiler, autotools, the libraries, and the
# tools the tests use.  Does nothing when everything is there already, so
# it is safe offline and cheap to run every time.
#
#   scripts/deps.sh          install what is missing (needs root)
#   scripts/deps.sh --check  only say what is missing (exit 1 if anything)

set -euo pipefail

PACKAGES=(
	build-essential autoconf automake libtool pkg-config make
	libevent-dev libsystemd-dev check libinih-dev
	systemd      # systemd-analyze (tests/systemd.sh); systemd-journald,
	             # journalctl, systemd-id128 (tests/journal.sh)
	debhelper lintian dpkg-dev # the Debian packages (tests/debian.sh)
	dh-python    # python3-mqbus: dh_python3 (its dependencies, byte-compiling)
	python3      # JSON checks in the tests
	python3-pytest  # tests/python.sh
	util-linux   # unshare, nsenter, setpriv, flock, prlimit
	iproute2     # ip: veth pairs of tests/bridge-hosts.sh
	passwd       # useradd, for tests/multiuser.sh
	procps       # /bin/kill, used by the unit's ExecReload
	coreutils gzip tar git # git: tests/debian.sh copies the files git knows
	libmosquitto-dev # the MQTT bridge of mqbusd (configure --with-mqtt)
	mosquitto mosquitto-clients # tests/bridge.sh: a real broker,
	             # mosquitto_sub/mosquitto_pub
	openssl      # tests/bridge.sh, bridge-tls.sh: test CAs and certificates
	clang libclang-rt-14-dev # the libFuzzer targets (tests/fuzz); the
	             # fuzzer runtime is only a Recommends of clang-14
	dbus-broker  # with mosquitto above: the peers of mqbus-bench
	             # --peers (tests/bench-peers.sh)
)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
	for p in "${PACKAGES[@]}"; do
		if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed$'; then
			missing+=("$p")
		fi
	done
else
	# Not Debian: check the commands and leave the installing to the user.
	for c in cc make autoreconf libtoolize pkg-config python3 unshare \
		setpriv useradd systemd-analyze; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	for m in libevent libsystemd check inih; do
		pkg-config --exists "$m" 2>/dev/null || missing+=("$m (pkg-config)")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "deps.sh: not a Debian system; please install: ${missing[*]}" >&2
		exit 1
	fi
	echo "deps.sh: everything needed is installed"
	exit 0
fi

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps.sh: everything needed is installed"
	exit 0
fi
if [ "${1:-}" = --check ]; then
	echo "deps.sh: missing: ${missing[*]}"
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing: ${missing[*]}" >&2
	echo "deps.sh: run as root, or: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi

echo "deps.sh: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
