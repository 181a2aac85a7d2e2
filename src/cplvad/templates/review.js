(function () {
  'use strict';
  const page = JSON.parse(document.getElementById('page-data').textContent);
  const cls = document.getElementById('class-filter'), thr = document.getElementById('threshold'),
    val = document.getElementById('threshold-value'), shown = document.getElementById('shown-count');
  const served = location.protocol === 'http:' || location.protocol === 'https:';

  // ------------------------------------------------------------------------------------------ filters
  function apply() {
    const c = cls.value, t = parseFloat(thr.value); let n = 0;
    val.textContent = t.toFixed(2);
    document.querySelectorAll('.video').forEach(v => {
      const classes = JSON.parse(v.dataset.classes), peak = parseFloat(v.dataset.peak);
      const byClass = c === '*' || (c === '' ? classes.length === 0 : classes.includes(c));
      const ok = byClass && peak >= t; v.classList.toggle('hidden', !ok); if (ok) n++;
      v.querySelectorAll('.event').forEach(e => e.classList.toggle('hidden', parseFloat(e.dataset.score) < t));
      v.querySelectorAll('.filter-threshold').forEach(l => { const y = 100 * (1 - t); l.setAttribute('y1', y); l.setAttribute('y2', y); });
    });
    shown.textContent = n;
  }

  // ------------------------------------------------------------------------------------------- player
  function jump(v, i) {
    const row = v.querySelector('.event[data-event="' + i + '"]'), p = v.querySelector('.player');
    if (!row || !p || row.dataset.start === '') return;
    const t = parseFloat(row.dataset.start); p.dataset.seek = t;
    const go = () => { p.currentTime = t; p.play().catch(() => {}); };
    if (p.readyState >= 1) go(); else { p.preload = 'metadata'; p.addEventListener('loadedmetadata', go, { once: true }); p.load(); }
  }

  // ----------------------------------------------------------------------------------------- verdicts
  // state: {video key: {video: 'reviewed' | 'missed' | undefined, missed_class, events: {index: {verdict, class}}}},
  // kept in localStorage under the page's prediction folder (file:// pages share one origin).
  const storeKey = 'cplvad-verdicts:' + page.predictions;
  let state = {};
  try { state = JSON.parse(localStorage.getItem(storeKey)) || {}; } catch (e) { state = {}; }
  const status = document.getElementById('save-status');

  function entry(v) {
    const key = page.videos[v.dataset.index].key;
    return state[key] || (state[key] = { events: {} });
  }
  function prune() {
    for (const key of Object.keys(state)) {
      const s = state[key];
      if (!s.video && !Object.keys(s.events || {}).length) delete state[key];
    }
  }
  function save() {
    prune();
    try { localStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) { status.textContent = 'not kept: ' + e; }
    render();
    if (served) push();
  }
  function render() {
    let count = 0;
    document.querySelectorAll('.video').forEach(v => {
      const s = state[page.videos[v.dataset.index].key] || { events: {} };
      v.classList.toggle('reviewed', s.video === 'reviewed');
      v.classList.toggle('missed', s.video === 'missed');
      v.querySelectorAll('.video-verdict-button').forEach(b => b.classList.toggle('active', b.dataset.verdict === s.video));
      if (s.video === 'missed' && s.missed_class) v.querySelector('.missed-class').value = s.missed_class;
      if (s.video) count++;
      v.querySelectorAll('.event').forEach(row => {
        const e = (s.events || {})[row.dataset.event];
        row.classList.toggle('verdict-confirmed', !!e && e.verdict === 'confirmed');
        row.classList.toggle('verdict-false_alarm', !!e && e.verdict === 'false_alarm');
        row.querySelectorAll('.event-verdict').forEach(b => b.classList.toggle('active', !!e && b.dataset.verdict === e.verdict));
        if (e && e.verdict === 'confirmed') row.querySelector('.event-class').value = e.class;
        if (e) count++;
      });
    });
    document.getElementById('verdict-count').textContent = count + (count === 1 ? ' verdict' : ' verdicts');
  }

  function exported() {
    const videos = [];
    page.videos.forEach(info => {
      const s = state[info.key];
      if (!s) return;
      const events = Object.keys(s.events || {}).map(Number).sort((a, b) => a - b).map(i => {
        const e = s.events[i], ev = info.events[i];
        return {
          event: i, start_frame: ev.start_frame, end_frame: ev.end_frame, predicted_class: ev.class,
          verdict: e.verdict, class: e.verdict === 'confirmed' ? e.class : null
        };
      });
      videos.push({
        key: info.key, name: info.name, input: info.input, model_version: info.model_version,
        video: s.video || null, missed_class: s.video === 'missed' ? s.missed_class : null, events: events
      });
    });
    return {
      schema: 'cplvad-verdicts/1', predictions: page.predictions, title: page.title,
      exported_at: new Date().toISOString(), videos: videos
    };
  }
  function imported(doc) {
    const next = {};
    (doc.videos || []).forEach(v => {
      const s = { events: {} };
      if (v.video) { s.video = v.video; if (v.missed_class) s.missed_class = v.missed_class; }
      (v.events || []).forEach(e => { s.events[e.event] = { verdict: e.verdict, class: e.class }; });
      next[v.key] = s;
    });
    return next;
  }
  function download() {
    const blob = new Blob([JSON.stringify(exported(), null, 2) + '\n'], { type: 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob); a.download = 'verdicts.json';
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  // `cplvad report --serve`: the verdicts are also saved in OUT/verdicts.json (the static page works without)
  let pushing = null;
  function push() {
    clearTimeout(pushing);
    pushing = setTimeout(() => {
      fetch('verdicts', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(exported()) })
        .then(r => { status.textContent = r.ok ? 'saved to ' + page.predictions + '/verdicts.json' : 'not saved on the server (HTTP ' + r.status + '): export them'; })
        .catch(() => { status.textContent = 'no server: export the verdicts'; });
    }, 200);
  }
  if (served) {
    fetch('verdicts').then(r => r.ok ? r.json() : null).then(doc => {
      if (doc && doc.schema === 'cplvad-verdicts/1') { state = Object.assign(imported(doc), state); save(); }
    }).catch(() => {});
  }

  document.addEventListener('click', ev => {
    const target = ev.target.closest('.jump,.span,.event-verdict,.video-verdict-button');
    if (!target) return;
    const v = target.closest('.video');
    if (target.classList.contains('event-verdict')) {
      const row = target.closest('.event'), s = entry(v), i = row.dataset.event, verdict = target.dataset.verdict;
      if (s.events[i] && s.events[i].verdict === verdict) delete s.events[i];
      else s.events[i] = { verdict: verdict, class: verdict === 'confirmed' ? row.querySelector('.event-class').value : null };
      save();
    } else if (target.classList.contains('video-verdict-button')) {
      const s = entry(v), verdict = target.dataset.verdict;
      if (s.video === verdict) { delete s.video; delete s.missed_class; }
      else { s.video = verdict; if (verdict === 'missed') s.missed_class = v.querySelector('.missed-class').value; else delete s.missed_class; }
      save();
    } else {
      const i = target.dataset.event !== undefined ? target.dataset.event : target.closest('.event').dataset.event;
      jump(v, i);
    }
  });
  document.addEventListener('change', ev => {
    const v = ev.target.closest('.video');
    if (!v) return;
    const s = state[page.videos[v.dataset.index].key];
    if (!s) return;
    if (ev.target.classList.contains('event-class')) {
      const e = s.events[ev.target.closest('.event').dataset.event];
      if (e && e.verdict === 'confirmed') { e.class = ev.target.value; save(); }
    } else if (ev.target.classList.contains('missed-class') && s.video === 'missed') {
      s.missed_class = ev.target.value; save();
    }
  });
  document.getElementById('export-verdicts').addEventListener('click', download);
  document.getElementById('clear-verdicts').addEventListener('click', () => {
    if (confirm('Forget every verdict of this page?')) { state = {}; save(); }
  });
  cls.addEventListener('change', apply); thr.addEventListener('input', apply);
  apply(); render();
})();
