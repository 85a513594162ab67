/*
 * pipeline_view.js: the SPG pipeline of one image (or of several runs on it) in one panel,
 * thresholded in the browser. A Streamlit v1 custom component without streamlit-component-lib:
 * the iframe says "streamlit:componentReady", Streamlit posts "streamlit:render" with the args
 * (spg_app/pipeline_view/__init__.py: build_args), the component posts
 * "streamlit:setFrameHeight" and, once per release, "streamlit:setComponentValue".
 *
 * While a thumb moves ('input' events) nothing leaves the iframe: the stage's seeds (or the box,
 * or the overlays) are recomputed with spg_compute.js and redrawn once per animation frame.
 * Each redraw's time is recorded in window.__spgStats for benchmarks/bench_drag.py.
 */
(function () {
  "use strict";

  var S = window.SPGCompute;
  var root = document.getElementById("root");
  var STAGE_ORDER = ["mask_a", "mask_b2", "mask_fuse"];
  var MAP_SHORT = {
    attention: ["A4", "attention map"], b2: ["B2", "branch"], b1: ["B1", "branch"],
    fused: ["Fused", "(B1 + B2) / 2"], c: ["SPG-C", "branch"],
  };
  var LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  var GT = "#e60000", PRED = "#00c800";
  var COLOURS = null;  // Uint32Array: fg, bg, ignored as RGBA words

  var stats = window.__spgStats = {redraws: 0, times_ms: [], releases: 0, renders: 0, last: null};

  var st = {
    dataKey: null, data: null, runs: [], stages: {},
    values: null,        // {thresholds: {stage: [δ_l, δ_h]}, tau, alpha}: what the controls hold
    argsJson: null,      // the values Python passed last (canonical JSON)
    sent: [],            // canonical JSON of the values released and not yet echoed back by the caller
    dirty: {stages: {}, box: false, maps: false}, raf: 0,
    dragging: false, views: null, controls: {}, loading: null, width: 0,
  };

  // ------------------------------------------------------------------ Streamlit protocol
  function post(type, data) {
    window.parent.postMessage(Object.assign({isStreamlitMessage: true, type: type}, data || {}), "*");
  }

  var lastHeight = -1;
  function setFrameHeight() {
    var height = Math.ceil(root.getBoundingClientRect().height) + 2;
    if (height !== lastHeight) {
      lastHeight = height;
      post("streamlit:setFrameHeight", {height: height});
    }
  }

  window.addEventListener("message", function (event) {
    var msg = event.data;
    if (!msg || msg.type !== "streamlit:render") return;
    stats.renders++;
    try {
      onRender(msg.args || {});
    } catch (error) {
      showError(error);
    }
  });

  function showError(error) {
    root.innerHTML = "";
    var p = el("p", "error", "The pipeline view failed: " + (error && error.message ? error.message : error));
    root.appendChild(p);
    setFrameHeight();
    if (window.console) console.error(error);
  }

  // ------------------------------------------------------------------ values
  function canon(values) {
    var t = {};
    STAGE_ORDER.forEach(function (stage) {
      var pair = values.thresholds[stage];
      t[stage] = [Number(pair[0]), Number(pair[1])];
    });
    return JSON.stringify({thresholds: t, tau: Number(values.tau), alpha: Number(values.alpha)});
  }

  function cloneValues(values) {
    return JSON.parse(canon(values));
  }

  function onRender(args) {
    if (!args.values || !args.data) return;
    var json = canon(args.values);
    // The echo of a release (the caller stored the values and passes them back) changes nothing;
    // other values that differ from the previous call's are the caller's (a preset reset, a deep
    // link): show them. Otherwise keep what the controls hold.
    var echo = st.sent.indexOf(json), adopt;
    if (echo >= 0) {
      st.sent.splice(0, echo + 1);  // this release and any older ones are answered
      adopt = false;
    } else {
      adopt = st.values === null || (json !== st.argsJson && !st.dragging);
    }
    st.argsJson = json;
    if (adopt) st.values = cloneValues(args.values);
    if (args.data_key !== st.dataKey) {
      st.dataKey = args.data_key;
      var key = args.data_key;
      st.loading = loadData(args.data).then(function (runs) {
        if (key !== st.dataKey) return;
        st.data = args.data;
        st.runs = runs;
        st.stages = {};
        args.data.stages.forEach(function (s) { st.stages[s.mask] = s; });
        COLOURS = colourWords();
        build();
        drawAll();
      }).catch(showError);
    } else if (adopt && st.views) {
      syncControls();
      drawAll();
    }
  }

  // ------------------------------------------------------------------ decoding
  function bytesOf(b64) {
    var text = atob(b64), n = text.length, out = new Uint8Array(n);
    for (var i = 0; i < n; i++) out[i] = text.charCodeAt(i);
    return out;
  }

  function floatsOf(b64) {
    var bytes = bytesOf(b64);
    if (LITTLE_ENDIAN) return new Float32Array(bytes.buffer, 0, bytes.length >> 2);
    var view = new DataView(bytes.buffer), out = new Float32Array(bytes.length >> 2);
    for (var i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }

  function bitsOf(b64, count) {
    var packed = bytesOf(b64), out = new Uint8Array(count);
    for (var i = 0; i < count; i++) out[i] = (packed[i >> 3] >> (7 - (i & 7))) & 1;
    return out;
  }

  function pixelsOf(url, width, height) {
    return new Promise(function (resolve, reject) {
      var image = new Image();
      image.onload = function () {
        var canvas = document.createElement("canvas");
        canvas.width = width;
        canvas.height = height;
        var ctx = canvas.getContext("2d", {willReadFrequently: true});
        ctx.drawImage(image, 0, 0, width, height);
        resolve(ctx.getImageData(0, 0, width, height).data);
      };
      image.onerror = function () { reject(new Error("the image could not be decoded")); };
      image.src = url;
    });
  }

  function loadData(data) {
    return Promise.all(data.runs.map(function (p) {
      var n = p.width * p.height;
      var run = {
        label: p.label, w: p.width, h: p.height, precedence: p.precedence, maps: {},
        gtBoxes: p.gt_boxes, object: p.object_region ? bitsOf(p.object_region, n) : null,
        gtMask: p.gt_mask ? bitsOf(p.gt_mask, n) : null, max: {},
      };
      Object.keys(p.maps).forEach(function (name) {
        var map = floatsOf(p.maps[name]);
        if (map.length !== n) throw new Error("map " + name + " has " + map.length + " values, not " + n);
        run.maps[name] = map;
        var max = -Infinity;
        for (var i = 0; i < n; i++) if (map[i] > max) max = map[i];
        run.max[name] = max;
      });
      return pixelsOf(p.image, p.width, p.height).then(function (pixels) { run.pixels = pixels; return run; });
    }));
  }

  function colourWords() {
    // spg_core.viz.mask_image: foreground white, background black, ignored grey 128.
    var bytes = new Uint8ClampedArray([255, 255, 255, 255, 0, 0, 0, 255, 128, 128, 128, 255]);
    return new Uint32Array(bytes.buffer);
  }

  // ------------------------------------------------------------------ DOM helpers
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function caption(bold, rest) {
    var cap = el("div", "cap");
    cap.appendChild(el("b", null, bold));
    if (rest) cap.appendChild(el("span", null, rest));
    return cap;
  }

  function fit(run, side) {
    if (run.w >= run.h) return [side, Math.max(1, Math.round(side * run.h / run.w))];
    return [Math.max(1, Math.round(side * run.w / run.h)), side];
  }

  /* A picture: a canvas at the map's own resolution (`base`) under one at display resolution
   * for lines (`over`: GT contour and boxes). Role img with the given accessible name. */
  function picture(run, side, name, exact, heat) {
    var size = fit(run, side);
    var pic = el("div", "pic");
    pic.setAttribute("role", "img");
    pic.setAttribute("aria-label", name);
    pic.style.width = size[0] + "px";
    pic.style.height = size[1] + "px";
    var base = el("canvas", "base" + (exact ? " exact" : ""));
    base.width = run.w;
    base.height = run.h;
    var over = el("canvas", "over");
    var dpr = window.devicePixelRatio || 1;
    over.width = Math.round(size[0] * dpr);
    over.height = Math.round(size[1] * dpr);
    pic.appendChild(base);
    var heatCanvas = null;
    if (heat) {  // the map's colours over the image; the opacity is the canvas's CSS opacity
      heatCanvas = el("canvas", "heat");
      heatCanvas.width = run.w;
      heatCanvas.height = run.h;
      pic.appendChild(heatCanvas);
    }
    pic.appendChild(over);
    var ctx = base.getContext("2d");
    return {el: pic, base: base, over: over, heat: heatCanvas, ctx: ctx, image: ctx.createImageData(run.w, run.h),
            scale: [over.width / run.w, over.height / run.h], dpr: dpr};
  }

  function missing(run, side, note, name) {
    var size = fit(run, side);
    var pic = el("div", "pic missing");
    pic.setAttribute("role", "img");
    pic.setAttribute("aria-label", name + " (" + note + ")");
    pic.style.width = size[0] + "px";
    pic.style.height = size[1] + "px";
    pic.appendChild(el("div", "note", note));
    return {el: pic, missing: true};
  }

  function slider(label, name, value, disabled, onInput) {
    var row = el("label", "ctl");
    row.appendChild(el("span", "name", label));
    var input = el("input");
    input.type = "range";
    input.min = "0";
    input.max = "1";
    input.step = "0.01";
    input.value = String(value);
    input.setAttribute("aria-label", name);
    input.disabled = !!disabled;
    var out = el("output", null, fmt2(value));
    row.appendChild(input);
    row.appendChild(out);
    input.addEventListener("pointerdown", function () { st.dragging = true; });
    input.addEventListener("input", function () { onInput(parseFloat(input.value)); });
    input.addEventListener("change", function () { release(); });
    return {row: row, input: input, out: out};
  }

  window.addEventListener("pointerup", function () { st.dragging = false; });
  window.addEventListener("pointercancel", function () { st.dragging = false; });

  /* A value as the slider shows it: two decimals, more when the caller passed a finer one. */
  function fmt2(v) {
    var text = S.pyRound4(Number(v)).toFixed(4).replace(/0+$/, "");
    var dot = text.indexOf(".");
    return text.length - dot - 1 < 2 ? Number(v).toFixed(2) : text;
  }

  /* DOM writes only when something changes: a frame then restyles only what moved. */
  function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
  function setHTML(node, html) { if (node.__html !== html) { node.innerHTML = html; node.__html = html; } }
  function setClass(node, cls) { if (node.className !== cls) node.className = cls; }
  function pct(v) { return v !== v ? "–" : (v === 1 ? "100" : (100 * v).toFixed(1)); }
  function pct0(v) { return v !== v ? "–" : (100 * v).toFixed(0); }

  // ------------------------------------------------------------------ layout
  function build() {
    var runs = st.runs;
    root.innerHTML = "";
    st.views = {maps: [], seeds: {}, box: [], overlays: []};
    STAGE_ORDER.forEach(function (stage) { st.views.seeds[stage] = []; });
    st.width = window.innerWidth;
    root.appendChild(legend());
    var stage = el("div", "stage");
    var grid = el("div", "grid");
    stage.appendChild(grid);
    root.appendChild(stage);
    var inner = Math.max(320, root.clientWidth - 22);
    var arrows = runs.length === 1 ? snake(grid, runs[0], inner) : rows(grid, runs, inner);
    syncControls();
    drawOverlays();
    requestAnimationFrame(function () {
      drawArrows(stage, arrows);
      setFrameHeight();
    });
    setFrameHeight();
  }

  function legend() {
    var bar = el("div", "legend");
    var cb = el("div", "item colourbar");
    cb.appendChild(el("b", null, "maps"));
    cb.appendChild(el("span", null, "0"));
    var canvas = el("canvas");
    canvas.width = 256;
    canvas.height = 1;
    var ctx = canvas.getContext("2d"), image = ctx.createImageData(256, 1), lut = st.data.lut;
    for (var i = 0; i < 256; i++) {
      image.data[4 * i] = lut[3 * i];
      image.data[4 * i + 1] = lut[3 * i + 1];
      image.data[4 * i + 2] = lut[3 * i + 2];
      image.data[4 * i + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    cb.appendChild(canvas);
    cb.appendChild(el("span", null, "1"));
    cb.setAttribute("title", "the colour scale of every map (spg_core.viz.colorize)");
    bar.appendChild(cb);

    var seeds = el("div", "item");
    seeds.appendChild(el("b", null, "seeds"));
    [["#fff", "fg"], ["#808080", "ignored"], ["#000", "bg"]].forEach(function (k) {
      var sw = el("span", "swatch");
      sw.style.background = k[0];
      seeds.appendChild(sw);
      seeds.appendChild(el("span", null, k[1]));
    });
    bar.appendChild(seeds);

    var boxes = el("div", "item");
    var gt = el("span", "key-line");
    gt.style.borderColor = GT;
    boxes.appendChild(gt);
    boxes.appendChild(el("span", null, "GT"));
    var pred = el("span", "key-line");
    pred.style.borderColor = PRED;
    boxes.appendChild(pred);
    boxes.appendChild(el("span", null, "box"));
    bar.appendChild(boxes);

    var arrows = el("div", "item");
    arrows.appendChild(el("span", "key-arrow supervise"));
    arrows.appendChild(el("span", null, "supervises"));
    bar.appendChild(arrows);

    var opacity = el("div", "item opacity");
    var ctl = slider("α", "Map opacity", st.values.alpha, false, function (v) {
      st.values.alpha = v;
      ctl.out.textContent = fmt2(v);
      schedule("maps");
    });
    ctl.row.insertBefore(el("b", null, "opacity"), ctl.row.firstChild);
    ctl.row.style.gridTemplateColumns = "auto 12px 96px 34px";
    opacity.appendChild(ctl.row);
    st.controls.alpha = ctl;
    bar.appendChild(opacity);
    return bar;
  }

  function stageAvailable(stage) {
    var source = st.stages[stage].source;
    return st.runs.some(function (run) { return source in run.maps; });
  }

  function deltaControls(container, stage) {
    var s = st.stages[stage], disabled = !stageAvailable(stage);
    var pair = st.values.thresholds[stage];
    var low = slider("δl", s.title + " δ_l", pair[0], disabled, function (v) {
      st.values.thresholds[stage][0] = v;
      schedule("stage", stage);
    });
    var high = slider("δh", s.title + " δ_h", pair[1], disabled, function (v) {
      st.values.thresholds[stage][1] = v;
      schedule("stage", stage);
    });
    low.row.querySelector(".name").innerHTML = "δ<sub>l</sub>";
    high.row.querySelector(".name").innerHTML = "δ<sub>h</sub>";
    container.appendChild(low.row);
    container.appendChild(high.row);
    st.controls[stage] = {low: low, high: high};
  }

  function tauControl(container) {
    var ctl = slider("τ", "τ", st.values.tau, false, function (v) {
      st.values.tau = v;
      ctl.out.textContent = fmt2(v);
      schedule("box");
    });
    container.appendChild(ctl.row);
    st.controls.tau = ctl;
  }

  function place(node, row, col, span) {
    node.style.gridRow = String(row);
    node.style.gridColumn = span ? col + " / span " + span : String(col);
  }

  function suffix(run, index) {
    return index === 0 ? "" : " (" + run.label + ")";
  }

  /* One tile: its picture view registered for drawing, or a grey note where the model lacks the map. */
  function mapPicture(run, index, name, side) {
    var title = st.data.map_titles[name];
    if (!(name in run.maps)) return missing(run, side, "not in this model", title + suffix(run, index));
    var view = picture(run, side, title + suffix(run, index), false, true);
    view.run = run;
    view.name = name;
    st.views.maps.push(view);
    st.views.overlays.push({view: view, run: run, contour: false, gtBoxes: false});
    return view;
  }

  function seedPicture(run, index, stage, side) {
    var s = st.stages[stage];
    var name = s.title + " seeds" + suffix(run, index);
    if (!(s.source in run.maps)) return missing(run, side, "no " + MAP_SHORT[s.source][0] + " map to threshold", name);
    var view = picture(run, side, name, true);
    view.run = run;
    view.stage = stage;
    view.mask = new Uint8Array(run.w * run.h);
    view.words = new Uint32Array(view.image.data.buffer);
    view.badge = el("div", "badge", "fallback");
    view.el.appendChild(view.badge);
    st.views.seeds[stage].push(view);
    st.views.overlays.push({view: view, run: run, contour: true, gtBoxes: !run.gtMask});
    return view;
  }

  function boxPicture(run, index, side) {
    var name = "Box" + suffix(run, index), source = st.data.box_stage;
    if (!(source in run.maps)) return missing(run, side, "no " + MAP_SHORT[source][0] + " map for a box", name);
    var view = picture(run, side, name, false, true);
    view.run = run;
    view.name = source;
    view.isBox = true;
    st.views.maps.push(view);
    st.views.box.push(view);
    return view;
  }

  /* A seed mask's numbers: coverage (fg / bg / ignored, % of the image) and precision (% of the
   * fg seeds inside the object, of the bg seeds outside it). A table in the snake, two short
   * lines under the small pictures of several runs. */
  function statsBlock(view, compact) {
    var block = el("div", "stats");
    if (compact) {
      var lines = [el("div"), el("div"), el("div", "prec")];
      lines.forEach(function (line) { block.appendChild(line); });
      if (view && !view.missing) view.statsLines = lines;
    } else {
      var table = el("table", "nums"), cells = {};
      var head = el("tr");
      head.appendChild(el("th"));
      [["fg", "fg"], ["bg", "bg"], ["ign", "ig"]].forEach(function (h) { head.appendChild(el("th", h[1], h[0])); });
      table.appendChild(head);
      [["cover", "% of the image", ["foreground", "background", "ignored"]],
       ["prec", "precision %: fg seeds inside the object, bg seeds outside it",
        ["foreground_precision", "background_precision", null]]].forEach(function (r) {
        var tr = el("tr");
        var th = el("th", null, r[0]);
        th.title = r[1];
        tr.appendChild(th);
        r[2].forEach(function (key) {
          var td = el("td");
          if (key) cells[key] = td;
          tr.appendChild(td);
        });
        table.appendChild(tr);
      });
      block.appendChild(table);
      if (view && !view.missing) view.cells = cells;
      else table.style.visibility = "hidden";
    }
    if (view && !view.missing) view.compact = compact;
    return block;
  }

  /* One run: a snake of 5 columns. Row 1 left to right: image → A4 → Mask-A ⇒ B2 → Mask-B2;
   * Mask-B2 ⇒ B1 down; row 2 right to left: B1 → fused (← B2) → Mask-fuse ⇒ SPG-C; the box under
   * the image, from A4 at τ. */
  function snake(grid, run, width) {
    var gap = 34, rowGap = 22;
    var side = Math.max(90, Math.min(160, Math.floor((width - 4 * gap) / 5)));
    grid.style.gridTemplateColumns = "repeat(5, " + side + "px)";
    grid.style.columnGap = gap + "px";
    grid.style.rowGap = rowGap + "px";
    grid.style.justifyContent = "center";
    var tiles = {};

    function tile(key, row, col, cls, bold, rest, view) {
      var fig = el("figure", "tile " + cls);
      fig.appendChild(caption(bold, rest));
      fig.appendChild(view.el);
      place(fig, row, col);
      grid.appendChild(fig);
      tiles[key] = {fig: fig, pic: view.el, view: view};
      return fig;
    }

    // the image, with the GT box and contour
    var image = picture(run, side, "Image", false);
    image.run = run;
    image.name = null;
    st.views.maps.push(image);
    st.views.overlays.push({view: image, run: run, contour: true, gtBoxes: true});
    var fig = tile("image", 1, 1, "image", "Image", run.label, image);
    fig.appendChild(el("div", "under", run.gtBoxes || run.gtMask ? "red: ground truth" : "no ground truth"));

    var mapCells = {attention: [1, 2, "attention map"], b2: [1, 4, "branch"], b1: [2, 5, "branch"],
                    fused: [2, 4, "(B1 + B2) / 2"], c: [2, 2, "branch"]};
    Object.keys(mapCells).forEach(function (name) {
      var cell = mapCells[name];
      var view = mapPicture(run, 0, name, side);
      var f = tile(name, cell[0], cell[1], "map", MAP_SHORT[name][0], cell[2], view);
      var under = el("div", "under", name in run.maps ? "max " + run.max[name].toFixed(3) : "");
      f.appendChild(under);
    });

    var seedCells = {mask_a: [1, 3], mask_b2: [1, 5], mask_fuse: [2, 3]};
    STAGE_ORDER.forEach(function (stage) {
      var s = st.stages[stage], cell = seedCells[stage];
      var view = seedPicture(run, 0, stage, side);
      var f = tile(stage, cell[0], cell[1], "seed", s.title, "→ " + MAP_SHORT[s.branch][0], view);
      f.querySelector(".cap").title = s.title + ": the seeds Eq. 1 draws from " + s.source_title + ", which supervise " +
        s.branch_title;
      deltaControls(f, stage);
      f.appendChild(statsBlock(view, false));
    });

    var box = boxPicture(run, 0, side);
    var boxFig = tile("box", 2, 1, "box", "Box", MAP_SHORT[st.data.box_stage][0] + " ≥ τ", box);
    tauControl(boxFig);
    var readout = el("div", "stats");
    boxFig.appendChild(readout);
    if (!box.missing) box.readout = readout;

    // Sideways arrows join the pictures; up-down ones run from under a tile to above the next.
    function arrow(a, b, kind, fromSide, toSide, fromAt, toAt) {
      var from = fromSide === "bottom" ? tiles[a].fig : tiles[a].pic;
      var to = toSide === "top" ? tiles[b].fig : tiles[b].pic;
      var dim = tiles[a].view.missing || tiles[b].view.missing;
      return {from: from, to: to, kind: kind, fromSide: fromSide, toSide: toSide,
              fromAt: fromAt === undefined ? 0.5 : fromAt, toAt: toAt === undefined ? 0.5 : toAt, dim: dim};
    }
    var list = [
      arrow("image", "attention", "eq1", "right", "left"),
      arrow("attention", "mask_a", "eq1", "right", "left"),
      arrow("mask_a", "b2", "supervise", "right", "left"),
      arrow("b2", "mask_b2", "eq1", "right", "left"),
      arrow("mask_b2", "b1", "supervise", "bottom", "top"),
      arrow("b1", "fused", "eq1", "left", "right"),
      arrow("b2", "fused", "eq1", "bottom", "top"),
      arrow("fused", "mask_fuse", "eq1", "left", "right"),
      arrow("mask_fuse", "c", "supervise", "left", "right"),
    ];
    // the box's map → the box (only the paper's A4 sits next to it; another map's box says so in its caption)
    if (st.data.box_stage === "attention") list.push(arrow("attention", "box", "eq1", "bottom", "top", 0.2, 0.8));
    return list;
  }

  /* Several runs: one row each, the stages in columns (the same order as the snake), one set
   * of controls under them: a drag moves every run. */
  function rows(grid, runs, width) {
    var cols = ["image", "attention", "mask_a", "b2", "mask_b2", "b1", "fused", "mask_fuse", "c", "box"];
    grid.classList.add("rows");
    var gap = 10;
    var side = Math.max(56, Math.min(124, Math.floor((width - 9 * gap) / 10)));
    grid.style.gridTemplateColumns = "repeat(10, " + side + "px)";
    grid.style.columnGap = gap + "px";
    grid.style.rowGap = "4px";
    grid.style.justifyContent = "center";
    var heads = {
      image: ["Image", ""], attention: ["A4", "attention"], mask_a: ["Mask-A", "→ B2"], b2: ["B2", "branch"],
      mask_b2: ["Mask-B2", "→ B1"], b1: ["B1", "branch"], fused: ["Fused", "(B1+B2)/2"],
      mask_fuse: ["Mask-fuse", "→ SPG-C"], c: ["SPG-C", "branch"], box: ["Box", MAP_SHORT[st.data.box_stage][0] + " ≥ τ"],
    };
    cols.forEach(function (name, i) {
      var head = el("div", "colhead" + (name.indexOf("mask_") === 0 ? " seed" : ""), heads[name][0]);
      head.appendChild(el("span", null, heads[name][1] || "\u00a0"));
      place(head, 1, i + 1);
      grid.appendChild(head);
    });
    var arrows = [];
    runs.forEach(function (run, r) {
      var row = 2 + 2 * r;
      var label = el("div", "runlabel", run.label + "  ·  precedence: " + run.precedence);
      place(label, row, 1, 10);
      grid.appendChild(label);
      var pics = {};
      cols.forEach(function (name, i) {
        var view, cell = el("div", "tile");
        if (name === "image") {
          view = picture(run, side, "Image" + suffix(run, r), false);
          view.run = run;
          view.name = null;
          st.views.maps.push(view);
          st.views.overlays.push({view: view, run: run, contour: true, gtBoxes: true});
        } else if (name === "box") {
          view = boxPicture(run, r, side);
        } else if (name.indexOf("mask_") === 0) {
          view = seedPicture(run, r, name, side);
        } else {
          view = mapPicture(run, r, name, side);
        }
        cell.appendChild(view.el);
        if (name.indexOf("mask_") === 0) cell.appendChild(statsBlock(view, true));
        if (name === "box") {
          var readout = el("div", "stats");
          cell.appendChild(readout);
          if (!view.missing) { view.readout = readout; view.compact = true; }
        }
        place(cell, row + 1, i + 1);
        grid.appendChild(cell);
        pics[name] = view;
      });
      [["image", "attention", "eq1"], ["attention", "mask_a", "eq1"], ["mask_a", "b2", "supervise"],
       ["b2", "mask_b2", "eq1"], ["mask_b2", "b1", "supervise"], ["b1", "fused", "eq1"],
       ["fused", "mask_fuse", "eq1"], ["mask_fuse", "c", "supervise"]].forEach(function (a) {
        arrows.push({from: pics[a[0]].el, to: pics[a[1]].el, kind: a[2], fromSide: "right", toSide: "left",
                     fromAt: 0.5, toAt: 0.5, dim: pics[a[0]].missing || pics[a[1]].missing, small: true});
      });
    });
    // the shared controls, under the columns they change
    var row = 2 + 2 * runs.length;
    var groups = [["mask_a", 2], ["mask_b2", 4], ["mask_fuse", 7]];
    groups.forEach(function (g) {
      var box = el("div", "tile controls-row");
      box.appendChild(caption(st.stages[g[0]].title, "all runs"));
      deltaControls(box, g[0]);
      place(box, row, g[1], 2);
      box.style.marginTop = "6px";
      grid.appendChild(box);
    });
    var tauBox = el("div", "tile controls-row");
    tauBox.appendChild(caption("Box", "all runs"));
    tauControl(tauBox);
    place(tauBox, row, 9, 2);
    tauBox.style.marginTop = "6px";
    grid.appendChild(tauBox);
    return arrows;
  }

  // ------------------------------------------------------------------ arrows (SVG over the grid)
  function anchor(rect, side, at, origin) {
    var x, y;
    if (side === "right") { x = rect.right; y = rect.top + at * rect.height; }
    else if (side === "left") { x = rect.left; y = rect.top + at * rect.height; }
    else if (side === "bottom") { x = rect.left + at * rect.width; y = rect.bottom; }
    else { x = rect.left + at * rect.width; y = rect.top; }
    return [x - origin.left, y - origin.top];
  }

  function drawArrows(stage, arrows) {
    var NS = "http://www.w3.org/2000/svg";
    var origin = stage.getBoundingClientRect();
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("class", "arrows");
    svg.setAttribute("width", String(Math.ceil(origin.width)));
    svg.setAttribute("height", String(Math.ceil(origin.height)));
    svg.setAttribute("aria-hidden", "true");
    var defs = document.createElementNS(NS, "defs");
    [["eq1", "#3b4a63"], ["supervise", "#e8590c"], ["dim", "#b8c0cc"]].forEach(function (m) {
      var marker = document.createElementNS(NS, "marker");
      marker.setAttribute("id", "head-" + m[0]);
      marker.setAttribute("viewBox", "0 0 10 10");
      marker.setAttribute("refX", "8");
      marker.setAttribute("refY", "5");
      marker.setAttribute("markerWidth", "4.5");
      marker.setAttribute("markerHeight", "4.5");
      marker.setAttribute("orient", "auto-start-reverse");
      var path = document.createElementNS(NS, "path");
      path.setAttribute("d", "M0,0 L10,5 L0,10 z");
      path.setAttribute("fill", m[1]);
      marker.appendChild(path);
      defs.appendChild(marker);
    });
    svg.appendChild(defs);
    arrows.forEach(function (a) {
      var p = anchor(a.from.getBoundingClientRect(), a.fromSide, a.fromAt, origin);
      var q = anchor(a.to.getBoundingClientRect(), a.toSide, a.toAt, origin);
      var pad = a.small ? 2 : 4;
      var dx = q[0] - p[0], dy = q[1] - p[1], len = Math.sqrt(dx * dx + dy * dy) || 1;
      var line = document.createElementNS(NS, "line");
      line.setAttribute("x1", String(p[0] + pad * dx / len));
      line.setAttribute("y1", String(p[1] + pad * dy / len));
      line.setAttribute("x2", String(q[0] - pad * dx / len));
      line.setAttribute("y2", String(q[1] - pad * dy / len));
      var kind = a.dim ? "dim" : a.kind;
      line.setAttribute("stroke", kind === "supervise" ? "#e8590c" : (kind === "dim" ? "#b8c0cc" : "#3b4a63"));
      line.setAttribute("stroke-width", String((a.kind === "supervise" ? 4 : 2.2) * (a.small ? 0.7 : 1)));
      line.setAttribute("stroke-linecap", "round");
      if (a.dim) line.setAttribute("stroke-dasharray", "4 4");
      line.setAttribute("marker-end", "url(#head-" + kind + ")");
      svg.appendChild(line);
    });
    stage.appendChild(svg);
  }

  // ------------------------------------------------------------------ drawing
  /* A map's picture: the image on the base canvas and the map's colours (the LUT of
   * spg_core.viz.colorize, so one colour scale everywhere) on the heat canvas, each drawn once;
   * the opacity slider only changes the heat canvas's CSS opacity, which the browser composites
   * (the blend is viz.heatmap_overlay's up to the last bit of rounding). */
  function drawMap(view) {
    var run = view.run, n = run.w * run.h, i, j;
    view.image.data.set(run.pixels);
    view.ctx.putImageData(view.image, 0, 0);
    if (!view.heat) return;
    var ctx = view.heat.getContext("2d"), heat = ctx.createImageData(run.w, run.h), out = heat.data;
    var map = run.maps[view.name], lut = st.data.lut;
    for (i = 0, j = 0; i < n; i++, j += 4) {
      var k = 3 * S.colorIndex(map[i]);
      out[j] = lut[k];
      out[j + 1] = lut[k + 1];
      out[j + 2] = lut[k + 2];
      out[j + 3] = 255;
    }
    ctx.putImageData(heat, 0, 0);
    view.heat.style.opacity = String(st.values.alpha);
  }

  function drawOpacity() {
    var alpha = String(st.values.alpha);
    st.views.maps.forEach(function (view) {
      if (view.heat) view.heat.style.opacity = alpha;
    });
  }

  function drawSeeds(stage) {
    var pair = st.values.thresholds[stage];
    var clean = S.cleanThresholds(pair[0], pair[1]);
    var ctl = st.controls[stage];
    if (ctl) {
      var adjustedLow = clean[2] && clean[0] !== pair[0], adjustedHigh = clean[2] && clean[1] !== pair[1];
      setText(ctl.low.out, fmt2(clean[0]));
      setText(ctl.high.out, fmt2(clean[1]));
      setClass(ctl.low.out, adjustedLow ? "adjusted" : "");
      setClass(ctl.high.out, adjustedHigh ? "adjusted" : "");
      ctl.low.out.title = adjustedLow ? "δ_l ≥ δ_h: δ_l lowered one step" : "";
      ctl.high.out.title = adjustedHigh ? "δ_l ≥ δ_h: δ_h raised one step" : "";
    }
    var source = st.stages[stage].source;
    st.views.seeds[stage].forEach(function (view) {
      var run = view.run;
      var result = S.seedMask(run.maps[source], clean[0], clean[1], run.precedence, view.mask);
      var mask = result.mask, words = view.words, colours = COLOURS, n = mask.length;
      for (var i = 0; i < n; i++) {
        var m = mask[i];
        words[i] = m === 1 ? colours[0] : (m === 0 ? colours[1] : colours[2]);
      }
      view.ctx.putImageData(view.image, 0, 0);
      var s = S.seedStatistics(mask, run.object);
      view.result = {low: clean[0], high: clean[1], fallback: result.fallback, high32: result.high, stats: s};
      setClass(view.badge, "badge" + (result.fallback ? " on" : ""));
      setText(view.badge, view.compact ? "fallback" : "fallback: δh = " + result.high.toFixed(3));
      view.badge.title = "fewer than 30 pixels above δ_h: δ_h := 0.7 · max(map)";
      var lines = view.statsLines;
      if (view.compact) {
        setHTML(lines[0], '<span class="fg">fg</span> <b>' + pct0(s.foreground) + '</b> <span class="bg">bg</span> <b>' +
          pct0(s.background) + "</b>");
        setHTML(lines[1], '<span class="ig">ign</span> <b>' + pct0(s.ignored) + "</b> %");
        lines[0].title = lines[1].title = "foreground / background / ignored, % of the image";
        setHTML(lines[2], run.object ? "prec <b>" + pct0(s.foreground_precision) + "</b>/<b>" +
          pct0(s.background_precision) + "</b>" : "no GT");
        lines[2].title = "precision %: fg seeds inside the object / bg seeds outside it";
      } else {
        Object.keys(view.cells).forEach(function (key) {
          setText(view.cells[key], key in s ? pct(s[key]) : "–");
        });
      }
    });
  }

  function rectOf(view, box, inset) {
    // An inclusive pixel box covers [x0, x1 + 1) × [y0, y1 + 1) of the map's pixels.
    var sx = view.scale[0], sy = view.scale[1];
    return [box[0] * sx + inset, box[1] * sy + inset, (box[2] + 1 - box[0]) * sx - 2 * inset,
            (box[3] + 1 - box[1]) * sy - 2 * inset];
  }

  function contourPath(run, view) {
    var w = run.w, h = run.h, m = run.gtMask, sx = view.scale[0], sy = view.scale[1];
    var path = new Path2D();
    for (var y = 0; y < h; y++) {
      for (var x = 0; x < w; x++) {
        if (!m[y * w + x]) continue;
        if (y === 0 || !m[(y - 1) * w + x]) { path.moveTo(x * sx, y * sy); path.lineTo((x + 1) * sx, y * sy); }
        if (y === h - 1 || !m[(y + 1) * w + x]) { path.moveTo(x * sx, (y + 1) * sy); path.lineTo((x + 1) * sx, (y + 1) * sy); }
        if (x === 0 || !m[y * w + x - 1]) { path.moveTo(x * sx, y * sy); path.lineTo(x * sx, (y + 1) * sy); }
        if (x === w - 1 || !m[y * w + x + 1]) { path.moveTo((x + 1) * sx, y * sy); path.lineTo((x + 1) * sx, (y + 1) * sy); }
      }
    }
    return path;
  }

  function groundTruth(ctx, view, run, contour, gtBoxes) {
    var dpr = view.dpr;
    if (contour && run.gtMask) {
      if (!view.contour) view.contour = contourPath(run, view);
      ctx.strokeStyle = GT;
      ctx.lineWidth = 1.6 * dpr;
      ctx.stroke(view.contour);
    }
    if (gtBoxes && run.gtBoxes) {
      ctx.strokeStyle = GT;
      ctx.lineWidth = 2 * dpr;
      run.gtBoxes.forEach(function (b) {
        var r = rectOf(view, b, ctx.lineWidth / 2);
        ctx.strokeRect(r[0], r[1], r[2], r[3]);
      });
    }
  }

  function drawOverlays() {
    st.views.overlays.forEach(function (o) {
      if (o.view.missing || !(o.contour || o.gtBoxes)) return;
      var ctx = o.view.over.getContext("2d");
      ctx.clearRect(0, 0, o.view.over.width, o.view.over.height);
      groundTruth(ctx, o.view, o.run, o.contour, o.gtBoxes);
    });
  }

  function drawBoxes() {
    var tau = st.values.tau;
    st.views.box.forEach(function (view) {
      var run = view.run;
      var box = S.largestComponentBox(run.maps[view.name], run.w, run.h, tau);
      var iou = S.bestIou(box, run.gtBoxes);
      view.result = {box: box, iou: iou};
      var ctx = view.over.getContext("2d");
      ctx.clearRect(0, 0, view.over.width, view.over.height);
      groundTruth(ctx, view, run, false, true);
      ctx.strokeStyle = PRED;
      ctx.lineWidth = 2.4 * view.dpr;
      var r = rectOf(view, box, ctx.lineWidth / 2);
      ctx.strokeRect(r[0], r[1], r[2], r[3]);
      var text = iou === null ? "IoU: no ground truth" : "IoU <b>" + iou.toFixed(3) + "</b>";
      setHTML(view.readout, view.compact ? text.replace("IoU: no ground truth", "no GT") :
        text + '<br><span class="prec">box (' + box.join(", ") + ")</span>");
    });
  }

  function drawAll() {
    if (!st.views) return;
    var t0 = performance.now();
    st.views.maps.forEach(drawMap);
    drawOpacity();
    STAGE_ORDER.forEach(drawSeeds);
    drawBoxes();
    record(t0, "all");
  }

  function record(t0, what) {
    var ms = performance.now() - t0;
    stats.redraws++;
    if (stats.times_ms.length < 100000) stats.times_ms.push(ms);
    stats.last = {what: what, ms: ms, at: t0};
  }

  function schedule(kind, stage) {
    if (kind === "stage") st.dirty.stages[stage] = true;
    else st.dirty[kind] = true;
    if (!st.raf) st.raf = requestAnimationFrame(frame);
  }

  /* One animation frame: whatever moved since the last one, recomputed and redrawn once. */
  function frame() {
    st.raf = 0;
    if (!st.views) return;
    var t0 = performance.now(), what = [];
    if (st.dirty.maps) { drawOpacity(); what.push("opacity"); }
    STAGE_ORDER.forEach(function (stage) {
      if (st.dirty.stages[stage]) { drawSeeds(stage); what.push(stage); }
    });
    if (st.dirty.box) { drawBoxes(); what.push("box"); }
    st.dirty = {stages: {}, box: false, maps: false};
    record(t0, what.join("+"));
  }

  function syncControls() {
    STAGE_ORDER.forEach(function (stage) {
      var ctl = st.controls[stage];
      if (!ctl) return;
      ctl.low.input.value = String(st.values.thresholds[stage][0]);
      ctl.high.input.value = String(st.values.thresholds[stage][1]);
    });
    if (st.controls.tau) {
      st.controls.tau.input.value = String(st.values.tau);
      st.controls.tau.out.textContent = fmt2(st.values.tau);
    }
    if (st.controls.alpha) {
      st.controls.alpha.input.value = String(st.values.alpha);
      st.controls.alpha.out.textContent = fmt2(st.values.alpha);
    }
  }

  /* A thumb let go (or moved by a key): the values, δ pairs through clean_thresholds, go to
   * Python once. */
  function release() {
    st.dragging = false;
    if (!st.values) return;
    var thresholds = {};
    STAGE_ORDER.forEach(function (stage) {
      var pair = st.values.thresholds[stage];
      var clean = S.cleanThresholds(pair[0], pair[1]);
      thresholds[stage] = [clean[0], clean[1]];
      st.values.thresholds[stage] = [clean[0], clean[1]];
      if (clean[2]) schedule("stage", stage);  // the thumbs snap to the cleaned pair: no longer "adjusted"
    });
    syncControls();
    stats.releases++;
    var value = {thresholds: thresholds, tau: st.values.tau, alpha: st.values.alpha,
                 nonce: Date.now() * 1000 + (stats.releases % 1000)};
    st.sent.push(canon(value));
    if (st.sent.length > 8) st.sent.shift();
    post("streamlit:setComponentValue", {value: value, dataType: "json"});
  }

  var resizeTimer = 0;
  window.addEventListener("resize", function () {
    if (!st.runs.length || Math.abs(window.innerWidth - st.width) < 4) return;
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { build(); drawAll(); }, 120);
  });

  window.__spgView = {state: st, compute: S, redraw: drawAll, frame: frame};
  post("streamlit:componentReady", {apiVersion: 1});
})();
