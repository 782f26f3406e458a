// A terminal on a page, as the browser tests read and type into it (e2e.mjs, replicas.mjs).
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The terminal's visible text. */
export async function termText(page) {
  return page.evaluate(() => document.querySelector("#terminal .xterm-rows")?.innerText ?? "");
}

/** Waits until the terminal's text matches `re`; returns it. */
export async function waitTerm(page, re, timeout = 20000) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    const t = await termText(page);
    if (re.test(t)) return t;
    await sleep(100);
  }
  throw new Error(`terminal never showed ${re}; it shows:\n${await termText(page)}`);
}

/** Types `text` into the terminal, then Enter. */
export async function typeLine(page, text) {
  await page.locator("#terminal .xterm-helper-textarea").focus();
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}
