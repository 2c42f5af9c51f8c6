// graphrec demo page: browse/search movies, click to like, see recommendations update.
// Plain JS, no build step. All API calls are relative, so the page works under any base path
// (uvicorn at "/", or an API Gateway stage such as "/prod/").
"use strict";

const state = { liked: new Map(), genres: new Set(), runId: null, recsSeq: 0, diversityTouched: false };
const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const res = await fetch(path, { headers: { "content-type": "application/json" }, ...options });
  let body = null;
  try { body = await res.json(); } catch (_) { /* non-JSON body */ }
  if (!res.ok) {
    const msg = (body && body.detail) || `HTTP ${res.status}`;
    throw new Error(msg);
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function chips(genres) {
  return el("div", { class: "chips" }, ...genres.map((g) => el("span", { class: "chip" }, g)));
}

function setStatus(id, text, isError = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("error", isError);
}

function showRun(runId) {
  if (runId && runId !== state.runId) {
    state.runId = runId;
    $("run-id").textContent = runId;
  }
}

function rememberGenres(movies) {
  let added = false;
  for (const m of movies) for (const g of m.genres) if (!state.genres.has(g)) { state.genres.add(g); added = true; }
  if (!added) return;
  const select = $("genre");
  const current = select.value;
  select.replaceChildren(el("option", { value: "" }, "any"),
    ...[...state.genres].sort().map((g) => el("option", { value: g }, g)));
  select.value = current;
}

function renderGrid(movies) {
  const grid = $("grid");
  grid.replaceChildren(...movies.map((m) => {
    const card = el("button", {
      type: "button", class: "card" + (state.liked.has(m.movie_id) ? " liked" : ""),
      "data-movie-id": String(m.movie_id), "aria-pressed": String(state.liked.has(m.movie_id)),
      onclick: () => toggleLike(m, card),
    },
    el("span", { class: "title" }, m.title),
    el("span", { class: "year" }, m.year ? String(m.year) : "year unknown"),
    chips(m.genres),
    el("span", { class: "heart", "aria-hidden": "true" }, "\u2665"));
    return card;
  }));
  rememberGenres(movies);
}

function renderLiked() {
  const list = $("liked");
  list.replaceChildren(...[...state.liked.values()].map((m) => el("li", { "data-movie-id": String(m.movie_id) },
    m.title, el("button", { type: "button", "aria-label": `unlike ${m.title}`, onclick: () => unlike(m.movie_id) }, "\u00d7"))));
  $("liked-count").textContent = String(state.liked.size);
  $("liked-hint").hidden = state.liked.size > 0;
}

function because(r) {
  // "because you liked X, Y": the liked movies that support this recommendation most, strongest first
  const reasons = r.because || [];
  if (!reasons.length) return null;
  return el("div", { class: "because", "data-because": reasons.map((b) => b.movie_id).join(",") },
    "because you liked ", ...reasons.flatMap((b, i) => [i ? ", " : "", el("q", {}, b.title)]));
}

function renderRecs(items) {
  const best = items.length ? Math.max(...items.map((i) => i.score), 1e-9) : 1;
  $("recs").replaceChildren(...items.map((r) => el("li", { "data-movie-id": String(r.movie_id) },
    el("div", {},
      el("div", { class: "title" }, r.title, " ", el("span", { class: "year" }, r.year ? `(${r.year})` : "")),
      chips(r.genres),
      because(r),
      el("div", { class: "bar" }, el("span", { style: `width:${Math.max(0, (r.score / best) * 100).toFixed(1)}%` }))),
    el("div", { class: "score", title: "cosine similarity to the taste it was found for" }, r.score.toFixed(3)))));
}

function showDiversity() {
  $("diversity-value").textContent = Number($("diversity").value).toFixed(1);
}

function toggleLike(movie, card) {
  if (state.liked.has(movie.movie_id)) state.liked.delete(movie.movie_id);
  else state.liked.set(movie.movie_id, movie);
  if (card) {
    card.classList.toggle("liked", state.liked.has(movie.movie_id));
    card.setAttribute("aria-pressed", String(state.liked.has(movie.movie_id)));
  }
  renderLiked();
  refreshRecs();
}

function unlike(movieId) {
  state.liked.delete(movieId);
  const card = document.querySelector(`.card[data-movie-id="${movieId}"]`);
  if (card) { card.classList.remove("liked"); card.setAttribute("aria-pressed", "false"); }
  renderLiked();
  refreshRecs();
}

async function refreshRecs() {
  const seq = ++state.recsSeq;  // only the latest request may update the list
  if (state.liked.size === 0) {
    renderRecs([]);
    setStatus("recs-status", "Like a movie to get recommendations.");
    return;
  }
  setStatus("recs-status", "Thinking\u2026");
  const genre = $("genre").value;
  const body = { liked: [...state.liked.keys()], k: 10 };
  if (genre) body.genres = [genre];
  if (state.diversityTouched) body.diversity = Number($("diversity").value);
  try {
    const res = await api("recommendations", { method: "POST", body: JSON.stringify(body) });
    if (seq !== state.recsSeq) return;
    showRun(res.run_id);
    renderRecs(res.items);
    setStatus("recs-status", res.items.length ? `Based on ${state.liked.size} liked movie(s).` : "No matches for this filter.");
  } catch (err) {
    if (seq === state.recsSeq) setStatus("recs-status", err.message, true);
  }
}

async function loadMovies(query) {
  setStatus("browse-status", "Loading\u2026");
  const path = query ? `movies?q=${encodeURIComponent(query)}&limit=48` : "movies?sample=24";
  try {
    const res = await api(path);
    showRun(res.run_id);
    renderGrid(res.items);
    setStatus("browse-status", query ? `${res.items.length} title(s) match \u201c${query}\u201d.` : "A random selection - shuffle for more.");
  } catch (err) {
    setStatus("browse-status", err.message, true);
  }
}

function init() {
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("search").value.trim();
    loadMovies(q || null);
  });
  $("shuffle").addEventListener("click", () => { $("search").value = ""; loadMovies(null); });
  $("clear").addEventListener("click", () => {
    state.liked.clear();
    document.querySelectorAll(".card.liked").forEach((c) => { c.classList.remove("liked"); c.setAttribute("aria-pressed", "false"); });
    renderLiked();
    refreshRecs();
  });
  $("genre").addEventListener("change", refreshRecs);
  $("diversity").addEventListener("input", showDiversity);
  $("diversity").addEventListener("change", () => { state.diversityTouched = true; showDiversity(); refreshRecs(); });
  renderLiked();
  refreshRecs();
  loadMovies(null);
  api("health").then((h) => {
    showRun(h.run_id);
    // the slider starts at the live run's default diversity until the user moves it
    if (!state.diversityTouched && h.recipe && typeof h.recipe.diversity === "number") {
      $("diversity").value = String(h.recipe.diversity);
      showDiversity();
    }
  }).catch(() => {});
}

document.addEventListener("DOMContentLoaded", init);
