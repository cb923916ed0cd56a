/* json_text: JSON text with every real number in its shortest form that
 * reads back as the same double (0.096, not 0.096000000000000002), and
 * the same shortest form for numbers in reports; and a writer that puts
 * JSON text straight into a growing buffer, byte for byte as
 * rd_json_dumps would write the same values, for answers too big to
 * build as a tree first (trends). */
#ifndef READYD_UTIL_JSON_TEXT_H
#define READYD_UTIL_JSON_TEXT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

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

/* A growing buffer of JSON text; zero-initialised is empty. After a failed
 * write (ENOMEM, a string that is not UTF-8, a non-finite real) err is
 * -errno and later writes do nothing; buf is then still freed by the
 * caller. buf is NUL-terminated once anything was written. */
struct rd_jtext {
	char *buf;
	size_t len, cap;
	int err;
};

/* n bytes as they are. */
void rd_jtext_raw(struct rd_jtext *t, const char *s, size_t n);
/* A string literal of C text (NULL: none) as they are. */
void rd_jtext_lit(struct rd_jtext *t, const char *s);
/* s (n bytes of UTF-8) as a JSON string, escaped as jansson escapes it
 * with flags (JSON_ENSURE_ASCII, JSON_ESCAPE_SLASH); -EINVAL for bytes
 * that are not UTF-8, as jansson refuses them. */
void rd_jtext_strn(struct rd_jtext *t, const char *s, size_t n, size_t flags);
/* A NUL-terminated string, or null for NULL; compact ASCII-safe flags. */
void rd_jtext_str(struct rd_jtext *t, const char *s);
void rd_jtext_int(struct rd_jtext *t, int64_t v);
/* A real as rd_json_dumps writes it (".0" added to a whole number);
 * -EINVAL for NaN and infinities. */
void rd_jtext_real(struct rd_jtext *t, double v);
/* v's text written by rd_json_dumps(v, flags) appended. */
void rd_jtext_json(struct rd_jtext *t, const json_t *v, size_t flags);

#endif
