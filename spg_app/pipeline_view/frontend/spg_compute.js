/*
 * spg_compute.js: the browser's copy of the spg_core rules the pipeline view applies on every
 * animation frame. Pure functions, no DOM: the component (pipeline_view.js) and the parity test
 * (tests/test_pipeline_view_parity.py) load this same file.
 *
 * Each function mirrors one Python function and must agree with it BIT FOR BIT:
 *   pyRound4          round(x, 4)                                   (Python's float round)
 *   cleanThresholds   spg_app.thresholds.clean_thresholds
 *   seedMask          spg_core.guidance.seed_mask (Eq. 1, the fallback, precedence)
 *   seedStatistics    spg_core.guidance.seed_statistics
 *   largestComponentBox  spg_core.boxes.largest_component_box (min-max, >= tau, 8-connected)
 *   iou, bestIou      spg_core.boxes.iou (inclusive +1 pixel areas), as spg_app.thresholds.box_view
 *   colorIndex        the LUT index spg_core.viz.colorize takes for a map value
 *
 * Float32 rules: torch compares a float32 map with a Python float by casting the float to
 * float32 first, and computes the fallback threshold 0.7 * max(O) as a float32 product; so
 * every threshold goes through Math.fround here. The box rule is float64 (numpy), which plain
 * JS numbers are.
 */
(function (root) {
  "use strict";

  var BACKGROUND = 0, FOREGROUND = 1, IGNORE = 255;
  var FALLBACK_MIN_PIXELS = 30;  // spg_core.guidance.FALLBACK_MIN_PIXELS
  var FALLBACK_RATIO = 0.7;      // spg_core.guidance.FALLBACK_RATIO
  var PRECEDENCES = ["foreground", "background"];

  /* Python's round(x, 4) for finite x >= 0: the integer n nearest to x * 10^4 computed on the
   * exact value of x (toFixed does that), ties to even (toFixed takes the larger one; an exact
   * tie is a double equal to an odd multiple of 1/32, see below); then n / 10^4, the double
   * nearest to the decimal, as Python reads its rounded digits back. */
  function pyRound4(x) {
    x = Number(x);
    if (!isFinite(x)) return x;
    var negative = x < 0;
    var a = Math.abs(x);
    var n = Number(a.toFixed(4).replace(".", ""));
    // a * 10^4 = k + 1/2 exactly  <=>  a = (2k + 1) / 20000 is a double  <=>  a * 32 is an odd
    // integer (625 must divide 2k + 1). a * 32 is exact; then a * 1e4 = odd * 312.5 is exact too.
    var t = a * 32;
    if (Number.isInteger(t) && t % 2 === 1) {
      var below = Math.floor(a * 1e4);
      n = below % 2 === 0 ? below : below + 1;
    }
    var out = n / 1e4;
    return negative ? -out : out;
  }

  /* spg_app.thresholds.clean_thresholds: δ_l >= δ_h is moved apart by one step. */
  function cleanThresholds(deltaLow, deltaHigh, step) {
    if (step === undefined) step = 0.01;
    var low = pyRound4(deltaLow), high = pyRound4(deltaHigh);
    if (low < high) return [low, high, false];
    if (low + step <= 1.0) return [low, pyRound4(low + step), true];
    return [pyRound4(high - step), high, true];
  }

  function checkThresholds(low, high) {
    if (!(0.0 <= low && low < high && high <= 1.0)) {
      throw new Error("seed thresholds must satisfy 0 <= δ_l < δ_h <= 1; got δ_l=" + low + " and δ_h=" + high);
    }
  }

  /* spg_core.guidance.seed_mask of one H×W float32 map (flat Float32Array):
   *   0 where O < δ_l, 1 where O > δ_h, 255 otherwise; when fewer than 30 pixels are > δ_h,
   *   δ_h := 0.7 · max(O) (float32); where both seeds claim a pixel, `precedence` decides.
   * Returns {mask: Uint8Array, fallback: bool, high: the float32 δ_h used}. `out` (a Uint8Array
   * of the map's length) is reused when given. */
  function seedMask(map, deltaLow, deltaHigh, precedence, out, minPixels, fallbackRatio) {
    checkThresholds(deltaLow, deltaHigh);
    if (PRECEDENCES.indexOf(precedence) < 0) throw new Error("unknown seed precedence " + precedence);
    if (minPixels === undefined) minPixels = FALLBACK_MIN_PIXELS;
    if (fallbackRatio === undefined) fallbackRatio = FALLBACK_RATIO;
    var n = map.length;
    var lo = Math.fround(deltaLow);
    var hi = Math.fround(deltaHigh);
    var above = 0, max = -Infinity, nan = false, i, v;
    for (i = 0; i < n; i++) {
      v = map[i];
      if (v > hi) above++;
      if (v > max) max = v;
      else if (v !== v) nan = true;
    }
    if (nan) max = NaN;  // torch.amax propagates NaN
    var fired = above < minPixels;
    if (fired) hi = Math.fround(Math.fround(fallbackRatio) * max);  // float32 * float32 -> float32
    var mask = out && out.length === n ? out : new Uint8Array(n);
    if (precedence === "foreground") {  // background written first, foreground last: foreground wins
      for (i = 0; i < n; i++) {
        v = map[i];
        mask[i] = (v > hi) ? FOREGROUND : ((v < lo) ? BACKGROUND : IGNORE);
      }
    } else {  // foreground written first, background last: background wins
      for (i = 0; i < n; i++) {
        v = map[i];
        mask[i] = (v < lo) ? BACKGROUND : ((v > hi) ? FOREGROUND : IGNORE);
      }
    }
    return {mask: mask, fallback: fired, high: hi};
  }

  /* spg_core.guidance.seed_statistics: coverage, and with the object's region (a 0/1 Uint8Array
   * or null) the precision of each kind of seed (NaN when the mask has none of that kind). */
  function seedStatistics(mask, objectRegion) {
    var n = mask.length, fg = 0, bg = 0, ign = 0, fgIn = 0, bgOut = 0, i, m;
    if (objectRegion) {
      for (i = 0; i < n; i++) {
        m = mask[i];
        if (m === FOREGROUND) { fg++; if (objectRegion[i]) fgIn++; }
        else if (m === BACKGROUND) { bg++; if (!objectRegion[i]) bgOut++; }
        else if (m === IGNORE) ign++;
      }
    } else {
      for (i = 0; i < n; i++) {
        m = mask[i];
        if (m === FOREGROUND) fg++;
        else if (m === BACKGROUND) bg++;
        else if (m === IGNORE) ign++;
      }
    }
    var stats = {foreground: fg / n, background: bg / n, ignored: ign / n,
                 counts: {foreground: fg, background: bg, ignored: ign}};
    if (objectRegion) {
      stats.foreground_precision = fg ? fgIn / fg : NaN;
      stats.background_precision = bg ? bgOut / bg : NaN;
    }
    return stats;
  }

  /* spg_core.boxes.minmax_numpy followed by `>= tau`, in float64: 1 where kept. A constant map,
   * or one holding NaN/inf, normalises to zeros (so tau <= 0 keeps everything). */
  function keepAtTau(map, tau, out) {
    var n = map.length, min = Infinity, max = -Infinity, finite = true, i, v;
    for (i = 0; i < n; i++) {
      v = map[i];
      if (!isFinite(v)) { finite = false; break; }
      if (v < min) min = v;
      if (v > max) max = v;
    }
    var keep = out && out.length === n ? out : new Uint8Array(n);
    if (n === 0 || !finite || min === max) {
      keep.fill(0 >= tau ? 1 : 0);
      return keep;
    }
    var span = max - min;  // = max(map - min): rounding is monotone
    for (i = 0; i < n; i++) keep[i] = ((map[i] - min) / span >= tau) ? 1 : 0;
    return keep;
  }

  var scratch = {labels: null, stack: null, keep: null};

  function buffers(n) {
    if (!scratch.labels || scratch.labels.length !== n) {
      scratch.labels = new Int32Array(n);
      scratch.stack = new Int32Array(n);
      scratch.keep = new Uint8Array(n);
    }
    return scratch;
  }

  /* spg_core.boxes.largest_component_box: the tight inclusive box [x0, y0, x1, y1] of the
   * largest 8-connected component of minmax(map) >= tau (ties: the component whose first pixel
   * comes first in raster order); [0, 0, 0, 0] when nothing survives. */
  function largestComponentBox(map, width, height, tau) {
    var n = width * height;
    if (map.length !== n) throw new Error("map has " + map.length + " values, not " + width + "×" + height);
    var s = buffers(n);
    var keep = keepAtTau(map, tau, s.keep), labels = s.labels, stack = s.stack;
    labels.fill(0);
    var best = null, bestSize = 0, label = 0;
    for (var start = 0; start < n; start++) {
      if (!keep[start] || labels[start]) continue;
      label++;
      var top = 0, size = 0;
      var x0 = width, y0 = height, x1 = -1, y1 = -1;
      stack[top++] = start;
      labels[start] = label;
      while (top > 0) {
        var p = stack[--top];
        var y = (p / width) | 0, x = p - y * width;
        size++;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
        for (var dy = -1; dy <= 1; dy++) {
          var yy = y + dy;
          if (yy < 0 || yy >= height) continue;
          for (var dx = -1; dx <= 1; dx++) {
            var xx = x + dx;
            if (xx < 0 || xx >= width) continue;
            var q = yy * width + xx;
            if (keep[q] && !labels[q]) { labels[q] = label; stack[top++] = q; }
          }
        }
      }
      if (size > bestSize) { bestSize = size; best = [x0, y0, x1, y1]; }  // strictly larger: ties keep the first
    }
    return best || [0, 0, 0, 0];
  }

  function boxArea(b) {
    return (b[2] - b[0] + 1) * (b[3] - b[1] + 1);
  }

  /* spg_core.boxes.iou of two inclusive integer boxes (coordinates truncated like int()). */
  function iou(a, b) {
    a = a.map(Math.trunc); b = b.map(Math.trunc);
    var w = Math.max(Math.min(a[2], b[2]) - Math.max(a[0], b[0]) + 1, 0);
    var h = Math.max(Math.min(a[3], b[3]) - Math.max(a[1], b[1]) + 1, 0);
    var inter = w * h;
    return inter / (boxArea(a) + boxArea(b) - inter);
  }

  /* spg_app.thresholds.box_view's IoU: the best IoU of the box with any GT box; null without GT. */
  function bestIou(box, gtBoxes) {
    if (!gtBoxes || !gtBoxes.length) return null;
    var best = -Infinity;
    for (var i = 0; i < gtBoxes.length; i++) best = Math.max(best, iou(box, gtBoxes[i]));
    return best;
  }

  /* The LUT index spg_core.viz.colorize uses: uint8(float32(clip(nan_to_num(v), 0, 1)) * 255). */
  function colorIndex(v) {
    if (v !== v) v = 0;
    v = v < 0 ? 0 : (v > 1 ? 1 : v);
    return Math.fround(v * 255) | 0;
  }

  var api = {
    BACKGROUND: BACKGROUND, FOREGROUND: FOREGROUND, IGNORE: IGNORE,
    FALLBACK_MIN_PIXELS: FALLBACK_MIN_PIXELS, FALLBACK_RATIO: FALLBACK_RATIO, PRECEDENCES: PRECEDENCES,
    pyRound4: pyRound4, cleanThresholds: cleanThresholds, seedMask: seedMask, seedStatistics: seedStatistics,
    keepAtTau: keepAtTau, largestComponentBox: largestComponentBox, iou: iou, bestIou: bestIou,
    colorIndex: colorIndex,
  };
  root.SPGCompute = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
