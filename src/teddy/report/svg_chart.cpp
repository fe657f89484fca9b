#include "teddy/report/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace teddy::report {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string fmt(double v) {  // coordinates: two decimals are sub-pixel
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

}  // namespace

std::string palette(size_t i) {
  static const char* kColors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};
  return kColors[i % 8];
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> t;
  if (!std::isfinite(lo) || !std::isfinite(hi)) return t;
  if (hi <= lo) hi = lo + (lo == 0 ? 1 : std::fabs(lo) * 0.1);
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) t.push_back(std::fabs(v) < step * 1e-9 ? 0 : v);
  return t;
}

std::string tick_label(double v) {
  char b[32];
  const double a = std::fabs(v);
  if (a == 0) return "0";
  if (a >= 1e9) std::snprintf(b, sizeof b, "%gG", v / 1e9);
  else if (a >= 1e6) std::snprintf(b, sizeof b, "%gM", v / 1e6);
  else if (a >= 1e4) std::snprintf(b, sizeof b, "%gk", v / 1e3);
  else std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

PlotFrame plot_frame(const Chart& c) {
  PlotFrame f;
  const double L = 64, R = 16, T = 30, B = 44;
  f.left = L;
  f.top = T;
  f.width = c.width - L - R;
  f.height = c.height - T - B;
  f.log_x = c.log_x;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0;
  for (const Series& s : c.series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y) && (!c.log_x || x > 0) && (!c.log_y || y > 0)) {
        const double t = c.log_x ? std::log10(x) : x;
        x0 = std::min(x0, t), x1 = std::max(x1, t);
      }
  if (!std::isfinite(x0)) return f;
  f.empty = false;
  f.x0 = x0;
  f.x1 = x1 <= x0 ? x0 + 1 : x1;
  return f;
}

std::string render_svg(const Chart& c) {
  const double W = c.width, H = c.height, L = 64, R = 16, T = 30, B = 44;
  const double pw = W - L - R, ph = H - T - B;
  auto tx = [&](double x) { return c.log_x ? std::log10(x) : x; };
  auto ty = [&](double y) { return c.log_y ? std::log10(y) : y; };
  auto usable = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (!c.log_x || x > 0) && (!c.log_y || y > 0);
  };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series& s : c.series)
    for (const auto& [x, y] : s.points)
      if (usable(x, y)) {
        x0 = std::min(x0, tx(x)), x1 = std::max(x1, tx(x));
        y0 = std::min(y0, ty(y)), y1 = std::max(y1, ty(y));
      }
  for (const HLine& h : c.lines)
    if (std::isfinite(h.y) && (!c.log_y || h.y > 0)) y0 = std::min(y0, ty(h.y)), y1 = std::max(y1, ty(h.y));

  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << c.width << "\" height=\"" << c.height
    << "\" viewBox=\"0 0 " << c.width << " " << c.height << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << fmt(W / 2) << "\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">"
    << esc(c.title) << "</text>\n";
  o << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << fmt(pw) << "\" height=\"" << fmt(ph)
    << "\" fill=\"none\" stroke=\"#888\"/>\n";
  if (!std::isfinite(x0)) {
    o << "<text x=\"" << fmt(L + pw / 2) << "\" y=\"" << fmt(T + ph / 2) << "\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n</svg>\n";
    return o.str();
  }
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) {
    const double pad = y0 == 0 ? 1 : std::fabs(y0) * 0.05;
    y0 -= pad, y1 += pad;
  } else {
    const double pad = (y1 - y0) * 0.04;
    y0 -= pad, y1 += pad;
  }
  auto px = [&](double x) { return L + (tx(x) - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return T + ph - (ty(y) - y0) / (y1 - y0) * ph; };

  // Ticks: in data units on a linear axis, at powers of ten (and 2, 5) on a log one.
  auto axis_ticks = [&](double lo, double hi, bool log) {
    std::vector<double> v;
    if (!log) return nice_ticks(lo, hi);
    for (double e = std::floor(lo); e <= std::ceil(hi); ++e)
      for (double m : {1.0, 2.0, 5.0}) {
        const double t = m * std::pow(10.0, e);
        if (std::log10(t) >= lo - 1e-9 && std::log10(t) <= hi + 1e-9) v.push_back(t);
      }
    return v;
  };
  for (double t : axis_ticks(x0, x1, c.log_x)) {
    const double X = px(t);
    o << "<line x1=\"" << fmt(X) << "\" y1=\"" << T << "\" x2=\"" << fmt(X) << "\" y2=\"" << fmt(T + ph)
      << "\" stroke=\"#eee\"/><text x=\"" << fmt(X) << "\" y=\"" << fmt(T + ph + 14) << "\" text-anchor=\"middle\">"
      << tick_label(t) << "</text>\n";
  }
  for (double t : axis_ticks(y0, y1, c.log_y)) {
    const double Y = py(t);
    o << "<line x1=\"" << L << "\" y1=\"" << fmt(Y) << "\" x2=\"" << fmt(L + pw) << "\" y2=\"" << fmt(Y)
      << "\" stroke=\"#eee\"/><text x=\"" << L - 4 << "\" y=\"" << fmt(Y + 4) << "\" text-anchor=\"end\">"
      << tick_label(t) << "</text>\n";
  }
  o << "<text x=\"" << fmt(L + pw / 2) << "\" y=\"" << fmt(H - 8) << "\" text-anchor=\"middle\">" << esc(c.x_label)
    << (c.log_x ? " (log)" : "") << "</text>\n";
  o << "<text transform=\"translate(14," << fmt(T + ph / 2) << ") rotate(-90)\" text-anchor=\"middle\">"
    << esc(c.y_label) << "</text>\n";
  for (const HLine& h : c.lines) {
    if (!std::isfinite(h.y) || (c.log_y && h.y <= 0)) continue;
    const double Y = py(h.y);
    o << "<line x1=\"" << L << "\" y1=\"" << fmt(Y) << "\" x2=\"" << fmt(L + pw) << "\" y2=\"" << fmt(Y)
      << "\" stroke=\"#999\" stroke-dasharray=\"6 4\"/><text x=\"" << fmt(L + pw - 4) << "\" y=\"" << fmt(Y - 4)
      << "\" text-anchor=\"end\" fill=\"#666\">" << esc(h.label) << "</text>\n";
  }
  for (const Series& s : c.series) {
    // One <path> per run of usable points: a NaN (an fp16 overflow step) leaves a gap.
    std::string d;
    bool pen = false;
    for (const auto& [x, y] : s.points) {
      if (!usable(x, y)) {
        pen = false;
        continue;
      }
      d += (pen ? " L" : " M") + fmt(px(x)) + " " + fmt(py(y));
      pen = true;
    }
    o << "<path d=\"" << d << "\" fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"1.5\""
      << (s.dashed ? " stroke-dasharray=\"4 3\"" : "") << "><title>" << esc(s.name) << "</title></path>\n";
    if (s.markers)
      for (const auto& [x, y] : s.points)
        if (usable(x, y))
          o << "<circle cx=\"" << fmt(px(x)) << "\" cy=\"" << fmt(py(y)) << "\" r=\"2.5\" fill=\"" << s.color
            << "\"><title>" << esc(s.name) << ": " << tick_label(x) << ", " << y << "</title></circle>\n";
  }
  // Legend, top right inside the frame.
  double ly = T + 14;
  for (const Series& s : c.series) {
    o << "<line x1=\"" << fmt(L + pw - 150) << "\" y1=\"" << fmt(ly - 4) << "\" x2=\"" << fmt(L + pw - 132) << "\" y2=\""
      << fmt(ly - 4) << "\" stroke=\"" << s.color << "\" stroke-width=\"2\"" << (s.dashed ? " stroke-dasharray=\"4 3\"" : "")
      << "/><text x=\"" << fmt(L + pw - 128) << "\" y=\"" << fmt(ly) << "\">" << esc(s.name) << "</text>\n";
    ly += 14;
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace teddy::report
