/* mindwell web app: plain JavaScript, no build step, nothing loaded from the internet.
   Words live in i18n.js (English and Korean); the mood chart is drawn by uPlot (vendored,
   MIT, static/uplot.*). */
"use strict";

(() => {
  const KEY_STORAGE = "mindwell.key";
  const SESSION_STORAGE = "mindwell.session"; // the open conversation, restored on reload
  const TAB_STORAGE = "mindwell.tab";
  const LANGUAGE_STORAGE = "mindwell.language"; // the last choice, for before sign-in
  const SPEAK_STORAGE = "mindwell.speakReplies"; // "1": read replies aloud (off by default)
  const FACE_INTERVAL_MS = 5000;
  const TAGS = ["sleep", "work", "study", "family", "friends", "health", "exercise", "rest"];
  const STRINGS = window.MINDWELL_STRINGS;
  const EMOTIONS = window.MINDWELL_EMOTIONS;

  const byId = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, text) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (name === "class") node.className = value;
      else if (name === "testid") node.dataset.testid = value;
      else node.setAttribute(name, value);
    }
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  };

  const state = {
    key: null,
    me: null,
    lang: "en",
    translated: false,
    session: null, // {id, started_at, disclosure, mode}
    sessionEnded: null, // the /end response of the last session
    lastSessionId: null,
    lastStartedAt: null,
    crisis: false,
    sending: false,
    mood: null, // the last /api/v1/mood points
    chart: null, // the uPlot instance
    lastCheckin: null,
    webcam: null, // {stream, timer}
    recording: null, // push-to-talk: {context, stream, chunks, ...} while the microphone is open
    transcribing: false,
    speakToken: 0, // bumped to drop a spoken reply that is no longer wanted
  };

  // ---------------------------------------------------------------- words
  function browserLanguage() {
    const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
    for (const tag of wanted) {
      const base = String(tag || "").toLowerCase().split("-")[0];
      if (base === "ko" || base === "en") return base;
    }
    return "en";
  }

  function t(key, values) {
    const table = STRINGS[state.lang] || STRINGS.en;
    let value = key in table ? table[key] : STRINGS.en[key];
    if (value === null || value === undefined) value = STRINGS.en[key];
    if (typeof value === "function") return value(values || {});
    return value === undefined || value === null ? key : value;
  }

  const locale = () => (state.lang === "ko" ? "ko-KR" : undefined);

  function translatePage() {
    document.documentElement.lang = state.lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    // Our own constant strings (a <code> inside), never text from the server.
    for (const node of document.querySelectorAll("[data-i18n-html]")) node.innerHTML = t(node.dataset.i18nHtml);
    for (const node of document.querySelectorAll("[data-i18n-attr]")) {
      for (const pair of node.dataset.i18nAttr.split(";")) {
        const [attr, key] = pair.split(":");
        node.setAttribute(attr, t(key));
      }
    }
  }

  function setLanguage(preference) {
    const pref = preference === "en" || preference === "ko" ? preference : "";
    localStorage.setItem(LANGUAGE_STORAGE, pref);
    const lang = pref || browserLanguage();
    if (lang !== state.lang || !state.translated) {
      state.lang = lang;
      state.translated = true;
      translatePage();
    }
    for (const radio of document.querySelectorAll('input[name="language"]')) radio.checked = radio.value === pref;
  }

  const emotionName = (label) => {
    if (!label) return t("emotion_unknown");
    return (EMOTIONS[state.lang] && EMOTIONS[state.lang][label]) || label;
  };
  const riskName = (level) => t(`risk_${level || "unknown"}`);
  const moodName = (mood) => t(`mood${mood}`);
  const tagName = (tag) => (TAGS.includes(tag) ? t(`tag_${tag}`) : tag);

  // ---------------------------------------------------------------- helplines as links
  // Numbers and addresses in mindwell's fixed replies become tel:, sms: or https: links.
  function linkified(text) {
    const fragment = document.createDocumentFragment();
    const dial = (state.me && state.me.dial) || [];
    if (!dial.length) {
      fragment.append(text);
      return fragment;
    }
    const escaped = dial.map((d) => d.text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    // Not a number that begins a name ("988 Suicide & Crisis Lifeline"): the one after it is.
    const pattern = new RegExp(`(?<![\\w-])(${escaped.join("|")})(?![\\w-]| \\p{L})`, "gu");
    const hrefs = new Map(dial.map((d) => [d.text, d.href]));
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      fragment.append(text.slice(last, match.index));
      const href = hrefs.get(match[1]);
      const link = el("a", { href, class: "dial", testid: "dial-link" }, match[1]);
      if (href.startsWith("https:")) {
        link.rel = "noopener noreferrer";
        link.target = "_blank";
      }
      fragment.append(link);
      last = match.index + match[1].length;
    }
    fragment.append(text.slice(last));
    return fragment;
  }

  // A fixed reply is linked whole; a generated reply ending with the check-in question only
  // in that question (after its last blank line): a number the model wrote is never a link.
  function fillReply(node, text, { fixed = false, checkIn = false } = {}) {
    node.replaceChildren();
    if (fixed) {
      node.append(linkified(text));
    } else if (checkIn && text.includes("\n\n")) {
      const cut = text.lastIndexOf("\n\n");
      node.append(text.slice(0, cut + 2), linkified(text.slice(cut + 2)));
    } else if (checkIn) {
      node.append(linkified(text));
    } else {
      node.textContent = text;
    }
  }

  function helplineNodes(line) {
    const words = line[state.lang] || line.en;
    const fragment = document.createDocumentFragment();
    let rest = words;
    for (const link of line.links || []) {
      const at = rest.lastIndexOf(link.text);
      if (at < 0) continue;
      fragment.append(rest.slice(0, at));
      const a = el("a", { href: link.href, class: "dial", testid: "dial-link" }, link.text);
      if (link.href.startsWith("https:")) {
        a.rel = "noopener noreferrer";
        a.target = "_blank";
      }
      fragment.append(a);
      rest = rest.slice(at + link.text.length);
    }
    fragment.append(rest);
    return fragment;
  }

  function renderHelplines() {
    const lines = (state.me && state.me.helplines) || [];
    const banner = byId("banner-line");
    banner.replaceChildren();
    if (lines.length) banner.append(helplineNodes(lines[0]));
    const list = byId("helpline-list");
    list.replaceChildren();
    for (const line of lines) {
      const item = el("li", { testid: "helpline" });
      item.append(helplineNodes(line));
      list.append(item);
    }
  }

  // ---------------------------------------------------------------- messages
  const messages = byId("messages");

  function messageBox(kind, text, hint) {
    const box = el("div", { class: `msg ${kind}`, testid: kind === "error" ? "error" : "info" });
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    const body = el("div", { class: "msg-body" });
    body.append(el("p", { class: "msg-text" }, text));
    if (hint) body.append(el("p", { class: "msg-hint" }, hint));
    const close = el("button", { type: "button", class: "msg-close", "aria-label": t("dismiss") }, "×");
    close.addEventListener("click", () => box.remove());
    box.append(body, close);
    return box;
  }

  // Page-wide messages (sign-in, confirmations): the area at the top.
  function showMessage(kind, text, hint) {
    const box = messageBox(kind, text, hint);
    messages.append(box);
    if (kind !== "error") setTimeout(() => box.remove(), 6000);
    while (messages.children.length > 4) messages.firstElementChild.remove();
    return box;
  }
  const showInfo = (text) => showMessage("info", text);

  // An error goes next to the action that caused it: into its card or form.
  function scopeOf(node) {
    return (node && node.closest && node.closest("[data-error-scope]")) || null;
  }

  function showError(text, hint, near) {
    const scope = scopeOf(near);
    if (!scope) return showMessage("error", text, hint);
    clearError(scope);
    const box = messageBox("error", text, hint);
    box.classList.add("inline-error");
    const form = near.closest("form");
    if (form && scope.contains(form) && form !== scope) form.after(box);
    else if (near.closest(".chat-form, .moods, .inline, .erase-row") && scope.contains(near)) {
      near.closest(".chat-form, .moods, .inline, .erase-row").after(box);
    } else scope.append(box);
    box.setAttribute("tabindex", "-1");
    return box;
  }

  function clearError(near) {
    const scope = scopeOf(near);
    if (scope) scope.querySelectorAll(".msg.error").forEach((n) => n.remove());
  }

  // ---------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(message, hint, status, type) {
      super(message);
      this.hint = hint || null;
      this.status = status || 0;
      this.type = type || null;
    }
  }

  async function errorFrom(response) {
    let message = `The server answered ${response.status} ${response.statusText || ""}`.trim();
    let hint = null;
    let type = null;
    try {
      const data = await response.json();
      if (data && data.error) {
        message = data.error.message || message;
        hint = data.error.hint || null;
        type = data.error.type || null;
      } else if (data && data.detail) {
        message = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
      }
    } catch (_) {
      /* not JSON: keep the status line */
    }
    return new ApiError(message, hint, response.status, type);
  }

  // `body` is sent as JSON; `raw` (a Blob: recorded audio) as it is, with `contentType`.
  async function request(path, { method = "GET", body, accept, raw, contentType } = {}) {
    const headers = { Authorization: `Bearer ${state.key}` };
    if (raw !== undefined) headers["Content-Type"] = contentType || "application/octet-stream";
    else if (body !== undefined) headers["Content-Type"] = "application/json";
    if (accept) headers.Accept = accept;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (_) {
      throw new ApiError(t("unreachable"), t("unreachableHint"));
    }
    if (!response.ok) {
      const error = await errorFrom(response);
      if (response.status === 401) onUnauthorized(error);
      throw error;
    }
    return response;
  }

  const api = async (path, options) => (await request(path, options)).json();

  // The server's words, or ours where the interface is in another language.
  function report(error, near) {
    if (error instanceof ApiError) {
      if (error.status === 401) return;
      const ours = error.type && state.lang !== "en" ? STRINGS[state.lang][`err_${error.type}`] : null;
      if (ours) showError(ours, error.message, near);
      else showError(error.message, error.hint, near);
    } else {
      showError(t("pageError", { message: error && error.message ? error.message : error }), null, near);
      console.warn(error);
    }
  }

  // Runs an async action with its button disabled; errors appear beside the button.
  async function withBusy(button, action, busyKey) {
    const label = button ? button.textContent : null;
    if (button) {
      clearError(button);
      button.disabled = true;
      if (busyKey) button.textContent = t(busyKey);
      button.setAttribute("aria-busy", "true");
    }
    try {
      return await action();
    } catch (error) {
      report(error, button);
      return undefined;
    } finally {
      if (button) {
        button.removeAttribute("aria-busy");
        if (busyKey) button.textContent = label;
        button.disabled = false;
      }
    }
  }

  // ---------------------------------------------------------------- auth
  function readKeyFromHash() {
    const hash = location.hash.replace(/^#/, "");
    if (!hash) return;
    const params = new URLSearchParams(hash);
    const key = params.get("key");
    if (key) {
      localStorage.setItem(KEY_STORAGE, key.trim());
      params.delete("key");
      const rest = params.toString();
      history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
    }
  }

  function showAuth(reason) {
    byId("app").hidden = true;
    byId("auth-panel").hidden = false;
    if (reason) showError(reason.message || reason, reason.hint, byId("key-input"));
    byId("key-input").focus();
  }

  function onUnauthorized(error) {
    localStorage.removeItem(KEY_STORAGE);
    state.key = null;
    stopWebcam();
    stopVoice();
    showAuth({
      message: t("keyNotAccepted"),
      hint: (error && error.message && state.lang === "en" ? `${error.message} ` : "") + t("keyNotAcceptedHint"),
    });
  }

  byId("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = byId("key-input").value.trim();
    if (!key) {
      showError(t("pasteKeyFirst"), t("pasteKeyHint"), byId("key-input"));
      return;
    }
    localStorage.setItem(KEY_STORAGE, key);
    byId("key-input").value = "";
    clearError(byId("key-input"));
    await start();
  });

  byId("forget-key").addEventListener("click", () => {
    stopWebcam();
    stopVoice();
    localStorage.removeItem(KEY_STORAGE);
    localStorage.removeItem(SESSION_STORAGE);
    state.key = null;
    showAuth();
    showInfo(t("keyRemoved"));
  });

  // ---------------------------------------------------------------- tabs
  const tabs = Array.from(document.querySelectorAll('[role="tab"]'));

  function selectTab(tab, focus = false) {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      byId(other.getAttribute("aria-controls")).hidden = !selected;
    }
    sessionStorage.setItem(TAB_STORAGE, tab.id);
    if (focus) tab.focus();
    if (tab.id === "tab-diary" && state.mood) drawMood(state.mood); // sized now it shows
    if (tab.id === "tab-chat") loadChats();
  }

  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      let next = null;
      if (event.key === "ArrowRight") next = tabs[(index + 1) % tabs.length];
      else if (event.key === "ArrowLeft") next = tabs[(index - 1 + tabs.length) % tabs.length];
      else if (event.key === "Home") next = tabs[0];
      else if (event.key === "End") next = tabs[tabs.length - 1];
      if (next) {
        event.preventDefault();
        selectTab(next, true);
      }
    });
  });

  // ---------------------------------------------------------------- account
  function applyMe(me) {
    state.me = me;
    setLanguage(me.language || "");
    byId("disclosure").textContent = (state.lang !== "en" && t("disclosureFull")) || me.disclosure || t("disclosureShort");
    for (const radio of document.querySelectorAll('input[name="mode"]')) {
      radio.checked = radio.value === me.mode;
    }
    const ephemeral = me.mode === "ephemeral";
    byId("mode-current").textContent = t(ephemeral ? "modeNowEphemeral" : "modeNowJournal");
    byId("diary-mode-note").textContent = t(ephemeral ? "diaryModeEphemeral" : "diaryModeJournal");
    if (document.activeElement !== byId("locale-input")) byId("locale-input").value = me.locale || "";
    renderHelplines();
    renderTags();
    updateEraseSession();
    if (!state.session && !chatLog.querySelector(".bubble")) resetChatLog();
  }

  async function start() {
    state.key = localStorage.getItem(KEY_STORAGE);
    if (!state.key) {
      showAuth();
      return;
    }
    let me;
    try {
      me = await api("/api/v1/me");
    } catch (error) {
      if (error.status !== 401) showAuth(error);
      return;
    }
    byId("auth-panel").hidden = true;
    byId("app").hidden = false;
    applyMe(me);
    const tab = byId(sessionStorage.getItem(TAB_STORAGE) || "tab-diary");
    if (tab && tabs.includes(tab)) selectTab(tab);
    await Promise.all([loadDiary(), loadMood(), restoreChat()]);
    if (!byId("panel-chat").hidden) loadChats();
  }

  // ---------------------------------------------------------------- mood check-in
  function renderTags() {
    const box = byId("checkin-tags");
    const pressed = new Set(Array.from(box.querySelectorAll('[aria-pressed="true"]')).map((b) => b.dataset.tag));
    box.replaceChildren();
    for (const tag of TAGS) {
      const button = el("button", { type: "button", class: "tag", testid: `tag-${tag}` }, tagName(tag));
      button.dataset.tag = tag;
      button.setAttribute("aria-pressed", String(pressed.has(tag)));
      button.addEventListener("click", () => toggleTag(button));
      box.append(button);
    }
  }

  const chosenTags = () =>
    Array.from(byId("checkin-tags").querySelectorAll('[aria-pressed="true"]')).map((b) => b.dataset.tag);

  function checkinText(checkin) {
    const tags = checkin.tags.map(tagName).join(", ");
    if (!checkin.stored) return t("checkinNotSaved", { mood: moodName(checkin.mood) });
    return t("checkinSaved", { mood: moodName(checkin.mood), tags });
  }

  function showCheckin(checkin) {
    const result = byId("checkin-result");
    result.replaceChildren(el("span", {}, checkinText(checkin)));
    if (checkin.stored) {
      const undo = el("button", { type: "button", class: "quiet small-btn", testid: "checkin-undo" }, t("undo"));
      undo.addEventListener("click", () =>
        withBusy(undo, async () => {
          await api(`/api/v1/checkins/${encodeURIComponent(checkin.id)}`, { method: "DELETE" });
          state.lastCheckin = null;
          result.replaceChildren(el("span", {}, t("checkinUndone")));
          for (const b of document.querySelectorAll(".mood-btn")) b.setAttribute("aria-pressed", "false");
          await loadMood();
        }),
      );
      result.append(" ", undo);
    }
    result.hidden = false;
  }

  async function saveCheckin(mood, button) {
    await withBusy(button, async () => {
      const checkin = await api("/api/v1/checkins", { method: "POST", body: { mood, tags: chosenTags() } });
      state.lastCheckin = checkin;
      for (const b of document.querySelectorAll(".mood-btn")) {
        b.setAttribute("aria-pressed", String(Number(b.dataset.mood) === mood));
      }
      showCheckin(checkin);
      await loadMood();
    });
  }

  // A tag tapped within ten minutes of the mood goes to that check-in.
  async function toggleTag(button) {
    const on = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(on));
    const last = state.lastCheckin;
    if (!last || !last.stored || Date.now() / 1000 - last.created_at > 600) return;
    await withBusy(button, async () => {
      const updated = await api(`/api/v1/checkins/${encodeURIComponent(last.id)}`, {
        method: "PUT",
        body: { tags: chosenTags() },
      });
      state.lastCheckin = updated;
      showCheckin(updated);
      await loadMood();
    });
  }

  // The five faces, drawn here: no emoji font needed.
  function faceSvg(mood) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 32 32");
    svg.setAttribute("width", "30");
    svg.setAttribute("height", "30");
    svg.setAttribute("focusable", "false");
    const add = (tag, attrs) => {
      const node = document.createElementNS(NS, tag);
      for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
      svg.append(node);
    };
    add("circle", { cx: 16, cy: 16, r: 14, fill: "none", stroke: "currentColor", "stroke-width": 2 });
    add("circle", { cx: 11, cy: 13, r: 1.8, fill: "currentColor" });
    add("circle", { cx: 21, cy: 13, r: 1.8, fill: "currentColor" });
    const mouths = { 1: "M10 23 Q16 15 22 23", 2: "M10 22 Q16 18 22 22", 3: "M10 21 L22 21",
      4: "M10 20 Q16 25 22 20", 5: "M9 19 Q16 28 23 19 Z" };
    add("path", { d: mouths[mood], fill: mood === 5 ? "currentColor" : "none", stroke: "currentColor",
      "stroke-width": 2, "stroke-linecap": "round", "stroke-linejoin": "round" });
    return svg;
  }

  for (const button of document.querySelectorAll(".mood-btn")) {
    button.querySelector(".face").append(faceSvg(Number(button.dataset.mood)));
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => saveCheckin(Number(button.dataset.mood), button));
  }

  // ---------------------------------------------------------------- diary
  const formatTime = (epochSeconds) =>
    new Date(epochSeconds * 1000).toLocaleString(locale(), {
      weekday: "short",
      year: "numeric",
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
    });

  const percent = (score) => Math.round(Math.max(0, Math.min(1, Number(score) || 0)) * 100);

  function firstLines(text, lines = 2, chars = 180) {
    const kept = String(text || "").split(/\r?\n/).filter((l) => l.trim()).slice(0, lines).join("\n");
    return kept.length > chars ? `${kept.slice(0, chars - 1).trimEnd()}…` : kept;
  }

  const replyKind = (entry) => {
    const risk = (entry.analysis && entry.analysis.risk) || {};
    return { fixed: Boolean(entry.escalated || risk.decline), checkIn: risk.action === "check_in" };
  };

  function renderDiaryResult(entry) {
    const analysis = entry.analysis || {};
    const score = analysis.depression ? analysis.depression.score : 0;
    const pct = percent(score);
    byId("diary-emotion").textContent = emotionName(analysis.emotion && analysis.emotion.label);
    const riskNode = byId("diary-risk");
    const level = (analysis.risk && analysis.risk.level) || "unknown";
    riskNode.textContent = riskName(level);
    riskNode.dataset.level = level;
    const bar = byId("diary-signal");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.setAttribute("aria-valuetext", t("signalValue", { pct }));
    bar.querySelector(".fill").style.width = `${pct}%`;
    byId("diary-signal-text").textContent = `${pct} %`;

    const reply = byId("diary-reply");
    const crisis = byId("diary-crisis");
    reply.hidden = true;
    crisis.hidden = true;
    if (entry.reply) {
      const target = entry.escalated ? crisis : reply;
      fillReply(target, entry.reply, replyKind(entry));
      target.hidden = false;
    }
    byId("diary-stored").textContent = t(entry.stored ? "savedToDiary" : "notSaved");
    byId("diary-result").hidden = false;
  }

  byId("diary-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const textarea = byId("diary-text");
    const text = textarea.value.trim();
    if (!text) {
      showError(t("writeFirst"), t("writeFirstHint"), textarea);
      textarea.focus();
      return;
    }
    await withBusy(
      byId("diary-save"),
      async () => {
        const entry = await api("/api/v1/diary", { method: "POST", body: { text, reply: true } });
        renderDiaryResult(entry);
        textarea.value = "";
        byId("diary-result").scrollIntoView({ block: "nearest", behavior: "smooth" });
        await Promise.all([loadDiary(), loadMood()]);
      },
      "reading",
    );
  });

  async function loadDiary() {
    const list = byId("diary-list");
    let data;
    try {
      data = await api("/api/v1/diary?limit=50");
    } catch (error) {
      report(error, list);
      return;
    }
    clearError(list);
    list.replaceChildren();
    const entries = data.entries || [];
    byId("diary-empty").hidden = entries.length > 0;
    for (const entry of entries) list.append(diaryItem(entry));
  }

  // A past entry opens to its whole text and mindwell's reply.
  function diaryItem(entry) {
    const analysis = entry.analysis || {};
    const item = el("li", { class: "entry", testid: "diary-entry" });
    item.dataset.id = entry.id;
    const details = el("details", { class: "entry-details" });
    const summary = el("summary", { class: "entry-summary", testid: "entry-open" });
    const head = el("span", { class: "entry-head" });
    head.append(el("time", { datetime: new Date(entry.created_at * 1000).toISOString() }, formatTime(entry.created_at)));
    if (analysis.emotion && analysis.emotion.label) {
      head.append(el("span", { class: "chip", testid: "entry-emotion" }, emotionName(analysis.emotion.label)));
    }
    if (entry.escalated) head.append(el("span", { class: "chip warm" }, t("crisisReplyGiven")));
    summary.append(head, el("span", { class: "entry-text" }, firstLines(entry.text)));
    const body = el("div", { class: "entry-body" });
    body.append(el("h3", { class: "small-heading" }, t("yourEntry")), el("p", { class: "entry-full" }, entry.text));
    body.append(el("h3", { class: "small-heading" }, t("mindwellReply")));
    if (entry.reply) {
      const reply = el("div", { class: entry.escalated ? "crisis" : "reply", testid: "entry-reply" });
      fillReply(reply, entry.reply, replyKind(entry));
      body.append(reply);
    } else {
      body.append(el("p", { class: "muted small", testid: "entry-reply" }, t("noReply")));
    }
    const when = formatTime(entry.created_at);
    const del = el("button", { type: "button", class: "quiet small-btn", testid: "diary-delete" }, t("delete"));
    del.setAttribute("aria-label", t("deleteEntryLabel", { when }));
    del.addEventListener("click", () => deleteEntry(entry, del));
    const actions = el("div", { class: "entry-actions" });
    actions.append(del);
    body.append(actions);
    details.append(summary, body);
    item.append(details);
    return item;
  }

  async function deleteEntry(entry, button) {
    if (!window.confirm(t("deleteEntryConfirm"))) return;
    await withBusy(button, async () => {
      await api(`/api/v1/diary/${encodeURIComponent(entry.id)}`, { method: "DELETE" });
      showInfo(t("entryDeleted"));
      await Promise.all([loadDiary(), loadMood()]);
    });
  }

  byId("diary-refresh").addEventListener("click", (event) =>
    withBusy(event.currentTarget, () => Promise.all([loadDiary(), loadMood()])),
  );

  // ---------------------------------------------------------------- mood chart
  const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const darkScheme = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function drawMood(points) {
    const box = byId("mood-chart");
    if (state.chart) {
      state.chart.destroy();
      state.chart = null;
    }
    box.replaceChildren();
    if (!points.length || typeof window.uPlot !== "function") return;
    const width = Math.max(240, Math.floor(box.getBoundingClientRect().width || box.parentElement.clientWidth || 320));
    if (!box.offsetParent) return; // hidden: drawn when its tab is shown
    const phone = width < 480;
    const ink = cssVar("--ink");
    const muted = cssVar("--muted");
    const grid = cssVar("--line");
    const moodColour = cssVar("--chart-mood");
    const signalColour = cssVar("--chart-signal");
    const font = `${phone ? 12 : 13}px system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans KR", sans-serif`;
    const days = points.map((p) => Date.parse(`${p.date}T12:00:00`) / 1000);
    const now = new Date();
    const today = new Date(now.getFullYear(), now.getMonth(), now.getDate(), 12).getTime() / 1000;
    const moods = points.map((p) => (p.mood === null || p.mood === undefined ? null : p.mood));
    const signal = points.map((p) => (p.depression === null || p.depression === undefined ? null : percent(p.depression)));
    const dayLabel = (s) => new Date(s * 1000).toLocaleDateString(locale(), { month: "short", day: "numeric" });
    const axis = { stroke: muted, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const options = {
      width,
      height: phone ? 230 : 260,
      pxAlign: 0,
      cursor: { points: { size: 9 }, drag: { x: false, y: false } },
      legend: { show: true, live: false },
      scales: {
        // The last 30 days, whatever the data: a trend reads the same from day to day.
        x: { time: true, range: () => [today - 29.5 * 86400, today + 0.5 * 86400] },
        mood: { range: [0.5, 5.5] },
        pct: { range: [0, 100] },
      },
      axes: [
        { ...axis, space: phone ? 84 : 90, values: (u, splits) => splits.map(dayLabel) },
        {
          ...axis,
          scale: "mood",
          size: phone ? 34 : 40,
          splits: () => [1, 2, 3, 4, 5],
          values: (u, splits) => splits.map(String),
          label: phone ? undefined : t("seriesMood"),
          labelFont: font,
        },
        {
          ...axis,
          scale: "pct",
          side: 1,
          size: phone ? 46 : 52,
          grid: { show: false },
          splits: () => [0, 25, 50, 75, 100],
          values: (u, splits) => splits.map((v) => `${v}%`),
        },
      ],
      series: [
        { value: (u, v) => (v == null ? "–" : dayLabel(v)) },
        {
          label: t("seriesMood"),
          scale: "mood",
          stroke: moodColour,
          width: 2,
          spanGaps: true,
          points: { show: true, size: phone ? 9 : 10, fill: moodColour, stroke: moodColour },
          value: (u, v) => (v == null ? "–" : `${v} · ${moodName(Math.round(v))}`),
        },
        {
          label: t("seriesSignal"),
          scale: "pct",
          stroke: signalColour,
          width: 2,
          dash: [6, 4],
          spanGaps: true,
          points: { show: true, size: phone ? 6 : 7, fill: signalColour, stroke: signalColour },
          value: (u, v) => (v == null ? "–" : `${v}%`),
        },
      ],
    };
    box.dataset.scheme = darkScheme && darkScheme.matches ? "dark" : "light";
    box.dataset.points = String(points.length);
    box.style.color = ink;
    state.chart = new window.uPlot(options, [days, moods, signal], box);
  }

  if (darkScheme && darkScheme.addEventListener) {
    darkScheme.addEventListener("change", () => state.mood && drawMood(state.mood));
  }
  if (window.ResizeObserver) {
    let lastWidth = 0;
    new ResizeObserver((entries) => {
      const width = Math.floor(entries[0].contentRect.width);
      if (width && Math.abs(width - lastWidth) > 8 && state.mood) {
        lastWidth = width;
        drawMood(state.mood);
      }
    }).observe(byId("mood-figure"));
  }

  async function loadMood() {
    const empty = byId("mood-empty");
    const figure = byId("mood-figure");
    let points;
    try {
      points = (await api("/api/v1/mood?days=30")).points || [];
    } catch (error) {
      figure.hidden = true;
      empty.hidden = false;
      empty.textContent = t("chartFailed");
      report(error, figure);
      return;
    }
    clearError(figure);
    state.mood = points;
    const rows = byId("mood-rows");
    rows.replaceChildren();
    for (const p of points) {
      const tr = el("tr");
      tr.append(
        el("td", {}, p.date),
        el("td", {}, p.mood == null ? "–" : `${p.mood}${p.tags && p.tags.length ? ` (${p.tags.map(tagName).join(", ")})` : ""}`),
        el("td", {}, p.depression == null ? "–" : `${percent(p.depression)} %`),
        el("td", {}, p.emotion ? emotionName(p.emotion) : "–"),
        el("td", {}, String(p.entries)),
      );
      rows.append(tr);
    }
    byId("mood-details").hidden = points.length === 0;
    figure.hidden = points.length === 0;
    empty.hidden = points.length > 0;
    empty.textContent = t("noMoodYet");
    drawMood(points);
  }

  // ---------------------------------------------------------------- chat
  const chatLog = byId("chat-log");
  const chatInput = byId("chat-input");

  function setCrisis(on) {
    state.crisis = Boolean(on);
    const indicator = byId("crisis-indicator");
    indicator.hidden = !state.crisis;
    indicator.dataset.state = state.crisis ? "on" : "off";
    document.body.classList.toggle("in-crisis", state.crisis);
  }

  function scrollChat() {
    chatLog.scrollTop = chatLog.scrollHeight;
  }

  function bubble(role, text, testid) {
    const node = el("div", { class: `bubble ${role}`, testid: testid || `chat-${role}` });
    node.append(el("div", { class: "bubble-text" }, text));
    return node;
  }

  function addBubble(role, text, testid) {
    const node = bubble(role, text, testid);
    chatLog.append(node);
    scrollChat();
    return node;
  }

  function markCrisis(node) {
    node.classList.add("crisis");
    node.dataset.testid = "crisis-box";
    node.setAttribute("role", "alert");
  }

  function addNotice(text, before) {
    const notice = el("p", { class: "notice", testid: "chat-notice" }, text);
    if (before && before.parentNode === chatLog) chatLog.insertBefore(notice, before);
    else chatLog.append(notice);
    scrollChat();
  }

  function setChatActive(active) {
    chatInput.disabled = !active;
    byId("chat-send").disabled = !active;
    byId("chat-end").disabled = !active;
    byId("webcam-toggle").disabled = !active;
    byId("chat-mic").disabled = !active || state.transcribing;
    if (!active && state.recording) stopRecording(false);
    byId("chat-start").disabled = active;
    byId("chat-start").hidden = active;
    byId("chat-end").hidden = !active;
  }

  function updateEraseSession() {
    const id = state.session ? state.session.id : state.lastSessionId;
    byId("erase-session").disabled = !id;
    const started = state.lastStartedAt
      ? new Date(state.lastStartedAt * 1000).toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" })
      : "";
    byId("erase-session-note").textContent = id
      ? t("sessionNote", { which: state.session ? "current" : "last", started })
      : t("sessionNoteNone");
  }

  function disclosureNode(session) {
    const node = el("div", { class: "chat-disclosure", testid: "chat-disclosure" });
    const words = (state.lang !== "en" && t("disclosureFull")) || session.disclosure || (state.me && state.me.disclosure) || "";
    node.append(el("strong", {}, t("beforeWeStart")), document.createTextNode(words));
    if (session.mode === "ephemeral") node.append(el("span", { class: "small block" }, t("ephemeralChat")));
    return node;
  }

  function openSession(session) {
    state.session = session;
    state.sessionEnded = null;
    state.lastSessionId = session.id;
    state.lastStartedAt = session.started_at;
    localStorage.setItem(SESSION_STORAGE, session.id);
    chatLog.replaceChildren(disclosureNode(session));
    setCrisis(false);
    byId("chat-summary-card").hidden = true;
    setChatActive(true);
    updateEraseSession();
  }

  byId("chat-start").addEventListener("click", (event) =>
    withBusy(event.currentTarget, async () => {
      const session = await api("/api/v1/sessions", { method: "POST", body: {} });
      openSession(session);
      chatInput.focus();
    }, "starting").then(() => setChatActive(Boolean(state.session))),
  );

  // The turns of a stored conversation as bubbles (a reloaded page, a past chat).
  function turnBubbles(turns, { live = false } = {}) {
    const nodes = [];
    let previous = null;
    for (const turn of turns) {
      if (turn.role === "user") {
        const node = bubble("user", turn.text, live ? "chat-user" : "past-user");
        const emotion = turn.analysis && turn.analysis.emotion && turn.analysis.emotion.label;
        if (emotion) node.append(el("span", { class: "bubble-meta" }, t("soundsLike", { label: emotionName(emotion) })));
        nodes.push(node);
      } else {
        const node = bubble("assistant", "", live ? "chat-reply" : "past-reply");
        const risk = (previous && previous.analysis && previous.analysis.risk) || {};
        const escalated = Boolean(turn.analysis && turn.analysis.escalated);
        fillReply(node.querySelector(".bubble-text"), turn.text, {
          fixed: escalated || Boolean(risk.decline),
          checkIn: risk.action === "check_in",
        });
        if (escalated) markCrisis(node);
        if (live) node.dataset.done = "true";
        nodes.push(node);
      }
      previous = turn;
    }
    return nodes;
  }

  // A reloaded page: the conversation that was open comes back from the server.
  async function restoreChat(id = localStorage.getItem(SESSION_STORAGE)) {
    if (!id || state.session) return false;
    let detail;
    try {
      detail = await api(`/api/v1/sessions/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error.status === 404) localStorage.removeItem(SESSION_STORAGE);
      else report(error, chatLog);
      return false;
    }
    if (detail.ended_at) {
      localStorage.removeItem(SESSION_STORAGE);
      return false;
    }
    openSession({ id: detail.id, started_at: detail.started_at, mode: detail.mode, disclosure: state.me && state.me.disclosure });
    chatLog.append(...turnBubbles(detail.turns, { live: true }));
    setCrisis(detail.crisis_mode);
    const last = detail.turns[detail.turns.length - 1];
    if (last && last.role === "user") awaitReply(id, detail.turns.length);
    else if (detail.turns.length) addNotice(t("restored"));
    scrollChat();
    return true;
  }

  // A reply the server was still writing when the page went away: shown once it is saved.
  async function awaitReply(id, count) {
    const pending = addBubble("assistant", t("replyBeingWritten"), "chat-reply");
    pending.classList.add("pending");
    state.sending = true;
    byId("chat-send").disabled = true;
    try {
      for (let tries = 0; tries < 120; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        if (!state.session || state.session.id !== id) return;
        const detail = await api(`/api/v1/sessions/${encodeURIComponent(id)}`);
        if (detail.turns.length > count) {
          const [node] = turnBubbles(detail.turns.slice(count - 1), { live: true }).slice(1);
          if (node) pending.replaceWith(node);
          setCrisis(detail.crisis_mode);
          return;
        }
      }
      pending.classList.add("failed");
      pending.querySelector(".bubble-text").textContent = t("replyIncomplete");
    } catch (error) {
      report(error, chatLog);
    } finally {
      pending.classList.remove("pending");
      pending.dataset.done = "true";
      state.sending = false;
      if (state.session) byId("chat-send").disabled = false;
    }
  }

  byId("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });

  chatInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendMessage();
    }
  });

  // Parses a text/event-stream body: calls onEvent for each JSON `data:` payload.
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const flush = (block) => {
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data || data === "[DONE]") return;
      try {
        onEvent(JSON.parse(data));
      } catch (error) {
        if (error instanceof SyntaxError) console.warn("Unreadable event", data);
        else throw error;
      }
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const blocks = buffer.split(/\r?\n\r?\n/);
      buffer = blocks.pop();
      blocks.forEach(flush);
    }
    buffer += decoder.decode();
    if (buffer.trim()) flush(buffer);
  }

  async function sendMessage() {
    const text = chatInput.value.trim();
    if (!state.session || state.sending) return;
    if (!text) {
      chatInput.focus();
      return;
    }
    clearError(chatInput);
    state.sending = true;
    const send = byId("chat-send");
    send.disabled = true;
    byId("chat-end").disabled = true;
    chatInput.value = "";
    const userBubble = addBubble("user", text);
    const reply = addBubble("assistant", "", "chat-reply");
    reply.classList.add("pending");
    reply.setAttribute("aria-busy", "true");
    const replyText = reply.querySelector(".bubble-text");
    replyText.textContent = "…";
    let received = "";
    let finished = false;
    try {
      const response = await request(`/api/v1/sessions/${encodeURIComponent(state.session.id)}/messages`, {
        method: "POST",
        body: { text },
        accept: "text/event-stream",
      });
      await readEvents(response, (event) => {
        if (event.type === "notice") {
          addNotice(event.text, userBubble);
        } else if (event.type === "delta") {
          received += event.text;
          replyText.textContent = received;
          reply.classList.remove("pending");
          scrollChat();
        } else if (event.type === "done") {
          finished = true;
          const risk = event.risk || {};
          const replyWords = event.reply != null ? event.reply : received;
          fillReply(replyText, replyWords, {
            fixed: Boolean(event.escalated || risk.decline),
            checkIn: risk.action === "check_in",
          });
          speakReply(replyWords); // every reply alike, a crisis reply word for word
          reply.classList.remove("pending");
          if (event.escalated) markCrisis(reply);
          if (event.emotion && event.emotion.label) {
            userBubble.append(el("span", { class: "bubble-meta" }, t("soundsLike", { label: emotionName(event.emotion.label) })));
          }
          setCrisis(event.crisis_mode);
        } else if (event.type === "error") {
          finished = true;
          showError(event.message || t("replyFailed"), t("tryAgain"), chatInput);
          reply.classList.add("failed");
          replyText.textContent = received || t("replyIncomplete");
        }
      });
      if (!finished) {
        reply.classList.add("failed");
        if (!received) replyText.textContent = t("replyStopped");
        showError(t("stoppedEarly"), t("stoppedEarlyHint"), chatInput);
      }
    } catch (error) {
      reply.classList.add("failed");
      replyText.textContent = t("notSent");
      chatInput.value = text;
      report(error, chatInput);
    } finally {
      reply.classList.remove("pending");
      reply.removeAttribute("aria-busy");
      reply.dataset.done = "true";
      state.sending = false;
      if (state.session) {
        send.disabled = false;
        byId("chat-end").disabled = false;
        chatInput.focus();
      }
      scrollChat();
    }
  }

  byId("chat-end").addEventListener("click", (event) =>
    withBusy(event.currentTarget, async () => {
      if (!state.session) return;
      const id = state.session.id;
      stopWebcam();
      stopVoice();
      const ended = await api(`/api/v1/sessions/${encodeURIComponent(id)}/end`, { method: "POST" });
      state.sessionEnded = { ...ended, id };
      state.session = null;
      localStorage.removeItem(SESSION_STORAGE);
      setChatActive(false);
      setCrisis(false);
      if (ended.erased) state.lastSessionId = null;
      updateEraseSession();
      byId("chat-start").textContent = t("startNewChat");
      addNotice(t("sessionEnded"));
      byId("chat-summary").textContent = ended.summary || t("noSummary");
      byId("pdf-unavailable").hidden = !ended.erased;
      byId("download-pdf").disabled = Boolean(ended.erased);
      // Ephemeral sessions too: the server sent both copies of the log before erasing it.
      const transcript = byId("log-transcript");
      transcript.disabled = false;
      transcript.closest("label").classList.remove("disabled");
      const card = byId("chat-summary-card");
      card.hidden = false;
      card.scrollIntoView({ block: "nearest", behavior: "smooth" });
      loadChats();
    }, "ending").then(() => setChatActive(Boolean(state.session))),
  );

  // ---------------------------------------------------------------- past chats
  async function loadChats() {
    const list = byId("chat-list");
    let sessions;
    try {
      sessions = (await api("/api/v1/sessions")).sessions || [];
    } catch (error) {
      report(error, list);
      return;
    }
    clearError(list);
    list.replaceChildren();
    byId("chats-empty").hidden = sessions.length > 0;
    for (const session of sessions) list.append(chatItem(session));
  }

  function chatItem(session) {
    const item = el("li", { class: "entry", testid: "past-chat" });
    item.dataset.id = session.id;
    const details = el("details", { class: "entry-details" });
    const summary = el("summary", { class: "entry-summary", testid: "past-chat-open" });
    const head = el("span", { class: "entry-head" });
    head.append(el("time", { datetime: new Date(session.started_at * 1000).toISOString() }, formatTime(session.started_at)));
    head.append(el("span", { class: "chip" }, t("messagesCount", { n: session.turns })));
    if (session.escalations) head.append(el("span", { class: "chip warm" }, t("escalationsCount", { n: session.escalations })));
    const current = state.session && state.session.id === session.id;
    if (current) head.append(el("span", { class: "chip" }, t("thisChat")));
    else if (!session.ended_at) head.append(el("span", { class: "chip" }, t("openNow")));
    summary.append(head);
    const body = el("div", { class: "past-log", testid: "past-chat-log", tabindex: "0", role: "log", "aria-label": formatTime(session.started_at) });
    details.append(summary, body);
    details.addEventListener("toggle", async () => {
      if (!details.open || body.dataset.loaded) return;
      try {
        const detail = await api(`/api/v1/sessions/${encodeURIComponent(session.id)}`);
        body.dataset.loaded = "true";
        const bubbles = turnBubbles(detail.turns);
        body.replaceChildren(...(bubbles.length ? bubbles : [el("p", { class: "muted small" }, t("emptyChat"))]));
        if (!detail.ended_at && !current) {
          const resume = el("button", { type: "button", class: "primary small-btn", testid: "past-chat-continue" }, t("continueChat"));
          resume.addEventListener("click", () =>
            withBusy(resume, async () => {
              if (state.session) return;
              if (await restoreChat(session.id)) chatLog.scrollIntoView({ block: "nearest" });
            }),
          );
          body.append(resume);
        }
      } catch (error) {
        report(error, body);
      }
    });
    item.append(details);
    return item;
  }

  byId("chats-refresh").addEventListener("click", (event) => withBusy(event.currentTarget, loadChats));

  // ---------------------------------------------------------------- downloads
  function filenameFrom(response, fallback) {
    const header = response.headers.get("Content-Disposition") || "";
    const star = header.match(/filename\*=(?:UTF-8'')?([^;]+)/i);
    if (star) return decodeURIComponent(star[1].replace(/"/g, "").trim());
    const plain = header.match(/filename="?([^";]+)"?/i);
    return plain ? plain[1].trim() : fallback;
  }

  function saveBlob(blob, filename) {
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: filename });
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async function downloadLog(format, button) {
    const ended = state.sessionEnded;
    if (!ended) return;
    const day = new Date((ended.ended_at || Date.now() / 1000) * 1000).toISOString().slice(0, 10);
    if (ended.erased) {
      if (format !== "md") {
        showError(t("pdfNotEphemeral"), t("downloadMdInstead"), button);
        return;
      }
      const withTranscript = byId("log-transcript").checked;
      const markdown = (withTranscript ? ended.log_markdown_transcript : ended.log_markdown) || "";
      saveBlob(new Blob([markdown], { type: "text/markdown" }), `mindwell-session-${day}.md`);
      return;
    }
    await withBusy(button, async () => {
      const transcript = byId("log-transcript").checked ? "true" : "false";
      const response = await request(
        `/api/v1/sessions/${encodeURIComponent(ended.id)}/log?format=${format}&transcript=${transcript}`,
      );
      const blob = await response.blob();
      saveBlob(blob, filenameFrom(response, `mindwell-session-${day}.${format}`));
    });
  }

  byId("download-md").addEventListener("click", (event) => downloadLog("md", event.currentTarget));
  byId("download-pdf").addEventListener("click", (event) => downloadLog("pdf", event.currentTarget));

  // ---------------------------------------------------------------- webcam
  function stopWebcam() {
    const cam = state.webcam;
    state.webcam = null;
    if (cam) {
      clearInterval(cam.timer);
      cam.stream.getTracks().forEach((track) => track.stop());
    }
    const video = byId("webcam-video");
    video.srcObject = null;
    byId("webcam-row").hidden = true;
    byId("webcam-toggle").checked = false;
  }

  async function sendFrame() {
    const cam = state.webcam;
    const video = byId("webcam-video");
    if (!cam || !state.session || cam.busy || !video.videoWidth) return;
    const canvas = byId("webcam-canvas");
    const width = Math.min(640, video.videoWidth);
    canvas.width = width;
    canvas.height = Math.round((video.videoHeight / video.videoWidth) * width);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    const image = canvas.toDataURL("image/jpeg", 0.8);
    const label = byId("face-label");
    cam.busy = true;
    try {
      const result = await api(`/api/v1/sessions/${encodeURIComponent(state.session.id)}/face`, {
        method: "POST",
        body: { image },
      });
      if (state.webcam !== cam) return;
      label.dataset.state = "ok";
      label.textContent = result.faces && result.label ? t("expression", { label: emotionName(result.label) }) : t("noFace");
    } catch (error) {
      label.dataset.state = "error";
      label.textContent = t("expressionFailed");
      report(error, byId("webcam-toggle"));
      stopWebcam();
    } finally {
      cam.busy = false;
    }
  }

  byId("webcam-toggle").addEventListener("change", async (event) => {
    const box = event.currentTarget;
    clearError(box);
    if (!box.checked) {
      stopWebcam();
      return;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      box.checked = false;
      showError(t("cameraUnsupported"), t("cameraUnsupportedHint"), box);
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (error) {
      box.checked = false;
      showError(t("cameraFailed"), `${error.name || "Error"}: ${error.message || "permission denied or no camera"}`, box);
      return;
    }
    if (!box.checked || !state.session) {
      stream.getTracks().forEach((track) => track.stop());
      return;
    }
    const video = byId("webcam-video");
    video.srcObject = stream;
    const label = byId("face-label");
    label.dataset.state = "waiting";
    label.textContent = t("looking");
    byId("webcam-row").hidden = false;
    state.webcam = { stream, timer: setInterval(sendFrame, FACE_INTERVAL_MS), busy: false };
    video.addEventListener("loadeddata", () => setTimeout(sendFrame, 500), { once: true });
  });

  // ---------------------------------------------------------------- voice
  // Push-to-talk: the microphone is read into memory (an AudioWorklet, or a
  // ScriptProcessor where there is none), downsampled to 16 kHz mono and encoded as a
  // 16-bit WAV here, so the server needs no audio converter. The server turns it into text
  // in memory and keeps nothing; the text is sent as an ordinary message, so the safety
  // gate and memory treat it exactly like typed text.
  const VOICE_RATE = 16000;
  const MAX_RECORD_S = 60; // the server's limit
  const HOLD_MS = 450; // a press held this long is push-to-talk: letting go sends
  const micButton = byId("chat-mic");
  const voiceStatus = byId("voice-status");
  const speakToggle = byId("speak-toggle");
  const replyAudio = byId("reply-audio");

  function setVoiceStatus(text, kind) {
    voiceStatus.textContent = text || "";
    voiceStatus.hidden = !text;
    voiceStatus.dataset.state = text ? kind || "info" : "idle";
  }

  function updateMic() {
    const recording = Boolean(state.recording);
    micButton.setAttribute("aria-pressed", String(recording));
    micButton.classList.toggle("recording", recording);
    const label = t(recording ? "micStop" : "micStart");
    micButton.setAttribute("aria-label", label);
    micButton.title = label;
  }

  function micError(error) {
    setVoiceStatus("");
    const name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      showError(t("micDenied"), t("micDeniedHint"), micButton);
    } else if (name === "NotFoundError" || name === "OverconstrainedError") {
      showError(t("micMissing"), t("micMissingHint"), micButton);
    } else if (name === "NotReadableError" || name === "AbortError") {
      showError(t("micBusy"), t("micBusyHint"), micButton);
    } else {
      showError(t("micFailed"), `${name || "Error"}: ${(error && error.message) || error}`, micButton);
    }
  }

  function releaseRecording(rec) {
    clearInterval(rec.timer);
    try {
      if (rec.source) rec.source.disconnect();
      if (rec.node) {
        rec.node.disconnect();
        if (rec.node.port) rec.node.port.onmessage = null;
        else rec.node.onaudioprocess = null;
      }
    } catch (_) {
      /* already disconnected */
    }
    if (rec.stream) rec.stream.getTracks().forEach((track) => track.stop());
    if (rec.context && rec.context.state !== "closed") rec.context.close().catch(() => {});
  }

  function tick(rec) {
    if (state.recording !== rec || !rec.node) return;
    const seconds = Math.floor(rec.length / rec.rate);
    const clock = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    setVoiceStatus(t(rec.held ? "recordingHeld" : "recording", { clock }), "recording");
  }

  async function startRecording() {
    clearError(micButton);
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !Context) {
      showError(t("micUnsupported"), t("micUnsupportedHint"), micButton);
      return;
    }
    stopSpeaking(); // the microphone should not hear the last reply
    let context;
    try {
      context = new Context(); // made within the press itself, so the browser lets it run
    } catch (error) {
      micError(error);
      return;
    }
    const rec = { context, rate: context.sampleRate, chunks: [], length: 0, held: false, stopAsked: false };
    state.recording = rec;
    updateMic();
    setVoiceStatus(t("micOpening"));
    try {
      rec.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
        video: false,
      });
      const take = (samples) => {
        if (state.recording !== rec) return;
        rec.chunks.push(samples);
        rec.length += samples.length;
        if (rec.length / rec.rate >= MAX_RECORD_S - 0.5) {
          stopRecording(true);
          showInfo(t("recordingLimit"));
        }
      };
      let node = null;
      if (rec.context.audioWorklet && window.AudioWorkletNode) {
        try {
          await rec.context.audioWorklet.addModule("/static/recorder-worklet.js");
          node = new AudioWorkletNode(rec.context, "mindwell-recorder");
          node.port.onmessage = (event) => take(event.data);
        } catch (error) {
          console.warn("No AudioWorklet; recording with a ScriptProcessor", error);
          node = null;
        }
      }
      if (!node) {
        node = rec.context.createScriptProcessor(4096, 1, 1);
        node.onaudioprocess = (event) => take(new Float32Array(event.inputBuffer.getChannelData(0)));
      }
      if (state.recording !== rec) {
        releaseRecording(rec); // cancelled while the microphone opened
        return;
      }
      rec.source = rec.context.createMediaStreamSource(rec.stream);
      const silent = rec.context.createGain(); // pulls the graph without playing anything
      silent.gain.value = 0;
      rec.source.connect(node);
      node.connect(silent);
      silent.connect(rec.context.destination);
      rec.node = node;
      micButton.dataset.recorder = node.port ? "worklet" : "script-processor";
      if (rec.context.state === "suspended") await rec.context.resume();
    } catch (error) {
      releaseRecording(rec);
      if (state.recording !== rec) return; // cancelled meanwhile: nothing to say
      state.recording = null;
      updateMic();
      micError(error);
      return;
    }
    rec.timer = setInterval(() => tick(rec), 250);
    tick(rec);
    if (rec.stopAsked) stopRecording(true); // let go before the microphone was open
  }

  // Averages each output sample's span of input samples: a simple low-pass, enough for
  // speech. Rates at or below 16 kHz are sent as they are (the server resamples).
  function downsample(samples, from, to) {
    if (from <= to) return samples;
    const ratio = from / to;
    const out = new Float32Array(Math.floor(samples.length / ratio));
    for (let i = 0; i < out.length; i++) {
      const start = Math.floor(i * ratio);
      const end = Math.min(samples.length, Math.max(start + 1, Math.floor((i + 1) * ratio)));
      let sum = 0;
      for (let j = start; j < end; j++) sum += samples[j];
      out[i] = sum / (end - start);
    }
    return out;
  }

  function encodeWav(samples, rate) {
    const buffer = new ArrayBuffer(44 + samples.length * 2);
    const view = new DataView(buffer);
    const text = (at, word) => [...word].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
    text(0, "RIFF");
    view.setUint32(4, 36 + samples.length * 2, true);
    text(8, "WAVE");
    text(12, "fmt ");
    view.setUint32(16, 16, true); // the fmt chunk's size
    view.setUint16(20, 1, true); // PCM
    view.setUint16(22, 1, true); // mono
    view.setUint32(24, rate, true);
    view.setUint32(28, rate * 2, true); // bytes a second
    view.setUint16(32, 2, true); // bytes a frame
    view.setUint16(34, 16, true); // bits a sample
    text(36, "data");
    view.setUint32(40, samples.length * 2, true);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return new Blob([buffer], { type: "audio/wav" });
  }

  // Stops the microphone; `send` turns what was recorded into a message, else it is dropped.
  function stopRecording(send = true) {
    const rec = state.recording;
    if (!rec) return;
    if (send && !rec.node) {
      rec.stopAsked = true; // the microphone is still opening: stop as soon as it is open
      return;
    }
    state.recording = null;
    releaseRecording(rec);
    updateMic();
    if (!send) {
      setVoiceStatus("");
      return;
    }
    const samples = new Float32Array(rec.length);
    let at = 0;
    for (const chunk of rec.chunks) {
      samples.set(chunk, at);
      at += chunk.length;
    }
    rec.chunks = [];
    if (samples.length / rec.rate < 0.3) {
      setVoiceStatus("");
      showError(t("recordingShort"), t("recordingShortHint"), micButton);
      return;
    }
    const rate = Math.min(rec.rate, VOICE_RATE);
    transcribeAndSend(encodeWav(downsample(samples, rec.rate, rate), Math.round(rate)));
  }

  async function transcribeAndSend(wav) {
    state.transcribing = true;
    micButton.disabled = true;
    micButton.setAttribute("aria-busy", "true");
    setVoiceStatus(t("transcribing"), "busy");
    try {
      const response = await request("/api/v1/voice/transcribe", { method: "POST", raw: wav, contentType: "audio/wav" });
      const heard = await response.json();
      const text = (heard.text || "").trim();
      setVoiceStatus("");
      if (!text) {
        showError(t("heardNothing"), t("heardNothingHint"), micButton);
        return;
      }
      if (!state.session) return;
      const typed = chatInput.value.trim();
      chatInput.value = typed ? `${typed} ${text}` : text;
      if (state.sending) {
        setVoiceStatus(t("heardWaiting")); // sent by the person once the reply is done
        chatInput.focus();
      } else {
        sendMessage();
      }
    } catch (error) {
      setVoiceStatus("");
      if (error instanceof ApiError && error.status === 503) {
        showError(t("voiceInUnavailable"), [error.message, error.hint].filter(Boolean).join(" "), micButton);
      } else {
        report(error, micButton);
      }
    } finally {
      state.transcribing = false;
      micButton.removeAttribute("aria-busy");
      micButton.disabled = !state.session;
    }
  }

  function stopVoice() {
    if (state.recording) stopRecording(false);
    stopSpeaking();
  }

  // A press starts; a second press sends, and so does letting go of a press held past
  // HOLD_MS (push-to-talk). Keyboard presses (Enter, Space) start and send.
  let pressedAt = 0;
  let holdTimer = null;
  const endPress = () => {
    pressedAt = 0;
    clearTimeout(holdTimer);
    if (state.recording && state.recording.held) {
      state.recording.held = false;
      tick(state.recording);
    }
  };
  micButton.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || micButton.disabled) return;
    event.preventDefault(); // no text selection or scrolling on a long press
    micButton.focus(); // Escape cancels from here
    try {
      micButton.setPointerCapture(event.pointerId);
    } catch (_) {
      /* not capturable: the button's own pointerup still ends a hold */
    }
    if (state.recording) {
      endPress();
      stopRecording(true);
      return;
    }
    pressedAt = Date.now();
    startRecording();
    holdTimer = setTimeout(() => {
      // Still pressed: a hold, so letting go will send (the status says so).
      if (pressedAt && state.recording) {
        state.recording.held = true;
        tick(state.recording);
      }
    }, HOLD_MS);
  });
  micButton.addEventListener("pointerup", () => {
    const held = pressedAt && Date.now() - pressedAt >= HOLD_MS;
    endPress();
    if (held && state.recording) stopRecording(true);
  });
  micButton.addEventListener("pointercancel", endPress);
  micButton.addEventListener("click", (event) => {
    if (event.detail !== 0) return; // a pointer's click: handled by pointerdown/up
    if (state.recording) stopRecording(true);
    else startRecording();
  });
  micButton.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.recording) {
      event.preventDefault();
      stopRecording(false);
      setVoiceStatus(t("recordingCancelled"));
    }
  });
  micButton.addEventListener("contextmenu", (event) => event.preventDefault()); // long press

  // Spoken replies: each finished reply is read by the server (/voice/speak) and played here.
  function stopSpeaking() {
    state.speakToken += 1;
    replyAudio.pause();
    const src = replyAudio.getAttribute("src");
    if (src) {
      replyAudio.removeAttribute("src");
      replyAudio.load();
      URL.revokeObjectURL(src);
    }
    delete replyAudio.dataset.state;
  }

  async function speakReply(text) {
    if (!speakToggle.checked || !text || !text.trim()) return;
    stopSpeaking();
    const token = state.speakToken;
    clearError(speakToggle);
    try {
      const response = await request("/api/v1/voice/speak", { method: "POST", body: { text }, accept: "audio/wav" });
      const audio = await response.blob();
      if (token !== state.speakToken || !speakToggle.checked) return;
      replyAudio.src = URL.createObjectURL(audio);
      replyAudio.dataset.state = "playing";
      replyAudio.onended = () => {
        if (token === state.speakToken) stopSpeaking();
      };
      await replyAudio.play();
    } catch (error) {
      if (token !== state.speakToken) return;
      if (error instanceof ApiError && error.status === 503) {
        showError(t("voiceOutUnavailable"), [error.message, error.hint].filter(Boolean).join(" "), speakToggle);
      } else if (error instanceof ApiError) {
        report(error, speakToggle);
      } else if (error && error.name === "NotAllowedError") {
        showError(t("speakBlocked"), t("speakBlockedHint"), speakToggle);
      } else {
        console.warn("The spoken reply could not be played", error);
      }
    }
  }

  speakToggle.checked = localStorage.getItem(SPEAK_STORAGE) === "1";
  speakToggle.addEventListener("change", () => {
    localStorage.setItem(SPEAK_STORAGE, speakToggle.checked ? "1" : "0");
    clearError(speakToggle);
    if (!speakToggle.checked) stopSpeaking();
  });

  // ---------------------------------------------------------------- settings
  for (const radio of document.querySelectorAll('input[name="language"]')) {
    radio.addEventListener("change", async () => {
      clearError(radio);
      const previous = state.me ? state.me.language || "" : "";
      setLanguage(radio.value);
      try {
        const me = await api("/api/v1/settings", { method: "PUT", body: { language: radio.value } });
        applyMe(me);
        refreshWords();
        showInfo(t("languageSaved"));
      } catch (error) {
        setLanguage(previous);
        report(error, radio);
      }
    });
  }

  // Words drawn by the script follow a change of language.
  function refreshWords() {
    if (state.mood) loadMood();
    loadDiary();
    if (!byId("panel-chat").hidden) loadChats();
    if (state.lastCheckin) showCheckin(state.lastCheckin);
    const disclosure = chatLog.querySelector(".chat-disclosure");
    if (disclosure && state.session) disclosure.replaceWith(disclosureNode(state.session));
    byId("chat-start").textContent = t(state.sessionEnded ? "startNewChat" : "startChat");
    updateMic();
  }

  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", async () => {
      clearError(radio);
      const previous = state.me ? state.me.mode : null;
      try {
        const me = await api("/api/v1/settings", { method: "PUT", body: { mode: radio.value } });
        applyMe(me);
        showInfo(t(me.mode === "ephemeral" ? "ephemeralOn" : "journalOn"));
      } catch (error) {
        report(error, radio);
        if (previous) applyMe({ ...state.me, mode: previous });
      }
    });
  }

  byId("locale-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = byId("locale-input").value.trim().toUpperCase();
    if (!value) {
      showError(t("enterCountry"), t("enterCountryHint"), byId("locale-input"));
      return;
    }
    const button = event.currentTarget.querySelector("button");
    await withBusy(button, async () => {
      const me = await api("/api/v1/settings", { method: "PUT", body: { locale: value } });
      applyMe(me);
      byId("locale-input").value = me.locale || value;
      showInfo(t("helplinesFor", { locale: me.locale || value }));
    });
  });

  function showErased(text) {
    const result = byId("erase-result");
    result.textContent = text;
    result.hidden = false;
  }

  byId("erase-session").addEventListener("click", async (event) => {
    const id = state.session ? state.session.id : state.lastSessionId;
    if (!id) return;
    if (!window.confirm(t("eraseSessionConfirm"))) return;
    await withBusy(event.currentTarget, async () => {
      await api(`/api/v1/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
      resetChat();
      showErased(t("erasedSession"));
    });
    updateEraseSession();
  });

  byId("erase-all").addEventListener("click", async (event) => {
    if (!window.confirm(t("eraseAllConfirm"))) return;
    await withBusy(event.currentTarget, async () => {
      const result = await api("/api/v1/data", { method: "DELETE" });
      const d = result.deleted || {};
      showErased(
        t("erasedAll", {
          diary: d.diary || 0,
          checkins: d.checkins || 0,
          sessions: d.sessions || 0,
          memories: d.memories || 0,
        }),
      );
      resetChat();
      state.lastCheckin = null;
      byId("checkin-result").hidden = true;
      byId("diary-result").hidden = true;
      await Promise.all([loadDiary(), loadMood(), loadChats()]);
    });
    updateEraseSession();
  });

  function resetChatLog() {
    chatLog.replaceChildren(el("p", { class: "muted placeholder" }, t("chatPlaceholder")));
  }

  function resetChat() {
    stopWebcam();
    stopVoice();
    state.session = null;
    state.sessionEnded = null;
    state.lastSessionId = null;
    localStorage.removeItem(SESSION_STORAGE);
    setCrisis(false);
    setChatActive(false);
    byId("chat-start").textContent = t("startChat");
    byId("chat-summary-card").hidden = true;
    updateEraseSession();
    resetChatLog();
  }

  window.addEventListener("pagehide", () => {
    stopWebcam();
    stopVoice();
  });

  // ---------------------------------------------------------------- start
  setLanguage(localStorage.getItem(LANGUAGE_STORAGE) || "");
  renderTags();
  readKeyFromHash();
  start();
})();
