/*
 * lg_sio.h: coach-loadgen's Socket.IO adapter (--proto socketio). It maps
 * the tool's coachroom.v1 objects onto Socket.IO v5 packets carried by
 * Engine.IO v4 over a WebSocket (one packet per text frame), and back, so
 * that the client loop, the verifier and the histograms stay the same for
 * both protocols. The server's side of the mapping is
 * bench/peer-node/server-sio.mjs: one event per command, answered through
 * an acknowledgement; its events carry coachroom.v1's bodies. Pure: jansson
 * only, no I/O.
 *
 * Out (lg_sio_encode):
 *   {"type":"hello","token":T}   -> 40{"token":T}          (namespace connect, auth)
 *   {"type":"join", ...}         -> 42<id>["join",{...}]    (the rest of the object)
 *   chat, leave, end, rate       -> the same, each with an ack id
 *   typing (and anything else)   -> 42["typing",{...}]      (no ack)
 * In (lg_sio_decode):
 *   0{...} open                  -> LG_SIO_OPEN (send hello)
 *   2[payload] ping              -> LG_SIO_PING (answer 3[payload], lg_sio_pong)
 *   1 close, 41 disconnect       -> LG_SIO_CLOSE
 *   3 pong, 6 noop               -> LG_SIO_SKIP
 *   40{...} connected            -> {"type":"welcome"}
 *   44{"message":M} refused      -> {"type":"error","code":"unauthorized"|M's code,...}
 *   42["ev",{...}]               -> {"type":"ev",...}
 *   43<id>[{...}]                -> {"type":joined|ack|left|ended|rated, ...} by the
 *                                   command the id was made for;
 *   43<id>[{"error":{code,message},...}] -> {"type":"error","code",...,"clientMsgId"?}
 * An ack id is (n << 3) | kind: n counts the connection's acks, kind names
 * the command, so an ack needs no table of pending ids.
 */
#ifndef COACH_LG_SIO_H
#define COACH_LG_SIO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The Engine.IO query the WebSocket upgrade carries, after the Socket.IO path. */
#define LG_SIO_QUERY "/?EIO=4&transport=websocket"

enum lg_sio_in {
    LG_SIO_SKIP,  /* nothing to do */
    LG_SIO_OBJ,   /* *out: a coachroom.v1 object */
    LG_SIO_OPEN,  /* Engine.IO open: send the namespace connect (hello) */
    LG_SIO_PING,  /* Engine.IO ping: answer with lg_sio_pong */
    LG_SIO_CLOSE, /* the server closes the session: drop the connection */
    LG_SIO_BAD    /* not a packet this adapter understands */
};

/* Decode one text frame buf[0..len). On LG_SIO_OBJ, *out is a new object
 * the caller owns (json_decref); otherwise *out is NULL. Any thread. */
enum lg_sio_in lg_sio_decode(const char *buf, size_t len, json_t **out);

/* The packet for the coachroom.v1 command o (borrowed, must have a string
 * "type"): a NUL-terminated string the caller frees, or NULL when o has no
 * type or memory ran out. *ack_n is the connection's ack counter, moved on
 * for each command that asks an ack. Any thread. */
char *lg_sio_encode(const json_t *o, uint32_t *ack_n);

/* The answer to the ping frame buf[0..len) ("2" -> "3", "2probe" ->
 * "3probe"): a NUL-terminated string the caller frees, NULL on OOM. */
char *lg_sio_pong(const char *buf, size_t len);

#endif
