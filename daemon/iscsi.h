#ifndef CASK_DAEMON_ISCSI_H
#define CASK_DAEMON_ISCSI_H
/* The iSCSI target (a conn_proto, iscsi.c; docs/iscsi.md). spec: "ADDR[:PORT]" or "[V6ADDR][:PORT]",
 * default port 3260. */
int iscsi_listen(const char *spec);
/* Daemon options before the first listen: "state" DIR, "iqn-prefix" IQN, "auth" none|chap|mutual,
 * "header-digest"/"data-digest" allow|require|off. -1 for a bad value. */
int iscsi_configure(const char *key, const char *value);
#endif
