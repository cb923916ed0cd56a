/* probe_tls: one TLS handshake with the url's host and port, inspected.
 * Publishes the negotiated version (1.0 .. 1.3 as a number), the leaf
 * certificate's days left (fractional, negative when expired), whether it
 * matches the host name (hostname_ok) and whether the chain verifies
 * against the system store or ca_file (chain_ok); the cipher and the
 * certificate's names go to details. A version below min_version fails.
 *
 * The handshake runs with verification off so that an expired or
 * self-signed certificate is measured, not an error; the verification
 * result is recorded separately. Everything is nonblocking on the main
 * loop: uv_getaddrinfo for the name, a nonblocking socket under a
 * uv_poll_t for connect and SSL_connect. No application data is sent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/policy/policy.h"
#include "lib/probe/probe.h"
#include "lib/probe/probe_tls.h"
#include "lib/util/util.h"

#define TLS_DEFAULT_TIMEOUT_MS 10000
#define TLS_HOST_MAX           256

struct tls_probe;

/* One connection attempt; freed from its poll handle's close callback,
 * which also closes the socket. */
struct tls_conn {
	uv_poll_t poll;
	int fd;
	bool connected;
	struct tls_probe *tp;
};

struct tls_resolve {
	uv_getaddrinfo_t req;
	struct tls_probe *tp; /* NULL once the probe gave up on it */
};

struct tls_probe {
	struct probe *p;
	uv_timer_t timer;
	struct tls_resolve *resolve;
	struct addrinfo *ai, *cur_ai; /* ai: from the resolver, freed */
	struct addrinfo lit_ai;       /* an address literal needs no resolver */
	struct sockaddr_storage lit_addr;
	struct tls_conn *conn;
	struct policy_file *ca_read; /* ca_file being read off the loop */
	SSL_CTX *ctx;
	SSL *ssl;
	char host[TLS_HOST_MAX];
	char port[8];
	int port_num;
	char addr[INET6_ADDRSTRLEN + 8];
	char last_error[256];
};

static void tls_try_next(struct tls_probe *tp);

/* The handshake's own limit: 90% of the probe's timeout, so that a slow
 * server is reported by this probe, which knows the stage it was in,
 * before the scheduler's deadline cancels it. */
static int64_t tls_timeout_ms(const struct spec_probe *sp)
{
	return sp->timeout_ms ? sp->timeout_ms * 9 / 10 : TLS_DEFAULT_TIMEOUT_MS;
}

static void on_conn_closed(uv_handle_t *h)
{
	struct tls_conn *c = h->data;

	close(c->fd);
	free(c);
}

static void tls_conn_close(struct tls_probe *tp)
{
	if (tp->ssl) {
		SSL_free(tp->ssl);
		tp->ssl = NULL;
	}
	if (tp->conn) {
		uv_close((uv_handle_t *)&tp->conn->poll, on_conn_closed);
		tp->conn = NULL;
	}
}

/* Ends the probe: nothing of the connection outlives this call. */
static void tls_end(struct tls_probe *tp, enum probe_state st, const char *msg)
{
	uv_timer_stop(&tp->timer);
	tls_conn_close(tp);
	policy_file_cancel(tp->ca_read);
	tp->ca_read = NULL;
	if (tp->resolve) {
		tp->resolve->tp = NULL;
		uv_cancel((uv_req_t *)&tp->resolve->req);
		tp->resolve = NULL;
	}
	if (msg)
		probe_finish(tp->p, st, "%s", msg);
	else
		probe_finish(tp->p, st, NULL);
}

static void tls_error(struct tls_probe *tp, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void tls_error(struct tls_probe *tp, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tls_end(tp, PROBE_STATE_ERRORED, msg);
}

double probe_tls_version_number(int protocol)
{
	switch (protocol) {
	case TLS1_VERSION:
		return 1.0;
	case TLS1_1_VERSION:
		return 1.1;
	case TLS1_2_VERSION:
		return 1.2;
	case TLS1_3_VERSION:
		return 1.3;
	default:
		return 0;
	}
}

int probe_tls_days_left(X509 *cert, time_t now, double *ret_days)
{
	ASN1_TIME *from = ASN1_TIME_set(NULL, now);
	int days, secs, ok;

	if (!from)
		return -ENOMEM;
	ok = ASN1_TIME_diff(&days, &secs, from, X509_get0_notAfter(cert));
	ASN1_TIME_free(from);
	if (!ok)
		return -EINVAL;
	*ret_days = days + secs / 86400.0;
	return 0;
}

static bool host_is_ip(const char *h)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

static const char *tls_name(const struct tls_probe *tp)
{
	return tp->p->sp->servername ? tp->p->sp->servername : tp->host;
}

bool probe_tls_name_matches(X509 *cert, const char *name)
{
	if (host_is_ip(name))
		return X509_check_ip_asc(cert, name, 0) == 1;
	return X509_check_host(cert, name, 0, 0, NULL) == 1;
}

bool probe_tls_version_ok(double version, const char *min_version)
{
	return !min_version || version + 1e-9 >= strtod(min_version, NULL);
}

static json_t *x509_name_json(const X509_NAME *n)
{
	char buf[512];

	X509_NAME_oneline(n, buf, sizeof(buf));
	return json_string(buf);
}

static void tls_details(struct tls_probe *tp, X509 *cert, long verify)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(tp->ssl);
	json_t *d = json_object();

	if (!d)
		return;
	json_object_set_new(d, "address", json_string(tp->addr));
	json_object_set_new(d, "servername", json_string(tls_name(tp)));
	json_object_set_new(d, "protocol", json_string(SSL_get_version(tp->ssl)));
	json_object_set_new(d, "cipher", json_string(c ? SSL_CIPHER_get_name(c) : "unknown"));
	json_object_set_new(d, "verify_result", json_string(X509_verify_cert_error_string(verify)));
	if (cert) {
		char buf[64];
		BIO *b = BIO_new(BIO_s_mem());

		json_object_set_new(d, "subject", x509_name_json(X509_get_subject_name(cert)));
		json_object_set_new(d, "issuer", x509_name_json(X509_get_issuer_name(cert)));
		if (b && ASN1_TIME_print(b, X509_get0_notAfter(cert))) {
			int n = BIO_read(b, buf, sizeof(buf) - 1);

			buf[n > 0 ? n : 0] = '\0';
			json_object_set_new(d, "not_after", json_string(buf));
		}
		BIO_free(b);
	}
	json_decref(tp->p->details);
	tp->p->details = d;
}

/* The handshake is done: measure and judge. */
static void tls_measure(struct tls_probe *tp)
{
	const struct spec_probe *sp = tp->p->sp;
	X509 *cert = SSL_get1_peer_certificate(tp->ssl);
	long verify = SSL_get_verify_result(tp->ssl);
	double version = probe_tls_version_number(SSL_version(tp->ssl)), days;
	char msg[160];

	probe_set_metric(tp->p, "version", version);
	probe_set_metric(tp->p, "chain_ok", cert && verify == X509_V_OK ? 1 : 0);
	probe_set_metric(tp->p, "hostname_ok",
	                 cert && probe_tls_name_matches(cert, tls_name(tp)) ? 1 : 0);
	if (cert && probe_tls_days_left(cert, time(NULL), &days) == 0)
		probe_set_metric(tp->p, "cert_days_left", days);
	tls_details(tp, cert, verify);
	X509_free(cert);
	if (!probe_tls_version_ok(version, sp->min_version)) {
		snprintf(msg, sizeof(msg), "negotiated TLS %.1f, below min_version %s", version,
		         sp->min_version);
		tls_end(tp, PROBE_STATE_FAILED, msg);
		return;
	}
	tls_end(tp, PROBE_STATE_PASSED, NULL);
}

static void ssl_error_text(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "connection closed during the handshake");
	ERR_clear_error();
}

static void on_conn_event(uv_poll_t *h, int status, int events);

static void tls_handshake(struct tls_probe *tp)
{
	int r, e;
	char why[256];

	ERR_clear_error();
	r = SSL_connect(tp->ssl);
	if (r == 1) {
		tls_measure(tp);
		return;
	}
	e = SSL_get_error(tp->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		uv_poll_start(&tp->conn->poll, e == SSL_ERROR_WANT_READ ? UV_READABLE : UV_WRITABLE,
		              on_conn_event);
		return;
	}
	if (e == SSL_ERROR_SYSCALL && errno)
		snprintf(why, sizeof(why), "%s", strerror(errno));
	else
		ssl_error_text(why, sizeof(why));
	tls_error(tp, "TLS handshake with %s (%s) failed: %s", tp->addr, tls_name(tp), why);
}

static int tls_ssl_new(struct tls_probe *tp)
{
	const char *name = tls_name(tp);

	tp->ssl = SSL_new(tp->ctx);
	if (!tp->ssl || !SSL_set_fd(tp->ssl, tp->conn->fd))
		return -ENOMEM;
	if (!host_is_ip(name) && !SSL_set_tlsext_host_name(tp->ssl, name))
		return -EINVAL;
	return 0;
}

static void on_conn_event(uv_poll_t *h, int status, int events)
{
	struct tls_conn *c = h->data;
	struct tls_probe *tp = c->tp;
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (status == 0 && c->connected) {
		tls_handshake(tp);
		return;
	}
	/* The socket's own error says more than the poll's status. */
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr == 0 && status < 0)
		soerr = -status;
	if (soerr) {
		snprintf(tp->last_error, sizeof(tp->last_error), "connect to %s: %s", tp->addr,
		         strerror(soerr));
		tls_conn_close(tp);
		tp->cur_ai = tp->cur_ai->ai_next;
		tls_try_next(tp);
		return;
	}
	c->connected = true;
	if (tls_ssl_new(tp) < 0) {
		tls_error(tp, "cannot set up TLS for %s", tls_name(tp));
		return;
	}
	tls_handshake(tp);
}

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%d", ip, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%d", ip, port);
	} else {
		snprintf(buf, len, "?");
	}
}

/* Opens a nonblocking connection to tp->cur_ai; 0 or -errno. */
static int tls_connect(struct tls_probe *tp)
{
	const struct addrinfo *a = tp->cur_ai;
	struct tls_conn *c;
	int fd, e;

	format_addr(a->ai_addr, tp->addr, sizeof(tp->addr));
	if (http_client_check_addr(tp->p->http, a->ai_addr, tp->host) < 0)
		return -EPERM;
	fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->tp = tp;
	e = uv_poll_init_socket(tp->p->loop, &c->poll, fd);
	if (e < 0) {
		close(fd);
		free(c);
		return e;
	}
	c->poll.data = c;
	tp->conn = c;
	if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS)
		return -errno; /* the caller closes tp->conn */
	return uv_poll_start(&c->poll, UV_WRITABLE, on_conn_event);
}

/* Tries the resolved addresses in order until one connects. */
static void tls_try_next(struct tls_probe *tp)
{
	while (tp->cur_ai) {
		int e = tls_connect(tp);

		if (e == 0)
			return;
		snprintf(tp->last_error, sizeof(tp->last_error), "connect to %s: %s", tp->addr,
		         e == -EPERM ? "refused by policy (allowed_targets)" : strerror(-e));
		tls_conn_close(tp);
		tp->cur_ai = tp->cur_ai->ai_next;
	}
	tls_error(tp, "%s", tp->last_error);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct tls_resolve *rs = req->data;
	struct tls_probe *tp = rs->tp;

	free(rs);
	if (!tp) {
		uv_freeaddrinfo(res);
		return;
	}
	tp->resolve = NULL;
	if (status < 0) {
		uv_freeaddrinfo(res);
		tls_error(tp, "cannot resolve %s: %s", tp->host, uv_strerror(status));
		return;
	}
	tp->ai = tp->cur_ai = res;
	snprintf(tp->last_error, sizeof(tp->last_error), "%.200s has no address", tp->host);
	tls_try_next(tp);
}

static void on_tls_timeout(uv_timer_t *t)
{
	struct tls_probe *tp = t->data;
	const char *what = tp->conn && tp->conn->connected ? "TLS handshake with"
	                   : tp->conn                      ? "connect to"
	                                                   : "resolving";

	tls_error(tp, "%s %s timed out after %.1f s", what, tp->conn ? tp->addr : tp->host,
	          (double)tls_timeout_ms(tp->p->sp) / 1000);
}

static int tls_ctx_new(struct tls_probe *tp)
{
	const struct spec_probe *sp = tp->p->sp;

	tp->ctx = SSL_CTX_new(TLS_client_method());
	if (!tp->ctx)
		return -ENOMEM;
	/* Verification off: the handshake must complete for bad certificates;
	 * OpenSSL still records the chain's result for SSL_get_verify_result. */
	SSL_CTX_set_verify(tp->ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(tp->ctx, TLS1_VERSION);
	if (!sp->ca_file && SSL_CTX_set_default_verify_paths(tp->ctx) != 1)
		return -EIO;
	return 0;
}

/* ca_file's PEM certificates (read off the loop) into the context's
 * store. 0, or -EINVAL when it holds none. */
static int tls_ctx_load_ca(SSL_CTX *ctx, const char *pem, size_t len)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x;
	int n = 0;

	if (!bio)
		return -ENOMEM;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (X509_STORE_add_cert(store, x) == 1)
			n++;
		X509_free(x);
	}
	ERR_clear_error();
	BIO_free(bio);
	return n > 0 ? 0 : -EINVAL;
}

static void on_tls_closed(uv_handle_t *h)
{
	struct tls_probe *tp = h->data;

	uv_freeaddrinfo(tp->ai);
	SSL_CTX_free(tp->ctx);
	free(tp);
}

static void tls_probe_free(struct probe *p)
{
	struct tls_probe *tp = p->impl;

	if (!tp)
		return;
	p->impl = NULL;
	tls_conn_close(tp);
	if (tp->resolve)
		tp->resolve->tp = NULL;
	policy_file_cancel(tp->ca_read);
	uv_close((uv_handle_t *)&tp->timer, on_tls_closed);
}

static void tls_probe_cancel(struct probe *p)
{
	struct tls_probe *tp = p->impl;

	if (tp)
		tls_end(tp, PROBE_STATE_CANCELLED, NULL);
	else
		probe_finish(p, PROBE_STATE_CANCELLED, NULL);
}

/* An IP literal host becomes a one-entry address list without the
 * resolver's thread pool. False if the host is a name. */
static bool tls_literal(struct tls_probe *tp, int port)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&tp->lit_addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&tp->lit_addr;

	if (uv_ip4_addr(tp->host, port, in) == 0) {
		tp->lit_ai.ai_family = AF_INET;
		tp->lit_ai.ai_addrlen = sizeof(*in);
	} else if (uv_ip6_addr(tp->host, port, in6) == 0) {
		tp->lit_ai.ai_family = AF_INET6;
		tp->lit_ai.ai_addrlen = sizeof(*in6);
	} else {
		return false;
	}
	tp->lit_ai.ai_socktype = SOCK_STREAM;
	tp->lit_ai.ai_addr = (struct sockaddr *)&tp->lit_addr;
	tp->cur_ai = &tp->lit_ai;
	return true;
}

static int tls_resolve_start(struct tls_probe *tp)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct tls_resolve *rs = calloc(1, sizeof(*rs));
	int e;

	if (!rs)
		return -ENOMEM;
	rs->tp = tp;
	rs->req.data = rs;
	e = uv_getaddrinfo(tp->p->loop, &rs->req, on_resolved, tp->host, tp->port, &hints);
	if (e < 0) {
		free(rs);
		return e;
	}
	tp->resolve = rs;
	return 0;
}

/* Resolves (or takes the literal) and connects. */
static int tls_probe_connect(struct tls_probe *tp)
{
	if (!tls_literal(tp, tp->port_num))
		return tls_resolve_start(tp);
	/* May finish the probe (refused at once): tp is not touched after. */
	tls_try_next(tp);
	return 0;
}

static void on_ca_read(void *userdata, int err, char *buf, size_t len, const char *why)
{
	struct tls_probe *tp = userdata;
	int e;

	tp->ca_read = NULL;
	if (err < 0)
		return tls_error(tp, "ca_file %.200s %s", tp->p->sp->ca_file, why);
	e = tls_ctx_load_ca(tp->ctx, buf, len);
	free(buf);
	if (e < 0)
		return tls_error(tp, "ca_file %.200s holds no PEM certificate", tp->p->sp->ca_file);
	e = tls_probe_connect(tp);
	if (e < 0)
		tls_error(tp, "cannot resolve %.200s: %s", tp->host, uv_strerror(e));
}

static int tls_probe_setup(struct tls_probe *tp)
{
	const struct spec_probe *sp = tp->p->sp;
	size_t n;
	int port, e;

	e = policy_url_host_port(sp->url, tp->host, sizeof(tp->host), &port);
	if (e < 0)
		return e;
	n = strlen(tp->host);
	if (n >= 2 && tp->host[0] == '[' && tp->host[n - 1] == ']') { /* "[::1]" */
		memmove(tp->host, tp->host + 1, n - 2);
		tp->host[n - 2] = '\0';
	}
	snprintf(tp->port, sizeof(tp->port), "%d", port);
	tp->port_num = port;
	e = tls_ctx_new(tp);
	if (e < 0)
		return e;
	uv_timer_start(&tp->timer, on_tls_timeout, (uint64_t)tls_timeout_ms(sp), 0);
	if (sp->ca_file)
		return policy_read_file_async(tp->p->loop, http_client_files(tp->p->http),
		                              sp->ca_file, POLICY_MAX_FILE_SIZE, on_ca_read, tp,
		                              &tp->ca_read);
	return tls_probe_connect(tp);
}

static int tls_probe_start(struct probe *p)
{
	struct tls_probe *tp;
	int e;

	if (!p->sp->url)
		return -EINVAL;
	tp = calloc(1, sizeof(*tp));
	if (!tp)
		return -ENOMEM;
	tp->p = p;
	e = uv_timer_init(p->loop, &tp->timer);
	if (e < 0) {
		free(tp);
		return e;
	}
	tp->timer.data = tp;
	p->impl = tp;
	e = tls_probe_setup(tp);
	if (e < 0)
		tls_probe_free(p);
	return e;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
/* clang-format off */
static const char *const tls_versions[] = {"1.2", "1.3", NULL};
static const struct spec_field fields[] = {
	SPEC_F_COMMON, SPEC_F_URL(false),
	{.key = "min_version", .kind = FK_STRING, .off = SPEC_P(min_version),
	 .choices = tls_versions},
	{.key = "servername",  .kind = FK_STRING, .off = SPEC_P(servername),
	 .check = spec_check_hostname},
	SPEC_F_CA_FILE,
};
/* clang-format on */

static int finish_tls(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	int r;

	if (!p->url && !spec_vctx_spec(v)->target.url)
		return spec_fail(v, obj, path,
		                 "needs a url: give the probe a url or the spec a target");
	r = spec_str_default(&p->url, spec_vctx_spec(v)->target.url);
	if (r < 0)
		return r;
	if (!strncasecmp(p->url, "https://", 8) == 0)
		return spec_fail_at(v, obj, path, "url", "must be an https:// URL%s",
		                    json_object_get(obj, "url") ? "" : " (the target's is not)");
	return 0;
}

static const struct probe_metric_def metrics[] = {
        {"version", "TLS version", PROBE_SAMPLES_NONE},
        {"cert_days_left", "days", PROBE_SAMPLES_NONE},
        {"hostname_ok", "1", PROBE_SAMPLES_NONE},
        {"chain_ok", "1", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_tls = {
        .name = "tls",
        .section = "Security",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_tls,
        .deadline_fixed_ms = PROBE_DEFAULT_DEADLINE_MS,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = tls_probe_start,
                        .cancel = tls_probe_cancel,
                        .free = tls_probe_free,
                },
};
