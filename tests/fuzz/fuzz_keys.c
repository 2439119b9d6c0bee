/* fuzz_keys.c: libFuzzer target for key_from_b64 (common/keys.c), the parser of keys in config
 * and key files: any text, NUL-terminated; an accepted key must encode back to a text that
 * decodes to the same key. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        if (sodium_init() < 0) abort();
        init = 1;
    }
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    uint8_t k[KEY_LEN], back[KEY_LEN];
    char err[128];
    if (key_from_b64(text, k, err, sizeof err) == 0) {
        char enc[KEY_B64_LEN];
        key_to_b64(k, enc);
        if (key_from_b64(enc, back, err, sizeof err) != 0 || memcmp(k, back, KEY_LEN) != 0) abort();
    } else if (!strstr(err, "expected")) {
        abort(); /* every refusal says what is expected */
    }
    free(text);
    return 0;
}
