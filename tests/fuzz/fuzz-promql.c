/* fuzz-promql: promql_parse() and promql_format(). Rule expressions come
 * from the Prometheus server the probe asks, so any bytes must parse or
 * fail with a message and a position inside the input. What parses is
 * written back in canonical form, which must parse again to the same
 * text; so must the form without threshold filters. Byte 0 picks whether
 * the input is one expression or one label matcher. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lib/prom/promql.h"

static void canonical(const char *text)
{
	struct promql_node *n = NULL;
	struct promql_error err;
	char *again;
	int r = promql_parse(text, strlen(text), &n, &err);

	if (r == -ENOMEM)
		return;
	fuzz_check(r == 0, "the canonical form parses");
	again = promql_format(n, 0);
	if (again)
		fuzz_check(strcmp(again, text) == 0, "the canonical form is stable");
	free(again);
	promql_free(n);
}

static int count(void *userdata, const struct promql_node *n)
{
	(*(size_t *)userdata)++;
	return n->kind == PQ_SELECTOR || n->kind == PQ_BINARY ? 0 : 1;
}

static void expression(const uint8_t *data, size_t size)
{
	struct promql_node *n = NULL;
	struct promql_error err;
	size_t seen = 0;
	char *text;
	int r = promql_parse((const char *)data, size, &n, &err);

	if (r == -ENOMEM)
		return;
	if (r < 0) {
		fuzz_check(r == -EINVAL, "promql_parse returns -EINVAL");
		fuzz_check(err.message[0] != '\0', "a refusal has a message");
		fuzz_check(err.pos <= size, "a refusal points inside the input");
		fuzz_check(n == NULL, "a refusal returns no tree");
		return;
	}
	fuzz_check(promql_each_selector(n, count, &seen) == 0, "selectors are selectors");
	fuzz_check(promql_each_vector_match(n, count, &seen) == 0, "matches are binary");
	for (unsigned flags = 0; flags <= (PROMQL_FMT_NO_FILTERS | PROMQL_FMT_TOP_BOOL); flags++) {
		text = promql_format(n, flags);
		if (text)
			canonical(text);
		free(text);
	}
	promql_free(n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct promql_matcher m;
	struct promql_error err;
	char *s;
	int r;

	if (size < 1)
		return 0;
	if (!(data[0] & 1)) {
		expression(data + 1, size - 1);
		return 0;
	}
	s = fuzz_strdup(data + 1, size - 1);
	if (!s)
		return 0;
	r = promql_parse_matcher(s, &m, &err);
	if (r == 0) {
		fuzz_check(m.name && m.value, "a matcher has a name and a value");
		promql_matcher_clear(&m);
	} else if (r == -EINVAL) {
		fuzz_check(err.message[0] != '\0', "a refusal has a message");
	}
	free(s);
	return 0;
}
