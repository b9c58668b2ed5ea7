/*
 * wfile: replacing a small file whole and durably (wfile.h).
 */
#include "wfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int wf_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int wf_replace(const char *dir, const char *leaf, const void *data, size_t len)
{
    size_t n = strlen(dir) + strlen(leaf) + 16;
    char *tmp = malloc(n), *final = malloc(n);
    if (!tmp || !final) {
        free(tmp);
        free(final);
        return -ENOMEM;
    }
    snprintf(tmp, n, "%s/%s~XXXXXX", dir, leaf);
    snprintf(final, n, "%s/%s", dir, leaf);
    int rc = 0;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    const char *p = data;
    size_t done = 0;
    while (rc == 0 && done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) rc = w < 0 ? -errno : -EIO;
        else done += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0) rc = -errno;
    if (close(fd) != 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, final) != 0) rc = -errno;
    if (rc != 0) unlink(tmp);
    else rc = wf_fsync_dir(dir);
out:
    free(tmp);
    free(final);
    return rc;
}
