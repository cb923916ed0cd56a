/* jsonpath: evaluates the http probe's "$.a.b[0]" paths (see jsonpath.h).
 * It only walks a parsed document; it must not allocate or recurse
 * without bound, since both the path and the document come from users.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/probe/jsonpath.h"
#include "lib/util/util.h"

/* One ".key" step: the key runs to the next '.' or '['. */
static int step_key(json_t **cur, const char **s, char *why, size_t whylen)
{
	const char *k = *s + 1;
	size_t n = strcspn(k, ".[");
	char key[JSONPATH_MAX_LEN];

	if (n == 0) {
		snprintf(why, whylen, "empty key at '%.120s'", *s);
		return -EINVAL;
	}
	memcpy(key, k, n);
	key[n] = '\0';
	*s = k + n;
	if (!*cur)
		return 0; /* past a missing step: only the syntax is checked */
	if (!json_is_object(*cur)) {
		snprintf(why, whylen, "'%.120s' is looked up in something that is not an object",
		         key);
		*cur = NULL;
		return 0;
	}
	*cur = json_object_get(*cur, key);
	if (!*cur)
		snprintf(why, whylen, "no key '%.120s'", key);
	return 0;
}

/* One "[index]" step: a non-negative decimal index. */
static int step_index(json_t **cur, const char **s, char *why, size_t whylen)
{
	const char *open = *s, *close = strchr(open, ']');
	char num[16];
	int64_t i;

	if (!close || close == open + 1 || (size_t)(close - open - 1) >= sizeof(num)) {
		snprintf(why, whylen, "bad index at '%s'", open);
		return -EINVAL;
	}
	memcpy(num, open + 1, (size_t)(close - open - 1));
	num[close - open - 1] = '\0';
	if (num[0] == '-' || num[0] == '+' || rd_parse_int64(num, 0, INT32_MAX, &i) < 0) {
		snprintf(why, whylen, "bad index '%s'", num);
		return -EINVAL;
	}
	*s = close + 1;
	if (!*cur)
		return 0;
	if (!json_is_array(*cur)) {
		snprintf(why, whylen, "[%s] is applied to something that is not an array", num);
		*cur = NULL;
		return 0;
	}
	if ((size_t)i >= json_array_size(*cur)) {
		snprintf(why, whylen, "index %s is past the end (size %zu)", num,
		         json_array_size(*cur));
		*cur = NULL;
		return 0;
	}
	*cur = json_array_get(*cur, (size_t)i);
	return 0;
}

/* Walks the whole path even past a missing step, so that a syntax error
 * is reported as such whatever the document holds. The first missing
 * step's message is kept. */
int jsonpath_get(json_t *doc, const char *path, json_t **ret_value, char *why, size_t whylen)
{
	char dummy[8], miss[256] = "";
	const char *s = path;
	json_t *cur = doc;
	int steps = 0, r = 0;

	if (!why) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	if (strlen(path) > JSONPATH_MAX_LEN || path[0] != '$') {
		snprintf(why, whylen, "a path starts with '$' and has at most %d bytes",
		         JSONPATH_MAX_LEN);
		return -EINVAL;
	}
	for (s++; *s; steps++) {
		bool had = cur != NULL;

		if (steps >= JSONPATH_MAX_STEPS) {
			snprintf(why, whylen, "more than %d steps", JSONPATH_MAX_STEPS);
			return -EINVAL;
		}
		if (*s == '.')
			r = step_key(&cur, &s, miss, sizeof(miss));
		else if (*s == '[')
			r = step_index(&cur, &s, miss, sizeof(miss));
		else {
			snprintf(miss, sizeof(miss), "expected '.' or '[' at '%.120s'", s);
			r = -EINVAL;
		}
		if (r < 0) {
			snprintf(why, whylen, "%s", miss);
			return r;
		}
		if (had && !cur)
			snprintf(why, whylen, "%s", miss);
	}
	if (!cur)
		return -ENOENT;
	*ret_value = cur;
	return 0;
}

bool jsonpath_equal(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	return json_equal(a, b);
}
