/*
 * fuzz_fence: what the DistCp fence module reads from outside (proxy/fence.c): a fence token from an
 * admin query or the command line, a line of fence-touched.log and fence.json from disk. Properties:
 * nothing crashes; a token that parses has a 24-digit lower-case hex instance; a log line that parses
 * gives an absolute path without control characters; fence.json never yields more fences than it
 * lists.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dbuf.h"
#include "fence.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20)) return 0;
    unsigned sel = data[0] % 3;
    size_t n = size - 1;
    char *s = malloc(n + 1);
    if (!s) return 0;
    memcpy(s, data + 1, n);
    s[n] = '\0';
    switch (sel) {
    case 0: {
        char inst[25];
        uint64_t id = 0, seq = 0;
        if (fence_token_parse(s, inst, &id, &seq) == 0) {
            CHECK(strlen(inst) == 24);
            for (int i = 0; i < 24; i++) CHECK((inst[i] >= '0' && inst[i] <= '9') || (inst[i] >= 'a' && inst[i] <= 'f'));
            CHECK(strncmp(s, "dpf1-", 5) == 0 && strlen(s) < FENCE_TOKEN_MAX);
        }
        break;
    }
    case 1: {
        dbuf d;
        dbuf_init(&d, 1 << 20);
        bool tree = false;
        if (fence_log_line_parse(s, n, &d, &tree) == 0) {
            CHECK(d.data && d.data[0] == '/');
            for (size_t i = 0; i < d.len; i++) CHECK((unsigned char)d.data[i] >= 0x20 && d.data[i] != 0x7f);
            CHECK(tree == (s[0] == 'T'));
        }
        dbuf_free(&d);
        break;
    }
    default: {
        int nf = -1;
        char err[512];
        if (fence_file_check(s, n, &nf, err, sizeof err) == 0) {
            CHECK(nf >= 0 && nf <= 64);
        } else {
            CHECK(err[0] != '\0');
        }
        break;
    }
    }
    free(s);
    return 0;
}
