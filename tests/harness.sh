#!/bin/sh
# SPDX-License-Identifier: MIT
#
# harness.sh - the LOG_COMPILER of every test (see tests/local.mk).
#
#   harness.sh PROGRAM [ARGS...]
#
# Runs one test program or script and passes its exit status through
# (0 pass, 77 skip, 99 hard error, anything else fail).
#
# POSIX queues are a machine-wide resource: names are global and the
# memory is charged to the uid.  So, when we are root and unshare(1) works,
# the test runs in private IPC, mount and PID namespaces with a fresh
# mqueue file system at /dev/mqueue: its queues are its own, the queue
# limits in /proc/sys/fs/mqueue are its own to change (the test sees
# MQBUS_TEST_PRIVATE_IPC=1), and when the test ends every process it left
# behind dies with the PID namespace and every queue with the IPC
# namespace.  Otherwise it runs directly.
#
# RLIMIT_MSGQUEUE is per uid whatever the namespace, so tests run one at a
# time under a lock even when make runs them in parallel (make -j), also
# across build trees of the same machine.
#
# Environment:
#   MQBUS_TEST_NO_NAMESPACE=1  never use namespaces
#   MQBUS_TEST_TIMEOUT=SECS    kill a test that runs longer (default 900)
#   MQBUS_TEST_LOCK=FILE       the lock file (default /tmp/mqbus-tests.lock)
#   MQBUS_RESULTS_DIR=DIR      also copy each test's output to DIR/NAME.log,
#                              followed by "# harness-exit: STATUS"
#                              (tests/run-tests.sh counts results from it)

if [ $# -lt 1 ]; then
	echo "usage: harness.sh PROGRAM [ARGS...]" >&2
	exit 99
fi

me=$0
# tests/lib.sh re-runs a test under this harness only if it is not yet
MQBUS_UNDER_HARNESS=1
export MQBUS_UNDER_HARNESS
case $me in
/*) ;;
*) me=$(pwd)/$me ;;
esac

# Runs "$@": executables (binaries, libtool wrappers, scripts with the
# execute bit) as they are, other files as bash scripts (so a lost execute
# bit does not matter).
run_test() {
	if [ -x "$1" ] || [ ! -f "$1" ]; then
		"$@"
	else
		bash "$@"
	fi
}

# Runs the test with an optional time limit and results copy.
run_recorded() {
	limit=${MQBUS_TEST_TIMEOUT:-900}
	if [ -n "${MQBUS_RESULTS_DIR:-}" ] && mkdir -p "$MQBUS_RESULTS_DIR"; then
		name=$(basename "$1")
		name=${name%.sh}
		copy=$MQBUS_RESULTS_DIR/$name.log
		st_file=$MQBUS_RESULTS_DIR/.$name.status
		{
			run_limited "$limit" "$@" 2>&1
			echo $? >"$st_file"
		} | tee "$copy"
		st=$(cat "$st_file" 2>/dev/null || echo 99)
		rm -f "$st_file"
		echo "# harness-exit: $st" >>"$copy"
		return "$st"
	fi
	run_limited "$limit" "$@"
}

run_limited() {
	limit=$1
	shift
	if command -v timeout >/dev/null 2>&1 && [ "$limit" != 0 ]; then
		# timeout(1) runs a shell function only through a shell
		MQBUS_HARNESS_RUN=1 timeout -k 10 "$limit" sh "$me" "$@"
		st=$?
		if [ "$st" = 124 ]; then
			echo "harness: $1 ran longer than $limit s, killed" >&2
			st=99
		fi
		return "$st"
	fi
	run_test "$@"
}

# Re-entry points of this script.
if [ "${MQBUS_HARNESS_RUN:-}" = 1 ]; then
	unset MQBUS_HARNESS_RUN
	run_test "$@"
	exit $?
fi

if [ "${MQBUS_HARNESS_INNER:-}" = 1 ]; then
	# PID 1 of the new PID namespace: it stays the parent of the test so
	# that everything the test leaves behind dies when it returns.
	unset MQBUS_HARNESS_INNER
	exec 9>&- # the lock stays with unshare, outside
	mkdir -p /dev/mqueue 2>/dev/null
	if ! mount -t mqueue -o nosuid,nodev,noexec mqueue-test /dev/mqueue; then
		echo "harness: cannot mount a private mqueue file system" >&2
		exit 99
	fi
	MQBUS_TEST_PRIVATE_IPC=1
	export MQBUS_TEST_PRIVATE_IPC
	run_recorded "$@"
	exit $?
fi

# Serialize with other tests of this machine (see the top).
if command -v flock >/dev/null 2>&1; then
	lock=${MQBUS_TEST_LOCK:-/tmp/mqbus-tests.lock}
	if { exec 9>>"$lock"; } 2>/dev/null; then
		chmod 0666 "$lock" 2>/dev/null
		if ! flock -w 3600 9; then
			echo "harness: waited an hour for $lock, giving up" >&2
			exit 99
		fi
	fi
fi

use_ns=no
if [ "${MQBUS_TEST_NO_NAMESPACE:-}" != 1 ] && [ "$(id -u)" = 0 ] &&
	command -v unshare >/dev/null 2>&1 &&
	unshare --ipc --mount --pid --fork --mount-proc --kill-child \
		sh -c 'mkdir -p /dev/mqueue &&
			mount -t mqueue none /dev/mqueue' >/dev/null 2>&1; then
	use_ns=yes
fi

if [ $use_ns = yes ]; then
	MQBUS_HARNESS_INNER=1 exec unshare --ipc --mount --pid --fork \
		--mount-proc --kill-child sh "$me" "$@"
fi
echo "# harness: no private IPC namespace (not root or no unshare)," \
	"running $1 directly"
run_recorded "$@" 9>&-
