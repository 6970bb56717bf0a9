#!/bin/bash
# SPDX-License-Identifier: MIT
#
# manlinks.sh - "man mqbus_publish" finds libmqbus(3): make install into a
# temporary DESTDIR puts one ".so man3/libmqbus.3" page per exported call
# of the built libmqbus.so in man3 (client/local.mk), libmqbus(3) declares
# each of them in its SYNOPSIS and speaks of it below, and make uninstall
# takes the pages away again.
. "$(dirname "$0")/lib.sh"
mqb_init

LIB=$top_builddir/client/.libs/libmqbus.so
PAGE=$top_srcdir/client/libmqbus.3
[ -e "$LIB" ] || mqb_bail "libmqbus is built" "missing: $LIB"

nm -D --defined-only "$LIB" | awk '$2 != "A" { print $3 }' |
	sed 's/@.*//' | sort -u >"$MQB_TMP/calls"
mqb_like "libmqbus.so exports calls" "$(wc -l <"$MQB_TMP/calls")" \
	'^[1-9][0-9]+$'

# ------------------------------------------------------------ the page

sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p' "$PAGE" >"$MQB_TMP/synopsis"
sed -n '/^\.SH DESCRIPTION/,$p' "$PAGE" >"$MQB_TMP/body"
no_decl=() no_text=()
while read -r f; do
	grep -Eq "(^|[^a-z0-9_])$f\(" "$MQB_TMP/synopsis" || no_decl+=("$f")
	grep -Eq "(^|[^a-z0-9_])$f([^a-z0-9_]|\$)" "$MQB_TMP/body" ||
		no_text+=("$f")
done <"$MQB_TMP/calls"
mqb_is "libmqbus(3)'s SYNOPSIS declares every exported call" \
	"${no_decl[*]}" ""
mqb_is "libmqbus(3) speaks of every exported call below its SYNOPSIS" \
	"${no_text[*]}" ""

# ------------------------------------------------------------ make install

DEST=$MQB_TMP/dest
make -s -C "$top_builddir" install DESTDIR="$DEST" >"$MQB_TMP/install.out" 2>&1
st=$?
mqb_is "make install DESTDIR=..." "$st" 0 ||
	mqb_diag_file "make install" "$MQB_TMP/install.out"
main=$(find "$DEST" -path '*/man3/libmqbus.3' | head -n 1)
if [ -z "$main" ]; then
	mqb_bail "libmqbus.3 is installed in man3" "$(find "$DEST" -name '*.3')"
fi
mqb_ok "libmqbus.3 is installed in man3"
MAN3=$(dirname "$main")

missing=() wrong=()
while read -r f; do
	if [ ! -f "$MAN3/$f.3" ]; then
		missing+=("$f")
	elif [ "$(cat "$MAN3/$f.3")" != ".so man3/libmqbus.3" ]; then
		wrong+=("$f")
	fi
done <"$MQB_TMP/calls"
mqb_is "every exported call has its page in man3" "${missing[*]}" ""
mqb_is "... which is .so man3/libmqbus.3" "${wrong[*]}" ""
extra=$(cd "$MAN3" && ls | sed -n 's/^\(mqbus_.*\)\.3$/\1/p' |
	comm -23 - "$MQB_TMP/calls")
mqb_is "no page for a call the library does not export" "$extra" ""

# man(1) follows the .so to libmqbus(3)
if command -v man >/dev/null 2>&1; then
	out=$(MANPATH=$(dirname "$MAN3") man -w mqbus_publish 2>&1)
	mqb_is "man -w mqbus_publish finds libmqbus.3" "$out" "$main"
	MANPATH=$(dirname "$MAN3") MANWIDTH=80 man mqbus_timer_add \
		>"$MQB_TMP/man.out" 2>&1
	mqb_like "man mqbus_timer_add shows libmqbus(3)" \
		"$(head -n 5 "$MQB_TMP/man.out")" 'LIBMQBUS\(3\)'
else
	mqb_skip "man -w mqbus_publish finds libmqbus.3" "man is not installed"
fi

make -s -C "$top_builddir" uninstall DESTDIR="$DEST" \
	>"$MQB_TMP/uninstall.out" 2>&1
mqb_is "make uninstall DESTDIR=..." "$?" 0 ||
	mqb_diag_file "make uninstall" "$MQB_TMP/uninstall.out"
mqb_is "make uninstall removes the pages" \
	"$(ls "$MAN3" 2>/dev/null | tr '\n' ' ')" ""

mqb_done
