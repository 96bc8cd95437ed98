import { type ReactNode, useEffect, useRef } from 'react';
import { Link, NavLink, Outlet, useLocation } from 'react-router';
import { useSession } from '../api/session.js';
import { ExternalIcon, LogoMark } from './icons.js';

/** The signed-in shell: a header with navigation, and the page in <main>. */
export function AppLayout() {
  const { keyLabel, signOut } = useSession();
  const location = useLocation();
  const mainRef = useRef<HTMLElement>(null);
  const firstRender = useRef(true);

  // After a client-side navigation, move focus to the new page's heading (as a full page load would
  // put it at the top), so keyboard and screen reader users start reading the new page.
  useEffect(() => {
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    const frame = requestAnimationFrame(() => {
      const heading = mainRef.current?.querySelector<HTMLElement>('h1');
      if (heading) {
        heading.tabIndex = -1;
        heading.focus({ preventScroll: false });
      }
    });
    return () => cancelAnimationFrame(frame);
  }, [location.pathname]);

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="topbar-inner">
          <Link to="/" className="brand" aria-label="Kiln, home">
            <LogoMark />
            <span className="brand-name">Kiln</span>
          </Link>
          <nav aria-label="Main" className="mainnav">
            <NavLink
              to="/"
              end
              className={({ isActive }) =>
                navClass(
                  isActive ||
                    location.pathname.startsWith('/models') ||
                    location.pathname.startsWith('/versions') ||
                    location.pathname.startsWith('/compilations'),
                )
              }
            >
              Models
            </NavLink>
            <NavLink to="/playground" className={({ isActive }) => navClass(isActive)}>
              Resolver playground
            </NavLink>
            <NavLink to="/keys" className={({ isActive }) => navClass(isActive)}>
              Keys
            </NavLink>
            <NavLink to="/audit" className={({ isActive }) => navClass(isActive)}>
              Audit log
            </NavLink>
            <NavLink to="/retention" className={({ isActive }) => navClass(isActive)}>
              Retention
            </NavLink>
            <NavLink to="/webhooks" className={({ isActive }) => navClass(isActive)}>
              Webhooks
            </NavLink>
            <a href="/docs" className="navlink" target="_blank" rel="noreferrer">
              API docs <ExternalIcon size={14} />
              <span className="sr-only">(opens in a new tab)</span>
            </a>
          </nav>
          <div className="topbar-session">
            <span className="key-pill" title="The API key this tab is signed in with">
              <span className="sr-only">Signed in with key </span>
              {keyLabel}
            </span>
            <button type="button" className="btn btn-ghost btn-sm" onClick={() => signOut()}>
              Sign out
            </button>
          </div>
        </div>
      </header>
      <main id="main" ref={mainRef} tabIndex={-1}>
        <Outlet />
      </main>
    </div>
  );
}

function navClass(active: boolean): string {
  return active ? 'navlink active' : 'navlink';
}

export interface Crumb {
  label: string;
  to?: string;
}

/** The top of a page: breadcrumbs, the one <h1>, a line under it, and the page's main actions. */
export function PageHeader({
  title,
  crumbs = [],
  subtitle,
  actions,
  badge,
}: {
  title: ReactNode;
  crumbs?: Crumb[];
  subtitle?: ReactNode;
  actions?: ReactNode;
  badge?: ReactNode;
}) {
  return (
    <div className="page-header">
      {crumbs.length > 0 && (
        <nav aria-label="Breadcrumb" className="crumbs">
          <ol>
            {crumbs.map((c, i) => (
              <li key={i}>{c.to ? <Link to={c.to}>{c.label}</Link> : <span aria-current="page">{c.label}</span>}</li>
            ))}
          </ol>
        </nav>
      )}
      <div className="page-header-row">
        <div className="page-title">
          <h1>{title}</h1>
          {badge}
        </div>
        {actions && <div className="page-actions">{actions}</div>}
      </div>
      {subtitle && <div className="page-subtitle">{subtitle}</div>}
    </div>
  );
}

/** Sets the tab's title: "mlp v1 · Kiln". */
export function useDocumentTitle(title: string | undefined): void {
  useEffect(() => {
    document.title = title ? `${title} · Kiln` : 'Kiln';
  }, [title]);
}
