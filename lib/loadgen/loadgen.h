/* loadgen: the load engine behind the `load` and `capacity` probes
 * (docs/DESIGN.md "Architecture principles"; docs/MEASUREMENT.md says
 * what every number means). It runs on its own threads, each with its own
 * uv_loop_t, speaking HTTP/1.1 keep-alive over raw uv_tcp_t (OpenSSL on
 * memory BIOs for https) and parsing answers with http_parser, so API
 * traffic and SQLite on the main loop never disturb what it measures. The
 * request bytes are built once; the hot path neither allocates nor formats.
 *
 * The engine must not touch the store, print or log: it hands its result
 * back to the main loop through uv_async_send and the caller publishes it.
 *
 * Threads: loadgen_new/start/cancel/progress/free and the done callback
 * belong to the thread that owns main_loop. The engine threads touch only
 * their own state plus atomics and one mutex-guarded timeline ring.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "lib/loadgen/hist.h"
#include "lib/spec/spec.h"

struct sockaddr;

#define LOADGEN_MAX_CONNECTIONS    SPEC_MAX_CONNECTIONS
#define LOADGEN_MAX_THREADS        SPEC_MAX_THREADS
#define LOADGEN_MAX_REQUEST        (1024 * 1024 + 64 * 1024) /* prebuilt request bytes */
#define LOADGEN_MAX_TIMELINE       86400                     /* seconds kept */
#define LOADGEN_DEFAULT_TIMEOUT_MS 10000
#define LOADGEN_ERRLEN             192 /* connect_error */

enum loadgen_error {
	LOADGEN_ERR_CONNECT = 0,
	LOADGEN_ERR_TIMEOUT,
	LOADGEN_ERR_IO,
	LOADGEN_ERR_PROTOCOL,
	LOADGEN_ERR_4XX,
	LOADGEN_ERR_5XX,
	_LOADGEN_ERR_MAX,
};

/* "connect", "timeout", "io", "protocol", "4xx", "5xx". */
const char *loadgen_error_to_string(enum loadgen_error e);

/* One request of a corpus (loadgen_config.corpus): what differs from
 * the config's request. */
struct loadgen_request {
	const char *method; /* NULL: the config's */
	const char *path;   /* path and query; NULL: the URL's */
	/* Sent after the config's headers; one of the same name replaces it. */
	const struct spec_header *headers;
	size_t n_headers;
	const char *body; /* NULL: none */
	size_t body_len;
	double weight; /* weighted-random order: > 0 (0 counts as 1) */
};

enum loadgen_order {
	LOADGEN_ORDER_ROUND_ROBIN = 0, /* request i of the run is entry i mod n */
	LOADGEN_ORDER_WEIGHTED_RANDOM, /* drawn by weight from (seed, i) */
};

#define LG_TOKEN_KEY_MAX         64                  /* loadgen_config.token_key, bytes */
#define LOADGEN_MAX_CORPUS       100000              /* requests in a corpus */
#define LOADGEN_MAX_CORPUS_BYTES (256 * 1024 * 1024) /* all prebuilt requests */

/* What to run. Every pointer is borrowed until loadgen_new() returns (the
 * engine copies what it keeps). */
struct loadgen_config {
	const char *url;    /* http:// or https://, host must be a numeric address or resolvable */
	const char *method; /* NULL: GET */
	const struct spec_header *headers;
	size_t n_headers;
	const char *body; /* NULL: none */
	size_t body_len;
	enum load_mode mode;
	double rate;         /* rate mode: requests per second for the whole engine */
	int connections;     /* 1..LOADGEN_MAX_CONNECTIONS */
	int threads;         /* 1..LOADGEN_MAX_THREADS, <= connections */
	int64_t duration_ms; /* measured time after warmup; 0 when requests is set */
	int64_t requests;    /* measured requests instead of a duration; 0: unset */
	int64_t warmup_ms;
	int64_t timeout_ms; /* connect and response timeout; 0: default */
	bool insecure;
	const char *ca_file; /* read by the engine: for readyd-load only */
	/* The daemon's probes read ca_file off the loop through allowed_paths
	 * (lib/policy/policy.h) and pass its PEM text here instead (wins over
	 * ca_file). Borrowed for loadgen_new(). */
	const char *ca_pem;
	size_t ca_pem_len;
	/* SSRF control (allowed_targets, lib/policy/policy.h): called once with the
	 * resolved address before any connection, on the calling thread
	 * inside loadgen_new(); non-zero refuses the run with -EPERM. NULL:
	 * allow. Same contract as lib/http's http_policy_cb. */
	int (*policy)(void *userdata, const struct sockaddr *addr, const char *host);
	void *policy_data;
	/* A corpus: n_corpus > 0 sends these instead of the one request
	 * above (method, headers and body are then their defaults). Each is
	 * prebuilt in loadgen_new(); the run's request i (schedule index in
	 * rate mode, per-thread count dealt as loadgen_thread_index() in
	 * closed mode; warmup included) is picked by order. */
	const struct loadgen_request *corpus;
	size_t n_corpus;
	enum loadgen_order order;
	uint64_t seed;
	/* Streaming answers (docs/MEASUREMENT.md): time to first byte, to
	 * the first event, the gaps between events, events and tokens per
	 * answer. token_key: the JSON key whose number in an event counts the
	 * answer's tokens (NULL: "completion_tokens"; without one in any
	 * event, one token per event). */
	bool stream;
	const char *token_key;
	/* Keep each second's latency histogram in the result's timeline (a
	 * share of a load spread over nodes: the merge of timelines is then
	 * exact, loadgen_result_merge). */
	bool keep_seconds;
};

/* One second of the measured window. p50/p99 are NaN for a second without
 * successful answers. hist is that second's latency histogram serialized
 * (hist_serialize, at the timeline's 2 digits; owned), kept only with
 * keep_seconds, or after an exact merge; NULL otherwise. */
struct loadgen_second {
	uint64_t requests;
	uint64_t errors;
	double p50_ms, p99_ms;
	uint8_t *hist;
	size_t hist_len;
};

/* What a finished run measured. Histograms are in microseconds. */
struct loadgen_result {
	bool cancelled;
	bool clean;           /* every thread closed all its handles: uv_loop_close() == 0 */
	struct hist *latency; /* successful requests; corrected in rate mode */
	struct hist *latency_uncorrected; /* rate mode only (NULL otherwise): from actual send */
	struct hist *failed;              /* latency of failed requests */
	uint64_t requests;                /* measured: successes + errors */
	uint64_t errors;
	uint64_t errors_by[_LOADGEN_ERR_MAX];
	uint64_t warmup_requests;
	double elapsed_s; /* measured window, warmup excluded */
	/* rate mode: how late requests were sent against their schedule. */
	double schedule_lag_mean_ms, schedule_lag_max_ms;
	uint64_t unsent;                 /* due but never sent before the end */
	bool rate_kept;                  /* false when lag or unsent show the rate was not held */
	struct loadgen_second *timeline; /* n_seconds entries */
	size_t n_seconds;
	bool ended_early; /* loadgen_end_early() ended it before its planned end */
	/* Why the last failed connection attempt failed ("connection refused",
	 * "TLS certificate verification failed: self-signed certificate"); ""
	 * when every attempt succeeded. */
	char connect_error[LOADGEN_ERRLEN];
	/* Distinct requests sent (warmup included): corpus entries with
	 * different bytes; 1 for a single request that was sent. */
	uint64_t distinct_requests;
	/* stream only (NULL/0 otherwise), successful measured answers: */
	struct hist *ttfb;             /* first response byte, from the actual send */
	struct hist *ttft;             /* first event; corrected in rate mode */
	struct hist *ttft_uncorrected; /* rate mode: from the actual send */
	struct hist *itl;              /* one sample per gap between events */
	uint64_t streamed;             /* answers with at least one event */
	uint64_t events;               /* events of all answers */
	uint64_t tokens;               /* tokens of all answers */
	uint64_t decode_tokens;        /* answers with 2+ events: tokens - 1 */
	uint64_t decode_ns;            /* those answers: last event - first event */
};

struct loadgen;
typedef void (*loadgen_done_cb)(struct loadgen *lg, void *userdata);

/* Validates cfg, resolves the host, prebuilds the request and creates
 * the TLS context. *ret_lg is a new engine freed with loadgen_free().
 * Returns 0, -EINVAL (bad config or URL; err says why), -ENOMEM, or a
 * resolver/TLS failure as -EHOSTUNREACH / -EPROTO with err filled. */
int loadgen_new(const struct loadgen_config *cfg, uv_loop_t *main_loop, loadgen_done_cb done,
                void *userdata, struct loadgen **ret_lg, char *err, size_t errlen);

/* The nice value (0..19) the engine's threads set for themselves when
 * they start, process-wide: above 0, a load probe yields the CPU to the
 * daemon's loop and its API (docs/operations.md, scheduler.load_nice).
 * Main thread; threads already running keep theirs. */
#define LOADGEN_NICE_DEFAULT 0
void loadgen_set_nice(int nice);

/* Starts the threads. done runs once on main_loop when every thread has
 * ended (after the run, or after loadgen_cancel()). Returns 0 or -errno
 * (then done never runs). */
int loadgen_start(struct loadgen *lg);

/* Stops the threads promptly; done still runs. Safe to call twice. */
void loadgen_cancel(struct loadgen *lg);

/* Ends the run before its planned end, as a normal end does: nothing new
 * is sent, requests in flight are waited for (up to the timeout), and the
 * result is complete, not cancelled, with ended_early set. For decisions
 * taken during the run (abort_on_fail). Main thread, after start; safe to
 * call twice and after the end. */
void loadgen_end_early(struct loadgen *lg);

/* The last complete seconds of the measured window (a second is complete
 * 100 ms after it ended, when every thread has handed it over). */
struct loadgen_window {
	int seconds;           /* complete seconds covered, <= asked (0: none yet) */
	uint64_t requests;     /* measured in those seconds, successful or not */
	uint64_t errors;       /* of them */
	uint64_t errors_total; /* since the measured window began, handed over so far */
	double pct_ms;         /* the asked percentile of the window's successes; NaN: none */
	/* The smallest per-second value of that percentile in the window: it
	 * exceeds a threshold only if every second did. NaN when a second had
	 * no successful answer. */
	double pct_min_second_ms;
};

/* Reads the last `seconds` (1..LOADGEN_WINDOW_MAX) complete seconds and
 * the percentile q (0..100; NaN: skip the percentiles) of their
 * successful answers (timeline resolution: 2 significant digits). Main
 * thread, after start. Returns 0, -EINVAL, -ENOMEM. */
#define LOADGEN_WINDOW_MAX 6
int loadgen_window(struct loadgen *lg, int seconds, double q, struct loadgen_window *ret);

/* Progress without locks: measured requests so far and percent of the
 * planned run (0..100). Main thread, any time after start. */
void loadgen_progress(const struct loadgen *lg, int64_t *ret_requests, int *ret_percent);

/* The result, valid from the done callback until loadgen_free(). Borrowed. */
const struct loadgen_result *loadgen_result(const struct loadgen *lg);

/* Frees lg. Only before loadgen_start() or after done ran; NULL is fine. */
void loadgen_free(struct loadgen *lg);

/* ---- pieces exposed for unit tests ---- */

/* A parsed http(s) URL. */
struct loadgen_url {
	bool tls;
	char host[256]; /* without brackets */
	char port[8];
	char path[4096];    /* path and query, "/" at least */
	char hostport[300]; /* Host header value */
};

/* Parses url into *ret. -EINVAL for anything but http(s)://host[:port][/path]. */
int loadgen_url_parse(const char *url, struct loadgen_url *ret);

/* Builds the request bytes once: request line, Host, the headers, a
 * Content-Length when there is a body (or the method is POST/PUT/PATCH),
 * then the body. *ret_buf is malloc'd (caller frees). -EINVAL, -E2BIG
 * past LOADGEN_MAX_REQUEST, -ENOMEM. */
int loadgen_build_request(const struct loadgen_url *u, const char *method,
                          const struct spec_header *headers, size_t n_headers, const char *body,
                          size_t body_len, char **ret_buf, size_t *ret_len);

/* Rate schedule: intended send time (ns after the start) of request idx
 * of an engine sending rate requests per second. Exact: idx * 10^9 / rate,
 * computed without drift. */
uint64_t loadgen_intended_ns(uint64_t idx, double rate);

/* The index of the k-th request (k = 0, 1, ...) that thread j of n sends:
 * requests are dealt round robin, so together the threads cover every
 * index exactly once. */
uint64_t loadgen_thread_index(uint64_t k, int j, int n);

/* How many of the first total requests thread j of n sends. */
uint64_t loadgen_thread_share(uint64_t total, int j, int n);

/* Feeds bytes of an HTTP response stream to a parser like the engine's.
 * For tests: returns how many complete responses the bytes held and
 * writes their status codes (up to max) to statuses; -EPROTO when the
 * bytes are not HTTP; head: the request was HEAD (no bodies). */
int loadgen_parse_responses(const char *buf, size_t len, bool head, int *statuses, int max);

/* The corpus entry request idx of a run sends: round robin, or weighted
 * random from (seed, idx) over cum (n cumulative weights, the last the
 * total). Pure, for tests. */
size_t loadgen_pick(enum loadgen_order order, uint64_t seed, const double *cum, size_t n,
                    uint64_t idx);

/* ---- corpora (loadgen_corpus.c) ---- */

/* Requests read from JSON: owned strings behind loadgen_request. */
struct loadgen_corpus {
	struct loadgen_request *items;
	size_t n;
};

/* Reads JSON Lines (one request object a line: body (a string, or any
 * JSON value sent serialised), optional method, path, headers (an
 * object of strings), weight; blank lines are skipped). Returns 0, or
 * -EINVAL with "LINE: message" in err, -E2BIG past LOADGEN_MAX_CORPUS
 * entries, -ENOMEM. */
int loadgen_corpus_parse_jsonl(const char *buf, size_t len, struct loadgen_corpus **ret, char *err,
                               size_t errlen);

/* Reads a JSON array of such objects. -EINVAL with "[I].field: message"
 * in err. */
int loadgen_corpus_from_json(const json_t *items, struct loadgen_corpus **ret, char *err,
                             size_t errlen);

void loadgen_corpus_free(struct loadgen_corpus *c);

/* ---- results as JSON (loadgen_report.c) ---- */

/* The probe metrics of a result (docs/spec.md, `load`): requests, errors,
 * error_rate, throughput_rps (successful requests per second), requests_rps
 * (every measured request per second), p50_ms .. p999_ms, max_ms, mean_ms, their
 * _uncorrected twins in rate mode, errors_<class>, warmup_requests and,
 * in rate mode, schedule_lag_ms, schedule_lag_max_ms, unsent, rate_kept.
 * A figure that cannot be computed (no successful answer) is null.
 * *ret_metrics is a new object. Returns 0 or -ENOMEM. */
int loadgen_result_metrics(const struct loadgen_result *r, json_t **ret_metrics);

/* Details for charts and exact re-judging: the per-second timeline (at
 * most LOADGEN_DETAILS_TIMELINE seconds), the latency histogram's
 * non-empty buckets [lowest_us, highest_us, count], and each histogram
 * serialized (hist_serialize) in base64 under "histograms". New object.
 * Returns 0 or -ENOMEM. */
#define LOADGEN_DETAILS_TIMELINE 3600
int loadgen_result_details(const struct loadgen_result *r, json_t **ret_details);

/* base64 of a serialized histogram; new object or NULL on -ENOMEM. */
json_t *loadgen_hist_base64(const struct hist *h);
/* len bytes of buf as a base64 JSON string; NULL (ENOMEM). */
json_t *loadgen_base64(const uint8_t *buf, size_t len);

/* Decodes base64 (as loadgen_hist_base64 writes it). *ret_buf is a new
 * malloc'd buffer. Returns 0, -EINVAL for text that is not base64, -ENOMEM. */
int loadgen_base64_decode(const char *b64, uint8_t **ret_buf, size_t *ret_len);

/* ---- results of several engines (loadgen_merge.c) ---- */

/* A result as JSON, to travel to another node: its counters, errors_by,
 * every histogram serialized in base64, its timeline as [requests,
 * errors, p50_ms, p99_ms] per second. *ret_json is a new object. Returns
 * 0 or -ENOMEM. */
int loadgen_result_to_json(const struct loadgen_result *r, json_t **ret_json);

/* Rebuilds a result from loadgen_result_to_json()'s JSON (borrowed,
 * untrusted: anything else is -EINVAL). *ret_result owns histograms and
 * timeline: loadgen_result_deinit() it. Returns 0, -EINVAL, -ENOMEM. */
int loadgen_result_from_json(const json_t *j, struct loadgen_result *ret_result);

/* Adds src (borrowed) to dst, as one engine that had done both: every
 * histogram merged exactly (hist_merge: the percentiles of the merge are
 * those of one histogram fed all samples), counters summed, timelines
 * added second by second (second i of each is the same second since a
 * common start; the larger per-second p50/p99 is kept), elapsed_s the
 * longer, rate_kept and clean only if both. dst starts zeroed and owns
 * what it gets: loadgen_result_deinit() it. Returns 0, -EINVAL
 * (histograms of different configs), -ENOMEM; on error dst is partly
 * merged and only fit to be deinit'ed. */
int loadgen_result_merge(struct loadgen_result *dst, const struct loadgen_result *src);

/* Frees what a merged or rebuilt result owns; r itself is the caller's. */
void loadgen_result_deinit(struct loadgen_result *r);
