# client/: libmqbus and mqbusctl
lib_LTLIBRARIES += client/libmqbus.la
include_HEADERS = client/mqbus.h
client_libmqbus_la_SOURCES = client/client.c client/mqbus.h \
	client/reassemble.c client/reassemble.h
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
