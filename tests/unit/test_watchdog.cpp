// The watchdog's decisions without MPI or a GPU: a fake device collective stands in for NCCL's
// (Note [device watchdog]), and the expiry records the line instead of ending the process.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "comm/watchdog.h"

namespace ddp {
namespace {

using namespace std::chrono_literals;

// Records the first expiry line; later ones cannot happen (the watch stops after one).
struct ExpiryRecorder {
  std::promise<std::string> line;
  std::future<std::string> seen = line.get_future();
  Watchdog::Expiry handler() {
    return [this](const std::string& text) { line.set_value(text); };
  }
  // The line, or "" when none came within `limit`.
  std::string wait(std::chrono::milliseconds limit) {
    return seen.wait_for(limit) == std::future_status::ready ? seen.get() : "";
  }
};

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
}

TEST(Watchdog, DevicePendingPastTimeoutAbortsTheCommunicatorAndNamesStepAndCollective) {
  ExpiryRecorder recorder;
  Watchdog dog(0.3, "[rank 1] ", recorder.handler());
  dog.set_step(45);
  std::atomic<bool> aborted{false};
  int owner = 0;
  dog.track(
      &owner, "NCCL all-reduce (float)", 1024,
      [](std::string&) { return DeviceWorkState::kPending; }, [&] { aborted = true; });
  const auto start = std::chrono::steady_clock::now();
  const std::string line = recorder.wait(3000ms);
  ASSERT_FALSE(line.empty()) << "no expiry";
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms) << "fired before the timeout";
  EXPECT_TRUE(aborted) << "the communicator was not aborted";
  expect_contains(line,
                  "[rank 1] ddp_train: error: watchdog: step 45: NCCL all-reduce (float) "
                  "of 1024 elements has not completed on the device after");
  expect_contains(line, "training.collective_timeout_s: 0.3");
}

TEST(Watchdog, DeviceFailureEndsTheJobAtOnceWithItsError) {
  ExpiryRecorder recorder;
  Watchdog dog(600, "", recorder.handler());
  dog.set_step(7);
  std::atomic<bool> aborted{false};
  int owner = 0;
  dog.track(
      &owner, "NCCL reduce-scatter (ZeRO-1)", 10,
      [](std::string& error) {
        error = "NCCL: remote process exited or there was a network error";
        return DeviceWorkState::kFailed;
      },
      [&] { aborted = true; });
  const std::string line = recorder.wait(2000ms);  // far below the 600 s timeout
  ASSERT_FALSE(line.empty()) << "no expiry";
  EXPECT_TRUE(aborted);
  expect_contains(line,
                  "step 7: NCCL reduce-scatter (ZeRO-1) of 10 elements failed on the "
                  "device: NCCL: remote process exited");
}

TEST(Watchdog, CompletedOrForgottenDeviceWorkNeverExpires) {
  ExpiryRecorder recorder;
  Watchdog dog(0.2, "", recorder.handler());
  int finished_owner = 0, closed_owner = 0;
  std::atomic<int> polls{0};
  dog.track(
      &finished_owner, "NCCL all-reduce (float)", 1,
      [&](std::string&) {
        ++polls;
        return DeviceWorkState::kDone;
      },
      [] {});
  dog.track(
      &closed_owner, "NCCL broadcast", 1, [](std::string&) { return DeviceWorkState::kPending; },
      [] {});
  dog.forget(&closed_owner);  // its communicator was destroyed
  EXPECT_EQ(recorder.wait(800ms), "");
  EXPECT_EQ(polls.load(), 1) << "a finished collective is polled once, then dropped";
}

TEST(Watchdog, HostCollectivePastTimeoutNamesIt) {
  ExpiryRecorder recorder;
  Watchdog dog(0.2, "[rank 0] ", recorder.handler());
  dog.set_step(3);
  {
    auto guard = dog.enter("barrier", 0);
    const std::string line = recorder.wait(3000ms);
    ASSERT_FALSE(line.empty()) << "no expiry";
    expect_contains(line, "[rank 0] ddp_train: error: watchdog: step 3 has been in barrier");
  }
}

TEST(Watchdog, LineEndsWithTheHostsOfAJobOnSeveralHosts) {
  ExpiryRecorder recorder;
  Watchdog dog(0.2, "[rank 0 on h0] ", recorder.handler(), "h0 (ranks 0-1), h1 (ranks 2-3)");
  auto guard = dog.enter("all-reduce (float)", 10);
  const std::string line = recorder.wait(3000ms);
  ASSERT_FALSE(line.empty()) << "no expiry";
  expect_contains(line,
                  "another rank has died or stalled; the job's hosts: h0 (ranks 0-1), h1 "
                  "(ranks 2-3)");
}

TEST(Watchdog, DisabledByATimeoutOfZero) {
  ExpiryRecorder recorder;
  Watchdog dog(0, "", recorder.handler());
  int owner = 0;
  dog.track(
      &owner, "NCCL all-reduce (float)", 1, [](std::string&) { return DeviceWorkState::kPending; },
      [] {});
  auto guard = dog.enter("barrier", 0);
  EXPECT_EQ(recorder.wait(500ms), "");
  dog.forget(&owner);
}

}  // namespace
}  // namespace ddp
