/* The run page while its run is active: steps, rows so far and timings updated in place.
 *
 * Polls the run's JSON state (pipelines.live.run_state, at #run-live's data-url) every data-every ms and
 * writes it into the page the server drew: the summary line, the status and current step, and each row
 * of the steps table (status, duration, rows). When the steps drawn no longer match (the worker created
 * them after the page loaded) or the run ends, the page's main content is fetched again and swapped in
 * (the timeline and totals of the ended run appear): no full reload, the scroll position stays.
 */
(function () {
  "use strict";
  let box = document.getElementById("run-live");
  if (!box) return;
  const url = box.dataset.url;
  const every = Number(box.dataset.every) || 2000;
  let failures = 0;

  function put(element, html) {
    if (element && element.innerHTML !== html) element.innerHTML = html;
  }

  function text(value) {
    const span = document.createElement("span");
    span.textContent = value === null || value === undefined ? "" : String(value);
    return span.innerHTML;
  }

  function readonly(field) {
    return document.querySelector("#content-main div.field-" + field + " .readonly");
  }

  function cell(row, field) {
    const td = row.querySelector("td.field-" + field);
    return td ? td.querySelector("p") || td : null;
  }

  function rowsMatch(steps) {
    const rows = document.querySelectorAll("#step_runs-group tr.form-row.has_original");
    if (rows.length !== steps.length) return false;
    return steps.every(function (step, i) {
      const name = cell(rows[i], "step_name");
      return name && name.textContent.trim() === step.name;
    });
  }

  function draw(state) {
    put(box.querySelector("[data-live=summary]"), text(state.summary));
    put(readonly("status_badge"), state.status_html);
    put(readonly("current_step"), text(state.current_step || "-"));
    box.dataset.status = state.status;
    const rows = document.querySelectorAll("#step_runs-group tr.form-row.has_original");
    state.steps.forEach(function (step, i) {
      const row = rows[i];
      row.dataset.status = step.status;
      put(cell(row, "status_badge"), step.status_html);
      put(cell(row, "duration_display"), text(step.seconds === null ? "-" : step.duration));
      put(cell(row, "rows_in"), text(step.rows_in));
      put(cell(row, "rows_out"), text(step.rows_out));
      put(cell(row, "rows_rejected"), text(step.rows_rejected));
      if (step.error) put(cell(row, "error_line"), text(step.error));
    });
  }

  async function swap() {
    const response = await fetch(window.location.href, {credentials: "same-origin"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("content-main");
    const current = document.getElementById("content-main");
    if (fresh && current) current.replaceWith(fresh);
  }

  async function tick() {
    let state;
    try {
      const response = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (!response.ok) throw new Error("HTTP " + response.status);
      state = await response.json();
      failures = 0;
    } catch (err) {
      failures += 1;
      put(box.querySelector("[data-live=note]"), text("Atlas did not answer (" + err.message + "); trying again."));
      window.setTimeout(tick, every * Math.min(failures + 1, 10));
      return;
    }
    try {
      if (!state.active || !rowsMatch(state.steps)) {
        await swap();  // the ended run's page, or the steps the worker has created since
        box = document.getElementById("run-live");
        if (!state.active || !box) return;
      } else {
        draw(state);
      }
      put(box.querySelector("[data-live=note]"), text("Updated " + new Date().toLocaleTimeString() + "."));
    } catch (err) {
      put(box.querySelector("[data-live=note]"), text("Could not update the page (" + err.message + ")."));
    }
    window.setTimeout(tick, every);
  }

  window.setTimeout(tick, every);
})();
