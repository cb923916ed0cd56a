/* replay: the main() of a fuzz target when it is not built with
 * libFuzzer. Every argument is a file or a directory (its regular files,
 * not recursively); each file is fed to LLVMFuzzerTestOneInput() once, in
 * sorted order so a failure is reproducible. This is how both
 * corpora (seeds and crashes) run in the normal test suite (plain and
 * sanitizer builds).
 *
 * It must fail loudly rather than pass on nothing: a missing or empty
 * corpus is an error (exit 1), as is an unreadable file. Files are capped
 * at REPLAY_MAX_FILE: corpus files are meant to be small.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define REPLAY_MAX_FILE  (4 * 1024 * 1024)
#define REPLAY_MAX_FILES 10000

/* Reads path whole into a malloc'd buffer. Returns 0 or -errno. */
static int read_file(const char *path, uint8_t **ret_buf, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len;
	int r = 0;

	if (!f)
		return -errno;
	buf = malloc(REPLAY_MAX_FILE + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	len = fread(buf, 1, REPLAY_MAX_FILE + 1, f);
	if (ferror(f))
		r = -EIO;
	else if (len > REPLAY_MAX_FILE)
		r = -EFBIG;
out:
	fclose(f);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

static int replay_file(const char *path)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = read_file(path, &buf, &len);

	if (r < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(-r));
		return r;
	}
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Collects the regular files of dir, sorted. Returns the count or -errno. */
static int list_dir(const char *dir, char ***ret_names)
{
	DIR *d = opendir(dir);
	char **names;
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return -errno;
	names = calloc(REPLAY_MAX_FILES, sizeof(*names));
	if (!names) {
		closedir(d);
		return -ENOMEM;
	}
	while ((e = readdir(d)) && n < REPLAY_MAX_FILES) {
		char path[4096];
		struct stat st;

		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
			continue;
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		names[n] = strdup(path);
		if (!names[n]) {
			free_names(names, n);
			closedir(d);
			return -ENOMEM;
		}
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	*ret_names = names;
	return (int)n;
}

/* Replays a file or every file of a directory. Returns files run or -errno. */
static int replay_arg(const char *arg)
{
	struct stat st;
	char **names;
	int n;

	if (stat(arg, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", arg, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(arg) < 0 ? -EIO : 1;
	n = list_dir(arg, &names);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", arg, strerror(-n));
		return n;
	}
	for (int i = 0; i < n; i++) {
		if (replay_file(names[i]) < 0) {
			free_names(names, (size_t)n);
			return -EIO;
		}
	}
	free_names(names, (size_t)n);
	return n;
}

int main(int argc, char **argv)
{
	long total = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		int n = replay_arg(argv[i]);

		if (n < 0)
			return 1;
		total += n;
	}
	if (total == 0) {
		fprintf(stderr, "replay: no corpus files found\n");
		return 1;
	}
	printf("replayed %ld inputs\n", total);
	return 0;
}
