/* test-loadgen-stream: the load engine's pure streaming and corpus parts:
 * the Server-Sent Events reader fed every way a stream can be split into
 * reads (events across reads, several per read, CRLF/LF/CR, comments,
 * the [DONE] marker, token counts), JSON Lines corpora with their line
 * numbers in errors, and the corpus pick (round robin, weighted random
 * reproducible for a given seed).
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/loadgen.h"
#include "lib/loadgen/loadgen_sse.h"

/* ---- SSE ---- */

#define MAX_EV 16

struct seen {
	int n;
	bool done[MAX_EV];
	int64_t tokens[MAX_EV];
};

static void on_event(void *userdata, const struct lg_sse_event *ev)
{
	struct seen *s = userdata;

	if (s->n < MAX_EV) {
		s->done[s->n] = ev->done;
		s->tokens[s->n] = ev->tokens;
	}
	s->n++;
}

/* Feeds text in reads of `step` bytes. */
static struct seen feed(const char *text, size_t step, const char *key)
{
	struct lg_sse r;
	struct seen s = {0};
	size_t len = strlen(text);

	lg_sse_init(&r, key);
	for (size_t off = 0; off < len; off += step)
		lg_sse_feed(&r, text + off, len - off < step ? len - off : step, on_event, &s);
	return s;
}

static const struct {
	const char *text;
	const char *key;
	int n;                  /* events */
	const char *done;       /* per event: 'd' done, '-' not */
	int64_t tokens[MAX_EV]; /* per event */
} sse_cases[] = {
        {"data: a\n\ndata: b\n\n", NULL, 2, "--", {-1, -1}},
        {"data: a\r\n\r\ndata: b\r\n\r\n", NULL, 2, "--", {-1, -1}},
        {"data: a\r\rdata: b\r\r", NULL, 2, "--", {-1, -1}},
        {"data: a\r\n\ndata: b\n\r\n", NULL, 2, "--", {-1, -1}},
        {": keep-alive\n\n", NULL, 0, "", {0}},
        {": ping\ndata: x\n: more\n\n", NULL, 1, "-", {-1}},
        {"event: message\nid: 3\nretry: 10\n\n", NULL, 0, "", {0}},
        {"data\n\n", NULL, 1, "-", {-1}},
        {"data:\n\n", NULL, 1, "-", {-1}},
        {"data: [DONE]\n\n", NULL, 1, "d", {-1}},
        {"data:[DONE]\n\n", NULL, 1, "d", {-1}},
        {"data: [DONE] \n\n", NULL, 1, "-", {-1}},
        {"data: [DONE]x\n\n", NULL, 1, "-", {-1}},
        {"data: [DON\n\n", NULL, 1, "-", {-1}},
        {"data: [DONE]\ndata: [DONE]\n\n", NULL, 1, "-", {-1}},
        {"datax: [DONE]\n\n", NULL, 0, "", {0}},
        {"data: a\n\ndata: b", NULL, 1, "-", {-1}},
        {"data: {\"choices\":[{\"text\":\"t\"}],\"usage\":{\"completion_tokens\":17}}\n\n",
         NULL,
         1,
         "-",
         {17}},
        {"data: {\"completion_tokens\" : 5, \"x\":1}\n\ndata: {\"completion_tokens\":12}\n\n",
         NULL,
         2,
         "--",
         {5, 12}},
        {"data: {\"completion_tokens\":\ndata: 3}\n\n", NULL, 1, "-", {3}},
        {"data: {\"prompt_tokens\":9}\n\n", NULL, 1, "-", {-1}},
        {"data: {\"\"completion_tokens\":4}\n\n", NULL, 1, "-", {4}},
        {"data: {\"completion_tokens\":\"7\"}\n\n", NULL, 1, "-", {-1}},
        {"data: {\"n\":2,\"completion_tokens\":8}\n\n", "n", 1, "-", {2}},
        {"data: {\"token_count\":21}\n\ndata: [DONE]\n\n", "token_count", 2, "-d", {21, -1}},
        {"\n\n\ndata: x\n\n\n\n", NULL, 1, "-", {-1}},
};

START_TEST(test_sse)
{
	const char *text = sse_cases[_i].text;

	/* Every read size: one byte at a time up to the whole text in one. */
	for (size_t step = 1; step <= strlen(text); step++) {
		struct seen s = feed(text, step, sse_cases[_i].key);

		ck_assert_msg(s.n == sse_cases[_i].n, "case %d step %zu: %d events", _i, step, s.n);
		for (int e = 0; e < s.n; e++) {
			ck_assert_msg(s.done[e] == (sse_cases[_i].done[e] == 'd'),
			              "case %d step %zu event %d: done", _i, step, e);
			ck_assert_msg(s.tokens[e] == sse_cases[_i].tokens[e],
			              "case %d step %zu event %d: tokens %lld", _i, step, e,
			              (long long)s.tokens[e]);
		}
	}
}
END_TEST

START_TEST(test_sse_content_type)
{
	ck_assert(lg_sse_content_type("text/event-stream", 17));
	ck_assert(lg_sse_content_type(" Text/Event-Stream; charset=utf-8", 33));
	ck_assert(!lg_sse_content_type("text/event-streams", 18));
	ck_assert(!lg_sse_content_type("text/plain", 10));
	ck_assert(!lg_sse_content_type("text/event-", 11));
}
END_TEST

/* ---- corpora ---- */

START_TEST(test_corpus_jsonl)
{
	const char *text =
	        "{\"body\":\"hello\"}\n"
	        "\n"
	        "{\"body\":{\"prompt\":\"x\",\"n\":1},\"method\":\"PUT\",\"path\":\"/v1/c?a=b\","
	        "\"headers\":{\"X-A\":\"1\"},\"weight\":2.5}\r\n"
	        "{\"path\":\"/nobody\"}";
	struct loadgen_corpus *c = NULL;
	char err[256] = "";

	ck_assert_int_eq(loadgen_corpus_parse_jsonl(text, strlen(text), &c, err, sizeof(err)), 0);
	ck_assert_uint_eq(c->n, 3);
	ck_assert_str_eq(c->items[0].body, "hello");
	ck_assert_uint_eq(c->items[0].body_len, 5);
	ck_assert_ptr_null(c->items[0].method);
	ck_assert_str_eq(c->items[1].body, "{\"prompt\":\"x\",\"n\":1}");
	ck_assert_str_eq(c->items[1].method, "PUT");
	ck_assert_str_eq(c->items[1].path, "/v1/c?a=b");
	ck_assert_uint_eq(c->items[1].n_headers, 1);
	ck_assert_str_eq(c->items[1].headers[0].name, "X-A");
	ck_assert(c->items[1].weight == 2.5);
	ck_assert_ptr_null(c->items[2].body);
	loadgen_corpus_free(c);
}
END_TEST

static const struct {
	const char *text;
	const char *err; /* prefix */
} bad_lines[] = {
        {"{\"body\":\"a\"}\n{\"body\":\"b\"\n", "2: not JSON"},
        {"{\"body\":\"a\"}\n\n{\"body\":1,\"colour\":2}\n", "3: request: has an unknown field"},
        {"[1]\n", "1: request: must be an object"},
        {"{\"body\":\"a\",\"method\":\"get\"}", "1: method:"},
        {"{\"body\":\"a\",\"path\":\"v1\"}", "1: path:"},
        {"{\"body\":\"a\",\"path\":\"/a b\"}", "1: path:"},
        {"{\"body\":\"a\"}\n{\"body\":\"a\",\"weight\":0}", "2: weight:"},
        {"{\"body\":\"a\",\"headers\":{\"X\":1}}", "1: headers: names must be"},
        {"{\"body\":\"a\",\"headers\":{\"X\":\"a\\r\\nB: c\"}}", "1: headers: names must be"},
        {"\n \n", "1: no request"},
        {"{\"body\":\"a\",\"headers\":{\"Transfer-Encoding\":\"chunked\"}}",
         "1: headers: the engine sets"},
        {"{\"body\":\"a\",\"headers\":{\"content-length\":\"0\"}}", "1: headers: the engine sets"},
        {"{\"body\":\"a\",\"headers\":{\"X-A\":\"a\\u0007b\"}}", "1: headers: names must"},
        {"{\"body\":\"a\",\"path\":\"/a\\u0001\"}", "1: path:"},
        {"root:s3cr3t:0:0\n", "1: not JSON (column"},
        {"{\"s3cr3t\": 1}\n", "1: request: has an unknown field"},
};

START_TEST(test_corpus_bad_line)
{
	struct loadgen_corpus *c = NULL;
	char err[256] = "";
	const char *t = bad_lines[_i].text;

	ck_assert_int_eq(loadgen_corpus_parse_jsonl(t, strlen(t), &c, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_msg(strncmp(err, bad_lines[_i].err, strlen(bad_lines[_i].err)) == 0,
	              "case %d: '%s'", _i, err);
	/* A file's text is never quoted back. */
	ck_assert_msg(!strstr(err, "colour") && !strstr(err, "X:") && !strstr(err, "s3cr3t"),
	              "case %d: '%s'", _i, err);
}
END_TEST

START_TEST(test_corpus_json)
{
	json_t *items = json_loads("[{\"body\":\"a\"},{\"body\":\"b\",\"weight\":-1}]", 0, NULL);
	struct loadgen_corpus *c = NULL;
	char err[256] = "";

	ck_assert_int_eq(loadgen_corpus_from_json(items, &c, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "[1].weight: must be a number > 0 and <= 1e9");
	json_decref(items);
	items = json_loads("[{\"body\":\"a\"},{\"body\":[1,2]}]", 0, NULL);
	ck_assert_int_eq(loadgen_corpus_from_json(items, &c, err, sizeof(err)), 0);
	ck_assert_str_eq(c->items[1].body, "[1,2]");
	loadgen_corpus_free(c);
	json_decref(items);
}
END_TEST

/* ---- picking ---- */

START_TEST(test_pick)
{
	double cum[3] = {1, 3, 103}; /* weights 1, 2, 100 */
	size_t count[3] = {0};

	for (uint64_t i = 0; i < 10; i++)
		ck_assert_uint_eq(loadgen_pick(LOADGEN_ORDER_ROUND_ROBIN, 1, NULL, 3, i), i % 3);
	for (uint64_t i = 0; i < 10300; i++) {
		size_t a = loadgen_pick(LOADGEN_ORDER_WEIGHTED_RANDOM, 42, cum, 3, i);

		ck_assert_uint_lt(a, 3);
		ck_assert_uint_eq(a, loadgen_pick(LOADGEN_ORDER_WEIGHTED_RANDOM, 42, cum, 3, i));
		count[a]++;
	}
	/* 100, 200 and 10000 expected: far from either neighbour. */
	ck_assert_uint_gt(count[0], 30);
	ck_assert_uint_lt(count[0], 200);
	ck_assert_uint_gt(count[1], 100);
	ck_assert_uint_lt(count[1], 350);
	ck_assert_uint_gt(count[2], 9700);
	/* Another seed, another sequence. */
	size_t same = 0;
	for (uint64_t i = 0; i < 100; i++)
		same += loadgen_pick(LOADGEN_ORDER_WEIGHTED_RANDOM, 42, (double[]){1, 2}, 2, i) ==
		        loadgen_pick(LOADGEN_ORDER_WEIGHTED_RANDOM, 43, (double[]){1, 2}, 2, i);
	ck_assert_uint_lt(same, 90);
}
END_TEST

static Suite *stream_suite(void)
{
	Suite *s = suite_create("loadgen-stream");
	TCase *tc = tcase_create("pure");

	tcase_add_loop_test(tc, test_sse, 0, sizeof(sse_cases) / sizeof(sse_cases[0]));
	tcase_add_test(tc, test_sse_content_type);
	tcase_add_test(tc, test_corpus_jsonl);
	tcase_add_loop_test(tc, test_corpus_bad_line, 0, sizeof(bad_lines) / sizeof(bad_lines[0]));
	tcase_add_test(tc, test_corpus_json);
	tcase_add_test(tc, test_pick);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(stream_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
