// The Workbook book: display formulas wider than the column are set smaller (down to 75%) before they scroll,
// and full-text search over every page, loaded on first use (minisearch and the index are site files).
(function () {
  function fitFormulas() {
    document.querySelectorAll('.wb-math-display').forEach(function (m) {
      m.style.fontSize = '';
      if (m.scrollWidth > m.clientWidth + 1) m.style.fontSize = Math.max(0.75, m.clientWidth / m.scrollWidth).toFixed(3) + 'em';
    });
  }
  fitFormulas();
  window.addEventListener('resize', fitFormulas);
})();
(function () {
  var input = document.getElementById('wb-search-input');
  var list = document.getElementById('wb-search-results');
  if (!input || !list) return;
  var root = document.body.getAttribute('data-root') || '';
  var engine = null, loading = false, pending = null;

  function load(then) {
    if (engine) { then(); return; }
    pending = then;
    if (loading) return;
    loading = true;
    var left = 2;
    function done() {
      if (--left > 0) return;
      engine = new MiniSearch({ fields: ['title', 'text', 'code'], storeFields: ['title', 'url', 'text'],
        searchOptions: { boost: { title: 3, text: 1.5 }, prefix: true, fuzzy: 0.15, combineWith: 'AND' } });
      engine.addAll(window.wbSearchDocs || []);
      if (pending) pending();
    }
    ['assets/minisearch.js', 'assets/search-index.js'].forEach(function (src) {
      var s = document.createElement('script');
      s.src = root + src;
      s.onload = done;
      document.head.appendChild(s);
    });
  }

  function escape(s) { return s.replace(/[&<>"]/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]; }); }

  function snippet(text, terms) {
    var lower = text.toLowerCase(), at = -1;
    for (var i = 0; i < terms.length && at < 0; i++) at = lower.indexOf(terms[i].toLowerCase());
    var start = Math.max(0, at - 50), piece = text.substr(start, 160);
    var html = escape(piece);
    terms.forEach(function (t) {
      if (t.length < 2) return;
      html = html.replace(new RegExp('(' + t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + ')', 'gi'), '<mark>$1</mark>');
    });
    return (start > 0 ? '… ' : '') + html + (start + 160 < text.length ? ' …' : '');
  }

  function run() {
    var q = input.value.trim();
    if (q.length < 2) { list.innerHTML = ''; return; }
    var hits = engine.search(q).slice(0, 12);
    if (hits.length === 0) { list.innerHTML = '<li>No match.</li>'; return; }
    list.innerHTML = hits.map(function (h) {
      return '<li><a href="' + escape(root + h.url) + '">' + escape(h.title) + '</a><span class="wb-snippet">' + snippet(h.text || '', h.terms) + '</span></li>';
    }).join('');
  }

  input.addEventListener('focus', function () { load(function () {}); });
  input.addEventListener('input', function () { load(run); });
  input.addEventListener('keydown', function (e) { if (e.key === 'Escape') { input.value = ''; list.innerHTML = ''; } });
})();
