/*
 * mqttload: MQTT 3.1.1 load generator used by `deno task bench`.
 *
 * One process drives many non-blocking TCP connections from a single epoll
 * loop, so the generator costs one core and its own CPU time can be reported
 * (a run where the generator saturates its core measures the generator, not
 * the broker).
 *
 * Modes:
 *   pubsub  P publishers -> S subscribers. Every payload starts with a
 *           24-byte header (run nonce, publisher id, sequence number,
 *           CLOCK_MONOTONIC send time in ns) so subscribers can detect loss,
 *           duplicates and reordering and measure end-to-end latency.
 *           --rate spreads a fixed total rate over the publishers; without it
 *           publishers go as fast as the QoS 1 window (--inflight) and the
 *           end-to-end window (--e2e-window: messages addressed to a local
 *           subscriber and not yet received) allow.
 *   idle    open N connections (CONNECT/CONNACK), report the connect rate,
 *           hold them until released, then close them.
 *
 * Several processes can share one run: ids are global (--pub-offset,
 * --sub-offset, --conn-offset, --total-pubs, --total-subs) and the latency
 * histogram is printed sparse so the caller can merge processes exactly.
 * With --barrier the process prints "READY" on stderr once every client is
 * connected (and subscribed) and waits for a line on stdin before publishing
 * (pubsub) or before closing (idle).
 *
 * Output: one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define PAYLOAD_HEADER_BYTES 24
#define PUBLISHER_CHUNK_BYTES (64 * 1024)
#define SUBSCRIBER_READ_BYTES (256 * 1024)
#define MAX_EVENTS 1024
/* Log-linear histogram: values below 64 ns are exact, above that each power
 * of two is split into 64 buckets (relative error below 1.6%). */
#define HIST_SUB_BITS 6
#define HIST_SUB_COUNT (1 << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB_COUNT)

enum role { ROLE_PUBLISHER, ROLE_SUBSCRIBER, ROLE_IDLE };
enum conn_state { ST_UNUSED, ST_CONNECTING, ST_WAIT_CONNACK, ST_WAIT_SUBACK, ST_READY, ST_CLOSED };
enum phase { PHASE_CONNECT, PHASE_BARRIER, PHASE_RUN, PHASE_DRAIN, PHASE_DONE };

typedef struct {
  uint8_t *data;
  size_t start, end, cap;
} buffer_t;

/* What one subscriber has seen from one publisher. */
typedef struct {
  uint64_t *seen_bits;
  uint64_t seen_words;
  uint64_t unique;
  int64_t max_seq;
} stream_t;

typedef struct conn {
  int fd;
  uint8_t role;
  uint8_t state;
  bool out_armed;
  uint32_t global_id;
  buffer_t in, out;
  /* publisher */
  uint8_t *publish_template;
  size_t publish_len, packet_id_offset, payload_offset;
  uint64_t seq, acked;
  uint32_t inflight;
  uint16_t next_packet_id;
  uint8_t *unacked_ids; /* 65536-bit set of packet ids awaiting PUBACK */
  uint64_t next_due_ns, interval_ns;
  struct conn **local_subs; /* subscribers in this process that receive this publisher */
  int local_sub_count;
  /* subscriber */
  /* Messages from this process's publishers that arrived or were skipped
   * over (a later sequence number arrived): a message lost by the broker must
   * not hold the end-to-end window shut for the rest of the run. */
  uint64_t resolved_from_local;
  stream_t *streams; /* indexed by global publisher id */
} conn_t;

static struct {
  const char *mode;
  const char *host;
  int port, sub_port;
  int pubs, subs, pub_offset, sub_offset, total_pubs, total_subs;
  int qos, payload, inflight, keepalive, e2e_window, coalesce_us;
  double rate, duration_s, drain_timeout_s, quiet_s, connect_timeout_s, hold_s, warmup_s;
  bool wildcard, persistent, barrier;
  const char *prefix;
  int connections, conn_offset, src_ips, max_pending;
  uint32_t nonce;
} opt = {
    .mode = "pubsub",
    .host = "127.0.0.1",
    .port = 1883,
    .pubs = 1,
    .subs = 1,
    .total_pubs = -1,
    .total_subs = -1,
    .qos = 0,
    .payload = 64,
    .inflight = 100,
    .keepalive = 0,
    .rate = 0,
    .duration_s = 2,
    .drain_timeout_s = 5,
    .quiet_s = 1,
    .connect_timeout_s = 30,
    .hold_s = 2,
    .prefix = "bench",
    .connections = 100,
    .src_ips = 0,
    .max_pending = 256,
};

static struct {
  uint64_t sent, acked, unknown_acks, received, received_in_window, duplicates, reordered, foreign, gaps;
  uint64_t errors, peer_closed, connect_failures, schedule_slip_max_ns, late_sends;
  uint64_t hist[HIST_BUCKETS];
  uint64_t latency_max_ns, latency_sum_ns, latency_count;
  uint64_t t_connect_start, t_connected, t_go, t_run_end, t_last_rx, t_done;
  double cpu_at_connected, cpu_at_go;
  char first_error[160];
} stats;

static conn_t *conns;
static conn_t **local_publisher_by_id; /* global publisher id -> this process's publisher, or NULL */
static uint64_t local_sent_total;
static int conn_count;
static int epoll_fd;
static enum phase phase = PHASE_CONNECT;
static int next_to_open, pending_connects, ready_count, resolved_count;
static bool released;
static int stdin_marker; /* its address tags stdin in epoll events */
static struct sockaddr_in broker_addr;
/* Where subscribers connect: the same broker, or (--sub-port) another node of a cluster. */
static struct sockaddr_in subscriber_addr;

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + (double)usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

static void die(const char *message) {
  printf("{\"error\":\"%s\"}\n", message);
  fflush(stdout);
  exit(2);
}

static void on_hard_timeout(int signo) {
  (void)signo;
  static const char message[] = "{\"error\":\"hard timeout: generator exceeded its time budget\"}\n";
  ssize_t ignored = write(STDOUT_FILENO, message, sizeof message - 1);
  (void)ignored;
  _exit(3);
}

static void note_error(const char *what, int err) {
  stats.errors++;
  if (!stats.first_error[0]) {
    snprintf(stats.first_error, sizeof stats.first_error, "%s: %s", what, err ? strerror(err) : "protocol");
  }
}

/* ---------- buffers ---------- */

static void buffer_reserve(buffer_t *b, size_t wanted_free) {
  if (b->cap - b->end >= wanted_free) return;
  if (b->start > 0) {
    memmove(b->data, b->data + b->start, b->end - b->start);
    b->end -= b->start;
    b->start = 0;
    if (b->cap - b->end >= wanted_free) return;
  }
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->end < wanted_free) cap *= 2;
  uint8_t *data = realloc(b->data, cap);
  if (!data) die("out of memory");
  b->data = data;
  b->cap = cap;
}

static size_t buffer_pending(const buffer_t *b) { return b->end - b->start; }

static void buffer_put(buffer_t *b, const void *bytes, size_t len) {
  buffer_reserve(b, len);
  memcpy(b->data + b->end, bytes, len);
  b->end += len;
}

/* ---------- histogram ---------- */

static int hist_index(uint64_t value) {
  if (value < HIST_SUB_COUNT) return (int)value;
  int exponent = 63 - __builtin_clzll(value);
  uint64_t mantissa = (value >> (exponent - HIST_SUB_BITS)) & (HIST_SUB_COUNT - 1);
  return (exponent - HIST_SUB_BITS + 1) * HIST_SUB_COUNT + (int)mantissa;
}

static uint64_t hist_upper_bound(int index) {
  if (index < HIST_SUB_COUNT) return (uint64_t)index;
  int exponent = index / HIST_SUB_COUNT + HIST_SUB_BITS - 1;
  uint64_t mantissa = (uint64_t)(index % HIST_SUB_COUNT);
  uint64_t width = 1ull << (exponent - HIST_SUB_BITS);
  return (HIST_SUB_COUNT + mantissa) * width + width - 1;
}

static uint64_t hist_percentile(double fraction) {
  if (!stats.latency_count) return 0;
  uint64_t rank = (uint64_t)(fraction * (double)stats.latency_count);
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < HIST_BUCKETS; i++) {
    seen += stats.hist[i];
    if (seen >= rank) {
      uint64_t bound = hist_upper_bound(i);
      return bound < stats.latency_max_ns ? bound : stats.latency_max_ns;
    }
  }
  return stats.latency_max_ns;
}

/* ---------- MQTT encoding ---------- */

static size_t encode_remaining_length(uint8_t *out, size_t length) {
  size_t n = 0;
  do {
    uint8_t digit = length % 128;
    length /= 128;
    out[n++] = digit | (length ? 0x80 : 0);
  } while (length);
  return n;
}

static void put_u16(uint8_t *out, uint16_t value) {
  out[0] = (uint8_t)(value >> 8);
  out[1] = (uint8_t)value;
}

static void put_string(buffer_t *b, const char *text) {
  uint8_t len[2];
  put_u16(len, (uint16_t)strlen(text));
  buffer_put(b, len, 2);
  buffer_put(b, text, strlen(text));
}

static void queue_packet(conn_t *c, uint8_t type, const buffer_t *body) {
  uint8_t header[5];
  header[0] = type;
  size_t n = 1 + encode_remaining_length(header + 1, buffer_pending(body));
  buffer_put(&c->out, header, n);
  buffer_put(&c->out, body->data + body->start, buffer_pending(body));
}

static void client_id(char *out, size_t size, char kind, uint32_t global_id) {
  /* Persistent subscribers must find their session again, so their id is
   * stable across runs; everyone else is unique per run. */
  if (kind == 's' && opt.persistent) {
    snprintf(out, size, "mqttload-sub-%u", global_id);
  } else {
    snprintf(out, size, "mqttload-%08x-%c%u", opt.nonce, kind, global_id);
  }
}

static void queue_connect(conn_t *c) {
  buffer_t body = {0};
  static const uint8_t protocol[] = {0, 4, 'M', 'Q', 'T', 'T', 4};
  buffer_put(&body, protocol, sizeof protocol);
  uint8_t flags = (c->role == ROLE_SUBSCRIBER && opt.persistent) ? 0x00 : 0x02; /* clean session */
  buffer_put(&body, &flags, 1);
  uint8_t keepalive[2];
  put_u16(keepalive, (uint16_t)opt.keepalive);
  buffer_put(&body, keepalive, 2);
  char id[64];
  client_id(id, sizeof id, c->role == ROLE_PUBLISHER ? 'p' : c->role == ROLE_SUBSCRIBER ? 's' : 'i',
            c->global_id);
  put_string(&body, id);
  queue_packet(c, 0x10, &body);
  free(body.data);
}

static void queue_subscribe(conn_t *c) {
  buffer_t body = {0};
  uint8_t packet_id[2] = {0, 1};
  buffer_put(&body, packet_id, 2);
  char filter[128];
  if (opt.wildcard) {
    snprintf(filter, sizeof filter, "%s/+/x", opt.prefix);
  } else {
    snprintf(filter, sizeof filter, "%s/%u/x", opt.prefix, c->global_id % (uint32_t)opt.total_pubs);
  }
  put_string(&body, filter);
  uint8_t qos = (uint8_t)opt.qos;
  buffer_put(&body, &qos, 1);
  queue_packet(c, 0x82, &body);
  free(body.data);
}

/* A publisher's PUBLISH packet is built once; sending patches the packet id
 * and the payload header in place. */
static void build_publish_template(conn_t *c) {
  char topic[128];
  snprintf(topic, sizeof topic, "%s/%u/x", opt.prefix, c->global_id);
  size_t topic_len = strlen(topic);
  size_t remaining = 2 + topic_len + (opt.qos ? 2 : 0) + (size_t)opt.payload;
  uint8_t header[5];
  header[0] = (uint8_t)(0x30 | (opt.qos << 1));
  size_t header_len = 1 + encode_remaining_length(header + 1, remaining);
  c->publish_len = header_len + remaining;
  c->publish_template = malloc(c->publish_len);
  if (!c->publish_template) die("out of memory");
  uint8_t *p = c->publish_template;
  memcpy(p, header, header_len);
  p += header_len;
  put_u16(p, (uint16_t)topic_len);
  memcpy(p + 2, topic, topic_len);
  p += 2 + topic_len;
  c->packet_id_offset = (size_t)(p - c->publish_template);
  if (opt.qos) p += 2;
  c->payload_offset = (size_t)(p - c->publish_template);
  memset(p, 'x', (size_t)opt.payload);
}

/* ---------- connection plumbing ---------- */

static void set_interest(conn_t *c, bool want_out) {
  if (c->state == ST_CLOSED || want_out == c->out_armed) return;
  struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->out_armed = want_out;
}

/* The QoS 1 window: PUBLISHes the broker has not acknowledged yet. */
static bool window_open(const conn_t *c) { return opt.qos == 0 || c->inflight < (uint32_t)opt.inflight; }

/* Messages this process's publishers addressed to a subscriber that it has
 * neither received nor seen overtaken. */
static uint64_t undelivered_to(const conn_t *sub) {
  uint64_t addressed;
  if (opt.wildcard) {
    addressed = local_sent_total;
  } else {
    const conn_t *publisher = local_publisher_by_id[sub->global_id % (uint32_t)opt.total_pubs];
    addressed = publisher ? publisher->seq : 0;
  }
  return addressed > sub->resolved_from_local ? addressed - sub->resolved_from_local : 0;
}

/* The end-to-end window of an unlimited-rate publisher: how many more
 * messages it may send before one of its subscribers has --e2e-window
 * messages addressed to it and not yet received. Without such a window a
 * broker that ingests faster than it delivers queues without bound, and the
 * run measures its memory (or its crash), not its sustainable throughput. */
static uint64_t e2e_allowance(const conn_t *c) {
  if (opt.e2e_window <= 0 || opt.rate > 0 || c->local_sub_count == 0) return UINT64_MAX;
  uint64_t most_behind = 0;
  for (int i = 0; i < c->local_sub_count; i++) {
    uint64_t behind = undelivered_to(c->local_subs[i]);
    if (behind > most_behind) most_behind = behind;
  }
  return most_behind >= (uint64_t)opt.e2e_window ? 0 : (uint64_t)opt.e2e_window - most_behind;
}

static bool may_publish(const conn_t *c) { return window_open(c) && e2e_allowance(c) > 0; }

/* Unlimited-rate publishers keep EPOLLOUT armed while they may send, so a
 * writable socket wakes the loop to produce the next chunk. */
static bool wants_writable(const conn_t *c) {
  if (c->state == ST_CONNECTING || buffer_pending(&c->out)) return true;
  return c->role == ROLE_PUBLISHER && opt.rate <= 0 && phase == PHASE_RUN && may_publish(c);
}

static void conn_close(conn_t *c) {
  if (c->state == ST_CLOSED || c->state == ST_UNUSED) return;
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->state = ST_CLOSED;
}

static void conn_lost(conn_t *c, const char *what, int err) {
  bool was_connecting = c->state != ST_READY;
  if (was_connecting) {
    stats.connect_failures++;
    pending_connects--;
    resolved_count++;
  } else if (phase < PHASE_DONE) {
    stats.peer_closed++;
  }
  note_error(what, err);
  conn_close(c);
}

static void conn_flush(conn_t *c) {
  while (buffer_pending(&c->out)) {
    ssize_t n = send(c->fd, c->out.data + c->out.start, buffer_pending(&c->out), MSG_NOSIGNAL);
    if (n > 0) {
      c->out.start += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      break;
    } else {
      conn_lost(c, "write", n < 0 ? errno : 0);
      return;
    }
  }
  if (!buffer_pending(&c->out)) c->out.start = c->out.end = 0;
  set_interest(c, wants_writable(c));
}

static void mark_ready(conn_t *c, uint64_t now) {
  c->state = ST_READY;
  ready_count++;
  resolved_count++;
  pending_connects--;
  stats.t_connected = now;
}

static void open_connection(conn_t *c, int index) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    stats.connect_failures++;
    resolved_count++;
    note_error("socket", errno);
    c->state = ST_CLOSED;
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (opt.src_ips > 0) {
    /* Spread connections over 127.0.0.2.. so the 4-tuple space (and the
     * ephemeral port range) of one source address is not the limit. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in source = {.sin_family = AF_INET};
    source.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(index % opt.src_ips));
    if (bind(fd, (struct sockaddr *)&source, sizeof source) < 0) note_error("bind", errno);
  }
  c->fd = fd;
  c->state = ST_CONNECTING;
  pending_connects++;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  c->out_armed = true;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
  const struct sockaddr_in *target = c->role == ROLE_SUBSCRIBER ? &subscriber_addr : &broker_addr;
  if (connect(fd, (const struct sockaddr *)target, sizeof *target) < 0 && errno != EINPROGRESS) {
    conn_lost(c, "connect", errno);
  }
}

static void open_more_connections(void) {
  while (next_to_open < conn_count && pending_connects < opt.max_pending) {
    conn_t *c = &conns[next_to_open];
    open_connection(c, next_to_open);
    next_to_open++;
  }
}

/* ---------- publishing ---------- */

static void publish_one(conn_t *c, uint64_t now) {
  buffer_reserve(&c->out, c->publish_len);
  uint8_t *p = c->out.data + c->out.end;
  memcpy(p, c->publish_template, c->publish_len);
  if (opt.qos) {
    uint16_t id = c->next_packet_id;
    while (id == 0 || (c->unacked_ids[id >> 3] & (1u << (id & 7)))) id++;
    c->unacked_ids[id >> 3] |= (uint8_t)(1u << (id & 7));
    c->next_packet_id = (uint16_t)(id + 1);
    c->inflight++;
    put_u16(p + c->packet_id_offset, id);
  }
  uint8_t *payload = p + c->payload_offset;
  uint32_t publisher_id = c->global_id;
  memcpy(payload, &opt.nonce, 4);
  memcpy(payload + 4, &publisher_id, 4);
  memcpy(payload + 8, &c->seq, 8);
  memcpy(payload + 16, &now, 8);
  c->out.end += c->publish_len;
  c->seq++;
  local_sent_total++;
  stats.sent++;
}

static void publish_chunk(conn_t *c) {
  uint64_t now = monotonic_ns();
  unsigned produced = 0;
  uint64_t allowance = e2e_allowance(c);
  while (buffer_pending(&c->out) < PUBLISHER_CHUNK_BYTES && window_open(c) && allowance > 0) {
    allowance--;
    if ((++produced & 63) == 0) now = monotonic_ns();
    publish_one(c, now);
  }
  conn_flush(c);
}

static void publish_due(conn_t *c, uint64_t now) {
  unsigned produced = 0;
  while (c->next_due_ns <= now && window_open(c) && produced < 4096) {
    uint64_t slip = now - c->next_due_ns;
    if (slip > stats.schedule_slip_max_ns) stats.schedule_slip_max_ns = slip;
    if (slip > 1000000) stats.late_sends++; /* more than 1 ms behind the fixed-rate schedule */
    publish_one(c, now);
    c->next_due_ns += c->interval_ns;
    produced++;
  }
  if (produced) conn_flush(c);
}

/* ---------- receiving ---------- */

static void record_delivery(conn_t *c, const uint8_t *payload, size_t len, uint64_t now) {
  uint32_t nonce, publisher_id;
  uint64_t seq, sent_at;
  if (len < PAYLOAD_HEADER_BYTES) {
    stats.foreign++;
    return;
  }
  memcpy(&nonce, payload, 4);
  memcpy(&publisher_id, payload + 4, 4);
  memcpy(&seq, payload + 8, 8);
  memcpy(&sent_at, payload + 16, 8);
  if (nonce != opt.nonce || publisher_id >= (uint32_t)opt.total_pubs) {
    stats.foreign++;
    return;
  }
  stream_t *s = &c->streams[publisher_id];
  uint64_t word = seq >> 6;
  if (word >= s->seen_words) {
    uint64_t words = s->seen_words ? s->seen_words : 1024;
    while (words <= word) words *= 2;
    uint64_t *bits = realloc(s->seen_bits, words * 8);
    if (!bits) die("out of memory");
    memset(bits + s->seen_words, 0, (words - s->seen_words) * 8);
    s->seen_bits = bits;
    s->seen_words = words;
  }
  uint64_t mask = 1ull << (seq & 63);
  if (s->seen_bits[word] & mask) {
    stats.duplicates++;
    return;
  }
  s->seen_bits[word] |= mask;
  s->unique++;
  stats.received++;
  if (now <= stats.t_run_end) stats.received_in_window++;
  if ((int64_t)seq < s->max_seq) {
    stats.reordered++;
  } else {
    if (local_publisher_by_id[publisher_id]) c->resolved_from_local += (uint64_t)((int64_t)seq - s->max_seq);
    s->max_seq = (int64_t)seq;
  }
  stats.t_last_rx = now;
  /* Messages sent during the warm-up count for loss and order, not for latency. */
  if (sent_at < stats.t_go + (uint64_t)(opt.warmup_s * 1e9)) return;
  uint64_t latency = now > sent_at ? now - sent_at : 0;
  stats.hist[hist_index(latency)]++;
  stats.latency_count++;
  stats.latency_sum_ns += latency;
  if (latency > stats.latency_max_ns) stats.latency_max_ns = latency;
}

static void handle_packet(conn_t *c, uint8_t type, const uint8_t *body, size_t len, uint64_t now) {
  switch (type >> 4) {
  case 2: /* CONNACK */
    if (len < 2 || body[1] != 0) {
      conn_lost(c, "CONNACK refused", 0);
      return;
    }
    if (c->role == ROLE_SUBSCRIBER) {
      queue_subscribe(c);
      c->state = ST_WAIT_SUBACK;
    } else {
      mark_ready(c, now);
    }
    break;
  case 9: /* SUBACK */
    if (len < 3 || body[2] == 0x80) {
      conn_lost(c, "SUBACK refused", 0);
      return;
    }
    mark_ready(c, now);
    break;
  case 3: { /* PUBLISH */
    if (len < 2) break;
    size_t topic_len = ((size_t)body[0] << 8) | body[1];
    size_t offset = 2 + topic_len;
    unsigned qos = (type >> 1) & 3;
    if (qos) {
      if (offset + 2 > len) break;
      uint8_t puback[4] = {0x40, 2, body[offset], body[offset + 1]};
      buffer_put(&c->out, puback, sizeof puback);
      offset += 2;
    }
    if (offset <= len) record_delivery(c, body + offset, len - offset, now);
    break;
  }
  case 4: { /* PUBACK */
    if (len < 2 || !c->unacked_ids) break;
    uint16_t id = (uint16_t)((body[0] << 8) | body[1]);
    uint8_t bit = (uint8_t)(1u << (id & 7));
    if (c->unacked_ids[id >> 3] & bit) {
      c->unacked_ids[id >> 3] &= (uint8_t)~bit;
      c->inflight--;
      c->acked++;
      stats.acked++;
    } else {
      stats.unknown_acks++;
    }
    break;
  }
  default: /* PINGRESP and anything else carries nothing we measure */
    break;
  }
}

static void parse_input(conn_t *c, uint64_t now) {
  buffer_t *in = &c->in;
  while (buffer_pending(in) >= 2 && c->state != ST_CLOSED) {
    const uint8_t *p = in->data + in->start;
    size_t available = buffer_pending(in);
    size_t remaining = 0, header_len = 1;
    unsigned shift = 0;
    bool complete_length = false;
    while (header_len < available && header_len <= 4) {
      uint8_t digit = p[header_len++];
      remaining |= (size_t)(digit & 0x7f) << shift;
      shift += 7;
      if (!(digit & 0x80)) {
        complete_length = true;
        break;
      }
    }
    if (!complete_length) {
      if (header_len > 4) conn_lost(c, "malformed length", 0);
      return;
    }
    if (available < header_len + remaining) {
      buffer_reserve(in, header_len + remaining - available);
      return;
    }
    handle_packet(c, p[0], p + header_len, remaining, now);
    in->start += header_len + remaining;
  }
  if (!buffer_pending(in)) in->start = in->end = 0;
}

static void on_readable(conn_t *c) {
  size_t chunk = c->role == ROLE_SUBSCRIBER ? SUBSCRIBER_READ_BYTES : 4096;
  for (int round = 0; round < 8 && c->state != ST_CLOSED; round++) {
    buffer_reserve(&c->in, chunk);
    size_t room = c->in.cap - c->in.end;
    ssize_t n = recv(c->fd, c->in.data + c->in.end, room, 0);
    if (n > 0) {
      c->in.end += (size_t)n;
      parse_input(c, monotonic_ns());
      if ((size_t)n < room) break;
    } else if (n == 0) {
      conn_lost(c, "broker closed the connection", 0);
      return;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN) {
      break;
    } else {
      conn_lost(c, "read", errno);
      return;
    }
  }
  if (c->state == ST_CLOSED) return;
  if (buffer_pending(&c->out)) {
    conn_flush(c);
  } else {
    set_interest(c, wants_writable(c));
  }
}

static void on_writable(conn_t *c) {
  if (c->state == ST_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      conn_lost(c, "connect", err);
      return;
    }
    c->state = ST_WAIT_CONNACK;
    queue_connect(c);
    conn_flush(c);
    return;
  }
  if (c->role == ROLE_PUBLISHER && opt.rate <= 0 && phase == PHASE_RUN) {
    publish_chunk(c);
  } else {
    conn_flush(c);
  }
}

static void on_stdin(void) {
  char line[256];
  ssize_t n = read(STDIN_FILENO, line, sizeof line);
  if (n > 0 && !memchr(line, '\n', (size_t)n)) return;
  released = true;
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, STDIN_FILENO, NULL);
}

/* ---------- run control ---------- */

static uint64_t subscribers_matching(uint32_t publisher_id) {
  if (opt.wildcard) return (uint64_t)opt.total_subs;
  uint64_t matching = (uint64_t)(opt.total_subs / opt.total_pubs);
  if (publisher_id < (uint32_t)(opt.total_subs % opt.total_pubs)) matching++;
  return matching;
}

/* Deliveries owed for this process's publishers, wherever the subscribers are. */
static uint64_t expected_deliveries(void) {
  uint64_t expected = 0;
  for (int i = 0; i < conn_count; i++) {
    if (conns[i].role == ROLE_PUBLISHER) expected += conns[i].seq * subscribers_matching(conns[i].global_id);
  }
  return expected;
}

static bool publishers_settled(void) {
  for (int i = 0; i < conn_count; i++) {
    const conn_t *c = &conns[i];
    if (c->role != ROLE_PUBLISHER || c->state != ST_READY) continue;
    if (buffer_pending(&c->out) || c->inflight) return false;
  }
  return true;
}

static void start_run(uint64_t now) {
  phase = PHASE_RUN;
  stats.t_go = now;
  stats.cpu_at_go = cpu_seconds();
  stats.t_run_end = now + (uint64_t)(opt.duration_s * 1e9);
  int publishers = 0;
  for (int i = 0; i < conn_count; i++) publishers += conns[i].role == ROLE_PUBLISHER;
  for (int i = 0, k = 0; i < conn_count; i++) {
    conn_t *c = &conns[i];
    if (c->role != ROLE_PUBLISHER) continue;
    if (opt.rate > 0) {
      c->interval_ns = (uint64_t)(1e9 * publishers / opt.rate);
      /* Stagger publishers so the total rate is smooth, not bursts. */
      c->next_due_ns = now + c->interval_ns * (uint64_t)k / (uint64_t)publishers;
    }
    k++;
    set_interest(c, wants_writable(c));
  }
}

static void finish_connections(void) {
  static const uint8_t disconnect[2] = {0xe0, 0};
  for (int i = 0; i < conn_count; i++) {
    conn_t *c = &conns[i];
    if (c->state == ST_CLOSED || c->state == ST_UNUSED) continue;
    if (c->state == ST_READY) buffer_put(&c->out, disconnect, 2);
    if (buffer_pending(&c->out)) {
      ssize_t ignored = send(c->fd, c->out.data + c->out.start, buffer_pending(&c->out), MSG_NOSIGNAL);
      (void)ignored;
    }
    conn_close(c);
  }
}

static struct timespec timeout_until(uint64_t now, uint64_t deadline) {
  uint64_t wait = deadline > now ? deadline - now : 0;
  if (wait > 100000000ull) wait = 100000000ull;
  struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000ull), .tv_nsec = (long)(wait % 1000000000ull)};
  return ts;
}

static void event_loop(bool idle_mode) {
  struct epoll_event events[MAX_EVENTS];
  uint64_t connect_deadline = monotonic_ns() + (uint64_t)(opt.connect_timeout_s * 1e9);
  uint64_t barrier_deadline = 0, drain_start = 0;
  uint64_t hold_end = 0;
  while (phase != PHASE_DONE) {
    uint64_t now = monotonic_ns();
    uint64_t wake = now + 100000000ull;

    if (phase == PHASE_CONNECT) {
      open_more_connections();
      if (resolved_count == conn_count) {
        if (!idle_mode && stats.connect_failures) die("some clients could not connect or subscribe");
        phase = PHASE_BARRIER;
        barrier_deadline = now + 120ull * 1000000000ull;
        hold_end = now + (uint64_t)(opt.hold_s * 1e9);
        stats.cpu_at_connected = cpu_seconds();
        fprintf(stderr, "READY %d\n", ready_count);
        fflush(stderr);
      } else if (now > connect_deadline) {
        if (!idle_mode) die("timed out connecting clients");
        for (int i = 0; i < conn_count; i++) {
          if (conns[i].state == ST_CONNECTING || conns[i].state == ST_WAIT_CONNACK) {
            conn_lost(&conns[i], "connect timeout", ETIMEDOUT);
          }
        }
        next_to_open = conn_count;
        resolved_count = conn_count;
        continue;
      }
    }
    if (phase == PHASE_BARRIER) {
      /* Without a barrier an idle run holds its connections for --hold. */
      bool go = opt.barrier ? released : (!idle_mode || now >= hold_end);
      if (go || now > barrier_deadline) {
        if (idle_mode) {
          phase = PHASE_DONE;
          break;
        }
        start_run(now);
      } else if (!opt.barrier) {
        wake = hold_end;
      }
    }
    if (phase == PHASE_RUN) {
      if (now >= stats.t_run_end) {
        phase = PHASE_DRAIN;
        drain_start = now;
        for (int i = 0; i < conn_count; i++) set_interest(&conns[i], wants_writable(&conns[i]));
      } else {
        if (opt.rate > 0) {
          uint64_t next_due = stats.t_run_end;
          for (int i = 0; i < conn_count; i++) {
            conn_t *c = &conns[i];
            if (c->role != ROLE_PUBLISHER || c->state != ST_READY) continue;
            publish_due(c, now);
            if (window_open(c) && c->next_due_ns < next_due) next_due = c->next_due_ns;
          }
          wake = next_due;
        } else {
          /* Deliveries may have reopened end-to-end windows. */
          for (int i = 0; i < conn_count; i++) {
            if (conns[i].role == ROLE_PUBLISHER) set_interest(&conns[i], wants_writable(&conns[i]));
          }
          wake = stats.t_run_end;
        }
      }
    }
    if (phase == PHASE_DRAIN) {
      bool all_here = opt.pubs == opt.total_pubs && opt.subs == opt.total_subs && publishers_settled() &&
                      stats.received >= expected_deliveries();
      uint64_t last_activity = stats.t_last_rx > drain_start ? stats.t_last_rx : drain_start;
      bool quiet = opt.subs == 0 ? publishers_settled()
                                 : now - last_activity >= (uint64_t)(opt.quiet_s * 1e9) && publishers_settled();
      if (all_here || quiet || now - drain_start >= (uint64_t)(opt.drain_timeout_s * 1e9)) {
        phase = PHASE_DONE;
        break;
      }
      wake = now + 10000000ull;
    }

    if (opt.coalesce_us > 0 && opt.rate <= 0 && phase == PHASE_RUN) {
      /* Let bytes pile up in the sockets so each read and write moves many
       * messages: the generator then costs far less CPU per message than the
       * broker and stays off the critical path. Only for unlimited rate,
       * whose latencies are queueing figures anyway. */
      struct timespec pause = {.tv_sec = 0, .tv_nsec = opt.coalesce_us * 1000L};
      nanosleep(&pause, NULL);
    }
    struct timespec timeout = timeout_until(now, wake);
    int n = epoll_pwait2(epoll_fd, events, MAX_EVENTS, &timeout, NULL);
    if (n < 0 && errno == ENOSYS) {
      n = epoll_wait(epoll_fd, events, MAX_EVENTS, (int)(timeout.tv_sec * 1000 + timeout.tv_nsec / 1000000));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait failed");
    }
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == &stdin_marker) {
        on_stdin();
        continue;
      }
      conn_t *c = events[i].data.ptr;
      if (c->state == ST_CLOSED) continue;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (c->state == ST_CONNECTING && (events[i].events & (EPOLLHUP | EPOLLERR))) {
          on_writable(c); /* reports the connect error */
          continue;
        }
        on_readable(c);
      }
      if (c->state != ST_CLOSED && (events[i].events & EPOLLOUT)) on_writable(c);
    }
  }
  stats.t_done = monotonic_ns();
}

/* ---------- output ---------- */

static void print_histogram(void) {
  printf("\"hist\":[");
  bool first = true;
  for (int i = 0; i < HIST_BUCKETS; i++) {
    if (!stats.hist[i]) continue;
    printf("%s[%d,%llu]", first ? "" : ",", i, (unsigned long long)stats.hist[i]);
    first = false;
  }
  printf("]");
}

static void print_error_field(void) {
  printf("\"first_error\":\"");
  for (const char *p = stats.first_error; *p; p++) {
    if (*p == '"' || *p == '\\') putchar('\\');
    putchar(*p);
  }
  printf("\"");
}

static void print_pubsub_result(double cpu_s) {
  double wall_s = (double)(stats.t_done - stats.t_go) / 1e9;
  double active_s = stats.t_last_rx > stats.t_go ? (double)(stats.t_last_rx - stats.t_go) / 1e9 : 0;
  uint64_t expected = expected_deliveries();
  bool all_here = opt.pubs == opt.total_pubs && opt.subs == opt.total_subs;
  printf("{\"mode\":\"pubsub\",\"pubs\":%d,\"subs\":%d,\"qos\":%d,\"payload\":%d,\"rate\":%.0f,", opt.pubs, opt.subs,
         opt.qos, opt.payload, opt.rate);
  printf("\"duration_s\":%.3f,\"sent\":%llu,\"acked\":%llu,\"unknown_acks\":%llu,\"expected\":%llu,", opt.duration_s,
         (unsigned long long)stats.sent, (unsigned long long)stats.acked, (unsigned long long)stats.unknown_acks,
         (unsigned long long)expected);
  printf("\"received\":%llu,\"lost\":%lld,\"duplicates\":%llu,\"reordered\":%llu,\"gaps\":%llu,\"foreign\":%llu,",
         (unsigned long long)stats.received,
         all_here ? (long long)expected - (long long)stats.received : -1LL, (unsigned long long)stats.duplicates,
         (unsigned long long)stats.reordered, (unsigned long long)stats.gaps, (unsigned long long)stats.foreign);
  /* Delivered rate while the load is applied; what arrives in the drain
   * afterwards is backlog the broker queued, reported as drain_s. */
  double drain_s = stats.t_last_rx > stats.t_run_end ? (double)(stats.t_last_rx - stats.t_run_end) / 1e9 : 0;
  printf("\"received_in_window\":%llu,\"msgs_per_s\":%.1f,\"msgs_per_s_overall\":%.1f,\"sent_per_s\":%.1f,"
         "\"drain_s\":%.3f,",
         (unsigned long long)stats.received_in_window, (double)stats.received_in_window / opt.duration_s,
         active_s > 0 ? (double)stats.received / active_s : 0, (double)stats.sent / opt.duration_s, drain_s);
  printf("\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f},",
         hist_percentile(0.50) / 1e3, hist_percentile(0.99) / 1e3, hist_percentile(0.999) / 1e3,
         stats.latency_max_ns / 1e3,
         stats.latency_count ? (double)stats.latency_sum_ns / (double)stats.latency_count / 1e3 : 0);
  printf("\"schedule_slip_max_us\":%.1f,\"late_sends\":%llu,", stats.schedule_slip_max_ns / 1e3,
         (unsigned long long)stats.late_sends);
  printf("\"cpu_s\":%.3f,\"wall_s\":%.3f,\"cpu_pct\":%.1f,\"errors\":%llu,\"peer_closed\":%llu,", cpu_s, wall_s,
         wall_s > 0 ? 100.0 * cpu_s / wall_s : 0, (unsigned long long)stats.errors,
         (unsigned long long)stats.peer_closed);
  print_error_field();
  printf(",");
  print_histogram();
  printf("}\n");
}

static void print_idle_result(double cpu_s) {
  double connect_s = stats.t_connected > stats.t_connect_start
                         ? (double)(stats.t_connected - stats.t_connect_start) / 1e9
                         : 0;
  printf("{\"mode\":\"idle\",\"connections\":%d,\"connected\":%d,\"connect_failures\":%llu,", conn_count, ready_count,
         (unsigned long long)stats.connect_failures);
  printf("\"connect_s\":%.6f,\"connect_rate\":%.1f,\"peer_closed\":%llu,\"cpu_s\":%.3f,\"cpu_pct\":%.1f,", connect_s,
         connect_s > 0 ? ready_count / connect_s : 0, (unsigned long long)stats.peer_closed, cpu_s,
         connect_s > 0 ? 100.0 * cpu_s / connect_s : 0);
  print_error_field();
  printf("}\n");
}

/* ---------- setup ---------- */

static void usage(void) {
  fprintf(stderr,
          "usage: mqttload --mode pubsub|idle [options]\n"
          "  --host 127.0.0.1 --port 1883 --sub-port PORT (subscribers connect there: another cluster node)\n"
          "  pubsub: --pubs P --subs S --qos 0|1 --payload BYTES --rate MSGS_PER_S(0=unlimited)\n"
          "          --duration S --inflight N --topology pair|wildcard --persistent --prefix TOPIC\n"
          "          --pub-offset N --sub-offset N --total-pubs N --total-subs N --nonce HEX\n"
          "          --drain-timeout S --quiet S --e2e-window N (unlimited rate: max undelivered per subscriber)\n"
          "          --coalesce-us N (unlimited rate: pause between polls so reads batch)\n"
          "          --warmup S (latency only from messages sent after the first S seconds)\n"
          "  idle:   --connections N --conn-offset N --src-ips K --hold S --max-pending N\n"
          "  both:   --barrier --keepalive S --connect-timeout S\n");
  exit(1);
}

static void parse_options(int argc, char **argv) {
  static const struct option long_options[] = {
      {"mode", required_argument, 0, 'm'},         {"host", required_argument, 0, 'h'},
      {"port", required_argument, 0, 'p'},         {"pubs", required_argument, 0, 'P'},
      {"subs", required_argument, 0, 'S'},         {"pub-offset", required_argument, 0, 1},
      {"sub-offset", required_argument, 0, 2},     {"total-pubs", required_argument, 0, 3},
      {"total-subs", required_argument, 0, 4},     {"qos", required_argument, 0, 'q'},
      {"payload", required_argument, 0, 's'},      {"rate", required_argument, 0, 'r'},
      {"duration", required_argument, 0, 'd'},     {"inflight", required_argument, 0, 5},
      {"topology", required_argument, 0, 6},       {"persistent", no_argument, 0, 7},
      {"prefix", required_argument, 0, 8},         {"connections", required_argument, 0, 'n'},
      {"conn-offset", required_argument, 0, 9},    {"src-ips", required_argument, 0, 10},
      {"hold", required_argument, 0, 11},          {"barrier", no_argument, 0, 12},
      {"drain-timeout", required_argument, 0, 13}, {"quiet", required_argument, 0, 14},
      {"connect-timeout", required_argument, 0, 15}, {"keepalive", required_argument, 0, 16},
      {"nonce", required_argument, 0, 17},         {"max-pending", required_argument, 0, 18},
 {"e2e-window", required_argument, 0, 19},
      {"coalesce-us", required_argument, 0, 20},   {"sub-port", required_argument, 0, 21},
      {"warmup", required_argument, 0, 22},
      {"help", no_argument, 0, '?'},               {0, 0, 0, 0},
  };
  int ch;
  while ((ch = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
    switch (ch) {
    case 'm': opt.mode = optarg; break;
    case 'h': opt.host = optarg; break;
    case 'p': opt.port = atoi(optarg); break;
    case 21: opt.sub_port = atoi(optarg); break;
    case 'P': opt.pubs = atoi(optarg); break;
    case 'S': opt.subs = atoi(optarg); break;
    case 1: opt.pub_offset = atoi(optarg); break;
    case 2: opt.sub_offset = atoi(optarg); break;
    case 3: opt.total_pubs = atoi(optarg); break;
    case 4: opt.total_subs = atoi(optarg); break;
    case 'q': opt.qos = atoi(optarg); break;
    case 's': opt.payload = atoi(optarg); break;
    case 'r': opt.rate = atof(optarg); break;
    case 'd': opt.duration_s = atof(optarg); break;
    case 5: opt.inflight = atoi(optarg); break;
    case 6: opt.wildcard = strcmp(optarg, "wildcard") == 0; break;
    case 7: opt.persistent = true; break;
    case 8: opt.prefix = optarg; break;
    case 'n': opt.connections = atoi(optarg); break;
    case 9: opt.conn_offset = atoi(optarg); break;
    case 10: opt.src_ips = atoi(optarg); break;
    case 11: opt.hold_s = atof(optarg); break;
    case 12: opt.barrier = true; break;
    case 13: opt.drain_timeout_s = atof(optarg); break;
    case 14: opt.quiet_s = atof(optarg); break;
    case 15: opt.connect_timeout_s = atof(optarg); break;
    case 16: opt.keepalive = atoi(optarg); break;
    case 17: opt.nonce = (uint32_t)strtoul(optarg, NULL, 16); break;
    case 18: opt.max_pending = atoi(optarg); break;
    case 19: opt.e2e_window = atoi(optarg); break;
    case 20: opt.coalesce_us = atoi(optarg); break;
    case 22: opt.warmup_s = atof(optarg); break;
    default: usage();
    }
  }
  if (opt.total_pubs < 0) opt.total_pubs = opt.pub_offset + opt.pubs;
  if (opt.total_subs < 0) opt.total_subs = opt.sub_offset + opt.subs;
  if (opt.qos < 0 || opt.qos > 1) die("--qos must be 0 or 1");
  if (opt.payload < PAYLOAD_HEADER_BYTES) die("--payload must be at least 24 bytes");
  if (opt.inflight < 1 || opt.inflight > 60000) die("--inflight must be 1..60000");
  if (opt.src_ips < 0 || opt.src_ips > 254) die("--src-ips must be 0..254");
  if (opt.total_pubs < 1 && strcmp(opt.mode, "pubsub") == 0) die("--total-pubs must be at least 1");
  if (opt.e2e_window < 0) die("--e2e-window must be >= 0");
  if (opt.coalesce_us < 0 || opt.coalesce_us > 100000) die("--coalesce-us must be 0..100000");
  if (opt.warmup_s < 0 || opt.warmup_s >= opt.duration_s) die("--warmup must be in [0, --duration)");
  if (!opt.nonce) opt.nonce = (uint32_t)(monotonic_ns() ^ ((uint64_t)getpid() << 16)) | 1u;
}

int main(int argc, char **argv) {
  parse_options(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGALRM, on_hard_timeout);

  /* The fd limit bounds the idle test; use all the hard limit allows. */
  struct rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  broker_addr.sin_family = AF_INET;
  broker_addr.sin_port = htons((uint16_t)opt.port);
  if (inet_pton(AF_INET, opt.host, &broker_addr.sin_addr) != 1) die("--host must be an IPv4 address");
  subscriber_addr = broker_addr;
  if (opt.sub_port > 0) subscriber_addr.sin_port = htons((uint16_t)opt.sub_port);

  bool idle_mode = strcmp(opt.mode, "idle") == 0;
  if (!idle_mode && strcmp(opt.mode, "pubsub") != 0) usage();
  double budget = opt.connect_timeout_s + 120 + opt.duration_s + opt.drain_timeout_s + opt.hold_s + 30;
  alarm((unsigned)budget);

  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) die("epoll_create1 failed");
  if (opt.barrier) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &stdin_marker};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, STDIN_FILENO, &ev) < 0) die("--barrier needs stdin to be a pipe");
  }

  conn_count = idle_mode ? opt.connections : opt.subs + opt.pubs;
  conns = calloc((size_t)(conn_count > 0 ? conn_count : 1), sizeof *conns);
  if (!conns) die("out of memory");
  /* Subscribers first: they must be subscribed before anyone publishes. */
  for (int i = 0; i < conn_count; i++) {
    conn_t *c = &conns[i];
    c->fd = -1;
    if (idle_mode) {
      c->role = ROLE_IDLE;
      c->global_id = (uint32_t)(opt.conn_offset + i);
    } else if (i < opt.subs) {
      c->role = ROLE_SUBSCRIBER;
      c->global_id = (uint32_t)(opt.sub_offset + i);
      c->streams = calloc((size_t)opt.total_pubs, sizeof *c->streams);
      if (!c->streams) die("out of memory");
      for (int k = 0; k < opt.total_pubs; k++) c->streams[k].max_seq = -1;
    } else {
      c->role = ROLE_PUBLISHER;
      c->global_id = (uint32_t)(opt.pub_offset + i - opt.subs);
      c->next_packet_id = 1;
      build_publish_template(c);
      if (opt.qos) {
        c->unacked_ids = calloc(65536 / 8, 1);
        if (!c->unacked_ids) die("out of memory");
      }
    }
  }

  if (!idle_mode) {
    local_publisher_by_id = calloc((size_t)opt.total_pubs, sizeof *local_publisher_by_id);
    if (!local_publisher_by_id) die("out of memory");
    for (int i = 0; i < conn_count; i++) {
      conn_t *c = &conns[i];
      if (c->role != ROLE_PUBLISHER) continue;
      if (c->global_id >= (uint32_t)opt.total_pubs) die("publisher id beyond --total-pubs");
      local_publisher_by_id[c->global_id] = c;
      c->local_subs = calloc((size_t)(opt.subs > 0 ? opt.subs : 1), sizeof *c->local_subs);
      if (!c->local_subs) die("out of memory");
      for (int k = 0; k < conn_count; k++) {
        conn_t *sub = &conns[k];
        if (sub->role != ROLE_SUBSCRIBER) continue;
        if (opt.wildcard || sub->global_id % (uint32_t)opt.total_pubs == c->global_id) {
          c->local_subs[c->local_sub_count++] = sub;
        }
      }
    }
  }

  stats.t_connect_start = monotonic_ns();
  event_loop(idle_mode);
  /* CPU spent in the measured phase: connecting (idle) or publishing and
   * draining (pubsub). */
  double cpu_s = idle_mode ? stats.cpu_at_connected : cpu_seconds() - stats.cpu_at_go;
  finish_connections();

  for (int i = 0; i < conn_count; i++) {
    if (conns[i].role != ROLE_SUBSCRIBER) continue;
    for (int k = 0; k < opt.total_pubs; k++) {
      const stream_t *s = &conns[i].streams[k];
      if (s->max_seq >= 0) stats.gaps += (uint64_t)(s->max_seq + 1) - s->unique;
    }
  }
  if (idle_mode) {
    print_idle_result(cpu_s);
  } else {
    print_pubsub_result(cpu_s);
  }
  return 0;
}
