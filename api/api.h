/* api: readyd's HTTP API: libmicrohttpd driven from the main libuv loop
 * (no MHD thread), a router with one file per resource, problem+json
 * errors. The only code that knows HTTP (docs/style.md); handlers call into
 * lib/ (store, sched, report) and turn results into responses.
 *
 * Main loop thread only.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "lib/sched/sched.h"
#include "lib/store/store.h"

#define API_DEFAULT_MAX_BODY       (1024 * 1024)
#define API_MAX_WAIT_MS            (120 * 1000) /* cap of ?wait= long-polls */
#define API_DEFAULT_PER_IP         64           /* connections from one client address */
#define API_DEFAULT_IDLE_TIMEOUT_S 10           /* a connection with no request in flight */

struct api_server;
struct api_req;

struct auth;
struct policy;
struct policy_limits;

/* What handlers may use. Borrowed for the server's life. */
struct api_app {
	struct store *store;
	struct sched *sched;
	/* Operations (docs/security.md), owned by daemon/ and swapped on SIGHUP: auth
	 * NULL or without tokens lets everyone in; policy NULL allows every
	 * target; limits NULL: no operator caps. draining: SIGTERM came. */
	struct auth *auth;
	struct policy *policy;
	const struct policy_limits *limits;
	bool draining;
	/* daemon/: why the database file cannot be trusted any more (deleted,
	 * renamed away or replaced under readyd), or NULL. */
	const char *db_problem;
	/* Notifications delivered to POST /v1/alertmanager/webhook
	 * (lib/prom/aminbox.h); NULL: the route answers 503. */
	struct aminbox *inbox;
};

struct api_config {
	const char *listen;          /* "HOST:PORT" ("[::1]:0" for IPv6); port 0 = ephemeral */
	int listen_fd;               /* >= 0: an inherited listening socket instead */
	size_t max_body;             /* request body cap; 0: API_DEFAULT_MAX_BODY */
	unsigned max_connections;    /* 0: 1024 */
	size_t connection_memory;    /* per-connection memory; 0: MHD's default */
	size_t cache_memory;         /* kept answers (respcache.c); 0: API_CACHE_DEFAULT_BYTES */
	unsigned per_ip_connections; /* connections per client address; 0: API_DEFAULT_PER_IP */
	unsigned idle_timeout_s;     /* close a connection idle this long; 0: the default */
	const char *tls_cert_pem;    /* both set: serve HTTPS (PEM text, borrowed) */
	const char *tls_key_pem;
};

/* Starts listening. On failure returns -errno and writes a sentence to err. */
int api_server_new(uv_loop_t *loop, const struct api_config *cfg, struct api_app *app,
                   struct api_server **ret_srv, char *err, size_t errlen);

/* The bound address, for the "listening on" line and --port-file. */
int api_server_port(struct api_server *srv);
const char *api_server_host(struct api_server *srv);

/* Stops the server: suspended requests are answered 503, the listening
 * socket and all connections are closed, handles are closed (memory freed
 * from their close callbacks: run the loop once more). NULL is fine. */
void api_server_free(struct api_server *srv);

/* --- for handlers (api/routes_*.c) --- */

typedef void (*api_handler)(struct api_req *req);

/* Who may call a route, once tokens are configured (docs/security.md):
 * viewer < submitter < admin; API_ROLE_ANYONE needs no token. notifier
 * stands apart: it may only deliver Alertmanager notifications (routes
 * that need it), which admin may too and nobody else. */
enum api_role {
	API_ROLE_ANYONE = 0,
	API_ROLE_NOTIFIER,
	API_ROLE_VIEWER,
	API_ROLE_SUBMITTER,
	API_ROLE_ADMIN,
};

/* Route table entry: pattern segments "{id}" capture a positive integer;
 * "{name}" captures a non-empty segment of [A-Za-z0-9._-] (api_req_name). */
struct api_route {
	const char *method; /* "GET" also serves HEAD */
	const char *pattern;
	api_handler handler;
	enum api_role role;
	/* The token may come as ?token= when there is no Authorization
	 * header: for callers that cannot set headers (Flagger's webhooks;
	 * docs/security.md). readyd never logs query strings. */
	bool query_token;
	/* What it does is a write into the store that would be lost while
	 * the database file is gone or replaced: refused with 503 then
	 * (server.c). Reads, submits (which answer for themselves), cancels
	 * (stopping a run must always work) and in-memory work (the
	 * Alertmanager receiver, console sessions) go ahead. */
	bool store_change;
};

/* Why the store cannot take new runs now, for /readyz and submits: 0, or
 * -ESTALE (the database file is gone or replaced; app->db_problem) or the
 * scheduler's pending-write error (-ENOSPC for a full disk), with a
 * sentence starting "store: " in buf. routes_health.c. */
int api_store_problem(struct api_app *app, char *buf, size_t len);

/* --- shared by the resource files that start runs --- */

/* Content-Type -> spec format (YAML or JSON media types): 0 or -EINVAL. */
int api_spec_format(const char *content_type, enum spec_format *ret);

/* Whether k may be an Idempotency-Key: 1-128 printable ASCII characters
 * without spaces (API_KEY_MAX). */
#define API_KEY_MAX 128
bool api_idempotency_key_ok(const char *k);

/* A client-sent Idempotency-Key, if any: answers 400 (malformed) or 422
 * (a prefix the Flagger and Argo hooks key their runs with, so nobody
 * can create the run a hook will later find) and returns -EINVAL, or
 * returns 0 having answered nothing. */
int api_idempotency_key_check(struct api_req *req, const char *key);

/* Answers a spec_parse() failure: 400 (does not parse), 413, or 422 with
 * errors [{path, message, line?}]. */
void api_problem_spec(struct api_req *req, int r, const struct spec_error *err);

/* Called once the run of api_submit_spec() is stored and queued (or an
 * earlier run of the same Idempotency-Key was found: existing), on the
 * loop; it must answer req (now, or after suspending it). */
typedef void (*api_submitted_cb)(struct api_req *req, void *userdata, int64_t run_id,
                                 bool existing);

/* Queues spec (stolen) as a run by the caller's token, after the
 * operator's limits and the allowlist check of its targets (off the
 * loop, the request suspended meanwhile), with the Idempotency-Key key
 * (NULL: none; borrowed, copied). Every refusal is answered here as
 * POST /v1/runs answers it; on success cb runs, or with cb NULL the run
 * resource is the answer (201, 200 for a retry). routes_runs.c. */
void api_submit_spec(struct api_req *req, struct spec *spec, const char *key, api_submitted_cb cb,
                     void *userdata);

/* What a run from a stored spec needs; all borrowed. */
struct api_stored_run {
	const char *service;
	const char *environment;
	const char *version;    /* the run's version (replaces the spec's) */
	const char *target_url; /* NULL: the stored target */
	const char *key;        /* Idempotency-Key, NULL: none */
};

/* Starts a run of the latest stored spec of sr's service and environment
 * (routes_specs.c) through api_submit_spec(): 404 when there is none,
 * 422 when it no longer validates with sr's values (the path of the
 * field), else as api_submit_spec with cb and userdata. */
void api_run_stored(struct api_req *req, const struct api_stored_run *sr, api_submitted_cb cb,
                    void *userdata);

/* Judges ended run (borrowed, as store_run_get reads it) again with gates
 * (borrowed: a list as a spec's gates:) from its stored measurements with
 * today's baselines and waivers, stores the decision as the caller's and
 * records it in the audit trail (POST /v1/runs/{id}/rejudge, the console).
 * 0 and the rejudgement (new reference: {run_id, seq, created_at, verdict,
 * original_verdict, gates, checklist, recomputed_from_histograms});
 * -EINVAL with the bad gate's path and message in err; -EINPROGRESS or
 * -EALREADY while the store holds the run (store_errmsg says why); any
 * other -errno with what failed in err->message. routes_gates.c. */
struct spec_error;
int api_rejudge(struct api_req *req, json_t *run, json_t *gates, json_t **ret,
                struct spec_error *err);

/* The trends a run's HTML report draws (report_html()): one series per
 * gated metric, same service and environment, up to the run. New
 * reference. routes_runs.c. */
json_t *api_report_trends(struct store *st, json_t *run);

/* GET /v1/runs/{id}/events on req (its {id}), for routes that decided
 * access themselves (the console). routes_events.c. */
void api_events_serve(struct api_req *req);

/* Acts as token name with scope from here on (api_req_principal,
 * api_req_sees, api_audit): for the console, whose session stands for a
 * token. Both borrowed, copied; scope "" for every service. */
void api_req_set_who(struct api_req *req, const char *name, const char *scope);

extern const struct api_route api_routes_console[]; /* console.c */
extern const struct api_route api_routes_health[];
extern const struct api_route api_routes_runs[];
extern const struct api_route api_routes_services[];     /* routes_services.c */
extern const struct api_route api_routes_gates[];        /* routes_gates.c */
extern const struct api_route api_routes_events[];       /* routes_events.c */
extern const struct api_route api_routes_metrics[];      /* routes_metrics.c */
extern const struct api_route api_routes_specs[];        /* routes_specs.c */
extern const struct api_route api_routes_hooks[];        /* routes_hooks.c */
extern const struct api_route api_routes_alertmanager[]; /* routes_alertmanager.c */

struct api_app *api_req_app(struct api_req *req);
uv_loop_t *api_req_loop(struct api_req *req);
const char *api_req_method(struct api_req *req);
const char *api_req_path(struct api_req *req);
int64_t api_req_id(struct api_req *req);            /* the {id} of the route */
const char *api_req_name(struct api_req *req);      /* the {name} of the route, or "" */
const char *api_req_env(struct api_req *req);       /* the {env} of the route, or "" */
enum api_role api_req_role(struct api_req *req);    /* the route's role */
const char *api_req_principal(struct api_req *req); /* token name, or NULL */
/* The token's service patterns (lib/policy/scope.h), NULL for every service;
 * api_req_sees: whether the caller may see and change service. */
const char *api_req_scope(struct api_req *req);
bool api_req_sees(struct api_req *req, const char *service);

/* items (stolen: an array of objects with a "service") without those
 * the caller may not see. New reference (NULL on ENOMEM). */
json_t *api_scope_items(struct api_req *req, json_t *items);

/* Records a change made by the caller's token in the audit trail (lib
 * store_audit): action as store_audit_new; service NULL: the run's.
 * A failure is logged, never answered. */
void api_audit(struct api_req *req, const char *action, const char *service, int64_t run_id,
               int64_t waiver_id, const char *reason);
const char *api_req_query(struct api_req *req, const char *key);   /* or NULL */
const char *api_req_header(struct api_req *req, const char *name); /* or NULL */
const char *api_req_body(struct api_req *req, size_t *ret_len);

/* Responses: exactly one per request, now or after api_req_suspend().
 * json is stolen. */
void api_reply_json(struct api_req *req, unsigned status, json_t *json);
void api_reply_text(struct api_req *req, unsigned status, const char *content_type,
                    const char *body, size_t len);
void api_reply_header(struct api_req *req, const char *name, const char *value);

/* problem+json (RFC 9457): title from the status; detail says what to
 * fix; extra (stolen, may be NULL) is merged into the object (e.g.
 * "errors": [{path, message}]). */
void api_problem(struct api_req *req, unsigned status, json_t *extra, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Maps a -errno from lib/ onto a problem (404 for -ENOENT, 503 for
 * -EAGAIN/-EBUSY, 507 for -ENOSPC, else 500) with what as context. */
void api_problem_errno(struct api_req *req, int err, const char *what);

/* The problem+json object of status (RFC 9457: type, title, status,
 * detail, instance) with extra's members merged in. extra is stolen (may
 * be NULL). Returns a new reference, NULL on ENOMEM. */
json_t *api_problem_body(unsigned status, const char *detail, const char *instance, json_t *extra);

/* What a -errno from lib/ means over HTTP: the status, the words after
 * "what: " in the detail, and Retry-After seconds (NULL for none). */
struct api_errno_status {
	int err;
	unsigned status;
	const char *reason;
	const char *retry_after;
};
struct api_errno_status api_errno_status(int err);

/* Polled answers (respcache.c): their serialised bytes are kept per key
 * (the handler's canonical form of the query; the caller's scope is
 * added here) while the store's generation stays the same, and served
 * with a strong ETag, Cache-Control: no-cache and 304 for a matching
 * If-None-Match. */
#define API_KEY_BUF 1024
/* The store's generation now: read it before reading what is kept. */
uint64_t api_req_generation(struct api_req *req);
/* {entries, bytes, max_bytes, hits, misses} of the kept answers, for
 * /metrics; NULL without a cache. */
json_t *api_req_cache_stats(struct api_req *req);
/* Answers from the bytes kept under key, if current; false otherwise. */
bool api_reply_kept(struct api_req *req, const char *key);
/* Answers 200 with json (stolen) and keeps its bytes under key as read
 * at generation. */
void api_reply_json_kept(struct api_req *req, const char *key, uint64_t generation, json_t *json);
/* The same in two steps: api_body_of_json serialises json (stolen) as
 * api_reply_json would (any thread; NULL on ENOMEM), api_reply_body_kept
 * answers with the body (its reference taken; NULL answers 500). */
struct api_body;
struct api_body *api_body_of_json(json_t *json);
void api_reply_body_kept(struct api_req *req, const char *key, uint64_t generation,
                         struct api_body *b);
/* The bytes kept under key (as api_reply_kept finds them) without
 * answering: a new reference (api_body_unref), NULL when none is current;
 * and keeping b (its reference not taken; NULL is ignored) under key at
 * generation, for answers the caller composes (the console). */
struct api_body *api_kept_get(struct api_req *req, const char *key);
void api_kept_put(struct api_req *req, const char *key, uint64_t generation, struct api_body *b);

/* A read that may be slow, off the loop (api/offload.c): fn runs on a
 * libuv worker thread with that thread's read-only store connection
 * (store_reader_open), arg its own; it returns 0 and a JSON answer, or
 * -errno and a sentence in err. The request is parked meanwhile; the
 * answer is kept under key (api_reply_json_kept) at the generation of
 * the call. -EINVAL answers 400 with err, other errors as
 * api_problem_errno(what). free_arg runs on the loop once done, also when
 * the client went away (its answer is then dropped). */
typedef int (*api_read_fn)(struct store *reader, void *arg, json_t **ret, char *err, size_t errlen);
void api_read_off_loop(struct api_req *req, const char *key, const char *what, api_read_fn fn,
                       void *arg, void (*free_arg)(void *arg));
/* The same for a read that writes its answer's JSON text into out
 * (json_text.h) instead of building a tree; a failed write of out (a
 * string that is not UTF-8, ENOMEM) answers as api_problem_errno. */
struct rd_jtext;
typedef int (*api_read_text_fn)(struct store *reader, void *arg, struct rd_jtext *out, char *err,
                                size_t errlen);
void api_read_text_off_loop(struct api_req *req, const char *key, const char *what,
                            api_read_text_fn fn, void *arg, void (*free_arg)(void *arg));

/* The same for answers that are not JSON (reports): fn makes the body
 * itself (api_body_new, any thread; content_type set) and returns 0, or
 * -errno and a sentence in err. With done NULL it is answered as
 * api_read_off_loop's (kept under key). Else done answers on the loop
 * instead, with the generation of the call, r and err as fn left them
 * and the body (its reference passed to done; NULL after an error);
 * done is not called when the client went away (the body is freed). */
typedef int (*api_body_fn)(struct store *reader, void *arg, struct api_body **ret, char *err,
                           size_t errlen);
typedef void (*api_body_done_fn)(struct api_req *req, void *arg, uint64_t generation, int r,
                                 const char *err, struct api_body *b);
void api_body_off_loop(struct api_req *req, const char *key, const char *what, api_body_fn fn,
                       api_body_done_fn done, void *arg, void (*free_arg)(void *arg));

/* Parks the request until a later api_reply_*; the handler returns. A
 * cleanup callback runs when the request ends in any way (replied, or the
 * server stops), to release timers and watches. */
typedef void (*api_cleanup_cb)(struct api_req *req, void *userdata);
void api_req_suspend(struct api_req *req, api_cleanup_cb cleanup, void *userdata);

/* A streaming response (Server-Sent Events): answers req 200 with
 * content_type and a body written piece by piece; the handler returns
 * and writes later from the loop. Call from the handler, instead of an
 * api_reply_*. NULL on ENOMEM or if req was already answered (answer it
 * with a problem then). cleanup runs once when the request ends in any
 * way (api_stream_end drained, client gone, server stopping); after it,
 * the stream must not be used. While nothing is buffered the connection
 * is suspended (no polling); a client that went away is noticed at the
 * next write, so streams should write a heartbeat now and then. */
#define API_STREAM_MAX_BUFFER (1024 * 1024) /* unsent bytes; beyond: -ENOBUFS */
struct api_stream;
struct api_stream *api_stream_start(struct api_req *req, const char *content_type,
                                    api_cleanup_cb cleanup, void *userdata);
/* Queues len bytes. -EPIPE after the request ended or the stream was
 * ended, -ENOBUFS when the client reads too slowly, -ENOMEM. */
int api_stream_write(struct api_stream *s, const char *data, size_t len);
/* Ends the body once the queued bytes are sent. */
void api_stream_end(struct api_stream *s);

/* --- router (api/router.c) --- */

#define API_NAME_MAX 128

struct api_match {
	const struct api_route *route;
	int64_t id;
	char name[API_NAME_MAX + 1];
	char env[API_NAME_MAX + 1]; /* "{env}": an environment, same characters */
};

/* Finds the route for method and path. Returns 0 and the match, -ENOENT
 * if no route matches the path, -EPERM if the path matches but not the
 * method (allow lists the methods). Each resource file's table must be
 * listed in router.c's tables[]. */
int api_route(const char *method, const char *path, struct api_match *ret, char *allow,
              size_t allowlen);

/* Every route of every table, in order, for `readyd --list-routes` and
 * the auth matrix test. Calls cb once per route. */
void api_routes_foreach(void (*cb)(const struct api_route *route, void *userdata), void *userdata);
