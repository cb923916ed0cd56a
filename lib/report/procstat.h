/* procstat: readyd's own process numbers for the process_* families of
 * GET /metrics (CPU time, memory, file descriptors, start time), read
 * from /proc/self. The parsing of /proc/self/stat is pure and exported
 * for tests; procstat_read() does the reading (a few small reads of
 * memory-backed files, cheap enough for the loop).
 */
#pragma once

#include <stddef.h>

struct procstat {
	double cpu_seconds;        /* utime + stime */
	double resident_bytes;     /* RSS */
	double virtual_bytes;      /* vsize */
	double start_time_seconds; /* since the Unix epoch */
	double open_fds;
	double max_fds; /* RLIMIT_NOFILE soft limit; -1 when unlimited */
};

/* Fills the CPU, memory and start fields of ret from the text of
 * /proc/PID/stat, given clock ticks per second, the page size and the
 * boot time (btime of /proc/stat, seconds since the epoch). -EINVAL when
 * the text is not such a line; ret is written only on success. */
int procstat_parse_stat(const char *text, long ticks, long page_size, double boot_time,
                        struct procstat *ret);

/* Reads this process's numbers. 0 or -errno; ret only on success. */
int procstat_read(struct procstat *ret);
