/**
 * Drives headless Chromium for browser_test.ts, in its own process: playwright-core reads /proc/sys at
 * import, which Deno allows only with --allow-all, and the tests themselves run with narrower permissions.
 *
 * Usage: deno run -A browser_driver.ts <chromium path> <page url>
 * Prints one line per page event as it happens ("connected", "subscribed", "message <topic>=<payload>"),
 * exits 0 after the first message, 1 on any error or after 30 s.
 */
import { chromium } from "npm:playwright-core@^1.49.0";

const [executablePath, url] = Deno.args;
const deadline = setTimeout(() => {
  // deno-lint-ignore no-console
  console.error("browser driver: no message within 30 s");
  Deno.exit(1);
}, 30_000);
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  timeout: 20_000,
});
let code = 1;
try {
  const page = await browser.newPage();
  page.on("console", (message) => {
    // deno-lint-ignore no-console
    console.log(`console ${message.text()}`);
  });
  await page.goto(url, { timeout: 15_000 });
  let seen = 0;
  for (;;) {
    const events = await page.evaluate(() => (globalThis as unknown as { events: string[] }).events);
    for (const event of events.slice(seen)) {
      // deno-lint-ignore no-console
      console.log(event);
    }
    seen = events.length;
    if (events.some((event) => event.startsWith("error") || event.startsWith("suback error"))) break;
    if (events.some((event) => event.startsWith("message "))) {
      code = 0;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
} finally {
  await browser.close();
  clearTimeout(deadline);
}
Deno.exit(code);
