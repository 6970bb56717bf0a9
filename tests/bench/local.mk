# SPDX-License-Identifier: MIT
# tests/bench/: mqbus-bench, the benchmark (built by make, not installed,
# run by make bench), and what the allocation test tests/alloc.sh needs:
# the malloc-counting preload module and the driver that sends traffic.
#
# The programs are linked with -no-install: real binaries, not libtool
# wrappers, so that mqbus-bench finds ../../daemon/mqbusd next to itself
# and a preloaded module counts mqbusd's allocations, not a shell's.
noinst_PROGRAMS += tests/bench/mqbus-bench
tests_bench_mqbus_bench_SOURCES = tests/bench/mqbus-bench.c \
	tests/bench/bench-work.c tests/bench/bench-util.c tests/bench/bench.h \
	tests/bench/peer.c tests/bench/peer.h tests/bench/peer-dbus.c \
	tests/bench/peer-mqtt.c
# the peers' clients: sd-bus (libsystemd) and libmosquitto when found
tests_bench_mqbus_bench_CFLAGS = $(AM_CFLAGS) $(LIBSYSTEMD_CFLAGS) \
	$(LIBMOSQUITTO_CFLAGS)
tests_bench_mqbus_bench_LDADD = client/libmqbus.la $(LIBSYSTEMD_LIBS) \
	$(LIBMOSQUITTO_LIBS) -lpthread -lm
tests_bench_mqbus_bench_LDFLAGS = $(AM_LDFLAGS) -no-install

check_PROGRAMS += tests/bench/alloc-driver
tests_bench_alloc_driver_SOURCES = tests/bench/alloc-driver.c
tests_bench_alloc_driver_LDADD = client/libmqbus.la
tests_bench_alloc_driver_LDFLAGS = $(AM_LDFLAGS) -no-install

# An LD_PRELOAD module: no sanitizer flags, which would want to be first
# in the process themselves.
check_LTLIBRARIES = tests/helpers/malloc-count.la
tests_helpers_malloc_count_la_SOURCES = tests/helpers/malloc-count.c
tests_helpers_malloc_count_la_CFLAGS = -std=gnu11 $(WARN_CFLAGS)
tests_helpers_malloc_count_la_LDFLAGS = -module -avoid-version -shared \
	-rpath /nowhere

EXTRA_DIST += tests/bench/README.md tests/bench/ab.sh

# The standard set, every process on CPU 0 (stable ratios on a small
# machine).  Under tests/harness.sh it runs in private IPC and PID
# namespaces when root, and one at a time with the test suites.
# make bench BENCH_FLAGS=--quick, or --json, or any other option.
BENCH_FLAGS =
bench: tests/bench/mqbus-bench daemon/mqbusd
	$(AM_V_at)top_builddir='$(abs_top_builddir)' \
	top_srcdir='$(abs_top_srcdir)' MQBUS_TEST_TIMEOUT=3600 \
	$(SHELL) $(top_srcdir)/tests/harness.sh \
		$(abs_top_builddir)/tests/bench/mqbus-bench --pin 0 $(BENCH_FLAGS)

# The peer rows and the bridge rows alone (tests/bench/README.md): mqbus
# next to dbus-broker and mosquitto, and its MQTT bridge next to
# mosquitto's own clients, pinned to CPU 0, where they are installed; five
# interleaved repetitions (BENCH_FLAGS='--repeat N' overrides), since their
# ratios are medians of pairs.
bench-peers: tests/bench/mqbus-bench daemon/mqbusd
	$(AM_V_at)top_builddir='$(abs_top_builddir)' \
	top_srcdir='$(abs_top_srcdir)' MQBUS_TEST_TIMEOUT=3600 \
	$(SHELL) $(top_srcdir)/tests/harness.sh \
		$(abs_top_builddir)/tests/bench/mqbus-bench --pin 0 \
		--only peers,bridge --repeat 5 $(BENCH_FLAGS)
.PHONY: bench bench-peers
