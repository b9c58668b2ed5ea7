/* wfile: a file replaced whole, nothing else left in its directory, errors as -errno. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tharness.h"
#include "wfile.h"

static char g_dir[64];

static void read_back(const char *leaf, char *buf, size_t cap, size_t *n)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", g_dir, leaf);
    FILE *f = fopen(p, "rb");
    ASSERT_TRUE(f != NULL);
    *n = fread(buf, 1, cap, f);
    fclose(f);
}

static int entries(void)
{
    DIR *d = opendir(g_dir);
    ASSERT_TRUE(d != NULL);
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

TEST(replaces_whole_and_leaves_no_temporary)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/dp-wfile-XXXXXX");
    ASSERT_TRUE(mkdtemp(g_dir) != NULL);
    char buf[64];
    size_t n;
    ASSERT_EQ_INT(wf_replace(g_dir, "state", "first version\n", 14), 0);
    read_back("state", buf, sizeof buf, &n);
    ASSERT_EQ_INT(n, 14);
    ASSERT_EQ_MEM(buf, "first version\n", 14);
    ASSERT_EQ_INT(wf_replace(g_dir, "state", "2nd", 3), 0); /* shorter: nothing of the old one stays */
    read_back("state", buf, sizeof buf, &n);
    ASSERT_EQ_INT(n, 3);
    ASSERT_EQ_MEM(buf, "2nd", 3);
    ASSERT_EQ_INT(wf_replace(g_dir, "empty", "", 0), 0);
    read_back("empty", buf, sizeof buf, &n);
    ASSERT_EQ_INT(n, 0);
    ASSERT_EQ_INT(entries(), 2);
    struct stat st;
    char p[128];
    snprintf(p, sizeof p, "%s/state", g_dir);
    ASSERT_EQ_INT(stat(p, &st), 0);
    ASSERT_EQ_INT(st.st_mode & 0777, 0600);
    unlink(p);
    snprintf(p, sizeof p, "%s/empty", g_dir);
    unlink(p);
    ASSERT_EQ_INT(rmdir(g_dir), 0);
}

TEST(missing_directory_is_an_error)
{
    ASSERT_EQ_INT(wf_replace("/nonexistent-dp-wfile-dir", "state", "x", 1), -ENOENT);
    ASSERT_EQ_INT(wf_fsync_dir("/nonexistent-dp-wfile-dir"), -ENOENT);
}

TESTS(T(replaces_whole_and_leaves_no_temporary), T(missing_directory_is_an_error))
