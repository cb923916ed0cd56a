/* loadgen_tls: https for the engine, as wrk does it: OpenSSL on a pair of
 * memory BIOs, so libuv keeps owning the socket. Ciphertext read from the
 * socket goes into the read BIO; whatever OpenSSL wants to send comes out
 * of the write BIO and is written with lg_conn_write_raw().
 *
 * It verifies the peer (system store or ca_file, and the host name) unless
 * the spec says insecure; it never logs: a failed handshake is a connect
 * error (errors_connect, retried after LG_RECONNECT_NS like a refused
 * connection), and its reason becomes the run's connect_error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/loadgen/loadgen_int.h"

/* PEM certificates from memory into ctx's store; 1 when at least one. */
static int load_pem(SSL_CTX *ctx, const char *pem, size_t len)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x;
	int n = 0;

	if (!bio)
		return 0;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		n += X509_STORE_add_cert(store, x) == 1;
		X509_free(x);
	}
	ERR_clear_error();
	BIO_free(bio);
	return n > 0;
}

int lg_tls_ctx_new(bool insecure, const char *ca_file, const char *ca_pem, size_t ca_pem_len,
                   SSL_CTX **ret_ctx, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int ok;

	if (!ctx)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (insecure) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		ok = ca_pem    ? load_pem(ctx, ca_pem, ca_pem_len)
		     : ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
		               : SSL_CTX_set_default_verify_paths(ctx);
		if (ok != 1) {
			snprintf(err, errlen, "cannot load CA certificates from '%s'",
			         ca_pem    ? "ca_file"
			         : ca_file ? ca_file
			                   : "the system store");
			SSL_CTX_free(ctx);
			return -EPROTO;
		}
	}
	*ret_ctx = ctx;
	return 0;
}

static bool is_ip(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Sends what OpenSSL queued in the write BIO. */
static int flush(struct lg_conn *c)
{
	int n, r;

	while ((n = BIO_read(c->wbio, c->tls_out, LG_TLS_BUF)) > 0) {
		r = lg_conn_write_raw(c, c->tls_out, (size_t)n);
		if (r < 0)
			return r;
	}
	return 0;
}

static int setup_verify(struct lg_conn *c)
{
	const struct loadgen *lg = c->t->lg;
	const char *host = lg->url.host;

	if (!is_ip(host) && SSL_set_tlsext_host_name(c->ssl, host) != 1)
		return -EPROTO;
	if (lg->cfg.insecure)
		return 0;
	if (is_ip(host))
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) == 1 ? 0
		                                                                        : -EPROTO;
	return SSL_set1_host(c->ssl, host) == 1 ? 0 : -EPROTO;
}

/* The handshake failed: says why in the words of OpenSSL's verifier (the
 * usual case: an unknown CA, a wrong name, an expired certificate) or of
 * its error queue, then closes as a connect error. */
static void handshake_failed(struct lg_conn *c)
{
	char why[LOADGEN_ERRLEN];
	long v = SSL_get_verify_result(c->ssl);
	unsigned long e = ERR_peek_last_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	if (v != X509_V_OK && !c->t->lg->cfg.insecure)
		snprintf(why, sizeof(why), "TLS certificate verification failed: %s",
		         X509_verify_cert_error_string(v));
	else
		snprintf(why, sizeof(why), "TLS handshake failed: %s",
		         reason ? reason : "no reason given");
	ERR_clear_error();
	lg_conn_failed(c, why);
}

static int ssl_new(struct lg_conn *c)
{
	if (!c->tls_out) {
		c->tls_out = malloc(LG_TLS_BUF);
		if (!c->tls_out)
			return -ENOMEM;
	}
	c->ssl = SSL_new(c->t->lg->ssl_ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->ssl || !c->rbio || !c->wbio) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		c->rbio = c->wbio = NULL;
		return -ENOMEM;
	}
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_connect_state(c->ssl);
	return 0;
}

int lg_tls_conn_start(struct lg_conn *c)
{
	int r;

	r = ssl_new(c);
	if (r < 0) {
		lg_conn_failed(c, "out of memory for TLS");
		return r;
	}
	if (setup_verify(c) < 0) {
		lg_conn_failed(c, "cannot set the TLS host name to verify");
		return -EPROTO;
	}
	r = SSL_do_handshake(c->ssl);
	if (r != 1 && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
		handshake_failed(c);
		return -EPROTO;
	}
	r = flush(c);
	if (r < 0)
		lg_conn_failed(c, uv_strerror(r));
	return r;
}

/* Decrypts everything readable into the parser. */
static int drain(struct lg_conn *c)
{
	char plain[LG_READ_BUF];
	int n;

	for (;;) {
		n = SSL_read(c->ssl, plain, sizeof(plain));
		if (n <= 0)
			break;
		if (lg_conn_parse(c, plain, (size_t)n) < 0 || c->state == LG_CLOSING)
			return -1; /* closed already */
	}
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
		return flush(c) < 0 ? LOADGEN_ERR_IO : -1;
	case SSL_ERROR_ZERO_RETURN:
		return LOADGEN_ERR_IO;
	default:
		return LOADGEN_ERR_PROTOCOL;
	}
}

int lg_tls_feed(struct lg_conn *c, const char *buf, size_t len)
{
	int r;

	if (BIO_write(c->rbio, buf, (int)len) != (int)len)
		return LOADGEN_ERR_IO;
	if (!SSL_is_init_finished(c->ssl)) {
		r = SSL_do_handshake(c->ssl);
		if (r != 1 && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
			/* The alert OpenSSL queued is not worth a write: we close. */
			handshake_failed(c);
			return -1;
		}
		if (flush(c) < 0) {
			lg_conn_failed(c, "cannot write the TLS handshake");
			return -1;
		}
		if (r != 1)
			return -1;
		lg_conn_ready(c);
		if (c->state == LG_CLOSING || c->state == LG_CLOSED)
			return -1;
	}
	return drain(c);
}

int lg_tls_send(struct lg_conn *c, const char *buf, size_t len)
{
	if (SSL_write(c->ssl, buf, (int)len) != (int)len)
		return -EIO;
	return flush(c);
}

void lg_tls_conn_free(struct lg_conn *c)
{
	if (c->ssl) {
		SSL_free(c->ssl); /* frees both BIOs */
		c->ssl = NULL;
		c->rbio = c->wbio = NULL;
	}
	ERR_clear_error();
}
