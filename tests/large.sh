#!/bin/sh
# SPDX-License-Identifier: MIT
#
# large.sh - the C integration suite tests/check_large (messages larger
# than a queue message: round trips, interleaving, half messages, quotas,
# receivers' limits, overflow policies) against mqbusd, with every
# large payload in pieces (MQBUS_SHM=0; tests/large-shm.sh runs it with
# memory files).
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
MQBUS_TEST_WAKE=${MQBUS_TEST_WAKE:-notify}
MQBUS_TEST_DAEMON=$top_builddir/daemon/mqbusd
MQBUS_SHM=0
export MQBUS_TEST_WAKE MQBUS_TEST_DAEMON MQBUS_SHM
exec "$top_builddir/tests/check_large" "$@"
