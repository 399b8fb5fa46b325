// The bacalao dashboard: reads the requester's JSON API (Bacalhau's /api/v1/orchestrator/...)
// and shows nodes, jobs and one job's executions, logs and history.
//
// Every value from the API reaches the page as text (textContent, attributes set one by one,
// never innerHTML): job names and messages are whatever a user submitted.
"use strict";

(() => {
  // Relative to the page (/dashboard/), so a proxy that serves the requester under a prefix
  // still finds the API beside the page.
  const API = new URL("../api/v1/orchestrator/", document.baseURI);
  const TOKEN_KEY = "bacalao.apiToken";
  const POLL_MS = 1500;
  const JOB_LIMIT = 50;
  const TERMINAL_JOB_STATES = new Set(["Completed", "Failed", "Stopped"]);
  // Execution states arrive as Bacalhau v1.4's numbers (protocol/states.py).
  const EXECUTION_STATES = [
    "Undefined", "New", "AskForBid", "AskForBidAccepted", "AskForBidRejected", "BidAccepted",
    "BidRejected", "Completed", "Failed", "Cancelled", "Running", "Publishing",
  ];
  const TERMINAL_EXECUTION_STATES = new Set([
    "AskForBidRejected", "BidRejected", "Completed", "Failed", "Cancelled",
  ]);
  const DESIRED_STATES = ["Pending", "Running", "Stopped"];
  // States that get a colour (style.css); any other is shown plain.
  const STYLED_STATES = new Set([
    "Pending", "Queued", "Running", "Completed", "Failed", "Stopped", "Cancelled",
    "BidRejected", "AskForBidRejected", "Publishing", "Connected", "Disconnected",
    "Approved", "Rejected",
  ]);

  class Unauthorized extends Error {}
  class NotFound extends Error {}

  const $ = (id) => document.getElementById(id);

  // ---- the API ---------------------------------------------------------------------------

  function storedToken() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  async function api(path, params = []) {
    const url = new URL(path, API);
    for (const [name, value] of params) url.searchParams.append(name, value);
    const headers = { Accept: "application/json" };
    const token = storedToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(url, { headers, cache: "no-store", credentials: "omit" });
    if (response.ok) return response.json();
    const message = await errorMessage(response);
    if (response.status === 401) throw new Unauthorized(message);
    if (response.status === 404) throw new NotFound(message);
    throw new Error(`${response.status}: ${message}`);
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      return String(body.Message || body.message || response.statusText);
    } catch {
      return response.statusText;
    }
  }

  // ---- formatting ------------------------------------------------------------------------

  function shortId(id) {
    const text = String(id || "");
    return text.length > 10 ? text.slice(0, 10) : text;
  }

  // Times: the API's nanosecond integers (CreateTime, LastSeen) or RFC 3339 strings.
  function when(value) {
    if (value === null || value === undefined || value === 0 || value === "") return "";
    const date = typeof value === "number" ? new Date(value / 1e6) : new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return date.toISOString().replace("T", " ");
  }

  function bytes(value) {
    let size = Number(value) || 0;
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return `${unit === 0 ? size : size.toFixed(1)} ${units[unit]}`;
  }

  function cpu(value) {
    const cores = Number(value) || 0;
    return String(Math.round(cores * 1000) / 1000);
  }

  function executionState(value) {
    return typeof value === "number" ? EXECUTION_STATES[value] || String(value) : String(value);
  }

  function desiredState(value) {
    return typeof value === "number" ? DESIRED_STATES[value] || String(value) : String(value);
  }

  function capitalized(text) {
    const value = String(text || "");
    return value.charAt(0).toUpperCase() + value.slice(1).toLowerCase();
  }

  // ---- building the DOM (text only) ------------------------------------------------------

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function cell(content, className) {
    const td = element("td", undefined, className);
    if (content instanceof Node) td.append(content);
    else if (content !== undefined && content !== null) td.textContent = String(content);
    return td;
  }

  function stateCell(state) {
    const label = String(state || "");
    const styled = STYLED_STATES.has(label) ? ` state-${label.toLowerCase()}` : "";
    return cell(element("span", label, `state${styled}`), "state-cell");
  }

  function idCell(id, href) {
    const text = shortId(id);
    const content = href ? element("a", text) : element("code", text);
    if (href) content.href = href;
    content.title = String(id || "");
    return cell(content, "id");
  }

  function jobHref(id) {
    return `#/jobs/${encodeURIComponent(id)}`;
  }

  // Only http(s) result links become links: a published URL is data from a node.
  function safeLink(url, text) {
    try {
      const parsed = new URL(url);
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return null;
      const link = element("a", text);
      link.href = parsed.href;
      link.rel = "noreferrer";
      return link;
    } catch {
      return null;
    }
  }

  function fill(id, rows) {
    $(id).querySelector("tbody").replaceChildren(...rows);
    const empty = $(`${id}-empty`);
    if (empty) empty.hidden = rows.length > 0;
  }

  // ---- the overview: nodes and jobs ------------------------------------------------------

  function nodeRow(node) {
    const info = node.Info || {};
    const compute = info.ComputeNodeInfo;
    const row = element("tr");
    row.dataset.nodeId = String(info.NodeID || "");
    const free = compute ? compute.AvailableCapacity || {} : null;
    const max = compute ? compute.MaxCapacity || {} : null;
    const of = (format, key) => (compute ? `${format(free[key])} of ${format(max[key])}` : "");
    row.append(
      idCell(info.NodeID),
      cell(info.NodeType),
      stateCell(capitalized(node.Connection)),
      stateCell(capitalized(node.Membership)),
      cell(compute ? (compute.ExecutionEngines || []).join(", ") : ""),
      cell(of(cpu, "CPU"), "number"),
      cell(of(bytes, "Memory"), "number"),
      cell(of(bytes, "Disk"), "number"),
      cell(of(String, "GPU"), "number"),
      cell(compute ? compute.RunningExecutions : "", "number"),
      cell(compute ? compute.EnqueuedExecutions : "", "number"),
      cell(when(node.LastSeen), "time"),
    );
    return row;
  }

  function jobRow(job) {
    const state = job.State || {};
    const row = element("tr");
    row.dataset.jobId = String(job.ID || "");
    row.append(
      idCell(job.ID, jobHref(job.ID)),
      cell(job.Name, "name"),
      cell(job.Type),
      stateCell(state.StateType),
      cell(job.Count, "number"),
      cell(when(job.CreateTime), "time"),
      cell(when(job.ModifyTime), "time"),
      cell(state.Message, "message"),
    );
    return row;
  }

  async function showOverview() {
    const [nodes, jobs] = await Promise.all([
      api("nodes"),
      api("jobs", [["limit", String(JOB_LIMIT)], ["order_by", "created_at"], ["reverse", "true"]]),
    ]);
    const listed = (nodes.Nodes || []).slice().sort((a, b) => {
      const [x, y] = [a.Info || {}, b.Info || {}];
      return String(x.NodeType).localeCompare(String(y.NodeType))
        || String(x.NodeID).localeCompare(String(y.NodeID));
    });
    fill("nodes", listed.map(nodeRow));
    fill("jobs", (jobs.Items || []).map(jobRow));
    return true; // keeps polling
  }

  // ---- one job ---------------------------------------------------------------------------

  function summaryRows(job) {
    const state = job.State || {};
    const tasks = job.Tasks || [];
    const labels = Object.entries(job.Labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    const fields = [
      ["ID", job.ID],
      ["Name", job.Name],
      ["Namespace", job.Namespace],
      ["Type", job.Type],
      ["State", state.StateType, "state"],
      ["Message", state.Message],
      ["Count", job.Count],
      ["Engine", tasks.map((task) => (task.Engine || {}).Type).join(", ")],
      ["Publisher", tasks.map((task) => (task.Publisher || {}).Type).join(", ")],
      ["Labels", labels],
      ["Created", when(job.CreateTime)],
      ["Updated", when(job.ModifyTime)],
    ];
    return fields.map(([name, value, kind]) => {
      const row = element("tr");
      row.dataset.field = name;
      row.append(element("th", name), kind === "state" ? stateCell(value) : cell(value));
      return row;
    });
  }

  function executionRow(execution) {
    const output = execution.RunOutput;
    const result = execution.PublishedResult;
    const url = result && result.Params ? result.Params.URL : "";
    const link = url ? safeLink(url, "download") : null;
    const row = element("tr");
    row.dataset.executionId = String(execution.ID || "");
    row.append(
      idCell(execution.ID),
      idCell(execution.NodeID),
      stateCell(executionState((execution.ComputeState || {}).StateType)),
      cell(desiredState((execution.DesiredState || {}).StateType)),
      cell(output ? output.ExitCode : "", "number"),
      cell(link || (result ? result.Type : "")),
      cell(when(execution.CreateTime), "time"),
      cell(when(execution.ModifyTime), "time"),
      cell((execution.ComputeState || {}).Message, "message"),
    );
    return row;
  }

  function stream(name, text, truncated) {
    const block = element("div", undefined, `stream stream-${name}`);
    const title = truncated ? `${name} (truncated by the node)` : name;
    block.append(element("h4", title), element("pre", text));
    return block;
  }

  function executionHeading(execution) {
    const heading = element("h3");
    heading.append(
      "Execution ",
      element("code", execution.ID),
      " on ",
      element("code", shortId(execution.NodeID)),
    );
    return heading;
  }

  function logBlock(execution) {
    const output = execution.RunOutput || {};
    const block = element("article", undefined, "log");
    block.dataset.executionId = String(execution.ID || "");
    block.append(executionHeading(execution), stream("stdout", output.Stdout || "", output.StdoutTruncated));
    // Bacalhau spells it "stderr" in RunCommandResult; either is read.
    const stderr = output.stderr || output.Stderr || "";
    if (stderr || output.StderrTruncated) {
      block.append(stream("stderr", stderr, output.StderrTruncated));
    }
    if (output.ErrorMsg) block.append(element("p", output.ErrorMsg, "error"));
    return block;
  }

  function historyRow(entry) {
    let change = "";
    if (entry.JobState) {
      change = `job ${entry.JobState.Previous} → ${entry.JobState.New}`;
    } else if (entry.ExecutionState) {
      const { Previous: before, New: after } = entry.ExecutionState;
      change = `execution ${executionState(before)} → ${executionState(after)}`;
    }
    const row = element("tr");
    row.append(
      cell(when(entry.Time), "time"),
      entry.ExecutionID ? idCell(entry.ExecutionID) : cell(""),
      entry.NodeID ? idCell(entry.NodeID) : cell(""),
      cell(change),
      cell(entry.Comment || (entry.Event || {}).Message || "", "message"),
    );
    return row;
  }

  // ---- live output: GET jobs/{id}/logs?follow=true, an NDJSON stream -------------------
  //
  // While an execution runs (or publishes), its output is read from the logs endpoint as the
  // program writes it: one JSON object a line, {"Stream": "stdout"|"stderr", "Line": text},
  // {"End": true} when it ends, {"Error": why}, {} to keep a quiet stream open. Once the
  // execution has ended, the job's RunOutput (the final output) replaces it. A requester
  // without the endpoint answers 404: the page then shows the final output only.

  const FOLLOWED_STATES = new Set(["Running", "Publishing"]);
  const live = new Map(); // execution ID -> {block, controller, ...}

  function stopLive(keep = new Set()) {
    for (const [id, entry] of live) {
      if (keep.has(id)) continue;
      entry.controller.abort();
      live.delete(id);
    }
  }

  function liveEntry(jobId, execution) {
    const found = live.get(execution.ID);
    if (found) return found;
    const block = element("article", undefined, "log live");
    block.dataset.executionId = String(execution.ID || "");
    const heading = executionHeading(execution);
    heading.append(
      " ",
      element("span", "live", "badge"),
    );
    const stdout = stream("stdout", "", false);
    const stderr = stream("stderr", "", false);
    const note = element("p", "waiting for output…", "note live-note");
    block.append(heading, stdout, stderr, note);
    const entry = {
      block,
      controller: new AbortController(),
      pre: { stdout: stdout.querySelector("pre"), stderr: stderr.querySelector("pre") },
      note,
      ended: false,
    };
    live.set(execution.ID, entry);
    follow(jobId, execution.ID, entry);
    return entry;
  }

  async function follow(jobId, executionId, entry) {
    const url = new URL(`jobs/${encodeURIComponent(jobId)}/logs`, API);
    url.searchParams.set("execution_id", executionId);
    url.searchParams.set("follow", "true");
    const headers = { Accept: "application/x-ndjson" };
    const token = storedToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    try {
      const response = await fetch(url, {
        headers, cache: "no-store", credentials: "omit", signal: entry.controller.signal,
      });
      if (!response.ok) {
        const why = response.status === 404
          ? "live output is not served here: the output appears when the execution ends"
          : `live output unavailable: ${await errorMessage(response)}`;
        entry.note.textContent = why;
        return;
      }
      entry.note.textContent = "following…";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let pending = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += value;
        const lines = pending.split("\n");
        pending = lines.pop();
        for (const line of lines) if (line.trim()) liveEvent(entry, JSON.parse(line));
      }
      if (!entry.ended) {
        entry.note.textContent = "live output stopped: the output appears when the execution ends";
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      entry.note.textContent = `live output stopped: ${error.message}`;
    }
  }

  function liveEvent(entry, event) {
    if (typeof event.Line === "string") {
      const toStderr = event.Stream === "stderr" || event.Type === 2;
      const pre = toStderr ? entry.pre.stderr : entry.pre.stdout;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(event.Line); // a text node: output is never markup
      if (atBottom) pre.scrollTop = pre.scrollHeight;
      entry.note.textContent = "following…";
    } else if (event.End) {
      entry.ended = true;
      entry.note.textContent = "the execution ended; its final output follows";
    } else if (event.Error) {
      entry.note.textContent = `live output unavailable: ${event.Error}`;
    }
  }

  async function showJob(jobId) {
    $("job-id").textContent = jobId;
    let body;
    try {
      body = await api(`jobs/${encodeURIComponent(jobId)}`, [
        ["include", "executions"],
        ["include", "history"],
      ]);
    } catch (error) {
      if (!(error instanceof NotFound)) throw error;
      $("job-missing").textContent = error.message;
      $("job-missing").hidden = false;
      $("job-found").hidden = true;
      return false;
    }
    $("job-missing").hidden = true;
    $("job-found").hidden = false;
    const job = body.Job || {};
    const executions = ((body.Executions || {}).Items || []).slice();
    executions.sort((a, b) => (a.CreateTime || 0) - (b.CreateTime || 0));
    const history = (body.History || {}).Items || [];
    fill("job-summary", summaryRows(job));
    fill("executions", executions.map(executionRow));
    fill("history", history.map(historyRow));
    // Final output for the executions that ended, live output for those still running.
    const blocks = [];
    const following = new Set();
    for (const execution of executions) {
      const state = executionState((execution.ComputeState || {}).StateType);
      if (execution.RunOutput) {
        blocks.push(logBlock(execution));
      } else if (FOLLOWED_STATES.has(state)) {
        following.add(execution.ID);
        blocks.push(liveEntry(job.ID, execution).block);
      }
    }
    stopLive(following);
    $("logs").replaceChildren(...blocks);
    $("logs-empty").hidden = blocks.length > 0;
    // Nothing changes once the job and all its executions have ended: stop polling then.
    const settled = TERMINAL_JOB_STATES.has((job.State || {}).StateType)
      && executions.every((execution) => TERMINAL_EXECUTION_STATES.has(
        executionState((execution.ComputeState || {}).StateType),
      ));
    return !settled;
  }

  // ---- views, polling and the token ------------------------------------------------------

  function route() {
    const match = /^#\/jobs\/(.+)$/.exec(location.hash);
    return match ? { view: "job", jobId: decodeURIComponent(match[1]) } : { view: "overview" };
  }

  function showSection(name) {
    for (const id of ["login", "overview", "job"]) $(id).hidden = id !== name;
    $("forget-token").hidden = !storedToken();
  }

  function setStatus(text, isError) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  let timer = null;
  let generation = 0; // bumped on every navigation: answers of an earlier view are dropped

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(refresh, delay);
  }

  async function refresh() {
    clearTimeout(timer);
    const mine = ++generation;
    const where = route();
    if (where.view !== "job") stopLive();
    try {
      const again = where.view === "job" ? await showJob(where.jobId) : await showOverview();
      if (mine !== generation) return;
      showSection(where.view);
      const settled = "not refreshing: nothing more will change";
      setStatus(again ? `updated ${when(Date.now() * 1e6)}` : settled);
      if (again) schedule(POLL_MS);
    } catch (error) {
      if (mine !== generation) return;
      if (error instanceof Unauthorized) {
        askForToken(storedToken() ? "That token was not accepted: try another." : "");
        return;
      }
      setStatus(`cannot read the API: ${error.message}`, true);
      schedule(POLL_MS * 2);
    }
  }

  function askForToken(problem) {
    stopLive();
    sessionStorage.removeItem(TOKEN_KEY);
    showSection("login");
    setStatus("needs an API token", true);
    $("token-error").textContent = problem;
    $("token-error").hidden = !problem;
    $("token").focus();
  }

  function start() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault(); // never sent anywhere: the token stays out of every URL
      const token = $("token").value.trim();
      $("token").value = "";
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token-error").hidden = true;
      setStatus("loading…");
      refresh();
    });
    $("forget-token").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      refresh();
    });
    window.addEventListener("hashchange", () => {
      window.scrollTo(0, 0);
      setStatus("loading…");
      refresh();
    });
    refresh();
  }

  start();
})();
