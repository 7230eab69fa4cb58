/*
 * job.c -- long operations (send, receive) as jobs.
 *
 * A job runs in its own thread; the control request that starts it gets
 * its id at once (or waits for it). Anyone may read a job's state and
 * progress, cancel it or wait for it; the connection that started it
 * owns it, and when that connection closes the job is cancelled, so a
 * killed client never leaves a transfer running. Ended jobs are kept
 * (the newest 64) so that their outcome can still be read.
 *
 * Invariants:
 *   1. A job's fields change under `lock`; the work polls the cancel flag
 *      through job_progress after every record it moves.
 *   2. A job is freed only after it ended and was pushed out of the
 *      ended list; job_shutdown waits for every running job.
 */
#include "ctl.h"
#include "job.h"
#include "log.h"
#include "util.h"

#include <cask/errcodes.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { J_RUNNING, J_DONE, J_FAILED, J_CANCELLED };
static const char *state_names[] = { "running", "done", "failed", "cancelled" };
#define KEEP_ENDED 64

struct job {
	uint64_t id, owner;
	char kind[16], pool[64], target[600];
	int state;
	int cancel;
	uint64_t done, total;
	uint64_t started_ns, ended_ns;
	int err;
	int code;          /* CE_E_*: the work's (job_set_code), or what err says */
	char message[1024];
	char result[600];
	job_fn fn;
	void *arg;
	void (*free_arg)(void *);
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static job **jobs;
static size_t njobs, capjobs;
static uint64_t next_id = 1;
static int running;
static int shut;          /* job_shutdown began: no job starts any more */

static job *
find(uint64_t id)
{
	for (size_t i = 0; i < njobs; i++)
		if (jobs[i]->id == id)
			return jobs[i];
	return NULL;
}

/* Drop the oldest ended jobs beyond KEEP_ENDED (lock held). */
static void
trim_ended(void)
{
	size_t ended = 0;
	for (size_t i = 0; i < njobs; i++)
		ended += jobs[i]->state != J_RUNNING;
	for (size_t i = 0; i < njobs && ended > KEEP_ENDED;) {
		if (jobs[i]->state != J_RUNNING) {
			free(jobs[i]);
			memmove(jobs + i, jobs + i + 1, (njobs - i - 1) * sizeof(job *));
			njobs--;
			ended--;
		} else {
			i++;
		}
	}
}

static void *
job_thread(void *a)
{
	job *j = a;
	err_clear();
	int err = j->fn(j, j->arg);
	if (j->free_arg != NULL)
		j->free_arg(j->arg);
	pthread_mutex_lock(&lock);
	j->err = err;
	j->ended_ns = util_now_ns();
	if (err == 0) {
		j->state = J_DONE;
	} else {
		j->state = err == -ECANCELED ? J_CANCELLED : J_FAILED;
		if (j->code == CE_E_NONE)
			j->code = ctl_code(err, 1); /* the engine's code (this thread's), else its errno's */
		snprintf(j->message, sizeof(j->message), "%s", err_get()[0] ? err_get() : strerror(-err));
	}
	running--;
	log_msg(err == 0 ? LOG_INFO : LOG_WARN, "job %llu (%s %s) %s%s%s", (unsigned long long)j->id,
	    j->kind, j->target, state_names[j->state], err ? ": " : "", err ? j->message : "");
	trim_ended();
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
	return NULL;
}

uint64_t
job_start(const char *kind, const char *pool, const char *target, uint64_t owner, job_fn fn, void *arg,
    void (*free_arg)(void *))
{
	job *j = xcalloc(1, sizeof(*j));
	snprintf(j->kind, sizeof(j->kind), "%s", kind);
	snprintf(j->pool, sizeof(j->pool), "%s", pool ? pool : "");
	snprintf(j->target, sizeof(j->target), "%s", target);
	j->owner = owner;
	j->fn = fn;
	j->arg = arg;
	j->free_arg = free_arg;
	j->started_ns = util_now_ns();
	pthread_mutex_lock(&lock);
	if (shut) {
		pthread_mutex_unlock(&lock);
		if (free_arg != NULL)
			free_arg(arg);
		free(j);
		return 0; /* caskd is stopping */
	}
	j->id = next_id++;
	if (njobs == capjobs) {
		capjobs = capjobs ? 2 * capjobs : 16;
		jobs = xrealloc(jobs, capjobs * sizeof(job *));
	}
	jobs[njobs++] = j;
	running++;
	uint64_t id = j->id;
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&t, &at, job_thread, j);
	pthread_attr_destroy(&at);
	pthread_mutex_unlock(&lock);
	if (e != 0)
		job_thread(j); /* no thread: run it here */
	log_msg(LOG_INFO, "job %llu: %s %s started", (unsigned long long)id, kind, target);
	return id;
}

int
job_progress(job *j, uint64_t done, uint64_t total)
{
	pthread_mutex_lock(&lock);
	j->done = done;
	j->total = total;
	int c = j->cancel;
	pthread_mutex_unlock(&lock);
	return c;
}

int
job_cancelled(job *j)
{
	pthread_mutex_lock(&lock);
	int c = j->cancel;
	pthread_mutex_unlock(&lock);
	return c;
}

void
job_set_result(job *j, const char *result)
{
	pthread_mutex_lock(&lock);
	snprintf(j->result, sizeof(j->result), "%s", result);
	pthread_mutex_unlock(&lock);
}

void
job_set_code(job *j, int code)
{
	pthread_mutex_lock(&lock);
	j->code = code;
	pthread_mutex_unlock(&lock);
}

static json_object *
to_json(const job *j)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_uint64(j->id));
	json_object_object_add(o, "kind", json_object_new_string(j->kind));
	json_object_object_add(o, "pool", json_object_new_string(j->pool));
	json_object_object_add(o, "target", json_object_new_string(j->target));
	json_object_object_add(o, "state", json_object_new_string(state_names[j->state]));
	json_object_object_add(o, "done", json_object_new_uint64(j->done));
	json_object_object_add(o, "total", json_object_new_uint64(j->total));
	uint64_t end = j->state == J_RUNNING ? util_now_ns() : j->ended_ns;
	json_object_object_add(o, "elapsed_ms", json_object_new_uint64((end - j->started_ns) / 1000000));
	if (j->result[0])
		json_object_object_add(o, "result", json_object_new_string(j->result));
	if (j->state == J_FAILED || j->state == J_CANCELLED) {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "errno", json_object_new_int(-j->err));
		json_object_object_add(e, "code", json_object_new_string(ctl_wire(j->code)));
		json_object_object_add(e, "message", json_object_new_string(j->message));
		json_object_object_add(o, "error", e);
	}
	return o;
}

json_object *
job_get(uint64_t id)
{
	pthread_mutex_lock(&lock);
	job *j = find(id);
	json_object *o = j ? to_json(j) : NULL;
	pthread_mutex_unlock(&lock);
	return o;
}

json_object *
job_list(void)
{
	json_object *a = json_object_new_array();
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < njobs; i++)
		json_object_array_add(a, to_json(jobs[i]));
	pthread_mutex_unlock(&lock);
	return a;
}

int
job_cancel(uint64_t id)
{
	pthread_mutex_lock(&lock);
	job *j = find(id);
	int r = j == NULL ? -ENOENT : j->state != J_RUNNING ? -EALREADY : 0;
	if (r == 0)
		j->cancel = 1;
	pthread_mutex_unlock(&lock);
	return r;
}

int
job_wait(uint64_t id, int timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	if (timeout_ms > 0) {
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&lock);
	job *j;
	int r = 0;
	while ((j = find(id)) != NULL && j->state == J_RUNNING && r == 0 && timeout_ms != 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&changed, &lock);
		else
			r = pthread_cond_timedwait(&changed, &lock, &until);
	}
	r = j == NULL ? -ENOENT : 0;
	pthread_mutex_unlock(&lock);
	return r;
}

int
job_outcome(uint64_t id, int *code, char *message, size_t mlen)
{
	pthread_mutex_lock(&lock);
	job *j = find(id);
	int r = j == NULL ? -ENOENT : j->state == J_RUNNING ? -EINPROGRESS : j->err;
	*code = j == NULL ? CE_E_JOB_NOT_FOUND : j->state == J_RUNNING ? CE_E_BUSY : j->code;
	snprintf(message, mlen, "%s", j ? j->message : "");
	pthread_mutex_unlock(&lock);
	return r;
}

void
job_cancel_owner(uint64_t owner)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < njobs; i++)
		if (jobs[i]->owner == owner && jobs[i]->state == J_RUNNING) {
			jobs[i]->cancel = 1;
			log_msg(LOG_INFO, "job %llu: its client went away: cancelling",
			    (unsigned long long)jobs[i]->id);
		}
	pthread_mutex_unlock(&lock);
}

void
job_shutdown(void)
{
	pthread_mutex_lock(&lock);
	shut = 1;
	for (size_t i = 0; i < njobs; i++)
		jobs[i]->cancel = 1;
	while (running > 0)
		pthread_cond_wait(&changed, &lock);
	pthread_mutex_unlock(&lock);
}
