/*
 * out.c -- listings for the cask CLI. Human output: aligned columns,
 * sizes as 1.50G. -H: no header, one tab between fields (for scripts).
 * -p: exact numbers. -o: choose and order fields. -j: a JSON array of
 * objects with exact numbers (sizes in bytes).
 */
#include "cli.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *cli_socket;

char *
fmt_u64(uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "%" PRIu64, v);
	return xstrdup(b);
}

char *
fmt_ratio(double r)
{
	char b[32];
	snprintf(b, sizeof(b), "%.2fx", r);
	return xstrdup(b);
}

void
table_add(table *t, char **cells)
{
	t->rows = xrealloc(t->rows, (size_t)(t->nrows + 1) * sizeof(char **));
	t->rows[t->nrows++] = cells;
}

void
table_free(table *t)
{
	for (int r = 0; r < t->nrows; r++) {
		for (int c = 0; c < t->ncols; c++)
			free(t->rows[r][c]);
		free(t->rows[r]);
	}
	free(t->rows);
}

static const char *
human(const col *c, const char *exact, char *buf, size_t n, int parsable)
{
	if (parsable || c->kind == COL_STR || c->kind == COL_NUM || exact[0] == '\0' || exact[0] == '-')
		return exact;
	uint64_t v = strtoull(exact, NULL, 10);
	if (c->kind == COL_PCT) {
		snprintf(buf, n, "%s%%", exact);
		return buf;
	}
	return util_fmt_size(v, buf, n);
}

int
table_print(const table *t, const out_opts *o, const char *default_fields)
{
	int sel[32], ns = 0;
	char *fields = xstrdup(o->fields ? o->fields : default_fields);
	char *save = NULL;
	for (char *f = strtok_r(fields, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
		int found = -1;
		for (int c = 0; c < t->ncols; c++)
			if (strcmp(t->cols[c].name, f) == 0)
				found = c;
		if (found < 0 || ns == 32) {
			fprintf(stderr, "cask: unknown field '%s' for -o; fields:", f);
			for (int c = 0; c < t->ncols; c++)
				fprintf(stderr, "%s%s", c ? "," : " ", t->cols[c].name);
			fprintf(stderr, "\n");
			free(fields);
			return EXIT_USAGE;
		}
		sel[ns++] = found;
	}
	free(fields);
	if (o->json) {
		json_object *arr = json_object_new_array();
		for (int r = 0; r < t->nrows; r++) {
			json_object *obj = json_object_new_object();
			for (int k = 0; k < ns; k++) {
				const col *c = &t->cols[sel[k]];
				const char *v = t->rows[r][sel[k]];
				if (c->kind != COL_STR && v[0] != '\0' && v[0] != '-')
					json_object_object_add(obj, c->name, json_object_new_uint64(strtoull(v, NULL, 10)));
				else
					json_object_object_add(obj, c->name, json_object_new_string(v));
			}
			json_object_array_add(arr, obj);
		}
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
		return 0;
	}
	int width[32];
	char buf[64];
	for (int k = 0; k < ns; k++) {
		width[k] = o->scripted ? 0 : (int)strlen(t->cols[sel[k]].header);
		for (int r = 0; r < t->nrows; r++) {
			int w = (int)strlen(human(&t->cols[sel[k]], t->rows[r][sel[k]], buf, sizeof(buf), o->parsable));
			if (w > width[k])
				width[k] = w;
		}
	}
	if (!o->scripted) {
		for (int k = 0; k < ns; k++)
			printf("%-*s%s", k == ns - 1 ? 0 : width[k], t->cols[sel[k]].header, k == ns - 1 ? "\n" : "  ");
	}
	for (int r = 0; r < t->nrows; r++) {
		for (int k = 0; k < ns; k++) {
			const char *v = human(&t->cols[sel[k]], t->rows[r][sel[k]], buf, sizeof(buf), o->parsable);
			if (o->scripted)
				printf("%s%s", v, k == ns - 1 ? "\n" : "\t");
			else
				printf("%-*s%s", k == ns - 1 ? 0 : width[k], v, k == ns - 1 ? "\n" : "  ");
		}
	}
	return 0;
}

int
usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "cask: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'cask --help')\n");
	return EXIT_USAGE;
}

int
cli_fail(const char *what)
{
	const cask_error_info *e = cask_error();
	if (what != NULL && e->message[0] == '\0')
		fprintf(stderr, "cask: %s: %s\n", what, strerror(e->err));
	else
		fprintf(stderr, "cask: %s\n", e->message[0] ? e->message : strerror(e->err));
	return EXIT_FAIL;
}

int
cli_fail_code(const char *what)
{
	const cask_error_info *e = cask_error();
	const char *msg = e->message[0] ? e->message : strerror(e->err);
	if (what != NULL && e->message[0] == '\0')
		fprintf(stderr, "cask: %s: %s", what, msg);
	else
		fprintf(stderr, "cask: %s", msg);
	fprintf(stderr, e->code[0] ? " [%s]\n" : "\n", e->code);
	return EXIT_FAIL;
}

cask_client *
cli_connect(void)
{
	cask_client *c;
	if (cask_connect(cli_socket, &c) != 0) {
		cli_fail(NULL);
		return NULL;
	}
	return c;
}

int
parse_out_opt(int ch, const char *arg, out_opts *o)
{
	switch (ch) {
	case 'H': o->scripted = 1; return 1;
	case 'p': o->parsable = 1; return 1;
	case 'j': o->json = 1; return 1;
	case 'o': o->fields = arg; return 1;
	default: return 0;
	}
}
