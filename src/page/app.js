// The public page: national figures, a search over poll offices, one office's live figures.
// Plain JavaScript, no framework, no third-party host. Every few seconds it asks each
// endpoint again with If-None-Match, so a quiet office costs the server a 304.
"use strict";

const TEXT = {
  fr: {
    skip: "Aller au contenu", title: "Observation citoyenne du scrutin", other: "English",
    share: "Lien à partager", missing: "Ce bureau n'existe pas dans l'annuaire.",
    last_vote: "Dernier vote :", none: "aucun pour l'instant", voters: "Votants par genre et par âge",
    results: "Résultats du dépouillement", flags: "Signaux de qualité", no_flags: "Aucun signal.",
    evidence: "Preuves envoyées (photos, audio, vidéo)", reporter: "Observateur", files: "Fichiers",
    size: "Taille", latest: "Dernier envoi", no_evidence: "Aucune preuve envoyée pour l'instant.",
    find: "Trouver un bureau de vote", search_label: "Nom, code, ville ou arrondissement",
    search: "Chercher", found: "bureau(x) trouvé(s)", not_found: "Aucun bureau trouvé.",
    national: "Au niveau national", flagged: "Bureaux signalés", no_flagged: "Aucun bureau signalé.",
    audit: "Journal d'audit public", hash: "empreinte", verify: "Comment vérifier ?",
    verify_text: "Chaque entrée du journal est chaînée à la précédente par SHA-256 et fait partie d'un journal de transparence signé (le format de Certificate Transparency). Des témoins indépendants — organisations d'observateurs, rédactions, partis — en gardent une copie vérifiée et contresignent ses points de contrôle : si quelqu'un réécrit l'historique, ils en détiennent la preuve. Chaque bureau indique le numéro de la dernière entrée qui fonde ses chiffres ; docs/verify_log.py les recalcule tous à partir du journal.",
    checkpoint: "Point de contrôle signé", entries: "entrées", signed: "signé", ago: "il y a {s} s",
    cosigned: "contresigné par", no_cosigner: "aucun témoin pour l'instant", log_seq: "Chiffres fondés sur le journal jusqu'à l'entrée n°",
    offline: "Serveur injoignable : nouvel essai toutes les {s} s. Les chiffres affichés peuvent être anciens.",
    votes: "Votes", male: "Hommes", female: "Femmes", less_30: "Moins de 30 ans", less_60: "30 à 59 ans",
    more_60: "60 ans et plus", has_torn: "Bulletins déchirés montrés", verified: "Vérifiés par l'électeur",
    disputed: "Contestés", sources: "Observateurs", offices: "Bureaux couverts",
    gender: "Genre", age: "Âge", share_col: "Part", group: "Groupe",
    ballots: "{n} bulletins dépouillés", undecided: "dont {n} indécis", no_ballots: "Aucun bulletin dépouillé.",
    office: "Bureau", at: "à",
    f_votes_exceed_registered: "Plus de votes que d'inscrits",
    f_ballots_exceed_votes: "Plus de bulletins que de votes",
    f_ballots_exceed_registered: "Plus de bulletins que d'inscrits",
    f_fast_voting: "Votes trop rapprochés (plus de 10 en 60 secondes)",
    f_high_dispute_rate: "Beaucoup de votes contestés",
    f_index_gaps: "Numéros de votants manquants",
  },
  en: {
    skip: "Skip to content", title: "Citizen election observation", other: "Français",
    share: "Shareable link", missing: "This poll office is not in the directory.",
    last_vote: "Last vote:", none: "none yet", voters: "Voters by gender and age",
    results: "Count results", flags: "Quality flags", no_flags: "No flags.",
    evidence: "Evidence uploaded (photos, audio, video)", reporter: "Observer", files: "Files",
    size: "Size", latest: "Latest upload", no_evidence: "No evidence uploaded yet.",
    find: "Find a poll office", search_label: "Name, code, city or district",
    search: "Search", found: "office(s) found", not_found: "No poll office found.",
    national: "Nationwide", flagged: "Flagged poll offices", no_flagged: "No poll office is flagged.",
    audit: "Public audit log", hash: "hash", verify: "How to verify?",
    verify_text: "Every entry of the log is chained to the previous one with SHA-256 and belongs to a signed transparency log (the Certificate Transparency format). Independent witnesses — observer organisations, newsrooms, parties — keep a verified copy and cosign its checkpoints: if anyone rewrites history, they hold the proof. Each office shows the number of the last entry its figures rest on; docs/verify_log.py recomputes them all from the log.",
    checkpoint: "Signed checkpoint", entries: "entries", signed: "signed", ago: "{s} s ago",
    cosigned: "cosigned by", no_cosigner: "no witness yet", log_seq: "Figures resting on the log up to entry no.",
    offline: "Server unreachable: retrying every {s} s. The figures shown may be out of date.",
    votes: "Votes", male: "Men", female: "Women", less_30: "Under 30", less_60: "30 to 59",
    more_60: "60 and over", has_torn: "Torn ballots shown", verified: "Verified by the voter",
    disputed: "Disputed", sources: "Observers", offices: "Offices covered",
    gender: "Gender", age: "Age", share_col: "Share", group: "Group",
    ballots: "{n} ballots counted", undecided: "{n} undecided", no_ballots: "No ballot counted yet.",
    office: "Poll office", at: "at",
    f_votes_exceed_registered: "More votes than registered voters",
    f_ballots_exceed_votes: "More ballots than votes",
    f_ballots_exceed_registered: "More ballots than registered voters",
    f_fast_voting: "Votes too close together (more than 10 within 60 seconds)",
    f_high_dispute_rate: "Many disputed votes",
    f_index_gaps: "Missing voter numbers",
  },
};

const params = new URLSearchParams(location.search);
const every = Math.min(60, Math.max(1, Number(params.get("every")) || 5));
const officeMatch = location.pathname.match(/^\/office\/([^/]+)\/?$/);
const officeId = officeMatch ? decodeOr(officeMatch[1]) : null;

function decodeOr(s) {
  try { return decodeURIComponent(s); } catch (e) { return s; }
}

let lang = pickLanguage();
const etags = new Map();
const bodies = new Map();
const parties = new Map();
let offline = false;

function pickLanguage() {
  const saved = localStorage.getItem("ufrecs.lang");
  if (saved === "fr" || saved === "en") return saved;
  for (const l of navigator.languages || [navigator.language || ""]) {
    if (l.startsWith("fr")) return "fr";
    if (l.startsWith("en")) return "en";
  }
  return "fr";
}

function t(key, values) {
  let s = TEXT[lang][key] ?? key;
  for (const [k, v] of Object.entries(values || {})) s = s.replace(`{${k}}`, v);
  return s;
}

const $ = (id) => document.getElementById(id);
const num = (n) => new Intl.NumberFormat(lang).format(n ?? 0);
const pct = (x) => new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 }).format(x || 0);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

// GETs a JSON body, sending the ETag of the last answer: a 304 gives the last body back.
// Returns [body, changed]; throws when the server cannot be reached or fails.
async function get(url) {
  const headers = {};
  if (etags.has(url)) headers["If-None-Match"] = etags.get(url);
  const res = await fetch(url, { headers, cache: "no-store" });
  if (res.status === 304) return [bodies.get(url), false];
  if (res.status >= 500) throw new Error(`${url}: ${res.status}`);
  const body = await res.json();
  if (!res.ok) return [{ error: res.status, ...body }, true];
  const etag = res.headers.get("ETag");
  if (etag) {
    etags.set(url, etag);
    bodies.set(url, body);
  }
  return [body, true];
}

function time(ts) {
  if (!ts) return t("none");
  const d = new Date(ts);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString(lang) : d.toLocaleString(lang);
}

function cards(target, items) {
  target.replaceChildren(...items.map(([key, value]) =>
    el("div", { "data-k": key }, el("dt", { text: t(key) }), el("dd", { text: value }))));
}

function bars(target, body) {
  const total = body.total_ballots || 0;
  target.replaceChildren(...(body.results || []).map((r) => {
    const p = parties.get(r.party_id);
    const name = p ? `${p.party_name || r.party_id}${p.candidate_name ? ` (${p.candidate_name})` : ""}` : r.party_id;
    const fill = el("div", { class: "fill" });
    fill.style.width = `${(r.share * 100).toFixed(2)}%`;
    return el("li", { "data-party": r.party_id },
      el("div", { class: "label" }, el("span", { text: name }),
        el("span", { class: "figure", text: `${num(r.ballots)} · ${pct(r.share)}` })),
      el("div", { class: "track", role: "presentation" }, fill));
  }));
  return total
    ? t("ballots", { n: num(total) }) + (body.undecided_ballots ? `, ${t("undecided", { n: num(body.undecided_ballots) })}` : "")
    : t("no_ballots");
}

function flagText(f) {
  return TEXT[lang][`f_${f.code}`] || f.message || f.code;
}

function renderNation(stats, results) {
  const s = stats.totals || {};
  cards($("nation-totals"), [
    ["votes", num(s.votes)],
    ["offices", `${num(s.covered_poll_offices)} / ${num(s.total_poll_offices)}`],
    ["sources", num(s.total_sources)],
    ["verified", num(s.verified)],
    ["disputed", num(s.disputed)],
    ["has_torn", num(s.has_torn)],
  ]);
  $("nation-ballots").textContent = bars($("nation-results"), results);
}

function renderFlagged(body) {
  const list = body.results || [];
  $("flagged-list").replaceChildren(...(list.length ? list.map((o) =>
    el("li", {}, el("a", { href: `/office/${encodeURIComponent(o.poll_office_id)}`, text: o.poll_office_id }),
      ` — ${o.flags.map(flagText).join(" · ")}`)) : [el("li", { text: t("no_flagged") })]));
}

function renderOffice(stats, results) {
  $("office-missing").hidden = !stats.error;
  $("office-body").hidden = !!stats.error;
  if (stats.error) return;
  const s = stats.totals;
  cards($("office-totals"), [
    ["votes", num(s.votes)], ["has_torn", num(s.has_torn)], ["verified", num(s.verified)],
    ["disputed", num(s.disputed)], ["sources", num(s.sources)],
  ]);
  const last = $("office-last");
  last.textContent = stats.last_vote ? `n° ${stats.last_vote.index}, ${time(stats.last_vote.timestamp)}` : t("none");
  if (stats.last_vote) last.setAttribute("datetime", stats.last_vote.timestamp);
  const row = (group, key) => el("tr", { "data-k": key }, el("th", { scope: "row", text: `${t(group)} — ${t(key)}` }),
    el("td", { class: "n", text: num(s[key]) }), el("td", { class: "n", text: s.votes ? pct(s[key] / s.votes) : "—" }));
  $("office-people").tBodies[0].replaceChildren(
    row("gender", "male"), row("gender", "female"),
    row("age", "less_30"), row("age", "less_60"), row("age", "more_60"));
  $("office-ballots").textContent = bars($("office-results"), results);
  $("office-log").textContent = `${t("log_seq")} ${num(Math.max(stats.log_seq || 0, results.log_seq || 0))}`;
  $("office-flags").replaceChildren(...(stats.flags.length
    ? stats.flags.map((f) => el("li", { "data-code": f.code, text: flagText(f) }))
    : [el("li", { class: "none", text: t("no_flags") })]));
}

// The checkpoint's size (its second line), its age, and the witnesses whose cosignature
// lines follow the log's own signature.
function renderCheckpoint(note, signedAt) {
  const [body, sigs] = note.split("\n\n");
  const [origin, size] = body.split("\n");
  const cosigners = (sigs || "").split("\n").filter(Boolean).map((l) => l.slice(2).split(" ")[0]).filter((n) => n !== origin);
  const age = signedAt ? Math.max(0, Math.round((Date.now() - Date.parse(signedAt)) / 1000)) : null;
  $("checkpoint").textContent = `${t("checkpoint")} — ${num(Number(size))} ${t("entries")}` +
    (age === null ? "" : `, ${t("signed")} ${t("ago").replace("{s}", num(age))}`) +
    `, ${cosigners.length ? `${t("cosigned")} ${cosigners.join(", ")}` : t("no_cosigner")}`;
}

function renderEvidence(body) {
  if (!body || body.s3 || body.error) {
    $("office-evidence-box").hidden = true;
    return;
  }
  $("office-evidence-box").hidden = false;
  const size = (b) => b >= 1e6 ? `${num(Math.round(b / 1e5) / 10)} MB` : `${num(Math.ceil(b / 1e3))} kB`;
  const rows = body.sources.map((s) => el("tr", {}, el("td", { text: s.source }), el("td", { class: "n", text: num(s.objects) }),
    el("td", { class: "n", text: size(s.bytes) }), el("td", { text: time(s.latest_upload) })));
  $("office-evidence").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 4, text: t("no_evidence") }))]));
}

async function loadOfficeName() {
  const [body] = await get(`/api/polloffices/?search=${encodeURIComponent(officeId)}&limit=50`);
  const o = (body.results || []).find((r) => r.identifier === officeId);
  $("office-title").textContent = o ? `${o.name} (${o.identifier})` : `${t("office")} ${officeId}`;
  $("office-place").textContent = o ? [o.city, o.district, o.region].filter(Boolean).join(", ") : "";
  document.title = `${o ? o.name : officeId} — UFRECS`;
}

async function loadParties() {
  let url = "/api/candidateparties/?limit=500";
  for (let page = 0; url && page < 10; page++) {
    const [body] = await get(url);
    for (const p of body.results || []) parties.set(p.identifier, p);
    url = body.next ? new URL(body.next).pathname + new URL(body.next).search : null;
  }
}

// One round of refreshes. Each part renders when one of its bodies changed or when it was
// drawn in another language. The live figures decide whether the server is reachable;
// the evidence (S3 may be down) fails alone.
let lastEvidence = 0;
let evidenceLang = null;
const drawnIn = {};
function render(part, changed, draw) {
  if (changed || drawnIn[part] !== lang) {
    draw();
    drawnIn[part] = lang;
  }
}

async function refresh() {
  const parts = [
    Promise.all([get("/api/pollofficesstats/"), get("/api/pollofficeresults/")])
      .then(([[s, a], [r, b]]) => render("nation", a || b, () => renderNation(s, r))),
    get("/api/flags/").then(([f, changed]) => render("flagged", changed, () => renderFlagged(f))),
    get("/api/audit/head/").then(([h]) => {
      $("audit-seq").textContent = num(h.seq);
      $("audit-hash").textContent = h.hash;
    }),
    fetch("/log/checkpoint", { cache: "no-store" }).then(async (res) => {
      if (res.ok) renderCheckpoint(await res.text(), res.headers.get("Last-Modified"));
    }),
  ];
  if (officeId) {
    const id = encodeURIComponent(officeId);
    parts.push(Promise.all([get(`/api/pollofficesstats/${id}/`), get(`/api/pollofficeresults/${id}/`)])
      .then(([[s, a], [r, b]]) => render("office", a || b, () => renderOffice(s, r))));
    if (Date.now() - lastEvidence > 60000 || evidenceLang !== lang) {
      lastEvidence = Date.now();
      evidenceLang = lang;
      get(`/api/pollofficeevidence/${id}/`).then(([e]) => renderEvidence(e)).catch(() => renderEvidence(null));
    }
  }
  await Promise.all(parts);
}

function setOffline(down) {
  if (down === offline) return;
  offline = down;
  $("status").hidden = !down;
  $("status").textContent = down ? t("offline", { s: every }) : "";
  document.body.dataset.offline = down ? "yes" : "no";
}

async function loop() {
  try {
    if (parties.size === 0) await loadParties();
    if (officeId && !$("office-title").textContent) await loadOfficeName();
    await refresh();
    setOffline(false);
  } catch (e) {
    setOffline(true);
  }
  setTimeout(loop, every * 1000);
}

let searches = 0;
async function search(q) {
  const list = $("search-results");
  const mine = ++searches;
  if (q.trim().length < 2) { list.replaceChildren(); return; }
  try {
    const [body] = await get(`/api/polloffices/?search=${encodeURIComponent(q.trim())}&limit=20`);
    if (mine !== searches) return; // a later search was typed meanwhile
    const items = (body.results || []).map((o) => el("li", {},
      el("a", { href: `/office/${encodeURIComponent(o.identifier)}`, text: o.name }),
      ` (${o.identifier})${o.city ? ` — ${o.city}` : ""}`));
    list.replaceChildren(el("li", { class: "count", text: body.count ? `${num(body.count)} ${t("found")}` : t("not_found") }), ...items);
  } catch (e) {
    setOffline(true);
  }
}

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  const other = lang === "fr" ? "en" : "fr";
  $("lang").textContent = TEXT[lang].other;
  $("lang").setAttribute("lang", other);
  if (offline) $("status").textContent = t("offline", { s: every });
}

document.addEventListener("DOMContentLoaded", () => {
  applyLanguage();
  if (officeId) {
    $("office").hidden = false;
    $("office-link").href = location.pathname;
  }
  $("lang").addEventListener("click", () => {
    lang = lang === "fr" ? "en" : "fr";
    localStorage.setItem("ufrecs.lang", lang);
    applyLanguage();
    if ($("search").value) search($("search").value);
    refresh().then(() => officeId && loadOfficeName()).catch(() => setOffline(true));
  });
  let timer = null;
  $("search").addEventListener("input", (e) => { clearTimeout(timer); timer = setTimeout(() => search(e.target.value), 300); });
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search($("search").value); });
  loop();
});
