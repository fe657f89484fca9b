#pragma once
// Stop requests from outside the process: a scheduler's preemption (Slurm sends
// SIGTERM, or SIGUSR1 ahead of the time limit with --signal=USR1@120), Ctrl-C. The
// handler only records the signal (async-signal-safe: one sig_atomic_t store); the
// training loop polls it at each step boundary, agrees on it across ranks, writes a
// checkpoint of the completed step and returns (train/trainer.h). A second stop
// signal while one is pending takes the signal's default action at once (Ctrl-C
// twice ends the process): the checkpoint commit is atomic (checkpoint.h), so dying
// in the middle of a save leaves the previous checkpoint intact.
//
// The library never installs handlers on its own: the CLI does (install_stop_handlers),
// tests call request_stop directly.
#include <string>
#include <vector>

namespace teddy {

// Installs the recording handler for each signal (SA_RESTART, so interrupted reads
// and collectives carry on). Replaces any earlier set; clears a pending request.
void install_stop_handlers(const std::vector<int>& signals);
// Puts back the default action of the signals install_stop_handlers took.
void restore_default_stop_handlers();

// The signal that asked the process to stop, or 0. Async-signal-safe. It stays set
// after a run has stopped on it (a process asked to stop stays asked): a caller that
// means to train again in the same process calls clear_stop_request() first.
int stop_requested();
// Records a stop request as the handler does (tests; also async-signal-safe).
void request_stop(int signo);
void clear_stop_request();

// "TERM", "SIGTERM", "term" -> SIGTERM; the signals a run may save on are TERM, INT,
// USR1, USR2, HUP, QUIT, XCPU. 0 for any other name.
int stop_signal_from_name(const std::string& name);
// SIGTERM -> "SIGTERM" (or "signal N").
std::string signal_name(int signo);

}  // namespace teddy
