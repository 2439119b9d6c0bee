/* test_keys.c: unit tests of common/keys.c: base64 keys (round trip, hostile text) and
 * private-key files (permissions, symlinks, directories, size, NUL bytes, bad content). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../common/keys.h"

static char dir[] = "/tmp/braid-test-keys-XXXXXX";
static char path[256];

static void test_b64_roundtrip(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++) {
        uint8_t k[KEY_LEN], back[KEY_LEN];
        char text[KEY_B64_LEN], err[128];
        randombytes_buf(k, sizeof k);
        key_to_b64(k, text);
        assert_int_equal(strlen(text), 44);
        assert_int_equal(key_from_b64(text, back, err, sizeof err), 0);
        assert_memory_equal(k, back, KEY_LEN);
    }
    /* spaces and a newline around it are fine */
    uint8_t k[KEY_LEN];
    char err[128];
    assert_int_equal(key_from_b64("  co4riibkSFiMS16XxlVm5E4HlBC70Kr39nE1GtvGFss=\n", k, err,
                                  sizeof err),
                     0);
}

static void test_b64_hostile(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "=",
        "co4riibkSFiMS16XxlVm5E4HlBC70Kr39nE1GtvGFss",       /* no padding */
        "co4riibkSFiMS16XxlVm5E4HlBC70Kr39nE1GtvGFs=",       /* 43 characters */
        "co4riibkSFiMS16XxlVm5E4HlBC70Kr39nE1GtvGFss=AAAA",  /* 36 bytes */
        "co4riibkSFiMS16XxlVm5E4HlBC70Kr39nE1GtvGF!s=",      /* a bad character */
        "co4riibk SFiMS16XxlVm5E4HlBC70Kr39nE1GtvGFss=",     /* a space inside */
        "co4riibkSFiMS16XxlVm5E4HlBC70Kr39nE1GtvGFss=\x01",  /* a control character */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",                  /* 24 bytes */
        "co4riibk-FiMS16XxlVm5E4HlBC70Kr39nE1GtvGFss=",      /* URL-safe alphabet */
    };
    uint8_t k[KEY_LEN];
    memset(k, 0xee, sizeof k);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[128] = "";
        assert_int_equal(key_from_b64(bad[i], k, err, sizeof err), -1);
        assert_true(strstr(err, "expected") != NULL);
    }
    for (size_t i = 0; i < KEY_LEN; i++) assert_int_equal(k[i], 0xee); /* untouched */
    char err[128];
    char big[5000];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(key_from_b64(big, k, err, sizeof err), -1);
}

static void write_file(const char *p, const char *content, size_t len, mode_t mode)
{
    unlink(p);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    fclose(f);
    assert_int_equal(chmod(p, mode), 0);
}

static const char KEY_TEXT[] = "co4riibkSFiMS16XxlVm5E4HlBC70Kr39nE1GtvGFss=\n";

static void test_file_ok(void **state)
{
    (void)state;
    uint8_t k[KEY_LEN], want[KEY_LEN];
    char err[256];
    assert_int_equal(key_from_b64(KEY_TEXT, want, err, sizeof err), 0);
    write_file(path, KEY_TEXT, strlen(KEY_TEXT), 0600);
    assert_int_equal(key_read_file(path, k, err, sizeof err), 0);
    assert_memory_equal(k, want, KEY_LEN);
    write_file(path, KEY_TEXT, strlen(KEY_TEXT), 0400);
    assert_int_equal(key_read_file(path, k, err, sizeof err), 0);
}

static void expect_refused(const char *p, const char *needle)
{
    uint8_t k[KEY_LEN];
    char err[256] = "";
    assert_int_equal(key_read_file(p, k, err, sizeof err), -1);
    if (!strstr(err, needle)) fail_msg("\"%s\" not in \"%s\"", needle, err);
    assert_true(strncmp(err, p, strlen(p)) == 0); /* names the file */
}

static void test_file_permissions(void **state)
{
    (void)state;
    static const mode_t modes[] = {0640, 0604, 0644, 0660, 0606, 0610, 0601, 0620};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        write_file(path, KEY_TEXT, strlen(KEY_TEXT), modes[i]);
        expect_refused(path, "chmod 600");
    }
}

static void test_file_hostile(void **state)
{
    (void)state;
    expect_refused("/nonexistent/braid.key", "cannot open");
    expect_refused(dir, "not a regular file");
    char link[300];
    snprintf(link, sizeof link, "%s/link.key", dir);
    write_file(path, KEY_TEXT, strlen(KEY_TEXT), 0600);
    unlink(link);
    assert_int_equal(symlink(path, link), 0);
    expect_refused(link, "symbolic link");
    unlink(link);
    char big[2048];
    memset(big, 'A', sizeof big);
    write_file(path, big, sizeof big, 0600);
    expect_refused(path, "too large");
    write_file(path, "co4riibkSFiMS16X\0lVm5E4HlBC70Kr39nE1GtvGFss=", 44, 0600);
    expect_refused(path, "NUL");
    write_file(path, "", 0, 0600);
    expect_refused(path, "expected");
    write_file(path, "not a key at all\n", 17, 0600);
    expect_refused(path, "genkey");
    write_file(path, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", 33, 0600);
    expect_refused(path, "24 bytes");
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/test.key", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    umask(077);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_roundtrip),
        cmocka_unit_test(test_b64_hostile),
        cmocka_unit_test(test_file_ok),
        cmocka_unit_test(test_file_permissions),
        cmocka_unit_test(test_file_hostile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
