#!/bin/sh
# SPDX-License-Identifier: MIT
#
# large-shm.sh - the C integration suite tests/check_large with memory
# files on (MQBUS_SHM=1): large payloads go as sealed memory files
# between clients that attach, and must arrive as whole and in order as
# in pieces (tests/large.sh runs the same suite with MQBUS_SHM=0); a new
# file for every message (MQBUS_SHM_AREA=0: tests/large-area.sh runs it
# with reused areas).
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
MQBUS_TEST_WAKE=${MQBUS_TEST_WAKE:-notify}
MQBUS_TEST_DAEMON=$top_builddir/daemon/mqbusd
MQBUS_SHM=1
MQBUS_SHM_MIN=4096
MQBUS_SHM_AREA=0
export MQBUS_TEST_WAKE MQBUS_TEST_DAEMON MQBUS_SHM MQBUS_SHM_MIN MQBUS_SHM_AREA
exec "$top_builddir/tests/check_large" "$@"
