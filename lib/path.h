/*
 * path.h — small helpers on file names (no file system access).
 */
#ifndef SMIME_PATH_H
#define SMIME_PATH_H

#include <stddef.h>

/* The directory part of path, written to buf (len bytes, truncated to
 * fit) and returned: everything before the last '/', "/" for a file in
 * the root, "." for a name without '/'. Unlike dirname(3), path is not
 * changed, and a trailing '/' is not stripped first ("/a/b/" gives
 * "/a/b"). */
const char *path_dirname(const char *path, char *buf, size_t len);

#endif
