/* scanreport: reads a security scanner's output, SARIF 2.1.0 or Trivy's
 * JSON, into counts by severity, counts by rule and the most severe
 * findings, for the scan-report probe (probe_scan_report.c). Pure: a
 * function of the bytes, without I/O, so fixtures can be tested alone.
 * Any thread.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>

#define SCANREPORT_MAX_BYTES (8 * 1024 * 1024) /* a report over this is refused */
#define SCANREPORT_MAX_TOP   20                /* findings listed in details */
#define SCANREPORT_MAX_RULES 200               /* rules counted in details */

enum scanreport_format {
	SCANREPORT_AUTO = 0,
	SCANREPORT_SARIF,
	SCANREPORT_TRIVY,
};

/* The severities, most severe first; the names are the metrics'. */
enum scanreport_severity {
	SCANREPORT_CRITICAL = 0,
	SCANREPORT_HIGH,
	SCANREPORT_MEDIUM,
	SCANREPORT_LOW,
	SCANREPORT_UNKNOWN, /* SARIF level none or score 0, Trivy UNKNOWN */
	_SCANREPORT_SEV_MAX,
};

const char *scanreport_severity_name(enum scanreport_severity s);

/* "sarif" | "trivy" | "auto" (NULL: auto). -EINVAL for another word. */
int scanreport_format_from_string(const char *s, enum scanreport_format *ret);

/* A CVSS-style score (SARIF's properties.security-severity) as a
 * severity: >= 9 critical, >= 7 high, >= 4 medium, > 0 low, else
 * unknown. */
enum scanreport_severity scanreport_severity_of_score(double score);

/* Parses buf (len bytes, need not be NUL-terminated) as fmt (AUTO: SARIF
 * when the document has "runs" or a "$schema"/"version" naming SARIF,
 * Trivy when it has "Results" or "SchemaVersion"). On success *ret is a
 * new object:
 *   {"format": "sarif"|"trivy", "tool": "...", "critical": n, "high": n,
 *    "medium": n, "low": n, "unknown": n, "total": n,
 *    "by_rule": {"RULE": {"severity": "...", "count": n}, ...},
 *    "rules_truncated": bool,
 *    "top": [{"id", "severity", "kind", "package"?, "location"?,
 *             "message"?}, ...]}   (most severe first, SCANREPORT_MAX_TOP)
 * Returns 0; -EFBIG (over SCANREPORT_MAX_BYTES), -EINVAL (not JSON, not
 * the format, a malformed part), -ENOMEM; why says what, naming the path
 * of a malformed part ("runs[0].results[3].level"), never quoting the
 * report's content. */
int scanreport_parse(const char *buf, size_t len, enum scanreport_format fmt, json_t **ret,
                     char *why, size_t whylen);
