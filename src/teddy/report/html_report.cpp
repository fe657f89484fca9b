#include "teddy/report/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace teddy::report {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '&') o += "&amp;";
    else if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

std::string num(double v, const char* f = "%.4g") {
  if (!std::isfinite(v)) return "–";
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string count(double n) {
  if (!std::isfinite(n)) return "–";
  char b[32];
  if (n >= 1e9) std::snprintf(b, sizeof b, "%.2fG", n / 1e9);
  else if (n >= 1e6) std::snprintf(b, sizeof b, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(b, sizeof b, "%.1fk", n / 1e3);
  else std::snprintf(b, sizeof b, "%.0f", n);
  return b;
}

std::string duration(double s) {
  char b[32];
  const long t = std::lround(s);
  if (t >= 3600) std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60) std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(b, sizeof b, "%.1fs", s);
  return b;
}

// The hover read-out: a small inline script (no URL, no network, nothing loaded) that
// maps the cursor over a chart back to data with the chart's data-plot attribute and
// shows the x value and each run's nearest value there, with a guide line. The SVG's
// <title>s stay for readers without script.
const char* kHoverScript = R"JS(
(function () {
  var box = document.createElement('div');
  box.className = 'readout';
  box.style.display = 'none';
  document.body.appendChild(box);
  function fmt(v) {
    if (!isFinite(v)) return '–';
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toPrecision(4) + 'G';
    if (a >= 1e6) return (v / 1e6).toPrecision(4) + 'M';
    if (a >= 1e4) return (v / 1e3).toPrecision(4) + 'k';
    return Number(v.toPrecision(5)).toString();
  }
  function nearest(p, x) {
    var lo = 0, hi = p.length - 1;
    if (hi < 0) return null;
    while (hi - lo > 1) {
      var mid = (lo + hi) >> 1;
      if (p[mid][0] < x) lo = mid; else hi = mid;
    }
    return Math.abs(p[lo][0] - x) <= Math.abs(p[hi][0] - x) ? p[lo] : p[hi];
  }
  document.querySelectorAll('figure[data-plot]').forEach(function (fig) {
    var d = JSON.parse(fig.getAttribute('data-plot'));
    var svg = fig.querySelector('svg');
    if (!svg || d.empty) return;
    var guide = document.createElementNS(svg.namespaceURI, 'line');
    guide.setAttribute('stroke', '#555');
    guide.setAttribute('stroke-dasharray', '2 2');
    guide.setAttribute('y1', d.top);
    guide.setAttribute('y2', d.top + d.height);
    guide.style.display = 'none';
    svg.appendChild(guide);
    svg.addEventListener('mousemove', function (ev) {
      var r = svg.getBoundingClientRect();
      var sx = (ev.clientX - r.left) * (svg.viewBox.baseVal.width / r.width);
      if (sx < d.left || sx > d.left + d.width) { box.style.display = 'none'; guide.style.display = 'none'; return; }
      var t = d.x0 + (sx - d.left) / d.width * (d.x1 - d.x0);
      var x = d.log ? Math.pow(10, t) : t;
      if (d.xlabel === 'step') x = Math.round(x);  // steps are whole
      box.textContent = '';
      var head = document.createElement('div');
      head.textContent = d.xlabel + ' ' + fmt(x);
      box.appendChild(head);
      d.series.forEach(function (s) {
        var p = nearest(s.p, x);
        if (!p) return;
        var row = document.createElement('div');
        var key = document.createElement('span');
        key.textContent = '■ ';
        key.style.color = s.color;
        row.appendChild(key);
        row.appendChild(document.createTextNode(s.name + ': ' + (p[1] === null ? '–' : fmt(p[1])) +
                                                ' (at ' + fmt(p[0]) + ')'));
        box.appendChild(row);
      });
      guide.setAttribute('x1', sx);
      guide.setAttribute('x2', sx);
      guide.style.display = '';
      box.style.display = 'block';
      box.style.left = (ev.pageX + 14) + 'px';
      box.style.top = (ev.pageY + 10) + 'px';
    });
    svg.addEventListener('mouseleave', function () { box.style.display = 'none'; guide.style.display = 'none'; });
  });
})();
)JS";

// A number for the data-plot JSON (null when not finite, as JSON has no NaN).
std::string json_num(double v) {
  if (!std::isfinite(v)) return "null";
  char b[32];
  std::snprintf(b, sizeof b, "%.7g", v);
  return b;
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    o += c;
  }
  return o + "\"";
}

// The chart's data for the read-out: the plot frame and each series' points (thinned
// to about one per horizontal pixel), as JSON for an HTML attribute.
std::string plot_data(const Chart& c) {
  const PlotFrame f = plot_frame(c);
  std::ostringstream j;
  j << "{\"left\":" << f.left << ",\"top\":" << f.top << ",\"width\":" << f.width << ",\"height\":" << f.height
    << ",\"x0\":" << json_num(f.x0) << ",\"x1\":" << json_num(f.x1) << ",\"log\":" << (f.log_x ? "true" : "false")
    << ",\"empty\":" << (f.empty ? "true" : "false") << ",\"xlabel\":" << json_str(c.x_label) << ",\"series\":[";
  for (size_t i = 0; i < c.series.size(); ++i) {
    const Series& s = c.series[i];
    j << (i ? "," : "") << "{\"name\":" << json_str(s.name) << ",\"color\":" << json_str(s.color) << ",\"p\":[";
    const auto pts = thin(s.points, static_cast<size_t>(f.width));
    for (size_t k = 0; k < pts.size(); ++k) j << (k ? "," : "") << "[" << json_num(pts[k].first) << "," << json_num(pts[k].second) << "]";
    j << "]}";
  }
  j << "]}";
  return j.str();
}

template <class F>
Series step_series(const RunLog& r, size_t i, const ReportOptions& o, F value, bool by_tokens = false) {
  Series s;
  s.name = r.label;
  s.color = palette(i);
  std::vector<std::pair<double, double>> p;
  for (const StepRow& row : r.steps) {
    const double x = by_tokens ? static_cast<double>(row.tokens) : static_cast<double>(row.step);
    p.emplace_back(x, value(row));
  }
  s.points = thin(p, o.max_points);
  return s;
}

// The (task, metric) pairs any run evaluated, standard errors left out, in name order.
std::vector<std::pair<std::string, std::string>> eval_metrics(const std::vector<RunLog>& runs) {
  std::set<std::pair<std::string, std::string>> seen;
  for (const RunLog& r : runs)
    for (const EvalRow& e : r.evals)
      for (const auto& [m, v] : e.metrics)
        if (!m.ends_with("_stderr")) seen.insert({e.task, m});
  return {seen.begin(), seen.end()};
}

// The run's last value of a task's metric (NaN: never evaluated).
double last_eval(const RunLog& r, const std::string& task, const std::string& metric) {
  double v = NAN;
  for (const EvalRow& e : r.evals)
    if (e.task == task)
      if (const auto it = e.metrics.find(metric); it != e.metrics.end()) v = it->second;
  return v;
}

bool any_of_runs(const std::vector<RunLog>& runs, bool (*has)(const StepRow&)) {
  for (const RunLog& r : runs)
    for (const StepRow& s : r.steps)
      if (has(s)) return true;
  return false;
}

}  // namespace

std::vector<std::pair<double, double>> thin(const std::vector<std::pair<double, double>>& p, size_t max_points) {
  if (p.size() <= max_points || max_points < 2) return p;
  const size_t buckets = max_points / 2, per = (p.size() + buckets - 1) / buckets;
  std::vector<std::pair<double, double>> out;
  for (size_t b = 0; b < p.size(); b += per) {
    const size_t e = std::min(p.size(), b + per);
    size_t lo = b, hi = b;
    for (size_t k = b; k < e; ++k) {
      if (!std::isfinite(p[k].second)) {  // a NaN step (fp16 overflow) stays: it breaks the line
        lo = hi = k;
        break;
      }
      if (p[k].second < p[lo].second) lo = k;
      if (p[k].second > p[hi].second) hi = k;
    }
    out.push_back(p[std::min(lo, hi)]);
    if (lo != hi) out.push_back(p[std::max(lo, hi)]);
  }
  return out;
}

std::vector<std::pair<std::string, Chart>> build_charts(const std::vector<RunLog>& runs, const ReportOptions& o) {
  std::vector<std::pair<std::string, Chart>> charts;
  const std::string xs = o.x_tokens ? "tokens seen" : "step";
  {
    Chart c;
    c.title = "Loss (solid: training, dots: validation)";
    c.x_label = xs;
    c.y_label = "loss (nats/token)";
    c.log_x = o.log_x;
    for (size_t i = 0; i < runs.size(); ++i) {
      c.series.push_back(step_series(runs[i], i, o, [](const StepRow& s) { return s.loss; }, o.x_tokens));
      if (!runs[i].vals.empty()) {
        Series v;
        v.name = runs[i].label + " (validation)";
        v.color = palette(i);
        v.dashed = true;
        for (const ValRow& r : runs[i].vals)
          v.points.emplace_back(o.x_tokens ? static_cast<double>(r.tokens) : static_cast<double>(r.step), r.val_loss);
        v.markers = v.points.size() <= 200;  // a dot per evaluation while they stay readable
        v.points = thin(v.points, o.max_points);
        c.series.push_back(v);
      }
    }
    charts.emplace_back("loss", c);
  }
  auto per_step = [&](const char* stem, const char* title, const char* ylabel, auto value, bool log_y = false) {
    Chart c;
    c.title = title;
    c.x_label = "step";
    c.y_label = ylabel;
    c.log_y = log_y;
    for (size_t i = 0; i < runs.size(); ++i) c.series.push_back(step_series(runs[i], i, o, value));
    return std::pair<std::string, Chart>(stem, c);
  };
  charts.push_back(per_step("lr", "Learning rate", "lr", [](const StepRow& s) { return s.lr; }));
  {
    auto g = per_step("grad_norm", "Gradient norm (before clipping; dashed: the clipping threshold)", "global L2 norm",
                      [](const StepRow& s) { return s.grad_norm; });
    std::set<std::string> seen;
    for (const RunLog& r : runs) {
      const auto it = r.config.find("optim.grad_clip");
      if (it == r.config.end() || !seen.insert(it->second).second) continue;
      const double v = std::atof(it->second.c_str());
      if (v > 0) g.second.lines.push_back({v, "clip " + it->second});
    }
    charts.push_back(g);
  }
  charts.push_back(per_step("tokens_per_s", "Throughput", "tokens / s", [](const StepRow& s) { return s.tokens_per_s; }));
  charts.push_back(per_step("mfu", "Model FLOPs utilisation", "MFU (%)", [](const StepRow& s) { return 100 * s.mfu; }));
  if (any_of_runs(runs, [](const StepRow& s) { return s.peak_rss_bytes.has_value(); }))
    charts.push_back(per_step("memory", "Peak resident memory", "bytes",
                              [](const StepRow& s) { return s.peak_rss_bytes ? *s.peak_rss_bytes : NAN; }));
  if (any_of_runs(runs, [](const StepRow& s) { return s.loss_scale.has_value(); })) {
    charts.push_back(per_step("loss_scale", "fp16 loss scale", "scale (log)",
                              [](const StepRow& s) { return s.loss_scale ? *s.loss_scale : NAN; }, true));
    charts.push_back(per_step("skipped_steps", "fp16 steps skipped (gradient overflow), cumulative", "steps",
                              [](const StepRow& s) { return s.loss_scale ? static_cast<double>(s.skipped_steps) : NAN; }));
  }
  // Evaluation metrics over steps: one chart per task and metric, the runs overlaid.
  for (const auto& [task, metric] : eval_metrics(runs)) {
    Chart c;
    c.title = "Evaluation: " + task + " " + metric;
    c.x_label = "step";
    c.y_label = metric;
    for (size_t i = 0; i < runs.size(); ++i) {
      Series v;
      v.name = runs[i].label;
      v.color = palette(i);
      for (const EvalRow& e : runs[i].evals)
        if (e.task == task)
          if (const auto it = e.metrics.find(metric); it != e.metrics.end())
            v.points.emplace_back(static_cast<double>(e.step), it->second);
      v.markers = v.points.size() <= 200;
      v.points = thin(v.points, o.max_points);
      c.series.push_back(v);
    }
    charts.emplace_back("eval_" + task + "_" + metric, c);
  }
  return charts;
}

std::vector<std::string> differing_config_keys(const std::vector<RunLog>& runs) {
  std::set<std::string> keys;
  for (const RunLog& r : runs)
    for (const auto& [k, v] : r.config) keys.insert(k);
  std::vector<std::string> out;
  for (const std::string& k : keys) {
    if (k == "run.dir") continue;
    std::set<std::string> values;
    for (const RunLog& r : runs) {
      const auto it = r.config.find(k);
      values.insert(it == r.config.end() ? std::string("\x01absent") : it->second);
    }
    if (values.size() > 1) out.push_back(k);
  }
  return out;
}

std::string render_html(const std::vector<RunLog>& runs, const ReportOptions& o) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>teddy report</title>\n"
       "<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 24px}"
       "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
       ".charts{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}.warn{color:#a40}code{background:#f4f4f4;padding:0 3px}"
       ".readout{position:absolute;background:#fff;border:1px solid #999;padding:4px 6px;font-size:12px;"
       "pointer-events:none;box-shadow:1px 1px 3px #0003}</style>\n"
       "</head><body>\n<h1>teddy report</h1>\n";
  std::vector<std::string> warnings;
  for (const RunLog& r : runs)
    for (const std::string& w : r.warnings) warnings.push_back(w);
  for (const std::string& w : warnings) h << "<p class=\"warn\">" << esc(w) << "</p>\n";

  h << "<h2>Runs</h2>\n<table><tr><th>run</th><th>directory</th><th>model</th><th>parameters</th><th>steps</th>"
       "<th>tokens</th><th>wall time</th><th>training FLOPs (6ND)</th><th>final train loss</th><th>final val loss</th>"
       "<th>best val loss (step)</th>";
  const auto evals = eval_metrics(runs);
  for (const auto& [task, metric] : evals) h << "<th>" << esc(task) << " " << esc(metric) << " (last)</th>";
  h << "</tr>\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunLog& r = runs[i];
    const StepRow& last = r.steps.back();
    const double flops = r.params ? 6.0 * static_cast<double>(*r.params) * static_cast<double>(last.tokens) : NAN;
    const auto best = r.best_val();
    h << "<tr><td><span style=\"color:" << palette(i) << "\">&#9632;</span> " << esc(r.label) << "</td><td><code>"
      << esc(r.dir) << "</code></td><td>" << esc(r.model.empty() ? "–" : r.model) << "</td><td>"
      << (r.params ? count(static_cast<double>(*r.params)) : "–") << "</td><td>" << last.step << "</td><td>"
      << count(static_cast<double>(last.tokens)) << "</td><td>" << duration(r.wall_s()) << "</td><td>" << num(flops, "%.3g")
      << "</td><td>" << num(last.loss) << "</td><td>" << (r.vals.empty() ? "–" : num(r.vals.back().val_loss))
      << "</td><td>" << (best ? num(*best) + " (" + std::to_string(r.best_val_step()) + ")" : "–") << "</td>";
    for (const auto& [task, metric] : evals) h << "<td>" << num(last_eval(r, task, metric)) << "</td>";
    h << "</tr>\n";
  }
  h << "</table>\n";

  if (runs.size() > 1) {
    const std::vector<std::string> keys = differing_config_keys(runs);
    h << "<h2>Config keys that differ</h2>\n";
    if (keys.empty()) {
      h << "<p>None (besides run.dir).</p>\n";
    } else {
      h << "<table><tr><th>key</th>";
      for (const RunLog& r : runs) h << "<th>" << esc(r.label) << "</th>";
      h << "</tr>\n";
      for (const std::string& k : keys) {
        h << "<tr><td><code>" << esc(k) << "</code></td>";
        for (const RunLog& r : runs) {
          const auto it = r.config.find(k);
          h << "<td>" << (it == r.config.end() ? "–" : esc(it->second)) << "</td>";
        }
        h << "</tr>\n";
      }
      h << "</table>\n";
    }
  }

  h << "<h2>Charts</h2>\n<div class=\"charts\">\n";
  for (const auto& [stem, chart] : build_charts(runs, o)) {
    std::string svg = render_svg(chart);
    // Inline SVG needs no namespace declaration; dropping it keeps the page free of URLs.
    const std::string ns = " xmlns=\"http://www.w3.org/2000/svg\"";
    if (const size_t p = svg.find(ns); p != std::string::npos) svg.erase(p, ns.size());
    h << "<figure id=\"" << esc(stem) << "\" data-plot=\"" << esc(plot_data(chart)) << "\">" << svg << "</figure>\n";
  }
  h << "</div>\n<p>Written by <code>teddy report</code> from each run's metrics.jsonl and config.toml. Hover a chart "
       "for the values at the cursor.</p>\n<script>" << kHoverScript << "</script>\n</body></html>\n";
  return h.str();
}

}  // namespace teddy::report
