# shellcheck shell=bash
# tools/lib.sh: shell functions shared by tools/dev and
# tests/support/pg-fixture.sh: messages, running PostgreSQL's programs as
# the right user, and random tokens and ids. Sourced, never run; it sets
# no shell options and starts nothing.
#
# Callers may set LIB_PREFIX (default "dev") for the message prefix.

LIB_PREFIX=${LIB_PREFIX:-dev}

# say MSG...: one line to stderr, prefixed.
say() {
    printf '%s: %s\n' "$LIB_PREFIX" "$*" >&2
}

# die MSG...: say, then exit 1.
die() {
    say "$@"
    exit 1
}

is_root() {
    [[ $(id -u) -eq 0 ]]
}

# pg_bindir: print the newest /usr/lib/postgresql/<version>/bin that holds
# initdb and pg_ctl (Debian's layout; PATH has only wrappers). 1 if none.
pg_bindir() {
    local dir best="" best_ver=-1 ver
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/psql ]] || continue
        ver=${dir#/usr/lib/postgresql/}
        ver=${ver%/bin}
        [[ $ver =~ ^[0-9]+$ ]] || continue
        if ((ver > best_ver)); then
            best_ver=$ver
            best=$dir
        fi
    done
    [[ -n $best ]] || return 1
    printf '%s\n' "$best"
}

# as_user USER CMD...: run CMD as USER. As root that means runuser, from /
# so that a working directory USER cannot enter (e.g. under /root) does not
# trouble initdb or pg_ctl. As anyone else USER must be the current user.
as_user() {
    local user=$1
    shift
    if is_root && [[ $user != root ]]; then
        (cd / && runuser -u "$user" -- "$@")
    else
        "$@"
    fi
}

# rand_b64url NBYTES: NBYTES from /dev/urandom, base64url without padding.
rand_b64url() {
    head -c "$1" /dev/urandom | base64 -w 0 | tr '+/' '-_' | tr -d '='
}

# rand_alnum N: N characters of [a-z0-9], uniformly (bytes >= 252 are
# rejected so that modulo 36 has no bias).
rand_alnum() {
    local want=$1 out="" b
    local alphabet=abcdefghijklmnopqrstuvwxyz0123456789
    while ((${#out} < want)); do
        for b in $(od -An -v -tu1 -N 64 /dev/urandom); do
            ((b < 252)) || continue
            out+=${alphabet:b%36:1}
            ((${#out} < want)) || break
        done
    done
    printf '%s\n' "$out"
}

# rand_cuid: a cuid-compatible id: 'c' then 24 of [a-z0-9] (25 characters).
rand_cuid() {
    printf 'c%s\n' "$(rand_alnum 24)"
}

# proc_alive PID: 0 when PID runs (a zombie waiting to be reaped does not).
proc_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# pid_file_is_live FILE: 0 when the pid on FILE's first line is a live
# PostgreSQL process.
pid_file_is_live() {
    local pid comm
    [[ -r $1 ]] || return 1
    pid=$(head -n 1 "$1")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    proc_alive "$pid" || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == postgres || $comm == postmaster ]]
}

# pg_is_running DATA_DIR: 0 when a postmaster serves DATA_DIR. A
# postmaster.pid left by a crash names a dead process (or a zombie not yet
# reaped) or, after a reboot, someone else's: none counts as running.
pg_is_running() {
    pid_file_is_live "$1/postmaster.pid"
}

# pg_clear_stale_locks DATA_DIR SOCKET_DIR: remove the postmaster.pid and
# socket lock file a crashed server left (PostgreSQL refuses to start while
# the pid they name belongs to any process, zombies included). Call only
# when pg_is_running says no.
pg_clear_stale_locks() {
    local file
    for file in "$1/postmaster.pid" "$2/.s.PGSQL.5432.lock"; do
        if [[ -e $file ]] && ! pid_file_is_live "$file"; then
            say "removing $file, left by a server that is gone"
            rm -f -- "$file"
        fi
    done
}

# pg_start_retry LOG USER PG_CTL_ARGS...: pg_ctl start (its -l must be
# LOG), tried again for up to 10 s while the children of a crashed
# postmaster still hold its shared memory; other failures return at once.
pg_start_retry() {
    local log=$1 user=$2 try
    shift 2
    for ((try = 1; ; try++)); do
        if as_user "$user" "$@" start >/dev/null; then
            return 0
        fi
        if ((try >= 10)) ||
            ! tail -n 5 "$log" 2>/dev/null | grep -q 'pre-existing shared memory block'; then
            return 1
        fi
        say "the previous server's processes still hold its shared memory; retrying"
        sleep 1
    done
}

# pg_log_tail FILE: the last lines of a server or initdb log, to stderr.
pg_log_tail() {
    local file=$1
    if [[ -r $file ]]; then
        say "last lines of $file:"
        tail -n 25 "$file" | sed 's/^/    /' >&2
    fi
}
