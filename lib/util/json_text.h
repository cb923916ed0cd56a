/* json_text: JSON text with every real number in its shortest form that
 * reads back as the same double (0.096, not 0.096000000000000002), and
 * the same shortest form for numbers in reports. */
#ifndef READYD_UTIL_JSON_TEXT_H
#define READYD_UTIL_JSON_TEXT_H

#include <jansson.h>
#include <stddef.h>

/* Room for any double in rd_fmt_double's form. */
#define RD_DOUBLE_LEN 32

/* v as the shortest of %.15g, %.16g and %.17g that strtod reads back as
 * exactly v, with the exponent's '+' and leading zeros dropped (1e-07 is
 * 1e-7). "NaN", "+Inf" or "-Inf" for those. buf has len bytes (at least
 * RD_DOUBLE_LEN for any v). Returns the length written. */
int rd_fmt_double(double v, char *buf, size_t len);

/* json_dumps() with the same flags (JSON_COMPACT, JSON_INDENT(n),
 * JSON_SORT_KEYS, JSON_ENSURE_ASCII, JSON_ENCODE_ANY), except that reals
 * are written by rd_fmt_double (with ".0" added when that has neither a
 * point nor an exponent, so they stay reals). Caller frees; NULL when out
 * of memory or when v is not an object or array without JSON_ENCODE_ANY. */
char *rd_json_dumps(const json_t *v, size_t flags);

#endif
