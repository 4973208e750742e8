/*
 * test_wsclient.c: the tests' WebSocket client (tests/support/wsclient.h)
 * against a small libwebsockets echo server running in a thread of the
 * test, plain and TLS, and against a raw TCP peer that answers broken
 * handshakes and hand-made frames.
 *
 * Echo server commands (text messages): "close4001" closes with 4001,
 * "ping" sends a ping "hi", "frag" sends "frag-" + ping "x" + "ment" as a
 * fragmented message; a pong received is answered with "pong:<payload>", a
 * binary message with "binary:<length>"; everything else is echoed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "gwproc.h"
#include "wsclient.h"

#define OUTQ_MAX    16
#define ECHO_RX_MAX ((size_t)1024 * 1024)
#define WAIT_MS     5000

/* ---- libwebsockets echo server ---- */

struct out_item {
    unsigned char *buf; /* owned; LWS_PRE headroom, then the payload */
    size_t len;
    enum lws_write_protocol flags;
    int close_4001; /* instead of a write: close with 4001 */
};

struct pss {
    struct out_item q[OUTQ_MAX];
    size_t head, n;
    unsigned char *rx; /* owned; the message being received */
    size_t rx_len;
    int rx_binary;
};

struct srv {
    struct lws_context *ctx;
    pthread_t th;
    atomic_int stop;
    int port;
};

static int queue_out(struct lws *wsi, struct pss *s, enum lws_write_protocol flags, const void *p,
                     size_t len)
{
    if (s->n == OUTQ_MAX) {
        return -1;
    }
    unsigned char *b = malloc(LWS_PRE + len + 1);
    if (b == NULL) {
        return -1;
    }
    if (len > 0) {
        memcpy(b + LWS_PRE, p, len);
    }
    s->q[(s->head + s->n) % OUTQ_MAX] = (struct out_item){b, len, flags, 0};
    s->n++;
    lws_callback_on_writable(wsi);
    return 0;
}

static int is_cmd(const struct pss *s, const char *cmd)
{
    return s->rx_len == strlen(cmd) && memcmp(s->rx, cmd, s->rx_len) == 0;
}

static int on_message(struct lws *wsi, struct pss *s)
{
    if (s->rx_binary) {
        char t[40];
        int n = snprintf(t, sizeof(t), "binary:%zu", s->rx_len);
        return queue_out(wsi, s, LWS_WRITE_TEXT, t, (size_t)n);
    }
    if (is_cmd(s, "close4001")) {
        /* Through the queue, so that what was queued before goes out first. */
        if (queue_out(wsi, s, LWS_WRITE_TEXT, NULL, 0) != 0) {
            return -1;
        }
        s->q[(s->head + s->n - 1) % OUTQ_MAX].close_4001 = 1;
        return 0;
    }
    if (is_cmd(s, "ping")) {
        return queue_out(wsi, s, LWS_WRITE_PING, "hi", 2);
    }
    if (is_cmd(s, "frag")) {
        int rc = queue_out(wsi, s, LWS_WRITE_TEXT | LWS_WRITE_NO_FIN, "frag-", 5);
        rc = rc != 0 ? rc : queue_out(wsi, s, LWS_WRITE_PING, "x", 1);
        return rc != 0 ? rc : queue_out(wsi, s, LWS_WRITE_CONTINUATION, "ment", 4);
    }
    return queue_out(wsi, s, LWS_WRITE_TEXT, s->rx, s->rx_len);
}

static int on_receive(struct lws *wsi, struct pss *s, const void *in, size_t len)
{
    if (s->rx_len == 0) {
        s->rx_binary = lws_frame_is_binary(wsi);
    }
    if (s->rx_len + len > ECHO_RX_MAX) {
        return -1;
    }
    unsigned char *n = realloc(s->rx, s->rx_len + len + 1);
    if (n == NULL) {
        return -1;
    }
    s->rx = n;
    if (len > 0) {
        memcpy(s->rx + s->rx_len, in, len);
    }
    s->rx_len += len;
    if (!lws_is_final_fragment(wsi)) {
        return 0;
    }
    int rc = on_message(wsi, s);
    s->rx_len = 0;
    return rc;
}

static int on_writeable(struct lws *wsi, struct pss *s)
{
    if (s->n == 0) {
        return 0;
    }
    struct out_item it = s->q[s->head];
    s->head = (s->head + 1) % OUTQ_MAX;
    s->n--;
    if (it.close_4001) {
        free(it.buf);
        lws_close_reason(wsi, (enum lws_close_status)4001, (unsigned char *)"bye", 3);
        return -1;
    }
    int w = lws_write(wsi, it.buf + LWS_PRE, it.len, it.flags);
    free(it.buf);
    if (w < (int)it.len) {
        return -1;
    }
    if (s->n > 0) {
        lws_callback_on_writable(wsi);
    }
    return 0;
}

static void pss_fini(struct pss *s)
{
    while (s->n > 0) {
        free(s->q[s->head].buf);
        s->head = (s->head + 1) % OUTQ_MAX;
        s->n--;
    }
    free(s->rx);
    s->rx = NULL;
}

static int echo_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    struct pss *s = user;
    char t[140];
    switch (reason) {
    case LWS_CALLBACK_RECEIVE:
        return on_receive(wsi, s, in, len);
    case LWS_CALLBACK_RECEIVE_PONG: {
        int n = snprintf(t, sizeof(t), "pong:%.*s", (int)len, (const char *)in);
        return queue_out(wsi, s, LWS_WRITE_TEXT, t, (size_t)n);
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(wsi, s);
    case LWS_CALLBACK_CLOSED:
        pss_fini(s);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"coachroom.v1", echo_cb, sizeof(struct pss), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    while (!atomic_load(&s->stop)) {
        if (lws_service(s->ctx, 0) < 0) {
            break;
        }
    }
    return NULL;
}

/* Start the echo server on a port the kernel picks (lws listens on port 0
 * and tells which one: no window for another process to take it). With
 * cert/key paths it speaks TLS. */
static void srv_start(struct srv *s, const char *cert, const char *key)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    memset(s, 0, sizeof(*s));
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    if (cert != NULL) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cert;
        info.ssl_private_key_filepath = key;
    }
    lws_set_log_level(LLL_ERR, NULL);
    s->ctx = lws_create_context(&info);
    cr_assert_not_null(s->ctx, "lws_create_context");
    s->port = lws_get_vhost_listen_port(lws_get_vhost_by_name(s->ctx, "default"));
    cr_assert_gt(s->port, 0, "listen port");
    atomic_store(&s->stop, 0);
    cr_assert_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
    atomic_store(&s->stop, 1);
    lws_cancel_service(s->ctx);
    pthread_join(s->th, NULL);
    lws_context_destroy(s->ctx);
}

static struct wsc *connect_to(int port)
{
    int status = -7;
    char err[192] = "";
    struct wsc_opts o = {.port = port, .errbuf = err, .errbuf_len = sizeof(err)};
    struct wsc *c = wsc_connect(&o, &status);
    cr_assert_not_null(c, "connect: status %d: %s", status, err);
    cr_expect_eq(status, 101);
    return c;
}

/* Receive one message and compare it with want (len bytes). */
static void expect_msg(struct wsc *c, const char *want, size_t want_len)
{
    size_t len = 0;
    char *m = wsc_recv(c, WAIT_MS, &len);
    cr_assert_not_null(m, "expected %zu bytes: %s", want_len, wsc_last_error(c));
    cr_expect_eq(len, want_len);
    cr_expect_eq(m[len], '\0');
    cr_expect(len == want_len && memcmp(m, want, len) == 0, "payload differs");
    free(m);
}

/* ---- a raw TCP peer that plays a (broken) server ---- */

struct raw_peer {
    int lfd, port;
    pthread_t th;
    const char *verbatim; /* when set, the whole HTTP answer instead of a 101 */
    const char *proto;    /* subprotocol in the 101; default "coachroom.v1" */
    int bad_accept;       /* send a wrong Sec-WebSocket-Accept */
    const void *after;    /* bytes sent right behind the head, in the same write */
    size_t after_len;
    int hangup;             /* close right after answering, without reading on */
    unsigned char got[512]; /* what the client sent after its request, until EOF */
    size_t got_len;
};

static void send_all(int fd, const void *p, size_t len)
{
    const char *b = p;
    while (len > 0) {
        ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return;
        }
        b += n;
        len -= (size_t)n;
    }
}

/* The answer to a request carrying key: a 101 (or the verbatim answer)
 * with the frames behind it. Caller frees. */
static char *peer_answer(const struct raw_peer *p, const char *key, size_t *len)
{
    char accept[29];
    if (wsc_accept_for_key(key, accept) != 0 || p->bad_accept) {
        (void)snprintf(accept, sizeof(accept), "%s", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    }
    char head[512];
    int n = p->verbatim != NULL
                ? snprintf(head, sizeof(head), "%s", p->verbatim)
                : snprintf(head, sizeof(head),
                           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                           "Sec-WebSocket-Protocol: %s\r\n\r\n",
                           accept, p->proto != NULL ? p->proto : "coachroom.v1");
    char *out = malloc((size_t)n + p->after_len);
    if (out != NULL) {
        memcpy(out, head, (size_t)n);
        if (p->after_len > 0) {
            memcpy(out + n, p->after, p->after_len);
        }
        *len = (size_t)n + p->after_len;
    }
    return out;
}

static void *peer_main(void *arg)
{
    struct raw_peer *p = arg;
    int fd = accept(p->lfd, NULL, NULL);
    if (fd < 0) {
        return NULL;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[4096];
    size_t used = 0;
    while (used < sizeof(req) - 1) {
        ssize_t n = recv(fd, req + used, sizeof(req) - 1 - used, 0);
        if (n <= 0) {
            break;
        }
        used += (size_t)n;
        req[used] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL) {
            break;
        }
    }
    req[used] = '\0';
    char key[64] = "";
    const char *k = strstr(req, "Sec-WebSocket-Key: ");
    if (k != NULL) {
        k += strlen("Sec-WebSocket-Key: ");
        (void)snprintf(key, sizeof(key), "%.*s", (int)strcspn(k, "\r"), k);
    }
    size_t alen = 0;
    char *ans = peer_answer(p, key, &alen);
    if (ans != NULL) {
        send_all(fd, ans, alen);
    }
    free(ans);
    while (!p->hangup && p->got_len < sizeof(p->got)) {
        ssize_t n = recv(fd, p->got + p->got_len, sizeof(p->got) - p->got_len, 0);
        if (n <= 0) {
            break;
        }
        p->got_len += (size_t)n;
    }
    close(fd);
    return NULL;
}

static void peer_start(struct raw_peer *p)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(p->lfd, 0);
    cr_assert_eq(bind(p->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(p->lfd, 4), 0);
    cr_assert_eq(getsockname(p->lfd, (struct sockaddr *)&a, &alen), 0);
    p->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&p->th, NULL, peer_main, p), 0);
}

/* Wait for the peer to finish (it reads until the client's EOF). */
static void peer_join(struct raw_peer *p)
{
    pthread_join(p->th, NULL);
    close(p->lfd);
}

/* Decode the masked client control frame at p[0..n): opcode and payload.
 * Returns the bytes it takes, 0 when malformed or incomplete. */
static size_t client_frame(const unsigned char *p, size_t n, int *op, unsigned char *out,
                           size_t *out_len)
{
    if (n < 6 || (p[0] & 0x80) == 0 || (p[1] & 0x80) == 0) {
        return 0;
    }
    size_t len = p[1] & 0x7f;
    if (len > 125 || n < 6 + len) {
        return 0;
    }
    *op = p[0] & 0x0f;
    for (size_t i = 0; i < len; i++) {
        out[i] = p[6 + i] ^ p[2 + (i & 3)];
    }
    *out_len = len;
    return 6 + len;
}

/* The close code of the last close frame the client sent the peer, or -1. */
static int peer_close_code(const struct raw_peer *p)
{
    size_t off = 0, len = 0, used;
    int op = 0, code = -1;
    unsigned char pl[126];
    while ((used = client_frame(p->got + off, p->got_len - off, &op, pl, &len)) > 0) {
        if (op == WSC_OP_CLOSE) {
            code = len >= 2 ? (pl[0] << 8 | pl[1]) : 1005;
        }
        off += used;
    }
    return code;
}

/* Connect to the peer, which must refuse: returns the status. */
static int connect_refused(struct raw_peer *p, const char *why)
{
    int status = -7;
    char err[192] = "";
    peer_start(p);
    struct wsc_opts o = {.port = p->port, .errbuf = err, .errbuf_len = sizeof(err)};
    cr_expect_null(wsc_connect(&o, &status));
    cr_expect(strstr(err, why) != NULL, "error \"%s\" should mention \"%s\"", err, why);
    peer_join(p);
    return status;
}

/* ---- TLS material ---- */

static FILE *tmp_file(char path[32])
{
    (void)snprintf(path, 32, "%s", "/tmp/wsc-tls-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    return f;
}

/* A self-signed certificate for "localhost" and its key, in two new files. */
static void make_cert(char cert_path[32], char key_path[32])
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    cr_assert(k != NULL && x != NULL);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    cr_assert_gt(X509_sign(x, k, EVP_sha256()), 0);
    FILE *f = tmp_file(cert_path);
    cr_assert_eq(PEM_write_X509(f, x), 1);
    cr_assert_eq(fclose(f), 0);
    f = tmp_file(key_path);
    cr_assert_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    cr_assert_eq(fclose(f), 0);
    X509_free(x);
    EVP_PKEY_free(k);
}

/* ---- tests against the echo server ---- */

Test(wsclient, echo_at_every_length_encoding, .timeout = 30)
{
    struct srv s;
    srv_start(&s, NULL, NULL);
    struct wsc *c = connect_to(s.port);
    /* 7-bit lengths up to 125, 16-bit from 126 to 65535, 64-bit above. */
    static const size_t sizes[] = {0, 5, 125, 126, 127, 65535, 65536, 70000};
    char *buf = malloc(70000);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < 70000; i++) {
        buf[i] = (char)('a' + i % 26);
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        cr_assert_eq(wsc_send_text(c, buf, sizes[i]), 0, "%s", wsc_last_error(c));
        expect_msg(c, buf, sizes[i]);
    }
    free(buf);
    cr_expect_eq(wsc_send_json(c, "{\"type\":\"%s\",\"n\":%d}", "x", 5), 0);
    expect_msg(c, "{\"type\":\"x\",\"n\":5}", 18);
    cr_expect_eq(wsc_close_code(c), 0);
    wsc_close(c, 1000);
    srv_stop(&s);
}

Test(wsclient, expect_keeps_the_others_in_order, .timeout = 30)
{
    struct srv s;
    srv_start(&s, NULL, NULL);
    struct wsc *c = connect_to(s.port);
    cr_assert_eq(wsc_send_json(c, "{\"type\":\"a\",\"n\":1}"), 0);
    cr_assert_eq(wsc_send_text(c, "not json", 8), 0);
    cr_assert_eq(wsc_send_json(c, "{\"type\":\"b\"}"), 0);
    cr_assert_eq(wsc_send_json(c, "[\"type\",\"c\"]"), 0);
    cr_assert_eq(wsc_send_json(c, "{\"type\":\"c\"}"), 0);

    json_t *j = wsc_expect(c, "c", WAIT_MS);
    cr_assert_not_null(j, "%s", wsc_last_error(c));
    cr_expect_str_eq(json_string_value(json_object_get(j, "type")), "c");
    json_decref(j);
    cr_expect_eq(wsc_pending(c), 4);

    j = wsc_expect(c, "b", 0); /* from the FIFO: nothing to wait for */
    cr_assert_not_null(j);
    json_decref(j);
    expect_msg(c, "{\"type\":\"a\",\"n\":1}", 18);
    expect_msg(c, "not json", 8);
    expect_msg(c, "[\"type\",\"c\"]", 12);
    cr_expect_eq(wsc_pending(c), 0);

    cr_expect_null(wsc_expect(c, "zzz", 50));
    cr_expect_null(wsc_recv(c, 0, NULL), "nothing more");
    cr_expect_eq(wsc_close_code(c), 0, "a timeout is not a close");
    wsc_close(c, 1000);
    srv_stop(&s);
}

Test(wsclient, answers_pings_and_reassembles_fragments, .timeout = 30)
{
    struct srv s;
    srv_start(&s, NULL, NULL);
    struct wsc *c = connect_to(s.port);
    cr_assert_eq(wsc_send_text(c, "ping", 4), 0);
    expect_msg(c, "pong:hi", 7); /* the ping was answered on the way */
    cr_assert_eq(wsc_send_text(c, "frag", 4), 0);
    expect_msg(c, "frag-ment", 9); /* with a ping between the fragments */
    expect_msg(c, "pong:x", 6);
    wsc_close(c, 1000);
    srv_stop(&s);
}

Test(wsclient, raw_frames_fragments_and_binary, .timeout = 30)
{
    struct srv s;
    srv_start(&s, NULL, NULL);
    struct wsc *c = connect_to(s.port);
    cr_assert_eq(wsc_send_frame(c, WSC_OP_TEXT, 0, "ab", 2), 0);
    cr_assert_eq(wsc_send_frame(c, WSC_OP_CONT, 0, "cd", 2), 0);
    cr_assert_eq(wsc_send_frame(c, WSC_OP_CONT, 1, "ef", 2), 0);
    expect_msg(c, "abcdef", 6);
    cr_assert_eq(wsc_send_frame(c, WSC_OP_BINARY, 1, "\x00\xff\x01", 3), 0);
    expect_msg(c, "binary:3", 8);
    cr_expect_eq(wsc_send_frame(c, 16, 1, "", 0), -EINVAL);
    wsc_close(c, 1000);
    srv_stop(&s);
}

Test(wsclient, server_close_code_is_reported, .timeout = 30)
{
    struct srv s;
    srv_start(&s, NULL, NULL);
    struct wsc *c = connect_to(s.port);
    cr_assert_eq(wsc_send_text(c, "close4001", 9), 0);
    cr_expect_null(wsc_recv(c, WAIT_MS, NULL));
    cr_expect_eq(wsc_close_code(c), 4001, "%s", wsc_last_error(c));
    cr_expect_eq(wsc_wait_close(c, 0), 4001);
    cr_expect_eq(wsc_send_text(c, "late", 4), -EPIPE);
    wsc_close(c, 1000);

    c = connect_to(s.port);
    cr_assert_eq(wsc_send_text(c, "hello", 5), 0);
    cr_assert_eq(wsc_send_text(c, "close4001", 9), 0);
    cr_expect_eq(wsc_wait_close(c, WAIT_MS), 4001);
    expect_msg(c, "hello", 5); /* kept while waiting for the close */
    wsc_free(c);
    srv_stop(&s);
}

Test(wsclient, wait_close_times_out_on_an_open_connection, .timeout = 30)
{
    struct srv s;
    srv_start(&s, NULL, NULL);
    struct wsc *c = connect_to(s.port);
    cr_expect_eq(wsc_wait_close(c, 50), -2);
    cr_expect_eq(wsc_close_code(c), 0);
    wsc_free(c); /* a cut connection: the server copes */
    c = connect_to(s.port);
    cr_assert_eq(wsc_send_text(c, "still here", 10), 0);
    expect_msg(c, "still here", 10);
    wsc_close(c, 1000);
    srv_stop(&s);
}

Test(wsclient, other_subprotocol_is_refused, .timeout = 30)
{
    struct srv s;
    srv_start(&s, NULL, NULL);
    int status = -7;
    struct wsc_opts o = {.port = s.port, .subprotocol = "other.v9"};
    cr_expect_null(wsc_connect(&o, &status));
    srv_stop(&s);
}

Test(wsclient, closed_port_fails_with_status_0, .timeout = 30)
{
    int status = -7;
    char err[192] = "";
    struct wsc_opts o = {.port = gwproc_free_port(), .errbuf = err, .errbuf_len = sizeof(err)};
    cr_expect_null(wsc_connect(&o, &status));
    cr_expect_eq(status, 0);
    cr_expect_neq(err[0], '\0', "a reason is given");
    o.port = 0;
    cr_expect_null(wsc_connect(&o, NULL), "bad options");
    cr_expect_null(wsc_connect(NULL, &status));
    wsc_close(NULL, 1000);
    wsc_free(NULL);
}

Test(wsclient, accept_key_matches_rfc6455)
{
    char out[29];
    cr_assert_eq(wsc_accept_for_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    cr_expect_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* ---- tests against the raw peer ---- */

Test(wsclient, non_101_answer_gives_its_status, .timeout = 30)
{
    struct raw_peer p = {.verbatim = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"};
    cr_expect_eq(connect_refused(&p, "403"), 403);
}

Test(wsclient, bad_accept_is_refused, .timeout = 30)
{
    struct raw_peer p = {.bad_accept = 1};
    cr_expect_eq(connect_refused(&p, "Accept"), 101);
}

Test(wsclient, other_selected_subprotocol_is_refused, .timeout = 30)
{
    struct raw_peer p = {.proto = "coachroom.v2"};
    cr_expect_eq(connect_refused(&p, "subprotocol"), 101);
}

Test(wsclient, missing_upgrade_is_refused, .timeout = 30)
{
    struct raw_peer p = {.verbatim = "HTTP/1.1 101 Switching Protocols\r\n\r\n"};
    cr_expect_eq(connect_refused(&p, "Upgrade"), 101);
}

Test(wsclient, frames_right_behind_the_head, .timeout = 30)
{
    /* "hi"; 200 bytes with a 16-bit length; "one"+"two"+"three" in three
     * fragments with a ping between; close 1000 "bye". */
    unsigned char f[300], *w = f;
    memcpy(w, "\x81\x02hi\x81\x7e\x00\xc8", 8);
    w += 8;
    memset(w, 'z', 200);
    w += 200;
    static const char tail[] = "\x01\x03one\x89\x02p1\x00\x03two\x80\x05three\x88\x05\x03\xe8"
                               "bye";
    memcpy(w, tail, sizeof(tail) - 1);
    w += sizeof(tail) - 1;
    struct raw_peer p = {.after = f, .after_len = (size_t)(w - f)};
    peer_start(&p);
    struct wsc_opts o = {.port = p.port};
    struct wsc *c = wsc_connect(&o, NULL);
    cr_assert_not_null(c);
    expect_msg(c, "hi", 2);
    size_t len = 0;
    char *m = wsc_recv(c, WAIT_MS, &len);
    cr_assert_not_null(m);
    cr_expect_eq(len, 200);
    cr_expect(len == 200 && m[0] == 'z' && m[199] == 'z');
    free(m);
    expect_msg(c, "onetwothree", 11);
    cr_expect_null(wsc_recv(c, WAIT_MS, NULL));
    cr_expect_eq(wsc_close_code(c), 1000);
    wsc_close(c, 1000);
    peer_join(&p);

    int op = 0;
    unsigned char pl[126];
    size_t used = client_frame(p.got, p.got_len, &op, pl, &len);
    cr_assert_gt(used, 0, "the client answered the ping");
    cr_expect_eq(op, WSC_OP_PONG);
    cr_expect(len == 2 && memcmp(pl, "p1", 2) == 0);
    cr_expect_eq(peer_close_code(&p), 1000, "the client echoed the close");
}

Test(wsclient, oversized_frame_is_refused_with_1009, .timeout = 30)
{
    static const unsigned char f[] = {0x81, 0x7f, 0, 0, 0, 0, 0x02, 0, 0, 0}; /* 32 MiB */
    struct raw_peer p = {.after = f, .after_len = sizeof(f)};
    peer_start(&p);
    struct wsc_opts o = {.port = p.port};
    struct wsc *c = wsc_connect(&o, NULL);
    cr_assert_not_null(c);
    cr_expect_null(wsc_recv(c, WAIT_MS, NULL));
    cr_expect_eq(wsc_close_code(c), -1);
    cr_expect(strstr(wsc_last_error(c), "too large") != NULL, "%s", wsc_last_error(c));
    cr_expect_eq(wsc_send_text(c, "x", 1), -EPIPE);
    wsc_close(c, 1000);
    peer_join(&p);
    cr_expect_eq(peer_close_code(&p), 1009);
}

Test(wsclient, protocol_errors_are_refused_with_1002, .timeout = 30)
{
    static const unsigned char masked[] = {0x81, 0x81, 1, 2, 3, 4, 'x' ^ 1};
    static const unsigned char reserved_op[] = {0x83, 0x00};
    static const unsigned char rsv_bit[] = {0xc1, 0x01, 'x'};
    static const unsigned char lone_cont[] = {0x80, 0x01, 'x'};
    static const unsigned char long_ping[] = {0x89, 0x7e, 0x00, 0x7e};
    const struct {
        const unsigned char *f;
        size_t len;
    } cases[] = {{masked, sizeof(masked)},
                 {reserved_op, sizeof(reserved_op)},
                 {rsv_bit, sizeof(rsv_bit)},
                 {lone_cont, sizeof(lone_cont)},
                 {long_ping, sizeof(long_ping)}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct raw_peer p = {.after = cases[i].f, .after_len = cases[i].len};
        peer_start(&p);
        struct wsc_opts o = {.port = p.port};
        struct wsc *c = wsc_connect(&o, NULL);
        cr_assert_not_null(c);
        cr_expect_eq(wsc_wait_close(c, WAIT_MS), -1, "case %zu", i);
        wsc_free(c);
        peer_join(&p);
        cr_expect_eq(peer_close_code(&p), 1002, "case %zu", i);
    }
}

Test(wsclient, eof_without_close_frame_is_minus_1, .timeout = 30)
{
    struct raw_peer p = {.hangup = 1};
    peer_start(&p);
    struct wsc_opts o = {.port = p.port};
    struct wsc *c = wsc_connect(&o, NULL);
    cr_assert_not_null(c);
    cr_expect_eq(wsc_wait_close(c, WAIT_MS), -1);
    cr_expect_eq(wsc_close_code(c), -1);
    wsc_close(c, 1000);
    peer_join(&p);
}

/* ---- TLS ---- */

Test(wsclient, tls_echo_and_close, .timeout = 30)
{
    char cert[32], key[32];
    make_cert(cert, key);
    struct srv s;
    srv_start(&s, cert, key);
    int status = 0;
    char err[192] = "";
    struct wsc_opts o = {.port = s.port, .tls = 1, .errbuf = err, .errbuf_len = sizeof(err)};
    struct wsc *c = wsc_connect(&o, &status);
    cr_assert_not_null(c, "%d %s", status, err);
    char *big = malloc(70000);
    cr_assert_not_null(big);
    memset(big, 'q', 70000);
    cr_assert_eq(wsc_send_text(c, big, 70000), 0);
    expect_msg(c, big, 70000);
    free(big);
    cr_assert_eq(wsc_send_text(c, "ping", 4), 0);
    expect_msg(c, "pong:hi", 7);
    cr_assert_eq(wsc_send_text(c, "close4001", 9), 0);
    cr_expect_eq(wsc_wait_close(c, WAIT_MS), 4001);
    wsc_close(c, 1000);

    o.ca_file = cert; /* the self-signed certificate is its own CA */
    c = wsc_connect(&o, &status);
    cr_assert_not_null(c, "%d %s", status, err);
    cr_assert_eq(wsc_send_text(c, "verified", 8), 0);
    expect_msg(c, "verified", 8);
    wsc_close(c, 1000);
    srv_stop(&s);
    unlink(cert);
    unlink(key);
}

Test(wsclient, tls_with_another_ca_fails, .timeout = 30)
{
    char cert[32], key[32], other[32], other_key[32];
    make_cert(cert, key);
    make_cert(other, other_key);
    struct srv s;
    srv_start(&s, cert, key);
    int status = -7;
    char err[192] = "";
    struct wsc_opts o = {
        .port = s.port, .tls = 1, .ca_file = other, .errbuf = err, .errbuf_len = sizeof(err)};
    cr_expect_null(wsc_connect(&o, &status));
    cr_expect_eq(status, 0);
    cr_expect(strstr(err, "certificate") != NULL, "%s", err);
    srv_stop(&s);
    unlink(cert);
    unlink(key);
    unlink(other);
    unlink(other_key);
}
