/* amapi: the reader of Alertmanager's /api/v2/alerts answers (see
 * amapi.h). Alertmanager computes an alert's status (silences,
 * inhibitions) when it answers, so one answer says whether a human would
 * be paged for it. No I/O here.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/prom/amapi.h"
#include "lib/util/util.h"

static bool labels_hold(json_t *labels, const char *name, const struct spec_label *match,
                        size_t n_match)
{
	const char *an = json_string_value(json_object_get(labels, "alertname"));

	if (!an || strcmp(an, name) != 0)
		return false;
	for (size_t i = 0; i < n_match; i++) {
		const char *v = json_string_value(json_object_get(labels, match[i].name));

		if (!v || strcmp(v, match[i].value) != 0)
			return false;
	}
	return true;
}

/* Higher is further along the way to a notification. */
static int rank(const char *state)
{
	if (!state)
		return 0;
	if (strcmp(state, "active") == 0)
		return 3;
	if (strcmp(state, "suppressed") == 0)
		return 2;
	return 1; /* unprocessed, or a word a later version adds */
}

static const char *state_word(int r)
{
	static const char *const words[] = {"absent", "unprocessed", "suppressed", "active"};

	return words[r];
}

static bool started_before(json_t *a, int64_t not_before_ms)
{
	int64_t t;

	return not_before_ms > 0 &&
	       rd_time_parse(json_string_value(json_object_get(a, "startsAt")), &t) == 0 &&
	       t < not_before_ms;
}

int amapi_alert_state(json_t *alerts, const char *name, const struct spec_label *match,
                      size_t n_match, int64_t not_before_ms, struct amapi_alert_state *ret)
{
	struct amapi_alert_state st = {.state = "absent"};
	int best = 0;
	size_t i;
	json_t *a;

	if (!json_is_array(alerts))
		return -EPROTO;
	json_array_foreach (alerts, i, a) {
		json_t *status = json_object_get(a, "status");
		int r;

		if (!labels_hold(json_object_get(a, "labels"), name, match, n_match) ||
		    started_before(a, not_before_ms))
			continue;
		st.matching++;
		r = rank(json_string_value(json_object_get(status, "state")));
		if (r <= best)
			continue;
		best = r;
		st.alert = a;
		st.silenced_by = json_object_get(status, "silencedBy");
		st.inhibited_by = json_object_get(status, "inhibitedBy");
		st.fingerprint = json_string_value(json_object_get(a, "fingerprint"));
	}
	st.state = state_word(best);
	*ret = st;
	return 0;
}

bool amapi_routed_to(json_t *alert, const char *receiver)
{
	size_t i;
	json_t *r;

	json_array_foreach (json_object_get(alert, "receivers"), i, r) {
		const char *n = json_string_value(json_object_get(r, "name"));

		if (n && strcmp(n, receiver) == 0)
			return true;
	}
	return false;
}

static void append(char *buf, size_t len, size_t *o, const char *s)
{
	int w = snprintf(buf + *o, len - *o, "%s%s", *o ? ", " : "", s);

	*o += w > 0 && (size_t)w < len - *o ? (size_t)w : len - 1 - *o;
}

void amapi_format_receivers(json_t *alert, char *buf, size_t len)
{
	size_t i, o = 0;
	json_t *r;

	buf[0] = '\0';
	json_array_foreach (json_object_get(alert, "receivers"), i, r) {
		const char *n = json_string_value(json_object_get(r, "name"));

		if (n)
			append(buf, len, &o, n);
	}
}

void amapi_format_list(json_t *list, char *buf, size_t len)
{
	size_t i, o = 0;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach (list, i, v)
		if (json_is_string(v))
			append(buf, len, &o, json_string_value(v));
}
