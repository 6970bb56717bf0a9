# proto/: the wire format, shared by daemon and library
noinst_LTLIBRARIES += proto/libproto.la
proto_libproto_la_SOURCES = proto/proto.c proto/proto.h \
	proto/frag.c proto/frag.h \
	proto/shm.c proto/shm.h
EXTRA_DIST += proto/PROTOCOL.md
