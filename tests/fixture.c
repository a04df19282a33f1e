/* fixture.c -- real servers on free loopback ports for the integration tests.
 *
 * An env is a temp dir plus the processes started for one test: redis-server,
 * mosquitto and whatever the test spawns. Every process is a child of the test
 * process and is stopped by PID: SIGTERM, SIGKILL after a grace period, then
 * reaped.
 *
 * The one idea needed to read this file is the guardian. Check runs each test
 * in a forked child and ends it with _exit() when an assertion fails, so no
 * teardown or atexit handler runs. fx_start therefore forks a guardian into a
 * session of its own and keeps the write end of a pipe to it; each spawned
 * PID is announced on the pipe ("+PID\n") and withdrawn once reaped
 * ("-PID\n"). When the test process dies, however it dies, the kernel closes
 * the pipe; the guardian reads EOF, stops the PIDs still announced and removes
 * the temp dir. After a clean fx_stop it finds nothing left to do.
 *
 * Waiting is always bounded: polls of waitid(WNOWAIT), poll() on sockets, and
 * condition variables with CLOCK_MONOTONIC deadlines. */
#include "tests/fixture.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define LOOPBACK "127.0.0.1"
#define START_ATTEMPTS 3 /* a freshly chosen port may be taken before the server binds it */
#define ACK_RING 1024

struct fx_env {
    char dir[64];
    int redis_port;
    int mqtt_port;
    pid_t redis_pid;
    pid_t mqtt_pid;
    pid_t guardian_pid;
    int guardian_fd; /* write end of the guardian's pipe */
    pid_t *procs;    /* every live child started through this env */
    int nprocs;
    int capprocs;
    int bidders; /* bidder-K.log counter */
    redisContext *redis;
    fx_sub *subs;
    fx_mqtt *mqtts;
    fx_env *next; /* all live envs of this process, for fx_wait_exit */
    /* Set by fx_redis_reconfigure / fx_mqtt_reconfigure; NULL: fx_start's servers. */
    char **redis_args;    /* NULL-terminated, appended to redis-server's arguments */
    char *redis_username; /* AUTH [username] password on the fixture's own connections */
    char *redis_password;
    char *mqtt_conf_head; /* mosquitto.conf lines before the fixture's listener */
    char *mqtt_conf_tail; /* ... and after the fixture's lines */
};

struct fx_sub {
    fx_env *env;
    char *pattern;
    redisContext *c; /* NULL while disconnected */
    fx_msg *head;
    fx_msg *tail;
    int nbuffered;
    fx_sub *next;
};

struct fx_mqtt {
    fx_env *env;
    struct mosquitto *mosq;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int connected;
    int conn_rc;
    long outstanding; /* published, not yet sent (qos 0) or acknowledged */
    int acked[ACK_RING];
    unsigned acked_count;
    fx_mqtt *next;
};

static fx_env *live_envs;

/* ---- small helpers ---------------------------------------------------- */

int64_t fx_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fx_sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static char *xstrdup(const char *s) {
    char *d = strdup(s);
    if (d == NULL) ck_abort_msg("fixture: out of memory");
    return d;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL) ck_abort_msg("fixture: out of memory");
    return p;
}

static char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static void set_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Removes path and everything below it; never follows symlinks. */
static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d != NULL) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
                char child[4096];
                int n = snprintf(child, sizeof child, "%s/%s", path, e->d_name);
                if (n > 0 && (size_t)n < sizeof child) rm_rf(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* State letter and start time (clock ticks since boot) of pid from
 * /proc/PID/stat. Returns 0, or -1 when the process does not exist. */
static int proc_stat(pid_t pid, char *state, unsigned long long *start) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    /* "pid (comm) S f4 ... f22=starttime"; comm may hold spaces and ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ') return -1;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22 && p != NULL; field++) {
        p = strchr(p, ' ');
        if (p != NULL) p++;
    }
    *start = p != NULL ? strtoull(p, NULL, 10) : 0;
    return 0;
}

int fx_pid_alive(pid_t pid) {
    char state;
    unsigned long long start;
    if (pid <= 0 || proc_stat(pid, &state, &start) != 0) return 0;
    return state != 'Z' && state != 'X';
}

const char *fx_getenv(const char *name) {
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        ck_abort_msg("fixture: environment variable %s is not set (run the test through "
                     "meson test)",
                     name);
    return v;
}

/* ---- ports, suite runner ---------------------------------------------- */

int fx_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) ck_abort_msg("fixture: socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        int e = errno;
        close(fd);
        ck_abort_msg("fixture: cannot bind 127.0.0.1:0: %s", strerror(e));
    }
    close(fd);
    return ntohs(a.sin_port);
}

int fx_run_suite(Suite *s) {
#if defined(__linux__) && defined(PR_SET_CHILD_SUBREAPER)
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#endif
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, getenv("CK_VERBOSITY") != NULL ? CK_ENV : CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    /* Guardians of failed tests may still be cleaning up; they and anything
     * orphaned were re-parented to us. */
    int64_t deadline = fx_now_ms() + 5000;
    for (;;) {
        pid_t p = waitpid(-1, NULL, WNOHANG);
        if (p < 0 || fx_now_ms() >= deadline) break;
        if (p == 0) fx_sleep_ms(10);
    }
    return failed == 0 ? 0 : 1;
}

/* ---- the guardian ------------------------------------------------------ */

#define GUARD_MAX 4096

typedef struct guard_pid {
    pid_t pid;
    unsigned long long start;
} guard_pid;

static int guard_alive(const guard_pid *g) {
    char state;
    unsigned long long start;
    if (proc_stat(g->pid, &state, &start) != 0) return 0;
    return state != 'Z' && state != 'X' && start == g->start;
}

static void guard_line(guard_pid *gp, int *n, const char *line) {
    pid_t pid = (pid_t)strtol(line + 1, NULL, 10);
    if (pid <= 0) return;
    if (line[0] == '+' && *n < GUARD_MAX) {
        char state;
        unsigned long long start;
        if (proc_stat(pid, &state, &start) == 0) gp[(*n)++] = (guard_pid){pid, start};
    } else if (line[0] == '-') {
        for (int i = 0; i < *n; i++) {
            if (gp[i].pid == pid) {
                gp[i] = gp[--*n];
                break;
            }
        }
    }
}

static void guard_stop_all(guard_pid *gp, int n) {
    for (int i = 0; i < n; i++) {
        if (guard_alive(&gp[i])) {
            kill(gp[i].pid, SIGTERM);
            kill(gp[i].pid, SIGCONT);
        }
    }
    for (int round = 0; round < 2; round++) {
        int64_t deadline = fx_now_ms() + FX_STOP_GRACE_MS;
        for (;;) {
            int alive = 0;
            for (int i = 0; i < n; i++)
                alive += guard_alive(&gp[i]);
            if (alive == 0) return;
            if (fx_now_ms() >= deadline) break;
            fx_sleep_ms(10);
        }
        for (int i = 0; i < n; i++) {
            if (guard_alive(&gp[i])) kill(gp[i].pid, SIGKILL);
        }
    }
}

static void guardian_main(int rfd, const char *dir) {
    static guard_pid gp[GUARD_MAX];
    int n = 0;
    setsid(); /* out of the test's process group: Check's killpg spares us */
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
    }
    long maxfd = sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536) maxfd = 65536;
    for (int fd = 3; fd < maxfd; fd++) {
        if (fd != rfd) close(fd);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN);

    char buf[4096];
    size_t used = 0;
    for (;;) {
        ssize_t r = read(rfd, buf + used, sizeof buf - 1 - used);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        used += (size_t)r;
        buf[used] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            guard_line(gp, &n, line);
            line = nl + 1;
        }
        used = strlen(line);
        memmove(buf, line, used);
        if (used == sizeof buf - 1) used = 0; /* garbage without newline: drop */
    }
    guard_stop_all(gp, n);
    rm_rf(dir);
    _exit(0);
}

static void guard_send(fx_env *env, char op, pid_t pid) {
    if (env->guardian_fd < 0) return;
    char line[32];
    int len = snprintf(line, sizeof line, "%c%d\n", op, (int)pid);
    write_all(env->guardian_fd, line, (size_t)len);
}

static void start_guardian(fx_env *env) {
    int p[2];
    if (pipe(p) != 0) ck_abort_msg("fixture: pipe: %s", strerror(errno));
    set_cloexec(p[0]);
    set_cloexec(p[1]);
    pid_t pid = fork();
    if (pid < 0) ck_abort_msg("fixture: fork: %s", strerror(errno));
    if (pid == 0) {
        close(p[1]);
        guardian_main(p[0], env->dir);
    }
    close(p[0]);
    env->guardian_pid = pid;
    env->guardian_fd = p[1];
}

/* ---- processes --------------------------------------------------------- */

static void procs_add(fx_env *env, pid_t pid) {
    if (env->nprocs == env->capprocs) {
        int cap = env->capprocs ? env->capprocs * 2 : 16;
        pid_t *p = realloc(env->procs, (size_t)cap * sizeof *p);
        if (p == NULL) ck_abort_msg("fixture: out of memory");
        env->procs = p;
        env->capprocs = cap;
    }
    env->procs[env->nprocs++] = pid;
    guard_send(env, '+', pid);
}

/* Forgets pid in whichever env owns it. */
static void procs_forget(pid_t pid) {
    for (fx_env *env = live_envs; env != NULL; env = env->next) {
        for (int i = 0; i < env->nprocs; i++) {
            if (env->procs[i] == pid) {
                env->procs[i] = env->procs[--env->nprocs];
                guard_send(env, '-', pid);
                if (env->redis_pid == pid) env->redis_pid = 0;
                if (env->mqtt_pid == pid) env->mqtt_pid = 0;
                return;
            }
        }
    }
}

/* Highest open descriptor of this process, so a child can close the rest. */
static int max_open_fd(void) {
    int max = 2;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return 1023;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (fd > max) max = fd;
    }
    closedir(d);
    return max;
}

pid_t fx_spawn(fx_env *env, const char *const argv[], const char *log_name) {
    char *log_path = fx_path(env, log_name);
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) ck_abort_msg("fixture: cannot open %s: %s", log_path, strerror(errno));
    free(log_path);
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int errp[2]; /* the child reports a failed exec through it */
    if (null_fd < 0 || pipe(errp) != 0) ck_abort_msg("fixture: open/pipe: %s", strerror(errno));
    set_cloexec(errp[0]);
    set_cloexec(errp[1]);
    int maxfd = max_open_fd() + 16;

    pid_t pid = fork();
    if (pid < 0) ck_abort_msg("fixture: fork: %s", strerror(errno));
    if (pid == 0) {
        /* Only async-signal-safe calls until exec; _exit, never exit. */
        dup2(null_fd, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        for (int fd = 3; fd <= maxfd; fd++) {
            if (fd != errp[1]) close(fd);
        }
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        for (int sig = 1; sig < 32; sig++) {
            if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &sa, NULL);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(argv[0], (char *const *)argv);
        int e = errno;
        write_all(errp[1], &e, sizeof e);
        _exit(127);
    }
    close(errp[1]);
    close(log_fd);
    close(null_fd);
    int exec_errno = 0;
    ssize_t r;
    while ((r = read(errp[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {
    }
    close(errp[0]);
    if (r > 0) {
        waitpid(pid, NULL, 0);
        ck_abort_msg("fixture: cannot execute %s: %s", argv[0], strerror(exec_errno));
    }
    procs_add(env, pid);
    return pid;
}

int fx_kill(pid_t pid, int sig) {
    if (pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    return kill(pid, sig);
}

/* 1 when child pid has exited (not reaped yet), 0 when running, -1 on error. */
static int child_exited(pid_t pid) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) return -1;
    return si.si_pid == pid;
}

int fx_wait_exit(pid_t pid, int timeout_ms, int *status) {
    int64_t deadline = fx_now_ms() + timeout_ms;
    for (;;) {
        int ex = child_exited(pid);
        if (ex < 0) return -1;
        if (ex > 0) break;
        if (fx_now_ms() >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        fx_sleep_ms(2);
    }
    /* Tell the guardian first: until waitpid the PID cannot be reused. */
    procs_forget(pid);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (status != NULL) *status = st;
    return 0;
}

/* SIGTERM (and SIGCONT, in case it was stopped) to every pid, SIGKILL to
 * those still running after the grace period; all reaped. */
static void stop_pids(const pid_t *pids, int n) {
    for (int i = 0; i < n; i++) {
        if (child_exited(pids[i]) < 0) {
            procs_forget(pids[i]); /* reaped behind our back: its PID may be reused */
            continue;
        }
        kill(pids[i], SIGTERM);
        kill(pids[i], SIGCONT);
    }
    int64_t deadline = fx_now_ms() + FX_STOP_GRACE_MS;
    for (int i = 0; i < n; i++) {
        int left = (int)(deadline - fx_now_ms());
        if (fx_wait_exit(pids[i], left > 0 ? left : 0, NULL) != 0 && errno == ETIMEDOUT) {
            kill(pids[i], SIGKILL);
            fx_wait_exit(pids[i], FX_STOP_GRACE_MS, NULL);
        }
    }
}

static void stop_one(pid_t pid) {
    if (pid > 0) stop_pids(&pid, 1);
}

/* ---- files ------------------------------------------------------------- */

char *fx_path(const fx_env *env, const char *name) {
    return xasprintf("%s/%s", env->dir, name);
}

char *fx_write_file(const fx_env *env, const char *name, const char *text) {
    char *path = fx_path(env, name);
    FILE *f = fopen(path, "w");
    if (f == NULL) ck_abort_msg("fixture: cannot create %s: %s", path, strerror(errno));
    size_t len = strlen(text);
    int bad = fwrite(text, 1, len, f) != len;
    bad |= fclose(f) != 0;
    if (bad) ck_abort_msg("fixture: cannot write %s", path);
    return path;
}

char *fx_read_file(const fx_env *env, const char *name, size_t *len) {
    char *path = fx_path(env, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0) return NULL;
    size_t cap = 4096, used = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (used + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (b == NULL) {
                free(buf);
                close(fd);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + used, cap - 1 - used);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        used += (size_t)r;
    }
    close(fd);
    buf[used] = '\0';
    if (len != NULL) *len = used;
    return buf;
}

void fx_dump_log(const fx_env *env, const char *name) {
    size_t len = 0;
    char *text = fx_read_file(env, name, &len);
    fprintf(stderr, "----- %s/%s -----\n", env->dir, name);
    if (text != NULL)
        fwrite(text, 1, len, stderr);
    else
        fprintf(stderr, "(cannot read)\n");
    fprintf(stderr, "----- end of %s -----\n", name);
    fflush(stderr);
    free(text);
}

/* ---- servers ----------------------------------------------------------- */

static int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Connects to the env's redis-server on port and, when the env has Redis
 * credentials (fx_redis_reconfigure), authenticates. NULL on any failure. */
static redisContext *redis_connect(const fx_env *env, int port, int timeout_ms) {
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(LOOPBACK, port, tv);
    if (c == NULL) return NULL;
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    set_cloexec(c->fd);
    if (env->redis_password != NULL) {
        redisSetTimeout(c, tv);
        redisReply *r =
            env->redis_username != NULL
                ? redisCommand(c, "AUTH %s %s", env->redis_username, env->redis_password)
                : redisCommand(c, "AUTH %s", env->redis_password);
        int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        if (r != NULL) freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static int redis_ready(fx_env *env, int port) {
    redisContext *c = redis_connect(env, port, 200);
    if (c == NULL) return 0;
    struct timeval tv = {.tv_sec = 0, .tv_usec = 500000};
    redisSetTimeout(c, tv);
    redisReply *r = redisCommand(c, "PING");
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r != NULL) freeReplyObject(r);
    redisFree(c);
    return ok;
}

static int mqtt_ready(fx_env *env, int port) {
    (void)env;
    int fd = tcp_connect(port);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}

int fx_wait_port(int port, int timeout_ms) {
    int64_t deadline = fx_now_ms() + timeout_ms;
    for (;;) {
        int fd = tcp_connect(port);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (fx_now_ms() >= deadline) return -1;
        fx_sleep_ms(10);
    }
}

/* Waits until ready(port) or the process exits or the start timeout passes.
 * Returns 1 ready, 0 exited, -1 timed out. */
static int wait_ready(fx_env *env, pid_t pid, int port, int (*ready)(fx_env *, int)) {
    int64_t deadline = fx_now_ms() + FX_START_TIMEOUT_MS;
    for (;;) {
        if (child_exited(pid) != 0) return 0;
        if (ready(env, port)) return child_exited(pid) == 0 ? 1 : 0;
        if (fx_now_ms() >= deadline) return -1;
        fx_sleep_ms(10);
    }
}

static pid_t spawn_redis(fx_env *env) {
    char port[16];
    snprintf(port, sizeof port, "%d", env->redis_port);
    /* clang-format off */
    const char *base[] = {"redis-server", "--port", port, "--bind", LOOPBACK,
                          "--save", "", "--appendonly", "no", "--dir", env->dir,
                          "--daemonize", "no"};
    /* clang-format on */
    size_t nbase = sizeof base / sizeof base[0], nextra = 0;
    while (env->redis_args != NULL && env->redis_args[nextra] != NULL)
        nextra++;
    const char **argv = xmalloc((nbase + nextra + 1) * sizeof *argv);
    memcpy(argv, base, sizeof base);
    for (size_t i = 0; i < nextra; i++)
        argv[nbase + i] = env->redis_args[i];
    argv[nbase + nextra] = NULL;
    pid_t pid = fx_spawn(env, argv, "redis.log");
    free(argv);
    return pid;
}

static pid_t spawn_mqtt(fx_env *env) {
    char *conf = xasprintf("%s"
                           "listener %d 127.0.0.1\n"
                           "allow_anonymous true\n"
                           "max_queued_messages 1000000\n"
                           "persistence false\n"
                           "set_tcp_nodelay true\n"
                           "%s",
                           env->mqtt_conf_head != NULL ? env->mqtt_conf_head : "", env->mqtt_port,
                           env->mqtt_conf_tail != NULL ? env->mqtt_conf_tail : "");
    free(fx_write_file(env, "mosquitto.conf", conf));
    free(conf);
    char *path = fx_path(env, "mosquitto.conf");
    const char *argv[] = {"mosquitto", "-c", path, NULL};
    pid_t pid = fx_spawn(env, argv, "mosquitto.log");
    free(path);
    return pid;
}

/* Starts one server and waits for it. With retry_ports, a server that exits
 * early (its port was taken) is tried again on another free port. */
static pid_t start_server(fx_env *env, int *port, pid_t (*spawn)(fx_env *),
                          int (*ready)(fx_env *, int), const char *what, const char *log,
                          int retry_ports) {
    int attempts = retry_ports ? START_ATTEMPTS : 1;
    for (int i = 0; i < attempts; i++) {
        pid_t pid = spawn(env);
        int r = wait_ready(env, pid, *port, ready);
        if (r == 1) return pid;
        stop_one(pid);
        if (r < 0 || i + 1 == attempts) {
            fx_dump_log(env, log);
            ck_abort_msg("fixture: %s on 127.0.0.1:%d %s (log above)", what, *port,
                         r < 0 ? "was not ready within 5 s" : "exited at start");
        }
        int other;
        do {
            other = fx_free_port();
        } while (other == env->redis_port || other == env->mqtt_port);
        *port = other;
    }
    return 0; /* not reached */
}

static void redis_launch(fx_env *env, int retry_ports) {
    env->redis_pid = start_server(env, &env->redis_port, spawn_redis, redis_ready, "redis-server",
                                  "redis.log", retry_ports);
}

static void mqtt_launch(fx_env *env, int retry_ports) {
    env->mqtt_pid = start_server(env, &env->mqtt_port, spawn_mqtt, mqtt_ready, "mosquitto",
                                 "mosquitto.log", retry_ports);
}

fx_env *fx_start(void) {
    signal(SIGPIPE, SIG_IGN);
    fx_env *env = xmalloc(sizeof *env);
    memset(env, 0, sizeof *env);
    env->guardian_fd = -1;
    snprintf(env->dir, sizeof env->dir, "/tmp/rtb-fx-XXXXXX");
    if (mkdtemp(env->dir) == NULL) ck_abort_msg("fixture: mkdtemp: %s", strerror(errno));
    start_guardian(env);
    env->next = live_envs;
    live_envs = env;

    env->redis_port = fx_free_port();
    do {
        env->mqtt_port = fx_free_port();
    } while (env->mqtt_port == env->redis_port);
    redis_launch(env, 1);
    mqtt_launch(env, 1);
    return env;
}

static void sub_disconnect(fx_sub *sub);
static int sub_connect(fx_sub *sub);

void fx_redis_stop(fx_env *env) {
    if (env->redis != NULL) {
        redisFree(env->redis);
        env->redis = NULL;
    }
    for (fx_sub *s = env->subs; s != NULL; s = s->next)
        sub_disconnect(s);
    stop_one(env->redis_pid);
    env->redis_pid = 0;
}

void fx_redis_start(fx_env *env) {
    fx_redis_stop(env);
    redis_launch(env, 0);
    for (fx_sub *s = env->subs; s != NULL; s = s->next) {
        if (!sub_connect(s))
            ck_abort_msg("fixture: subscriber %s cannot reconnect to redis", s->pattern);
    }
}

static char *strdup_or_null(const char *s) {
    return s != NULL ? xstrdup(s) : NULL;
}

static void free_redis_options(fx_env *env) {
    for (int i = 0; env->redis_args != NULL && env->redis_args[i] != NULL; i++)
        free(env->redis_args[i]);
    free(env->redis_args);
    free(env->redis_username);
    free(env->redis_password);
    env->redis_args = NULL;
    env->redis_username = env->redis_password = NULL;
}

static void free_mqtt_options(fx_env *env) {
    free(env->mqtt_conf_head);
    free(env->mqtt_conf_tail);
    env->mqtt_conf_head = env->mqtt_conf_tail = NULL;
}

void fx_redis_reconfigure(fx_env *env, const char *const extra_args[], const char *username,
                          const char *password) {
    fx_redis_stop(env); /* with the old credentials: nothing to AUTH any more */
    free_redis_options(env);
    int n = 0;
    while (extra_args != NULL && extra_args[n] != NULL)
        n++;
    if (n > 0) {
        env->redis_args = xmalloc((size_t)(n + 1) * sizeof *env->redis_args);
        for (int i = 0; i < n; i++)
            env->redis_args[i] = xstrdup(extra_args[i]);
        env->redis_args[n] = NULL;
    }
    env->redis_username = strdup_or_null(username);
    env->redis_password = strdup_or_null(password);
    fx_redis_start(env);
}

void fx_mqtt_reconfigure(fx_env *env, const char *head, const char *tail) {
    free_mqtt_options(env);
    env->mqtt_conf_head = strdup_or_null(head);
    env->mqtt_conf_tail = strdup_or_null(tail);
    fx_mqtt_start(env);
}

void fx_mqtt_stop(fx_env *env) {
    stop_one(env->mqtt_pid);
    env->mqtt_pid = 0;
}

void fx_mqtt_start(fx_env *env) {
    fx_mqtt_stop(env);
    mqtt_launch(env, 0);
}

void fx_stop(fx_env *env) {
    if (env == NULL) return;
    while (env->subs != NULL)
        fx_sub_stop(env->subs);
    while (env->mqtts != NULL)
        fx_mqtt_close(env->mqtts);
    if (env->redis != NULL) redisFree(env->redis);
    env->redis = NULL;

    /* Programs first (an exchange may flush results to Redis on SIGTERM),
     * then the servers. */
    int n = 0;
    pid_t *pids = xmalloc((size_t)(env->nprocs + 1) * sizeof *pids);
    for (int i = 0; i < env->nprocs; i++) {
        if (env->procs[i] != env->redis_pid && env->procs[i] != env->mqtt_pid)
            pids[n++] = env->procs[i];
    }
    stop_pids(pids, n);
    stop_one(env->mqtt_pid);
    stop_one(env->redis_pid);
    /* Whatever is left refused to die even to SIGKILL within the grace. */
    memcpy(pids, env->procs, (size_t)env->nprocs * sizeof *pids);
    stop_pids(pids, env->nprocs);
    free(pids);

    /* EOF tells the guardian we are done; it finds nothing left to stop. */
    close(env->guardian_fd);
    env->guardian_fd = -1;
    int64_t deadline = fx_now_ms() + FX_STOP_GRACE_MS;
    while (child_exited(env->guardian_pid) == 0 && fx_now_ms() < deadline)
        fx_sleep_ms(2);
    if (child_exited(env->guardian_pid) == 0) kill(env->guardian_pid, SIGKILL);
    waitpid(env->guardian_pid, NULL, 0);
    rm_rf(env->dir);
    for (fx_env **p = &live_envs; *p != NULL; p = &(*p)->next) {
        if (*p == env) {
            *p = env->next;
            break;
        }
    }
    free(env->procs);
    free_redis_options(env);
    free_mqtt_options(env);
    free(env);
}

const char *fx_dir(const fx_env *env) {
    return env->dir;
}

int fx_redis_port(const fx_env *env) {
    return env->redis_port;
}

int fx_mqtt_port(const fx_env *env) {
    return env->mqtt_port;
}

pid_t fx_redis_pid(const fx_env *env) {
    return env->redis_pid;
}

pid_t fx_mqtt_pid(const fx_env *env) {
    return env->mqtt_pid;
}

/* ---- bidder ------------------------------------------------------------ */

/* The value of key in a "k=v,k=v" spec, copied into out; 0 when absent. */
static int spec_value(const char *spec, const char *key, char *out, size_t outlen) {
    size_t klen = strlen(key);
    const char *p = spec;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t vlen = strcspn(v, ",");
            if (vlen >= outlen) vlen = outlen - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return 1;
        }
        p = strchr(p, ',');
        if (p != NULL) p++;
    }
    return 0;
}

/* Fills ports[i] from the "listening <id> 127.0.0.1:<port>" lines of text.
 * Returns how many of the n ids have a port. */
static int parse_listening(const char *text, char (*ids)[128], int n, int *ports) {
    int found = 0;
    for (const char *line = text; line != NULL && *line != '\0';) {
        char id[128], addr[128];
        if (strncmp(line, "listening ", 10) == 0 &&
            sscanf(line, "listening %127s %127s", id, addr) == 2 &&
            strncmp(addr, LOOPBACK ":", sizeof LOOPBACK) == 0) {
            int port = atoi(addr + sizeof LOOPBACK);
            for (int i = 0; i < n; i++) {
                if (ports[i] == 0 && strcmp(ids[i], id) == 0 && port > 0) {
                    ports[i] = port;
                    break;
                }
            }
        }
        line = strchr(line, '\n');
        if (line != NULL) line++;
    }
    for (int i = 0; i < n; i++)
        found += ports[i] > 0;
    return found;
}

pid_t fx_spawn_bidder_ex(fx_env *env, const char *const extra_args[], const char *const adv_specs[],
                         int n, int ports_out[]) {
    const char *bin = fx_getenv("RTB_BIDDER");
    if (access(bin, X_OK) != 0)
        ck_abort_msg("fixture: RTB_BIDDER=%s is not an executable: %s", bin, strerror(errno));
    ck_assert_msg(n > 0, "fixture: fx_spawn_bidder needs at least one advertiser");

    int nextra = 0;
    while (extra_args != NULL && extra_args[nextra] != NULL)
        nextra++;
    const char **argv = xmalloc((size_t)(4 + nextra + 2 * n) * sizeof *argv);
    char **specs = xmalloc((size_t)n * sizeof *specs);
    char(*ids)[128] = xmalloc((size_t)n * sizeof *ids);
    int argc = 0;
    argv[argc++] = bin;
    argv[argc++] = "--host";
    argv[argc++] = LOOPBACK;
    for (int i = 0; i < nextra; i++)
        argv[argc++] = extra_args[i];
    for (int i = 0; i < n; i++) {
        char port[16];
        if (!spec_value(adv_specs[i], "id", ids[i], sizeof ids[i]) || ids[i][0] == '\0')
            ck_abort_msg("fixture: advertiser spec without id=: %s", adv_specs[i]);
        specs[i] = spec_value(adv_specs[i], "port", port, sizeof port)
                       ? xstrdup(adv_specs[i])
                       : xasprintf("%s,port=0", adv_specs[i]);
        argv[argc++] = "--advertiser";
        argv[argc++] = specs[i];
        ports_out[i] = 0;
    }
    argv[argc] = NULL;

    char log[32];
    snprintf(log, sizeof log, "bidder-%d.log", ++env->bidders);
    pid_t pid = fx_spawn(env, argv, log);
    for (int i = 0; i < n; i++)
        free(specs[i]);
    free(specs);
    free(argv);

    int64_t deadline = fx_now_ms() + FX_START_TIMEOUT_MS;
    const char *why = NULL;
    for (;;) {
        char *text = fx_read_file(env, log, NULL);
        int found = text != NULL ? parse_listening(text, ids, n, ports_out) : 0;
        free(text);
        if (found == n) break;
        if (child_exited(pid) != 0) {
            why = "exited before it listened on every port";
            break;
        }
        if (fx_now_ms() >= deadline) {
            why = "did not print 'listening <id> 127.0.0.1:<port>' for every advertiser "
                  "within 5 s";
            break;
        }
        fx_sleep_ms(10);
    }
    free(ids);
    if (why != NULL) {
        fx_dump_log(env, log);
        stop_one(pid);
        ck_abort_msg("fixture: %s %s (log above)", bin, why);
    }
    return pid;
}

pid_t fx_spawn_bidder(fx_env *env, const char *const adv_specs[], int n, int ports_out[]) {
    return fx_spawn_bidder_ex(env, NULL, adv_specs, n, ports_out);
}

/* ---- Redis ------------------------------------------------------------- */

redisContext *fx_redis(fx_env *env) {
    if (env->redis != NULL && env->redis->err) {
        redisFree(env->redis);
        env->redis = NULL;
    }
    if (env->redis == NULL) {
        env->redis = redis_connect(env, env->redis_port, 2000);
        if (env->redis == NULL)
            ck_abort_msg("fixture: cannot connect to redis on 127.0.0.1:%d", env->redis_port);
        struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
        redisSetTimeout(env->redis, tv);
    }
    return env->redis;
}

static redisReply *redis_vcmd(fx_env *env, const char *fmt, va_list ap) {
    redisContext *c = fx_redis(env);
    redisReply *r = redisvCommand(c, fmt, ap);
    if (r == NULL) {
        char err[128];
        snprintf(err, sizeof err, "%s", c->errstr);
        redisFree(c);
        env->redis = NULL;
        ck_abort_msg("fixture: redis command '%s' failed: %s", fmt, err);
    }
    return r;
}

redisReply *fx_redis_cmd(fx_env *env, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vcmd(env, fmt, ap);
    va_end(ap);
    return r;
}

void fx_redis_do(fx_env *env, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vcmd(env, fmt, ap);
    va_end(ap);
    if (r->type == REDIS_REPLY_ERROR) {
        char err[256];
        snprintf(err, sizeof err, "%s", r->str);
        freeReplyObject(r);
        ck_abort_msg("fixture: redis command '%s' answered %s", fmt, err);
    }
    freeReplyObject(r);
}

/* ---- subscriber -------------------------------------------------------- */

void fx_msg_free(fx_msg *msg) {
    if (msg == NULL) return;
    free(msg->channel);
    free(msg->pattern);
    free(msg->payload);
    free(msg);
}

cJSON *fx_msg_json(const fx_msg *msg) {
    if (msg == NULL || msg->payload == NULL) return NULL;
    return cJSON_ParseWithLength(msg->payload, msg->payload_len);
}

static char *dup_bytes(const char *s, size_t len) {
    char *d = xmalloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static void sub_disconnect(fx_sub *sub) {
    if (sub->c != NULL) redisFree(sub->c);
    sub->c = NULL;
}

/* (Re)connects and PSUBSCRIBEs; returns 1 once Redis confirmed, else 0. */
static int sub_connect(fx_sub *sub) {
    sub_disconnect(sub);
    redisContext *c = redis_connect(sub->env, sub->env->redis_port, 1000);
    if (c == NULL) return 0;
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    redisSetTimeout(c, tv);
    redisReply *r = redisCommand(c, "PSUBSCRIBE %s", sub->pattern);
    int ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
             r->element[0]->type == REDIS_REPLY_STRING &&
             strcmp(r->element[0]->str, "psubscribe") == 0;
    if (r != NULL) freeReplyObject(r);
    if (!ok) {
        redisFree(c);
        return 0;
    }
    sub->c = c;
    return 1;
}

fx_sub *fx_sub_start(fx_env *env, const char *pattern) {
    fx_sub *sub = xmalloc(sizeof *sub);
    memset(sub, 0, sizeof *sub);
    sub->env = env;
    sub->pattern = xstrdup(pattern);
    if (!sub_connect(sub)) {
        free(sub->pattern);
        free(sub);
        ck_abort_msg("fixture: cannot PSUBSCRIBE %s on redis 127.0.0.1:%d", pattern,
                     env->redis_port);
    }
    sub->next = env->subs;
    env->subs = sub;
    return sub;
}

void fx_sub_stop(fx_sub *sub) {
    if (sub == NULL) return;
    for (fx_sub **p = &sub->env->subs; *p != NULL; p = &(*p)->next) {
        if (*p == sub) {
            *p = sub->next;
            break;
        }
    }
    sub_disconnect(sub);
    while (sub->head != NULL) {
        fx_msg *m = sub->head;
        sub->head = m->next;
        fx_msg_free(m);
    }
    free(sub->pattern);
    free(sub);
}

/* A message from a "pmessage" reply; NULL for any other reply. */
static fx_msg *msg_from_reply(const redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) return NULL;
    for (size_t i = 0; i < 4; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) return NULL;
    }
    if (strcmp(r->element[0]->str, "pmessage") != 0) return NULL;
    fx_msg *m = xmalloc(sizeof *m);
    m->pattern = dup_bytes(r->element[1]->str, r->element[1]->len);
    m->channel = dup_bytes(r->element[2]->str, r->element[2]->len);
    m->payload = dup_bytes(r->element[3]->str, r->element[3]->len);
    m->payload_len = r->element[3]->len;
    m->received_ms = fx_now_ms();
    m->next = NULL;
    return m;
}

/* Reads the next message off the socket until deadline; NULL on timeout. */
static fx_msg *sub_read(fx_sub *sub, int64_t deadline) {
    for (;;) {
        int64_t left = deadline - fx_now_ms();
        if (sub->c == NULL) {
            if (left <= 0) return NULL;
            if (!sub_connect(sub)) fx_sleep_ms(left < 50 ? (int)left : 50);
            continue;
        }
        void *reply = NULL;
        if (redisReaderGetReply(sub->c->reader, &reply) != REDIS_OK)
            ck_abort_msg("fixture: subscriber %s: protocol error", sub->pattern);
        if (reply != NULL) {
            fx_msg *m = msg_from_reply(reply);
            freeReplyObject(reply);
            if (m != NULL) return m;
            continue;
        }
        if (left <= 0) return NULL;
        struct pollfd pfd = {.fd = sub->c->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno != EINTR) ck_abort_msg("fixture: poll: %s", strerror(errno));
        if (pr > 0 && redisBufferRead(sub->c) != REDIS_OK)
            sub_disconnect(sub); /* Redis went away; reconnect above */
    }
}

static void sub_push(fx_sub *sub, fx_msg *m) {
    m->next = NULL;
    if (sub->tail != NULL)
        sub->tail->next = m;
    else
        sub->head = m;
    sub->tail = m;
    sub->nbuffered++;
}

fx_msg *fx_sub_next(fx_sub *sub, int timeout_ms) {
    if (sub->head != NULL) {
        fx_msg *m = sub->head;
        sub->head = m->next;
        if (sub->head == NULL) sub->tail = NULL;
        sub->nbuffered--;
        m->next = NULL;
        return m;
    }
    return sub_read(sub, fx_now_ms() + timeout_ms);
}

fx_msg *fx_sub_wait_for(fx_sub *sub, const char *channel, int timeout_ms) {
    fx_msg *prev = NULL;
    for (fx_msg *m = sub->head; m != NULL; prev = m, m = m->next) {
        if (strcmp(m->channel, channel) != 0) continue;
        if (prev != NULL)
            prev->next = m->next;
        else
            sub->head = m->next;
        if (sub->tail == m) sub->tail = prev;
        sub->nbuffered--;
        m->next = NULL;
        return m;
    }
    int64_t deadline = fx_now_ms() + timeout_ms;
    for (;;) {
        fx_msg *m = sub_read(sub, deadline);
        if (m == NULL || strcmp(m->channel, channel) == 0) return m;
        sub_push(sub, m);
    }
}

int fx_sub_buffered(const fx_sub *sub) {
    return sub->nbuffered;
}

/* ---- MQTT -------------------------------------------------------------- */

static pthread_once_t mosq_once = PTHREAD_ONCE_INIT;
static unsigned mqtt_counter;

static void mosq_init(void) {
    mosquitto_lib_init();
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc) {
    (void)mosq;
    fx_mqtt *m = obj;
    pthread_mutex_lock(&m->mu);
    m->connected = rc == 0;
    m->conn_rc = rc;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc) {
    (void)mosq;
    (void)rc;
    fx_mqtt *m = obj;
    pthread_mutex_lock(&m->mu);
    m->connected = 0;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid) {
    (void)mosq;
    fx_mqtt *m = obj;
    pthread_mutex_lock(&m->mu);
    m->acked[m->acked_count++ % ACK_RING] = mid;
    m->outstanding--;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* Waits on m->cv (mutex held) until done(m, arg) or deadline; returns 0 or -1. */
static int mqtt_wait(fx_mqtt *m, int timeout_ms, int (*done)(const fx_mqtt *, int), int arg) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->mu);
    int rc = 0;
    while (!done(m, arg)) {
        if (pthread_cond_timedwait(&m->cv, &m->mu, &ts) == ETIMEDOUT) {
            rc = done(m, arg) ? 0 : -1;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int is_connected(const fx_mqtt *m, int arg) {
    (void)arg;
    return m->connected;
}

static int conn_answered(const fx_mqtt *m, int arg) {
    (void)arg;
    return m->connected || m->conn_rc != -1;
}

static int is_acked(const fx_mqtt *m, int mid) {
    unsigned n = m->acked_count < ACK_RING ? m->acked_count : ACK_RING;
    for (unsigned i = 0; i < n; i++) {
        if (m->acked[(m->acked_count - 1 - i) % ACK_RING] == mid) return 1;
    }
    return 0;
}

static int all_sent(const fx_mqtt *m, int arg) {
    (void)arg;
    return m->outstanding <= 0;
}

fx_mqtt *fx_mqtt_connect(fx_env *env) {
    pthread_once(&mosq_once, mosq_init);
    fx_mqtt *m = xmalloc(sizeof *m);
    memset(m, 0, sizeof *m);
    m->env = env;
    m->conn_rc = -1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&m->mu, NULL);

    char id[64];
    snprintf(id, sizeof id, "fx-pub-%d-%u", (int)getpid(), ++mqtt_counter);
    m->mosq = mosquitto_new(id, true, m);
    if (m->mosq == NULL) ck_abort_msg("fixture: mosquitto_new: %s", strerror(errno));
    mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(m->mosq, on_connect);
    mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
    mosquitto_publish_callback_set(m->mosq, on_publish);
    mosquitto_reconnect_delay_set(m->mosq, 1, 1, false);
    int rc = mosquitto_connect(m->mosq, LOOPBACK, env->mqtt_port, 30);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_loop_start(m->mosq);
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_destroy(m->mosq);
        ck_abort_msg("fixture: MQTT connect to 127.0.0.1:%d: %s", env->mqtt_port,
                     mosquitto_strerror(rc));
    }
    m->next = env->mqtts;
    env->mqtts = m;
    if (mqtt_wait(m, FX_START_TIMEOUT_MS, conn_answered, 0) != 0 || !m->connected)
        ck_abort_msg("fixture: no CONNACK from mosquitto on 127.0.0.1:%d (rc %d: %s)",
                     env->mqtt_port, m->conn_rc,
                     m->conn_rc >= 0 ? mosquitto_connack_string(m->conn_rc) : "timeout");
    return m;
}

/* Hands the message to libmosquitto; returns a MOSQ_ERR_* code, *mid its id. */
static int mqtt_pub(fx_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                    int *mid) {
    if (len > INT32_MAX) return MOSQ_ERR_PAYLOAD_SIZE;
    pthread_mutex_lock(&m->mu);
    m->outstanding++; /* before the call: the acknowledgement may beat its return */
    pthread_mutex_unlock(&m->mu);
    int rc = mosquitto_publish(m->mosq, mid, topic, (int)len, payload, qos, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        pthread_mutex_lock(&m->mu);
        m->outstanding--;
        pthread_mutex_unlock(&m->mu);
    }
    return rc;
}

int fx_mqtt_publish_nowait(fx_mqtt *m, const char *topic, const void *payload, size_t len,
                           int qos) {
    int mid = 0;
    return mqtt_pub(m, topic, payload, len, qos, &mid) == MOSQ_ERR_SUCCESS ? mid : -1;
}

int fx_mqtt_publish(fx_mqtt *m, const char *topic, const void *payload, size_t len, int qos) {
    int mid = 0;
    int rc = mqtt_pub(m, topic, payload, len, qos, &mid);
    if (rc != MOSQ_ERR_SUCCESS)
        ck_abort_msg("fixture: MQTT publish to %s: %s", topic, mosquitto_strerror(rc));
    if (qos > 0 && mqtt_wait(m, FX_START_TIMEOUT_MS, is_acked, mid) != 0)
        ck_abort_msg("fixture: no PUBACK for message %d on %s within 5 s", mid, topic);
    return mid;
}

int fx_mqtt_flush(fx_mqtt *m, int timeout_ms) {
    return mqtt_wait(m, timeout_ms, all_sent, 0);
}

int fx_mqtt_wait_connected(fx_mqtt *m, int timeout_ms) {
    return mqtt_wait(m, timeout_ms, is_connected, 0);
}

void fx_mqtt_close(fx_mqtt *m) {
    if (m == NULL) return;
    for (fx_mqtt **p = &m->env->mqtts; *p != NULL; p = &(*p)->next) {
        if (*p == m) {
            *p = m->next;
            break;
        }
    }
    mosquitto_disconnect(m->mosq);
    mosquitto_loop_stop(m->mosq, false);
    mosquitto_destroy(m->mosq);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* ---- HTTP -------------------------------------------------------------- */

/* Sends or receives within deadline; returns bytes moved, 0 on EOF, -1. */
static ssize_t io_wait(int fd, short events, int64_t deadline) {
    for (;;) {
        int64_t left = deadline - fx_now_ms();
        if (left <= 0) return -1;
        struct pollfd pfd = {.fd = fd, .events = events};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR) continue;
        return pr > 0 ? 1 : -1;
    }
}

static int http_send(int fd, const char *buf, size_t len, int64_t deadline) {
    while (len > 0) {
        if (io_wait(fd, POLLOUT, deadline) < 0) return -1;
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (w <= 0) return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Reads until EOF, or until Content-Length bytes of body arrived. */
static char *http_recv(int fd, size_t *len, int64_t deadline) {
    size_t cap = 8192, used = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        buf[used] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            const char *cl = strstr(buf, "\r\nContent-Length:");
            if (cl == NULL) cl = strstr(buf, "\r\ncontent-length:");
            if (cl != NULL && cl < end &&
                used >= (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10))
                break;
        }
        if (used + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (b == NULL) break;
            buf = b;
            cap *= 2;
        }
        if (io_wait(fd, POLLIN, deadline) < 0) {
            free(buf);
            return NULL;
        }
        ssize_t r = recv(fd, buf + used, cap - 1 - used, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r < 0) {
            free(buf);
            return NULL;
        }
        if (r == 0) break;
        used += (size_t)r;
    }
    buf[used] = '\0';
    *len = used;
    return buf;
}

int fx_http(int port, const char *method, const char *path, const char *body, char **resp_body,
            int timeout_ms) {
    if (resp_body != NULL) *resp_body = NULL;
    int64_t deadline = fx_now_ms() + timeout_ms;
    int fd = tcp_connect(port);
    if (fd < 0) return -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    char *req = body != NULL ? xasprintf("%s %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n"
                                         "Content-Type: application/json\r\n"
                                         "x-openrtb-version: 2.6\r\nContent-Length: %zu\r\n"
                                         "Connection: close\r\n\r\n%s",
                                         method, path, port, strlen(body), body)
                             : xasprintf("%s %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n"
                                         "Connection: close\r\n\r\n",
                                         method, path, port);
    int rc = http_send(fd, req, strlen(req), deadline);
    free(req);
    size_t len = 0;
    char *resp = rc == 0 ? http_recv(fd, &len, deadline) : NULL;
    close(fd);
    if (resp == NULL) return -1;
    int status = -1;
    char *end = strstr(resp, "\r\n\r\n");
    if (end != NULL && sscanf(resp, "HTTP/%*d.%*d %d", &status) == 1 && resp_body != NULL) {
        end += 4;
        *resp_body = dup_bytes(end, len - (size_t)(end - resp));
    }
    if (end == NULL) status = -1;
    free(resp);
    return status;
}
