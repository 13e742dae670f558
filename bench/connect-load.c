#define _GNU_SOURCE /* accept4 */
/*
 * Connection-rate load generator for `npm run bench` (compiled at bench time
 * with the system C compiler; see bench/loadgen.ts).
 *
 *     connect-load PORT SECONDS WORKERS
 *     connect-load serve
 *
 * WORKERS threads each loop for SECONDS: connect to 127.0.0.1:PORT, send the
 * byte 0xFF, wait for it to come back, close. It prints one JSON line:
 * connections done and failed, the wall time, and the CPU seconds (user +
 * system, all threads) it used itself, so the report can show that the
 * generator is not what limits the rate. A connection that takes over 5 s
 * counts as failed.
 *
 * `serve` is the target of those connections: one epoll thread on an
 * ephemeral loopback port (printed as `echo on PORT`) that echoes what it
 * reads and closes on EOF, so that neither end of a direct run is a
 * single-threaded Node process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in target;
static double deadline;

struct counts {
  unsigned long done;
  unsigned long failed;
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One connection, start to close; 1 when the byte came back. */
static int one(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  int on = 1;
  struct timeval limit = {5, 0};
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  unsigned char b = 0xff;
  int ok = connect(fd, (struct sockaddr *)&target, sizeof target) == 0 && write(fd, &b, 1) == 1 && read(fd, &b, 1) == 1;
  close(fd);
  return ok;
}

static void *worker(void *arg) {
  struct counts *c = arg;
  while (now() < deadline) {
    if (one()) c->done++;
    else c->failed++;
  }
  return NULL;
}

/* Echo server for the connections above; runs until killed. */
static int serve(void) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int ep = epoll_create1(0);
  if (lfd < 0 || ep < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0 ||
      getsockname(lfd, (struct sockaddr *)&a, &len) != 0) {
    perror("connect-load serve");
    return 1;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  printf("echo on %d\n", ntohs(a.sin_port));
  fflush(stdout);
  struct epoll_event events[256];
  unsigned char buf[4096];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    if (n < 0 && errno != EINTR) return 1;
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          int on = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      ssize_t got = read(fd, buf, sizeof buf);
      if (got > 0 && write(fd, buf, (size_t)got) == got) continue;
      if (got < 0 && errno == EAGAIN) continue;
      close(fd); /* EOF, error, or a reply that did not fit: this helper only answers short echoes */
    }
  }
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "serve") == 0) return serve();
  if (argc != 4) {
    fprintf(stderr, "usage: connect-load PORT SECONDS WORKERS\n");
    return 2;
  }
  int port = atoi(argv[1]);
  double seconds = atof(argv[2]);
  int workers = atoi(argv[3]);
  if (port <= 0 || port > 65535 || !(seconds > 0) || workers <= 0 || workers > 256) {
    fprintf(stderr, "connect-load: bad arguments\n");
    return 2;
  }
  target.sin_family = AF_INET;
  target.sin_port = htons((unsigned short)port);
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  double start = now();
  deadline = start + seconds;
  pthread_t threads[256];
  struct counts counts[256] = {{0, 0}};
  for (int i = 0; i < workers; i++) {
    if (pthread_create(&threads[i], NULL, worker, &counts[i]) != 0) {
      fprintf(stderr, "connect-load: cannot start a thread\n");
      return 1;
    }
  }
  unsigned long done = 0, failed = 0;
  for (int i = 0; i < workers; i++) {
    pthread_join(threads[i], NULL);
    done += counts[i].done;
    failed += counts[i].failed;
  }
  double wall = now() - start;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  printf("{\"done\":%lu,\"failed\":%lu,\"seconds\":%.3f,\"cpu_s\":%.3f}\n", done, failed, wall, cpu);
  return 0;
}
