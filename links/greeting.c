/* greeting.c: the master's first bytes on every TCP connection to it (PROTOCOL section 11):
 * "BRL" ‖ version 1 ‖ 16 random bytes (the TCP lane's challenge). */
#include "tcp_server.h"

#include <string.h>

static const uint8_t MAGIC[4] = {'B', 'R', 'L', 1};

void link_tcp_greeting_put(uint8_t out[LINK_TCP_GREETING_LEN],
                           const uint8_t challenge[LINK_TCP_CHALLENGE_LEN])
{
    memcpy(out, MAGIC, sizeof MAGIC);
    memcpy(out + sizeof MAGIC, challenge, LINK_TCP_CHALLENGE_LEN);
}

int link_tcp_greeting_parse(const uint8_t *p, size_t len,
                            uint8_t challenge[LINK_TCP_CHALLENGE_LEN])
{
    if (memcmp(p, MAGIC, len < sizeof MAGIC ? len : sizeof MAGIC) != 0) return -1;
    if (len < LINK_TCP_GREETING_LEN) return 1;
    memcpy(challenge, p + sizeof MAGIC, LINK_TCP_CHALLENGE_LEN);
    return 0;
}
