/* Unit tests for lib/util: durations, times, strict number parsing,
 * shortest reals and JSON text written piecewise (json_text.c). */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/util/json_text.h"
#include "lib/util/suggest.h"
#include "lib/util/util.h"

static const struct {
	const char *text;
	int ret;
	int64_t ms;
} durations[] = {
        {"500ms", 0, 500},      {"30s", 0, 30000},     {"5m", 0, 300000},     {"1h", 0, 3600000},
        {"90d", 0, 7776000000}, {"1.5s", 0, 1500},     {"0s", 0, 0},          {"1500us", 0, 2},
        {".5s", 0, 500},        {"100us", -EINVAL, 0}, {"10", -EINVAL, 0},    {"s", -EINVAL, 0},
        {"-1s", -EINVAL, 0},    {"1x", -EINVAL, 0},    {"1 s", -EINVAL, 0},   {"", -EINVAL, 0},
        {"nans", -EINVAL, 0},   {"infs", -EINVAL, 0},  {"1e30d", -ERANGE, 0}, {"5ms ", -EINVAL, 0},
};

START_TEST(test_duration)
{
	int64_t ms = -1;

	ck_assert_int_eq(rd_parse_duration(durations[_i].text, &ms), durations[_i].ret);
	if (durations[_i].ret == 0)
		ck_assert_int_eq(ms, durations[_i].ms);
	else
		ck_assert_int_eq(ms, -1); /* untouched on error */
}
END_TEST

START_TEST(test_format_duration)
{
	char buf[32];

	rd_format_duration(500, buf, sizeof(buf));
	ck_assert_str_eq(buf, "500ms");
	rd_format_duration(1500, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1.5s");
	rd_format_duration(300000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "5m");
	rd_format_duration(7200000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2h");
	rd_format_duration(90LL * 86400000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "90d");
}
END_TEST

START_TEST(test_time_roundtrip)
{
	char buf[RD_TIME_LEN];
	int64_t ms;

	rd_time_format(1795700402114LL, buf);
	ck_assert_str_eq(buf, "2026-11-26T13:40:02.114Z");
	ck_assert_int_eq(rd_time_parse(buf, &ms), 0);
	ck_assert_int_eq(ms, 1795700402114LL);
	ck_assert_int_eq(rd_time_parse("2026-11-26T14:40:02.114+01:00", &ms), 0);
	ck_assert_int_eq(ms, 1795700402114LL);
	ck_assert_int_eq(rd_time_parse("2026-11-20", &ms), 0);
	rd_time_format(ms, buf);
	ck_assert_str_eq(buf, "2026-11-20T00:00:00.000Z");
	rd_time_format(0, buf);
	ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
}
END_TEST

/* The text gmtime and printf give: what rd_time_format must write for
 * every time, by whichever path. */
static void time_reference(int64_t ms, char *buf, size_t len)
{
	time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - (int64_t)secs * 1000));
}

/* Leap days, century rules, the edges of years 0 and 9999, negative times
 * and random ones print as gmtime says. */
START_TEST(test_time_format_everywhere)
{
	static const int64_t edges[] = {0,
	                                -1,
	                                -86400000,
	                                951782400000LL,   /* 2000-02-29 */
	                                4107542400000LL,  /* 2100-03-01 */
	                                -2203891200000LL, /* 1900-02-28 */
	                                -62167219200000LL,
	                                -62167219200001LL,
	                                253402300799999LL,
	                                253402300800000LL,
	                                1795700402114LL};
	uint64_t x = 0x2545F4914F6CDD1DULL;
	char got[RD_TIME_LEN], want[64];

	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		rd_time_format(edges[i], got);
		time_reference(edges[i], want, sizeof(want));
		want[RD_TIME_LEN - 1] = '\0';
		ck_assert_msg(strcmp(got, want) == 0, "%lld: %s, want %s", (long long)edges[i], got,
		              want);
	}
	for (int i = 0; i < 200000; i++) {
		int64_t ms;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		ms = (int64_t)(x % 315537897600000ULL) - 62167219200000LL; /* years 0 to 9999 */
		rd_time_format(ms, got);
		time_reference(ms, want, sizeof(want));
		ck_assert_msg(strcmp(got, want) == 0, "%lld: %s, want %s", (long long)ms, got,
		              want);
	}
}
END_TEST

static const char *const bad_times[] = {
        "",
        "2026",
        "2026-13-01",
        "2026-02-30",
        "2026-11-26T25:00:00Z",
        "2026-11-26T13:40:02",
        "2026-11-26T13:40:02.Z",
        "2026-11-26X13:40:02Z",
        "2026-11-26T13:40:02Zjunk",
        "26-11-2026",
};

START_TEST(test_time_invalid)
{
	int64_t ms = 42;

	ck_assert_int_eq(rd_time_parse(bad_times[_i], &ms), -EINVAL);
	ck_assert_int_eq(ms, 42);
}
END_TEST

START_TEST(test_leap_day)
{
	int64_t ms;

	ck_assert_int_eq(rd_time_parse("2028-02-29", &ms), 0);
	ck_assert_int_eq(rd_time_parse("2026-02-29", &ms), -EINVAL);
	ck_assert_int_eq(rd_time_parse("2100-02-29", &ms), -EINVAL);
	ck_assert_int_eq(rd_time_parse("2000-02-29", &ms), 0);
}
END_TEST

START_TEST(test_int64)
{
	int64_t v = 7;

	ck_assert_int_eq(rd_parse_int64("42", 0, 100, &v), 0);
	ck_assert_int_eq(v, 42);
	ck_assert_int_eq(rd_parse_int64("-5", -10, 10, &v), 0);
	ck_assert_int_eq(v, -5);
	ck_assert_int_eq(rd_parse_int64("101", 0, 100, &v), -ERANGE);
	ck_assert_int_eq(rd_parse_int64("99999999999999999999", 0, INT64_MAX, &v), -ERANGE);
	ck_assert_int_eq(rd_parse_int64("", 0, 100, &v), -EINVAL);
	ck_assert_int_eq(rd_parse_int64("4x", 0, 100, &v), -EINVAL);
	ck_assert_int_eq(rd_parse_int64(" 4", 0, 100, &v), -EINVAL);
	ck_assert_int_eq(rd_parse_int64("+4", 0, 100, &v), -EINVAL);
	ck_assert_int_eq(rd_parse_int64(NULL, 0, 100, &v), -EINVAL);
	ck_assert_int_eq(v, -5);
}
END_TEST

START_TEST(test_double)
{
	double v = 0;

	ck_assert_int_eq(rd_parse_double("0.05", &v), 0);
	ck_assert_double_eq(v, 0.05);
	ck_assert_int_eq(rd_parse_double("1e3", &v), 0);
	ck_assert_double_eq(v, 1000);
	ck_assert_int_eq(rd_parse_double("nan", &v), -ERANGE);
	ck_assert_int_eq(rd_parse_double("inf", &v), -ERANGE);
	ck_assert_int_eq(rd_parse_double("1e999", &v), -ERANGE);
	ck_assert_int_eq(rd_parse_double("1.5x", &v), -EINVAL);
	ck_assert_int_eq(rd_parse_double("", &v), -EINVAL);
}
END_TEST

START_TEST(test_memeq_ct)
{
	ck_assert(rd_memeq_ct("abcdef", "abcdef", 6));
	ck_assert(!rd_memeq_ct("abcdef", "abcdeg", 6));
	ck_assert(!rd_memeq_ct("xbcdef", "abcdef", 6));
	ck_assert(rd_memeq_ct("", "", 0));
}
END_TEST

static const struct {
	const char *in, *want;
} redact_cases[] = {
        {"http://h/x", "http://h/x"},
        {"http://user:s3cret@h:80/x", "http://user:<redacted>@h:80/x"},
        {"https://t0ken@h/", "https://<redacted>@h/"},
        {"GET http://u:p@127.0.0.1:9/a: refused; also http://v:q@[::1]:8/",
         "GET http://u:<redacted>@127.0.0.1:9/a: refused; also http://v:<redacted>@[::1]:8/"},
        {"http://h/a?x=1&access_token=abc&API_KEY=k#frag",
         "http://h/a?x=1&access_token=<redacted>&API_KEY=<redacted>#frag"},
        {"http://a:b@c@h/?sig=1", "http://a:<redacted>@h/?sig=<redacted>"},
        {"no url here: a@b", "no url here: a@b"},
        {"\"http://u:p@h\"", "\"http://u:<redacted>@h\""},
        {"", ""},
};

START_TEST(test_url_redact)
{
	char buf[256], small[12];
	char *dup = rd_url_redact_dup(redact_cases[_i].in);

	ck_assert_str_eq(rd_url_redact(redact_cases[_i].in, buf, sizeof(buf)),
	                 redact_cases[_i].want);
	ck_assert_ptr_nonnull(dup);
	ck_assert_str_eq(dup, redact_cases[_i].want);
	free(dup);
	/* Truncation keeps a NUL and never a secret's tail. */
	rd_url_redact(redact_cases[_i].in, small, sizeof(small));
	ck_assert_uint_lt(strlen(small), sizeof(small));
	ck_assert_ptr_null(strstr(small, "s3c"));
}
END_TEST

/* Shortest text that reads back as the same double. */
static const struct {
	double v;
	const char *want;
} shortest[] = {
        {0.096, "0.096"},
        {1796161322.032, "1796161322.032"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e-7, "1e-7"},
        {5e300, "5e300"},
        {-2.5e-300, "-2.5e-300"},
        {100.0, "100"},
        {1.0 / 3.0, "0.3333333333333333"},
        {123456789012345678.0, "1.2345678901234568e17"},
        {0.0, "0"},
        {2.0 / 3.0, "0.6666666666666666"},
};

START_TEST(test_fmt_double)
{
	char buf[RD_DOUBLE_LEN];

	rd_fmt_double(shortest[_i].v, buf, sizeof(buf));
	ck_assert_str_eq(buf, shortest[_i].want);
	ck_assert(strtod(buf, NULL) == shortest[_i].v);
}
END_TEST

START_TEST(test_fmt_double_special)
{
	char buf[RD_DOUBLE_LEN];

	rd_fmt_double(NAN, buf, sizeof(buf));
	ck_assert_str_eq(buf, "NaN");
	rd_fmt_double(INFINITY, buf, sizeof(buf));
	ck_assert_str_eq(buf, "+Inf");
	rd_fmt_double(-INFINITY, buf, sizeof(buf));
	ck_assert_str_eq(buf, "-Inf");
}
END_TEST

/* Reals in their shortest form, everything else exactly as jansson
 * writes it, and the text parses back to an equal tree. */
START_TEST(test_json_dumps)
{
	json_t *v = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:s, s:[b, n, {}, []]}", "a",
	                      0.096, "b", 1796161322.032, "c", 0.1 + 0.2, "d", 1e-7, "e", 5e300,
	                      "f", 100.0, "g", (json_int_t)7, "h", "caf\u00e9 \"q\"\n", "i", 1);
	char *text = rd_json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	char *pretty, *plain;
	json_t *back;

	ck_assert_str_eq(text, "{\"a\":0.096,\"b\":1796161322.032,\"c\":0.30000000000000004,"
	                       "\"d\":1e-7,\"e\":5e300,\"f\":100.0,\"g\":7,"
	                       "\"h\":\"caf\\u00E9 \\\"q\\\"\\n\",\"i\":[true,null,{},[]]}");
	back = json_loads(text, 0, NULL);
	ck_assert(json_equal(back, v));
	json_decref(back);
	pretty = rd_json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);
	plain = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
	/* The same layout as jansson's; only the reals differ. */
	ck_assert_ptr_nonnull(strstr(pretty, "{\n  \"a\": 0.096,\n  \"b\": 1796161322.032,\n"));
	ck_assert_int_eq(strcmp(strstr(pretty, "\"g\""), strstr(plain, "\"g\"")), 0);
	free(pretty);
	free(plain);
	free(text);
	json_decref(v);
	v = json_real(0.5);
	text = rd_json_dumps(v, JSON_ENCODE_ANY);
	ck_assert_str_eq(text, "0.5");
	free(text);
	ck_assert_ptr_null(rd_json_dumps(v, 0)); /* not without ENCODE_ANY */
	json_decref(v);
}
END_TEST

/* The definition rd_fmt_double keeps: the shortest of %.15g, %.16g and
 * %.17g that reads back, exponent tidied. Its fast path must agree. */
static void fmt_reference(double v, char *buf, size_t len)
{
	char tmp[RD_DOUBLE_LEN], *e, *d;

	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (strtod(tmp, NULL) == v || prec == 17)
			break;
	}
	if ((e = strchr(tmp, 'e'))) {
		d = e + 1 + (e[1] == '-');
		if (e[1] == '+')
			memmove(e + 1, e + 2, strlen(e + 2) + 1), d = e + 1;
		while (d[0] == '0' && d[1])
			memmove(d, d + 1, strlen(d + 1) + 1);
	}
	snprintf(buf, len, "%s", tmp);
}

static void check_fmt(double v)
{
	char got[RD_DOUBLE_LEN], want[RD_DOUBLE_LEN];

	rd_fmt_double(v, got, sizeof(got));
	fmt_reference(v, want, sizeof(want));
	ck_assert_msg(strcmp(got, want) == 0, "%.17g: got %s, want %s", v, got, want);
}

/* Whole numbers, decimals of a few places (what metrics mostly are),
 * their neighbours one ulp away, the edges of the fast path and random
 * bit patterns all print as the printf definition prints them. */
START_TEST(test_fmt_double_fast_path)
{
	static const double edges[] = {1e-4,
	                               nextafter(1e-4, 0),
	                               nextafter(1e-4, 1),
	                               1e15,
	                               nextafter(1e15, 0),
	                               999999999999999.0,
	                               99999999999999.9,
	                               999999999999999.9,
	                               0.1,
	                               0.3,
	                               1.0 / 3.0,
	                               123456.789012345,
	                               -0.0,
	                               -12.5,
	                               4503599627370496.5,
	                               9007199254740993.0,
	                               0.000123456789012345};
	uint64_t x = 88172645463325252ULL;

	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		check_fmt(edges[i]);
	for (int i = 0; i < 200000; i++) {
		double v;
		uint64_t bits;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
		switch (i % 4) {
		case 0: /* a decimal of 0..6 places */
			v = (double)(int64_t)(x % 2000000000) / pow(10, (int)(x >> 40) % 7);
			break;
		case 1: /* its neighbour */
			v = nextafter((double)(x % 100000) / 1000.0, INFINITY);
			break;
		case 2: /* any finite double */
			bits = x;
			memcpy(&v, &bits, sizeof(v));
			if (!isfinite(v))
				v = 1.5;
			break;
		default: /* a ratio */
			v = (double)(x % 1000003) / (double)((x >> 32) % 997 + 1);
			break;
		}
		check_fmt(i % 8 < 4 ? v : -v);
	}
}
END_TEST

/* rd_jtext_strn writes what jansson writes for every string: quotes,
 * backslashes, control bytes, NUL, slashes, 2/3/4-byte UTF-8 (escaped
 * with JSON_ENSURE_ASCII, surrogate pairs past U+FFFF), and refuses what
 * jansson refuses (overlong forms, surrogates, truncated sequences). */
START_TEST(test_jtext_strings)
{
	static const char *const ok[] = {"",
	                                 "plain",
	                                 "q\"uote",
	                                 "back\\slash",
	                                 "a/b",
	                                 "\b\f\n\r\t",
	                                 "\x01\x1f\x7f",
	                                 "caf\xc3\xa9",
	                                 "\xe2\x82\xac 1",
	                                 "\xf0\x9f\x98\x80!",
	                                 "\xef\xbf\xbf",
	                                 "\xf4\x8f\xbf\xbf",
	                                 "1.2.3-rc.1+build/5 <&>"};
	static const char *const bad[] = {"\xc0\xaf", "\xed\xa0\x80",     "\xe2\x82",
	                                  "\xff",     "\xf4\x90\x80\x80", "a\x80"};
	static const size_t flags[] = {0, JSON_ENSURE_ASCII, JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH};

	for (size_t f = 0; f < 3; f++) {
		for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
			json_t *j = json_string(ok[i]);
			char *want = json_dumps(j, flags[f] | JSON_ENCODE_ANY);
			struct rd_jtext t = {0};

			rd_jtext_strn(&t, ok[i], strlen(ok[i]), flags[f]);
			ck_assert_int_eq(t.err, 0);
			ck_assert_str_eq(t.buf, want);
			free(want);
			free(t.buf);
			json_decref(j);
		}
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rd_jtext t = {0};

		ck_assert_ptr_null(json_string(bad[i]));
		rd_jtext_strn(&t, bad[i], strlen(bad[i]), JSON_ENSURE_ASCII);
		ck_assert_int_eq(t.err, -EINVAL);
		free(t.buf);
	}
	{ /* an embedded NUL, as json_stringn keeps it */
		json_t *j = json_stringn("a\0b", 3);
		char *want = json_dumps(j, JSON_ENCODE_ANY);
		struct rd_jtext t = {0};

		rd_jtext_strn(&t, "a\0b", 3, 0);
		ck_assert_str_eq(t.buf, want);
		free(want);
		free(t.buf);
		json_decref(j);
	}
}
END_TEST

/* Integers, reals and literals written piecewise equal rd_json_dumps of
 * the same values; a non-finite real is an error, as in a tree. */
START_TEST(test_jtext_scalars)
{
	static const int64_t ints[] = {0, 1, -1, 42, INT64_MAX, INT64_MIN, 1767225600000};
	static const double reals[] = {0.0,       -0.0,     11.0,      12.5, 0.096,
	                               1e-7,      5e300,    -2.5e-300, 1e15, 123456789012345678.0,
	                               0.1 + 0.2, 1.0 / 3.0};

	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		json_t *j = json_integer(ints[i]);
		char *want = rd_json_dumps(j, JSON_ENCODE_ANY);
		struct rd_jtext t = {0};

		rd_jtext_int(&t, ints[i]);
		ck_assert_str_eq(t.buf, want);
		free(want);
		free(t.buf);
		json_decref(j);
	}
	for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
		json_t *j = json_real(reals[i]);
		char *want = rd_json_dumps(j, JSON_ENCODE_ANY);
		struct rd_jtext t = {0};

		rd_jtext_real(&t, reals[i]);
		ck_assert_str_eq(t.buf, want);
		ck_assert(strtod(t.buf, NULL) == reals[i]);
		free(want);
		free(t.buf);
		json_decref(j);
	}
	{
		struct rd_jtext t = {0};

		rd_jtext_real(&t, NAN);
		ck_assert_int_eq(t.err, -EINVAL);
		rd_jtext_raw(&t, "x", 1); /* nothing after a failure */
		ck_assert_ptr_null(t.buf);
		t.err = 0;
		rd_jtext_str(&t, NULL);
		rd_jtext_lit(&t, ",");
		rd_jtext_str(&t, "v");
		ck_assert_str_eq(t.buf, "null,\"v\"");
		free(t.buf);
	}
}
END_TEST

START_TEST(test_suggest)
{
	struct rd_suggest sg = {.word = "sumbit"};
	static const char *const words[] = {"submit", "status", "runs", "help"};
	char hint[64];

	for (size_t i = 0; i < 4; i++)
		rd_suggest_try(&sg, words[i]);
	ck_assert_str_eq(sg.best, "submit");
	rd_suggest_text(&sg, hint, sizeof(hint));
	ck_assert_str_eq(hint, " (did you mean 'submit'?)");
	sg = (struct rd_suggest){.word = "zzz"};
	for (size_t i = 0; i < 4; i++)
		rd_suggest_try(&sg, words[i]);
	ck_assert_ptr_null(sg.best);
}
END_TEST

static Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, test_duration, 0, sizeof(durations) / sizeof(durations[0]));
	tcase_add_test(tc, test_format_duration);
	tcase_add_test(tc, test_time_roundtrip);
	tcase_add_test(tc, test_time_format_everywhere);
	tcase_add_loop_test(tc, test_time_invalid, 0, sizeof(bad_times) / sizeof(bad_times[0]));
	tcase_add_test(tc, test_leap_day);
	tcase_add_test(tc, test_int64);
	tcase_add_test(tc, test_double);
	tcase_add_test(tc, test_memeq_ct);
	tcase_add_loop_test(tc, test_url_redact, 0, sizeof(redact_cases) / sizeof(redact_cases[0]));
	tcase_add_loop_test(tc, test_fmt_double, 0, sizeof(shortest) / sizeof(shortest[0]));
	tcase_add_test(tc, test_fmt_double_special);
	tcase_add_test(tc, test_json_dumps);
	tcase_add_test(tc, test_fmt_double_fast_path);
	tcase_add_test(tc, test_jtext_strings);
	tcase_add_test(tc, test_jtext_scalars);
	tcase_add_test(tc, test_suggest);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(util_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
