"""The web UI's own stylesheet and the script that opens a cited source; no outside asset
(system fonts only, nothing fetched from another origin)."""

CSS = """
/* WCAG AA contrast for the secondary text, labels and links of the theme, light and dark
   (the theme's own were 2.4:1 to 4.3:1): two colours per theme, mapped once onto the
   theme's variables. The theme sets those on :root and on .dark (the body, in the dark
   theme): `body.dark` outranks `.dark`, so the mapping wins in both. */
body { --citadel-subdued: #4b5563; --citadel-link: #3730a3; }
body.dark { --citadel-subdued: #d1d5db; --citadel-link: #c7d2fe; }
body, body.dark {
  --body-text-color-subdued: var(--citadel-subdued);
  --block-info-text-color: var(--citadel-subdued);
  --block-label-text-color: var(--citadel-subdued);
  --block-title-text-color: var(--citadel-subdued);
  --link-text-color: var(--citadel-link); --link-text-color-hover: var(--citadel-link);
  --link-text-color-visited: var(--citadel-link); --link-text-color-active: var(--citadel-link); }
button[role="tab"] { color: var(--body-text-color) !important; }
button[role="tab"][aria-selected="true"] { color: var(--citadel-link) !important; }
.citadel-muted { color: var(--body-text-color-subdued); }
.citadel-q { white-space: pre-wrap; overflow-wrap: anywhere; }
.citadel-text { white-space: pre-wrap; overflow-wrap: anywhere; }
.citadel-text.citadel-md { white-space: normal; }
.citadel-md p { margin: 0 0 0.6em; }
.citadel-md ul, .citadel-md ol { margin: 0 0 0.6em 1.3em; padding: 0; }
.citadel-md pre { white-space: pre; overflow-x: auto; padding: 8px 10px; border-radius: 6px;
  background: var(--background-fill-secondary); }
.citadel-md table { border-collapse: collapse; margin: 0 0 0.6em; display: block;
  overflow-x: auto; width: max-content; max-width: 100%; border: 0; }
.citadel-md th, .citadel-md td { border: 1px solid var(--border-color-primary);
  padding: 3px 8px; text-align: left; }
.citadel-cursor { animation: citadel-blink 1s steps(2) infinite; }
@keyframes citadel-blink { 50% { opacity: 0; } }
a.citadel-cite { font-weight: 600; text-decoration: none; cursor: pointer;
  color: var(--citadel-link); padding: 0; margin: 0; }
a.citadel-cite:hover, a.citadel-cite.citadel-active { text-decoration: underline; }
a.citadel-cite-placed { font-weight: 400; font-style: italic; opacity: 0.85; }
.citadel-sources-title { margin-top: 8px; font-weight: 600; font-size: 0.9em; }
.citadel-sources, .citadel-closest { margin: 4px 0 0 0; padding-left: 1.2em; font-size: 0.9em;
  list-style: none; }
.citadel-preview { color: var(--body-text-color-subdued); font-size: 0.9em; margin: 2px 0 6px; }
.citadel-unsupported { margin-top: 8px; font-size: 0.85em; color: var(--body-text-color-subdued); }
.citadel-src[hidden] { display: none !important; }
.citadel-src-head { font-weight: 600; }
.citadel-src-title, .citadel-src-where, .citadel-src-section { font-size: 0.9em;
  color: var(--body-text-color-subdued); }
.citadel-src-text { white-space: pre-wrap; overflow-wrap: anywhere; margin: 8px 0;
  padding: 8px 10px; border-left: 3px solid var(--color-accent);
  background: var(--background-fill-secondary); max-height: 420px; overflow-y: auto; }
mark.citadel-mark { background: #ffe27a; color: #1f1f1f; padding: 0 1px; }
.citadel-banner { border-radius: 8px; padding: 8px 12px; margin-bottom: 8px;
  border: 1px solid; color: #1f1f1f; }
.citadel-banner div { margin-top: 4px; }
/* The banners keep their light background in the dark theme: their text must stay dark. */
.citadel-banner, .citadel-banner * { color: #1f1f1f; }
.citadel-banner a.citadel-cite { color: #0b4fa8; }
.citadel-banner-search { background: #fff4d6; border-color: #e0a800; }
.citadel-banner-refused { background: #eef2f7; border-color: #8a9bb4; }
.citadel-banner-incomplete, .citadel-banner-notice { background: #fff8e5; border-color: #d9a400; }
.citadel-banner-error { background: #fde8e8; border-color: #d64545; }
.citadel-msg-ok { color: #2e7d32; }
.citadel-msg-error { color: #c62828; }
.citadel-msg-warn { color: #b26a00; font-weight: 600; }
.citadel-progress table { width: 100%; border-collapse: collapse; font-size: 0.9em; }
.citadel-progress th, .citadel-progress td { text-align: left; padding: 3px 6px;
  border-bottom: 1px solid var(--border-color-primary); overflow-wrap: anywhere; }
.citadel-job-state { font-weight: 600; margin: 0 0 4px; }
.citadel-status-failed .citadel-file-status, .citadel-status-rejected .citadel-file-status,
.citadel-status-skipped .citadel-file-status { color: #c62828; }
.citadel-status-added .citadel-file-status, .citadel-status-updated .citadel-file-status
 { color: #2e7d32; }
.citadel-user { font-size: 0.9em; text-align: right; }
.citadel-logout { display: inline; margin-left: 0.4em; }
/* A focus ring that shows, on the question box above all. */
#citadel-question textarea:focus-visible, #citadel-question textarea:focus,
button:focus-visible, a:focus-visible, [role="tab"]:focus-visible {
  /* !important: Gradio's own rules remove the outline with a more specific selector */
  outline: 3px solid var(--color-accent) !important; outline-offset: 2px; }
#citadel-source-column { position: sticky; top: 8px; align-self: flex-start;
  max-height: calc(100vh - 16px); overflow-y: auto; }
#citadel-sheet-close { display: none; }
@media (max-width: 767px) {
  #citadel-source-column { position: static; max-height: none; }
  #citadel-source-column.citadel-sheet-open { position: fixed; left: 0; right: 0; bottom: 0;
    top: auto; max-height: 60vh; z-index: 50; padding: 8px 12px;
    background: var(--background-fill-primary); border-top: 1px solid var(--border-color-primary);
    box-shadow: 0 -4px 16px rgba(0, 0, 0, 0.25); }
  #citadel-source-column.citadel-sheet-open #citadel-sheet-close { display: block; }
}
.citadel-rate { display: flex; gap: 6px; align-items: center; margin-top: 8px; }
.citadel-rate-button { border: 1px solid var(--border-color-primary); border-radius: 14px;
  background: var(--background-fill-primary); padding: 2px 10px; cursor: pointer; }
.citadel-rate-button[aria-pressed="true"] { border-color: var(--citadel-link);
  outline: 2px solid var(--citadel-link); }
.citadel-rate-comment { flex: 1; min-width: 8em; padding: 3px 6px; font-size: 0.9em;
  border: 1px solid var(--border-color-primary); border-radius: 6px;
  background: var(--background-fill-primary); color: var(--body-text-color); }
.citadel-copy { border: 1px solid var(--border-color-primary); border-radius: 14px;
  background: var(--background-fill-primary); padding: 2px 10px; cursor: pointer; }
details.citadel-thinking { margin-bottom: 8px; font-size: 0.9em;
  color: var(--body-text-color-subdued); }
details.citadel-thinking summary { cursor: pointer; }
.citadel-offstage { display: none !important; }
#citadel-conversation { position: relative; }
#citadel-ask-row { position: sticky; bottom: 0; z-index: 20; padding: 6px 0;
  background: var(--body-background-fill); }
/* Gradio's container hides what overflows it, which stops anything inside from sticking:
   clipping it instead keeps the page as it was and lets the question box stick. */
.gradio-container { overflow: clip !important; }
/* One "Jump to latest", in words: the page's own (Gradio's arrow would sit on top of it). */
#citadel-conversation .scroll-down-button-container { display: none; }
.citadel-jump { position: absolute; bottom: 12px; left: 50%; transform: translateX(-50%);
  z-index: 5; display: block;
  padding: 4px 12px; border-radius: 16px; border: 1px solid var(--border-color-primary);
  background: var(--background-fill-primary); color: var(--body-text-color); cursor: pointer; }
.citadel-jump[hidden] { display: none; }
.citadel-sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0, 0, 0, 0); white-space: nowrap; border: 0; }
.citadel-logout button { background: none; border: 0; padding: 0; font: inherit;
  color: var(--citadel-link); text-decoration: underline; cursor: pointer; }
a.citadel-open { color: var(--citadel-link); }
/* The Administration tab: tables that scroll sideways on a phone; messages legible in the
   dark theme too; a new API key set apart. */
.citadel-admin-table { overflow-x: auto; max-height: 560px; overflow-y: auto; }
.citadel-admin-table table { width: 100%; min-width: 34rem; border-collapse: collapse;
  font-size: 0.9em; }
.citadel-admin-table th, .citadel-admin-table td { text-align: left; padding: 4px 8px;
  border-bottom: 1px solid var(--border-color-primary); overflow-wrap: break-word;
  vertical-align: top; }
.citadel-model .citadel-admin-table table { min-width: 0; }
.dark .citadel-msg-ok { color: #a5d6a7; }
.dark .citadel-msg-error { color: #ef9a9a; }
.dark .citadel-msg-warn { color: #ffcc80; }
.citadel-secret { border: 2px solid var(--citadel-link); border-radius: 8px; padding: 8px 12px; }
.citadel-secret-key { font-size: 1.05em; overflow-wrap: anywhere; user-select: all; }
"""

# Runs once when the source panel mounts (gr.HTML's js_on_load): delegated listeners on the
# chat (Gradio's Chatbot, #citadel-conversation) open the source of a clicked [n], copy an
# answer and send its rating. A source is copied from a hidden block the server already
# escaped, by cloning DOM nodes; no string ever goes through innerHTML here. The chat's
# sanitiser keeps classes and links but no data attributes: a chip names its block in its
# link's fragment, a rating box its answer in a class.
CHAT_JS = """
const chat = () => document.getElementById('citadel-conversation');
const inChat = (node) => { const c = chat(); return c && node && c.contains(node); };
document.addEventListener('click', (event) => {
  const link = event.target.closest ? event.target.closest('a.citadel-cite') : null;
  if (!link || !inChat(link)) return;
  event.preventDefault();
  const key = (link.getAttribute('href') || '').slice(1);
  const found = (name) => name.startsWith('citadel-source-')
    ? chat().getElementsByClassName(name)[0] : null;
  // The block of this claim's sentence, else the source's own (a saved answer's chips).
  const source = found(key) || found(key.replace(/-[0-9]+$/, '-0'));
  const panel = document.getElementById('citadel-source-panel');
  if (!source || !panel) return;
  const body = panel.querySelector('.citadel-source-body') || panel;
  if (!panelAtStart) panelAtStart = body.cloneNode(true);
  const copy = source.cloneNode(true);
  copy.removeAttribute('hidden');
  copy.classList.add('citadel-src-shown');
  body.replaceChildren(copy);
  for (const active of chat().querySelectorAll('a.citadel-cite.citadel-active')) {
    active.classList.remove('citadel-active');
  }
  link.classList.add('citadel-active');
  // Desktop: the panel is sticky beside the chat. Small screens: it opens as a bottom
  // sheet over the page, which stays where it was (no jump to the bottom).
  const column = document.getElementById('citadel-source-column');
  if (column && !column.classList.contains('citadel-sheet-open')) {
    // On a phone the sheet leaves the page's flow: its row keeps its height, so the page
    // under the reader does not move.
    const row = column.parentElement;
    if (row) row.style.minHeight = `${row.offsetHeight}px`;
    column.classList.add('citadel-sheet-open');
  }
});
// A thumb under an answer: its answer id, rating and comment go to the server through a
// hidden text box and button (ui/web/app.py), the way a Gradio event takes input.
const RATE_FOR = 'citadel-rate-for-';
document.addEventListener('click', (event) => {
  const thumb = event.target.closest ? event.target.closest('button.citadel-rate-button') : null;
  if (!thumb || !inChat(thumb)) return;
  const box = thumb.closest('.citadel-rate');
  const named = box ? [...box.classList].find((name) => name.startsWith(RATE_FOR)) : null;
  if (!named) return;
  const comment = box.querySelector('.citadel-rate-comment');
  const payload = JSON.stringify({
    answer: named.slice(RATE_FOR.length),
    rating: thumb.classList.contains('citadel-rate-up') ? 1 : -1,
    comment: comment ? comment.value : '',
  });
  const field = document.querySelector('#citadel-rate-payload textarea');
  const send = document.getElementById('citadel-rate-send');
  if (!field || !send) return;
  field.value = payload;
  field.dispatchEvent(new Event('input', {bubbles: true}));
  for (const other of box.querySelectorAll('button.citadel-rate-button')) {
    other.setAttribute('aria-pressed', other === thumb ? 'true' : 'false');
  }
  setTimeout(() => send.click(), 50);
});
// Copy: the answer's text and its sources as plain text (Gradio's own copy would take the
// HTML). The clipboard API needs a secure origin; plain http falls back to a selection.
document.addEventListener('click', async (event) => {
  const button = event.target.closest ? event.target.closest('button.citadel-copy') : null;
  if (!button || !inChat(button)) return;
  const answer = button.closest('.citadel-a');
  const written = answer && answer.querySelector('.citadel-md');
  if (!written) return;
  let text = written.innerText.trim();
  const sources = [...answer.querySelectorAll('ol.citadel-sources > li')];
  if (sources.length) {
    text += '\\n\\nSources:\\n' + sources.map((li) => li.innerText.trim()).join('\\n');
  }
  let copied = false;
  try {
    if (window.isSecureContext && navigator.clipboard) {
      await navigator.clipboard.writeText(text);
      copied = true;
    }
  } catch (error) { copied = false; }
  if (!copied) {
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.left = '-9999px';
    document.body.appendChild(area);
    area.select();
    try { copied = document.execCommand('copy'); } catch (error) { copied = false; }
    area.remove();
  }
  button.textContent = copied ? 'Copied' : 'Copy failed: select the text';
  setTimeout(() => { button.textContent = 'Copy'; }, 2000);
});
// The panel's first words (kept at the first click), put back when the conversation is
// emptied (New conversation).
let panelAtStart = null;
const clearSource = () => {
  const panel = document.getElementById('citadel-source-panel');
  const body = panel && panel.querySelector('.citadel-source-body');
  if (body && panelAtStart) body.replaceChildren(...panelAtStart.cloneNode(true).childNodes);
  clearSheet();
};
document.addEventListener('click', (event) => {
  if (event.target.closest && event.target.closest('#citadel-sheet-close')) clearSheet();
});
const clearSheet = () => {
  const column = document.getElementById('citadel-source-column');
  if (!column) return;
  column.classList.remove('citadel-sheet-open');
  if (column.parentElement) column.parentElement.style.minHeight = '';
};
// The view follows new text while the reader is at the bottom; scrolled up, a "Jump to
// latest" button appears instead. (Gradio's own autoscroll loses the bottom when a
// finished answer grows by more than its threshold.)
const scroller = () => {
  const c = chat();
  return (c && c.querySelector('[role="log"]')) || document.scrollingElement;
};
let follow = true;
const jump = document.createElement('button');
jump.type = 'button';
jump.id = 'citadel-jump';
jump.className = 'citadel-jump';
jump.textContent = 'Jump to latest ↓';
jump.hidden = true;
// Where this script last put the chat's scroll position: any other position comes from
// the reader (a scroll bar dragged, a link followed into view, a find in the page).
let placed = null;
const toBottom = () => {
  const s = scroller();
  s.scrollTop = s.scrollHeight;
  placed = s.scrollTop;
};
jump.addEventListener('click', () => { follow = true; jump.hidden = true; toBottom(); });
const atBottom = () => {
  const s = scroller();
  return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
};
// Only the reader stops the following (wheel, touch, keys): a re-rendered answer that
// changes height moves the scroll position too, and must not.
const readerScrolled = () => requestAnimationFrame(() => {
  follow = atBottom();
  if (follow) jump.hidden = true;
});
const SCROLL_KEYS = new Set(['PageUp', 'PageDown', 'ArrowUp', 'ArrowDown', 'Home', 'End', ' ']);
for (const kind of ['wheel', 'touchmove']) {
  document.addEventListener(kind, readerScrolled, {capture: true, passive: true});
}
document.addEventListener('keydown', (event) => {
  // Keys typed in a field (Enter sending a question) are not the reader scrolling.
  const typing = event.target.closest && event.target.closest('input, textarea, [contenteditable]');
  if (!typing && SCROLL_KEYS.has(event.key)) readerScrolled();
}, {capture: true, passive: true});
document.addEventListener('scroll', (event) => {
  const s = scroller();
  if (event.target === s && placed !== null && Math.abs(s.scrollTop - placed) > 2) {
    follow = atBottom();
    jump.hidden = follow || jump.hidden;
  }
  if (!follow && atBottom()) { follow = true; jump.hidden = true; }
}, true);
// A live region outside the re-rendered answer: screen readers hear each answer once, when
// it is complete, not every refresh of the streamed text. Filled with textContent only.
const live = document.createElement('div');
live.id = 'citadel-live';
live.className = 'citadel-sr-only';
live.setAttribute('role', 'status');
live.setAttribute('aria-live', 'polite');
let said = '';
const changed = () => {
  const c = chat();
  // Gradio names each message with its whole content, here HTML: the text itself is read.
  const labelled = '[data-testid="bot"][aria-label], [data-testid="user"][aria-label]';
  for (const named of c.querySelectorAll(labelled)) {
    named.removeAttribute('aria-label');
  }
  if (!c.querySelector('.citadel-a')) { clearSource(); follow = true; jump.hidden = true; }
  if (follow) { toBottom(); } else { jump.hidden = false; }
  if (c.querySelector('.citadel-streaming')) return;
  const answers = c.querySelectorAll('.citadel-a');
  const last = answers[answers.length - 1];
  const text = last ? last.innerText.trim().slice(0, 4000) : '';
  if (text && text !== said) { said = text; live.textContent = text; }
};
const watchChat = () => {
  const c = chat();
  if (!c) { setTimeout(watchChat, 100); return; }
  c.appendChild(jump);
  c.appendChild(live);
  // Gradio announces the whole log on every streamed refresh: the live region above
  // speaks instead, once per answer.
  const log = c.querySelector('[role="log"]');
  if (log) log.setAttribute('aria-live', 'off');
  new MutationObserver(changed).observe(c, {childList: true, subtree: true, characterData: true});
  changed();
};
watchChat();
"""

# Runs once when the upload area mounts: Gradio labels its drop zone button with the
# component's label, which does not contain the words shown on it ("Drop File Here...");
# without the attribute, its name is the words shown, as WCAG's "label in name" asks.
DROP_ZONE_JS = """
const fix = () => {
  for (const zone of document.querySelectorAll('#citadel-upload button[aria-label]')) {
    zone.removeAttribute('aria-label');
  }
};
fix();
new MutationObserver(fix).observe(document.body, {childList: true, subtree: true});
"""

# Runs once when the conversation mounts: when the session has ended (logout in
# another tab, expiry, an account disabled), the page goes to the login page, which says
# so, instead of every event failing with "Error". Checked when the tab is shown again,
# when the page comes back from the browser's history, and every minute.
SESSION_JS = """
const check = async () => {
  try {
    const answer = await fetch('/session', {credentials: 'same-origin', cache: 'no-store'});
    if (answer.status === 401) window.location.replace('/login?ended=session');
  } catch (error) { /* the server is unreachable: Gradio says so itself */ }
};
document.addEventListener('visibilitychange', () => { if (!document.hidden) check(); });
window.addEventListener('pageshow', (event) => { if (event.persisted) check(); });
setInterval(check, 60000);
"""
