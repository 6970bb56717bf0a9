#!/bin/bash
# SPDX-License-Identifier: MIT
#
# symbols.sh - libmqbus's interface is what its files say it is:
#
#  - every symbol the built libmqbus.so exports is versioned, in the node
#    that client/libmqbus.sym names it in (the .sym names each symbol of
#    each node: no pattern), and every name of the .sym is exported;
#  - every function <mqbus.h> declares is exported (a new call that is in
#    no node of the .sym would be local);
#  - debian/libmqbus1.symbols lists exactly the exported symbol@node pairs
#    (what dpkg-gensymbols -c4 checks in the package build);
#  - -version-info follows configure.ac's rule: current - age is 1 (the
#    soname libmqbus.so.1), current is N + 2 for the newest node
#    LIBMQBUS_1.N;
#  - <mqbus.h>'s MQBUS_VERSION_* are configure.ac's version (so is the
#    Python package's __version__), and MQBUS_VERSION_AT_LEAST() compares
#    with it.
. "$(dirname "$0")/lib.sh"
mqb_init

LIB=$top_builddir/client/.libs/libmqbus.so
SYM=$top_srcdir/client/libmqbus.sym
DEBSYM=$top_srcdir/debian/libmqbus1.symbols
HDR=$top_srcdir/client/mqbus.h
[ -e "$LIB" ] || mqb_bail "libmqbus is built" "missing: $LIB"
command -v nm >/dev/null 2>&1 || mqb_bail "nm is installed" "binutils"

# ------------------------------------------------------------ the .sym

# The .sym as "symbol node" lines (global names only) and the node list,
# comments removed.
sed -e 's|/\*.*\*/||g' "$SYM" | sed -e '/\/\*/,/\*\//d' >"$MQB_TMP/sym"
awk '
	/^[ \t]*[A-Za-z0-9_.]+[ \t]*\{/ { node = $1; sub(/\{.*/, "", node);
		scope = "global"; next }
	/^[ \t]*global:/ { scope = "global"; next }
	/^[ \t]*local:/ { scope = "local"; next }
	/^[ \t]*\}/ { node = ""; next }
	node != "" && scope == "global" {
		for (i = 1; i <= NF; i++) { w = $i; sub(/;$/, "", w);
			if (w != "") print w, node }
	}' "$MQB_TMP/sym" | sort >"$MQB_TMP/sym.pairs"
sed -n 's/^[ \t]*\([A-Za-z0-9_.]*\)[ \t]*{.*/\1/p' "$MQB_TMP/sym" \
	>"$MQB_TMP/sym.nodes"
mqb_like "libmqbus.sym has version nodes" \
	"$(tr '\n' ' ' <"$MQB_TMP/sym.nodes")" '^LIBMQBUS_1 '
mqb_is "libmqbus.sym names its symbols (no pattern in a global part)" \
	"$(awk '$1 ~ /[*?\[]/' "$MQB_TMP/sym.pairs")" ""
mqb_is "no symbol is named in two nodes" \
	"$(awk '{ print $1 }' "$MQB_TMP/sym.pairs" | uniq -d)" ""

# ------------------------------------------------------------ the library

# "symbol node" of what the library defines and exports (the node names
# themselves are absolute symbols of their own node: left out)
nm -D --defined-only --with-symbol-versions "$LIB" >"$MQB_TMP/nm.out"
mqb_true "nm -D reads libmqbus.so" $? "$(head -n 5 "$MQB_TMP/nm.out")"
# (nm shows a node as an absolute symbol, type A, of no version)
awk '$(NF - 1) != "A" { print $NF }' "$MQB_TMP/nm.out" |
	awk -F'@' '{ print $1, (NF > 1 ? $NF : "-") }' |
	sort >"$MQB_TMP/lib.pairs"
awk '$(NF - 1) == "A" { print $NF }' "$MQB_TMP/nm.out" |
	sort >"$MQB_TMP/lib.nodes"
mqb_like "libmqbus.so exports symbols" "$(wc -l <"$MQB_TMP/lib.pairs")" \
	'^[1-9][0-9]+$'
mqb_is "no exported symbol is unversioned" \
	"$(awk '$2 == "-" { print $1 }' "$MQB_TMP/lib.pairs")" ""
mqb_is "every exported symbol is an mqbus_ call" \
	"$(awk '$1 !~ /^mqbus_/ { print $1 }' "$MQB_TMP/lib.pairs")" ""
mqb_is "every exported symbol has the node libmqbus.sym names it in" \
	"$(comm -23 "$MQB_TMP/lib.pairs" "$MQB_TMP/sym.pairs")" ""
mqb_is "every symbol libmqbus.sym names is exported, in its node" \
	"$(comm -13 "$MQB_TMP/lib.pairs" "$MQB_TMP/sym.pairs")" ""
mqb_is "the library defines exactly the nodes of libmqbus.sym" \
	"$(tr '\n' ' ' <"$MQB_TMP/lib.nodes")" \
	"$(sort "$MQB_TMP/sym.nodes" | tr '\n' ' ')"
mqb_like "the soname is libmqbus.so.1" \
	"$(LC_ALL=C readelf -d "$LIB" | grep SONAME)" '\[libmqbus\.so\.1\]'

# The functions <mqbus.h> declares: the preprocessed header (no comments,
# macros expanded), every mqbus_name followed by "(".
HDRDIRS=(-I"$top_srcdir/client" -I"$top_builddir/client")
${CC:-cc} -E -P "${HDRDIRS[@]}" -x c "$HDR" >"$MQB_TMP/hdr.i" 2>&1
mqb_true "the preprocessor reads mqbus.h" $? "$(head -n 5 "$MQB_TMP/hdr.i")"
grep -oE '\bmqbus_[a-z0-9_]+[[:space:]]*\(' "$MQB_TMP/hdr.i" |
	sed 's/[[:space:](]*$//' | sort -u >"$MQB_TMP/hdr.funcs"
mqb_like "mqbus.h declares functions" "$(wc -l <"$MQB_TMP/hdr.funcs")" \
	'^[1-9][0-9]+$'
mqb_is "every function of mqbus.h is exported (named in libmqbus.sym)" \
	"$(comm -23 "$MQB_TMP/hdr.funcs" <(awk '{ print $1 }' "$MQB_TMP/lib.pairs"))" ""
mqb_is "every exported symbol is declared in mqbus.h" \
	"$(comm -13 "$MQB_TMP/hdr.funcs" <(awk '{ print $1 }' "$MQB_TMP/lib.pairs"))" ""

# debian/libmqbus1.symbols: "name@node version" lines, the nodes too
if [ -f "$DEBSYM" ]; then
	sed -n 's/^ \([^ ]*\)@\([^ ]*\) .*/\1 \2/p' "$DEBSYM" |
		awk '!($1 ~ /^LIBMQBUS_/ && $1 == $2)' | sort >"$MQB_TMP/deb.pairs"
	mqb_is "debian/libmqbus1.symbols lists every exported symbol@node" \
		"$(comm -23 "$MQB_TMP/lib.pairs" "$MQB_TMP/deb.pairs")" ""
	mqb_is "debian/libmqbus1.symbols lists nothing else" \
		"$(comm -13 "$MQB_TMP/lib.pairs" "$MQB_TMP/deb.pairs")" ""
	mqb_is "debian/libmqbus1.symbols lists each node" \
		"$(sed -n 's/^ \(LIBMQBUS_[0-9.]*\)@\1 .*/\1/p' "$DEBSYM" |
			sort | tr '\n' ' ')" \
		"$(sort "$MQB_TMP/sym.nodes" | tr '\n' ' ')"
elif [ ! -d "$top_srcdir/debian" ]; then
	# a release tarball (make dist, distcheck) has no debian/; the git
	# tree that make check runs in has
	mqb_skip "debian/libmqbus1.symbols lists the exported symbols" \
		"no debian/ in $top_srcdir"
else
	mqb_notok "debian/libmqbus1.symbols exists" "missing: $DEBSYM"
fi

# ------------------------------------------------------------ -version-info

CONFIGURE_AC=$top_srcdir/configure.ac
lt=$(sed -n 's/^AC_SUBST(\[LIBMQBUS_LT_VERSION\], \[\([0-9:]*\)\]).*/\1/p' \
	"$CONFIGURE_AC")
mqb_like "configure.ac sets -version-info C:R:A" "$lt" '^[0-9]+:[0-9]+:[0-9]+$'
IFS=: read -r lt_cur lt_rev lt_age <<<"$lt"
mqb_is "-version-info: current - age is 1 (libmqbus.so.1)" \
	"$((lt_cur - lt_age))" 1
newest=$(sed -n 's/^LIBMQBUS_1\.\([0-9]*\)$/\1/p' "$MQB_TMP/sym.nodes" |
	sort -n | tail -n 1)
mqb_is "-version-info: current is N + 2 for the newest node LIBMQBUS_1.N" \
	"$lt_cur" "$((${newest:-0} + 2))"
mqb_like "the built library's file name follows -version-info" \
	"$(ls "$top_builddir"/client/.libs/libmqbus.so.1.*.* 2>/dev/null)" \
	"libmqbus\.so\.1\.$lt_age\.$lt_rev\$"
mqb_diag "-version-info $lt, newest node LIBMQBUS_1.${newest:-0}"

# ------------------------------------------------------------ the version

version=$(sed -n 's/^AC_INIT(\[mqbus\], \[\([^]]*\)\].*/\1/p' "$CONFIGURE_AC")
mqb_like "configure.ac's version is MAJOR.MINOR.MICRO" "$version" \
	'^[0-9]+\.[0-9]+\.[0-9]+$'
IFS=. read -r v_major v_minor v_micro <<<"$version"
cat >"$MQB_TMP/version.c" <<'EOF'
#include <mqbus.h>
#include <stdio.h>

#if !defined(MQBUS_VERSION_MAJOR) || !defined(MQBUS_VERSION_MINOR) || \
	!defined(MQBUS_VERSION_MICRO)
#error MQBUS_VERSION_* not defined by <mqbus.h>
#endif
/* usable in #if, as a program that needs a newer call would */
#if !MQBUS_VERSION_AT_LEAST(MQBUS_VERSION_MAJOR, MQBUS_VERSION_MINOR, \
			    MQBUS_VERSION_MICRO)
#error MQBUS_VERSION_AT_LEAST of its own version is false
#endif

int main(void)
{
	printf("%d %d %d %s\n", MQBUS_VERSION_MAJOR, MQBUS_VERSION_MINOR,
	       MQBUS_VERSION_MICRO, MQBUS_VERSION_STRING);
	printf("%d %d %d %d %d %d %d %d\n", MQBUS_VERSION_AT_LEAST(0, 0, 0),
	       MQBUS_VERSION_AT_LEAST(V_MAJOR, V_MINOR, V_MICRO),
	       MQBUS_VERSION_AT_LEAST(V_MAJOR, V_MINOR, V_MICRO + 1),
	       MQBUS_VERSION_AT_LEAST(V_MAJOR, V_MINOR + 1, 0),
	       MQBUS_VERSION_AT_LEAST(V_MAJOR + 1, 0, 0),
	       MQBUS_VERSION_AT_LEAST(V_MAJOR - 1, 99, 99),
	       MQBUS_VERSION_AT_LEAST(V_MAJOR, V_MINOR - 1, 99),
	       MQBUS_VERSION_AT_LEAST(V_MAJOR, V_MINOR, V_MICRO - 1));
	return 0;
}
EOF
if ${CC:-cc} -std=gnu11 -Wall -Werror "${HDRDIRS[@]}" -DV_MAJOR="$v_major" \
	-DV_MINOR="$v_minor" -DV_MICRO="$v_micro" -o "$MQB_TMP/version" \
	"$MQB_TMP/version.c" >"$MQB_TMP/version.err" 2>&1; then
	mqb_ok "a program using MQBUS_VERSION_* builds against mqbus.h"
	out=$("$MQB_TMP/version")
	mqb_is "MQBUS_VERSION_MAJOR/MINOR/MICRO/STRING are configure.ac's" \
		"$(sed -n 1p <<<"$out")" "$v_major $v_minor $v_micro $version"
	# the expected answers: the triples compared in order
	want=
	for t in "0 0 0" "$v_major $v_minor $v_micro" \
		"$v_major $v_minor $((v_micro + 1))" \
		"$v_major $((v_minor + 1)) 0" "$((v_major + 1)) 0 0" \
		"$((v_major - 1)) 99 99" "$v_major $((v_minor - 1)) 99" \
		"$v_major $v_minor $((v_micro - 1))"; do
		read -r a b c <<<"$t"
		if [ "$v_major" -ne "$a" ]; then r=$((v_major > a))
		elif [ "$v_minor" -ne "$b" ]; then r=$((v_minor > b))
		else r=$((v_micro >= c)); fi
		want="${want:+$want }$r"
	done
	mqb_is "MQBUS_VERSION_AT_LEAST: 0.0.0, itself, later and earlier ones" \
		"$(sed -n 2p <<<"$out")" "$want"
else
	mqb_notok "a program using MQBUS_VERSION_* builds against mqbus.h" \
		"$(cat "$MQB_TMP/version.err")"
fi
config_version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' \
	"$top_builddir/config.h")
mqb_is "the build's config.h has the same version" "$config_version" \
	"$version"
mqb_is "the Python package's mqbus.__version__ is the same" \
	"$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' \
		"$top_srcdir/python/mqbus/__init__.py")" "$version"
mqb_like "mqbus-version.h is installed beside mqbus.h (client/local.mk)" \
	"$(sed -n 's/^nodist_include_HEADERS *=//p' "$top_srcdir/client/local.mk")" \
	'client/mqbus-version\.h'

mqb_done
