// How the tablet's screens fit the text size the patient chose: pure (no DOM), so it is unit-tested on its own
// (tests/browser/test_web_modules.py); comfort.js applies it to the page and tablet.css draws it.

/**
 * A screen is short when its height holds fewer than this many times the chosen text size (the root font size): a
 * 1280×800 tablet in landscape at every size (800 px: 36 at 100 %), in portrait from 160 % (1280 px: 37 at 160 %,
 * 29 at 200 %). There, at 200 %, the top bar, the progress, the group's title, "Écouter" and a long question took the
 * whole height: the patient saw no answer without scrolling.
 */
export const SHORT_SCREEN_TEXT_SIZES = 40;

/** Whether a screen `height` px high is short for text of `rootPx` px: "short" or "tall" (tablet.css's names). */
export function screenFit(height, rootPx) {
  if (!(height > 0) || !(rootPx > 0)) return "tall"; // nothing known: the page as it always was
  return height / rootPx < SHORT_SCREEN_TEXT_SIZES ? "short" : "tall";
}
