/* readyd: main(). Reads flags and the config, opens the store (marking
 * runs a previous process left running as interrupted), wires the store,
 * the scheduler, the outgoing HTTP client and the API server onto one
 * libuv loop, and owns the process's life: signals, readiness, shutdown
 * and the exit code. Nothing else in readyd exits or reads signals.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "notify.h"
#include "sched.h"
#include "store.h"
#include "util.h"

struct daemon {
	uv_loop_t loop;
	struct rd_config cfg;
	struct store *store;
	struct http_client *http;
	struct sched *sched;
	struct api_server *api;
	struct api_app app;
	uv_signal_t sigint, sigterm, sighup;
	uv_timer_t shutdown_timer;
	const char *port_file;
	bool stopping;
	int exit_code;
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: readyd [OPTIONS]\n"
	           "\n"
	           "The deployment-readiness daemon: runs readiness specs, stores verdicts,\n"
	           "serves them over a JSON API.\n"
	           "\n"
	           "  -c, --config FILE      readyd.yaml (flags below override it)\n"
	           "  -l, --listen HOST:PORT listen address (default " RD_DEFAULT_LISTEN
	           "; port 0 = any)\n"
	           "  -d, --db PATH          SQLite database (default " RD_DEFAULT_DB ")\n"
	           "      --log-level LEVEL  error, warn, info or debug\n"
	           "      --port-file FILE   write the bound port there once listening\n"
	           "  -V, --version          print the version and exit\n"
	           "  -h, --help             this text\n");
}

/* Flags are applied after the config file, so they win. */
struct flags {
	const char *config, *listen, *db, *log_level, *port_file;
};

static int parse_flags(int argc, char **argv, struct flags *f)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"listen", required_argument, NULL, 'l'},
	        {"db", required_argument, NULL, 'd'},
	        {"log-level", required_argument, NULL, 'L'},
	        {"port-file", required_argument, NULL, 'p'},
	        {"version", no_argument, NULL, 'V'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:l:d:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			f->config = optarg;
			break;
		case 'l':
			f->listen = optarg;
			break;
		case 'd':
			f->db = optarg;
			break;
		case 'L':
			f->log_level = optarg;
			break;
		case 'p':
			f->port_file = optarg;
			break;
		case 'V':
			printf("readyd %s\n", READYD_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "readyd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int configure(struct daemon *d, int argc, char **argv)
{
	struct flags f = {0};
	char err[512];

	config_init(&d->cfg);
	if (!d->cfg.listen || !d->cfg.database || parse_flags(argc, argv, &f) < 0)
		return -EINVAL;
	if (f.config && config_load(&d->cfg, f.config, err, sizeof(err)) < 0) {
		log_error("Failed to load config: %s", err);
		return -EINVAL;
	}
	if ((f.listen && config_set_string(&d->cfg.listen, f.listen) < 0) ||
	    (f.db && config_set_string(&d->cfg.database, f.db) < 0))
		return -ENOMEM;
	if (f.log_level && rd_log_level_parse(f.log_level, &d->cfg.log_level) < 0) {
		log_error("Failed to parse '--log-level %s': use error, warn, info or debug",
		          f.log_level);
		return -EINVAL;
	}
	d->port_file = f.port_file;
	rd_log_set_level(d->cfg.log_level);
	return 0;
}

/* The default database lives under ./var: create that one directory level
 * so the quick start works on a fresh clone. */
static void ensure_db_dir(const char *db)
{
	char *copy = strdup(db), *dir;

	if (!copy)
		return;
	dir = dirname(copy);
	if (strcmp(dir, ".") != 0 && mkdir(dir, 0750) < 0 && errno != EEXIST)
		log_warn("Failed to create '%s': %s, ignoring", dir, strerror(errno));
	free(copy);
}

static int open_store(struct daemon *d)
{
	char err[512];
	int r;

	if (strcmp(d->cfg.database, ":memory:") != 0)
		ensure_db_dir(d->cfg.database);
	r = store_open(d->cfg.database, &d->store, err, sizeof(err));
	if (r < 0) {
		log_error("Failed to open database '%s': %s", d->cfg.database, err);
		return r;
	}
	r = store_runs_interrupt_stale(d->store, rd_now_ms());
	if (r > 0)
		log_warn("Marked %d run(s) left by a previous readyd as interrupted", r);
	else if (r < 0)
		log_warn("Failed to mark stale runs as interrupted: %s, ignoring", strerror(-r));
	return 0;
}

/* Written to a temporary name and renamed, so a reader never sees half. */
static void write_port_file(const char *path, int port)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) < 0)
		log_warn("Failed to write port file '%s': %s, ignoring", path, strerror(errno));
}

static void on_closed_free_nothing(uv_handle_t *h)
{
	(void)h;
}

static void finish_shutdown(void *userdata)
{
	struct daemon *d = userdata;

	api_server_free(d->api);
	d->api = NULL;
	http_client_free(d->http);
	d->http = NULL;
	uv_close((uv_handle_t *)&d->sigint, on_closed_free_nothing);
	uv_close((uv_handle_t *)&d->sigterm, on_closed_free_nothing);
	uv_close((uv_handle_t *)&d->sighup, on_closed_free_nothing);
	uv_close((uv_handle_t *)&d->shutdown_timer, on_closed_free_nothing);
}

static void on_shutdown_timeout(uv_timer_t *t)
{
	log_error("Failed to stop within the shutdown timeout: exiting anyway");
	exit(1);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;

	if (signum == SIGHUP) {
		log_info("SIGHUP: nothing to reload yet, ignoring");
		return;
	}
	if (d->stopping)
		return;
	d->stopping = true;
	log_info("received %s: stopping (active runs are recorded as interrupted)",
	         strsignal(signum));
	notify_stopping();
	uv_timer_start(&d->shutdown_timer, on_shutdown_timeout,
	               (uint64_t)d->cfg.shutdown_timeout_ms, 0);
	uv_unref((uv_handle_t *)&d->shutdown_timer);
	sched_shutdown(d->sched, true, finish_shutdown, d);
}

static int start_signals(struct daemon *d)
{
	uv_signal_t *sigs[] = {&d->sigint, &d->sigterm, &d->sighup};
	int nums[] = {SIGINT, SIGTERM, SIGHUP};

	for (size_t i = 0; i < RD_ARRAY_SIZE(sigs); i++) {
		uv_signal_init(&d->loop, sigs[i]);
		sigs[i]->data = d;
		uv_signal_start(sigs[i], on_signal, nums[i]);
	}
	uv_timer_init(&d->loop, &d->shutdown_timer);
	return 0;
}

static int start(struct daemon *d)
{
	struct api_config ac = {
	        .listen = d->cfg.listen,
	        .listen_fd = -1,
	        .max_body = d->cfg.max_body,
	        .max_connections = d->cfg.max_connections,
	};
	char err[512], status[128];
	int r;

	r = http_client_new(&d->loop, &d->http);
	if (r < 0 || (r = sched_new(&d->loop, d->store, d->http, &d->cfg.sched, &d->sched)) < 0) {
		log_error("Failed to start the scheduler: %s", strerror(-r));
		return r;
	}
	d->app = (struct api_app){.store = d->store, .sched = d->sched};
	r = api_server_new(&d->loop, &ac, &d->app, &d->api, err, sizeof(err));
	if (r < 0) {
		log_error("Failed to start the API server: %s", err);
		return r;
	}
	if (strchr(api_server_host(d->api), ':'))
		snprintf(status, sizeof(status), "listening on [%s]:%d", api_server_host(d->api),
		         api_server_port(d->api));
	else
		snprintf(status, sizeof(status), "listening on %s:%d", api_server_host(d->api),
		         api_server_port(d->api));
	log_info("%s", status);
	if (d->port_file)
		write_port_file(d->port_file, api_server_port(d->api));
	notify_ready(status);
	return 0;
}

int main(int argc, char **argv)
{
	struct daemon d = {0};
	int r;

	signal(SIGPIPE, SIG_IGN);
	if (configure(&d, argc, argv) < 0) {
		config_deinit(&d.cfg);
		return 2;
	}
	uv_loop_init(&d.loop);
	start_signals(&d);
	if (open_store(&d) < 0 || start(&d) < 0) {
		d.exit_code = 1;
		if (d.sched)
			sched_shutdown(d.sched, true, finish_shutdown, &d);
		else
			finish_shutdown(&d);
	}
	uv_run(&d.loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&d.loop);
	if (r < 0)
		log_error("Failed to close the event loop cleanly: %s", uv_strerror(r));
	sched_free(d.sched);
	store_free(d.store);
	config_deinit(&d.cfg);
	if (d.exit_code == 0)
		log_info("stopped");
	return d.exit_code;
}
