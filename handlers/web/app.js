// graphrec demo page: browse/search movies, click to like, see recommendations update, open a movie's details.
// Plain JS, no build step, no external resources. All API calls are relative, so the page works under any
// base path (uvicorn at "/", or an API Gateway stage such as "/prod/").
//
// Two modes:
// - signed out: likes live in this tab only and recommendations come from POST /recommendations;
// - signed in (development sign-in locally, Cognito's hosted UI deployed): every like/unlike is an event
//   (POST /events), the liked list comes from GET /users/me and recommendations from
//   GET /users/me/recommendations, so both survive a reload. The sign-in token is kept in sessionStorage:
//   a reload (and Cognito's redirect back) keeps it, closing the tab forgets it.
"use strict";

const TOKEN_KEY = "graphrec.auth";        // sessionStorage: {"token", "mode", "expires_at"?}
const OAUTH_STATE_KEY = "graphrec.oauth_state";
const GENRE_POOL = 100;                   // signed in + genre filter: filter this many recommendations client-side

const state = {
  liked: new Map(),        // movie_id -> movie, oldest first
  movies: new Map(),       // movie_id -> {movie_id, title, year, genres}: every movie the page has seen
  genres: new Set(),
  runId: null,
  recsSeq: 0,
  diversityTouched: false,
  auth: null,              // {mode: "dev"|"cognito", hosted_ui_url?, client_id?} from GET /auth/config
  session: null,           // {token, mode, expires_at?} while signed in
  me: null,                // GET /users/me while signed in
  events: Promise.resolve(), // events are sent one batch at a time, in click order
  pendingEvents: 0,
  resync: false,           // an event was refused: read the liked list again once the queue is empty
  detail: null,            // the movie shown in the detail view
  detailSeq: 0,
  detailOpener: null,      // element focused before the dialog opened (focus returns there)
};
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(message, status, body, retryAfter) {
    super(message);
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

// ---------------------------------------------------------------------------------------------- API

async function api(path, { method = "GET", body, auth = false } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (auth) {
    if (!state.session) throw new ApiError("Sign in first.", 401);
    headers.authorization = `Bearer ${state.session.token}`;
  }
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let parsed = null;
  try { parsed = await res.json(); } catch (_) { /* empty or non-JSON body */ }
  if (!res.ok) {
    const msg = (parsed && (parsed.detail || parsed.message)) || `HTTP ${res.status}`;
    const err = new ApiError(typeof msg === "string" ? msg : JSON.stringify(msg), res.status, parsed,
      Number(res.headers.get("retry-after")) || null);
    if (auth && res.status === 401) signedOutBecause("Your sign-in has expired or is no longer valid; sign in again.");
    throw err;
  }
  return parsed;
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

// One batch of events; retried once with the same idempotency keys when the network failed (the server
// stores each key once, so a retry after a lost answer never doubles an event).
async function sendEvents(events) {
  const body = { events: events.map((e) => ({ ...e, timestamp: new Date().toISOString(), idempotency_key: newKey() })) };
  try {
    return await api("events", { method: "POST", body, auth: true });
  } catch (err) {
    if (err instanceof ApiError) throw err;  // the server answered: not a network error
    return api("events", { method: "POST", body, auth: true });
  }
}

// ---------------------------------------------------------------------------------------------- DOM helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v);  // CSSOM, allowed under a strict CSP
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

function chips(genres) {
  return el("div", { class: "chips" }, ...(genres || []).map((g) => el("span", { class: "chip" }, g)));
}

function setStatus(id, text, isError = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("error", isError);
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function showRun(runId) {
  if (runId && runId !== state.runId) {
    state.runId = runId;
    $("run-id").textContent = runId;
  }
}

function remember(movies) {
  for (const m of movies) {
    if (!m || typeof m.movie_id !== "number") continue;
    const known = state.movies.get(m.movie_id) || {};
    state.movies.set(m.movie_id, { ...known, movie_id: m.movie_id, title: m.title, year: m.year, genres: m.genres || [] });
  }
  rememberGenres(movies);
}

function rememberGenres(movies) {
  let added = false;
  for (const m of movies) for (const g of (m.genres || [])) if (!state.genres.has(g)) { state.genres.add(g); added = true; }
  if (!added) return;
  const select = $("genre");
  const current = select.value;
  select.replaceChildren(el("option", { value: "" }, "any"),
    ...[...state.genres].sort().map((g) => el("option", { value: g }, g)));
  select.value = current;
}

// A poster stand-in: a gradient card (hue from the movie id) with the title's initials and the year.
function initials(title) {
  const clean = String(title || "?").replace(/\s*\(.*?\)\s*/g, " ").replace(/,\s*(The|A|An|Les|La|Le|Il|Das|Der|Die)$/i, "");
  const words = clean.split(/[\s:\-–]+/).filter((w) => /[A-Za-z0-9]/.test(w) && !/^(the|a|an|of|and|in|on|to)$/i.test(w));
  return (words.slice(0, 2).map((w) => w.replace(/[^A-Za-z0-9]/g, "")[0] || "").join("") || "?").toUpperCase();
}

function placeholder(movie, size = "large") {
  const hue = (Number(movie.movie_id) * 47) % 360;
  const large = size === "large";
  return el("div", {
    class: `poster-placeholder ${size}`, "data-testid": large ? "poster-placeholder" : null,
    role: large ? "img" : null, "aria-label": large ? `No poster for ${movie.title}` : null, "aria-hidden": large ? null : "true",
    style: { backgroundImage: `linear-gradient(150deg, hsl(${hue} 62% 46%), hsl(${(hue + 48) % 360} 58% 24%))` },
  },
  el("span", { class: "initials", "aria-hidden": "true" }, initials(movie.title)),
  large && movie.year ? el("span", { class: "ph-year", "aria-hidden": "true" }, String(movie.year)) : null);
}

function titleButton(movie, ...extra) {
  return el("button", {
    type: "button", class: "title-link", title: "Details", onclick: (e) => openDetail(movie, e.currentTarget),
  }, movie.title, ...extra);
}

// ---------------------------------------------------------------------------------------------- rendering

function renderGrid(movies) {
  remember(movies);
  $("grid").replaceChildren(...movies.map((m) => {
    const liked = state.liked.has(m.movie_id);
    return el("div", { class: "card" + (liked ? " liked" : ""), "data-movie-id": String(m.movie_id) },
      el("button", {
        type: "button", class: "card-like", "aria-pressed": String(liked),
        "aria-label": `${m.title}${m.year ? ` (${m.year})` : ""}: like`, onclick: () => toggleLike(m),
      },
      el("span", { class: "title" }, m.title),
      el("span", { class: "year" }, m.year ? String(m.year) : "year unknown"),
      chips(m.genres),
      el("span", { class: "heart", "aria-hidden": "true" }, "\u2665")),
      el("button", {
        type: "button", class: "info", "aria-label": `Details of ${m.title}`, title: "Details",
        onclick: (e) => openDetail(m, e.currentTarget),
      }, "i"));
  }));
}

function syncLikedMarks(movieId) {
  const liked = state.liked.has(movieId);
  document.querySelectorAll(`.card[data-movie-id="${movieId}"]`).forEach((card) => {
    card.classList.toggle("liked", liked);
    const b = card.querySelector(".card-like");
    if (b) b.setAttribute("aria-pressed", String(liked));
  });
  if (state.detail && state.detail.movie_id === movieId) renderDetailLike();
}

function renderLiked() {
  const list = $("liked");
  list.replaceChildren(...[...state.liked.values()].map((m) => el("li", { "data-movie-id": String(m.movie_id) },
    titleButton(m),
    el("button", { type: "button", class: "unlike", "aria-label": `unlike ${m.title}`, onclick: () => setLiked(m, false) }, "\u00d7"))));
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
  remember(items);
  const best = items.length ? Math.max(...items.map((i) => i.score), 1e-9) : 1;
  $("recs").replaceChildren(...items.map((r) => el("li", { "data-movie-id": String(r.movie_id) },
    el("div", {},
      el("div", { class: "title" }, titleButton(r, r.year ? " " : null, r.year ? el("span", { class: "year" }, `(${r.year})`) : null)),
      chips(r.genres),
      because(r),
      el("div", { class: "bar" }, el("span", { style: { width: `${Math.max(0, (r.score / best) * 100).toFixed(1)}%` } }))),
    el("div", { class: "score", title: "cosine similarity to the taste it was found for" }, r.score.toFixed(3)))));
}

function showDiversity() {
  $("diversity-value").textContent = Number($("diversity").value).toFixed(1);
}

// ---------------------------------------------------------------------------------------------- liking

function toggleLike(movie) {
  setLiked(movie, !state.liked.has(movie.movie_id));
}

// Like or unlike: the page changes at once; signed in, the event is then stored and the recommendations are
// asked again once every pending event is in (a refused event is taken back, and the liked list is read
// again from the server).
function setLiked(movie, liked) {
  const id = movie.movie_id;
  if (liked === state.liked.has(id)) return;
  const m = state.movies.get(id) || movie;
  if (liked) state.liked.set(id, m);
  else state.liked.delete(id);
  syncLikedMarks(id);
  renderLiked();
  if (!state.session) { refreshRecs(); return; }
  record([{ movie_id: id, type: liked ? "like" : "unlike" }], new Map([[id, m]]));
}

function record(events, movies) {
  state.pendingEvents += 1;
  state.recsSeq += 1;  // answers already on their way describe the old likes: drop them
  setStatus("recs-status", "Saving\u2026");
  const session = state.session;
  state.events = state.events.then(async () => {
    if (state.session !== session) return;  // signed out meanwhile
    try {
      await sendEvents(events);
      if ($("account-status").classList.contains("error")) setStatus("account-status", "");
    } catch (err) {
      if (state.session !== session) return;
      for (const e of events) {  // take this click back
        if (e.type === "like") state.liked.delete(e.movie_id);
        else state.liked.set(e.movie_id, movies.get(e.movie_id));
        syncLikedMarks(e.movie_id);
      }
      renderLiked();
      state.resync = true;
      const msg = err.status === 429
        ? `Too many clicks at once - try again${err.retryAfter ? ` in ${err.retryAfter} s` : " shortly"}.`
        : `Not saved: ${err.message}`;
      setStatus("account-status", msg, true);
    }
  }).finally(() => {
    if (state.session !== session) return;  // signing out reset the count
    state.pendingEvents -= 1;
    if (state.pendingEvents > 0) return;
    if (!state.resync) { refreshRecs(); return; }
    state.resync = false;
    loadMe().catch(() => refreshRecs());  // the server's liked list is the truth
  });
}

function clearLikes() {
  if (!state.liked.size) return;
  const before = new Map(state.liked);
  const ids = [...before.keys()];
  state.liked.clear();
  ids.forEach(syncLikedMarks);
  renderLiked();
  if (!state.session) { refreshRecs(); return; }
  for (let i = 0; i < ids.length; i += 100) {  // at most 100 events per batch
    record(ids.slice(i, i + 100).map((movie_id) => ({ movie_id, type: "unlike" })), before);
  }
}

// ---------------------------------------------------------------------------------------------- recommendations

function basedOn() {
  const claimed = state.me && state.me.claimed;
  if (!state.liked.size && claimed) return "Based on your MovieLens history.";
  return `Based on ${state.liked.size} liked movie(s)${claimed ? " and your MovieLens history" : ""}.`;
}

async function refreshRecs() {
  const seq = ++state.recsSeq;  // only the latest request may update the list
  const genre = $("genre").value;
  const diversity = state.diversityTouched ? Number($("diversity").value) : null;
  if (!state.session && state.liked.size === 0) {
    renderRecs([]);
    setStatus("recs-status", "Like a movie to get recommendations.");
    return;
  }
  setStatus("recs-status", "Thinking\u2026");
  try {
    let res;
    let pool = null;
    if (state.session) {
      // GET /users/me/recommendations has no genre filter: with a genre, ask for a larger list and keep
      // the best 10 of that genre (the person's whole history still counts, claimed MovieLens user included).
      const k = genre ? GENRE_POOL : 10;
      const q = new URLSearchParams({ k: String(k) });
      if (diversity !== null) q.set("diversity", String(diversity));
      res = await api(`users/me/recommendations?${q}`, { auth: true });
      if (genre) {
        pool = res.items.length;
        res = { ...res, items: res.items.filter((r) => (r.genres || []).includes(genre)).slice(0, 10) };
      }
    } else {
      const body = { liked: [...state.liked.keys()], k: 10 };
      if (genre) body.genres = [genre];
      if (diversity !== null) body.diversity = diversity;
      res = await api("recommendations", { method: "POST", body });
    }
    if (seq !== state.recsSeq) return;
    showRun(res.run_id);
    renderRecs(res.items);
    if (!res.items.length && state.session && !genre) {
      setStatus("recs-status", state.liked.size ? "Nothing to recommend yet." : "Like a movie to get recommendations.");
    } else if (!res.items.length) {
      setStatus("recs-status", pool !== null ? `None of your top ${pool} is ${genre}.` : "No matches for this filter.");
    } else {
      setStatus("recs-status", basedOn());
    }
  } catch (err) {
    if (seq === state.recsSeq) setStatus("recs-status", err.message, true);
  }
}

// ---------------------------------------------------------------------------------------------- browsing

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

// ---------------------------------------------------------------------------------------------- detail view

function minutes(n) {
  if (!n) return null;
  const h = Math.floor(n / 60);
  return h ? `${h} h ${n % 60} min` : `${n} min`;
}

function renderDetail(movie, details) {
  const d = details || {};
  const poster = $("detail-poster");
  if (d.poster_url && /^https?:\/\//i.test(d.poster_url)) {
    const img = el("img", { src: d.poster_url, alt: `Poster of ${movie.title}${movie.year ? ` (${movie.year})` : ""}`, loading: "lazy" });
    img.addEventListener("error", () => poster.replaceChildren(placeholder(movie)), { once: true });
    poster.replaceChildren(img);
  } else {
    poster.replaceChildren(placeholder(movie));
  }
  $("detail-title").textContent = movie.title;
  $("detail-facts").textContent = [movie.year ? String(movie.year) : "year unknown", minutes(d.runtime_minutes)].filter(Boolean).join(" \u00b7 ");
  $("detail-genres").replaceChildren(chips(movie.genres));
  $("detail-plot").textContent = d.plot || (details === undefined ? "" : "No plot summary is known for this movie yet.");
  $("detail-plot").classList.toggle("muted", !d.plot);
  const credits = [];
  if (d.director) credits.push(el("dt", {}, "Director"), el("dd", {}, d.director));
  if (Array.isArray(d.cast) && d.cast.length) credits.push(el("dt", {}, "Cast"), el("dd", {}, d.cast.join(", ")));
  if (d.source) credits.push(el("dt", {}, "Source"), el("dd", { class: "muted" }, d.source === "omdb" ? "OMDb" : d.source));
  $("detail-credits").replaceChildren(...credits);
  renderDetailLike();
}

function renderDetailLike() {
  const b = $("detail-like");
  const liked = state.detail && state.liked.has(state.detail.movie_id);
  b.setAttribute("aria-pressed", String(!!liked));
  b.classList.toggle("secondary", !!liked);
  b.textContent = liked ? "\u2665 Liked - unlike" : "\u2661 Like";
}

function renderSimilar(items) {
  remember(items);
  $("similar").replaceChildren(...items.map((m) => el("li", { "data-movie-id": String(m.movie_id) },
    el("button", { type: "button", class: "similar-card", title: m.title, onclick: () => { showDetail(m); $("detail-title").focus(); } },
      placeholder(m, "small"),
      el("span", { class: "similar-title" }, m.title),
      el("span", { class: "year" }, m.year ? String(m.year) : "")))));
}

async function showDetail(movie) {
  const seq = ++state.detailSeq;
  const known = state.movies.get(movie.movie_id) || movie;
  state.detail = known;
  renderDetail(known, undefined);
  renderSimilar([]);
  setStatus("detail-status", "");
  setStatus("similar-status", "Loading\u2026");
  $("detail").scrollTop = 0;
  api(`movies/${movie.movie_id}`).then((m) => {
    if (seq !== state.detailSeq) return;
    remember([m]);
    state.detail = state.movies.get(m.movie_id);
    renderDetail(state.detail, m.details || null);
  }).catch((err) => {
    if (seq !== state.detailSeq) return;
    renderDetail(known, null);
    setStatus("detail-status", `Details unavailable: ${err.message}`, true);
  });
  api(`movies/${movie.movie_id}/similar?k=10`).then((res) => {
    if (seq !== state.detailSeq) return;
    renderSimilar(res.items);
    setStatus("similar-status", res.items.length ? "" : "No similar movies found.");
  }).catch((err) => {
    if (seq === state.detailSeq) setStatus("similar-status", err.message, true);
  });
}

function openDetail(movie, opener) {
  const dialog = $("detail");
  if (!dialog.open) {
    state.detailOpener = opener || document.activeElement;
    dialog.showModal();
  }
  showDetail(movie);
  $("detail-close").focus();
}

function closeDetail() {
  const dialog = $("detail");
  if (dialog.open) dialog.close();
}

function onDetailClosed() {
  state.detailSeq += 1;
  state.detail = null;
  const back = state.detailOpener;
  state.detailOpener = null;
  if (back && back.isConnected) back.focus();
}

// ---------------------------------------------------------------------------------------------- signing in

function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
    if (!s || typeof s.token !== "string") return null;
    if (s.expires_at && Date.now() > s.expires_at) { sessionStorage.removeItem(TOKEN_KEY); return null; }
    return s;
  } catch (_) {
    return null;
  }
}

function saveSession(session) {
  if (session) sessionStorage.setItem(TOKEN_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(TOKEN_KEY);
}

// Cognito's hosted UI sends the person back with "#id_token=...&state=..." (implicit flow): keep the id token,
// check the state we sent, and take the fragment out of the address bar.
function takeTokenFromFragment() {
  if (!location.hash || location.hash.length < 2) return;
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.has("id_token") && !params.has("error")) return;
  history.replaceState(null, "", location.pathname + location.search);
  const expected = sessionStorage.getItem(OAUTH_STATE_KEY);
  sessionStorage.removeItem(OAUTH_STATE_KEY);
  if (params.has("error")) {
    setStatus("account-status", `Sign-in failed: ${params.get("error_description") || params.get("error")}`, true);
    return;
  }
  if (!expected || params.get("state") !== expected) {
    setStatus("account-status", "Sign-in answer did not match this page's request; sign in again.", true);
    return;
  }
  const seconds = Number(params.get("expires_in")) || 3600;
  saveSession({ token: params.get("id_token"), mode: "cognito", expires_at: Date.now() + seconds * 1000 });
}

function pageUrl() {
  return location.origin + location.pathname;
}

function cognitoSignIn() {
  const a = state.auth;
  const nonce = newKey();
  sessionStorage.setItem(OAUTH_STATE_KEY, nonce);
  const q = new URLSearchParams({ response_type: "token", client_id: a.client_id, redirect_uri: pageUrl(), state: nonce });
  location.assign(`${a.hosted_ui_url.replace(/\/$/, "")}/oauth2/authorize?${q}&scope=openid+email`);
}

function renderAccount() {
  const me = state.me;
  $("signed-in").hidden = !me;
  $("signed-out").hidden = !!me;
  $("signin-open").hidden = !!me || !state.auth;
  if (me) {
    $("signin-form").hidden = true;
    const name = me.name || "signed in";
    $("who-name").textContent = name;
    $("who-avatar").textContent = initials(name).slice(0, 1);
    $("who-id").textContent = me.user_id == null ? "new" : String(me.user_id);  // no id before the first like
    $("who-claimed").textContent = me.claimed ? " \u00b7 MovieLens history" : "";
  }
  $("anon-note").textContent = state.auth ? "Signed out: likes stay in this tab." : "Likes stay in this tab.";
  $("clear").textContent = me ? "unlike all" : "clear";
}

async function missingTitles(ids) {
  const missing = ids.filter((id) => !state.movies.has(id));
  await Promise.all(missing.map((id) => api(`movies/${id}`).then((m) => remember([m])).catch(() => {
    state.movies.set(id, { movie_id: id, title: `movie ${id}`, year: null, genres: [] });
  })));
}

// Signed in: the liked list (and so the recommendations) is the server's.
async function loadMe() {
  const me = await api("users/me", { auth: true });
  await missingTitles(me.liked);
  state.me = me;
  state.liked = new Map(me.liked.map((id) => [id, state.movies.get(id)]));
  renderAccount();
  document.querySelectorAll(".card").forEach((c) => syncLikedMarks(Number(c.dataset.movieId)));
  renderLiked();
  refreshRecs();
}

function resetToAnonymous() {
  state.session = null;
  state.me = null;
  state.events = Promise.resolve();
  state.pendingEvents = 0;
  state.resync = false;
  saveSession(null);
  const ids = [...state.liked.keys()];
  state.liked.clear();
  ids.forEach(syncLikedMarks);
  renderAccount();
  renderLiked();
  refreshRecs();
}

function signedOutBecause(message) {
  if (!state.session) return;
  resetToAnonymous();
  setStatus("account-status", message, true);
  if (state.auth && state.auth.mode === "dev") openSignInForm();
}

function openSignInForm() {
  if (state.auth && state.auth.mode === "cognito") { cognitoSignIn(); return; }
  $("signin-form").hidden = false;
  setStatus("signin-status", "");
  $("signin-name").focus();
}

function closeSignInForm() {
  $("signin-form").hidden = true;
  $("signin-open").focus();
}

async function devSignIn(e) {
  e.preventDefault();
  const name = $("signin-name").value.trim();
  const claim = $("signin-claim").value.trim();
  const body = { name };
  if (claim) body.claim_user_id = Number(claim);
  setStatus("signin-status", "Signing in\u2026");
  try {
    const res = await api("auth/dev/sign-in", { method: "POST", body });
    state.session = { token: res.token, mode: "dev" };
    saveSession(state.session);
    await loadMe();
    setStatus("account-status", "");
    $("signin-form").reset();
  } catch (err) {
    if (!state.me) { state.session = null; saveSession(null); }
    setStatus("signin-status", err.message, true);
  }
}

function signOut() {
  const auth = state.auth;
  const wasCognito = state.session && state.session.mode === "cognito";
  resetToAnonymous();
  setStatus("account-status", "Signed out.");
  if (wasCognito && auth && auth.hosted_ui_url) {
    // also end the hosted UI's session, or the next "Sign in" would silently sign the same person in
    const q = new URLSearchParams({ client_id: auth.client_id, logout_uri: pageUrl() });
    location.assign(`${auth.hosted_ui_url.replace(/\/$/, "")}/logout?${q}`);
  }
}

async function forgetMe() {
  if (!state.me) return;
  if (!window.confirm("Forget me: delete your likes, events and profile on this server, and sign out?")) return;
  try {
    await state.events;  // let clicks already sent finish first, so nothing arrives after the deletion
    await api("users/me", { method: "DELETE", auth: true });
    resetToAnonymous();
    setStatus("account-status", "Done: everything this server knew about you was deleted, and you are signed out.");
  } catch (err) {
    setStatus("account-status", `Could not forget you: ${err.message}`, true);
  }
}

async function initAuth() {
  takeTokenFromFragment();
  try {
    state.auth = await api("auth/config");
  } catch (_) {
    state.auth = null;  // an API without sign-in: the page stays anonymous
  }
  renderAccount();
  const session = loadSession();
  if (!session || !state.auth || session.mode !== state.auth.mode) { saveSession(null); refreshRecs(); return; }
  state.session = session;
  try {
    await loadMe();
  } catch (err) {
    if (state.session) {  // not a 401 (that already signed out): keep the token, say what went wrong
      setStatus("account-status", `Could not load your likes: ${err.message}`, true);
      refreshRecs();
    }
  }
}

// ---------------------------------------------------------------------------------------------- start

function init() {
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("search").value.trim();
    loadMovies(q || null);
  });
  $("shuffle").addEventListener("click", () => { $("search").value = ""; loadMovies(null); });
  $("clear").addEventListener("click", clearLikes);
  $("genre").addEventListener("change", refreshRecs);
  $("diversity").addEventListener("input", showDiversity);
  $("diversity").addEventListener("change", () => { state.diversityTouched = true; showDiversity(); refreshRecs(); });

  $("signin-open").addEventListener("click", openSignInForm);
  $("signin-cancel").addEventListener("click", closeSignInForm);
  $("signin-form").addEventListener("submit", devSignIn);
  $("signin-form").addEventListener("keydown", (e) => { if (e.key === "Escape") closeSignInForm(); });
  $("signout").addEventListener("click", signOut);
  $("forget").addEventListener("click", forgetMe);

  const dialog = $("detail");
  $("detail-close").addEventListener("click", closeDetail);
  dialog.addEventListener("close", onDetailClosed);
  dialog.addEventListener("click", (e) => { if (e.target === dialog) closeDetail(); });  // the backdrop
  $("detail-like").addEventListener("click", () => { if (state.detail) toggleLike(state.detail); });

  renderLiked();
  renderRecs([]);
  loadMovies(null);
  initAuth();
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
