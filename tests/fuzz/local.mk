# tests/fuzz/: libFuzzer targets (see tests/README).  They are built in a
# tree configured with CC=clang --enable-fuzz, where every object is
# instrumented; "make fuzz" builds them (in a plain tree: configures such a
# tree in fuzz-build/ and builds it there), "make fuzz-run" runs each for
# FUZZ_SECONDS (25) from its seed corpus.
FUZZ_TARGETS = tests/fuzz/fuzz_proto tests/fuzz/fuzz_config \
	tests/fuzz/fuzz_daemon tests/fuzz/fuzz_state
FUZZ_SECONDS = 25
FUZZ_TARGET_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(LIBSYSTEMD_CFLAGS)

if FUZZ
noinst_PROGRAMS += $(FUZZ_TARGETS)
endif
tests_fuzz_fuzz_proto_SOURCES = tests/fuzz/fuzz_proto.c
tests_fuzz_fuzz_proto_CFLAGS = $(FUZZ_TARGET_CFLAGS)
tests_fuzz_fuzz_proto_LDADD = proto/libproto.la
tests_fuzz_fuzz_proto_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz_config.c
tests_fuzz_fuzz_config_CFLAGS = $(FUZZ_TARGET_CFLAGS)
tests_fuzz_fuzz_config_LDADD = daemon/libmqbusd.la
tests_fuzz_fuzz_config_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_daemon_SOURCES = tests/fuzz/fuzz_daemon.c
tests_fuzz_fuzz_daemon_CFLAGS = $(FUZZ_TARGET_CFLAGS)
tests_fuzz_fuzz_daemon_LDADD = daemon/libmqbusd.la
tests_fuzz_fuzz_daemon_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_state_SOURCES = tests/fuzz/fuzz_state.c
tests_fuzz_fuzz_state_CFLAGS = $(FUZZ_TARGET_CFLAGS)
tests_fuzz_fuzz_state_LDADD = daemon/libmqbusd.la
tests_fuzz_fuzz_state_LDFLAGS = $(FUZZ_LDFLAGS)

EXTRA_DIST += tests/fuzz/run.sh tests/fuzz/gen-seeds.py \
	tests/fuzz/fuzz_proto.dict tests/fuzz/fuzz_config.dict \
	tests/fuzz/fuzz_daemon.dict tests/fuzz/fuzz_config.options \
	tests/fuzz/fuzz_daemon.options tests/fuzz/corpus tests/README

.PHONY: fuzz fuzz-run
if FUZZ
fuzz: $(FUZZ_TARGETS)

fuzz-run: $(FUZZ_TARGETS)
	FUZZ_SECONDS='$(FUZZ_SECONDS)' $(SHELL) $(srcdir)/tests/fuzz/run.sh \
		$(srcdir)/tests/fuzz $(FUZZ_TARGETS)
else
# A plain tree: the fuzz build is a tree of its own, fuzz-build/.
FUZZ_CC = clang
fuzz:
	@mkdir -p fuzz-build
	@if ! test -f fuzz-build/Makefile; then \
		echo "configuring fuzz-build/ with CC=$(FUZZ_CC) --enable-fuzz"; \
		(cd fuzz-build && $(abs_top_srcdir)/configure \
			CC='$(FUZZ_CC)' --enable-fuzz) || exit 1; \
	fi
	$(MAKE) -C fuzz-build fuzz

fuzz-run: fuzz
	$(MAKE) -C fuzz-build fuzz-run FUZZ_SECONDS='$(FUZZ_SECONDS)'
endif

clean-local: clean-local-fuzz
clean-local-fuzz:
	-rm -rf fuzz-build fuzz-corpus fuzz-artifacts
