/* loadgen_thread: one engine thread: its private uv_loop_t, its share of
 * the connections, the closed-mode "next request when the answer is in"
 * rule, the rate-mode schedule, timeouts, reconnects, the per-second
 * timeline and the end of the run (drain, then close every handle so
 * uv_loop_close() succeeds).
 *
 * Only this thread touches its state; the main thread reads `progress`
 * (an atomic) and stops it through stop_async under lg->stop_lock. One
 * tick timer (10 ms) does the
 * housekeeping so that no request arms a timer of its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "lib/loadgen/loadgen_int.h"

#define LG_TICK_MS 10

static void check_drained(struct lg_thread *t);

static void record_lag(struct lg_thread *t, uint64_t lag)
{
	t->st.lag_sum_ns += lag;
	t->st.lag_n++;
	if (lag > t->st.lag_max_ns)
		t->st.lag_max_ns = lag;
}

/* Hands the second being filled to the engine's timeline. */
static void flush_second(struct lg_thread *t)
{
	if (t->sec_cur < 0)
		return;
	lg_timeline_add(t->lg, t->sec_cur, t->sec_requests, t->sec_errors, t->sec_hist);
	hist_reset(t->sec_hist);
	t->sec_requests = t->sec_errors = 0;
	t->sec_cur = -1;
}

static void timeline_count(struct lg_thread *t, uint64_t now, int64_t us, bool error)
{
	int64_t sec = (int64_t)((now - t->lg->t_measure) / LG_NS_PER_S);

	if (sec != t->sec_cur) {
		flush_second(t);
		t->sec_cur = sec;
	}
	t->sec_requests++;
	if (error)
		t->sec_errors++;
	else
		(void)hist_record(t->sec_hist, us);
}

static void count_error(struct lg_thread *t, int err_class)
{
	t->st.errors++;
	t->st.errors_by[err_class]++;
}

void lg_thread_record(struct lg_thread *t, struct lg_conn *c, uint64_t now, int err_class)
{
	const struct loadgen *lg = t->lg;
	bool rate = lg->cfg.mode == LOAD_MODE_RATE;
	int64_t us;

	if (c->state != LG_BUSY) {
		/* A connect failure: no request was sent, but one could not be. */
		if (!t->started || now < lg->t_measure || now >= lg->t_end || err_class < 0)
			return; /* outside the window (t_measure is only read after go) */
		/* By `requests` it takes the place of one: a target that never
		 * accepts a connection must still end the run. */
		if (lg->cfg.requests > 0 &&
		    atomic_fetch_add_explicit(&t->lg->tickets, 1, memory_order_relaxed) >=
		            (uint64_t)lg->cfg.requests) {
			t->draining = true;
			return;
		}
		t->st.requests++;
		count_error(t, err_class);
		timeline_count(t, now, 0, true);
		atomic_store_explicit(&t->progress, t->st.requests, memory_order_relaxed);
		return;
	}
	t->inflight--;
	if (c->warm) {
		t->st.warmup++;
		return;
	}
	us = (int64_t)((now - (rate ? c->t_intended : c->t_sent) + 500) / 1000);
	t->st.requests++;
	if (err_class >= 0) {
		count_error(t, err_class);
		(void)hist_record(t->st.fail, us);
	} else {
		(void)hist_record(t->st.lat, us);
		if (rate)
			(void)hist_record(t->st.lat_unc, (int64_t)((now - c->t_sent + 500) / 1000));
		if (lg->cfg.stream)
			lg_stream_record(&t->st, c, rate);
	}
	if (now > t->last_done)
		t->last_done = now;
	timeline_count(t, now, us, err_class >= 0);
	atomic_store_explicit(&t->progress, t->st.requests, memory_order_relaxed);
}

/* Closed mode: the connection sends its next request, or the run is over. */
static void issue_closed(struct lg_thread *t, struct lg_conn *c, uint64_t now)
{
	struct loadgen *lg = t->lg;
	bool warm = now < lg->t_measure;

	if (!t->draining && now >= lg->t_end)
		t->draining = true;
	if (!t->draining && !warm && lg->cfg.requests > 0 &&
	    atomic_fetch_add_explicit(&lg->tickets, 1, memory_order_relaxed) >=
	            (uint64_t)lg->cfg.requests)
		t->draining = true;
	if (t->draining) {
		lg_conn_close(c, -1);
		return;
	}
	c->warm = warm;
	c->t_intended = now;
	lg_conn_send(c, now, loadgen_thread_index(t->n_sent++, t->idx, lg->n_threads));
}

static struct lg_conn *pop_idle(struct lg_thread *t)
{
	while (t->n_idle > 0) {
		struct lg_conn *c = t->idle[--t->n_idle];

		c->in_idle = false;
		if (c->state == LG_IDLE)
			return c;
	}
	return NULL;
}

static void push_idle(struct lg_thread *t, struct lg_conn *c)
{
	if (!c->in_idle) {
		c->in_idle = true;
		t->idle[t->n_idle++] = c;
	}
}

/* Wakes the thread at due (ns on uv_hrtime()'s clock, CLOCK_MONOTONIC). */
static void arm(struct lg_thread *t, uint64_t due)
{
	struct itimerspec its = {
	        .it_value = {.tv_sec = (time_t)(due / LG_NS_PER_S),
	                     .tv_nsec = (long)(due % LG_NS_PER_S)},
	};

	if (t->tfd < 0 || t->armed_ns == due)
		return;
	if (timerfd_settime(t->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		t->armed_ns = due;
}

/* Rate mode: sends every request that is due, as long as a connection is
 * free; the rest wait, and their wait counts (latency is from t_intended). */
static void send_due(struct lg_thread *t, uint64_t now)
{
	struct loadgen *lg = t->lg;

	while (t->k < t->k_total && !t->draining) {
		uint64_t idx = loadgen_thread_index(t->k, t->idx, lg->n_threads);
		uint64_t due = lg->t0 + loadgen_intended_ns(idx, lg->cfg.rate);
		struct lg_conn *c;

		if (due > now) {
			arm(t, due);
			return;
		}
		c = pop_idle(t);
		if (!c)
			return;
		c->t_intended = due;
		c->warm = due < lg->t_measure;
		if (!c->warm)
			record_lag(t, now - due);
		t->k++;
		lg_conn_send(c, now, idx);
	}
	if (t->k >= t->k_total)
		t->draining = true;
}

static void maybe_connect(struct lg_thread *t, struct lg_conn *c, uint64_t now)
{
	if (t->stopping || t->draining || now < c->retry_at)
		return;
	if (lg_conn_connect(c) < 0)
		c->retry_at = now + LG_RECONNECT_NS;
}

/* Counts this thread ready once each of its connections has connected or
 * failed once; the last thread to be ready starts the clock. */
static void note_tried(struct lg_thread *t, struct lg_conn *c, uint64_t now)
{
	struct loadgen *lg = t->lg;

	if (!c->tried && c->state != LG_CONNECTING) {
		c->tried = true;
		t->n_tried++;
	}
	if (t->counted_ready || t->n_tried < t->n_conns)
		return;
	t->counted_ready = true;
	if (atomic_fetch_add(&lg->ready, 1) + 1 == lg->n_threads)
		lg_start_clock(lg, now);
}

/* Closed mode: the idle connections start at t0 exactly (the timerfd
 * wakes the thread then), so nothing is sent before the window opens. */
static void kick_closed(struct lg_thread *t, uint64_t now)
{
	struct lg_conn *c;

	if (now < t->lg->t0) {
		arm(t, t->lg->t0);
		return;
	}
	while ((c = pop_idle(t)))
		issue_closed(t, c, now);
}

/* Once the clock runs: every idle connection gets to work. */
static void maybe_begin(struct lg_thread *t, uint64_t now)
{
	if (t->started || !atomic_load_explicit(&t->lg->go, memory_order_acquire))
		return;
	t->started = true;
	if (t->lg->cfg.mode == LOAD_MODE_RATE)
		send_due(t, now);
	else
		kick_closed(t, now);
}

void lg_thread_conn_free(struct lg_thread *t, struct lg_conn *c)
{
	uint64_t now = uv_hrtime();

	if (!t->started) {
		note_tried(t, c, now);
		if (c->state == LG_IDLE)
			push_idle(t, c);
		else if (c->state == LG_CLOSED)
			maybe_connect(t, c, now);
		maybe_begin(t, now);
		return;
	}
	if (c->state == LG_CLOSED) {
		maybe_connect(t, c, now);
	} else if (c->state == LG_IDLE && (t->stopping || t->draining)) {
		lg_conn_close(c, -1);
	} else if (c->state == LG_IDLE && t->lg->cfg.mode == LOAD_MODE_CLOSED) {
		if (now < t->lg->t0)
			push_idle(t, c); /* kick_closed() sends at t0 */
		else
			issue_closed(t, c, now);
	} else if (c->state == LG_IDLE) {
		push_idle(t, c);
		send_due(t, now);
	}
	check_drained(t);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct lg_thread *t = h->data;

	lg_thread_handle_closed(t);
}

static void on_tpoll_closed(uv_handle_t *h)
{
	struct lg_thread *t = h->data;

	close(t->tfd);
	t->tfd = -1;
	lg_thread_handle_closed(t);
}

static void on_tfd(uv_poll_t *h, int status, int events)
{
	struct lg_thread *t = h->data;
	uint64_t expirations;

	if (read(t->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		return;
	t->armed_ns = 0;
	if (t->stopping || !t->started)
		return;
	if (t->lg->cfg.mode == LOAD_MODE_RATE)
		send_due(t, uv_hrtime());
	else
		kick_closed(t, uv_hrtime());
}

void lg_thread_handle_closed(struct lg_thread *t)
{
	t->close_pending--;
}

/* Ends the thread's part: every handle closed, uv_run() then returns. */
static void begin_stop(struct lg_thread *t)
{
	struct loadgen *lg = t->lg;

	if (t->stopping)
		return;
	t->stopping = true;
	/* Ended early on purpose: the rest of the schedule was not missed. */
	if (lg->cfg.mode == LOAD_MODE_RATE && t->started && t->k < t->k_total &&
	    !atomic_load(&lg->early))
		t->st.unsent += t->k_total - t->k;
	flush_second(t);
	uv_close((uv_handle_t *)&t->tick, on_handle_closed);
	if (t->tfd >= 0)
		uv_close((uv_handle_t *)&t->tpoll, on_tpoll_closed);
	pthread_mutex_lock(&lg->stop_lock);
	t->async_open = false;
	uv_close((uv_handle_t *)&t->stop_async, on_handle_closed);
	pthread_mutex_unlock(&lg->stop_lock);
	for (int i = 0; i < t->n_conns; i++) {
		struct lg_conn *c = &t->conns[i];

		if (c->state == LG_BUSY)
			t->st.unsent++; /* abandoned: neither answered nor timed out */
		if (c->state == LG_BUSY)
			t->inflight--;
		lg_conn_close(c, -1);
	}
}

static void check_drained(struct lg_thread *t)
{
	if (t->draining && !t->stopping && t->inflight == 0)
		begin_stop(t);
}

static void sweep(struct lg_thread *t, uint64_t now)
{
	uint64_t to = t->lg->timeout_ns;

	for (int i = 0; i < t->n_conns && !t->stopping; i++) {
		struct lg_conn *c = &t->conns[i];

		if (c->state == LG_BUSY && now - c->t_sent >= to) {
			lg_conn_close(c, LOADGEN_ERR_TIMEOUT);
		} else if (c->state == LG_CONNECTING && now - c->t_connect >= to) {
			snprintf(t->connect_error, sizeof(t->connect_error),
			         "no connection (or TLS handshake) within the timeout");
			c->retry_at = now;
			lg_conn_close(c, LOADGEN_ERR_CONNECT);
		} else if (c->state == LG_CLOSED) {
			maybe_connect(t, c, now);
		} else if (c->state == LG_IDLE && t->draining) {
			lg_conn_close(c, -1);
		}
	}
}

static bool any_conn_open(const struct lg_thread *t)
{
	for (int i = 0; i < t->n_conns; i++)
		if (t->conns[i].state != LG_CLOSED && t->conns[i].state != LG_CLOSING)
			return true;
	return false;
}

static void lg_thread_on_tick(uv_timer_t *h)
{
	struct lg_thread *t = h->data;
	struct loadgen *lg = t->lg;
	uint64_t now = uv_hrtime();

	if (!t->draining && atomic_load_explicit(&lg->early, memory_order_relaxed))
		t->draining = true; /* loadgen_end_early() */
	if (!t->started) {
		maybe_begin(t, now);
		sweep(t, now);
		if (!t->started)
			return;
	}
	if (lg->cfg.mode == LOAD_MODE_RATE) {
		/* Requests due before the end are still sent when late (their
		 * lateness counts); the schedule itself ends the run, unless
		 * past the end no connection is left to send on (a target that
		 * refuses them all) or a whole timeout has passed: the rest
		 * is unsent. */
		send_due(t, now);
		if (now >= lg->t_end && (now >= lg->t_hard_end || !any_conn_open(t)))
			t->draining = true;
	} else {
		if (t->n_idle > 0)
			kick_closed(t, now);
		if (now >= lg->t_end)
			t->draining = true;
	}
	sweep(t, now);
	if (t->sec_cur >= 0 && now > lg->t_measure &&
	    (int64_t)((now - lg->t_measure) / LG_NS_PER_S) > t->sec_cur)
		flush_second(t);
	/* The last word: past the end plus one timeout nothing is waited for. */
	if (t->draining && now >= lg->t_hard_end)
		begin_stop(t);
	check_drained(t);
}

static void on_stop(uv_async_t *h)
{
	begin_stop(h->data);
}

static int timerfd_setup(struct lg_thread *t)
{
	int r;

	t->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->tfd < 0)
		return -errno;
	r = uv_poll_init(&t->loop, &t->tpoll, t->tfd);
	if (r < 0) {
		close(t->tfd);
		t->tfd = -1;
		return r;
	}
	t->tpoll.data = t;
	t->close_pending++;
	return uv_poll_start(&t->tpoll, UV_READABLE, on_tfd);
}

static int thread_setup(struct lg_thread *t)
{
	struct loadgen *lg = t->lg;
	int r;

	r = uv_loop_init(&t->loop);
	if (r < 0)
		return r;
	r = uv_async_init(&t->loop, &t->stop_async, on_stop);
	if (r < 0) {
		(void)uv_loop_close(&t->loop);
		return r;
	}
	t->stop_async.data = t;
	(void)uv_timer_init(&t->loop, &t->tick);
	t->tick.data = t;
	t->close_pending = 2;
	pthread_mutex_lock(&lg->stop_lock);
	t->async_open = true;
	pthread_mutex_unlock(&lg->stop_lock);
	(void)uv_timer_start(&t->tick, lg_thread_on_tick, LG_TICK_MS, LG_TICK_MS);
	/* Without a timerfd the 10 ms tick still sends, only later. */
	(void)timerfd_setup(t);
	return 0;
}

void *lg_thread_main(void *arg)
{
	struct lg_thread *t = arg;
	struct loadgen *lg = t->lg;

	t->sec_cur = -1;
	t->tfd = -1;
	/* Below the loop, so the API answers first when both want a core;
	 * a failure (a policy forbidding it) leaves the thread as it was. */
	if (lg->nice > 0)
		(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), lg->nice);
	t->loop_close_rc = thread_setup(t);
	if (t->loop_close_rc == 0) {
		if (atomic_load(&lg->cancelled))
			begin_stop(t);
		for (int i = 0; i < t->n_conns && !t->stopping; i++)
			maybe_connect(t, &t->conns[i], 0);
		(void)uv_run(&t->loop, UV_RUN_DEFAULT);
		t->loop_close_rc = uv_loop_close(&t->loop);
	}
	atomic_fetch_add(&lg->threads_done, 1);
	uv_async_send(&lg->done_async);
	return NULL;
}
