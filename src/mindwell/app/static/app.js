/* mindwell web app: plain JavaScript, no build step, nothing loaded from the internet. */
"use strict";

(() => {
  const KEY_STORAGE = "mindwell.key";
  const FACE_INTERVAL_MS = 5000;

  const byId = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, text) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
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
    session: null, // {id, started_at, disclosure, mode}
    sessionEnded: null, // the /end response of the last session
    lastSessionId: null,
    lastStartedAt: null,
    crisis: false,
    sending: false,
    moodUrl: null,
    webcam: null, // {stream, timer}
  };

  // ---------------------------------------------------------------- messages
  const messages = byId("messages");

  function showMessage(kind, text, hint) {
    const box = el("div", { class: `msg ${kind}`, testid: kind === "error" ? "error" : "info" });
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    const body = el("div", { class: "msg-body" });
    body.append(el("p", { class: "msg-text" }, text));
    if (hint) body.append(el("p", { class: "msg-hint" }, hint));
    const close = el("button", { type: "button", class: "msg-close", "aria-label": "Dismiss" }, "×");
    close.addEventListener("click", () => box.remove());
    box.append(body, close);
    messages.append(box);
    if (kind !== "error") setTimeout(() => box.remove(), 6000);
    // Keep the area short: the newest few messages.
    while (messages.children.length > 4) messages.firstElementChild.remove();
    return box;
  }
  const showError = (text, hint) => showMessage("error", text, hint);
  const showInfo = (text) => showMessage("info", text);
  const clearErrors = () => messages.querySelectorAll(".msg.error").forEach((n) => n.remove());

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

  async function request(path, { method = "GET", body, accept } = {}) {
    const headers = { Authorization: `Bearer ${state.key}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (accept) headers.Accept = accept;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (_) {
      throw new ApiError(
        "Could not reach the mindwell server.",
        "Is `mindwell serve` still running? Start it again and open the link it prints.",
      );
    }
    if (!response.ok) {
      const error = await errorFrom(response);
      if (response.status === 401) onUnauthorized(error);
      throw error;
    }
    return response;
  }

  const api = async (path, options) => (await request(path, options)).json();

  function report(error) {
    if (error instanceof ApiError) {
      if (error.status !== 401) showError(error.message, error.hint);
    } else {
      showError(`Something went wrong in this page: ${error && error.message ? error.message : error}`);
      console.warn(error);
    }
  }

  // Runs an async action with its button disabled; errors go to the message area.
  async function withBusy(button, action, busyText) {
    const label = button ? button.textContent : null;
    if (button) {
      button.disabled = true;
      if (busyText) button.textContent = busyText;
      button.setAttribute("aria-busy", "true");
    }
    try {
      return await action();
    } catch (error) {
      report(error);
      return undefined;
    } finally {
      if (button) {
        button.removeAttribute("aria-busy");
        if (busyText) button.textContent = label;
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
    if (reason) showError(reason.message || reason, reason.hint);
    byId("key-input").focus();
  }

  function onUnauthorized(error) {
    localStorage.removeItem(KEY_STORAGE);
    state.key = null;
    stopWebcam();
    showAuth({
      message: "This key was not accepted.",
      hint:
        (error && error.message ? `${error.message} ` : "") +
        "A new key is printed each time `mindwell serve` starts: open the new link or paste the key.",
    });
  }

  byId("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = byId("key-input").value.trim();
    if (!key) {
      showError("Paste the key first.", "It is the part after #key= in the link mindwell serve prints.");
      return;
    }
    localStorage.setItem(KEY_STORAGE, key);
    byId("key-input").value = "";
    clearErrors();
    await start();
  });

  byId("forget-key").addEventListener("click", () => {
    stopWebcam();
    localStorage.removeItem(KEY_STORAGE);
    state.key = null;
    showAuth();
    showInfo("The key was removed from this browser.");
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
    if (focus) tab.focus();
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
    if (me.disclosure) byId("disclosure").textContent = me.disclosure;
    for (const radio of document.querySelectorAll('input[name="mode"]')) {
      radio.checked = radio.value === me.mode;
    }
    const ephemeral = me.mode === "ephemeral";
    byId("mode-current").textContent = ephemeral
      ? "Now: ephemeral. Diary entries are not kept; a chat is erased when it ends."
      : "Now: journal. Entries and conversations are kept until you erase them.";
    byId("diary-mode-note").textContent = ephemeral
      ? "Ephemeral mode: this entry will be answered, not saved."
      : "Saved on this device until you erase it.";
    if (document.activeElement !== byId("locale-input")) byId("locale-input").value = me.locale || "";
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
    await Promise.all([loadDiary(), loadMood()]);
  }

  // ---------------------------------------------------------------- diary
  const formatTime = (epochSeconds) =>
    new Date(epochSeconds * 1000).toLocaleString(undefined, {
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

  function renderDiaryResult(entry) {
    const analysis = entry.analysis || {};
    const emotion = (analysis.emotion && analysis.emotion.label) || "unknown";
    const risk = (analysis.risk && analysis.risk.level) || "unknown";
    const score = analysis.depression ? analysis.depression.score : 0;
    const pct = percent(score);
    byId("diary-emotion").textContent = emotion;
    const riskNode = byId("diary-risk");
    riskNode.textContent = risk;
    riskNode.dataset.level = risk;
    const bar = byId("diary-signal");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.setAttribute("aria-valuetext", `${pct} percent, a signal, not a diagnosis`);
    bar.querySelector(".fill").style.width = `${pct}%`;
    byId("diary-signal-text").textContent = `${pct} %`;

    const reply = byId("diary-reply");
    const crisis = byId("diary-crisis");
    reply.hidden = true;
    crisis.hidden = true;
    if (entry.reply) {
      const target = entry.escalated ? crisis : reply;
      target.textContent = entry.reply;
      target.hidden = false;
    }
    byId("diary-stored").textContent = entry.stored
      ? "Saved to your diary."
      : "Not saved (ephemeral mode): this entry is already forgotten by the server.";
    byId("diary-result").hidden = false;
  }

  byId("diary-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const textarea = byId("diary-text");
    const text = textarea.value.trim();
    if (!text) {
      showError("Write something first.", "Even one line is enough.");
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
      "Reading your entry…",
    );
  });

  async function loadDiary() {
    let data;
    try {
      data = await api("/api/v1/diary?limit=50");
    } catch (error) {
      report(error);
      return;
    }
    const list = byId("diary-list");
    list.replaceChildren();
    const entries = data.entries || [];
    byId("diary-empty").hidden = entries.length > 0;
    for (const entry of entries) {
      const analysis = entry.analysis || {};
      const item = el("li", { class: "entry", testid: "diary-entry" });
      item.dataset.id = entry.id;
      const head = el("div", { class: "entry-head" });
      head.append(el("time", { datetime: new Date(entry.created_at * 1000).toISOString() }, formatTime(entry.created_at)));
      if (analysis.emotion && analysis.emotion.label) {
        head.append(el("span", { class: "chip", testid: "entry-emotion" }, analysis.emotion.label));
      }
      if (entry.escalated) head.append(el("span", { class: "chip warm" }, "crisis reply given"));
      const del = el("button", { type: "button", class: "quiet small-btn", testid: "diary-delete" }, "Delete");
      del.setAttribute("aria-label", `Delete the entry from ${formatTime(entry.created_at)}`);
      del.addEventListener("click", () => deleteEntry(entry, del));
      head.append(del);
      item.append(head, el("p", { class: "entry-text" }, firstLines(entry.text)));
      list.append(item);
    }
  }

  async function deleteEntry(entry, button) {
    if (!window.confirm("Delete this diary entry? This cannot be undone.")) return;
    await withBusy(button, async () => {
      await api(`/api/v1/diary/${encodeURIComponent(entry.id)}`, { method: "DELETE" });
      showInfo("The entry was deleted.");
      await Promise.all([loadDiary(), loadMood()]);
    });
  }

  byId("diary-refresh").addEventListener("click", (event) =>
    withBusy(event.currentTarget, () => Promise.all([loadDiary(), loadMood()])),
  );

  async function loadMood() {
    const img = byId("mood-chart");
    const empty = byId("mood-empty");
    try {
      const [points, response] = await Promise.all([
        api("/api/v1/mood?days=30"),
        request("/api/v1/mood.png?days=30", { accept: "image/png" }),
      ]);
      const blob = await response.blob();
      if (state.moodUrl) URL.revokeObjectURL(state.moodUrl);
      state.moodUrl = URL.createObjectURL(blob);
      img.src = state.moodUrl;
      img.hidden = false;
      const rows = byId("mood-rows");
      rows.replaceChildren();
      for (const p of points.points || []) {
        const tr = el("tr");
        tr.append(
          el("td", {}, p.date),
          el("td", {}, `${percent(p.depression)} %`),
          el("td", {}, p.emotion || "–"),
          el("td", {}, String(p.entries)),
        );
        rows.append(tr);
      }
      const count = (points.points || []).length;
      byId("mood-details").hidden = count === 0;
      empty.hidden = count > 0;
      empty.textContent = "No entries in the last 30 days yet.";
    } catch (error) {
      img.hidden = true;
      empty.hidden = false;
      empty.textContent = "The mood chart could not be loaded.";
      report(error);
    }
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

  function addBubble(role, text, testid) {
    const bubble = el("div", { class: `bubble ${role}`, testid: testid || `chat-${role}` });
    const body = el("div", { class: "bubble-text" }, text);
    bubble.append(body);
    chatLog.append(bubble);
    scrollChat();
    return bubble;
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
    byId("chat-start").disabled = active;
    byId("chat-start").hidden = active;
    byId("chat-end").hidden = !active;
  }

  function updateEraseSession() {
    const id = state.session ? state.session.id : state.lastSessionId;
    byId("erase-session").disabled = !id;
    const started = state.lastStartedAt
      ? new Date(state.lastStartedAt * 1000).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
      : "";
    byId("erase-session-note").textContent = id
      ? `The ${state.session ? "current" : "last"} conversation in this page${started ? `, started at ${started}` : ""}.`
      : "No conversation in this page yet.";
  }

  byId("chat-start").addEventListener("click", (event) =>
    withBusy(event.currentTarget, async () => {
      const session = await api("/api/v1/sessions", { method: "POST", body: {} });
      state.session = session;
      state.sessionEnded = null;
      state.lastSessionId = session.id;
      state.lastStartedAt = session.started_at;
      chatLog.replaceChildren();
      const disclosure = el("div", { class: "chat-disclosure", testid: "chat-disclosure" });
      disclosure.append(
        el("strong", {}, "Before we start: "),
        document.createTextNode(session.disclosure || (state.me && state.me.disclosure) || ""),
      );
      if (session.mode === "ephemeral") {
        disclosure.append(el("span", { class: "small block" }, "Ephemeral mode: this conversation is erased when it ends."));
      }
      chatLog.append(disclosure);
      setCrisis(false);
      byId("chat-summary-card").hidden = true;
      setChatActive(true);
      updateEraseSession();
      chatInput.focus();
    }, "Starting…").then(() => setChatActive(Boolean(state.session))),
  );

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
      const response = await request(
        `/api/v1/sessions/${encodeURIComponent(state.session.id)}/messages`,
        { method: "POST", body: { text }, accept: "text/event-stream" },
      );
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
          replyText.textContent = event.reply != null ? event.reply : received;
          reply.classList.remove("pending");
          if (event.escalated) {
            reply.classList.add("crisis");
            reply.dataset.testid = "crisis-box";
            reply.setAttribute("role", "alert");
          }
          if (event.emotion && event.emotion.label) {
            userBubble.append(el("span", { class: "bubble-meta" }, `sounds like: ${event.emotion.label}`));
          }
          setCrisis(event.crisis_mode);
        } else if (event.type === "error") {
          finished = true;
          showError(event.message || "The reply failed.", "Try sending the message again.");
          reply.classList.add("failed");
          replyText.textContent = received || "The reply could not be completed.";
        }
      });
      if (!finished) {
        reply.classList.add("failed");
        if (!received) replyText.textContent = "The reply stopped early.";
        showError("The reply stopped before it finished.", "The connection to the server closed; try again.");
      }
    } catch (error) {
      reply.classList.add("failed");
      replyText.textContent = "Not sent.";
      chatInput.value = text;
      report(error);
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
      const ended = await api(`/api/v1/sessions/${encodeURIComponent(id)}/end`, { method: "POST" });
      state.sessionEnded = { ...ended, id };
      state.session = null;
      setChatActive(false);
      setCrisis(false);
      if (ended.erased) state.lastSessionId = null;
      updateEraseSession();
      byId("chat-start").textContent = "Start a new conversation";
      addNotice("The session has ended.");
      byId("chat-summary").textContent = ended.summary || "No summary.";
      byId("pdf-unavailable").hidden = !ended.erased;
      byId("download-pdf").disabled = Boolean(ended.erased);
      const transcript = byId("log-transcript");
      transcript.disabled = Boolean(ended.erased);
      transcript.closest("label").classList.toggle("disabled", Boolean(ended.erased));
      const card = byId("chat-summary-card");
      card.hidden = false;
      card.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }, "Ending…").then(() => setChatActive(Boolean(state.session))),
  );

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
        showError("PDF is not available in ephemeral mode.", "Download the Markdown copy instead.");
        return;
      }
      saveBlob(new Blob([ended.log_markdown || ""], { type: "text/markdown" }), `mindwell-session-${day}.md`);
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
      label.textContent = result.faces && result.label ? `Expression: ${result.label}` : "No face in view.";
    } catch (error) {
      label.dataset.state = "error";
      label.textContent = "The expression could not be read.";
      report(error);
      stopWebcam();
    } finally {
      cam.busy = false;
    }
  }

  byId("webcam-toggle").addEventListener("change", async (event) => {
    const box = event.currentTarget;
    if (!box.checked) {
      stopWebcam();
      return;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      box.checked = false;
      showError("This browser cannot use a camera here.", "Open the app at http://127.0.0.1 in a current browser.");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (error) {
      box.checked = false;
      showError("The camera could not be opened.", `${error.name || "Error"}: ${error.message || "permission denied or no camera"}`);
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
    label.textContent = "Looking…";
    byId("webcam-row").hidden = false;
    state.webcam = { stream, timer: setInterval(sendFrame, FACE_INTERVAL_MS), busy: false };
    video.addEventListener("loadeddata", () => setTimeout(sendFrame, 500), { once: true });
  });

  // ---------------------------------------------------------------- settings
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", async () => {
      const previous = state.me ? state.me.mode : null;
      try {
        const me = await api("/api/v1/settings", { method: "PUT", body: { mode: radio.value } });
        applyMe(me);
        showInfo(me.mode === "ephemeral" ? "Ephemeral mode is on: nothing new is kept." : "Journal mode is on.");
      } catch (error) {
        report(error);
        if (previous) applyMe({ ...state.me, mode: previous });
      }
    });
  }

  byId("locale-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const locale = byId("locale-input").value.trim().toUpperCase();
    if (!locale) {
      showError("Enter a country code first.", "For example US, GB, IE or KR.");
      return;
    }
    const button = event.currentTarget.querySelector("button");
    await withBusy(button, async () => {
      const me = await api("/api/v1/settings", { method: "PUT", body: { locale } });
      applyMe(me);
      byId("locale-input").value = me.locale || locale;
      showInfo(`Crisis messages will show helplines for ${me.locale || locale}.`);
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
    if (!window.confirm("Erase this conversation from the server? This cannot be undone.")) return;
    await withBusy(event.currentTarget, async () => {
      await api(`/api/v1/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
      resetChat();
      showErased("Deleted: this conversation, its messages, memories and events.");
    });
    updateEraseSession();
  });

  byId("erase-all").addEventListener("click", async (event) => {
    if (!window.confirm("Erase every diary entry, conversation and memory? This cannot be undone.")) return;
    await withBusy(event.currentTarget, async () => {
      const result = await api("/api/v1/data", { method: "DELETE" });
      const d = result.deleted || {};
      const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
      showErased(
        `Deleted: ${plural(d.diary || 0, "diary entry", "diary entries")}, ` +
          `${plural(d.sessions || 0, "conversation", "conversations")}, ` +
          `${plural(d.memories || 0, "memory", "memories")}.`,
      );
      resetChat();
      byId("diary-result").hidden = true;
      await Promise.all([loadDiary(), loadMood()]);
    });
    updateEraseSession();
  });

  function resetChat() {
    stopWebcam();
    state.session = null;
    state.sessionEnded = null;
    state.lastSessionId = null;
    setCrisis(false);
    setChatActive(false);
    byId("chat-start").textContent = "Start conversation";
    byId("chat-summary-card").hidden = true;
    updateEraseSession();
    chatLog.replaceChildren(el("p", { class: "muted placeholder" }, "Start a conversation when you are ready. You can end it at any time."));
  }

  window.addEventListener("pagehide", stopWebcam);

  // ---------------------------------------------------------------- start
  readKeyFromHash();
  start();
})();
