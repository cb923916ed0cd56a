/* console_session: the web console's sign-in sessions, held in memory
 * only (a restart signs everyone out). A session id and its CSRF token
 * are each 256 bits from getrandom(2); ids are compared in constant time;
 * sessions expire CONSOLE_SESSION_TTL_MS after sign-in. The table is
 * bounded: when full, the session closest to expiry is replaced.
 * Main loop thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "console.h"
#include "lib/util/util.h"

static struct console_session sessions[CONSOLE_SESSIONS_MAX];
static char open_csrf[CONSOLE_ID_HEX + 1];

int console_random_hex(char out[CONSOLE_ID_HEX + 1])
{
	unsigned char raw[CONSOLE_ID_HEX / 2];
	ssize_t n = getrandom(raw, sizeof(raw), 0);

	if (n != (ssize_t)sizeof(raw))
		return n < 0 ? -errno : -EIO;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

bool console_str_eq(const char *a, const char *b)
{
	size_t la = strlen(a);

	return la == strlen(b) && rd_memeq_ct(a, b, la);
}

int console_session_new(const char *name, uint64_t now_ms, const struct console_session **ret)
{
	struct console_session *slot = &sessions[0];
	int r;

	for (size_t i = 0; i < CONSOLE_SESSIONS_MAX; i++) {
		if (sessions[i].expires_ms <= now_ms) {
			slot = &sessions[i];
			break;
		}
		if (sessions[i].expires_ms < slot->expires_ms)
			slot = &sessions[i];
	}
	r = console_random_hex(slot->id);
	if (r == 0)
		r = console_random_hex(slot->csrf);
	if (r < 0) {
		memset(slot, 0, sizeof(*slot));
		return r;
	}
	snprintf(slot->name, sizeof(slot->name), "%s", name);
	slot->expires_ms = now_ms + CONSOLE_SESSION_TTL_MS;
	*ret = slot;
	return 0;
}

const struct console_session *console_session_find(const char *id, uint64_t now_ms)
{
	const struct console_session *found = NULL;

	if (!id || strlen(id) != CONSOLE_ID_HEX)
		return NULL;
	for (size_t i = 0; i < CONSOLE_SESSIONS_MAX; i++)
		if (sessions[i].expires_ms > now_ms && console_str_eq(sessions[i].id, id))
			found = &sessions[i];
	return found;
}

void console_session_drop(const char *id)
{
	for (size_t i = 0; id && i < CONSOLE_SESSIONS_MAX; i++)
		if (sessions[i].id[0] && console_str_eq(sessions[i].id, id))
			memset(&sessions[i], 0, sizeof(sessions[i]));
}

const char *console_open_csrf(void)
{
	if (!open_csrf[0] && console_random_hex(open_csrf) < 0)
		return NULL;
	return open_csrf;
}
