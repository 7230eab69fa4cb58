/*
 * cli.h -- shared pieces of the cask CLI: output of listings (-H -p -o -j),
 * errors (one line on stderr, exit status 1; usage errors 2) and the
 * connection to caskd.
 */
#ifndef CASK_CLI_H
#define CASK_CLI_H
#include <stdint.h>
#include <stdio.h>

#include "cask/client.h"

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };
enum { COL_STR, COL_SIZE, COL_NUM, COL_PCT };

typedef struct col {
	const char *name;   /* field name for -o and JSON */
	const char *header; /* column header */
	int kind;
} col;

typedef struct out_opts {
	int scripted;       /* -H */
	int parsable;       /* -p */
	int json;           /* -j */
	const char *fields; /* -o */
} out_opts;

/* A table: rows of cells, one string per column, numbers in exact form. */
typedef struct table {
	const col *cols;
	int ncols;
	char ***rows;
	int nrows;
} table;

void table_add(table *t, char **cells);
/* Print with the options; 0, or EXIT_USAGE for an unknown -o field. */
int table_print(const table *t, const out_opts *o, const char *default_fields);
void table_free(table *t);
char *fmt_u64(uint64_t v);
char *fmt_ratio(double r); /* "1.52x" */

extern const char *cli_socket;
cask_client *cli_connect(void);
int cli_fail(const char *what);
/* cli_fail, with the stable code at the end of the line ("... [VDEV_IN_USE]") for scripts to branch on */
int cli_fail_code(const char *what);
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int parse_out_opt(int ch, const char *arg, out_opts *o);

int cmd_pool(int argc, char **argv);
int cmd_vol(int argc, char **argv);
int cmd_snap(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_recv(int argc, char **argv);
int cmd_job(int argc, char **argv);
int cmd_vol_diff(int argc, char **argv);
int cmd_apply(int argc, char **argv); /* apply.c: cask apply, cask get manifest */
int cmd_get(int argc, char **argv);
int cmd_vol_iostat(int argc, char **argv);
int cmd_vol_replica(int argc, char **argv);
int cmd_client(int argc, char **argv); /* client.c: cask client list, kill */
int cmd_schedule(int argc, char **argv); /* schedule.c: snapshot policies */
int cmd_iscsi(int argc, char **argv); /* iscsi.c: the iSCSI target's configuration */
/* iscsi.c: one iSCSI property (acl, auth, blocksize) of target POOL/VOL; 0 or the exit status */
int cli_iscsi_set(cask_client *c, const char *target, const char *prop, const char *value);
#endif
