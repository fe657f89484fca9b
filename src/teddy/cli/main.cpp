// teddy: train LLMs end to end. The CLI is thin: parse, validate, call the library.
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "teddy/cli/commands.h"
#include "teddy/core/cpu_info.h"
#include "teddy/core/error.h"
#include "teddy/io/hf_import.h"
#include "teddy/kernels/blas_info.h"
#include "teddy/kernels/cpu_variant.h"

namespace {

// CLI11 answers --help before it looks at the words: `teddy NOSUCH --help` would print
// the top-level help and exit 0. A word where a subcommand must stand that names none
// is an error, whatever follows it. Returns the offending word, or "".
std::string unknown_subcommand(CLI::App& app, int argc, char** argv) {
  CLI::App* cur = &app;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.empty() || a[0] == '-') return "";  // options from here on: CLI11 checks them
    const auto subs = cur->get_subcommands([&](CLI::App* s) { return s->check_name(a); });
    if (subs.empty()) {
      // A command that takes positional arguments may be given one here.
      const bool positional = !cur->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty();
      return positional || cur->get_subcommands({}).empty() ? "" : a;
    }
    cur = subs.front();
    if (cur->get_subcommands({}).empty()) return "";
  }
  return "";
}

// "avx512 (compiled: avx2 avx512; TEDDY_CPU_ISA=avx2 caps it)": the hand-written
// kernels' variant this CPU runs (kernels/cpu_variant.h).
std::string kernels_line() {
  std::string compiled;
  for (std::string_view v : teddy::kernels::compiled_cpu_variants())
    compiled += (compiled.empty() ? "" : " ") + std::string(v);
  const char* cap = std::getenv("TEDDY_CPU_ISA");
  std::string chosen;
  try {
    chosen = std::string(teddy::kernels::cpu_variant().isa);
  } catch (const teddy::Error& e) {  // a bad TEDDY_CPU_ISA: --version still answers
    chosen = std::string("none (") + e.what() + ")";
  }
  return chosen + " (compiled: " + compiled + (cap && *cap ? std::string("; TEDDY_CPU_ISA=") + cap : std::string()) +
         ")";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"teddy: a C++20 engine that trains large language models end to end"};
  app.require_subcommand(1);
  // --version also names the machine: CPU, ISA, BLAS kernels, threads (bug reports,
  // benchmark records and CI logs need them; results can depend on the GEMM kernels).
  app.set_version_flag("--version", [] {
    const teddy::CpuInfo cpu = teddy::cpu_info();
    std::string isa;
    for (const std::string& f : cpu.isa) isa += (isa.empty() ? "" : " ") + f;
    const char* coretype = std::getenv("OPENBLAS_CORETYPE");
    return "teddy 0.1.0\ncpu: " + cpu.model + " (" + std::to_string(cpu.logical_cpus) + " logical CPUs; " +
           (isa.empty() ? std::string("no AVX2") : isa) + ")\nblas: " + teddy::kernels::blas_description() +
           (coretype ? std::string(" (OPENBLAS_CORETYPE=") + coretype + ")" : std::string()) +
           "\nkernels: " + kernels_line() + "\nopenmp: " + std::to_string(omp_get_max_threads()) + " threads";
  });
  teddy::cli::Run run;
  // A QLoRA base imported from a bitsandbytes 4-bit directory is read from its NF4 codes.
  teddy::install_hf_bnb4_base_loader();
  // one line per subcommand (see commands.h)
  teddy::cli::register_data(app, run);
  teddy::cli::register_plan(app, run);
  teddy::cli::register_bench(app, run);
  teddy::cli::register_pretrain(app, run);
  teddy::cli::register_generate(app, run);
  teddy::cli::register_tokenizer(app, run);
  teddy::cli::register_sft(app, run);
  teddy::cli::register_import(app, run);
  teddy::cli::register_export(app, run);
  teddy::cli::register_report(app, run);
  teddy::cli::register_eval(app, run);
  teddy::cli::register_arena(app, run);
  teddy::cli::register_lora(app, run);
  if (const std::string bad = unknown_subcommand(app, argc, argv); !bad.empty()) {
    std::fprintf(stderr, "teddy: error: unknown command '%s' (teddy --help lists the commands)\n", bad.c_str());
    return static_cast<int>(CLI::ExitCodes::ExtrasError);  // what CLI11 returns for `teddy NOSUCH`
  }
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
