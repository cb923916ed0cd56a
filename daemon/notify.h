/* notify: the service manager's side of readyd's life (sd_notify): ready,
 * status, stopping. A no-op without libsystemd or outside systemd. */
#pragma once

void notify_ready(const char *status);
void notify_stopping(void);
