/* probe_resources: CPU, memory and GPU use of the service while the run's
 * later probes (its load) execute. A background probe (probe_ops.stop):
 * the scheduler starts it and moves on; it samples every `interval` until
 * the scheduler stops it after the run's last probe, then publishes what
 * it saw. Place it before the load probes it should watch.
 *
 * CPU is percent of one core, like top: (utime + stime) delta over wall
 * time between two samples, so 250 means two and a half cores busy. It
 * comes from /proc/<pid>/stat, or a cgroup v2's cpu.stat usage_usec; RSS
 * from /proc/<pid>/status VmRSS or the cgroup's memory.current (MiB). GPU
 * comes from `nvidia-smi --query-gpu=...` when it is in PATH, spawned with
 * uv_spawn (never waited for on the loop); without it the details say
 * gpu: "unavailable", which is an error only with gpu_required.
 *
 * /proc and /sys are read on the loop: they are memory-backed, answer
 * without blocking and are a few hundred bytes each. A process that exits
 * ends the sampling; what was measured is kept and details say so.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/policy/policy.h"
#include "lib/probe/probe.h"
#include "lib/util/util.h"

#define RES_READ_MAX     4096
#define RES_CGROUP_ROOT  "/sys/fs/cgroup"
#define RES_GPU_MAX_OUT  4096
#define RES_MIB          (1024.0 * 1024.0)
#define RES_NVIDIA_SMI   "nvidia-smi"
#define RES_PATH_MAX_LEN 4096
#define RES_PID_FILE_MAX 4096 /* a pid file holds one number */

struct res_probe;

/* One nvidia-smi invocation; freed once both of its handles closed. */
struct gpu_run {
	uv_process_t proc;
	uv_pipe_t out;
	char buf[RES_GPU_MAX_OUT];
	size_t len;
	int open_handles;
	bool exited, eof;
	int64_t exit_status;
	struct res_probe *rp; /* NULL once the probe no longer wants the result */
};

struct res_probe {
	struct probe *p;
	uv_timer_t timer;
	pid_t pid;
	char cg_dir[RES_PATH_MAX_LEN];
	bool use_cgroup, vanished, stopped;
	char source[RES_PATH_MAX_LEN + 32];
	/* samples */
	uint64_t last_hr;
	double last_cpu_s;
	bool have_last;
	double cpu_max, cpu_sum, rss_max;
	int cpu_n, samples;
	/* gpu */
	char *smi; /* path of nvidia-smi or NULL */
	struct gpu_run *gpu;
	double gpu_util_max, gpu_mem_max;
	int gpu_samples;
	char gpu_error[160];
	struct policy_file *pid_read; /* pid_file being read off the loop */
};

/* Reads a small file into buf (NUL-terminated); 0 or -errno. */
static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	close(fd);
	buf[n] = '\0';
	return 0;
}

/* utime + stime of /proc/<pid>/stat, in seconds. */
static int proc_cpu(pid_t pid, double *ret_s)
{
	char path[64], buf[RES_READ_MAX], *s, *end;
	unsigned long long v[2];
	int field = 2; /* the field after ")" is the 3rd, "state" */

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return -ESRCH;
	/* comm may hold spaces and parentheses: fields resume after the last ')'. */
	s = strrchr(buf, ')');
	if (!s)
		return -EINVAL;
	for (s++; *s && field < 15; field++) {
		while (*s == ' ')
			s++;
		if (field == 13 || field == 14) {
			errno = 0;
			v[field - 13] = strtoull(s, &end, 10);
			if (errno || end == s)
				return -EINVAL;
			s = end;
		} else {
			s += strcspn(s, " ");
		}
	}
	if (field < 15)
		return -EINVAL;
	*ret_s = (double)(v[0] + v[1]) / (double)sysconf(_SC_CLK_TCK);
	return 0;
}

/* A "Name:   123 kB" line of /proc/<pid>/status, in bytes. */
static int proc_rss(pid_t pid, double *ret_bytes)
{
	char path[64], buf[RES_READ_MAX], *s, *end;
	long long kb;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return -ESRCH;
	s = strstr(buf, "\nVmRSS:");
	if (!s)
		return -ESRCH; /* a zombie has no memory left */
	errno = 0;
	kb = strtoll(s + 7, &end, 10);
	if (errno || end == s + 7 || kb < 0)
		return -EINVAL;
	*ret_bytes = (double)kb * 1024.0;
	return 0;
}

static int cgroup_cpu(const char *dir, double *ret_s)
{
	char path[RES_PATH_MAX_LEN + 16], buf[RES_READ_MAX], *s, *end;
	unsigned long long us;

	snprintf(path, sizeof(path), "%s/cpu.stat", dir);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return -ESRCH;
	s = strstr(buf, "usage_usec ");
	if (!s || (s != buf && s[-1] != '\n'))
		return -EINVAL;
	errno = 0;
	us = strtoull(s + 11, &end, 10);
	if (errno || end == s + 11)
		return -EINVAL;
	*ret_s = (double)us / 1e6;
	return 0;
}

static int cgroup_mem(const char *dir, double *ret_bytes)
{
	char path[RES_PATH_MAX_LEN + 16], buf[64];
	int64_t v;
	size_t n;

	snprintf(path, sizeof(path), "%s/memory.current", dir);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return -ESRCH;
	n = strcspn(buf, "\n");
	buf[n] = '\0';
	if (rd_parse_int64(buf, 0, INT64_MAX, &v) < 0)
		return -EINVAL;
	*ret_bytes = (double)v;
	return 0;
}

/* One sample: CPU since the previous one, and memory now. */
static int res_sample(struct res_probe *rp)
{
	uint64_t now = uv_hrtime();
	double cpu, mem;
	int e;

	if (rp->use_cgroup) {
		e = cgroup_cpu(rp->cg_dir, &cpu);
		if (e == 0)
			e = cgroup_mem(rp->cg_dir, &mem);
	} else {
		e = proc_cpu(rp->pid, &cpu);
		if (e == 0)
			e = proc_rss(rp->pid, &mem);
	}
	if (e < 0)
		return e;
	rp->samples++;
	if (mem > rp->rss_max)
		rp->rss_max = mem;
	if (rp->have_last && now > rp->last_hr) {
		double pct = 100.0 * (cpu - rp->last_cpu_s) / ((double)(now - rp->last_hr) / 1e9);

		if (pct < 0)
			pct = 0;
		rp->cpu_sum += pct;
		rp->cpu_n++;
		if (pct > rp->cpu_max)
			rp->cpu_max = pct;
	}
	rp->last_hr = now;
	rp->last_cpu_s = cpu;
	rp->have_last = true;
	return 0;
}

/* --- GPU through nvidia-smi --- */

static void on_gpu_closed(uv_handle_t *h)
{
	struct gpu_run *g = h->data;

	if (--g->open_handles == 0)
		free(g);
}

/* Lines of "util, used, total" (percent, MiB, MiB), one per GPU. */
static void gpu_parse(struct res_probe *rp, struct gpu_run *g)
{
	char *line = g->buf, *next;
	int seen = 0;

	g->buf[g->len] = '\0';
	for (; *line; line = next) {
		double v[3];
		char *s = line, *end;
		int i;

		next = line + strcspn(line, "\n");
		if (*next)
			*next++ = '\0';
		for (i = 0; i < 3; i++) {
			while (*s == ' ' || *s == ',')
				s++;
			errno = 0;
			v[i] = strtod(s, &end);
			if (errno || end == s)
				break;
			s = end;
		}
		if (i < 3 || v[2] <= 0)
			continue;
		seen++;
		if (v[0] > rp->gpu_util_max)
			rp->gpu_util_max = v[0];
		if (100.0 * v[1] / v[2] > rp->gpu_mem_max)
			rp->gpu_mem_max = 100.0 * v[1] / v[2];
	}
	if (seen)
		rp->gpu_samples++;
	else
		snprintf(rp->gpu_error, sizeof(rp->gpu_error), "nvidia-smi printed no GPU line");
}

static void gpu_maybe_done(struct gpu_run *g)
{
	struct res_probe *rp = g->rp;

	if (!g->exited || !g->eof)
		return;
	if (rp) {
		rp->gpu = NULL;
		if (g->exit_status == 0)
			gpu_parse(rp, g);
		else
			snprintf(rp->gpu_error, sizeof(rp->gpu_error),
			         "nvidia-smi exited with status %lld", (long long)g->exit_status);
	}
	uv_close((uv_handle_t *)&g->proc, on_gpu_closed);
	uv_close((uv_handle_t *)&g->out, on_gpu_closed);
}

static void on_gpu_exit(uv_process_t *proc, int64_t status, int sig)
{
	struct gpu_run *g = proc->data;

	g->exited = true;
	g->exit_status = sig ? 128 + sig : status;
	gpu_maybe_done(g);
}

static void on_gpu_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct gpu_run *g = h->data;
	size_t room = sizeof(g->buf) - 1 - g->len;

	/* A full buffer reads into a scratch byte: output past the cap is
	 * dropped, never grown. */
	static char scratch[64];

	if (room == 0)
		*buf = uv_buf_init(scratch, sizeof(scratch));
	else
		*buf = uv_buf_init(g->buf + g->len, (unsigned int)room);
}

static void on_gpu_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct gpu_run *g = s->data;

	if (n > 0 && buf->base != g->buf + g->len)
		return; /* over the cap */
	if (n > 0) {
		g->len += (size_t)n;
		return;
	}
	if (n < 0) {
		uv_read_stop(s);
		g->eof = true;
		gpu_maybe_done(g);
	}
}

static void gpu_spawn(struct res_probe *rp)
{
	char *args[] = {rp->smi, "--query-gpu=utilization.gpu,memory.used,memory.total",
	                "--format=csv,noheader,nounits", NULL};
	uv_stdio_container_t stdio[3];
	uv_process_options_t opt = {0};
	struct gpu_run *g;

	if (rp->gpu || !rp->smi)
		return; /* the previous one is still running: skip this sample */
	g = calloc(1, sizeof(*g));
	if (!g)
		return;
	g->rp = rp;
	uv_pipe_init(rp->p->loop, &g->out, 0);
	g->out.data = g;
	g->proc.data = g;
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&g->out;
	stdio[2].flags = UV_IGNORE;
	opt.file = rp->smi;
	opt.args = args;
	opt.exit_cb = on_gpu_exit;
	opt.stdio = stdio;
	opt.stdio_count = 3;
	if (uv_spawn(rp->p->loop, &g->proc, &opt) < 0) {
		snprintf(rp->gpu_error, sizeof(rp->gpu_error), "cannot run %s", rp->smi);
		/* libuv initializes the process handle even when spawn fails. */
		g->open_handles = 2;
		uv_close((uv_handle_t *)&g->proc, on_gpu_closed);
		uv_close((uv_handle_t *)&g->out, on_gpu_closed);
		return;
	}
	g->open_handles = 2;
	uv_read_start((uv_stream_t *)&g->out, on_gpu_alloc, on_gpu_read);
	rp->gpu = g;
}

/* Lets a running nvidia-smi go: it is killed and cleans up after itself. */
static void gpu_detach(struct res_probe *rp)
{
	if (!rp->gpu)
		return;
	rp->gpu->rp = NULL;
	if (!rp->gpu->exited)
		uv_process_kill(&rp->gpu->proc, SIGKILL);
	rp->gpu = NULL;
}

/* nvidia-smi in PATH, or NULL. */
static char *find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	char buf[RES_PATH_MAX_LEN];

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

/* --- the probe --- */

static void res_publish(struct res_probe *rp)
{
	struct probe *p = rp->p;
	json_t *d = json_object();

	probe_set_metric(p, "samples", rp->samples);
	if (rp->cpu_n > 0) {
		probe_set_metric(p, "cpu_percent_max", rp->cpu_max);
		probe_set_metric(p, "cpu_percent_avg", rp->cpu_sum / rp->cpu_n);
		/* The short name gates usually use: the average. */
		probe_set_metric(p, "cpu_percent", rp->cpu_sum / rp->cpu_n);
	}
	if (rp->samples > 0)
		probe_set_metric(p, "rss_mb_max", rp->rss_max / RES_MIB);
	if (rp->gpu_samples > 0) {
		probe_set_metric(p, "gpu_util_max", rp->gpu_util_max);
		probe_set_metric(p, "gpu_mem_used_pct_max", rp->gpu_mem_max);
	}
	if (!d)
		return;
	json_object_set_new(d, "source", json_string(rp->source));
	json_object_set_new(d, "gpu",
	                    json_string(!rp->smi              ? "unavailable"
	                                : rp->gpu_samples > 0 ? "nvidia-smi"
	                                                      : "no data"));
	if (rp->gpu_error[0])
		json_object_set_new(d, "gpu_error", json_string(rp->gpu_error));
	if (rp->vanished)
		json_object_set_new(d, "note",
		                    json_string("the process went away during sampling; metrics "
		                                "cover the time before"));
	json_decref(p->details);
	p->details = d;
}

static void res_end(struct res_probe *rp)
{
	const struct spec_probe *sp = rp->p->sp;

	uv_timer_stop(&rp->timer);
	gpu_detach(rp);
	res_publish(rp);
	if (sp->gpu_required && rp->gpu_samples == 0) {
		probe_finish(rp->p, PROBE_STATE_ERRORED, "gpu_required, but %s",
		             !rp->smi           ? "nvidia-smi is not in PATH"
		             : rp->gpu_error[0] ? rp->gpu_error
		                                : "nvidia-smi answered no sample in time");
		return;
	}
	if (rp->samples == 0) {
		probe_finish(rp->p, PROBE_STATE_ERRORED, "%s could not be sampled", rp->source);
		return;
	}
	probe_finish(rp->p, PROBE_STATE_PASSED, NULL);
}

static void on_res_timer(uv_timer_t *t)
{
	struct res_probe *rp = t->data;

	if (res_sample(rp) < 0) {
		/* The process (or cgroup) is gone: keep what was measured. */
		rp->vanished = true;
		res_end(rp);
		return;
	}
	gpu_spawn(rp);
}

static void res_probe_stop(struct probe *p)
{
	struct res_probe *rp = p->impl;

	if (!rp || rp->stopped)
		return;
	rp->stopped = true;
	if (rp->pid_read)
		return; /* on_pid_file takes the one sample there is time for */
	/* A last sample, so that a short window still yields a CPU figure. */
	if (res_sample(rp) < 0)
		rp->vanished = true;
	res_end(rp);
}

static void res_probe_cancel(struct probe *p)
{
	struct res_probe *rp = p->impl;

	if (rp) {
		policy_file_cancel(rp->pid_read);
		rp->pid_read = NULL;
		uv_timer_stop(&rp->timer);
		gpu_detach(rp);
		res_publish(rp);
	}
	probe_finish(p, PROBE_STATE_CANCELLED, NULL);
}

static void on_res_closed(uv_handle_t *h)
{
	struct res_probe *rp = h->data;

	free(rp->smi);
	free(rp);
}

static void res_probe_free(struct probe *p)
{
	struct res_probe *rp = p->impl;

	if (!rp)
		return;
	p->impl = NULL;
	policy_file_cancel(rp->pid_read);
	gpu_detach(rp);
	uv_close((uv_handle_t *)&rp->timer, on_res_closed);
}

/* The pid from pid_file's text: one decimal number, white space around
 * it. */
static int parse_pid(char *s, pid_t *ret_pid)
{
	int64_t v;
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	if (rd_parse_int64(s, 1, INT_MAX, &v) < 0)
		return -EINVAL;
	*ret_pid = (pid_t)v;
	return 0;
}

/* Starts sampling what res_target found. */
static void res_begin(struct res_probe *rp)
{
	struct probe *p = rp->p;

	if (res_sample(rp) < 0) {
		probe_finish(p, PROBE_STATE_ERRORED, "%s cannot be read (does it exist?)",
		             rp->source);
		return;
	}
	rp->smi = find_in_path(RES_NVIDIA_SMI);
	gpu_spawn(rp);
	uv_timer_start(&rp->timer, on_res_timer, (uint64_t)p->sp->interval_ms,
	               (uint64_t)p->sp->interval_ms);
}

/* pid_file arrives from the threadpool: confined to allowed_paths, never
 * read on the loop (a FIFO there would block it). Its text is never
 * quoted in a message. */
static void on_pid_file(void *userdata, int err, char *buf, size_t len, const char *why)
{
	struct res_probe *rp = userdata;
	const char *path = rp->p->sp->pid_file;

	rp->pid_read = NULL;
	if (err < 0) {
		probe_finish(rp->p, PROBE_STATE_ERRORED, "pid_file %s %s", path, why);
		return;
	}
	err = parse_pid(buf, &rp->pid);
	free(buf);
	if (err < 0) {
		probe_finish(rp->p, PROBE_STATE_ERRORED, "pid_file %s does not hold a process id",
		             path);
		return;
	}
	snprintf(rp->source, sizeof(rp->source), "process %d (from %.200s)", (int)rp->pid, path);
	if (!rp->stopped)
		return res_begin(rp);
	if (res_sample(rp) < 0)
		probe_finish(rp->p, PROBE_STATE_ERRORED, "%s cannot be read (does it exist?)",
		             rp->source);
	else
		res_end(rp);
}

/* Finds what to sample; returns 1 when pid_file is being read. */
static int res_target(struct res_probe *rp)
{
	const struct spec_probe *sp = rp->p->sp;

	if (sp->cgroup) {
		rp->use_cgroup = true;
		snprintf(rp->cg_dir, sizeof(rp->cg_dir), "%s%s%s", RES_CGROUP_ROOT,
		         sp->cgroup[0] == '/' ? "" : "/", sp->cgroup);
		snprintf(rp->source, sizeof(rp->source), "cgroup %s", sp->cgroup);
		return 0;
	}
	if (sp->pid_file) {
		int e = policy_read_file_async(rp->p->loop, http_client_files(rp->p->http),
		                               sp->pid_file, RES_PID_FILE_MAX, on_pid_file, rp,
		                               &rp->pid_read);

		return e < 0 ? e : 1;
	}
	rp->pid = (pid_t)sp->pid;
	snprintf(rp->source, sizeof(rp->source), "process %d", (int)rp->pid);
	return 0;
}

static int res_probe_start(struct probe *p)
{
	struct res_probe *rp;
	int e;

	if (p->sp->interval_ms <= 0)
		return -EINVAL;
	rp = calloc(1, sizeof(*rp));
	if (!rp)
		return -ENOMEM;
	rp->p = p;
	e = uv_timer_init(p->loop, &rp->timer);
	if (e < 0) {
		free(rp);
		return e;
	}
	rp->timer.data = rp;
	p->impl = rp;
	e = res_target(rp);
	if (e < 0)
		probe_finish(p, PROBE_STATE_ERRORED, "cannot read pid_file: %s", strerror(-e));
	else if (e == 0)
		res_begin(rp);
	return 0;
}

/* --- the type: its spec fields, rules, metrics and ops --- */

/* One field per line, aligned by hand: read as a schema more than as
 * code. */
#define MAX_PID 4194304 /* PID_MAX_LIMIT on 64-bit Linux */

/* clang-format off */
static const struct spec_field fields[] = {
	SPEC_F_COMMON,
	{.key = "pid",          .kind = FK_INT, .off = SPEC_P(pid), .min = 1, .max = MAX_PID},
	{.key = "pid_file",     .kind = FK_STRING, .flags = SPEC_FIELD_FILE,
	 .off = SPEC_P(pid_file), .max = SPEC_MAX_TEXT, .check = spec_check_abs_path},
	{.key = "cgroup",       .kind = FK_STRING, .off = SPEC_P(cgroup), .max = SPEC_MAX_TEXT,
	 .check = spec_check_cgroup},
	{.key = "interval",     .kind = FK_DURATION, .off = SPEC_P(interval_ms), .min = 1,
	 .max = SPEC_MAXD, .def = 1000},
	{.key = "gpu_required", .kind = FK_BOOL, .off = SPEC_P(gpu_required)},
};
/* clang-format on */

static int finish_resources(struct spec_vctx *v, json_t *obj, const char *path,
                            struct spec_probe *p)
{
	int given = (p->pid > 0) + (p->pid_file != NULL) + (p->cgroup != NULL);

	if (given == 0)
		return spec_fail(v, obj, path, "needs one of pid, pid_file or cgroup");
	if (given > 1)
		return spec_fail_at(v, obj, path, p->cgroup ? "cgroup" : "pid_file",
		                    "give only one of pid, pid_file and cgroup");
	return 0;
}

/* A background probe samples until the later probes ended: the run
 * bounds it. */
static int64_t resources_deadline(const struct spec *s, const struct spec_probe *sp)
{
	(void)sp;
	return s->timeout_ms;
}

static const struct probe_metric_def metrics[] = {
        {"cpu_percent_max", "%", PROBE_SAMPLES_NONE},
        {"cpu_percent_avg", "%", PROBE_SAMPLES_NONE},
        {"cpu_percent", "%", PROBE_SAMPLES_NONE},
        {"rss_mb_max", "MB", PROBE_SAMPLES_NONE},
        {"samples", "samples", PROBE_SAMPLES_NONE},
        {"gpu_util_max", "%", PROBE_SAMPLES_NONE},
        {"gpu_mem_used_pct_max", "%", PROBE_SAMPLES_NONE},
};

const struct probe_type_def probe_type_resources = {
        .name = "resources",
        .section = "Performance",
        .fields = fields,
        .n_fields = RD_ARRAY_SIZE(fields),
        .finish = finish_resources,
        .deadline_ms = resources_deadline,
        .deadline_doc = "the run's `timeout`",
        .metrics = metrics,
        .n_metrics = RD_ARRAY_SIZE(metrics),
        .ops =
                {
                        .start = res_probe_start,
                        .cancel = res_probe_cancel,
                        .free = res_probe_free,
                        .stop = res_probe_stop,
                },
};
