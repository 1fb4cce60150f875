/// <reference lib="dom" />
/** The dashboard shell: login (token or user and password), navigation by URL hash, the pages. */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call, savedToken, saveToken } from "./api.ts";
import { Overview } from "./overview.tsx";
import { ClusterPage } from "./cluster.tsx";
import { ClientsPage, RetainedPage, SessionsPage, SubscriptionsPage } from "./pages.tsx";
import { TestClient } from "./test_client.tsx";

const PAGES = {
  overview: { title: "Overview", view: Overview },
  clients: { title: "Clients", view: ClientsPage },
  sessions: { title: "Sessions", view: SessionsPage },
  subscriptions: { title: "Subscriptions", view: SubscriptionsPage },
  retained: { title: "Retained", view: RetainedPage },
  cluster: { title: "Cluster", view: ClusterPage },
  "test-client": { title: "Test client", view: TestClient },
} as const;

type PageName = keyof typeof PAGES;

function currentPage(): PageName {
  const name = location.hash.replace(/^#\/?/, "");
  return name in PAGES ? name as PageName : "overview";
}

/** Who is logged in. */
export interface Identity {
  caller: string;
  role: "admin" | "viewer";
}

function Login({ onLogin }: { onLogin: (identity: Identity) => void }) {
  const [error, setError] = useState("");
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    const token = String(form.get("token") ?? "").trim();
    const username = String(form.get("username") ?? "").trim();
    try {
      if (token) {
        saveToken(token);
      } else {
        const session = await call<{ token: string }>("POST", "/login", {
          username,
          password: String(form.get("password") ?? ""),
        });
        saveToken(session.token);
      }
      onLogin(await call<Identity>("GET", "/whoami"));
    } catch (failure) {
      saveToken(null);
      setError(failure instanceof Error ? failure.message : String(failure));
    }
  };
  return (
    <main class="login">
      <h1>mqtt-proxy</h1>
      <form onSubmit={submit} id="login-form">
        <label>
          User <input name="username" id="login-user" autocomplete="username" />
        </label>
        <label>
          Password{" "}
          <input name="password" id="login-password" type="password" autocomplete="current-password" />
        </label>
        <p class="muted">or</p>
        <label>
          API token <input name="token" id="login-token" type="password" autocomplete="off" />
        </label>
        <button type="submit" id="login-submit">Log in</button>
        {error && <p class="error" role="alert">{error}</p>}
      </form>
    </main>
  );
}

function App() {
  const [identity, setIdentity] = useState<Identity | undefined>();
  const [checked, setChecked] = useState(false);
  const [page, setPage] = useState<PageName>(currentPage());
  useEffect(() => {
    const onHash = () => setPage(currentPage());
    addEventListener("hashchange", onHash);
    if (savedToken()) {
      call<Identity>("GET", "/whoami").then(setIdentity, () => saveToken(null)).finally(() =>
        setChecked(true)
      );
    } else setChecked(true);
    return () => removeEventListener("hashchange", onHash);
  }, []);
  if (!checked) return null;
  if (!identity) return <Login onLogin={setIdentity} />;
  const logout = async () => {
    await call("POST", "/logout").catch(() => {});
    saveToken(null);
    setIdentity(undefined);
  };
  const View = PAGES[page].view;
  return (
    <div class="shell">
      <nav>
        <strong>mqtt-proxy</strong>
        {Object.entries(PAGES).map(([name, { title }]) => (
          <a key={name} href={`#/${name}`} class={name === page ? "active" : ""} id={`nav-${name}`}>
            {title}
          </a>
        ))}
        <span class="spacer" />
        <span class="muted" id="whoami">{identity.caller} ({identity.role})</span>
        <button type="button" onClick={logout} id="logout">Log out</button>
      </nav>
      <main id={`page-${page}`}>
        <View canWrite={identity.role === "admin"} />
      </main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
