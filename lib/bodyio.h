/*
 * bodyio.h — reading a message body in chunks, whether it sits in memory
 * or in a read-only file mapping (spool_view() of a spooled body).
 *
 * A file mapping's pages count in the process's RSS once touched; a
 * reader that passes through 50 MB would hold all of it resident. These
 * readers give the pages they have passed back to the kernel
 * (MADV_DONTNEED, which for a private read-only file mapping only drops
 * them: a later read faults them in again from the file). Memory that is
 * no such mapping is never touched that way.
 */
#ifndef SMIME_BODYIO_H
#define SMIME_BODYIO_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/bio.h>

#include "buf.h"
#include "status.h"

/* Ranges shorter than this are never dropped: not worth a look at
 * /proc/self/maps. */
#define BODYIO_DROP_MIN (1024 * 1024)

/*
 * A read-only source BIO over p[0..n) giving its canonical form: every
 * bare LF (not preceded by CR) becomes CRLF, everything else passes
 * unchanged, chunk by chunk without a copy of the whole. BIO_read returns
 * 0 at the end. drop: give the pages read back behind the reader (only
 * honoured when bodyio_file_mapped() holds). The bytes must outlive the
 * BIO. NULL when out of memory.
 */
BIO *bodyio_crlf_bio(const unsigned char *p, size_t n, bool drop);

/* Does [p, p+n) lie in one private, read-only mapping of a file? False
 * for anything else, and for ranges under BODYIO_DROP_MIN. */
bool bodyio_file_mapped(const void *p, size_t n);

/* Drop the resident pages of [p, p+n) when it is such a mapping. */
void bodyio_drop(const void *p, size_t n);

/*
 * A pager for mime_parse_message_paged() over [p, p+n): its read_done
 * drops the pages of the mapping (they are read again where touched), so
 * a parse of a spooled body never holds all of it resident. The mapping
 * is looked up once, in bodyio_pager_init().
 */
struct bodyio_pager {
	const void *p;
	size_t n;
	bool mapped;
};
void bodyio_pager_init(struct bodyio_pager *pg, const void *p, size_t n);
void bodyio_pager_done(void *arg);

/*
 * mime_b64_decode() of in[0..n) appended to out, with the same result and
 * status; when the input is such a mapping it is decoded in pieces, the
 * pages behind each piece dropped, into out reserved once (about 3/4 of
 * n): the peak is the decoded size, not that plus the encoded one.
 */
sm_status bodyio_b64_decode(const unsigned char *in, size_t n, struct buf *out);

#endif
