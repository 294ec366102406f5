/* The lineage picture: inline SVG drawn from the graph JSON (the page embeds it; the API refreshes it).
 * No library, no external service. Datasets are laid out by distance (upstream left, downstream right);
 * a dataset's columns expand on click; column edges are drawn between expanded datasets.
 */
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const W = 250, GAP = 110, HEAD = 46, ROW = 18, VGAP = 24, PAD = 20;
  const STATUS = { succeeded: "#198754", failed: "#dc3545", running: "#0d6efd", queued: "#6c757d", skipped: "#6c757d", cancelled: "#6c757d" };

  const app = document.getElementById("lineage-app");
  if (!app) return;
  const canvas = document.getElementById("lineage-canvas");
  const statusLine = document.getElementById("lineage-status");
  let data = JSON.parse(document.getElementById("lineage-data").textContent);
  const expanded = new Set([data.root.id]);

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, value, cls) {
    const t = el("text", { x: x, y: y, class: cls || "" }, parent);
    t.textContent = value;
    return t;
  }

  function curve(x1, y1, x2, y2) {
    const dx = Math.max(40, Math.abs(x2 - x1) / 2);
    return `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
  }

  function layout() {
    const byDepth = new Map();
    for (const n of data.nodes) {
      if (!byDepth.has(n.depth)) byDepth.set(n.depth, []);
      byDepth.get(n.depth).push(n);
    }
    const depths = [...byDepth.keys()].sort((a, b) => a - b);
    const pos = new Map();
    let height = 0;
    depths.forEach((d, i) => {
      let y = PAD;
      for (const n of byDepth.get(d)) {
        const h = HEAD + (expanded.has(n.id) ? n.columns.length * ROW + 8 : 0);
        pos.set(n.id, { x: PAD + i * (W + GAP), y: y, h: h });
        y += h + VGAP;
      }
      height = Math.max(height, y);
    });
    return { pos: pos, width: PAD * 2 + depths.length * (W + GAP) - GAP, height: height + PAD };
  }

  function render() {
    const { pos, width, height } = layout();
    const columnAt = new Map(); // column id -> {x, y, node}
    for (const n of data.nodes) {
      const p = pos.get(n.id);
      n.columns.forEach((c, i) => columnAt.set(c.id, { node: n, y: p.y + HEAD + i * ROW + ROW / 2 + 4, pii: c.pii.length > 0 }));
    }
    canvas.textContent = "";
    const svg = el("svg", { width: Math.max(width, 400), height: Math.max(height, 120), role: "img", "aria-label": "lineage graph" }, canvas);
    const edges = el("g", { class: "edges" }, svg);
    const nodesLayer = el("g", { class: "nodes" }, svg);

    for (const e of data.edges) {
      const a = pos.get(e.source), b = pos.get(e.target);
      if (!a || !b) continue;
      const path = el("path", { class: "lineage-edge", d: curve(a.x + W, a.y + 16, b.x, b.y + 16), "data-source": e.source, "data-target": e.target }, edges);
      el("title", {}, path).textContent = e.jobs.join(", ");
    }
    for (const e of data.column_edges) {
      const s = columnAt.get(e.source);
      if (!s || !expanded.has(s.node.id)) continue;
      const sx = pos.get(s.node.id).x + W;
      let tx, ty;
      const t = columnAt.get(e.target);
      if (t) {
        if (!expanded.has(t.node.id)) continue;
        tx = pos.get(t.node.id).x; ty = t.y;
      } else if (pos.has(e.target)) {
        tx = pos.get(e.target).x; ty = pos.get(e.target).y + 30; // dataset-wide (indirect) lineage
      } else continue;
      const cls = `lineage-column-edge ${e.type}${s.pii && e.type === "DIRECT" ? " pii" : ""}`;
      const path = el("path", { class: cls, d: curve(sx, s.y, tx, ty), "data-source": e.source, "data-target": e.target }, edges);
      el("title", {}, path).textContent = `${e.type} ${e.subtype}`;
    }

    for (const n of data.nodes) {
      const p = pos.get(n.id);
      const g = el("g", { class: `lineage-node ${n.side}`, transform: `translate(${p.x},${p.y})`, "data-node-id": n.id, "data-name": n.name }, nodesLayer);
      el("rect", { class: "box", width: W, height: p.h }, g);
      const toggle = text(g, 8, 18, n.columns.length ? (expanded.has(n.id) ? "▾" : "▸") : "·", "toggle");
      toggle.addEventListener("click", () => { expanded.has(n.id) ? expanded.delete(n.id) : expanded.add(n.id); render(); });
      const room = 28; // characters that fit beside the run status dot
      const title = text(g, 22, 18, n.name.length > room ? "…" + n.name.slice(1 - room) : n.name, "title");
      el("title", {}, title).textContent = `${n.namespace}:${n.name} — open`;
      title.addEventListener("click", () => { window.location.href = n.url || n.lineage_url; });
      const piiCount = n.columns.filter((c) => c.pii.length).length;
      const run = n.last_run ? ` · last run ${n.last_run.status}` : "";
      text(g, 8, 36, `${n.namespace} · ${n.columns.length} columns${piiCount ? ` · ${piiCount} PII` : ""}${run}`, "meta");
      if (n.last_run) {
        const dot = el("circle", { cx: W - 12, cy: 14, r: 5, fill: STATUS[n.last_run.status] || "#6c757d", class: "run-status" }, g);
        el("title", {}, dot).textContent = `last run ${n.last_run.status}${n.last_run.finished_at ? " at " + n.last_run.finished_at : ""}`;
      }
      if (!expanded.has(n.id)) continue;
      n.columns.forEach((c, i) => {
        const row = el("g", { class: `lineage-column${c.in_lineage ? " in-lineage" : ""}`, transform: `translate(0,${HEAD + i * ROW})`, "data-column-id": c.id, "data-column": c.name }, g);
        text(row, 12, ROW / 2 + 4, (c.in_lineage ? "● " : "  ") + c.name, "name");
        if (c.pii.length) {
          const label = "PII " + c.pii.join(",");
          el("rect", { class: "pii", x: W - 104, y: 3, width: 96, height: 13, rx: 2 }, row);
          const badge = text(row, W - 100, ROW / 2 + 3, label.length > 17 ? label.slice(0, 16) + "…" : label, "pii");
          el("title", {}, badge).textContent = label + (c.pii_protection ? ` (${c.pii_protection})` : "");
        } else if (c.pii_protection) {
          const label = `${c.pii_protection}${c.pii_awaiting_review ? " · review" : ""}`;
          const badge = text(row, W - 8, ROW / 2 + 3, label, "protected");
          badge.setAttribute("text-anchor", "end");
          el("title", {}, badge).textContent = `PII ${(c.pii_entities || []).join(",")}: ${c.pii_protection}` +
            (c.pii_awaiting_review ? " (protected by default, awaiting review)" : "");
        } else if (c.pii_protected) {
          text(row, W - 70, ROW / 2 + 3, "protected", "protected");
        } else if (c.type) {
          text(row, W - 8, ROW / 2 + 4, c.type.slice(0, 14), "meta").setAttribute("text-anchor", "end");
        }
      });
    }
    statusLine.textContent = `${data.nodes.length} datasets, ${data.edges.length} dataset edges, ${data.column_edges.length} column edges (depth ${data.depth}, ${data.direction}).`;
  }

  let latest = 0; // a slower, older answer must not replace a newer one
  async function reload() {
    const mine = ++latest;
    const direction = document.getElementById("lineage-direction").value;
    const depth = document.getElementById("lineage-depth").value || "0";
    const params = new URLSearchParams({ dataset: app.dataset.dataset, direction: direction, depth: depth });
    statusLine.textContent = "Loading…";
    const response = await fetch(`${app.dataset.api}?${params}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (mine !== latest) return;
    if (!response.ok) {
      statusLine.textContent = `Could not load the graph (HTTP ${response.status}).`;
      return;
    }
    const fresh = await response.json();
    if (mine !== latest) return;
    data = fresh;
    history.replaceState(null, "", `?${new URLSearchParams({ direction: direction, depth: depth })}`);
    render();
  }

  document.getElementById("lineage-direction").addEventListener("change", reload);
  document.getElementById("lineage-depth").addEventListener("change", reload);
  document.getElementById("lineage-expand-all").addEventListener("click", () => { data.nodes.forEach((n) => expanded.add(n.id)); render(); });
  document.getElementById("lineage-collapse-all").addEventListener("click", () => { expanded.clear(); render(); });
  render();
})();
