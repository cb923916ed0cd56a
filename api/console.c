/* console: the web console, served by readyd itself at / (docs/console.md):
 * server-rendered HTML with one stylesheet and one small script under
 * /static/ (no inline script or style, so the Content-Security-Policy can
 * forbid them), working without JavaScript except for live updates.
 *
 * This file: the routes, who is looking (a session cookie from signing in
 * with a token, or open mode when readyd has no tokens), CSRF checks, the
 * page frame, sign-in and sign-out, and the gates board. Every string from
 * a spec, a target or the store reaches the page through svg_buf_esc().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "console.h"
#include "lib/report/svg.h"
#include "lib/util/util.h"

#define CSP                                                                                        \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
#define FORM_MAX  (AUTH_TOKEN_MAX + 1)
#define BOARD_MAX 64 /* bytes of a filter value */

static void security_headers(struct api_req *req)
{
	api_reply_header(req, "Content-Security-Policy", CSP);
	api_reply_header(req, "X-Content-Type-Options", "nosniff");
	api_reply_header(req, "X-Frame-Options", "DENY");
	api_reply_header(req, "Referrer-Policy", "no-referrer");
	api_reply_header(req, "Cache-Control", "no-store");
}

void console_reply_page(struct api_req *req, unsigned status, struct svg_buf *b)
{
	size_t len = 0;
	char *html = svg_buf_steal(b, &len);

	if (!html) {
		api_problem_errno(req, -ENOMEM, "console page");
		return;
	}
	security_headers(req);
	api_reply_text(req, status, "text/html; charset=utf-8", html, len);
	free(html);
}

static void redirect(struct api_req *req, const char *to)
{
	security_headers(req);
	api_reply_header(req, "Location", to);
	api_reply_text(req, 303, "text/plain; charset=utf-8", "see other\n", 10);
}

/* The value of cookie name in the Cookie header into buf, or NULL. */
static const char *cookie(struct api_req *req, const char *name, char *buf, size_t len)
{
	const char *h = api_req_header(req, "Cookie");
	size_t nl = strlen(name);

	while (h && *h) {
		while (*h == ' ' || *h == ';')
			h++;
		if (strncmp(h, name, nl) == 0 && h[nl] == '=') {
			size_t n = strcspn(h + nl + 1, ";");

			if (n >= len)
				return NULL;
			memcpy(buf, h + nl + 1, n);
			buf[n] = '\0';
			return buf;
		}
		h = strchr(h, ';');
	}
	return NULL;
}

bool console_who(struct api_req *req, struct console_who *w)
{
	struct auth *a = api_req_app(req)->auth;
	char id[CONSOLE_ID_HEX + 2];
	const char *scope = "";

	memset(w, 0, sizeof(*w));
	if (!auth_enabled(a)) {
		w->open = true;
		w->role = API_ROLE_ADMIN;
		w->csrf = console_open_csrf();
		if (w->csrf)
			return true;
		api_problem_errno(req, -EIO, "console");
		return false;
	}
	w->session = console_session_find(cookie(req, CONSOLE_COOKIE, id, sizeof(id)),
	                                  uv_now(api_req_loop(req)));
	/* A token that became a notifier's (which may not read runs) has no
	 * console any more. */
	if (w->session && auth_lookup_name(a, w->session->name, &w->role, &scope) == 0 &&
	    w->role >= API_ROLE_VIEWER) {
		w->csrf = w->session->csrf;
		api_req_set_who(req, w->session->name, scope);
		return true;
	}
	redirect(req, "/login");
	return false;
}

static int hexdigit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes a form value (+ and %XX) of n bytes into buf. */
static int form_decode(const char *s, size_t n, char *buf, size_t buflen)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%' && i + 2 < n && hexdigit(s[i + 1]) >= 0 &&
		           hexdigit(s[i + 2]) >= 0) {
			c = (char)(hexdigit(s[i + 1]) * 16 + hexdigit(s[i + 2]));
			i += 2;
		}
		if (o + 1 >= buflen)
			return -ENAMETOOLONG;
		buf[o++] = c;
	}
	buf[o] = '\0';
	return 0;
}

int console_form_get(const char *body, size_t len, const char *key, char *buf, size_t buflen)
{
	size_t kl = strlen(key), i = 0;

	while (body && i < len) {
		size_t n = 0;

		while (i + n < len && body[i + n] != '&')
			n++;
		if (n > kl && strncmp(body + i, key, kl) == 0 && body[i + kl] == '=')
			return form_decode(body + i + kl + 1, n - kl - 1, buf, buflen);
		i += n + 1;
	}
	return -ENOENT;
}

bool console_csrf_ok(struct api_req *req, const struct console_who *w)
{
	char got[CONSOLE_ID_HEX + 2];
	size_t len = 0;
	const char *body = api_req_body(req, &len);

	if (w->csrf && console_form_get(body, len, "csrf", got, sizeof(got)) == 0 &&
	    console_str_eq(got, w->csrf))
		return true;
	console_error(req, w, 403,
	              "This form is missing its CSRF token; reload the page and retry.");
	return false;
}

void console_verdict_badge(struct svg_buf *b, const char *v)
{
	const char *cls = "none", *icon = "&#9679;"; /* ● */

	if (v && strcmp(v, "PASS") == 0)
		cls = "pass", icon = "&#10004;"; /* ✔ */
	else if (v && strcmp(v, "FAIL") == 0)
		cls = "fail", icon = "&#10006;"; /* ✖ */
	else if (v && strcmp(v, "ERROR") == 0)
		cls = "error", icon = "&#9888;"; /* ⚠ */
	svg_buf_printf(b, "<span class=\"badge v-%s\"><span aria-hidden=\"true\">%s</span> ", cls,
	               icon);
	svg_buf_esc(b, v ? v : "NOT DECIDED");
	svg_buf_puts(b, "</span>");
}

void console_age(struct svg_buf *b, const char *at)
{
	struct tm tm = {0};
	long long s;

	if (!at || !strptime(at, "%Y-%m-%dT%H:%M:%S", &tm)) {
		svg_buf_esc(b, at ? at : "never");
		return;
	}
	s = (long long)(rd_now_ms() / 1000 - timegm(&tm));
	svg_buf_puts(b, "<time datetime=\"");
	svg_buf_esc(b, at);
	svg_buf_puts(b, "\" title=\"");
	svg_buf_esc(b, at);
	if (s < 120)
		svg_buf_printf(b, "\">%lld s ago</time>", s < 0 ? 0 : s);
	else if (s < 2 * 3600)
		svg_buf_printf(b, "\">%lld min ago</time>", s / 60);
	else if (s < 2 * 86400)
		svg_buf_printf(b, "\">%lld h ago</time>", s / 3600);
	else
		svg_buf_printf(b, "\">%lld days ago</time>", s / 86400);
}

void console_page_begin(struct svg_buf *b, const struct console_who *w, const char *title)
{
	svg_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
	                "<link rel=\"stylesheet\" href=\"/static/console.css\">"
	                "<script src=\"/static/console.js\" defer></script><title>");
	svg_buf_esc(b, title);
	svg_buf_puts(b,
	             " &#8212; readyd</title></head><body>\n<header class=\"top\">"
	             "<a class=\"brand\" href=\"/\">readyd</a><nav><a href=\"/\">Gates</a></nav>");
	if (w && w->session) {
		svg_buf_puts(b, "<form class=\"who\" method=\"post\" action=\"/logout\">"
		                "<span id=\"whoami\">");
		svg_buf_esc(b, w->session->name);
		svg_buf_printf(b, " (%s)</span><input type=\"hidden\" name=\"csrf\" value=\"",
		               auth_role_to_string(w->role));
		svg_buf_esc(b, w->csrf);
		svg_buf_puts(b, "\"><button type=\"submit\">Sign out</button></form>");
	} else if (w && w->open) {
		svg_buf_puts(b, "<span class=\"who muted\" id=\"whoami\">open mode</span>");
	}
	svg_buf_puts(b, "</header>\n<main>\n");
}

void console_page_end(struct svg_buf *b)
{
	svg_buf_puts(b, "</main>\n</body></html>\n");
}

void console_error(struct api_req *req, const struct console_who *w, unsigned status,
                   const char *msg)
{
	struct svg_buf b;

	svg_buf_init(&b);
	console_page_begin(&b, w, "Error");
	svg_buf_printf(&b, "<h1>%u</h1><p class=\"problem\">", status);
	svg_buf_esc(&b, msg);
	svg_buf_puts(&b, "</p>");
	console_page_end(&b);
	console_reply_page(req, status, &b);
}

/* ---- sign-in ---- */

static void login_page(struct api_req *req, unsigned status, const char *msg)
{
	struct svg_buf b;

	svg_buf_init(&b);
	console_page_begin(&b, NULL, "Sign in");
	svg_buf_puts(&b, "<h1>Sign in</h1>");
	if (msg) {
		svg_buf_puts(&b, "<p class=\"problem\" role=\"alert\">");
		svg_buf_esc(&b, msg);
		svg_buf_puts(&b, "</p>");
	}
	svg_buf_puts(&b, "<form class=\"login\" method=\"post\" action=\"/login\">"
	                 "<label for=\"token\">API token</label>"
	                 "<input type=\"password\" id=\"token\" name=\"token\" "
	                 "autocomplete=\"current-password\" required>"
	                 "<button type=\"submit\">Sign in</button></form>"
	                 "<p class=\"muted\">The session acts with the token's role and "
	                 "services; it ends at sign-out, after 8 hours, or when readyd "
	                 "restarts.</p>");
	console_page_end(&b);
	console_reply_page(req, status, &b);
}

static void get_login(struct api_req *req)
{
	if (!auth_enabled(api_req_app(req)->auth)) {
		redirect(req, "/");
		return;
	}
	login_page(req, 200, NULL);
}

static void post_login(struct api_req *req)
{
	struct auth *a = api_req_app(req)->auth;
	static char token[FORM_MAX], bearer[FORM_MAX + 8];
	char cookie_hdr[CONSOLE_ID_HEX + 128];
	const struct console_session *s;
	struct auth_who who = {NULL, ""};
	size_t len = 0;
	const char *body = api_req_body(req, &len);
	int retry = 1, r;

	if (!auth_enabled(a)) {
		redirect(req, "/");
		return;
	}
	r = console_form_get(body, len, "token", token, sizeof(token));
	if (r == 0)
		snprintf(bearer, sizeof(bearer), "Bearer %s", token);
	r = r < 0 ? -EACCES
	          : auth_check(a, bearer, API_ROLE_VIEWER, uv_now(api_req_loop(req)), &who, &retry);
	memset(token, 0, sizeof(token));
	memset(bearer, 0, sizeof(bearer));
	if (r == -EAGAIN) {
		login_page(req, 429, "Too many attempts with this token; wait and retry.");
		return;
	}
	if (r < 0 || !who.name ||
	    console_session_new(who.name, uv_now(api_req_loop(req)), &s) < 0) {
		login_page(req, 422, "That token is not one readyd knows.");
		return;
	}
	snprintf(cookie_hdr, sizeof(cookie_hdr),
	         CONSOLE_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld", s->id,
	         CONSOLE_SESSION_TTL_MS / 1000);
	api_reply_header(req, "Set-Cookie", cookie_hdr);
	redirect(req, "/");
}

static void post_logout(struct api_req *req)
{
	struct console_who w;

	if (!console_who(req, &w))
		return;
	if (!console_csrf_ok(req, &w))
		return;
	if (w.session)
		console_session_drop(w.session->id);
	api_reply_header(req, "Set-Cookie",
	                 CONSOLE_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
	redirect(req, auth_enabled(api_req_app(req)->auth) ? "/login" : "/");
}

/* ---- static assets ---- */

static void get_static(struct api_req *req)
{
	const char *name = api_req_name(req);

	api_reply_header(req, "X-Content-Type-Options", "nosniff");
	api_reply_header(req, "Cache-Control", "public, max-age=300");
	if (strcmp(name, "console.css") == 0)
		api_reply_text(req, 200, "text/css; charset=utf-8", console_css,
		               strlen(console_css));
	else if (strcmp(name, "console.js") == 0)
		api_reply_text(req, 200, "text/javascript; charset=utf-8", console_js,
		               strlen(console_js));
	else
		api_problem(req, 404, NULL, "no asset %s", name);
}

/* ---- the gates board ---- */

/* The failing gates of a run as "expr: reason" items. */
static void failing_gates(struct svg_buf *b, struct store *st, json_t *item)
{
	json_t *run = NULL, *g;
	size_t i;

	if (store_run_get(st, json_integer_value(json_object_get(item, "run_id")), &run) < 0)
		return;
	svg_buf_puts(b, "<ul class=\"reasons\">");
	json_array_foreach (json_object_get(run, "gates"), i, g) {
		const char *o = json_string_value(json_object_get(g, "outcome"));

		if (!o || (strcmp(o, "fail") != 0 && strcmp(o, "error") != 0))
			continue;
		svg_buf_puts(b, "<li><code>");
		svg_buf_esc(b, json_string_value(json_object_get(g, "expr")));
		svg_buf_puts(b, "</code> ");
		svg_buf_esc(b, json_string_value(json_object_get(g, "reason")));
		svg_buf_puts(b, "</li>");
	}
	if (json_is_string(json_object_get(run, "error"))) {
		svg_buf_puts(b, "<li>");
		svg_buf_esc(b, json_string_value(json_object_get(run, "error")));
		svg_buf_puts(b, "</li>");
	}
	svg_buf_puts(b, "</ul>");
	json_decref(run);
}

static bool board_keeps(struct api_req *req, json_t *item)
{
	const char *svc = api_req_query(req, "service");
	const char *env = api_req_query(req, "environment");
	const char *v = api_req_query(req, "verdict");
	const char *s = json_string_value(json_object_get(item, "service"));
	const char *e = json_string_value(json_object_get(item, "environment"));
	const char *iv = json_string_value(json_object_get(item, "verdict"));

	if (svc && *svc && (!s || !strstr(s, svc)))
		return false;
	if (env && *env && (!e || strcmp(env, e) != 0))
		return false;
	return !(v && *v && (!iv || strcmp(v, iv) != 0));
}

static void board_row(struct svg_buf *b, struct store *st, json_t *item)
{
	const char *v = json_string_value(json_object_get(item, "verdict"));
	long long id = (long long)json_integer_value(json_object_get(item, "run_id"));

	svg_buf_printf(b, "<tr class=\"row-%s\"><td data-label=\"Service\"><a href=\"/services/",
	               v && strcmp(v, "PASS") == 0 ? "pass" : "blocked");
	svg_buf_esc(b, json_string_value(json_object_get(item, "service")));
	svg_buf_puts(b, "\">");
	svg_buf_esc(b, json_string_value(json_object_get(item, "service")));
	svg_buf_puts(b, "</a></td><td data-label=\"Environment\">");
	svg_buf_esc(b, json_string_value(json_object_get(item, "environment")));
	svg_buf_printf(b, "</td><td data-label=\"Verdict\"><a href=\"/runs/%lld\">", id);
	console_verdict_badge(b, v);
	svg_buf_puts(b, "</a></td><td data-label=\"Version\">");
	svg_buf_esc(b, json_string_value(json_object_get(item, "version")));
	svg_buf_puts(b, "</td><td data-label=\"Age\">");
	console_age(b, json_string_value(json_object_get(item, "finished_at")));
	svg_buf_puts(b, "</td><td data-label=\"Why not\">");
	if (!v || strcmp(v, "PASS") != 0)
		failing_gates(b, st, item);
	svg_buf_puts(b, "</td></tr>\n");
}

/* The board's table (also the fragment the script polls). */
static int board_table(struct api_req *req, struct svg_buf *b)
{
	json_t *items = NULL, *it;
	size_t i, shown = 0;
	int r = store_gates_latest(api_req_app(req)->store, &items);

	if (r < 0)
		return r;
	items = api_scope_items(req, items);
	svg_buf_puts(b, "<table class=\"board\" id=\"board\"><thead><tr><th>Service</th>"
	                "<th>Environment</th><th>Verdict</th><th>Version</th><th>Age</th>"
	                "<th>Why not</th></tr></thead><tbody>\n");
	json_array_foreach (items, i, it) {
		if (!board_keeps(req, it))
			continue;
		board_row(b, api_req_app(req)->store, it);
		shown++;
	}
	if (shown == 0)
		svg_buf_puts(
		        b,
		        "<tr><td colspan=\"6\" class=\"muted\">No decided runs match.</td></tr>");
	svg_buf_puts(b, "</tbody></table>\n");
	json_decref(items);
	return 0;
}

static void filter_input(struct svg_buf *b, struct api_req *req, const char *key, const char *label)
{
	const char *v = api_req_query(req, key);

	svg_buf_printf(b, "<label>%s <input name=\"%s\" value=\"", label, key);
	svg_buf_esc(b, v ? v : "");
	svg_buf_puts(b, "\"></label>");
}

static void get_board(struct api_req *req)
{
	struct console_who w;
	struct svg_buf b;
	int r;

	if (!console_who(req, &w))
		return;
	svg_buf_init(&b);
	console_page_begin(&b, &w, "Gates");
	svg_buf_puts(&b,
	             "<noscript><p class=\"muted\">Reload to refresh.</p></noscript>"
	             "<h1>What may ship</h1><form class=\"filter\" method=\"get\" action=\"/\">");
	filter_input(&b, req, "service", "Service");
	filter_input(&b, req, "environment", "Environment");
	filter_input(&b, req, "verdict", "Verdict");
	svg_buf_puts(&b, "<button type=\"submit\">Filter</button></form>"
	                 "<div data-poll=\"/board\" id=\"board-wrap\">");
	r = board_table(req, &b);
	svg_buf_puts(&b, "</div>");
	console_page_end(&b);
	if (r < 0) {
		svg_buf_deinit(&b);
		console_error(req, &w, 503, "cannot read the gates now");
		return;
	}
	console_reply_page(req, 200, &b);
}

/* GET /board: the board's table alone, with an ETag, so the page's
 * script polls for a 304 most of the time. */
static void get_board_fragment(struct api_req *req)
{
	struct console_who w;
	struct svg_buf b;
	char etag[32];
	const char *inm = api_req_header(req, "If-None-Match");
	uint64_t h = 1469598103934665603ULL;

	if (!console_who(req, &w))
		return;
	svg_buf_init(&b);
	if (board_table(req, &b) < 0 || b.oom) {
		svg_buf_deinit(&b);
		api_problem_errno(req, -EAGAIN, "gates");
		return;
	}
	for (size_t i = 0; i < b.len; i++)
		h = (h ^ (unsigned char)b.data[i]) * 1099511628211ULL;
	snprintf(etag, sizeof(etag), "\"%016llx\"", (unsigned long long)h);
	api_reply_header(req, "ETag", etag);
	if (inm && strcmp(inm, etag) == 0) {
		svg_buf_deinit(&b);
		security_headers(req);
		api_reply_text(req, 304, "text/html; charset=utf-8", "", 0);
		return;
	}
	console_reply_page(req, 200, &b);
}

const struct api_route api_routes_console[] = {
        {"GET", "/", get_board, API_ROLE_ANYONE},
        {"GET", "/board", get_board_fragment, API_ROLE_ANYONE},
        {"GET", "/login", get_login, API_ROLE_ANYONE},
        {"POST", "/login", post_login, API_ROLE_ANYONE},
        {"POST", "/logout", post_logout, API_ROLE_ANYONE},
        {"GET", "/static/{name}", get_static, API_ROLE_ANYONE},
        {"GET", "/runs/{id}", console_get_run, API_ROLE_ANYONE},
        {"GET", "/runs/{id}/events", console_get_run_events, API_ROLE_ANYONE},
        {"GET", "/runs/{id}/report", console_get_run_report, API_ROLE_ANYONE},
        {"POST", "/runs/{id}/cancel", console_post_cancel, API_ROLE_ANYONE},
        {"POST", "/runs/{id}/invalidate", console_post_invalidate, API_ROLE_ANYONE,
         .store_change = true},
        {"POST", "/runs/{id}/waive", console_post_waive, API_ROLE_ANYONE, .store_change = true},
        {"POST", "/runs/{id}/rejudge", console_post_rejudge, API_ROLE_ANYONE, .store_change = true},
        {"GET", "/services/{name}", console_get_service, API_ROLE_ANYONE},
        {"POST", "/services/{name}/waivers/{id}/revoke", console_post_waiver_revoke,
         API_ROLE_ANYONE, .store_change = true},
        {"GET", "/compare", console_get_compare, API_ROLE_ANYONE},
        {NULL, NULL, NULL},
};
