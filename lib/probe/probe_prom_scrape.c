/* probe_prom_scrape: the `prometheus-scrape` probe. Fetches a service's
 * metrics endpoint (offering OpenMetrics, accepting text 0.0.4), parses
 * it strictly with lib/promtext, and checks that every `require`d family
 * exists (and has the type given as `name:type`). Publishes families,
 * samples and missing; a missing family fails the probe by name. Nothing
 * measured (transport, status, unparsable exposition) is an error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/probe/probe.h"
#include "lib/util/util.h"
#include "lib/prom/promtext.h"

#define SCRAPE_DEFAULT_TIMEOUT_MS 10000
#define SCRAPE_ACCEPT                                                                              \
	"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

struct scrape_probe {
	struct probe *p;
	struct http_request *req;
};

/* "name:type" when the part after the last colon is a type word; metric
 * names may themselves contain colons (recording rules). */
static void split_require(const char *req, char *name, size_t len, int *ret_type)
{
	const char *colon = strrchr(req, ':');
	enum promtext_type t;

	*ret_type = -1;
	snprintf(name, len, "%s", req);
	if (colon && promtext_type_from_string(colon + 1, &t) == 0) {
		*ret_type = (int)t;
		if ((size_t)(colon - req) < len)
			name[colon - req] = '\0';
	}
}

/* Adds one entry per required family that is absent or of another type. */
static int check_required(struct probe *p, const struct promtext *pt, json_t *missing,
                          json_t *wrong)
{
	const struct spec_probe *sp = p->sp;
	char name[1024];
	int type, n = 0;

	for (size_t i = 0; i < sp->n_require; i++) {
		const struct promtext_family *f;

		split_require(sp->require[i], name, sizeof(name), &type);
		f = promtext_find(pt, name);
		if (!f) {
			json_array_append_new(missing, json_string(name));
			n++;
		} else if (type >= 0 && f->type != (enum promtext_type)type) {
			json_array_append_new(
			        wrong, json_pack("{s:s, s:s, s:s}", "name", name, "want",
			                         promtext_type_to_string((enum promtext_type)type),
			                         "got", promtext_type_to_string(f->type)));
			n++;
		}
	}
	return n;
}

/* "a, b (counter, is gauge)" for the failure message. */
static void list_names(json_t *missing, json_t *wrong, char *buf, size_t len)
{
	size_t o = 0, i;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach (missing, i, v)
		if (o < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "",
			                      json_string_value(v));
	json_array_foreach (wrong, i, v)
		if (o < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s (want %s, is %s)",
			                      o ? ", " : "",
			                      json_string_value(json_object_get(v, "name")),
			                      json_string_value(json_object_get(v, "want")),
			                      json_string_value(json_object_get(v, "got")));
}

static void judge(struct probe *p, const struct promtext *pt)
{
	json_t *missing = json_array(), *wrong = json_array();
	char names[768];
	int n;

	if (!missing || !wrong) {
		json_decref(missing);
		json_decref(wrong);
		probe_finish(p, PROBE_STATE_ERRORED, "out of memory");
		return;
	}
	n = check_required(p, pt, missing, wrong);
	probe_set_metric(p, "families", (double)pt->n_families);
	probe_set_metric(p, "samples", (double)pt->n_samples);
	probe_set_metric(p, "missing", n);
	list_names(missing, wrong, names, sizeof(names));
	p->details = json_pack("{s:s, s:o, s:o}", "format",
	                       pt->format == PROMTEXT_OPENMETRICS ? "openmetrics" : "text",
	                       "missing", missing, "wrong_type", wrong);
	if (n > 0)
		probe_finish(p, PROBE_STATE_FAILED,
		             "%d required metric famil%s missing from %s: %s", n,
		             n == 1 ? "y is" : "ies are", p->sp->url, names);
	else
		probe_finish(p, PROBE_STATE_PASSED, NULL);
}

static void on_response(void *userdata, const struct http_response *r)
{
	struct scrape_probe *sc = userdata;
	struct probe *p = sc->p;
	struct promtext *pt = NULL;
	struct promtext_error err;
	enum promtext_format fmt;
	int e;

	sc->req = NULL;
	if (r->err != 0) {
		probe_finish(p, PROBE_STATE_ERRORED, "GET %s: %s", p->sp->url,
		             r->error ? r->error : strerror(-r->err));
		return;
	}
	if (r->status != 200) {
		probe_finish(p, PROBE_STATE_ERRORED, "GET %s answered HTTP %ld, not 200",
		             p->sp->url, r->status);
		return;
	}
	fmt = promtext_format_from_content_type(r->content_type);
	e = promtext_parse(r->body, r->body_len, fmt, &pt, &err);
	if (e < 0) {
		probe_finish(p, PROBE_STATE_ERRORED, "%s from %s does not parse: line %zu: %s",
		             fmt == PROMTEXT_OPENMETRICS ? "OpenMetrics" : "text exposition",
		             p->sp->url, err.line, e == -ENOMEM ? "out of memory" : err.message);
		return;
	}
	judge(p, pt);
	promtext_free(pt);
}

/* The spec's headers plus our Accept, unless the spec sets its own. */
static struct spec_header *build_headers(const struct spec_probe *sp, size_t *ret_n)
{
	struct spec_header *h = calloc(sp->n_headers + 1, sizeof(*h));
	size_t n = sp->n_headers;
	bool has_accept = false;

	if (!h)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		h[i] = sp->headers[i];
		has_accept |= strcasecmp(h[i].name, "Accept") == 0;
	}
	if (!has_accept) {
		h[n].name = (char *)"Accept";
		h[n++].value = (char *)SCRAPE_ACCEPT;
	}
	*ret_n = n;
	return h;
}

static int scrape_start(struct probe *p)
{
	const struct spec_probe *sp = p->sp;
	struct scrape_probe *sc;
	struct http_options opt = {
	        .url = sp->url,
	        .timeout_ms = sp->timeout_ms ? sp->timeout_ms : SCRAPE_DEFAULT_TIMEOUT_MS,
	        .insecure = sp->insecure,
	        .ca_file = sp->ca_file,
	        .max_body = PROMTEXT_MAX_BYTES,
	};
	struct spec_header *h;
	int r;

	if (!sp->url)
		return -EINVAL;
	h = build_headers(sp, &opt.n_headers);
	sc = calloc(1, sizeof(*sc));
	if (!h || !sc) {
		free(h);
		free(sc);
		return -ENOMEM;
	}
	opt.headers = h;
	sc->p = p;
	p->impl = sc;
	r = http_request_start(p->http, &opt, on_response, sc, &sc->req);
	free(h);
	if (r < 0) {
		p->impl = NULL;
		free(sc);
	}
	return r;
}

static void scrape_cancel(struct probe *p)
{
	struct scrape_probe *sc = p->impl;

	if (sc && sc->req) {
		http_request_cancel(sc->req);
		sc->req = NULL;
	}
	probe_finish(p, PROBE_STATE_CANCELLED, NULL);
}

static void scrape_free(struct probe *p)
{
	free(p->impl);
	p->impl = NULL;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
/* clang-format off */
static const struct spec_field fields[] = {
	SPEC_F_COMMON, SPEC_F_URL(true), SPEC_F_HEADERS, SPEC_F_REQUIRE, SPEC_F_TLS_CLIENT,
};
/* clang-format on */

static const struct probe_metric_def metrics[] = {
        {"families", "families", PROBE_SAMPLES_NONE},
        {"missing", "families", PROBE_SAMPLES_NONE},
        {"samples", "samples", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_prom_scrape = {
        .name = "prometheus-scrape",
        .section = "Monitoring",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .deadline_fixed_ms = PROBE_DEFAULT_DEADLINE_MS,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = scrape_start,
                        .cancel = scrape_cancel,
                        .free = scrape_free,
                },
};
