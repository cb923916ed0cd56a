/* pg_dns: the name of the database host, looked up off the loop.
 *
 * libpq resolves a host name inside PQconnectStart with a blocking
 * getaddrinfo. At start-up that is fine; on a reconnect it would stall
 * the loop for as long as the resolver takes, and a resolver is slowest
 * exactly when the network is failing. So a reconnect first looks the
 * name up here, on a short-lived thread, and hands libpq the address
 * (hostaddr=) while keeping the name (host=) for TLS verification.
 *
 * A lookup is shared by the thread and its caller: whoever lets go last
 * frees it, so a caller may drop a lookup that is still running.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "lib/store/pg/pg_dns.h"

struct pg_dns {
	atomic_int refs;
	atomic_bool done;
	int gai; /* getaddrinfo's result, once done */
	char host[PG_DNS_HOST_MAX];
	char addr[INET6_ADDRSTRLEN];
};

static void unref(struct pg_dns *d)
{
	if (atomic_fetch_sub(&d->refs, 1) == 1)
		free(d);
}

static void *lookup(void *arg)
{
	struct pg_dns *d = arg;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	const void *a;

	d->gai = getaddrinfo(d->host, NULL, &hints, &res);
	if (d->gai == 0) {
		/* The first answer, as libpq would try first. */
		a = res->ai_family == AF_INET6
		            ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
		            : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
		if (!inet_ntop(res->ai_family, a, d->addr, sizeof(d->addr)))
			d->gai = EAI_FAIL;
		freeaddrinfo(res);
	}
	atomic_store_explicit(&d->done, true, memory_order_release);
	unref(d);
	return NULL;
}

bool pg_dns_needed(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (!host || !*host || host[0] == '/' || host[0] == '@' || strchr(host, ','))
		return false; /* libpq's default, a unix socket, or several hosts */
	return inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1;
}

int pg_dns_start(const char *host, struct pg_dns **ret)
{
	struct pg_dns *d;
	pthread_attr_t attr;
	pthread_t tid;
	int r;

	if (strlen(host) >= PG_DNS_HOST_MAX)
		return -ENAMETOOLONG;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	memcpy(d->host, host, strlen(host) + 1);
	atomic_init(&d->refs, 2);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&tid, &attr, lookup, d);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		free(d);
		return -r;
	}
	*ret = d;
	return 0;
}

int pg_dns_result(struct pg_dns *d, char *addr, size_t len, char *err, size_t errlen)
{
	if (!atomic_load_explicit(&d->done, memory_order_acquire))
		return -EINPROGRESS;
	if (d->gai != 0) {
		snprintf(err, errlen, "could not resolve '%s': %s", d->host, gai_strerror(d->gai));
		return -EHOSTUNREACH;
	}
	snprintf(addr, len, "%s", d->addr);
	return 0;
}

void pg_dns_drop(struct pg_dns *d)
{
	if (d)
		unref(d);
}
