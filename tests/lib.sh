# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# lib.sh - helpers for the shell integration tests.  A test sources it:
#
#   . "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
#   mqb_init
#   mqb_daemon_start notify
#   mqb_check "publish works" "$MQBUSCTL" pub a/b hello
#   ...
#   mqb_done
#
# Results are TAP-style lines, "ok N - name" / "not ok N - name" with
# "#" lines of detail, and at the end "1..N" and "# passed P failed F";
# the test exits non-zero if any check failed.  Every test uses a bus of
# its own (mqb_init sets $BUS) and, whatever happens, on exit kills what
# it started and removes every queue of its buses.
#
# Outside tests/harness.sh (which gives each test a private mqueue mount),
# a test needs /dev/mqueue mounted: if it is not, the test re-runs itself
# under the harness when it can, else it is skipped (exit 77).

set -u
export LC_ALL=C

if [ -z "${top_srcdir:-}" ]; then
	top_srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fi
if [ -z "${top_builddir:-}" ]; then
	top_builddir=$top_srcdir
fi
MQBUSD=${MQBUSD:-$top_builddir/daemon/mqbusd}
# MQBUS_TEST_VALGRIND=DIR: the daemon runs under memcheck (tests/README)
if [ -n "${MQBUS_TEST_VALGRIND:-}" ]; then
	MQBUSD_WRAP=(valgrind --quiet --error-exitcode=99 --leak-check=full
		"--suppressions=$top_srcdir/tests/valgrind.supp"
		--errors-for-leak-kinds=definite
		"--log-file=$MQBUS_TEST_VALGRIND/mqbusd.%p.log")
else
	MQBUSD_WRAP=()
fi
MQBUSCTL=${MQBUSCTL:-$top_builddir/client/mqbusctl}
MQTOOL=${MQTOOL:-$top_builddir/tests/helpers/mqtool}
NOTIFY_LISTEN=${NOTIFY_LISTEN:-$top_builddir/tests/helpers/notify-listen}

MQB_NAME=$(basename "$0" .sh)
MQB_N=0
MQB_PASS=0
MQB_FAIL=0
MQB_PIDS=()
MQB_BUSES=()
MQB_TMP=
MQB_DCOUNT=0
MQB_DPID=
MQB_DERR=
MQB_DNOTIFY=
MQB_DSTATUS=
MQB_TIMED_OUT=0

mqb_is_mqueue_mounted() {
	[ "$(stat -f -c %T /dev/mqueue 2>/dev/null)" = mqueue ]
}

if ! mqb_is_mqueue_mounted; then
	if [ "${MQBUS_UNDER_HARNESS:-}" != 1 ] && [ "$(id -u)" = 0 ] &&
		command -v unshare >/dev/null 2>&1; then
		exec sh "$top_srcdir/tests/harness.sh" "$0" "$@"
	fi
	echo "# SKIP: /dev/mqueue is not mounted (mount -t mqueue none /dev/mqueue)"
	exit 77
fi

# ---------------------------------------------------------------- reporting

mqb_diag() {
	local line
	for line in "$@"; do
		printf '#   %s\n' "$line"
	done
}

# Prints a file as diagnostic lines (at most the last 20 lines).
mqb_diag_file() {
	local label=$1 file=$2 line
	[ -s "$file" ] || return 0
	printf '#   --- %s:\n' "$label"
	tail -n 20 "$file" | while IFS= read -r line; do
		printf '#   | %s\n' "$line"
	done
}

mqb_ok() {
	MQB_N=$((MQB_N + 1))
	MQB_PASS=$((MQB_PASS + 1))
	echo "ok $MQB_N - $1"
}

# mqb_notok NAME [DETAIL...]
mqb_notok() {
	MQB_N=$((MQB_N + 1))
	MQB_FAIL=$((MQB_FAIL + 1))
	echo "not ok $MQB_N - $1"
	shift
	mqb_diag "$@"
}

# mqb_check NAME CMD [ARGS...]: passes if CMD exits 0.
mqb_check() {
	local name=$1 out st
	shift
	out=$("$@" 2>&1)
	st=$?
	if [ $st -eq 0 ]; then
		mqb_ok "$name"
	else
		mqb_notok "$name" "command: $*" "exit status: $st" \
			"output: $(printf '%s' "$out" | head -c 2000)"
	fi
	return $st
}

# mqb_check_status NAME WANT CMD [ARGS...]: passes if CMD exits with WANT.
# The command's stdout and stderr are left in $MQB_OUT and $MQB_ERR.
mqb_check_status() {
	local name=$1 want=$2 st
	shift 2
	MQB_OUT=$("$@" 2>"$MQB_TMP/check.err")
	st=$?
	MQB_ERR=$(cat "$MQB_TMP/check.err")
	if [ "$st" = "$want" ]; then
		mqb_ok "$name"
		return 0
	fi
	mqb_notok "$name" "command: $*" "exit status: $st, wanted $want" \
		"stdout: $MQB_OUT" "stderr: $MQB_ERR"
	return 1
}

# mqb_is NAME GOT WANT
mqb_is() {
	if [ "$2" = "$3" ]; then
		mqb_ok "$1"
		return 0
	fi
	mqb_notok "$1" "got:    '$2'" "wanted: '$3'"
	return 1
}

# mqb_like NAME GOT EXTENDED-REGEX
mqb_like() {
	if printf '%s\n' "$2" | grep -Eq -- "$3"; then
		mqb_ok "$1"
		return 0
	fi
	mqb_notok "$1" "got:    '$2'" "wanted to match: /$3/"
	return 1
}

# mqb_true NAME CONDITION-STATUS [DETAIL...]: records the outcome of a
# condition already evaluated ($?).
mqb_true() {
	local name=$1 st=$2
	shift 2
	if [ "$st" = 0 ]; then
		mqb_ok "$name"
		return 0
	fi
	mqb_notok "$name" "$@"
	return 1
}

mqb_skip() {
	MQB_N=$((MQB_N + 1))
	echo "ok $MQB_N - $1 # SKIP ${2:-}"
}

# Ends the test: plan, summary line, exit status.
mqb_done() {
	echo "1..$MQB_N"
	echo "# passed $MQB_PASS failed $MQB_FAIL"
	if [ "$MQB_FAIL" -gt 0 ] || [ "$MQB_N" -eq 0 ]; then
		exit 1
	fi
	exit 0
}

# Stops the test early, as one failed check, e.g. when a daemon that every
# later check needs did not start.
mqb_bail() {
	mqb_notok "$@"
	mqb_done
}

# mqb_need_commands WHAT CMD...: the test cannot run without these
# commands; when one is missing it is skipped (exit 77), or under CI=true,
# where scripts/deps.sh installs them all, fails.
mqb_need_commands() {
	local what=$1 c missing=
	shift
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
	done
	[ -z "$missing" ] && return 0
	if [ "${CI:-}" = true ]; then
		echo "not ok 1 - $what installed (missing:$missing)"
		echo "1..1"
		exit 1
	fi
	echo "# SKIP: needs $what (missing:$missing)"
	exit 77
}

# mqb_free_port: prints a free TCP port on loopback
mqb_free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- users

# mqb_test_user: makes sure the dedicated unprivileged test user exists
# ($MQBUS_TEST_USER, default mqbus-test), adding it with useradd when it
# is missing (left in place afterwards), and sets TUSER, TUID and TGID.
# tests/testbus.c (testbus_test_user) runs the same useradd command for
# the C suites.  Returns 1 with the reason in MQB_USER_WHY otherwise.
mqb_test_user() {
	local out=${MQB_TMP:-/tmp}/useradd.out
	TUSER=${MQBUS_TEST_USER:-mqbus-test}
	MQB_USER_WHY=
	if ! id -u "$TUSER" >/dev/null 2>&1; then
		if ! command -v useradd >/dev/null 2>&1; then
			MQB_USER_WHY="user $TUSER is missing and useradd"
			MQB_USER_WHY+=" is not installed (package passwd)"
			return 1
		fi
		if ! useradd --system --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin \
			--user-group "$TUSER" >"$out" 2>&1; then
			MQB_USER_WHY="useradd $TUSER failed: $(cat "$out")"
			return 1
		fi
		mqb_diag "created user $TUSER"
	fi
	TUID=$(id -u "$TUSER" 2>/dev/null)
	TGID=$(id -g "$TUSER" 2>/dev/null)
	if [ -z "$TUID" ] || [ "$TUID" = 0 ]; then
		MQB_USER_WHY="$TUSER has uid '$TUID', not an unprivileged one"
		return 1
	fi
	return 0
}

# mqb_copy_ctl DIR: copies mqbusctl (tests/helpers/mqbusctl-test, a real
# binary) and libmqbus.so* into DIR, where any user can run them (the
# build tree may not be readable by the test users).
mqb_copy_ctl() {
	mkdir -p "$1" &&
		chmod 755 "$MQB_TMP" "$1" &&
		cp "$top_builddir/tests/helpers/mqbusctl-test" "$1/mqbusctl" &&
		cp -P "$top_builddir"/client/.libs/libmqbus.so* "$1/" &&
		chmod -R a+rX "$1"
}

# mqb_as_argv UID GID GROUPS DIR [VAR=VALUE...]: sets MQB_AS to the
# command prefix that runs a program as that user, with the supplementary
# GROUPS (a comma list, or none), the libraries of DIR, the bus $BUS, the
# sanitizers' options and the VAR=VALUE given.  setpriv and env exec, so
# the pid of "${MQB_AS[@]}" PROGRAM & is PROGRAM's.
mqb_as_argv() {
	local uid=$1 gid=$2 groups=$3 dir=$4 v
	shift 4
	MQB_AS=(setpriv --reuid="$uid" --regid="$gid")
	if [ -n "$groups" ]; then
		MQB_AS+=(--groups="$groups")
	else
		MQB_AS+=(--clear-groups)
	fi
	MQB_AS+=(-- env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$dir"
		MQBUS_BUS="$BUS")
	for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
		if [ -n "${!v:-}" ]; then
			MQB_AS+=("$v=${!v}")
		fi
	done
	MQB_AS+=("$@")
}

# ---------------------------------------------------------------- time

mqb_now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# mqb_wait_for MS CMD [ARGS...]: runs CMD every 20 ms until it succeeds
# (returns 0) or MS milliseconds have passed (returns 1).
mqb_wait_for() {
	local ms=$1 end
	shift
	end=$(($(mqb_now_ms) + ms))
	while :; do
		"$@" && return 0
		[ "$(mqb_now_ms)" -ge "$end" ] && return 1
		sleep 0.02
	done
}

# ---------------------------------------------------------------- processes

# Remembers a pid to kill at exit if it is still there.
mqb_track() {
	MQB_PIDS+=("$1")
}

# True while pid runs (a zombie does not count).
mqb_alive() {
	local stat state
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	state=${stat##*) }
	state=${state%% *}
	[ "$state" != Z ] && [ "$state" != X ]
}

mqb_dead() {
	! mqb_alive "$1"
}

# mqb_wait_pid PID [MS]: waits up to MS (default 10000) for child PID to
# exit and returns its exit status.  Past the deadline PID is killed with
# SIGKILL, MQB_TIMED_OUT is set to 1 and 255 is returned.
mqb_wait_pid() {
	local pid=$1 ms=${2:-10000} st
	MQB_TIMED_OUT=0
	if ! mqb_wait_for "$ms" mqb_dead "$pid"; then
		MQB_TIMED_OUT=1
		kill -CONT "$pid" 2>/dev/null
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return 255
	fi
	wait "$pid" 2>/dev/null
	st=$?
	return $st
}

# A pid that is certainly not running (a child that has exited).
mqb_dead_pid() {
	local pid
	sh -c 'exit 0' &
	pid=$!
	wait "$pid"
	echo "$pid"
}

# ---------------------------------------------------------------- queues

# The names (without "/") of every queue of bus $1 in /dev/mqueue.
mqb_queues() {
	local bus=$1 q
	for q in /dev/mqueue/*; do
		q=${q#/dev/mqueue/}
		case $q in
		"$bus" | "$bus".*) echo "$q" ;;
		esac
	done
}

mqb_count_queues() {
	mqb_queues "$1" | grep -c .
}

mqb_no_queues() {
	[ "$(mqb_count_queues "$1")" -eq 0 ]
}

# The queues of bus $1 that belong to pid $2.
mqb_client_queues() {
	mqb_queues "$1" | grep -E "^[^.]+\\.$2\\.[0-9]+\\.(tx|rx)\$"
}

mqb_has_client_queues() {
	[ -n "$(mqb_client_queues "$1" "$2")" ]
}

mqb_no_client_queues() {
	[ -z "$(mqb_client_queues "$1" "$2")" ]
}

# True when every client queue of bus $1 belongs to a running process,
# i.e. the daemon has dropped every client that exited.
mqb_settled() {
	local q pid
	for q in $(mqb_queues "$1"); do
		case $q in
		*.tx | *.rx) ;;
		*) continue ;;
		esac
		pid=${q%.*}
		pid=${pid%.*}
		pid=${pid##*.}
		mqb_alive "$pid" || return 1
	done
	return 0
}

mqb_rm_queues() {
	local q
	for q in $(mqb_queues "$1"); do
		rm -f "/dev/mqueue/$q"
	done
}

# ---------------------------------------------------------------- buses

# A fresh bus name: test name, pid, random.
mqb_new_bus() {
	local bus
	bus=$(printf 't-%s-%s-%04x' "${1:-$MQB_NAME}" "$$" "$RANDOM")
	MQB_BUSES+=("$bus")
	echo "$bus"
}

mqb_cleanup() {
	local st=$? pid bus
	trap - EXIT
	for pid in "${MQB_PIDS[@]}"; do
		if mqb_alive "$pid"; then
			kill -CONT "$pid" 2>/dev/null
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
		fi
	done
	for bus in "${MQB_BUSES[@]}"; do
		mqb_rm_queues "$bus"
	done
	if [ -n "$MQB_TMP" ] && [ -d "$MQB_TMP" ]; then
		rm -rf "$MQB_TMP"
	fi
	exit "$st"
}

# Sets up a test: $BUS (exported as MQBUS_BUS), $MQB_TMP, the exit trap.
mqb_init() {
	local p
	for p in "$MQBUSD" "$MQBUSCTL" "$MQTOOL" "$NOTIFY_LISTEN"; do
		if [ ! -x "$p" ]; then
			echo "# $p is missing: run make (or make check) first"
			echo "1..0"
			echo "# passed 0 failed 1"
			exit 99
		fi
	done
	MQB_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqbus-$MQB_NAME.XXXXXX") || exit 99
	trap mqb_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	BUS=$(mqb_new_bus)
	MQBUS_BUS=$BUS
	export MQBUS_BUS
	echo "# $MQB_NAME: bus $BUS, private IPC namespace: ${MQBUS_TEST_PRIVATE_IPC:-no}"
}

# ---------------------------------------------------------------- daemon

# mqb_daemon_start WAKE [ARGS...]: starts mqbusd on $BUS with --wake=WAKE
# and NOTIFY_SOCKET pointing at a socket we listen on, and waits (up to
# 10 s) for READY=1.  Sets MQB_DPID, MQB_DERR (its stderr), MQB_DNOTIFY
# (what it sent to the socket).  Returns 1 if it did not get ready.
mqb_daemon_start() {
	local wake=$1 sock
	shift
	MQB_DCOUNT=$((MQB_DCOUNT + 1))
	sock=$MQB_TMP/notify.$MQB_DCOUNT.sock
	if [ ${#sock} -ge 100 ]; then
		sock=@$BUS.notify.$MQB_DCOUNT
	fi
	MQB_DNOTIFY=$MQB_TMP/notify.$MQB_DCOUNT.log
	MQB_DERR=$MQB_TMP/mqbusd.$MQB_DCOUNT.err
	: >"$MQB_DNOTIFY"
	"$NOTIFY_LISTEN" "$sock" "$MQB_DNOTIFY" -- \
		"${MQBUSD_WRAP[@]}" "$MQBUSD" -b "$BUS" --wake="$wake" "$@" \
		2>"$MQB_DERR" &
	MQB_DPID=$!
	mqb_track "$MQB_DPID"
	if ! mqb_wait_for 10000 mqb_daemon_ready_or_dead "$MQB_DPID" \
		"$MQB_DNOTIFY"; then
		mqb_diag "mqbusd (pid $MQB_DPID) sent no READY=1 in 10 s"
		mqb_diag_file "mqbusd stderr" "$MQB_DERR"
		return 1
	fi
	if ! grep -qx 'READY=1' "$MQB_DNOTIFY"; then
		mqb_diag "mqbusd (pid $MQB_DPID) exited before READY=1"
		mqb_diag_file "mqbusd stderr" "$MQB_DERR"
		return 1
	fi
	return 0
}

mqb_daemon_ready_or_dead() {
	grep -qx 'READY=1' "$2" || mqb_dead "$1"
}

# mqb_daemon_stop [SIGNAL] [MS]: signals the daemon (default TERM) and
# waits for it (default 10 s).  Sets MQB_DSTATUS to its exit status (255
# if it had to be killed).  Returns 0 if it exited 0.
mqb_daemon_stop() {
	local sig=${1:-TERM} ms=${2:-10000}
	[ -n "$MQB_DPID" ] || return 1
	kill -"$sig" "$MQB_DPID" 2>/dev/null
	mqb_wait_pid "$MQB_DPID" "$ms"
	MQB_DSTATUS=$?
	MQB_DPID=
	[ "$MQB_DSTATUS" = 0 ]
}

# mqb_wait_line MS FILE REGEX: waits until a line of FILE matches.
mqb_wait_line() {
	mqb_wait_for "$1" grep -Eq -- "$3" "$2"
}

# ---------------------------------------------------------------- clients

# mqb_stat KEY: the value of KEY in `mqbusctl stats` of $BUS (empty if
# there is none).
mqb_stat() {
	"$MQBUSCTL" stats 2>/dev/null | sed -n "s/^$1=//p" | head -n 1
}

# mqb_stat_ge KEY N: true if the stats value KEY is at least N.
mqb_stat_ge() {
	local v
	v=$(mqb_stat "$1")
	[ -n "$v" ] && [ "$v" -ge "$2" ] 2>/dev/null
}

# mqb_sub_start OUT [SUB-ARGS...]: starts `mqbusctl sub SUB-ARGS` in the
# background with stdout to OUT and stderr to OUT.err; sets MQB_SPID.
# Then waits until the daemon counts its subscriptions (see
# mqb_wait_subscribed).
mqb_sub_start() {
	local out=$1 before
	shift
	# clients that have just exited may still hold subscriptions: let
	# the daemon drop them first, so that the count below only grows
	mqb_wait_for 5000 mqb_settled "${MQBUS_BUS:-$BUS}"
	before=$(mqb_stat subscriptions)
	"$MQBUSCTL" sub "$@" >"$out" 2>"$out.err" &
	MQB_SPID=$!
	mqb_track "$MQB_SPID"
	mqb_wait_subscribed "${before:-0}" "$(mqb_count_patterns "$@")"
}

# Counts the patterns among mqbusctl sub arguments (options skipped).
mqb_count_patterns() {
	local n=0
	while [ $# -gt 0 ]; do
		case $1 in
		-n | -t) shift ;;
		-*) ;;
		*) n=$((n + 1)) ;;
		esac
		shift
	done
	echo "$n"
}

# mqb_wait_subscribed BEFORE N: waits (up to 10 s) until the daemon's
# "subscriptions" counter reaches BEFORE + N, i.e. the subscriber just
# started has subscribed to all of its N patterns; or until the
# subscriber has exited (it may have failed on purpose).
mqb_wait_subscribed() {
	local want=$(($1 + $2))
	mqb_wait_for 10000 mqb_subscribed_or_gone "$want"
}

mqb_subscribed_or_gone() {
	mqb_stat_ge subscriptions "$1" || mqb_dead "$MQB_SPID"
}
