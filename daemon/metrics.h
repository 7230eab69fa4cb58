#ifndef CASK_DAEMON_METRICS_H
#define CASK_DAEMON_METRICS_H
/*
 * The Prometheus endpoint (caskd --metrics ADDR:PORT, docs/metrics.md).
 * metrics_start after the frontends listen and the registry is up;
 * metrics_stop before they stop.
 */
int metrics_start(const char *spec, const char *version);
void metrics_stop(void);
#endif
