/* errors: how readyctl reports an error on stderr. As text, one line
 * `readyctl: message`; with --json, one JSON object per error
 * ({"error": message, ...}), so a script that asked for JSON can parse
 * failures too. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lib/util/json_text.h"

bool ctl_json_errors;

void ctl_error_json(json_t *err)
{
	char *text = err ? rd_json_dumps(err, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

	if (text)
		fprintf(stderr, "%s\n", text);
	else
		fputs("{\"error\":\"out of memory\"}\n", stderr);
	free(text);
	json_decref(err);
}

void ctl_errorf(const char *fmt, ...)
{
	char msg[2048];
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!ctl_json_errors) {
		fprintf(stderr, "readyctl: %s", msg);
		return;
	}
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	ctl_error_json(json_pack("{s:s}", "error", msg));
}
