/* docfetch: a probe's input document from a file or a URL (docfetch.h).
 * Files go through policy_read_file_async (allowed_paths, on the
 * threadpool), URLs through lib/net (allowed_targets on every address).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/net/http.h"
#include "lib/policy/policy.h"
#include "lib/probe/docfetch.h"
#include "lib/util/util.h"

#define DOCFETCH_TIMEOUT_MS 30000

struct docfetch {
	struct probe *p;
	const char *file_name; /* borrowed from the spec */
	docfetch_cb cb;
	void *userdata;
	struct policy_file *file;
	struct http_request *req;
	char why[512];
};

static void on_file(void *userdata, int err, char *buf, size_t len, const char *why)
{
	struct docfetch *d = userdata;
	docfetch_cb cb = d->cb;
	void *ud = d->userdata;

	if (err < 0)
		snprintf(d->why, sizeof(d->why), "file %s %s", d->file_name, why);
	d->file = NULL;
	if (err < 0) {
		char why_copy[sizeof(d->why)];

		memcpy(why_copy, d->why, sizeof(why_copy));
		free(d);
		cb(ud, err, NULL, 0, why_copy);
		return;
	}
	free(d);
	cb(ud, 0, buf, len, NULL);
}

static void on_response(void *userdata, const struct http_response *r)
{
	struct docfetch *d = userdata;
	docfetch_cb cb = d->cb;
	void *ud = d->userdata;
	char url[512], why[640];
	char *buf = NULL;
	int err = 0;

	rd_url_redact(r->effective_url ? r->effective_url : "", url, sizeof(url));
	if (r->err == -EFBIG) {
		err = -EFBIG;
		snprintf(why, sizeof(why),
		         "%s: the answer is larger than the size this probe reads", url);
	} else if (r->err < 0) {
		err = r->err;
		snprintf(why, sizeof(why), "%s: %s", url, r->error ? r->error : strerror(-r->err));
	} else if (r->status != 200) {
		err = -EPROTO;
		snprintf(why, sizeof(why), "%s answered HTTP %ld", url, r->status);
	} else if (!(buf = malloc(r->body_len + 1))) {
		err = -ENOMEM;
		snprintf(why, sizeof(why), "out of memory");
	} else {
		memcpy(buf, r->body, r->body_len);
		buf[r->body_len] = '\0';
	}
	free(d);
	cb(ud, err, buf, err < 0 ? 0 : r->body_len, err < 0 ? why : NULL);
}

int docfetch_start(struct probe *p, const char *file, const char *url, size_t max, docfetch_cb cb,
                   void *userdata, struct docfetch **ret)
{
	struct docfetch *d = calloc(1, sizeof(*d));
	int r;

	if (!d)
		return -ENOMEM;
	*d = (struct docfetch){.p = p, .file_name = file, .cb = cb, .userdata = userdata};
	if (file) {
		r = policy_read_file_async(p->loop, http_client_files(p->http), file,
		                           max < POLICY_MAX_FILE_SIZE ? max : POLICY_MAX_FILE_SIZE,
		                           on_file, d, &d->file);
	} else {
		struct http_options opt = {
		        .url = url,
		        .headers = p->sp->headers,
		        .n_headers = p->sp->n_headers,
		        .timeout_ms = p->sp->timeout_ms ? p->sp->timeout_ms : DOCFETCH_TIMEOUT_MS,
		        .insecure = p->sp->insecure,
		        .ca_file = p->sp->ca_file,
		        .max_body = max,
		};

		r = http_request_start(p->http, &opt, on_response, d, &d->req);
	}
	if (r < 0) {
		free(d);
		return r;
	}
	*ret = d;
	return 0;
}

void docfetch_cancel(struct docfetch *d)
{
	if (!d)
		return;
	if (d->file)
		policy_file_cancel(d->file);
	if (d->req)
		http_request_cancel(d->req);
	free(d);
}
