/* probe_tls.h: the pure facts the tls probe derives from a handshake (the
 * version as a number, days left, host name match, min_version), apart
 * from the socket and the loop so they can be tested on certificates
 * alone. */
#pragma once

#include <openssl/x509.h>
#include <stdbool.h>
#include <time.h>

/* An OpenSSL protocol version (SSL_version(): TLS1_2_VERSION ...) as the
 * number the probe publishes: 1.0, 1.1, 1.2, 1.3; 0 for anything else. */
double probe_tls_version_number(int protocol);

/* Fractional days from now to cert's notAfter, negative once expired.
 * Returns 0, or -EINVAL when the time cannot be read. */
int probe_tls_days_left(X509 *cert, time_t now, double *ret_days);

/* Whether cert is valid for name: an IPv4 or IPv6 literal against the IP
 * SANs; a host name against the DNS SANs (a wildcard covers one label),
 * or the subject's CN when there are none. */
bool probe_tls_name_matches(X509 *cert, const char *name);

/* Whether a negotiated version (as probe_tls_version_number() gives it)
 * meets min_version ("1.2", "1.3"; NULL: anything does). */
bool probe_tls_version_ok(double version, const char *min_version);
