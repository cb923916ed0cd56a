/* store_cols: column kinds shared by the store's backends (store_cols.h). */
#include <stdlib.h>
#include <string.h>

#include "lib/store/store_cols.h"
#include "lib/util/util.h"

bool store_col_valid(const struct store_col *c, json_t *v)
{
	if (!v || json_is_null(v))
		return !c->required;
	switch (c->kind) {
	case COL_INT:
	case COL_TIME:
		return json_is_integer(v);
	case COL_REAL:
		return json_is_number(v);
	case COL_BOOL:
		return json_is_boolean(v);
	case COL_TEXT:
		return json_is_string(v);
	default:
		return true;
	}
}

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), 0 if the
 * bytes there are not one (overlong forms and surrogates included). */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		len = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

json_t *store_json_string_lossy(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	unsigned char *copy;
	size_t i = 0, len;

	if (j)
		return j;
	copy = malloc(n + 1);
	if (!copy)
		return NULL;
	memcpy(copy, s, n);
	while (i < n) {
		len = utf8_seq_len(copy + i, n - i);
		if (len == 0) {
			copy[i] = '?';
			len = 1;
		}
		i += len;
	}
	j = json_stringn((const char *)copy, n);
	free(copy);
	return j;
}

json_t *store_json_time(int64_t ms)
{
	char buf[RD_TIME_LEN];

	rd_time_format(ms, buf);
	return json_string(buf);
}

bool store_run_new_valid(const struct store_run_new *rn)
{
	if (!rn || !rn->service || !rn->version || !rn->environment || !rn->spec_json ||
	    rn->created_at <= 0)
		return false;
	if (rn->n_probes > 0 && (!rn->probe_names || !rn->probe_types))
		return false;
	for (size_t i = 0; i < rn->n_probes; i++) {
		if (!rn->probe_names[i] || !rn->probe_types[i])
			return false;
	}
	return true;
}

/* A time field: absent, null or 0 is "not set"; else ms >= 0. */
bool store_probe_time(json_t *probe, const char *key, int64_t *ret)
{
	json_t *v = json_object_get(probe, key);

	*ret = json_is_integer(v) ? json_integer_value(v) : 0;
	return (!v || json_is_null(v) || json_is_integer(v)) && *ret >= 0;
}

/* Metrics are numbers; null stands for a value that was not a finite
 * number (NaN, infinities), which JSON cannot carry. */
bool store_probe_metrics_valid(json_t *metrics)
{
	const char *key;
	json_t *v;

	if (!json_is_object(metrics))
		return false;
	json_object_foreach (metrics, key, v) {
		if (!json_is_number(v) && !json_is_null(v))
			return false;
	}
	return true;
}
