/* expo: renders /metrics in the Prometheus text format 0.0.4 or, when asked,
 * OpenMetrics 1.0.0. Values are exact: the duration sum is printed from
 * integer microseconds, never through a float. This file only formats a
 * snapshot; it must not read shared state or take locks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "demo-target.h"

/* Prometheus' default buckets, in microseconds and as both formats spell
 * them (OpenMetrics prefers canonical floats such as "1.0"). */
static const int64_t bucket_us[EXPO_N_BUCKETS] = {
        5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const le_text[EXPO_N_BUCKETS] = {
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
};
static const char *const le_om[EXPO_N_BUCKETS] = {
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
};

static const struct {
	const char *name;
	enum expo_family family;
} aliases[] = {
        {"inference_requests_total", EXPO_REQUESTS},
        {"inference_requests", EXPO_REQUESTS},
        {"inference_errors_total", EXPO_ERRORS},
        {"inference_errors", EXPO_ERRORS},
        {"inference_duration_seconds", EXPO_DURATION},
        {"inference_duration_seconds_bucket", EXPO_DURATION},
        {"inference_duration_seconds_sum", EXPO_DURATION},
        {"inference_duration_seconds_count", EXPO_DURATION},
        {"demo_target_info", EXPO_INFO},
        {"demo_target", EXPO_INFO},
};

int expo_family_lookup(const char *name)
{
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcmp(name, aliases[i].name) == 0)
			return (int)aliases[i].family;
	return -EINVAL;
}

size_t expo_bucket_index(int64_t delay_us)
{
	size_t i = 0;

	while (i < EXPO_N_BUCKETS && delay_us > bucket_us[i])
		i++;
	return i;
}

/* True unless the parameters of one media range carry q=0. */
static bool q_nonzero(const char *params, size_t len)
{
	const char *p = params, *end = params + len;

	while (p < end) {
		while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
			p++;
		if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=')
			return strtod(p + 2, NULL) > 0;
		while (p < end && *p != ';')
			p++;
	}
	return true;
}

bool expo_wants_openmetrics(const char *accept)
{
	static const char om[] = "application/openmetrics-text";
	const char *p = accept, *item_end, *type_end;

	while (p && *p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		item_end = p + strcspn(p, ",");
		type_end = p + strcspn(p, ";,");
		while (type_end > p && (type_end[-1] == ' ' || type_end[-1] == '\t'))
			type_end--;
		if ((size_t)(type_end - p) == sizeof(om) - 1 &&
		    strncasecmp(p, om, sizeof(om) - 1) == 0 &&
		    q_nonzero(type_end, (size_t)(item_end - type_end)))
			return true;
		p = item_end;
	}
	return false;
}

/* HELP and TYPE for one family; OpenMetrics names counter families without
 * the _total suffix their samples carry. */
static void header(struct sbuf *b, bool om, const char *text_name, const char *om_name,
                   const char *text_type, const char *om_type, const char *help)
{
	if (om) {
		sbuf_printf(b, "# TYPE %s %s\n# HELP %s %s\n", om_name, om_type, om_name, help);
		return;
	}
	sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", text_name, help, text_name, text_type);
}

static void render_counters(struct sbuf *b, const struct expo_snapshot *s, unsigned omit, bool om)
{
	if (!(omit & (1u << EXPO_REQUESTS))) {
		header(b, om, "inference_requests_total", "inference_requests", "counter",
		       "counter", "Answered /v1/predict requests by status code.");
		sbuf_printf(b, "inference_requests_total{code=\"200\"} %" PRIu64 "\n", s->ok);
		sbuf_printf(b, "inference_requests_total{code=\"500\"} %" PRIu64 "\n", s->failed);
	}
	if (!(omit & (1u << EXPO_ERRORS))) {
		header(b, om, "inference_errors_total", "inference_errors", "counter", "counter",
		       "Injected faults (answers 500) of /v1/predict.");
		sbuf_printf(b, "inference_errors_total %" PRIu64 "\n", s->failed);
	}
}

static void render_histogram(struct sbuf *b, const struct expo_snapshot *s, bool om)
{
	uint64_t cum = 0;

	header(b, om, "inference_duration_seconds", "inference_duration_seconds", "histogram",
	       "histogram", "Service time applied to /v1/predict requests.");
	if (om)
		sbuf_printf(b, "# UNIT inference_duration_seconds seconds\n");
	for (size_t i = 0; i < EXPO_N_BUCKETS; i++) {
		cum += s->buckets[i];
		sbuf_printf(b, "inference_duration_seconds_bucket{le=\"%s\"} %" PRIu64 "\n",
		            om ? le_om[i] : le_text[i], cum);
	}
	sbuf_printf(b, "inference_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
	            s->ok + s->failed);
	sbuf_printf(b, "inference_duration_seconds_sum %" PRId64 ".%06" PRId64 "\n",
	            s->sum_us / 1000000, s->sum_us % 1000000);
	sbuf_printf(b, "inference_duration_seconds_count %" PRIu64 "\n", s->ok + s->failed);
}

int expo_render(const struct expo_snapshot *snap, unsigned omit_mask, bool openmetrics,
                char **ret_text, size_t *ret_len)
{
	struct sbuf b;

	sbuf_init(&b);
	render_counters(&b, snap, omit_mask, openmetrics);
	if (!(omit_mask & (1u << EXPO_DURATION)))
		render_histogram(&b, snap, openmetrics);
	if (!(omit_mask & (1u << EXPO_INFO))) {
		/* OpenMetrics has a proper info type; its sample has the same
		 * name as the 0.0.4 gauge, so scrapers see one series. */
		header(&b, openmetrics, "demo_target_info", "demo_target", "gauge", "info",
		       "Version of the demo target being served.");
		sbuf_printf(&b, "demo_target_info{version=\"%s\"} 1\n", snap->version);
	}
	if (openmetrics)
		sbuf_printf(&b, "# EOF\n");
	return sbuf_steal(&b, ret_text, ret_len);
}
