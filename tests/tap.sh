# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# tap.sh - the TAP-style reporting of the shell tests that do not use
# lib.sh (they start no bus of their own through it: the benchmarks'
# tests and alloc.sh).  Sourced after top_srcdir is set:
#
#   . "$top_srcdir/tests/tap.sh"
#   ok "name"; not_ok "name" "detail" ...; diag_file LABEL FILE; finish
#
# "ok N - name" / "not ok N - name" with "#" lines of detail, and at the
# end "1..N" and "# passed P failed F"; finish exits 1 if a check failed.

N=0
PASS=0
FAIL=0

ok() {
	N=$((N + 1))
	PASS=$((PASS + 1))
	echo "ok $N - $1"
}

# not_ok NAME [DETAIL...]
not_ok() {
	local line
	N=$((N + 1))
	FAIL=$((FAIL + 1))
	echo "not ok $N - $1"
	shift
	for line in "$@"; do
		printf '#   %s\n' "$line"
	done
}

# diag_file LABEL FILE: the last 20 lines of FILE as detail lines
diag_file() {
	[ -s "$2" ] || return 0
	printf '#   --- %s:\n' "$1"
	tail -n 20 "$2" | sed 's/^/#   | /'
}

finish() {
	echo "1..$N"
	echo "# passed $PASS failed $FAIL"
	[ "$FAIL" -eq 0 ]
	exit $?
}
