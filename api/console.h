/* console: what the web console's files share (console.c pages,
 * console_session.c sessions and CSRF tokens, console_static.c the
 * stylesheet and script). Main loop thread only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "auth.h"

#define CONSOLE_ID_HEX         64 /* 256 random bits as hex */
#define CONSOLE_SESSIONS_MAX   4096
#define CONSOLE_SESSION_TTL_MS (8LL * 3600 * 1000)
#define CONSOLE_COOKIE         "readyd_session"

/* A signed-in browser: a random id (the cookie), a random CSRF token for
 * its forms, the token name it stands for, and when it expires. */
struct console_session {
	char id[CONSOLE_ID_HEX + 1];
	char csrf[CONSOLE_ID_HEX + 1];
	char name[AUTH_NAME_MAX + 1];
	uint64_t expires_ms; /* monotonic (uv_now) */
};

/* 32 random bytes from the kernel as 64 hex digits. 0 or -errno. */
int console_random_hex(char out[CONSOLE_ID_HEX + 1]);

/* A new session for token name; the oldest is dropped when the table is
 * full. Borrowed until console_session_drop or expiry. 0 or -errno. */
int console_session_new(const char *name, uint64_t now_ms, const struct console_session **ret);

/* The unexpired session with id (compared in constant time), or NULL. */
const struct console_session *console_session_find(const char *id, uint64_t now_ms);
void console_session_drop(const char *id);

/* The CSRF token of open mode (no tokens configured: no sign-in, one
 * process-wide token for the forms). NULL if the kernel gave no random. */
const char *console_open_csrf(void);

/* Equal strings, in time that depends on the length only. */
bool console_str_eq(const char *a, const char *b);

/* The stylesheet and the script served under /static/. */
extern const char console_css[];
extern const char console_js[];

/* Who is looking at a console page: open mode (no tokens configured),
 * or a session and its token's current role and scope. */
struct console_who {
	bool open;
	const struct console_session *session; /* NULL in open mode */
	enum api_role role;
	const char *csrf; /* the token the page's forms carry */
};

/* Resolves the caller of a console route; false when answered (303 to
 * /login without a live session: the board's script and the event
 * stream follow it too). On success the request acts as the session's
 * token (api_req_set_who). */
bool console_who(struct api_req *req, struct console_who *w);

/* Page frame: <head> with the stylesheet and script, the top bar (who,
 * sign-out form), and <main>. title is escaped. */
struct svg_buf;
void console_page_begin(struct svg_buf *b, const struct console_who *w, const char *title);
void console_page_end(struct svg_buf *b);

/* Answers the page in b (consumed) with the console's headers (CSP,
 * nosniff, no-store, frame denial). */
void console_reply_page(struct api_req *req, unsigned status, struct svg_buf *b);

/* A short error page (status, escaped message). */
void console_error(struct api_req *req, const struct console_who *w, unsigned status,
                   const char *msg);

/* A form field from an application/x-www-form-urlencoded body, decoded
 * into buf. 0, -ENOENT when absent, -ENAMETOOLONG when it does not fit. */
int console_form_get(const char *body, size_t len, const char *key, char *buf, size_t buflen);

/* Whether a POST carries this page's CSRF token (field "csrf"); answers
 * 403 when not. */
bool console_csrf_ok(struct api_req *req, const struct console_who *w);

/* A verdict as text plus a shape, never colour alone: "✔ PASS". */
void console_verdict_badge(struct svg_buf *b, const char *verdict);

/* "3 min ago" (in a <time> carrying the RFC 3339 stamp) for a stored
 * date-time string; "never" for NULL. */
void console_age(struct svg_buf *b, const char *rfc3339);

/* Run id as stored, within the caller's scope: a new reference, or NULL
 * after answering (404, 503). console_pages.c. */
json_t *console_load_run(struct api_req *req, const struct console_who *w, int64_t id);

/* The run page, its event stream, downloads and cancel (console_run.c). */
void console_get_run(struct api_req *req);
void console_get_run_events(struct api_req *req);
void console_get_run_report(struct api_req *req);
void console_post_cancel(struct api_req *req);

/* Changes to an ended run (console_actions.c): the forms on its page for
 * the caller's role, and their handlers. */
void console_run_forms(struct svg_buf *b, const struct console_who *w, json_t *run, int64_t id);
void console_post_invalidate(struct api_req *req);
void console_post_waive(struct api_req *req);
void console_post_rejudge(struct api_req *req);

/* The service page's form revoking waiver id of service, for the admin
 * role (console_actions.c), and its handler. */
void console_waiver_revoke_form(struct svg_buf *b, const struct console_who *w, const char *service,
                                int64_t id);
void console_post_waiver_revoke(struct api_req *req);

/* The service page and the comparison (console_pages.c). */
void console_get_service(struct api_req *req);
void console_get_compare(struct api_req *req);
