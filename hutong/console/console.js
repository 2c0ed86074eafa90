// hutong exchange monitor (交换监控): polls /api/v1/monitor/overview and draws it.
// Plain DOM and SVG, no libraries; every value from the API is set as text, never as HTML.
(function () {
  "use strict";

  const REFRESH_MS = 5000;
  const TOKEN_KEY = "hutong.console.token";
  const OVERVIEW = "api/v1/monitor/overview";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const STATUS = {
    ok: ["正常", "ok"],
    quiet: ["空闲", "quiet"],
    silent: ["中断", "silent"],
    failing: ["异常", "failing"],
  };
  // Buckets of the API's series (5 min) drawn together in a bar (15 min).
  const GROUP = 3;

  const retries = {}; // dead letter id -> outcome of a retry made from this page
  const pending = new Set(); // dead letter ids being retried
  let timer = null;
  let skewMs = 0; // the hub's clock minus ours
  let lastRefresh = null;
  let authShown = false;

  const $ = (id) => document.getElementById(id);
  const now = () => Date.now() + skewMs;

  class HttpError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  // ---- building blocks -------------------------------------------------------------

  function el(tag, props, children) {
    const node = document.createElement(tag);
    setProps(node, props);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    append(node, children);
    return node;
  }

  function setProps(node, props) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key === "data") {
        for (const [name, item] of Object.entries(value)) {
          if (item !== null && item !== undefined) node.dataset[name] = String(item);
        }
      } else node.setAttribute(key, String(value));
    }
  }

  function append(node, children) {
    for (const child of [].concat(children === undefined ? [] : children)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function fill(tbody, rows, columns, empty) {
    tbody.replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", {class: "empty", colspan: columns, text: empty}))]));
  }

  function count(id, total, shown) {
    $(id).textContent = total > shown ? `${shown} / ${total}` : String(total);
  }

  // ---- numbers and times -----------------------------------------------------------

  const integer = (n) => Number(n || 0).toLocaleString("zh-CN");
  const percent = (r) => (r === null || r === undefined ? "—" : `${(r * 100).toFixed(r < 0.1 ? 1 : 0)}%`);

  function clockTime(iso) {
    if (!iso) return "—";
    return new Date(iso).toLocaleString("zh-CN", {
      hour12: false, month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
  }

  function ago(iso) {
    const s = Math.max(0, Math.floor((now() - Date.parse(iso)) / 1000));
    if (s < 10) return "刚刚 just now";
    if (s < 60) return `${s} 秒前`;
    if (s < 3600) return `${Math.floor(s / 60)} 分钟前`;
    if (s < 86400) return `${Math.floor(s / 3600)} 小时前`;
    return `${Math.floor(s / 86400)} 天前`;
  }

  function duration(ms) {
    const total = Math.floor(Math.abs(ms) / 1000);
    const d = Math.floor(total / 86400);
    const h = Math.floor((total % 86400) / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    const pad = (v) => String(v).padStart(2, "0");
    return (d ? `${d}天 ` : "") + (h || d ? `${pad(h)}:` : "") + `${pad(m)}:${pad(s)}`;
  }

  function since(iso) {
    return iso ? el("span", {class: "ago", title: clockTime(iso), data: {since: iso}}, ago(iso))
      : el("span", {class: "muted", text: "从未 never"});
  }

  function bar(fraction, bad, label) {
    const width = Math.max(0, Math.min(1, fraction || 0)) * 100;
    const inner = el("i");
    inner.style.width = `${width}%`;
    return [el("span", {class: bad ? "bar bad" : "bar", title: label}, inner), label];
  }

  // ---- charts ----------------------------------------------------------------------

  function grouped(values) {
    const out = [];
    for (let i = 0; i < values.length; i += GROUP) {
      out.push(values.slice(i, i + GROUP).reduce((a, b) => a + b, 0));
    }
    return out;
  }

  function bars(messages, errors, x0, y0, width, height) {
    const n = messages.length;
    const top = Math.max(1, ...messages.map((m, i) => m + errors[i]));
    const step = width / n;
    const shapes = [];
    for (let i = 0; i < n; i++) {
      const good = (messages[i] / top) * height;
      const bad = (errors[i] / top) * height;
      const x = x0 + i * step;
      const w = Math.max(step - 0.6, 0.8);
      if (good > 0) shapes.push(svg("rect", {x, y: y0 + height - good, width: w, height: good, fill: "#1565c0"}));
      if (bad > 0) shapes.push(svg("rect", {x, y: y0 + height - good - bad, width: w, height: bad, fill: "#c62828"}));
    }
    return {shapes, top};
  }

  function sparkline(line) {
    const width = 192;
    const height = 30;
    const messages = grouped(line ? line.messages : new Array(288).fill(0));
    const errors = grouped(line ? line.errors : new Array(288).fill(0));
    const drawn = bars(messages, errors, 0, 2, width, height - 3);
    const sent = messages.reduce((a, b) => a + b, 0);
    const failed = errors.reduce((a, b) => a + b, 0);
    return svg("svg", {class: "spark", width, height, viewBox: `0 0 ${width} ${height}`,
                       role: "img", "data-messages": sent, "data-errors": failed}, [
      svg("title", {}, `24 小时：${sent} 条消息，${failed} 条死信 · last 24 h: ${sent} messages, ${failed} dead letters`),
      svg("line", {x1: 0, y1: height - 1, x2: width, y2: height - 1, stroke: "#cfd6dd"}),
      ...drawn.shapes,
    ]);
  }

  function trafficChart(series) {
    const buckets = series.buckets;
    const total = new Array(buckets).fill(0);
    const failed = new Array(buckets).fill(0);
    for (const line of Object.values(series.facilities)) {
      line.messages.forEach((v, i) => { total[i] += v; });
      line.errors.forEach((v, i) => { failed[i] += v; });
    }
    const messages = grouped(total);
    const errors = grouped(failed);
    const [left, top, width, height] = [44, 8, 904, 118];
    const drawn = bars(messages, errors, left, top, width, height);
    const start = Date.parse(series.start);
    const step = series.bucket_s * 1000 * GROUP;
    const labels = [];
    for (let i = 0; i < messages.length; i += 16) {
      const at = new Date(start + i * step);
      const text = at.toLocaleTimeString("zh-CN", {hour12: false, hour: "2-digit", minute: "2-digit"});
      labels.push(svg("text", {x: left + (i / messages.length) * width, y: top + height + 16, "text-anchor": "middle"}, text));
      labels.push(svg("line", {x1: left + (i / messages.length) * width, y1: top, x2: left + (i / messages.length) * width,
                               y2: top + height, stroke: "#eef1f4"}));
    }
    const sent = messages.reduce((a, b) => a + b, 0);
    const lost = errors.reduce((a, b) => a + b, 0);
    return svg("svg", {viewBox: "0 0 960 150", role: "img", "data-messages": sent, "data-errors": lost}, [
      svg("title", {}, `24 小时：${sent} 条消息，${lost} 条死信`),
      ...labels,
      svg("line", {x1: left, y1: top + height, x2: left + width, y2: top + height, stroke: "#9aa5b1"}),
      svg("text", {x: left - 6, y: top + 10, "text-anchor": "end"}, String(drawn.top)),
      svg("text", {x: left - 6, y: top + height, "text-anchor": "end"}, "0"),
      ...drawn.shapes,
    ]);
  }

  // ---- sections --------------------------------------------------------------------

  function renderSummary(overview) {
    const counts = {ok: 0, quiet: 0, silent: 0, failing: 0};
    for (const f of overview.facilities.items) counts[f.status] += 1;
    const pills = Object.entries(STATUS).map(([key, [zh, en]]) =>
      el("span", {class: "pill", data: {summary: key}, title: en}, [el("b", {text: counts[key]}), `${zh} ${en}`]));
    pills.push(el("span", {class: "pill", data: {summary: "alerts"}},
      [el("b", {text: overview.alerts.total}), "危急值 alerts"]));
    pills.push(el("span", {class: "pill", data: {summary: "dead-letters"}},
      [el("b", {text: overview.dead_letters.total}), "死信 dead letters"]));
    $("summary").replaceChildren(...pills);
  }

  function renderFacilities(facilities, series) {
    const rows = facilities.items.map((f) => {
      const [zh, en] = STATUS[f.status];
      const errorsHour = f.errors_hour ? el("div", {class: "muted", text: `死信 ${f.errors_hour}`}) : null;
      const errorsDay = f.errors_day ? el("div", {class: "muted", text: `死信 ${f.errors_day}`}) : null;
      return el("tr", {data: {
        facility: f.facility_id, status: f.status, messagesHour: f.messages_hour,
        messagesDay: f.messages_day, errorsHour: f.errors_hour, errorsDay: f.errors_day,
        lastMessageAt: f.last_message_at || "",
      }}, [
        el("td", {}, el("span", {class: `status ${f.status}`, title: en, text: `${zh} ${en}`})),
        el("td", {}, [
          el("span", {class: "mono", text: f.facility_id}),
          f.name ? el("div", {class: "muted", text: f.name}) : null,
          f.registered ? null : el("div", {class: "muted", text: "未登记 not registered"}),
        ]),
        el("td", {}, since(f.last_message_at)),
        el("td", {class: "num messages-hour"}, [integer(f.messages_hour), errorsHour]),
        el("td", {class: "num messages-day"}, [integer(f.messages_day), errorsDay]),
        el("td", {class: "error-rate"}, bar(f.error_rate_hour, true, percent(f.error_rate_hour))),
        el("td", {}, sparkline(series.facilities[f.facility_id])),
      ]);
    });
    fill($("facility-rows"), rows, 7, "尚无机构 no facility yet");
    count("facilities-count", facilities.total, facilities.items.length);
  }

  function renderAlerts(alerts) {
    const rows = alerts.items.map((a) => {
      const test = [a.test_name || a.test_code, " ",
        el("span", {class: "mono muted", text: a.standard_code ? `${a.test_code} → ${a.standard_code}` : a.test_code})];
      return el("tr", {data: {alert: a.alert_id, state: a.state, level: a.escalation_level}}, [
        el("td", {}, el("span", {class: "clock", data: {deadline: a.deadline || "", raised: a.raised_at}})),
        el("td", {class: "mono", text: a.facility_id}),
        el("td", {}, test),
        el("td", {}, el("b", {text: `${a.value ?? ""} ${a.unit ?? ""}`.trim()})),
        el("td", {text: a.rule_description || a.rule_id}),
        el("td", {}, [`${a.escalation_level} 级`, a.notify ? el("div", {class: "muted", text: a.notify}) : null]),
        el("td", {}, since(a.raised_at)),
      ]);
    });
    fill($("alert-rows"), rows, 7, "无未确认的危急值 no open alert");
    count("alerts-count", alerts.total, alerts.items.length);
    tick();
  }

  function outcomeOf(letter) {
    const local = retries[letter.dead_letter_id];
    const last = local || letter.last_retry;
    if (!last) return null;
    let text;
    if (last.outcome === "AA") text = last.duplicate ? "已接收（重复）accepted, a resend" : "已接收 accepted";
    else if (last.outcome === "error") text = `未重试 not retried: ${last.reason}`;
    else text = `${last.outcome} ${last.reason || ""}`;
    return el("span", {class: "outcome", data: {outcome: last.outcome}, text});
  }

  function renderDeadLetters(letters) {
    const rows = letters.items.map((d) => {
      const id = d.dead_letter_id;
      const last = retries[id] || d.last_retry;
      const resolved = last && last.outcome === "AA"; // its message became events: done
      const action = resolved ? null : d.retryable
        ? el("button", {type: "button", class: "retry", data: {deadLetter: id},
                        disabled: pending.has(id) ? "disabled" : null},
             pending.has(id) ? "重试中… retrying" : "重试 Retry")
        : el("span", {class: "muted", title: d.not_retryable, text: "不可重试 n/a"});
      return el("tr", {class: resolved ? "resolved" : null,
                       data: {deadLetter: id, letterFacility: d.facility_id || "", stage: d.stage,
                              retried: last ? last.outcome : null}}, [
        el("td", {}, [clockTime(d.failed_at), el("div", {}, since(d.failed_at))]),
        el("td", {class: "mono", text: d.facility_id || "—"}),
        el("td", {text: d.stage}),
        el("td", {class: "mono"}, [d.error_code || "", d.location ? el("div", {class: "muted", text: d.location}) : null]),
        el("td", {class: "reason", text: d.reason}),
        el("td", {class: "num", text: integer(d.payload_size)}),
        el("td", {}, [action, outcomeOf(d)]),
      ]);
    });
    fill($("dead-letter-rows"), rows, 7, "24 小时内无死信 no dead letter in 24 h");
    count("dead-letters-count", letters.total, letters.items.length);
  }

  function renderUnmapped(unmapped) {
    const top = Math.max(1, ...unmapped.items.map((u) => u.count));
    const rows = unmapped.items.map((u) => el("tr", {data: {unmapped: `${u.facility_id}|${u.code_system}|${u.local_code}`}}, [
      el("td", {class: "mono", text: u.facility_id}),
      el("td", {text: u.code_system}),
      el("td", {}, [el("span", {class: "mono", text: u.local_code}),
                    u.local_display ? el("div", {class: "muted", text: u.local_display}) : null]),
      el("td", {}, bar(u.count / top, false, integer(u.count))),
      el("td", {}, since(u.last_seen)),
    ]));
    fill($("unmapped-rows"), rows, 5, "编码均已映射 every code is mapped");
    count("unmapped-count", unmapped.total, unmapped.items.length);
  }

  function renderReviews(reviews) {
    const rows = reviews.items.map((r) => {
      const fields = Object.entries(r.comparison || {})
        .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, 5)
        .map(([name, weight]) => el("span", {class: weight < 0 ? "chip against" : "chip",
                                            text: `${name} ${weight > 0 ? "+" : ""}${Number(weight).toFixed(1)}`}));
      return el("tr", {data: {pair: r.pair_id}}, [
        el("td", {class: "mono", text: `${r.left_facility_id} ↔ ${r.right_facility_id}`}),
        el("td", {}, bar(r.score, false, percent(r.score))),
        el("td", {}, fields),
        el("td", {}, since(r.created_at)),
      ]);
    });
    fill($("review-rows"), rows, 4, "无待审核 nothing to review");
    count("reviews-count", reviews.total, reviews.items.length);
  }

  // ---- the clocks ------------------------------------------------------------------

  function tick() {
    for (const node of document.querySelectorAll(".ago[data-since]")) {
      node.textContent = ago(node.dataset.since);
    }
    for (const clock of document.querySelectorAll(".clock")) {
      const deadline = clock.dataset.deadline;
      if (deadline) {
        const left = Date.parse(deadline) - now();
        clock.dataset.overdue = String(left < 0);
        clock.dataset.final = "false";
        clock.textContent = left >= 0 ? `剩余 ${duration(left)}` : `超时 +${duration(left)}`;
        clock.title = `时限 deadline ${clockTime(deadline)}`;
      } else {
        clock.dataset.overdue = "false";
        clock.dataset.final = "true";
        clock.textContent = `已开 ${duration(now() - Date.parse(clock.dataset.raised))}`;
        clock.title = "末级，无下一时限 last step, no further deadline";
      }
    }
    if (lastRefresh && now() - lastRefresh > 3 * REFRESH_MS) {
      $("refreshed").dataset.state = "stale";
    }
  }

  // ---- talking to the hub ----------------------------------------------------------

  async function api(path, options) {
    const headers = {Accept: "application/json"};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, Object.assign({cache: "no-store"}, options || {}, {headers}));
    let body = null;
    try {
      body = await response.json();
    } catch (ignored) {
      body = null;
    }
    if (!response.ok) {
      const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail))
        : response.statusText;
      throw new HttpError(response.status, detail);
    }
    return body;
  }

  function showAuth(message) {
    authShown = true;
    $("board").hidden = true;
    $("auth").hidden = false;
    $("error").hidden = true;
    $("auth-message").textContent = message;
    $("sign-out").hidden = !sessionStorage.getItem(TOKEN_KEY);
    $("refreshed").textContent = "";
    $("token").focus();
  }

  function refused(error) {
    if (error.status === 401) {
      const had = sessionStorage.getItem(TOKEN_KEY);
      sessionStorage.removeItem(TOKEN_KEY);
      showAuth(had ? "令牌无效，请重新输入 the token is not valid" : "请输入令牌 a token is needed");
      return true;
    }
    if (error.status === 403) {
      showAuth(`无权访问 not allowed: ${error.message}`);
      return true;
    }
    return false;
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const overview = await api(OVERVIEW);
      skewMs = Date.parse(overview.facilities.now) - Date.now();
      authShown = false;
      $("auth").hidden = true;
      $("board").hidden = false;
      $("error").hidden = true;
      $("sign-out").hidden = !sessionStorage.getItem(TOKEN_KEY);
      renderSummary(overview);
      renderFacilities(overview.facilities, overview.series);
      renderAlerts(overview.alerts);
      renderDeadLetters(overview.dead_letters);
      renderUnmapped(overview.unmapped);
      renderReviews(overview.reviews);
      trafficChartInto(overview.series);
      lastRefresh = now();
      $("refreshed").dataset.state = "fresh";
      $("refreshed").textContent = `更新于 updated ${clockTime(new Date(lastRefresh).toISOString())}`;
      document.body.dataset.loaded = "true";
    } catch (error) {
      if (error instanceof HttpError && refused(error)) return; // wait for a token
      $("error").hidden = false;
      $("error").textContent = `无法获取数据 cannot reach the hub: ${error.message}`;
      $("refreshed").dataset.state = "stale";
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  function trafficChartInto(series) {
    $("traffic-chart").replaceChildren(trafficChart(series));
  }

  async function retry(id) {
    pending.add(id);
    const button = document.querySelector(`button.retry[data-dead-letter="${CSS.escape(id)}"]`);
    if (button) {
      button.disabled = true;
      button.textContent = "重试中… retrying";
    }
    try {
      const result = await api(`api/v1/monitor/dead-letters/${encodeURIComponent(id)}/retry`, {method: "POST"});
      retries[id] = result;
    } catch (error) {
      if (error instanceof HttpError && refused(error)) {
        pending.delete(id);
        return;
      }
      retries[id] = {outcome: "error", reason: error.message};
    }
    pending.delete(id);
    await refresh();
  }

  // ---- wiring ----------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token").value = "";
      refresh();
    });
    $("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      clearTimeout(timer);
      showAuth("已退出 signed out");
    });
    $("dead-letter-rows").addEventListener("click", (event) => {
      const button = event.target.closest("button.retry");
      if (button && !button.disabled) retry(button.dataset.deadLetter);
    });
    setInterval(() => { if (!authShown) tick(); }, 1000);
    refresh();
  });
})();
