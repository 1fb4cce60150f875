/*
 * LD_PRELOAD shim for `deno task bench`: sets TCP_NODELAY on every socket the broker accepts. rumqttd 0.20
 * has no setting for it and leaves Nagle's algorithm on; every other broker in the benchmark turns it off.
 * setsockopt on a socket that is not TCP fails harmlessly.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void set_nodelay(int fd) {
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
  static int (*real)(int, struct sockaddr *, socklen_t *, int);
  if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
  int conn = real(fd, addr, len, flags);
  set_nodelay(conn);
  return conn;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
  static int (*real)(int, struct sockaddr *, socklen_t *);
  if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
  int conn = real(fd, addr, len);
  set_nodelay(conn);
  return conn;
}
