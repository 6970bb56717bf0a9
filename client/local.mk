# client/: libmqbus and mqbusctl
lib_LTLIBRARIES += client/libmqbus.la
include_HEADERS = client/mqbus.h
nodist_include_HEADERS = client/mqbus-version.h
client_libmqbus_la_SOURCES = client/client.c client/mqbus.h \
	client/reassemble.c client/reassemble.h \
	client/shmio.c client/shmio.h
client_libmqbus_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
client_libmqbus_la_LIBADD = proto/libproto.la
client_libmqbus_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(LIBMQBUS_LT_VERSION) \
	-Wl,--version-script=$(top_srcdir)/client/libmqbus.sym
EXTRA_client_libmqbus_la_DEPENDENCIES = client/libmqbus.sym
pkgconfigdir = $(libdir)/pkgconfig
pkgconfig_DATA = client/libmqbus.pc
EXTRA_DIST += client/libmqbus.sym client/libmqbus.pc.in

bin_PROGRAMS += client/mqbusctl
client_mqbusctl_SOURCES = client/mqbusctl.c
client_mqbusctl_LDADD = client/libmqbus.la
dist_man_MANS += client/mqbusctl.1 client/libmqbus.3
# mqbusctl history reads the journal (client/history.c)
client_mqbusctl_SOURCES += client/history.c client/history.h daemon/log-ids.h
client_mqbusctl_CFLAGS = $(AM_CFLAGS) $(LIBSYSTEMD_CFLAGS)
client_mqbusctl_LDADD += $(LIBSYSTEMD_LIBS)
# mqbusctl stats, list, topics and top (client/inspect.c)
client_mqbusctl_SOURCES += client/inspect.c client/inspect.h
# bash completion of mqbusctl (tests/completion.sh)
bashcompletiondir = $(datadir)/bash-completion/completions
dist_bashcompletion_DATA = client/completion/mqbusctl
# man mqbus_publish: each call libmqbus.sym exports gets a page in man3
# that is the one line ".so man3/libmqbus.3" (man(1) reads libmqbus(3)
# then); the names come from libmqbus.sym at install time, so a new call
# gets its page as it gets its version node (tests/manlinks.sh).
MQBUS_MAN3_CALLS = sed -n 's/^[[:space:]]*\(mqbus_[a-z0-9_]*\);.*/\1/p' \
	'$(top_srcdir)/client/libmqbus.sym'
install-data-local: install-man3-links
uninstall-local: uninstall-man3-links
install-man3-links:
	$(MKDIR_P) '$(DESTDIR)$(man3dir)'
	@echo ".so man3/libmqbus.3" >client/man3-link.tmp && \
	for f in `$(MQBUS_MAN3_CALLS)`; do \
	  $(INSTALL_DATA) client/man3-link.tmp "$(DESTDIR)$(man3dir)/$$f.3" || \
	    exit 1; \
	done; \
	rm -f client/man3-link.tmp; \
	echo " installed `$(MQBUS_MAN3_CALLS) | wc -l` pages .so man3/libmqbus.3 in $(DESTDIR)$(man3dir)"
uninstall-man3-links:
	@for f in `$(MQBUS_MAN3_CALLS)`; do \
	  rm -f "$(DESTDIR)$(man3dir)/$$f.3"; \
	done
.PHONY: install-man3-links uninstall-man3-links
