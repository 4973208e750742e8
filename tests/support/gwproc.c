/*
 * gwproc.c: see gwproc.h. Spawns the gateway with fork/execve, waits on
 * conditions with deadlines (never a bare sleep for synchronisation), and
 * speaks HTTP with libcurl.
 */
#include "gwproc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include <curl/curl.h>

extern char **environ;

static void report_sanitizer_findings(const struct gwproc *gp);

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Ports are picked below the kernel's ephemeral range (32768 and up on
 * Linux), so the outgoing connections other tests open at the same time
 * cannot take them between the probe and the gateway's bind. */
#define PORT_LOW  20000
#define PORT_SPAN 12000

int gwproc_free_port(void)
{
    /* From the kernel: tests forked together (Criterion's workers) drew the
     * same ports when the seed was pid ^ time (pid + 1 a millisecond
     * apart gives the same value). */
    static unsigned seed;
    if (seed == 0) {
        int fd = open("/dev/urandom", O_RDONLY);
        if (fd < 0 || read(fd, &seed, sizeof(seed)) != (ssize_t)sizeof(seed)) {
            seed = (unsigned)getpid() * 2654435761u + (unsigned)mono_ms();
        }
        if (fd >= 0) {
            close(fd);
        }
        seed |= 1u;
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        int port = PORT_LOW + (int)(rand_r(&seed) % PORT_SPAN);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                .sin_port = htons((uint16_t)port)};
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        if (fd >= 0) {
            close(fd);
        }
        if (ok) {
            return port;
        }
    }
    return -1;
}

/* environ minus the names set in env, plus env. Caller frees the array. */
static char **build_env(const char *const env[])
{
    size_t n = 0, m = 0;
    while (environ[n] != NULL) {
        n++;
    }
    while (env != NULL && env[m] != NULL) {
        m++;
    }
    char **out = calloc(n + m + 1, sizeof(*out));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int overridden = 0;
        for (size_t j = 0; j < m; j++) {
            size_t nl = strcspn(env[j], "=");
            if (strncmp(environ[i], env[j], nl) == 0 && environ[i][nl] == '=') {
                overridden = 1;
            }
        }
        if (!overridden) {
            out[k++] = environ[i];
        }
    }
    for (size_t j = 0; j < m; j++) {
        out[k++] = (char *)env[j];
    }
    return out;
}

static pid_t spawn(struct gwproc *gp, const char *const env[], const char *const args[])
{
    const char *bin = getenv("COACH_GATEWAY_BIN");
    if (bin == NULL) {
        fprintf(stderr, "gwproc: COACH_GATEWAY_BIN is not set\n");
        return -1;
    }
    snprintf(gp->log_path, sizeof(gp->log_path), "/tmp/coach-gw-%d-%d.log", (int)getpid(),
             gp->port);
    const char *argv[32] = {bin};
    size_t a = 1;
    while (args != NULL && args[a - 1] != NULL && a < 31) {
        argv[a] = args[a - 1];
        a++;
    }
    char **envp = build_env(env);
    pid_t pid = fork();
    if (pid == 0) {
        /* Die with the test process, even when a failed assertion ends it
         * before gwproc_stop: no gateway outlives its test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(gp->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
            close(fd);
        }
        execve(bin, (char *const *)argv, envp);
        _exit(127);
    }
    free(envp);
    return pid;
}

int gwproc_run(struct gwproc *gp, const char *const env[], const char *const args[])
{
    gp->port = gwproc_free_port();
    gp->pid = spawn(gp, env, args);
    if (gp->pid < 0) {
        return -1;
    }
    int st = 0;
    if (waitpid(gp->pid, &st, 0) < 0) {
        return -1;
    }
    gp->pid = 0;
    report_sanitizer_findings(gp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* 1 when the socket listening on 127.0.0.1:port is one of pid's open
 * files: the /healthz that answered is this gateway's, not that of
 * another test's gateway that took the same port first. */
static int owns_port(pid_t pid, int port)
{
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    char line[512];
    unsigned long inode = 0;
    for (size_t t = 0; t < 2 && inode == 0; t++) {
        FILE *f = fopen(tables[t], "r");
        if (f == NULL) {
            return 1; /* cannot tell: trust the answer */
        }
        while (inode == 0 && fgets(line, sizeof(line), f) != NULL) {
            unsigned lport = 0, st = 0;
            unsigned long ino = 0;
            if (sscanf(line,
                       " %*d: %*[0-9A-F]:%X %*[0-9A-F]:%*X %X %*X:%*X %*X:%*X %*X %*u %*u %lu",
                       &lport, &st, &ino) == 3 &&
                (int)lport == port && st == 0x0A /* LISTEN */) {
                inode = ino;
            }
        }
        fclose(f);
    }
    if (inode == 0) {
        return 0;
    }
    char dir[64], want[64], path[320], got[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return 0;
    }
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, got, sizeof(got) - 1);
        if (n > 0) {
            got[n] = '\0';
            found = strcmp(got, want) == 0;
        }
    }
    closedir(d);
    return found;
}

/* One attempt on a fresh port: 0 up, 1 exited because the port was taken
 * meanwhile (another process got it between the probe and the bind), -1
 * failed. */
static int start_once(struct gwproc *gp, const char *const env[], const char *const args[])
{
    gp->port = gwproc_free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "LISTEN=127.0.0.1:%d", gp->port);
    const char *all[64];
    size_t n = 0;
    all[n++] = listen;
    while (env != NULL && env[n - 1] != NULL && n < 63) {
        all[n] = env[n - 1];
        n++;
    }
    all[n] = NULL;
    gp->tls = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(all[i], "TLS_CERT=", 9) == 0) {
            gp->tls = 1;
        }
    }
    gp->pid = spawn(gp, all, args);
    if (gp->pid < 0) {
        return -1;
    }
    long long deadline = mono_ms() + 20000;
    while (mono_ms() < deadline) {
        long status = 0;
        char body[64];
        int rc = gp->tls ? https_get(gp->port, "/healthz", &status, body, sizeof(body))
                         : http_get(gp->port, "/healthz", &status, body, sizeof(body));
        if (rc == 0 && status == 200 && owns_port(gp->pid, gp->port)) {
            return 0;
        }
        if (waitpid(gp->pid, NULL, WNOHANG) == gp->pid) {
            gp->pid = 0;
            char *log = gwproc_log(gp);
            /* our own probe's message, or lws's when the port went
             * between the probe and its bind (errno 98: EADDRINUSE) */
            int taken = log != NULL && (strstr(log, "already in use") != NULL ||
                                        strstr(log, "ERROR on binding") != NULL);
            free(log);
            return taken ? 1 : -1;
        }
        nap_ms(20);
    }
    return -1;
}

int gwproc_start(struct gwproc *gp, const char *const env[], const char *const args[])
{
    int rc = 1;
    for (int attempt = 0; attempt < 5 && rc == 1; attempt++) {
        rc = start_once(gp, env, args);
    }
    return rc == 0 ? 0 : -1;
}

/* The gateway runs with sanitizers too and its stderr goes to its log:
 * repeat any finding on the test's stderr, where ctest looks for it. */
static void report_sanitizer_findings(const struct gwproc *gp)
{
    char *log = gwproc_log(gp);
    if (log != NULL && (strstr(log, "Sanitizer") != NULL || strstr(log, "runtime error:"))) {
        fprintf(stderr, "gwproc: the gateway reported a sanitizer finding:\n%s\n", log);
    }
    free(log);
}

int gwproc_stop(struct gwproc *gp, int sig)
{
    if (gp->pid <= 0) {
        return -1;
    }
    kill(gp->pid, sig);
    long long deadline = mono_ms() + 20000;
    int st = 0;
    while (waitpid(gp->pid, &st, WNOHANG) == 0) {
        if (mono_ms() > deadline) {
            kill(gp->pid, SIGKILL);
            waitpid(gp->pid, &st, 0);
            break;
        }
        nap_ms(10);
    }
    gp->pid = 0;
    report_sanitizer_findings(gp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

char *gwproc_log(const struct gwproc *gp)
{
    FILE *f = fopen(gp->log_path, "r");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    size_t n = buf != NULL ? fread(buf, 1, cap - 1, f) : 0;
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
    }
    return buf;
}

struct sink {
    char *buf;
    size_t cap, len;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink *s = arg;
    size_t n = size * nmemb;
    size_t room = s->cap > s->len + 1 ? s->cap - s->len - 1 : 0;
    size_t take = n < room ? n : room;
    memcpy(s->buf + s->len, data, take);
    s->len += take;
    s->buf[s->len] = '\0';
    return n;
}

static int get(const char *scheme, int port, const char *path, long *status, char *body, size_t cap)
{
    char url[256];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", scheme, port, path);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return -1;
    }
    struct sink s = {body, cap, 0};
    body[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    }
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

int http_get(int port, const char *path, long *status, char *body, size_t cap)
{
    return get("http", port, path, status, body, cap);
}

int https_get(int port, const char *path, long *status, char *body, size_t cap)
{
    return get("https", port, path, status, body, cap);
}

size_t http_body_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_body *b = arg;
    size_t n = size * nmemb;
    size_t room = sizeof(b->buf) - 1 - b->len;
    size_t take = n < room ? n : room;
    memcpy(b->buf + b->len, data, take);
    b->len += take;
    b->buf[b->len] = '\0';
    return n;
}

CURL *http_handle(int port, const char *method, const char *path, const char *token, const char *ua,
                  const char *json, struct http_body *out, struct curl_slist **hdrs)
{
    char url[256], auth[600];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    memset(out, 0, sizeof(*out));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (json != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    }
    if (ua != NULL) {
        curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    *hdrs = h;
    return c;
}

long http_request(int port, const char *method, const char *path, const char *token, const char *ua,
                  const char *json, struct http_body *out)
{
    struct curl_slist *h = NULL;
    CURL *c = http_handle(port, method, path, token, ua, json, out, &h);
    long status = 0;
    if (c != NULL && curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

static int fixture(struct pgserver *pg, const char *verb)
{
    const char *script = getenv("COACH_PG_FIXTURE");
    if (script == NULL) {
        fprintf(stderr, "gwproc: COACH_PG_FIXTURE is not set\n");
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        execl(script, script, verb, pg->state_dir, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "gwproc: pg-fixture.sh %s failed\n", verb);
        return -1;
    }
    return 0;
}

/* State dirs of servers this test process started and has not destroyed
 * (copies: a failed assertion leaves the test's own struct behind):
 * destroyed at exit, so no PostgreSQL outlives its test. */
static char live_dirs[8][128];

static void destroy_leftovers(void)
{
    for (size_t i = 0; i < sizeof(live_dirs) / sizeof(live_dirs[0]); i++) {
        if (live_dirs[i][0] != '\0') {
            struct pgserver pg = {0};
            memcpy(pg.state_dir, live_dirs[i], sizeof(pg.state_dir));
            pgserver_destroy(&pg);
        }
    }
}

static void track(const char *dir, int live)
{
    static int registered;
    if (!registered) {
        registered = atexit(destroy_leftovers) == 0;
    }
    for (size_t i = 0; i < sizeof(live_dirs) / sizeof(live_dirs[0]); i++) {
        if (live ? live_dirs[i][0] == '\0' : strcmp(live_dirs[i], dir) == 0) {
            snprintf(live_dirs[i], sizeof(live_dirs[i]), "%s", live ? dir : "");
            return;
        }
    }
}

int pgserver_start(struct pgserver *pg)
{
    if (pg->state_dir[0] == '\0') {
        snprintf(pg->state_dir, sizeof(pg->state_dir), "/tmp/coach-pgstate-XXXXXX");
        if (mkdtemp(pg->state_dir) == NULL) {
            return -1;
        }
        track(pg->state_dir, 1);
    }
    if (fixture(pg, "start") != 0) {
        return -1;
    }
    char path[256];
    snprintf(path, sizeof(path), "%s/conninfo", pg->state_dir);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(pg->conninfo, sizeof(pg->conninfo), f) == NULL) {
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    fclose(f);
    pg->conninfo[strcspn(pg->conninfo, "\n")] = '\0';
    return 0;
}

int pgserver_stop(struct pgserver *pg)
{
    return fixture(pg, "stop");
}

int pgserver_destroy(struct pgserver *pg)
{
    track(pg->state_dir, 0);
    int rc = fixture(pg, "destroy");
    rmdir(pg->state_dir);
    return rc;
}
