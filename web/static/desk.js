// 窓口: keyboard shortcuts and small helps. The desk works without this file.
"use strict";

// The page's words for what the script says (base.html's <body data-t-…>, in the user's
// language); "%(name)s" is filled from values.
const deskText = (key, values = {}) =>
  (document.body.dataset[key] || "").replace(/%\((\w+)\)s/g, (_, name) => values[name] ?? "");

// A key typed into a field is text, never a shortcut.
const NOT_TEXT = new Set(["checkbox", "radio", "button", "submit", "reset", "image", "file"]);

function typing(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target instanceof HTMLInputElement) return !NOT_TEXT.has(target.type);
  return target.closest("textarea, select, [contenteditable], [role=textbox]") !== null;
}

// The rows j/k move through: the queue's tickets, or the search results.
function rows() {
  return Array.from(document.querySelectorAll("[data-row], .hits > li"));
}

function current() {
  return document.querySelector("[data-row].cursor, .hits > li.cursor");
}

function move(step) {
  const all = rows();
  if (all.length === 0) return;
  const at = all.indexOf(current());
  const next = all[Math.min(Math.max(at < 0 ? (step > 0 ? 0 : all.length - 1) : at + step, 0), all.length - 1)];
  all.forEach((row) => row.classList.remove("cursor"));
  next.classList.add("cursor");
  const link = next.querySelector("td.number a, a[href^='/tickets/']");
  if (link) link.focus({ preventScroll: true });
  next.scrollIntoView({ block: "nearest" });
}

function openCurrent() {
  const row = current() || (document.activeElement && document.activeElement.closest("[data-row], .hits > li"));
  const link = row && row.querySelector("td.number a, a[href^='/tickets/']");
  if (link) window.location.assign(link.href);
  return Boolean(link);
}

// r / n on a ticket: open the reply or note box and put the cursor in it.
function write(detailsId, fieldId) {
  const field = document.getElementById(fieldId);
  if (!field) return false;
  const details = detailsId ? document.getElementById(detailsId) : field.closest("details");
  if (details) details.open = true;
  field.focus();
  field.scrollIntoView({ block: "center" });
  return true;
}

function toggleHelp() {
  const help = document.getElementById("shortcuts");
  if (!(help instanceof HTMLDialogElement)) return false;
  if (help.open) help.close(); else help.showModal();
  return true;
}

function search() {
  const box = document.getElementById("top-q") || document.getElementById("q");
  if (!box) return false;
  box.focus();
  box.select();
  return true;
}

function tick() {
  const row = current();
  const box = row && row.querySelector("input[type=checkbox]");
  if (box) box.click();
  return Boolean(box);
}

const KEYS = {
  j: () => { move(1); return true; },
  k: () => { move(-1); return true; },
  o: openCurrent,
  x: tick,
  r: () => write(null, "reply-body"),
  n: () => write("note", "note-text"),
  "/": search,
  "?": toggleHelp,
};

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
  const target = event.target;
  if (event.key === "Escape" && typing(target) && !target.closest("dialog")) {
    target.blur();  // back to the shortcuts
    return;
  }
  if (typing(target)) return;
  const help = document.getElementById("shortcuts");
  if (help instanceof HTMLDialogElement && help.open && event.key !== "?") return;
  const action = KEYS[event.key];
  if (action && action()) event.preventDefault();
});

document.addEventListener("submit", (event) => {
  // Forms (and buttons) that cannot be undone (merge, out of scope) ask first.
  const form = event.target;
  const button = event.submitter;
  const question = (button && button.dataset.confirm) || (form instanceof HTMLFormElement && form.dataset.confirm);
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// "Select all" on the queue: shown only when this script runs.
document.querySelectorAll("[data-select-all]").forEach((all) => {
  all.hidden = false;
  all.addEventListener("change", () => {
    document.querySelectorAll("input[type=checkbox][name=ticket]").forEach((box) => { box.checked = all.checked; });
  });
});

// A link to a folded box (社内メモ) opens it.
document.addEventListener("click", (event) => {
  const link = event.target instanceof Element ? event.target.closest("a[href^='#']") : null;
  const target = link ? document.getElementById(link.hash.slice(1)) : null;
  if (target instanceof HTMLDetailsElement) target.open = true;
});
// 定型文: the reply box's text modules. Ctrl+. (or the button) opens a filterable
// list; ↑/↓ choose, Enter inserts the module (already filled in by the server)
// at the caret, Esc closes. A macro's status/assignee apply when the reply is sent.
(() => {
  const panel = document.getElementById("tm-panel");
  const body = document.getElementById("reply-body");
  const filter = document.getElementById("tm-filter");
  const opener = document.getElementById("tm-open");
  if (!panel || !body || !filter || !opener) return;
  const options = Array.from(panel.querySelectorAll("li[role=option]"));
  let caret = 0;
  let active = -1;
  const fold = (s) => s.normalize("NFKC").toLowerCase()
    .replace(/[\u30a1-\u30f6]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0x60));
  const visible = () => options.filter((o) => !o.hidden);
  const mark = (index) => {
    const shown = visible();
    options.forEach((o) => o.setAttribute("aria-selected", "false"));
    active = shown.length ? Math.max(0, Math.min(index, shown.length - 1)) : -1;
    if (active >= 0) {
      shown[active].setAttribute("aria-selected", "true");
      filter.setAttribute("aria-activedescendant", shown[active].id);
      shown[active].scrollIntoView({ block: "nearest" });
    } else {
      filter.removeAttribute("aria-activedescendant");
    }
  };
  const open = () => {
    caret = body.selectionStart ?? body.value.length;
    panel.hidden = false;
    opener.setAttribute("aria-expanded", "true");
    filter.value = "";
    options.forEach((o) => { o.hidden = false; });
    mark(0);
    filter.focus();
  };
  const close = () => {
    panel.hidden = true;
    opener.setAttribute("aria-expanded", "false");
    body.focus();
  };
  const insert = (option) => {
    const text = option.dataset.text || "";
    body.value = body.value.slice(0, caret) + text + body.value.slice(caret);
    const macro = document.getElementById("tm-macro");
    const hint = document.getElementById("tm-macro-hint");
    if (macro && option.dataset.macro) {
      macro.value = option.dataset.id || "";
      if (hint) {
        hint.textContent = deskText("tMacro", { title: option.textContent.trim(), action: option.dataset.macroLabel || "" });
        hint.hidden = false;
      }
    }
    close();
    body.setSelectionRange(caret + text.length, caret + text.length);
  };
  opener.addEventListener("click", () => (panel.hidden ? open() : close()));
  body.addEventListener("keydown", (event) => {
    if (event.key === "." && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      open();
    }
  });
  filter.addEventListener("input", () => {
    const words = fold(filter.value).split(/\s+/).filter(Boolean);
    options.forEach((o) => {
      const hay = fold(`${o.textContent} ${o.dataset.text}`);
      o.hidden = !words.every((w) => hay.includes(w));
    });
    mark(0);
  });
  filter.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      mark(active + (event.key === "ArrowDown" ? 1 : -1));
    } else if (event.key === "Enter") {
      event.preventDefault();
      const chosen = visible()[active];
      if (chosen) insert(chosen);
    } else if (event.key === "Escape") {
      event.preventDefault();
      close();
    }
  });
  options.forEach((o) => o.addEventListener("click", () => insert(o)));
})();

// The live desk (web/live.py): the queue and an open ticket are told of changes by
// server-sent events on the same origin. Without EventSource, or when the stream is
// refused, the page stays as it is and is reloaded by hand.
(() => {
  const live = document.getElementById("live");
  if (!live || !live.dataset.liveUrl || !("EventSource" in window)) return;
  const notice = document.getElementById("live-notice");
  const show = (lines) => {
    if (!notice) return;
    const list = notice.querySelector("ul");
    if (list && lines) {
      list.replaceChildren(...lines.map((line) => {
        const item = document.createElement("li");
        item.textContent = line;
        return item;
      }));
    }
    notice.hidden = false;
  };
  const stream = new EventSource(live.dataset.liveUrl);
  stream.addEventListener("error", () => {
    // CLOSED: refused (signed out, too many open); the browser retries anything else.
    if (stream.readyState === EventSource.CLOSED) show([deskText("tLiveStopped")]);
  });
  window.addEventListener("pagehide", () => stream.close());

  if (live.dataset.liveKind === "queue") {
    let timer = null;
    const redraw = async () => {
      timer = null;
      const body = document.querySelector("table.queue tbody");
      if (!body || body.contains(document.activeElement)) { show(); return; }
      try {
        const answer = await fetch(window.location.href, {
          headers: { "X-Madoguchi-Live": "1" }, credentials: "same-origin", cache: "no-store" });
        if (!answer.ok || new URL(answer.url).pathname !== window.location.pathname) { show(); return; }
        const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
        const rows = fresh.querySelector("table.queue tbody");
        const pager = fresh.querySelector("nav.pager");
        if (!rows) { show(); return; }
        body.replaceWith(rows);
        const oldPager = document.querySelector("nav.pager");
        if (pager && oldPager) oldPager.replaceWith(pager);
        live.dataset.updated = String(Date.now());
      } catch (_error) {
        show();
      }
    };
    stream.addEventListener("changed", () => {
      // Spread the redraws of many open queues over a second and a half.
      if (timer === null) timer = window.setTimeout(redraw, 300 + Math.random() * 1200);
    });
    return;
  }

  const presence = document.getElementById("presence");
  stream.addEventListener("presence", (event) => {
    if (!presence) return;
    const text = JSON.parse(event.data).text || "";
    presence.textContent = text;
    presence.hidden = text === "";
  });
  stream.addEventListener("changed", (event) => show(JSON.parse(event.data).lines));

  // Typing a reply or a note: the others see "返信を入力中" (told at most every 10 s).
  const typingUrl = live.dataset.typingUrl;
  let told = 0;
  document.addEventListener("input", (event) => {
    const field = event.target;
    if (!typingUrl || !(field instanceof HTMLTextAreaElement) || !field.closest(".compose")) return;
    if (Date.now() - told < 10000) return;
    told = Date.now();
    const csrf = field.form && field.form.querySelector("input[name=csrf]");
    if (!csrf) return;
    const form = new FormData();
    form.append("csrf", csrf.value);
    fetch(typingUrl, { method: "POST", body: form, credentials: "same-origin" }).catch(() => {});
  });
})();

// The reply being typed is saved on the server as a draft (per agent and ticket), a moment
// after the last keystroke. When the session is over the text stays in the page: saving
// resumes once the agent signs in again (in another tab), and the form is not sent before.
(() => {
  const form = document.getElementById("reply-form");
  if (!(form instanceof HTMLFormElement) || !form.dataset.draftUrl) return;
  const url = form.dataset.draftUrl;
  const status = document.getElementById("draft-status");
  const fields = ["to", "cc", "body"].map((name) => form.elements.namedItem(name));
  let timer = 0;
  let signedOut = false;
  let dirty = false;
  let sentUrl = "";  // this draft went out already (Back after sending): where it is shown

  const say = (text, error) => {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("error", Boolean(error));
  };
  const setCsrf = (token) => {
    for (const input of document.querySelectorAll("input[name=csrf]")) input.value = token;
  };
  const refresh = async () => {
    // After signing in again: the new session's CSRF token, then save what was typed.
    const answer = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!answer.ok) return false;
    setCsrf((await answer.json()).csrf);
    signedOut = false;
    return true;
  };
  const save = async (again = true) => {
    window.clearTimeout(timer);
    const body = new FormData();
    for (const name of ["csrf", "idempotency_key", "to", "cc", "body"]) {
      const field = form.elements.namedItem(name);
      body.append(name, field && "value" in field ? field.value : "");
    }
    let answer;
    try {
      answer = await fetch(url, { method: "POST", body, headers: { Accept: "application/json" }, credentials: "same-origin", redirect: "manual" });
    } catch {
      say(deskText("tDraftOffline"), true);
      return false;
    }
    if (answer.ok) {
      dirty = false;
      say(deskText("tDraftSaved", { time: new Date().toLocaleTimeString(document.documentElement.lang || "ja", { hour: "2-digit", minute: "2-digit" }) }), false);
      return true;
    }
    if (answer.status === 403 && again && (await refresh())) return save(false);
    if (answer.status === 401 || answer.status === 403) {
      signedOut = true;
      say(deskText("tSignedOut"), true);
      return false;
    }
    let message = deskText("tDraftFailed");
    try {
      const data = await answer.json();
      message = data.message || message;
      sentUrl = data.error === "sent" ? data.url : "";
    } catch { /* not JSON */ }
    say(message, true);
    return false;
  };

  for (const field of fields) {
    if (!(field instanceof HTMLElement)) continue;
    field.addEventListener("input", () => {
      dirty = true;
      window.clearTimeout(timer);
      timer = window.setTimeout(save, 1200);
    });
  }
  const resume = async () => {
    if (signedOut && (await refresh()) && dirty) await save(false);
  };
  window.addEventListener("focus", resume);
  document.addEventListener("visibilitychange", resume);
  window.setInterval(() => { if (signedOut) resume(); }, 10000);

  window.addEventListener("pageshow", () => { form.dataset.saved = ""; });
  form.addEventListener("submit", async (event) => {
    // Saved first: a reply is never posted into an ended session (the text would be lost).
    if (form.dataset.saved === "1") return;
    event.preventDefault();
    if (await save()) {
      form.dataset.saved = "1";
      form.requestSubmit(event.submitter instanceof HTMLElement ? event.submitter : undefined);
    } else if (sentUrl) {
      window.location.assign(sentUrl);
    }
  });
})();
