#pragma once
// Each subcommand lives in its own file and registers itself on the app.
// The returned callback runs after parsing; its return value is the exit code.
#include <CLI/CLI.hpp>
#include <functional>

namespace teddy::cli {

using Run = std::function<int()>;
// Each register_* adds a subcommand to `app` and stores its runner in `run`.
// (one line per subcommand file; keep in the order of main.cpp)
void register_data(CLI::App& app, Run& run);
void register_plan(CLI::App& app, Run& run);
void register_bench(CLI::App& app, Run& run);
void register_pretrain(CLI::App& app, Run& run);
void register_generate(CLI::App& app, Run& run);
void register_tokenizer(CLI::App& app, Run& run);
void register_sft(CLI::App& app, Run& run);
void register_import(CLI::App& app, Run& run);
void register_export(CLI::App& app, Run& run);
void register_report(CLI::App& app, Run& run);
void register_eval(CLI::App& app, Run& run);
void register_arena(CLI::App& app, Run& run);
void register_lora(CLI::App& app, Run& run);

// Exit code of `teddy pretrain` / `teddy sft` stopped by a stop signal ([run] save_on)
// after writing the checkpoint of the step it completed: 75, EX_TEMPFAIL of
// sysexits.h ("try again later"). Not 128+signo: a shell reports that for a process
// the signal killed, and a requeue wrapper must tell "saved, resume me" from "killed,
// the newest checkpoint may be older".
inline constexpr int kExitStoppedBySignal = 75;

}  // namespace teddy::cli
