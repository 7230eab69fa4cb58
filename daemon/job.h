#ifndef CASK_DAEMON_JOB_H
#define CASK_DAEMON_JOB_H
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

typedef struct job job;
/* The work of a job, in its own thread: 0 or -errno (with err_set's message). */
typedef int (*job_fn)(job *j, void *arg);

/*
 * Start a job (kind "send" or "receive", on `pool`, about `target`),
 * owned by control connection `owner`: when that connection closes, the
 * job is cancelled. free_arg(arg) runs when the work ends. Returns the id,
 * or 0 (free_arg done, nothing run) once job_shutdown began.
 */
uint64_t job_start(const char *kind, const char *pool, const char *target, uint64_t owner,
    job_fn fn, void *arg, void (*free_arg)(void *));
/* From the work: progress; non-zero when the job was cancelled. */
int job_progress(job *j, uint64_t done, uint64_t total);
void job_set_result(job *j, const char *result);
/* The stable code (CE_E_*) of the job's failure, when the work knows better than the engine. */
void job_set_code(job *j, int code);
int job_cancelled(job *j);
/* {"id", "kind", "pool", "target", "state", "done", "total", "result", "error"}; NULL: no such job */
json_object *job_get(uint64_t id);
json_object *job_list(void);
/* 0, -ENOENT (no such job), -EALREADY (it has ended) */
int job_cancel(uint64_t id);
/* Wait until the job ends or timeout_ms passes (<0: forever); -ENOENT if unknown. */
int job_wait(uint64_t id, int timeout_ms);
/* The job's outcome once ended: 0 or its -errno, code (CE_E_*) and message. */
int job_outcome(uint64_t id, int *code, char *message, size_t mlen);
void job_cancel_owner(uint64_t owner);
/* Cancel every job and wait for them to end (daemon shutdown). */
void job_shutdown(void);
#endif
