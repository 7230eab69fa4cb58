#ifndef CASK_DAEMON_ISCSI_H
#define CASK_DAEMON_ISCSI_H
#include <stddef.h>
/* The iSCSI target (a conn_proto, iscsi.c; docs/iscsi.md). spec: "ADDR[:PORT]" or "[V6ADDR][:PORT]",
 * default port 3260. */
int iscsi_listen(const char *spec);
/* Daemon options before the first listen: "state" DIR, "iqn-prefix" IQN, "auth" none|chap|mutual,
 * "header-digest"/"data-digest" allow|require|off. -1 for a bad value. */
int iscsi_configure(const char *key, const char *value);
/* The state directory ("" before "state" is configured). */
const char *iscsi_state_dir(void);
/* The target name of an export "POOL/VOL[@SNAP]" under the configured prefix; -1 if it has none. */
int iscsi_target_name(const char *export_name, char *out, size_t n);

/* iscsi_cfg.c: changes to STATE/iscsi.json (0, or -errno with err_set's message). target: "POOL/VOL",
 * or NULL for the daemon-wide entry. */
/* key "acl" ("IQN[,IQN...]" or "*"), "auth" (default|none|chap|mutual), "blocksize" (512|4096); value
 * NULL: back to the default. */
int iscsi_cfg_set(const char *target, const char *key, const char *value);
/* user+secret and/or mutual user+secret (each pair whole); secrets are never logged or sent back. */
int iscsi_cfg_chap_set(const char *target, const char *user, const char *secret, const char *muser,
    const char *msecret);
int iscsi_cfg_chap_unset(const char *target, int mutual_only);
/* Append the daemon-wide entry, then one per configured target, to the array out (no secrets). */
struct json_object;
int iscsi_cfg_list(struct json_object *out);
#endif
