/* keys.c: 32-byte keys as base64 text and private-key files (permission-checked). */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAX 1024

int key_from_b64(const char *text, uint8_t key[KEY_LEN], char *err, size_t errlen)
{
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' ||
                       text[len - 1] == '\t'))
        len--;
    while (len > 0 && (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')) {
        text++;
        len--;
    }
    uint8_t bin[KEY_LEN + 3];
    size_t n = 0;
    const char *end = NULL;
    int rc = sodium_base642bin(bin, sizeof bin, text, len, NULL, &n, &end,
                               sodium_base64_VARIANT_ORIGINAL);
    if (rc != 0 || end != text + len) {
        sodium_memzero(bin, sizeof bin);
        /* (a longer input overflows bin: say how long it is rather than "not base64") */
        if (len > 44 && len <= 4096) {
            snprintf(err, errlen, "%zu characters, expected 44 (32 bytes of base64)", len);
            return -1;
        }
        snprintf(err, errlen, "not valid base64; expected 44 characters (32 bytes of base64)");
        return -1;
    }
    if (n != KEY_LEN) {
        sodium_memzero(bin, sizeof bin);
        snprintf(err, errlen, "%zu bytes, expected 32 (44 characters of base64)", n);
        return -1;
    }
    memcpy(key, bin, KEY_LEN);
    sodium_memzero(bin, sizeof bin);
    return 0;
}

void key_to_b64(const uint8_t key[KEY_LEN], char out[KEY_B64_LEN])
{
    sodium_bin2base64(out, KEY_B64_LEN, key, KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
}

void key_generate_b64(char out[KEY_B64_LEN])
{
    uint8_t raw[KEY_LEN];
    randombytes_buf(raw, sizeof raw);
    key_to_b64(raw, out);
    sodium_memzero(raw, sizeof raw);
}

int key_read_file(const char *path, uint8_t key[KEY_LEN], char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open the private key file: %s%s", path, strerror(errno),
                 errno == ELOOP ? " (a symbolic link: give the file itself)" : "");
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file; give the private key file itself", path);
        close(fd);
        return -1;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen,
                 "%s: group or others may access this private key file (mode %03o); "
                 "run `chmod 600 %s`",
                 path, (unsigned)(st.st_mode & 0777), path);
        close(fd);
        return -1;
    }
    if (st.st_size > KEY_FILE_MAX) {
        snprintf(err, errlen, "%s: %lld bytes, too large for a key file (one line of 44 "
                 "characters, as `braid-master genkey` prints)", path, (long long)st.st_size);
        close(fd);
        return -1;
    }
    char buf[KEY_FILE_MAX + 1];
    size_t got = 0;
    while (got < KEY_FILE_MAX) {
        ssize_t r = read(fd, buf + got, KEY_FILE_MAX - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            close(fd);
            sodium_memzero(buf, sizeof buf);
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    char why[128];
    int rc = 0;
    if (strlen(buf) != got) {
        snprintf(err, errlen, "%s: contains a NUL byte; expected one line of base64", path);
        rc = -1;
    } else if (key_from_b64(buf, key, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s, as `braid-master genkey` prints", path, why);
        rc = -1;
    }
    sodium_memzero(buf, sizeof buf);
    return rc;
}
