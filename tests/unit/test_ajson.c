/* ajson: the admin endpoints' JSON answers: an error message is escaped, one that is not UTF-8 (it may
 * quote a value a client sent) still gives a JSON answer saying so, a reply carries the object. */
#include <jansson.h>
#include <string.h>

#include "ajson.h"
#include "tharness.h"

static json_t *parsed(const dbuf *b)
{
    ASSERT_TRUE(b->len > 0 && b->data[b->len - 1] == '\n');
    json_error_t e;
    json_t *o = json_loadb(b->data, b->len, 0, &e);
    ASSERT_TRUE(o != NULL);
    return o;
}

/* ajson_error(status, the message) answers status with {"error": want}. */
static void error_says(unsigned status, const char *msg, const char *want)
{
    dbuf b;
    dbuf_init(&b, 4096);
    ASSERT_EQ_INT(ajson_error(&b, status, "%s", msg), status);
    json_t *o = parsed(&b);
    ASSERT_EQ_STR(json_string_value(json_object_get(o, "error")), want);
    json_decref(o);
    dbuf_free(&b);
}

TEST(error_is_escaped_json)
{
    error_says(404, "no \"/a\nb\" here", "no \"/a\nb\" here");
}

TEST(error_quoting_bytes_that_are_not_utf8)
{
    error_says(400, "bad path /x\xff\xfe", "bad request (a value is not UTF-8)");
}

TEST(reply_carries_the_object)
{
    dbuf b;
    dbuf_init(&b, 4096);
    ASSERT_EQ_INT(ajson_reply(&b, 202, json_pack("{s:i}", "n", 3)), 202);
    json_t *o = parsed(&b);
    ASSERT_EQ_INT(json_integer_value(json_object_get(o, "n")), 3);
    json_decref(o);
    ASSERT_EQ_INT(ajson_reply(&b, 200, NULL), 500); /* out of memory building it */
    dbuf_free(&b);
}

TESTS(T(error_is_escaped_json), T(error_quoting_bytes_that_are_not_utf8), T(reply_carries_the_object))
