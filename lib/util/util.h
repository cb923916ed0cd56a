/* util: the few helpers that belong to the whole project (prefix rd_):
 * wall-clock time in RFC 3339, duration and number parsing, container_of,
 * the redaction of secrets from URLs in messages.
 * Nothing here allocates behind the caller's back or has process-wide state.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define rd_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define RD_ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))

/* "2026-11-26T13:40:02.114Z" plus NUL. */
#define RD_TIME_LEN 25

/* Milliseconds since the Unix epoch, wall clock. */
int64_t rd_now_ms(void);

/* Formats ms since the epoch as RFC 3339 UTC with milliseconds into buf. */
void rd_time_format(int64_t ms, char buf[RD_TIME_LEN]);

/* Parses RFC 3339 ("2026-11-26T13:40:02.114Z", offsets allowed) or a plain
 * date ("2026-11-20", taken as midnight UTC). Returns 0 or -EINVAL. */
int rd_time_parse(const char *s, int64_t *ret_ms);

/* Parses a duration: a non-negative decimal number followed by a unit,
 * one of us, ms, s, m, h, d ("500ms", "1.5s", "5m", "90d"). The result is
 * rounded to whole milliseconds; "100us" and larger non-zero values that
 * round to 0 ms are rejected. Returns 0, -EINVAL (syntax) or -ERANGE
 * (over ~292 million years). */
int rd_parse_duration(const char *s, int64_t *ret_ms);

/* Formats a duration compactly ("1.5s", "500ms", "5m"), for messages. */
void rd_format_duration(int64_t ms, char *buf, size_t len);

/* Strict whole-string integer parse within [min, max]: no sign surprises,
 * no trailing garbage. Returns 0, -EINVAL or -ERANGE. */
int rd_parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret);

/* Strict whole-string finite double parse. Returns 0, -EINVAL or -ERANGE. */
int rd_parse_double(const char *s, double *ret);

/* True if a and b are equal, in time independent of where they differ. */
bool rd_memeq_ct(const void *a, const void *b, size_t len);

/* A JSON number for v: an integer when v is integral (so a status is 200,
 * not 200.0), a real otherwise, null when v is NaN or infinite (JSON has
 * neither). New reference. */
json_t *rd_json_number(double v);

/* What a secret becomes in messages, reports and stored specs. */
#define RD_REDACTED "<redacted>"

/* Room for one redacted URL of a spec in a message (URLs are capped at
 * 8 KiB by the spec parser; redaction may lengthen short secrets). */
#define RD_URL_TEXT_MAX (8 * 1024 + 512)

/* The one rule every message, report and stored spec follows for URLs
 * (docs/security.md): in text, which may be a URL or contain any number
 * of them ("GET http://u:pw@h/x: refused"), the user-info of every URL
 * becomes "user:<redacted>" ("<redacted>" when it has no ':'), and the
 * value of every query parameter whose name looks like a credential
 * (token, key, secret, password, auth, sig, signature, credential,
 * session) becomes "<redacted>". Everything else is copied as is.
 *
 * rd_url_redact writes into buf (len > 0 bytes, always NUL-terminated,
 * truncated to fit) and returns buf. rd_url_redact_dup returns a new
 * string the caller frees, or NULL on allocation failure; NULL text gives
 * NULL. Any thread. */
char *rd_url_redact(const char *text, char *buf, size_t len);
char *rd_url_redact_dup(const char *text);
