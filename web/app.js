// app.js: the coaching room page. Reads the room and token from the link
// (/#room=<roomId>&token=<token>), keeps the token in memory only and wipes
// the fragment from the address bar, then speaks coachroom.v1 (see
// docs/protocol.md) through connection.js: hello, join (with `since` after a
// drop), chat with pending messages resent under the same clientMsgId until
// acknowledged, typing, presence and media, the room clock and its warnings,
// the end (coach), the summary (coach) and the rating (client).
//
// Every piece of text from the network goes into the page with textContent.

import { Connection } from './connection.js';
import { errorSentence, endReasonSentence, formatDuration } from './text.js';

const CHAT_MAX_BYTES = 4000;
const TYPING_EVERY_MS = 3000;   // resend typing:true at most this often
const TYPING_IDLE_MS = 4000;    // typing:false after this long without a key
const TYPING_SHOW_MS = 6000;    // forget someone's typing after this long
const RESEND_DELAY_MS = 2000;   // a chat refused as unavailable/rate_limited

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();

const state = {
  token: null,
  room: null,
  conn: null,
  me: null,            // welcome.user
  role: null,          // coach | client | observer
  appointment: null,
  session: null,
  joined: false,       // joined answered on the current socket
  lastSeq: 0,          // highest seq seen in order: the `since` of the next join
  lowestSeq: null,     // oldest seq shown (for "load earlier")
  bySeq: new Map(),    // seq -> <li>
  pending: new Map(),  // clientMsgId -> {text, li, state: 'queued'|'sent'|'failed', createdAt}
  members: [],
  media: new Set(),    // user ids with LiveKit video
  typing: new Map(),   // userId -> timeout id
  typingSentAt: 0,
  typingOn: false,
  typingIdle: null,
  endsAtMs: null,
  skewMs: 0,           // server clock - local clock
  ended: false,
  fatal: false,
  rateId: 0,
  retryAtMs: 0,        // when the next reconnect attempt starts
  summaryPolls: 0,     // GET /api/sessions/{id} while the summary is pending
};

// ---- start-up -----------------------------------------------------------

function readLink() {
  const params = new URLSearchParams(location.hash.slice(1));
  const room = params.get('room');
  const token = params.get('token');
  if (location.hash) {
    // The token must not stay in the address bar, the history or a bookmark.
    history.replaceState(null, '', location.pathname + location.search);
  }
  return { room, token };
}

function start() {
  const { room, token } = readLink();
  $('banner-close').addEventListener('click', hideBanner);
  $('signin-form').addEventListener('submit', onSignIn);
  if (room && token) {
    enterRoom(room, token);
  } else {
    showSignIn(room);
  }
}

function showSignIn(room) {
  setConn('Not signed in', 'idle');
  $('signin').hidden = false;
  if (room) $('signin-room').value = room;
  (room ? $('signin-token') : $('signin-room')).focus();
}

function onSignIn(ev) {
  ev.preventDefault();
  const room = $('signin-room').value.trim();
  const token = $('signin-token').value.trim();
  if (!room || !token) return;
  $('signin-token').value = '';
  $('signin').hidden = true;
  enterRoom(room, token);
}

function enterRoom(room, token) {
  state.room = room;
  state.token = token;
  $('room').hidden = false;
  wireRoom();
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  state.conn = new Connection(`${scheme}://${location.host}/ws`, {
    onOpen: () => {
      setConn('Connecting…', 'connecting');
      state.conn.send({ type: 'hello', token: state.token });
    },
    onFrame,
    onDown,
  });
  setConn('Connecting…', 'connecting');
  state.conn.start();
  setInterval(tickClock, 1000);
  window.addEventListener('online', () => state.conn && state.conn.retryNow());
}

function wireRoom() {
  const text = $('composer-text');
  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sendComposer();
  });
  text.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      sendComposer();
    }
  });
  text.addEventListener('input', () => {
    updateCounter();
    noteTyping();
  });
  $('end-btn').addEventListener('click', () => $('end-dialog').showModal());
  $('end-dialog').addEventListener('close', () => {
    if ($('end-dialog').returnValue === 'end') {
      if (!state.conn.send({ type: 'end', room: state.room, id: 'end' })) {
        showBanner('You are offline: the session was not ended. Try again when the connection is back.');
      }
    }
  });
  $('rating-form').addEventListener('submit', onRate);
  $('rating-form').addEventListener('change', litStars);
  $('load-earlier').addEventListener('click', () => {
    if (state.lowestSeq !== null) {
      state.conn.send({ type: 'history', room: state.room, before: state.lowestSeq, limit: 50, id: 'history' });
    }
  });
  updateCounter();
}

// ---- connection state ----------------------------------------------------

function setConn(text, kind) {
  const el = $('conn');
  el.textContent = text;
  el.dataset.state = kind;
  document.body.dataset.conn = kind;
}

function onDown({ code, retryInMs }) {
  state.joined = false;
  if (state.fatal) return;
  if (code === 4001) {
    fatal('Your sign-in has expired. Open your room link again.');
    return;
  }
  state.retryAtMs = Date.now() + retryInMs;
  showRetry();
  for (const p of state.pending.values()) {
    if (p.state === 'sent') setPending(p, 'queued');
  }
}

// "Reconnecting in N s…", counted down by the clock tick.
function showRetry() {
  const secs = Math.max(0, Math.ceil((state.retryAtMs - Date.now()) / 1000));
  setConn(secs > 0 ? `Connection lost. Reconnecting in ${secs} s…` : 'Connection lost. Reconnecting…', 'reconnecting');
}

function fatal(sentence) {
  state.fatal = true;
  state.conn.stop();
  setConn('Disconnected', 'fatal');
  showBanner(sentence);
  setComposerEnabled(false, 'The chat is not available.');
}

// ---- frames ----------------------------------------------------------------

const handlers = {
  welcome: onWelcome,
  joined: onJoined,
  message: (m) => addMessage(m, true),
  ack: onAck,
  presence: (m) => {
    if (m.room === state.room) {
      state.members = m.members || [];
      renderMembers();
    }
  },
  media: onMedia,
  typing: onTyping,
  timer: onTimer,
  'session.ended': onEnded,
  summary: (m) => showSummary('done', m.text),
  rated: onRated,
  history: onHistory,
  error: onError,
  pong: () => {},
  left: () => {},
};

function onFrame(m) {
  const fn = handlers[m.type];
  if (fn) fn(m);
}

function onWelcome(m) {
  state.me = m.user;
  const server = Date.parse(m.serverTime);
  if (!Number.isNaN(server)) state.skewMs = server - Date.now();
  sendJoin();
}

// join, with `since` once messages were seen (recovery after a drop).
function sendJoin() {
  const join = { type: 'join', room: state.room, id: 'join' };
  if (state.lastSeq > 0) join.since = state.lastSeq;
  state.conn.send(join);
}

function roleOf(appointment, me) {
  if (appointment.coach && appointment.coach.id === me.id) return 'coach';
  if (appointment.client && appointment.client.id === me.id) return 'client';
  return 'observer';
}

function onJoined(m) {
  const first = state.appointment === null;
  state.joined = true;
  state.conn.healthy();
  state.appointment = m.appointment;
  state.session = m.session;
  state.role = roleOf(m.appointment, state.me);
  state.members = m.members || [];
  state.endsAtMs = m.session && m.session.endsAt ? Date.parse(m.session.endsAt) : null;
  document.body.dataset.role = state.role;
  setConn('Connected', 'connected');
  renderHeader();
  renderMembers();
  for (const msg of m.history || []) addMessage(msg, false);
  if (first && m.truncated) $('load-earlier').hidden = false;
  tickClock();
  const status = m.session && m.session.status;
  if (status === 'completed' || status === 'cancelled') {
    enterEnded({ reason: null, rateable: null, cancelled: status === 'cancelled' });
  } else {
    $('end-btn').hidden = !(state.role === 'coach' || state.role === 'observer');
    if (state.role === 'observer') setComposerEnabled(false, 'Observers read the chat but do not write.');
    else setComposerEnabled(true);
  }
  flushPending();
}

function renderHeader() {
  const a = state.appointment;
  const coach = (a.coach && a.coach.displayName) || 'Coach';
  const client = (a.client && a.client.displayName) || 'Client';
  $('title').textContent = `${coach} & ${client}`;
  const when = new Date(a.scheduledFor);
  const you = state.role === 'observer' ? 'You are observing' : `You are the ${state.role}`;
  $('subtitle').textContent = `${formatDay(when)} · ${a.durationMin} min · ${you}`;
  document.title = `Coaching room · ${coach} & ${client}`;
}

function renderMembers() {
  const ul = $('members');
  ul.replaceChildren();
  const present = new Set(state.members.map((x) => x.userId));
  const people = [];
  if (state.appointment) {
    people.push({ userId: state.appointment.coach.id, displayName: state.appointment.coach.displayName, role: 'coach' });
    people.push({ userId: state.appointment.client.id, displayName: state.appointment.client.displayName, role: 'client' });
  }
  for (const x of state.members) {
    if (!people.some((p) => p.userId === x.userId)) people.push(x);
  }
  for (const p of people) {
    const li = document.createElement('li');
    li.className = present.has(p.userId) ? 'member present' : 'member absent';
    li.dataset.userId = p.userId;
    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.setAttribute('aria-hidden', 'true');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = p.displayName + (state.me && p.userId === state.me.id ? ' (you)' : '');
    const role = document.createElement('span');
    role.className = 'role';
    role.textContent = p.role;
    const status = document.createElement('span');
    status.className = 'status';
    const bits = [present.has(p.userId) ? 'here' : 'away'];
    if (state.media.has(p.userId)) bits.push('on video');
    status.textContent = bits.join(' · ');
    li.append(dot, name, role, status);
    ul.append(li);
  }
}

function onMedia(m) {
  if (m.room !== state.room) return;
  if (m.state === 'joined') state.media.add(m.userId);
  else state.media.delete(m.userId);
  renderMembers();
}

// ---- messages ----------------------------------------------------------------

function formatDay(d) {
  return d.toLocaleString([], { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
}

function formatTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function messageElement({ mine, name, text, createdAt }) {
  const li = document.createElement('li');
  li.className = mine ? 'msg mine' : 'msg theirs';
  const head = document.createElement('p');
  head.className = 'msg-head';
  const who = document.createElement('span');
  who.className = 'msg-who';
  who.textContent = mine ? 'You' : name;
  const time = document.createElement('time');
  time.className = 'msg-time';
  if (createdAt) {
    time.dateTime = createdAt;
    time.textContent = formatTime(createdAt);
  }
  const status = document.createElement('span');
  status.className = 'msg-status';
  head.append(who, time, status);
  const body = document.createElement('p');
  body.className = 'msg-text';
  body.textContent = text;
  li.append(head, body);
  return li;
}

function nearBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
}

// Put li in seq order among the shown messages (pending ones stay last).
function placeBySeq(li, seq) {
  const list = $('messages');
  let before = null;
  for (const el of list.children) {
    const s = Number(el.dataset.seq);
    if (el.dataset.seq === undefined || s > seq) {
      before = el;
      break;
    }
  }
  list.insertBefore(li, before);
}

// A message from the server (live, or history). Deduplicated by seq.
function addMessage(m, live) {
  if (m.room !== undefined && m.room !== state.room) return;
  if (state.bySeq.has(m.seq)) {
    noteSeq(m.seq);
    return;
  }
  const mine = state.me && m.from && m.from.userId === state.me.id;
  const p = mine && m.clientMsgId ? state.pending.get(m.clientMsgId) : null;
  let li;
  if (p) {
    state.pending.delete(m.clientMsgId);
    li = p.li;
    li.classList.remove('pending', 'failed');
    li.querySelector('.msg-status').textContent = '';
    li.querySelector('.msg-time').dateTime = m.createdAt;
    li.querySelector('.msg-time').textContent = formatTime(m.createdAt);
    li.querySelector('.retry')?.remove();
  } else {
    li = messageElement({ mine, name: m.from ? m.from.displayName : '', text: m.text, createdAt: m.createdAt });
  }
  li.dataset.seq = String(m.seq);
  if (m.clientMsgId) li.dataset.clientMsgId = m.clientMsgId;
  const list = $('messages');
  const stick = nearBottom(list) || mine;
  placeBySeq(li, m.seq);
  state.bySeq.set(m.seq, li);
  noteSeq(m.seq);
  if (state.lowestSeq === null || m.seq < state.lowestSeq) state.lowestSeq = m.seq;
  if (live && !mine) clearTyping(m.from.userId);
  if (stick) list.scrollTop = list.scrollHeight;
}

function noteSeq(seq) {
  if (seq > state.lastSeq) state.lastSeq = seq;
}

function onHistory(m) {
  if (m.room !== state.room) return;
  for (const msg of m.messages || []) addMessage(msg, false);
  $('load-earlier').hidden = !m.hasMore;
}

function newClientMsgId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function chatBytes(text) {
  return encoder.encode(text.trim()).length;
}

function updateCounter() {
  const text = $('composer-text').value;
  const n = chatBytes(text);
  const count = $('composer-count');
  count.textContent = `${n} / ${CHAT_MAX_BYTES}`;
  count.classList.toggle('over', n > CHAT_MAX_BYTES);
  $('send').disabled = state.ended || n === 0 || n > CHAT_MAX_BYTES || $('composer-text').disabled;
}

function sendComposer() {
  const area = $('composer-text');
  const text = area.value.trim();
  if (!text || area.disabled || state.ended) return;
  if (chatBytes(text) > CHAT_MAX_BYTES) {
    showBanner('This message is too long: shorten it until the counter is within the limit.');
    return;
  }
  const id = newClientMsgId();
  const li = messageElement({ mine: true, name: '', text, createdAt: null });
  li.dataset.clientMsgId = id;
  const p = { id, text, li, state: 'queued' };
  state.pending.set(id, p);
  const list = $('messages');
  list.append(li);
  list.scrollTop = list.scrollHeight;
  area.value = '';
  updateCounter();
  stopTyping();
  setPending(p, 'queued');
  sendPending(p);
}

function setPending(p, s) {
  p.state = s;
  p.li.classList.toggle('pending', s !== 'failed');
  p.li.classList.toggle('failed', s === 'failed');
  const status = p.li.querySelector('.msg-status');
  if (s === 'failed') {
    status.textContent = p.reason || 'Not sent';
  } else {
    status.textContent = state.joined ? 'Sending…' : 'Waiting for the connection…';
  }
}

function sendPending(p) {
  if (!state.joined || p.state === 'failed') return;
  if (state.conn.send({ type: 'chat', room: state.room, text: p.text, clientMsgId: p.id })) {
    setPending(p, 'sent');
  }
}

// After (re)joining: resend everything not acknowledged, in order, under
// the same clientMsgId (the gateway stores each id once).
function flushPending() {
  for (const p of state.pending.values()) {
    if (p.state !== 'failed') sendPending(p);
  }
}

function onAck(m) {
  const p = state.pending.get(m.clientMsgId);
  if (!p) return;
  state.pending.delete(m.clientMsgId);
  const shown = state.bySeq.get(m.seq);
  if (shown && shown !== p.li) {
    p.li.remove(); // the `message` came first
    return;
  }
  p.li.classList.remove('pending', 'failed');
  p.li.querySelector('.msg-status').textContent = '';
  const t = p.li.querySelector('.msg-time');
  t.dateTime = m.createdAt;
  t.textContent = formatTime(m.createdAt);
  p.li.dataset.seq = String(m.seq);
  p.li.remove();
  placeBySeq(p.li, m.seq);
  state.bySeq.set(m.seq, p.li);
  // lastSeq moves only with `message`/history, which arrive in order.
}

function failPending(p, reason) {
  p.reason = reason;
  setPending(p, 'failed');
  if (!p.li.querySelector('.retry') && !state.ended) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'retry plain';
    b.textContent = 'Try again';
    b.addEventListener('click', () => {
      b.remove();
      setPending(p, 'queued');
      sendPending(p);
    });
    p.li.querySelector('.msg-head').append(b);
  }
}

// ---- typing ----------------------------------------------------------------

function noteTyping() {
  if (!state.joined || state.ended || state.role === 'observer') return;
  const now = Date.now();
  if (!state.typingOn || now - state.typingSentAt > TYPING_EVERY_MS) {
    state.conn.send({ type: 'typing', room: state.room, state: true });
    state.typingSentAt = now;
    state.typingOn = true;
  }
  clearTimeout(state.typingIdle);
  state.typingIdle = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(state.typingIdle);
  if (state.typingOn) {
    state.typingOn = false;
    if (state.joined) state.conn.send({ type: 'typing', room: state.room, state: false });
  }
}

function onTyping(m) {
  if (m.room !== state.room || (state.me && m.userId === state.me.id)) return;
  clearTimeout(state.typing.get(m.userId));
  if (m.state) {
    state.typing.set(m.userId, setTimeout(() => clearTyping(m.userId), TYPING_SHOW_MS));
  } else {
    state.typing.delete(m.userId);
  }
  renderTyping();
}

function clearTyping(userId) {
  clearTimeout(state.typing.get(userId));
  state.typing.delete(userId);
  renderTyping();
}

function nameOf(userId) {
  const m = state.members.find((x) => x.userId === userId);
  if (m) return m.displayName;
  const a = state.appointment;
  if (a && a.coach.id === userId) return a.coach.displayName;
  if (a && a.client.id === userId) return a.client.displayName;
  return 'Someone';
}

function renderTyping() {
  const names = [...state.typing.keys()].map(nameOf);
  $('typing').textContent = names.length === 0 ? '' : `${names.join(' and ')} ${names.length > 1 ? 'are' : 'is'} typing…`;
}

// ---- the clock ---------------------------------------------------------------

function tickClock() {
  if (document.body.dataset.conn === 'reconnecting') showRetry();
  const box = $('countdown');
  if (state.endsAtMs === null || state.ended) {
    box.hidden = !state.ended;
    if (state.ended) $('countdown-value').textContent = 'Ended';
    return;
  }
  const left = Math.max(0, Math.round((state.endsAtMs - (Date.now() + state.skewMs)) / 1000));
  box.hidden = false;
  box.classList.toggle('soon', left <= 300);
  $('countdown-value').textContent = left > 0 ? `${formatDuration(left)} left` : 'Ending…';
}

function onTimer(m) {
  if (m.room !== state.room) return;
  if (m.endsAt) state.endsAtMs = Date.parse(m.endsAt);
  showBanner(`${formatDuration(m.remainingSec, true)} left in this session.`, 'warning');
  tickClock();
}

// ---- the end, the summary, the rating ---------------------------------------

function onEnded(m) {
  if (m.room !== state.room) return;
  enterEnded({ reason: m.reason, rateable: m.rateable, cancelled: false });
  showBanner(`The session has ended. ${endReasonSentence(m.reason)}`, 'ended');
}

function enterEnded({ reason, rateable, cancelled }) {
  const again = state.ended;
  state.ended = true;
  document.body.dataset.ended = 'true';
  stopTyping();
  $('end-btn').hidden = true;
  $('end-dialog').open && $('end-dialog').close();
  setComposerEnabled(false, cancelled ? 'This appointment was cancelled.' : 'The session has ended: the chat is closed.');
  for (const p of state.pending.values()) failPending(p, 'Not sent: the session ended');
  tickClock();
  $('after').hidden = false;
  if (!again) $('after').scrollIntoView({ block: 'nearest' });
  $('after-h').textContent = cancelled ? 'This appointment was cancelled' : 'The session has ended';
  if (reason) $('after-reason').textContent = endReasonSentence(reason);
  if (again && rateable === null) return;
  if (state.role === 'coach') {
    $('summary').hidden = false;
    if ($('summary-text').textContent === '') showSummary('pending');
    loadSessionDetails();
  } else if (state.role === 'client' && !cancelled) {
    if (rateable === true) {
      showRatingForm();
    } else {
      loadSessionDetails();
    }
  }
}

function setComposerEnabled(on, note) {
  const area = $('composer-text');
  area.disabled = !on;
  area.placeholder = on ? 'Write a message…' : note || '';
  updateCounter();
}

// GET /api/sessions/{id}: the summary's status for the coach, the rating for
// the client (after a reload, a late join, or when `summary` was missed).
async function loadSessionDetails() {
  if (!state.session || !state.session.id) return;
  let body;
  try {
    const r = await fetch(`/api/sessions/${encodeURIComponent(state.session.id)}`, {
      headers: { authorization: `Bearer ${state.token}` },
      cache: 'no-store',
    });
    if (!r.ok) return;
    body = await r.json();
  } catch {
    return; // offline: the live events still arrive after the reconnect
  }
  if (state.role === 'coach' && body.summary) {
    if ($('summary-text').textContent === '') {
      showSummary(body.summary.status, body.summary.text);
      pollSummary(body.summary.status);
    }
  } else if (state.role === 'client') {
    if (body.rating) showRated(body.rating.rating, body.rating.tip, true);
    else if (body.session && body.session.status === 'completed') showRatingForm();
  }
}

function showSummary(status, text) {
  $('summary').hidden = state.role !== 'coach';
  const sentences = {
    none: 'There is no summary: the session had no messages.',
    pending: 'The AI summary is being written…',
    running: 'The AI summary is being written…',
    failed: 'The AI summary could not be written.',
    skipped: 'AI summaries are not set up on this server.',
    done: '',
  };
  $('summary-status').textContent = sentences[status] ?? '';
  if (status === 'done' && text) $('summary-text').textContent = text;
}

// Ask again while the summary is on its way (5 s, doubling up to 60 s, at
// most 20 times): its `summary` event may be missed (a drop at the wrong
// moment), and a failure sends no event at all.
function pollSummary(status) {
  if ((status === 'pending' || status === 'running') && state.summaryPolls < 20) {
    const delay = Math.min(60000, 5000 * 2 ** state.summaryPolls);
    state.summaryPolls++;
    setTimeout(() => {
      if ($('summary-text').textContent === '') loadSessionDetails();
    }, delay);
  }
}

function showRatingForm() {
  if (!$('rated').hidden) return;
  $('rating-form').hidden = false;
}

// Light the stars up to the one chosen.
function litStars() {
  const chosen = Number(new FormData($('rating-form')).get('rating')) || 0;
  for (let i = 1; i <= 5; i++) {
    document.querySelector(`label[for="star-${i}"]`).classList.toggle('lit', i <= chosen);
  }
}

function onRate(ev) {
  ev.preventDefault();
  const form = $('rating-form');
  const rating = Number(new FormData(form).get('rating'));
  const tip = Number(new FormData(form).get('tip'));
  const comment = $('rating-comment').value.trim();
  if (!(rating >= 1 && rating <= 5)) {
    $('rating-error').textContent = 'Choose from 1 to 5 stars.';
    return;
  }
  const msg = { type: 'rate', room: state.room, rating, id: `rate-${++state.rateId}` };
  if (comment) msg.comment = comment;
  if (tip) msg.tip = tip;
  if (!state.conn.send(msg)) {
    $('rating-error').textContent = 'You are offline. Your rating is sent when you try again online.';
    return;
  }
  $('rating-error').textContent = '';
  $('rating-submit').disabled = true;
}

function onRated(m) {
  showRated(m.rating, m.tip, false);
}

function showRated(rating, tip, earlier) {
  $('rating-form').hidden = true;
  const el = $('rated');
  el.hidden = false;
  const tipText = tip ? ` and a $${tip} tip` : '';
  el.textContent = earlier
    ? `You rated this session ${rating} out of 5${tipText}. Thank you!`
    : `Thank you! You rated this session ${rating} out of 5${tipText}.`;
}

// ---- errors ----------------------------------------------------------------

function onError(m) {
  if (m.clientMsgId && state.pending.has(m.clientMsgId)) {
    const p = state.pending.get(m.clientMsgId);
    if (m.code === 'unavailable' || m.code === 'rate_limited') {
      setPending(p, 'queued');
      setTimeout(() => sendPending(p), RESEND_DELAY_MS);
      if (m.code === 'rate_limited') showBanner(errorSentence('rate_limited'));
    } else {
      failPending(p, errorSentence(m.code, 'chat'));
    }
    return;
  }
  if (m.code === 'unauthorized') {
    fatal(errorSentence('unauthorized'));
    return;
  }
  if (m.code === 'rate_limited' && !m.id && !state.joined) {
    // Refused at connect: this user has MAX_CONN_PER_USER connections open.
    fatal('This account is open in too many windows. Close some of them and reload this page.');
    return;
  }
  if (m.id === 'join') {
    if (m.code === 'unavailable' || m.code === 'internal') {
      showBanner(errorSentence(m.code));
      state.conn.ws?.close(); // reconnect with backoff
    } else if (m.code === 'not_open') {
      // Too early: ask again every minute on the open connection.
      showBanner(errorSentence('not_open'), 'warning');
      setComposerEnabled(false, 'The room is not open yet.');
      setTimeout(() => { if (state.conn.isOpen() && !state.joined) sendJoin(); }, 60000);
    } else {
      fatal(errorSentence(m.code, 'join'));
    }
    return;
  }
  if (typeof m.id === 'string' && m.id.startsWith('rate-')) {
    $('rating-submit').disabled = false;
    if (m.code === 'conflict') {
      showRated('?', null, true);
      $('rated').textContent = 'You have already rated this session. Thank you!';
    } else {
      $('rating-error').textContent = errorSentence(m.code, 'rate');
    }
    return;
  }
  if (m.id === 'end') {
    showBanner(errorSentence(m.code, 'end'));
    return;
  }
  showBanner(errorSentence(m.code));
}

// ---- banner ------------------------------------------------------------------

function showBanner(text, kind = 'error') {
  const b = $('banner');
  b.dataset.kind = kind;
  $('banner-text').textContent = text;
  b.hidden = false;
}

function hideBanner() {
  $('banner').hidden = true;
}

start();
