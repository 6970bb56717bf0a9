#!/bin/bash
# SPDX-License-Identifier: MIT
#
# python.sh - the Python package (python/mqbus) against the real daemon:
# starts mqbusd on a bus of its own, runs pytest on python/tests with
# MQBUS_BUS naming that bus and MQBUS_LIBRARY pointing at the build tree's
# libmqbus, and reports each pytest test as one TAP line.
#
# The Python is $PYTHON if set, else the first of python3 and
# /usr/bin/python3 that has pytest (Debian: python3-pytest).
. "$(dirname "$0")/lib.sh"
mqb_init

LIBMQBUS=$top_builddir/client/.libs/libmqbus.so
if [ ! -e "$LIBMQBUS" ]; then
	mqb_bail "libmqbus is built" "missing: $LIBMQBUS (run make first)"
fi

PY=
for p in ${PYTHON:-python3 /usr/bin/python3}; do
	if "$p" -c 'import pytest' >/dev/null 2>&1; then
		PY=$p
		break
	fi
done
if [ -z "$PY" ]; then
	mqb_bail "a Python with pytest" \
		"none of ${PYTHON:-python3 /usr/bin/python3} can import pytest:" \
		"install python3-pytest (scripts/deps.sh does)"
fi

mqb_daemon_start notify || mqb_bail "mqbusd starts"

# A sanitizer build's libmqbus needs the ASan runtime loaded first, which
# python is not linked with: preload it.  Python's own allocations at exit
# are no leaks of ours, so LeakSanitizer stays off for this process.
PRELOAD=()
asan=$(ldd "$LIBMQBUS" 2>/dev/null | awk '$1 ~ /^libasan\.so/ { print $3 }')
if [ -n "$asan" ]; then
	PRELOAD=(env "LD_PRELOAD=$asan"
		"ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")
	echo "# sanitizer build: preloading $asan"
fi

# Nothing is written into the source tree (make distcheck has it
# read-only): no byte code, no pytest cache.
out=$MQB_TMP/pytest.out
MQBUS_LIBRARY=$LIBMQBUS PYTHONPATH=$top_srcdir/python \
	PYTHONDONTWRITEBYTECODE=1 \
	timeout 300 "${PRELOAD[@]}" "$PY" -m pytest -p no:cacheprovider -q -rA \
	--rootdir="$top_srcdir/python" "$top_srcdir/python/tests" \
	>"$out" 2>&1
st=$?

n=0
while read -r result name rest; do
	n=$((n + 1))
	name=${name##*::}
	case $result in
	PASSED) mqb_ok "python: $name" ;;
	*) mqb_notok "python: $name" "pytest: $result $name $rest" ;;
	esac
done < <(grep -E '^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) ' "$out")

# A collection error, a crash or a missing test must not pass quietly.
mqb_is "pytest exits 0" "$st" 0 || mqb_diag_file "pytest" "$out"
mqb_true "pytest ran the tests (${n})" "$([ "$n" -ge 20 ]; echo $?)" \
	"only $n results in:" "$(tail -n 5 "$out")"
pyver=$(PYTHONPATH=$top_srcdir/python PYTHONDONTWRITEBYTECODE=1 "$PY" -c \
	'import mqbus; print(mqbus.__version__)' 2>&1)
mqb_is "python package version is mqbus's" "$pyver" \
	"$("$MQBUSD" --version | sed -n '1s/^mqbusd //p')"
mqb_check "mqbusd still runs" mqb_alive "$MQB_DPID"
mqb_daemon_stop
mqb_is "mqbusd exits 0 on SIGTERM" "$MQB_DSTATUS" 0 ||
	mqb_diag_file "mqbusd stderr" "$MQB_DERR"
mqb_true "every queue of the bus is gone" "$(mqb_no_queues "$BUS"; echo $?)" \
	"left: $(mqb_queues "$BUS" | tr '\n' ' ')"
mqb_done
