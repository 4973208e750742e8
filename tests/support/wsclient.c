/*
 * wsclient.c: see wsclient.h.
 *
 * DESIGN: one non-blocking socket; every wait is a poll() on a monotonic
 * deadline. Bytes read go to rbuf (bounded by the largest frame accepted);
 * frames are parsed in place, control frames are handled on the spot (ping
 * -> pong, close -> record the code and answer), data frames are reassembled
 * in msg. The FIFO keeps whole messages put aside by wsc_expect() and
 * wsc_wait_close(). TLS goes through OpenSSL over a small BIO that sends with
 * MSG_NOSIGNAL, so a peer that went away gives -EPIPE instead of SIGPIPE.
 */
#include "wsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#define HEAD_MAX_BYTES  16384
#define RBUF_MIN_BYTES  65536
#define RBUF_MAX_BYTES  (WSC_MAX_FRAME_BYTES + 14)
#define CLOSE_WAIT_MS   1000
#define DEFAULT_TIMEOUT 5000

struct wsc_msg {
    char *data; /* owned, NUL-terminated */
    size_t len;
};

struct wsc {
    int fd;
    SSL_CTX *ssl_ctx;     /* owned, NULL without TLS */
    SSL *ssl;             /* owned; owns its BIO */
    BIO_METHOD *bio_meth; /* owned */
    int tls_eof;          /* the BIO saw EOF */
    int timeout_ms;       /* for each send */
    int rcvbuf;           /* SO_RCVBUF before connecting, 0: the system's */
    int close_code;       /* see wsc_close_code() */
    int sent_close;       /* a close frame went out */
    int dead;             /* I/O or protocol failure: no more I/O */
    unsigned char *rbuf;  /* owned; bytes rpos..rlen not parsed yet */
    size_t rpos, rlen, rcap;
    unsigned char *msg; /* owned; fragments of the message in progress */
    size_t msg_len;
    int msg_op;           /* opcode of the message in progress, 0 when none */
    struct wsc_msg *fifo; /* owned ring of WSC_FIFO_MAX entries */
    size_t fifo_head, fifo_n;
    char err[192];
};

struct frame {
    int fin, op;
    const unsigned char *payload; /* into rbuf: valid until the next read */
    size_t len;
    size_t total; /* header + payload */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_in(int timeout_ms)
{
    return now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
}

static void set_err(struct wsc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(struct wsc *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
}

static void set_ssl_err(struct wsc *c, const char *what)
{
    char buf[128];
    unsigned long e = ERR_get_error();
    if (e == 0) {
        set_err(c, "%s failed", what);
        return;
    }
    ERR_error_string_n(e, buf, sizeof(buf));
    set_err(c, "%s: %s", what, buf);
    ERR_clear_error();
}

/* A growing string for requests and formatted messages. */
struct strbuf {
    char *p; /* owned, NUL-terminated */
    size_t len;
    int failed;
};

static void sb_vadd(struct strbuf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void sb_vadd(struct strbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *np = (b->failed || n < 0) ? NULL : realloc(b->p, b->len + (size_t)n + 1);
    if (np == NULL) {
        b->failed = 1;
        return;
    }
    b->p = np;
    (void)vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

static void sb_add(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_add(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vadd(b, fmt, ap);
    va_end(ap);
}

/* ---- I/O: plain socket or TLS, non-blocking, waits bounded by deadlines ---- */

/* Wait for events on fd until deadline: 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left < 0) {
            left = 0;
        }
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0) {
            return 0;
        }
        if (n == 0) {
            return -ETIMEDOUT;
        }
        if (errno != EINTR) {
            return -errno;
        }
    }
}

static int bio_write(BIO *b, const char *data, int len)
{
    struct wsc *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = send(c->fd, data, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_write(b);
    }
    return (int)n;
}

static int bio_read(BIO *b, char *data, int len)
{
    struct wsc *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = recv(c->fd, data, (size_t)len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_read(b);
    }
    if (n == 0) {
        c->tls_eof = 1;
    }
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct wsc *c = BIO_get_data(b);
    (void)num;
    (void)ptr;
    if (cmd == BIO_CTRL_FLUSH) {
        return 1;
    }
    if (cmd == BIO_CTRL_EOF) {
        return c->tls_eof;
    }
    return 0;
}

/* After an SSL call returned ret: wait as asked (0), or 1 for a clean EOF,
 * or a negative errno with c->err set. */
static int tls_wait(struct wsc *c, int ret, int64_t deadline, const char *what)
{
    int e = SSL_get_error(c->ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return wait_fd(c->fd, POLLIN, deadline);
    case SSL_ERROR_WANT_WRITE:
        return wait_fd(c->fd, POLLOUT, deadline);
    case SSL_ERROR_ZERO_RETURN:
        return 1;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || c->tls_eof) {
            return 1;
        }
        set_err(c, "%s: errno %d", what, errno);
        return errno == EPIPE ? -EPIPE : -EIO;
    default:
        set_ssl_err(c, what);
        return -EPROTO;
    }
}

/* Read what is available (waiting until deadline for something): bytes
 * read, 0 on EOF, -ETIMEDOUT or another negative errno. */
static ssize_t io_read(struct wsc *c, void *buf, size_t cap, int64_t deadline)
{
    int cap_i = cap > INT_MAX ? INT_MAX : (int)cap;
    for (;;) {
        int rc;
        if (c->ssl != NULL) {
            ERR_clear_error();
            errno = 0;
            int n = SSL_read(c->ssl, buf, cap_i);
            if (n > 0) {
                return n;
            }
            rc = tls_wait(c, n, deadline, "TLS read");
            if (rc == 1) {
                return 0;
            }
        } else {
            ssize_t n = recv(c->fd, buf, cap, 0);
            if (n >= 0) {
                return n;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                return -errno;
            }
            rc = wait_fd(c->fd, POLLIN, deadline);
        }
        if (rc < 0) {
            return rc;
        }
    }
}

/* Write all of buf before deadline: 0 or a negative errno. */
static int io_write_all(struct wsc *c, const void *buf, size_t len, int64_t deadline)
{
    const unsigned char *p = buf;
    size_t off = 0;
    while (off < len) {
        size_t chunk = len - off > INT_MAX ? INT_MAX : len - off;
        int rc = 0;
        if (c->ssl != NULL) {
            ERR_clear_error();
            errno = 0;
            int n = SSL_write(c->ssl, p + off, (int)chunk);
            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            rc = tls_wait(c, n, deadline, "TLS write");
            if (rc == 1) {
                rc = -EPIPE;
            }
        } else {
            ssize_t n = send(c->fd, p + off, chunk, MSG_NOSIGNAL);
            if (n >= 0) {
                off += (size_t)n;
                continue;
            }
            if (errno == EINTR) {
                continue;
            }
            rc = (errno == EAGAIN || errno == EWOULDBLOCK) ? wait_fd(c->fd, POLLOUT, deadline)
                                                           : -errno;
        }
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Read more bytes into rbuf (compacting and growing it up to its bound):
 * bytes read, 0 on EOF, negative errno (-ENOBUFS when full). */
static ssize_t fill(struct wsc *c, int64_t deadline)
{
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    if (c->rlen == c->rcap) {
        if (c->rcap >= RBUF_MAX_BYTES) {
            return -ENOBUFS;
        }
        size_t ncap = c->rcap * 2 > RBUF_MAX_BYTES ? RBUF_MAX_BYTES : c->rcap * 2;
        unsigned char *n = realloc(c->rbuf, ncap);
        if (n == NULL) {
            return -ENOMEM;
        }
        c->rbuf = n;
        c->rcap = ncap;
    }
    ssize_t n = io_read(c, c->rbuf + c->rlen, c->rcap - c->rlen, deadline);
    if (n > 0) {
        c->rlen += (size_t)n;
    }
    return n;
}

/* ---- frames out ---- */

/* One masked frame, header and payload in a single write. */
static int frame_write(struct wsc *c, int op, int fin, const void *p, size_t len)
{
    unsigned char hdr[14];
    size_t h = 0;
    if (len > SIZE_MAX - sizeof(hdr)) {
        return -EINVAL;
    }
    hdr[h++] = (unsigned char)((fin ? 0x80 : 0) | (op & 0x0f));
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) {
            hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
        }
    }
    unsigned char *mask = hdr + h;
    randombytes_buf(mask, 4);
    h += 4;
    unsigned char *buf = malloc(h + len);
    if (buf == NULL) {
        return -ENOMEM;
    }
    memcpy(buf, hdr, h);
    const unsigned char *src = p;
    for (size_t i = 0; i < len; i++) {
        buf[h + i] = src[i] ^ mask[i & 3];
    }
    int rc = io_write_all(c, buf, h + len, deadline_in(c->timeout_ms));
    free(buf);
    if (rc < 0) {
        set_err(c, "send failed: errno %d", -rc);
        c->dead = 1;
        if (c->close_code == 0) {
            c->close_code = -1;
        }
    }
    return rc;
}

/* A close frame with code (none when code is 0); marks the client closing. */
static int send_close(struct wsc *c, int code)
{
    unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    c->sent_close = 1;
    return frame_write(c, WSC_OP_CLOSE, 1, p, code > 0 ? 2 : 0);
}

/* The connection failed (protocol error when ws_code is not 0: tell the
 * server with that close code first). Returns rc. */
static int conn_fail(struct wsc *c, int rc, int ws_code)
{
    if (ws_code != 0 && !c->sent_close && !c->dead) {
        int saved = c->timeout_ms;
        c->timeout_ms = 200;
        send_close(c, ws_code);
        c->timeout_ms = saved;
    }
    c->dead = 1;
    if (c->close_code == 0) {
        c->close_code = -1;
    }
    return rc;
}

/* ---- frames in ---- */

/* Parse the frame at rbuf[rpos]: 1 when it is complete (f filled), 0 when
 * more bytes are needed, or conn_fail()'s negative errno. */
static int frame_parse(struct wsc *c, struct frame *f)
{
    const unsigned char *p = c->rbuf + c->rpos;
    size_t avail = c->rlen - c->rpos, h = 2;
    if (avail < 2) {
        return 0;
    }
    if ((p[0] & 0x70) != 0 || (p[1] & 0x80) != 0) {
        set_err(c, "server frame with %s", (p[0] & 0x70) ? "reserved bits" : "a mask");
        return conn_fail(c, -EPROTO, 1002);
    }
    uint64_t len = p[1] & 0x7f;
    if (len == 126) {
        h = 4;
    } else if (len == 127) {
        h = 10;
    }
    if (avail < h) {
        return 0;
    }
    if (h == 4) {
        len = (uint64_t)p[2] << 8 | p[3];
    } else if (h == 10) {
        len = 0;
        for (size_t i = 2; i < 10; i++) {
            len = len << 8 | p[i];
        }
    }
    if ((p[0] & 0x08) != 0 && (len > 125 || (p[0] & 0x80) == 0)) {
        set_err(c, "control frame fragmented or over 125 bytes (opcode %d)", p[0] & 0x0f);
        return conn_fail(c, -EPROTO, 1002);
    }
    if (len > WSC_MAX_FRAME_BYTES) {
        set_err(c, "server frame too large: %llu bytes", (unsigned long long)len);
        return conn_fail(c, -EMSGSIZE, 1009);
    }
    if (avail - h < len) {
        return 0;
    }
    *f = (struct frame){.fin = (p[0] & 0x80) != 0,
                        .op = p[0] & 0x0f,
                        .payload = p + h,
                        .len = (size_t)len,
                        .total = h + (size_t)len};
    return 1;
}

/* Append a data frame's payload to the message in progress; when fin,
 * move the whole message to *out and return 1. */
static int data_frame(struct wsc *c, const struct frame *f, struct wsc_msg *out)
{
    if (c->msg_len + f->len > WSC_MAX_FRAME_BYTES) {
        set_err(c, "server message too large");
        return conn_fail(c, -EMSGSIZE, 1009);
    }
    unsigned char *m = realloc(c->msg, c->msg_len + f->len + 1);
    if (m == NULL) {
        return conn_fail(c, -ENOMEM, 1011);
    }
    c->msg = m;
    if (f->len > 0) {
        memcpy(c->msg + c->msg_len, f->payload, f->len);
    }
    c->msg_len += f->len;
    if (!f->fin) {
        return 0;
    }
    c->msg[c->msg_len] = '\0';
    out->data = (char *)c->msg;
    out->len = c->msg_len;
    c->msg = NULL;
    c->msg_len = 0;
    c->msg_op = 0;
    return 1;
}

static int control_frame(struct wsc *c, const struct frame *f)
{
    if (f->op == WSC_OP_CLOSE && f->len == 1) {
        set_err(c, "close frame with a 1-byte payload");
        return conn_fail(c, -EPROTO, 1002);
    }
    if (f->op == WSC_OP_PING) {
        return c->sent_close ? 0 : frame_write(c, WSC_OP_PONG, 1, f->payload, f->len);
    }
    if (f->op == WSC_OP_CLOSE) {
        int code = f->len >= 2 ? (f->payload[0] << 8 | f->payload[1]) : 1005;
        c->close_code = code;
        set_err(c, "closed by the server with %d", code);
        if (!c->sent_close) {
            send_close(c, f->len >= 2 ? code : 0);
        }
    }
    return 0;
}

/* Handle one complete frame: 1 when a data message completed (*out),
 * 0 otherwise, negative errno when the connection failed. */
static int frame_handle(struct wsc *c, const struct frame *f, struct wsc_msg *out)
{
    switch (f->op) {
    case WSC_OP_TEXT:
    case WSC_OP_BINARY:
        if (c->msg_op != 0) {
            set_err(c, "new data frame inside a fragmented message");
            return conn_fail(c, -EPROTO, 1002);
        }
        c->msg_op = f->op;
        return data_frame(c, f, out);
    case WSC_OP_CONT:
        if (c->msg_op == 0) {
            set_err(c, "continuation frame without a message");
            return conn_fail(c, -EPROTO, 1002);
        }
        return data_frame(c, f, out);
    case WSC_OP_CLOSE:
    case WSC_OP_PING:
    case WSC_OP_PONG:
        return control_frame(c, f);
    default:
        set_err(c, "reserved opcode %d", f->op);
        return conn_fail(c, -EPROTO, 1002);
    }
}

/* Read until a data message is complete (1, *out set), the server closed
 * or the connection ended (0, close_code set), the deadline passed
 * (-ETIMEDOUT), or another failure (negative errno, close_code -1). */
static int next_message(struct wsc *c, int64_t deadline, struct wsc_msg *out)
{
    for (;;) {
        if (c->close_code != 0 || c->dead) {
            return 0;
        }
        struct frame f;
        int rc = frame_parse(c, &f);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            rc = frame_handle(c, &f, out);
            c->rpos += f.total;
            if (rc != 0) {
                return rc;
            }
            continue;
        }
        ssize_t n = fill(c, deadline);
        if (n == 0) {
            set_err(c, "connection ended without a close frame");
            return conn_fail(c, 0, 0);
        }
        if (n == -ETIMEDOUT) {
            set_err(c, "timeout");
            return -ETIMEDOUT;
        }
        if (n < 0) {
            set_err(c, "read failed: errno %d", (int)-n);
            return conn_fail(c, (int)n, 0);
        }
    }
}

/* ---- FIFO of put-aside messages ---- */

static int fifo_push(struct wsc *c, struct wsc_msg m)
{
    if (c->fifo_n == WSC_FIFO_MAX) {
        return -ENOSPC;
    }
    c->fifo[(c->fifo_head + c->fifo_n) % WSC_FIFO_MAX] = m;
    c->fifo_n++;
    return 0;
}

/* Remove the i-th oldest entry (keeping the order of the others). */
static struct wsc_msg fifo_take(struct wsc *c, size_t i)
{
    struct wsc_msg m = c->fifo[(c->fifo_head + i) % WSC_FIFO_MAX];
    for (size_t k = i; k > 0; k--) {
        c->fifo[(c->fifo_head + k) % WSC_FIFO_MAX] = c->fifo[(c->fifo_head + k - 1) % WSC_FIFO_MAX];
    }
    c->fifo_head = (c->fifo_head + 1) % WSC_FIFO_MAX;
    c->fifo_n--;
    return m;
}

/* ---- handshake ---- */

int wsc_accept_for_key(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    int ok = x != NULL && EVP_DigestInit_ex(x, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(x, key, strlen(key)) == 1 &&
             EVP_DigestUpdate(x, guid, sizeof(guid) - 1) == 1 &&
             EVP_DigestFinal_ex(x, md, &md_len) == 1 && md_len == 20;
    EVP_MD_CTX_free(x);
    if (!ok) {
        out[0] = '\0';
        return -EIO;
    }
    sodium_bin2base64(out, 29, md, 20, sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

static int tcp_try(struct wsc *c, const struct addrinfo *ai, int64_t deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) {
        return -errno;
    }
    int one = 1, rc = 0;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
        rc = -errno;
    }
    if (rc == 0 && c->rcvbuf > 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &c->rcvbuf, sizeof(c->rcvbuf)) < 0) {
        rc = -errno;
    }
    if (rc == 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        rc = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, deadline) : -errno;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr != 0) {
            rc = -soerr;
        }
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    return 0;
}

static int tcp_connect(struct wsc *c, const char *host, int port, int64_t deadline)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port_s[16];
    (void)snprintf(port_s, sizeof(port_s), "%d", port);
    int g = getaddrinfo(host, port_s, &hints, &res);
    if (g != 0) {
        set_err(c, "getaddrinfo %s: %s", host, gai_strerror(g));
        return -EHOSTUNREACH;
    }
    int rc = -ECONNREFUSED;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        rc = tcp_try(c, ai, deadline);
        if (rc == 0) {
            break;
        }
    }
    freeaddrinfo(res);
    if (rc < 0) {
        set_err(c, "connect %s:%d: errno %d", host, port, -rc);
    }
    return rc;
}

static int tls_setup(struct wsc *c, const struct wsc_opts *o, const char *host)
{
    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (c->ssl_ctx == NULL) {
        set_ssl_err(c, "SSL_CTX_new");
        return -ENOMEM;
    }
    SSL_CTX_set_options(c->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(c->ssl_ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(c->ssl_ctx, o->ca_file != NULL ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (o->ca_file != NULL && SSL_CTX_load_verify_locations(c->ssl_ctx, o->ca_file, NULL) != 1) {
        set_ssl_err(c, "loading the CA file");
        return -EINVAL;
    }
    c->ssl = SSL_new(c->ssl_ctx);
    c->bio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wsclient");
    if (c->ssl == NULL || c->bio_meth == NULL || BIO_meth_set_write(c->bio_meth, bio_write) != 1 ||
        BIO_meth_set_read(c->bio_meth, bio_read) != 1 ||
        BIO_meth_set_ctrl(c->bio_meth, bio_ctrl) != 1) {
        set_ssl_err(c, "TLS setup");
        return -ENOMEM;
    }
    BIO *b = BIO_new(c->bio_meth);
    if (b == NULL) {
        set_ssl_err(c, "BIO_new");
        return -ENOMEM;
    }
    BIO_set_data(b, c);
    BIO_set_init(b, 1);
    SSL_set_bio(c->ssl, b, b);
    unsigned char addr[16];
    if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1) {
        SSL_set_tlsext_host_name(c->ssl, host);
    }
    return 0;
}

static int tls_connect(struct wsc *c, int64_t deadline)
{
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int n = SSL_connect(c->ssl);
        if (n == 1) {
            return 0;
        }
        int rc = tls_wait(c, n, deadline, "TLS handshake");
        if (rc == 1) {
            set_err(c, "TLS handshake: connection closed");
            return -ECONNRESET;
        }
        if (rc < 0) {
            long v = SSL_get_verify_result(c->ssl);
            if (v != X509_V_OK) {
                set_err(c, "TLS handshake: certificate: %s", X509_verify_cert_error_string(v));
            } else if (rc == -ETIMEDOUT) {
                set_err(c, "TLS handshake: timeout");
            }
            return rc;
        }
    }
}

static int send_request(struct wsc *c, const struct wsc_opts *o, const char *host, const char *key,
                        int64_t deadline)
{
    struct strbuf b = {0};
    sb_add(&b,
           "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
           o->path != NULL ? o->path : "/ws", host, o->port, key);
    if (!o->no_subprotocol) {
        sb_add(&b, "Sec-WebSocket-Protocol: %s\r\n",
               o->subprotocol != NULL ? o->subprotocol : "coachroom.v1");
    }
    if (o->bearer != NULL) {
        sb_add(&b, "Authorization: Bearer %s\r\n", o->bearer);
    }
    if (o->origin != NULL) {
        sb_add(&b, "Origin: %s\r\n", o->origin);
    }
    sb_add(&b, "%s\r\n", o->extra_headers != NULL ? o->extra_headers : "");
    int rc = b.failed ? -ENOMEM : io_write_all(c, b.p, b.len, deadline);
    if (rc < 0) {
        set_err(c, "sending the upgrade request: errno %d", -rc);
    }
    free(b.p);
    return rc;
}

/* Read the response head into rbuf: its length (through the blank line)
 * or a negative errno. */
static ssize_t read_head(struct wsc *c, int64_t deadline)
{
    size_t scanned = 0;
    for (;;) {
        for (; scanned + 4 <= c->rlen; scanned++) {
            if (memcmp(c->rbuf + scanned, "\r\n\r\n", 4) == 0) {
                return (ssize_t)(scanned + 4);
            }
        }
        if (c->rlen >= HEAD_MAX_BYTES) {
            set_err(c, "HTTP answer head over %d bytes", HEAD_MAX_BYTES);
            return -EMSGSIZE;
        }
        ssize_t n = fill(c, deadline);
        if (n == 0) {
            set_err(c, "connection closed before a complete HTTP answer");
            return -ECONNRESET;
        }
        if (n < 0) {
            set_err(c, "reading the HTTP answer: %s", n == -ETIMEDOUT ? "timeout" : "read failed");
            return n;
        }
    }
}

/* Copy the trimmed value of header name (case-insensitive) from head into
 * out. Returns 0, or -1 when absent or too long. */
static int head_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *line = strstr(head, "\r\n");
    while (line != NULL) {
        line += 2;
        const char *eol = strstr(line, "\r\n");
        if (eol == NULL || eol == line) {
            break;
        }
        if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0 &&
            line[nlen] == ':') {
            const char *v = line + nlen + 1, *e = eol;
            while (v < e && (*v == ' ' || *v == '\t')) {
                v++;
            }
            while (e > v && (e[-1] == ' ' || e[-1] == '\t')) {
                e--;
            }
            if ((size_t)(e - v) >= cap) {
                return -1;
            }
            memcpy(out, v, (size_t)(e - v));
            out[e - v] = '\0';
            return 0;
        }
        line = eol;
    }
    return -1;
}

/* Is token (case-insensitive) one of the comma-separated items of list? */
static int has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = list;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        size_t n = strcspn(p, ", \t");
        if (n == tlen && strncasecmp(p, token, n) == 0) {
            return 1;
        }
        p += n;
    }
    return 0;
}

/* Check the response head; *status gets the HTTP status. */
static int check_head(struct wsc *c, const struct wsc_opts *o, const char *head, const char *key,
                      int *status)
{
    char v[256], want[29];
    char *end = NULL;
    if (strncmp(head, "HTTP/1.", 7) != 0 || head[7] == '\0' || head[8] != ' ') {
        set_err(c, "not an HTTP answer");
        return -EPROTO;
    }
    long st = strtol(head + 9, &end, 10);
    if (end != head + 12 || st < 100 || st > 599) {
        set_err(c, "bad HTTP status line");
        return -EPROTO;
    }
    *status = (int)st;
    if (st != 101) {
        set_err(c, "server answered HTTP %ld", st);
        return -ECONNREFUSED;
    }
    if (head_value(head, "Upgrade", v, sizeof(v)) != 0 || strcasecmp(v, "websocket") != 0 ||
        head_value(head, "Connection", v, sizeof(v)) != 0 || !has_token(v, "upgrade")) {
        set_err(c, "101 without Upgrade: websocket / Connection: upgrade");
        return -EPROTO;
    }
    if (wsc_accept_for_key(key, want) != 0 ||
        head_value(head, "Sec-WebSocket-Accept", v, sizeof(v)) != 0 || strcmp(v, want) != 0) {
        set_err(c, "bad or missing Sec-WebSocket-Accept");
        return -EPROTO;
    }
    if (head_value(head, "Sec-WebSocket-Extensions", v, sizeof(v)) == 0) {
        set_err(c, "server selected an extension we did not offer: %s", v);
        return -EPROTO;
    }
    const char *want_proto = o->subprotocol != NULL ? o->subprotocol : "coachroom.v1";
    int has_proto = head_value(head, "Sec-WebSocket-Protocol", v, sizeof(v)) == 0;
    if (o->no_subprotocol ? has_proto : (!has_proto || strcmp(v, want_proto) != 0)) {
        set_err(c, "server selected subprotocol '%s'", has_proto ? v : "");
        return -EPROTO;
    }
    return 0;
}

static int handshake(struct wsc *c, const struct wsc_opts *o, const char *host, int64_t deadline,
                     int *status)
{
    unsigned char raw[16];
    char key[sodium_base64_ENCODED_LEN(16, sodium_base64_VARIANT_ORIGINAL)];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(key, sizeof(key), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
    int rc = send_request(c, o, host, key, deadline);
    ssize_t hlen = rc < 0 ? rc : read_head(c, deadline);
    if (hlen < 0) {
        return (int)hlen;
    }
    char *head = malloc((size_t)hlen + 1);
    if (head == NULL) {
        return -ENOMEM;
    }
    memcpy(head, c->rbuf, (size_t)hlen);
    head[hlen] = '\0';
    rc = check_head(c, o, head, key, status);
    free(head);
    c->rpos = (size_t)hlen; /* frames sent right after the head stay in rbuf */
    return rc;
}

/* ---- public API ---- */

struct wsc *wsc_connect(const struct wsc_opts *o, int *http_status)
{
    int ignored = 0;
    int *status = http_status != NULL ? http_status : &ignored;
    *status = 0;
    if (o == NULL || o->port <= 0 || o->port > 65535 || sodium_init() < 0) {
        if (o != NULL && o->errbuf != NULL && o->errbuf_len > 0) {
            (void)snprintf(o->errbuf, o->errbuf_len, "%s", "bad options (port) or no libsodium");
        }
        return NULL;
    }
    struct wsc *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->fd = -1;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT;
    c->rcvbuf = o->rcvbuf;
    c->rbuf = malloc(RBUF_MIN_BYTES);
    c->rcap = RBUF_MIN_BYTES;
    c->fifo = calloc(WSC_FIFO_MAX, sizeof(*c->fifo));
    int64_t deadline = deadline_in(c->timeout_ms);
    const char *host = o->host != NULL ? o->host : "127.0.0.1";
    int rc = (c->rbuf == NULL || c->fifo == NULL) ? -ENOMEM : 0;
    if (rc == 0) {
        rc = tcp_connect(c, host, o->port, deadline);
    }
    if (rc == 0 && o->tls) {
        rc = tls_setup(c, o, host);
        if (rc == 0) {
            rc = tls_connect(c, deadline);
        }
    }
    if (rc == 0) {
        rc = handshake(c, o, host, deadline, status);
    }
    if (rc < 0) {
        if (o->errbuf != NULL && o->errbuf_len > 0) {
            (void)snprintf(o->errbuf, o->errbuf_len, "%s", c->err[0] ? c->err : "out of memory");
        }
        wsc_free(c);
        return NULL;
    }
    return c;
}

/* 0 when frames may still be sent, else -EPIPE (-EINVAL without c). */
static int check_open(struct wsc *c)
{
    if (c == NULL) {
        return -EINVAL;
    }
    if (c->dead || c->sent_close || c->close_code != 0) {
        set_err(c, "connection closing or closed");
        return -EPIPE;
    }
    return 0;
}

int wsc_send_text(struct wsc *c, const char *s, size_t len)
{
    int rc = check_open(c);
    return rc < 0 ? rc : frame_write(c, WSC_OP_TEXT, 1, s, len);
}

int wsc_send_frame(struct wsc *c, int opcode, int fin, const void *p, size_t len)
{
    if (opcode < 0 || opcode > 15) {
        return -EINVAL;
    }
    int rc = check_open(c);
    if (rc < 0) {
        return rc;
    }
    if (opcode == WSC_OP_CLOSE) {
        c->sent_close = 1;
    }
    return frame_write(c, opcode, fin != 0, p, len);
}

int wsc_send_raw(struct wsc *c, const void *p, size_t len)
{
    int rc = check_open(c);
    if (rc == 0) {
        rc = io_write_all(c, p, len, deadline_in(c->timeout_ms));
        if (rc < 0) {
            set_err(c, "send failed: errno %d", -rc);
            conn_fail(c, rc, 0);
        }
    }
    return rc;
}

int wsc_send_json(struct wsc *c, const char *fmt, ...)
{
    struct strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vadd(&b, fmt, ap);
    va_end(ap);
    int rc = b.failed ? -EINVAL : wsc_send_text(c, b.p, b.len);
    free(b.p);
    return rc;
}

char *wsc_recv(struct wsc *c, int timeout_ms, size_t *len)
{
    struct wsc_msg m = {0};
    if (c == NULL) {
        return NULL;
    }
    if (c->fifo_n > 0) {
        m = fifo_take(c, 0);
    } else if (next_message(c, deadline_in(timeout_ms), &m) != 1) {
        return NULL;
    }
    if (len != NULL) {
        *len = m.len;
    }
    return m.data;
}

/* The message parsed, when it is a JSON object of that type; else NULL. */
static json_t *match_type(const struct wsc_msg *m, const char *type)
{
    json_t *j = json_loadb(m->data, m->len, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "type"));
    if (t != NULL && strcmp(t, type) == 0) {
        return j;
    }
    json_decref(j);
    return NULL;
}

json_t *wsc_expect(struct wsc *c, const char *type, int timeout_ms)
{
    struct wsc_msg m = {0};
    if (c == NULL || type == NULL) {
        return NULL;
    }
    int64_t deadline = deadline_in(timeout_ms);
    for (size_t i = 0; i < c->fifo_n; i++) {
        json_t *j = match_type(&c->fifo[(c->fifo_head + i) % WSC_FIFO_MAX], type);
        if (j != NULL) {
            m = fifo_take(c, i);
            free(m.data);
            return j;
        }
    }
    while (next_message(c, deadline, &m) == 1) {
        json_t *j = match_type(&m, type);
        if (j != NULL) {
            free(m.data);
            return j;
        }
        if (fifo_push(c, m) != 0) {
            free(m.data);
            set_err(c, "FIFO full (%d messages) while waiting for \"%s\"", WSC_FIFO_MAX, type);
            return NULL;
        }
    }
    return NULL;
}

int wsc_close_code(const struct wsc *c)
{
    return c != NULL ? c->close_code : -1;
}

int wsc_wait_close(struct wsc *c, int timeout_ms)
{
    struct wsc_msg m = {0};
    if (c == NULL) {
        return -1;
    }
    int64_t deadline = deadline_in(timeout_ms);
    for (;;) {
        int rc = next_message(c, deadline, &m);
        if (rc == 1) {
            if (fifo_push(c, m) != 0) {
                free(m.data);
            }
            continue;
        }
        /* Every other outcome but the timeout set close_code. */
        return rc == -ETIMEDOUT ? -2 : c->close_code;
    }
}

const char *wsc_last_error(const struct wsc *c)
{
    return c != NULL ? c->err : "no client";
}

size_t wsc_pending(const struct wsc *c)
{
    return c != NULL ? c->fifo_n : 0;
}

void wsc_close(struct wsc *c, int code)
{
    if (c == NULL) {
        return;
    }
    if (!c->dead && c->close_code == 0) {
        int rc = c->sent_close ? 0 : send_close(c, code);
        if (rc == 0) {
            wsc_wait_close(c, CLOSE_WAIT_MS);
        }
    }
    if (c->ssl != NULL && !c->dead) {
        ERR_clear_error();
        SSL_shutdown(c->ssl); /* best effort close_notify */
        ERR_clear_error();
    }
    wsc_free(c);
}

void wsc_free(struct wsc *c)
{
    if (c == NULL) {
        return;
    }
    SSL_free(c->ssl); /* and its BIO */
    BIO_meth_free(c->bio_meth);
    SSL_CTX_free(c->ssl_ctx);
    if (c->fd >= 0) {
        close(c->fd);
    }
    while (c->fifo != NULL && c->fifo_n > 0) {
        free(fifo_take(c, 0).data);
    }
    free(c->fifo);
    free(c->rbuf);
    free(c->msg);
    free(c);
}
