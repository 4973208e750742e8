/*
 * wsclient.h: a small blocking RFC 6455 WebSocket client for the tests,
 * written by hand over a plain TCP socket (optionally TLS through OpenSSL)
 * so that a test controls every byte it sends, malformed input included.
 * Test code only.
 *
 * Threads: a struct wsc belongs to the thread that connected it; no call is
 * thread-safe on the same client. Different clients are independent.
 * Timeouts are deadlines on poll(); nothing here sleeps.
 *
 * Errors: functions returning int give 0 or a negative errno value
 * (-EINVAL, -ENOMEM, -ETIMEDOUT, -EPIPE, -EPROTO, -EIO...). wsc_last_error()
 * describes the last failure in words. Nothing here exits or aborts.
 *
 * Bounds: a frame or a reassembled message from the server may carry at most
 * WSC_MAX_FRAME_BYTES (larger: the client sends close 1009 and gives up);
 * messages put aside by wsc_expect()/wsc_wait_close() are kept in a FIFO of
 * at most WSC_FIFO_MAX entries.
 */
#ifndef COACH_TEST_WSCLIENT_H
#define COACH_TEST_WSCLIENT_H

#include <stddef.h>

#include <jansson.h>

#define WSC_MAX_FRAME_BYTES ((size_t)16 * 1024 * 1024)
#define WSC_FIFO_MAX        1024

/* Opcodes for wsc_send_frame(). */
#define WSC_OP_CONT   0x0
#define WSC_OP_TEXT   0x1
#define WSC_OP_BINARY 0x2
#define WSC_OP_CLOSE  0x8
#define WSC_OP_PING   0x9
#define WSC_OP_PONG   0xA

struct wsc;

/* Connection options; zero fields take the defaults. Strings are borrowed
 * for the wsc_connect() call only. */
struct wsc_opts {
    const char *host;          /* default "127.0.0.1" (a name or an address literal) */
    int port;                  /* required */
    const char *path;          /* default "/ws" */
    const char *subprotocol;   /* default "coachroom.v1" */
    int no_subprotocol;        /* 1: send no Sec-WebSocket-Protocol, and require none back */
    const char *bearer;        /* adds "Authorization: Bearer <bearer>" when set */
    const char *origin;        /* adds "Origin: <origin>" when set */
    const char *extra_headers; /* raw "Name: value\r\n" lines appended to the request */
    int tls;                   /* 1: TLS; no certificate verification unless ca_file */
    const char *ca_file;       /* PEM CA file: verify the server's chain against it (the
                                  host name is not checked: test certificates name
                                  "localhost" while tests dial 127.0.0.1) */
    int timeout_ms;            /* connect + TLS + handshake, and each send; default 5000 */
    int rcvbuf;                /* SO_RCVBUF set before connecting (a slow reader); 0: default */
    char *errbuf;              /* optional: why wsc_connect() failed, NUL-terminated */
    size_t errbuf_len;
};

/* Connect and upgrade. On success returns the client (free it with
 * wsc_close() or wsc_free()) and sets *http_status (when http_status is not
 * NULL) to 101. On failure returns NULL and sets *http_status
 * (when http_status is not NULL) to the status the server answered instead
 * of 101 (e.g. 403); to 101 when it did answer 101 but the handshake was
 * invalid (bad Sec-WebSocket-Accept, missing Upgrade, other subprotocol);
 * to 0 when no HTTP answer came (refused, timeout, TLS failure). */
struct wsc *wsc_connect(const struct wsc_opts *o, int *http_status);

/* Send one masked text frame with FIN set; s need not be NUL-terminated.
 * Returns 0, -EPIPE once a close was sent or received, or another negative
 * errno on I/O failure or timeout (the connection is then unusable). */
int wsc_send_text(struct wsc *c, const char *s, size_t len);

/* Send one masked frame exactly as given: any opcode 0..15 (reserved ones
 * included), FIN bit as fin (0 or 1), any length (control frames over 125
 * bytes, oversized data frames, invalid UTF-8, fragments...). A close frame
 * sent this way marks the client as closing. Returns as wsc_send_text();
 * -EINVAL for an opcode above 15. */
int wsc_send_frame(struct wsc *c, int opcode, int fin, const void *p, size_t len);

/* Write bytes to the connection as they are, without framing or masking
 * (unmasked frames, reserved bits, truncated headers...). Returns as
 * wsc_send_text(). */
int wsc_send_raw(struct wsc *c, const void *p, size_t len);

/* printf-format a message and send it as one text frame. Returns as
 * wsc_send_text(); -EINVAL when the format fails. */
int wsc_send_json(struct wsc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The next data message (text, or binary: the gateway sends none), first
 * from the FIFO of messages put aside by wsc_expect()/wsc_wait_close(), then
 * from the connection. Pings are answered with pongs on the way; fragmented
 * messages are reassembled. timeout_ms >= 0 (0: only what has arrived).
 * Returns a malloc'd, NUL-terminated copy (the caller frees it; *len, when
 * len is not NULL, gets its length without the NUL), or NULL on timeout (then
 * wsc_close_code() is 0), on close (wsc_close_code() tells the code) or on
 * error (wsc_last_error()). */
char *wsc_recv(struct wsc *c, int timeout_ms, size_t *len);

/* Wait for a JSON object whose "type" equals type. The FIFO is searched
 * first, then messages are read from the connection; every other message
 * (other types, non-JSON text) is kept in the FIFO in arrival order, so later
 * wsc_recv()/wsc_expect() calls still see them. Returns a new json_t
 * reference (json_decref() it), or NULL on timeout, close, error or a full
 * FIFO (wsc_last_error() says which). */
json_t *wsc_expect(struct wsc *c, const char *type, int timeout_ms);

/* The close code the server sent (1000, 1008, 4001...; 1005 for a close
 * frame without a code), 0 if none yet, -1 if the connection ended without
 * a close frame (EOF, reset, protocol error). */
int wsc_close_code(const struct wsc *c);

/* Wait until the server closes (close frame or EOF), keeping data messages
 * that arrive meanwhile in the FIFO (dropped when it is full). Returns the
 * close code as wsc_close_code(), or -2 on timeout. */
int wsc_wait_close(struct wsc *c, int timeout_ms);

/* Description of the last failure ("" when none); valid until the next call
 * on c. */
const char *wsc_last_error(const struct wsc *c);

/* Number of data messages waiting in the FIFO. */
size_t wsc_pending(const struct wsc *c);

/* Send close with code (0: a close frame without a code) if the connection
 * is still open, wait up to 1 s for the server's answer (close frame or EOF)
 * so it sees a clean close, then free everything. NULL-safe. */
void wsc_close(struct wsc *c, int code);

/* Drop the connection without any close frame (simulates a cut
 * connection) and free everything. NULL-safe. */
void wsc_free(struct wsc *c);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2): base64 of
 * SHA-1(key + GUID), written NUL-terminated into out (29 bytes with the NUL).
 * Returns 0, or -EIO when hashing failed. For tests that play server. */
int wsc_accept_for_key(const char *key, char out[29]);

#endif
