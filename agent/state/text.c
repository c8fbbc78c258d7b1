/* state/text.c: the rule for the strings a snapshot holds: UTF-8 (protobuf and JSON want it). */
#include <string.h>

#include <ztunnel/state.h>

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when it is not one. */
static size_t sequence_len(const unsigned char *s, size_t n)
{
	size_t extra;
	uint32_t cp, min;

	if (s[0] < 0x80)
		return s[0] ? 1 : 0;
	if ((s[0] & 0xe0) == 0xc0)
		extra = 1, cp = s[0] & 0x1f, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		extra = 2, cp = s[0] & 0x0f, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		extra = 3, cp = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (extra > n - 1)
		return 0;
	for (size_t k = 1; k <= extra; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return extra + 1;
}

bool state_utf8_valid(const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t len;

	for (size_t i = 0; i < n; i += len)
		if (!(len = sequence_len(p + i, n - i)))
			return false;
	return true;
}

void state_utf8_repair(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t n = strlen(s), len;

	for (size_t i = 0; i < n; i += len)
		if (!(len = sequence_len(p + i, n - i))) {
			p[i] = '?';
			len = 1;
		}
}
