#!/bin/bash
# SPDX-License-Identifier: MIT
#
# debian.sh - the Debian packages build, install, run and go away again.
#
#   tests/debian.sh        (as root, on Debian 12; not part of make check)
#
# Copies the tree's files (git ls-files: what is committed plus edits and
# new files not ignored, no build products) to a temporary directory and
# runs dpkg-buildpackage -us -uc -b there with DEB_BUILD_OPTIONS=nocheck
# (make check runs in the other stages of tests/run-tests.sh;
# MQBUS_DEBIAN_CHECK=1 runs it inside the package build too).  Then lintian
# on the .changes (no error allowed), apt-get install ./*.deb, and checks
# of the installed files: the conffile, the units enabled the Debian way,
# the journal catalog, the man pages, the completion, the library's
# pkg-config file.  The INSTALLED /usr/sbin/mqbusd then runs, with the
# installed /etc/mqbus/mqbusd.conf, in a private IPC and mount namespace
# with a fresh mqueue file system, and a pub/sub round trip goes through
# it with the installed /usr/bin/mqbusctl, with a program built against
# libmqbus-dev and with the installed Python module of python3-mqbus
# (run by Debian's /usr/bin/python3, whatever python3 PATH finds first).
# Last, apt-get purge -y, and checks that nothing is left.
#
# Whatever happens, the exit trap purges what the test installed (the
# built packages and any dependency apt-get pulled in for them) and
# removes the temporary directory.  Packages of this source already
# installed before the test make it stop without touching them.
#
# Output: TAP lines ("ok N - ..." / "not ok N - ..."), "1..N", and last
# "P passed, F failed"; exit status 0 only if nothing failed.

set -u
export LC_ALL=C
export DEBIAN_FRONTEND=noninteractive

SRC=$(cd "$(dirname "$0")/.." && pwd)
PKGS=(mqbus libmqbus1 libmqbus-dev python3-mqbus)
N=0
PASS=0
FAIL=0
TMP=
INSTALLED=()      # what to purge at the end: ours and what came with them
LOCK=${MQBUS_TEST_LOCK:-/tmp/mqbus-tests.lock}
CHILD=            # a background child the trap must stop first

ok() {
	N=$((N + 1))
	PASS=$((PASS + 1))
	echo "ok $N - $1"
}

# notok NAME [DETAIL...]
notok() {
	local line
	N=$((N + 1))
	FAIL=$((FAIL + 1))
	echo "not ok $N - $1"
	shift
	for line in "$@"; do
		printf '#   %s\n' "$line"
	done
}

# check NAME CMD [ARGS...]: passes if CMD exits 0; its output is shown
# when it does not.
check() {
	local name=$1 out st
	shift
	out=$("$@" 2>&1)
	st=$?
	if [ $st -eq 0 ]; then
		ok "$name"
	else
		notok "$name" "command: $*" "exit status: $st" \
			"output: $(printf '%s' "$out" | tail -c 2000)"
	fi
	return $st
}

# is NAME GOT WANT
is() {
	if [ "$2" = "$3" ]; then
		ok "$1"
		return 0
	fi
	notok "$1" "got:    '$2'" "wanted: '$3'"
	return 1
}

# tail_of FILE: its last 40 lines as diagnostics
tail_of() {
	tail -n 40 "$1" 2>/dev/null | sed 's/^/#   | /'
}

done_() {
	echo "1..$N"
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ] && [ "$N" -gt 0 ]
	exit $?
}

bail() {
	notok "$@"
	done_
}

# The installed packages, one "name:arch" a line, sorted.
installed_set() {
	dpkg-query -W -f='${db:Status-Abbrev} ${Package}:${Architecture}\n' |
		awk '$1 ~ /^.i/ { print $2 }' | sort
}

# Whether package $1 is installed (or half-installed, unpacked, ...).
is_present() {
	local st
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) ||
		return 1
	[ -n "$st" ] && [ "${st:1:1}" != n ]
}

cleanup() {
	local st=$? left=() p
	trap - EXIT INT TERM
	if [ -n "$CHILD" ]; then
		kill -TERM "$CHILD" 2>/dev/null
		wait "$CHILD" 2>/dev/null
	fi
	for p in "${INSTALLED[@]}"; do
		is_present "${p%%:*}" && left+=("$p")
	done
	if [ ${#left[@]} -gt 0 ]; then
		echo "# cleanup: purging ${left[*]}"
		apt-get purge -y "${left[@]}" >"$TMP/cleanup-purge.log" 2>&1 ||
			tail_of "$TMP/cleanup-purge.log"
	fi
	if [ -n "$TMP" ] && [ -d "$TMP" ]; then
		rm -rf "$TMP"
	fi
	exit $st
}

# --------------------------------------------------------------- before

echo "# debian.sh: the Debian packages of $SRC"
if [ "$(id -u)" != 0 ]; then
	bail "runs as root (it installs packages)" "uid is $(id -u)"
fi
missing=()
for c in dpkg-buildpackage dh lintian apt-get git unshare flock cc \
	pkg-config; do
	command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
	bail "tools present" "missing: ${missing[*]}" \
		"scripts/deps.sh installs them (debhelper, lintian, dpkg-dev)"
fi
for p in "${PKGS[@]}" mqbus-dbgsym libmqbus1-dbgsym; do
	if is_present "$p"; then
		bail "no mqbus package installed before the test" \
			"$p is installed: purge it first (apt-get purge $p);" \
			"the test leaves installed packages alone"
	fi
done
if ! git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
	bail "a git checkout" "$SRC is not one: the test copies the files git knows"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqbus-debian.XXXXXX") || exit 99
chmod 755 "$TMP"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir "$TMP/src"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do
		# a file deleted but not yet committed is not copied
		[ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"
	done | tar --null -T - -cf -) | tar -xf - -C "$TMP/src"
check "tree copied" test -f "$TMP/src/debian/control" ||
	done_

want=$(sed -n 's/^AC_INIT(\[mqbus\], \[\([^]]*\)\].*/\1/p' \
	"$TMP/src/configure.ac")
got=$(cd "$TMP/src" && dpkg-parsechangelog -SVersion)
is "debian/changelog's upstream version is configure.ac's" \
	"${got%-*}" "$want"
is "debian/changelog's distribution" \
	"$(cd "$TMP/src" && dpkg-parsechangelog -SDistribution)" unstable

# --------------------------------------------------------------- build

opts="parallel=2"
[ "${MQBUS_DEBIAN_CHECK:-}" = 1 ] || opts="nocheck $opts"
echo "# dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=$opts)"
if ! (cd "$TMP/src" && DEB_BUILD_OPTIONS=$opts \
	dpkg-buildpackage -us -uc -b) >"$TMP/build.log" 2>&1; then
	notok "dpkg-buildpackage -us -uc -b"
	tail_of "$TMP/build.log"
	done_
fi
ok "dpkg-buildpackage -us -uc -b"
debs=("$TMP"/*.deb)
changes=("$TMP"/*.changes)
names=()
for d in "${debs[@]}"; do
	names+=("$(dpkg-deb -f "$d" Package)")
done
for p in "${PKGS[@]}"; do
	if [[ " ${names[*]} " == *" $p "* ]]; then
		ok "package $p built"
	else
		notok "package $p built" "built: ${names[*]}"
	fi
done

# dh_makeshlibs runs dpkg-gensymbols -c4: any difference fails the build
# above; its report must also be empty (no new or missing symbol)
gs=$(grep -E '^dpkg-gensymbols: (warning|error)' "$TMP/build.log")
is "dpkg-gensymbols: no symbol missing or new" "$gs" ""
check "libmqbus1 ships debian/libmqbus1.symbols" \
	sh -c "dpkg-deb --ctrl-tarfile '$TMP'/libmqbus1_*.deb |
		tar -tf - | grep -qx './symbols'"

lintian --pedantic --info "${changes[@]}" >"$TMP/lintian.log" 2>&1
errors=$(grep -c '^E: ' "$TMP/lintian.log")
warnings=$(grep -c '^W: ' "$TMP/lintian.log")
if [ "$errors" -eq 0 ]; then
	ok "lintian: no error ($warnings warnings)"
else
	notok "lintian: no error" "$errors errors"
fi
grep -E '^(E|W): ' "$TMP/lintian.log" | sed 's/^/#   /'

# --------------------------------------------------------------- install

before=$(installed_set)
# from here on, the trap purges all of ours even if the install fails
for p in "${PKGS[@]}" mqbus-dbgsym libmqbus1-dbgsym; do
	INSTALLED+=("$p")
done
if ! (cd "$TMP" && apt-get install -y ./*.deb) \
	>"$TMP/install.log" 2>&1; then
	notok "apt-get install -y ./*.deb"
	tail_of "$TMP/install.log"
	done_
fi
ok "apt-get install -y ./*.deb"
after=$(installed_set)
# a dependency installed for ours goes with them
while IFS= read -r p; do
	[[ " ${INSTALLED[*]} " == *" ${p%%:*} "* ]] || INSTALLED+=("$p")
done < <(comm -13 <(echo "$before") <(echo "$after"))
echo "# installed: $(comm -13 <(echo "$before") <(echo "$after") |
	tr '\n' ' ')"

for p in "${PKGS[@]}"; do
	is "$p is installed" \
		"$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>&1)" "ii "
done

check "/usr/sbin/mqbusd is in mqbus" test -x /usr/sbin/mqbusd
check "/usr/bin/mqbusctl is in mqbus" test -x /usr/bin/mqbusctl
# the library the dynamic linker finds is the one of libmqbus1
lib=$(ldd /usr/bin/mqbusctl |
	sed -n 's/^[[:space:]]*libmqbus\.so\.1 => \([^ ]*\) .*/\1/p')
is "mqbusctl uses the installed libmqbus.so.1" \
	"$(realpath -e "${lib:-none}" 2>&1)" \
	"$(realpath -e "$(dpkg -L libmqbus1 | grep '/libmqbus\.so\.1$')")"
check "/etc/mqbus/mqbusd.conf is a conffile of mqbus" \
	sh -c "dpkg-query -W -f='\${Conffiles}\\n' mqbus |
		grep -q '^ /etc/mqbus/mqbusd.conf '"
check "/etc/mqbus/mqbusd.conf is the example configuration" \
	cmp /etc/mqbus/mqbusd.conf "$TMP/src/daemon/mqbusd.conf.example"
check "journal catalog in /usr/lib/systemd/catalog" \
	test -f /usr/lib/systemd/catalog/mqbus.catalog
if command -v journalctl >/dev/null 2>&1; then
	# systemd's dpkg trigger ran journalctl --update-catalog
	check "journalctl knows mqbus's catalog entries" \
		sh -c 'journalctl --list-catalog | grep -q "mqbus bus"'
fi
check "bash completion of mqbusctl" \
	test -f /usr/share/bash-completion/completions/mqbusctl
for m in man1/mqbusctl.1 man5/mqbusd.conf.5 man8/mqbusd.8 \
	man3/libmqbus.3; do
	check "man page $m" test -f "/usr/share/man/$m.gz"
done
check "mqbus-version.h is in libmqbus-dev" \
	sh -c 'dpkg -L libmqbus-dev | grep -qx /usr/include/mqbus-version.h'
# a page for each exported call (a .so link or the symlink dh makes of
# it) in libmqbus-dev
calls=$(nm -D --defined-only "$(realpath -e /usr/lib/*/libmqbus.so.1)" |
	awk '$2 != "A" { print $3 }' | sed 's/@.*//' | sort -u)
nopage=()
for f in $calls; do
	dpkg -L libmqbus-dev | grep -q "^/usr/share/man/man3/$f\.3\(\.gz\)\?\$" ||
		nopage+=("$f")
done
is "libmqbus-dev has a man3 page for each of the $(echo "$calls" | wc -w) calls" \
	"${nopage[*]}" ""
if command -v man >/dev/null 2>&1; then
	check "man -w mqbusd finds the installed page" \
		sh -c 'man -w 8 mqbusd | grep -qx /usr/share/man/man8/mqbusd.8.gz'
	check "man -w mqbus_publish finds libmqbus(3)" \
		sh -c 'man -w 3 mqbus_publish | grep -q "/usr/share/man/man3/"'
	check "man mqbus_publish shows libmqbus(3)" \
		sh -c 'MANWIDTH=80 man 3 mqbus_publish 2>/dev/null |
			head -n 3 | grep -q "LIBMQBUS(3)"'
fi

check "mqbusd.service and mqbusd.socket in /lib/systemd/system" \
	test -f /lib/systemd/system/mqbusd.service -a \
	-f /lib/systemd/system/mqbusd.socket
check "mqbusd@.service and mqbusd@.socket in /lib/systemd/system" \
	test -f /lib/systemd/system/mqbusd@.service -a \
	-f /lib/systemd/system/mqbusd@.socket
check "mqbusd@.service runs /usr/sbin/mqbusd -b %i" \
	grep -q '^ExecStart=/usr/sbin/mqbusd -b %i ' \
	/lib/systemd/system/mqbusd@.service
check "the user units in /usr/lib/systemd/user" \
	test -f /usr/lib/systemd/user/mqbusd.service -a \
	-f /usr/lib/systemd/user/mqbusd.socket
check "the user units are not enabled for every user" \
	test ! -e /etc/systemd/user/sockets.target.wants/mqbusd.socket -a \
	! -e /etc/systemd/user/default.target.wants/mqbusd.service
check "mqbusd.service runs /usr/sbin/mqbusd" \
	grep -q '^ExecStart=/usr/sbin/mqbusd ' /lib/systemd/system/mqbusd.service
check "mqbusd.service enabled (multi-user.target.wants)" \
	test -L /etc/systemd/system/multi-user.target.wants/mqbusd.service
check "mqbusd.socket enabled (sockets.target.wants)" \
	test -L /etc/systemd/system/sockets.target.wants/mqbusd.socket
if command -v systemd-analyze >/dev/null 2>&1; then
	check "systemd-analyze verify mqbusd.service mqbusd.socket" \
		systemd-analyze verify /lib/systemd/system/mqbusd.service \
		/lib/systemd/system/mqbusd.socket
	check "systemd-analyze verify mqbusd@debtest.service and .socket" \
		systemd-analyze verify /lib/systemd/system/mqbusd@debtest.service \
		/lib/systemd/system/mqbusd@debtest.socket
fi

# python3-mqbus: the module is the installed one, byte-compiled by its
# postinst (dh_python3), and of configure.ac's version
PYMOD=/usr/lib/python3/dist-packages/mqbus
is "python3 imports mqbus from python3-mqbus" \
	"$(cd / && env -u PYTHONPATH -u MQBUS_LIBRARY /usr/bin/python3 -c \
		'import mqbus; print(mqbus.__file__, mqbus.__version__)' 2>&1)" \
	"$PYMOD/__init__.py $want"
check "python3-mqbus is byte-compiled at install" \
	sh -c "ls '$PYMOD'/__pycache__/__init__.*.pyc"
check "python3-mqbus depends on libmqbus1" \
	sh -c "dpkg-query -W -f='\${Depends}' python3-mqbus | grep -q 'libmqbus1 (>= '"

# a program built against libmqbus-dev: mqbus.h, libmqbus.so, libmqbus.pc
cat >"$TMP/hello.c" <<'EOF'
#include <mqbus.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	mqbus *b;
	int r;

	if (argc != 4)
		return 2;
	r = mqbus_open(&b, argv[1]);
	if (r < 0) {
		fprintf(stderr, "hello: mqbus_open: %s\n", strerror(-r));
		return 1;
	}
	r = mqbus_publish(b, argv[2], argv[3], strlen(argv[3]),
			  MQBUS_PRIORITY_DEFAULT);
	if (r < 0)
		fprintf(stderr, "hello: mqbus_publish: %s\n", strerror(-r));
	mqbus_free(b);
	return r < 0;
}
EOF
check "pkg-config libmqbus: the version of configure.ac" \
	test "$(pkg-config --modversion libmqbus)" = "$want"
check "a program builds against libmqbus-dev" \
	sh -c "cc -o '$TMP/hello' '$TMP/hello.c' \
		\$(pkg-config --cflags --libs libmqbus)"

# --------------------------------------------------------------- run

# The installed daemon and clients in a private IPC and mount namespace
# with a fresh mqueue file system: nothing of the host's is seen or left.
# The queue memory is charged to the uid whatever the namespace, so this
# part waits for the other tests of the machine (tests/harness.sh).
BUS=debtest
cat >"$TMP/run.sh" <<'EOF'
set -u
T=$1 BUS=$2
mount -t mqueue none /dev/mqueue || exit 90
/usr/sbin/mqbusd -b "$BUS" -c /etc/mqbus/mqbusd.conf --log=stderr \
	2>"$T/mqbusd.err" &
dpid=$!
spid=
# stopped from outside (the test's trap, timeout): the daemon goes too
trap 'kill -TERM $dpid $spid 2>/dev/null; exit 143' TERM
up=0
for _ in $(seq 250); do
	if /usr/bin/mqbusctl -b "$BUS" stats >/dev/null 2>&1; then
		up=1
		break
	fi
	sleep 0.04
done
echo "$up" >"$T/up"
if [ "$up" = 1 ]; then
	/usr/bin/mqbusctl -b "$BUS" sub 'deb/#' -n 3 -t 10000 \
		>"$T/sub.out" 2>"$T/sub.err" &
	spid=$!
	for _ in $(seq 250); do
		n=$(/usr/bin/mqbusctl -b "$BUS" stats 2>/dev/null |
			sed -n 's/^subscriptions=//p')
		[ "${n:-0}" -ge 1 ] && break
		sleep 0.04
	done
	/usr/bin/mqbusctl -b "$BUS" pub deb/ctl "from mqbusctl" \
		>"$T/pub.out" 2>&1
	echo $? >"$T/pub.st"
	"$T/hello" "$BUS" deb/lib "from libmqbus-dev" >"$T/hello.out" 2>&1
	echo $? >"$T/hello.st"
	# python3-mqbus: its own round trip through the daemon, then one
	# message for the mqbusctl subscriber
	(cd / && env -u PYTHONPATH -u MQBUS_LIBRARY timeout 30 /usr/bin/python3 - \
		"$BUS" >"$T/py.out" 2>&1 <<'PY'
import os, sys
import mqbus
with mqbus.Bus(sys.argv[1]) as bus:
    sub = bus.subscribe("py/#")
    bus.publish("py/x", b"round trip")
    m = sub.get(timeout=10)
    print(m.topic, m.payload.decode(), m.sender_pid == os.getpid())
    bus.publish("deb/py", b"from python3-mqbus")
    bus.sync()
PY
	)
	echo $? >"$T/py.st"
	wait "$spid"
	echo $? >"$T/sub.st"
fi
kill -TERM "$dpid"
wait "$dpid"
echo $? >"$T/mqbusd.st"
ls /dev/mqueue >"$T/queues.left"
EOF
# (in the background and waited for, so that a signal to the test runs
# its trap at once, not when the child is done)
exec 9>>"$LOCK"
flock -w 3600 9 &
CHILD=$!
wait "$CHILD" || echo "# could not take $LOCK; running anyway"
timeout -k 5 120 unshare -i -m bash "$TMP/run.sh" "$TMP" "$BUS" &
CHILD=$!
wait "$CHILD"
st=$?
CHILD=
exec 9>&-
is "the namespace script ran" "$st" 0
if is "installed mqbusd serves with the installed mqbusd.conf" \
	"$(cat "$TMP/up" 2>/dev/null)" 1; then
	is "mqbusctl pub exits 0" "$(cat "$TMP/pub.st")" 0 ||
		tail_of "$TMP/pub.out"
	is "the libmqbus-dev program publishes" "$(cat "$TMP/hello.st")" 0 ||
		tail_of "$TMP/hello.out"
	is "python3-mqbus: the script exits 0" "$(cat "$TMP/py.st")" 0 ||
		tail_of "$TMP/py.out"
	is "python3-mqbus: its own message came back through the daemon" \
		"$(cat "$TMP/py.out")" "py/x round trip True"
	is "mqbusctl sub got the three messages" "$(cat "$TMP/sub.st")" 0 ||
		tail_of "$TMP/sub.err"
	is "round trip: what the subscriber printed" "$(cat "$TMP/sub.out")" \
		"deb/ctl from mqbusctl
deb/lib from libmqbus-dev
deb/py from python3-mqbus"
else
	tail_of "$TMP/mqbusd.err"
fi
is "mqbusd stopped on SIGTERM with status 0" \
	"$(cat "$TMP/mqbusd.st" 2>/dev/null)" 0 || tail_of "$TMP/mqbusd.err"
is "no queue left behind" "$(cat "$TMP/queues.left" 2>/dev/null)" ""

# --------------------------------------------------------------- purge

purge=()
for p in "${INSTALLED[@]}"; do
	is_present "${p%%:*}" && purge+=("$p")
done
if apt-get purge -y "${purge[@]}" >"$TMP/purge.log" 2>&1; then
	ok "apt-get purge -y ${PKGS[*]}"
else
	notok "apt-get purge -y ${PKGS[*]}"
	tail_of "$TMP/purge.log"
fi
left=()
for p in "${INSTALLED[@]}"; do
	is_present "${p%%:*}" && left+=("$p")
done
is "no package of the test left" "${left[*]}" ""
is "installed packages as before the test" "$(installed_set)" "$before"
gone=()
for f in /usr/sbin/mqbusd /usr/bin/mqbusctl /etc/mqbus \
	/usr/lib/systemd/catalog/mqbus.catalog \
	/lib/systemd/system/mqbusd.service \
	/lib/systemd/system/mqbusd@.service \
	/usr/lib/systemd/user/mqbusd.socket \
	/usr/lib/python3/dist-packages/mqbus \
	/usr/share/man/man3/mqbus_publish.3.gz \
	/etc/systemd/system/multi-user.target.wants/mqbusd.service \
	/etc/systemd/system/sockets.target.wants/mqbusd.socket \
	/var/lib/systemd/deb-systemd-helper-enabled/mqbusd.service.dsh-also; do
	[ -e "$f" ] || [ -L "$f" ] && gone+=("$f")
done
is "purge removed the files, the conffile and the unit links" "${gone[*]}" ""

done_
