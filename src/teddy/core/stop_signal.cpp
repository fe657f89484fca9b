#include "teddy/core/stop_signal.h"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <csignal>

namespace teddy {

namespace {

volatile std::sig_atomic_t g_stop = 0;
std::vector<int> g_installed;

extern "C" void on_stop_signal(int signo) {
  if (g_stop != 0) {
    // A second request: the default action (termination) now. The signal is blocked
    // while its handler runs, so the raise is delivered as soon as the handler returns.
    ::signal(signo, SIG_DFL);
    ::raise(signo);
    return;
  }
  g_stop = signo;
}

struct Named {
  const char* name;
  int signo;
};
constexpr Named kStopSignals[] = {{"TERM", SIGTERM}, {"INT", SIGINT},   {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
                                  {"HUP", SIGHUP},   {"QUIT", SIGQUIT}, {"XCPU", SIGXCPU}};

}  // namespace

void install_stop_handlers(const std::vector<int>& signals) {
  restore_default_stop_handlers();
  g_stop = 0;
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : signals) {
    if (::sigaction(s, &sa, nullptr) == 0) g_installed.push_back(s);
  }
}

void restore_default_stop_handlers() {
  for (int s : g_installed) ::signal(s, SIG_DFL);
  g_installed.clear();
}

int stop_requested() { return static_cast<int>(g_stop); }
void request_stop(int signo) { g_stop = signo; }
void clear_stop_request() { g_stop = 0; }

int stop_signal_from_name(const std::string& name) {
  std::string n;
  for (char c : name) n += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (n.rfind("SIG", 0) == 0) n = n.substr(3);
  for (const Named& s : kStopSignals)
    if (n == s.name) return s.signo;
  return 0;
}

std::string signal_name(int signo) {
  for (const Named& s : kStopSignals)
    if (s.signo == signo) return std::string("SIG") + s.name;
  return "signal " + std::to_string(signo);
}

}  // namespace teddy
