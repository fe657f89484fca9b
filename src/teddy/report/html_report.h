#pragma once
// `teddy report`: the charts and tables that compare runs, as one self-contained HTML
// page (inline SVG and CSS, one small inline script for the hover read-out, nothing
// fetched) or as one SVG file per chart.
#include <string>
#include <utility>
#include <vector>

#include "teddy/report/run_log.h"
#include "teddy/report/svg_chart.h"

namespace teddy::report {

struct ReportOptions {
  bool x_tokens = true;  // loss charts against tokens seen (else steps)
  bool log_x = false;
  size_t max_points = 2000;  // per series; longer ones keep each bucket's min and max (spikes stay)
};

// The charts for these runs, in page order, each with a file-name stem ("loss", "lr",
// ...). Charts that no run has data for (loss scale without fp16) are left out.
std::vector<std::pair<std::string, Chart>> build_charts(const std::vector<RunLog>& runs, const ReportOptions& o);

// Config keys whose values differ between the runs (absent counts as a value);
// run.dir is left out: it always differs.
std::vector<std::string> differing_config_keys(const std::vector<RunLog>& runs);

// The whole page.
std::string render_html(const std::vector<RunLog>& runs, const ReportOptions& o);

// Keeps at most about max_points: when longer, each of max_points / 2 buckets keeps
// its lowest and highest point, in x order, so a one-step loss spike still shows.
std::vector<std::pair<double, double>> thin(const std::vector<std::pair<double, double>>& p, size_t max_points);

}  // namespace teddy::report
