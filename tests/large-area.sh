#!/bin/sh
# SPDX-License-Identifier: MIT
#
# large-area.sh - the C integration suite tests/check_large with memory
# files and reused memory areas on (MQBUS_SHM=1, MQBUS_SHM_AREA=1): a
# large PUBLISH goes through its publisher's tx area, a receiver's large
# messages after its first through slots of its rx area (PROTOCOL.md,
# "Memory areas"), and all must arrive as whole and in order as in
# pieces or files (tests/large.sh, tests/large-shm.sh).
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
MQBUS_TEST_WAKE=${MQBUS_TEST_WAKE:-notify}
MQBUS_TEST_DAEMON=$top_builddir/daemon/mqbusd
MQBUS_SHM=1
MQBUS_SHM_MIN=4096
MQBUS_SHM_AREA=1
export MQBUS_TEST_WAKE MQBUS_TEST_DAEMON MQBUS_SHM MQBUS_SHM_MIN MQBUS_SHM_AREA
exec "$top_builddir/tests/check_large" "$@"
