/* SPDX-License-Identifier: MIT */
/*
 * fuzz_state.c - libFuzzer target of the state file's parser
 * (daemon/state.c, state_parse()).
 *
 * A state file is read back at every start, and it may have been cut
 * short or damaged on disk: the parser must refuse whatever is not a good
 * file, whole, and never read outside it.  Random bytes rarely carry a
 * right CRC-32, so each input is parsed twice: as it is (the checksum
 * path), and with the checksum it lacks appended (every record path).  A
 * parse that succeeds must give records that lie inside the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse(const uint8_t *buf, size_t len)
{
	struct state_image img = { 0 };
	char why[200];

	if (state_parse(buf, len, &img, why, sizeof(why)) == 0)
		state_image_free(&img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	uint32_t crc;

	parse(data, size);
	copy = malloc(size + 4);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	crc = state_crc32(data, size);
	for (int i = 0; i < 4; i++)
		copy[size + (size_t)i] = (uint8_t)(crc >> (8 * i));
	parse(copy, size + 4);
	free(copy);
	return 0;
}
