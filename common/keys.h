/* keys.h: 32-byte keys as text (base64, as `wg` prints them) and private-key files: reading one
 * refuses a file that group or others may read or write, with a message that says how to fix it. */
#ifndef BRAID_KEYS_H
#define BRAID_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEY_LEN 32
#define KEY_B64_LEN 45 /* 44 characters and the NUL */

/* Decode base64 (standard alphabet, with padding; spaces and newlines around it are ignored)
 * into a 32-byte key. Returns 0, or -1 with a message in err ("not valid base64", "24 bytes,
 * expected 32"). */
int key_from_b64(const char *text, uint8_t key[KEY_LEN], char *err, size_t errlen);
/* Encode a key as base64 into out[KEY_B64_LEN]. */
void key_to_b64(const uint8_t key[KEY_LEN], char out[KEY_B64_LEN]);
/* A fresh random key (an X25519 private key or a PSK: any 32 random bytes) as base64. */
void key_generate_b64(char out[KEY_B64_LEN]);

/* Read a private key file: one base64 key (a trailing newline is fine). Refuses a file that is
 * not a regular file, is larger than 1 KiB, or whose mode lets group or others read or write it
 * (the message says `chmod 600 FILE`). Returns 0, or -1 with "FILE: what is wrong; what to do"
 * in err. The bytes read are wiped. */
int key_read_file(const char *path, uint8_t key[KEY_LEN], char *err, size_t errlen);

#endif
