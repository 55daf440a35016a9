/* A fuzz target with undefined behaviour on every input (a signed overflow),
 * for the harness self-test: its fuzz run must count as failed. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	volatile int big = INT_MAX;
	volatile int n = (int)(size > 0 ? data[0] % 2 : 0) + 1;
	big += n; /* overflows */
	return 0;
}
