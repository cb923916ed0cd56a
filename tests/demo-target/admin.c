/* admin: the /admin/... endpoints tests use to steer the demo target and to
 * read back what it really did: live faults, rollback, the applied-delay
 * record, reset. They are never behind auth or the rate limit. A request
 * with any bad or unknown parameter changes nothing and gets a 400 saying
 * which one, so a typo in a test cannot pass for a change that happened.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo-target.h"

struct admin_args {
	enum admin_route route;
	struct fault_change fault;
	int64_t delay_ns; /* rollback */
	char err[200];    /* set on the first bad parameter */
};

static int fail(struct admin_args *a, const char *key, const char *value, const char *expect)
{
	snprintf(a->err, sizeof(a->err), "invalid %s='%.60s': expected %s", key, value ? value : "",
	         expect);
	return -EINVAL;
}

static int parse_on_off(const char *v, bool *ret_value)
{
	if (strcmp(v, "on") == 0)
		*ret_value = true;
	else if (strcmp(v, "off") == 0)
		*ret_value = false;
	else
		return -EINVAL;
	return 0;
}

static int parse_rate_or_off(const char *v, double *ret_value)
{
	if (strcmp(v, "off") == 0) {
		*ret_value = 0;
		return 0;
	}
	return cli_parse_rate(v, ret_value);
}

static int fault_arg(struct admin_args *a, const char *k, const char *v)
{
	struct fault_change *f = &a->fault;

	if (strcmp(k, "latency") == 0) {
		f->has_latency = true;
		if (dist_parse(v, &f->latency) < 0)
			return fail(
			        a, k, v,
			        "a distribution (10ms, 10ms:90,40ms:8, uniform:5ms-15ms, exp:10ms)");
	} else if (strcmp(k, "errors") == 0) {
		f->has_errors = true;
		if (cli_parse_probability(v, &f->errors) < 0)
			return fail(a, k, v, "a probability between 0 and 1");
	} else if (strcmp(k, "stall") == 0) {
		f->has_stall = true;
		if (dist_parse_duration(v, &f->stall_ns) < 0)
			return fail(a, k, v, "a duration (us, ms, s) up to 3600s");
	} else if (strcmp(k, "auth") == 0) {
		f->has_auth = true;
		if (parse_on_off(v, &f->auth) < 0)
			return fail(a, k, v, "on or off");
	} else if (strcmp(k, "rate_limit") == 0) {
		f->has_rate = true;
		if (parse_rate_or_off(v, &f->rate) < 0)
			return fail(a, k, v, "requests per second (> 0, <= 1000000) or off");
	} else if (strcmp(k, "stream_first") == 0 || strcmp(k, "stream_gap") == 0) {
		bool first = k[7] == 'f';

		*(first ? &f->has_stream_first : &f->has_stream_gap) = true;
		if (dist_parse_duration(v, first ? &f->stream.first_ns : &f->stream.gap_ns) < 0)
			return fail(a, k, v, "a duration (us, ms, s) up to 3600s");
	} else if (strcmp(k, "stream_tokens") == 0) {
		f->has_stream_tokens = true;
		if (cli_parse_tokens(v, &f->stream.tokens) < 0)
			return fail(a, k, v, "an integer from 0 to 100000");
	} else {
		return fail(a, k, v,
		            "one of latency, errors, stall, auth, rate_limit, stream_first, "
		            "stream_gap, stream_tokens");
	}
	return 0;
}

static int route_arg(struct admin_args *a, const char *k, const char *v)
{
	if (!v)
		return fail(a, k, v, "a value");
	switch (a->route) {
	case ADMIN_FAULT:
		return fault_arg(a, k, v);
	case ADMIN_ROLLBACK:
		if (strcmp(k, "delay") != 0)
			return fail(a, k, v, "only delay");
		if (dist_parse_duration(v, &a->delay_ns) < 0)
			return fail(a, k, v, "a duration (us, ms, s) up to 3600s");
		return 0;
	default:
		return fail(a, k, v, "no parameters");
	}
}

static enum MHD_Result on_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
	struct admin_args *a = cls;

	return route_arg(a, key, value) < 0 ? MHD_NO : MHD_YES;
}

static enum MHD_Result reply_json_text(struct MHD_Connection *c, unsigned status, char *text)
{
	enum MHD_Result r;

	if (!text)
		return MHD_NO;
	r = serve_reply(c, status, "application/json", text, strlen(text));
	free(text);
	return r;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return reply_json_text(c, status, text);
}

static enum MHD_Result fault(struct state *st, struct MHD_Connection *c, const struct admin_args *a)
{
	if (state_fault(st, &a->fault) < 0)
		return serve_error(c, MHD_HTTP_BAD_REQUEST,
		                   "auth=on needs a token: start with --auth-token");
	return reply_json_text(c, MHD_HTTP_OK, state_settings_json(st));
}

static enum MHD_Result rollback(struct state *st, struct MHD_Connection *c,
                                const struct admin_args *a)
{
	char version[DT_MAX_VERSION + 1], previous[DT_MAX_VERSION + 1];

	state_rollback(st, a->delay_ns);
	state_version(st, version);
	state_previous_version(st, previous);
	return reply_json(c, MHD_HTTP_ACCEPTED,
	                  json_pack("{s:s, s:s, s:f}", "version", version, "rollback_to", previous,
	                            "in_ms", (double)a->delay_ns / DT_NS_PER_MS));
}

static enum MHD_Result rollforward(struct state *st, struct MHD_Connection *c)
{
	char version[DT_MAX_VERSION + 1];

	state_rollforward(st);
	state_version(st, version);
	return reply_json(c, MHD_HTTP_OK, json_pack("{s:s}", "version", version));
}

/* Written by hand: two million numbers as jansson objects would cost
 * hundreds of MiB; as text they are ~7 bytes each. */
static enum MHD_Result delays(struct state *st, struct MHD_Connection *c)
{
	struct MHD_Response *resp;
	enum MHD_Result r;
	struct sbuf b;
	uint64_t errors;
	int64_t *us;
	size_t n, len;
	bool truncated;
	char *text;

	if (state_delays(st, &us, &n, &errors, &truncated) < 0)
		return MHD_NO;
	sbuf_init(&b);
	sbuf_printf(&b, "{\"count\":%zu,\"errors\":%" PRIu64 ",\"truncated\":%s,\"delays_us\":[", n,
	            errors, truncated ? "true" : "false");
	for (size_t i = 0; i < n; i++)
		sbuf_printf(&b, i ? ",%" PRId64 : "%" PRId64, us[i]);
	sbuf_printf(&b, "]}");
	free(us);
	if (sbuf_steal(&b, &text, &len) < 0)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	r = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (r == MHD_YES)
		r = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return r;
}

enum MHD_Result admin_handle(struct state *st, struct MHD_Connection *c, enum admin_route route)
{
	struct admin_args a;

	memset(&a, 0, sizeof(a));
	a.route = route;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, on_arg, &a);
	if (a.err[0])
		return serve_error(c, MHD_HTTP_BAD_REQUEST, a.err);
	switch (route) {
	case ADMIN_FAULT:
		return fault(st, c, &a);
	case ADMIN_ROLLBACK:
		return rollback(st, c, &a);
	case ADMIN_ROLLFORWARD:
		return rollforward(st, c);
	case ADMIN_DELAYS:
		return delays(st, c);
	case ADMIN_SERVED:
		return reply_json_text(c, MHD_HTTP_OK, state_served_json(st));
	case ADMIN_RESET:
		state_reset(st);
		return reply_json_text(c, MHD_HTTP_OK, strdup("{\"reset\":true}"));
	}
	return MHD_NO;
}
