/*
 * test_log_escape -- the escaping caskd's log applies to every message
 * (util_escape, through daemon/log.c): a client's newline, terminal escape,
 * NUL, backslash, bytes outside UTF-8 and Unicode controls come out as
 * visible escapes, so no line can be forged; ordinary text and UTF-8 are
 * kept; the output is bounded, cut only between escapes, and marked "...".
 */
#include "t.h"
#include "util.h"

static void
escaped(const char *in, size_t len, size_t cap, const char *want)
{
	char buf[256];
	memset(buf, 'Z', sizeof(buf));
	size_t n = util_escape(buf, cap, in, len);
	if (n != strlen(want) || strcmp(buf, want) != 0) {
		fprintf(stderr, "escape with cap %zu gave '%s' (%zu), want '%s'\n", cap, buf, n, want);
		exit(1);
	}
	CHECK(n < cap);
	CHECK(buf[n] == '\0' && (n + 1 == sizeof(buf) || buf[n + 1] == 'Z')); /* nothing past the end */
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)buf[i] >= 0x20 && buf[i] != 0x7f);
}

#define E(in, want) escaped(in, sizeof(in) - 1, 256, want)

int
main(void)
{
	E("tank/vol0", "tank/vol0");
	E("", "");
	E("a\nFAKE pool tank SUSPENDED\x1b[31m", "a\\nFAKE pool tank SUSPENDED\\x1b[31m");
	E("x\r\ty", "x\\r\\ty");
	E("back\\slash\\n", "back\\\\slash\\\\n"); /* a literal "\n" is told from a newline */
	E("nul\0junk", "nul\\x00junk");
	E("del\x7f", "del\\x7f");
	E("\x01\x1f", "\\x01\\x1f");
	E("t\xc3\xa9st \xe2\x82\xac \xf0\x9f\x92\xbe", "t\xc3\xa9st \xe2\x82\xac \xf0\x9f\x92\xbe"); /* UTF-8 kept */
	E("a\x80z", "a\\x80z");               /* a stray continuation byte */
	E("\xc0\xaf", "\\xc0\\xaf");          /* overlong */
	E("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* a surrogate */
	E("cut\xe2\x82", "cut\\xe2\\x82");   /* cut short */
	E("c1\xc2\x9b[31m", "c1\\u{009b}[31m"); /* the C1 CSI */
	E("ls\xe2\x80\xa8x", "ls\\u{2028}x");    /* the line separator */
	E("bidi\xe2\x80\xae", "bidi\\u{202e}");  /* right-to-left override */
	E("iso\xe2\x81\xa6", "iso\\u{2066}");
	/* bounded: cut between escapes, "..." marks the cut */
	escaped("abcdefgh", 8, 9, "abcdefgh");
	escaped("abcdefgh", 8, 8, "abcd...");
	escaped("ab\ncdef", 7, 7, "ab...");
	escaped("ab\ncdef", 7, 8, "ab\\n...");
	escaped("\x1b\x1b\x1b", 3, 10, "\\x1b...");
	escaped("\x1b\x1b\x1b", 3, 13, "\\x1b\\x1b\\x1b");
	escaped("abc", 3, 1, "");
	escaped("abc", 3, 3, "..");
	escaped("\xe2\x82\xac\xe2\x82\xac", 6, 7, "\xe2\x82\xac\xe2\x82\xac"); /* the last piece needs no dots */
	escaped("\xe2\x82\xac\xe2\x82\xac", 6, 6, "...");
	/* every byte value, alone and in a long run: printable output, never over the bound */
	for (int c = 0; c < 256; c++) {
		char in[1] = { (char)c }, out[8];
		size_t n = util_escape(out, sizeof(out), in, 1);
		CHECK(n < sizeof(out) && out[n] == '\0');
		CHECK(c == '\\' ? strcmp(out, "\\\\") == 0 :
		    c >= 0x20 && c < 0x7f ? (n == 1 && out[0] == c) : out[0] == '\\');
	}
	char big[4096], out[1000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	size_t n = util_escape(out, sizeof(out), big, sizeof(big));
	CHECK(n < sizeof(out) && n == strlen(out) && n > 990 && strcmp(out + n - 3, "...") == 0);
	if (t_failures)
		return 1;
	printf("ok\n");
	return 0;
}
