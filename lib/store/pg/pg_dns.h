/* pg_dns: a database host's name looked up on a thread of its own, so a
 * reconnect on the loop never waits for the resolver (pg_dns.c). */
#ifndef READYD_STORE_PG_DNS_H
#define READYD_STORE_PG_DNS_H

#include <stdbool.h>
#include <stddef.h>

#define PG_DNS_HOST_MAX 256

struct pg_dns;

/* Whether host is a name to look up: not empty (libpq's default), not a
 * unix socket directory, not several hosts, not a numeric address. */
bool pg_dns_needed(const char *host);

/* Starts looking host up. 0, -ENAMETOOLONG, -ENOMEM, or a thread error. */
int pg_dns_start(const char *host, struct pg_dns **ret);

/* -EINPROGRESS while the lookup runs; then 0 with the first address in
 * addr, or -EHOSTUNREACH with the resolver's reason in err. Never
 * waits. */
int pg_dns_result(struct pg_dns *d, char *addr, size_t len, char *err, size_t errlen);

/* Lets go of a lookup, finished or not (a running one frees itself). */
void pg_dns_drop(struct pg_dns *d);

#endif
