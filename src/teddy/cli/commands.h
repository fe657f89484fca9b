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
void register_lora(CLI::App& app, Run& run);

}  // namespace teddy::cli

namespace teddy::dist {
class World;
}

namespace teddy::cli {

// Runs a training job (pretrain, sft) on this rank and returns its exit code. One
// process: errors propagate to main, which prints them and picks the exit code.
// Under mpirun / srun a rank that fails prints "teddy: error on rank R of W: ..."
// and ends every rank of the job (exit 1), so none waits forever in a collective.
int run_on_world(dist::World& world, const std::function<void()>& job);

}  // namespace teddy::cli
