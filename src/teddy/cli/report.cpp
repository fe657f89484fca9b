// `teddy report`: compare runs in one HTML page (or one SVG file per chart).
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "teddy/cli/commands.h"
#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"
#include "teddy/report/html_report.h"

namespace teddy::cli {

void register_report(CLI::App& app, Run& run) {
  struct Opts {
    std::vector<std::string> runs;
    std::string out;
    std::string format = "html";
    std::string x = "tokens";
    bool log_x = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("report", "Compare training runs: loss, lr, grad norm, throughput, MFU, memory, fp16 "
                                               "loss scale; a summary table and the config keys that differ");
  sub->add_option("runs", o->runs, "Run directories (each with metrics.jsonl and config.toml)")->required();
  sub->add_option("--out,-o", o->out, "Output: an .html file (default report.html) or, with --format svg, a directory (default report_svg)");
  sub->add_option("--format", o->format, "html (one self-contained page) or svg (one file per chart)")
      ->check(CLI::IsMember({"html", "svg"}));
  sub->add_option("--x", o->x, "x axis of the loss chart: tokens (seen) or steps")->check(CLI::IsMember({"tokens", "steps"}));
  sub->add_flag("--log-x", o->log_x, "Logarithmic x axis for the loss chart");
  sub->callback([o, &run] {
    run = [o] {
      std::vector<report::RunLog> runs;
      std::map<std::string, int> labels;
      for (const std::string& d : o->runs) {
        runs.push_back(report::read_run(d));
        // Two runs named alike (a/run, b/run) get the parent folder in their label.
        report::RunLog& r = runs.back();
        if (labels[r.label]++ > 0)
          r.label = std::filesystem::path(d).lexically_normal().parent_path().filename().string() + "/" + r.label;
        for (const std::string& w : r.warnings) std::fprintf(stderr, "teddy report: warning: %s\n", w.c_str());
      }
      std::map<std::string, std::vector<std::string>> by_model;
      for (const report::RunLog& r : runs) by_model[r.model.empty() ? "(unknown)" : r.model].push_back(r.dir);
      if (by_model.size() > 1) {
        std::fprintf(stderr, "teddy report: note: the runs are of different models:");
        for (const auto& [m, dirs] : by_model)
          for (const std::string& d : dirs) std::fprintf(stderr, " %s (%s);", d.c_str(), m.c_str());
        std::fprintf(stderr, " their curves are overlaid as they are\n");
      }
      report::ReportOptions ro;
      ro.x_tokens = o->x == "tokens";
      ro.log_x = o->log_x;
      if (o->format == "html") {
        const std::string out = o->out.empty() ? "report.html" : o->out;
        write_file_atomic(out, report::render_html(runs, ro));
        std::printf("wrote %s (%zu runs)\n", out.c_str(), runs.size());
      } else {
        const std::string dir = o->out.empty() ? "report_svg" : o->out;
        std::filesystem::create_directories(dir);
        size_t n = 0;
        for (const auto& [stem, chart] : report::build_charts(runs, ro)) {
          write_file_atomic((std::filesystem::path(dir) / (stem + ".svg")).string(), report::render_svg(chart));
          ++n;
        }
        std::printf("wrote %zu charts to %s/\n", n, dir.c_str());
      }
      return 0;
    };
  });
}

}  // namespace teddy::cli
