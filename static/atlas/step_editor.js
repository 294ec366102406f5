/* The pipeline page's step forms (issue 18, item 3).
 *
 * Each step shows only its kind's fields (the mapping comes from the server: #step-kind-fields, from
 * pipelines.editor.KIND_FIELDS), merge keys only when it merges; a refine or aggregate step gets
 * "Validate" (Atlas's own SQL validation: the datasets it reads, the columns it produces) and
 * "Preview rows" (the first rows of its SELECT, run as a run stages it, masked as the user may see them)
 * under its SQL. Both post to #step-editor's data-url and draw the answer below the buttons.
 *
 * The SQL is edited with highlighting: CodeMirror 5 (vendored in static/vendor/codemirror, the
 * PostgreSQL mode) replaces each step's SQL textarea. The textarea stays the form's field: the editor
 * writes its text back (cm.save()) before Validate or Preview read it and when the form is submitted.
 */
(function () {
  "use strict";

  function init() {
    const editor = document.getElementById("step-editor");
    const mapping = document.getElementById("step-kind-fields");
    if (!editor || !mapping) return;
    const kindFields = JSON.parse(mapping.textContent);
    const url = editor.dataset.url;
    const mergeMode = editor.dataset.mergeMode;
    const csrf = document.querySelector("input[name=csrfmiddlewaretoken]");

    function field(step, name) {
      // a field alone on its line is the line (div.form-row.field-x); beside others, its own div.fieldBox
      return step.querySelector(".fieldBox.field-" + name) || step.querySelector(".form-row.field-" + name);
    }

    function control(step, name) {
      return step.querySelector("[name$='-" + name + "']");
    }

    function show(el, visible) {
      if (!el) return;
      el.hidden = !visible;
      el.classList.toggle("atlas-hidden-field", !visible);
    }

    // the step's SQL editor (CodeMirror), when the vendored library loaded; else the plain textarea
    const editors = new Map();

    function sqlEditor(step) {
      return editors.get(step) || null;
    }

    function highlight(step) {
      const textarea = control(step, "sql");
      if (!textarea || textarea.tagName !== "TEXTAREA" || !window.CodeMirror || editors.has(step)) return;
      const cm = window.CodeMirror.fromTextArea(textarea, {
        mode: "text/x-pgsql", lineNumbers: true, lineWrapping: true, indentUnit: 2,
        viewportMargin: Infinity, readOnly: textarea.readOnly || textarea.disabled ? "nocursor" : false,
      });
      cm.on("change", function () { cm.save(); });  // the field holds what the editor shows, always
      cm.getWrapperElement().classList.add("atlas-sql-editor");
      editors.set(step, cm);
    }

    function sqlText(step) {
      const cm = sqlEditor(step);
      if (cm) cm.save();
      return (control(step, "sql") || {}).value || "";
    }

    function arrange(step) {
      const kind = (control(step, "kind") || {}).value || "";
      step.dataset.kind = kind;
      Object.keys(kindFields).forEach(function (name) {
        show(field(step, name), !kind || kindFields[name].indexOf(kind) !== -1);
      });
      const mode = (control(step, "write_mode") || {}).value || "";
      show(field(step, "merge_keys"), mode === mergeMode);
      const tools = step.querySelector(".atlas-sql-tools");
      if (tools) show(tools, (kindFields.sql || []).indexOf(kind) !== -1);
      const cm = sqlEditor(step);
      if (cm) cm.refresh();  // an editor made while its field was hidden measures itself when shown
    }

    function el(tag, attrs, text) {
      const node = document.createElement(tag);
      Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
      if (text !== undefined && text !== null) node.textContent = String(text);
      return node;
    }

    function draw(box, answer, ok) {
      box.replaceChildren();
      box.dataset.state = ok ? "valid" : "invalid";
      if (!ok) {
        box.append(el("p", {"class": "errornote atlas-sql-error"}, answer.error || "The SQL could not be checked."));
        return;
      }
      const reads = el("p", {"class": "atlas-sql-reads"}, "Reads: ");
      answer.reads.forEach(function (ds, i) {
        if (i) reads.append(", ");
        reads.append(el("a", {href: ds.url, "data-dataset": ds.name}, ds.name));
      });
      if (!answer.reads.length) reads.append("no dataset");
      box.append(reads);
      const cols = el("p", {"class": "atlas-sql-columns"});
      if (answer.columns) {
        cols.append("Produces " + answer.columns.length + " column" + (answer.columns.length === 1 ? "" : "s") + " in " + answer.layer + ": ");
        answer.columns.forEach(function (c, i) {
          if (i) cols.append(" ");
          cols.append(el("code", {"data-column": c}, c));
        });
      } else {
        cols.append("Columns not known yet: " + answer.missing.join(", ") + " not loaded; run the step that produces it.");
      }
      box.append(cols);
      if (answer.rows) {
        const wrap = el("div", {"class": "atlas-preview atlas-sql-preview"});
        const table = el("table");
        const head = el("tr");
        answer.columns.forEach(function (c) { head.append(el("th", {scope: "col"}, c)); });
        const thead = el("thead");
        thead.append(head);
        table.append(thead);
        const body = el("tbody");
        answer.rows.forEach(function (row) {
          const tr = el("tr");
          row.forEach(function (v) { tr.append(v === null ? el("td", {"class": "atlas-null"}, "null") : el("td", {}, v)); });
          body.append(tr);
        });
        table.append(body);
        wrap.append(el("p", {}, answer.rows.length ? "First " + answer.rows.length + " rows:" : "The SELECT gives no row."));
        wrap.append(table);
        box.append(wrap);
      }
    }

    async function ask(step, action, box) {
      const data = new FormData();
      data.append("action", action);
      data.append("kind", (control(step, "kind") || {}).value || "");
      data.append("sql", sqlText(step));
      if (csrf) data.append("csrfmiddlewaretoken", csrf.value);
      box.dataset.state = "busy";
      box.replaceChildren(el("p", {"class": "atlas-empty"}, action === "preview" ? "Running the SELECT…" : "Validating…"));
      try {
        const response = await fetch(url, {method: "POST", body: data, credentials: "same-origin",
                                           headers: {Accept: "application/json"}});
        const answer = await response.json();
        draw(box, answer, response.ok);
      } catch (err) {
        draw(box, {error: "Atlas did not answer (" + err.message + ")."}, false);
      }
    }

    function equip(step) {
      if (step.dataset.atlasEditor) return;
      step.dataset.atlasEditor = "1";
      const sql = field(step, "sql");
      highlight(step);
      if (sql) {
        const tools = el("div", {"class": "atlas-sql-tools"});
        const validate = el("button", {type: "button", "class": "button atlas-sql-validate"}, "Validate");
        const preview = el("button", {type: "button", "class": "button atlas-sql-preview-button"}, "Preview rows");
        const box = el("div", {"class": "atlas-sql-result", role: "status", "aria-live": "polite"});
        validate.addEventListener("click", function () { ask(step, "validate", box); });
        preview.addEventListener("click", function () { ask(step, "preview", box); });
        tools.append(validate, " ", preview, box);
        sql.after(tools);
      }
      ["kind", "write_mode"].forEach(function (name) {
        const c = control(step, name);
        if (c) c.addEventListener("change", function () { arrange(step); });
      });
      arrange(step);
    }

    function steps() {
      return document.querySelectorAll("#steps-group .inline-related:not(.empty-form)");
    }

    steps().forEach(equip);
    const form = editor.closest("form") || (csrf && csrf.form);
    if (form) {
      // CodeMirror saves on submit too; this makes sure, before any other submit handler reads the fields
      form.addEventListener("submit", function () { editors.forEach(function (cm) { cm.save(); }); }, true);
    }
    document.addEventListener("formset:added", function (event) {
      const row = event.target.closest ? event.target.closest(".inline-related") : null;
      if (row) equip(row);
      else steps().forEach(equip);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
