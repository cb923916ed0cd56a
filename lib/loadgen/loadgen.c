/* loadgen: the engine's public face (lib/loadgen/loadgen.h): checks the config,
 * prepares what every thread shares (address, request bytes, TLS
 * context), starts and stops the threads, and turns their counters into
 * one result on the main loop once they have all been joined. It also
 * keeps the per-second timeline, the one structure threads share, under a
 * mutex taken once per thread per second (never per request).
 *
 * It must not block the main loop beyond the one-off name resolution in
 * loadgen_new(), and never touches the store.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/loadgen/loadgen_int.h"
#include "lib/util/util.h"

static atomic_int thread_nice = LOADGEN_NICE_DEFAULT;

void loadgen_set_nice(int nice)
{
	atomic_store(&thread_nice, nice < 0 ? 0 : nice > 19 ? 19 : nice);
}

static const char *const error_names[_LOADGEN_ERR_MAX] = {
        [LOADGEN_ERR_CONNECT] = "connect", [LOADGEN_ERR_TIMEOUT] = "timeout",
        [LOADGEN_ERR_IO] = "io",           [LOADGEN_ERR_PROTOCOL] = "protocol",
        [LOADGEN_ERR_4XX] = "4xx",         [LOADGEN_ERR_5XX] = "5xx",
};

const char *loadgen_error_to_string(enum loadgen_error e)
{
	return (unsigned)e < _LOADGEN_ERR_MAX ? error_names[e] : "?";
}

static int check_config(const struct loadgen_config *c, char *err, size_t errlen)
{
	const char *why = NULL;

	if (c->connections < 1 || c->connections > LOADGEN_MAX_CONNECTIONS)
		why = "connections must be 1..10000";
	else if (c->threads < 1 || c->threads > LOADGEN_MAX_THREADS || c->threads > c->connections)
		why = "threads must be 1..64 and at most connections";
	else if (c->mode == LOAD_MODE_RATE && !(c->rate > 0 && c->rate <= SPEC_MAX_RATE))
		why = "rate must be > 0 and <= 1000000";
	else if ((c->duration_ms > 0) == (c->requests > 0))
		why = "give a duration or a number of requests";
	else if (c->duration_ms < 0 || c->duration_ms > SPEC_MAX_DURATION_MS || c->warmup_ms < 0 ||
	         c->warmup_ms > SPEC_MAX_DURATION_MS || c->timeout_ms < 0 ||
	         c->timeout_ms > SPEC_MAX_DURATION_MS)
		why = "durations must be 0..24h";
	if (why) {
		snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	return 0;
}

static int resolve(struct loadgen *lg, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	int r;

	r = getaddrinfo(lg->url.host, lg->url.port, &hints, &ai);
	if (r != 0 || !ai) {
		snprintf(err, errlen, "cannot resolve '%s': %s", lg->url.host, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	memcpy(&lg->addr, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (lg->cfg.policy &&
	    lg->cfg.policy(lg->cfg.policy_data, (const struct sockaddr *)&lg->addr, lg->url.host) !=
	            0) {
		snprintf(err, errlen, "connection to '%s' refused by allowed_targets",
		         lg->url.host);
		return -EPERM;
	}
	return 0;
}

static int thread_alloc(struct loadgen *lg, struct lg_thread *t, int idx)
{
	int n = lg->cfg.connections / lg->n_threads + (idx < lg->cfg.connections % lg->n_threads);

	t->lg = lg;
	t->idx = idx;
	t->n_conns = n;
	t->conns = malloc(sizeof(*t->conns) * (size_t)n);
	t->idle = calloc((size_t)n, sizeof(*t->idle));
	if (!t->conns || !t->idle)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		lg_conn_init(&t->conns[i], t);
	t->seen = calloc(lg->n_distinct, 1);
	if (!t->seen ||
	    (lg->cfg.stream && lg_stream_stats_new(&t->st, lg->cfg.mode == LOAD_MODE_RATE) < 0))
		return -ENOMEM;
	if (hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &t->st.lat) < 0 ||
	    hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &t->st.fail) < 0 ||
	    hist_new(HIST_HIGHEST_DEFAULT, 2, &t->sec_hist) < 0)
		return -ENOMEM;
	if (lg->cfg.mode == LOAD_MODE_RATE &&
	    hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &t->st.lat_unc) < 0)
		return -ENOMEM;
	return 0;
}

static int copy_config(struct loadgen *lg, const struct loadgen_config *cfg)
{
	lg->cfg = *cfg;
	lg->cfg.url = NULL;
	lg->cfg.headers = NULL;
	lg->cfg.body = NULL;
	lg->cfg.method = NULL;
	lg->cfg.ca_file = NULL;
	lg->cfg.ca_pem = NULL;
	lg->cfg.corpus = NULL;
	lg->cfg.token_key = NULL;
	lg->settings = cfg->stream ? &lg_stream_parser_settings : &lg_parser_settings;
	if (cfg->token_key && *cfg->token_key) {
		if (strlen(cfg->token_key) > LG_SSE_KEY_MAX || strchr(cfg->token_key, '"'))
			return -EINVAL;
		lg->token_key = strdup(cfg->token_key);
		if (!lg->token_key)
			return -ENOMEM;
		lg->cfg.token_key = lg->token_key;
	}
	lg->timeout_ns =
	        (uint64_t)(cfg->timeout_ms ? cfg->timeout_ms : LOADGEN_DEFAULT_TIMEOUT_MS) *
	        LG_NS_PER_MS;
	return 0;
}

static bool is_head(const char *method)
{
	return method && strcmp(method, "HEAD") == 0;
}

/* The config's headers that q does not replace, then q's. */
static int merge_headers(const struct loadgen_config *cfg, const struct loadgen_request *q,
                         struct spec_header **ret, size_t *ret_n)
{
	struct spec_header *h = calloc(cfg->n_headers + q->n_headers + 1, sizeof(*h));
	size_t n = 0;

	if (!h)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_headers; i++) {
		bool replaced = false;

		for (size_t j = 0; j < q->n_headers && !replaced; j++)
			replaced = strcasecmp(cfg->headers[i].name, q->headers[j].name) == 0;
		if (!replaced)
			h[n++] = cfg->headers[i];
	}
	for (size_t j = 0; j < q->n_headers; j++)
		h[n++] = q->headers[j];
	*ret = h;
	*ret_n = n;
	return 0;
}

static int build_one(struct loadgen *lg, const struct loadgen_config *cfg,
                     const struct loadgen_request *q, struct lg_req *out)
{
	struct loadgen_url u = lg->url;
	const char *method = q->method ? q->method : cfg->method;
	struct spec_header *h;
	size_t n_h;
	int r;

	if (q->path && snprintf(u.path, sizeof(u.path), "%s", q->path) >= (int)sizeof(u.path))
		return -EINVAL;
	r = merge_headers(cfg, q, &h, &n_h);
	if (r < 0)
		return r;
	r = loadgen_build_request(&u, method, h, n_h, q->body, q->body_len, &out->buf, &out->len);
	free(h);
	if (r < 0)
		return r;
	out->head = is_head(method);
	return 0;
}

static const struct lg_req *sort_reqs; /* qsort has no userdata: set under loadgen_new() */

static int cmp_req(const void *a, const void *b)
{
	const struct lg_req *x = &sort_reqs[*(const size_t *)a],
	                    *y = &sort_reqs[*(const size_t *)b];

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->buf, y->buf, x->len);
}

/* Equal bytes get one id: distinct_requests counts ids sent. */
static int number_distinct(struct loadgen *lg)
{
	static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;
	size_t *ix = malloc(lg->n_reqs * sizeof(*ix)), d = 0;

	if (!ix)
		return -ENOMEM;
	for (size_t i = 0; i < lg->n_reqs; i++)
		ix[i] = i;
	pthread_mutex_lock(&sort_lock);
	sort_reqs = lg->reqs;
	qsort(ix, lg->n_reqs, sizeof(*ix), cmp_req);
	for (size_t i = 0; i < lg->n_reqs; i++) {
		if (i > 0 && cmp_req(&ix[i - 1], &ix[i]) != 0)
			d++;
		lg->reqs[ix[i]].id = (uint32_t)d;
	}
	sort_reqs = NULL;
	pthread_mutex_unlock(&sort_lock);
	lg->n_distinct = d + 1;
	free(ix);
	return 0;
}

static int build_corpus(struct loadgen *lg, const struct loadgen_config *cfg)
{
	size_t total = 0;
	int r = 0;

	if (cfg->n_corpus > LOADGEN_MAX_CORPUS)
		return -E2BIG;
	lg->reqs = calloc(cfg->n_corpus, sizeof(*lg->reqs));
	if (!lg->reqs)
		return -ENOMEM;
	lg->n_reqs = cfg->n_corpus;
	if (cfg->order == LOADGEN_ORDER_WEIGHTED_RANDOM) {
		lg->cum = malloc(cfg->n_corpus * sizeof(*lg->cum));
		if (!lg->cum)
			return -ENOMEM;
	}
	for (size_t i = 0; r == 0 && i < cfg->n_corpus; i++) {
		const struct loadgen_request *q = &cfg->corpus[i];
		double w = q->weight > 0 ? q->weight : 1;

		r = build_one(lg, cfg, q, &lg->reqs[i]);
		total += lg->reqs[i].len;
		if (r == 0 && total > LOADGEN_MAX_CORPUS_BYTES)
			r = -E2BIG;
		if (lg->cum)
			lg->cum[i] = (i ? lg->cum[i - 1] : 0) + w;
	}
	return r ?: number_distinct(lg);
}

static int lg_build_requests(struct loadgen *lg, const struct loadgen_config *cfg, char *err,
                             size_t errlen)
{
	int r;

	if (cfg->n_corpus > 0) {
		r = build_corpus(lg, cfg);
	} else {
		lg->reqs = calloc(1, sizeof(*lg->reqs));
		lg->n_reqs = lg->n_distinct = 1;
		r = lg->reqs ? loadgen_build_request(&lg->url, cfg->method, cfg->headers,
		                                     cfg->n_headers, cfg->body, cfg->body_len,
		                                     &lg->reqs[0].buf, &lg->reqs[0].len)
		             : -ENOMEM;
		if (r == 0)
			lg->reqs[0].head = is_head(cfg->method);
	}
	if (r < 0)
		snprintf(err, errlen, "cannot build the request%s: %s",
		         cfg->n_corpus > 0 ? "s of the corpus" : "", strerror(-r));
	return r;
}

static int loadgen_prepare(struct loadgen *lg, const struct loadgen_config *cfg, char *err,
                           size_t errlen)
{
	int r;

	if (loadgen_url_parse(cfg->url, &lg->url) < 0) {
		char shown[RD_URL_TEXT_MAX];

		snprintf(err, errlen, "not an http(s) URL: '%s'",
		         rd_url_redact(cfg->url, shown, sizeof(shown)));
		return -EINVAL;
	}
	r = lg_build_requests(lg, cfg, err, errlen);
	if (r < 0)
		return r;
	r = resolve(lg, err, errlen);
	if (r == 0 && lg->url.tls)
		r = lg_tls_ctx_new(cfg->insecure, cfg->ca_file, cfg->ca_pem, cfg->ca_pem_len,
		                   &lg->ssl_ctx, err, errlen);
	for (int i = 0; r == 0 && i < lg->n_threads; i++)
		r = thread_alloc(lg, &lg->threads[i], i);
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return r;
}

int loadgen_new(const struct loadgen_config *cfg, uv_loop_t *main_loop, loadgen_done_cb done,
                void *userdata, struct loadgen **ret_lg, char *err, size_t errlen)
{
	struct loadgen *lg;
	int r;

	r = check_config(cfg, err, errlen);
	if (r < 0)
		return r;
	lg = calloc(1, sizeof(*lg));
	if (!lg)
		return -ENOMEM;
	pthread_mutex_init(&lg->tl_lock, NULL);
	pthread_mutex_init(&lg->stop_lock, NULL);
	for (int i = 0; i < LG_RING; i++)
		lg->ring[i].sec = -1;
	r = copy_config(lg, cfg);
	if (r < 0) {
		snprintf(err, errlen, "token_key must be 1..64 bytes without '\"'");
		loadgen_free(lg);
		return r;
	}
	lg->main_loop = main_loop;
	lg->nice = atomic_load(&thread_nice);
	lg->done = done;
	lg->userdata = userdata;
	lg->n_threads = cfg->threads;
	lg->threads = calloc((size_t)cfg->threads, sizeof(*lg->threads));
	r = lg->threads ? loadgen_prepare(lg, cfg, err, errlen) : -ENOMEM;
	if (r < 0) {
		loadgen_free(lg);
		return r;
	}
	*ret_lg = lg;
	return 0;
}

/* ---- the timeline ---- */

static int timeline_reserve(struct loadgen *lg, int64_t sec)
{
	size_t want = (size_t)sec + 1, cap;
	struct loadgen_second *tl;

	if (sec < 0 || sec >= LOADGEN_MAX_TIMELINE)
		return -ERANGE;
	if (want <= lg->n_seconds)
		return 0;
	cap = want < 64 ? 64 : want * 2;
	if (cap > LOADGEN_MAX_TIMELINE)
		cap = LOADGEN_MAX_TIMELINE;
	tl = realloc(lg->timeline, cap * sizeof(*tl));
	if (!tl)
		return -ENOMEM;
	for (size_t i = lg->n_seconds; i < want; i++)
		tl[i] = (struct loadgen_second){.p50_ms = NAN, .p99_ms = NAN};
	lg->timeline = tl;
	lg->n_seconds = want;
	return 0;
}

static void slot_finalize(struct loadgen *lg, struct lg_slot *s)
{
	struct loadgen_second *e;

	if (s->sec < 0)
		return;
	if (timeline_reserve(lg, s->sec) == 0) {
		e = &lg->timeline[s->sec];
		e->requests += s->requests;
		e->errors += s->errors;
		e->p50_ms = hist_percentile(s->h, 50) / 1000.0;
		e->p99_ms = hist_percentile(s->h, 99) / 1000.0;
		/* The first hour, as reports show it (LOADGEN_DETAILS_TIMELINE):
		 * a few hundred bytes a second, handed back between nodes. */
		if (lg->cfg.keep_seconds && !e->hist && s->sec < LOADGEN_DETAILS_TIMELINE &&
		    hist_serialize(s->h, &e->hist, &e->hist_len) < 0)
			e->hist = NULL; /* that second's merge falls back to the larger */
	}
	hist_reset(s->h);
	s->sec = -1;
	s->requests = s->errors = 0;
}

void lg_timeline_add(struct loadgen *lg, int64_t sec, uint64_t requests, uint64_t errors,
                     const struct hist *h)
{
	struct lg_slot *s = &lg->ring[sec % LG_RING];

	pthread_mutex_lock(&lg->tl_lock);
	if (!s->h && hist_new(HIST_HIGHEST_DEFAULT, 2, &s->h) < 0)
		goto out;
	if (s->sec > sec) {
		/* Too late for its slot: counts still count, percentiles stay. */
		if (timeline_reserve(lg, sec) == 0) {
			lg->timeline[sec].requests += requests;
			lg->timeline[sec].errors += errors;
		}
		goto out;
	}
	if (s->sec != sec) {
		slot_finalize(lg, s);
		s->sec = sec;
	}
	s->requests += requests;
	s->errors += errors;
	(void)hist_merge(s->h, h);
out:
	pthread_mutex_unlock(&lg->tl_lock);
}

/* ---- start, stop, results ---- */

static void on_async_closed(uv_handle_t *h)
{
	struct loadgen *lg = h->data;

	lg->async_open = false;
	lg->done(lg, lg->userdata);
}

static void merge_thread(struct loadgen_result *res, const struct lg_thread *t, uint64_t *lag_sum,
                         uint64_t *lag_n)
{
	const struct lg_stats *st = &t->st;

	(void)hist_merge(res->latency, st->lat);
	(void)hist_merge(res->failed, st->fail);
	if (res->latency_uncorrected)
		(void)hist_merge(res->latency_uncorrected, st->lat_unc);
	res->requests += st->requests;
	res->errors += st->errors;
	res->warmup_requests += st->warmup;
	for (int i = 0; i < _LOADGEN_ERR_MAX; i++)
		res->errors_by[i] += st->errors_by[i];
	res->unsent += st->unsent;
	if (res->ttft) {
		(void)hist_merge(res->ttfb, st->ttfb);
		(void)hist_merge(res->ttft, st->ttft);
		(void)hist_merge(res->itl, st->itl);
		if (res->ttft_uncorrected)
			(void)hist_merge(res->ttft_uncorrected, st->ttft_unc);
		res->streamed += st->streamed;
		res->events += st->events;
		res->tokens += st->tokens;
		res->decode_tokens += st->decode_tokens;
		res->decode_ns += st->decode_ns;
	}
	*lag_sum += st->lag_sum_ns;
	*lag_n += st->lag_n;
	if ((double)st->lag_max_ns / 1e6 > res->schedule_lag_max_ms)
		res->schedule_lag_max_ms = (double)st->lag_max_ns / 1e6;
}

/* A schedule is held when nothing due went unsent and requests left on
 * average within a few ticks of their time. */
#define LG_LAG_KEPT_MS 5.0

static void build_result(struct loadgen *lg)
{
	struct loadgen_result *res = &lg->result;
	uint64_t lag_sum = 0, lag_n = 0, last = lg->t_measure;

	res->cancelled = atomic_load(&lg->cancelled);
	res->ended_early = atomic_load(&lg->early);
	res->clean = true;
	for (int i = 0; i < lg->n_threads; i++) {
		const struct lg_thread *t = &lg->threads[i];

		merge_thread(res, t, &lag_sum, &lag_n);
		for (size_t j = 0; t->seen && j < lg->n_distinct; j++)
			if (t->seen[j] && !lg->threads[0].seen[j])
				lg->threads[0].seen[j] = 1;
		if (t->loop_close_rc != 0)
			res->clean = false;
		if (t->last_done > last)
			last = t->last_done;
		if (t->connect_error[0])
			snprintf(res->connect_error, sizeof(res->connect_error), "%s",
			         t->connect_error);
	}
	for (size_t j = 0; lg->threads[0].seen && j < lg->n_distinct; j++)
		res->distinct_requests += lg->threads[0].seen[j];
	/* A run ended early measured until its last answer, not its plan. */
	if (lg->cfg.duration_ms > 0 && !res->cancelled && !res->ended_early && last < lg->t_end)
		last = lg->t_end;
	res->elapsed_s = atomic_load(&lg->go) ? (double)(last - lg->t_measure) / 1e9 : 0;
	res->schedule_lag_mean_ms = lag_n ? (double)lag_sum / (double)lag_n / 1e6 : 0;
	res->rate_kept = lg->cfg.mode != LOAD_MODE_RATE ||
	                 (res->unsent == 0 && res->schedule_lag_mean_ms <= LG_LAG_KEPT_MS);
	pthread_mutex_lock(&lg->tl_lock);
	for (int64_t s = 0; s < LG_RING * 2; s++) {
		/* Oldest first, so the timeline grows in order. */
		int64_t best = -1;

		for (int i = 0; i < LG_RING; i++)
			if (lg->ring[i].sec >= 0 &&
			    (best < 0 || lg->ring[i].sec < lg->ring[best].sec))
				best = i;
		if (best < 0)
			break;
		slot_finalize(lg, &lg->ring[best]);
	}
	pthread_mutex_unlock(&lg->tl_lock);
	res->timeline = lg->timeline;
	res->n_seconds = lg->n_seconds;
}

static void on_done_async(uv_async_t *h)
{
	struct loadgen *lg = h->data;

	if (lg->finished || atomic_load(&lg->threads_done) < lg->n_threads)
		return;
	lg->finished = true;
	for (int i = 0; i < lg->n_threads; i++) {
		if (lg->threads[i].joinable)
			pthread_join(lg->threads[i].tid, NULL);
		lg->threads[i].joinable = false;
	}
	build_result(lg);
	uv_close((uv_handle_t *)&lg->done_async, on_async_closed);
}

void lg_start_clock(struct loadgen *lg, uint64_t now)
{
	const struct loadgen_config *c = &lg->cfg;

	lg->t0 = now + LG_GO_DELAY_NS;
	lg->t_measure = lg->t0 + (uint64_t)c->warmup_ms * LG_NS_PER_MS;
	lg->t_end = c->duration_ms > 0 ? lg->t_measure + (uint64_t)c->duration_ms * LG_NS_PER_MS
	                               : UINT64_MAX;
	lg->t_hard_end = lg->t_end == UINT64_MAX ? UINT64_MAX : lg->t_end + lg->timeout_ns;
	atomic_store_explicit(&lg->go, true, memory_order_release);
}

static void plan(struct loadgen *lg)
{
	const struct loadgen_config *c = &lg->cfg;
	uint64_t total = UINT64_MAX;

	/* Until the clock starts nothing is measured and nothing ends. */
	lg->t0 = lg->t_measure = lg->t_end = lg->t_hard_end = UINT64_MAX;
	if (c->mode != LOAD_MODE_RATE)
		return;
	/* Every index whose intended time lies before the end of the window
	 * (or the warmup's share plus `requests`). */
	if (c->duration_ms > 0)
		total = (uint64_t)ceil((double)(c->warmup_ms + c->duration_ms) / 1000.0 * c->rate);
	else
		total = (uint64_t)ceil((double)c->warmup_ms / 1000.0 * c->rate) +
		        (uint64_t)c->requests;
	for (int i = 0; i < lg->n_threads; i++)
		lg->threads[i].k_total = loadgen_thread_share(total, i, lg->n_threads);
}

static int result_alloc(struct loadgen *lg)
{
	struct loadgen_result *res = &lg->result;

	if (hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &res->latency) < 0 ||
	    hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &res->failed) < 0)
		return -ENOMEM;
	if (lg->cfg.mode == LOAD_MODE_RATE &&
	    hist_new(HIST_HIGHEST_DEFAULT, HIST_DIGITS_DEFAULT, &res->latency_uncorrected) < 0)
		return -ENOMEM;
	if (lg->cfg.stream) {
		struct lg_stats st = {0};
		int r = lg_stream_stats_new(&st, lg->cfg.mode == LOAD_MODE_RATE);

		res->ttfb = st.ttfb;
		res->ttft = st.ttft;
		res->ttft_uncorrected = st.ttft_unc;
		res->itl = st.itl;
		return r;
	}
	return 0;
}

int loadgen_start(struct loadgen *lg)
{
	int r;

	if (lg->started)
		return -EALREADY;
	r = result_alloc(lg);
	if (r < 0)
		return r;
	r = uv_async_init(lg->main_loop, &lg->done_async, on_done_async);
	if (r < 0)
		return r;
	lg->done_async.data = lg;
	lg->async_open = true;
	lg->started = true;
	plan(lg);
	for (int i = 0; i < lg->n_threads; i++) {
		struct lg_thread *t = &lg->threads[i];

		if (pthread_create(&t->tid, NULL, lg_thread_main, t) != 0) {
			/* The started ones stop; done still reports (cancelled). */
			atomic_store(&lg->cancelled, true);
			atomic_fetch_add(&lg->threads_done, lg->n_threads - i);
			loadgen_cancel(lg);
			uv_async_send(&lg->done_async);
			break;
		}
		t->joinable = true;
	}
	return 0;
}

void loadgen_cancel(struct loadgen *lg)
{
	if (!lg || !lg->started)
		return;
	atomic_store(&lg->cancelled, true);
	pthread_mutex_lock(&lg->stop_lock);
	for (int i = 0; i < lg->n_threads; i++)
		if (lg->threads[i].async_open)
			uv_async_send(&lg->threads[i].stop_async);
	pthread_mutex_unlock(&lg->stop_lock);
}

void loadgen_end_early(struct loadgen *lg)
{
	/* The threads see it on their next tick (10 ms) and drain. */
	if (lg && lg->started)
		atomic_store(&lg->early, true);
}

/* A second is complete this long after it ended: every thread's tick
 * (10 ms) has handed it to the timeline by then. */
#define LG_COMPLETE_NS (100 * LG_NS_PER_MS)

static const struct lg_slot *ring_find(const struct loadgen *lg, int64_t sec)
{
	const struct lg_slot *s = &lg->ring[sec % LG_RING];

	return s->sec == sec ? s : NULL;
}

/* Adds second `sec` to w (under tl_lock). *min_pct becomes NaN once a
 * second has no percentile of its own. */
static void window_add(struct loadgen *lg, int64_t sec, double q, struct loadgen_window *w,
                       double *min_pct)
{
	const struct lg_slot *s = ring_find(lg, sec);
	double v;

	if (!s) {
		/* Finalized already (a late thread), or nothing arrived. */
		if ((size_t)sec < lg->n_seconds) {
			w->requests += lg->timeline[sec].requests;
			w->errors += lg->timeline[sec].errors;
		}
		*min_pct = NAN;
		return;
	}
	w->requests += s->requests;
	w->errors += s->errors;
	if (isnan(q))
		return;
	v = hist_count(s->h) ? hist_percentile(s->h, q) / 1000.0 : NAN;
	(void)hist_merge(lg->window, s->h);
	if (isnan(v) || v < *min_pct)
		*min_pct = v;
}

static uint64_t errors_so_far(const struct loadgen *lg)
{
	uint64_t n = 0;

	for (size_t i = 0; i < lg->n_seconds; i++)
		n += lg->timeline[i].errors;
	for (int i = 0; i < LG_RING; i++)
		if (lg->ring[i].sec >= 0)
			n += lg->ring[i].errors;
	return n;
}

int loadgen_window(struct loadgen *lg, int seconds, double q, struct loadgen_window *ret)
{
	struct loadgen_window w = {.pct_ms = NAN, .pct_min_second_ms = NAN};
	double min_pct = INFINITY;
	uint64_t now = uv_hrtime();
	int64_t last, first;

	if (seconds < 1 || seconds > LOADGEN_WINDOW_MAX || (!isnan(q) && (q < 0 || q > 100)))
		return -EINVAL;
	if (!isnan(q) && !lg->window && hist_new(HIST_HIGHEST_DEFAULT, 2, &lg->window) < 0)
		return -ENOMEM;
	if (!lg->started || !atomic_load_explicit(&lg->go, memory_order_acquire) ||
	    now < lg->t_measure + LG_NS_PER_S + LG_COMPLETE_NS) {
		*ret = w;
		return 0;
	}
	last = (int64_t)((now - lg->t_measure - LG_COMPLETE_NS) / LG_NS_PER_S) - 1;
	first = last - seconds + 1 < 0 ? 0 : last - seconds + 1;
	if (lg->window)
		hist_reset(lg->window);
	pthread_mutex_lock(&lg->tl_lock);
	w.errors_total = errors_so_far(lg);
	for (int64_t sec = first; sec <= last; sec++)
		window_add(lg, sec, q, &w, &min_pct);
	pthread_mutex_unlock(&lg->tl_lock);
	w.seconds = (int)(last - first + 1);
	if (!isnan(q) && hist_count(lg->window) > 0) {
		w.pct_ms = hist_percentile(lg->window, q) / 1000.0;
		w.pct_min_second_ms = min_pct;
	}
	*ret = w;
	return 0;
}

void loadgen_progress(const struct loadgen *lg, int64_t *ret_requests, int *ret_percent)
{
	uint64_t n = 0, now = uv_hrtime();
	double pct = 0;

	for (int i = 0; i < lg->n_threads; i++)
		n += atomic_load_explicit(&lg->threads[i].progress, memory_order_relaxed);
	if (lg->cfg.requests > 0)
		pct = 100.0 * (double)n / (double)lg->cfg.requests;
	else if (atomic_load_explicit(&lg->go, memory_order_acquire) && now > lg->t0)
		pct = 100.0 * (double)(now - lg->t0) /
		      ((double)(lg->cfg.warmup_ms + lg->cfg.duration_ms) * 1e6);
	*ret_requests = (int64_t)n;
	*ret_percent = pct > 100 ? 100 : (int)pct;
}

const struct loadgen_result *loadgen_result(const struct loadgen *lg)
{
	return &lg->result;
}

static void thread_free(struct lg_thread *t)
{
	for (int i = 0; t->conns && i < t->n_conns; i++)
		lg_conn_deinit(&t->conns[i]);
	free(t->conns);
	free(t->idle);
	hist_free(t->st.lat);
	hist_free(t->st.lat_unc);
	hist_free(t->st.fail);
	hist_free(t->sec_hist);
	lg_stream_stats_free(&t->st);
	free(t->seen);
}

void loadgen_free(struct loadgen *lg)
{
	if (!lg)
		return;
	for (int i = 0; lg->threads && i < lg->n_threads; i++)
		thread_free(&lg->threads[i]);
	free(lg->threads);
	for (int i = 0; i < LG_RING; i++)
		hist_free(lg->ring[i].h);
	hist_free(lg->window);
	hist_free(lg->result.latency);
	hist_free(lg->result.latency_uncorrected);
	hist_free(lg->result.failed);
	for (size_t i = 0; i < lg->n_seconds; i++)
		free(lg->timeline[i].hist);
	free(lg->timeline);
	for (size_t i = 0; lg->reqs && i < lg->n_reqs; i++)
		free(lg->reqs[i].buf);
	free(lg->reqs);
	free(lg->cum);
	free(lg->token_key);
	hist_free(lg->result.ttfb);
	hist_free(lg->result.ttft);
	hist_free(lg->result.ttft_uncorrected);
	hist_free(lg->result.itl);
	if (lg->ssl_ctx)
		SSL_CTX_free(lg->ssl_ctx);
	pthread_mutex_destroy(&lg->tl_lock);
	pthread_mutex_destroy(&lg->stop_lock);
	free(lg);
}
