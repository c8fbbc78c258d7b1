/* check: the unit tests' CHECK(cond, fmt, ...): counts a failure and prints where and why. */
#ifndef ZTUNNEL_TEST_CHECK_H
#define ZTUNNEL_TEST_CHECK_H

#include <stdio.h>

static int failures;	/* the test's exit status is non-zero when this is */

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			failures++;                                            \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);            \
			printf(__VA_ARGS__);                                   \
			printf("\n");                                          \
		}                                                              \
	} while (0)

#endif
