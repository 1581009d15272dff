// The student page: pick a course, ask (the answer streams in from POST /v1/ask/stream, with the
// conversation so far as history, so follow-ups such as "What did he do?" work), open a citation
// (its PDF at the cited page, beside the excerpt), or answer a multiple-choice question with
// POST /v1/mcq. No build step.
"use strict";

const $ = (id) => document.getElementById(id);
const LETTERS = "ABCDEFGHIJ";
const KEY_STORAGE = "tutor-api-key";
// Earlier messages sent with a question: the last few exchanges are what the search draws on, and
// the server refuses conversations longer than 10 questions' worth of text.
const HISTORY_MESSAGES = 8;

function keyHeaders() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

function headers() {
  return { "Content-Type": "application/json", ...keyHeaders() };
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.detail || response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function loadCourses() {
  const response = await fetch("/v1/courses", { headers: headers() });
  if (!response.ok) {
    setStatus(await errorText(response), true);
    return;
  }
  const { courses } = await response.json();
  const select = $("course");
  select.replaceChildren(...courses.map((course) => {
    const option = document.createElement("option");
    option.value = course.name;
    option.textContent = `${course.name} (${course.sources} files)`;
    return option;
  }));
  setStatus(courses.length ? "" : "No course yet: ask your instructor to upload one.");
  newConversation();
}

// --- Ask -----------------------------------------------------------------------------

let citations = [];
let shown = null; // the number of the citation open in the detail panel

// --- The cited file: fetched with the key header (a link cannot send one), shown from a blob: URL.

const fileUrls = new Map(); // a citation's file_url -> Promise of a blob: URL of the PDF

function forgetFiles() {
  for (const url of fileUrls.values()) url.then(URL.revokeObjectURL, () => {});
  fileUrls.clear();
}

function pdfUrl(fileUrl) {
  if (!fileUrls.has(fileUrl)) {
    const url = fetch(fileUrl, { headers: keyHeaders() }).then(async (response) => {
      if (!response.ok) throw new Error(await errorText(response));
      return URL.createObjectURL(await response.blob());
    });
    url.catch(() => fileUrls.delete(fileUrl)); // a failure is not remembered: the next click retries
    fileUrls.set(fileUrl, url);
  }
  return fileUrls.get(fileUrl);
}

// The browser's PDF viewer at the cited page (#page=N), in a new frame each time: a frame whose
// URL changes only after the # may stay on the old page.
async function openFile(citation) {
  $("detail-open").hidden = true;
  if (!citation.file_url) {
    $("viewer").replaceChildren();
    return;
  }
  $("viewer").textContent = "Opening the PDF…";
  try {
    const url = `${await pdfUrl(citation.file_url)}#page=${citation.page}`;
    if (shown !== citation.n) return; // another citation was opened meanwhile
    const frame = document.createElement("iframe");
    frame.id = "viewer-frame";
    frame.title = `${citation.source}, page ${citation.page}`;
    frame.src = url;
    $("viewer").replaceChildren(frame);
    Object.assign($("detail-open"), { href: url, hidden: false });
  } catch (error) {
    if (shown === citation.n) $("viewer").textContent = `The PDF cannot be shown: ${error.message}`;
  }
}

// --- The cited sentence: the answer's sentences that carry [n], marked in the answer and quoted
// beside the excerpt, where the excerpt's sentence sharing most words with them is marked too (with
// the whole answer, when it carries no [n]: small models often leave the markers out; and with the
// question, when a one-line answer shares no word with the excerpt).

const SENTENCE_END = /((?<=[.!?](?:\s*\[\d+\])*)\s+(?!\s|\[\d))/;
const MARKER = /(\[\d+\])/;

function sentencesCiting(n) {
  return [...document.querySelectorAll("#answer .sentence")]
    .filter((sentence) => sentence.dataset.cites.split(" ").includes(String(n)));
}

function words(text) {
  return new Set(text.toLowerCase().match(/[\p{L}\p{N}]{4,}/gu) || []);
}

// The index of the sentence of `parts` (text at even indices) sharing most words with `text`, or -1.
function closestSentence(parts, text) {
  const wanted = words(text);
  let best = -1;
  let bestShared = 0;
  parts.forEach((part, i) => {
    const shared = [...words(part)].filter((word) => wanted.has(word)).length;
    if (i % 2 === 0 && shared > bestShared) [best, bestShared] = [i, shared];
  });
  return best;
}

// The excerpt as text nodes, with its sentence sharing most words with `cited` (else `asked`) in a <mark>.
function markedExcerpt(excerpt, cited, asked) {
  const parts = excerpt.split(SENTENCE_END);
  const closest = closestSentence(parts, cited);
  const best = closest >= 0 ? closest : closestSentence(parts, asked);
  return parts.map((part, i) => {
    if (i !== best) return document.createTextNode(part);
    const mark = document.createElement("mark");
    mark.textContent = part;
    return mark;
  });
}

// The conversation with the tutor on the selected course: {role: "user"|"assistant", content}.
let conversation = [];
let askedQuestion = "";  // the question the shown answer and citations are for

function showConversation() {
  const questions = conversation.filter((m) => m.role === "user").length;
  $("conversation-note").textContent = questions
    ? `Follow-up to ${questions} earlier question${questions === 1 ? "" : "s"}` : "";
  $("new-conversation").disabled = questions === 0;
}

function newConversation() {
  conversation = [];
  showConversation();
}

function showCitation(n) {
  const citation = citations.find((c) => c.n === n);
  if (!citation) return;
  shown = n;
  const pages = `Page ${citation.page}${citation.page_end > citation.page ? `–${citation.page_end}` : ""}`;
  $("detail-title").textContent = `[${citation.n}] ${citation.source}`;
  $("detail-meta").textContent = `${pages} · relevance ${citation.score.toFixed(2)}`;
  document.querySelectorAll("#answer .sentence").forEach((sentence) => sentence.classList.remove("cited"));
  const citing = sentencesCiting(n);
  citing.forEach((sentence) => sentence.classList.add("cited"));
  const cited = citing.map((sentence) => sentence.textContent.replace(/\s*\[\d+\]/g, "").trim()).join(" ");
  const quote = document.createElement("mark");
  quote.textContent = cited;
  $("detail-cited").replaceChildren("Cited for: ", quote);
  $("detail-cited").hidden = !cited;
  $("detail-excerpt").replaceChildren(...markedExcerpt(citation.excerpt, cited || $("answer").textContent,
                                                      askedQuestion));
  $("citation-detail").hidden = false;
  document.querySelectorAll("#citations button").forEach((button) => {
    button.classList.toggle("selected", Number(button.dataset.n) === n);
  });
  openFile(citation);
}

function citationButton(n, label, className) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.dataset.n = String(n);
  button.textContent = label;
  button.addEventListener("click", () => showCitation(n));
  return button;
}

function renderCitations() {
  $("citations").replaceChildren(...citations.map((c) => {
    const item = document.createElement("li");
    item.append(citationButton(c.n, `[${c.n}] ${c.source}, p. ${c.page}`, "citation"));
    return item;
  }));
}

// One sentence of the answer, with each [n] it cites turned into a button that opens that source.
function renderSentence(text, known) {
  const sentence = document.createElement("span");
  sentence.className = "sentence";
  const cites = [];
  sentence.append(...text.split(MARKER).map((part) => {
    const match = part.match(/^\[(\d+)\]$/);
    if (!match || !known.has(Number(match[1]))) return document.createTextNode(part);
    cites.push(match[1]);
    return citationButton(Number(match[1]), part, "cite");
  }));
  sentence.dataset.cites = cites.join(" ");
  return sentence;
}

// What the server puts before the notes' sentence it quotes after an answer that does not say it
// (engine/citations.py): the page sets that sentence apart, as the notes' words, not the model's.
const QUOTE_LEAD = ' The notes say: "';

// The finished answer, sentence by sentence (the whitespace between them kept as it was), then the
// quoted notes, if any.
// An answer the server opened with the reader's short answer (engine/reader.py) shows that line
// apart, first.
function renderAnswer(text, short) {
  const known = new Set(citations.map((c) => c.n));
  const lead = short ? text.indexOf("\n\n") : -1;
  const at = text.lastIndexOf(QUOTE_LEAD);
  const own = text.slice(lead < 0 ? 0 : lead + 2, at < 0 ? text.length : at);
  const parts = own.split(SENTENCE_END).map((part, i) =>
    (i % 2 === 0 ? renderSentence(part, known) : document.createTextNode(part)));
  if (lead >= 0) {
    const first = document.createElement("strong");
    first.className = "short-answer";
    first.append(renderSentence(text.slice(0, lead), known));
    parts.unshift(first);
  }
  if (at >= 0) {
    const quote = document.createElement("span");
    quote.className = "from-notes";
    quote.append(renderSentence(text.slice(at + 1), known));
    parts.push(quote);
  }
  $("answer").replaceChildren(...parts);
}

// Yields the JSON payload of each server-sent event of a fetch response.
async function* serverEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
      if (data) yield JSON.parse(data);
    }
  }
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  const course = $("course").value;
  if (!question) return;
  askedQuestion = question;
  $("ask-button").disabled = true;
  $("citation-detail").hidden = true;
  $("viewer").replaceChildren();
  shown = null;
  forgetFiles();
  $("answer").textContent = "";
  $("answer").classList.add("streaming");
  citations = [];
  renderCitations();
  setStatus("Searching the course…");
  let answer = "";
  let short = null;
  try {
    const response = await fetch("/v1/ask/stream", {
      method: "POST", headers: headers(),
      body: JSON.stringify({
        course, question, history: conversation.slice(-HISTORY_MESSAGES),
      }),
    });
    if (!response.ok) throw new Error(await errorText(response));
    for await (const message of serverEvents(response)) {
      if (message.type === "citations") {
        citations = message.citations;
        short = message.short_answer;
        renderCitations();
        setStatus("Writing the answer…");
      } else if (message.type === "delta") {
        answer += message.text;
        $("answer").textContent = answer;
      } else if (message.type === "done") {
        renderAnswer(message.answer, short);
        if ($("course").value === course) {  // not if the student switched courses meanwhile
          conversation.push({ role: "user", content: question }, { role: "assistant", content: message.answer });
          showConversation();
        }
        setStatus(`Answered in ${message.timings.total_s.toFixed(1)} s.`);
      } else if (message.type === "error") {
        throw new Error(message.detail);
      }
    }
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    $("answer").classList.remove("streaming");
    $("ask-button").disabled = false;
  }
}

// --- Multiple choice -------------------------------------------------------------------

function addOption(text = "") {
  const count = $("mcq-options").children.length;
  if (count >= LETTERS.length) return;
  const row = document.createElement("label");
  row.className = "option";
  const letter = document.createElement("span");
  letter.className = "letter";
  letter.textContent = LETTERS[count];
  const input = document.createElement("input");
  input.type = "text";
  input.value = text;
  input.placeholder = `Option ${LETTERS[count]}`;
  row.append(letter, input);
  $("mcq-options").append(row);
}

// The chosen letter, then one bar per option: its probability among the options (softmax of the
// log-likelihoods), with the log-likelihood itself on hover.
function renderScores(result, options) {
  const chosen = document.createElement("p");
  chosen.className = "chosen";
  const index = result.answer ? LETTERS.indexOf(result.answer) : -1;
  chosen.textContent = index >= 0 ? `Answer: ${result.answer} — ${options[index]}`
    : `No answer: ${result.reason || "the model named no option."}`;
  const rows = (result.scores || []).map((score, i) => {
    const row = document.createElement("div");
    row.className = "score" + (score.letter === result.answer ? " best" : "");
    row.title = `${options[i]} (log-likelihood ${score.loglik.toFixed(2)})`;
    const letter = document.createElement("span");
    letter.textContent = score.letter;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${Math.max(1, Math.round(100 * score.prob))}%`;
    bar.append(fill);
    const value = document.createElement("span");
    value.textContent = `${(100 * score.prob).toFixed(1)} %`;
    row.append(letter, bar, value);
    return row;
  });
  $("mcq-result").replaceChildren(chosen, ...rows);
}

async function answerMcq(event) {
  event.preventDefault();
  const choices = [...$("mcq-options").querySelectorAll("input")].map((i) => i.value.trim()).filter(Boolean);
  if (choices.length < 2) {
    setStatus("Give at least two options.", true);
    return;
  }
  const request = { question: $("mcq-question").value.trim(), choices, method: "loglik" };
  if ($("mcq-context").checked && $("course").value) {
    Object.assign(request, { course: $("course").value, use_context: true });
  }
  $("mcq-button").disabled = true;
  setStatus("Scoring the options…");
  try {
    const response = await fetch("/v1/mcq", { method: "POST", headers: headers(), body: JSON.stringify(request) });
    if (!response.ok) throw new Error(await errorText(response));
    renderScores(await response.json(), choices);
    setStatus("");
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    $("mcq-button").disabled = false;
  }
}

// --- Wiring ------------------------------------------------------------------------------

function showMode(mode) {
  for (const name of ["ask", "mcq"]) {
    const active = name === mode;
    $(`${name}-panel`).hidden = !active;
    $(`mode-${name}`).classList.toggle("active", active);
    $(`mode-${name}`).setAttribute("aria-selected", String(active));
  }
  setStatus("");
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = localStorage.getItem(KEY_STORAGE) || "";
  $("api-key").addEventListener("change", () => {
    localStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    forgetFiles();
    loadCourses();
  });
  $("ask-form").addEventListener("submit", ask);
  $("new-conversation").addEventListener("click", newConversation);
  $("course").addEventListener("change", newConversation);
  $("mcq-form").addEventListener("submit", answerMcq);
  $("add-option").addEventListener("click", () => addOption());
  $("mode-ask").addEventListener("click", () => showMode("ask"));
  $("mode-mcq").addEventListener("click", () => showMode("mcq"));
  for (let i = 0; i < 4; i += 1) addOption();
  showConversation();
  loadCourses();
});
