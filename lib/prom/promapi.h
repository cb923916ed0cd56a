/* promapi: one call to a Prometheus server's HTTP API (/api/v1/...) for
 * the prometheus-rules, prometheus-query and alert-drill probes: builds
 * the URL (base + path + percent-encoded parameters), sends it through
 * lib/http with the probe's headers and TLS options, and turns every way
 * it can go wrong (transport, status, body that is not JSON, a JSON that
 * is not the API's envelope, "status": "error") into one message that
 * says what happened and where. On success the callback gets `data`.
 *
 * The second half reads the answers of /api/v1/rules and /api/v1/alerts
 * for the rules probe and the alert drill: pure functions of the JSON,
 * without I/O, so recorded answers can be tested on their own; so is the
 * reader of /api/v1/query and /api/v1/query_range answers for the
 * prometheus-query probe (promapi_query_value). The
 * transport half is for the loop thread only; the readers for any thread.
 */
#pragma once

#include <jansson.h>

#include "lib/net/http.h"
#include "lib/spec/spec.h"

#define PROMAPI_DEFAULT_TIMEOUT_MS 10000
#define PROMAPI_MAX_BODY           (16 * 1024 * 1024)

struct promapi_call;

/* err 0: data is the envelope's "data" (borrowed for the call); message
 * NULL. err < 0: data NULL, message says what failed (borrowed). */
typedef void (*promapi_cb)(void *userdata, int err, json_t *data, const char *message);

/* GET {sp->prometheus}{path}?k1=v1&k2=v2... with params a NULL-terminated
 * list of key, value pairs (values encoded here; NULL params: none).
 * Headers, insecure and ca_file come from sp (borrowed only during this
 * call). *ret_call identifies the call for promapi_cancel() until cb runs.
 * Returns 0, -ENOMEM, or the -errno of http_request_start(). */
int promapi_get(struct http_client *c, const struct spec_probe *sp, const char *path,
                const char *const *params, int64_t timeout_ms, promapi_cb cb, void *userdata,
                struct promapi_call **ret_call);

/* The same against another API of the Prometheus family that answers
 * plain JSON without the envelope (Alertmanager's /api/v2): GET
 * {base}{path}?params; the callback's data is the whole decoded answer
 * of an HTTP 200. */
int promapi_get_json(struct http_client *c, const struct spec_probe *sp, const char *base,
                     const char *path, const char *const *params, int64_t timeout_ms, promapi_cb cb,
                     void *userdata, struct promapi_call **ret_call);

/* Checks a decoded answer's envelope: "status": "error" (whatever the HTTP
 * status), an HTTP status other than 200, or a JSON that is not
 * {"status": "success", "data": ...}. Returns data (borrowed from doc), or
 * NULL with msg saying what, naming url and quoting the start of body. */
json_t *promapi_envelope(json_t *doc, const char *url, long status_code, const char *body,
                         size_t body_len, char *msg, size_t len);

/* Aborts a call; its callback will not run. NULL is fine. */
void promapi_cancel(struct promapi_call *call);

/* --- reading /api/v1/rules and /api/v1/alerts answers --- */

/* True when a rule (or group) of an /api/v1/rules answer has been
 * evaluated at least once: Prometheus reports health "unknown" and a
 * lastEvaluation of 0001-01-01T00:00:00Z until then. */
bool promapi_rule_evaluated(json_t *rule);

/* A group's `interval` in ms (the answer gives seconds); 0 when absent. */
int64_t promapi_group_interval_ms(json_t *group);

/* What an /api/v1/rules answer says about the alerting rules named name
 * (the same alert may be defined in several groups). */
struct promapi_alert_rule {
	size_t rules;                    /* alerting rules with that name */
	size_t unevaluated;              /* of them, never evaluated yet */
	int64_t unevaluated_interval_ms; /* longest interval of their groups */
	const char *group;               /* a group holding one (unevaluated first); borrowed */
	const char *closest;             /* rules == 0: the nearest alert name or NULL; borrowed */
};

/* Fills *ret from data (the envelope's data). Returns 0, or -EPROTO when
 * data has no groups/rules lists. Strings are borrowed from data. */
int promapi_find_alert_rule(json_t *data, const char *name, struct promapi_alert_rule *ret);

/* The drilled series of an alert in an /api/v1/alerts answer: alerts named
 * name whose labels hold every matcher exactly (no matchers: all). */
struct promapi_alert_state {
	const char *state;    /* "inactive", "pending" or "firing" (static) */
	size_t matching;      /* matching alerts (pending or firing) */
	size_t others;        /* alerts of that name the matchers exclude */
	json_t *labels;       /* one matching alert in `state` (firing first); borrowed or NULL */
	json_t *other_labels; /* one excluded alert's labels; borrowed or NULL */
};

/* Fills *ret from data. Returns 0, or -EPROTO when data has no alerts
 * list. The labels are borrowed from data. */
int promapi_alert_state(json_t *data, const char *name, const struct spec_label *match,
                        size_t n_match, struct promapi_alert_state *ret);

/* Writes labels (a JSON object) as `a="x", b="y"`, sorted by name,
 * without alertname, truncated to fit; "" for none. */
void promapi_format_labels(json_t *labels, char *buf, size_t len);

/* --- reading /api/v1/query and /api/v1/query_range answers --- */

/* The one number of a query answer (the envelope's data). */
struct promapi_query_result {
	double value;   /* valid when promapi_query_value() returned 0 */
	json_t *series; /* the one series' "metric" object; borrowed or NULL */
	long points;    /* points that count (matrix: not NaN); -1 for a scalar or none read */
};

/* Reads data: a scalar, or a vector or matrix of exactly one series (a
 * matrix reduced by function min|max|avg|last, NULL: last; NaN points
 * skipped). Values are strings as Prometheus sends them ("1.5", "NaN",
 * "+Inf"). Returns 0; -EPROTO for a malformed answer; -ERANGE for no
 * series, several, or a value that is NaN or infinite. On error why says
 * what (without the query). */
int promapi_query_value(json_t *data, const char *function, struct promapi_query_result *ret,
                        char *why, size_t len);
