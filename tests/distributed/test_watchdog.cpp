// The communicator's watchdog reports a hung call instead of printing and exiting:
// the installed handler gets a HungCall naming the call, the rank, the world size and
// the seconds waited, once, and then the default end runs (in MpiCommunicator:
// MPI_Abort with exit code 3). No MPI here: the Watchdog is what MpiCommunicator
// marks its calls on, so a call that never ends is simply a begin() without end().
// The whole path under mpirun (a peer that stops answering) is
// PretrainDist.AHungRankIsCaughtByTheWatchdog (mpi_zero) and
// PretrainDist.AStoppedRankIsReportedByTeddy (`teddy pretrain`).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "teddy/distributed/watchdog.h"

using namespace teddy::dist;

namespace {

using Clock = std::chrono::steady_clock;

// What the handler and the end action saw, in order.
struct Record {
  std::mutex mu;
  std::vector<HungCall> hung;
  std::vector<std::string> order;  // "handler", "end"
  std::atomic<bool> ended{false};
  HangHandler handler() {
    return [this](const HungCall& h) {
      std::lock_guard<std::mutex> lk(mu);
      hung.push_back(h);
      order.push_back("handler");
    };
  }
  std::function<void()> end() {
    return [this] {
      {
        std::lock_guard<std::mutex> lk(mu);
        order.push_back("end");
      }
      ended = true;
    };
  }
  bool wait_ended(double seconds) {
    const auto until = Clock::now() + std::chrono::duration<double>(seconds);
    while (!ended && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return ended;
  }
};

}  // namespace

TEST(Watchdog, AHungCallIsReportedOnceWithItsDescriptionThenTheJobEnds) {
  Record rec;
  const double timeout = 0.2;
  Watchdog dog(timeout, /*rank=*/1, /*size=*/4, rec.handler(), rec.end(), /*poll_s=*/0.01);
  const auto t0 = Clock::now();
  dog.begin("Allreduce");  // and never end(): a peer that does not answer
  ASSERT_TRUE(rec.wait_ended(10)) << "the watchdog never fired";
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // it must not report again
  std::lock_guard<std::mutex> lk(rec.mu);
  ASSERT_EQ(rec.hung.size(), 1u);
  EXPECT_EQ(rec.order, (std::vector<std::string>{"handler", "end"}));  // report first, then the default end
  const HungCall& h = rec.hung[0];
  EXPECT_EQ(h.call, "Allreduce");
  EXPECT_EQ(h.rank, 1);
  EXPECT_EQ(h.size, 4);
  EXPECT_EQ(h.timeout_s, timeout);
  EXPECT_GT(h.waited_s, timeout);    // reported only past the limit
  EXPECT_LE(h.waited_s, elapsed);    // and measured from the call's start
  EXPECT_TRUE(dog.fired());
  // What `teddy` prints after "teddy: error on rank R of W: " (tests/distributed/
  // test_pretrain_dist.cpp looks for "waited more than 5 s").
  EXPECT_EQ(h.message(), "MPI Allreduce waited more than 0.2 s (dist.timeout_s); a peer rank is hung or gone");
}

TEST(Watchdog, CallsThatEndInTimeAreNotReported) {
  Record rec;
  // Calls of 20 ms against a 0.5 s limit (wide, so a loaded machine's scheduling
  // delays do not make a short call look hung), for more than two limits in all.
  Watchdog dog(0.5, 0, 2, rec.handler(), rec.end(), 0.01);
  const auto until = Clock::now() + std::chrono::milliseconds(1200);
  while (Clock::now() < until) {
    dog.begin("Reduce_scatter");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    dog.end();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // idle time between calls is not a wait either
  }
  EXPECT_FALSE(rec.ended);
  EXPECT_FALSE(dog.fired());
  EXPECT_TRUE(rec.hung.empty());
}

TEST(Watchdog, TheNameIsTheCallInFlight) {
  Record rec;
  Watchdog dog(0.2, 0, 2, rec.handler(), rec.end(), 0.01);
  dog.begin("Allreduce");
  dog.end();
  dog.begin("Barrier");  // the one that hangs
  ASSERT_TRUE(rec.wait_ended(10));
  std::lock_guard<std::mutex> lk(rec.mu);
  ASSERT_EQ(rec.hung.size(), 1u);
  EXPECT_EQ(rec.hung[0].call, "Barrier");
}

// No handler installed: nothing is reported, but the job still ends (the default end
// runs), so a hung collective never blocks a job forever.
TEST(Watchdog, WithoutAHandlerTheJobStillEnds) {
  Record rec;
  Watchdog dog(0.1, 0, 2, HangHandler{}, rec.end(), 0.01);
  dog.begin("Wait");
  ASSERT_TRUE(rec.wait_ended(10));
  std::lock_guard<std::mutex> lk(rec.mu);
  EXPECT_EQ(rec.order, (std::vector<std::string>{"end"}));
}

// timeout 0 ([dist] timeout_s = 0): no watchdog thread, nothing is ever reported.
TEST(Watchdog, ZeroTimeoutNeverFires) {
  Record rec;
  Watchdog dog(0, 0, 2, rec.handler(), rec.end(), 0.01);
  dog.begin("Allreduce");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(rec.ended);
  EXPECT_TRUE(rec.hung.empty());
}
