// ddp_link_relay: a host link with delay and loss, for launch/netns_cluster.sh on kernels without
// netem (sch_netem). Relays Ethernet frames between two interfaces of one network namespace:
// frames arriving on --from leave on --to after --delay, a --loss share of them dropped at
// random; frames arriving on --to leave on --from at once (the other host's egress has a relay of
// its own). User-space delay, as Mahimahi's DelayShell does it, through packet sockets.
//   ddp_link_relay --from IF --to IF [--delay 2ms] [--loss 1%] [--seed N] [--ready-file PATH]
// Runs until killed. Frames keep their virtio-net header (PACKET_VNET_HDR): a TCP segment
// offloaded as one 64 KB frame crosses as one frame, so a per-frame loss drops all its
// segments; the harness sets gso_max_segs 1 on a lossy host's interface, which makes every
// frame one packet.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <random>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Set by SIGTERM and SIGINT: the relay reports what it did and ends.
volatile std::sig_atomic_t stop_requested = 0;

// A virtio-net header (struct virtio_net_hdr, 10 bytes: linux/virtio_net.h does not compile as
// C++) plus the largest offloaded frame a veth hands over (64 KB of payload).
constexpr size_t kVirtioNetHeaderBytes = 10;
constexpr size_t kMaxFrame = kVirtioNetHeaderBytes + 65536 + 256;
// Frames waiting out their delay, at most: 64 MB is 0.5 s of a 1 Gbit/s link; beyond it frames
// are dropped, as a full switch queue would.
constexpr size_t kMaxQueuedBytes = size_t{64} << 20;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

// A packet socket bound to one interface, with frames' offload headers, without the frames this
// socket sends itself.
int open_interface(const std::string& name) {
  const unsigned index = if_nametoindex(name.c_str());
  if (index == 0) fail("interface " + name);
  const int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (fd < 0) fail("packet socket on " + name + " (needs CAP_NET_RAW)");
  const int on = 1;
  // Room for bursts both ways: a few 64 KB offloaded segments fill the default 208 KB, and a
  // full receive buffer drops frames (the relay's PACKET_STATISTICS count them).
  const int buffer_bytes = 32 << 20;
  for (const int option : {SO_SNDBUFFORCE, SO_RCVBUFFORCE}) {
    if (setsockopt(fd, SOL_SOCKET, option, &buffer_bytes, sizeof buffer_bytes) != 0)
      fail("socket buffers on " + name);
  }
  if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &on, sizeof on) != 0)
    fail("PACKET_VNET_HDR on " + name);
  if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &on, sizeof on) != 0)
    fail("PACKET_IGNORE_OUTGOING on " + name);
  // Every frame, whatever its destination address: this interface stands for a switch port.
  packet_mreq promiscuous{};
  promiscuous.mr_ifindex = static_cast<int>(index);
  promiscuous.mr_type = PACKET_MR_PROMISC;
  if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &promiscuous, sizeof promiscuous) != 0)
    fail("promiscuous mode on " + name);
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_ALL);
  address.sll_ifindex = static_cast<int>(index);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    fail("binding to " + name);
  return fd;
}

// "2ms", "500us", "0" -> a duration; anything else is an error naming the option.
std::chrono::nanoseconds parse_delay(const std::string& text) {
  std::smatch match;
  if (!std::regex_match(text, match, std::regex(R"((\d+(?:\.\d+)?)(s|ms|us)?)")))
    throw std::invalid_argument("--delay " + text + ": use e.g. 2ms, 500us or 0");
  const double value = std::stod(match[1]);
  const double scale = match[2] == "s" ? 1e9 : match[2] == "us" ? 1e3 : 1e6;
  return std::chrono::nanoseconds(static_cast<int64_t>(value * scale));
}

// "1%", "0.5%" -> a probability.
double parse_loss(const std::string& text) {
  std::smatch match;
  if (!std::regex_match(text, match, std::regex(R"((\d+(?:\.\d+)?)%)")) ||
      std::stod(match[1]) > 100)
    throw std::invalid_argument("--loss " + text + ": use a percentage, e.g. 1%");
  return std::stod(match[1]) / 100;
}

struct Frame {
  Clock::time_point due;
  std::vector<char> bytes;  // virtio-net header, then the Ethernet frame
};

class Relay {
 public:
  Relay(int from, int to, std::chrono::nanoseconds delay, double loss, uint64_t seed)
      : from_(from), to_(to), delay_(delay), loss_(loss), random_(seed) {}

  // Until SIGTERM or SIGINT, which `waiting` (the signal mask while waiting for frames) lets in;
  // they are blocked at all other times, so none comes between the check and the wait.
  void run(const sigset_t& waiting) {
    // A frame's wake-up is due to the microsecond; the default slack (50 us) would add to every
    // delay.
    if (prctl(PR_SET_TIMERSLACK, 1) != 0) fail("PR_SET_TIMERSLACK");
    // A real link's delay does not grow when its hosts compute. The relay shares this machine's
    // cores with the ranks, so it takes them when a frame is due: as an ordinary process it woke
    // milliseconds late while 4 ranks computed on 2 cores, and W2 on 2 x 2 hosts spent 49 ms a
    // step communicating where a back-to-back sweep of the same all-reduce took 27. It uses
    // little CPU (a copy per frame).
    const sched_param priority{sched_get_priority_min(SCHED_FIFO) + 9};
    if (sched_setscheduler(0, SCHED_FIFO, &priority) != 0)
      std::cerr << "ddp_link_relay: no real-time priority (" << std::strerror(errno)
                << "): delays grow while the hosts' cores are busy\n";
    std::vector<char> buffer(kMaxFrame);
    while (!stop_requested) {
      pollfd ready[2] = {{from_, POLLIN, 0}, {to_, POLLIN, 0}};
      timespec wait{};
      timespec* timeout = nullptr;
      if (!queue_.empty()) {
        const auto left = std::max(Clock::duration::zero(), queue_.front().due - Clock::now());
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
        wait = {static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
        timeout = &wait;
      }
      if (ppoll(ready, 2, timeout, &waiting) < 0) {
        if (errno == EINTR) continue;
        fail("ppoll");
      }
      while (const ssize_t size = receive(from_, buffer)) delay_or_drop(buffer, size);
      while (const ssize_t size = receive(to_, buffer)) send(from_, buffer.data(), size);
      const auto now = Clock::now();
      while (!queue_.empty() && queue_.front().due <= now) {
        send(to_, queue_.front().bytes.data(), queue_.front().bytes.size());
        queued_bytes_ -= queue_.front().bytes.size();
        queue_.pop_front();
      }
    }
  }

  // One line for the harness's log, e.g. "12000 frames, 118 dropped (0.98%), 5 ms delay, 0
  // overflowed": frames are those arriving on --from; overflowed, frames the kernel dropped
  // because a socket's receive buffer was full (either way; 0 unless the relay fell behind).
  std::string summary() const {
    unsigned overflowed = 0;
    for (const int fd : {from_, to_}) {
      tpacket_stats stats{};
      socklen_t size = sizeof stats;
      if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &size) != 0)
        fail("PACKET_STATISTICS");
      overflowed += stats.tp_drops;
    }
    char line[200];
    std::snprintf(
        line, sizeof line, "%llu frames, %llu dropped (%.2f%%), %.3g ms delay, %u overflowed",
        static_cast<unsigned long long>(frames_), static_cast<unsigned long long>(dropped_),
        frames_ ? 100.0 * static_cast<double>(dropped_) / static_cast<double>(frames_) : 0.0,
        static_cast<double>(delay_.count()) / 1e6, overflowed);
    return line;
  }

 private:
  // The next waiting frame's size, or 0 when there is none.
  static ssize_t receive(int fd, std::vector<char>& buffer) {
    const ssize_t size = recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (size < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
      fail("receiving a frame");
    }
    if (static_cast<size_t>(size) > buffer.size())
      throw std::runtime_error("a frame of " + std::to_string(size) + " bytes, larger than " +
                               std::to_string(buffer.size()));
    return size;
  }

  // Sends wait for room in the socket's buffer (receives never wait): a frame dropped there
  // would be a loss the link was not asked for (TCP retransmitted 45-135 segments a run then).
  // A packet socket sends a frame whole or not at all; a shorter count would be a corrupt frame.
  static void send(int fd, const char* bytes, size_t size) {
    ssize_t sent;
    while ((sent = ::send(fd, bytes, size, 0)) < 0) {
      if (errno != EINTR) fail("sending a frame");
    }
    if (static_cast<size_t>(sent) != size)
      throw std::runtime_error("a frame of " + std::to_string(size) + " bytes sent as " +
                               std::to_string(sent));
  }

  void delay_or_drop(const std::vector<char>& buffer, ssize_t size) {
    ++frames_;
    if ((loss_ > 0 && std::uniform_real_distribution<double>(0, 1)(random_) < loss_) ||
        queued_bytes_ + size > kMaxQueuedBytes) {
      ++dropped_;
      return;
    }
    if (delay_.count() == 0) return send(to_, buffer.data(), size);
    queue_.push_back({Clock::now() + delay_, {buffer.begin(), buffer.begin() + size}});
    queued_bytes_ += size;
  }

  int from_, to_;
  std::chrono::nanoseconds delay_;
  double loss_;
  std::mt19937_64 random_;
  std::deque<Frame> queue_;  // in arrival order, which is due order: the delay is constant
  size_t queued_bytes_ = 0;
  uint64_t frames_ = 0, dropped_ = 0;  // of the delayed direction
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ddp_link_relay: relays frames between two interfaces with delay and loss"};
  std::string from, to, delay = "0", loss = "0%", ready_file;
  uint64_t seed = 1;
  app.add_option("--from", from, "interface whose arriving frames are delayed and dropped")
      ->required();
  app.add_option("--to", to, "interface they leave on (and whose frames go back undelayed)")
      ->required();
  app.add_option("--delay", delay, "one-way delay, e.g. 2ms");
  app.add_option("--loss", loss, "share of frames dropped, e.g. 1%");
  app.add_option("--seed", seed, "seed of the loss's random draws");
  app.add_option("--ready-file", ready_file, "created once both interfaces are open");
  CLI11_PARSE(app, argc, argv);
  try {
    Relay relay(open_interface(from), open_interface(to), parse_delay(delay), parse_loss(loss),
                seed);
    sigset_t stops, waiting;
    sigemptyset(&stops);
    for (const int signal : {SIGTERM, SIGINT}) {
      sigaddset(&stops, signal);
      struct sigaction on_signal {};
      on_signal.sa_handler = [](int) { stop_requested = 1; };
      if (sigaction(signal, &on_signal, nullptr) != 0) fail("sigaction");
    }
    if (sigprocmask(SIG_BLOCK, &stops, &waiting) != 0) fail("sigprocmask");
    if (!ready_file.empty() && !std::ofstream(ready_file))
      fail("creating the ready file " + ready_file);
    relay.run(waiting);
    // One write of the whole line: several relays share the harness's stderr, and a write of
    // fewer than PIPE_BUF bytes is never interleaved with another's (piecewise << writes were).
    const std::string line = "ddp_link_relay " + from + " -> " + to + ": " + relay.summary() + "\n";
    if (write(STDERR_FILENO, line.data(), line.size()) < 0) return 1;
  } catch (const std::exception& e) {
    std::cerr << "ddp_link_relay: " << e.what() << "\n";
    return 1;
  }
}
