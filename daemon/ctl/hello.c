/*
 * hello.c -- hello: who this server is, its protocol version and the
 * features it supports.
 */
#include "ctl_impl.h"
#include "ctlframe.h"
#include "util.h"

int
op_hello(json_object *args, json_object *res, reqerr *e)
{
	(void)args;
	(void)e;
	json_object_object_add(res, "server", json_object_new_string("caskd"));
	json_object_object_add(res, "version", json_object_new_string(ctl_version()));
	json_object_object_add(res, "protocol", json_object_new_int(CTL_VERSION));
	json_object *f = json_object_new_array();
	static const char *features[] = { "pools", "volumes", "nbd", "intent-log", "pool.clear", "pool.inject",
		"snapshots", "holds", "vol.promote", "vol.destroy.recursive", "send", "recv", "recv.resume",
		"vol.diff", "jobs", "vol.set.many", "vol.inherit", "property.source",
		"pool.create.force", "pool.import.rewind" };
	for (size_t i = 0; i < ARRAY_SIZE(features); i++)
		json_object_array_add(f, json_object_new_string(features[i]));
	for (size_t i = 0; i < ctl_nops; i++) /* what operations added since declare */
		if (ctl_ops[i].feature != NULL)
			json_object_array_add(f, json_object_new_string(ctl_ops[i].feature));
	json_object_object_add(res, "features", f);
	return 0;
}
