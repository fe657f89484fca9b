#pragma once
// Line charts as standalone SVG text: several series on one pair of axes, a legend,
// "nice" ticks, a linear or log x axis, optional horizontal reference lines. Plain SVG
// written here (no chart library, no script): the report opens offline, prints, and
// pastes into papers and slides as is.
#include <string>
#include <utility>
#include <vector>

namespace teddy::report {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y); non-finite y breaks the line
  std::string color;                              // CSS colour
  bool markers = false;                           // dots (sparse series such as validations)
  bool dashed = false;
};

struct HLine {
  double y = 0;
  std::string label;
};

struct Chart {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  std::vector<Series> series;
  std::vector<HLine> lines;
  int width = 640, height = 360;
};

// Ticks a reader expects: 1, 2 or 5 times a power of ten, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);
// A compact tick label: "1.5k", "2M", "0.001", "3e-05".
std::string tick_label(double v);

// Where the data sit in the chart's SVG (the HTML page's hover read-out maps the
// cursor back to data with it): the plot rectangle in SVG units and the x range it
// spans (log10 of x on a log axis). empty: no finite point.
struct PlotFrame {
  double left = 0, top = 0, width = 0, height = 0;
  double x0 = 0, x1 = 1;
  bool log_x = false, empty = true;
};
PlotFrame plot_frame(const Chart& c);

// The chart as an <svg> element. A chart with no finite point says so inside the frame.
std::string render_svg(const Chart& c);

// The i-th of a palette that stays distinct for colour-blind readers (Okabe-Ito).
std::string palette(size_t i);

}  // namespace teddy::report
