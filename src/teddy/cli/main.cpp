// teddy: train LLMs end to end. The CLI is thin: parse, validate, call the library.
#include <cstdio>
#include <exception>

#include "teddy/cli/commands.h"
#include "teddy/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"teddy: a C++20 engine that trains large language models end to end"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "teddy 0.1.0");
  teddy::cli::Run run;
  // one line per subcommand (see commands.h)
  teddy::cli::register_data(app, run);
  teddy::cli::register_plan(app, run);
  teddy::cli::register_bench(app, run);
  teddy::cli::register_pretrain(app, run);
  teddy::cli::register_generate(app, run);
  teddy::cli::register_tokenizer(app, run);
  teddy::cli::register_sft(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run ? run() : 0;
  } catch (const teddy::Error& e) {
    std::fprintf(stderr, "teddy: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "teddy: internal error: %s\n", e.what());
    return 2;
  }
}
