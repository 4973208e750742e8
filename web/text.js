// text.js: the sentences a person reads: protocol error codes and end
// reasons in plain words, and durations ("4:05", "5 minutes").

const ERRORS = {
  bad_request: 'Something went wrong with that request. Please reload the page.',
  unauthorized: 'This link is not valid any more. Ask for a new link to your room.',
  forbidden: 'You are not a member of this coaching room.',
  not_found: 'This room does not exist. Check your link.',
  not_open: 'This room is not open yet: it opens 10 minutes before the appointment.',
  closed: 'This session is closed.',
  conflict: 'That was already done.',
  rate_limited: 'You are sending messages too fast. Wait a moment.',
  too_large: 'That message is too long.',
  unavailable: 'The service is briefly unavailable. Trying again…',
  internal: 'Something went wrong on our side. Trying again…',
};

const BY_CONTEXT = {
  chat: {
    closed: 'Not sent: the session has ended.',
    forbidden: 'Not sent: you cannot write in this room.',
    too_large: 'Not sent: the message is too long.',
    bad_request: 'Not sent: the message was not accepted.',
  },
  join: {
    closed: 'This appointment was cancelled.',
  },
  end: {
    closed: 'The session has already ended.',
    forbidden: 'Only the coach can end the session.',
  },
  rate: {
    bad_request: 'That rating was not accepted. Choose 1 to 5 stars and try again.',
    forbidden: 'Only the client can rate this session.',
    conflict: 'You have already rated this session.',
  },
};

// A sentence for an error code, optionally for what was being done.
export function errorSentence(code, context) {
  const specific = context && BY_CONTEXT[context] && BY_CONTEXT[context][code];
  return specific || ERRORS[code] || 'Something went wrong. Please reload the page.';
}

const REASONS = {
  coach: 'The coach ended it.',
  timer: 'The time is up.',
  idle: 'Nobody was connected for a while.',
  livekit: 'The video call finished.',
  admin: 'An administrator ended it.',
};

export function endReasonSentence(reason) {
  return REASONS[reason] || '';
}

// Seconds as "m:ss" (clock) or, with words, "5 minutes" / "45 seconds".
export function formatDuration(secs, words = false) {
  const s = Math.max(0, Math.round(secs));
  if (words) {
    if (s >= 120 && s % 60 === 0) return `${s / 60} minutes`;
    if (s === 60) return '1 minute';
    if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return s === 1 ? '1 second' : `${s} seconds`;
  }
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
