/*
 * client_impl.h -- what client.c shares with the rest of libcask (apply.c):
 * the thread's error (cask_error) and the option-structure rule. Internal:
 * nothing here is exported (lib/client/libcask.map).
 */
#ifndef CASK_CLIENT_IMPL_H
#define CASK_CLIENT_IMPL_H
#include <stddef.h>

#include "cask/errcodes.h"

/* Set the thread's cask_error (err positive, code a wire name); returns -err. */
int client_set_error_wire(int err, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A failure of libcask's own: code is CE_E_* (cask/errcodes.h). */
#define client_set_error(err, code, ...) client_set_error_wire(err, ce_errcode_wire(code), __VA_ARGS__)
/*
 * An option structure that begins with its size (docs/client-api.md): out
 * gets what in's size covers, the rest zero; -EINVAL when in is larger and
 * its extra bytes are not zero. NULL in: all zero.
 */
int client_opts_take(const void *in, size_t known, void *out, const char *what);
#endif
