/* loadgen_int: the engine's internal structures, shared by its files
 * (loadgen.c: public API and results; loadgen_thread.c: one thread's loop
 * and schedule; loadgen_conn.c: one connection; loadgen_tls.c: OpenSSL on
 * memory BIOs; loadgen_req.c: URL, request bytes, schedule math). Nothing
 * outside lib/loadgen/ includes it.
 */
#pragma once

#include <http_parser.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "lib/loadgen/loadgen.h"
#include "lib/loadgen/loadgen_sse.h"

#define LG_READ_BUF     16384
#define LG_TLS_BUF      (LOADGEN_MAX_REQUEST + 16384)
#define LG_RECONNECT_NS (50 * UINT64_C(1000000)) /* after a failed connect */
#define LG_RING         8                        /* timeline seconds in flight */
#define LG_NS_PER_MS    UINT64_C(1000000)
#define LG_NS_PER_S     UINT64_C(1000000000)

struct lg_thread;

/* One prebuilt request: its bytes and which distinct request it is. */
struct lg_req {
	char *buf;
	size_t len;
	uint32_t id; /* equal bytes, equal id: 0..n_distinct-1 */
	bool head;   /* HEAD: the answer has no body */
};

/* A streamed answer being read (stream mode only; loadgen_stream.c). */
struct lg_stream {
	uint64_t now;             /* ns: arrival of the read being parsed */
	uint64_t reads;           /* reads of this answer so far */
	uint64_t body_read;       /* the read that last brought body bytes */
	uint64_t t_first_byte;    /* ns: the answer's first bytes; 0: none yet */
	uint64_t t_first, t_last; /* ns: its first and latest event */
	uint32_t events;
	int64_t tokens; /* the count the events stated; -1: none */
	bool sse;       /* Content-Type: text/event-stream */
	bool in_value;  /* the parser is in a header value */
	uint8_t hmatch; /* bytes of "content-type" matched; 0xff: another header */
	uint8_t ctlen;
	char ct[40]; /* the Content-Type value's start */
	struct lg_sse sse_r;
};

enum lg_conn_state {
	LG_CLOSED = 0, /* no handle; may (re)connect */
	LG_CONNECTING, /* TCP connect or TLS handshake in progress */
	LG_IDLE,       /* connected, no request in flight */
	LG_BUSY,       /* a request in flight */
	LG_CLOSING,    /* uv_close() called, waiting for the callback */
};

struct lg_conn {
	struct lg_thread *t;
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	http_parser parser;
	enum lg_conn_state state;
	bool writing;  /* a uv_write is outstanding */
	bool got_byte; /* some response bytes arrived for this request */
	bool warm;     /* the request in flight is a warmup request */
	bool keep_alive;
	bool in_idle; /* on the thread's idle stack */
	bool tried;   /* has connected or failed once */
	bool head;    /* the request in flight is a HEAD */
	int status;
	const char *req; /* the request in flight: prebuilt bytes (lg->reqs) */
	size_t req_len;
	uint64_t t_intended, t_sent, t_connect; /* ns, uv_hrtime */
	uint64_t retry_at;                      /* CLOSED: not before this time */
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	char *tls_out;    /* LG_TLS_BUF bytes, TLS only */
	struct lg_stream s;
	char rbuf[LG_READ_BUF];
};

/* Per-thread counters; the engine merges them after join. */
struct lg_stats {
	struct hist *lat, *lat_unc, *fail;
	uint64_t requests, errors, warmup;
	uint64_t errors_by[_LOADGEN_ERR_MAX];
	uint64_t lag_sum_ns, lag_max_ns, lag_n;
	uint64_t unsent;
	/* stream mode (loadgen_stream.c) */
	struct hist *ttfb, *ttft, *ttft_unc, *itl;
	uint64_t streamed, events, tokens, decode_tokens, decode_ns;
};

struct lg_slot {
	int64_t sec; /* -1: free */
	int contributors;
	uint64_t requests, errors;
	struct hist *h;
};

struct loadgen {
	struct loadgen_config cfg; /* pointers below are owned copies */
	struct loadgen_url url;
	struct sockaddr_storage addr;
	struct lg_req *reqs; /* n_reqs prebuilt requests */
	size_t n_reqs, n_distinct;
	double *cum; /* weighted-random: cumulative weights; NULL otherwise */
	char *token_key;
	const http_parser_settings *settings; /* lg_parser_settings or the stream ones */
	SSL_CTX *ssl_ctx;
	uint64_t timeout_ns;
	int nice; /* the threads' nice value, from loadgen_set_nice() */

	uv_loop_t *main_loop;
	uv_async_t done_async;
	loadgen_done_cb done;
	void *userdata;
	bool started, async_open, finished;

	struct lg_thread *threads;
	int n_threads;
	uint64_t t0;               /* ns: start of the run (warmup begins) */
	uint64_t t_measure;        /* ns: t0 + warmup */
	uint64_t t_end;            /* ns: end of the measured window; UINT64_MAX by requests */
	uint64_t t_hard_end;       /* ns: nothing is waited for past this */
	pthread_mutex_t stop_lock; /* threads' stop_async against loadgen_cancel() */
	atomic_int threads_done;
	/* The clock starts when every thread has tried all its connections, so
	 * connecting is never counted as request latency: the last thread to
	 * be ready sets t0.. and then `go` (release); threads read it on
	 * their tick (acquire). */
	atomic_int ready;
	atomic_bool go;
	atomic_bool cancelled;
	atomic_bool early;            /* loadgen_end_early(): threads drain on their next tick */
	atomic_uint_fast64_t tickets; /* requests mode: measured requests handed out */

	pthread_mutex_t tl_lock;
	struct hist *window; /* loadgen_window()'s scratch; main thread only */
	struct lg_slot ring[LG_RING];
	struct loadgen_second *timeline;
	size_t n_seconds;

	struct loadgen_result result;
};

struct lg_thread {
	struct loadgen *lg;
	int idx;
	pthread_t tid;
	bool joinable;
	uv_loop_t loop;
	uv_async_t stop_async;
	uv_timer_t tick;
	/* rate mode: a timerfd armed at the next request's exact due time
	 * (libuv's timers have 1 ms granularity, which would add up to 1 ms of
	 * schedule lag to every corrected latency). */
	int tfd;
	uv_poll_t tpoll;
	uint64_t armed_ns; /* 0: not armed */
	int close_pending; /* handles open or being closed */
	bool stopping, draining;
	bool async_open; /* stop_async may be sent to; under lg->stop_lock */
	bool counted_ready, started;
	int n_tried; /* connections that connected or failed once */
	int loop_close_rc;

	struct lg_conn *conns;
	int n_conns;
	int inflight;
	struct lg_conn **idle; /* rate mode: free connections */
	int n_idle;
	uint64_t last_done; /* ns: the latest measured answer */

	/* rate mode schedule: this thread's k-th request */
	uint64_t k, k_total; /* k_total: UINT64_MAX when by duration */
	uint64_t n_sent;     /* closed mode: requests sent, for the corpus pick */
	uint8_t *seen;       /* n_distinct flags: that request was sent */

	int64_t sec_cur; /* timeline second being filled, -1 before measuring */
	uint64_t sec_requests, sec_errors;
	struct hist *sec_hist;

	struct lg_stats st;
	char connect_error[LOADGEN_ERRLEN];         /* the last failed attempt's reason */
	_Alignas(64) atomic_uint_fast64_t progress; /* measured requests, relaxed */
	char pad[64];
};

/* loadgen.c: merges one thread's second into the timeline (any engine thread). */
void lg_timeline_add(struct loadgen *lg, int64_t sec, uint64_t requests, uint64_t errors,
                     const struct hist *h);

/* loadgen.c: starts the clock (t0 = now + LG_GO_DELAY_NS) and sets go. */
#define LG_GO_DELAY_NS (20 * LG_NS_PER_MS) /* two ticks: every thread sees go in time */
void lg_start_clock(struct loadgen *lg, uint64_t now);

/* loadgen_thread.c */
void *lg_thread_main(void *arg);
/* Called by a connection when it is free again (idle) or closed. */
void lg_thread_conn_free(struct lg_thread *t, struct lg_conn *c);
/* Records one finished request (ok or error class) at time now. */
void lg_thread_record(struct lg_thread *t, struct lg_conn *c, uint64_t now, int err_class);
/* Called when a closed handle's callback ran. */
void lg_thread_handle_closed(struct lg_thread *t);

/* loadgen_conn.c */
void lg_conn_init(struct lg_conn *c, struct lg_thread *t);
int lg_conn_connect(struct lg_conn *c);
/* Sends request idx of the run (a corpus pick); t_intended (rate mode)
 * set by caller. */
void lg_conn_send(struct lg_conn *c, uint64_t now, uint64_t idx);
/* Closes the handle (if any); err_class >= 0 records the in-flight request as failed. */
void lg_conn_close(struct lg_conn *c, int err_class);
/* A connection attempt (TCP or TLS handshake) failed for `why`: noted as
 * the run's connect_error, retried after LG_RECONNECT_NS, and closed with
 * a connect error. */
void lg_conn_failed(struct lg_conn *c, const char *why);
void lg_conn_deinit(struct lg_conn *c);
extern const http_parser_settings lg_parser_settings;
int lg_on_headers_complete(http_parser *hp);
int lg_on_message_complete(http_parser *hp);

/* loadgen_stream.c: stream mode. */
extern const http_parser_settings lg_stream_parser_settings;
/* A new request goes out on c. */
void lg_stream_reset(struct lg_conn *c);
/* A read of the answer arrived at now (before it is parsed). */
void lg_stream_read(struct lg_conn *c, uint64_t now);
/* A measured answer completed successfully: its figures into st. */
void lg_stream_record(struct lg_stats *st, const struct lg_conn *c, bool rate);
int lg_stream_stats_new(struct lg_stats *st, bool rate);
void lg_stream_stats_free(struct lg_stats *st);
/* loadgen_tls.c */
int lg_tls_ctx_new(bool insecure, const char *ca_file, const char *ca_pem, size_t ca_pem_len,
                   SSL_CTX **ret_ctx, char *err, size_t errlen);
int lg_tls_conn_start(struct lg_conn *c);
/* Feeds ciphertext; decrypted bytes go to the parser. Returns 0 or an error class. */
int lg_tls_feed(struct lg_conn *c, const char *buf, size_t len);
/* Encrypts and writes the request. Returns 0 or -errno. */
int lg_tls_send(struct lg_conn *c, const char *buf, size_t len);
void lg_tls_conn_free(struct lg_conn *c);

/* loadgen_conn.c: writes raw bytes (TLS output or the request). */
int lg_conn_write_raw(struct lg_conn *c, const char *buf, size_t len);
/* loadgen_conn.c: handles decrypted or plain response bytes. */
int lg_conn_parse(struct lg_conn *c, const char *buf, size_t len);
void lg_conn_ready(struct lg_conn *c);
