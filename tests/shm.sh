#!/bin/sh
# SPDX-License-Identifier: MIT
#
# shm.sh - the C integration suite tests/check_shm (memory files from the
# side of a hostile client: attaching, refused files, receivers of both
# kinds) against mqbusd.
: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
MQBUS_TEST_WAKE=${MQBUS_TEST_WAKE:-notify}
MQBUS_TEST_DAEMON=$top_builddir/daemon/mqbusd
export MQBUS_TEST_WAKE MQBUS_TEST_DAEMON
exec "$top_builddir/tests/check_shm" "$@"
