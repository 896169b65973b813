/*
 * spool.h — a message body collected chunk by chunk.
 *
 * Up to `threshold` bytes stay in memory; past that the body moves to a
 * private temp file (mode 0600) in the spool directory, unlinked at once so
 * nothing is left behind on any path, even a crash. Past `max` the write
 * fails with SM_ERR_LIMIT and the caller refuses the message.
 * spool_view() gives the whole body as one read-only byte range (memory, or
 * an mmap of the file), decided once at end of message.
 *
 * A spool also holds what the gateway writes (the canonical entity, the
 * signed and encrypted bodies): written in pieces with spool_write(), read
 * back in pieces with spool_pread(), so no stage needs the whole body in
 * memory once it passed the threshold.
 */
#ifndef SMIME_SPOOL_H
#define SMIME_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
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
/* Read up to n bytes at off into p; *got is 0 at the end. */
sm_status spool_pread(struct spool *sp, uint64_t off, void *p, size_t n, size_t *got);
/* The pages of the mapping spool_view() gave are no longer needed
 * resident: they are read again from the file when touched (the view stays
 * valid). Nothing happens to a body held in memory. */
void spool_drop_pages(struct spool *sp);
/* A body still in memory is handed over into out (emptied first);
 * SM_ERR_ARG when it is on disk. */
sm_status spool_take(struct spool *sp, struct buf *out);
void spool_free(struct spool *sp);

#endif
