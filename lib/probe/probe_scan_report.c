/* probe_scan_report: the `scan-report` probe. Reads a security scanner's
 * output (SARIF 2.1.0 or Trivy's JSON) from a file the operator allows
 * (allowed_paths) or a URL, and publishes its findings counted by
 * severity for gates such as `scan.critical == 0`; by rule and the most
 * severe findings in details. The reading is lib/probe/scanreport.c; this
 * file is the glue. An input that cannot be read whole is an error, never
 * zero findings.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/probe/docfetch.h"
#include "lib/probe/probe.h"
#include "lib/probe/scanreport.h"
#include "lib/util/util.h"

struct scan_probe {
	struct probe *p;
	struct docfetch *fetch;
};

static void on_doc(void *userdata, int err, char *buf, size_t len, const char *why)
{
	struct scan_probe *sc = userdata;
	struct probe *p = sc->p;
	enum scanreport_format fmt = SCANREPORT_AUTO;
	char msg[512];
	json_t *sum = NULL;

	sc->fetch = NULL;
	if (err < 0) {
		probe_finish(p, PROBE_STATE_ERRORED, "cannot read the scan report: %s", why);
		return;
	}
	scanreport_format_from_string(p->sp->format, &fmt);
	err = scanreport_parse(buf, len, fmt, &sum, msg, sizeof(msg));
	free(buf);
	if (err < 0) {
		probe_finish(p, PROBE_STATE_ERRORED, "cannot read the scan report %s: %s",
		             p->sp->file ? p->sp->file : "(url)", msg);
		return;
	}
	for (int s = 0; s < _SCANREPORT_SEV_MAX; s++) {
		const char *n = scanreport_severity_name((enum scanreport_severity)s);

		probe_set_metric(p, n, (double)json_integer_value(json_object_get(sum, n)));
	}
	probe_set_metric(p, "total", (double)json_integer_value(json_object_get(sum, "total")));
	json_decref(p->details);
	p->details = sum;
	probe_finish(p, PROBE_STATE_PASSED, NULL);
}

static int scan_start(struct probe *p)
{
	struct scan_probe *sc = calloc(1, sizeof(*sc));
	int r;

	if (!sc)
		return -ENOMEM;
	sc->p = p;
	p->impl = sc;
	r = docfetch_start(p, p->sp->file, p->sp->url, SCANREPORT_MAX_BYTES, on_doc, sc,
	                   &sc->fetch);
	if (r < 0) {
		p->impl = NULL;
		free(sc);
	}
	return r;
}

static void scan_cancel(struct probe *p)
{
	struct scan_probe *sc = p->impl;

	if (sc) {
		docfetch_cancel(sc->fetch);
		sc->fetch = NULL;
	}
	probe_finish(p, PROBE_STATE_CANCELLED, NULL);
}

static void scan_free(struct probe *p)
{
	free(p->impl);
	p->impl = NULL;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* clang-format off */
static const char *const format_names[] = {"auto", "sarif", "trivy", NULL};
static const struct spec_field fields[] = {
	SPEC_F_COMMON, SPEC_F_URL(false), SPEC_F_HEADERS,
	{.key = "file",   .kind = FK_STRING, .flags = SPEC_FIELD_FILE, .off = SPEC_P(file),
	 .max = SPEC_MAX_TEXT, .check = spec_check_abs_path},
	{.key = "format", .kind = FK_STRING, .off = SPEC_P(format), .choices = format_names},
	SPEC_F_TLS_CLIENT,
};
/* clang-format on */

static int finish_scan(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	if (!p->file && !p->url)
		return spec_fail_at(v, obj, path, "file",
		                    "missing: give the report's file (under allowed_paths) or url");
	if (p->file && p->url)
		return spec_fail_at(v, obj, path, "url", "give file or url, not both");
	return 0;
}

static const struct probe_metric_def metrics[] = {
        {"critical", "findings", PROBE_SAMPLES_NONE}, {"high", "findings", PROBE_SAMPLES_NONE},
        {"medium", "findings", PROBE_SAMPLES_NONE},   {"low", "findings", PROBE_SAMPLES_NONE},
        {"unknown", "findings", PROBE_SAMPLES_NONE},  {"total", "findings", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_scan_report = {
        .name = "scan-report",
        .section = "Security",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_scan,
        .deadline_fixed_ms = PROBE_DEFAULT_DEADLINE_MS,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = scan_start,
                        .cancel = scan_cancel,
                        .free = scan_free,
                },
};
