/* notify: the service manager's side of readyd's life (sd_notify): ready,
 * status, stopping, reloading, the watchdog, and socket activation
 * (LISTEN_FDS). A no-op without libsystemd or outside systemd. */
#pragma once

#include <stdint.h>

void notify_ready(const char *status);
void notify_status(const char *status);
void notify_stopping(void);
void notify_reloading(void);
void notify_watchdog(void);

/* The watchdog interval systemd asked for (WATCHDOG_USEC) in ms, or 0. */
uint64_t notify_watchdog_ms(void);

/* The first socket systemd passed (readyd.socket), or -1. */
int notify_listen_fd(void);
