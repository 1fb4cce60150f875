/**
 * Drives the dashboard in headless Chromium (Debian's /usr/bin/chromium through playwright-core), in its
 * own process because playwright-core needs --allow-all. Prints one line per step reached, so the test
 * (dashboard_test.ts) can act on the broker side in between; exits 0 when every step passed, 1 otherwise.
 *
 *   deno run -A dashboard_driver.ts test <chromium> <base url> <token>
 *   deno run -A dashboard_driver.ts screenshots <chromium> <base url> <token> <dir>
 *   deno run -A dashboard_driver.ts cluster <chromium> <base url> <token> <node id prefixes, comma-separated>
 */
import { chromium, type Page } from "npm:playwright-core@^1.49.0";

/** The page's document, as the functions evaluated in the browser see it (this file is not a DOM program). */
declare const document: {
  querySelector(
    selector: string,
  ): { textContent: string | null; getAttribute(name: string): string | null } | null;
};

/** `modeArgument`: the screenshots' directory, or the cluster nodes to wait for. */
const [mode, executablePath, base, token, modeArgument] = Deno.args;
const say = (line: string) => {
  // deno-lint-ignore no-console
  console.log(line);
};
const deadline = setTimeout(() => {
  say("error: the driver ran over 90 s");
  Deno.exit(1);
}, 90_000);

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
  ],
  timeout: 30_000,
});
let code = 1;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on("console", (message) => say(`console ${message.text()}`));
  page.on("pageerror", (error) => say(`pageerror ${error.message}`));
  page.on("dialog", (dialog) => void dialog.accept());
  page.setDefaultTimeout(20_000);
  await login(page);
  if (mode === "screenshots") await screenshots(page, modeArgument);
  else if (mode === "cluster") await clusterView(page, modeArgument.split(","));
  else await scenario(page);
  code = 0;
} catch (error) {
  say(`error: ${error instanceof Error ? error.message : error}`);
} finally {
  await browser.close();
  clearTimeout(deadline);
}
Deno.exit(code);

async function login(page: Page): Promise<void> {
  await page.goto(`${base}/dashboard/`);
  await page.fill("#login-token", token);
  await page.click("#login-submit");
  await page.waitForSelector("#whoami");
  say(`logged-in ${await page.textContent("#whoami")}`);
}

/** Number of points on a chart, as the page records it. */
async function points(page: Page, chart: string): Promise<number> {
  return Number(await page.getAttribute(`#chart-${chart}`, "data-points"));
}

async function scenario(page: Page): Promise<void> {
  // The overview fills its charts every 2 s.
  await page.click("#nav-overview");
  await page.waitForFunction(() =>
    Number(document.querySelector("#chart-connections")?.getAttribute("data-points")) >= 1
  );
  const received = await page.textContent("#stat-received");
  const before = await points(page, "messages");
  say(`overview received=${received} points=${before}`);
  // The test connects a client and publishes now; the client appears in the table.
  await page.click("#nav-clients");
  await page.waitForSelector('tr[data-key="dash-victim"]');
  say("client-visible dash-victim");
  await page.click('tr[data-key="dash-victim"] button.kick');
  await page.waitForSelector('tr[data-key="dash-victim"]', { state: "detached" });
  say("kicked dash-victim");
  // The chart moves: more points, and the received count went up with the test's messages.
  await page.click("#nav-overview");
  await page.waitForFunction(
    ([was]) => {
      const text = document.querySelector("#stat-received")?.textContent ?? "";
      return text !== "…" && text !== was &&
        Number(document.querySelector("#chart-messages")?.getAttribute("data-points")) >= 2;
    },
    [received],
  );
  say(
    `chart-moved received=${await page.textContent("#stat-received")} points=${await points(
      page,
      "messages",
    )}`,
  );
  // The test client: connect over WebSocket, subscribe, publish, see it arrive.
  await page.click("#nav-test-client");
  await page.waitForSelector("#tc-connect select[name=url] option", { state: "attached" });
  await page.click("#tc-connect button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#tc-status")?.textContent === "connected");
  await page.fill("#tc-subscribe input[name=filter]", "dash/#");
  await page.click("#tc-subscribe button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#tc-status")?.textContent === "subscribed");
  await page.fill("#tc-publish input[name=topic]", "dash/hello");
  await page.fill("#tc-publish input[name=payload]", "from the dashboard");
  await page.click("#tc-publish button[type=submit]");
  await page.waitForSelector("#tc-messages td.payload:has-text('from the dashboard')");
  say("test-client-received dash/hello=from the dashboard");
  await page.click("#nav-cluster");
  await page.waitForSelector("#cluster-single");
  say(`cluster-single ${await page.textContent("#cluster-single")}`);
}

/**
 * The cluster page of a node: waits until a row for each of `prefixes` (node ids start with the name the
 * test gave the node) is shown, then prints the log state and every row as id:alive.
 */
async function clusterView(page: Page, prefixes: string[]): Promise<void> {
  await page.click("#nav-cluster");
  await page.waitForFunction(
    (wanted) =>
      wanted.every((prefix) => document.querySelector(`#cluster-nodes tr[data-key^="${prefix}"]`) !== null),
    prefixes,
  );
  const rows = await page.$$eval(
    "#cluster-nodes tbody tr",
    (trs) => trs.map((tr) => `${tr.getAttribute("data-key")}:${tr.getAttribute("data-alive")}`),
  );
  const up = await page.getAttribute("#cluster-log-state", "data-up");
  const applied = await page.textContent("#cluster-entriesApplied");
  say(`cluster-view up=${up} applied=${applied} nodes=${rows.join(",")}`);
}

async function screenshots(page: Page, dir: string): Promise<void> {
  const shoot = async (name: string) => {
    await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });
    say(`screenshot ${dir}/${name}.png`);
  };
  await page.click("#nav-overview");
  await page.waitForFunction(() =>
    Number(document.querySelector("#chart-messages")?.getAttribute("data-points")) >= 6
  );
  await shoot("overview");
  for (
    const [name, ready] of [["clients", "#clients tbody tr[data-key]"], [
      "sessions",
      "#sessions tbody tr[data-key]",
    ], [
      "subscriptions",
      "#subscriptions tbody tr[data-key]",
    ], ["retained", "#retained tbody tr[data-key]"]]
  ) {
    await page.click(`#nav-${name}`);
    await page.waitForSelector(ready);
    await shoot(name);
  }
  await page.click("#nav-test-client");
  await page.waitForSelector("#tc-connect select[name=url] option", { state: "attached" });
  await page.click("#tc-connect button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#tc-status")?.textContent === "connected");
  await page.fill("#tc-subscribe input[name=filter]", "demo/#");
  await page.click("#tc-subscribe button[type=submit]");
  await page.fill("#tc-publish input[name=topic]", "demo/greeting");
  await page.fill("#tc-publish input[name=payload]", "hello from the test client");
  await page.click("#tc-publish button[type=submit]");
  await page.waitForSelector("#tc-messages td.payload:has-text('hello from the test client')");
  await shoot("test-client");
  await page.click("#logout");
  await page.waitForSelector("#login-form");
  await shoot("login");
}
