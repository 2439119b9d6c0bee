/* httpd.c: the metrics endpoint: libmicrohttpd in its epoll mode driven by the event loop (an
 * ev_io on its epoll descriptor and a timer for its timeouts), GET only, a few connections. */
#include "httpd.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define HTTPD_MAX_CONN 16
#define HTTPD_CONN_TIMEOUT_S 10

struct httpd {
    struct ev_loop *loop;
    struct MHD_Daemon *d;
    ev_io io;
    ev_timer t;
    httpd_fn fn;
    void *ctx;
};

static void run(struct httpd *h)
{
    MHD_run(h->d);
    ev_timer_stop(h->loop, &h->t);
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(h->d, &ms) == MHD_YES) {
        ev_timer_set(&h->t, (double)ms / 1000.0, 0.);
        ev_timer_start(h->loop, &h->t);
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    run(w->data);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    run(w->data);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)con_cls;
    struct httpd *h = cls;
    struct strbuf sb;
    sb_init(&sb);
    unsigned status;
    const char *type = "text/plain; version=0.0.4; charset=utf-8";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        sb_printf(&sb, "only GET\n");
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        type = "text/plain";
    } else if (*upload_size) {
        *upload_size = 0; /* a GET with a body: ignore it */
        sb_free(&sb);
        return MHD_YES;
    } else {
        status = (unsigned)h->fn(h->ctx, url, &sb);
        if (status != 200) type = "text/plain";
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sb.len, sb.buf ? sb.buf : (char *)"", MHD_RESPMEM_MUST_COPY);
    sb_free(&sb);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, "Allow", "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

struct httpd *httpd_open(struct ev_loop *loop, const struct addr *addr, httpd_fn fn, void *ctx,
                         char *err, size_t errlen)
{
    struct httpd *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->loop = loop;
    h->fn = fn;
    h->ctx = ctx;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (addr->ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, addr_port((const struct sockaddr *)&addr->ss), NULL, NULL,
                            answer, h, MHD_OPTION_SOCK_ADDR, &addr->ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTPD_MAX_CONN,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTPD_CONN_TIMEOUT_S,
                            MHD_OPTION_END);
    if (!h->d) {
        char as[ADDR_STRLEN];
        snprintf(err, errlen, "cannot serve metrics on %s (address in use, or not this host's?)",
                 addr_str((const struct sockaddr *)&addr->ss, as, sizeof as));
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di) {
        snprintf(err, errlen, "the metrics server has no epoll descriptor");
        MHD_stop_daemon(h->d);
        free(h);
        return NULL;
    }
    ev_io_init(&h->io, on_io, di->epoll_fd, EV_READ);
    h->io.data = h;
    ev_io_start(loop, &h->io);
    ev_timer_init(&h->t, on_timer, 1., 0.);
    h->t.data = h;
    return h;
}

void httpd_close(struct httpd *h)
{
    if (!h) return;
    ev_io_stop(h->loop, &h->io);
    ev_timer_stop(h->loop, &h->t);
    MHD_stop_daemon(h->d);
    free(h);
}
