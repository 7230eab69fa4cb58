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
/* A volume was renamed: its entry follows it ("POOL/VOL" both). */
int iscsi_cfg_rename(const char *from, const char *to);
/* Append the daemon-wide entry, then one per configured target, to the array out (no secrets). */
struct json_object;
int iscsi_cfg_list(struct json_object *out);
#endif

/* The operator's view (daemon/ctl/iscsi.c; docs/iscsi.md §14). Never a secret. */
/* Append one object per exported volume and snapshot (pool NULL: all) to out. */
int iscsi_targets_json(const char *pool, struct json_object *out);
/* Append one object per normal session (filter: a target name or POOL/VOL[@SNAP], NULL all). */
int iscsi_sessions_json(const char *filter, struct json_object *out);
/* End the session with TSIH tsih: an Async logout request, then a drop if the initiator has not
 * logged out within 3 s (force: drop at once). *how: "logout" or "dropped". 0, -ENOENT, -EBUSY. */
int iscsi_logout(unsigned tsih, int force, const char **how);
/* The export a target name stands for (0, -ENOENT, -EEXIST when two map to it). */
int iscsi_target_export(const char *target_name, char *out, size_t n);
