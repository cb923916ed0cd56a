/* probe_infrastructure: the `infrastructure` probe: facts about the host a
 * service will run on, for gates such as `infra.cpu_cores >= 32` or
 * `infra.gpu_memory_gib >= 80`. Three sources:
 *
 * - `source: local` (the default): the host readyd runs on. The CPUs
 *   readyd may run on (sched_getaffinity, what `nproc` prints),
 *   /proc/meminfo and statvfs() of each mount are read on the threadpool;
 *   GPUs come from `nvidia-smi`, spawned with uv_spawn and killed after
 *   INFRA_SMI_TIMEOUT_MS, never waited for on the loop.
 * - `source: URL`: a node_exporter's /metrics, checked with promtext and
 *   read through infra_facts.c.
 * - `prometheus:` + `instance:`: the same families through one instant
 *   query of Prometheus' API.
 *
 * Without nvidia-smi (or from node_exporter, which reports no GPUs) the
 * GPU metrics are not published at all, so a gate on them is an error,
 * never a pass; details say `gpu: "unavailable"` and why.
 *
 * It never touches the store and always ends with probe_finish().
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lib/prom/promapi.h"
#include "lib/prom/promtext.h"
#include "lib/probe/infra_facts.h"
#include "lib/probe/probe.h"
#include "lib/util/util.h"

#define INFRA_SMI             "nvidia-smi"
#define INFRA_SMI_TIMEOUT_MS  10000
#define INFRA_SMI_MAX_OUTPUT  16384
#define INFRA_HTTP_TIMEOUT_MS 30000
#define INFRA_PATH_MAX        4096

struct infra_probe;

/* One nvidia-smi run; freed once both handles closed, possibly after the
 * probe (detached: ip NULL). */
struct smi_run {
	struct infra_probe *ip;
	uv_process_t proc;
	uv_pipe_t out;
	int open_handles;
	bool exited, eof;
	int64_t status;
	size_t len;
	char buf[INFRA_SMI_MAX_OUTPUT];
};

struct infra_probe {
	struct probe *p;
	struct infra_facts facts;
	uv_work_t work;
	bool working;
	bool cancelled;
	uv_timer_t timer; /* nvidia-smi's timeout */
	struct smi_run *smi;
	struct http_request *req;
	struct promapi_call *call;
	enum probe_state state;
	char why[512];
};

static const char *source_of(const struct spec_probe *sp)
{
	if (sp->prometheus)
		return "prometheus";
	return sp->source && strcmp(sp->source, "local") != 0 ? "node_exporter" : "local";
}

static void on_timer_closed(uv_handle_t *h)
{
	struct infra_probe *ip = h->data;

	if (ip->state == PROBE_STATE_ERRORED)
		probe_finish(ip->p, ip->state, "%s", ip->why);
	else
		probe_finish(ip->p, ip->state, NULL);
}

/* Publishes (unless cancelled or in error) and finishes. */
static void infra_end(struct infra_probe *ip, enum probe_state state)
{
	struct probe *p = ip->p;
	json_t *m = NULL, *d = NULL;

	ip->state = state;
	if (state == PROBE_STATE_PASSED && isnan(ip->facts.cpu_cores) &&
	    isnan(ip->facts.memory_bytes)) {
		ip->state = PROBE_STATE_ERRORED;
		snprintf(
		        ip->why, sizeof(ip->why),
		        "no host facts found (node_cpu_seconds_total, node_memory_MemTotal_bytes)");
	}
	if (ip->state == PROBE_STATE_PASSED) {
		if (infra_facts_json(&ip->facts, &m, &d) < 0) {
			ip->state = PROBE_STATE_ERRORED;
			snprintf(ip->why, sizeof(ip->why), "out of memory");
		} else {
			json_decref(p->metrics);
			json_decref(p->details);
			p->metrics = m;
			p->details = d;
			json_object_set_new(d, "source", json_string(source_of(p->sp)));
			p->percent = 100;
		}
	}
	uv_close((uv_handle_t *)&ip->timer, on_timer_closed);
}

/* --- nvidia-smi --- */

static void on_smi_closed(uv_handle_t *h)
{
	struct smi_run *g = h->data;

	if (--g->open_handles == 0)
		free(g);
}

static void smi_maybe_done(struct smi_run *g)
{
	struct infra_probe *ip = g->ip;

	if (!g->exited || !g->eof)
		return;
	uv_close((uv_handle_t *)&g->proc, on_smi_closed);
	uv_close((uv_handle_t *)&g->out, on_smi_closed);
	if (!ip)
		return;
	ip->smi = NULL;
	uv_timer_stop(&ip->timer);
	g->buf[g->len] = '\0';
	if (g->status != 0)
		snprintf(ip->facts.gpu_error, sizeof(ip->facts.gpu_error),
		         "nvidia-smi exited with status %lld", (long long)g->status);
	else
		infra_facts_parse_nvidia_smi(g->buf, &ip->facts);
	infra_end(ip, PROBE_STATE_PASSED);
}

static void on_smi_exit(uv_process_t *proc, int64_t status, int sig)
{
	struct smi_run *g = proc->data;

	g->exited = true;
	g->status = sig ? 128 + sig : status;
	smi_maybe_done(g);
}

static void on_smi_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct smi_run *g = h->data;
	size_t room = sizeof(g->buf) - 1 - g->len;
	static char scratch[64]; /* output past the cap is dropped */

	(void)suggested;
	if (room == 0)
		*buf = uv_buf_init(scratch, sizeof(scratch));
	else
		*buf = uv_buf_init(g->buf + g->len, (unsigned int)room);
}

static void on_smi_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct smi_run *g = s->data;

	if (n > 0 && buf->base == g->buf + g->len)
		g->len += (size_t)n;
	if (n < 0) {
		uv_read_stop(s);
		g->eof = true;
		smi_maybe_done(g);
	}
}

/* Lets a running nvidia-smi go: killed, it cleans up after itself. */
static void smi_detach(struct infra_probe *ip)
{
	if (!ip->smi)
		return;
	ip->smi->ip = NULL;
	if (!ip->smi->exited)
		uv_process_kill(&ip->smi->proc, SIGKILL);
	ip->smi = NULL;
}

static void on_smi_timeout(uv_timer_t *t)
{
	struct infra_probe *ip = t->data;

	smi_detach(ip);
	snprintf(ip->facts.gpu_error, sizeof(ip->facts.gpu_error),
	         "nvidia-smi did not answer within %d s", INFRA_SMI_TIMEOUT_MS / 1000);
	infra_end(ip, PROBE_STATE_PASSED);
}

/* nvidia-smi in PATH, or NULL. */
static char *find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	char buf[INFRA_PATH_MAX];

	while (path && *path) {
		size_t n = strcspn(path, ":");

		if (n > 0 && n + strlen(name) + 2 <= sizeof(buf)) {
			snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
			if (access(buf, X_OK) == 0)
				return strdup(buf);
		}
		path += n + (path[n] == ':');
	}
	return NULL;
}

/* Spawns nvidia-smi; false (gpu_error says why) when it cannot run. */
static bool smi_spawn(struct infra_probe *ip, const char *file)
{
	char *args[] = {(char *)file, "--query-gpu=name,memory.total,memory.free",
	                "--format=csv,noheader,nounits", NULL};
	uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE}, {.flags = 0}, {.flags = UV_IGNORE}};
	uv_process_options_t opt = {0};
	struct smi_run *g = calloc(1, sizeof(*g));

	if (!g)
		return false;
	g->ip = ip;
	uv_pipe_init(ip->p->loop, &g->out, 0);
	g->out.data = g;
	g->proc.data = g;
	g->open_handles = 2;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&g->out;
	opt.file = file;
	opt.args = args;
	opt.exit_cb = on_smi_exit;
	opt.stdio = stdio;
	opt.stdio_count = 3;
	if (uv_spawn(ip->p->loop, &g->proc, &opt) < 0) {
		snprintf(ip->facts.gpu_error, sizeof(ip->facts.gpu_error), "cannot run %s", file);
		/* libuv initializes the process handle even when spawn fails. */
		uv_close((uv_handle_t *)&g->proc, on_smi_closed);
		uv_close((uv_handle_t *)&g->out, on_smi_closed);
		return false;
	}
	uv_read_start((uv_stream_t *)&g->out, on_smi_alloc, on_smi_read);
	ip->smi = g;
	return true;
}

static void gpus_local(struct infra_probe *ip)
{
	char *smi = find_in_path(INFRA_SMI);

	if (!smi) {
		snprintf(ip->facts.gpu_error, sizeof(ip->facts.gpu_error),
		         "nvidia-smi is not in PATH");
		infra_end(ip, PROBE_STATE_PASSED);
		return;
	}
	if (!smi_spawn(ip, smi)) {
		free(smi);
		infra_end(ip, PROBE_STATE_PASSED);
		return;
	}
	free(smi);
	uv_timer_start(&ip->timer, on_smi_timeout, INFRA_SMI_TIMEOUT_MS, 0);
}

/* --- local facts, on the threadpool --- */

static void local_work(uv_work_t *w)
{
	struct infra_probe *ip = w->data;
	struct infra_facts *f = &ip->facts;
	cpu_set_t set;
	char buf[8192];
	FILE *fp;
	size_t n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		f->cpu_cores = CPU_COUNT(&set);
	fp = fopen("/proc/meminfo", "re");
	if (fp) {
		n = fread(buf, 1, sizeof(buf) - 1, fp);
		buf[n] = '\0';
		fclose(fp);
		infra_facts_parse_meminfo(buf, &f->memory_bytes, &f->memory_available_bytes);
	}
	for (size_t i = 0; i < f->n_mounts; i++) {
		struct statvfs st;
		struct infra_mount *m = &f->mounts[i];

		if (statvfs(m->path, &st) < 0) {
			m->err = -errno;
			continue;
		}
		m->err = 0;
		m->free_bytes = (double)st.f_bavail * (double)st.f_frsize;
		m->total_bytes = (double)st.f_blocks * (double)st.f_frsize;
	}
}

static void local_done(uv_work_t *w, int status)
{
	struct infra_probe *ip = w->data;

	ip->working = false;
	if (ip->cancelled || status == UV_ECANCELED) {
		infra_end(ip, PROBE_STATE_CANCELLED);
		return;
	}
	gpus_local(ip);
}

/* --- node_exporter and Prometheus --- */

static void on_metrics(void *userdata, const struct http_response *r)
{
	struct infra_probe *ip = userdata;
	const char *url = ip->p->sp->source;
	struct promtext *pt = NULL;
	struct promtext_error err;
	enum promtext_format fmt = promtext_format_from_content_type(r->content_type);

	ip->req = NULL;
	if (r->err != 0) {
		snprintf(ip->why, sizeof(ip->why), "GET %s: %s", url,
		         r->error ? r->error : strerror(-r->err));
		infra_end(ip, PROBE_STATE_ERRORED);
		return;
	}
	if (r->status != 200) {
		snprintf(ip->why, sizeof(ip->why), "GET %s answered HTTP %ld, not 200", url,
		         r->status);
		infra_end(ip, PROBE_STATE_ERRORED);
		return;
	}
	if (promtext_parse(r->body, r->body_len, fmt, &pt, &err) < 0) {
		snprintf(ip->why, sizeof(ip->why), "%s does not parse: line %zu: %s", url, err.line,
		         err.message);
		infra_end(ip, PROBE_STATE_ERRORED);
		return;
	}
	promtext_free(pt);
	snprintf(ip->facts.gpu_error, sizeof(ip->facts.gpu_error), "node_exporter reports no GPU");
	if (infra_facts_parse_exposition(r->body, r->body_len, &ip->facts) < 0) {
		snprintf(ip->why, sizeof(ip->why), "out of memory");
		infra_end(ip, PROBE_STATE_ERRORED);
		return;
	}
	infra_end(ip, PROBE_STATE_PASSED);
}

static void on_query(void *userdata, int err, json_t *data, const char *message)
{
	struct infra_probe *ip = userdata;

	ip->call = NULL;
	snprintf(ip->facts.gpu_error, sizeof(ip->facts.gpu_error), "node_exporter reports no GPU");
	if (err < 0 || infra_facts_parse_vector(data, &ip->facts) < 0) {
		snprintf(ip->why, sizeof(ip->why), "%s",
		         err < 0 ? message : "not an instant vector");
		infra_end(ip, PROBE_STATE_ERRORED);
		return;
	}
	infra_end(ip, PROBE_STATE_PASSED);
}

/* One instant query for every family infra_facts reads, of one instance. */
static int query_prometheus(struct infra_probe *ip)
{
	const struct spec_probe *sp = ip->p->sp;
	char *q = NULL;
	const char *params[] = {"query", NULL, NULL};
	int r;

	if (asprintf(&q,
	             "{__name__=~\"node_cpu_seconds_total|node_memory_MemTotal_bytes|"
	             "node_memory_MemAvailable_bytes|node_filesystem_avail_bytes|"
	             "node_filesystem_size_bytes\",instance=\"%s\"}",
	             sp->instance) < 0)
		return -ENOMEM;
	params[1] = q;
	r = promapi_get(ip->p->http, sp, "/api/v1/query", params, INFRA_HTTP_TIMEOUT_MS, on_query,
	                ip, &ip->call);
	free(q);
	return r;
}

static int infra_probe_start(struct probe *p)
{
	const struct spec_probe *sp = p->sp;
	static char *const root[] = {"/"};
	struct infra_probe *ip = calloc(1, sizeof(*ip));
	struct http_options opt = {
	        .url = sp->source,
	        .headers = sp->headers,
	        .n_headers = sp->n_headers,
	        .timeout_ms = INFRA_HTTP_TIMEOUT_MS,
	        .insecure = sp->insecure,
	};
	int r = 0;

	if (!ip)
		return -ENOMEM;
	ip->p = p;
	p->impl = ip;
	infra_facts_init(&ip->facts, sp->n_mounts ? sp->mounts : root,
	                 sp->n_mounts ? sp->n_mounts : 1);
	uv_timer_init(p->loop, &ip->timer);
	ip->timer.data = ip;
	ip->work.data = ip;
	if (sp->prometheus)
		r = query_prometheus(ip);
	else if (strcmp(source_of(sp), "node_exporter") == 0)
		r = http_request_start(p->http, &opt, on_metrics, ip, &ip->req);
	else if ((r = uv_queue_work(p->loop, &ip->work, local_work, local_done)) == 0)
		ip->working = true;
	if (r < 0) {
		snprintf(ip->why, sizeof(ip->why), "cannot start: %s", strerror(-r));
		infra_end(ip, PROBE_STATE_ERRORED);
	}
	return 0;
}

static void infra_probe_cancel(struct probe *p)
{
	struct infra_probe *ip = p->impl;

	if (!ip) {
		probe_finish(p, PROBE_STATE_CANCELLED, NULL);
		return;
	}
	ip->cancelled = true;
	if (ip->working) {
		uv_cancel((uv_req_t *)&ip->work); /* else local_done ends it */
		return;
	}
	if (uv_is_closing((uv_handle_t *)&ip->timer))
		return; /* already ending */
	smi_detach(ip);
	http_request_cancel(ip->req);
	ip->req = NULL;
	promapi_cancel(ip->call);
	ip->call = NULL;
	infra_end(ip, PROBE_STATE_CANCELLED);
}

static void infra_probe_free(struct probe *p)
{
	struct infra_probe *ip = p->impl;

	if (!ip)
		return;
	smi_detach(ip);
	free(ip);
	p->impl = NULL;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

static int check_source(char *s, char *msg, size_t len)
{
	if (strcmp(s, "local") == 0)
		return 0;
	if (!strstr(s, "://")) {
		snprintf(msg, len,
		         "must be `local` or the http(s) URL of a node_exporter's /metrics");
		return -EINVAL;
	}
	return spec_check_url(s, msg, len);
}

/* clang-format off */
static const struct spec_field fields[] = {
	SPEC_F_COMMON,
	{.key = "source",     .kind = FK_STRING, .flags = SPEC_FIELD_URL | SPEC_FIELD_WORD,
	 .off = SPEC_P(source), .max = SPEC_MAX_URL, .check = check_source, .sdef = "local"},
	{.key = "prometheus", .kind = FK_STRING, .flags = SPEC_FIELD_URL,
	 .off = SPEC_P(prometheus), .max = SPEC_MAX_URL, .check = spec_check_url},
	{.key = "instance",   .kind = FK_STRING, .off = SPEC_P(instance), .max = 1024},
	{.key = "mounts",     .kind = FK_STRING_LIST, .off = SPEC_P(mounts),
	 .count_off = SPEC_P(n_mounts), .max = INFRA_MAX_MOUNTS, .check = spec_check_abs_path},
	SPEC_F_HEADERS,
	{.key = "insecure",   .kind = FK_BOOL, .off = SPEC_P(insecure)},
};
/* clang-format on */

static int finish_infra(struct spec_vctx *v, json_t *obj, const char *path, struct spec_probe *p)
{
	if (p->prometheus && !p->instance)
		return spec_fail_at(v, obj, path, "instance",
		                    "missing (required with prometheus: the node_exporter's "
		                    "instance label)");
	if (p->instance && !p->prometheus)
		return spec_fail_at(v, obj, path, "instance", "only applies with prometheus");
	if (p->prometheus && json_object_get(obj, "source"))
		return spec_fail_at(v, obj, path, "source",
		                    "give source or prometheus + instance, not both");
	/* It goes into a PromQL string literal as it is. */
	if (p->instance && strpbrk(p->instance, "\"\\\n"))
		return spec_fail_at(v, obj, path, "instance",
		                    "must not contain a quote, a backslash or a newline");
	return 0;
}

static const struct probe_metric_def metrics[] = {
        {"cpu_cores", "cores", PROBE_SAMPLES_NONE},
        {"memory_gib", "GiB", PROBE_SAMPLES_NONE},
        {"memory_available_gib", "GiB", PROBE_SAMPLES_NONE},
        {"disk_free_gib", "GiB", PROBE_SAMPLES_NONE},
        {"disk_free_gib_min", "GiB", PROBE_SAMPLES_NONE},
        {"gpu_count", "GPUs", PROBE_SAMPLES_NONE},
        {"gpu_memory_gib", "GiB", PROBE_SAMPLES_NONE},
        {"gpu_memory_free_gib", "GiB", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_infrastructure = {
        .name = "infrastructure",
        .section = "Performance",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_infra,
        .deadline_fixed_ms = PROBE_DEFAULT_DEADLINE_MS,
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = infra_probe_start,
                        .cancel = infra_probe_cancel,
                        .free = infra_probe_free,
                },
};
