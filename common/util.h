/* util.h: small helpers used everywhere: monotonic clock, big-endian load/store, serial arithmetic.
 * All inline; no state. */
#ifndef BRAID_UTIL_H
#define BRAID_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Monotonic clock in microseconds. */
static inline uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void put_be48(uint8_t *p, uint64_t v)
{
    for (int i = 5; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}
static inline void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}
static inline uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t get_be48(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 6; i++) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* A one-second counting window (rate limits): starts afresh once a second has passed. */
static inline void window_roll(uint64_t *start, unsigned *count, uint64_t now_us)
{
    if (now_us - *start >= 1000000u) {
        *start = now_us;
        *count = 0;
    }
}

/* FNV-1a: h (2166136261 to start) carried over len more bytes (hash tables, not security). */
#define FNV1A_START 2166136261u
static inline uint32_t fnv1a(uint32_t h, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

/* Serial-number arithmetic on 32-bit sequence numbers (RFC 1982 style): a - b as signed. */
static inline int32_t seq_diff(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b);
}
static inline int seq_lt(uint32_t a, uint32_t b)
{
    return seq_diff(a, b) < 0;
}

#endif
