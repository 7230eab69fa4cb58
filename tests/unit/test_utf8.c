/*
 * test_utf8 -- the UTF-8 check and repair caskd applies to every answer it
 * sends (JSON is UTF-8; a message may echo a client's bytes or be cut to a
 * buffer's size): well-formed text passes untouched, and every byte of an
 * ill-formed sequence (cut short, overlong, a surrogate, above U+10FFFF, a
 * stray continuation byte) becomes '?'.
 */
#include "t.h"
#include "util.h"

static void
repaired(const char *in, const char *want)
{
	char buf[64];
	size_t n = strlen(in);
	memcpy(buf, in, n + 1);
	util_utf8_repair(buf, n);
	if (strcmp(buf, want) != 0) {
		fprintf(stderr, "repair of '%s' gave '%s', want '%s'\n", in, buf, want);
		exit(1);
	}
	CHECK(util_utf8_valid_prefix(buf, n) == n);
}

int
main(void)
{
	const char *ok = "pool t\xc3\xa9st \xe2\x82\xac \xf0\x9f\x92\xbe \xef\xbf\xbf \xf4\x8f\xbf\xbf";
	CHECK(util_utf8_valid_prefix(ok, strlen(ok)) == strlen(ok));
	repaired(ok, ok);
	CHECK(util_utf8_valid_prefix("ab\xe1\x96", 4) == 2);         /* cut in the middle of a character */
	repaired("ab\xe1\x96", "ab??");
	repaired("\xc0\xaf", "??");                                  /* overlong '/' */
	repaired("\xe0\x80\xaf", "???");                             /* overlong, three bytes */
	repaired("\xed\xa0\x80", "???");                             /* a UTF-16 surrogate */
	repaired("\xf4\x90\x80\x80", "????");                        /* above U+10FFFF */
	repaired("\xf5\x80\x80\x80", "????");
	repaired("a\x80z", "a?z");                                   /* a stray continuation byte */
	repaired("\xc3\xa9\xc3", "\xc3\xa9?");
	repaired("\xe2\x82\xe2\x82\xac", "??\xe2\x82\xac");          /* a broken one before a good one */
	printf("ok\n");
	return 0;
}
