/* demo-target: the contracts between the files of the fake model server that
 * readyd's tests and demo measure. Each section below is one module (prefix
 * dist_, prng_, sbuf_, state_, expo_, serve_, admin_, cli_). The program is
 * standalone: it must not link libreadyd, so that a bug in readyd's helpers
 * can never bend both the measurement and the thing measured the same way.
 * Times are int64 nanoseconds on CLOCK_MONOTONIC unless a name says _us.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#define DT_NS_PER_US INT64_C(1000)
#define DT_NS_PER_MS INT64_C(1000000)
#define DT_NS_PER_S  INT64_C(1000000000)

/* Caps on what a user controls. */
#define DT_MAX_DURATION_NS (3600 * DT_NS_PER_S) /* one delay, stall or rollback delay */
#define DT_MAX_DIST_TEXT   512                  /* --latency / latency= text */
#define DT_MAX_MIX         64                   /* entries in a weighted mix */
#define DT_MAX_VERSION     64                   /* version string length */
#define DT_MAX_TOKEN       256                  /* auth token length */
#define DT_MAX_RATE        1e6                  /* --rate-limit, req/s */
#define DT_MAX_WORKERS     4096                 /* equal to the connection limit */
#define DT_MAX_BODY        (1024 * 1024)        /* request body cap, bytes */
#define DT_MAX_RECORD      2000000              /* applied delays kept */
#define DT_MAX_TOKENS      100000               /* tokens of one streamed answer */
#define DT_MAX_DISTINCT    (4 * 1024 * 1024)    /* distinct request bodies counted */

/* A streamed completion (/v1/completions): the first token this long
 * after the headers, then one every gap, tokens of them; as SSE events,
 * or with text as plain chunks (one per token, no event framing). */
struct stream_params {
	int64_t first_ns, gap_ns;
	int64_t tokens;
	bool text;
};

/* Monotonic clock in nanoseconds. */
int64_t dt_now_ns(void);

/* ---- dist: durations and latency distributions (dist.c) ---- */

enum dist_kind { DIST_FIXED, DIST_MIX, DIST_UNIFORM, DIST_EXP };

struct dist_entry {
	int64_t ns;
	double cum_weight; /* running sum up to and including this entry */
};

struct dist {
	enum dist_kind kind;
	int64_t a_ns; /* fixed value, uniform low bound or exponential mean */
	int64_t b_ns; /* uniform high bound */
	size_t n_mix;
	struct dist_entry mix[DT_MAX_MIX];
	char text[DT_MAX_DIST_TEXT + 1]; /* as the user wrote it, for answers */
};

/* Parses "10ms", "1.5s", "250us" (units us, ms, s; "0" alone is allowed)
 * into nanoseconds, at most DT_MAX_DURATION_NS. Returns 0, -EINVAL or -ERANGE. */
int dist_parse_duration(const char *s, int64_t *ret_ns);

/* Parses DIST: "10ms", "10ms:90,40ms:8,150ms:2", "uniform:5ms-15ms",
 * "exp:10ms". Returns 0, -EINVAL or -ERANGE; ret_value is written only on success. */
int dist_parse(const char *s, struct dist *ret_value);

/* Draws one service time from d, given u uniform in [0, 1). */
int64_t dist_sample(const struct dist *d, double u);

/* ---- prng: xoshiro256** seeded through splitmix64 (dist.c) ---- */

struct prng {
	uint64_t s[4];
};

void prng_seed(struct prng *p, uint64_t seed);
/* Uniform double in [0, 1) with 53 random bits. */
double prng_double(struct prng *p);

/* ---- sbuf: a growable, always NUL-terminated text buffer (sbuf.c) ---- */

struct sbuf {
	char *buf;
	size_t len;
	size_t cap;
	int err; /* first failure (-ENOMEM), sticky: callers check once at the end */
};

void sbuf_init(struct sbuf *b);
void sbuf_deinit(struct sbuf *b);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the buffer to the caller (free() it) and resets b. Returns 0 or b->err. */
int sbuf_steal(struct sbuf *b, char **ret_buf, size_t *ret_len);

/* ---- cli: the command line (cli.c) ---- */

struct listen_spec {
	char host[256];
	uint16_t port;
};

struct config {
	struct listen_spec listen;
	const char *port_file; /* borrowed from argv, NULL if not given */
	const char *pid_file;
	bool tls;
	struct listen_spec tls_listen;
	const char *tls_cert;
	const char *tls_key;
	const char *tls_port_file;
	int tls_max_version; /* 12 or 13 */
	struct dist latency;
	double errors;
	int64_t stall_after_ns;
	int64_t stall_for_ns; /* 0: no stall */
	unsigned workers;     /* 0: unlimited */
	const char *auth_token;
	double rate_limit; /* 0: off */
	char version[DT_MAX_VERSION + 1];
	char previous_version[DT_MAX_VERSION + 1];
	uint64_t seed;
	unsigned omit_mask; /* bit per enum expo_family */
	struct stream_params stream;
};

/* Strict value parsers shared with POST /admin/fault: a probability in
 * [0, 1]; a rate in (0, DT_MAX_RATE]. Return 0 or -EINVAL. */
int cli_parse_probability(const char *s, double *ret_value);
int cli_parse_rate(const char *s, double *ret_value);
/* A token count in [0, DT_MAX_TOKENS]. 0 or -EINVAL. */
int cli_parse_tokens(const char *s, int64_t *ret_value);

/* Fills cfg from argv. Returns 0 to run, 1 when --help was printed, or
 * -EINVAL after printing a message to stderr (the caller exits 2). */
int cli_parse(int argc, char **argv, struct config *cfg);

/* ---- expo: /metrics exposition (expo.c) ---- */

enum expo_family {
	EXPO_REQUESTS,
	EXPO_ERRORS,
	EXPO_DURATION,
	EXPO_INFO,
	EXPO_N_FAMILIES,
};

#define EXPO_N_BUCKETS 11 /* finite bounds; +Inf is the total count */

struct expo_snapshot {
	uint64_t ok;                      /* 200 answers */
	uint64_t failed;                  /* injected 500 answers */
	uint64_t buckets[EXPO_N_BUCKETS]; /* non-cumulative */
	int64_t sum_us;
	char version[DT_MAX_VERSION + 1];
};

/* Maps a family name, or one of its sample names ("..._bucket"), to its
 * enum value. Returns the value or -EINVAL. */
int expo_family_lookup(const char *name);

/* Index of the bucket a delay falls in, or EXPO_N_BUCKETS for +Inf only. */
size_t expo_bucket_index(int64_t delay_us);

/* True if an Accept header asks for application/openmetrics-text. */
bool expo_wants_openmetrics(const char *accept);

/* Renders the families not in omit_mask. Returns 0 or -ENOMEM; the caller
 * frees *ret_text. */
int expo_render(const struct expo_snapshot *snap, unsigned omit_mask, bool openmetrics,
                char **ret_text, size_t *ret_len);

/* ---- state: everything connection threads share (state.c) ---- */

struct state;

enum admit_outcome {
	ADMIT_OK,
	ADMIT_AUTH_MISSING,
	ADMIT_AUTH_WRONG,
	ADMIT_RATE_LIMITED,
};

struct admission {
	enum admit_outcome outcome;
	int64_t hold_until_ns; /* end of a stall the request arrived in, or 0 */
	int64_t delay_ns;      /* service time drawn for it */
	bool fail;             /* answer 500 */
};

/* A change requested through POST /admin/fault; only has_* fields apply. */
struct fault_change {
	bool has_latency, has_errors, has_stall, has_auth, has_rate;
	bool has_stream_first, has_stream_gap, has_stream_tokens;
	struct stream_params stream;
	struct dist latency;
	double errors;
	int64_t stall_ns;
	bool auth;
	double rate; /* 0: off */
};

int state_new(const struct config *cfg, struct state **ret_value);
void state_free(struct state *st);

/* Decides what happens to a /v1/predict request that arrived at now_ns:
 * auth, rate limit, stall window, service time, fault. authorization is
 * the raw header (borrowed, may be NULL). */
void state_admit(struct state *st, int64_t now_ns, const char *authorization,
                 struct admission *ret_value);

/* Waits for a worker slot (FIFO); *ret_wait_ns is how long (0 without
 * --workers). Returns 0, or -ECANCELED when stopping. */
int state_slot_acquire(struct state *st, int64_t *ret_wait_ns);
void state_slot_release(struct state *st);

/* Sleeps until deadline_ns (absolute, monotonic). Returns 0, or
 * -ECANCELED if the server began stopping first. */
int state_sleep_until(struct state *st, int64_t deadline_ns);

/* Records one answered /v1/predict request. */
void state_record(struct state *st, int64_t applied_us, bool failed);

void state_stop(struct state *st);
bool state_stopping(struct state *st);

/* Reported version (the previous one once a rollback took effect). */
void state_version(struct state *st, char buf[DT_MAX_VERSION + 1]);

unsigned state_omit_mask(const struct state *st);
void state_expo_snapshot(struct state *st, struct expo_snapshot *ret_value);

/* Applies all of c at once. Returns 0, or -EPERM for auth=on without a
 * token (nothing changed then). */
int state_fault(struct state *st, const struct fault_change *c);

/* The current settings as a JSON object (caller frees). NULL on ENOMEM. */
char *state_settings_json(struct state *st);

/* Copies the delay record; the caller frees *ret_us. Returns 0 or -ENOMEM. */
int state_delays(struct state *st, int64_t **ret_us, size_t *ret_n, uint64_t *ret_errors,
                 bool *ret_truncated);

/* Records the body of a /v1/predict or /v1/completions request by its
 * 64-bit FNV-1a hash: counted, added to the distinct set and folded
 * into an order-sensitive digest of the sequence. */
void state_body(struct state *st, uint64_t hash);
/* A streamed answer was sent whole with this many tokens. */
void state_streamed(struct state *st, int64_t tokens);
/* The current stream settings. */
void state_stream_params(struct state *st, struct stream_params *ret_value);
/* GET /admin/served: bodies, distinct_bodies, body_sequence (hex
 * digest), streams, tokens. Caller frees; NULL on ENOMEM. */
char *state_served_json(struct state *st);

/* FNV-1a over len bytes, continuing from h (start: DT_FNV_BASIS). */
#define DT_FNV_BASIS UINT64_C(0xcbf29ce484222325)
uint64_t dt_fnv1a(uint64_t h, const void *buf, size_t len);

void state_reset(struct state *st);
void state_rollback(struct state *st, int64_t delay_ns);
void state_rollforward(struct state *st);
void state_previous_version(const struct state *st, char buf[DT_MAX_VERSION + 1]);

/* ---- serve: the HTTP handler (serve.c) and /admin/... (admin.c) ---- */

/* Opaque to MHD: passed as the access handler's and completion callback's cls. */
enum MHD_Result serve_access(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_data_size, void **req_cls);
void serve_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                     enum MHD_RequestTerminationCode toe);

/* Queues a response with a copy of body. Returns MHD_YES/MHD_NO. */
enum MHD_Result serve_reply(struct MHD_Connection *c, unsigned status, const char *type,
                            const char *body, size_t len);
enum MHD_Result serve_error(struct MHD_Connection *c, unsigned status, const char *message);

enum admin_route {
	ADMIN_FAULT,
	ADMIN_ROLLBACK,
	ADMIN_ROLLFORWARD,
	ADMIN_DELAYS,
	ADMIN_RESET,
	ADMIN_SERVED,
};

/* ---- stream: /v1/completions, a streamed model answer (stream.c) ---- */

/* Reads first_ms, gap_ms, tokens and format from the query over the
 * defaults in *p. Returns 0, or -EINVAL with a message in err. */
int stream_params_from_query(struct MHD_Connection *c, struct stream_params *p, char *err,
                             size_t errlen);
/* Queues the streamed answer: headers at once, then an SSE event per
 * token, the last with usage, then [DONE]; or with p->text one plain
 * chunk per token. Chunked either way. */
enum MHD_Result stream_serve(struct state *st, struct MHD_Connection *c,
                             const struct stream_params *p);

enum MHD_Result admin_handle(struct state *st, struct MHD_Connection *c, enum admin_route r);
