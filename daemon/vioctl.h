#ifndef CASK_DAEMON_VIOCTL_H
#define CASK_DAEMON_VIOCTL_H
/*
 * Control operations of the volume IO layer (vioctl.c), registered in the
 * control server's table. Each returns 0, or a negative errno with err_set's
 * message and *code set to a stable code (left NULL: the default mapping).
 */
#include <json-c/json.h>
int vioctl_iostat(json_object *args, json_object *res, const char **code);
int vioctl_fault(json_object *args, json_object *res, const char **code);
#endif
