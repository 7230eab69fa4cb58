/*
 * client.c -- who is connected to the frontends, and the holders of a
 * volume, snapshot or pool (docs/control-protocol.md "client.list").
 *
 *   client.list {cursor, limit}   every frontend connection (conn_list), by id
 *   client.kill {id}      disconnect one (CLIENT_NOT_FOUND if none)
 *
 * and, for the management operations that a connected client makes BUSY
 * (vol.destroy, vol.rollback, snap.destroy, pool.export), with_holders():
 * with "force": true it first disconnects the clients that hold the
 * object and waits for them to be gone; a BUSY that remains names the
 * clients still holding it.
 */
#include "ctl_impl.h"
#include "../conn.h"
#include "../log.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long --force waits for the disconnected clients' requests in flight to finish. */
#define FORCE_WAIT_MS 10000

static json_object *
info_json(const conn_info *x)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_uint64(x->id));
	json_object_object_add(o, "frontend", json_object_new_string(x->frontend));
	json_object_object_add(o, "peer", json_object_new_string(x->peer));
	if (x->uid >= 0) {
		json_object_object_add(o, "uid", json_object_new_int64(x->uid));
		json_object_object_add(o, "pid", json_object_new_int64(x->pid));
	}
	json_object_object_add(o, "export", json_object_new_string(x->export_name));
	json_object_object_add(o, "tls", json_object_new_string(x->tls));
	json_object_object_add(o, "state", json_object_new_string(x->state));
	json_object_object_add(o, "since", json_object_new_int64(x->since));
	json_object_object_add(o, "idle", json_object_new_int64(x->idle));
	json_object_object_add(o, "bytes_in", json_object_new_uint64(x->bytes_in));
	json_object_object_add(o, "bytes_out", json_object_new_uint64(x->bytes_out));
	json_object_object_add(o, "requests", json_object_new_int(x->requests));
	json_object_object_add(o, "queued_bytes", json_object_new_uint64(x->queued_bytes));
	return o;
}

int
op_client_list(json_object *args, json_object *res, reqerr *e)
{
	const char *cursor;
	uint64_t limit;
	if (page_params(args, &cursor, &limit, e) != 0)
		return e->err;
	conn_info *v;
	size_t n;
	conn_list(&v, &n);
	page_list items = { 0 };
	for (size_t i = 0; i < n; i++) {
		char key[24];
		snprintf(key, sizeof(key), "%020" PRIu64, v[i].id);
		page_put(&items, key, info_json(&v[i]));
	}
	free(v);
	json_object_object_add(res, "clients", page_of(&items, args, res));
	return 0;
}

int
op_client_kill(json_object *args, json_object *res, reqerr *e)
{
	(void)res;
	uint64_t id;
	if (arg_u64(args, "id", 1, &id, e) != 0)
		return e->err;
	int err = conn_kill(id, "client.kill");
	if (err != 0)
		return fail(e, err, CE_E_CLIENT_NOT_FOUND);
	uint64_t one = id;
	conn_wait_gone(&one, 1, FORCE_WAIT_MS); /* gone when we answer, unless a request is stuck */
	return 0;
}

/* Whether a client serving export `ex` holds `name` of the given scope. */
static int
holds(int scope, const char *name, const char *ex)
{
	size_t n = strlen(name);
	switch (scope) {
	case HOLD_POOL:
		return strncmp(ex, name, n) == 0 && ex[n] == '/';
	case HOLD_VOL: /* the volume or one of its snapshots */
		return strncmp(ex, name, n) == 0 && (ex[n] == '\0' || ex[n] == '@');
	case HOLD_SNAP:
		return strcmp(ex, name) == 0;
	case HOLD_ROLLBACK: { /* POOL/VOL@SNAP: the volume itself */
		const char *at = strchr(name, '@');
		size_t k = at ? (size_t)(at - name) : n;
		return strncmp(ex, name, k) == 0 && ex[k] == '\0';
	}
	}
	return 0;
}

/* The clients holding name: their ids (*ids, caller frees) and a description. */
static size_t
find_holders(int scope, const char *name, uint64_t **ids, char *desc, size_t dlen)
{
	conn_info *v;
	size_t n, k = 0, used = 0;
	conn_list(&v, &n);
	*ids = xcalloc(n ? n : 1, sizeof(uint64_t));
	if (dlen)
		desc[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (v[i].export_name[0] == '\0' || !holds(scope, name, v[i].export_name))
			continue;
		(*ids)[k++] = v[i].id;
		if (used + 1 >= dlen)
			continue;
		char who[160];
		if (v[i].uid >= 0)
			snprintf(who, sizeof(who), "uid %ld pid %ld", v[i].uid, v[i].pid);
		else
			snprintf(who, sizeof(who), "%s", v[i].peer);
		int w = snprintf(desc + used, dlen - used, "%s%s client %" PRIu64 " (%s, %s)", k > 1 ? ", " : "",
		    v[i].frontend, v[i].id, who, v[i].export_name);
		if (w > 0)
			used = MIN(used + (size_t)w, dlen - 1);
	}
	free(v);
	return k;
}

static size_t
disconnect_holders(int scope, const char *name, const char *opname)
{
	uint64_t *ids;
	char desc[1024];
	size_t n = find_holders(scope, name, &ids, desc, sizeof(desc));
	if (n > 0) {
		char why[128];
		snprintf(why, sizeof(why), "%s --force", opname);
		size_t killed = 0;
		for (size_t i = 0; i < n; i++)
			killed += conn_kill(ids[i], why) == 0;
		log_info("%s %s --force: disconnecting %zu client(s): %s", opname, name, killed, desc);
		conn_wait_gone(ids, n, FORCE_WAIT_MS);
	}
	free(ids);
	return n;
}

int
with_holders(json_object *args, json_object *res, reqerr *e, int scope, const char *opname, ctl_op_fn fn)
{
	int force = 0;
	if (arg_bool(args, "force", &force, e) != 0)
		return e->err;
	/* the names the operation acts on: "name", or every string of "names" */
	const char *names[64];
	size_t nn = 0;
	json_object *v, *a;
	/* (a name holding a NUL is the operation's BAD_REQUEST: never matched here) */
	if (json_object_object_get_ex(args, "name", &v) && json_object_is_type(v, json_type_string) &&
	    strlen(json_object_get_string(v)) == (size_t)json_object_get_string_len(v))
		names[nn++] = json_object_get_string(v);
	if (json_object_object_get_ex(args, "names", &a) && json_object_is_type(a, json_type_array))
		for (size_t i = 0; i < json_object_array_length(a) && nn < ARRAY_SIZE(names); i++) {
			json_object *s = json_object_array_get_idx(a, i);
			if (json_object_is_type(s, json_type_string) &&
			    strlen(json_object_get_string(s)) == (size_t)json_object_get_string_len(s))
				names[nn++] = json_object_get_string(s);
		}
	for (size_t i = 0; force && i < nn; i++)
		disconnect_holders(scope, names[i], opname);
	int err = fn(args, res, e);
	if (err != -EBUSY)
		return err;
	char desc[1024];
	size_t used = 0;
	size_t total = 0;
	desc[0] = '\0';
	for (size_t i = 0; i < nn && used + 1 < sizeof(desc); i++) {
		uint64_t *ids;
		size_t k = find_holders(scope, names[i], &ids, desc + used + (used ? 2 : 0),
		    sizeof(desc) - used - (used ? 2 : 0));
		free(ids);
		if (k > 0) {
			if (used)
				memcpy(desc + used, ", ", 2);
			used += strlen(desc + used);
			total += k;
		}
	}
	if (total == 0)
		return err;
	char msg[1024];
	snprintf(msg, sizeof(msg), "%s", err_get());
	err_setc(e->code != CE_E_NONE ? e->code : CE_E_BUSY, err, "%s; held by %s%s", msg, desc,
	    force ? " (still connected after --force: a request of theirs has not finished)" :
	    "; force disconnects them (cask ... --force)");
	return err;
}
