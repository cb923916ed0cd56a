/* loadgen_conn: one keep-alive HTTP/1.1 connection of an engine thread:
 * connect, send the prebuilt request, feed answers to http_parser, close
 * and let the thread reconnect. The hot path (send, read, parse) does not
 * allocate: reads land in the connection's own buffer, the request is the
 * engine's shared bytes and goes out with uv_try_write; only a partial
 * write falls back to uv_write (with a copy when the bytes are not the
 * shared request).
 *
 * It decides nothing about scheduling: when a connection is free or gone
 * it tells its thread (lg_thread_conn_free) and the thread decides.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/loadgen_int.h"
#include "lib/util/util.h"

struct slow_write {
	uv_write_t req;
	struct lg_conn *c;
	char data[];
};

static void on_close(uv_handle_t *h)
{
	struct lg_conn *c = h->data;
	struct lg_thread *t = c->t;

	lg_tls_conn_free(c);
	c->state = LG_CLOSED;
	c->writing = false;
	lg_thread_handle_closed(t);
	lg_thread_conn_free(t, c);
}

void lg_conn_close(struct lg_conn *c, int err_class)
{
	if (c->state == LG_CLOSED || c->state == LG_CLOSING)
		return;
	if (err_class >= 0 && (c->state == LG_BUSY || c->state == LG_CONNECTING))
		lg_thread_record(c->t, c, uv_hrtime(), err_class);
	c->state = LG_CLOSING;
	uv_close((uv_handle_t *)&c->tcp, on_close);
}

void lg_conn_failed(struct lg_conn *c, const char *why)
{
	struct lg_thread *t = c->t;

	snprintf(t->connect_error, sizeof(t->connect_error), "%s", why);
	c->retry_at = uv_hrtime() + LG_RECONNECT_NS;
	lg_conn_close(c, LOADGEN_ERR_CONNECT);
}

static void on_write(uv_write_t *req, int status)
{
	struct lg_conn *c = req->data;

	c->writing = false;
	if (status < 0 && status != UV_ECANCELED)
		lg_conn_close(c, LOADGEN_ERR_IO);
}

static void on_slow_write(uv_write_t *req, int status)
{
	struct slow_write *w = rd_container_of(req, struct slow_write, req);
	struct lg_conn *c = w->c;

	free(w);
	if (status < 0 && status != UV_ECANCELED)
		lg_conn_close(c, LOADGEN_ERR_IO);
}

/* The rest of a write the socket did not take at once. */
static int write_rest(struct lg_conn *c, const char *buf, size_t len)
{
	struct slow_write *w;
	uv_buf_t b;

	if (c->req && buf >= c->req && buf < c->req + c->req_len && !c->writing) {
		/* The shared requests outlive every write: no copy needed. */
		b = uv_buf_init((char *)buf, (unsigned)len);
		c->wreq.data = c;
		c->writing = true;
		return uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	}
	w = malloc(sizeof(*w) + len);
	if (!w)
		return -ENOMEM;
	w->c = c;
	memcpy(w->data, buf, len);
	b = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_slow_write) < 0) {
		free(w);
		return -EIO;
	}
	return 0;
}

int lg_conn_write_raw(struct lg_conn *c, const char *buf, size_t len)
{
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
	int n = 0;

	/* Writes queue behind an outstanding one to keep the byte order. */
	if (!c->writing)
		n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	if (n == UV_EAGAIN)
		n = 0;
	if (n < 0)
		return n;
	if ((size_t)n == len)
		return 0;
	return write_rest(c, buf + n, len - (size_t)n);
}

void lg_conn_send(struct lg_conn *c, uint64_t now, uint64_t idx)
{
	const struct loadgen *lg = c->t->lg;
	const struct lg_req *q = lg->reqs;
	int r;

	if (lg->n_reqs > 1)
		q += loadgen_pick(lg->cfg.order, lg->cfg.seed, lg->cum, lg->n_reqs, idx);
	c->req = q->buf;
	c->req_len = q->len;
	c->head = q->head;
	c->t->seen[q->id] = 1;
	if (lg->cfg.stream)
		lg_stream_reset(c);
	c->state = LG_BUSY;
	c->t_sent = now;
	c->got_byte = false;
	c->status = 0;
	http_parser_init(&c->parser, HTTP_RESPONSE);
	c->parser.data = c;
	c->t->inflight++;
	if (c->ssl)
		r = lg_tls_send(c, c->req, c->req_len);
	else
		r = lg_conn_write_raw(c, c->req, c->req_len);
	if (r < 0)
		lg_conn_close(c, LOADGEN_ERR_IO);
}

int lg_on_headers_complete(http_parser *hp)
{
	struct lg_conn *c = hp->data;

	c->status = (int)hp->status_code;
	/* Found by fuzz-loadgen-response: http_parser takes any
	 * three digits, so "HTTP/1.1 020 OK" was counted a success. A status
	 * below 100 is not HTTP: fail the parse (a protocol error). */
	if (c->status < 100)
		return -1;
	/* A HEAD answer announces a body it does not send. */
	return c->head ? 1 : 0;
}

int lg_on_message_complete(http_parser *hp)
{
	struct lg_conn *c = hp->data;

	c->keep_alive = http_should_keep_alive(hp);
	/* Stop here: what follows a complete answer is not ours to parse. */
	http_parser_pause(hp, 1);
	return 0;
}

const http_parser_settings lg_parser_settings = {
        .on_headers_complete = lg_on_headers_complete,
        .on_message_complete = lg_on_message_complete,
};

static int status_class(int status)
{
	if (status >= 500)
		return LOADGEN_ERR_5XX;
	if (status >= 400)
		return LOADGEN_ERR_4XX;
	return -1;
}

/* One answer is complete: record it and free or close the connection. */
static int complete(struct lg_conn *c, uint64_t now, bool extra)
{
	lg_thread_record(c->t, c, now, status_class(c->status));
	if (extra || !c->keep_alive) {
		/* Bytes nobody asked for would be read as the next answer. */
		c->state = LG_IDLE;
		lg_conn_close(c, -1);
		return -1;
	}
	c->state = LG_IDLE;
	lg_thread_conn_free(c->t, c);
	return 0;
}

int lg_conn_parse(struct lg_conn *c, const char *buf, size_t len)
{
	size_t n;
	enum http_errno e;

	if (c->state != LG_BUSY) {
		lg_conn_close(c, -1);
		return -1;
	}
	c->got_byte = true;
	if (!c->t->lg->cfg.stream) {
		n = http_parser_execute(&c->parser, &lg_parser_settings, buf, len);
	} else {
		lg_stream_read(c, uv_hrtime());
		n = http_parser_execute(&c->parser, &lg_stream_parser_settings, buf, len);
	}
	e = HTTP_PARSER_ERRNO(&c->parser);
	if (e == HPE_PAUSED)
		return complete(c, c->t->lg->cfg.stream ? c->s.now : uv_hrtime(), n < len);
	if (e != HPE_OK || n != len) {
		lg_conn_close(c, LOADGEN_ERR_PROTOCOL);
		return -1;
	}
	return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct lg_conn *c = h->data;

	*buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

/* End of stream: an answer delimited by EOF completes; otherwise a request
 * in flight is lost. */
static void on_eof(struct lg_conn *c)
{
	size_t n;

	if (c->state == LG_BUSY && c->got_byte) {
		n = http_parser_execute(&c->parser, c->t->lg->settings, NULL, 0);
		(void)n;
		if (HTTP_PARSER_ERRNO(&c->parser) == HPE_PAUSED) {
			c->keep_alive = false;
			complete(c, uv_hrtime(), false);
			return;
		}
	}
	if (c->state == LG_CONNECTING)
		lg_conn_failed(c, "the server closed the connection during the TLS handshake");
	else
		lg_conn_close(c, LOADGEN_ERR_IO);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct lg_conn *c = s->data;
	int r;

	if (nread == 0)
		return;
	if (nread < 0) {
		on_eof(c);
		return;
	}
	if (c->ssl) {
		r = lg_tls_feed(c, buf->base, (size_t)nread);
		if (r >= 0)
			lg_conn_close(c, r);
		return;
	}
	lg_conn_parse(c, buf->base, (size_t)nread);
}

void lg_conn_ready(struct lg_conn *c)
{
	c->state = LG_IDLE;
	lg_thread_conn_free(c->t, c);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct lg_conn *c = req->data;
	int r;

	if (status == UV_ECANCELED) {
		lg_conn_close(c, -1);
		return;
	}
	if (status < 0) {
		lg_conn_failed(c, uv_strerror(status));
		return;
	}
	r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (r < 0) {
		lg_conn_failed(c, uv_strerror(r));
		return;
	}
	if (!c->t->lg->ssl_ctx) {
		lg_conn_ready(c);
		return;
	}
	/* On failure the TLS side has said why and closed. */
	(void)lg_tls_conn_start(c);
}

void lg_conn_init(struct lg_conn *c, struct lg_thread *t)
{
	memset(c, 0, offsetof(struct lg_conn, rbuf));
	c->t = t;
	c->state = LG_CLOSED;
}

int lg_conn_connect(struct lg_conn *c)
{
	struct lg_thread *t = c->t;
	int r;

	r = uv_tcp_init(&t->loop, &c->tcp);
	if (r < 0)
		return r;
	c->tcp.data = c;
	c->creq.data = c;
	c->state = LG_CONNECTING;
	c->t_connect = uv_hrtime();
	t->close_pending++;
	(void)uv_tcp_nodelay(&c->tcp, 1);
	r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&t->lg->addr, on_connect);
	if (r < 0)
		lg_conn_failed(c, uv_strerror(r));
	return 0;
}

void lg_conn_deinit(struct lg_conn *c)
{
	lg_tls_conn_free(c);
	free(c->tls_out);
	c->tls_out = NULL;
}
