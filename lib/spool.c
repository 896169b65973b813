#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

struct spool {
	char *dir;
	uint64_t threshold, max, size;
	struct buf mem;
	int fd;             /* -1 while in memory */
	void *map;
	size_t map_len;
};

sm_status
spool_new(const char *dir, uint64_t threshold, uint64_t max, struct spool **out)
{
	struct spool *sp = calloc(1, sizeof(*sp));

	*out = NULL;
	if (sp == NULL || (sp->dir = strdup(dir)) == NULL) {
		free(sp);
		return SM_ERR_NOMEM;
	}
	sp->threshold = threshold;
	sp->max = max;
	sp->fd = -1;
	*out = sp;
	return SM_OK;
}

static void
spool_unmap(struct spool *sp)
{
	if (sp->map && sp->map != MAP_FAILED)
		munmap(sp->map, sp->map_len);
	sp->map = NULL;
	sp->map_len = 0;
}

static sm_status
spool_write_fd(int fd, const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return SM_ERR_IO;
		}
		c += w;
		n -= (size_t)w;
	}
	return SM_OK;
}

/* Move the in-memory part to an anonymous file in the spool directory. */
static sm_status
spool_to_disk(struct spool *sp)
{
	/* O_TMPFILE: the file has no name, so no path can leak it. */
	int fd = open(sp->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/body.XXXXXX", sp->dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd < 0)
			return SM_ERR_IO;
		unlink(path);
	}
	if (spool_write_fd(fd, sp->mem.data, sp->mem.len) != SM_OK) {
		close(fd);
		return SM_ERR_IO;
	}
	buf_free(&sp->mem);
	sp->fd = fd;
	return SM_OK;
}

sm_status
spool_write(struct spool *sp, const void *p, size_t n)
{
	sm_status st;

	if (sp->size + n > sp->max)
		return SM_ERR_LIMIT;
	spool_unmap(sp);
	if (sp->fd < 0 && sp->size + n > sp->threshold)
		if ((st = spool_to_disk(sp)) != SM_OK)
			return st;
	st = sp->fd < 0 ? buf_append(&sp->mem, p, n) : spool_write_fd(sp->fd, p, n);
	if (st == SM_OK)
		sp->size += n;
	return st;
}

uint64_t
spool_size(const struct spool *sp)
{
	return sp->size;
}

int
spool_on_disk(const struct spool *sp)
{
	return sp->fd >= 0;
}

sm_status
spool_view(struct spool *sp, const unsigned char **p, size_t *n)
{
	static const unsigned char empty[1];

	if (sp->fd < 0) {
		*p = sp->mem.data ? sp->mem.data : empty;
		*n = sp->mem.len;
		return SM_OK;
	}
	if (sp->size == 0) {
		*p = empty;
		*n = 0;
		return SM_OK;
	}
	if (sp->map == NULL) {
		sp->map = mmap(NULL, (size_t)sp->size, PROT_READ, MAP_PRIVATE, sp->fd, 0);
		if (sp->map == MAP_FAILED) {
			sp->map = NULL;
			return SM_ERR_IO;
		}
		sp->map_len = (size_t)sp->size;
	}
	*p = sp->map;
	*n = sp->map_len;
	return SM_OK;
}

sm_status
spool_pread(struct spool *sp, uint64_t off, void *p, size_t n, size_t *got)
{
	*got = 0;
	if (off >= sp->size || n == 0)
		return SM_OK;
	if (n > sp->size - off)
		n = (size_t)(sp->size - off);
	if (sp->fd < 0) {
		memcpy(p, sp->mem.data + off, n);
		*got = n;
		return SM_OK;
	}
	for (;;) {
		ssize_t r = pread(sp->fd, p, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return SM_ERR_IO;
		*got = (size_t)r;
		return SM_OK;
	}
}

void
spool_drop_pages(struct spool *sp)
{
	/* A private read-only file mapping: MADV_DONTNEED only unmaps the
	 * page-cache pages; touching them again reads the same bytes. */
	if (sp != NULL && sp->map != NULL)
		(void)madvise(sp->map, sp->map_len, MADV_DONTNEED);
}

sm_status
spool_take(struct spool *sp, struct buf *out)
{
	if (sp->fd >= 0)
		return SM_ERR_ARG;
	buf_free(out);
	*out = sp->mem;
	memset(&sp->mem, 0, sizeof(sp->mem));
	sp->size = 0;
	return SM_OK;
}

void
spool_free(struct spool *sp)
{
	if (sp == NULL)
		return;
	spool_unmap(sp);
	if (sp->fd >= 0)
		close(sp->fd);
	buf_free(&sp->mem);
	free(sp->dir);
	free(sp);
}
