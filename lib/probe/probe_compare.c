/* probe_compare: the `compare` probe: the same load against a baseline
 * (the version in production) and a candidate (the one about to ship),
 * in short alternating segments, A B A B ..., so that whatever the host
 * does meanwhile (another build, a noisy neighbour, thermal drift) falls
 * on both alike. Each segment is one run of the load engine
 * (lib/loadgen) against one endpoint; segment i of each side forms pair
 * i. Each ratio is the geometric mean over the pairs of candidate /
 * baseline segment percentiles, so every pair (every stretch of the
 * host's time) weighs the same; its confidence interval is a seeded
 * bootstrap over the same pairs (cmpstat.c, docs/MEASUREMENT.md). Each
 * side's own percentiles are of its merged histograms.
 *
 * Both sides send the same corpus (lib/probe/probe_corpus.h), each segment
 * from the start of the same sequence (same order, same seed), so the
 * comparison is like for like; corpus.file is read once, off the loop
 * through allowed_paths, before the first segment.
 *
 * The engine runs on its own threads; this file stays on the main loop,
 * never touches the store, and always ends with probe_finish().
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/loadgen.h"
#include "lib/probe/cmpstat.h"
#include "lib/policy/policy.h"
#include "lib/probe/fanload.h"
#include "lib/probe/probe.h"
#include "lib/probe/probe_corpus.h"
#include "lib/util/util.h"

#define CMP_PROGRESS_MS  250
#define CMP_MAX_SEGMENTS 1000

enum { SIDE_BASE = 0, SIDE_CAND = 1 };

static const char *const side_names[] = {"baseline", "candidate"};
static const double cmp_q[] = {50, 95, 99};
#define N_Q 3

/* What one side measured over all its segments. */
struct cmp_side {
	struct hist *latency; /* merged */
	uint64_t requests, errors, connect_errors;
	double elapsed_s;
	double *q[N_Q]; /* per segment, ms; NaN without a successful answer */
	char connect_error[LOADGEN_ERRLEN];
};

struct cmp_probe {
	struct probe *p;
	struct fanload *fl; /* the segment running: from this node, or spread (`nodes`) */
	uv_timer_t progress;
	bool cancelled;
	int segment; /* running: 0 .. 2 * segments - 1; even baseline, odd candidate */
	int total;
	struct cmp_side side[2];
	json_t *table; /* per segment, for details */
	enum probe_state state;
	char why[512];
	struct policy_file *file_read; /* corpus.file being read off the loop */
	struct loadgen_corpus *corpus; /* corpus.file or corpus.items, parsed */
	uint64_t distinct;             /* the most distinct requests a segment sent */
	int nodes;                     /* the most nodes a segment ran on (1: this one) */
};

static const char *side_url(const struct cmp_probe *cp, int side)
{
	return side == SIDE_BASE ? cp->p->sp->baseline : cp->p->sp->candidate;
}

static void cmp_config(const struct cmp_probe *cp, int side, struct loadgen_config *c)
{
	const struct probe *p = cp->p;
	const struct spec_probe *sp = p->sp;

	*c = (struct loadgen_config){
	        .url = side_url(cp, side),
	        .method = sp->method,
	        .headers = sp->headers,
	        .n_headers = sp->n_headers,
	        .body = sp->body,
	        .body_len = sp->body_len,
	        .mode = sp->mode,
	        .rate = sp->rate,
	        .connections = sp->connections > 0 ? (int)sp->connections : 16,
	        .threads = sp->threads > 0 ? (int)sp->threads : 1,
	        .duration_ms = sp->segment_ms,
	        .warmup_ms = sp->warmup_ms,
	        .timeout_ms = p->spec->target.timeout_ms,
	        .insecure = sp->insecure,
	};
	probe_corpus_config(sp, cp->corpus, c);
	http_client_get_policy(p->http, &c->policy, &c->policy_data); /* allowed_targets */
}

static int side_init(struct cmp_side *s, int64_t segments)
{
	int r = hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &s->latency);

	if (r < 0)
		return r;
	for (int k = 0; k < N_Q; k++) {
		s->q[k] = malloc((size_t)segments * sizeof(double));
		if (!s->q[k])
			return -ENOMEM;
		for (int64_t i = 0; i < segments; i++)
			s->q[k][i] = NAN;
	}
	return 0;
}

static void side_deinit(struct cmp_side *s)
{
	hist_free(s->latency);
	for (int k = 0; k < N_Q; k++)
		free(s->q[k]);
}

static double ms_of(const struct hist *h, double q)
{
	return hist_count(h) ? hist_percentile(h, q) / 1000.0 : NAN;
}

/* Adds one segment's result to its side and to the details table. */
static int record_segment(struct cmp_probe *cp, const struct loadgen_result *r, json_t *nodes)
{
	int sd = cp->segment % 2, i = cp->segment / 2;
	struct cmp_side *s = &cp->side[sd];
	json_t *row;

	s->requests += r->requests;
	s->errors += r->errors;
	s->connect_errors += r->errors_by[LOADGEN_ERR_CONNECT];
	s->elapsed_s += r->elapsed_s;
	if (r->distinct_requests > cp->distinct)
		cp->distinct = r->distinct_requests;
	if (r->connect_error[0])
		snprintf(s->connect_error, sizeof(s->connect_error), "%s", r->connect_error);
	for (int k = 0; k < N_Q; k++)
		s->q[k][i] = ms_of(r->latency, cmp_q[k]);
	if (hist_merge(s->latency, r->latency) < 0)
		return -ERANGE;
	row = json_pack("{s:i, s:s, s:i, s:I, s:I, s:o, s:o, s:o}", "segment", cp->segment,
	                "endpoint", side_names[sd], "pair", i, "requests", (json_int_t)r->requests,
	                "errors", (json_int_t)r->errors, "p50_ms", rd_json_number(s->q[0][i]),
	                "p95_ms", rd_json_number(s->q[1][i]), "p99_ms", rd_json_number(s->q[2][i]));
	if (row && nodes)
		json_object_set(row, "nodes", nodes);
	return row ? json_array_append_new(cp->table, row) : -ENOMEM;
}

static double rate_of(const struct cmp_side *s)
{
	double ok = (double)(s->requests - (s->errors < s->requests ? s->errors : s->requests));

	return s->elapsed_s > 0 ? ok / s->elapsed_s : NAN;
}

static double error_rate_of(const struct cmp_side *s)
{
	return s->requests ? (double)s->errors / (double)s->requests : NAN;
}

static void publish_side(struct probe *p, const struct cmp_side *s, const char *name)
{
	static const char *const q_names[] = {"p50_ms", "p95_ms", "p99_ms"};
	char key[64];

	for (int k = 0; k < N_Q; k++) {
		snprintf(key, sizeof(key), "%s_%s", name, q_names[k]);
		probe_set_metric(p, key, ms_of(s->latency, cmp_q[k]));
	}
	snprintf(key, sizeof(key), "%s_requests", name);
	probe_set_metric(p, key, (double)s->requests);
	snprintf(key, sizeof(key), "%s_error_rate", name);
	probe_set_metric(p, key, error_rate_of(s));
	snprintf(key, sizeof(key), "%s_throughput_rps", name);
	probe_set_metric(p, key, rate_of(s));
}

/* The ratios, their intervals and the verdict; -ENOMEM only. */
static int publish_ratios(struct cmp_probe *cp, json_t *intervals)
{
	static const char *const names[] = {"p50_ratio", "p95_ratio", "p99_ratio"};
	const struct spec_probe *sp = cp->p->sp;
	struct cmp_side *b = &cp->side[SIDE_BASE], *c = &cp->side[SIDE_CAND];
	char key[64];

	for (int k = 0; k < N_Q; k++) {
		struct cmpstat_ci ci;
		int r = cmpstat_ci_pairs(b->q[k], c->q[k], (size_t)sp->segments, sp->confidence,
		                         sp->min_effect, (uint64_t)sp->seed, &ci);

		if (r < 0)
			return r;
		probe_set_metric(cp->p, names[k], ci.ratio);
		snprintf(key, sizeof(key), "%s_ci_low", names[k]);
		probe_set_metric(cp->p, key, ci.low);
		snprintf(key, sizeof(key), "%s_ci_high", names[k]);
		probe_set_metric(cp->p, key, ci.high);
		snprintf(key, sizeof(key), "p%d_significant", (int)cmp_q[k]);
		probe_set_metric(cp->p, key, ci.significant < 0 ? NAN : ci.significant);
		if (cmp_q[k] == 50) {
			/* The median is the verdict: the most precise of the three. */
			probe_set_metric(cp->p, "significant",
			                 ci.significant < 0 ? NAN : ci.significant);
			probe_set_metric(cp->p, "pairs", ci.n);
		}
		json_object_set_new(intervals, names[k],
		                    json_pack("{s:o, s:o, s:o, s:i}", "merged_ratio",
		                              rd_json_number(ms_of(c->latency, cmp_q[k]) /
		                                             ms_of(b->latency, cmp_q[k])),
		                              "low", rd_json_number(ci.low), "high",
		                              rd_json_number(ci.high), "pairs", ci.n));
	}
	probe_set_metric(cp->p, "throughput_ratio", rate_of(c) / rate_of(b));
	probe_set_metric(cp->p, "error_rate_diff", error_rate_of(c) - error_rate_of(b));
	probe_set_metric(cp->p, "confidence", sp->confidence);
	probe_set_metric(cp->p, "min_effect", sp->min_effect);
	probe_set_metric(cp->p, "distinct_requests", (double)cp->distinct);
	probe_set_metric(cp->p, "nodes", cp->nodes);
	return 0;
}

static void publish(struct cmp_probe *cp)
{
	const struct spec_probe *sp = cp->p->sp;
	json_t *intervals = json_object();

	publish_side(cp->p, &cp->side[SIDE_BASE], "baseline");
	publish_side(cp->p, &cp->side[SIDE_CAND], "candidate");
	if (!intervals || publish_ratios(cp, intervals) < 0) {
		json_decref(intervals);
		cp->state = PROBE_STATE_ERRORED;
		snprintf(cp->why, sizeof(cp->why), "out of memory while publishing the result");
		return;
	}
	json_decref(cp->p->details);
	cp->p->details = json_pack(
	        "{s:s, s:s, s:I, s:I, s:f, s:I, s:i, s:s, s:o, s:O}", "baseline", sp->baseline,
	        "candidate", sp->candidate, "segments", (json_int_t)sp->segments, "segment_ms",
	        (json_int_t)sp->segment_ms, "confidence", sp->confidence, "seed",
	        (json_int_t)sp->seed, "resamples", CMPSTAT_RESAMPLES, "method",
	        "paired bootstrap over segments of log(candidate/baseline) quantiles, "
	        "expanded percentile interval",
	        "intervals", intervals, "table", cp->table);
	cp->p->percent = 100;
	cp->p->requests = (int64_t)(cp->side[0].requests + cp->side[1].requests);
}

/* A side without one successful answer has nothing to compare. */
static void judge(struct cmp_probe *cp)
{
	cp->state = PROBE_STATE_PASSED;
	for (int sd = 0; sd < 2; sd++) {
		const struct cmp_side *s = &cp->side[sd];

		if (s->requests > 0 && s->connect_errors == s->requests) {
			cp->state = PROBE_STATE_ERRORED;
			snprintf(cp->why, sizeof(cp->why), "cannot connect to the %s %s%s%s",
			         side_names[sd], side_url(cp, sd), s->connect_error[0] ? ": " : "",
			         s->connect_error);
			return;
		}
		if (s->requests <= s->errors) {
			cp->state = PROBE_STATE_ERRORED;
			snprintf(cp->why, sizeof(cp->why),
			         "the %s answered no request successfully (%llu measured)",
			         side_names[sd], (unsigned long long)s->requests);
			return;
		}
	}
}

static void on_timer_closed(uv_handle_t *h)
{
	struct cmp_probe *cp = h->data;

	if (cp->state == PROBE_STATE_ERRORED || cp->state == PROBE_STATE_FAILED)
		probe_finish(cp->p, cp->state, "%s", cp->why);
	else
		probe_finish(cp->p, cp->state, NULL);
}

static void finish(struct cmp_probe *cp, enum probe_state state)
{
	cp->state = state;
	if (state == PROBE_STATE_PASSED) {
		judge(cp);
		if (cp->state == PROBE_STATE_PASSED)
			publish(cp);
	} else if (state == PROBE_STATE_ERRORED && json_array_size(cp->table) > 0) {
		/* what the segments before the error measured is kept */
		json_decref(cp->p->details);
		cp->p->details = json_pack("{s:O}", "table", cp->table);
	}
	uv_close((uv_handle_t *)&cp->progress, on_timer_closed);
}

static int start_segment(struct cmp_probe *cp);

static void on_segment_done(void *userdata, const struct loadgen_result *r, json_t *nodes,
                            const char *error)
{
	struct cmp_probe *cp = userdata;
	struct fanload *fl = cp->fl;
	int err = 0, n = nodes ? (int)json_array_size(nodes) : 1;

	cp->fl = NULL;
	if (cp->cancelled || (r && r->cancelled && !error)) {
		fanload_free(fl);
		finish(cp, PROBE_STATE_CANCELLED);
		return;
	}
	/* A node lost: its segment is kept in the table, the probe is an
	 * error (never a comparison of unequal loads). */
	if (r)
		err = record_segment(cp, r, nodes);
	if (error || !r || err < 0) {
		if (error)
			snprintf(cp->why, sizeof(cp->why), "segment %d (%s): %s", cp->segment,
			         side_names[cp->segment % 2], error);
		else
			snprintf(cp->why, sizeof(cp->why), "cannot record segment %d: %s",
			         cp->segment, strerror(r ? -err : ENOMEM));
		fanload_free(fl);
		finish(cp, PROBE_STATE_ERRORED);
		return;
	}
	fanload_free(fl);
	if (n > cp->nodes)
		cp->nodes = n;
	if (++cp->segment == cp->total) {
		finish(cp, PROBE_STATE_PASSED);
		return;
	}
	if (start_segment(cp) < 0)
		finish(cp, PROBE_STATE_ERRORED);
}

/* One segment: a round against one side, spread as `nodes` says. */
static int start_segment(struct cmp_probe *cp)
{
	struct loadgen_config cfg;
	struct fanload_round rd;
	int sd = cp->segment % 2;

	cmp_config(cp, sd, &cfg);
	rd = (struct fanload_round){.index = cp->segment,
	                            .mode = cp->p->sp->mode,
	                            .rate = cp->p->sp->rate,
	                            .duration_ms = cfg.duration_ms,
	                            .warmup_ms = cfg.warmup_ms,
	                            .side = side_names[sd]};
	return fanload_start(cp->p, &cfg, &rd, on_segment_done, cp, &cp->fl, cp->why,
	                     sizeof(cp->why));
}

static void on_progress(uv_timer_t *t)
{
	struct cmp_probe *cp = t->data;
	int64_t n = 0;
	int pct = 0;

	fanload_progress(cp->fl, &n, &pct);
	cp->p->requests = (int64_t)(cp->side[0].requests + cp->side[1].requests) + n;
	cp->p->percent = (cp->segment * 100 + pct) / cp->total;
}

/* The first segment, and progress from then on. */
static void cmp_begin(struct cmp_probe *cp)
{
	if (start_segment(cp) < 0) {
		finish(cp, PROBE_STATE_ERRORED);
		return;
	}
	uv_timer_start(&cp->progress, on_progress, CMP_PROGRESS_MS, CMP_PROGRESS_MS);
}

/* corpus.file arrives from the threadpool (allowed_paths, lib/policy/policy.h). */
static void on_corpus_read(void *userdata, int err, char *buf, size_t len, const char *why)
{
	struct cmp_probe *cp = userdata;

	cp->file_read = NULL;
	if (probe_corpus_read_done(cp->p->sp, err, buf, len, why, &cp->corpus, cp->why,
	                           sizeof(cp->why)) < 0) {
		finish(cp, PROBE_STATE_ERRORED);
		return;
	}
	cmp_begin(cp);
}

/* The corpus, read or parsed before the first segment. */
static void cmp_prepare(struct cmp_probe *cp)
{
	const struct spec_probe *sp = cp->p->sp;
	int r;

	if (sp->corpus.file) {
		r = policy_read_file_async(cp->p->loop, http_client_files(cp->p->http),
		                           sp->corpus.file, POLICY_MAX_FILE_SIZE, on_corpus_read,
		                           cp, &cp->file_read);
		if (r < 0) {
			snprintf(cp->why, sizeof(cp->why), "cannot read corpus.file: %s",
			         strerror(-r));
			finish(cp, PROBE_STATE_ERRORED);
		}
		return;
	}
	if (sp->corpus.items &&
	    probe_corpus_parse(sp, NULL, 0, &cp->corpus, cp->why, sizeof(cp->why)) < 0) {
		finish(cp, PROBE_STATE_ERRORED);
		return;
	}
	cmp_begin(cp);
}

static int cmp_probe_start(struct probe *p)
{
	struct cmp_probe *cp = calloc(1, sizeof(*cp));

	if (!cp)
		return -ENOMEM;
	cp->p = p;
	cp->total = (int)(2 * p->sp->segments);
	cp->table = json_array();
	if (!cp->table || side_init(&cp->side[0], p->sp->segments) < 0 ||
	    side_init(&cp->side[1], p->sp->segments) < 0) {
		side_deinit(&cp->side[0]);
		side_deinit(&cp->side[1]);
		json_decref(cp->table);
		free(cp);
		return -ENOMEM;
	}
	p->impl = cp;
	uv_timer_init(p->loop, &cp->progress);
	cp->progress.data = cp;
	p->percent = 0;
	p->requests = 0;
	cmp_prepare(cp);
	return 0;
}

static void cmp_probe_cancel(struct probe *p)
{
	struct cmp_probe *cp = p->impl;

	if (!cp) {
		probe_finish(p, PROBE_STATE_CANCELLED, NULL);
		return;
	}
	cp->cancelled = true;
	fanload_cancel(cp->fl); /* finishing follows from on_segment_done */
	if (cp->file_read) {
		policy_file_cancel(cp->file_read);
		cp->file_read = NULL;
		finish(cp, PROBE_STATE_CANCELLED);
	}
}

static void cmp_probe_free(struct probe *p)
{
	struct cmp_probe *cp = p->impl;

	if (!cp)
		return;
	policy_file_cancel(cp->file_read);
	fanload_free(cp->fl);
	loadgen_corpus_free(cp->corpus);
	side_deinit(&cp->side[0]);
	side_deinit(&cp->side[1]);
	json_decref(cp->table);
	free(cp);
	p->impl = NULL;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* clang-format off */
static const char *const mode_names[] = {"closed", "rate", NULL};
static const struct spec_field fields[] = {
	SPEC_F_COMMON,
	{.key = "baseline",   .kind = FK_STRING, .required = true, .flags = SPEC_FIELD_URL,
	 .off = SPEC_P(baseline), .max = SPEC_MAX_URL, .check = spec_check_url},
	{.key = "candidate",  .kind = FK_STRING, .required = true, .flags = SPEC_FIELD_URL,
	 .off = SPEC_P(candidate), .max = SPEC_MAX_URL, .check = spec_check_url},
	{.key = "mode",       .kind = FK_MODE, .required = true, .off = SPEC_P(mode),
	 .choices = mode_names},
	{.key = "rate",       .kind = FK_NUMBER, .off = SPEC_P(rate), .gt_min = true,
	 .dmax = SPEC_MAX_RATE},
	SPEC_F_CONNECTIONS(16),
	SPEC_F_THREADS,
	{.key = "segments",   .kind = FK_INT, .off = SPEC_P(segments), .min = CMPSTAT_MIN_PAIRS,
	 .max = CMP_MAX_SEGMENTS, .def = 10},
	{.key = "segment_duration", .kind = FK_DURATION, .off = SPEC_P(segment_ms), .min = 100,
	 .max = SPEC_MAXD, .def = 1000},
	{.key = "warmup",     .kind = FK_DURATION, .off = SPEC_P(warmup_ms), .min = 0,
	 .max = SPEC_MAXD},
	{.key = "confidence", .kind = FK_NUMBER, .off = SPEC_P(confidence), .dmin = 0.5,
	 .dmax = 0.999, .ddef = 0.95},
	{.key = "min_effect", .kind = FK_NUMBER, .off = SPEC_P(min_effect), .dmin = 0,
	 .dmax = 1, .ddef = 0.02},
	{.key = "seed",       .kind = FK_INT, .off = SPEC_P(seed), .min = 0, .max = INT64_MAX,
	 .def = 1},
	SPEC_F_METHOD,
	SPEC_F_HEADERS,
	SPEC_F_BODY,
	{.key = "insecure",   .kind = FK_BOOL, .off = SPEC_P(insecure)},
	PROBE_F_CORPUS,
	PROBE_F_NODES,
};
/* clang-format on */

/* Every segment's time; spread over nodes, each is agreed with them
 * first (fanload.h). */
static int64_t segments_ms(const struct spec_probe *p)
{
	int64_t each = p->segment_ms + p->warmup_ms + (fanload_spread(p) ? FANLOAD_ROUND_MS : 0);

	return 2 * p->segments * each;
}

static int finish_compare(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	char a[32];

	if (p->mode == LOAD_MODE_RATE && p->rate == 0)
		return spec_fail_at(v, obj, path, "rate", "missing (required when mode is rate)");
	if (p->mode == LOAD_MODE_CLOSED && p->rate > 0)
		return spec_fail_at(
		        v, obj, path, "rate",
		        "only applies to mode: rate (closed mode sends as fast as answers come)");
	if (p->threads > p->connections)
		return spec_fail_at(v, obj, path, "threads", "must not exceed connections (%lld)",
		                    (long long)p->connections);
	rd_format_duration(p->segment_ms, a, sizeof(a));
	if (p->warmup_ms >= p->segment_ms)
		return spec_fail_at(v, obj, path, "warmup",
		                    "must be shorter than segment_duration (%s)", a);
	rd_format_duration(spec_vctx_spec(v)->timeout_ms, a, sizeof(a));
	if (segments_ms(p) > spec_vctx_spec(v)->timeout_ms)
		return spec_fail_at(
		        v, obj, path, "segments",
		        "2 x segments x (warmup + segment_duration%s) is longer than the "
		        "run's timeout (%s)",
		        fanload_spread(p) ? " + 4s to agree each with the other nodes" : "", a);
	if (fanload_check_nodes(v, obj, path, p) < 0)
		return -EINVAL;
	return probe_corpus_finish(v, obj, path, p) < 0 ? -EINVAL : 0;
}

static int64_t compare_deadline(const struct spec *s, const struct spec_probe *sp)
{
	(void)s;
	return segments_ms(sp) + PROBE_DEADLINE_MARGIN_MS;
}

static const struct probe_metric_def metrics[] = {
        {"p50_ratio", "1", PROBE_SAMPLES_NONE},
        {"p95_ratio", "1", PROBE_SAMPLES_NONE},
        {"p99_ratio", "1", PROBE_SAMPLES_NONE},
        {"p50_ratio_ci_low", "1", PROBE_SAMPLES_NONE},
        {"p50_ratio_ci_high", "1", PROBE_SAMPLES_NONE},
        {"p95_ratio_ci_low", "1", PROBE_SAMPLES_NONE},
        {"p95_ratio_ci_high", "1", PROBE_SAMPLES_NONE},
        {"p99_ratio_ci_low", "1", PROBE_SAMPLES_NONE},
        {"p99_ratio_ci_high", "1", PROBE_SAMPLES_NONE},
        {"significant", "1", PROBE_SAMPLES_NONE},
        {"p50_significant", "1", PROBE_SAMPLES_NONE},
        {"p95_significant", "1", PROBE_SAMPLES_NONE},
        {"p99_significant", "1", PROBE_SAMPLES_NONE},
        {"pairs", "segments", PROBE_SAMPLES_NONE},
        {"confidence", "1", PROBE_SAMPLES_NONE},
        {"min_effect", "1", PROBE_SAMPLES_NONE},
        {"throughput_ratio", "1", PROBE_SAMPLES_NONE},
        {"error_rate_diff", "1", PROBE_SAMPLES_NONE},
        {"distinct_requests", "requests", PROBE_SAMPLES_NONE},
        {"nodes", "nodes", PROBE_SAMPLES_NONE},
        {"baseline_p50_ms", "ms", PROBE_SAMPLES_NONE},
        {"baseline_p95_ms", "ms", PROBE_SAMPLES_NONE},
        {"baseline_p99_ms", "ms", PROBE_SAMPLES_NONE},
        {"baseline_requests", "requests", PROBE_SAMPLES_NONE},
        {"baseline_error_rate", "1", PROBE_SAMPLES_NONE},
        {"baseline_throughput_rps", "requests/s", PROBE_SAMPLES_NONE},
        {"candidate_p50_ms", "ms", PROBE_SAMPLES_NONE},
        {"candidate_p95_ms", "ms", PROBE_SAMPLES_NONE},
        {"candidate_p99_ms", "ms", PROBE_SAMPLES_NONE},
        {"candidate_requests", "requests", PROBE_SAMPLES_NONE},
        {"candidate_error_rate", "1", PROBE_SAMPLES_NONE},
        {"candidate_throughput_rps", "requests/s", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_compare = {
        .name = "compare",
        .section = "Performance",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_compare,
        .deadline_ms = compare_deadline,
        .deadline_doc = "`2 x segments x (warmup + segment_duration) + 60s` (with `nodes`, "
                        "4s more per segment)",
        .load = true,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = cmp_probe_start,
                        .cancel = cmp_probe_cancel,
                        .free = cmp_probe_free,
                },
};
