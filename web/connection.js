// connection.js: one WebSocket to the gateway (subprotocol coachroom.v1)
// that comes back by itself. It opens the socket, hands every JSON frame to
// onFrame, and after a drop reconnects with exponential backoff and equal
// jitter (0.5 s doubling, at most 15 s). A liveness check (an application
// `ping` every 20 s, the socket is dropped when no frame came for 45 s)
// notices a dead network that TCP alone would hide for minutes.
//
// Room logic (hello, join with `since`, resending) is the caller's: it is
// told when a socket opens (onOpen) and when it is gone (onDown).

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 15000;
const PING_EVERY_MS = 20000;
const SILENCE_MAX_MS = 45000;
const CONNECT_TIMEOUT_MS = 10000;

export class Connection {
  // url: ws(s)://host/ws. handlers: onOpen(), onFrame(obj), onDown({code, reason, retryInMs}).
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastFrameAt = 0;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  // Never reconnect again (a fatal error: bad token, no such room).
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
    }
  }

  // A good answer came (joined): the next drop starts the backoff afresh.
  healthy() {
    this.attempt = 0;
  }

  // Try at once (the browser says it is online again).
  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  // Send obj as one frame; false when there is no open socket.
  send(obj) {
    if (!this.isOpen()) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  open() {
    this.retryTimer = null;
    let ws;
    try {
      ws = new WebSocket(this.url, 'coachroom.v1');
    } catch {
      this.down(1006, '');
      return;
    }
    this.ws = ws;
    const connectTimer = setTimeout(() => {
      if (ws.readyState === WebSocket.CONNECTING) ws.close();
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      clearTimeout(connectTimer);
      this.lastFrameAt = Date.now();
      this.pingTimer = setInterval(() => this.checkAlive(), PING_EVERY_MS);
      this.handlers.onOpen();
    };
    ws.onmessage = (ev) => {
      this.lastFrameAt = Date.now();
      let obj;
      try {
        obj = JSON.parse(ev.data);
      } catch {
        return; // the gateway only sends JSON; ignore anything else
      }
      if (obj && typeof obj === 'object') this.handlers.onFrame(obj);
    };
    ws.onerror = () => { /* a close event follows */ };
    ws.onclose = (ev) => {
      clearTimeout(connectTimer);
      if (this.ws !== ws) return;
      this.down(ev.code, ev.reason);
    };
  }

  checkAlive() {
    if (!this.isOpen()) return;
    if (Date.now() - this.lastFrameAt > SILENCE_MAX_MS) {
      const ws = this.ws;
      ws.onclose = null;
      ws.close();
      this.down(1006, 'silent');
      return;
    }
    this.send({ type: 'ping' });
  }

  down(code, reason) {
    clearInterval(this.pingTimer);
    this.ws = null;
    if (this.stopped) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** this.attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.attempt = Math.min(this.attempt + 1, 10);
    this.retryTimer = setTimeout(() => this.open(), delay);
    this.handlers.onDown({ code, reason, retryInMs: delay });
  }
}
