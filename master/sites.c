/* sites.c: the master's site table: a multiplexer per site, the receiver-index table that
 * finds a datagram's site, the public keys that find an INIT's, cryptokey routing of tunnel
 * packets (allowed_ips both ways), and the status by site. */
#include "sites.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../common/addr.h"
#include "../common/keys.h"
#include "../common/log.h"
#include "../common/prefix.h"
#include "../common/util.h"
#include "../lane/lane.h"
#include "../mux/wire.h"
#include "front.h"
#include "index.h"

struct site {
    struct sites *owner;
    int no;
    struct mux *mux;
    struct cfg_site cfg;
    uint64_t rx_foreign_src; /* decrypted packets whose source is not in allowed_ips: dropped */
    uint64_t rx_not_ip;      /* decrypted packets that are not IP (with allowed_ips): dropped */
    struct log_limit lim;
    struct lane_peer *lane;   /* the TCP lane's end for this site (made at its first link
                               * connection) and its connections to the destinations */
    struct lane_relay *relay;
};

struct keyent {
    uint8_t pub[32];
    int site;
};

struct sites {
    struct sites_io io;
    struct listener *ls;
    struct ev_loop *loop;
    struct front *front;
    struct identity self;
    struct site **site;     /* by site number (stable while the site lives); NULL: free */
    struct site *single;    /* without routes (one site): the site */
    int nslots;             /* numbers 0 .. nslots - 1 */
    int n;                  /* sites */
    struct itab index;      /* receiver index -> site */
    struct keyent *by_key;  /* sorted by public key */
    struct ptable *routes;  /* allowed_ips -> site number; NULL: one site takes everything */
    struct sites_counters c;
    struct log_limit lim_nosession, lim_route, lim_key, lim_malformed;
    int lane_max;           /* terminated connections per site */
};

/* ---------------------------------------------------------------- callbacks of the muxes */

static int index_claim(void *ctx, uint32_t *index)
{
    struct site *st = ctx;
    return itab_claim(&st->owner->index, (unsigned)st->no, index);
}

static void index_release(void *ctx, uint32_t index)
{
    struct site *st = ctx;
    itab_release(&st->owner->index, (unsigned)st->no, index);
}

/* A packet from the site: only from its own addresses (cryptokey routing). */
static void site_deliver(void *ctx, const uint8_t *pkt, size_t len)
{
    struct site *st = ctx;
    struct sites *s = st->owner;
    if (s->routes) {
        const uint8_t *src, *dst;
        int af = ip_pkt_addrs(pkt, len, &src, &dst);
        uint32_t who;
        if (!af) {
            st->rx_not_ip++;
            log_limited(&st->lim, LOG_WARN, "site %s: dropped a tunnel packet that is not IPv4 "
                        "or IPv6", st->cfg.name);
            return;
        }
        if (ptable_lookup(s->routes, af, src, &who) != 0 || who != (uint32_t)st->no) {
            st->rx_foreign_src++;
            char ip[ADDR_STRLEN];
            log_limited(&st->lim, LOG_WARN,
                        "site %s: dropped a tunnel packet from %s: not in the site's allowed_ips",
                        st->cfg.name, ip_str(af, src, ip, sizeof ip));
            return;
        }
    }
    s->io.deliver(s->io.ctx, pkt, len);
}

static struct link *site_new_link(void *ctx, uint8_t id)
{
    struct site *st = ctx;
    struct listener *ls = st->owner->ls;
    return ls->ops->peer_new(ls, id);
}

static int site_reply_to(void *ctx, const uint8_t *buf, size_t len, const struct sockaddr *to,
                         socklen_t tolen)
{
    struct site *st = ctx;
    struct listener *ls = st->owner->ls;
    return ls->ops->reply(ls, buf, len, to, tolen);
}

static void site_link_state(void *ctx, const char *name, uint8_t id, bool up, int links_up)
{
    struct site *st = ctx;
    const struct sites_io *io = &st->owner->io;
    /* the lane's connection on a link that is down carries nothing new, and what it carried
     * goes again on the others now, not when its TCP gives up */
    if (st->lane) lane_peer_suspend_link(st->lane, id, !up);
    if (io->link_state) io->link_state(io->ctx, st->cfg.name, name, id, up, links_up);
}

/* ---------------------------------------------------------------- lifecycle */

static int key_cmp(const void *a, const void *b)
{
    return memcmp(((const struct keyent *)a)->pub, ((const struct keyent *)b)->pub, 32);
}

static struct site *site_by_key(struct sites *s, const uint8_t pub[32])
{
    struct keyent k;
    memcpy(k.pub, pub, 32);
    const struct keyent *e = bsearch(&k, s->by_key, (size_t)s->n, sizeof *s->by_key, key_cmp);
    return e ? s->site[e->site] : NULL;
}

/* A multiplexer for site st with the shared settings and the site's own (cs). NULL when out of
 * memory. */
static struct mux *site_mux_new(struct sites *s, struct site *st, const struct cfg_site *cs,
                                const struct mux_config *base)
{
    struct mux_config mc = *base;
    peer_init(&mc.peer, cs->public_key, cs->psk);
    snprintf(mc.name, sizeof mc.name, "%s", cs->name);
    if (cs->scheduler[0]) snprintf(mc.scheduler, sizeof mc.scheduler, "%s", cs->scheduler);
    if (cs->has_reorder_max_ms) mc.reorder_max_ms = cs->reorder_max_ms;
    struct mux_callbacks cb = {.deliver = site_deliver,
                               .new_link = site_new_link,
                               .reply_to = site_reply_to,
                               .index_claim = index_claim,
                               .index_release = index_release,
                               .link_state = site_link_state,
                               .ctx = st};
    struct mux *m = mux_new(s->loop, &mc, &cb);
    sodium_memzero(&mc, sizeof mc);
    return m;
}

static struct site *site_new(struct sites *s, const struct cfg_site *cs, int no,
                             const struct mux_config *base)
{
    struct site *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->owner = s;
    st->no = no;
    st->cfg = *cs;
    st->lim.interval_us = 5000000u;
    if (!(st->mux = site_mux_new(s, st, cs, base))) {
        free(st);
        return NULL;
    }
    return st;
}

static void site_free(struct site *st)
{
    if (!st) return;
    lane_relay_free(st->relay);
    lane_peer_free(st->lane);
    mux_free(st->mux); /* releases its receiver indices through index_release */
    sodium_memzero(st, sizeof *st);
    free(st);
}

/* The key and route tables for n sites whose settings are given by site number (NULL: no
 * site). 0, or -1 when out of memory. */
static int build_tables(const struct cfg_site *const *cfgs, int nslots, int n,
                        struct keyent **by_key, struct ptable **routes)
{
    *by_key = calloc((size_t)(n ? n : 1), sizeof **by_key);
    *routes = NULL;
    if (!*by_key) return -1;
    bool routing = n > 1;
    for (int i = 0; i < nslots; i++)
        if (cfgs[i] && cfgs[i]->nallowed > 0) routing = true;
    if (routing && !(*routes = ptable_new())) goto nomem;
    int k = 0;
    for (int i = 0; i < nslots; i++) {
        const struct cfg_site *c = cfgs[i];
        if (!c) continue;
        memcpy((*by_key)[k].pub, c->public_key, 32);
        (*by_key)[k++].site = i;
        for (int a = 0; a < c->nallowed; a++)
            if (ptable_insert(*routes, &c->allowed[a], (uint32_t)i, NULL) < 0) goto nomem;
    }
    qsort(*by_key, (size_t)n, sizeof **by_key, key_cmp);
    return 0;
nomem:
    free(*by_key);
    ptable_free(*routes);
    *by_key = NULL;
    *routes = NULL;
    return -1;
}

static void sites_rx(void *ctx, uint8_t *buf, size_t len, const struct sockaddr *from,
                     socklen_t fromlen)
{
    sites_input(ctx, buf, len, from, fromlen);
}

struct sites *sites_new(struct ev_loop *loop, const struct mux_config *base,
                        const struct cfg_site *cs, int n, struct listener *ls,
                        const struct sites_io *io)
{
    if (n < 1 || n > ITAB_SITES_MAX) {
        LOGE("%d sites: expected 1 to %d", n, ITAB_SITES_MAX);
        return NULL;
    }
    struct sites *s = calloc(1, sizeof *s);
    const struct cfg_site **cfgs = calloc((size_t)n, sizeof *cfgs);
    if (!s || !cfgs) goto nomem;
    s->io = *io;
    s->ls = ls;
    s->loop = loop;
    s->self = base->self;
    s->front = front_new(&s->self);
    s->site = calloc((size_t)n, sizeof *s->site);
    if (!s->front || !s->site || itab_init(&s->index) != 0) goto nomem;
    s->nslots = n;
    for (int i = 0; i < n; i++) {
        if (!(s->site[i] = site_new(s, &cs[i], i, base))) goto nomem;
        cfgs[i] = &cs[i];
        s->n++;
    }
    if (build_tables(cfgs, s->nslots, s->n, &s->by_key, &s->routes) != 0) goto nomem;
    s->single = s->site[0];
    free(cfgs);
    ls->rx = sites_rx;
    ls->ctx = s;
    s->lim_nosession.interval_us = s->lim_route.interval_us = s->lim_key.interval_us = 5000000u;
    return s;
nomem:
    LOGE("out of memory for %d sites", n);
    free(cfgs);
    sites_free(s);
    return NULL;
}

/* Does a site need a new multiplexer (a new session) for its new settings? */
static bool site_needs_new_mux(const struct cfg_site *a, const struct cfg_site *b)
{
    return a->has_psk != b->has_psk || sodium_memcmp(a->psk, b->psk, 32) != 0 ||
           strcmp(a->scheduler, b->scheduler) != 0 ||
           a->has_reorder_max_ms != b->has_reorder_max_ms ||
           (a->has_reorder_max_ms && a->reorder_max_ms != b->reorder_max_ms);
}

int sites_reload(struct sites *s, const struct mux_config *base, const struct cfg_site *cs,
                 int n, int changes[3], struct strbuf *out)
{
    changes[0] = changes[1] = changes[2] = 0;
    if (n < 1 || n > ITAB_SITES_MAX) return -1;
    int nslots = s->nslots > n ? s->nslots : n;
    struct site **nsite = calloc((size_t)nslots, sizeof *nsite);
    const struct cfg_site **cfgs = calloc((size_t)nslots, sizeof *cfgs);
    struct site **old = calloc((size_t)n, sizeof *old);   /* kept site, by j */
    struct site **made = calloc((size_t)n, sizeof *made); /* new site, by j */
    struct mux **fresh = calloc((size_t)n, sizeof *fresh); /* a kept site's new mux, by j */
    bool *keep = calloc((size_t)s->nslots, sizeof *keep);
    struct keyent *by_key = NULL;
    struct ptable *routes = NULL;
    if (!nsite || !cfgs || !old || !made || !fresh || !keep) goto fail;
    /* Prepare everything that may fail; the running table is not touched until all is made.
     * A kept site (the same public key) keeps its number and its session, unless its psk or
     * mux settings changed (a new multiplexer: the slave makes a new handshake). A new site
     * takes a number no kept site has (a removed site's is free once it is gone). */
    for (int j = 0; j < n; j++) {
        old[j] = site_by_key(s, cs[j].public_key);
        if (old[j]) {
            keep[old[j]->no] = true;
            cfgs[old[j]->no] = &cs[j];
        }
    }
    int next = 0;
    for (int j = 0; j < n; j++) {
        if (old[j]) {
            if (site_needs_new_mux(&old[j]->cfg, &cs[j]) &&
                !(fresh[j] = site_mux_new(s, old[j], &cs[j], base)))
                goto fail;
            continue;
        }
        while (cfgs[next]) next++; /* below nslots: kept + new sites = n <= nslots */
        if (!(made[j] = site_new(s, &cs[j], next, base))) goto fail;
        cfgs[next] = &cs[j];
    }
    if (build_tables(cfgs, nslots, n, &by_key, &routes) != 0) goto fail;

    /* Commit: nothing fails from here. */
    for (int i = 0; i < s->nslots; i++) {
        struct site *st = s->site[i];
        if (!st || keep[i]) continue;
        LOGI("reload: site %s removed", st->cfg.name);
        sb_printf(out, "removed site %s\n", st->cfg.name);
        mux_shutdown(st->mux); /* the slave hears its links are gone */
        site_free(st);
        changes[1]++;
    }
    for (int j = 0; j < n; j++) {
        if (made[j]) {
            nsite[made[j]->no] = made[j];
            LOGI("reload: site %s added", cs[j].name);
            sb_printf(out, "added site %s\n", cs[j].name);
            changes[0]++;
            continue;
        }
        struct site *st = old[j];
        bool differs = strcmp(st->cfg.name, cs[j].name) != 0 ||
                       st->cfg.nallowed != cs[j].nallowed ||
                       memcmp(st->cfg.allowed, cs[j].allowed,
                              (size_t)cs[j].nallowed * sizeof cs[j].allowed[0]) != 0;
        if (fresh[j]) {
            mux_shutdown(st->mux);
            mux_free(st->mux);
            st->mux = fresh[j];
            fresh[j] = NULL;
            mux_start(st->mux);
            LOGI("reload: site %s: a new psk or mux settings: a new session", cs[j].name);
            sb_printf(out, "changed site %s (a new session)\n", cs[j].name);
            changes[2]++;
        } else if (differs) {
            LOGI("reload: site %s: a new name or allowed_ips", cs[j].name);
            sb_printf(out, "changed site %s\n", cs[j].name);
            changes[2]++;
        }
        st->cfg = cs[j];
        nsite[st->no] = st;
    }
    free(s->site);
    s->site = nsite;
    s->nslots = nslots;
    s->n = n;
    free(s->by_key);
    ptable_free(s->routes);
    s->by_key = by_key;
    s->routes = routes;
    s->single = NULL;
    for (int i = 0; i < nslots && !s->single; i++) s->single = nsite[i];
    for (int j = 0; j < n; j++)
        if (made[j]) mux_start(made[j]->mux);
    free(cfgs);
    free(old);
    free(made);
    free(fresh);
    free(keep);
    return 0;
fail:
    for (int j = 0; made && j < n; j++) site_free(made[j]);
    for (int j = 0; fresh && j < n; j++) mux_free(fresh[j]);
    free(by_key);
    ptable_free(routes);
    free(nsite);
    free(cfgs);
    free(old);
    free(made);
    free(fresh);
    free(keep);
    LOGE("reload: out of memory for the new site table");
    return -1;
}

void sites_start(struct sites *s)
{
    for (int i = 0; i < s->nslots; i++)
        if (s->site[i]) mux_start(s->site[i]->mux);
}

void sites_shutdown(struct sites *s)
{
    for (int i = 0; i < s->nslots; i++)
        if (s->site[i]) mux_shutdown(s->site[i]->mux);
}

void sites_free(struct sites *s)
{
    if (!s) return;
    if (s->ls && s->ls->ctx == s) s->ls->rx = NULL;
    if (s->site)
        for (int i = 0; i < s->nslots; i++) site_free(s->site[i]);
    free(s->site);
    itab_free(&s->index);
    free(s->by_key);
    ptable_free(s->routes);
    front_free(s->front);
    sodium_memzero(&s->self, sizeof s->self);
    free(s);
}

/* ---------------------------------------------------------------- datagrams and packets */


static void handshake_in(struct sites *s, const uint8_t *buf, size_t len, uint8_t link_id,
                         const struct sockaddr *from, socklen_t fromlen)
{
    struct hs_server hs;
    uint8_t reply[HS_COOKIE_REPLY_LEN];
    size_t rlen = 0;
    enum front_verdict v = front_init(s->front, buf, len, from, fromlen, mono_us(), &hs, reply,
                                      &rlen);
    if (v == FRONT_REPLY) {
        s->ls->ops->reply(s->ls, reply, rlen, from, fromlen);
        return;
    }
    if (v != FRONT_READ) return;
    struct site *st = site_by_key(s, hs.noise.rs);
    if (!st) {
        char pk[KEY_B64_LEN], as[ADDR_STRLEN];
        key_to_b64(hs.noise.rs, pk);
        noise_hs_wipe(&hs.noise);
        s->c.unknown_key++;
        log_limited(&s->lim_key, LOG_WARN,
                    "handshake from %s: unknown public key %s (no site's public_key)",
                    addr_str(from, as, sizeof as), pk);
        return;
    }
    mux_accept_init(st->mux, &hs, link_id, from, fromlen);
    sodium_memzero(&hs, sizeof hs);
}

void sites_input(struct sites *s, uint8_t *buf, size_t len, const struct sockaddr *from,
                 socklen_t fromlen)
{
    struct wire_hdr h;
    int rc = wire_peek(buf, len, &h);
    if (rc != WIRE_OK) {
        s->c.malformed++;
        char as[ADDR_STRLEN];
        if (rc == WIRE_ERR_VERSION)
            log_limited(&s->lim_malformed, LOG_WARN,
                        "dropped a datagram from %s: it speaks braid wire version %d, this braid "
                        "speaks version %d; run the same braid release on both ends",
                        addr_str(from, as, sizeof as), wire_version_of(buf, len), WIRE_VERSION);
        else
            log_limited(&s->lim_malformed, LOG_WARN, "dropped a malformed datagram from %s: %s",
                        addr_str(from, as, sizeof as), wire_strerror(rc));
        return;
    }
    if (h.type == WIRE_HANDSHAKE) {
        handshake_in(s, buf, len, h.link_id, from, fromlen);
        return;
    }
    int who = itab_lookup(&s->index, h.index);
    if (who < 0) {
        s->c.no_session++;
        char as[ADDR_STRLEN];
        log_limited(&s->lim_nosession, LOG_INFO,
                    "dropped datagrams from %s: no session for them (handshake pending, or the "
                    "master restarted)",
                    addr_str(from, as, sizeof as));
        return;
    }
    mux_input(s->site[who]->mux, buf, len, from, fromlen); /* (a site's indices go with it) */
}

void sites_send(struct sites *s, const uint8_t *pkt, size_t len)
{
    if (!s->routes) {
        mux_send(s->single->mux, pkt, len);
        return;
    }
    const uint8_t *src, *dst;
    int af = ip_pkt_addrs(pkt, len, &src, &dst);
    if (!af) {
        s->c.tx_not_ip++;
        return;
    }
    uint32_t who;
    if (ptable_lookup(s->routes, af, dst, &who) != 0) {
        s->c.tx_no_route++;
        char ip[ADDR_STRLEN];
        log_limited(&s->lim_route, LOG_INFO,
                    "dropped a tunnel packet to %s: in no site's allowed_ips",
                    ip_str(af, dst, ip, sizeof ip));
        return;
    }
    mux_send(s->site[who]->mux, pkt, len); /* (the table holds live sites only) */
}

/* ---------------------------------------------------------------- status */

int sites_count(const struct sites *s)
{
    return s->n;
}

struct mux *sites_mux(const struct sites *s, int i)
{
    for (int k = 0; k < s->nslots; k++)
        if (s->site[k] && i-- == 0) return s->site[k]->mux;
    return NULL;
}

const struct sites_counters *sites_counters(const struct sites *s)
{
    return &s->c;
}

const struct front_counters *sites_front_counters(const struct sites *s)
{
    return front_counters(s->front);
}

size_t sites_table_bytes(const struct sites *s)
{
    return sizeof *s + (size_t)s->nslots * sizeof *s->site +
           (size_t)s->n * (sizeof(struct site) + sizeof *s->by_key) +
           itab_bytes(&s->index) +
           (s->routes ? ptable_bytes(s->routes) : 0);
}

#define SITES_COUNTERS(X) X(malformed) X(no_session) X(unknown_key) X(tx_no_route) X(tx_not_ip)
#define FRONT_COUNTERS(X)                                                                          \
    X(hello_rx) X(malformed) X(mac1_bad) X(cookie_tx) X(src_ratelimited) X(noise_bad)

void sites_status_json(const struct sites *s, struct strbuf *sb)
{
    const struct front_counters *fc = front_counters(s->front);
    sb_printf(sb, "\"role\":\"master\",\"counters\":{");
    const char *sep = "";
#define X(f)                                                                                       \
    sb_printf(sb, "%s\"" #f "\":%llu", sep, (unsigned long long)s->c.f);                          \
    sep = ",";
    SITES_COUNTERS(X)
#undef X
#define X(f)                                                                                       \
    sb_printf(sb, "%s\"front_" #f "\":%llu", sep, (unsigned long long)fc->f);                     \
    sep = ",";
    FRONT_COUNTERS(X)
#undef X
    sb_printf(sb, "},\"sites\":[");
    const char *sep2 = "";
    for (int i = 0; i < s->nslots; i++) {
        const struct site *st = s->site[i];
        if (!st) continue;
        sb_printf(sb, "%s{\"name\":", sep2);
        sep2 = ",";
        sb_json_str(sb, st->cfg.name);
        sb_printf(sb, ",\"allowed_ips\":[");
        for (int k = 0; k < st->cfg.nallowed; k++) {
            char ps[PREFIX_STRLEN];
            sb_printf(sb, "%s", k ? "," : "");
            sb_json_str(sb, prefix_str(&st->cfg.allowed[k], ps, sizeof ps));
        }
        sb_printf(sb, "],\"rx_foreign_src\":%llu,\"rx_not_ip\":%llu,\"mux\":",
                  (unsigned long long)st->rx_foreign_src, (unsigned long long)st->rx_not_ip);
        mux_status_json(st->mux, sb);
        if (st->lane) {
            sb_printf(sb, ",\"lane\":");
            lane_peer_status_json(st->lane, sb);
        }
        sb_printf(sb, "}");
    }
    sb_printf(sb, "]");
}

void sites_metrics(const struct sites *s, struct strbuf *sb)
{
    const struct mux **mux = calloc((size_t)s->n + 1, sizeof *mux);
    const char **name = calloc((size_t)s->n + 1, sizeof *name);
    int n = 0;
    if (mux && name)
        for (int i = 0; i < s->nslots; i++)
            if (s->site[i]) {
                mux[n] = s->site[i]->mux;
                name[n++] = s->site[i]->cfg.name;
            }
    mux_metrics(mux, name, n, sb);
    {
        const struct lane_peer **lp = calloc((size_t)s->n + 1, sizeof *lp);
        const char **ln = calloc((size_t)s->n + 1, sizeof *ln);
        int m = 0;
        if (lp && ln)
            for (int i = 0; i < s->nslots; i++)
                if (s->site[i] && s->site[i]->lane) {
                    lp[m] = s->site[i]->lane;
                    ln[m++] = s->site[i]->cfg.name;
                }
        if (m) lane_metrics(lp, ln, m, sb);
        free(lp);
        free(ln);
    }
    sb_printf(sb, "# HELP braid_site_rx_foreign_src_total packets from the site whose source is "
                  "not in its allowed_ips (dropped)\n"
                  "# TYPE braid_site_rx_foreign_src_total counter\n");
    for (int i = 0; i < s->nslots; i++)
        if (s->site[i]) {
            sb_printf(sb, "braid_site_rx_foreign_src_total{site=");
            sb_json_str(sb, s->site[i]->cfg.name);
            sb_printf(sb, "} %llu\n", (unsigned long long)s->site[i]->rx_foreign_src);
        }
    const struct front_counters *fc = front_counters(s->front);
#define X(f)                                                                                       \
    sb_printf(sb, "# HELP braid_master_" #f "_total the master's " #f " counter\n"                \
                  "# TYPE braid_master_" #f "_total counter\nbraid_master_" #f "_total %llu\n",  \
              (unsigned long long)s->c.f);
    SITES_COUNTERS(X)
#undef X
#define X(f)                                                                                       \
    sb_printf(sb, "# HELP braid_master_front_" #f "_total the handshake front's " #f " counter\n" \
                  "# TYPE braid_master_front_" #f "_total counter\nbraid_master_front_" #f        \
                  "_total %llu\n",                                                                \
              (unsigned long long)fc->f);
    FRONT_COUNTERS(X)
#undef X
    free(mux);
    free(name);
}

void sites_status_text(const struct sites *s, struct strbuf *sb)
{
    int with = 0;
    for (int i = 0; i < s->nslots; i++) with += s->site[i] && mux_has_session(s->site[i]->mux);
    sb_printf(sb, "braid-master: %d site%s, %d with a session\n", s->n, s->n == 1 ? "" : "s",
              with);
    for (int i = 0; i < s->nslots; i++) {
        const struct site *st = s->site[i];
        if (!st) continue;
        sb_printf(sb, "\nsite %s", st->cfg.name);
        for (int k = 0; k < st->cfg.nallowed; k++) {
            char ps[PREFIX_STRLEN];
            sb_printf(sb, "%s%s", k ? ", " : " (", prefix_str(&st->cfg.allowed[k], ps, sizeof ps));
        }
        sb_printf(sb, "%s foreign_src=%llu\n", st->cfg.nallowed ? ")" : "",
                  (unsigned long long)st->rx_foreign_src);
        mux_status_text(st->mux, sb);
    }
    const struct front_counters *fc = front_counters(s->front);
    sb_printf(sb, "\nmaster counters:");
#define X(f) sb_printf(sb, " " #f "=%llu", (unsigned long long)s->c.f);
    SITES_COUNTERS(X)
#undef X
#define X(f) sb_printf(sb, " front_" #f "=%llu", (unsigned long long)fc->f);
    FRONT_COUNTERS(X)
#undef X
    sb_printf(sb, "\n");
}

void sites_set_lane(struct sites *s, int max_conns)
{
    s->lane_max = max_conns;
}

struct lane_peer *sites_lane_session(struct sites *s, uint32_t index, uint8_t tx[32],
                                     uint8_t rx[32])
{
    int who = itab_lookup(&s->index, index);
    if (who < 0 || who >= s->nslots || !s->site[who] || s->lane_max <= 0) return NULL;
    struct site *st = s->site[who];
    struct session_keys k;
    if (!mux_session_keys(st->mux, &k)) return NULL;
    bool ok = k.local_index == index;
    memcpy(tx, k.tx, 32);
    memcpy(rx, k.rx, 32);
    sodium_memzero(&k, sizeof k);
    if (!ok) return NULL;
    if (!st->lane) {
        st->relay = lane_relay_new(s->loop);
        struct lane_peer_cb cb;
        if (st->relay) {
            lane_relay_callbacks(st->relay, &cb);
            st->lane = lane_peer_new(s->loop, true, s->lane_max, &cb);
        }
        if (!st->lane) {
            lane_relay_free(st->relay);
            st->relay = NULL;
            return NULL;
        }
    }
    return st->lane;
}
