/*
 * Connection-rate load generator for `npm run bench` (compiled at bench time
 * with the system C compiler; see bench/loadgen.ts).
 *
 *     connect-load PORT SECONDS WORKERS
 *
 * WORKERS threads each loop for SECONDS: connect to 127.0.0.1:PORT, send the
 * byte 0xFF, wait for it to come back, close. It prints one JSON line:
 * connections done and failed, the wall time, and the CPU seconds (user +
 * system, all threads) it used itself, so the report can show that the
 * generator is not what limits the rate. A connection that takes over 5 s
 * counts as failed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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

int main(int argc, char **argv) {
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
