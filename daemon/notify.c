/* notify: sd_notify wrappers (see notify.h). The only file that includes
 * sd-daemon.h, so a build without libsystemd changes nothing else. */
#include "build-config.h"
#include "notify.h"

#if HAVE_LIBSYSTEMD
#include <stdbool.h>
#include <systemd/sd-daemon.h>

void notify_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void notify_status(const char *status)
{
	sd_notifyf(0, "STATUS=%s", status);
}

void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
}

void notify_reloading(void)
{
	sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
}

void notify_watchdog(void)
{
	sd_notify(0, "WATCHDOG=1");
}

uint64_t notify_watchdog_ms(void)
{
	uint64_t usec = 0;

	return sd_watchdog_enabled(0, &usec) > 0 ? usec / 1000 : 0;
}

int notify_listen_fd(void)
{
	return sd_listen_fds(1) >= 1 ? SD_LISTEN_FDS_START : -1;
}
#else
void notify_ready(const char *status)
{
	(void)status;
}

void notify_status(const char *status)
{
	(void)status;
}

void notify_stopping(void)
{
}

void notify_reloading(void)
{
}

void notify_watchdog(void)
{
}

uint64_t notify_watchdog_ms(void)
{
	return 0;
}

int notify_listen_fd(void)
{
	return -1;
}
#endif
