"""The page's script: it renders the tables from their JSON data (a page of rows at a time,
sortable on a header click) and draws the charts, each point's hover written from the table row
that describes it (see dashboards.tables and dashboards.figure)."""

PAGE_ROWS = 500  # rows rendered at once: 10,000 rows of HTML take Chromium seconds to lay out

SCRIPT = """
(function () {
  var PAGE_ROWS = %(page_rows)d, CONFIG = %(config)s, HOVER_ROLES = %(hover_roles)s;
  var data = JSON.parse(document.getElementById("page-data").textContent);
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  function text(cell) { return Array.isArray(cell) ? cell[0] : cell; }
  function key(cell) { return Array.isArray(cell) ? cell[1] : cell; }
  function blank(k) { return k === null || k === undefined || k === ""; }

  function Table(id, spec) {
    this.box = document.getElementById(id + "-box");
    this.id = id; this.spec = spec; this.rows = spec.rows.slice(); this.page = 0; this.sorted = null;
    if (this.box) { this.draw(); }
  }
  Table.prototype.cell = function (column, cell) {
    var t = esc(text(cell)), k = key(cell);
    if (column.badge) { t = '<span class="badge">' + t + "</span>"; }
    if (column.colours) {
      t = '<span class="swatch" style="background:' + (column.colours[text(cell)] || "#7f7f7f") + '"></span>' + t;
    }
    return "<td" + (column.numeric ? ' class="num"' : "") + ' data-sort="' + esc(blank(k) ? "" : k) + '">' + t + "</td>";
  };
  Table.prototype.draw = function () {
    var self = this, columns = this.spec.columns, start = this.page * PAGE_ROWS;
    var rows = this.rows.slice(start, start + PAGE_ROWS), pages = Math.ceil(this.rows.length / PAGE_ROWS);
    var head = columns.map(function (c, i) {
      var sort = self.sorted && self.sorted.column === i ? (self.sorted.ascending ? "ascending" : "descending") : "";
      return '<th title="click to sort"' + (sort ? ' aria-sort="' + sort + '"' : "") + ">" + esc(c.name) + "</th>";
    }).join("");
    var body = rows.map(function (r) {
      var title = r.title ? ' title="' + esc(r.title) + '"' : "";
      return '<tr class="state-' + r.state + '" data-key="' + esc(r.key) + '"' + title + ">" +
        r.cells.map(function (cell, i) { return self.cell(columns[i], cell); }).join("") + "</tr>";
    }).join("");
    var pager = pages < 2 ? "" : '<div class="pager">rows ' + (start + 1) + "\\u2013" + (start + rows.length) +
      " of " + this.rows.length + ' <button data-step="-1"' + (this.page === 0 ? " disabled" : "") +
      '>\\u2039 previous</button> <button data-step="1"' + (this.page === pages - 1 ? " disabled" : "") +
      ">next \\u203a</button></div>";
    this.box.innerHTML = pager + '<div class="scroll"><table class="sortable" id="' + this.id + '"><thead><tr>' +
      head + "</tr></thead><tbody>" + body + "</tbody></table></div>";
    this.box.querySelectorAll("th").forEach(function (th, i) {
      th.addEventListener("click", function () { self.sort(i); });
    });
    this.box.querySelectorAll(".pager button").forEach(function (b) {
      b.addEventListener("click", function () { self.page += Number(b.getAttribute("data-step")); self.draw(); });
    });
  };
  // Numbers numerically, blanks last either way; Array.sort is stable, so ties keep their order.
  Table.prototype.sort = function (column) {
    var ascending = !(this.sorted && this.sorted.column === column && this.sorted.ascending);
    var numeric = this.rows.every(function (r) { var k = key(r.cells[column]); return blank(k) || typeof k === "number"; });
    this.rows.sort(function (a, b) {
      var ka = key(a.cells[column]), kb = key(b.cells[column]);
      if (blank(ka) || blank(kb)) { return blank(ka) - blank(kb); }
      var c = numeric ? ka - kb : String(ka).localeCompare(String(kb));
      return ascending ? c : -c;
    });
    this.sorted = {column: column, ascending: ascending};
    this.page = 0;
    this.draw();
  };

  // Hover text per row, in the data's own order: "c3" is the configurations' 4th row, "r3" the runs'.
  function hoverTexts(spec) {
    return spec.rows.map(function (r) {
      var title = "", lines = [];
      spec.columns.forEach(function (c, i) {
        if (!c.hover) { return; }
        var t = String(text(r.cells[i])).trim();
        if (c.hover === "title") { title = esc(t); }
        else if (t && t !== "\\u2013") { lines.push(esc(c.name) + ": " + esc(t)); }
      });
      return {title: title, all: ["<b>" + title + "</b>"].concat(lines).join("<br>")};
    });
  }
  var texts = {c: hoverTexts(data.configs), r: hoverTexts(data.runs)};
  new Table("configs-table", data.configs);
  new Table("runs-table", data.runs);
  new Table("differences-table", data.differences);
  document.querySelectorAll("script.chart").forEach(function (source) {
    var fig = JSON.parse(source.textContent);
    fig.data.forEach(function (trace) {
      var meta = trace.meta || {};
      if (HOVER_ROLES.indexOf(meta.role) < 0) { return; }
      trace.hovertext = trace.customdata.map(function (ref) {
        var row = texts[ref.charAt(0)][Number(ref.slice(1))];
        return row ? (meta.hover === "title" ? row.title : row.all) : ref;
      });
    });
    Plotly.newPlot(source.getAttribute("data-div"), fig.data, fig.layout, CONFIG);
  });
})();
"""
