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

#define LG_READ_BUF     16384
#define LG_TLS_BUF      (LOADGEN_MAX_REQUEST + 16384)
#define LG_RECONNECT_NS (50 * UINT64_C(1000000)) /* after a failed connect */
#define LG_RING         8                        /* timeline seconds in flight */
#define LG_NS_PER_MS    UINT64_C(1000000)
#define LG_NS_PER_S     UINT64_C(1000000000)

struct lg_thread;

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
	int status;
	uint64_t t_intended, t_sent, t_connect; /* ns, uv_hrtime */
	uint64_t retry_at;                      /* CLOSED: not before this time */
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	char *tls_out;    /* LG_TLS_BUF bytes, TLS only */
	char rbuf[LG_READ_BUF];
};

/* Per-thread counters; the engine merges them after join. */
struct lg_stats {
	struct hist *lat, *lat_unc, *fail;
	uint64_t requests, errors, warmup;
	uint64_t errors_by[_LOADGEN_ERR_MAX];
	uint64_t lag_sum_ns, lag_max_ns, lag_n;
	uint64_t unsent;
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
	char *req;
	size_t req_len;
	bool head;
	SSL_CTX *ssl_ctx;
	uint64_t timeout_ns;

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
/* Sends the prebuilt request; t_intended (rate mode) set by caller. */
void lg_conn_send(struct lg_conn *c, uint64_t now);
/* Closes the handle (if any); err_class >= 0 records the in-flight request as failed. */
void lg_conn_close(struct lg_conn *c, int err_class);
/* A connection attempt (TCP or TLS handshake) failed for `why`: noted as
 * the run's connect_error, retried after LG_RECONNECT_NS, and closed with
 * a connect error. */
void lg_conn_failed(struct lg_conn *c, const char *why);
void lg_conn_deinit(struct lg_conn *c);
extern const http_parser_settings lg_parser_settings;

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
