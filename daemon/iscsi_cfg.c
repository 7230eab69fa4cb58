/*
 * iscsi_cfg.c -- changes to the iSCSI target's configuration file,
 * STATE/iscsi.json, through the control operations iscsi.set,
 * iscsi.chap.set, iscsi.chap.unset and iscsi.config (daemon/ctl/iscsi.c;
 * docs/iscsi.md §14, docs/control-protocol.md).
 *
 * The file (read by iscsi.c at every login, so a change applies to the
 * next login and never drops a session already logged in):
 *
 *   { "auth": "none|chap|mutual",
 *     "chap": { "user", "secret", "mutual_user", "mutual_secret" },
 *     "targets": { "POOL/VOL": { "auth", "acl": [IQN...], "blocksize",
 *                                "chap": {...} } } }
 *
 * Invariants:
 *   1. Every change is a read-modify-write under cfg_lock, written to
 *      iscsi.json.tmp (mode 0600, fsync), renamed over iscsi.json and the
 *      directory fsynced: a reader (a login) sees the old file or the new
 *      one, never a mix, and a crash loses at most the change in flight.
 *   2. A file that is not valid JSON is never overwritten: the change is
 *      refused and the file left for the operator (nothing lost).
 *   3. Secrets go into the file and nowhere else: never into a reply, a
 *      log line or an error message; iscsi_cfg_list says "set" for them.
 *   4. What is stored is valid (iscsi_cfg_check_*): an ACL entry is an
 *      iqn./eui./naa. name (or a prefix ending in '*', or '*'), a secret is
 *      12..255 bytes of printable ASCII, a target's two secrets differ.
 */
#include "iscsi.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;

#define ACL_MAX 32

static int
cfg_path(char *out, size_t n, const char *suffix)
{
	const char *dir = iscsi_state_dir();
	if (dir == NULL || dir[0] == '\0')
		return err_set(-ENOENT, "caskd has no state directory for the iSCSI configuration");
	snprintf(out, n, "%s/iscsi.json%s", dir, suffix);
	return 0;
}

/* The file's content (a new empty object when there is none); NULL with the error set. */
static json_object *
cfg_read(void)
{
	char path[4200];
	if (cfg_path(path, sizeof(path), "") != 0)
		return NULL;
	struct stat st;
	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			return json_object_new_object();
		err_set(-errno, "%s: %s", path, strerror(errno));
		return NULL;
	}
	json_object *root = json_object_from_file(path);
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		err_set(-EINVAL, "%s is not a valid JSON object; fix or remove it (it is not changed)", path);
		return NULL;
	}
	return root;
}

static int
cfg_write(json_object *root)
{
	char path[4200], tmp[4200];
	if (cfg_path(path, sizeof(path), "") != 0 || cfg_path(tmp, sizeof(tmp), ".tmp") != 0)
		return -ENOENT;
	const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(-errno, "%s: %s", tmp, strerror(errno));
	int err = 0;
	size_t len = strlen(text), off = 0;
	if (fchmod(fd, 0600) != 0)
		err = -errno;
	while (err == 0 && off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
		} else {
			off += (size_t)w;
		}
	}
	if (err == 0 && (write(fd, "\n", 1) != 1 || fsync(fd) != 0))
		err = errno != 0 ? -errno : -EIO;
	if (close(fd) != 0 && err == 0)
		err = -errno;
	if (err == 0 && rename(tmp, path) != 0)
		err = -errno;
	if (err != 0) {
		unlink(tmp);
		return err_set(err, "cannot save %s: %s", path, strerror(-err));
	}
	int dfd = open(iscsi_state_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) != 0)
			log_warn("iscsi: fsync of %s: %s", iscsi_state_dir(), strerror(errno));
		close(dfd);
	}
	return 0;
}

/* obj[key] as an object, created when missing (or when it is not an object). */
static json_object *
sub_object(json_object *obj, const char *key)
{
	json_object *v;
	if (json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_object))
		return v;
	v = json_object_new_object();
	json_object_object_add(obj, key, v);
	return v;
}

/* The object a change applies to: the root (target NULL) or targets[target]. */
static json_object *
scope_of(json_object *root, const char *target)
{
	return target == NULL ? root : sub_object(sub_object(root, "targets"), target);
}

/* Remove targets[target] when it holds nothing any more, and "targets" when empty. */
static void
prune(json_object *root, const char *target)
{
	json_object *ts, *t, *ch;
	if (!json_object_object_get_ex(root, "targets", &ts) || !json_object_is_type(ts, json_type_object))
		return;
	if (target != NULL && json_object_object_get_ex(ts, target, &t) && json_object_is_type(t, json_type_object)) {
		if (json_object_object_get_ex(t, "chap", &ch) && json_object_object_length(ch) == 0)
			json_object_object_del(t, "chap");
		if (json_object_object_length(t) == 0)
			json_object_object_del(ts, target);
	}
	if (json_object_object_length(ts) == 0)
		json_object_object_del(root, "targets");
}

static int
name_char_ok(int c)
{
	return islower(c) || isdigit(c) || c == '.' || c == '-' || c == ':';
}

/* One ACL entry: '*', or an iSCSI name (iqn./eui./naa.), lower case, perhaps ending in '*'. */
static int
acl_entry_ok(const char *e, size_t n)
{
	if (n == 1 && e[0] == '*')
		return 1;
	if (n < 5 || n > 223 || (strncmp(e, "iqn.", 4) != 0 && strncmp(e, "eui.", 4) != 0 && strncmp(e, "naa.", 4) != 0))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!name_char_ok((unsigned char)e[i]) && !(e[i] == '*' && i == n - 1))
			return 0;
	return 1;
}

/* "IQN[,IQN...]" or "*" into a JSON array; NULL with the error set. */
static json_object *
acl_parse(const char *v)
{
	json_object *a = json_object_new_array();
	const char *s = v;
	int n = 0;
	for (;;) {
		const char *c = strchr(s, ',');
		size_t len = c ? (size_t)(c - s) : strlen(s);
		char e[256];
		if (len >= sizeof(e) || !acl_entry_ok(s, len)) {
			json_object_put(a);
			err_set(-EINVAL, "iscsi_acl: '%.*s' is not an initiator name (iqn.YYYY-MM.domain[:...], eui., naa., "
			    "lower case; '*' at the end matches a prefix; '*' alone: any)", (int)(len > 223 ? 223 : len), s);
			return NULL;
		}
		if (++n > ACL_MAX) {
			json_object_put(a);
			err_set(-EINVAL, "iscsi_acl: at most %d entries", ACL_MAX);
			return NULL;
		}
		memcpy(e, s, len);
		e[len] = '\0';
		json_object_array_add(a, json_object_new_string(e));
		if (c == NULL)
			break;
		s = c + 1;
	}
	return a;
}

int
iscsi_cfg_set(const char *target, const char *key, const char *value)
{
	json_object *nv = NULL;
	if (strcmp(key, "acl") == 0) {
		if (target == NULL)
			return err_set(-EINVAL, "iscsi_acl is set per volume");
		if (value != NULL && (nv = acl_parse(value)) == NULL)
			return -EINVAL;
	} else if (strcmp(key, "auth") == 0) {
		if (value != NULL && strcmp(value, "default") == 0)
			value = NULL;
		if (value != NULL && strcmp(value, "none") != 0 && strcmp(value, "chap") != 0 && strcmp(value, "mutual") != 0)
			return err_set(-EINVAL, "iscsi_auth: '%s' is not default, none, chap or mutual", value);
		if (value != NULL)
			nv = json_object_new_string(value);
	} else if (strcmp(key, "discovery_auth") == 0) {
		if (target != NULL)
			return err_set(-EINVAL, "discovery_auth is daemon-wide (no volume)");
		if (value != NULL && strcmp(value, "default") == 0)
			value = NULL;
		if (value != NULL && strcmp(value, "none") != 0 && strcmp(value, "chap") != 0 && strcmp(value, "mutual") != 0)
			return err_set(-EINVAL, "discovery_auth: '%s' is not default, none, chap or mutual", value);
		if (value != NULL)
			nv = json_object_new_string(value);
	} else if (strcmp(key, "blocksize") == 0) {
		if (target == NULL)
			return err_set(-EINVAL, "iscsi_blocksize is set per volume");
		if (value != NULL && strcmp(value, "512") != 0 && strcmp(value, "4096") != 0)
			return err_set(-EINVAL, "iscsi_blocksize: '%s' is not 512 or 4096", value);
		if (value != NULL)
			nv = json_object_new_int(atoi(value));
	} else {
		return err_set(-EINVAL, "unknown iSCSI property '%s' (iscsi_acl, iscsi_auth, iscsi_blocksize; "
		    "daemon-wide also discovery_auth)", key);
	}
	pthread_mutex_lock(&cfg_lock);
	json_object *root = cfg_read();
	int err = root == NULL ? -EINVAL : 0;
	if (err == 0) {
		json_object *o = scope_of(root, target);
		if (nv != NULL) {
			json_object_object_add(o, key, nv);
			nv = NULL;
		} else {
			json_object_object_del(o, key);
		}
		prune(root, target);
		err = cfg_write(root);
	}
	pthread_mutex_unlock(&cfg_lock);
	json_object_put(nv);
	json_object_put(root);
	if (err == 0)
		log_info("iscsi: %s of %s %s", key, target ? target : "the daemon", value ? "set" : "back to its default");
	return err;
}

static int
user_ok(const char *what, const char *u)
{
	size_t n = strlen(u);
	if (n == 0 || n > 255)
		return err_set(-EINVAL, "%s: 1 to 255 characters", what);
	for (size_t i = 0; i < n; i++)
		if (u[i] < 0x21 || u[i] > 0x7e || u[i] == ',' || u[i] == '=')
			return err_set(-EINVAL, "%s: printable characters only, no spaces, ',' or '='", what);
	return 0;
}

/* A secret's error never quotes the secret. */
static int
secret_ok(const char *what, const char *s)
{
	size_t n = strlen(s);
	if (n < 12 || n > 255)
		return err_set(-EINVAL, "%s: 12 to 255 bytes (RFC 7143 asks for at least 96 bits; Windows for 12-16 "
		    "bytes); this one has %zu", what, n);
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return err_set(-EINVAL, "%s: printable ASCII only", what);
	return 0;
}

int
iscsi_cfg_chap_set(const char *target, const char *user, const char *secret, const char *muser, const char *msecret)
{
	int err;
	if ((muser == NULL) != (msecret == NULL))
		return err_set(-EINVAL, "mutual CHAP needs both a mutual user and a mutual secret");
	if (user == NULL && muser == NULL)
		return err_set(-EINVAL, "chap set needs a user and secret, or a mutual user and secret");
	if ((user == NULL) != (secret == NULL))
		return err_set(-EINVAL, "CHAP needs both a user and a secret");
	if (user != NULL && ((err = user_ok("CHAP user", user)) != 0 || (err = secret_ok("CHAP secret", secret)) != 0))
		return err;
	if (muser != NULL &&
	    ((err = user_ok("mutual CHAP user", muser)) != 0 || (err = secret_ok("mutual CHAP secret", msecret)) != 0))
		return err;
	pthread_mutex_lock(&cfg_lock);
	json_object *root = cfg_read();
	err = root == NULL ? -EINVAL : 0;
	if (err == 0) {
		json_object *ch = sub_object(scope_of(root, target), "chap"), *v;
		const char *other = NULL; /* the secret of the other direction, stored or given */
		if (secret != NULL && msecret != NULL)
			other = msecret;
		else if (secret != NULL && json_object_object_get_ex(ch, "mutual_secret", &v))
			other = json_object_get_string(v);
		else if (msecret != NULL && json_object_object_get_ex(ch, "secret", &v))
			other = json_object_get_string(v);
		if (other != NULL && strcmp(other, secret != NULL ? secret : msecret) == 0) {
			err = err_set(-EINVAL, "the initiator's secret and the target's (mutual) secret must differ");
		} else {
			if (user != NULL) {
				json_object_object_add(ch, "user", json_object_new_string(user));
				json_object_object_add(ch, "secret", json_object_new_string(secret));
			}
			if (muser != NULL) {
				json_object_object_add(ch, "mutual_user", json_object_new_string(muser));
				json_object_object_add(ch, "mutual_secret", json_object_new_string(msecret));
			}
			err = cfg_write(root);
		}
	}
	pthread_mutex_unlock(&cfg_lock);
	json_object_put(root); /* json-c frees the strings; the copies given are the caller's to wipe */
	if (err == 0)
		log_info("iscsi: CHAP %s%s of %s set", user ? "secret" : "", muser ? (user ? " and mutual secret" : "mutual secret") : "",
		    target ? target : "the daemon");
	return err;
}

int
iscsi_cfg_chap_unset(const char *target, int mutual_only)
{
	pthread_mutex_lock(&cfg_lock);
	json_object *root = cfg_read();
	int err = root == NULL ? -EINVAL : 0;
	if (err == 0) {
		json_object *o = scope_of(root, target), *ch;
		if (json_object_object_get_ex(o, "chap", &ch) && json_object_is_type(ch, json_type_object)) {
			if (!mutual_only) {
				json_object_object_del(ch, "user");
				json_object_object_del(ch, "secret");
			}
			json_object_object_del(ch, "mutual_user");
			json_object_object_del(ch, "mutual_secret");
			if (json_object_object_length(ch) == 0)
				json_object_object_del(o, "chap");
		}
		prune(root, target);
		err = cfg_write(root);
	}
	pthread_mutex_unlock(&cfg_lock);
	json_object_put(root);
	if (err == 0)
		log_info("iscsi: CHAP %s of %s removed", mutual_only ? "mutual secret" : "secrets", target ? target : "the daemon");
	return err;
}

/* One entry of the listing: never a secret. */
static json_object *
entry_of(const char *target, json_object *o)
{
	json_object *e = json_object_new_object(), *v, *ch = NULL;
	json_object_object_add(e, "target", target ? json_object_new_string(target) : NULL);
	if (target != NULL) {
		char iqn[256];
		json_object_object_add(e, "iqn", iscsi_target_name(target, iqn, sizeof(iqn)) == 0 ? json_object_new_string(iqn) : NULL);
	}
	json_object_object_add(e, "auth", json_object_new_string(json_object_object_get_ex(o, "auth", &v) ?
	    json_object_get_string(v) : "default"));
	if (target == NULL)
		json_object_object_add(e, "discovery_auth", json_object_new_string(json_object_object_get_ex(o,
		    "discovery_auth", &v) ? json_object_get_string(v) : "default"));
	if (target != NULL) {
		json_object *acl = json_object_new_array();
		if (json_object_object_get_ex(o, "acl", &v) && json_object_is_type(v, json_type_array)) {
			for (size_t i = 0; i < json_object_array_length(v); i++)
				json_object_array_add(acl, json_object_new_string(json_object_get_string(json_object_array_get_idx(v, i))));
		} else {
			json_object_array_add(acl, json_object_new_string("*"));
		}
		json_object_object_add(e, "acl", acl);
		json_object_object_add(e, "blocksize",
		    json_object_new_int(json_object_object_get_ex(o, "blocksize", &v) && json_object_get_int(v) == 4096 ? 4096 : 512));
	}
	json_object_object_get_ex(o, "chap", &ch);
	json_object_object_add(e, "chap_user",
	    ch && json_object_object_get_ex(ch, "user", &v) ? json_object_new_string(json_object_get_string(v)) : NULL);
	json_object_object_add(e, "chap_secret", json_object_new_boolean(ch && json_object_object_get_ex(ch, "secret", &v)));
	json_object_object_add(e, "mutual_user",
	    ch && json_object_object_get_ex(ch, "mutual_user", &v) ? json_object_new_string(json_object_get_string(v)) : NULL);
	json_object_object_add(e, "mutual_secret",
	    json_object_new_boolean(ch && json_object_object_get_ex(ch, "mutual_secret", &v)));
	return e;
}

int
iscsi_cfg_list(json_object *out)
{
	pthread_mutex_lock(&cfg_lock);
	json_object *root = cfg_read();
	pthread_mutex_unlock(&cfg_lock);
	if (root == NULL)
		return -EINVAL;
	json_object_array_add(out, entry_of(NULL, root));
	json_object *ts;
	if (json_object_object_get_ex(root, "targets", &ts) && json_object_is_type(ts, json_type_object)) {
		json_object_object_foreach(ts, k, v)
			if (json_object_is_type(v, json_type_object))
				json_object_array_add(out, entry_of(k, v));
	}
	json_object_put(root);
	return 0;
}

/* vol.rename: the volume's entry follows it (a stale entry under the new name is replaced: the
 * renamed volume keeps exactly its own settings). 0 also when it had none. */
int
iscsi_cfg_rename(const char *from, const char *to)
{
	pthread_mutex_lock(&cfg_lock);
	json_object *root = cfg_read();
	int err = root == NULL ? -EINVAL : 0, changed = 0;
	json_object *ts, *t;
	if (err == 0 && json_object_object_get_ex(root, "targets", &ts) && json_object_is_type(ts, json_type_object)) {
		if (json_object_object_get_ex(ts, to, &t)) {
			json_object_object_del(ts, to);
			changed = 1;
		}
		if (json_object_object_get_ex(ts, from, &t)) {
			json_object_object_add(ts, to, json_object_get(t));
			json_object_object_del(ts, from);
			changed = 1;
		}
		if (changed) {
			prune(root, NULL);
			err = cfg_write(root);
		}
	}
	pthread_mutex_unlock(&cfg_lock);
	json_object_put(root);
	if (err == 0 && changed)
		log_info("iscsi: the settings of %s follow it to %s", from, to);
	return err;
}
