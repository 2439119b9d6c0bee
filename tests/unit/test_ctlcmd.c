/* test_ctlcmd.c: the control socket's command parser, with good and hostile lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/ctlcmd.h"

static struct ctlcmd C;
static char E[256];

static void expect_err(const char *line, const char *want)
{
    E[0] = '\0';
    assert_int_equal(ctlcmd_parse(line, &C, E, sizeof E), -1);
    if (!strstr(E, want)) fail_msg("\"%s\": got \"%s\", expected \"%s\" in it", line, E, want);
}

static void test_commands(void **state)
{
    (void)state;
    assert_int_equal(ctlcmd_parse("status", &C, E, sizeof E), 0);
    assert_int_equal(C.kind, CTL_STATUS);
    assert_int_equal(ctlcmd_parse("  json  ", &C, E, sizeof E), 0);
    assert_int_equal(C.kind, CTL_JSON);
    assert_int_equal(ctlcmd_parse("reload", &C, E, sizeof E), 0);
    assert_int_equal(C.kind, CTL_RELOAD);
    assert_int_equal(ctlcmd_parse("link wan0 down", &C, E, sizeof E), 0);
    assert_int_equal(C.kind, CTL_LINK);
    assert_string_equal(C.link, "wan0");
    assert_false(C.up);
    assert_int_equal(ctlcmd_parse("link phone-1.usb_2  up", &C, E, sizeof E), 0);
    assert_string_equal(C.link, "phone-1.usb_2");
    assert_true(C.up);
    char name31[64] = "link ";
    memset(name31 + 5, 'a', 31);
    strcpy(name31 + 36, " up");
    assert_int_equal(ctlcmd_parse(name31, &C, E, sizeof E), 0);
    assert_int_equal(strlen(C.link), 31);
}

static void test_hostile(void **state)
{
    (void)state;
    expect_err("", "no command; expected status, json, reload, or link NAME up|down");
    expect_err("   ", "no command");
    expect_err("stat", "unknown command \"stat\"");
    expect_err("statusstatusstatusstatus", "unknown command");
    expect_err("status now", "status: unexpected words after the command");
    expect_err("status x", "unexpected words");
    expect_err("link", "link: expected a link's name (1 to 31 characters)");
    expect_err("link wan0", "link wan0: expected up or down");
    expect_err("link wan0 sideways", "expected up or down");
    expect_err("link wan0 down now", "link: unexpected words");
    expect_err("link wan/0 down", "only letters, digits");
    expect_err("link wan0\t down", "only letters");
    char long32[64] = "link ";
    memset(long32 + 5, 'a', 32);
    strcpy(long32 + 37, " up");
    expect_err(long32, "1 to 31 characters");
    char huge[5000];
    memset(huge, 'x', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    expect_err(huge, "unknown command; expected"); /* longer than any command: not copied */
    expect_err("\xff\xfe", "unknown command; expected"); /* not echoed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
