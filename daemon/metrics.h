#ifndef CASK_DAEMON_METRICS_H
#define CASK_DAEMON_METRICS_H
/*
 * The Prometheus endpoint (caskd --metrics ADDR:PORT, docs/metrics.md).
 * metrics_start after the frontends listen and the registry is up;
 * metrics_stop before they stop.
 */
/* max_volumes: volumes (and schedules) per scrape, METRICS_VOLUMES_MIN .. _MAX (caskd --metrics-max-volumes) */
#define METRICS_VOLUMES_DEFAULT 1024
#define METRICS_VOLUMES_MIN 1
#define METRICS_VOLUMES_MAX 65536
int metrics_start(const char *spec, const char *version, unsigned max_volumes);
void metrics_stop(void);
#endif
