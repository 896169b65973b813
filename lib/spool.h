/*
 * spool.h — a message body collected chunk by chunk.
 *
 * Up to `threshold` bytes stay in memory; past that the body moves to a
 * private temp file (mode 0600) in the spool directory, unlinked at once so
 * nothing is left behind on any path, even a crash. Past `max` the write
 * fails with SM_ERR_LIMIT and the caller refuses the message.
 * spool_view() gives the whole body as one read-only byte range (memory, or
 * an mmap of the file), decided once at end of message.
 */
#ifndef SMIME_SPOOL_H
#define SMIME_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct spool;

/* dir: where temp files go (must exist, should be mode 0700). */
sm_status spool_new(const char *dir, uint64_t threshold, uint64_t max, struct spool **out);
sm_status spool_write(struct spool *sp, const void *p, size_t n);
uint64_t spool_size(const struct spool *sp);
/* Was the body moved to a file? */
int spool_on_disk(const struct spool *sp);
/* A read-only view of everything written so far. Valid until the next
 * spool_write or spool_free. An empty body gives (non-NULL, 0). */
sm_status spool_view(struct spool *sp, const unsigned char **p, size_t *n);
void spool_free(struct spool *sp);

#endif
