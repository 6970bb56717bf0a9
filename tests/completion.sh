#!/bin/bash
# SPDX-License-Identifier: MIT
#
# completion.sh - the bash completion of mqbusctl offers its commands and
# each command's options, as mqbusctl itself lists them.
. "$(dirname "$0")/lib.sh"
mqb_init

# shellcheck source=/dev/null
. "$top_srcdir/client/completion/mqbusctl"

# complete WORDS...: what the completion offers for the last word
complete_words() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_mqbusctl "$MQBUSCTL" "${COMP_WORDS[COMP_CWORD]}" \
		"${COMP_WORDS[COMP_CWORD - 1]}"
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

mqb_is "commands starting with s" "$(complete_words mqbusctl s)" \
	"serve stats sub"
mqb_is "after -b BUS too" "$(complete_words mqbusctl -b x to)" "top topics"
mqb_is "the options of sub" "$(complete_words mqbusctl sub 'a/#' --)" \
	"--count --group --help --json --origin --timeout"
mqb_is "the options of pub" "$(complete_words mqbusctl pub t --r)" \
	"--retain"
mqb_is "timer's subcommands" "$(complete_words mqbusctl timer '')" \
	"cancel list"
mqb_is "help COMMAND" "$(complete_words mqbusctl help hi)" "history"
mqb_done
